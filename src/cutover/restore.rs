//! The restore stage: offloaded files put back at their paths in
//! SOURCE_DIR, from the quarantine or downloaded from the bucket.
//!
//! Each file's bytes are checked against the journal's SHA-256 before it
//! takes its name, and it gets back its mtime, mode and (as root) owner. A
//! file that exists again at its path (the application wrote a new one) is
//! never replaced: it is reported. The journal then forgets the offload,
//! so `status` stops counting the file and a later `offload` can take it
//! again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::files::{self, Facts, MoveError, NewFile, Place};
use crate::error::Result;
use crate::journal::{FileRow, OffloadRow, Record, Recorder};
use crate::progress::Progress;
use crate::settings::RestoreSettings;
use crate::stages::fan;
use crate::store::ObjectStore;
use crate::types::Sha256Digest;

/// Why a file was not put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A file is at its path again; it is left alone.
    Exists,
    QuarantineMissing,
    /// The quarantine's copy is not the file's bytes.
    QuarantineDiffers,
    ObjectMissing,
    /// The downloaded bytes are not the file's.
    ObjectDiffers,
    Error,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Self::Exists => "exists",
            Self::QuarantineMissing => "quarantine missing",
            Self::QuarantineDiffers => "quarantine differs",
            Self::ObjectMissing => "object missing",
            Self::ObjectDiffers => "object differs",
            Self::Error => "error",
        }
    }
}

/// A file not put back, and why.
pub type Kept = super::files::Kept<Reason>;

/// A file put back.
#[derive(Debug, Clone, Serialize)]
pub struct Back {
    pub path: String,
    pub size: u64,
    /// The quarantine path or the object's URL it came from.
    pub from: String,
}

#[derive(Debug, Default)]
pub struct Restored {
    pub restored: Vec<Back>,
    pub kept: Vec<Kept>,
}

/// One file to put back: its offload, what it must hold, its object.
pub struct Wanted {
    offload: OffloadRow,
    sha256: Sha256Digest,
    key: Option<String>,
}

impl Wanted {
    fn facts(&self) -> Facts {
        let o = &self.offload;
        Facts {
            size: o.size,
            mtime_ns: o.mtime_ns,
            ino: 0,
            mode: o.mode,
            uid: o.uid,
            gid: o.gid,
        }
    }
}

/// Where `restore` takes the files from.
pub enum Source<'a, S> {
    Quarantine(&'a Path),
    /// Downloads from `store`, the bucket `bucket`.
    Bucket {
        store: &'a S,
        bucket: &'a str,
    },
}

impl Restored {
    /// The lists in path order, for the report.
    pub fn sorted(mut self) -> Self {
        self.restored.sort_by(|a, b| a.path.cmp(&b.path));
        self.kept.sort_by(|a, b| a.path.cmp(&b.path));
        self
    }
}

/// The offloaded files to put back (`--only` applied), each with what it
/// must hold and its object; those the journal cannot check are kept.
pub fn wanted(
    settings: &RestoreSettings,
    rows: Vec<FileRow>,
    offloads: HashMap<String, OffloadRow>,
    doc: &mut Restored,
) -> Vec<Wanted> {
    let rows: HashMap<String, FileRow> = rows.into_iter().map(|r| (r.path.clone(), r)).collect();
    let mut wanted = Vec::new();
    let mut offloads: Vec<OffloadRow> = offloads.into_values().collect();
    offloads.sort_by(|a, b| a.path.cmp(&b.path));
    for o in offloads {
        if settings.only.as_ref().is_some_and(|r| !r.matches(&o.path)) {
            continue;
        }
        // An offload stopped before its move: the file never left.
        if !o.done && settings.source.join(&o.path).symlink_metadata().is_ok() {
            continue;
        }
        match rows.get(&o.path).and_then(|r| r.digests.map(|d| (d, r))) {
            Some((d, r)) => wanted.push(Wanted {
                sha256: d.sha256,
                key: r.key.clone(),
                offload: o,
            }),
            None => doc.kept.push(Kept {
                path: o.path.clone(),
                reason: Reason::Error,
                detail: "the journal has no SHA-256 for it to check its bytes against".into(),
            }),
        }
    }
    wanted
}

