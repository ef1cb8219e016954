//! The `offload` and `restore` reports.

use std::fmt::Write as _;

use serde::Serialize;

use super::format::thousands;
use crate::cutover::files::Kept as KeptFile;
use crate::cutover::offload::{Kept, Moved, Offloaded};
use crate::cutover::restore::{self, Back, Restored};
use crate::settings::{OffloadSettings, OffloadTo};
use crate::types::ByteSize;

/// The `offload --json` document.
#[derive(Debug, Serialize)]
pub struct OffloadDoc<'a> {
    pub source: String,
    pub destination: String,
    pub endpoint: &'a str,
    /// The quarantine directory; `None` with `--delete`.
    pub quarantine: Option<String>,
    pub deep: bool,
    pub dry_run: bool,
    /// Files moved out of SOURCE_DIR by this run (in a dry run: that would be).
    pub files_offloaded: u64,
    pub bytes_freed: u64,
    pub offloaded: &'a [Moved],
    /// Files an earlier run offloaded (nothing to do).
    pub already_offloaded: u64,
    /// Files an interrupted run had moved, recorded by this one.
    pub recovered: u64,
    pub files_kept: &'a [Kept],
}

impl<'a> OffloadDoc<'a> {
    pub fn new(d: &'a Offloaded, s: &OffloadSettings) -> Self {
        Self {
            source: s.source.display().to_string(),
            destination: s.destination.to_string(),
            endpoint: &d.endpoint,
            quarantine: match &s.to {
                OffloadTo::Quarantine(q) => Some(q.display().to_string()),
                OffloadTo::Delete => None,
            },
            deep: s.deep,
            dry_run: s.dry_run,
            files_offloaded: d.offloaded.len() as u64,
            bytes_freed: d.offloaded.iter().map(|m| m.size).sum(),
            offloaded: &d.offloaded,
            already_offloaded: d.already,
            recovered: d.recovered,
            files_kept: &d.kept,
        }
    }

    /// Whether every file the journal holds was offloaded.
    pub fn is_clean(&self) -> bool {
        self.files_kept.is_empty()
    }
}

/// The human-readable `offload`.
pub fn offload_text(d: &OffloadDoc<'_>) -> String {
    let mut o = String::new();
    let verb = if d.dry_run {
        "Would offload"
    } else {
        "Offloaded"
    };
    let to = d
        .quarantine
        .as_deref()
        .map_or_else(|| "deleted".to_string(), |q| format!("to {q}"));
    if d.dry_run {
        for m in d.offloaded {
            let _ = writeln!(o, "  would offload  {} ({})", m.path, ByteSize(m.size));
        }
    }
    kept_lines(&mut o, "Kept in SOURCE_DIR", d.files_kept, |r| r.name());
    let _ = write!(
        o,
        "{verb} {} files ({} freed, {to}) from {}",
        thousands(d.files_offloaded),
        ByteSize(d.bytes_freed),
        d.source
    );
    if d.already_offloaded > 0 {
        let _ = write!(o, "; {} offloaded before", thousands(d.already_offloaded));
    }
    if d.recovered > 0 {
        let _ = write!(
            o,
            "; {} finished from an interrupted run",
            thousands(d.recovered)
        );
    }
    let _ = writeln!(o, "; {} kept", thousands(d.files_kept.len() as u64));
    o
}

/// "TITLE (N):" and a line per file left where it is, with its reason.
fn kept_lines<R: Copy>(
    o: &mut String,
    title: &str,
    kept: &[KeptFile<R>],
    name: fn(R) -> &'static str,
) {
    if kept.is_empty() {
        return;
    }
    let _ = writeln!(o, "{title} ({}):", thousands(kept.len() as u64));
    for k in kept {
        let _ = writeln!(o, "  {}: {}: {}", k.path, name(k.reason), k.detail);
    }
}

/// The `restore --json` document.
#[derive(Debug, Serialize)]
pub struct RestoreDoc<'a> {
    pub files_restored: u64,
    pub bytes_restored: u64,
    pub restored: &'a [Back],
    pub files_kept: &'a [restore::Kept],
}

impl<'a> RestoreDoc<'a> {
    pub fn new(d: &'a Restored) -> Self {
        Self {
            files_restored: d.restored.len() as u64,
            bytes_restored: d.restored.iter().map(|b| b.size).sum(),
            restored: &d.restored,
            files_kept: &d.kept,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.files_kept.is_empty()
    }
}

/// The human-readable `restore`.
pub fn restore_text(d: &RestoreDoc<'_>) -> String {
    let mut o = String::new();
    kept_lines(&mut o, "Not restored", d.files_kept, |r| r.name());
    let _ = writeln!(
        o,
        "Restored {} files ({}); {} not restored",
        thousands(d.files_restored),
        ByteSize(d.bytes_restored),
        thousands(d.files_kept.len() as u64)
    );
    o
}
