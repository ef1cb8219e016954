//! `mediashift gc`: aborts incomplete multipart uploads under a prefix
//! (the stage and its rules: `stages::gc`); those the journal in `--state`
//! will resume are read from it first.

use std::collections::HashSet;

use crate::error::Result;
use crate::journal::{self, Reader};
use crate::settings::GcSettings;
use crate::stages::gc::{self, Collected};
use crate::store::{ObjectStore, S3};

pub async fn run(settings: &GcSettings) -> Result<Collected> {
    let none = crate::progress::Progress::none();
    let connect =
        async || S3::open(&settings.connection, &settings.destination.bucket, &none).await;
    run_on(settings, connect).await
}

/// `gc` against the store `connect` opens (once the journal is read).
pub async fn run_on<S: ObjectStore>(
    settings: &GcSettings,
    connect: impl AsyncFnOnce() -> std::result::Result<S, crate::store::StoreError>,
) -> Result<Collected> {
    // Uploads a migration will resume, from its journal if there is one.
    let resumable = if journal::exists(&settings.state_dir) {
        Reader::open(&settings.state_dir)?.resumable()?
    } else {
        HashSet::new()
    };
    let store = connect().await?;
    gc::collect(&store, settings, &resumable).await
}
