//! The offload stage: which files may leave SOURCE_DIR and their moves.
//!
//! Only files the journal holds as verified are considered. For each
//! object the store is asked again (HeadObject with checksums, `--deep` a
//! download), by the rules of `stages::verify`; an object without proof is
//! never a reason to delete. Then each of its files that is unchanged since
//! its upload (size, mtime, inode; `--deep` its SHA-256) is moved to the
//! quarantine or deleted.
//!
//! Crash safety: before a file moves, the journal records the intent
//! (committed), and after, the deed. A run that finds an intent without a
//! deed looks where the file is (`settle_interrupted`): gone from
//! SOURCE_DIR (and whole in the quarantine) means done; still there means
//! not done, and it is considered again. A file is never in neither place:
//! a rename is atomic, and a copy across file systems is checked and synced
//! before the original is removed (`files`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use super::files::{self, MoveError, Sameness};
use crate::error::Result;
use crate::journal::{FileRow, FileState, Journal, OffloadRow, Record, Recorder};
use crate::progress::Progress;
use crate::settings::{OffloadSettings, OffloadTo};
use crate::stages::fan;
use crate::stages::verify::{self, Proof};
use crate::store::{ObjectStore, StoreError};

/// Why a file stays in SOURCE_DIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Its size, mtime or inode (or, `--deep`, bytes) changed, or it is gone.
    ChangedSinceUpload,
    ObjectMissing,
    /// The object's checksum or size disagrees with the file.
    ObjectDiffers,
    /// Nothing the store returns proves the object holds the bytes.
    NoProof,
    /// The journal does not hold it as verified (failed, or not uploaded yet).
    NotMigrated,
    /// The quarantine already holds another file at its path.
    QuarantineOccupied,
    /// Asking the store, or moving the file, failed.
    Error,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Self::ChangedSinceUpload => "changed since upload",
            Self::ObjectMissing => "object missing",
            Self::ObjectDiffers => "object differs",
            Self::NoProof => "no proof",
            Self::NotMigrated => "not migrated",
            Self::QuarantineOccupied => "quarantine occupied",
            Self::Error => "error",
        }
    }
}

/// A file offload left where it is.
pub type Kept = super::files::Kept<Reason>;

/// A file offloaded (or, in a dry run, that would be).
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    pub path: String,
    pub size: u64,
    /// Its quarantine path; `None` when deleted.
    pub to: Option<String>,
}

/// What `offload` did.
#[derive(Debug, Default)]
pub struct Offloaded {
    pub endpoint: String,
    pub offloaded: Vec<Moved>,
    pub kept: Vec<Kept>,
    /// Files an earlier offload took (nothing to do for them).
    pub already: u64,
    /// Files an interrupted offload had moved, recorded now.
    pub recovered: u64,
}

impl Offloaded {
    /// The lists in path order, for the report.
    pub fn sorted(mut self) -> Self {
        self.offloaded.sort_by(|a, b| a.path.cmp(&b.path));
        self.kept.sort_by(|a, b| a.path.cmp(&b.path));
        self
    }
}

/// The files to offload, by the object they share (its key).
pub type ByObject<'r> = BTreeMap<&'r str, Vec<&'r FileRow>>;

/// The files of the journal that may go, by their object: verified, not
/// gone already, not excluded. The others are kept, as not migrated.
pub fn candidates<'r>(
    settings: &OffloadSettings,
    rows: &'r [FileRow],
    gone: &HashSet<String>,
    doc: &mut Offloaded,
) -> ByObject<'r> {
    let mut by_key: ByObject<'r> = BTreeMap::new();
    for row in rows {
        if gone.contains(&row.path) || settings.excluded(&row.path) {
            continue;
        }
        match (&row.key, row.state, row.digests) {
            (Some(key), FileState::Verified, Some(_)) => {
                by_key.entry(key).or_default().push(row);
            }
            _ => doc.kept.push(Kept {
                path: row.path.clone(),
                reason: Reason::NotMigrated,
                detail: match &row.error {
                    Some(e) => format!("the journal holds it as {}: {e}", row.state.as_str()),
                    None => format!("the journal holds it as {}", row.state.as_str()),
                },
            }),
        }
    }
    by_key
}

