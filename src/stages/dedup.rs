//! Finding identical content, reading as little as possible.
//!
//! A staged pipeline in the manner of fclones, one function per stage:
//! [`by_size`] (a file whose size is unique cannot have a twin and is not
//! read at all here; migrate hashes it while uploading), [`by_inode`] (hard
//! links to one inode are the same content without reading; zero-byte files
//! are all one content), [`by_partial_hash`] (a cheap hash of head and tail)
//! and [`by_full_hash`] (SHA-256, only for what still collides). Then every
//! file is resolved to its canonical file, or to its failure.
//!
//! Hashing runs on plain OS threads, one per core, never on the async
//! runtime. A file that cannot be read is reported, not dropped.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest as _, Sha256};

use crate::digest::{DigestTable, Digests, hash_file};
use crate::input::InputFile;
use crate::progress::Phase;
use crate::stages::scan::SourceFile;

/// Bytes read from each end of a file for the partial hash.
pub const PARTIAL_BYTES: u64 = 16 * 1024;
/// Files hashed per batch: bounds the results held before they are sorted.
const HASH_CHUNK: usize = 16 * 1024;

/// A hash of the first and last [`PARTIAL_BYTES`] of a file.
pub fn partial_hash(path: &Path, size: u64) -> io::Result<[u8; 32]> {
    let file = InputFile::open(path)?;
    let mut sha = Sha256::new();
    let head = size.min(PARTIAL_BYTES) as usize;
    let mut buf = vec![0u8; head];
    file.read_exact_at(&mut buf, 0)?;
    sha.update(&buf);
    if size > PARTIAL_BYTES {
        let tail = (size - PARTIAL_BYTES).min(PARTIAL_BYTES);
        buf.resize(tail as usize, 0);
        file.read_exact_at(&mut buf, size - tail)?;
        sha.update(&buf);
    }
    Ok(sha.finalize().into())
}

/// Runs `job` over `items` on `threads` OS threads, keeping the order.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    job: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = job(item);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every index is processed exactly once"))
        .collect()
}

/// The outcome of deduplication over a list of files (indexes into it).
#[derive(Debug, Default)]
pub struct Grouping {
    /// For each file, the index of the file whose content it shares and
    /// that represents it (the lexicographically first path), or `None` if
    /// the file could not be read.
    pub canonical: Vec<Option<u32>>,
    /// Digests known so far, by canonical index.
    pub digests: DigestTable,
    /// Files that could not be read, with the error.
    pub failed: Vec<(u32, io::Error)>,
    /// How many bytes were read to decide (for the report and benchmark).
    pub bytes_read: u64,
}

impl Grouping {
    pub fn is_canonical(&self, i: usize) -> bool {
        self.canonical[i] == Some(i as u32)
    }

    /// The digests of file `i`'s content, when known (its canonical file
    /// holds them).
    pub fn digests_of(&self, i: u32) -> Option<Digests> {
        self.digests.get(&self.canonical[i as usize]?).copied()
    }

    /// Hashes the canonical files in `which` whose digests are not known
    /// yet (the existence check needs them). A file that cannot be read
    /// fails, and so does every duplicate that relied on it.
    pub fn hash_more(&mut self, root: &Path, files: &[SourceFile], which: &[u32], threads: usize) {
        let todo: Vec<u32> = which
            .iter()
            .copied()
            .filter(|i| !self.digests.contains_key(i))
            .collect();
        let results = parallel_map(&todo, threads, |&i| {
            let f = &files[i as usize];
            hash_file(&f.path(root), f.size, &Phase::hidden())
        });
        for (i, r) in todo.into_iter().zip(results) {
            self.bytes_read += files[i as usize].size;
            match r {
                Ok(d) => {
                    self.digests.insert(i, d);
                }
                Err(e) => {
                    for (j, c) in self.canonical.iter_mut().enumerate() {
                        if *c == Some(i) {
                            *c = None;
                            let err = io::Error::new(e.kind(), e.to_string());
                            self.failed.push((j as u32, err));
                        }
                    }
                }
            }
        }
    }
}

