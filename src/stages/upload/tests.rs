//! The engine against the in-memory store: uploads and their proofs,
//! resume, give-up and abort, refused writes and panics, without a server.

use std::os::unix::fs::MetadataExt;

use super::*;
use crate::checksum::{Algorithm, Summer};
use crate::digest::Digests;
use crate::journal::{PartRow, UploadRow};
use crate::stages::verify::How;
use crate::store::memory::{Fault, MemoryStore, Op};
use crate::store::{ErrorKind, ObjectOptions, ObjectStore};
use crate::types::UploadId;

const MIB: usize = 1 << 20;

fn settings(algorithm: Algorithm) -> UploadSettings {
    UploadSettings {
        algorithm,
        concurrency: 4,
        max_memory: 32 << 20,
        multipart_threshold: 8 << 20,
        part_size: 5 << 20,
        large_files: 2,
        hash_threads: 2,
        options: ObjectOptions::default(),
        copy_limit: crate::limits::MAX_COPY_OBJECT,
    }
}

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Source files on disk and their jobs.
struct Tree {
    dir: tempfile::TempDir,
    jobs: Vec<Job>,
}

impl Tree {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            jobs: Vec::new(),
        }
    }

    fn file(mut self, rel: &str, content: &[u8]) -> Self {
        let path = self.dir.path().join(rel);
        std::fs::write(&path, content).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        self.jobs.push(Job {
            object: self.jobs.len() as u32,
            rel: rel.into(),
            key: format!("p/{rel}"),
            content_type: "image/jpeg".into(),
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            digests: None,
            must_not_exist: true,
            stray_upload: false,
            resume: None,
            copy: None,
        });
        self
    }

    /// A duplicate of job `source`'s file, made by copying its object
    /// (uploaded by the same run when `uploaded_now`).
    fn copy_of(mut self, rel: &str, source: usize, uploaded_now: bool) -> Self {
        let content = std::fs::read(self.dir.path().join(&*self.jobs[source].rel)).unwrap();
        self = self.file(rel, &content);
        let from = CopyFrom {
            object: source as u32,
            key: self.jobs[source].key.clone(),
            uploaded_now,
        };
        self.jobs.last_mut().unwrap().copy = Some(from);
        self
    }

    async fn upload(&self, store: &MemoryStore, s: &UploadSettings) -> Outcome {
        run(
            store,
            self.dir.path(),
            self.jobs.clone(),
            s,
            Transfer::default(),
            None,
            Stop::default(),
        )
        .await
    }
}

fn how(o: &Outcome, object: u32) -> How {
    o.uploaded
        .iter()
        .find(|u| u.object == object)
        .unwrap_or_else(|| panic!("object {object} not uploaded: {o:?}"))
        .verification
}

fn error<'o>(o: &'o Outcome, path: &str) -> &'o str {
    &o.failed
        .iter()
        .find(|f| &*f.path == path)
        .unwrap_or_else(|| panic!("{path} did not fail: {o:?}"))
        .error
}

#[tokio::test]
async fn small_and_large_files_arrive_and_are_proven_by_the_answer() {
    let big = data(1, 12 * MIB);
    let t = Tree::new().file("a.jpg", b"small").file("v.mp4", &big);
    for alg in [Algorithm::Crc64nvme, Algorithm::Sha256, Algorithm::Crc32c] {
        let store = MemoryStore::new();
        let o = t.upload(&store, &settings(alg)).await;
        assert!(o.failed.is_empty(), "{alg:?}: {o:?}");
        assert_eq!(o.interrupted, 0);
        assert_eq!(how(&o, 0), How::ChecksumInResponse, "{alg:?}");
        assert_eq!(how(&o, 1), How::ChecksumInResponse, "{alg:?}");
        assert_eq!(store.object("p/v.mp4").unwrap(), big);
        assert_eq!(store.object("p/a.jpg").unwrap().as_ref(), b"small");
        assert_eq!(
            Digests::of_bytes(&store.object("p/v.mp4").unwrap()),
            Digests::of_bytes(&big)
        );
    }
}

