//! Walking SOURCE_DIR: which files exist, how big they are, and which ones
//! could not be taken and why.
//!
//! The walk keeps only what later stages need (relative path, size, inode,
//! mtime), never file contents, so a tree of millions of files costs about a
//! hundred bytes per file. Every file that is not taken is accounted for by
//! reason: policy skips (not media, excluded, symlink) are counted with a few
//! examples; problems (unreadable, not valid UTF-8, vanished) are all listed
//! by name, because each is a file the migration would otherwise lose.
//!
//! Directories are read in order by one thread (walkdir, sorted by name);
//! the files it takes are stat-ed in batches by several threads, since on a
//! cold disk or an NFS mount each stat is a wait of its own. The output is
//! sorted by path, so it does not depend on which thread finished first.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use walkdir::WalkDir;

use crate::progress::Phase;
use crate::stages::select::{Selector, Verdict};

/// One file that the run takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to SOURCE_DIR with `/` separators; valid UTF-8.
    pub rel: Box<str>,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
}

impl SourceFile {
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join(&*self.rel)
    }
}

/// Why a file was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    NotMedia,
    Excluded,
    Symlink,
    Unreadable,
    NotUtf8,
    Vanished,
}

impl SkipReason {
    /// Problems are files the user wanted but that cannot be handled: they
    /// are all listed and make the exit code 1. The others are policy.
    pub fn is_problem(self) -> bool {
        matches!(self, Self::Unreadable | Self::NotUtf8 | Self::Vanished)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::NotMedia => "not media",
            Self::Excluded => "excluded",
            Self::Symlink => "symlink",
            Self::Unreadable => "unreadable",
            Self::NotUtf8 => "not valid UTF-8",
            Self::Vanished => "vanished",
        }
    }
}

/// A skipped file, by (escaped) name, with what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Counts and examples of skipped files for one reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SkipGroup {
    pub count: u64,
    pub examples: Vec<Skipped>,
}

/// How many examples of a policy skip are kept (problems keep all).
pub const POLICY_EXAMPLES: usize = 5;

/// Every skipped file, grouped by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SkipLog(pub BTreeMap<SkipReason, SkipGroup>);

impl SkipLog {
    pub fn add(&mut self, reason: SkipReason, path: String, detail: String) {
        let group = self.0.entry(reason).or_default();
        group.count += 1;
        if reason.is_problem() || group.examples.len() < POLICY_EXAMPLES {
            group.examples.push(Skipped { path, detail });
        }
    }

    #[cfg(test)]
    pub fn count(&self, reason: SkipReason) -> u64 {
        self.0.get(&reason).map_or(0, |g| g.count)
    }

    pub fn problems(&self) -> impl Iterator<Item = (SkipReason, &Skipped)> {
        self.0
            .iter()
            .filter(|(r, _)| r.is_problem())
            .flat_map(|(r, g)| g.examples.iter().map(move |s| (*r, s)))
    }

    pub fn problem_count(&self) -> u64 {
        self.0
            .iter()
            .filter(|(r, _)| r.is_problem())
            .map(|(_, g)| g.count)
            .sum()
    }
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Taken files, sorted by `rel` (byte order).
    pub files: Vec<SourceFile>,
    pub skipped: SkipLog,
}

/// What to walk and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// SOURCE_DIR, canonicalized.
    pub root: PathBuf,
    pub selector: Selector,
    pub follow_symlinks: bool,
    /// Directories never entered (mediashift's state and map directories),
    /// by path and, where they exist, by identity (device and inode), so a
    /// second name for one of them (a symlink followed) is not entered
    /// either.
    pub prune: Vec<PathBuf>,
}