/// What the stages learn, by file index.
struct Links {
    /// The representative of each file's inode (itself for most files).
    link: Vec<u32>,
    /// Representative → canonical representative, for proven duplicates.
    merged: HashMap<u32, u32>,
    /// Representatives that could not be read.
    failed: HashMap<u32, io::Error>,
}

/// Groups `files` (sorted by path) by content. With `hash_all`, every
/// canonical file also gets its full digests (content-addressed keys need
/// them); otherwise only same-size candidates are read. Files whose
/// digests the journal knows (`known`) are not read again.
///
/// `known` becomes the grouping's digests (on a rerun it holds nearly every
/// file: one table, not two), and the digests of files that turn out to
/// duplicate another are dropped from it at the end.
pub fn group(
    root: &Path,
    files: &[SourceFile],
    hash_all: bool,
    threads: usize,
    progress: &Phase,
    known: DigestTable,
) -> Grouping {
    let mut g = Grouping {
        digests: known,
        ..Grouping::default()
    };
    g.digests.cover(files.len());
    let mut links = Links {
        link: (0..files.len() as u32).collect(),
        merged: HashMap::new(),
        failed: HashMap::new(),
    };
    let candidates = by_inode(files, by_size(files), &mut links, &mut g);
    // A group with a file whose digests the journal already knows skips the
    // partial stage: its other members are hashed in full and compared.
    let (known_groups, candidates): (Vec<Vec<u32>>, Vec<Vec<u32>>) = candidates
        .into_iter()
        .partition(|reps| reps.iter().any(|r| g.digests.contains_key(r)));
    let mut full = by_partial_hash(root, files, &candidates, threads, &mut links, &mut g);
    full.extend(known_groups.into_iter().flatten());
    if hash_all {
        let queued: HashSet<u32> = full.iter().copied().collect();
        full.extend((0..files.len() as u32).filter(|&i| {
            links.link[i as usize] == i
                && !queued.contains(&i)
                && !links.failed.contains_key(&i)
                && !g.digests.contains_key(&i)
        }));
    }
    by_full_hash(root, files, full, threads, progress, &mut links, &mut g);
    // Digests are kept for the files that are their own canonical only.
    g.digests.retain(|&i, _| {
        links.link.get(i as usize) == Some(&i)
            && !links.merged.contains_key(&i)
            && !links.failed.contains_key(&i)
    });
    resolve(files, &links, &mut g);
    g
}

/// Stage 1: files by size. Files are sorted by path, so each bucket's
/// first member is the lexicographically first.
fn by_size(files: &[SourceFile]) -> HashMap<u64, Vec<u32>> {
    let mut by_size: HashMap<u64, Vec<u32>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        by_size.entry(f.size).or_default().push(i as u32);
    }
    by_size
}

/// Stage 2: within each size, one representative per inode (hard links
/// are one content); zero-byte files are all one content. Returns the
/// groups of representatives that may still share content.
fn by_inode(
    files: &[SourceFile],
    by_size: HashMap<u64, Vec<u32>>,
    links: &mut Links,
    g: &mut Grouping,
) -> Vec<Vec<u32>> {
    let mut candidates = Vec::new();
    for (size, members) in by_size {
        if members.len() < 2 {
            continue;
        }
        if size == 0 {
            for &m in &members {
                links.link[m as usize] = members[0];
            }
            g.digests.insert(members[0], Digests::of_bytes(&[]));
            continue;
        }
        let mut by_inode: HashMap<(u64, u64), u32> = HashMap::new();
        let mut reps = Vec::new();
        for &m in &members {
            let f = &files[m as usize];
            match by_inode.get(&(f.dev, f.ino)) {
                Some(&rep) => links.link[m as usize] = rep,
                None => {
                    by_inode.insert((f.dev, f.ino), m);
                    reps.push(m);
                }
            }
        }
        if reps.len() > 1 {
            candidates.push(reps);
        }
    }
    candidates
}

