//! `mediashift migrate`: plan, upload what the plan says, prove every
//! object, then write the URL maps for everything that is now in place.
//!
//! Everything is recorded in the journal (`--state`), so the same command
//! run again resumes: files unchanged since they were hashed are not read,
//! objects verified before are not asked about again, and multipart uploads
//! continue from their last acknowledged part.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::plan::{self, Planned};
use crate::audit;
use crate::cancel::Stop;
use crate::error::{Error, Result};
use crate::journal::{FileRow, FileState, Identity, Journal, Record, Recorder};
use crate::maps::{self, Entry, Maps};
use crate::plan::Action;
use crate::progress::{Progress, Transfer};
use crate::select;
use crate::settings::{MigrateSettings, Sharding};
use crate::store::PaceStats;
use crate::upload::{self, Failed, Job, Uploaded};
use crate::verify::{How, Proof};

/// Everything a migration did, for the report.
pub struct Migrated {
    pub planned: Planned,
    pub uploaded: Vec<Uploaded>,
    pub failed: Vec<Failed>,
    /// Objects left for the next run because of a stop request.
    pub interrupted: usize,
    pub maps: Vec<PathBuf>,
    pub map_entries: usize,
    /// Every file of the migration with what happened to it (for
    /// `--report`; empty without it).
    pub files: Vec<audit::Row>,
    pub elapsed: Duration,
    pub journal: PathBuf,
    pub journal_write: Duration,
    /// How the store answered: throttling, timeouts, concurrency.
    pub pace: PaceStats,
    /// Bytes of source files the upload read (planning's reads are in the
    /// plan).
    pub bytes_read: u64,
}

/// The journal's identity for these settings.
pub fn identity(settings: &MigrateSettings) -> Identity {
    Identity {
        source: settings.run.scan.root.display().to_string(),
        destination: settings.run.destination.to_string(),
        key_layout: settings.run.rules.key_layout.name().to_string(),
        checksum: settings.upload.algorithm.name().to_lowercase(),
        shard: match settings.run.sharding {
            Sharding::One(s) => s.to_string(),
            Sharding::Whole | Sharding::Split(_) => String::new(),
        },
    }
}

pub async fn run(settings: &MigrateSettings, progress: &Progress, stop: Stop) -> Result<Migrated> {
    let started = Instant::now();
    // Where the results go must take them before anything is uploaded (the
    // journal's directory is probed as it opens).
    maps::probe(&settings.map_dir).map_err(|source| Error::MapDir {
        dir: settings.map_dir.display().to_string(),
        source,
    })?;
    // Shards write their own map directories, never one another's.
    let this = match settings.run.sharding {
        Sharding::One(s) => s.to_string(),
        Sharding::Whole | Sharding::Split(_) => "whole".to_string(),
    };
    let claimed = maps::claim(&settings.map_dir, &this).map_err(|source| Error::MapDir {
        dir: settings.map_dir.display().to_string(),
        source,
    })?;
    if let Err(holder) = claimed {
        let name = |s: &str| {
            if s == "whole" {
                "the unsharded migration".to_string()
            } else {
                format!("shard {s}")
            }
        };
        return Err(Error::MapDirOfShard {
            dir: settings.map_dir.display().to_string(),
            theirs: name(&holder),
            ours: name(&this),
        });
    }
    if let Some(dir) = settings.report.as_deref().and_then(std::path::Path::parent) {
        maps::probe(dir).map_err(|source| Error::Report {
            path: settings
                .report
                .as_deref()
                .unwrap_or(dir)
                .display()
                .to_string(),
            source,
        })?;
    }
    let mut journal = Journal::open(&settings.run.state_dir, &identity(settings))?;
    if !settings.run.output.json && !settings.run.output.quiet {
        eprintln!("mediashift: journal {}", journal.path().display());
    }
    let rows = journal.files()?;
    let mut uploads = journal.uploads()?;
    let intents = journal.upload_intents()?;

    let planned = plan::run_with(&settings.run, progress, Some(&rows)).await?;
    let recorder = journal.recorder()?;
    sync_rows(&planned, &rows, &recorder);
    let rerun = !rows.is_empty();
    drop(rows);

    // Uploads an earlier run began: resumed by their job, or spent.
    let mut jobs = jobs(&planned, &settings.content_types);
    for job in &mut jobs {
        job.resume = uploads.remove(&job.key);
        job.stray_upload = intents.contains_key(&job.key);
    }
    if rerun && !settings.run.output.json && !settings.run.output.quiet {
        eprintln!("mediashift: {}", resuming(&planned, &jobs));
    }
    for (key, u) in uploads {
        if planned
            .existing
            .get(&key)
            .is_some_and(|e| e.proof.is_proven())
        {
            // Completed before the last run stopped: the id is spent.
            recorder.record(Record::UploadEnded {
                upload_id: u.upload_id,
            });
        }
    }

    let s = &planned.plan.summary;
    let transfer = Transfer::new(progress, s.bytes_to_upload, s.objects_to_upload);
    stop.uploading();
    let outcome = upload::run(
        &planned.store,
        &settings.run.scan.root,
        jobs,
        &settings.upload,
        transfer,
        Some(recorder.clone()),
        stop,
    )
    .await;
    let journal_path = journal.path().to_path_buf();
    // A journal that could not be written stopped the uploads; it says so
    // here, naming its path.
    journal.flush()?;
    let rows = journal.files()?;
    let (maps, gone) = map_entries(&planned, settings, &rows, &recorder);
    drop(rows);
    journal.flush()?;
    let files = if settings.report.is_some() {
        let keys = &planned.plan.keys.objects;
        let uploaded: std::collections::HashSet<&str> = outcome
            .uploaded
            .iter()
            .filter_map(|u| keys.get(u.object as usize).map(|o| o.key.as_str()))
            .collect();
        // The journal as this run leaves it.
        audit::rows(&journal.files()?, &uploaded)
    } else {
        Vec::new()
    };
    let journal_write = journal.write_time();
    journal.close()?;

    let map_entries = maps.entries.len();
    let dir = settings.map_dir.clone();
    let source_base = settings.run.urls.source_base.clone();
    let written = tokio::task::spawn_blocking(move || maps::write_all(&dir, &maps, &source_base))
        .await
        .map_err(|source| Error::Task {
            what: "the map writer",
            source,
        })?
        .map_err(Error::Maps)?;
    Ok(Migrated {
        uploaded: outcome.uploaded,
        failed: outcome.failed.into_iter().chain(gone).collect(),
        interrupted: outcome.interrupted,
        maps: written,
        map_entries,
        files,
        elapsed: started.elapsed(),
        journal: journal_path,
        journal_write,
        pace: planned.store.pace_stats(),
        bytes_read: outcome.bytes_read,
        planned,
    })
}

