//! The file side of `offload` and `restore`: whether a file is still the
//! one that was uploaded, and moving it out of SOURCE_DIR and back so that,
//! whatever stops the process, it is always whole in one place.
//!
//! - On one file system a move is a rename: atomic.
//! - Across file systems the copy goes to a temporary name beside its
//!   destination, hashed as it is written, synced, compared with the
//!   journal's SHA-256, and only then given its name (and its directory
//!   synced); the original is removed last.
//! - A file put back never replaces one that is there: it is linked into
//!   place (`link` fails if the name exists), never renamed over it.
//!
//! Nothing here knows the journal or the store; `offload` and `restore` do.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::input::InputFile;
use crate::types::Sha256Digest;

/// What the file system says about a file now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Facts {
    fn of(m: &fs::Metadata) -> Self {
        Self {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ino: m.ino(),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        }
    }
}

/// A path's facts without following a link; `None` when nothing is there.
pub fn facts(path: &Path) -> io::Result<Option<(Facts, bool)>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some((Facts::of(&m), m.file_type().is_file()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the file at `path` is the one the journal recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sameness {
    Same(Facts),
    Missing,
    Changed(String),
}

/// Compares the file at `path` with what was recorded at its upload:
/// size, mtime and inode, and with `deep` its SHA-256.
pub fn compare(
    path: &Path,
    recorded: (u64, i64, u64),
    sha256: &Sha256Digest,
    deep: bool,
) -> io::Result<Sameness> {
    let (size, mtime_ns, ino) = recorded;
    let Some((now, regular)) = facts(path)? else {
        return Ok(Sameness::Missing);
    };
    if !regular {
        return Ok(Sameness::Changed("it is no longer a regular file".into()));
    }
    if now.size != size {
        return Ok(Sameness::Changed(format!(
            "its size is {} bytes, {size} at its upload",
            now.size
        )));
    }
    if now.mtime_ns != mtime_ns {
        return Ok(Sameness::Changed(
            "it was modified after its upload (mtime)".into(),
        ));
    }
    if now.ino != ino {
        return Ok(Sameness::Changed(
            "it was replaced after its upload (another inode)".into(),
        ));
    }
    if deep && sha256_of(path)?.1 != *sha256 {
        return Ok(Sameness::Changed(
            "its bytes differ from those uploaded (SHA-256)".into(),
        ));
    }
    Ok(Sameness::Same(now))
}

/// The size and SHA-256 of a file's bytes.
pub fn sha256_of(path: &Path) -> io::Result<(u64, Sha256Digest)> {
    let mut sha = Sha256::new();
    let size = InputFile::open(path)?.each_piece(1 << 20, |piece| {
        sha.update(piece);
        Ok(())
    })?;
    Ok((size, Sha256Digest(sha.finalize().into())))
}

/// A file left where it is, and why (`R`: offload's reasons, or restore's).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Kept<R> {
    pub path: String,
    pub reason: R,
    pub detail: String,
}

/// Why a move did not happen; the file is where it was.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Something else is at the destination; it is left alone.
    #[error("{0} already holds another file")]
    Occupied(String),
    /// The bytes read are not the journal's.
    #[error("{0}: its bytes differ from those uploaded (SHA-256)")]
    Mismatch(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> MoveError + '_ {
    move |source| MoveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How a file got to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// A rename (one file system).
    Renamed,
    /// Copied, synced and checked, then the original removed.
    Copied,
    /// An earlier, interrupted move had already put it there.
    AlreadyThere,
}

/// Moves `src` to `dst` (which must not exist, unless it already holds the
/// same bytes: the end of an interrupted copy). `sha256` is what the file
/// must hold.
pub fn move_to(src: &Path, dst: &Path, sha256: &Sha256Digest) -> Result<Moved, MoveError> {
    if fs::symlink_metadata(dst).is_ok() {
        let (_, theirs) = sha256_of(dst).map_err(io_at(dst))?;
        if theirs != *sha256 {
            return Err(MoveError::Occupied(dst.display().to_string()));
        }
        fs::remove_file(src).map_err(io_at(src))?;
        return Ok(Moved::AlreadyThere);
    }
    if let Some(dir) = dst.parent() {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
    }
    match fs::rename(src, dst) {
        Ok(()) => return Ok(Moved::Renamed),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
        Err(e) => return Err(io_at(src)(e)),
    }
    let facts = facts(src)
        .map_err(io_at(src))?
        .map(|(f, _)| f)
        .ok_or_else(|| io_at(src)(io::ErrorKind::NotFound.into()))?;
    copy_checked(src, dst, sha256, &facts, Place::Rename)?;
    fs::remove_file(src).map_err(io_at(src))?;
    sync_dir(src)?;
    Ok(Moved::Copied)
}

/// How a new file takes its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Renamed over a name known to be free.
    Rename,
    /// Linked, so that a file that appeared meanwhile is never replaced.
    NoClobber,
}