#[tokio::test]
async fn without_checksums_the_etag_proves_and_a_garbled_object_fails() {
    let t = Tree::new()
        .file("a.jpg", b"small")
        .file("v.mp4", &data(2, 11 * MIB));
    let store = MemoryStore::without_checksums();
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert_eq!((how(&o, 0), how(&o, 1)), (How::Etag, How::Etag), "{o:?}");
    assert!(
        store.log().iter().any(|l| l == "HeadObject p/a.jpg"),
        "HEAD asked"
    );

    // The server keeps other bytes than it was sent, and says so.
    let store = MemoryStore::new();
    store.fault(Op::Put, "a.jpg", Fault::Garble, 1);
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(error(&o, "a.jpg").contains("CRC64NVME"), "{o:?}");
    assert_eq!(how(&o, 1), How::ChecksumInResponse);
}

#[tokio::test]
async fn an_object_that_appeared_under_the_key_is_not_replaced() {
    let t = Tree::new().file("a.jpg", b"ours");
    let store = MemoryStore::new();
    store.put_raw("p/a.jpg", b"theirs", &[], Default::default());
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    let e = error(&o, "a.jpg");
    assert!(e.contains("appeared under this key"), "{e}");
    assert_eq!(store.object("p/a.jpg").unwrap().as_ref(), b"theirs");
}

#[tokio::test]
async fn a_panicked_upload_is_a_failure_of_its_file_and_the_rest_carries_on() {
    let t = Tree::new()
        .file("a.jpg", b"one")
        .file("b.jpg", b"two")
        .file("v.mp4", &data(3, 9 * MIB));
    let store = MemoryStore::new();
    store.fault(Op::Put, "b.jpg", Fault::Panic, 1);
    store.fault(Op::Create, "v.mp4", Fault::Panic, 1);
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert_eq!(o.interrupted, 0, "a panic is not an interruption: {o:?}");
    assert!(error(&o, "b.jpg").contains("panicked: in-memory store: injected panic"));
    assert!(error(&o, "v.mp4").contains("panicked"));
    assert_eq!(how(&o, 0), How::ChecksumInResponse);
}

/// A 3-part file whose upload an earlier run began: parts 1 and 2 on the
/// server (part 2 sent twice, which SeaweedFS lists twice), only part 1
/// recorded. `part2` is what the server holds as part 2.
async fn begun_with(store: &MemoryStore, content: &[u8], part2: &[u8], t: &mut Tree) -> UploadId {
    let alg = Algorithm::Crc64nvme;
    let opts = ObjectOptions::default();
    let obj = crate::store::NewObject {
        key: "p/v.mp4",
        content_type: "video/mp4",
        metadata: &[],
        options: &opts,
    };
    let id = store.create_multipart(&obj, alg).await.unwrap();
    let mut rows = Vec::new();
    for (n, body) in [(1u32, &content[..5 * MIB]), (2, part2), (2, part2)] {
        let sum = Summer::of(alg, body);
        let check = crate::store::BodyChecksum {
            algorithm: alg,
            value: sum.value.to_base64(),
        };
        let w = store
            .upload_part(
                "p/v.mp4",
                &id,
                n,
                bytes::Bytes::copy_from_slice(body),
                &check,
            )
            .await
            .unwrap();
        if n == 1 {
            rows.push(PartRow {
                number: 1,
                size: body.len() as u64,
                checksum: check.value,
                crc64: match Summer::of(Algorithm::Crc64nvme, body).value {
                    crate::checksum::Value::Crc64(v) => v,
                    _ => unreachable!(),
                },
                etag: w.etag.unwrap(),
            });
        }
    }
    let job = &mut t.jobs[0];
    job.resume = Some(UploadRow {
        key: job.key.clone(),
        path: job.rel.to_string(),
        upload_id: id.clone(),
        part_size: 5 << 20,
        size: job.size,
        mtime_ns: job.mtime_ns,
        sha256: Some(Digests::of_bytes(content).sha256),
        started_at: 1,
        parts: rows,
    });
    id
}

