//! `mediashift migrate`: plan, upload what the plan says, prove every
//! object, then write the URL maps for everything that is now in place.
//!
//! Everything is recorded in the journal (`--state`), so the same command
//! run again resumes: files unchanged since they were hashed are not read,
//! objects verified before are not asked about again, and multipart uploads
//! continue from their last acknowledged part.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::Stop;
use crate::error::{Error, Result};
use crate::journal::{
    FileRow, FileState, Identity, Journal, ObjectSettingsRow, PlacedFile, Record, Recorder,
    UploadRow,
};
use crate::progress::{Progress, Transfer, phase_done};
use crate::report::audit;
use crate::settings::{MigrateSettings, Sharding};
use crate::stages::maps::{self, Entry, MapMeta, MapWriter};
use crate::stages::plan::{Action, KeyLayout};
use crate::stages::select;
use crate::stages::survey::{Earlier, Planned, survey};
use crate::stages::upload::{self, CopyFrom, Failed, Job, Uploaded};
use crate::stages::verify::{How, Proof};
use crate::store::{ObjectStore, PaceStats, S3};

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
    let run = &settings.run;
    let connect = async || S3::open(&run.connection, &run.destination.bucket, progress).await;
    run_on(settings, progress, stop, connect).await
}

/// `migrate` into the store `connect` opens (once the map directory and
/// the journal are known to take what the run writes).
pub async fn run_on<S: ObjectStore>(
    settings: &MigrateSettings,
    progress: &Progress,
    stop: Stop,
    connect: impl AsyncFnOnce() -> std::result::Result<S, crate::store::StoreError>,
) -> Result<Migrated> {
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
    // What a visitor should get with the objects (`verify --via-url`).
    journal.set_object_settings(&ObjectSettingsRow {
        cache_control: settings.upload.options.cache_control.clone(),
        content_types: settings.content_types.to_lines(),
    })?;
    if !settings.run.output.json && !settings.run.output.quiet {
        eprintln!("mediashift: journal {}", journal.path().display());
    }
    let uploads = journal.uploads()?;
    let intents = journal.upload_intents()?;

    let store = connect().await?;
    let earlier = Earlier {
        journal: &journal,
        recheck: settings.recheck,
    };
    let planned = survey(&settings.run, &store, progress, Some(earlier)).await?;
    let recorder = journal.recorder()?;
    tokio::task::block_in_place(|| sync_rows(&planned, &journal, &recorder))?;
    phase_done("journal rows");
    let rerun = planned.journal_rows > 0;

    // Uploads an earlier run began: resumed by their job, or spent.
    let (continued, proven) = upload_keys(&planned, &uploads);
    if rerun && !settings.run.output.json && !settings.run.output.quiet {
        eprintln!("mediashift: {}", resuming(&planned, continued.len()));
    }
    for (key, u) in &uploads {
        if !continued.contains(key.as_str()) && proven.contains(key.as_str()) {
            // Completed before the last run stopped: the id is spent.
            recorder.record(Record::UploadEnded {
                upload_id: u.upload_id.clone(),
            });
        }
    }

    let s = &planned.plan.summary;
    let transfer = Transfer::new(
        progress,
        s.bytes_to_upload,
        s.objects_to_upload + s.objects_to_copy,
    );
    stop.uploading();
    let outcome = upload::run(
        &store,
        &settings.run.scan.root,
        jobs(&planned, &settings.content_types, &uploads, &intents),
        &settings.upload,
        transfer,
        Some(recorder.clone()),
        stop,
    )
    .await;
    phase_done("upload");
    let journal_path = journal.path().to_path_buf();
    // A journal that could not be written stopped the uploads; it says so
    // here, naming its path.
    journal.flush()?;
    let gone = leave_out_gone(&planned, &outcome.uploaded, &journal, &recorder)?;
    journal.flush()?;
    let (maps, map_entries) =
        tokio::task::block_in_place(|| write_maps(&planned, settings, &journal))?;
    let files = if settings.report.is_some() {
        let keys: Vec<(String, bool)> = outcome
            .uploaded
            .iter()
            .map(|u| (planned.key(u.object), u.copied))
            .collect();
        let made = |copied: bool| -> HashSet<&str> {
            keys.iter()
                .filter(|(_, c)| *c == copied)
                .map(|(k, _)| k.as_str())
                .collect()
        };
        // The journal as this run leaves it.
        audit::rows(&journal.files()?, &made(false), &made(true))
    } else {
        Vec::new()
    };
    let journal_write = journal.write_time();
    journal.close()?;
    phase_done("maps");
    Ok(Migrated {
        uploaded: outcome.uploaded,
        failed: outcome.failed.into_iter().chain(gone).collect(),
        interrupted: outcome.interrupted,
        maps,
        map_entries,
        files,
        elapsed: started.elapsed(),
        journal: journal_path,
        journal_write,
        pace: store.pace_stats(),
        bytes_read: outcome.bytes_read,
        planned,
    })
}

