//! Leftover multipart uploads (`gc`): those under the prefix older than
//! `--older-than` are aborted (their parts cost storage until then);
//! those the journal will resume are kept unless `--all`; `--dry-run`
//! only lists.

use std::collections::HashSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::journal;
use crate::settings::GcSettings;
use crate::store::ObjectStore;
use crate::types::UploadId;

/// What was done with one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GcAction {
    Aborted,
    WouldAbort,
    KeptRecent,
    KeptForResume,
    Failed,
}

impl GcAction {
    pub fn name(self) -> &'static str {
        match self {
            Self::Aborted => "aborted",
            Self::WouldAbort => "would_abort",
            Self::KeptRecent => "kept_recent",
            Self::KeptForResume => "kept_for_resume",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GcUpload {
    pub key: String,
    pub upload_id: String,
    pub age_s: Option<i64>,
    pub action: GcAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `gc` found and did.
#[derive(Debug, Serialize)]
pub struct Collected {
    pub uploads: Vec<GcUpload>,
    pub aborted: u64,
    pub failed: u64,
}

/// Lists the incomplete uploads under the prefix and aborts those that
/// may go; `resumable`: the uploads a migration's journal will resume.
pub async fn collect<S: ObjectStore>(
    store: &S,
    settings: &GcSettings,
    resumable: &HashSet<UploadId>,
) -> Result<Collected> {
    let now = journal::now();
    let min_age = settings.older_than.as_secs() as i64;
    let mut done = Collected {
        uploads: Vec::new(),
        aborted: 0,
        failed: 0,
    };
    let mut listed = store.list_uploads(&settings.destination.prefix).await?;
    listed.sort_by(|a, b| (&a.key, &a.upload_id.0).cmp(&(&b.key, &b.upload_id.0)));
    for u in listed {
        let age = u.initiated.map(|t| now - t);
        let old_enough = min_age == 0 || age.is_some_and(|a| a >= min_age);
        let mut error = None;
        let action = if !old_enough {
            GcAction::KeptRecent
        } else if resumable.contains(&u.upload_id) && !settings.all {
            GcAction::KeptForResume
        } else if settings.dry_run {
            GcAction::WouldAbort
        } else {
            match store.abort_multipart(&u.key, &u.upload_id).await {
                Ok(()) => {
                    done.aborted += 1;
                    GcAction::Aborted
                }
                Err(e) => {
                    error = Some(e.to_string());
                    done.failed += 1;
                    GcAction::Failed
                }
            }
        };
        done.uploads.push(GcUpload {
            key: u.key,
            upload_id: u.upload_id.0,
            age_s: age,
            action,
            error,
        });
    }
    if done.failed > 0
        && done.aborted == 0
        && done.uploads.iter().all(|u| u.action == GcAction::Failed)
    {
        return Err(Error::NothingAborted(
            done.uploads[0].error.clone().unwrap_or_default(),
        ));
    }
    Ok(done)
}
