//! Test-only fault injection, so the integration tests can make a real
//! server reject a body, a disk fail, or the process die at a chosen point,
//! using the real binary. Built only with the `test-hooks` feature, which
//! the test suite turns on (the crate's dev-dependency on itself); without
//! it every hook is a no-op and no `MEDIASHIFT_TEST_*` variable is read.
//!
//! `MEDIASHIFT_TEST_CORRUPT_KEY=SUBSTRING`: after the checksum of a body is
//! computed, one byte of every PutObject/UploadPart body whose key contains
//! SUBSTRING is flipped, so the server must reject it.
//!
//! `MEDIASHIFT_TEST_READ_ERROR=SUBSTRING@OFFSET`: a read of a file whose
//! path contains SUBSTRING fails with EIO (as a failing disk does) once it
//! reaches byte OFFSET (every read goes through `input::InputFile`).
//!
//! `MEDIASHIFT_TEST_CRASH_AT=NAME[:N]`: the process kills itself with
//! SIGKILL (no cleanup, as a power cut would) the Nth time (default 1st)
//! it passes the [`CrashPoint`] named NAME.
//!
//! `MEDIASHIFT_TEST_COPY_LIMIT=BYTES`: objects larger than BYTES are
//! copied server-side in parts (UploadPartCopy) instead of by one
//! CopyObject, so the tests exercise copies in parts without 5 GiB files.

use bytes::Bytes;

/// Where a run may be made to die (`MEDIASHIFT_TEST_CRASH_AT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// A multipart upload created, its id not yet journaled.
    AfterCreate,
    /// A part acknowledged, not yet journaled.
    PartAcked,
    /// Every part sent, the completion not yet sent.
    BeforeComplete,
    /// Completed, not yet verified or journaled.
    AfterComplete,
    /// Inside a journal transaction, between records.
    JournalBatch,
    /// Inside a journal transaction, before its commit.
    JournalBeforeCommit,
    /// `offload` moved (or deleted) a file, not yet journaled.
    OffloadMoved,
}

#[cfg(feature = "test-hooks")]
impl CrashPoint {
    /// Every point, for the name lookup.
    pub const ALL: [Self; 7] = [
        Self::AfterCreate,
        Self::PartAcked,
        Self::BeforeComplete,
        Self::AfterComplete,
        Self::JournalBatch,
        Self::JournalBeforeCommit,
        Self::OffloadMoved,
    ];

    /// The name `MEDIASHIFT_TEST_CRASH_AT` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::AfterCreate => "after-create",
            Self::PartAcked => "part-acked",
            Self::BeforeComplete => "before-complete",
            Self::AfterComplete => "after-complete",
            Self::JournalBatch => "journal-batch",
            Self::JournalBeforeCommit => "journal-before-commit",
            Self::OffloadMoved => "offload-moved",
        }
    }
}

#[cfg(feature = "test-hooks")]
mod hooks {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    use bytes::Bytes;

    use super::CrashPoint;

    fn corrupt_key() -> Option<&'static str> {
        static V: OnceLock<Option<String>> = OnceLock::new();
        V.get_or_init(|| {
            std::env::var("MEDIASHIFT_TEST_CORRUPT_KEY")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .as_deref()
    }

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

    pub fn read_error(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<()> {
        static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
        let spec = SPEC.get_or_init(|| {
            let v = std::env::var("MEDIASHIFT_TEST_READ_ERROR").ok()?;
            let (s, at) = v.rsplit_once('@')?;
            Some((s.to_string(), at.parse().ok()?))
        });
        match spec {
            Some((s, at))
                if path.to_string_lossy().contains(s.as_str())
                    && offset.saturating_add(len) > *at =>
            {
                tracing::warn!(path = %path.display(), "test hook: read error at byte {at}");
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            }
            _ => Ok(()),
        }
    }

    pub fn crash_point(point: CrashPoint) {
        static SPEC: OnceLock<Option<(CrashPoint, u64)>> = OnceLock::new();
        static PASSES: AtomicU64 = AtomicU64::new(0);
        let spec = SPEC.get_or_init(|| {
            let v = std::env::var("MEDIASHIFT_TEST_CRASH_AT").ok()?;
            let (name, n) = v
                .split_once(':')
                .map_or((v.as_str(), 1), |(p, n)| (p, n.parse().unwrap_or(1)));
            let Some(point) = CrashPoint::ALL.into_iter().find(|p| p.name() == name) else {
                eprintln!("test hook: no crash point {name}");
                return None;
            };
            Some((point, n))
        });
        if let Some((at, n)) = spec
            && *at == point
            && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *n
        {
            eprintln!("test hook: SIGKILL at {} #{n}", point.name());
            kill_self();
        }
    }

    pub fn copy_limit() -> Option<u64> {
        static V: OnceLock<Option<u64>> = OnceLock::new();
        *V.get_or_init(|| {
            std::env::var("MEDIASHIFT_TEST_COPY_LIMIT")
                .ok()
                .and_then(|v| v.parse().ok())
        })
    }

    #[allow(unsafe_code)]
    fn kill_self() {
        // SAFETY: sending a signal to our own pid has no memory-safety
        // effects.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
mod hooks {
    use bytes::Bytes;

    use super::CrashPoint;

    pub fn maybe_corrupt(_key: &str, body: Bytes) -> Bytes {
        body
    }

    pub fn read_error(_path: &std::path::Path, _offset: u64, _len: u64) -> std::io::Result<()> {
        Ok(())
    }

    pub fn crash_point(_point: CrashPoint) {}

    pub fn copy_limit() -> Option<u64> {
        None
    }
}

/// Flips the first byte of `body` when the corruption hook targets `key`.
pub fn maybe_corrupt(key: &str, body: Bytes) -> Bytes {
    hooks::maybe_corrupt(key, body)
}

/// Fails with EIO when the read hook targets `path` and a read of `len`
/// bytes at `offset` reaches the hook's offset.
pub fn read_error(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<()> {
    hooks::read_error(path, offset, len)
}

/// Dies here if the crash hook names `point`.
pub fn crash_point(point: CrashPoint) {
    hooks::crash_point(point);
}

/// The largest object copied by one CopyObject: S3's limit, unless the
/// copy-limit hook lowers it.
pub fn copy_limit() -> u64 {
    hooks::copy_limit().unwrap_or(crate::limits::MAX_COPY_OBJECT)
}