/// Proves each object now, `settings.concurrency` at a time, and moves its
/// files as soon as its proof is in (while the other checks are in flight).
/// `rec` is `None` in a dry run: nothing moves, the report says what would.
pub async fn prove_and_free<S: ObjectStore>(
    store: &S,
    settings: &OffloadSettings,
    journal: &Journal,
    rec: Option<&Recorder>,
    by_key: &ByObject<'_>,
    progress: &Progress,
    doc: &mut Offloaded,
) -> Result<()> {
    let bar = progress.items(
        if settings.dry_run {
            "checking"
        } else {
            "offloading"
        },
        by_key.values().map(|f| f.len() as u64).sum(),
    );
    let deep = settings.deep;
    fan::at_most(
        settings.concurrency,
        "a check",
        by_key,
        |(key, files)| {
            // The object as the canonical file (the first path) uploaded it.
            let first = files[0];
            let (store, key) = (store.clone(), key.to_string());
            let (size, digests, checksum) = (first.size, first.digests, first.checksum.clone());
            async move {
                let proof =
                    verify::prove_now(&store, &key, size, digests, checksum.as_deref(), deep).await;
                (key, proof)
            }
        },
        |(key, proof)| {
            let files = &by_key[key.as_str()];
            // Local file work, done while the other checks are in flight.
            tokio::task::block_in_place(|| {
                offload_files(settings, journal, rec, files, proof, doc)
            })?;
            bar.inc(files.len() as u64);
            Ok(())
        },
    )
    .await?;
    bar.finish();
    Ok(())
}

/// Media files in SOURCE_DIR that the journal does not know (added since
/// the migration, or never selected): kept, as not migrated. Files that are
/// not media (`.htaccess`, scripts) are not mediashift's business unless a
/// migration took them (`--all-files`), and the state directory is skipped.
pub fn strangers(settings: &OffloadSettings, rows: &[FileRow]) -> Vec<Kept> {
    let known: HashSet<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    let root = &settings.source;
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.path() != settings.state_dir);
    for entry in walk.filter_map(std::result::Result::ok) {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else {
            continue;
        };
        if !known.contains(rel) && crate::stages::select::is_media(rel) && !settings.excluded(rel) {
            out.push(Kept {
                path: rel.to_string(),
                reason: Reason::NotMigrated,
                detail: "the journal does not know it (added since the migration, or not selected): run migrate to take it".into(),
            });
        }
    }
    out
}

/// Settles what an interrupted run left half done, and returns the paths
/// gone from SOURCE_DIR for good (taken by this settling or by an earlier
/// offload, counted as `already`).
pub fn settle_interrupted(
    settings: &OffloadSettings,
    offloads: &HashMap<String, OffloadRow>,
    rec: Option<&Recorder>,
    doc: &mut Offloaded,
) -> HashSet<String> {
    let mut gone = HashSet::new();
    for o in offloads.values().filter(|o| !o.done) {
        let in_place = settings.source.join(&o.path).symlink_metadata().is_ok();
        let record = |r: Record| {
            if let Some(rec) = rec {
                rec.record(r);
            }
        };
        if in_place {
            // Not moved (or, across file systems, copied but not yet
            // removed): considered again like any other file.
            record(Record::OffloadDropped {
                path: o.path.clone(),
            });
            continue;
        }
        match &o.place {
            Some(q) if !Path::new(q).exists() => doc.kept.push(Kept {
                path: o.path.clone(),
                reason: Reason::Error,
                detail: format!(
                    "an interrupted offload was moving it to {q}, and it is neither there nor in SOURCE_DIR: look for it; `restore --from` can download it"
                ),
            }),
            _ => {
                record(Record::Offloaded {
                    path: o.path.clone(),
                });
                if rec.is_some() {
                    files::remove_empty_parents(&settings.source, &o.path);
                }
                doc.recovered += 1;
                gone.insert(o.path.clone());
            }
        }
    }
    let done = offloads.values().filter(|o| o.done);
    doc.already = done.clone().count() as u64;
    gone.extend(done.map(|o| o.path.clone()));
    gone
}

