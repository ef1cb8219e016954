//! The re-check of a migration (`verify`): every object the journals hold
//! as verified is proven again against the store, by the rules of
//! `stages::verify`: each must exist with the file's size and evidence
//! that matches the file's digests; with `--deep` its bytes are downloaded
//! and hashed. Objects that offer no evidence are reported as unproven.
//! Objects under the prefix that no file maps to are reported as
//! unexpected (when every shard's journal is given).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::fan;
use super::verify::{self, How, Local, Proof};
use crate::error::Result;
use crate::journal::{JournalError, Reader, VerifiedObject};
use crate::progress::Progress;
use crate::store::ObjectStore;

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

/// What the journals hold as placed and proven.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Each (key, path) once, in key order.
    pub objects: Vec<VerifiedObject>,
    /// Every key any file of the journals maps to.
    pub known_keys: HashSet<String>,
    /// Why keys no journal knows cannot be called unexpected (some shards'
    /// journals are not given); `None` when they can.
    pub unexpected_not_checked: Option<String>,
}

/// What the journals (one, or the shards of one split) hold as verified.
pub fn recorded(journals: &[Reader]) -> Result<Recorded> {
    let mut out = Recorded::default();
    let mut shards = Vec::new();
    for journal in journals {
        shards.push(journal.identity().shard.clone());
        out.objects.extend(journal.verified()?);
        out.known_keys.extend(journal.keys()?);
    }
    out.unexpected_not_checked = shards_left_out(&shards)?;
    // A file two overlapping shards both recorded is checked once.
    out.objects
        .sort_by(|a, b| (&a.key, &a.path).cmp(&(&b.key, &b.path)));
    out.objects
        .dedup_by(|a, b| a.key == b.key && a.path == b.path);
    Ok(out)
}

/// Proves every recorded object again: one listing of `prefix` tells what
/// is gone or has another size (no HEAD needed for those) and what is
/// there that no file maps to; the rest are asked, `concurrency` at a time.
pub async fn recheck<S: ObjectStore>(
    store: &S,
    recorded: Recorded,
    prefix: &str,
    concurrency: usize,
    deep: bool,
    progress: &Progress,
) -> Result<Checked> {
    let Recorded {
        objects,
        known_keys,
        unexpected_not_checked,
    } = recorded;
    let wanted: HashMap<&str, &VerifiedObject> =
        objects.iter().map(|o| (o.key.as_str(), o)).collect();
    let mut listed: HashMap<String, u64> = HashMap::new();
    let mut unexpected = Vec::new();
    store
        .list(prefix, |key, size| {
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
        objects_checked: objects.len() as u64,
        objects_ok: 0,
        proofs: BTreeMap::new(),
        missing: Vec::new(),
        mismatched: Vec::new(),
        unproven: Vec::new(),
        unexpected,
        unexpected_not_checked,
    };
    let bar = progress.items("verifying", objects.len() as u64);
    let mut asked = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let local = Local::file(o.size, o.digests);
        match verify::from_listing(listed.get(&o.key).copied(), &local) {
            Some(proof) => {
                doc.add(o, proof);
                bar.inc(1);
            }
            None => asked.push(i),
        }
    }
    let objects = Arc::new(objects);
    fan::at_most(
        concurrency,
        "a check",
        asked,
        |i| {
            let (store, all) = (store.clone(), objects.clone());
            async move {
                let o = &all[i];
                let proof = verify::prove_now(
                    &store,
                    &o.key,
                    o.size,
                    o.digests,
                    o.checksum.as_deref(),
                    deep,
                )
                .await;
                (i, proof)
            }
        },
        |(i, proof)| {
            bar.inc(1);
            doc.add(&objects[i], proof?);
            Ok(())
        },
    )
    .await?;
    bar.finish();
    for list in [&mut doc.missing, &mut doc.mismatched, &mut doc.unproven] {
        list.sort_by(|a, b| a.key.cmp(&b.key));
    }
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