/// Escapes a path for display: invalid UTF-8 bytes as `\xNN`, control
/// characters as Rust escapes, so every name prints on one line.
pub fn escape_path(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// `access(R_OK)`: one syscall, where opening would cost two and could
/// block on a FIFO swapped in after the walk.
#[allow(unsafe_code)]
fn readable(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::R_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn io_reason(err: &io::Error) -> SkipReason {
    if err.kind() == io::ErrorKind::NotFound {
        SkipReason::Vanished
    } else {
        SkipReason::Unreadable
    }
}

/// Walks the tree. Never fails as a whole: anything that goes wrong is
/// recorded against the path it concerns.
pub fn scan(opts: &ScanOptions, progress: &Phase) -> ScanResult {
    let root = &opts.root;
    let mut result = ScanResult::default();
    let pruned: Vec<(u64, u64)> = opts
        .prune
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let keep = |e: &walkdir::DirEntry| {
        !e.file_type().is_dir()
            || !(opts.prune.iter().any(|p| p == e.path())
                || (!pruned.is_empty()
                    && e.metadata()
                        .is_ok_and(|m| pruned.contains(&(m.dev(), m.ino())))))
    };
    let walker = WalkDir::new(root)
        .follow_links(opts.follow_symlinks)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(keep);

    // Names taken, waiting for their stat (done in parallel batches).
    let mut pending: Vec<Box<str>> = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                let path = err
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.clone());
                let shown = escape_path(path.strip_prefix(root).unwrap_or(&path));
                if let Some(ancestor) = err.loop_ancestor() {
                    let detail = format!("symlink loop back to {}", escape_path(ancestor));
                    result.skipped.add(SkipReason::Symlink, shown, detail);
                } else if err
                    .io_error()
                    .and_then(io::Error::raw_os_error)
                    .is_some_and(|code| code == libc::ELOOP)
                {
                    // Links that lead to each other: nothing to upload.
                    let detail = "symlink loop: its links lead back to each other".to_string();
                    result.skipped.add(SkipReason::Symlink, shown, detail);
                } else if path
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink())
                    && err
                        .io_error()
                        .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
                {
                    let detail = "broken symlink: its target does not exist".to_string();
                    result.skipped.add(SkipReason::Unreadable, shown, detail);
                } else {
                    let io = err.io_error();
                    let reason = io.map_or(SkipReason::Unreadable, io_reason);
                    let detail = io.map_or_else(|| err.to_string(), |e| e.to_string());
                    result.skipped.add(reason, shown, detail);
                }
                continue;
            }
        };
        if entry.depth() == 0 || entry.file_type().is_dir() {
            continue;
        }
        progress.inc(1);
        let rel_path = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let rel = rel_path.to_str();
        let name_for_rules = rel.map_or_else(|| escape_path(rel_path), str::to_string);
        // A link to a directory is a symlink whatever its name.
        if entry.path_is_symlink() && !opts.follow_symlinks && entry.path().is_dir() {
            let detail = "link to a directory; use --follow-symlinks to walk it".to_string();
            result
                .skipped
                .add(SkipReason::Symlink, name_for_rules, detail);
            continue;
        }
        // Decide on the name first: a non-media file with a bad name is not a
        // problem, just not media.
        match opts.selector.verdict(&name_for_rules) {
            Verdict::Take => {}
            Verdict::NotMedia => {
                result
                    .skipped
                    .add(SkipReason::NotMedia, name_for_rules, String::new());
                continue;
            }
            Verdict::Excluded => {
                result
                    .skipped
                    .add(SkipReason::Excluded, name_for_rules, String::new());
                continue;
            }
        }
        if entry.path_is_symlink() && !opts.follow_symlinks {
            let target = std::fs::read_link(entry.path())
                .map(|t| {
                    format!(
                        "points to {}; use --follow-symlinks to take it",
                        escape_path(&t)
                    )
                })
                .unwrap_or_default();
            result
                .skipped
                .add(SkipReason::Symlink, name_for_rules, target);
            continue;
        }
        let Some(rel) = rel else {
            result.skipped.add(
                SkipReason::NotUtf8,
                name_for_rules,
                "S3 keys must be valid UTF-8; rename the file".into(),
            );
            continue;
        };
        if !entry.file_type().is_file() {
            result.skipped.add(
                SkipReason::Unreadable,
                name_for_rules,
                "not a regular file (device, FIFO or socket)".into(),
            );
            continue;
        }
        pending.push(rel.into());
        if pending.len() == STAT_BATCH {
            settle(root, std::mem::take(&mut pending), &mut result);
        }
    }
    settle(root, pending, &mut result);
    result.files.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    result
}

