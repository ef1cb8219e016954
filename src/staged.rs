//! Files that appear whole or not at all: written under a temporary name
//! beside their final one, synced, and renamed over it only when complete.
//! A reader (nginx loading a map, an import reading a rewritten dump) sees
//! the old file or the new one, never half; a run that fails or is killed
//! midway leaves the old one in place.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written under a temporary name; [`Staged::commit`] puts it
/// in place, dropping it uncommitted removes it.
pub struct Staged {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl Staged {
    pub fn create(path: &Path) -> io::Result<Self> {
        let name = path
            .file_name()
            .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(".{name}.mediashift-{}", std::process::id()));
        let file = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the file was already finished"))
    }

    /// Syncs and renames it into place (on failure the temporary file is
    /// removed and the old one stays).
    pub fn commit(mut self) -> io::Result<()> {
        let result = (|| {
            if let Some(w) = self.file.take() {
                let f = w.into_inner().map_err(|e| e.into_error())?;
                f.sync_all()?;
            }
            std::fs::rename(&self.tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_file_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.csv");
        std::fs::write(&path, "old").unwrap();

        let mut s = Staged::create(&path).unwrap();
        s.write_all(b"new").unwrap();
        s.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        drop(s);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );

        let mut s = Staged::create(&path).unwrap();
        s.write_all(b"new").unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
