//! The check of the switch before it is flipped (`verify --via-url`):
//! every placed file fetched as the application's visitors will fetch it
//! after the switch, over plain HTTP(S) with no credentials, and judged
//! against what migrate wrote (status, length, `Content-Type`,
//! `Cache-Control`; `--deep`: the bytes).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::fan;
use super::select::ContentTypes;
use super::verify::{self, Expected};
use crate::error::Result;
use crate::journal::{ObjectSettingsRow, PlacedFile, Reader};
use crate::progress::Progress;
use crate::store::{Visit, VisitError, Visitor};
use crate::urls;

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

/// What the journals hold as placed, and how migrate wrote the objects.
#[derive(Debug, Default)]
pub struct Placed {
    /// Each path once, in path order.
    pub files: Vec<PlacedFile>,
    pub object_settings: ObjectSettingsRow,
    /// The key layout (`preserve` or `content`).
    pub layout: String,
}

/// The placed files of the journals (one, or the shards of one split).
pub fn placed(journals: &[Reader]) -> Result<Placed> {
    let mut out = Placed::default();
    let mut object_settings = None;
    for journal in journals {
        out.layout.clone_from(&journal.identity().key_layout);
        object_settings = object_settings.or(journal.object_settings()?);
        out.files.extend(journal.placed()?);
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out.files.dedup_by(|a, b| a.path == b.path);
    out.object_settings = object_settings.unwrap_or_default();
    Ok(out)
}

/// Fetches every placed file at BASE (`base`) as a visitor would, with
/// `visitor`, `concurrency` at a time, and judges what came back.
/// `prefix` is the destination's key prefix.
pub async fn visit_all(
    visitor: Visitor,
    placed: Placed,
    base: &str,
    prefix: &str,
    concurrency: usize,
    deep: bool,
    progress: &Progress,
) -> Result<Visited> {
    let Placed {
        files,
        object_settings,
        layout,
    } = placed;
    let types = ContentTypes::from_lines(&object_settings.content_types);
    // Where a visitor finds each file: the application writes BASE and
    // the path raw (preserve); under the content layout, its new URL.
    let url_of = |f: &PlacedFile| match layout.as_str() {
        "content" => urls::url_for(base, &f.key),
        _ => format!(
            "{base}{}",
            urls::as_a_browser_sends(f.key.strip_prefix(prefix).unwrap_or(&f.path))
        ),
    };
    let mut doc = Visited {
        via_url: base.to_string(),
        files_checked: files.len() as u64,
        files_ok: 0,
        statuses: BTreeMap::new(),
        problems: Vec::new(),
    };
    let bar = progress.items("visiting", files.len() as u64);
    let visitor = Arc::new(visitor);
    fan::at_most(
        concurrency,
        "a visit",
        files.iter().enumerate(),
        |(i, f)| {
            let (visitor, url) = (visitor.clone(), url_of(f));
            async move {
                let answer = visitor.visit(&url, deep).await;
                (i, url, answer)
            }
        },
        |(i, url, answer): (usize, String, std::result::Result<Visit, VisitError>)| {
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
                    let wrong = verify::judge_visit(&visit, &expected, deep);
                    if wrong.is_empty() {
                        doc.files_ok += 1;
                    } else {
                        doc.problems.push(unserved(Some(visit), wrong.join("; ")));
                    }
                }
            }
            Ok(())
        },
    )
    .await?;
    bar.finish();
    doc.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(doc)
}