/// What a rerun takes up: "resuming: 1,843 of 2,002 objects left, 2
/// multipart uploads continued".
fn resuming(p: &Planned, continued: usize) -> String {
    let s = &p.plan.summary;
    let mut line = format!(
        "resuming: {} of {} objects left",
        crate::types::thousands(s.objects_to_upload + s.objects_to_copy),
        crate::types::thousands(p.plan.keys.len() as u64)
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

/// The keys of earlier runs' multipart uploads that this run continues
/// (their objects are still to be uploaded), and of those whose objects
/// are in place (proven: they completed before the last run stopped).
fn upload_keys<'u>(
    p: &Planned,
    uploads: &'u HashMap<String, UploadRow>,
) -> (HashSet<&'u str>, HashSet<&'u str>) {
    let (mut continued, mut proven) = (HashSet::new(), HashSet::new());
    if uploads.is_empty() {
        return (continued, proven);
    }
    let finder = p.plan.keys.finder(&p.scan.files, &p.grouping);
    for key in uploads.keys() {
        let Some(o) = finder.find(key) else {
            continue;
        };
        if p.plan.actions[o as usize] == Action::Upload {
            continued.insert(key.as_str());
        } else if p.plan.actions[o as usize] == Action::Copy {
            // A copy in parts cut off: its job aborts it.
            continued.insert(key.as_str());
        } else if p.existing.get(o).is_some_and(|e| e.proof.is_proven()) {
            proven.insert(key.as_str());
        }
    }
    (continued, proven)
}

/// Records between waits for the journal's writer while rows are synced:
/// a first run over a million files must not queue a million records.
const SYNC_BATCH: usize = 32_768;

/// Writes each file's current row where the journal's differs: walk facts,
/// digests, key, and state from the plan (verified where the object is in
/// place, planned where it is to be uploaded, failed with the reason). The
/// journal is read a row at a time, beside the walk (both in path order).
fn sync_rows(p: &Planned, journal: &Journal, rec: &Recorder) -> Result<()> {
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
    let mut sent = 0;
    let mut send = |row: FileRow| -> Result<()> {
        rec.record(Record::File(row));
        sent += 1;
        if sent % SYNC_BATCH == 0 {
            journal.flush()?;
        }
        Ok(())
    };
    let mut next = 0;
    journal.each_file(|old: FileRow| -> Result<()> {
        // Walked files before this row are new to the journal.
        while files.get(next).is_some_and(|f| *f.rel < *old.path) {
            send(current_row(p, &failed, next, None))?;
            next += 1;
        }
        if files.get(next).is_some_and(|f| *f.rel == *old.path) {
            let row = current_row(p, &failed, next, Some(&old));
            next += 1;
            if row != old {
                send(row)?;
            }
        }
        Ok(())
    })?;
    for i in next..files.len() {
        send(current_row(p, &failed, i, None))?;
    }
    Ok(())
}

/// File `i`'s row as this run leaves it, `old` being its journal row.
fn current_row(
    p: &Planned,
    failed: &HashMap<u32, String>,
    i: usize,
    old: Option<&FileRow>,
) -> FileRow {
    let f = &p.scan.files[i];
    let object = p.plan.keys.object_for(i as u32, &p.grouping);
    let key = object.map(|o| p.key(o));
    let action = object.map(|o| p.plan.actions[o as usize]);
    let earlier = old.filter(|o| o.state == FileState::Verified && o.key == key);
    let (state, verification, checksum, error) = match (failed.get(&(i as u32)), action) {
        (Some(e), _) => (FileState::Failed, None, None, Some(e.clone())),
        (None, Some(Action::AlreadyPresent)) => {
            let found = object.and_then(|o| p.existing.found.get(&o));
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
        (None, Some(Action::Upload | Action::Copy)) => (FileState::Planned, None, None, None),
        (None, Some(Action::Conflict)) => (FileState::Failed, None, None, Some("conflict".into())),
        (None, _) => (FileState::Failed, None, None, Some("not migrated".into())),
    };
    FileRow {
        path: f.rel.to_string(),
        size: f.size,
        mtime_ns: f.mtime_ns,
        ino: f.ino,
        digests: p.grouping.digests_of(i as u32),
        key,
        state,
        verification,
        checksum,
        error,
    }
}

/// The objects to upload or copy, one job each, made as the engine
/// reaches them (a million jobs are never held at once). Each carries the
/// multipart upload an earlier run began for its key, to continue, and
/// whether a killed run may have left one unrecorded; a copy, the object
/// it copies.
fn jobs<'a>(
    p: &'a Planned,
    types: &'a select::ContentTypes,
    uploads: &'a HashMap<String, UploadRow>,
    intents: &'a HashMap<String, String>,
) -> impl Iterator<Item = Job> + Clone + 'a {
    let files = &p.scan.files;
    let keys = &p.plan.keys;
    let actions = &p.plan.actions;
    actions
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, Action::Upload | Action::Copy))
        .map(move |(o, action)| {
            let o = o as u32;
            let i = keys.file(o);
            let f = &files[i as usize];
            let key = p.key(o);
            let copy = (*action == Action::Copy)
                .then(|| keys.source(o, &p.grouping))
                .flatten()
                .map(|src| CopyFrom {
                    object: src,
                    key: p.key(src),
                    uploaded_now: actions[src as usize] == Action::Upload,
                });
            Job {
                object: o,
                rel: Arc::from(&*f.rel),
                content_type: types.of(&f.rel),
                size: f.size,
                mtime_ns: f.mtime_ns,
                digests: p.grouping.digests_of(i),
                must_not_exist: !p.existing.found.contains_key(&o),
                resume: uploads.get(&key).cloned(),
                stray_upload: intents.contains_key(&key),
                copy,
                key,
            }
        })
}

