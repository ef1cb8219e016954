//! `mediashift verify`: proves again, against the store, every object the
//! journal says is in place (`stages::recheck`); with `--via-url BASE` it
//! checks the switch instead: every file fetched as the application's
//! visitors will fetch it (`stages::visit`).

use crate::error::Result;
use crate::journal::Reader;
use crate::progress::Progress;
use crate::settings::VerifySettings;
use crate::stages::recheck::{self, Checked};
use crate::stages::visit::{self, Visited};
use crate::store::{ObjectStore, S3, StoreError, Trust, Visitor};

/// The journals of `--state` (one, or every shard's), each checked to be
/// this migration's.
fn journals(settings: &VerifySettings) -> Result<Vec<Reader>> {
    let mut all = Vec::new();
    for dir in &settings.state_dirs {
        let journal = Reader::open(dir)?;
        journal
            .identity()
            .check_same(dir, &settings.source, &settings.destination.to_string())?;
        all.push(journal);
    }
    Ok(all)
}

pub async fn run(settings: &VerifySettings, progress: &Progress) -> Result<Checked> {
    let connect =
        async || S3::open(&settings.connection, &settings.destination.bucket, progress).await;
    run_on(settings, progress, connect).await
}

/// `verify` against the store `connect` opens (once the journals are
/// read: a wrong `--state` fails first).
pub async fn run_on<S: ObjectStore>(
    settings: &VerifySettings,
    progress: &Progress,
    connect: impl AsyncFnOnce() -> std::result::Result<S, StoreError>,
) -> Result<Checked> {
    let recorded = recheck::recorded(&journals(settings)?)?;
    let store = connect().await?;
    recheck::recheck(
        &store,
        recorded,
        &settings.destination.prefix,
        settings.concurrency,
        settings.deep,
        progress,
    )
    .await
}

/// `verify --via-url BASE`.
pub async fn run_via_url(
    settings: &VerifySettings,
    base: &str,
    progress: &Progress,
) -> Result<Visited> {
    let placed = visit::placed(&journals(settings)?)?;
    let connection = &settings.connection;
    let trust = if connection.verify_ssl {
        (connection.ca_bundle.as_deref()).map_or(Trust::System, |b| Trust::Bundle(b.clone()))
    } else {
        Trust::Unchecked
    };
    let visitor = Visitor::new(&trust, connection.request_timeout)?;
    visit::visit_all(
        visitor,
        placed,
        base,
        &settings.destination.prefix,
        settings.concurrency,
        settings.deep,
        progress,
    )
    .await
}