/// Stage 3: a partial hash (head and tail) of files large enough that it
/// saves reading; returns the files whose partial hashes (or sizes, for
/// small files) still collide, to be hashed in full.
fn by_partial_hash(
    root: &Path,
    files: &[SourceFile],
    candidates: &[Vec<u32>],
    threads: usize,
    links: &mut Links,
    g: &mut Grouping,
) -> Vec<u32> {
    let jobs: Vec<u32> = candidates
        .iter()
        .flatten()
        .copied()
        .filter(|&i| files[i as usize].size > 2 * PARTIAL_BYTES)
        .collect();
    let partials = parallel_map(&jobs, threads, |&i| {
        let f = &files[i as usize];
        partial_hash(&f.path(root), f.size)
    });
    let mut partial_of: HashMap<u32, [u8; 32]> = HashMap::new();
    for (&i, r) in jobs.iter().zip(partials) {
        g.bytes_read += (2 * PARTIAL_BYTES).min(files[i as usize].size);
        match r {
            Ok(h) => {
                partial_of.insert(i, h);
            }
            Err(e) => {
                links.failed.insert(i, e);
            }
        }
    }
    let mut full = Vec::new();
    for reps in candidates {
        let mut by_partial: HashMap<Option<[u8; 32]>, Vec<u32>> = HashMap::new();
        for &r in reps {
            if !links.failed.contains_key(&r) {
                by_partial
                    .entry(partial_of.get(&r).copied())
                    .or_default()
                    .push(r);
            }
        }
        full.extend(by_partial.into_values().filter(|g| g.len() > 1).flatten());
    }
    full
}

/// Stage 4: full digests of `jobs`; files with equal SHA-256 are merged
/// into the first (in path order). In chunks, so the results waiting to be
/// sorted stay small; the digest index keys on 8 bytes of the SHA-256 and
/// confirms on the full value. A file whose digests `g` already holds (the
/// journal knew them) is not read.
fn by_full_hash(
    root: &Path,
    files: &[SourceFile],
    mut jobs: Vec<u32>,
    threads: usize,
    progress: &Phase,
    links: &mut Links,
    g: &mut Grouping,
) {
    jobs.sort_unstable();
    progress.inc_length(jobs.iter().map(|&i| files[i as usize].size).sum());
    let mut by_digest: HashMap<u64, u32> = HashMap::new();
    // Canonical files whose 8-byte prefix met another content's (rare).
    let mut rare: Vec<u32> = Vec::new();
    for chunk in jobs.chunks(HASH_CHUNK) {
        let known = &g.digests;
        let fulls = parallel_map(chunk, threads, |&i| match known.get(&i) {
            Some(d) => (Ok(*d), true),
            None => {
                let f = &files[i as usize];
                (hash_file(&f.path(root), f.size, progress), false)
            }
        });
        for (&i, (r, was_known)) in chunk.iter().zip(fulls) {
            if !was_known {
                g.bytes_read += files[i as usize].size;
            }
            let d = match r {
                Ok(d) => d,
                Err(e) => {
                    links.failed.insert(i, e);
                    continue;
                }
            };
            // Jobs are in path order, so the first one seen is canonical.
            let short = u64::from_le_bytes(d.sha256.0[..8].try_into().unwrap_or_default());
            let same = |c: &u32| g.digests.get(c).is_some_and(|cd| cd.sha256 == d.sha256);
            let canon = match by_digest.get(&short) {
                Some(c) if same(c) => Some(*c),
                Some(_) => rare.iter().find(|c| same(c)).copied(),
                None => None,
            };
            match canon {
                Some(c) => {
                    links.merged.insert(i, c);
                }
                None => {
                    if let std::collections::hash_map::Entry::Vacant(e) = by_digest.entry(short) {
                        e.insert(i);
                    } else {
                        rare.push(i);
                    }
                    g.digests.insert(i, d);
                }
            }
        }
    }
}

