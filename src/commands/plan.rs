//! `mediashift plan`: the I/O around the pure planner.
//!
//! Order matters for cost: the bucket is checked first (a wrong endpoint or
//! key fails in seconds, before a long walk); the walk and dedup read only
//! what they must; the bucket listing is streamed and only keys the plan
//! would write are kept; only objects with a matching size are HEADed, and
//! only their files are hashed.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::dedup::{self, Grouping};
use crate::digest::Digests;
use crate::error::{Error, Result};
use crate::journal::{FileRow, FileState};
use crate::plan::{self, Existing, KeyLayout, Plan};
use crate::progress::{Progress, phase_done};
use crate::scan::{self, ScanResult, SourceFile};
use crate::settings::RunSettings;
use crate::store::{ObjectStore, RemoteObject, S3, StoreError};
use crate::verify::{self, How, Local};

/// Everything `plan` learned, for the report (and for `migrate`).
pub struct Planned {
    pub scan: ScanResult,
    pub grouping: Grouping,
    pub plan: Plan,
    pub store: S3,
    pub public_base: String,
    /// What the bucket holds under planned keys (only keys that exist).
    pub existing: HashMap<String, Existing>,
}

/// Runs `f` on the blocking pool (the walk and dedup read the disk).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| Error::Task {
            what: "a worker thread",
            source,
        })
}

/// What the journal of earlier runs says about the files, by file index.
#[derive(Debug, Default)]
pub struct Known {
    /// Digests of files unchanged since they were hashed (same size, mtime
    /// and inode): they are not read again.
    pub digests: HashMap<u32, Digests>,
    /// Files recorded verified under their current key: an object of the
    /// same size under that key needs no HeadObject.
    pub verified: HashMap<u32, String>,
}

impl Known {
    /// Joins journal rows with the walk; both are sorted by path (byte order).
    pub fn join(files: &[SourceFile], rows: &[FileRow]) -> Self {
        let mut known = Self::default();
        let mut r = rows.iter().peekable();
        for (i, f) in files.iter().enumerate() {
            while r.peek().is_some_and(|row| row.path.as_str() < &*f.rel) {
                r.next();
            }
            let Some(row) = r.peek() else { break };
            if row.path.as_str() != &*f.rel
                || (row.size, row.mtime_ns, row.ino) != (f.size, f.mtime_ns, f.ino)
            {
                continue;
            }
            if let Some(d) = row.digests {
                known.digests.insert(i as u32, d);
            }
            if row.state == FileState::Verified
                && let Some(k) = &row.key
            {
                known.verified.insert(i as u32, k.clone());
            }
        }
        known
    }
}

pub async fn run(settings: &RunSettings, progress: &Progress) -> Result<Planned> {
    run_with(settings, progress, None).await
}

/// Plans, using what the journal of earlier runs knows (`migrate`).
pub async fn run_with(
    settings: &RunSettings,
    progress: &Progress,
    journal_rows: Option<&[FileRow]>,
) -> Result<Planned> {
    let store = S3::connect(&settings.connection, &settings.destination.bucket).await?;
    store.check_bucket().await?;
    tracing::debug!(
        endpoint = store.endpoint(),
        bucket = store.bucket(),
        "bucket is reachable"
    );

    let walking = progress.counter("walking");
    let opts = settings.scan.clone();
    let w = walking.clone();
    let scan = blocking(move || scan::scan(&opts, &w)).await?;
    walking.finish();
    phase_done("walk");

    let known =
        Arc::new(journal_rows.map_or_else(Known::default, |rows| Known::join(&scan.files, rows)));

    let hashing = progress.bytes("hashing", 0);
    let root = settings.scan.root.clone();
    let files = Arc::new(scan.files);
    let hash_all = settings.rules.key_layout == KeyLayout::Content;
    let threads = settings.hash_threads;
    let (f, h, k) = (files.clone(), hashing.clone(), known.clone());
    let grouping =
        blocking(move || dedup::group(&root, &f, hash_all, threads, &h, &k.digests)).await?;
    phase_done("dedup");

    let keys = plan::assign_keys(
        &files,
        &grouping,
        &settings.rules.prefix,
        settings.rules.key_layout,
    );
    phase_done("keys");
    let (grouping, existing) =
        existence(settings, &store, &files, grouping, &keys, &known, progress).await?;
    hashing.finish();

    let scan = ScanResult {
        files: Arc::try_unwrap(files).unwrap_or_else(|a| (*a).clone()),
        skipped: scan.skipped,
    };
    phase_done("bucket check");
    let plan = plan::build(
        &scan.files,
        &grouping,
        keys,
        &existing,
        &settings.rules,
        &scan.skipped,
    );
    phase_done("plan");
    let public_base = settings
        .urls
        .public_base
        .clone()
        .unwrap_or_else(|| store.bucket_url());
    Ok(Planned {
        scan,
        grouping,
        plan,
        store,
        public_base,
        existing,
    })
}