/// What a rerun takes up: "resuming: 1,843 of 2,002 objects left, 2
/// multipart uploads continued".
fn resuming(p: &Planned, jobs: &[Job]) -> String {
    let continued = jobs.iter().filter(|j| j.resume.is_some()).count();
    let mut line = format!(
        "resuming: {} of {} objects left",
        crate::types::thousands(jobs.len() as u64),
        crate::types::thousands(p.plan.keys.objects.len() as u64)
    );
    if continued > 0 {
        line.push_str(&format!(
            ", {} multipart upload{} continued",
            crate::types::thousands(continued as u64),
            if continued == 1 { "" } else { "s" }
        ));
    }
    line
}

/// Writes each file's current row where the journal's differs: walk facts,
/// digests, key, and state from the plan (verified where the object is in
/// place, planned where it is to be uploaded, failed with the reason).
fn sync_rows(p: &Planned, rows: &[FileRow], rec: &Recorder) {
    let files = &p.scan.files;
    let mut failed: HashMap<u32, String> = p
        .grouping
        .failed
        .iter()
        .map(|(i, e)| (*i, e.to_string()))
        .collect();
    for c in &p.plan.conflicts {
        if let Ok(i) = files.binary_search_by(|f| (*f.rel).cmp(c.path.as_str())) {
            failed.insert(i as u32, format!("conflict: {}", c.detail));
        }
    }
    let mut r = rows.iter().peekable();
    for (i, f) in files.iter().enumerate() {
        while r.peek().is_some_and(|row| row.path.as_str() < &*f.rel) {
            r.next();
        }
        let old = r.peek().filter(|row| row.path.as_str() == &*f.rel);
        let canonical = p.grouping.canonical[i];
        let object = canonical.and_then(|c| p.plan.keys.object_of.get(&c).copied());
        let key = object.map(|o| p.plan.keys.objects[o as usize].key.to_string());
        let action = object.map(|o| p.plan.actions[o as usize]);
        let earlier = old.filter(|o| o.state == FileState::Verified && o.key == key);
        let (state, verification, checksum, error) = match (failed.get(&(i as u32)), action) {
            (Some(e), _) => (FileState::Failed, None, None, Some(e.clone())),
            (None, Some(Action::AlreadyPresent)) => {
                let found = key.as_deref().and_then(|k| p.existing.get(k));
                match found.map(|e| (&e.proof, &e.checksum)) {
                    // How the plan proved it now...
                    Some((Proof::Proven { how }, checksum)) if *how != How::Journal => (
                        FileState::Verified,
                        Some(how.name().to_string()),
                        checksum.clone(),
                        None,
                    ),
                    // ...or, by the journal's shortcut, what was recorded.
                    _ => (
                        FileState::Verified,
                        earlier.and_then(|o| o.verification.clone()),
                        earlier.and_then(|o| o.checksum.clone()),
                        None,
                    ),
                }
            }
            (None, Some(Action::Upload)) => (FileState::Planned, None, None, None),
            (None, Some(Action::Conflict)) => {
                (FileState::Failed, None, None, Some("conflict".into()))
            }
            (None, _) => (FileState::Failed, None, None, Some("not migrated".into())),
        };
        let row = FileRow {
            path: f.rel.to_string(),
            size: f.size,
            mtime_ns: f.mtime_ns,
            ino: f.ino,
            digests: canonical.and_then(|c| p.grouping.digests.get(&c).copied()),
            key,
            state,
            verification,
            checksum,
            error,
        };
        if old != Some(&&row) {
            rec.record(Record::File(row));
        }
    }
}

