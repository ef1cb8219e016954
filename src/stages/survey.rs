//! The survey: everything `plan` shows and `migrate` acts on, in the order
//! of the pipeline: the walk (`scan`, with `select`), this shard's files
//! (`shard`), identical content (`dedup`), the objects and their keys
//! (`plan`), what the bucket holds (`bucket`), and the pure plan.
//!
//! Order matters for cost: the bucket was checked before (a wrong endpoint
//! or key fails in seconds, before a long walk); the walk and dedup read
//! only what they must.

use std::collections::HashMap;
use std::sync::Arc;

use super::bucket::{BucketCheck, Known, blocking};
use super::dedup::{self, Grouping};
use super::plan::{self, Action, Existence, KeyLayout, Plan};
use super::scan::{self, ScanResult, SkipReason};
use super::select;
use super::shard::{self, ShardPlan, Share};
use super::upload::{CopyFrom, Job};
use crate::error::{Error, Result};
use crate::journal::{Journal, UploadRow};
use crate::progress::{Progress, phase_done};
use crate::settings::{RunSettings, Sharding};
use crate::store::ObjectStore;

/// Everything `plan` learned, for the report (and for `migrate`).
pub struct Planned {
    pub scan: ScanResult,
    pub grouping: Grouping,
    pub plan: Plan,
    /// Where the store is, for reports.
    pub endpoint: String,
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

    /// The objects to upload or copy, one job each, made as the engine
    /// reaches them (a million jobs are never held at once). Each carries the
    /// multipart upload an earlier run began for its key, to continue, and
    /// whether a killed run may have left one unrecorded; a copy, the object
    /// it copies.
    pub fn jobs<'a>(
        &'a self,
        types: &'a select::ContentTypes,
        uploads: &'a HashMap<String, UploadRow>,
        intents: &'a HashMap<String, String>,
    ) -> impl Iterator<Item = Job> + Clone + 'a {
        let p = self;
        let files = &p.scan.files;
        let keys = &p.plan.keys;
        let actions = &p.plan.actions;
        actions
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Action::Upload | Action::Copy))
            .map(move |(o, action)| {
                let o = o as u32;
                let i = keys.file(o);
                let f = &files[i as usize];
                let key = p.key(o);
                let copy = (*action == Action::Copy)
                    .then(|| keys.source(o, &p.grouping))
                    .flatten()
                    .map(|src| CopyFrom {
                        object: src,
                        key: p.key(src),
                        uploaded_now: actions[src as usize] == Action::Upload,
                    });
                Job {
                    object: o,
                    rel: Arc::from(&*f.rel),
                    content_type: types.of(&f.rel),
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    digests: p.grouping.digests_of(i),
                    must_not_exist: !p.existing.found.contains_key(&o),
                    resume: uploads.get(&key).cloned(),
                    stray_upload: intents.contains_key(&key),
                    copy,
                    key,
                }
            })
    }
}

/// What the journal of earlier runs lends a plan (`migrate`).
#[derive(Clone, Copy)]
pub struct Earlier<'j> {
    pub journal: &'j Journal,
    /// Ask the bucket about every object (`--recheck`): take none of the
    /// journal's proofs without the listing showing the object.
    pub recheck: bool,
}

/// Plans against `store` (its bucket checked to be usable already),
/// using what the journal of earlier runs knows (`migrate`).
pub async fn survey<S: ObjectStore>(
    settings: &RunSettings,
    store: &S,
    progress: &Progress,
    earlier: Option<Earlier<'_>>,
) -> Result<Planned> {
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
    let found = BucketCheck {
        store,
        settings,
        known: &known,
        recheck,
        progress,
    }
    .run(&files, grouping, &keys)
    .await?;
    let (grouping, existing, journal_objects) = (found.grouping, found.existence, found.outside);
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
        endpoint: store.endpoint().to_string(),
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