/// Files whose names the walk took, stat-ed together.
const STAT_BATCH: usize = 4096;
/// Threads that stat a batch. Each stat waits on the disk when its inode is
/// not cached (a cold disk, an NFS mount: a round trip each), so more
/// threads than cores pay off; on a warm cache they cost little.
const STAT_THREADS: usize = 8;

/// What the stat of a taken name found.
enum Stat {
    File(SourceFile),
    Skip(SkipReason, String),
}

/// Stats `rels` on [`STAT_THREADS`] threads and records each, in order.
fn settle(root: &Path, rels: Vec<Box<str>>, result: &mut ScanResult) {
    if rels.is_empty() {
        return;
    }
    let threads = STAT_THREADS.min(rels.len().div_ceil(64)).max(1);
    let chunk = rels.len().div_ceil(threads);
    let stats: Vec<Vec<Stat>> = std::thread::scope(|s| {
        let handles: Vec<_> = rels
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|rel| stat(root, rel)).collect()))
            .collect();
        handles
            .into_iter()
            .zip(rels.chunks(chunk))
            .map(|(h, part)| {
                h.join().unwrap_or_else(|_| {
                    part.iter()
                        .map(|_| Stat::Skip(SkipReason::Unreadable, "the stat failed".into()))
                        .collect()
                })
            })
            .collect()
    });
    for (rel, st) in rels.into_iter().zip(stats.into_iter().flatten()) {
        match st {
            Stat::File(f) => result.files.push(f),
            Stat::Skip(reason, detail) => result.skipped.add(reason, rel.into(), detail),
        }
    }
}

