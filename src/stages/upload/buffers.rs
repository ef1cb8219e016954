//! Read buffers that are reused instead of allocated anew for every read.
//!
//! Each multipart part is read into a buffer of the part size (8 MiB by
//! default). Allocated fresh per part, those blocks end up spread over
//! glibc's per-thread arenas, where freed ones stay resident: with the
//! 128 MiB budget a 3 GiB upload peaked at 200 MiB RSS (151 MiB once the
//! allocator was told to map them separately). Recycling a fixed set keeps
//! resident memory at the budget, and each part skips the page faults of
//! touching fresh memory. The memory semaphore still decides how many
//! buffers are out at once; the pool only keeps returned ones for the next
//! part, up to the number the budget allows.
//!
//! Small files (most of a shop's media) get a second pool: a fresh buffer
//! per file cost about a tenth of the client's CPU in malloc, free and page
//! faults on the small-file benchmark. Buffers larger than the pool's
//! `max` (a rare big image) are freed rather than kept, so what the pool
//! holds stays at `keep` x `max` at most.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Smallest capacity a new buffer gets (the part size, for parts).
    size: usize,
    /// Largest capacity kept for reuse.
    max: usize,
    /// Buffers kept for reuse at most.
    keep: usize,
}

impl BufferPool {
    /// Part buffers: all of `size`, as many kept as `budget` holds.
    pub fn new(size: usize, budget: u64) -> Arc<Self> {
        let keep = (budget / size.max(1) as u64).max(1) as usize;
        Self::sized(size, size, keep)
    }

    /// Buffers of at least `size`, kept (`keep` at most) when no larger
    /// than `max`.
    pub fn sized(size: usize, max: usize, keep: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(Vec::new()),
            size,
            max: max.max(size),
            keep: keep.max(1),
        })
    }

    /// A buffer of exactly `len` bytes (contents unspecified: the caller
    /// overwrites them all).
    ///
    /// A reused buffer keeps the bytes it held: only what it never held is
    /// zeroed. Zeroing a whole part before each read cost about 5% of the
    /// client's CPU on a large upload (memset of every 8 MiB part).
    pub fn take(self: &Arc<Self>, len: usize) -> PooledBuf {
        let mut b = self.pop(len);
        if b.buf.len() >= len {
            b.buf.truncate(len);
        } else {
            b.buf.resize(len, 0);
        }
        b
    }

    /// An empty buffer with room for at least `capacity` bytes, to be
    /// filled with `Read::read_to_end` (which does not zero it first).
    pub fn take_empty(self: &Arc<Self>, capacity: usize) -> PooledBuf {
        let mut b = self.pop(capacity);
        b.buf.clear();
        b
    }

    /// A kept buffer with room for `capacity` bytes (its old contents
    /// still there), or a new empty one.
    fn pop(self: &Arc<Self>, capacity: usize) -> PooledBuf {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        let buf = match reused {
            Some(b) if b.capacity() >= capacity => b,
            _ => Vec::with_capacity(self.size.max(capacity)),
        };
        PooledBuf {
            buf,
            pool: self.clone(),
        }
    }

    #[cfg(test)]
    fn free_count(&self) -> usize {
        self.free.lock().map_or(0, |f| f.len())
    }
}

/// A buffer that goes back to its pool when the last reference to it (as
/// `Bytes` held by the SDK, or by us) is dropped.
pub struct PooledBuf {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl PooledBuf {
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Shares the filled buffer as `Bytes`; it returns to the pool on drop.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let capacity = self.buf.capacity();
        if capacity < self.pool.size || capacity > self.pool.max {
            return;
        }
        if let Ok(mut free) = self.pool.free.lock()
            && free.len() < self.pool.keep
        {
            free.push(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_are_reused_up_to_the_budget() {
        let pool = BufferPool::new(1024, 2048);
        let a = pool.take(1024);
        let first = a.as_ref().as_ptr();
        let bytes = a.freeze();
        let shared = bytes.clone();
        drop(bytes);
        assert_eq!(pool.free_count(), 0, "still referenced");
        drop(shared);
        assert_eq!(pool.free_count(), 1);

        // Taken again at full length: not zeroed again (the read that
        // follows overwrites every byte).
        let mut again = pool.take(1024);
        again.as_mut_slice().fill(7);
        drop(again);
        let again = pool.take(1024);
        assert_eq!(again.as_ref().as_ptr(), first);
        assert!(again.as_ref().iter().all(|&b| b == 7), "no memset");
        drop(again);

        // A shorter last part reuses the same memory.
        let mut b = pool.take(100);
        assert_eq!(b.as_mut_slice().len(), 100);
        assert_eq!(b.as_ref().as_ptr(), first);

        // No more than budget / size are kept.
        let (c, d, e) = (pool.take(1024), pool.take(1024), pool.take(1024));
        drop((b, c, d, e));
        assert_eq!(pool.free_count(), 2);
    }

    #[test]
    fn small_file_buffers_are_reused_but_big_ones_are_not_kept() {
        let pool = BufferPool::sized(1024, 4096, 8);
        let mut a = pool.take_empty(10);
        assert!(a.as_mut_vec().is_empty());
        assert!(a.as_mut_vec().capacity() >= 1024);
        a.as_mut_vec().extend_from_slice(b"old bytes");
        let first = a.as_ref().as_ptr();
        drop(a.freeze());
        assert_eq!(pool.free_count(), 1);

        // Reused, and handed out empty: no stale bytes show through.
        let mut b = pool.take_empty(100);
        assert_eq!(b.as_ref().as_ptr(), first);
        assert!(b.as_ref().is_empty());
        b.as_mut_vec().extend_from_slice(b"new");
        assert_eq!(b.freeze().as_ref(), b"new");

        // A buffer grown past `max` goes back to the allocator.
        // (The kept 1 KiB one is too small for it and is dropped too.)
        let big = pool.take_empty(5000);
        assert_eq!(pool.free_count(), 0);
        let small = pool.take_empty(1);
        drop(big);
        assert_eq!(pool.free_count(), 0, "the big one is not kept");
        drop(small);
        assert_eq!(pool.free_count(), 1);
    }
}
