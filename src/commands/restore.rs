//! `mediashift restore`: puts offloaded files back at their paths in
//! SOURCE_DIR, from the quarantine or downloaded from the bucket (the
//! stage and its checks: `cutover::restore`).

use crate::cutover::restore::{self, Restored, Source};
use crate::error::Result;
use crate::journal::Journal;
use crate::progress::Progress;
use crate::settings::{RestoreFrom, RestoreSettings};
use crate::store::{ObjectStore, S3};

pub async fn run(settings: &RestoreSettings, progress: &Progress) -> Result<Restored> {
    match &settings.from {
        RestoreFrom::Bucket {
            destination,
            connection,
        } => {
            let store = S3::open(connection, &destination.bucket, progress).await?;
            let from = Source::Bucket {
                store: &store,
                bucket: &destination.bucket,
            };
            run_on(settings, from, progress).await
        }
        RestoreFrom::Quarantine(q) => run_on::<S3>(settings, Source::Quarantine(q), progress).await,
    }
}

/// `restore` from `from`.
pub async fn run_on<S: ObjectStore>(
    settings: &RestoreSettings,
    from: Source<'_, S>,
    progress: &Progress,
) -> Result<Restored> {
    let (mut journal, identity) = Journal::open_existing(&settings.state_dir)?;
    let destination = match &settings.from {
        RestoreFrom::Bucket { destination, .. } => destination.to_string(),
        RestoreFrom::Quarantine(_) => identity.destination.clone(),
    };
    identity.check_same(&settings.state_dir, &settings.source, &destination)?;
    let mut doc = Restored::default();
    let wanted = restore::wanted(settings, journal.files()?, journal.offloads()?, &mut doc);
    let rec = journal.recorder()?;
    restore::put_back(settings, from, wanted, &rec, progress, &mut doc).await?;
    drop(rec);
    journal.close()?;
    Ok(doc.sorted())
}