/// Files of this migration that this run did not select, whose object is
/// no longer in the bucket (the listing does not show it with their size,
/// and this run did not put it there): recorded failed, so the maps leave
/// them out, and reported. The journal is read a row at a time.
fn leave_out_gone(
    p: &Planned,
    uploaded: &[Uploaded],
    journal: &Journal,
    rec: &Recorder,
) -> Result<Vec<Failed>> {
    let in_run = |path: &str| {
        p.scan
            .files
            .binary_search_by(|f| (*f.rel).cmp(path))
            .is_ok()
    };
    // Not listed, or no such files: the journal's proofs stand (a sample
    // was checked).
    let Some(listed) = &p.journal_objects else {
        return Ok(Vec::new());
    };
    // This run's objects now in place, found by key only if an unlisted
    // object needs it.
    let sent: HashSet<u32> = uploaded.iter().map(|u| u.object).collect();
    let mut finder = None;
    let mut gone = Vec::new();
    journal.each_file(|mut row: FileRow| -> Result<()> {
        if row.state != FileState::Verified || row.digests.is_none() || in_run(&row.path) {
            return Ok(());
        }
        let Some(key) = row.key.as_deref() else {
            return Ok(());
        };
        if listed.get(key) == Some(&row.size) {
            return Ok(());
        }
        let placed_now = finder
            .get_or_insert_with(|| p.plan.keys.finder(&p.scan.files, &p.grouping))
            .find(key)
            .is_some_and(|o| {
                p.plan.actions[o as usize] == Action::AlreadyPresent || sent.contains(&o)
            });
        if placed_now {
            return Ok(());
        }
        let error = format!(
            "its object {key} is no longer in the bucket with its {} bytes, and this run did not select the file to upload it again: it is left out of the maps",
            row.size
        );
        gone.push(Failed {
            path: row.path.as_str().into(),
            error: error.clone(),
        });
        row.state = FileState::Failed;
        row.verification = None;
        row.checksum = None;
        row.error = Some(error);
        rec.record(Record::File(row));
        Ok(())
    })?;
    Ok(gone)
}

/// The four URL maps, a row for every file of this migration whose object
/// is in place (verified in the journal, whatever this run selected: a
/// rerun with another selection, a stop, or a file that fails this time
/// never takes a working redirect out of the maps), streamed from the
/// journal in path order. Their paths and row count.
fn write_maps(
    p: &Planned,
    settings: &MigrateSettings,
    journal: &Journal,
) -> Result<(Vec<PathBuf>, usize)> {
    let source_base = &settings.run.urls.source_base;
    let meta = MapMeta {
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
    };
    let facts = journal.placed_facts()?;
    let mut w = MapWriter::create(
        &settings.map_dir,
        &meta,
        source_base,
        facts.longest_path,
        facts.case_twins,
    )
    .map_err(Error::Maps)?;
    journal.each_placed(|r: PlacedFile| -> Result<()> {
        let (old_url, new_url) = maps::urls_for(source_base, &p.public_base, &r.path, &r.key);
        // The object's own file gives the content type: under `content`
        // the first of the files sharing it (byte order, as dedup chooses).
        let own = match settings.run.rules.key_layout {
            KeyLayout::Preserve => None,
            KeyLayout::Content => r.first.as_deref(),
        };
        let entry = Entry {
            old_url,
            new_url,
            content_type: settings.content_types.of(own.unwrap_or(&r.path)),
            duplicate_of: r.first.unwrap_or_default(),
            key: r.key,
            sha256: r.sha256.to_hex(),
            size: r.size,
            rel: r.path,
        };
        w.push(&entry).map_err(Error::Maps)
    })?;
    let rows = w.rows();
    Ok((w.finish().map_err(Error::Maps)?, rows))
}
