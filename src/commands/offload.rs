//! `mediashift offload`: frees SOURCE_DIR of the files whose objects are in
//! the bucket, proven now, at the moment each file goes (the stage and its
//! crash safety: `cutover::offload`).

use crate::cutover::offload::{self, Offloaded};
use crate::error::Result;
use crate::journal::Journal;
use crate::progress::Progress;
use crate::settings::OffloadSettings;
use crate::store::{ObjectStore, S3, StoreError};

pub async fn run(settings: &OffloadSettings, progress: &Progress) -> Result<Offloaded> {
    let connect =
        async || S3::open(&settings.connection, &settings.destination.bucket, progress).await;
    run_on(settings, progress, connect).await
}

/// `offload` against the store `connect` opens (once an interrupted run's
/// moves are settled: they need no store).
pub async fn run_on<S: ObjectStore>(
    settings: &OffloadSettings,
    progress: &Progress,
    connect: impl AsyncFnOnce() -> std::result::Result<S, StoreError>,
) -> Result<Offloaded> {
    let (mut journal, identity) = Journal::open_existing(&settings.state_dir)?;
    identity.check_same(
        &settings.state_dir,
        &settings.source,
        &settings.destination.to_string(),
    )?;
    let rows = journal.files()?;
    let mut doc = Offloaded::default();
    // A dry run records nothing.
    let rec = (!settings.dry_run)
        .then(|| journal.recorder())
        .transpose()?;
    let gone = offload::settle_interrupted(settings, &journal.offloads()?, rec.as_ref(), &mut doc);
    journal.flush()?;
    let by_object = offload::candidates(settings, &rows, &gone, &mut doc);
    doc.kept.extend(offload::strangers(settings, &rows));

    let store = connect().await?;
    doc.endpoint = store.endpoint().to_string();
    offload::prove_and_free(
        &store,
        settings,
        &journal,
        rec.as_ref(),
        &by_object,
        progress,
        &mut doc,
    )
    .await?;
    drop(rec);
    journal.close()?;
    Ok(doc.sorted())
}