/// Resolves every file to its canonical file, or to its failure.
fn resolve(files: &[SourceFile], links: &Links, g: &mut Grouping) {
    g.canonical = Vec::with_capacity(files.len());
    for (i, &rep) in links.link.iter().enumerate() {
        if let Some(err) = links.failed.get(&rep) {
            g.canonical.push(None);
            let msg = if rep == i as u32 {
                err.to_string()
            } else {
                format!(
                    "hard link of {}, which could not be read: {err}",
                    files[rep as usize].rel
                )
            };
            g.failed.push((i as u32, io::Error::new(err.kind(), msg)));
        } else {
            g.canonical
                .push(Some(*links.merged.get(&rep).unwrap_or(&rep)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::scan::{ScanOptions, scan};
    use crate::stages::select::Selector;
    use std::fs;

    fn setup(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Vec<SourceFile>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let p = dir.path().join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        let list = rescan(dir.path());
        (dir, list)
    }

    fn rescan(root: &Path) -> Vec<SourceFile> {
        let opts = ScanOptions {
            root: root.to_path_buf(),
            selector: Selector::new(true, &[], &[]).unwrap(),
            follow_symlinks: false,
            prune: vec![],
        };
        scan(&opts, &Phase::hidden()).files
    }

    fn canon_names<'a>(files: &'a [SourceFile], g: &Grouping) -> Vec<(&'a str, &'a str)> {
        files
            .iter()
            .zip(&g.canonical)
            .map(|(f, c)| (&*f.rel, c.map_or("FAILED", |c| &*files[c as usize].rel)))
            .collect()
    }

    /// Groups with no full hashing asked for, 2 threads, no journal.
    fn group_plain(dir: &tempfile::TempDir, files: &[SourceFile]) -> Grouping {
        group(
            dir.path(),
            files,
            false,
            2,
            &Phase::hidden(),
            DigestTable::default(),
        )
    }

    #[test]
    fn unique_sizes_are_not_read() {
        let (dir, files) = setup(&[("a.jpg", b"1"), ("b.jpg", b"22"), ("c.jpg", b"333")]);
        let g = group_plain(&dir, &files);
        assert_eq!(g.bytes_read, 0);
        assert_eq!(g.digests.len(), 0);
        assert!((0..3).all(|i| g.is_canonical(i)));
    }

    #[test]
    fn same_size_different_content_is_not_a_duplicate() {
        let (dir, files) = setup(&[("a.jpg", b"abc"), ("b.jpg", b"abd"), ("z/c.jpg", b"abc")]);
        let g = group_plain(&dir, &files);
        assert_eq!(
            canon_names(&files, &g),
            [("a.jpg", "a.jpg"), ("b.jpg", "b.jpg"), ("z/c.jpg", "a.jpg")]
        );
        assert_eq!(g.digests[&0].sha256, Digests::of_bytes(b"abc").sha256);
    }

    #[test]
    fn large_files_differing_in_the_middle_need_the_full_hash() {
        let size = 3 * PARTIAL_BYTES as usize + 10;
        let a = vec![7u8; size];
        let mut b = a.clone();
        b[size / 2] = 8;
        let (dir, files) = setup(&[("a.mp4", &a), ("b.mp4", &b), ("c.mp4", &a)]);
        let g = group_plain(&dir, &files);
        assert_eq!(
            canon_names(&files, &g),
            [("a.mp4", "a.mp4"), ("b.mp4", "b.mp4"), ("c.mp4", "a.mp4")]
        );
        // Partial hashes, then the full read of all three.
        assert_eq!(g.bytes_read, 3 * 2 * PARTIAL_BYTES + 3 * size as u64);
    }

    #[test]
    fn partial_hash_alone_separates_different_heads() {
        let size = 3 * PARTIAL_BYTES as usize;
        let a = vec![1u8; size];
        let b = vec![2u8; size];
        let (dir, files) = setup(&[("a.mp4", &a), ("b.mp4", &b)]);
        let g = group_plain(&dir, &files);
        assert_eq!(g.bytes_read, 2 * 2 * PARTIAL_BYTES);
        assert!(g.is_canonical(0) && g.is_canonical(1));
    }

    #[test]
    fn hard_links_are_duplicates_without_reading() {
        let (dir, _) = setup(&[("a.jpg", b"same"), ("other.jpg", b"diff")]);
        fs::hard_link(dir.path().join("a.jpg"), dir.path().join("b.jpg")).unwrap();
        let files = rescan(dir.path());
        let g = group_plain(&dir, &files);
        let names = canon_names(&files, &g);
        assert_eq!(names[1], ("b.jpg", "a.jpg"));
        // a.jpg and other.jpg have the same size and distinct inodes: those
        // two are read; b.jpg is not.
        assert_eq!(g.bytes_read, 8);
    }

    #[test]
    fn zero_byte_files_are_one_content() {
        let (dir, files) = setup(&[("x/e1.jpg", b""), ("e2.jpg", b""), ("f.jpg", b"x")]);
        let g = group_plain(&dir, &files);
        assert_eq!(canon_names(&files, &g)[2], ("x/e1.jpg", "e2.jpg"));
        assert_eq!(g.bytes_read, 0);
    }

    #[test]
    fn hash_all_digests_every_canonical_file() {
        let (dir, files) = setup(&[("a.jpg", b"1"), ("b.jpg", b"22"), ("c.jpg", b"22")]);
        let g = group(
            dir.path(),
            &files,
            true,
            2,
            &Phase::hidden(),
            DigestTable::default(),
        );
        assert_eq!(g.digests.len(), 2);
        assert_eq!(g.digests[&0], Digests::of_bytes(b"1"));
        assert_eq!(g.canonical[2], Some(1));
    }

    #[test]
    fn known_digests_are_not_read_again() {
        let (dir, files) = setup(&[("a.jpg", b"same"), ("b.jpg", b"same"), ("c.jpg", b"uniq!")]);
        let mut known = DigestTable::default();
        known.insert(0, Digests::of_bytes(b"same"));
        known.insert(2, Digests::of_bytes(b"uniq!"));
        let g = group(dir.path(), &files, false, 2, &Phase::hidden(), known);
        assert_eq!(g.canonical, [Some(0), Some(0), Some(2)]);
        assert_eq!(g.bytes_read, 4, "only b.jpg is read");
        assert_eq!(g.digests[&2], Digests::of_bytes(b"uniq!"));

        // Known digests of a file that duplicates another are not kept.
        let mut known = DigestTable::default();
        for i in [0, 1] {
            known.insert(i, Digests::of_bytes(b"same"));
        }
        let g = group(dir.path(), &files, false, 2, &Phase::hidden(), known);
        assert_eq!(g.canonical, [Some(0), Some(0), Some(2)]);
        assert_eq!(g.bytes_read, 0, "both same-size files were known");
        assert_eq!(
            g.digests.keys().collect::<HashSet<u32>>(),
            HashSet::from([0]),
            "the unique size is not read, the duplicate's digests are dropped"
        );
    }

    #[test]
    fn a_file_that_vanishes_is_reported() {
        let (dir, files) = setup(&[("a.jpg", b"ab"), ("b.jpg", b"ab")]);
        fs::remove_file(dir.path().join("b.jpg")).unwrap();
        let g = group_plain(&dir, &files);
        assert_eq!(g.canonical, [Some(0), None]);
        assert_eq!(g.failed.len(), 1);
        assert_eq!(g.failed[0].1.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn parallel_map_keeps_order() {
        let v: Vec<u32> = (0..1000).collect();
        assert_eq!(
            parallel_map(&v, 4, |x| x * 2),
            v.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(parallel_map(&[] as &[u32], 4, |x| *x).is_empty());
    }

    #[test]
    fn hash_more_digests_what_is_asked_and_fails_a_file_with_its_duplicates() {
        let (dir, files) = setup(&[("a.jpg", b"same"), ("b.jpg", b"same"), ("c.jpg", b"uniq!")]);
        let mut g = group_plain(&dir, &files);
        assert!(!g.digests.contains_key(&2), "a unique size is not read");
        g.hash_more(dir.path(), &files, &[0, 2], 2);
        assert_eq!(g.digests[&2], Digests::of_bytes(b"uniq!"));
        assert_eq!(g.bytes_read, 8 + 5, "a.jpg was known from grouping");

        let mut g = group_plain(&dir, &files);
        g.digests.clear();
        fs::remove_file(dir.path().join("a.jpg")).unwrap();
        g.hash_more(dir.path(), &files, &[0], 2);
        assert_eq!(g.canonical[..2], [None, None], "b.jpg relied on a.jpg");
        assert_eq!(g.canonical[2], Some(2));
        assert_eq!(g.failed.len(), 2);
    }
}