/// A file being written under a temporary name beside its destination,
/// hashed as it is written; removed unless [`NewFile::finish`] names it.
pub struct NewFile {
    tmp: PathBuf,
    dst: PathBuf,
    file: Option<File>,
    sha: Sha256,
}

impl NewFile {
    pub fn create(dst: &Path) -> Result<Self, MoveError> {
        if let Some(dir) = dst.parent() {
            fs::create_dir_all(dir).map_err(io_at(dir))?;
        }
        let name = dst
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dst.with_file_name(format!(".{name}.mediashift-partial"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_at(&tmp))?;
        Ok(Self {
            tmp,
            dst: dst.to_path_buf(),
            file: Some(file),
            sha: Sha256::new(),
        })
    }

    pub fn write(&mut self, b: &[u8]) -> Result<(), MoveError> {
        self.sha.update(b);
        match &mut self.file {
            Some(f) => f.write_all(b).map_err(io_at(&self.tmp)),
            None => Ok(()),
        }
    }

    /// Checks the bytes written against `sha256`, gives the file `facts`'
    /// mtime, mode and owner, syncs it, and names it.
    pub fn finish(
        mut self,
        sha256: &Sha256Digest,
        facts: &Facts,
        place: Place,
    ) -> Result<(), MoveError> {
        let sha = std::mem::replace(&mut self.sha, Sha256::new());
        if Sha256Digest(sha.finalize().into()) != *sha256 {
            return Err(MoveError::Mismatch(self.dst.display().to_string()));
        }
        let Some(file) = self.file.take() else {
            return Err(io_at(&self.tmp)(io::ErrorKind::NotFound.into()));
        };
        apply(&file, &self.tmp, facts)?;
        file.sync_all().map_err(io_at(&self.tmp))?;
        drop(file);
        match place {
            Place::Rename => fs::rename(&self.tmp, &self.dst).map_err(io_at(&self.dst))?,
            Place::NoClobber => match fs::hard_link(&self.tmp, &self.dst) {
                Ok(()) => fs::remove_file(&self.tmp).map_err(io_at(&self.tmp))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(MoveError::Occupied(self.dst.display().to_string()));
                }
                Err(e) => return Err(io_at(&self.dst)(e)),
            },
        }
        sync_dir(&self.dst)
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        // Named or not, the temporary name goes.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Copies `src` to `dst` through a [`NewFile`]: hashed as written, synced,
/// compared with `sha256`, given `facts`' mtime and mode, then named.
fn copy_checked(
    src: &Path,
    dst: &Path,
    sha256: &Sha256Digest,
    facts: &Facts,
    place: Place,
) -> Result<(), MoveError> {
    let mut from = InputFile::open(src).map_err(io_at(src))?;
    let mut to = NewFile::create(dst)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf).map_err(io_at(src))?;
        if n == 0 {
            break;
        }
        to.write(&buf[..n])?;
    }
    to.finish(sha256, facts, place)
}

/// Syncs the directory holding `path`, so a name given or taken survives
/// a power cut.
fn sync_dir(path: &Path) -> Result<(), MoveError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn system_time(mtime_ns: i64) -> SystemTime {
    if mtime_ns >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(mtime_ns as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(mtime_ns.unsigned_abs())
    }
}

/// Puts the file at `from` back at `to`, which must not exist: a link and
/// an unlink on one file system (no rename, which would replace a file
/// that appeared meanwhile), else a checked copy. The bytes are compared
/// with `sha256` first; mtime, mode and (when they differ and may be set)
/// owner are `facts`'.
pub fn put_back(
    from: &Path,
    to: &Path,
    sha256: &Sha256Digest,
    facts: &Facts,
) -> Result<Moved, MoveError> {
    let (_, theirs) = sha256_of(from).map_err(io_at(from))?;
    if theirs != *sha256 {
        return Err(MoveError::Mismatch(from.display().to_string()));
    }
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
    }
    let moved = match fs::hard_link(from, to) {
        Ok(()) => {
            fs::remove_file(from).map_err(io_at(from))?;
            Moved::Renamed
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(MoveError::Occupied(to.display().to_string()));
        }
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_checked(from, to, sha256, facts, Place::NoClobber)?;
            fs::remove_file(from).map_err(io_at(from))?;
            Moved::Copied
        }
        Err(e) => return Err(io_at(to)(e)),
    };
    settle(to, facts)?;
    Ok(moved)
}

