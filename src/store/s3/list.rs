//! Listings, a page at a time: objects under a prefix, the parts of an
//! upload, the uploads in progress. Paging through them (and guarding
//! against servers whose markers are missing or repeat) is the store
//! interface's, the same for every store.

use aws_sdk_s3::types::EncodingType;

use super::Sdk;
use crate::store::error::StoreError;
use crate::store::interface::{ListedPart, ListedUpload, Page, UploadsMarker};
use crate::types::UploadId;

/// A key as S3 sends it with `encoding-type=url`: `+` for a space, `%XX`
/// for other bytes. `None` if it does not decode to UTF-8 (not a key).
fn url_decoded(key: &str) -> Option<String> {
    let plus = key.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

impl Sdk {
    /// One page of ListObjectsV2, keys decoded where the server encoded
    /// them.
    pub(super) async fn objects_page(
        &self,
        prefix: &str,
        from: Option<String>,
    ) -> Result<Page<(String, u64), String>, StoreError> {
        let operation = format!("ListObjectsV2 s3://{}/{prefix}", self.bucket());
        let page = self
            .client()
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(prefix)
            .encoding_type(EncodingType::Url)
            .set_continuation_token(from)
            .send()
            .await
            .map_err(|e| self.err(&operation, e))?;
        // Keys come URL-encoded where the server says so (not every
        // server does): control characters survive XML.
        let encoded = page.encoding_type() == Some(&EncodingType::Url);
        let items = page
            .contents()
            .iter()
            .filter_map(|o| {
                let key = o.key()?;
                let key = if encoded {
                    url_decoded(key)?
                } else {
                    key.to_string()
                };
                Some((key, o.size().unwrap_or(0).max(0) as u64))
            })
            .collect();
        let next = if page.is_truncated() == Some(true) {
            page.next_continuation_token().map(str::to_string)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    pub(super) async fn parts_of(
        &self,
        key: &str,
        upload: &UploadId,
        from: Option<String>,
    ) -> Result<Page<ListedPart, String>, StoreError> {
        let operation = format!("ListParts {key}");
        let page = self
            .client()
            .list_parts()
            .bucket(self.bucket())
            .key(key)
            .upload_id(&upload.0)
            .set_part_number_marker(from)
            .send()
            .await
            .map_err(|e| self.err(&operation, e))?;
        let items = page
            .parts()
            .iter()
            .filter_map(|p| {
                Some(ListedPart {
                    number: p.part_number()?.max(0) as u32,
                    etag: p.e_tag()?.to_string(),
                    size: p.size().unwrap_or(0).max(0) as u64,
                })
            })
            .collect();
        let next = if page.is_truncated() == Some(true) {
            page.next_part_number_marker().map(str::to_string)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// One page of ListMultipartUploads. Where a server omits a marker,
    /// the last upload listed stands in for it.
    pub(super) async fn uploads_under(
        &self,
        prefix: &str,
        from: Option<UploadsMarker>,
    ) -> Result<Page<ListedUpload, UploadsMarker>, StoreError> {
        let operation = format!("ListMultipartUploads s3://{}/{prefix}", self.bucket());
        let from = from.unwrap_or_default();
        let page = self
            .client()
            .list_multipart_uploads()
            .bucket(self.bucket())
            .prefix(prefix)
            .set_key_marker(from.key)
            .set_upload_id_marker(from.upload_id)
            .send()
            .await
            .map_err(|e| self.err(&operation, e))?;
        let items: Vec<ListedUpload> = page
            .uploads()
            .iter()
            .filter_map(|u| {
                Some(ListedUpload {
                    key: u.key()?.to_string(),
                    upload_id: UploadId(u.upload_id()?.to_string()),
                    initiated: u.initiated().map(|t| t.secs()),
                })
            })
            .collect();
        let next = (page.is_truncated() == Some(true)).then(|| {
            let last = items.last();
            UploadsMarker {
                key: page
                    .next_key_marker()
                    .map(str::to_string)
                    .or_else(|| last.map(|u| u.key.clone())),
                upload_id: page
                    .next_upload_id_marker()
                    .map(str::to_string)
                    .or_else(|| last.map(|u| u.upload_id.0.clone())),
            }
        });
        Ok(Page { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoded_keys_decode_as_s3_encodes_them() {
        assert_eq!(url_decoded("a+b%2Bc.jpg").as_deref(), Some("a b+c.jpg"));
        assert_eq!(
            url_decoded("ctl%01x%09.jpg").as_deref(),
            Some("ctl\u{1}x\t.jpg")
        );
        assert_eq!(
            url_decoded("caf%C3%A9.jpg").as_deref(),
            Some("caf\u{e9}.jpg")
        );
        assert_eq!(url_decoded("bad%FF"), None);
    }
}
