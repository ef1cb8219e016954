//! `mediashift plan`: the I/O around the pure planner.
//!
//! Order matters for cost: the bucket is checked first (a wrong endpoint or
//! key fails in seconds, before a long walk); the walk and dedup read only
//! what they must; the bucket listing is streamed and only keys the plan
//! would write are kept; only objects with a matching size are HEADed, and
//! only their files are hashed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::checksum::Algorithm;
use crate::dedup::{self, Grouping};
use crate::digest::{self, Digests};
use crate::error::{Error, Result};
use crate::journal::{FileRow, FileState};
use crate::limits::PartLayout;
use crate::plan::{self, Existing, KeyLayout, Plan};
use crate::progress::{Progress, phase_done};
use crate::scan::{self, ScanResult, SkipReason, SourceFile};
use crate::settings::{RunSettings, Sharding};
use crate::shard::{self, ShardPlan, Share};
use crate::store::{BodyChecksum, ObjectStore, RemoteObject, S3, StoreError};
use crate::verify::{self, How, Local, Proof};

/// Everything `plan` learned, for the report (and for `migrate`).
pub struct Planned {
    pub scan: ScanResult,
    pub grouping: Grouping,
    pub plan: Plan,
    pub store: S3,
    pub public_base: String,
    /// What the bucket holds under planned keys (only keys that exist).
    pub existing: HashMap<String, Existing>,
    /// The size the listing shows for each key the journal holds as
    /// verified (keys not listed are absent): the maps keep files this run
    /// did not select only if their object is still there.
    pub journal_objects: HashMap<String, u64>,
    /// The split, when the run is sharded.
    pub shard: Option<ShardPlan>,
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

/// Puts how the store answers (concurrency, throttling, an outage) in the
/// progress status.
pub fn report_pace(progress: &Progress, store: &S3) {
    let store = store.clone();
    progress.status(Box::new(move || store.pace_stats().status()));
}

/// Plans, using what the journal of earlier runs knows (`migrate`).
pub async fn run_with(
    settings: &RunSettings,
    progress: &Progress,
    journal_rows: Option<&[FileRow]>,
) -> Result<Planned> {
    let store = S3::connect(&settings.connection, &settings.destination.bucket).await?;
    report_pace(progress, &store);
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
    for w in settings.scan.selector.shallow_warnings() {
        tracing::warn!("{w}");
    }
    if scan.files.is_empty() && scan.skipped.problem_count() == 0 && !settings.allow_empty {
        let count = |r| scan.skipped.0.get(&r).map_or(0, |g| g.count);
        let (excluded, not_media) = (count(SkipReason::Excluded), count(SkipReason::NotMedia));
        return Err(Error::NothingSelected {
            root: settings.scan.root.display().to_string(),
            detail: format!(
                "{} file(s) seen, {excluded} excluded by the patterns, {not_media} not images or videos (--all-files takes them)",
                scan.skipped.0.values().map(|g| g.count).sum::<u64>()
            ),
        });
    }

    let (scan, shard) = split(settings, scan).await?;

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
    let journal_keys: HashSet<&str> = journal_rows
        .into_iter()
        .flatten()
        .filter(|r| r.state == FileState::Verified)
        .filter_map(|r| r.key.as_deref())
        .collect();
    let mut journal_objects = HashMap::new();
    let (grouping, existing) = existence(
        settings,
        &store,
        &files,
        grouping,
        &keys,
        &known,
        progress,
        (&journal_keys, &mut journal_objects),
    )
    .await?;
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
        journal_objects,
        shard,
    })
}

/// Keeps this shard's files (`--shard`), or only counts the split
/// (`--shards` with `plan`). Walk problems are reported by shard 0 alone,
/// so that each is listed once across the shards (and one shard, not all,
/// exits 1 for them).
async fn split(
    settings: &RunSettings,
    scan: ScanResult,
) -> Result<(ScanResult, Option<ShardPlan>)> {
    let count = match settings.sharding {
        Sharding::Whole => return Ok((scan, None)),
        Sharding::One(s) => s.count,
        Sharding::Split(n) => n,
    };
    let root = settings.scan.root.clone();
    let (mut scan, a) = blocking(move || {
        let a = shard::assign(&scan.files, &root, count);
        (scan, a)
    })
    .await?;
    let mut plan = ShardPlan {
        shard: None,
        count,
        tree: Share {
            files: scan.files.len() as u64,
            bytes: scan.files.iter().map(|f| f.size).sum(),
        },
        shares: a.shares(&scan.files, count),
        crowded_sizes: a.crowded.len(),
        fingerprint: a.fingerprint.clone(),
    };
    if let Sharding::One(s) = settings.sharding {
        plan.shard = Some(s);
        let mut of = a.shard_of.iter();
        scan.files
            .retain(|_| of.next().is_some_and(|&i| i == s.index));
        if s.index != 0 {
            scan.skipped.0.retain(|reason, _| !reason.is_problem());
        }
    }
    phase_done("shard");
    Ok((scan, Some(plan)))
}

