//! `mediashift verify`: proves again, against the store, every object the
//! journal says is in place, by the rules of `verify` (the module): each
//! must exist with the file's size and evidence that matches the file's
//! digests; with `--deep` its bytes are downloaded and hashed. Objects that
//! offer no evidence are reported as unproven. Objects under the prefix
//! that no file maps to are reported as unexpected.
//!
//! With `--via-url BASE` it checks the switch instead: every file fetched
//! as the application's visitors will fetch it, with no credentials
//! (`visitor`), judged against what migrate wrote.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::journal::{JournalError, PlacedFile, Reader, VerifiedObject};
use crate::progress::Progress;
use crate::settings::VerifySettings;
use crate::stages::select::ContentTypes;
use crate::stages::verify::{self, Expected, How, Local, Proof};
use crate::store::{ObjectStore, S3, StoreError, Trust, Visit, VisitError, Visitor};
use crate::urls;

/// An object that did not check out.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub key: String,
    pub path: String,
    pub detail: String,
}

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct Checked {
    pub endpoint: String,
    pub objects_checked: u64,
    pub objects_ok: u64,
    /// The objects that check out, by how each was proven.
    pub proofs: BTreeMap<How, u64>,
    pub missing: Vec<Problem>,
    pub mismatched: Vec<Problem>,
    /// Objects whose content nothing proves (no checksum to compare, no
    /// metadata); `--deep` proves them by their bytes.
    pub unproven: Vec<Problem>,
    /// Keys under the prefix that no file of the journal maps to.
    pub unexpected: Vec<String>,
    /// Why keys no journal knows were not looked for (the journals are
    /// some shards of a split, whose others share the prefix); `None` when
    /// they were.
    pub unexpected_not_checked: Option<String>,
}

impl Checked {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.mismatched.is_empty()
            && self.unproven.is_empty()
            && self.unexpected.is_empty()
    }

    fn add(&mut self, o: &VerifiedObject, proof: Proof) {
        let problem = |detail: String| Problem {
            key: o.key.clone(),
            path: o.path.clone(),
            detail,
        };
        match proof {
            Proof::Proven { how } => {
                self.objects_ok += 1;
                *self.proofs.entry(how).or_default() += 1;
            }
            Proof::Missing => self.missing.push(problem("no such object".into())),
            Proof::Different { why } => self.mismatched.push(problem(why)),
            Proof::Unproven { why } => self.unproven.push(problem(why)),
        }
    }
}

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
    let mut expected = Vec::new();
    let mut known_keys = HashSet::new();
    let mut shards = Vec::new();
    for journal in journals(settings)? {
        shards.push(journal.identity().shard.clone());
        expected.extend(journal.verified()?);
        known_keys.extend(journal.keys()?);
    }
    let unexpected_not_checked = shards_left_out(&shards)?;
    // A file two overlapping shards both recorded is checked once.
    expected.sort_by(|a, b| (&a.key, &a.path).cmp(&(&b.key, &b.path)));
    expected.dedup_by(|a, b| a.key == b.key && a.path == b.path);
    let store = &connect().await?;

    let wanted: HashMap<&str, &VerifiedObject> =
        expected.iter().map(|o| (o.key.as_str(), o)).collect();
    let mut listed: HashMap<String, u64> = HashMap::new();
    let mut unexpected = Vec::new();
    store
        .list(&settings.destination.prefix, |key, size| {
            if wanted.contains_key(key) {
                listed.insert(key.to_string(), size);
            } else if !known_keys.contains(key) && unexpected_not_checked.is_none() {
                unexpected.push(key.to_string());
            }
        })
        .await?;
    unexpected.sort();

    let mut doc = Checked {
        endpoint: store.endpoint().to_string(),
        objects_checked: expected.len() as u64,
        objects_ok: 0,
        proofs: BTreeMap::new(),
        missing: Vec::new(),
        mismatched: Vec::new(),
        unproven: Vec::new(),
        unexpected,
        unexpected_not_checked,
    };
    let bar = progress.items("verifying", expected.len() as u64);
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    let mut tasks: JoinSet<(usize, std::result::Result<Proof, StoreError>)> = JoinSet::new();
    let expected = Arc::new(expected);
    for (i, o) in expected.iter().enumerate() {
        // The listing tells what is gone or has another size: no HEAD needed.
        let local = Local::file(o.size, o.digests);
        if let Some(proof) = verify::from_listing(listed.get(&o.key).copied(), &local) {
            doc.add(o, proof);
            bar.inc(1);
            continue;
        }
        let (store, limit, all, deep) = (
            store.clone(),
            limit.clone(),
            expected.clone(),
            settings.deep,
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (i, check(&store, &all[i], deep).await)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, proof) = joined.map_err(|source| Error::Task {
            what: "a check",
            source,
        })?;
        bar.inc(1);
        doc.add(&expected[i], proof?);
    }
    bar.finish();
    for list in [&mut doc.missing, &mut doc.mismatched, &mut doc.unproven] {
        list.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(doc)
}

/// A file a visitor would not get as migrated.
#[derive(Debug, Serialize)]
pub struct Unserved {
    pub path: String,
    pub url: String,
    /// What came back (`None`: no answer at all).
    #[serde(flatten)]
    pub visit: Option<Visit>,
    pub detail: String,
}