/// The files of one object, once the store has answered for it.
fn offload_files(
    settings: &OffloadSettings,
    journal: &Journal,
    rec: Option<&Recorder>,
    files: &[&FileRow],
    proof: std::result::Result<Proof, StoreError>,
    doc: &mut Offloaded,
) -> Result<()> {
    let keep_all = |doc: &mut Offloaded, reason: Reason, detail: String| {
        for f in files {
            doc.kept.push(Kept {
                path: f.path.clone(),
                reason,
                detail: detail.clone(),
            });
        }
    };
    let key = files[0].key.as_deref().unwrap_or_default();
    match proof {
        Ok(Proof::Proven { .. }) => {}
        Ok(Proof::Missing) => {
            keep_all(
                doc,
                Reason::ObjectMissing,
                format!("no object {key} in the bucket"),
            );
            return Ok(());
        }
        Ok(Proof::Different { why }) => {
            keep_all(doc, Reason::ObjectDiffers, format!("object {key}: {why}"));
            return Ok(());
        }
        Ok(Proof::Unproven { why }) => {
            keep_all(doc, Reason::NoProof, format!("object {key}: {why}"));
            return Ok(());
        }
        Err(e) => {
            keep_all(doc, Reason::Error, e.to_string());
            return Ok(());
        }
    }
    // Which files are still the ones uploaded, checked now.
    let mut ready = Vec::new();
    for f in files {
        let src = settings.source.join(&f.path);
        // Only verified rows with digests get here.
        let Some(sha) = f.digests.map(|d| d.sha256) else {
            continue;
        };
        match files::compare(&src, (f.size, f.mtime_ns, f.ino), &sha, settings.deep) {
            Ok(Sameness::Same(facts)) => ready.push((*f, src, facts, sha)),
            Ok(Sameness::Missing) => doc.kept.push(Kept {
                path: f.path.clone(),
                reason: Reason::ChangedSinceUpload,
                detail: "it is no longer in SOURCE_DIR".into(),
            }),
            Ok(Sameness::Changed(why)) => doc.kept.push(Kept {
                path: f.path.clone(),
                reason: Reason::ChangedSinceUpload,
                detail: why,
            }),
            Err(e) => doc.kept.push(Kept {
                path: f.path.clone(),
                reason: Reason::Error,
                detail: format!("cannot read it: {e}"),
            }),
        }
    }
    let place = |f: &FileRow| match &settings.to {
        OffloadTo::Quarantine(q) => Some(q.join(&f.path)),
        OffloadTo::Delete => None,
    };
    let Some(rec) = rec else {
        // A dry run.
        doc.offloaded.extend(ready.iter().map(|(f, _, _, _)| Moved {
            path: f.path.clone(),
            size: f.size,
            to: place(f).map(|p| p.display().to_string()),
        }));
        return Ok(());
    };
    if ready.is_empty() {
        return Ok(());
    }
    // The intents, committed before anything moves.
    for (f, _, facts, _) in &ready {
        rec.record(Record::OffloadStarted(OffloadRow {
            path: f.path.clone(),
            done: false,
            place: place(f).map(|p| p.display().to_string()),
            size: f.size,
            mtime_ns: facts.mtime_ns,
            mode: facts.mode,
            uid: facts.uid,
            gid: facts.gid,
            at: crate::journal::now(),
        }));
    }
    journal.flush()?;
    for (f, src, _, sha) in ready {
        let to = place(f);
        let moved = match &to {
            Some(dst) => files::move_to(&src, dst, &sha).map(|_| ()),
            None => std::fs::remove_file(&src).map_err(|source| MoveError::Io {
                path: src.display().to_string(),
                source,
            }),
        };
        crate::faults::crash_point(crate::faults::CrashPoint::OffloadMoved);
        match moved {
            Ok(()) => {
                rec.record(Record::Offloaded {
                    path: f.path.clone(),
                });
                files::remove_empty_parents(&settings.source, &f.path);
                doc.offloaded.push(Moved {
                    path: f.path.clone(),
                    size: f.size,
                    to: to.map(|p| p.display().to_string()),
                });
            }
            Err(e) => {
                rec.record(Record::OffloadDropped {
                    path: f.path.clone(),
                });
                doc.kept.push(Kept {
                    path: f.path.clone(),
                    reason: match e {
                        MoveError::Occupied(_) => Reason::QuarantineOccupied,
                        MoveError::Mismatch(_) => Reason::ChangedSinceUpload,
                        MoveError::Io { .. } => Reason::Error,
                    },
                    detail: e.to_string(),
                });
            }
        }
    }
    Ok(())
}