async fn begun(store: &MemoryStore, content: &[u8], t: &mut Tree) -> UploadId {
    begun_with(store, content, &content[5 * MIB..10 * MIB], t).await
}

fn sent_parts(store: &MemoryStore, since: usize) -> Vec<String> {
    let mut sent: Vec<String> = store.log()[since..]
        .iter()
        .filter(|l| l.starts_with("UploadPart") || l.starts_with("Create"))
        .cloned()
        .collect();
    sent.sort();
    sent
}

#[tokio::test]
async fn a_resumed_upload_sends_only_the_parts_it_cannot_reuse() {
    let content = data(4, 12 * MIB);
    let mut t = Tree::new().file("v.mp4", &content);
    let store = MemoryStore::keeping_resent_parts();
    let id = begun(&store, &content, &mut t).await;
    let before = store.log().len();
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(store.object("p/v.mp4").unwrap(), content);
    // Part 1 recorded, part 2 on the server though never recorded (its
    // MD5 is the ETag listed): both reused; only part 3 sent, no new upload.
    assert_eq!(sent_parts(&store, before), ["UploadPart p/v.mp4 #3"]);
    assert!(!store.uploads().contains(&id), "completed");
}

#[tokio::test]
async fn an_unrecorded_part_with_other_bytes_is_sent_again() {
    let content = data(4, 12 * MIB);
    let mut t = Tree::new().file("v.mp4", &content);
    let store = MemoryStore::keeping_resent_parts();
    begun_with(&store, &content, &data(99, 5 * MIB), &mut t).await;
    let before = store.log().len();
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(store.object("p/v.mp4").unwrap(), content);
    assert_eq!(
        sent_parts(&store, before),
        ["UploadPart p/v.mp4 #2", "UploadPart p/v.mp4 #3"]
    );
}

#[tokio::test]
async fn a_lost_answer_is_not_a_failure_when_the_object_is_ours() {
    let t = Tree::new()
        .file("a.jpg", b"small")
        .file("v.mp4", &data(7, 11 * MIB));
    let store = MemoryStore::new();
    // Stored, then the retry after the lost answer is refused: 412 for the
    // PUT (the key is taken now), 404 for the completed upload.
    store.fault(
        Op::Put,
        "a.jpg",
        Fault::StoreThenFail(ErrorKind::Precondition),
        1,
    );
    store.fault(
        Op::Complete,
        "v.mp4",
        Fault::StoreThenFail(ErrorKind::NotFound),
        1,
    );
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(
        (how(&o, 0), how(&o, 1)),
        (How::ChecksumInHead, How::ChecksumInHead)
    );
    assert!(
        !store
            .log()
            .iter()
            .any(|l| l.starts_with("AbortMultipartUpload")),
        "a completed upload is not aborted"
    );
    // Another client's object under the key is still a refusal.
    let store = MemoryStore::new();
    store.put_raw("p/a.jpg", b"other", &[], Default::default());
    store.fault(Op::Put, "a.jpg", Fault::Fail(ErrorKind::Precondition), 1);
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(
        error(&o, "a.jpg").contains("appeared under this key"),
        "{o:?}"
    );
}

#[tokio::test]
async fn an_upload_that_completed_late_is_not_sent_again() {
    let content = data(8, 12 * MIB);
    let mut t = Tree::new().file("v.mp4", &content);
    let store = MemoryStore::new();
    let id = begun(&store, &content, &mut t).await;
    // A killed run's CompleteMultipartUpload went through after all.
    store.abort_multipart("p/v.mp4", &id).await.unwrap();
    let sum = Summer::of(Algorithm::Crc64nvme, &content).value.to_base64();
    store.put_raw(
        "p/v.mp4",
        &content,
        &[],
        crate::store::Checksums::only(Algorithm::Crc64nvme, sum, None),
    );
    let before = store.log().len();
    t.jobs[0].must_not_exist = false;
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert_eq!(how(&o, 0), How::ChecksumInHead, "{o:?}");
    assert!(sent_parts(&store, before).is_empty(), "nothing sent again");
}

