//! The journal kept in step with the run: each walked file's row as the
//! plan leaves it (walk facts, digests, key, state), the multipart uploads
//! of earlier runs that this run continues or that are spent, and the
//! files of earlier runs whose object has gone from the bucket. Between the
//! survey and the upload, and after the upload; the SQL stays in
//! `journal`.

use std::collections::{HashMap, HashSet};

use super::plan::Action;
use super::survey::Planned;
use super::upload::{Failed, Uploaded};
use super::verify::{How, Proof};
use crate::error::Result;
use crate::journal::{FileRow, FileState, Identity, Journal, Record, Recorder, UploadRow};
use crate::settings::{MigrateSettings, Sharding};

/// The multipart uploads earlier runs began that this run continues (their
/// objects are still to be sent or copied); those whose objects are in
/// place completed before the last run stopped, and are recorded spent.
/// The keys continued.
pub fn earlier_uploads<'u>(
    p: &Planned,
    uploads: &'u HashMap<String, UploadRow>,
    rec: &Recorder,
) -> HashSet<&'u str> {
    let (continued, proven) = upload_keys(p, uploads);
    for (key, u) in uploads {
        if !continued.contains(key.as_str()) && proven.contains(key.as_str()) {
            // Completed before the last run stopped: the id is spent.
            rec.record(Record::UploadEnded {
                upload_id: u.upload_id.clone(),
            });
        }
    }
    continued
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
pub fn sync_rows(p: &Planned, journal: &Journal, rec: &Recorder) -> Result<()> {
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

/// Files of this migration that this run did not select, whose object is
/// no longer in the bucket (the listing does not show it with their size,
/// and this run did not put it there): recorded failed, so the maps leave
/// them out, and reported. The journal is read a row at a time.
pub fn leave_out_gone(
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
