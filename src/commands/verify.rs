//! `mediashift verify`: re-checks, against the store, every object the
//! journal says is in place. Each must exist with the recorded size, and its
//! `sha256` metadata and full-object CRC64NVME (when it has one) must match
//! the file's; with `--deep` its bytes are downloaded and re-hashed. Objects
//! under the prefix that no file maps to are reported as unexpected.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::journal::{Journal, JournalError};
use crate::report::Reporter;
use crate::settings::VerifySettings;
use crate::store::Store;
use crate::types::{Crc64Nvme, Sha256Digest};
use crate::verify::SHA256_METADATA;
use crate::{Error, Result};

#[derive(Debug, Serialize)]
pub struct Problem {
    pub key: String,
    pub path: String,
    pub detail: String,
}

/// The `verify --json` document.
#[derive(Debug, Serialize)]
pub struct VerifyDoc {
    pub destination: String,
    pub endpoint: String,
    pub deep: bool,
    pub objects_checked: u64,
    pub objects_ok: u64,
    pub missing: Vec<Problem>,
    pub mismatched: Vec<Problem>,
    /// Keys under the prefix that no file of the journal maps to.
    pub unexpected: Vec<String>,
}

impl VerifyDoc {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty() && self.unexpected.is_empty()
    }
}

struct Expected {
    path: String,
    size: u64,
    sha256: Option<Sha256Digest>,
    crc64: Option<Crc64Nvme>,
}

fn expected(settings: &VerifySettings) -> Result<(HashMap<String, Expected>, HashSet<String>)> {
    let (conn, identity) = Journal::open_read_only(&settings.state_dir)?;
    let source = settings.source.display().to_string();
    let destination = settings.destination.to_string();
    if identity.source != source || identity.destination != destination {
        return Err(JournalError::Other(format!(
            "the journal in {} is for {} -> {}, not {source} -> {destination}: give the --state of this migration",
            settings.state_dir.display(),
            identity.source,
            identity.destination
        ))
        .into());
    }
    let db = |e: rusqlite::Error| -> Error {
        JournalError::Sqlite {
            path: settings.state_dir.display().to_string(),
            source: e,
        }
        .into()
    };
    let mut stmt = conn
        .prepare(
            "SELECT key, MIN(path), size, sha256, crc64 FROM files
             WHERE state = 'verified' AND key IS NOT NULL GROUP BY key",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map([], |r| {
            let sha: Option<Vec<u8>> = r.get(3)?;
            let crc: Option<i64> = r.get(4)?;
            Ok((
                r.get::<_, String>(0)?,
                Expected {
                    path: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    sha256: sha.and_then(|s| s.try_into().ok()).map(Sha256Digest),
                    crc64: crc.map(|c| Crc64Nvme(c as u64)),
                },
            ))
        })
        .map_err(db)?;
    let mut out = HashMap::new();
    for r in rows {
        let (k, e) = r.map_err(db)?;
        out.insert(k, e);
    }
    let mut all = HashSet::new();
    let mut stmt = conn
        .prepare("SELECT DISTINCT key FROM files WHERE key IS NOT NULL")
        .map_err(db)?;
    for k in stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db)? {
        all.insert(k.map_err(db)?);
    }
    Ok((out, all))
}

pub async fn run(settings: &VerifySettings, reporter: &Reporter) -> Result<VerifyDoc> {
    let (expected, known_keys) = expected(settings)?;
    let store = Store::connect(&settings.connection, &settings.destination.bucket).await?;
    store.check_bucket().await?;

    let mut listed: HashMap<String, u64> = HashMap::new();
    let mut unexpected = Vec::new();
    store
        .list(&settings.destination.prefix, |key, size| {
            if expected.contains_key(key) {
                listed.insert(key.to_string(), size);
            } else if !known_keys.contains(key) {
                unexpected.push(key.to_string());
            }
        })
        .await?;
    unexpected.sort();

    let mut doc = VerifyDoc {
        destination: settings.destination.to_string(),
        endpoint: store.endpoint().to_string(),
        deep: settings.deep,
        objects_checked: expected.len() as u64,
        objects_ok: 0,
        missing: Vec::new(),
        mismatched: Vec::new(),
        unexpected,
    };
    let progress = reporter.items("verifying", expected.len() as u64);
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    let mut tasks: JoinSet<(String, Result<Option<String>, crate::store::StoreError>)> =
        JoinSet::new();
    let expected = Arc::new(expected);
    for (key, e) in expected.iter() {
        match listed.get(key) {
            None => {
                doc.missing.push(Problem {
                    key: key.clone(),
                    path: e.path.clone(),
                    detail: "no such object".into(),
                });
                progress.inc(1);
                continue;
            }
            Some(&size) if size != e.size => {
                doc.mismatched.push(Problem {
                    key: key.clone(),
                    path: e.path.clone(),
                    detail: format!("the object holds {size} bytes, the journal says {}", e.size),
                });
                progress.inc(1);
                continue;
            }
            Some(_) => {}
        }
        let (store, limit, key, exp, deep) = (
            store.clone(),
            limit.clone(),
            key.clone(),
            expected.clone(),
            settings.deep,
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let r = check(&store, &key, &exp[&key], deep).await;
            (key, r)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (key, r) = joined.map_err(|e| Error::Internal(format!("a check failed: {e}")))?;
        progress.inc(1);
        let path = expected[&key].path.clone();
        match r? {
            None => doc.objects_ok += 1,
            Some(detail) if detail == "missing" => doc.missing.push(Problem {
                key,
                path,
                detail: "deleted during the check".into(),
            }),
            Some(detail) => doc.mismatched.push(Problem { key, path, detail }),
        }
    }
    progress.finish();
    doc.missing.sort_by(|a, b| a.key.cmp(&b.key));
    doc.mismatched.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(doc)
}

/// `None` when the object checks out, else what is wrong.
async fn check(
    store: &Store,
    key: &str,
    e: &Expected,
    deep: bool,
) -> Result<Option<String>, crate::store::StoreError> {
    let Some(head) = store.head(key).await? else {
        return Ok(Some("missing".into()));
    };
    if head.size != e.size {
        return Ok(Some(format!(
            "the object holds {} bytes, the journal says {}",
            head.size, e.size
        )));
    }
    if let (Some(meta), Some(sha)) = (head.metadata.get(SHA256_METADATA), e.sha256)
        && !meta.eq_ignore_ascii_case(&sha.to_hex())
    {
        return Ok(Some(format!(
            "its sha256 metadata {meta} is not the file's {}",
            sha.to_hex()
        )));
    }
    let full_object = head.checksum_type.as_deref() != Some("COMPOSITE");
    if let (Some(c), Some(crc), true) = (&head.checksum_crc64nvme, e.crc64, full_object)
        && *c != crc.to_base64()
    {
        return Ok(Some(format!(
            "its CRC64NVME {c} is not the file's {}",
            crc.to_base64()
        )));
    }
    if deep {
        match store.read_sha256(key).await? {
            None => return Ok(Some("missing".into())),
            Some((len, sha)) => {
                if len != e.size {
                    return Ok(Some(format!(
                        "{len} bytes downloaded, the journal says {}",
                        e.size
                    )));
                }
                if let Some(want) = e.sha256
                    && sha != want
                {
                    return Ok(Some(format!(
                        "its bytes hash to {sha}, the file's SHA-256 is {want}"
                    )));
                }
            }
        }
    }
    Ok(None)
}