#[tokio::test]
async fn a_changed_file_or_a_forgotten_upload_starts_over() {
    let content = data(5, 12 * MIB);
    let mut t = Tree::new().file("v.mp4", &content);
    let store = MemoryStore::new();
    let id = begun(&store, &content, &mut t).await;
    // The journal's file is not this one: its upload is aborted.
    if let Some(r) = t.jobs[0].resume.as_mut() {
        r.sha256 = Some(Digests::of_bytes(b"other").sha256);
    }
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert!(
        store
            .log()
            .contains(&"AbortMultipartUpload p/v.mp4".to_string())
    );
    assert!(!store.uploads().contains(&id));
    assert_eq!(store.object("p/v.mp4").unwrap(), content);

    // The server no longer knows the upload: a new one, nothing aborted.
    let store = MemoryStore::new();
    let mut t = Tree::new().file("v.mp4", &content);
    let id = begun(&store, &content, &mut t).await;
    store.abort_multipart("p/v.mp4", &id).await.unwrap();
    t.jobs[0].must_not_exist = false;
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(store.object("p/v.mp4").unwrap(), content);
}

#[tokio::test]
async fn a_refused_part_aborts_the_upload_and_a_transient_one_keeps_it() {
    let t = Tree::new().file("v.mp4", &data(6, 12 * MIB));
    let store = MemoryStore::new();
    store.fault(Op::Part, "v.mp4", Fault::Fail(ErrorKind::Checksum), 1);
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(error(&o, "v.mp4").contains("Checksum"), "{o:?}");
    assert!(
        store.uploads().is_empty(),
        "aborted: it would never complete"
    );

    let store = MemoryStore::new();
    store.fault(Op::Part, "v.mp4", Fault::Fail(ErrorKind::Transient), 1);
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(error(&o, "v.mp4").contains("Transient"), "{o:?}");
    assert_eq!(store.uploads().len(), 1, "kept for the next run to resume");
    assert!(store.object("p/v.mp4").is_none());
}

#[tokio::test]
async fn a_file_that_changes_after_planning_is_tried_again_then_reported() {
    let mut t = Tree::new().file("a.jpg", b"now");
    // Planning hashed other content: the upload must not go ahead.
    t.jobs[0].digests = Some(Digests::of_bytes(b"then"));
    let store = MemoryStore::new();
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    let e = error(&o, "a.jpg");
    assert!(e.contains("changed since it was hashed"), "{e}");
    assert!(e.contains("retried by the next run"), "{e}");
    assert!(store.object("p/a.jpg").is_none());
    let puts = store
        .log()
        .iter()
        .filter(|l| l.starts_with("PutObject"))
        .count();
    assert_eq!(puts, 0, "read twice, never sent");
}

#[tokio::test]
async fn a_stop_request_starts_nothing_and_counts_the_rest_as_interrupted() {
    let t = Tree::new().file("a.jpg", b"one").file("b.jpg", b"two");
    let store = MemoryStore::new();
    let stop = Stop::default();
    stop.request();
    let o = run(
        &store,
        t.dir.path(),
        t.jobs.clone(),
        &settings(Algorithm::Crc64nvme),
        Transfer::default(),
        None,
        stop,
    )
    .await;
    assert_eq!((o.uploaded.len(), o.failed.len(), o.interrupted), (0, 0, 2));
    assert!(store.log().is_empty());
}

