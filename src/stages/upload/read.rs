//! Reading files for upload, and catching files that change meanwhile.
//!
//! Small files (below the multipart threshold) are read once: the read
//! computes the digests (for the `sha256` metadata) and the request
//! checksum together. Parts of large files are read by position, each with
//! its own checksum. A file that changes while it is read (size or mtime
//! before and after, or content that no longer matches its hash) is a
//! [`JobError::Changed`]: never recorded as uploaded, retried once at the
//! end of the run, then reported.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::buffers::BufferPool;
use super::context::Ctx;
use super::job::{Job, JobError};
use crate::checksum::{self, Algorithm, Summer};
use crate::digest::{Digests, Hasher, hash_file};
use crate::input::InputFile;
use crate::store::ObjectStore;

fn unreadable(e: std::io::Error) -> JobError {
    JobError::Failed(format!("cannot read the file: {e}"))
}

/// (size, mtime) of a file now.
pub(super) fn stat(path: &Path) -> Result<(u64, i64), JobError> {
    let m = std::fs::metadata(path).map_err(unreadable)?;
    Ok((
        m.len(),
        m.mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(m.mtime_nsec()),
    ))
}

/// Fails with [`JobError::Changed`] unless the file is as the walk saw it.
pub(super) fn unchanged(job: &Job, path: &Path, when: &str) -> Result<(), JobError> {
    let now = stat(path)?;
    if now != (job.size, job.mtime_ns) {
        return Err(JobError::Changed(format!(
            "the file changed {when} (size {} -> {}, mtime changed: {})",
            job.size,
            now.0,
            now.1 != job.mtime_ns
        )));
    }
    Ok(())
}

/// Fails unless `got` are the digests planning knew (if it knew them).
pub(super) fn same_digests(job: &Job, got: &Digests) -> Result<(), JobError> {
    match &job.digests {
        Some(known) if known != got => Err(JobError::Changed(
            "the file's content changed since it was hashed during planning".into(),
        )),
        _ => Ok(()),
    }
}

/// Reads a small file whole into a pooled buffer and computes its digests
/// and request checksum in the same pass. A size or mtime change after this
/// read is caught by the caller's stat; one byte more than planned is read,
/// so growth is seen here too.
pub(super) fn read_small(
    path: &Path,
    size: u64,
    algorithm: Algorithm,
    pool: &Arc<BufferPool>,
) -> Result<(Bytes, Digests, checksum::Value), JobError> {
    let mut buf = pool.take_empty(size as usize + 1);
    InputFile::open(path)
        .and_then(|mut f| f.read_to_end_limited(buf.as_mut_vec(), size + 1))
        .map_err(unreadable)?;
    let data = buf.as_ref();
    let got = data.len() as u64;
    if got != size {
        return Err(JobError::Changed(if got > size {
            format!("the file grew beyond its planned {size} bytes")
        } else {
            format!("the file is now {got} bytes, not {size}")
        }));
    }
    let mut h = Hasher::new();
    h.update(data);
    let digests = h.finish();
    let sum = match algorithm {
        Algorithm::Crc64nvme => checksum::Value::Crc64(digests.crc64.0),
        Algorithm::Sha256 => checksum::Value::Sha256(digests.sha256.0),
        Algorithm::Crc32c => Summer::of(algorithm, data).value,
    };
    Ok((buf.freeze(), digests, sum))
}

/// A part's data, read and summed on the blocking pool.
pub(super) struct ReadPart {
    pub body: Bytes,
    /// The checksum of the run's algorithm.
    pub sum: checksum::Part,
    /// Always CRC64NVME, to compare the parts with the hashed file.
    pub crc64: checksum::Part,
}

pub(super) fn read_part(
    path: &Path,
    start: u64,
    len: u64,
    algorithm: Algorithm,
    pool: &Arc<BufferPool>,
) -> Result<ReadPart, JobError> {
    let file = InputFile::open(path).map_err(unreadable)?;
    let mut pooled = pool.take(len as usize);
    let buf = pooled.as_mut_slice();
    file.read_exact_at(buf, start).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            JobError::Changed("the file became shorter while being uploaded".into())
        } else {
            unreadable(e)
        }
    })?;
    let crc64 = Summer::of(Algorithm::Crc64nvme, buf);
    let sum = if algorithm == Algorithm::Crc64nvme {
        crc64
    } else {
        Summer::of(algorithm, buf)
    };
    Ok(ReadPart {
        body: pooled.freeze(),
        sum,
        crc64,
    })
}

/// Hashes a large file that dedup did not read, with its own bar: only
/// where an upload cannot go on without its digests (an earlier run's
/// upload that the server no longer knows, to check the object).
pub(super) async fn hash<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    path: &Path,
) -> Result<Digests, JobError> {
    let (p, size) = (path.to_path_buf(), job.size);
    let hashing = ctx.progress.hashing(&job.rel, size);
    let h = hashing.clone();
    let hashed = ctx.permits.blocking(move || hash_file(&p, size, &h)).await;
    hashing.finish();
    ctx.count_read(size);
    let d = hashed?.map_err(|e| JobError::Changed(format!("the file could not be hashed: {e}")))?;
    ctx.record_digests(job, d);
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_file_is_read_whole_and_a_size_change_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        std::fs::write(&path, b"twelve bytes").unwrap();
        let pool = BufferPool::sized(4, 64, 2);

        let (body, digests, sum) = read_small(&path, 12, Algorithm::Sha256, &pool).unwrap();
        assert_eq!(body.as_ref(), b"twelve bytes");
        assert_eq!(digests, Digests::of_bytes(b"twelve bytes"));
        assert_eq!(sum, checksum::Value::Sha256(digests.sha256.0));
        drop(body);

        // Planned at 10 bytes: the file grew. Planned at 20: it shrank.
        let grew = read_small(&path, 10, Algorithm::Crc64nvme, &pool);
        assert!(
            matches!(grew, Err(JobError::Changed(m)) if m.contains("grew beyond its planned 10"))
        );
        let shrank = read_small(&path, 20, Algorithm::Crc64nvme, &pool);
        assert!(matches!(shrank, Err(JobError::Changed(m)) if m.contains("now 12 bytes, not 20")));
        let gone = read_small(&dir.path().join("gone.jpg"), 1, Algorithm::Crc64nvme, &pool);
        assert!(matches!(gone, Err(JobError::Failed(m)) if m.contains("cannot read the file")));
    }

    #[test]
    fn a_part_is_read_at_its_offset_and_a_short_file_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.mp4");
        std::fs::write(&path, b"0123456789").unwrap();
        let pool = BufferPool::new(4, 16);
        let p = read_part(&path, 4, 4, Algorithm::Crc32c, &pool).unwrap();
        assert_eq!(p.body.as_ref(), b"4567");
        assert_eq!(p.sum, Summer::of(Algorithm::Crc32c, b"4567"));
        assert_eq!(p.crc64, Summer::of(Algorithm::Crc64nvme, b"4567"));
        let short = read_part(&path, 8, 4, Algorithm::Crc64nvme, &pool);
        assert!(matches!(short, Err(JobError::Changed(_))));
    }
}
