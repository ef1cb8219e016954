//! A large file's SHA-256 from the parts read for its upload, so that a
//! file dedup did not hash is read once, not once to hash and again to send.
//!
//! Parts are read in parallel and finish in any order; SHA-256 needs its
//! input in order. Each part is handed over once read; whichever thread
//! hands over the next part in order hashes it and every waiting part that
//! follows, while the others go on to send theirs. At most the parts in
//! flight wait here (their buffers are shared with the send, not copied).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::digest::Sha256Stream;
use crate::types::Sha256Digest;

pub(super) struct InOrder {
    state: Mutex<State>,
    /// Touched only by the thread that holds `State::busy`.
    sha: Mutex<Sha256Stream>,
}

struct State {
    /// The number of the next part to hash.
    next: u32,
    waiting: BTreeMap<u32, Bytes>,
    /// A thread is hashing: others leave their part waiting.
    busy: bool,
    /// A lock was poisoned (a hashing thread panicked): no digest.
    broken: bool,
}

impl InOrder {
    /// Hashes parts numbered from 1.
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                next: 1,
                waiting: BTreeMap::new(),
                busy: false,
                broken: false,
            }),
            sha: Mutex::new(Sha256Stream::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| {
            let mut s = p.into_inner();
            s.broken = true;
            s
        })
    }

    /// Hands over part `number`'s bytes (on a blocking thread: this may
    /// hash it and the parts after it).
    pub(super) fn feed(&self, number: u32, body: Bytes) {
        let mut s = self.state();
        s.waiting.insert(number, body);
        if s.busy {
            return;
        }
        s.busy = true;
        loop {
            let next = s.next;
            let Some(body) = s.waiting.remove(&next) else {
                s.busy = false;
                return;
            };
            drop(s);
            match self.sha.lock() {
                Ok(mut sha) => sha.update(&body),
                Err(_) => self.state().broken = true,
            }
            drop(body);
            s = self.state();
            s.next += 1;
        }
    }

    /// The SHA-256 of parts 1..=`parts`, once every one was handed over.
    pub(super) fn finish(self, parts: u64) -> Option<Sha256Digest> {
        let s = self.state.into_inner().ok()?;
        if s.broken || u64::from(s.next) != parts + 1 || !s.waiting.is_empty() {
            return None;
        }
        Some(self.sha.into_inner().ok()?.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digests;

    #[test]
    fn parts_handed_over_in_any_order_hash_as_the_whole_file() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let parts: Vec<Bytes> = data.chunks(1_000).map(Bytes::copy_from_slice).collect();
        let h = InOrder::new();
        for i in [3usize, 1, 0, 2, 9, 5, 4, 8, 6, 7] {
            h.feed(i as u32 + 1, parts[i].clone());
        }
        assert_eq!(h.finish(10), Some(Digests::of_bytes(&data).sha256));
    }

    #[test]
    fn parts_from_many_threads_hash_as_the_whole_file() {
        let data: Vec<u8> = (0..64_000u32).map(|i| (i % 253) as u8).collect();
        let h = InOrder::new();
        std::thread::scope(|s| {
            for t in 0..4usize {
                let (h, data) = (&h, &data);
                s.spawn(move || {
                    for (i, c) in data.chunks(1_000).enumerate().rev() {
                        if i % 4 == t {
                            h.feed(i as u32 + 1, Bytes::copy_from_slice(c));
                        }
                    }
                });
            }
        });
        assert_eq!(h.finish(64), Some(Digests::of_bytes(&data).sha256));
    }

    #[test]
    fn a_missing_part_gives_no_digest() {
        let h = InOrder::new();
        h.feed(1, Bytes::from_static(b"ab"));
        h.feed(3, Bytes::from_static(b"ef"));
        assert_eq!(h.finish(3), None);
        let h = InOrder::new();
        h.feed(1, Bytes::from_static(b"ab"));
        assert_eq!(h.finish(2), None, "fewer parts than the layout has");
    }
}
