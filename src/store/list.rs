//! Listings: objects under a prefix, the parts of an upload, the uploads in
//! progress. All three page through one helper, [`each_page`], which also
//! guards against servers whose markers are missing or repeat (SeaweedFS
//! omits NextKeyMarker, Garage NextUploadIdMarker).

use std::future::Future;

use aws_sdk_s3::types::EncodingType;

use super::connect::S3;
use super::error::{StoreError, absent};
use super::interface::{ListedPart, ListedUpload};
use crate::types::UploadId;

/// One page of a listing: its items and where the next page starts.
struct Page<T, M> {
    items: Vec<T>,
    next: Option<M>,
}

/// Fetches pages from `None` on, handing every item to `each`, until a page
/// is empty, has no next marker, or names the marker it was fetched with.
async fn each_page<T, M, F, Fut>(mut fetch: F, mut each: impl FnMut(T)) -> Result<(), StoreError>
where
    M: Clone + PartialEq,
    F: FnMut(Option<M>) -> Fut,
    Fut: Future<Output = Result<Page<T, M>, StoreError>>,
{
    let mut marker: Option<M> = None;
    loop {
        let page = fetch(marker.clone()).await?;
        let empty = page.items.is_empty();
        page.items.into_iter().for_each(&mut each);
        match page.next {
            Some(next) if !empty && marker.as_ref() != Some(&next) => marker = Some(next),
            _ => return Ok(()),
        }
    }
}

/// A key as S3 sends it with `encoding-type=url`: `+` for a space, `%XX`
/// for other bytes. `None` if it does not decode to UTF-8 (not a key).
fn url_decoded(key: &str) -> Option<String> {
    let plus = key.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// One page of a listing, the request retried by the run's policy.
macro_rules! page_of {
    ($store:expr, $req:expr, $operation:expr) => {
        $store
            .call(0, || {
                let req = $req.clone();
                async move { req.send().await.map_err(|e| $store.err($operation, e)) }
            })
            .await
    };
}

impl S3 {
    /// Calls `f(key, size)` for every object under `prefix`; returns how
    /// many there were.
    pub(super) async fn list_keys(
        &self,
        prefix: &str,
        mut f: impl FnMut(&str, u64),
    ) -> Result<u64, StoreError> {
        let operation = format!("ListObjectsV2 s3://{}/{prefix}", self.bucket());
        let mut n = 0;
        each_page(
            |token: Option<String>| {
                let req = self
                    .client()
                    .list_objects_v2()
                    .bucket(self.bucket())
                    .prefix(prefix)
                    .encoding_type(EncodingType::Url)
                    .set_continuation_token(token);
                let operation = &operation;
                async move {
                    let page = page_of!(self, req, operation)?;
                    // Keys come URL-encoded where the server says so (not
                    // every server does): control characters survive XML.
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
            },
            |(key, size): (String, u64)| {
                f(&key, size);
                n += 1;
            },
        )
        .await?;
        Ok(n)
    }

    pub(super) async fn parts(
        &self,
        key: &str,
        upload: &UploadId,
    ) -> Result<Option<Vec<ListedPart>>, StoreError> {
        let operation = format!("ListParts {key}");
        let mut out = Vec::new();
        let listed = each_page(
            |marker: Option<String>| {
                let req = self
                    .client()
                    .list_parts()
                    .bucket(self.bucket())
                    .key(key)
                    .upload_id(&upload.0)
                    .set_part_number_marker(marker);
                let operation = &operation;
                async move {
                    let page = page_of!(self, req, operation)?;
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
            },
            |p| out.push(p),
        )
        .await;
        match listed {
            Ok(()) => Ok(Some(out)),
            Err(e) => absent(e),
        }
    }

    /// Multipart uploads in progress under `prefix`, each once. Where a
    /// server omits a marker, the last upload listed stands in for it.
    pub(super) async fn uploads_under(
        &self,
        prefix: &str,
    ) -> Result<Vec<ListedUpload>, StoreError> {
        let operation = format!("ListMultipartUploads s3://{}/{prefix}", self.bucket());
        let mut out: Vec<ListedUpload> = Vec::new();
        each_page(
            |marker: Option<(Option<String>, Option<String>)>| {
                let (key_marker, id_marker) = marker.unwrap_or_default();
                let req = self
                    .client()
                    .list_multipart_uploads()
                    .bucket(self.bucket())
                    .prefix(prefix)
                    .set_key_marker(key_marker)
                    .set_upload_id_marker(id_marker);
                let operation = &operation;
                async move {
                    let page = page_of!(self, req, operation)?;
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
                        (
                            page.next_key_marker()
                                .map(str::to_string)
                                .or_else(|| last.map(|u| u.key.clone())),
                            page.next_upload_id_marker()
                                .map(str::to_string)
                                .or_else(|| last.map(|u| u.upload_id.0.clone())),
                        )
                    });
                    Ok(Page { items, next })
                }
            },
            |u| {
                if !out.iter().any(|o| o.upload_id == u.upload_id) {
                    out.push(u);
                }
            },
        )
        .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages of a fake listing: page i holds `pages[i]`, its next marker is
    /// `markers[i]`.
    async fn run(pages: Vec<Vec<u32>>, markers: Vec<Option<usize>>) -> (Vec<u32>, usize) {
        let mut fetched = 0;
        let mut got = Vec::new();
        each_page(
            |m: Option<usize>| {
                let i = m.unwrap_or(0);
                fetched += 1;
                let page = Page {
                    items: pages.get(i).cloned().unwrap_or_default(),
                    next: markers.get(i).copied().flatten(),
                };
                async move { Ok::<_, StoreError>(page) }
            },
            |x| got.push(x),
        )
        .await
        .unwrap();
        (got, fetched)
    }

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

    #[tokio::test]
    async fn pages_are_followed_to_the_end() {
        let (got, fetched) = run(
            vec![vec![1, 2], vec![3], vec![4]],
            vec![Some(1), Some(2), None],
        )
        .await;
        assert_eq!((got, fetched), (vec![1, 2, 3, 4], 3));
    }

    #[tokio::test]
    async fn a_repeated_marker_or_an_empty_page_ends_the_listing() {
        // The second page names itself as the next: a server that ignores
        // the marker would otherwise be asked for ever.
        let (got, fetched) = run(vec![vec![1], vec![2]], vec![Some(1), Some(1)]).await;
        assert_eq!((got, fetched), (vec![1, 2], 2));
        let (got, fetched) = run(vec![vec![1], vec![]], vec![Some(1), Some(2)]).await;
        assert_eq!((got, fetched), (vec![1], 2));
    }
}