#[tokio::test]
async fn a_large_file_dedup_did_not_hash_is_read_once_and_proven_by_its_checksum() {
    let big = data(11, 17 * MIB);
    let t = Tree::new().file("v.mp4", &big);
    let store = MemoryStore::new();
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(o.bytes_read, big.len() as u64, "every byte read once");
    assert_eq!(how(&o, 0), How::ChecksumInResponse);
    assert_eq!(store.object("p/v.mp4").unwrap(), big);
    let head = store.head("p/v.mp4").await.unwrap().unwrap();
    assert_eq!(
        head.metadata.get("source-path").map(String::as_str),
        Some("v.mp4")
    );
    assert!(
        !head.metadata.contains_key("sha256"),
        "the SHA-256 was not known when the upload began: {:?}",
        head.metadata
    );

    // Hashed by dedup: the SHA-256 goes in the metadata, and the engine
    // reads the file once (dedup's read is its own).
    let mut t = Tree::new().file("v.mp4", &big);
    t.jobs[0].digests = Some(Digests::of_bytes(&big));
    let store = MemoryStore::new();
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(o.bytes_read, big.len() as u64);
    let head = store.head("p/v.mp4").await.unwrap().unwrap();
    assert_eq!(
        head.metadata.get("sha256"),
        Some(&Digests::of_bytes(&big).sha256.to_hex())
    );
}

#[tokio::test]
async fn an_upload_begun_without_the_sha256_resumes_and_rereads_only_to_hash() {
    let content = data(12, 12 * MIB);
    let mut t = Tree::new().file("v.mp4", &content);
    let store = MemoryStore::keeping_resent_parts();
    let id = begun(&store, &content, &mut t).await;
    if let Some(r) = t.jobs[0].resume.as_mut() {
        r.sha256 = None;
    }
    let before = store.log().len();
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(store.object("p/v.mp4").unwrap(), content);
    assert_eq!(sent_parts(&store, before), ["UploadPart p/v.mp4 #3"]);
    assert!(!store.uploads().contains(&id), "completed");
    // Parts 1 and 2 read again to hash (1 recorded, 2 recovered from the
    // listing), part 3 read to send: part 2 twice.
    assert_eq!(o.bytes_read, (12 + 5) as u64 * MIB as u64);

    // The file changed under the same size and mtime since part 1 was
    // sent: its bytes no longer have the recorded CRC64NVME.
    let mut t = Tree::new().file("v.mp4", &content);
    let store = MemoryStore::keeping_resent_parts();
    begun(&store, &content, &mut t).await;
    let job = &mut t.jobs[0];
    if let Some(r) = job.resume.as_mut() {
        r.sha256 = None;
        r.parts[0].crc64 ^= 1;
    }
    let before = store.log().len();
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    // A change: the upload is aborted, and the second try of the run
    // sends the whole file in a new upload.
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(store.object("p/v.mp4").unwrap(), content);
    let log = &store.log()[before..];
    assert!(
        log.contains(&"AbortMultipartUpload p/v.mp4".to_string()),
        "{log:?}"
    );
    // (Part 3 may have gone out in the first try, before the change
    // was seen.)
    let mut sent = sent_parts(&store, before);
    sent.dedup();
    assert_eq!(
        sent,
        [
            "CreateMultipartUpload p/v.mp4",
            "UploadPart p/v.mp4 #1",
            "UploadPart p/v.mp4 #2",
            "UploadPart p/v.mp4 #3"
        ]
    );
}

#[tokio::test]
async fn an_upload_a_killed_run_never_recorded_is_aborted() {
    let content = data(13, 12 * MIB);
    for stray in [false, true] {
        let mut t = Tree::new().file("v.mp4", &content);
        let store = MemoryStore::new();
        // CreateMultipartUpload went through; the run died before the
        // journal heard its answer.
        let orphan = store
            .create_multipart(
                &t.jobs[0].new_object(&[], &ObjectOptions::default()),
                Algorithm::Crc64nvme,
            )
            .await
            .unwrap();
        t.jobs[0].stray_upload = stray;
        let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
        assert!(o.failed.is_empty(), "{o:?}");
        assert_eq!(store.object("p/v.mp4").unwrap(), content);
        assert_eq!(
            store.uploads().contains(&orphan),
            !stray,
            "stray_upload {stray}: {:?}",
            store.uploads()
        );
    }
}

/// The upload of `object`, which must have succeeded.
fn made(o: &Outcome, object: u32) -> &Uploaded {
    o.uploaded
        .iter()
        .find(|u| u.object == object)
        .unwrap_or_else(|| panic!("object {object} not made: {o:?}"))
}

fn calls(store: &MemoryStore, prefix: &str) -> usize {
    store.log().iter().filter(|l| l.starts_with(prefix)).count()
}

