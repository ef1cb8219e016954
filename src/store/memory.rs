//! An in-memory [`ObjectStore`] for the stages' unit tests (test builds
//! and the `test-support` feature only), held to the real server's
//! behaviour by the `conformance` suite. It behaves as the servers the integration tests use do where the
//! engine depends on it: bodies are checked against their checksum (400
//! BadDigest), `If-None-Match: *` is honoured (412), ETags are MD5s (of the
//! part MD5s, `-N`, for multipart objects), an aborted or completed upload
//! is gone (404), and, as on SeaweedFS, a re-sent part can be listed twice.
//! Faults are injected per operation and key.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::error::{ErrorKind, StoreError};
use super::interface::{
    BodyChecksum, ChecksumType, Checksums, DonePart, ListedPart, ListedUpload, NewObject,
    ObjectStore, Page, RemoteObject, UploadsMarker, Written,
};
use crate::checksum::{self, Algorithm, Summer};
use crate::types::{Sha256Digest, UploadId};

/// Which call a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Head,
    Put,
    Create,
    Part,
    Complete,
    Abort,
    ListParts,
    ListUploads,
    Copy,
    PartCopy,
    List,
    Get,
}

/// What a faulty call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with an error of this kind, storing nothing.
    Fail(ErrorKind),
    /// Do the work, then answer with an error of this kind: what the
    /// client sees when the answer was lost and its retry is refused (412
    /// for a PUT that is there now, 404 for a completed upload).
    StoreThenFail(ErrorKind),
    /// Store other bytes than were sent (the first byte flipped) and
    /// report their checksum, as a faulty server would.
    Garble,
    /// Hand out the first piece of a body, then fail with this kind: a
    /// download cut off midway.
    Cut(ErrorKind),
    /// Panic inside the call.
    Panic,
}

#[derive(Debug, Clone)]
struct Stored {
    data: Bytes,
    content_type: String,
    metadata: HashMap<String, String>,
    checksums: Checksums,
    etag: String,
}

