//! `mediashift gc`: aborts incomplete multipart uploads under a prefix that
//! are older than `--older-than`. Their parts cost storage until aborted.
//! Uploads that the journal in `--state` will resume are kept unless
//! `--all`; `--dry-run` only lists.

use std::collections::HashSet;

use serde::Serialize;

use crate::journal::Journal;
use crate::settings::GcSettings;
use crate::store::Store;
use crate::{Error, Result};

#[derive(Debug, Serialize)]
pub struct GcUpload {
    pub key: String,
    pub upload_id: String,
    pub age_s: Option<i64>,
    /// aborted, would_abort, kept_recent, kept_for_resume, failed
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `gc --json` document.
#[derive(Debug, Serialize)]
pub struct GcDoc {
    pub destination: String,
    pub older_than_s: u64,
    pub dry_run: bool,
    pub uploads: Vec<GcUpload>,
    pub aborted: u64,
    pub failed: u64,
}

pub async fn run(settings: &GcSettings) -> Result<GcDoc> {
    // Uploads a migration will resume, from its journal if there is one.
    let resumable: HashSet<String> = if settings.state_dir.join(crate::journal::FILE_NAME).exists()
    {
        let (conn, _) = Journal::open_read_only(&settings.state_dir)?;
        let ids = crate::journal::read_uploads(&conn, &settings.state_dir)?;
        ids.into_values().map(|u| u.upload_id.0).collect()
    } else {
        HashSet::new()
    };
    let store = Store::connect(&settings.connection, &settings.destination.bucket).await?;
    store.check_bucket().await?;
    let now = crate::journal::now();
    let min_age = settings.older_than.as_secs() as i64;
    let mut doc = GcDoc {
        destination: settings.destination.to_string(),
        older_than_s: settings.older_than.as_secs(),
        dry_run: settings.dry_run,
        uploads: Vec::new(),
        aborted: 0,
        failed: 0,
    };
    let mut listed = store.list_uploads(&settings.destination.prefix).await?;
    listed.sort_by(|a, b| (&a.key, &a.upload_id.0).cmp(&(&b.key, &b.upload_id.0)));
    for u in listed {
        let age = u.initiated.map(|t| now - t);
        let old_enough = min_age == 0 || age.is_some_and(|a| a >= min_age);
        let mut entry = GcUpload {
            key: u.key.clone(),
            upload_id: u.upload_id.0.clone(),
            age_s: age,
            action: "kept_recent",
            error: None,
        };
        if !old_enough {
        } else if resumable.contains(&u.upload_id.0) && !settings.all {
            entry.action = "kept_for_resume";
        } else if settings.dry_run {
            entry.action = "would_abort";
        } else {
            match store.abort_multipart(&u.key, &u.upload_id).await {
                Ok(()) => {
                    entry.action = "aborted";
                    doc.aborted += 1;
                }
                Err(e) => {
                    entry.action = "failed";
                    entry.error = Some(e.to_string());
                    doc.failed += 1;
                }
            }
        }
        doc.uploads.push(entry);
    }
    if doc.failed > 0 && doc.aborted == 0 && doc.uploads.iter().all(|u| u.action == "failed") {
        return Err(Error::Internal(format!(
            "no upload could be aborted: {}",
            doc.uploads[0].error.clone().unwrap_or_default()
        )));
    }
    Ok(doc)
}
