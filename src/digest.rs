//! A file's identity: its SHA-256 and CRC64/NVME, computed in one read.
//!
//! A leaf shared by `dedup` (identical content), `upload` (the `sha256`
//! metadata and the whole-object checksum), `journal` (the hash cache) and
//! `verify` (what an object must match).

use std::io;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::checksum::{self, Algorithm, Summer};
use crate::input::InputFile;
use crate::limits::PartLayout;
use crate::progress::Phase;
use crate::types::{Crc64Nvme, Sha256Digest};

const READ_BUF: usize = 256 * 1024;

/// The full digests of a file: SHA-256 (identity, `sha256` metadata) and
/// CRC64/NVME (S3's default full-object checksum), from one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    pub sha256: Sha256Digest,
    pub crc64: Crc64Nvme,
}

impl Digests {
    pub fn of_bytes(data: &[u8]) -> Self {
        let mut h = Hasher::new();
        h.update(data);
        h.finish()
    }
}

/// Digests by file index, one slot per file: a million files take 48 MB,
/// where a hash map of them took 100 (its table rounds up to a power of
/// two). Nearly every file of a rerun has its digests known, and on a
/// first run every file that shares its size with another is hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestTable {
    slots: Vec<Option<Digests>>,
    count: usize,
}

impl DigestTable {
    /// An empty table with a slot for each of `files` files.
    pub fn with_files(files: usize) -> Self {
        Self {
            slots: vec![None; files],
            count: 0,
        }
    }

    /// Makes room for `files` files at once (growing one insert at a
    /// time would double the table's memory while it moves).
    pub fn cover(&mut self, files: usize) {
        if self.slots.len() < files {
            self.slots.resize(files, None);
        }
    }

    pub fn get(&self, file: &u32) -> Option<&Digests> {
        self.slots.get(*file as usize)?.as_ref()
    }

    pub fn contains_key(&self, file: &u32) -> bool {
        self.get(file).is_some()
    }

    /// Sets `file`'s digests (growing the table if needed); the old ones.
    pub fn insert(&mut self, file: u32, d: Digests) -> Option<Digests> {
        let i = file as usize;
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        let old = self.slots[i].replace(d);
        if old.is_none() {
            self.count += 1;
        }
        old
    }

    /// Keeps only the digests `keep` says to.
    pub fn retain(&mut self, mut keep: impl FnMut(&u32, &mut Digests) -> bool) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(d) = slot
                && !keep(&(i as u32), d)
            {
                *slot = None;
                self.count -= 1;
            }
        }
    }
}

#[cfg(test)]
impl DigestTable {
    /// Files with digests.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Files with digests, in index order.
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u32)
    }

    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.count = 0;
    }
}

impl std::ops::Index<&u32> for DigestTable {
    type Output = Digests;

    fn index(&self, file: &u32) -> &Digests {
        self.get(file).expect("no digests for this file")
    }
}

/// Incremental computation of [`Digests`].
pub struct Hasher {
    sha: Sha256,
    crc: crc_fast::Digest,
}

impl Hasher {
    pub fn new() -> Self {
        Self {
            sha: Sha256::new(),
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.crc.update(data);
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: Sha256Digest(self.sha.finalize().into()),
            crc64: Crc64Nvme(self.crc.finalize()),
        }
    }
}

/// A SHA-256 computed from data given in order, in pieces: a large file's
/// identity from the parts read for its upload.
pub struct Sha256Stream(Sha256);

impl Sha256Stream {
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Sha256Digest {
        Sha256Digest(self.0.finalize().into())
    }
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads a whole file and returns its digests. Fails if the file is not
/// `expected_size` bytes long (it changed since the walk).
pub fn hash_file(path: &Path, expected_size: u64, progress: &Phase) -> io::Result<Digests> {
    let mut h = Hasher::new();
    let total = InputFile::open(path)?.each_piece(READ_BUF, |piece| {
        h.update(piece);
        progress.inc(piece.len() as u64);
        Ok(())
    })?;
    if total != expected_size {
        return Err(io::Error::other(format!(
            "file changed while being read: {expected_size} bytes at the walk, {total} now"
        )));
    }
    Ok(h.finish())
}

/// The file's whole-object checksum in `algorithm` as a server reports it
/// for an object uploaded in one PutObject (`layout` `None`) or in the
/// parts of `layout`: full-object for CRCs (the same either way), the
/// composite `…-N` of the part digests for SHA-256 in parts.
pub fn whole_checksum(
    path: &Path,
    algorithm: Algorithm,
    layout: Option<PartLayout>,
) -> io::Result<String> {
    let mut file = InputFile::open(path)?;
    let mut buf = vec![0u8; READ_BUF];
    let composite = layout.filter(|_| !algorithm.full_object());
    let part_size = composite.map_or(u64::MAX, |l| l.part_size);
    let mut parts = Vec::new();
    let mut sum = Summer::new(algorithm);
    let mut in_part = 0u64;
    loop {
        let want = (part_size - in_part).min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        in_part += n as u64;
        if in_part == part_size {
            parts.push(std::mem::replace(&mut sum, Summer::new(algorithm)).finish());
            in_part = 0;
        }
    }
    if composite.is_none() {
        return Ok(sum.finish().value.to_base64());
    }
    if in_part > 0 || parts.is_empty() {
        parts.push(sum.finish());
    }
    Ok(checksum::multipart_value(algorithm, &parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64nvme_matches_the_s3_reference_value() {
        // The CRC-64/NVME check value from the CRC catalogue.
        let d = Digests::of_bytes(b"123456789");
        assert_eq!(d.crc64.0, 0xae8b_1486_0a79_9888);
    }

    #[test]
    fn a_file_is_hashed_whole_and_a_size_change_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jpg");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(
            hash_file(&p, 5, &Phase::hidden()).unwrap(),
            Digests::of_bytes(b"hello")
        );
        let e = hash_file(&p, 4, &Phase::hidden()).unwrap_err();
        assert!(e.to_string().contains("4 bytes at the walk, 5 now"), "{e}");
    }

    #[test]
    fn whole_checksums_are_what_a_server_reports() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.mp4");
        let data: Vec<u8> = (0..(11u32 << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let layout = PartLayout::new(data.len() as u64, 5 << 20).unwrap();
        // CRC32C is full-object whether sent whole or in parts.
        let whole = Summer::of(Algorithm::Crc32c, &data).value.to_base64();
        assert_eq!(whole_checksum(&p, Algorithm::Crc32c, None).unwrap(), whole);
        assert_eq!(
            whole_checksum(&p, Algorithm::Crc32c, Some(layout)).unwrap(),
            whole
        );
        // SHA-256 in parts is the composite of the part digests.
        let parts: Vec<checksum::Part> = data
            .chunks(5 << 20)
            .map(|c| Summer::of(Algorithm::Sha256, c))
            .collect();
        assert_eq!(
            whole_checksum(&p, Algorithm::Sha256, Some(layout)).unwrap(),
            checksum::multipart_value(Algorithm::Sha256, &parts)
        );
        assert!(
            whole_checksum(&p, Algorithm::Sha256, Some(layout))
                .unwrap()
                .ends_with("-3")
        );
    }
}