impl Stored {
    /// `obj` as written, with these bytes.
    fn of(obj: &NewObject<'_>, data: Bytes, checksums: Checksums, etag: &str) -> Self {
        Self {
            data,
            content_type: obj.content_type.to_string(),
            metadata: metadata(obj),
            checksums,
            etag: etag.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct Upload {
    key: String,
    algorithm: Algorithm,
    content_type: String,
    metadata: HashMap<String, String>,
    /// When it was created (seconds since the epoch).
    initiated: i64,
    /// Every part received, in order; a re-sent number is kept twice when
    /// `keeps_resent_parts` (SeaweedFS), replaced otherwise (AWS).
    parts: Vec<(u32, Bytes, String)>,
}

#[derive(Default)]
struct State {
    objects: HashMap<String, Stored>,
    uploads: HashMap<String, Upload>,
    next_id: u64,
    faults: Vec<(Op, String, Fault, usize)>,
    log: Vec<String>,
}

/// The store. Cloning shares it.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: std::sync::Arc<Mutex<State>>,
    /// Answers and HeadObject carry no checksums: the engine must fall
    /// back to the ETag.
    no_checksums: bool,
    /// A re-sent part is listed twice, as SeaweedFS does.
    keeps_resent_parts: bool,
    /// Copies keep the source's checksums and answer with none, as
    /// SeaweedFS does (otherwise, as AWS: a new full-object checksum in the
    /// algorithm asked for, in the answer and in HeadObject).
    copies_keep_checksums: bool,
}

fn md5_hex(data: &[u8]) -> String {
    checksum::md5_hex(data)
}

fn metadata(obj: &NewObject<'_>) -> HashMap<String, String> {
    obj.metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn error(kind: ErrorKind, operation: String) -> StoreError {
    let message = format!("{operation}: {kind:?} (in-memory store)");
    StoreError::new(kind, operation, message)
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose answers carry no checksums.
    pub fn without_checksums() -> Self {
        Self {
            no_checksums: true,
            ..Self::default()
        }
    }

    /// A store that lists a re-sent part twice.
    pub fn keeping_resent_parts() -> Self {
        Self {
            keeps_resent_parts: true,
            ..Self::default()
        }
    }

    /// A store whose copies keep the source's checksums and answer with
    /// none (SeaweedFS).
    pub fn copying_as_seaweedfs() -> Self {
        Self {
            copies_keep_checksums: true,
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `times` calls of `op` on a key containing `key` misbehave.
    pub fn fault(&self, op: Op, key: &str, fault: Fault, times: usize) {
        self.lock().faults.push((op, key.to_string(), fault, times));
    }

    /// Consumes a matching fault, logging the call either way.
    fn call(&self, op: Op, key: &str, what: String) -> Option<Fault> {
        let mut s = self.lock();
        s.log.push(what);
        let hit = s
            .faults
            .iter_mut()
            .find(|(o, k, _, n)| *o == op && key.contains(k.as_str()) && *n > 0)?;
        hit.3 -= 1;
        let fault = hit.2;
        drop(s);
        if fault == Fault::Panic {
            panic!("in-memory store: injected panic on {op:?} {key}");
        }
        Some(fault)
    }

    /// Every call so far, e.g. "UploadPart v.mp4 #2".
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// The bytes under `key`.
    pub fn object(&self, key: &str) -> Option<Bytes> {
        self.lock().objects.get(key).map(|o| o.data.clone())
    }

    /// Puts an object as another client would: with `metadata` and the
    /// checksums given, nothing computed.
    pub fn put_raw(&self, key: &str, data: &[u8], metadata: &[(&str, &str)], checksums: Checksums) {
        let stored = Stored {
            data: Bytes::copy_from_slice(data),
            content_type: "application/octet-stream".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            checksums,
            etag: format!("\"{}\"", md5_hex(data)),
        };
        self.lock().objects.insert(key.to_string(), stored);
    }

    /// Deletes an object behind everyone's back.
    pub fn remove(&self, key: &str) {
        self.lock().objects.remove(key);
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.lock().objects.keys().cloned().collect();
        k.sort();
        k
    }

    /// Forgets the calls logged so far.
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// Ids of the uploads in progress.
    pub fn uploads(&self) -> Vec<UploadId> {
        self.lock()
            .uploads
            .keys()
            .map(|k| UploadId(k.clone()))
            .collect()
    }

    /// A part received: kept beside an earlier one of its number where the
    /// store keeps re-sent parts (SeaweedFS), in its place otherwise.
    fn add_part(&self, u: &mut Upload, number: u32, body: Bytes, etag: &str) {
        if !self.keeps_resent_parts {
            u.parts.retain(|(n, _, _)| *n != number);
        }
        u.parts.push((number, body, etag.to_string()));
    }

    /// The answer to a write that was done, unless the fault says the
    /// answer was lost.
    fn answered(
        &self,
        fault: Option<Fault>,
        operation: String,
        checksums: Checksums,
        etag: String,
    ) -> Result<Written, StoreError> {
        if let Some(Fault::StoreThenFail(kind)) = fault {
            return Err(error(kind, operation));
        }
        Ok(self.answer(checksums, etag))
    }

    fn answer(&self, checksums: Checksums, etag: String) -> Written {
        Written {
            etag: Some(etag),
            checksums: if self.no_checksums {
                Checksums::default()
            } else {
                checksums
            },
        }
    }
}

/// The most items a listing page holds, as on S3.
const PAGE: usize = 1000;

/// The first `size` of `items` (sorted), and the marker of the last one
/// when more follow.
fn page<T, M>(mut items: Vec<T>, size: usize, marker: impl Fn(&T) -> M) -> Page<T, M> {
    let more = items.len() > size;
    items.truncate(size);
    let next = if more { items.last().map(marker) } else { None };
    Page { items, next }
}

fn check(body: &[u8], c: &BodyChecksum, operation: &str) -> Result<(), StoreError> {
    if Summer::of(c.algorithm, body).value.to_base64() == c.value {
        Ok(())
    } else {
        Err(error(ErrorKind::Checksum, format!("{operation} BadDigest")))
    }
}

impl ObjectStore for MemoryStore {
    fn endpoint(&self) -> &str {
        "memory"
    }

    fn bucket_url(&self) -> String {
        "memory://bucket".into()
    }

    async fn list_page(
        &self,
        prefix: &str,
        from: Option<String>,
    ) -> Result<Page<(String, u64), String>, StoreError> {
        let operation = format!("ListObjectsV2 {prefix}");
        // A page after the first is faulted by the key it starts after.
        let at = from.as_deref().unwrap_or(prefix);
        if let Some(Fault::Fail(kind) | Fault::StoreThenFail(kind)) =
            self.call(Op::List, at, operation.clone())
        {
            return Err(error(kind, operation));
        }
        let mut listed: Vec<(String, u64)> = self
            .lock()
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && from.as_ref().is_none_or(|f| *k > f))
            .map(|(k, o)| (k.clone(), o.data.len() as u64))
            .collect();
        listed.sort();
        Ok(page(listed, PAGE, |(k, _)| k.clone()))
    }

    async fn download(
        &self,
        key: &str,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()> + Send,
    ) -> Result<Option<(u64, Sha256Digest)>, StoreError> {
        let operation = format!("GetObject {key}");
        let fault = self.call(Op::Get, key, operation.clone());
        if let Some(Fault::Fail(kind) | Fault::StoreThenFail(kind)) = fault {
            return Err(error(kind, operation));
        }
        let Some(data) = self.object(key) else {
            return Ok(None);
        };
        // In pieces, as a body arrives.
        for piece in data.chunks(64 * 1024) {
            sink(piece).map_err(|e| error(ErrorKind::Fatal, format!("{operation}: {e}")))?;
            if let Some(Fault::Cut(kind)) = fault {
                return Err(error(kind, format!("{operation}: reading the body")));
            }
        }
        let d = crate::digest::Digests::of_bytes(&data);
        Ok(Some((data.len() as u64, d.sha256)))
    }

    async fn uploads_page(
        &self,
        prefix: &str,
        from: Option<UploadsMarker>,
    ) -> Result<Page<ListedUpload, UploadsMarker>, StoreError> {
        let operation = format!("ListMultipartUploads {prefix}");
        if let Some(Fault::Fail(kind) | Fault::StoreThenFail(kind)) =
            self.call(Op::ListUploads, prefix, operation.clone())
        {
            return Err(error(kind, operation));
        }
        let after = from.map(|m| (m.key.unwrap_or_default(), m.upload_id.unwrap_or_default()));
        let mut out: Vec<ListedUpload> = self
            .lock()
            .uploads
            .iter()
            .filter(|(_, u)| u.key.starts_with(prefix))
            .map(|(id, u)| ListedUpload {
                key: u.key.clone(),
                upload_id: UploadId(id.clone()),
                initiated: Some(u.initiated),
            })
            .filter(|u| {
                after
                    .as_ref()
                    .is_none_or(|(k, id)| (&u.key, &u.upload_id.0) > (k, id))
            })
            .collect();
        out.sort_by(|a, b| (&a.key, &a.upload_id.0).cmp(&(&b.key, &b.upload_id.0)));
        Ok(page(out, PAGE, |u| UploadsMarker {
            key: Some(u.key.clone()),
            upload_id: Some(u.upload_id.0.clone()),
        }))
    }

    async fn head(&self, key: &str) -> Result<Option<RemoteObject>, StoreError> {
        if let Some(Fault::Fail(kind) | Fault::StoreThenFail(kind)) =
            self.call(Op::Head, key, format!("HeadObject {key}"))
        {
            return Err(error(kind, format!("HeadObject {key}")));
        }
        Ok(self.lock().objects.get(key).map(|o| RemoteObject {
            size: o.data.len() as u64,
            etag: Some(o.etag.clone()),
            content_type: Some(o.content_type.clone()),
            metadata: o.metadata.clone(),
            checksums: if self.no_checksums {
                Checksums::default()
            } else {
                o.checksums.clone()
            },
        }))
    }

    async fn put_object(
        &self,
        obj: &NewObject<'_>,
        body: Bytes,
        checksum: &BodyChecksum,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        let operation = format!("PutObject {}", obj.key);
        let fault = self.call(Op::Put, obj.key, operation.clone());
        if let Some(Fault::Fail(kind)) = fault {
            return Err(error(kind, operation));
        }
        check(&body, checksum, &operation)?;
        let mut s = self.lock();
        if must_not_exist && s.objects.contains_key(obj.key) {
            return Err(error(ErrorKind::Precondition, operation));
        }
        let body = match fault {
            Some(Fault::Garble) if !body.is_empty() => {
                let mut v = body.to_vec();
                v[0] ^= 0xFF;
                Bytes::from(v)
            }
            _ => body,
        };
        let value = Summer::of(checksum.algorithm, &body).value.to_base64();
        let checksums = Checksums::only(checksum.algorithm, value, None);
        let etag = format!("\"{}\"", md5_hex(&body));
        s.objects.insert(
            obj.key.to_string(),
            Stored::of(obj, body, checksums.clone(), &etag),
        );
        drop(s);
        self.answered(fault, operation, checksums, etag)
    }

    async fn create_multipart(
        &self,
        obj: &NewObject<'_>,
        algorithm: Algorithm,
    ) -> Result<UploadId, StoreError> {
        let operation = format!("CreateMultipartUpload {}", obj.key);
        if let Some(Fault::Fail(kind) | Fault::StoreThenFail(kind)) =
            self.call(Op::Create, obj.key, operation.clone())
        {
            return Err(error(kind, operation));
        }
        let mut s = self.lock();
        s.next_id += 1;
        let id = format!("upload-{}", s.next_id);
        s.uploads.insert(
            id.clone(),
            Upload {
                key: obj.key.to_string(),
                algorithm,
                content_type: obj.content_type.to_string(),
                metadata: metadata(obj),
                initiated: crate::journal::now(),
                parts: Vec::new(),
            },
        );
        Ok(UploadId(id))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
        checksum: &BodyChecksum,
    ) -> Result<Written, StoreError> {
        let operation = format!("UploadPart {key} #{number}");
        let fault = self.call(Op::Part, key, operation.clone());
        if let Some(Fault::Fail(kind)) = fault {
            return Err(error(kind, operation));
        }
        check(&body, checksum, &operation)?;
        let etag = format!("\"{}\"", md5_hex(&body));
        let mut s = self.lock();
        let Some(u) = s.uploads.get_mut(&upload.0).filter(|u| u.key == key) else {
            return Err(error(ErrorKind::NotFound, operation));
        };
        self.add_part(u, number, body, &etag);
        drop(s);
        let answered = Checksums::only(checksum.algorithm, checksum.value.clone(), None);
        self.answered(fault, operation, answered, etag)
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
        let operation = format!("CompleteMultipartUpload {key}");
        let fault = self.call(Op::Complete, key, operation.clone());
        if let Some(Fault::Fail(kind)) = fault {
            return Err(error(kind, operation));
        }
        let mut s = self.lock();
        let Some(u) = s.uploads.get(&upload.0).filter(|u| u.key == key).cloned() else {
            return Err(error(ErrorKind::NotFound, operation));
        };
        if must_not_exist && s.objects.contains_key(key) {
            return Err(error(ErrorKind::Precondition, operation));
        }
        let mut data = Vec::new();
        let mut sums = Vec::new();
        let mut md5s = Vec::new();
        for p in parts {
            // The part whose ETag the client names, as SeaweedFS picks it.
            let Some((_, body, _)) = u
                .parts
                .iter()
                .find(|(n, _, e)| *n == p.number && *e == p.etag)
            else {
                return Err(error(ErrorKind::Fatal, format!("{operation} InvalidPart")));
            };
            data.extend_from_slice(body);
            sums.push(Summer::of(u.algorithm, body));
            md5s.push(Some(checksum::md5(body)));
        }
        let value = checksum::multipart_value(algorithm, &sums);
        if let Some(full) = full_object
            && full != value
        {
            return Err(error(ErrorKind::Checksum, format!("{operation} BadDigest")));
        }
        let kind = if algorithm.full_object() {
            ChecksumType::FullObject
        } else {
            ChecksumType::Composite
        };
        let checksums = Checksums::only(algorithm, value, Some(kind));
        let etag = format!("\"{}\"", checksum::multipart_etag(&md5s));
        s.uploads.remove(&upload.0);
        s.objects.insert(
            key.to_string(),
            Stored {
                data: Bytes::from(data),
                content_type: u.content_type,
                metadata: u.metadata,
                checksums: checksums.clone(),
                etag: etag.clone(),
            },
        );
        drop(s);
        self.answered(fault, operation, checksums, etag)
    }

    async fn abort_multipart(&self, key: &str, upload: &UploadId) -> Result<(), StoreError> {
        let operation = format!("AbortMultipartUpload {key}");
        if let Some(Fault::Fail(kind) | Fault::StoreThenFail(kind)) =
            self.call(Op::Abort, key, operation.clone())
        {
            return Err(error(kind, operation));
        }
        let mut s = self.lock();
        match s.uploads.get(&upload.0) {
            Some(u) if u.key == key => {
                s.uploads.remove(&upload.0);
                Ok(())
            }
            _ => Err(error(ErrorKind::NotFound, operation)),
        }
    }

    async fn copy_object(
        &self,
        obj: &NewObject<'_>,
        from: &str,
        algorithm: Algorithm,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        let operation = format!("CopyObject {from} -> {}", obj.key);
        let fault = self.call(Op::Copy, obj.key, operation.clone());
        if let Some(Fault::Fail(kind)) = fault {
            return Err(error(kind, operation));
        }
        let mut s = self.lock();
        let Some(source) = s.objects.get(from).cloned() else {
            return Err(error(ErrorKind::NotFound, operation));
        };
        if must_not_exist && s.objects.contains_key(obj.key) {
            return Err(error(ErrorKind::Precondition, operation));
        }
        let data = match fault {
            Some(Fault::Garble) if !source.data.is_empty() => {
                let mut v = source.data.to_vec();
                v[0] ^= 0xFF;
                Bytes::from(v)
            }
            _ => source.data.clone(),
        };
        let (checksums, answered) = if self.copies_keep_checksums {
            (source.checksums.clone(), Checksums::default())
        } else {
            let value = Summer::of(algorithm, &data).value.to_base64();
            let c = Checksums::only(algorithm, value, Some(ChecksumType::FullObject));
            (c.clone(), c)
        };
        let etag = if matches!(fault, Some(Fault::Garble)) {
            format!("\"{}\"", md5_hex(&data))
        } else {
            source.etag.clone()
        };
        s.objects
            .insert(obj.key.to_string(), Stored::of(obj, data, checksums, &etag));
        drop(s);
        self.answered(fault, operation, answered, etag)
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        from: &str,
        range: (u64, u64),
    ) -> Result<Written, StoreError> {
        let operation = format!("UploadPartCopy {from} -> {key} #{number}");
        let fault = self.call(Op::PartCopy, key, operation.clone());
        if let Some(Fault::Fail(kind)) = fault {
            return Err(error(kind, operation));
        }
        let mut s = self.lock();
        let Some(body) = s.objects.get(from).and_then(|o| {
            let (a, b) = (range.0 as usize, range.1 as usize);
            (b <= o.data.len() && a < b).then(|| o.data.slice(a..b))
        }) else {
            return Err(error(ErrorKind::NotFound, operation));
        };
        let etag = format!("\"{}\"", md5_hex(&body));
        let Some(u) = s.uploads.get_mut(&upload.0).filter(|u| u.key == key) else {
            return Err(error(ErrorKind::NotFound, operation));
        };
        let value = Summer::of(u.algorithm, &body).value.to_base64();
        let algorithm = u.algorithm;
        self.add_part(u, number, body, &etag);
        drop(s);
        let answered = if self.copies_keep_checksums {
            Checksums::default()
        } else {
            Checksums::only(algorithm, value, None)
        };
        self.answered(fault, operation, answered, etag)
    }

    async fn parts_page(
        &self,
        key: &str,
        upload: &UploadId,
        from: Option<String>,
    ) -> Result<Page<ListedPart, String>, StoreError> {
        let operation = format!("ListParts {key}");
        if let Some(Fault::Fail(kind) | Fault::StoreThenFail(kind)) =
            self.call(Op::ListParts, key, operation.clone())
        {
            return Err(error(kind, operation));
        }
        // The marker is how many parts came before (the listing may repeat
        // a part number, so a number cannot say where to go on).
        let skip: usize = from.and_then(|f| f.parse().ok()).unwrap_or(0);
        let s = self.lock();
        let Some(u) = s.uploads.get(&upload.0).filter(|u| u.key == key) else {
            return Err(error(
                ErrorKind::NotFound,
                format!("{operation} NoSuchUpload"),
            ));
        };
        let parts: Vec<ListedPart> = u
            .parts
            .iter()
            .skip(skip)
            .map(|(n, body, etag)| ListedPart {
                number: *n,
                etag: etag.clone(),
                size: body.len() as u64,
            })
            .collect();
        let more = parts.len() > PAGE;
        let items: Vec<ListedPart> = parts.into_iter().take(PAGE).collect();
        let next = more.then(|| (skip + items.len()).to_string());
        Ok(Page { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::interface::ObjectOptions;

    fn obj<'a>(key: &'a str, options: &'a ObjectOptions) -> NewObject<'a> {
        NewObject {
            key,
            content_type: "image/jpeg",
            metadata: &[],
            options,
        }
    }

    fn sum(alg: Algorithm, data: &[u8]) -> BodyChecksum {
        BodyChecksum {
            algorithm: alg,
            value: Summer::of(alg, data).value.to_base64(),
        }
    }

    #[tokio::test]
    async fn it_checks_bodies_and_conditions_as_a_server_does() {
        let s = MemoryStore::new();
        let o = ObjectOptions::default();
        let good = sum(Algorithm::Crc64nvme, b"abc");
        let w = s
            .put_object(&obj("k", &o), Bytes::from_static(b"abc"), &good, true)
            .await
            .unwrap();
        assert_eq!(w.checksums.crc64nvme.as_deref(), Some(good.value.as_str()));
        assert_eq!(
            w.etag.as_deref(),
            Some(format!("\"{}\"", md5_hex(b"abc")).as_str())
        );
        let again = s
            .put_object(&obj("k", &o), Bytes::from_static(b"abc"), &good, true)
            .await;
        assert_eq!(again.unwrap_err().kind(), ErrorKind::Precondition);
        let bad = s
            .put_object(&obj("j", &o), Bytes::from_static(b"abd"), &good, false)
            .await;
        assert_eq!(bad.unwrap_err().kind(), ErrorKind::Checksum);
        assert!(s.object("j").is_none());
        assert_eq!(s.head("k").await.unwrap().unwrap().size, 3);
    }

    #[tokio::test]
    async fn multipart_objects_combine_their_parts_and_resent_parts_can_list_twice() {
        let s = MemoryStore::keeping_resent_parts();
        let o = ObjectOptions::default();
        let alg = Algorithm::Crc64nvme;
        let id = s.create_multipart(&obj("v", &o), alg).await.unwrap();
        let mut done = Vec::new();
        for (n, body) in [(1u32, &b"part one"[..]), (2, b"part two"), (2, b"part two")] {
            let w = s
                .upload_part("v", &id, n, Bytes::copy_from_slice(body), &sum(alg, body))
                .await
                .unwrap();
            done.retain(|p: &DonePart| p.number != n);
            done.push(DonePart {
                number: n,
                etag: w.etag.unwrap(),
                checksum: sum(alg, body).value,
            });
        }
        let listed = s.list_parts("v", &id).await.unwrap().unwrap();
        assert_eq!(
            listed.iter().map(|p| p.number).collect::<Vec<_>>(),
            [1, 2, 2]
        );
        let whole = sum(alg, b"part onepart two").value;
        let w = s
            .complete_multipart("v", &id, &done, alg, Some(&whole), true)
            .await
            .unwrap();
        assert_eq!(w.checksums.crc64nvme, Some(whole));
        assert_eq!(
            s.object("v").unwrap(),
            Bytes::from_static(b"part onepart two")
        );
        assert!(
            s.list_parts("v", &id).await.unwrap().is_none(),
            "completed: gone"
        );
        assert_eq!(
            s.abort_multipart("v", &id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn it_passes_the_store_conformance_suite() {
        crate::store::conformance::suite(&MemoryStore::new(), "p/", true)
            .await
            .unwrap();
        crate::store::conformance::suite(&MemoryStore::copying_as_seaweedfs(), "", false)
            .await
            .unwrap();
    }
}