/// What the bucket holds under the keys the plan would write, judged by
/// the proof rules against the files meant for them; and, from the same
/// listing, the sizes of the objects under `journal.0` (into `journal.1`).
#[allow(clippy::too_many_arguments)]
async fn existence(
    settings: &RunSettings,
    store: &S3,
    files: &Arc<Vec<SourceFile>>,
    mut grouping: Grouping,
    keys: &plan::Keys,
    known: &Known,
    progress: &Progress,
    journal: (&HashSet<&str>, &mut HashMap<String, u64>),
) -> Result<(Grouping, HashMap<String, Existing>)> {
    let (journal_keys, journal_objects) = journal;
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
            if journal_keys.contains(key) {
                journal_objects.insert(key.to_string(), size);
            }
        })
        .await?;
    listing.finish();
    // Names some servers list mangled (SeaweedFS lists `\` as `/` and
    // collapses `//`) are asked about one by one if the listing did not
    // show them, as if listed with the file's size.
    let listed: HashSet<&str> = found.iter().map(|(k, _, _)| k.as_str()).collect();
    let mangled: Vec<(String, u32, u64)> = by_key
        .iter()
        .filter(|(k, _)| !listed.contains(*k) && listings_mangle(k))
        .map(|(k, &i)| (k.to_string(), i, files[i as usize].size))
        .collect();
    found.extend(mangled);
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
    // Objects whose only checksum the digests cannot be compared with
    // (CRC32C, composite SHA-256).
    let mut rehash = Vec::new();
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
        let proof = verify::prove(Some(&object), &local);
        if let (Proof::Unproven { .. }, Some(w)) =
            (&proof, verify::wanted(&object, settings.rules.part_size))
        {
            rehash.push(Rehash {
                key: key.clone(),
                file: i,
                object: object.clone(),
                wanted: w,
            });
        }
        existing.insert(
            key,
            Existing {
                proof,
                same_path: verify::from_same_path(&object, &file.rel),
                checksum: None,
            },
        );
    }
    checking.finish();
    if !rehash.is_empty() {
        reprove(settings, files, &grouping, rehash, &mut existing).await?;
    }
    Ok((grouping, existing))
}

/// Whether a listing may show `key` under another name on some servers.
fn listings_mangle(key: &str) -> bool {
    key.contains("//") || key.chars().any(|c| c == '\\' || c.is_control())
}

/// An object only the file's value in its own algorithm can prove.
struct Rehash {
    key: String,
    file: u32,
    object: RemoteObject,
    /// The algorithm, and the parts for a composite value.
    wanted: (Algorithm, Option<PartLayout>),
}

/// Judges again the objects only the file's value in their own algorithm
/// can prove, computing it from the file.
async fn reprove(
    settings: &RunSettings,
    files: &Arc<Vec<SourceFile>>,
    grouping: &Grouping,
    objects: Vec<Rehash>,
    existing: &mut HashMap<String, Existing>,
) -> Result<()> {
    let (root, f) = (settings.scan.root.clone(), files.clone());
    let digests: Vec<Option<Digests>> = objects
        .iter()
        .map(|r| grouping.digests.get(&r.file).copied())
        .collect();
    let judged = blocking(move || {
        objects
            .into_iter()
            .zip(digests)
            .map(|(r, digests)| {
                let (key, object, (algorithm, layout)) = (r.key, r.object, r.wanted);
                let file = &f[r.file as usize];
                let proof = match digest::whole_checksum(&file.path(&root), algorithm, layout) {
                    Ok(value) => {
                        let whole = BodyChecksum { algorithm, value };
                        let local = Local::file(file.size, digests).with_checksum(Some(&whole));
                        (verify::prove(Some(&object), &local), Some(whole.record()))
                    }
                    Err(e) => (
                        Proof::Unproven {
                            why: format!("the file could not be read to compare: {e}"),
                        },
                        None,
                    ),
                };
                (key, proof)
            })
            .collect::<Vec<_>>()
    })
    .await?;
    for (key, (proof, checksum)) in judged {
        if let Some(e) = existing.get_mut(&key) {
            e.checksum = checksum.filter(|_| proof.is_proven());
            e.proof = proof;
        }
    }
    Ok(())
}