/// What the bucket holds under the keys the plan would write, judged by
/// the proof rules against the files meant for them.
async fn existence(
    settings: &RunSettings,
    store: &S3,
    files: &Arc<Vec<SourceFile>>,
    mut grouping: Grouping,
    keys: &plan::Keys,
    known: &Known,
    progress: &Progress,
) -> Result<(Grouping, HashMap<String, Existing>)> {
    let by_key: HashMap<&str, u32> = keys
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.canonical))
        .collect();
    let mut existing = HashMap::new();
    // Keys that exist: (key, canonical file, size of the object).
    let mut found: Vec<(String, u32, u64)> = Vec::new();
    let listing = progress.counter("listing bucket");
    store
        .list(&settings.destination.prefix, |key, size| {
            listing.inc(1);
            if let Some(&i) = by_key.get(key) {
                found.push((key.to_string(), i, size));
            }
        })
        .await?;
    listing.finish();
    if found.is_empty() {
        return Ok((grouping, existing));
    }

    // Hash the files whose digests are not known yet, where the sizes match
    // (a size mismatch needs no hash to tell).
    let same_size: Vec<u32> = found
        .iter()
        .filter(|(_, i, size)| files[*i as usize].size == *size)
        .map(|(_, i, _)| *i)
        .collect();
    let (root, f, threads) = (
        settings.scan.root.clone(),
        files.clone(),
        settings.hash_threads,
    );
    grouping = blocking(move || {
        grouping.hash_more(&root, &f, &same_size, threads);
        grouping
    })
    .await?;

    // HEAD them, `concurrency` at a time, and judge each.
    let checking = progress.items("checking", found.len() as u64);
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    type Head = std::result::Result<Option<RemoteObject>, StoreError>;
    let mut tasks: JoinSet<(String, u32, Head)> = JoinSet::new();
    for (key, i, size) in found {
        if grouping.canonical[i as usize].is_none() {
            continue;
        }
        // Verified by an earlier run under this key, file unchanged, same
        // size there: no need to ask again (`mediashift verify` re-checks).
        if size == files[i as usize].size && known.verified.get(&i).is_some_and(|k| *k == key) {
            existing.insert(key, Existing::proven(How::Journal));
            continue;
        }
        let (store, limit) = (store.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let r = store.head(&key).await;
            (key, i, r)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (key, i, r) = joined.map_err(|source| Error::Task {
            what: "a HEAD task",
            source,
        })?;
        checking.inc(1);
        let Some(object) = r? else {
            continue; // deleted since the listing: it will be uploaded
        };
        let file = &files[i as usize];
        let local = Local::file(file.size, grouping.digests.get(&i).copied());
        existing.insert(
            key,
            Existing {
                proof: verify::prove(Some(&object), &local),
                same_path: verify::from_same_path(&object, &file.rel),
            },
        );
    }
    checking.finish();
    Ok((grouping, existing))
}