#[tokio::test]
async fn duplicates_are_copied_in_the_bucket_once_their_source_is_uploaded() {
    let big = data(21, 12 * MIB);
    let t = Tree::new()
        .file("a.jpg", b"the same bytes")
        .file("v.mp4", &big)
        .copy_of("b.jpg", 0, true)
        .copy_of("w.mp4", 1, true);
    for alg in [Algorithm::Crc64nvme, Algorithm::Sha256, Algorithm::Crc32c] {
        let store = MemoryStore::new();
        let o = t.upload(&store, &settings(alg)).await;
        assert!(o.failed.is_empty(), "{alg:?}: {o:?}");
        // Each duplicate has its own object with the bytes, made by a copy:
        // no PutObject or part was sent for it.
        assert_eq!(store.object("p/b.jpg").unwrap().as_ref(), b"the same bytes");
        assert_eq!(store.object("p/w.mp4").unwrap(), big);
        assert!(made(&o, 2).copied && made(&o, 3).copied, "{o:?}");
        assert!(!made(&o, 0).copied && !made(&o, 1).copied);
        assert_eq!(calls(&store, "PutObject p/b.jpg"), 0);
        assert_eq!(calls(&store, "CreateMultipartUpload p/w.mp4"), 0);
        assert_eq!(calls(&store, "CopyObject p/a.jpg -> p/b.jpg"), 1);
        assert_eq!(calls(&store, "CopyObject p/v.mp4 -> p/w.mp4"), 1);
        // Proven by the checksum the copy's answer carries (AWS's way),
        // where the file's digests can be compared with it; a CRC32C only
        // by the source's HEAD showing the same value.
        let expected = if alg == Algorithm::Crc32c {
            How::ChecksumInHead
        } else {
            How::ChecksumInResponse
        };
        assert_eq!(made(&o, 2).verification, expected, "{alg:?}");
        // The copy carries its own path, not its source's.
        let head = store.head("p/b.jpg").await.unwrap().unwrap();
        assert_eq!(head.metadata["source-path"], "b.jpg");
        assert_eq!(
            head.metadata["sha256"],
            Digests::of_bytes(b"the same bytes").sha256.to_hex()
        );
    }
}

#[tokio::test]
async fn copies_that_keep_the_source_checksum_are_proven_by_head() {
    // SeaweedFS: the copy answers without a checksum and keeps the
    // source's; a composite SHA-256 or a CRC32C cannot be compared with
    // the digests, so the source's HEAD must show the same value.
    let big = data(22, 12 * MIB);
    let t = Tree::new()
        .file("a.jpg", b"same")
        .file("v.mp4", &big)
        .copy_of("b.jpg", 0, true)
        .copy_of("w.mp4", 1, true);
    for alg in [Algorithm::Crc64nvme, Algorithm::Sha256, Algorithm::Crc32c] {
        let store = MemoryStore::copying_as_seaweedfs();
        let o = t.upload(&store, &settings(alg)).await;
        assert!(o.failed.is_empty(), "{alg:?}: {o:?}");
        assert!(made(&o, 2).copied && made(&o, 3).copied, "{alg:?}: {o:?}");
        assert_eq!(made(&o, 3).verification, How::ChecksumInHead, "{alg:?}");
        let asked_source = calls(&store, "HeadObject p/v.mp4") > 0;
        assert_eq!(
            asked_source,
            alg == Algorithm::Sha256 || alg == Algorithm::Crc32c,
            "{alg:?}: only a checksum the digests cannot decide needs the source"
        );
    }
}

