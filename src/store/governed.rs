//! Retries and pace as a layer around any store: [`Governed`] sends each
//! request of the store it wraps through the run's [`RetryPolicy`], each
//! attempt in a slot of the run's [`Pace`] (adaptive concurrency, the
//! bandwidth and request-rate caps), so the store underneath sends every
//! request once and knows nothing of either.
//!
//! Listings are retried a page at a time (a failure on page 50 does not
//! list the first 49 again, nor hand their items out twice). A download
//! is retried only until its first byte has reached the sink: after that,
//! the sink has seen part of the body, and a retry would hand it the start
//! again.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::error::StoreError;
use super::interface::{
    BodyChecksum, DonePart, ListedPart, ListedUpload, NewObject, ObjectStore, Page, RemoteObject,
    UploadsMarker, Written,
};
use super::pace::{Pace, PaceStats};
use super::retry::{self, RetryPolicy};
use crate::checksum::Algorithm;
use crate::types::{Sha256Digest, UploadId};

/// A store whose requests are retried and paced.
#[derive(Clone)]
pub struct Governed<S> {
    inner: S,
    policy: RetryPolicy,
    pace: Arc<Pace>,
}

impl<S: ObjectStore> Governed<S> {
    pub fn new(inner: S, policy: RetryPolicy, pace: Arc<Pace>) -> Self {
        Self {
            inner,
            policy,
            pace,
        }
    }

    /// The store underneath, whose calls are single requests.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Puts how the store answers (concurrency, throttling, an outage) in
    /// the progress status.
    pub fn report_pace(&self, progress: &crate::progress::Progress) {
        let pace = self.pace.clone();
        progress.status(Box::new(move || pace.stats().status()));
    }
}

impl<S: ObjectStore> ObjectStore for Governed<S> {
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    fn bucket_url(&self) -> String {
        self.inner.bucket_url()
    }

    fn pace_stats(&self) -> PaceStats {
        self.pace.stats()
    }

    async fn list_page(
        &self,
        prefix: &str,
        from: Option<String>,
    ) -> Result<Page<(String, u64), String>, StoreError> {
        retry::run(&self.pace, &self.policy, 0, || {
            self.inner.list_page(prefix, from.clone())
        })
        .await
    }

    async fn parts_page(
        &self,
        key: &str,
        upload: &UploadId,
        from: Option<String>,
    ) -> Result<Page<ListedPart, String>, StoreError> {
        retry::run(&self.pace, &self.policy, 0, || {
            self.inner.parts_page(key, upload, from.clone())
        })
        .await
    }

    async fn uploads_page(
        &self,
        prefix: &str,
        from: Option<UploadsMarker>,
    ) -> Result<Page<ListedUpload, UploadsMarker>, StoreError> {
        retry::run(&self.pace, &self.policy, 0, || {
            self.inner.uploads_page(prefix, from.clone())
        })
        .await
    }

    async fn download(
        &self,
        key: &str,
        sink: impl FnMut(&[u8]) -> std::io::Result<()> + Send,
    ) -> Result<Option<(u64, Sha256Digest)>, StoreError> {
        let sink = Mutex::new(sink);
        let delivered = AtomicBool::new(false);
        let attempts = retry::run(&self.pace, &self.policy, 0, || {
            let (sink, delivered) = (&sink, &delivered);
            async move {
                let got = self
                    .inner
                    .download(key, move |piece: &[u8]| {
                        delivered.store(true, Ordering::Relaxed);
                        let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                        (*sink)(piece)
                    })
                    .await;
                match got {
                    // Part of the body reached the sink: not retried, the
                    // error stands as the answer.
                    Err(e) if delivered.load(Ordering::Relaxed) => Ok(Err(e)),
                    other => other.map(Ok),
                }
            }
        })
        .await;
        attempts?
    }

    async fn head(&self, key: &str) -> Result<Option<RemoteObject>, StoreError> {
        retry::run(&self.pace, &self.policy, 0, || self.inner.head(key)).await
    }

    async fn put_object(
        &self,
        obj: &NewObject<'_>,
        body: Bytes,
        checksum: &BodyChecksum,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        let len = body.len() as u64;
        retry::run(&self.pace, &self.policy, len, || {
            self.inner
                .put_object(obj, body.clone(), checksum, must_not_exist)
        })
        .await
    }

    async fn create_multipart(
        &self,
        obj: &NewObject<'_>,
        algorithm: Algorithm,
    ) -> Result<UploadId, StoreError> {
        retry::run(&self.pace, &self.policy, 0, || {
            self.inner.create_multipart(obj, algorithm)
        })
        .await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
        checksum: &BodyChecksum,
    ) -> Result<Written, StoreError> {
        let len = body.len() as u64;
        retry::run(&self.pace, &self.policy, len, || {
            self.inner
                .upload_part(key, upload, number, body.clone(), checksum)
        })
        .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload: &UploadId,
        parts: &[DonePart],
        algorithm: Algorithm,
        full_object: Option<&str>,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        retry::run(&self.pace, &self.policy, 0, || {
            self.inner.complete_multipart(
                key,
                upload,
                parts,
                algorithm,
                full_object,
                must_not_exist,
            )
        })
        .await
    }

