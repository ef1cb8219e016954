//! One suite of store behaviour, run against the in-memory store (unit
//! tests) and against the real server (`tests/it/store_conformance.rs`), so
//! the two cannot drift: what the stages rely on a store for, checked the
//! same way on both. Conditional writes, checksums and their types, the
//! metadata an object keeps, listing order and pagination, multipart
//! uploads and ListParts, aborts, copies and copies in parts, downloads,
//! and the errors each of those gives.
//!
//! Built for the tests only (`test` or the `test-support` feature).

use bytes::Bytes;

use super::error::ErrorKind;
use super::interface::{
    BodyChecksum, ChecksumType, DonePart, NewObject, ObjectOptions, ObjectStore,
};
use crate::checksum::{self, Algorithm, Summer};
use crate::digest::Digests;

/// What went wrong, in words.
pub type Failure = String;

fn fail<T>(what: impl Into<String>) -> Result<T, Failure> {
    Err(what.into())
}

/// `cond` or a failure saying `what`.
fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), Failure> {
    if cond { Ok(()) } else { fail(what()) }
}

fn sum(algorithm: Algorithm, data: &[u8]) -> BodyChecksum {
    BodyChecksum {
        algorithm,
        value: Summer::of(algorithm, data).value.to_base64(),
    }
}

fn bytes(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

const MIB: usize = 1 << 20;

/// Runs every check against `store`, under `prefix` (empty, or ending in
/// `/`; the suite writes only there). `listing_pages`: also check a listing
/// of more than one page (1,001 objects).
pub async fn suite<S: ObjectStore>(
    store: &S,
    prefix: &str,
    listing_pages: bool,
) -> Result<(), Failure> {
    puts(store, prefix).await?;
    listing(store, prefix, listing_pages).await?;
    multipart(store, prefix).await?;
    copies(store, prefix).await?;
    Ok(())
}

/// PutObject: the checksum validated, the object's size, type, metadata
/// and checksum as HeadObject gives them, If-None-Match, absent objects.
async fn puts<S: ObjectStore>(store: &S, prefix: &str) -> Result<(), Failure> {
    let key = format!("{prefix}put/a b+c é.jpg");
    let body = bytes(1, 3000);
    let options = ObjectOptions {
        cache_control: Some("max-age=60".into()),
        ..ObjectOptions::default()
    };
    let meta = [("sha256", Digests::of_bytes(&body).sha256.to_hex())];
    let obj = NewObject {
        key: &key,
        content_type: "image/jpeg",
        metadata: &meta,
        options: &options,
    };
    // A body that does not match its checksum is refused and not kept.
    let wrong = sum(Algorithm::Crc64nvme, b"other bytes");
    match store.put_object(&obj, body.clone(), &wrong, true).await {
        Err(e) if e.kind() == ErrorKind::Checksum => {}
        other => return fail(format!("a wrong checksum: {other:?}, not a checksum error")),
    }
    check(
        store.head(&key).await.map_err(|e| e.to_string())?.is_none(),
        || "the refused body was kept".into(),
    )?;
    let crc = sum(Algorithm::Crc64nvme, &body);
    store
        .put_object(&obj, body.clone(), &crc, true)
        .await
        .map_err(|e| format!("PutObject: {e}"))?;
    let head = store
        .head(&key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("HeadObject found nothing after PutObject")?;
    check(head.size == body.len() as u64, || {
        format!("size {}", head.size)
    })?;
    check(head.content_type.as_deref() == Some("image/jpeg"), || {
        format!("content type {:?}", head.content_type)
    })?;
    check(head.metadata.get("sha256") == Some(&meta[0].1), || {
        format!("metadata {:?}", head.metadata)
    })?;
    check(
        head.checksums.crc64nvme.as_deref() == Some(crc.value.as_str()),
        || format!("checksums {:?}", head.checksums),
    )?;
    check(
        head.etag.as_deref().map(|e| e.trim_matches('"')) == Some(&checksum::md5_hex(&body)),
        || format!("ETag {:?}", head.etag),
    )?;
    // If-None-Match: the key is taken.
    match store.put_object(&obj, body.clone(), &crc, true).await {
        Err(e) if e.kind() == ErrorKind::Precondition => {}
        other => return fail(format!("If-None-Match on a taken key: {other:?}")),
    }
    // Without it, the object is replaced.
    let other = bytes(2, 10);
    store
        .put_object(&obj, other.clone(), &sum(Algorithm::Sha256, &other), false)
        .await
        .map_err(|e| format!("PutObject over an object: {e}"))?;
    let (len, sha) = store
        .download(&key, |_| Ok(()))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("GetObject found nothing")?;
    check((len, sha) == (10, Digests::of_bytes(&other).sha256), || {
        format!("the replaced object holds {len} bytes")
    })?;
    // What is not there.
    let missing = format!("{prefix}put/missing.jpg");
    check(
        store
            .head(&missing)
            .await
            .map_err(|e| e.to_string())?
            .is_none(),
        || "HeadObject of a missing key".into(),
    )?;
    check(
        store
            .download(&missing, |_| Ok(()))
            .await
            .map_err(|e| e.to_string())?
            .is_none(),
        || "GetObject of a missing key".into(),
    )
}

/// ListObjectsV2: every key under the prefix, in key order, with sizes,
/// over pages.
async fn listing<S: ObjectStore>(store: &S, prefix: &str, pages: bool) -> Result<(), Failure> {
    let base = format!("{prefix}list/");
    let n = if pages { 1001 } else { 5 };
    let mut keys: Vec<String> = (0..n).map(|i| format!("{base}k{i:04}.png")).collect();
    keys.push(format!("{base}sub/z.png"));
    keys.push(format!("{base}a.png"));
    for (i, k) in keys.iter().enumerate() {
        let body = bytes(i as u8, 1 + i % 7);
        let obj = NewObject {
            key: k,
            content_type: "image/png",
            metadata: &[],
            options: &ObjectOptions::default(),
        };
        store
            .put_object(&obj, body.clone(), &sum(Algorithm::Crc64nvme, &body), false)
            .await
            .map_err(|e| format!("PutObject {k}: {e}"))?;
    }
    let mut listed = Vec::new();
    let count = store
        .list(&base, |k, size| listed.push((k.to_string(), size)))
        .await
        .map_err(|e| e.to_string())?;
    let mut want: Vec<(String, u64)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), (1 + i % 7) as u64))
        .collect();
    want.sort();
    check(count == want.len() as u64 && listed == want, || {
        format!(
            "listed {count} keys, {} expected; first difference at {:?}",
            want.len(),
            listed.iter().zip(&want).position(|(a, b)| a != b)
        )
    })
}

