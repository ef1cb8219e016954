//! `mediashift verify`: proves again, against the store, every object the
//! journal says is in place, by the rules of `verify` (the module): each
//! must exist with the file's size and evidence that matches the file's
//! digests; with `--deep` its bytes are downloaded and hashed. Objects that
//! offer no evidence are reported as unproven. Objects under the prefix
//! that no file maps to are reported as unexpected.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::digest::Digests;
use crate::error::{Error, Result};
use crate::journal::{Identity, JournalError, Reader, VerifiedObject};
use crate::progress::Progress;
use crate::settings::VerifySettings;
use crate::store::{BodyChecksum, ObjectStore, S3, StoreError};
use crate::verify::{self, How, Local, Proof};

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

pub async fn run(settings: &VerifySettings, progress: &Progress) -> Result<Checked> {
    let journal = Reader::open(&settings.state_dir)?;
    same_migration(
        journal.identity(),
        &settings.state_dir,
        &settings.source,
        &settings.destination.to_string(),
    )?;
    let expected = journal.verified()?;
    let known_keys = journal.keys()?;
    drop(journal);
    let store = S3::connect(&settings.connection, &settings.destination.bucket).await?;
    super::plan::report_pace(progress, &store);
    store.check_bucket().await?;

    let wanted: HashMap<&str, &VerifiedObject> =
        expected.iter().map(|o| (o.key.as_str(), o)).collect();
    let mut listed: HashMap<String, u64> = HashMap::new();
    let mut unexpected = Vec::new();
    store
        .list(&settings.destination.prefix, |key, size| {
            if wanted.contains_key(key) {
                listed.insert(key.to_string(), size);
            } else if !known_keys.contains(key) {
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

/// Refuses a journal of another migration than SOURCE_DIR -> destination.
pub fn same_migration(
    identity: &Identity,
    state_dir: &Path,
    source: &Path,
    destination: &str,
) -> std::result::Result<(), JournalError> {
    let source = source.display().to_string();
    if identity.source != source || identity.destination != destination {
        return Err(JournalError::Other(format!(
            "the journal in {} is for {} -> {}, not {source} -> {destination}: give the --state of this migration",
            state_dir.display(),
            identity.source,
            identity.destination
        )));
    }
    Ok(())
}

async fn check(
    store: &S3,
    o: &VerifiedObject,
    deep: bool,
) -> std::result::Result<Proof, StoreError> {
    prove_now(
        store,
        &o.key,
        o.size,
        o.digests,
        o.checksum.as_deref(),
        deep,
    )
    .await
}

/// The proof now that the object `key` holds a file of `size` bytes with
/// `digests`: HeadObject, then with `deep` its bytes. `checksum` is the
/// whole checksum that proved it at upload, as the journal records it.
pub async fn prove_now(
    store: &S3,
    key: &str,
    size: u64,
    digests: Option<Digests>,
    checksum: Option<&str>,
    deep: bool,
) -> std::result::Result<Proof, StoreError> {
    // The whole checksum that proved it at upload decides where the
    // digests cannot (CRC32C, composite SHA-256).
    let recorded = checksum.and_then(BodyChecksum::from_record);
    let local = Local::file(size, digests).with_checksum(recorded.as_ref());
    let head = store.head(key).await?;
    let proof = verify::prove(head.as_ref(), &local);
    if !deep || matches!(proof, Proof::Different { .. } | Proof::Missing) {
        return Ok(proof);
    }
    Ok(match store.read_sha256(key).await? {
        None => Proof::Missing,
        Some((len, sha)) => verify::prove_download(len, sha, &local),
    })
}
