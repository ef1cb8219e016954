//! What every stage sees of a store: the [`ObjectStore`] operations and
//! the plain data they take and return. No SDK type appears here, so an
//! in-memory store can stand in for S3 in unit tests, and one conformance
//! suite holds both to the same behaviour.

use std::collections::HashMap;
use std::future::Future;

use bytes::Bytes;

use super::error::{StoreError, absent};
use super::pace::PaceStats;
use crate::checksum::Algorithm;
use crate::types::{Sha256Digest, UploadId};

/// One bucket (and the prefix a stage works under), as every stage uses it.
pub trait ObjectStore: Clone + Send + Sync + 'static {
    /// Where the store is, for reports ("http://127.0.0.1:8333").
    fn endpoint(&self) -> &str;

    /// The URL at which the endpoint itself serves the bucket's objects
    /// (the default `--public-base-url`).
    fn bucket_url(&self) -> String;

    /// How the store answered so far (throttling, timeouts, concurrency).
    fn pace_stats(&self) -> PaceStats {
        PaceStats::default()
    }

    /// One page of ListObjectsV2 under `prefix`: (key, size) in key
    /// order, from where `from` (a page's `next`) says, `None` for the
    /// first page.
    fn list_page(
        &self,
        prefix: &str,
        from: Option<String>,
    ) -> impl Future<Output = Result<Page<(String, u64), String>, StoreError>> + Send;

    /// One page of ListParts; a `NotFound` error when the server no
    /// longer knows the upload.
    fn parts_page(
        &self,
        key: &str,
        upload: &UploadId,
        from: Option<String>,
    ) -> impl Future<Output = Result<Page<ListedPart, String>, StoreError>> + Send;

    /// One page of ListMultipartUploads under `prefix`.
    fn uploads_page(
        &self,
        prefix: &str,
        from: Option<UploadsMarker>,
    ) -> impl Future<Output = Result<Page<ListedUpload, UploadsMarker>, StoreError>> + Send;

    /// Calls `each(key, size)` for every object under `prefix`, in key
    /// order; how many there were.
    fn list(
        &self,
        prefix: &str,
        mut each: impl FnMut(&str, u64) + Send,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            let mut n = 0;
            each_page(
                |from| self.list_page(prefix, from),
                |(key, size): (String, u64)| {
                    each(&key, size);
                    n += 1;
                },
            )
            .await?;
            Ok(n)
        }
    }

    /// GetObject, handing each piece to `sink` as it arrives and hashing
    /// it: (size, SHA-256), or `None` when there is no such object. An
    /// error from `sink` ends the download.
    fn download(
        &self,
        key: &str,
        sink: impl FnMut(&[u8]) -> std::io::Result<()> + Send,
    ) -> impl Future<Output = Result<Option<(u64, Sha256Digest)>, StoreError>> + Send;

    /// Every multipart upload in progress under `prefix`, each once (a
    /// server whose markers lag may list one on two pages).
    fn list_uploads(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ListedUpload>, StoreError>> + Send {
        async move {
            let mut out: Vec<ListedUpload> = Vec::new();
            each_page(
                |from| self.uploads_page(prefix, from),
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

    /// HeadObject with checksums; `None` when there is no such object.
    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<RemoteObject>, StoreError>> + Send;

    /// PutObject carrying `checksum`, which the server validates.
    /// `must_not_exist` sends `If-None-Match: *`.
    fn put_object(
        &self,
        obj: &NewObject<'_>,
        body: Bytes,
        checksum: &BodyChecksum,
        must_not_exist: bool,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// Starts a multipart upload whose parts carry `algorithm` checksums
    /// (full-object type for CRCs, composite for SHA-256).
    fn create_multipart(
        &self,
        obj: &NewObject<'_>,
        algorithm: Algorithm,
    ) -> impl Future<Output = Result<UploadId, StoreError>> + Send;

    fn upload_part(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
        checksum: &BodyChecksum,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// Completes a multipart upload. `full_object`, for full-object
    /// algorithms, is the whole object's checksum, which the server checks.
    fn complete_multipart(
        &self,
        key: &str,
        upload: &UploadId,
        parts: &[DonePart],
        algorithm: Algorithm,
        full_object: Option<&str>,
        must_not_exist: bool,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    fn abort_multipart(
        &self,
        key: &str,
        upload: &UploadId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every part the server holds for an upload, in listing order (which
    /// may repeat a part number: SeaweedFS lists a re-sent part twice).
    /// `None` when the server no longer knows the upload.
    fn list_parts(
        &self,
        key: &str,
        upload: &UploadId,
    ) -> impl Future<Output = Result<Option<Vec<ListedPart>>, StoreError>> + Send {
        async move {
            let mut out = Vec::new();
            match each_page(|from| self.parts_page(key, upload, from), |p| out.push(p)).await {
                Ok(()) => Ok(Some(out)),
                Err(e) => absent(e),
            }
        }
    }

    /// The multipart uploads in progress for exactly this key
    /// (ListMultipartUploads with the key as prefix).
    fn uploads_of(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<UploadId>, StoreError>> + Send {
        async move {
            Ok(self
                .list_uploads(key)
                .await?
                .into_iter()
                .filter(|u| u.key == key)
                .map(|u| u.upload_id)
                .collect())
        }
    }

    /// CopyObject within the bucket: `obj` gets the bytes of the object
    /// `from`, with `obj`'s own content type and metadata (the metadata
    /// directive REPLACE) and a checksum in `algorithm` asked for.
    /// `must_not_exist` sends `If-None-Match: *`. Up to
    /// [`crate::limits::MAX_COPY_OBJECT`] bytes; larger objects are copied
    /// in parts ([`Self::upload_part_copy`]).
    fn copy_object(
        &self,
        obj: &NewObject<'_>,
        from: &str,
        algorithm: Algorithm,
        must_not_exist: bool,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// UploadPartCopy: part `number` of `upload` is bytes `range` (start,
    /// end exclusive) of the object `from`. The answer carries the part's
    /// ETag and, where the server gives it, its checksum in the upload's
    /// algorithm.
    fn upload_part_copy(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        from: &str,
        range: (u64, u64),
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;
}

/// The checksum a request body carries (`x-amz-checksum-*`, base64), or
/// an object's whole checksum as a server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyChecksum {
    pub algorithm: Algorithm,
    pub value: String,
}

impl BodyChecksum {
    /// `ALGORITHM:value`, as the journal keeps it.
    pub fn record(&self) -> String {
        format!("{}:{}", self.algorithm.name(), self.value)
    }

    /// Reads back a [`BodyChecksum::record`].
    pub fn from_record(s: &str) -> Option<Self> {
        let (name, value) = s.split_once(':')?;
        Some(Self {
            algorithm: Algorithm::from_name(name)?,
            value: value.to_string(),
        })
    }
}

/// Whether a server checksum covers the whole object or combines parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    FullObject,
    Composite,
}

/// The checksums a server returned for an object or a write (base64, as in
/// `x-amz-checksum-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checksums {
    pub crc64nvme: Option<String>,
    pub sha256: Option<String>,
    pub crc32c: Option<String>,
    /// The name of a checksum the server returned in an algorithm
    /// mediashift does not compute (CRC32, SHA-1, ...): an object written
    /// by another client still shows that it carries a server checksum.
    pub other: Option<&'static str>,
    /// `None` when the server does not say (a single PutObject's checksum
    /// covers the whole object).
    pub kind: Option<ChecksumType>,
}

impl Checksums {
    /// The value of `algorithm`, if the server returned it.
    pub fn of(&self, algorithm: Algorithm) -> Option<&str> {
        match algorithm {
            Algorithm::Crc64nvme => self.crc64nvme.as_deref(),
            Algorithm::Sha256 => self.sha256.as_deref(),
            Algorithm::Crc32c => self.crc32c.as_deref(),
        }
    }

    /// A server's answer that holds one value of `algorithm`.
    #[cfg(any(test, feature = "test-support"))]
    pub fn only(algorithm: Algorithm, value: String, kind: Option<ChecksumType>) -> Self {
        let mut c = Self {
            kind,
            ..Self::default()
        };
        match algorithm {
            Algorithm::Crc64nvme => c.crc64nvme = Some(value),
            Algorithm::Sha256 => c.sha256 = Some(value),
            Algorithm::Crc32c => c.crc32c = Some(value),
        }
        c
    }
}

/// What HeadObject tells about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteObject {
    pub size: u64,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    /// `x-amz-meta-*`, keys lower-case.
    pub metadata: HashMap<String, String>,
    pub checksums: Checksums,
}

/// What the server answered to a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub etag: Option<String>,
    pub checksums: Checksums,
}

/// Settings applied to every object written.
#[derive(Debug, Clone, Default)]
pub struct ObjectOptions {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    /// The user's own metadata (`--metadata`), besides mediashift's.
    pub metadata: Vec<(String, String)>,
    pub storage_class: Option<String>,
    pub acl: Option<String>,
    /// `AES256` or `aws:kms`.
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
}

/// One object to create.
#[derive(Debug, Clone)]
pub struct NewObject<'a> {
    pub key: &'a str,
    pub content_type: &'a str,
    pub metadata: &'a [(&'static str, String)],
    pub options: &'a ObjectOptions,
}

/// A part of a multipart upload that the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DonePart {
    pub number: u32,
    pub etag: String,
    /// Its checksum in the upload's algorithm; empty when the server gave
    /// none (a copied part on some servers): the whole object's checksum
    /// at completion stands for it.
    pub checksum: String,
}

/// A part as ListParts shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

/// A multipart upload in progress, as ListMultipartUploads shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUpload {
    pub key: String,
    pub upload_id: UploadId,
    /// Seconds since the epoch.
    pub initiated: Option<i64>,
}

/// One page of a listing: its items and where the next page starts
/// (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, M> {
    pub items: Vec<T>,
    pub next: Option<M>,
}

/// Where the next page of ListMultipartUploads starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadsMarker {
    pub key: Option<String>,
    pub upload_id: Option<String>,
}

/// Fetches pages from `None` on, handing every item to `each`, until a page
/// is empty, has no next marker, or names the marker it was fetched with
/// (servers whose markers are missing or repeat: SeaweedFS omits
/// NextKeyMarker, Garage NextUploadIdMarker; asking again would loop).
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