fn jobs(p: &Planned, types: &select::ContentTypes) -> Vec<Job> {
    let files = &p.scan.files;
    p.plan
        .keys
        .objects
        .iter()
        .zip(&p.plan.actions)
        .enumerate()
        .filter(|(_, (_, a))| **a == Action::Upload)
        .map(|(i, (slot, _))| {
            let f = &files[slot.canonical as usize];
            Job {
                object: i as u32,
                rel: Arc::from(&*f.rel),
                key: slot.key.to_string(),
                content_type: types.of(&f.rel),
                size: f.size,
                mtime_ns: f.mtime_ns,
                digests: p.grouping.digests.get(&slot.canonical).copied(),
                must_not_exist: !p.existing.contains_key(slot.key.as_str()),
                resume: None,
                stray_upload: false,
            }
        })
        .collect()
}

/// Map rows for every file of this migration whose object is in place,
/// from the journal, whatever this run selected: a rerun with another
/// selection, a stop, or a file that fails this time never takes a
/// working redirect out of the maps. A file this run did not look at
/// counts only if the bucket listing still shows its object with its
/// size; otherwise it is reported as gone (and left out).
fn map_entries(
    p: &Planned,
    settings: &MigrateSettings,
    rows: &[FileRow],
    rec: &Recorder,
) -> (Maps, Vec<Failed>) {
    let in_run = |path: &str| {
        p.scan
            .files
            .binary_search_by(|f| (*f.rel).cmp(path))
            .is_ok()
    };
    let mut gone = Vec::new();
    let placed: Vec<&FileRow> = rows
        .iter()
        .filter(|r| r.state == FileState::Verified && r.key.is_some() && r.digests.is_some())
        .filter(|r| {
            let key = r.key.as_deref().unwrap_or_default();
            if in_run(&r.path) || p.journal_objects.get(key) == Some(&r.size) {
                return true;
            }
            let error = format!(
                "its object {key} is no longer in the bucket with its {} bytes, and this run did not select the file to upload it again: it is left out of the maps",
                r.size
            );
            rec.record(Record::KeyState {
                key: key.to_string(),
                state: FileState::Failed,
                verification: None,
                checksum: None,
                error: Some(error.clone()),
            });
            gone.push(Failed {
                path: r.path.as_str().into(),
                error,
            });
            false
        })
        .collect();
    // The object's own file: the first path (in byte order, as dedup
    // chooses) of the files mapped to it.
    let mut canonical: HashMap<&str, &str> = HashMap::new();
    for r in &placed {
        canonical
            .entry(r.key.as_deref().unwrap_or_default())
            .or_insert(&r.path);
    }
    let source_base = &settings.run.urls.source_base;
    let entries = placed
        .iter()
        .filter_map(|r| {
            let key = r.key.as_deref()?;
            let d = r.digests?;
            let first = canonical.get(key).copied().unwrap_or(&r.path);
            let (old_url, new_url) = maps::urls_for(source_base, &p.public_base, &r.path, key);
            Some(Entry {
                old_url,
                new_url,
                key: key.to_string(),
                sha256: d.sha256.to_hex(),
                size: r.size,
                content_type: settings.content_types.of(first),
                duplicate_of: if first == r.path {
                    String::new()
                } else {
                    first.to_string()
                },
                rel: r.path.clone(),
            })
        })
        .collect();
    let maps = Maps {
        version: 1,
        source: settings.run.scan.root.display().to_string(),
        destination: settings.run.destination.to_string(),
        source_base_url: source_base.clone(),
        public_base_url: p.public_base.clone(),
        shard: p.shard.as_ref().and_then(|s| {
            let one = s.shard?;
            Some(maps::MapShard {
                index: one.index,
                count: one.count,
                fingerprint: s.fingerprint.clone(),
            })
        }),
        entries,
    };
    (maps, gone)
}