/// Multipart: a full-object CRC64NVME upload, ListParts, the completion
/// checking the whole checksum, the object's checksum type; an abort.
async fn multipart<S: ObjectStore>(store: &S, prefix: &str) -> Result<(), Failure> {
    let key = format!("{prefix}multi/v.mp4");
    let parts = [bytes(3, 5 * MIB), bytes(4, 1024)];
    let obj = NewObject {
        key: &key,
        content_type: "video/mp4",
        metadata: &[],
        options: &ObjectOptions::default(),
    };
    let id = store
        .create_multipart(&obj, Algorithm::Crc64nvme)
        .await
        .map_err(|e| format!("CreateMultipartUpload: {e}"))?;
    let open = store
        .list_uploads(prefix)
        .await
        .map_err(|e| e.to_string())?;
    check(
        open.iter().any(|u| u.upload_id == id && u.key == key),
        || format!("ListMultipartUploads does not show the upload: {open:?}"),
    )?;
    let mut done = Vec::new();
    let mut sums = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let s = sum(Algorithm::Crc64nvme, p);
        let w = store
            .upload_part(&key, &id, i as u32 + 1, p.clone(), &s)
            .await
            .map_err(|e| format!("UploadPart {}: {e}", i + 1))?;
        done.push(DonePart {
            number: i as u32 + 1,
            etag: w.etag.ok_or("UploadPart gave no ETag")?,
            checksum: s.value.clone(),
        });
        sums.push(Summer::of(Algorithm::Crc64nvme, p));
    }
    let listed = store
        .list_parts(&key, &id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("ListParts does not know the upload")?;
    check(
        listed.len() == 2
            && listed
                .iter()
                .zip(&done)
                .all(|(l, d)| l.number == d.number && l.etag == d.etag)
            && listed[0].size == 5 * MIB as u64,
        || format!("ListParts: {listed:?}"),
    )?;
    let whole = checksum::multipart_value(Algorithm::Crc64nvme, &sums);
    // A wrong whole checksum is refused.
    let wrong = sum(Algorithm::Crc64nvme, b"no").value;
    match store
        .complete_multipart(&key, &id, &done, Algorithm::Crc64nvme, Some(&wrong), true)
        .await
    {
        Err(e) if e.kind() == ErrorKind::Checksum => {}
        other => return fail(format!("a completion with a wrong checksum: {other:?}")),
    }
    store
        .complete_multipart(&key, &id, &done, Algorithm::Crc64nvme, Some(&whole), true)
        .await
        .map_err(|e| format!("CompleteMultipartUpload: {e}"))?;
    let head = store
        .head(&key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("nothing after the completion")?;
    let all: Vec<u8> = parts.concat();
    check(
        head.size == all.len() as u64
            && head.checksums.crc64nvme.as_deref() == Some(whole.as_str())
            && head.checksums.crc64nvme.as_deref()
                == Some(Digests::of_bytes(&all).crc64.to_base64().as_str())
            && head.checksums.kind == Some(ChecksumType::FullObject),
        || format!("the completed object: {head:?}"),
    )?;
    check(
        store
            .uploads_of(&key)
            .await
            .map_err(|e| e.to_string())?
            .is_empty(),
        || "the completed upload is still listed".into(),
    )?;
    // An abort: the upload is gone, and cannot be completed.
    let id = store
        .create_multipart(&obj, Algorithm::Crc64nvme)
        .await
        .map_err(|e| e.to_string())?;
    store
        .abort_multipart(&key, &id)
        .await
        .map_err(|e| e.to_string())?;
    check(
        store
            .list_parts(&key, &id)
            .await
            .map_err(|e| e.to_string())?
            .is_none(),
        || "ListParts still knows an aborted upload".into(),
    )?;
    match store
        .complete_multipart(&key, &id, &done, Algorithm::Crc64nvme, None, false)
        .await
    {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => fail(format!("completing an aborted upload: {other:?}")),
    }
}

/// CopyObject with new metadata, If-None-Match on a copy, and a copy in
/// parts (UploadPartCopy).
async fn copies<S: ObjectStore>(store: &S, prefix: &str) -> Result<(), Failure> {
    let from = format!("{prefix}copy/source 1+1.jpg");
    let body = bytes(5, 6 * MIB + 7);
    let source_meta = [("source-path", "source".to_string())];
    let options = ObjectOptions::default();
    let obj = NewObject {
        key: &from,
        content_type: "image/jpeg",
        metadata: &source_meta,
        options: &options,
    };
    store
        .put_object(&obj, body.clone(), &sum(Algorithm::Crc64nvme, &body), false)
        .await
        .map_err(|e| format!("PutObject: {e}"))?;
    let to = format!("{prefix}copy/dup é.png");
    let meta = [("source-path", "dup".to_string())];
    let copy = NewObject {
        key: &to,
        content_type: "image/png",
        metadata: &meta,
        options: &options,
    };
    store
        .copy_object(&copy, &from, Algorithm::Crc64nvme, true)
        .await
        .map_err(|e| format!("CopyObject: {e}"))?;
    let head = store
        .head(&to)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("nothing after CopyObject")?;
    let d = Digests::of_bytes(&body);
    check(
        head.size == body.len() as u64
            && head.content_type.as_deref() == Some("image/png")
            && head.metadata.get("source-path").map(String::as_str) == Some("dup")
            && head.checksums.crc64nvme.as_deref() == Some(d.crc64.to_base64().as_str()),
        || format!("the copy: {head:?}"),
    )?;
    let got = store
        .download(&to, |_| Ok(()))
        .await
        .map_err(|e| e.to_string())?;
    check(got == Some((body.len() as u64, d.sha256)), || {
        format!("the copy's bytes: {got:?}")
    })?;
    match store
        .copy_object(&copy, &from, Algorithm::Crc64nvme, true)
        .await
    {
        Err(e) if e.kind() == ErrorKind::Precondition => {}
        other => return fail(format!("If-None-Match on a copy to a taken key: {other:?}")),
    }
    // In parts: 5 MiB and the rest.
    let to = format!("{prefix}copy/in parts.jpg");
    let in_parts = NewObject {
        key: &to,
        content_type: "image/jpeg",
        metadata: &meta,
        options: &options,
    };
    let id = store
        .create_multipart(&in_parts, Algorithm::Crc64nvme)
        .await
        .map_err(|e| e.to_string())?;
    let mut done = Vec::new();
    for (n, range) in [
        (1, (0, 5 * MIB as u64)),
        (2, (5 * MIB as u64, body.len() as u64)),
    ] {
        let w = store
            .upload_part_copy(&to, &id, n, &from, range)
            .await
            .map_err(|e| format!("UploadPartCopy {n}: {e}"))?;
        done.push(DonePart {
            number: n,
            etag: w.etag.ok_or("UploadPartCopy gave no ETag")?,
            checksum: w
                .checksums
                .of(Algorithm::Crc64nvme)
                .map(str::to_string)
                .unwrap_or_default(),
        });
    }
    store
        .complete_multipart(
            &to,
            &id,
            &done,
            Algorithm::Crc64nvme,
            Some(&d.crc64.to_base64()),
            true,
        )
        .await
        .map_err(|e| format!("completing a copy in parts: {e}"))?;
    let got = store
        .download(&to, |_| Ok(()))
        .await
        .map_err(|e| e.to_string())?;
    check(got == Some((body.len() as u64, d.sha256)), || {
        format!("the copy in parts: {got:?}")
    })
}
