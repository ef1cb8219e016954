//! `mediashift migrate`: plan, upload what the plan says, prove every
//! object, then write the URL maps for everything that is now in place.
//!
//! Everything is recorded in the journal (`--state`), so the same command
//! run again resumes: files unchanged since they were hashed are not read,
//! objects verified before are not asked about again, and multipart uploads
//! continue from their last acknowledged part.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cancel::Stop;
use crate::error::Result;
use crate::journal::{Journal, ObjectSettingsRow};
use crate::progress::{Progress, Transfer, phase_done};
use crate::report::audit;
use crate::settings::MigrateSettings;
use crate::stages::maps;
use crate::stages::record;
use crate::stages::survey::{Earlier, Planned, survey};
use crate::stages::upload::{self, Failed, Uploaded};
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
    maps::take_dir(&settings.map_dir, settings.run.sharding)?;
    audit::probe(settings.report.as_deref())?;
    let mut journal = Journal::open(&settings.run.state_dir, &record::identity(settings))?;
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
    tokio::task::block_in_place(|| record::sync_rows(&planned, &journal, &recorder))?;
    phase_done("journal rows");
    let rerun = planned.journal_rows > 0;

    // Uploads an earlier run began: resumed by their job, or spent.
    let continued = record::earlier_uploads(&planned, &uploads, &recorder);
    if rerun && !settings.run.output.json && !settings.run.output.quiet {
        eprintln!("mediashift: {}", resuming(&planned, continued.len()));
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
        planned.jobs(&settings.content_types, &uploads, &intents),
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
    let gone = record::leave_out_gone(&planned, &outcome.uploaded, &journal, &recorder)?;
    journal.flush()?;
    let (maps, map_entries) = tokio::task::block_in_place(|| {
        maps::write_placed(
            &journal,
            &settings.map_dir,
            &maps::meta(&planned, settings),
            settings.run.rules.key_layout,
            &settings.content_types,
        )
    })?;
    let files = if settings.report.is_some() {
        let made: Vec<(String, bool)> = (outcome.uploaded.iter())
            .map(|u| (planned.key(u.object), u.copied))
            .collect();
        // The journal as this run leaves it.
        audit::of_run(&journal.files()?, &made)
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
