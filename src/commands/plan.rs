//! `mediashift plan`: the I/O around the pure planner.
//!
//! Order matters for cost: the bucket is checked first (a wrong endpoint or
//! key fails in seconds, before a long walk); the walk and dedup read only
//! what they must. A first run streams the bucket listing, matching each
//! key to a planned object without a map of keys, asks (HEAD) only about
//! the objects it found, and hashes only files whose size matches theirs.
//! A rerun asks only about what the journal does not prove (`existence`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::checksum::Algorithm;
use crate::dedup::{self, Grouping};
use crate::digest::{self, DigestTable, Digests};
use crate::error::{Error, Result};
use crate::journal::{FileRow, FileState, Journal};
use crate::limits::PartLayout;
use crate::plan::{self, Existence, Existing, KeyLayout, Plan};
use crate::progress::{Progress, phase_done};
use crate::scan::{self, ScanResult, SkipReason, SourceFile};
use crate::settings::{RunSettings, Sharding};
use crate::shard::{self, ShardPlan, Share};
use crate::store::{BodyChecksum, ObjectStore, RemoteObject, S3, StoreError};
use crate::verify::{self, Local, Proof};

/// Everything `plan` learned, for the report (and for `migrate`).
pub struct Planned {
    pub scan: ScanResult,
    pub grouping: Grouping,
    pub plan: Plan,
    pub store: S3,
    pub public_base: String,
    /// What the bucket holds under planned keys.
    pub existing: Existence,
    /// The size the listing shows for each key of a verified file this run
    /// did not walk (keys not listed are absent): the maps keep such files
    /// only if their object is still there. `None` when there are no such
    /// files, or the bucket was not listed: the journal's proofs stand (a
    /// sample of them was checked).
    pub journal_objects: Option<HashMap<String, u64>>,
    /// Rows the journal held before this run (0: a first run).
    pub journal_rows: u64,
    /// The split, when the run is sharded.
    pub shard: Option<ShardPlan>,
}

impl Planned {
    /// Object `o`'s key.
    pub fn key(&self, o: u32) -> String {
        self.plan
            .keys
            .key(o, &self.scan.files, &self.grouping)
            .into_string()
    }
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

/// What the journal of earlier runs says about the walked files, read a row
/// at a time and kept compact (a rerun over a million files holds no row).
#[derive(Debug, Default)]
pub struct Known {
    /// Digests of files unchanged since they were hashed (same size, mtime
    /// and inode): they are not read again. Dedup takes them over.
    pub digests: DigestTable,
    /// Per walked file, a hash of the key it is recorded verified under,
    /// if it is unchanged since (0: none).
    verified: Vec<u64>,
    /// Keys of verified files this run did not walk (another selection),
    /// with their recorded sizes: the maps keep those files only while
    /// their objects are there.
    pub outside: HashMap<String, u64>,
    /// Rows the journal holds (0 on a first run).
    pub rows: u64,
}

impl Known {
    /// Joins the journal's rows with the walk; both are in path order
    /// (byte order).
    pub fn read(journal: &Journal, files: &[SourceFile]) -> Result<Self> {
        let mut known = Self {
            digests: DigestTable::with_files(files.len()),
            verified: vec![0; files.len()],
            ..Self::default()
        };
        let mut i = 0;
        journal.each_file(|row: FileRow| -> Result<()> {
            known.rows += 1;
            while files.get(i).is_some_and(|f| *f.rel < *row.path) {
                i += 1;
            }
            let verified = row.state == FileState::Verified;
            let Some(f) = files.get(i).filter(|f| *f.rel == *row.path) else {
                if let (true, Some(_), Some(key)) = (verified, row.digests, row.key) {
                    known.outside.insert(key, row.size);
                }
                return Ok(());
            };
            if (row.size, row.mtime_ns, row.ino) != (f.size, f.mtime_ns, f.ino) {
                return Ok(());
            }
            if let Some(d) = row.digests {
                known.digests.insert(i as u32, d);
            }
            if let (true, Some(key)) = (verified, &row.key) {
                known.verified[i] = key_hash(key);
            }
            Ok(())
        })?;
        Ok(known)
    }

