//! Reading the files mediashift was given: the media of SOURCE_DIR (to
//! hash, upload, offload) and the dumps `rewrite` takes. Every read of
//! their bytes goes through [`InputFile`], which keeps the offset and is
//! the one place the tests' failing disk (`faults::read_error`) strikes,
//! so no read loop has to remember it.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::faults;

/// A file open for reading.
#[derive(Debug)]
pub struct InputFile {
    file: File,
    path: PathBuf,
    /// Where the next sequential read starts.
    at: u64,
}

impl InputFile {
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
            path: path.to_path_buf(),
            at: 0,
        })
    }

    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    /// The next bytes, as `Read::read` (0: the end).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        faults::read_error(&self.path, self.at, n as u64)?;
        self.at += n as u64;
        Ok(n)
    }

    /// Fills `buf` as far as the file goes: how many bytes were read (less
    /// than `buf.len()` only at the end).
    pub fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Reads to the end, at most `limit` bytes, onto `buf`: how many.
    pub fn read_to_end_limited(&mut self, buf: &mut Vec<u8>, limit: u64) -> io::Result<usize> {
        let start = self.at;
        let n = (&mut self.file).take(limit).read_to_end(buf)?;
        faults::read_error(&self.path, start, n as u64)?;
        self.at += n as u64;
        Ok(n)
    }

    /// Exactly `buf.len()` bytes at `offset` (a short file is
    /// `UnexpectedEof`).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)?;
        faults::read_error(&self.path, offset, buf.len() as u64)
    }

    /// Calls `each` with every piece of the file in order, through a
    /// buffer of `chunk` bytes: how many bytes there were.
    pub fn each_piece(
        mut self,
        chunk: usize,
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<u64> {
        let mut buf = vec![0u8; chunk];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(self.at);
            }
            each(&buf[..n])?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sequentially_at_offsets_and_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let mut f = InputFile::open(&p).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(f.read_full(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"0123");
        f.read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"6789");
        let mut rest = Vec::new();
        assert_eq!(f.read_to_end_limited(&mut rest, 3).unwrap(), 3);
        assert_eq!(rest, b"456");
        assert!(f.read_exact_at(&mut buf, 8).is_err(), "past the end");
        let mut seen = Vec::new();
        let n = InputFile::open(&p)
            .unwrap()
            .each_piece(3, |b| {
                seen.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        assert_eq!((n, seen.as_slice()), (10, &b"0123456789"[..]));
    }
}
