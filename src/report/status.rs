//! The `status` report: what the journal says, by state.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::format::{amount, thousands};
use crate::commands::status::Status;
use crate::journal::{FailedFile, FileState, Identity, InFlight, OffloadCount};
use crate::types::ByteSize;

#[derive(Debug, Serialize, Default)]
pub struct Count {
    pub files: u64,
    pub bytes: u64,
}

/// The `status --json` document.
#[derive(Debug, Serialize)]
pub struct StatusDoc<'a> {
    pub journal: String,
    #[serde(flatten)]
    pub identity: &'a Identity,
    /// Files by state: planned, uploading, uploaded, verified, failed.
    pub files: BTreeMap<&'static str, Count>,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_remaining: u64,
    pub uploads_in_flight: &'a [InFlight],
    pub failures: &'a [FailedFile],
    /// Files offloaded from SOURCE_DIR (moved to a quarantine or deleted).
    pub offloaded: OffloadCount,
}

impl<'a> StatusDoc<'a> {
    pub fn new(s: &'a Status) -> Self {
        let files: BTreeMap<&'static str, Count> = s
            .counts
            .iter()
            .map(|c| {
                (
                    c.state.as_str(),
                    Count {
                        files: c.files,
                        bytes: c.bytes,
                    },
                )
            })
            .collect();
        let bytes = |done: bool| {
            s.counts
                .iter()
                .filter(|c| (c.state == FileState::Verified) == done)
                .map(|c| c.bytes)
                .sum()
        };
        Self {
            journal: s.journal.display().to_string(),
            identity: &s.identity,
            files_total: s.counts.iter().map(|c| c.files).sum(),
            bytes_done: bytes(true),
            bytes_remaining: bytes(false),
            files,
            uploads_in_flight: &s.in_flight,
            failures: &s.failures,
            offloaded: s.offloaded,
        }
    }

    /// Whether nothing failed.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The human-readable `status`.
pub fn status_text(d: &StatusDoc<'_>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Journal {}", d.journal);
    let _ = writeln!(
        o,
        "  {} -> {} (key layout {}, checksum {})",
        d.identity.source, d.identity.destination, d.identity.key_layout, d.identity.checksum
    );
    let _ = writeln!(o);
    for (state, c) in &d.files {
        let _ = writeln!(o, "  {:<12}{}", state, amount(c.files, c.bytes));
    }
    let _ = writeln!(
        o,
        "  {:<12}{:>10}  {} done, {} remaining",
        "total",
        thousands(d.files_total),
        ByteSize(d.bytes_done),
        ByteSize(d.bytes_remaining)
    );
    if d.offloaded.files > 0 {
        let _ = writeln!(
            o,
            "  {:<12}{}  (no longer in SOURCE_DIR)",
            "offloaded",
            amount(d.offloaded.files, d.offloaded.bytes)
        );
    }
    if !d.uploads_in_flight.is_empty() {
        let _ = writeln!(
            o,
            "\nMultipart uploads in flight (resumed by the next run):"
        );
        for u in d.uploads_in_flight {
            let _ = writeln!(
                o,
                "  {}: {} parts, {} of {}",
                u.key,
                u.parts_done,
                ByteSize(u.bytes_done),
                ByteSize(u.size)
            );
        }
    }
    if !d.failures.is_empty() {
        let _ = writeln!(o, "\nFailed ({}):", thousands(d.failures.len() as u64));
        for f in d.failures {
            let _ = writeln!(o, "  {}: {}", f.path, f.error);
        }
    }
    o
}