#[tokio::test]
async fn a_server_that_cannot_copy_gets_the_duplicates_uploaded_instead() {
    let t = Tree::new()
        .file("a.jpg", b"same")
        .copy_of("b.jpg", 0, true)
        .copy_of("c.jpg", 0, true);
    // 501 NotImplemented: after the first, no copy is tried (one at a
    // time here, so that the second starts after the first's answer).
    let store = MemoryStore::new();
    store.fault(Op::Copy, "", Fault::Fail(ErrorKind::Unsupported), 1);
    let mut one_at_a_time = settings(Algorithm::Crc64nvme);
    one_at_a_time.concurrency = 1;
    let o = t.upload(&store, &one_at_a_time).await;
    assert!(o.failed.is_empty(), "{o:?}");
    for (object, key) in [(1, "p/b.jpg"), (2, "p/c.jpg")] {
        assert_eq!(store.object(key).unwrap().as_ref(), b"same");
        assert!(!made(&o, object).copied, "{key} uploaded: {o:?}");
    }
    assert_eq!(calls(&store, "CopyObject"), 1, "{:?}", store.log());

    // A copy that holds other bytes is replaced by an upload.
    let store = MemoryStore::new();
    store.fault(Op::Copy, "b.jpg", Fault::Garble, 1);
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(store.object("p/b.jpg").unwrap().as_ref(), b"same");
    assert!(!made(&o, 1).copied && made(&o, 2).copied, "{o:?}");

    // A copy whose source is gone (an object already in place that was
    // deleted since): uploaded too.
    let t = Tree::new()
        .file("a.jpg", b"same")
        .copy_of("b.jpg", 0, false);
    let store = MemoryStore::new();
    let only_copy = Tree {
        dir: t.dir,
        jobs: vec![t.jobs[1].clone()],
    };
    let o = only_copy
        .upload(&store, &settings(Algorithm::Crc64nvme))
        .await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert_eq!(store.object("p/b.jpg").unwrap().as_ref(), b"same");
    assert_eq!(calls(&store, "PutObject p/b.jpg"), 1);
}

#[tokio::test]
async fn a_duplicate_whose_source_failed_is_uploaded_from_its_own_file() {
    let t = Tree::new().file("a.jpg", b"same").copy_of("b.jpg", 0, true);
    let store = MemoryStore::new();
    store.fault(Op::Put, "a.jpg", Fault::Fail(ErrorKind::Fatal), 1);
    let o = t.upload(&store, &settings(Algorithm::Crc64nvme)).await;
    assert!(!error(&o, "a.jpg").is_empty());
    assert_eq!(store.object("p/b.jpg").unwrap().as_ref(), b"same");
    assert!(!made(&o, 1).copied);
    assert_eq!(calls(&store, "CopyObject"), 0, "{:?}", store.log());
}

#[tokio::test]
async fn copies_above_the_limit_go_in_parts() {
    let big = data(23, 12 * MIB);
    let t = Tree::new().file("v.mp4", &big).copy_of("w.mp4", 0, true);
    let mut s = settings(Algorithm::Crc64nvme);
    s.copy_limit = 6 << 20;
    let store = MemoryStore::new();
    let o = t.upload(&store, &s).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert!(made(&o, 1).copied);
    assert_eq!(store.object("p/w.mp4").unwrap(), big);
    assert_eq!(calls(&store, "UploadPartCopy p/v.mp4 -> p/w.mp4"), 2);
    assert_eq!(calls(&store, "CopyObject"), 0);
    assert!(store.uploads().is_empty(), "nothing left open");

    // A server that gives no checksum for copied parts (Garage): with
    // CRC64NVME the file's whole value, which the server checks at
    // completion, stands for them; with SHA-256 (composite) nothing can,
    // so the copy is abandoned (and aborted) and the file uploaded.
    let store = MemoryStore::copying_as_seaweedfs();
    let o = t.upload(&store, &s).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert!(made(&o, 1).copied, "{o:?}");
    assert_eq!(store.object("p/w.mp4").unwrap(), big);
    let mut sha = s.clone();
    sha.algorithm = Algorithm::Sha256;
    let store = MemoryStore::copying_as_seaweedfs();
    let o = t.upload(&store, &sha).await;
    assert!(o.failed.is_empty(), "{o:?}");
    assert!(!made(&o, 1).copied, "{o:?}");
    assert_eq!(store.object("p/w.mp4").unwrap(), big);
    assert!(store.uploads().is_empty(), "the copy's upload aborted");
}