/// Size, identity and mtime of a taken file, and whether it can be read
/// (it follows a symlink only where the walk did).
fn stat(root: &Path, rel: &str) -> Stat {
    let path = root.join(rel);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(err) => return Stat::Skip(io_reason(&err), err.to_string()),
    };
    if let Err(err) = readable(&path) {
        return Stat::Skip(io_reason(&err), err.to_string());
    }
    Stat::File(SourceFile {
        rel: rel.into(),
        size: meta.len(),
        dev: meta.dev(),
        ino: meta.ino(),
        mtime_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::fs;

    fn opts(root: &Path, follow: bool) -> ScanOptions {
        ScanOptions {
            root: root.canonicalize().unwrap(),
            selector: Selector::new(false, &[], &[]).unwrap(),
            follow_symlinks: follow,
            prune: vec![],
        }
    }

    fn rels(r: &ScanResult) -> Vec<&str> {
        r.files.iter().map(|f| &*f.rel).collect()
    }

    #[test]
    fn takes_media_and_accounts_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/x.jpg"), b"jpg").unwrap();
        fs::write(root.join("a/readme.txt"), b"txt").unwrap();
        fs::write(root.join("Z.PNG"), b"").unwrap();
        fs::write(root.join(OsStr::from_bytes(b"bad\xff.jpg")), b"x").unwrap();
        fs::write(root.join(OsStr::from_bytes(b"bad\xff.txt")), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("a/b/x.jpg"), root.join("link.jpg")).unwrap();

        let r = scan(&opts(root, false), &Phase::hidden());
        assert_eq!(rels(&r), ["Z.PNG", "a/b/x.jpg"]);
        assert_eq!(r.files[0].size, 0);
        assert_eq!(r.skipped.count(SkipReason::NotMedia), 2);
        assert_eq!(r.skipped.count(SkipReason::Symlink), 1);
        let bad: Vec<_> = r.skipped.problems().collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, SkipReason::NotUtf8);
        assert_eq!(bad[0].1.path, "bad\\xFF.jpg");
    }

    #[test]
    fn follows_symlinks_on_request_and_reports_loops() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/x.jpg"), b"jpg").unwrap();
        std::os::unix::fs::symlink(root.join("d/x.jpg"), root.join("link.jpg")).unwrap();
        std::os::unix::fs::symlink(root.join("d"), root.join("d/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("missing.jpg"), root.join("dangling.jpg")).unwrap();
        // Two links that lead to each other.
        std::os::unix::fs::symlink(root.join("pong.jpg"), root.join("ping.jpg")).unwrap();
        std::os::unix::fs::symlink(root.join("ping.jpg"), root.join("pong.jpg")).unwrap();

        let r = scan(&opts(root, true), &Phase::hidden());
        assert_eq!(rels(&r), ["d/x.jpg", "link.jpg"]);
        assert_eq!(
            r.files[0].ino, r.files[1].ino,
            "a followed link is the same inode"
        );
        let symlinks = &r.skipped.0[&SkipReason::Symlink];
        assert_eq!(symlinks.count, 3, "{symlinks:?}");
        for e in &symlinks.examples {
            assert!(e.detail.contains("loop"), "{symlinks:?}");
        }
        let unreadable = &r.skipped.0[&SkipReason::Unreadable];
        assert_eq!(
            unreadable.count, 1,
            "a loop is not a broken link: {unreadable:?}"
        );
        assert_eq!(unreadable.examples[0].path, "dangling.jpg");
        assert!(unreadable.examples[0].detail.contains("broken symlink"));
    }

    #[test]
    fn pruned_directories_are_not_entered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join(".mediashift")).unwrap();
        fs::write(root.join(".mediashift/journal.jpg"), b"x").unwrap();
        fs::write(root.join("a.jpg"), b"x").unwrap();
        let mut o = opts(&root, false);
        o.prune.push(root.join(".mediashift"));
        let r = scan(&o, &Phase::hidden());
        assert_eq!(rels(&r), ["a.jpg"]);
    }

    #[test]
    fn a_pruned_directory_is_known_by_its_identity_too() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("state")).unwrap();
        fs::write(root.join("state/journal.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("state"), root.join("link")).unwrap();
        fs::write(root.join("a.jpg"), b"x").unwrap();
        let mut o = opts(&root, true);
        o.prune.push(root.join("state"));
        let r = scan(&o, &Phase::hidden());
        assert_eq!(rels(&r), ["a.jpg"], "not entered under its other name");
    }

    #[test]
    #[allow(unsafe_code)]
    fn fifos_are_reported_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.jpg");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let r = scan(&opts(dir.path(), false), &Phase::hidden());
        assert!(r.files.is_empty());
        assert_eq!(r.skipped.count(SkipReason::Unreadable), 1);
    }

    #[test]
    fn escaping_keeps_one_line() {
        assert_eq!(escape_path(Path::new("a\nb.jpg")), "a\\nb.jpg");
        assert_eq!(
            escape_path(Path::new(OsStr::from_bytes(b"\xe9t\xe9.jpg"))),
            "\\xE9t\\xE9.jpg"
        );
    }

    #[test]
    fn batches_stat_in_parallel_keep_every_file_and_its_facts() {
        // More files than one batch, in several folders, sizes all different.
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for i in 0..(STAT_BATCH + 700) {
            let rel = format!("d{}/f{i:05}.jpg", i % 7);
            let path = dir.path().join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, vec![0u8; i % 300]).unwrap();
            expected.push((rel, (i % 300) as u64));
        }
        expected.sort();
        let r = scan(&opts(dir.path(), false), &Phase::default());
        let got: Vec<(String, u64)> = r
            .files
            .iter()
            .map(|f| (f.rel.to_string(), f.size))
            .collect();
        assert_eq!(got, expected);
        let inodes: std::collections::HashSet<u64> = r.files.iter().map(|f| f.ino).collect();
        assert_eq!(inodes.len(), r.files.len(), "each file's own inode");
        assert!(r.skipped.0.is_empty(), "{:?}", r.skipped);
    }
}
