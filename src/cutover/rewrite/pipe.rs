//! Bytes to and from the other core. The input is read and hashed ahead on
//! one thread, the output hashed and written behind on another, in 1 MiB
//! chunks that go back and forth for reuse, so the thread that rewrites
//! only scans. (Hashing both streams is a third of the work: the rollback
//! record names the input and the output by their SHA-256.)

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::input::InputFile;
use sha2::{Digest, Sha256};

pub const CHUNK: usize = 1 << 20;
/// Chunks in flight each way: enough to keep both threads busy.
const DEPTH: usize = 4;
/// Chunks each pipe ever allocates. They are handed back and forth, never
/// freed and allocated again, so a multi-GB stream allocates nothing once
/// it runs.
const POOL: usize = DEPTH + 2;

/// Buffers to fill: new ones until the pool is made, then those handed
/// back (waiting for one); `None` once the other side is gone.
struct Pool {
    made: usize,
    returned: Receiver<Vec<u8>>,
}

impl Pool {
    fn next(&mut self) -> Option<Vec<u8>> {
        if let Ok(b) = self.returned.try_recv() {
            return Some(b);
        }
        if self.made < POOL {
            self.made += 1;
            return Some(Vec::with_capacity(CHUNK));
        }
        self.returned.recv().ok()
    }
}

pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file read, and hashed, on its own thread.
pub struct ReadAhead {
    rx: Receiver<io::Result<Vec<u8>>>,
    back: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
    done: bool,
    thread: Option<JoinHandle<(String, u64)>>,
}

impl ReadAhead {
    pub fn spawn(mut file: InputFile) -> Self {
        let (tx, rx) = sync_channel(DEPTH);
        let (back, returned) = sync_channel::<Vec<u8>>(POOL);
        let thread = std::thread::spawn(move || {
            let mut sha = Sha256::new();
            let mut size = 0u64;
            let mut pool = Pool { made: 0, returned };
            // The reader dropped its end: nothing more is wanted.
            while let Some(mut buf) = pool.next() {
                // Zeroed once per buffer: a recycled one keeps its length.
                buf.resize(CHUNK, 0);
                let read = file.read_full(&mut buf);
                match read {
                    Ok(n) => {
                        buf.truncate(n);
                        sha.update(&buf);
                        size += n as u64;
                        // An empty chunk says the file ended.
                        if tx.send(Ok(buf)).is_err() || n == 0 {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
            (hex(&sha.finalize()), size)
        });
        Self {
            rx,
            back,
            cur: Vec::new(),
            at: 0,
            done: false,
            thread: Some(thread),
        }
    }

    /// The file's SHA-256 and size (once it was read to its end).
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        drop(std::mem::replace(&mut self.rx, sync_channel(1).1));
        self.thread
            .take()
            .map(JoinHandle::join)
            .transpose()
            .map_err(|_| io::Error::other("the reading thread failed"))?
            .ok_or_else(|| io::Error::other("the reading thread is gone"))
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.cur.len() {
                let n = buf.len().min(self.cur.len() - self.at);
                buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.done = chunk.is_empty();
                    let used = std::mem::replace(&mut self.cur, chunk);
                    if used.capacity() > 0 {
                        let _ = self.back.try_send(used);
                    }
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => return Err(io::Error::other("the reading thread ended early")),
            }
        }
    }
}

/// A writer fed in chunks on its own thread, which hashes what it writes.
pub struct WriteBehind<W> {
    tx: Option<SyncSender<Vec<u8>>>,
    pool: Pool,
    pending: Vec<u8>,
    thread: Option<JoinHandle<io::Result<(W, String)>>>,
}

impl<W: Write + Send + 'static> WriteBehind<W> {
    pub fn spawn(mut to: W) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (back, returned) = sync_channel(POOL);
        let thread = std::thread::spawn(move || {
            let mut sha = Sha256::new();
            for chunk in rx {
                sha.update(&chunk);
                to.write_all(&chunk)?;
                let _ = back.try_send(chunk);
            }
            Ok((to, hex(&sha.finalize())))
        });
        Self {
            tx: Some(tx),
            pool: Pool { made: 1, returned },
            pending: Vec::with_capacity(CHUNK),
            thread: Some(thread),
        }
    }

    /// Why the thread stopped, once it did.
    fn failed(&mut self) -> io::Error {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the writing thread ended early"),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::take(&mut self.pending);
        if self.tx.as_ref().is_none_or(|tx| tx.send(full).is_err()) {
            return Err(self.failed());
        }
        match self.pool.next() {
            Some(mut next) => {
                next.clear();
                self.pending = next;
                Ok(())
            }
            None => Err(self.failed()),
        }
    }

    pub fn write(&mut self, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            let room = CHUNK - self.pending.len().min(CHUNK);
            let n = room.min(b.len());
            self.pending.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.pending.len() >= CHUNK {
                self.send()?;
            }
        }
        Ok(())
    }

    /// Everything written; the writer back, and the SHA-256 of the bytes.
    pub fn finish(mut self) -> io::Result<(W, String)> {
        if !self.pending.is_empty() {
            self.send()?;
        }
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("the writing thread failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_go_through_whole_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in");
        let data: Vec<u8> = (0..3 * CHUNK + 12_345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(&p, &data).unwrap();
        let mut r = ReadAhead::spawn(InputFile::open(&p).unwrap());
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        let (sha, size) = r.finish().unwrap();
        assert_eq!(
            (sha.clone(), size),
            (hex(&Sha256::digest(&data)), data.len() as u64)
        );

        let mut w = WriteBehind::spawn(Vec::new());
        for piece in data.chunks(100_000) {
            w.write(piece).unwrap();
        }
        let (written, out_sha) = w.finish().unwrap();
        assert_eq!(out_sha, sha);
        assert_eq!(written, data);
    }
}
