//! The `gc` report.

use std::fmt::Write as _;

use serde::Serialize;

use crate::settings::GcSettings;
use crate::stages::gc::Collected;

/// The `gc --json` document.
#[derive(Debug, Serialize)]
pub struct GcDoc<'a> {
    pub destination: String,
    pub older_than_s: u64,
    pub dry_run: bool,
    #[serde(flatten)]
    pub collected: &'a Collected,
}

impl<'a> GcDoc<'a> {
    pub fn new(collected: &'a Collected, s: &GcSettings) -> Self {
        Self {
            destination: s.destination.to_string(),
            older_than_s: s.older_than.as_secs(),
            dry_run: s.dry_run,
            collected,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.collected.failed == 0
    }
}

/// The human-readable `gc`.
pub fn gc_text(d: &GcDoc<'_>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Incomplete multipart uploads under {} ({} found, older than {} s targeted{}):",
        d.destination,
        d.collected.uploads.len(),
        d.older_than_s,
        if d.dry_run { ", dry run" } else { "" }
    );
    for u in &d.collected.uploads {
        let age = u
            .age_s
            .map_or_else(|| "age unknown".to_string(), |a| format!("{a} s old"));
        let err = u
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {:<16}{} ({}, {age}){err}",
            u.action.name(),
            u.key,
            u.upload_id
        );
    }
    let _ = writeln!(
        o,
        "{} aborted, {} failed",
        d.collected.aborted, d.collected.failed
    );
    o
}
