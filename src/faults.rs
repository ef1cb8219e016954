//! Test-only fault injection, driven by environment variables, so the
//! integration tests can make a real server reject a body or make the
//! process die at a chosen point, using the real binary.
//!
//! `MEDIASHIFT_TEST_CORRUPT_KEY=SUBSTRING`: after the checksum of a body is
//! computed, one byte of every PutObject/UploadPart body whose key contains
//! SUBSTRING is flipped, so the server must reject it.
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