/// Puts every wanted file back from `from`, recording each with `rec`.
pub async fn put_back<S: ObjectStore>(
    settings: &RestoreSettings,
    from: Source<'_, S>,
    wanted: Vec<Wanted>,
    rec: &Recorder,
    progress: &Progress,
    doc: &mut Restored,
) -> Result<()> {
    let root = &settings.source;
    let bar = progress.items("restoring", wanted.len() as u64);
    match from {
        Source::Quarantine(q) => {
            tokio::task::block_in_place(|| {
                for w in &wanted {
                    from_quarantine(root, q, w, rec, doc);
                    bar.inc(1);
                }
            });
        }
        Source::Bucket { store, bucket } => {
            let wanted = Arc::new(wanted);
            fan::at_most(
                settings.concurrency,
                "a download",
                0..wanted.len(),
                |i| {
                    let (store, wanted, root) = (store.clone(), wanted.clone(), root.clone());
                    async move { (i, download(&store, &root, &wanted[i]).await) }
                },
                |(i, outcome)| {
                    let w = &wanted[i];
                    let url = format!("s3://{bucket}/{}", w.key.as_deref().unwrap_or_default());
                    settle(root, w, outcome.map(|()| url), rec, doc);
                    bar.inc(1);
                    Ok(())
                },
            )
            .await?;
        }
    }
    bar.finish();
    Ok(())
}

type Outcome = std::result::Result<(), Kept>;

fn kept(w: &Wanted, reason: Reason, detail: impl Into<String>) -> Kept {
    Kept {
        path: w.offload.path.clone(),
        reason,
        detail: detail.into(),
    }
}

/// What a failed move means for the file.
fn kept_for(w: &Wanted, e: MoveError, differs: Reason) -> Kept {
    match e {
        MoveError::Occupied(_) => kept(
            w,
            Reason::Exists,
            "a file is at its path again; it is left as it is",
        ),
        MoveError::Mismatch(_) => kept(w, differs, e.to_string()),
        MoveError::Io { .. } => kept(w, Reason::Error, e.to_string()),
    }
}

/// Records a file put back (or why not).
fn settle(
    root: &Path,
    w: &Wanted,
    outcome: std::result::Result<String, Kept>,
    rec: &Recorder,
    doc: &mut Restored,
) {
    match outcome {
        Ok(from) => {
            let path = root.join(&w.offload.path);
            match files::inode(&path) {
                Ok(ino) => {
                    rec.record(Record::Restored {
                        path: w.offload.path.clone(),
                        ino,
                    });
                    doc.restored.push(Back {
                        path: w.offload.path.clone(),
                        size: w.offload.size,
                        from,
                    });
                }
                Err(e) => doc.kept.push(kept(
                    w,
                    Reason::Error,
                    format!("{}: put back, then unreadable: {e}", path.display()),
                )),
            }
        }
        Err(k) => doc.kept.push(k),
    }
}

fn from_quarantine(root: &Path, q: &Path, w: &Wanted, rec: &Recorder, doc: &mut Restored) {
    let rel = &w.offload.path;
    let (from, to) = (q.join(rel), root.join(rel));
    let outcome = if to.symlink_metadata().is_ok() {
        Err(kept(
            w,
            Reason::Exists,
            "a file is at its path again; it is left as it is",
        ))
    } else if from.symlink_metadata().is_err() {
        Err(kept(
            w,
            Reason::QuarantineMissing,
            format!("{} is not there", from.display()),
        ))
    } else {
        files::put_back(&from, &to, &w.sha256, &w.facts())
            .map(|_| {
                files::remove_empty_parents(q, rel);
                from.display().to_string()
            })
            .map_err(|e| kept_for(w, e, Reason::QuarantineDiffers))
    };
    settle(root, w, outcome, rec, doc);
}

/// Downloads the file's object into a new file at its path.
async fn download<S: ObjectStore>(store: &S, root: &Path, w: &Wanted) -> Outcome {
    let to: PathBuf = root.join(&w.offload.path);
    if to.symlink_metadata().is_ok() {
        return Err(kept(
            w,
            Reason::Exists,
            "a file is at its path again; it is left as it is",
        ));
    }
    let Some(key) = &w.key else {
        return Err(kept(
            w,
            Reason::ObjectMissing,
            "the journal names no object for it",
        ));
    };
    let mut file = NewFile::create(&to).map_err(|e| kept(w, Reason::Error, e.to_string()))?;
    let mut failed: Option<MoveError> = None;
    let got = store
        .download(key, |b| {
            file.write(b).map_err(|e| {
                let shown = std::io::Error::other(e.to_string());
                failed = Some(e);
                shown
            })
        })
        .await;
    if let Some(e) = failed {
        return Err(kept(w, Reason::Error, e.to_string()));
    }
    match got {
        Ok(Some((len, sha))) if len == w.offload.size && sha == w.sha256 => file
            .finish(&w.sha256, &w.facts(), Place::NoClobber)
            .map_err(|e| kept_for(w, e, Reason::ObjectDiffers)),
        Ok(Some((len, _))) => Err(kept(
            w,
            Reason::ObjectDiffers,
            format!(
                "object {key}: {len} bytes downloaded whose SHA-256 is not the file's ({} bytes)",
                w.offload.size
            ),
        )),
        Ok(None) => Err(kept(
            w,
            Reason::ObjectMissing,
            format!("no object {key} in the bucket"),
        )),
        Err(e) => Err(kept(w, Reason::Error, e.to_string())),
    }
}
