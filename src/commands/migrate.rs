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
use crate::cancel::Stop;
use crate::error::{Error, Result};
use crate::journal::{FileRow, FileState, Identity, Journal, Record, Recorder};
use crate::maps::{self, Entry, Maps};
use crate::plan::Action;
use crate::progress::{Progress, Transfer};
use crate::select;
use crate::settings::MigrateSettings;
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
    pub elapsed: Duration,
    pub journal: PathBuf,
    pub journal_write: Duration,
}

/// The journal's identity for these settings.
pub fn identity(settings: &MigrateSettings) -> Identity {
    Identity {
        source: settings.run.scan.root.display().to_string(),
        destination: settings.run.destination.to_string(),
        key_layout: settings.run.rules.key_layout.name().to_string(),
        checksum: settings.upload.algorithm.name().to_lowercase(),
    }
}

pub async fn run(settings: &MigrateSettings, progress: &Progress, stop: Stop) -> Result<Migrated> {
    let started = Instant::now();
    let mut journal = Journal::open(&settings.run.state_dir, &identity(settings))?;
    if !settings.run.output.json {
        eprintln!("mediashift: journal {}", journal.path().display());
    }
    let rows = journal.files()?;
    let mut uploads = journal.uploads()?;

    let mut planned = plan::run_with(&settings.run, progress, Some(&rows)).await?;
    let recorder = journal.recorder()?;
    sync_rows(&planned, &rows, &recorder);
    drop(rows);

    // Uploads an earlier run began: resumed by their job, or spent.
    let mut jobs = jobs(&planned);
    for job in &mut jobs {
        job.resume = uploads.remove(&job.key);
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
        Some(recorder),
        stop,
    )
    .await;
    for u in &outcome.uploaded {
        let canonical = planned.plan.keys.objects[u.object as usize].canonical;
        planned.grouping.digests.insert(canonical, u.digests);
    }
    let journal_path = journal.path().to_path_buf();
    journal.flush()?;
    let journal_write = journal.write_time();
    journal.close()?;

    let maps = map_entries(&planned, settings, &outcome.uploaded);
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
        planned,
        uploaded: outcome.uploaded,
        failed: outcome.failed,
        interrupted: outcome.interrupted,
        maps: written,
        map_entries,
        elapsed: started.elapsed(),
        journal: journal_path,
        journal_write,
    })
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
        let (state, verification, error) = match (failed.get(&(i as u32)), action) {
            (Some(e), _) => (FileState::Failed, None, Some(e.clone())),
            (None, Some(Action::AlreadyPresent)) => {
                // How the plan proved it; the journal's shortcut keeps what
                // the earlier run recorded.
                let how = key
                    .as_deref()
                    .and_then(|k| p.existing.get(k))
                    .and_then(|e| match e.proof {
                        Proof::Proven { how } if how != How::Journal => Some(how),
                        _ => None,
                    });
                let v = match how {
                    Some(how) => Some(how.name().to_string()),
                    None => old
                        .filter(|o| o.state == FileState::Verified && o.key == key)
                        .and_then(|o| o.verification.clone()),
                };
                (FileState::Verified, v, None)
            }
            (None, Some(Action::Upload)) => (FileState::Planned, None, None),
            (None, Some(Action::Conflict)) => (FileState::Failed, None, Some("conflict".into())),
            (None, _) => (FileState::Failed, None, Some("not migrated".into())),
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
            error,
        };
        if old != Some(&&row) {
            rec.record(Record::File(row));
        }
    }
}

fn jobs(p: &Planned) -> Vec<Job> {
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
                content_type: select::content_type(&f.rel),
                size: f.size,
                mtime_ns: f.mtime_ns,
                digests: p.grouping.digests.get(&slot.canonical).copied(),
                must_not_exist: !p.existing.contains_key(slot.key.as_str()),
                resume: None,
            }
        })
        .collect()
}

/// Map rows for every file whose content is now at the destination.
fn map_entries(p: &Planned, settings: &MigrateSettings, uploaded: &[Uploaded]) -> Maps {
    let files = &p.scan.files;
    let mut in_place = vec![false; p.plan.keys.objects.len()];
    for (i, a) in p.plan.actions.iter().enumerate() {
        in_place[i] = *a == Action::AlreadyPresent;
    }
    for u in uploaded {
        in_place[u.object as usize] = true;
    }
    let source_base = &settings.run.urls.source_base;
    let mut entries = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(c) = p.grouping.canonical[i] else {
            continue;
        };
        let Some(&o) = p.plan.keys.object_of.get(&c) else {
            continue;
        };
        if !in_place[o as usize] {
            continue;
        }
        let Some(d) = p.grouping.digests.get(&c) else {
            continue;
        };
        let key = p.plan.keys.objects[o as usize].key.as_str();
        let (old_url, new_url) = maps::urls_for(source_base, &p.public_base, &f.rel, key);
        entries.push(Entry {
            old_url,
            new_url,
            key: key.to_string(),
            sha256: d.sha256.to_hex(),
            size: f.size,
            content_type: select::content_type(&files[c as usize].rel),
            duplicate_of: if c as usize == i {
                String::new()
            } else {
                files[c as usize].rel.to_string()
            },
            rel: f.rel.to_string(),
        });
    }
    Maps {
        version: 1,
        source: settings.run.scan.root.display().to_string(),
        destination: settings.run.destination.to_string(),
        entries,
    }
}
