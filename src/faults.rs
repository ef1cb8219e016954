//! Test-only fault injection, driven by environment variables, so the
//! integration tests can make a real server reject a body or make the
//! process die at a chosen point, using the real binary.
//!
//! `MEDIASHIFT_TEST_CORRUPT_KEY=SUBSTRING`: after the checksum of a body is
//! computed, one byte of every PutObject/UploadPart body whose key contains
//! SUBSTRING is flipped, so the server must reject it.
//!
//! `MEDIASHIFT_TEST_READ_ERROR=SUBSTRING@OFFSET`: a read of a file whose
//! path contains SUBSTRING fails with EIO (as a failing disk does) once it
//! reaches byte OFFSET.
//!
//! `MEDIASHIFT_TEST_COPY_LIMIT=BYTES`: objects larger than BYTES are
//! copied server-side in parts (UploadPartCopy) instead of by one
//! CopyObject, so the tests exercise copies in parts without 5 GiB files.
//!
//! Nothing here is active unless those variables are set; they are named so
//! that nobody sets them by accident.

use std::sync::OnceLock;

use bytes::Bytes;

fn corrupt_key() -> Option<&'static str> {
    static V: OnceLock<Option<String>> = OnceLock::new();
    V.get_or_init(|| {
        std::env::var("MEDIASHIFT_TEST_CORRUPT_KEY")
            .ok()
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// Flips the first byte of `body` when the corruption hook targets `key`.
pub fn maybe_corrupt(key: &str, body: Bytes) -> Bytes {
    match corrupt_key() {
        Some(s) if key.contains(s) && !body.is_empty() => {
            tracing::warn!(
                key,
                "test hook: corrupting the body after its checksum was computed"
            );
            let mut v = body.to_vec();
            v[0] ^= 0xFF;
            Bytes::from(v)
        }
        _ => body,
    }
}

/// The largest object copied by one CopyObject: S3's limit, unless the
/// copy-limit hook lowers it.
pub fn copy_limit() -> u64 {
    static V: OnceLock<u64> = OnceLock::new();
    *V.get_or_init(|| {
        std::env::var("MEDIASHIFT_TEST_COPY_LIMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::limits::MAX_COPY_OBJECT)
    })
}

/// Fails with EIO when the read hook targets `path` and a read of `len`
/// bytes at `offset` reaches the hook's offset.
pub fn read_error(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<()> {
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    let spec = SPEC.get_or_init(|| {
        let v = std::env::var("MEDIASHIFT_TEST_READ_ERROR").ok()?;
        let (s, at) = v.rsplit_once('@')?;
        Some((s.to_string(), at.parse().ok()?))
    });
    match spec {
        Some((s, at))
            if path.to_string_lossy().contains(s.as_str()) && offset.saturating_add(len) > *at =>
        {
            tracing::warn!(path = %path.display(), "test hook: read error at byte {at}");
            Err(std::io::Error::from_raw_os_error(libc::EIO))
        }
        _ => Ok(()),
    }
}

/// `MEDIASHIFT_TEST_CRASH_AT=NAME[:N]`: the process kills itself with
/// SIGKILL (no cleanup, as a power cut would) the Nth time (default 1st)
/// it passes the point NAME. Points: `part-acked` (a part acknowledged, not
/// yet journaled), `before-complete`, `after-complete` (completed, not yet
/// verified or journaled), `journal-batch` and `journal-before-commit`
/// (inside a journal transaction).
pub fn crash_point(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static PASSES: AtomicU64 = AtomicU64::new(0);
    let spec = SPEC.get_or_init(|| {
        let v = std::env::var("MEDIASHIFT_TEST_CRASH_AT").ok()?;
        let (point, n) = v
            .split_once(':')
            .map_or((v.as_str(), 1), |(p, n)| (p, n.parse().unwrap_or(1)));
        Some((point.to_string(), n))
    });
    if let Some((point, n)) = spec
        && point == name
        && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        eprintln!("test hook: SIGKILL at {name} #{n}");
        kill_self();
    }
}

#[allow(unsafe_code)]
fn kill_self() {
    // SAFETY: sending a signal to our own pid has no memory-safety effects.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