/// What `verify --via-url` found.
#[derive(Debug, Serialize)]
pub struct Visited {
    pub via_url: String,
    pub files_checked: u64,
    pub files_ok: u64,
    /// Answers by HTTP status (`0`: no answer).
    pub statuses: BTreeMap<u16, u64>,
    pub problems: Vec<Unserved>,
}

impl Visited {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Fetches every placed file of the journals at BASE as a visitor would,
/// and judges what came back against what migrate wrote (`--via-url`).
pub async fn run_via_url(
    settings: &VerifySettings,
    base: &str,
    progress: &Progress,
) -> Result<Visited> {
    let mut files = Vec::new();
    let mut object_settings = None;
    let mut layout = String::new();
    for journal in journals(settings)? {
        layout.clone_from(&journal.identity().key_layout);
        object_settings = object_settings.or(journal.object_settings()?);
        files.extend(journal.placed()?);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    let object_settings = object_settings.unwrap_or_default();
    let types = ContentTypes::from_lines(&object_settings.content_types);
    let prefix = &settings.destination.prefix;
    // Where a visitor finds each file: the application writes BASE and
    // the path raw (preserve); under the content layout, its new URL.
    let url_of = |f: &PlacedFile| match layout.as_str() {
        "content" => urls::url_for(base, &f.key),
        _ => format!(
            "{base}{}",
            urls::as_a_browser_sends(f.key.strip_prefix(prefix.as_str()).unwrap_or(&f.path))
        ),
    };
    let trust = if settings.connection.verify_ssl {
        settings
            .connection
            .ca_bundle
            .as_deref()
            .map_or(Trust::System, |b| Trust::Bundle(b.clone()))
    } else {
        Trust::Unchecked
    };
    let visitor = Arc::new(Visitor::new(&trust, settings.connection.request_timeout)?);
    let mut doc = Visited {
        via_url: base.to_string(),
        files_checked: files.len() as u64,
        files_ok: 0,
        statuses: BTreeMap::new(),
        problems: Vec::new(),
    };
    let bar = progress.items("visiting", files.len() as u64);
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    type Answer = std::result::Result<Visit, VisitError>;
    let mut tasks: JoinSet<(usize, String, Answer)> = JoinSet::new();
    for (i, f) in files.iter().enumerate() {
        let (visitor, limit, url, deep) =
            (visitor.clone(), limit.clone(), url_of(f), settings.deep);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let answer = visitor.visit(&url, deep).await;
            (i, url, answer)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, url, answer) = joined.map_err(|source| Error::Task {
            what: "a visit",
            source,
        })?;
        bar.inc(1);
        let f = &files[i];
        let unserved = |visit: Option<Visit>, detail: String| Unserved {
            path: f.path.clone(),
            url: url.clone(),
            visit,
            detail,
        };
        match answer {
            Err(e) => {
                *doc.statuses.entry(0).or_default() += 1;
                doc.problems.push(unserved(None, e.to_string()));
            }
            Ok(visit) => {
                *doc.statuses.entry(visit.status).or_default() += 1;
                let content_type = types.of(&f.path);
                let expected = Expected {
                    size: f.size,
                    sha256: f.sha256,
                    content_type: &content_type,
                    cache_control: object_settings.cache_control.as_deref(),
                };
                let wrong = verify::judge_visit(&visit, &expected, settings.deep);
                if wrong.is_empty() {
                    doc.files_ok += 1;
                } else {
                    doc.problems.push(unserved(Some(visit), wrong.join("; ")));
                }
            }
        }
    }
    bar.finish();
    doc.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(doc)
}

/// The journals' shards (`I/N`, or empty for a whole run): all whole (one
/// journal), or all shards of one split, each once. `Some(why)` when some
/// shards are missing: the others' objects share the prefix, so keys no
/// given journal knows cannot be called unexpected.
fn shards_left_out(shards: &[String]) -> std::result::Result<Option<String>, JournalError> {
    let bad = |m: String| Err(JournalError::Other(m));
    if shards.iter().all(String::is_empty) {
        if shards.len() > 1 {
            return bad("--state is given more than once, but the journals are not shards of one split: give one".into());
        }
        return Ok(None);
    }
    let parsed: Vec<Option<crate::stages::shard::Shard>> =
        shards.iter().map(|s| s.parse().ok()).collect();
    let Some(Some(first)) = parsed.first().copied() else {
        return bad(
            "the --state journals mix a whole migration and shards: give the shards' journals only"
                .into(),
        );
    };
    let mut seen = std::collections::BTreeSet::new();
    for (s, text) in parsed.iter().zip(shards) {
        match s {
            Some(s) if s.count == first.count => {
                if !seen.insert(s.index) {
                    return bad(format!("shard {text}'s journal is given twice"));
                }
            }
            _ => {
                return bad(format!(
                    "the --state journals are not shards of one split ({text} and {first})"
                ));
            }
        }
    }
    let missing: Vec<String> = (0..first.count)
        .filter(|i| !seen.contains(i))
        .map(|i| format!("{i}/{}", first.count))
        .collect();
    Ok((!missing.is_empty()).then(|| {
        format!(
            "objects no journal knows are not looked for: shard(s) {} not given (repeat --state for every shard)",
            missing.join(", ")
        )
    }))
}

async fn check<S: ObjectStore>(
    store: &S,
    o: &VerifiedObject,
    deep: bool,
) -> std::result::Result<Proof, StoreError> {
    verify::prove_now(
        store,
        &o.key,
        o.size,
        o.digests,
        o.checksum.as_deref(),
        deep,
    )
    .await
}
