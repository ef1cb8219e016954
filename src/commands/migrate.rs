//! `mediashift migrate`: plan, upload what the plan says, prove every
//! object, then write the URL maps for everything that is now in place.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::commands::plan::{self, Planned};
use crate::plan::Action;
use crate::report::{Reporter, TransferProgress};
use crate::rewrite::{self, Entry, Maps};
use crate::select;
use crate::settings::MigrateSettings;
use crate::upload::{self, Failed, Job, Uploaded};
use crate::{Error, Result};

/// Everything a migration did, for the report.
pub struct Migrated {
    pub planned: Planned,
    pub uploaded: Vec<Uploaded>,
    pub failed: Vec<Failed>,
    pub maps: Vec<PathBuf>,
    pub map_entries: usize,
    pub elapsed: Duration,
}

pub async fn run(settings: &MigrateSettings, reporter: &Reporter) -> Result<Migrated> {
    let started = Instant::now();
    let mut planned = plan::run(&settings.run, reporter).await?;
    let jobs = jobs(&planned);
    let s = &planned.plan.summary;
    let progress = TransferProgress::new(reporter, s.bytes_to_upload, s.objects_to_upload);
    let (uploaded, failed) = upload::run(
        &planned.store,
        &settings.run.scan.root,
        jobs,
        &settings.upload,
        progress,
    )
    .await;
    for u in &uploaded {
        let canonical = planned.plan.keys.objects[u.object as usize].canonical;
        planned.grouping.digests.insert(canonical, u.digests);
    }
    let maps = maps(&planned, settings, &uploaded);
    let map_entries = maps.entries.len();
    let dir = settings.map_dir.clone();
    let source_base = settings.run.urls.source_base.clone();
    let written =
        tokio::task::spawn_blocking(move || rewrite::write_all(&dir, &maps, &source_base))
            .await
            .map_err(|e| Error::Internal(format!("the map writer failed: {e}")))?
            .map_err(|e| Error::Internal(format!("cannot write the URL maps: {e}")))?;
    Ok(Migrated {
        planned,
        uploaded,
        failed,
        maps: written,
        map_entries,
        elapsed: started.elapsed(),
    })
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
                must_not_exist: !p.remote.contains_key(slot.key.as_str()),
            }
        })
        .collect()
}

/// Map rows for every file whose content is now at the destination.
fn maps(p: &Planned, settings: &MigrateSettings, uploaded: &[Uploaded]) -> Maps {
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
        let (old_url, new_url) = rewrite::urls_for(source_base, &p.public_base, &f.rel, key);
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