/// Gives the file at `path` `facts`' mtime, mode and owner; syncs its
/// directory.
pub fn settle(path: &Path, facts: &Facts) -> Result<(), MoveError> {
    let file = File::open(path).map_err(io_at(path))?;
    apply(&file, path, facts)?;
    sync_dir(path)
}

/// Sets `facts`' mtime and mode on an open file, and its owner where it
/// differs and this process may set it (as root).
fn apply(file: &File, path: &Path, facts: &Facts) -> Result<(), MoveError> {
    file.set_modified(system_time(facts.mtime_ns))
        .map_err(io_at(path))?;
    file.set_permissions(fs::Permissions::from_mode(facts.mode))
        .map_err(io_at(path))?;
    let m = file.metadata().map_err(io_at(path))?;
    if (m.uid(), m.gid()) != (facts.uid, facts.gid) {
        match std::os::unix::fs::fchown(file, Some(facts.uid), Some(facts.gid)) {
            // Not root: the file belongs to whoever restores it.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            other => other.map_err(io_at(path))?,
        }
    }
    Ok(())
}

/// The inode now at `path`.
pub fn inode(path: &Path) -> io::Result<u64> {
    fs::symlink_metadata(path).map(|m| m.ino())
}

/// Removes the directories between `root` and `rel`'s file that are now
/// empty, deepest first; `root` itself never.
pub fn remove_empty_parents(root: &Path, rel: &str) {
    let mut dir = Path::new(rel).parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        // Fails (and stops) at the first directory that is not empty.
        if fs::remove_dir(root.join(d)).is_err() {
            return;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> Sha256Digest {
        Sha256Digest(Sha256::digest(b).into())
    }

    #[test]
    fn a_move_onto_the_same_bytes_finishes_and_onto_others_refuses() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("a"), d.path().join("q/a"));
        fs::write(&src, b"abc").unwrap();
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::write(&dst, b"xyz").unwrap();
        assert!(matches!(
            move_to(&src, &dst, &sha(b"abc")),
            Err(MoveError::Occupied(_))
        ));
        assert_eq!(fs::read(&src).unwrap(), b"abc");
        fs::write(&dst, b"abc").unwrap();
        assert_eq!(
            move_to(&src, &dst, &sha(b"abc")).unwrap(),
            Moved::AlreadyThere
        );
        assert!(!src.exists());
    }

    #[test]
    fn putting_back_never_replaces_a_file_and_checks_the_bytes() {
        let d = tempfile::tempdir().unwrap();
        let (q, to) = (d.path().join("q"), d.path().join("src/a"));
        fs::write(&q, b"abc").unwrap();
        let f = facts(&q).unwrap().unwrap().0;
        assert!(matches!(
            put_back(&q, &to, &sha(b"abd"), &f),
            Err(MoveError::Mismatch(_))
        ));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::write(&to, b"new").unwrap();
        assert!(matches!(
            put_back(&q, &to, &sha(b"abc"), &f),
            Err(MoveError::Occupied(_))
        ));
        assert_eq!(fs::read(&to).unwrap(), b"new");
        fs::remove_file(&to).unwrap();
        put_back(&q, &to, &sha(b"abc"), &f).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"abc");
        assert!(!q.exists());
    }

    #[test]
    fn a_checked_write_with_other_bytes_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("x/y");
        let f = Facts {
            size: 3,
            mtime_ns: 1_500_000_000_123_456_789,
            ino: 0,
            mode: 0o640,
            uid: 0,
            gid: 0,
        };
        let write = |b: &[u8]| {
            let mut n = NewFile::create(&dst).unwrap();
            n.write(b).unwrap();
            n.finish(&sha(b"abc"), &f, Place::NoClobber)
        };
        assert!(matches!(write(b"abd"), Err(MoveError::Mismatch(_))));
        assert_eq!(fs::read_dir(d.path().join("x")).unwrap().count(), 0);
        write(b"abc").unwrap();
        assert!(matches!(write(b"abc"), Err(MoveError::Occupied(_))));
        assert_eq!(fs::read_dir(d.path().join("x")).unwrap().count(), 1);
        let now = facts(&dst).unwrap().unwrap().0;
        assert_eq!((now.mtime_ns, now.mode), (f.mtime_ns, 0o640));
    }

    #[test]
    fn empty_parents_go_up_to_the_root_only() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/b/c")).unwrap();
        fs::write(d.path().join("a/keep"), b"").unwrap();
        remove_empty_parents(d.path(), "a/b/c/file");
        assert!(!d.path().join("a/b").exists());
        assert!(d.path().join("a/keep").exists());
        fs::remove_file(d.path().join("a/keep")).unwrap();
        remove_empty_parents(d.path(), "a/file");
        assert!(!d.path().join("a").exists());
        assert!(d.path().exists());
    }
}