    /// Whether walked file `file`, unchanged, is recorded verified under
    /// `key`.
    pub fn verified_under(&self, file: u32, key: &str) -> bool {
        self.verified
            .get(file as usize)
            .is_some_and(|&h| h != 0 && h == key_hash(key))
    }
}

/// A key's 64-bit hash, never 0 (which stands for none).
fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() | 1
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

/// What the journal of earlier runs lends a plan (`migrate`).
#[derive(Clone, Copy)]
pub struct Earlier<'j> {
    pub journal: &'j Journal,
    /// Ask the bucket about every object (`--recheck`): take none of the
    /// journal's proofs without the listing showing the object.
    pub recheck: bool,
}

/// Plans, using what the journal of earlier runs knows (`migrate`).
pub async fn run_with(
    settings: &RunSettings,
    progress: &Progress,
    earlier: Option<Earlier<'_>>,
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

    let mut known = match earlier {
        Some(e) => Known::read(e.journal, &scan.files)?,
        None => Known::default(),
    };
    let recheck = earlier.is_some_and(|e| e.recheck);
    phase_done("journal join");

    let hashing = progress.bytes("hashing", 0);
    let root = settings.scan.root.clone();
    let files = Arc::new(scan.files);
    let hash_all = settings.rules.key_layout == KeyLayout::Content;
    let threads = settings.hash_threads;
    let (f, h, k) = (
        files.clone(),
        hashing.clone(),
        std::mem::take(&mut known.digests),
    );
    let grouping = blocking(move || dedup::group(&root, &f, hash_all, threads, &h, k)).await?;
    phase_done("dedup");

    let keys = plan::assign_keys(
        &files,
        &grouping,
        &settings.rules.prefix,
        settings.rules.key_layout,
    );
    phase_done("keys");
    let (grouping, existing, journal_objects) = existence(
        settings,
        &store,
        &files,
        grouping,
        &keys,
        (&known, recheck),
        progress,
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
        journal_rows: known.rows,
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

/// Objects of the journal asked about (HEAD) on a rerun before its proofs
/// are trusted: one missing (the prefix emptied, another bucket behind the
/// same name) and the whole bucket is checked instead.
const SPOT_CHECKS: usize = 32;

/// On a rerun, objects asked about one by one (HEAD) rather than listing
/// the bucket, at most one for this many journal rows: a listing page of a
/// thousand keys costs the server about what twenty HEADs do.
const HEADS_PER_ROW: usize = 20;

/// What the bucket holds under the keys the plan would write, judged by
/// the proof rules against the files meant for them; and, when the bucket
/// was listed, the sizes of the objects of verified files this run did not
/// walk (`known.outside`).
///
/// A first run (or `--recheck`) lists the bucket and asks (HEAD) about each
/// object under a planned key; a file the journal proves, unchanged, whose
/// object the listing shows with its size, needs no HEAD. A rerun trusts
/// the journal's proofs for unchanged files once a sample of them is found
/// in place, and asks only about the rest: by HEAD when they are few, else
/// by listing. `mediashift verify` checks every object.
async fn existence(
    settings: &RunSettings,
    store: &S3,
    files: &Arc<Vec<SourceFile>>,
    mut grouping: Grouping,
    keys: &plan::Keys,
    (known, recheck): (&Known, bool),
    progress: &Progress,
) -> Result<(Grouping, Existence, Option<HashMap<String, u64>>)> {
    let n = keys.len();
    let readable = |o: usize| grouping.canonical[keys.file(o as u32) as usize].is_some();
    let key = |o: usize| keys.key(o as u32, files, &grouping).into_string();
    let proven: Vec<bool> = if known.rows == 0 {
        vec![false; n]
    } else {
        (0..n)
            .map(|o| readable(o) && known.verified_under(keys.file(o as u32), &key(o)))
            .collect()
    };
    let mut ex = Existence {
        found: HashMap::new(),
        by_journal: vec![false; n],
    };
    let mut trust = known.rows > 0 && !recheck;
    if trust && !spot_check(store, files, &grouping, keys, &proven, known, settings).await? {
        trust = false;
    }
    let unproven = proven.iter().filter(|p| !**p).count();
    let mut journal_objects = None;
    // Keys to ask about (HEAD), with their object.
    let mut ask: Vec<(String, u32)> = Vec::new();
    if trust && unproven * HEADS_PER_ROW <= known.rows as usize {
        for (o, &by_journal) in proven.iter().enumerate() {
            if by_journal {
                ex.by_journal[o] = true;
            } else if readable(o) {
                ask.push((key(o), o as u32));
            }
        }
    } else {
        let finder = keys.finder(files, &grouping);
        let mut outside = HashMap::new();
        let mut listed = vec![false; n];
        let listing = progress.counter("listing bucket");
        store
            .list(&settings.destination.prefix, |listed_key, size| {
                listing.inc(1);
                if let Some(o) = finder.find(listed_key) {
                    let o = o as usize;
                    listed[o] = true;
                    if !readable(o) {
                        return;
                    }
                    // Proven by the journal, and there with its size: no
                    // need to ask again (`mediashift verify` re-checks).
                    if proven[o] && files[keys.file(o as u32) as usize].size == size {
                        ex.by_journal[o] = true;
                    } else {
                        ask.push((listed_key.to_string(), o as u32));
                    }
                }
                if known.outside.contains_key(listed_key) {
                    outside.insert(listed_key.to_string(), size);
                }
            })
            .await?;
        listing.finish();
        // Names some servers list mangled (SeaweedFS lists `\` as `/` and
        // collapses `//`) are asked about one by one if the listing did not
        // show them.
        for o in (0..n).filter(|&o| readable(o) && !listed[o]) {
            let k = key(o);
            if listings_mangle(&k) {
                ask.push((k, o as u32));
            }
        }
        // Only files this run did not walk need their objects' sizes.
        if !known.outside.is_empty() {
            journal_objects = Some(outside);
        }
    }
    if ask.is_empty() {
        return Ok((grouping, ex, journal_objects));
    }

    let checking = progress.items("checking", ask.len() as u64);
    // Absent ones (or deleted since the listing) will be uploaded.
    let there: Vec<(String, u32, RemoteObject)> =
        heads(store, ask, settings.concurrency, || checking.inc(1))
            .await?
            .into_iter()
            .filter_map(|(key, o, r)| Some((key, o, r?)))
            .collect();
    checking.finish();

    // Hash the files whose digests are not known yet, where the sizes match
    // (a size mismatch needs no hash to tell).
    // (A duplicate's digests are its content's: its canonical file's.)
    let same_size: Vec<u32> = there
        .iter()
        .map(|(_, o, object)| (keys.file(*o), object.size))
        .filter(|(i, size)| files[*i as usize].size == *size)
        .filter_map(|(i, _)| grouping.canonical[i as usize])
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

    // Judge each. Objects whose only checksum the digests cannot be
    // compared with (CRC32C, composite SHA-256) are judged again below.
    let mut rehash = Vec::new();
    for (_, o, object) in there {
        let i = keys.file(o);
        if grouping.canonical[i as usize].is_none() {
            continue; // could not be read to compare: failed in the plan
        }
        let file = &files[i as usize];
        let local = Local::file(file.size, grouping.digests_of(i));
        let proof = verify::prove(Some(&object), &local);
        let same_path = verify::from_same_path(&object, &file.rel);
        if let (Proof::Unproven { .. }, Some(w)) =
            (&proof, verify::wanted(&object, settings.rules.part_size))
        {
            rehash.push(Rehash {
                object: o,
                file: i,
                remote: object,
                wanted: w,
            });
        }
        ex.found.insert(
            o,
            Existing {
                proof,
                same_path,
                checksum: None,
            },
        );
    }
    if !rehash.is_empty() {
        reprove(settings, files, &grouping, rehash, &mut ex.found).await?;
    }
    Ok((grouping, ex, journal_objects))
}

/// Asks (HEAD) about a sample of the objects the journal proves, this
/// run's and those of files it did not walk: whether they are all in
/// place with their sizes. If not, says so.
async fn spot_check(
    store: &S3,
    files: &[SourceFile],
    grouping: &Grouping,
    keys: &plan::Keys,
    proven: &[bool],
    known: &Known,
    settings: &RunSettings,
) -> Result<bool> {
    // The proven objects, then those of files not walked, with sizes.
    #[derive(Clone, Copy)]
    enum Pick<'a> {
        Object(u32),
        Outside(&'a str),
    }
    let pool = || {
        (0..keys.len() as u32)
            .filter(|&o| proven[o as usize])
            .map(|o| (Pick::Object(o), files[keys.file(o) as usize].size))
            .chain(known.outside.iter().map(|(k, s)| (Pick::Outside(k), *s)))
    };
    let total = pool().count();
    if total == 0 {
        return Ok(true);
    }
    // Spread over the whole run, first and last included.
    let n = total.min(SPOT_CHECKS);
    let picks: HashSet<usize> = (0..n).map(|j| j * (total - 1) / (n - 1).max(1)).collect();
    let sample: Vec<(String, u64)> = pool()
        .enumerate()
        .filter(|(j, _)| picks.contains(j))
        .map(|(_, (pick, size))| match pick {
            Pick::Object(o) => (keys.key(o, files, grouping).into_string(), size),
            Pick::Outside(k) => (k.to_string(), size),
        })
        .collect();
    let mut missing: Vec<String> = heads(store, sample, settings.concurrency, || ())
        .await?
        .into_iter()
        .filter(|(_, size, r)| r.as_ref().is_none_or(|o| o.size != *size))
        .map(|(key, _, _)| key)
        .collect();
    if missing.is_empty() {
        return Ok(true);
    }
    missing.sort();
    tracing::warn!(
        "{} of {n} objects the journal holds as verified are not in the bucket with their size (first: {}): checking the whole bucket",
        missing.len(),
        missing[0]
    );
    Ok(false)
}

/// Asks (HEAD) about each key, `concurrency` at a time, calling `done`
/// after each answer: what is there (`None`: absent), with what each key
/// came with, in no fixed order.
async fn heads<T: Send + 'static>(
    store: &S3,
    keys: Vec<(String, T)>,
    concurrency: usize,
    mut done: impl FnMut(),
) -> Result<Vec<(String, T, Option<RemoteObject>)>> {
    let limit = Arc::new(Semaphore::new(concurrency));
    type Head = std::result::Result<Option<RemoteObject>, StoreError>;
    let mut tasks: JoinSet<(String, T, Head)> = JoinSet::new();
    for (key, with) in keys {
        let (store, limit) = (store.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let r = store.head(&key).await;
            (key, with, r)
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (key, with, r) = joined.map_err(|source| Error::Task {
            what: "a HEAD task",
            source,
        })?;
        done();
        out.push((key, with, r?));
    }
    Ok(out)
}

/// Whether a listing may show `key` under another name on some servers.
fn listings_mangle(key: &str) -> bool {
    key.contains("//") || key.chars().any(|c| c == '\\' || c.is_control())
}

/// An object only the file's value in its own algorithm can prove.
struct Rehash {
    /// The plan's object.
    object: u32,
    file: u32,
    /// What the bucket holds under `key`.
    remote: RemoteObject,
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
    existing: &mut HashMap<u32, Existing>,
) -> Result<()> {
    let (root, f) = (settings.scan.root.clone(), files.clone());
    let digests: Vec<Option<Digests>> = objects
        .iter()
        .map(|r| grouping.digests_of(r.file))
        .collect();
    let judged = blocking(move || {
        objects
            .into_iter()
            .zip(digests)
            .map(|(r, digests)| {
                let (o, remote, (algorithm, layout)) = (r.object, r.remote, r.wanted);
                let file = &f[r.file as usize];
                let proof = match digest::whole_checksum(&file.path(&root), algorithm, layout) {
                    Ok(value) => {
                        let whole = BodyChecksum { algorithm, value };
                        let local = Local::file(file.size, digests).with_checksum(Some(&whole));
                        (verify::prove(Some(&remote), &local), Some(whole.record()))
                    }
                    Err(e) => (
                        Proof::Unproven {
                            why: format!("the file could not be read to compare: {e}"),
                        },
                        None,
                    ),
                };
                (o, proof)
            })
            .collect::<Vec<_>>()
    })
    .await?;
    for (o, (proof, checksum)) in judged {
        if let Some(e) = existing.get_mut(&o) {
            e.checksum = checksum.filter(|_| proof.is_proven());
            e.proof = proof;
        }
    }
    Ok(())
}