    async fn abort_multipart(&self, key: &str, upload: &UploadId) -> Result<(), StoreError> {
        retry::run(&self.pace, &self.policy, 0, || {
            self.inner.abort_multipart(key, upload)
        })
        .await
    }

    async fn copy_object(
        &self,
        obj: &NewObject<'_>,
        from: &str,
        algorithm: Algorithm,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        retry::run(&self.pace, &self.policy, 0, || {
            self.inner.copy_object(obj, from, algorithm, must_not_exist)
        })
        .await
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        from: &str,
        range: (u64, u64),
    ) -> Result<Written, StoreError> {
        retry::run(&self.pace, &self.policy, 0, || {
            self.inner
                .upload_part_copy(key, upload, number, from, range)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::error::ErrorKind;
    use crate::store::interface::ObjectOptions;
    use crate::store::memory::{Fault, MemoryStore, Op};
    use crate::store::pace::Caps;

    fn governed(store: &MemoryStore) -> Governed<MemoryStore> {
        let policy = RetryPolicy {
            max_attempts: 3,
            patience: Duration::from_secs(5),
            backoff: Duration::from_millis(1),
        };
        Governed::new(
            store.clone(),
            policy,
            Arc::new(Pace::new(4, true, Caps::default())),
        )
    }

    fn put_all(store: &MemoryStore, keys: &[String]) {
        for k in keys {
            store.put_raw(k, k.as_bytes(), &[], Default::default());
        }
    }

    fn calls(store: &MemoryStore, what: &str) -> usize {
        store.log().iter().filter(|l| l.starts_with(what)).count()
    }

    #[tokio::test]
    async fn a_request_that_may_pass_is_sent_again_and_one_that_cannot_is_not() {
        let memory = MemoryStore::new();
        let store = governed(&memory);
        let options = ObjectOptions::default();
        let obj = NewObject {
            key: "a.jpg",
            content_type: "image/jpeg",
            metadata: &[],
            options: &options,
        };
        let body = Bytes::from_static(b"bytes");
        let sum = crate::checksum::Summer::of(Algorithm::Crc64nvme, &body);
        let checksum = BodyChecksum {
            algorithm: Algorithm::Crc64nvme,
            value: sum.value.to_base64(),
        };
        memory.fault(Op::Put, "a.jpg", Fault::Fail(ErrorKind::Transient), 2);
        store
            .put_object(&obj, body.clone(), &checksum, false)
            .await
            .expect("the third attempt passes");
        assert_eq!(calls(&memory, "PutObject"), 3);
        assert_eq!(memory.object("a.jpg").as_deref(), Some(&b"bytes"[..]));

        // The bare store sends it once.
        memory.fault(Op::Put, "a.jpg", Fault::Fail(ErrorKind::Transient), 1);
        memory.clear_log();
        let e = memory
            .put_object(&obj, body.clone(), &checksum, false)
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), calls(&memory, "PutObject")),
            (ErrorKind::Transient, 1)
        );

        // Refused: once, through the layer too.
        memory.clear_log();
        let e = store
            .put_object(&obj, body, &checksum, true)
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), calls(&memory, "PutObject")),
            (ErrorKind::Precondition, 1)
        );
    }

    #[tokio::test]
    async fn a_listing_retries_the_page_that_failed_and_hands_out_each_key_once() {
        let memory = MemoryStore::new();
        let keys: Vec<String> = (0..2500).map(|i| format!("p/{i:05}.jpg")).collect();
        put_all(&memory, &keys);
        // The page after the first thousand fails twice.
        memory.fault(
            Op::List,
            "p/00999.jpg",
            Fault::Fail(ErrorKind::Transient),
            2,
        );
        let mut listed = Vec::new();
        let n = governed(&memory)
            .list("p/", |k, _| listed.push(k.to_string()))
            .await
            .unwrap();
        assert_eq!((n, &listed), (2500, &keys));
        // Three pages, the second sent three times.
        assert_eq!(calls(&memory, "ListObjectsV2"), 5);
    }

    #[tokio::test]
    async fn a_download_is_retried_only_before_its_first_byte() {
        let memory = MemoryStore::new();
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        memory.put_raw("v.mp4", &body, &[], Default::default());
        let store = governed(&memory);

        memory.fault(Op::Get, "v.mp4", Fault::Fail(ErrorKind::Transient), 1);
        let mut got = Vec::new();
        let (len, _) = store
            .download("v.mp4", |p| {
                got.extend_from_slice(p);
                Ok(())
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!((len, got == body), (200_000, true));
        assert_eq!(calls(&memory, "GetObject"), 2);

        memory.clear_log();
        memory.fault(Op::Get, "v.mp4", Fault::Cut(ErrorKind::Transient), 1);
        let mut got = Vec::new();
        let e = store
            .download("v.mp4", |p| {
                got.extend_from_slice(p);
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert_eq!(calls(&memory, "GetObject"), 1, "not sent again");
        assert!(!got.is_empty() && got.len() < body.len());
        assert_eq!(got, body[..got.len()], "no byte handed out twice");
    }

    #[tokio::test]
    async fn it_passes_the_store_conformance_suite() {
        crate::store::conformance::suite(&governed(&MemoryStore::new()), "p/", true)
            .await
            .unwrap();
    }
}
