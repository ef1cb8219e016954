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

use crate::dedup::{self, Digests, Grouping};
use crate::plan::{self, Plan, Remote};
use crate::report::Reporter;
use crate::scan::{self, ScanResult};
use crate::settings::RunSettings;
use crate::store::Store;
use crate::verify;
use crate::{Error, Result};

/// Everything `plan` learned, for the report (and for `migrate`).
pub struct Planned {
    pub scan: ScanResult,
    pub grouping: Grouping,
    pub plan: Plan,
    pub store: Store,
    pub public_base: String,
    /// What the bucket holds under planned keys (only keys that exist).
    pub remote: HashMap<String, Remote>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a worker thread failed: {e}")))
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
    pub fn join(files: &[scan::SourceFile], rows: &[crate::journal::FileRow]) -> Self {
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
            if row.state == crate::journal::FileState::Verified
                && let Some(k) = &row.key
            {
                known.verified.insert(i as u32, k.clone());
            }
        }
        known
    }
}

pub async fn run(settings: &RunSettings, reporter: &Reporter) -> Result<Planned> {
    run_with(settings, reporter, None).await
}

/// Plans, using what the journal of earlier runs knows (`migrate`).
pub async fn run_with(
    settings: &RunSettings,
    reporter: &Reporter,
    journal_rows: Option<&[crate::journal::FileRow]>,
) -> Result<Planned> {
    let store = Store::connect(&settings.connection, &settings.destination.bucket).await?;
    store.check_bucket().await?;
    tracing::debug!(
        endpoint = store.endpoint(),
        bucket = store.bucket(),
        "bucket is reachable"
    );

    let walking = reporter.counter("walking");
    let opts = settings.scan.clone();
    let w = walking.clone();
    let scan = blocking(move || scan::scan(&opts, &w)).await?;
    walking.finish();
    crate::report::phase_done("walk");

    let known =
        Arc::new(journal_rows.map_or_else(Known::default, |rows| Known::join(&scan.files, rows)));

    let hashing = reporter.bytes("hashing", 0);
    let root = settings.scan.root.clone();
    let files = Arc::new(scan.files);
    let hash_all = settings.rules.key_layout == plan::KeyLayout::Content;
    let threads = settings.hash_threads;
    let (f, h, k) = (files.clone(), hashing.clone(), known.clone());
    let mut grouping =
        blocking(move || dedup::group(&root, &f, hash_all, threads, &h, &k.digests)).await?;
    crate::report::phase_done("dedup");

    let keys = plan::assign_keys(&files, &grouping, &settings.rules);
    crate::report::phase_done("keys");
    let remote = remote_state(
        settings,
        &store,
        &files,
        &mut grouping,
        &keys,
        &known,
        reporter,
    )
    .await?;
    hashing.finish();

    let scan = ScanResult {
        files: Arc::try_unwrap(files).unwrap_or_else(|a| (*a).clone()),
        skipped: scan.skipped,
    };
    crate::report::phase_done("bucket check");
    let plan = plan::build(
        &scan.files,
        &grouping,
        keys,
        &remote,
        &settings.rules,
        &scan.skipped,
    );
    crate::report::phase_done("plan");
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
        remote,
    })
}

/// What the bucket holds under the keys the plan would write.
async fn remote_state(
    settings: &RunSettings,
    store: &Store,
    files: &Arc<Vec<scan::SourceFile>>,
    grouping: &mut Grouping,
    keys: &plan::Keys,
    known: &Known,
    reporter: &Reporter,
) -> Result<HashMap<String, Remote>> {
    let by_key: HashMap<&str, u32> = keys
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.canonical))
        .collect();
    let mut remote = HashMap::new();
    // Keys that exist: (key, canonical file, size of the object).
    let mut existing: Vec<(String, u32, u64)> = Vec::new();
    let listing = reporter.counter("listing bucket");
    store
        .list(&settings.destination.prefix, |key, size| {
            listing.inc(1);
            if let Some(&i) = by_key.get(key) {
                existing.push((key.to_string(), i, size));
            }
        })
        .await?;
    listing.finish();
    if existing.is_empty() {
        return Ok(remote);
    }

    // Hash the files whose digests are not known yet, where the sizes match
    // (a size mismatch needs no hash to tell).
    let missing: Vec<u32> = existing
        .iter()
        .filter(|(_, i, size)| {
            files[*i as usize].size == *size && !grouping.digests.contains_key(i)
        })
        .map(|(_, i, _)| *i)
        .collect();
    let root = settings.scan.root.clone();
    let f = files.clone();
    let threads = settings.hash_threads;
    let hashed = blocking(move || {
        let results = dedup::parallel_map(&missing, threads, |&i| {
            let file = &f[i as usize];
            dedup::hash_file(
                &file.path(&root),
                file.size,
                &crate::report::Phase::hidden(),
            )
        });
        missing.into_iter().zip(results).collect::<Vec<_>>()
    })
    .await?;
    for (i, r) in hashed {
        match r {
            Ok(d) => {
                grouping.digests.insert(i, d);
            }
            Err(e) => {
                // The file and every duplicate that relied on it fail.
                for (j, c) in grouping.canonical.iter_mut().enumerate() {
                    if *c == Some(i) {
                        *c = None;
                        let err = std::io::Error::new(e.kind(), e.to_string());
                        grouping.failed.push((j as u32, err));
                    }
                }
            }
        }
    }

    // HEAD them, `concurrency` at a time: checksums, sha256 and
    // source-path metadata decide.
    let checking = reporter.items("checking", existing.len() as u64);
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    type Head = std::result::Result<Option<crate::store::RemoteObject>, crate::store::StoreError>;
    let mut tasks: JoinSet<(String, u32, Head)> = JoinSet::new();
    for (key, i, size) in existing {
        if grouping.canonical[i as usize].is_none() {
            continue;
        }
        // Verified by an earlier run under this key, file unchanged, same
        // size there: no need to ask again (`mediashift verify` re-checks).
        if size == files[i as usize].size && known.verified.get(&i).is_some_and(|k| *k == key) {
            remote.insert(key, Remote::Same);
            continue;
        }
        let store = store.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let r = store.head(&key).await;
            (key, i, r)
        });
    }
    // Digests of a file whose size differs from the object do not matter.
    let no_digests = Digests::of_bytes(&[]);
    while let Some(joined) = tasks.join_next().await {
        let (key, i, r) =
            joined.map_err(|e| Error::Internal(format!("a HEAD task failed: {e}")))?;
        checking.inc(1);
        let file = &files[i as usize];
        let digests = grouping.digests.get(&i).unwrap_or(&no_digests);
        let verdict = match r? {
            Some(obj) => verify::compare(&obj, &file.rel, file.size, digests),
            None => continue, // deleted since the listing: it will be uploaded
        };
        remote.insert(key, verdict);
    }
    checking.finish();
    Ok(remote)
}
