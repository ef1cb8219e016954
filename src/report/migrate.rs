//! The migration's report: the `migrate --json` document (the plan's
//! fields plus what happened) and its text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::format::{proofs, rows, thousands, unhandled};
use super::plan::{PlanDoc, duplicates_label};
use crate::commands::migrate::Migrated;
use crate::settings::MigrateSettings;
use crate::stages::plan::{Failure, KeyLayout};
use crate::stages::verify::How;
use crate::types::ByteSize;

/// The `migrate --json` document: the plan's fields plus what happened.
#[derive(Serialize)]
pub struct MigrateDoc<'a> {
    #[serde(flatten)]
    pub plan: PlanDoc<'a>,
    pub objects_uploaded: u64,
    pub bytes_uploaded: u64,
    /// Duplicates' own objects made by a server-side copy (`preserve`):
    /// their bytes did not cross the link.
    pub objects_copied: u64,
    pub bytes_copied: u64,
    pub objects_skipped_existing: u64,
    /// Objects by how they were proven to hold the file's bytes.
    pub verified: BTreeMap<How, u64>,
    pub map_dir: String,
    pub map_files: Vec<String>,
    pub map_entries: usize,
    pub elapsed_s: f64,
    pub throughput_bytes_per_s: f64,
    /// Objects left for the next run because the run was stopped.
    pub objects_interrupted: usize,
    pub journal: String,
    /// Time the journal writer spent in transactions.
    pub journal_write_s: f64,
    /// Requests the store answered with 503 SlowDown or 429 (each retried).
    pub throttled_requests: u64,
    /// Requests that timed out (each retried).
    pub timeouts: u64,
    /// Requests that could not reach the endpoint (each retried).
    pub unreachable_requests: u64,
    /// The fewest and most requests allowed in flight during the run.
    pub concurrency_min: usize,
    pub concurrency_max: usize,
    /// Bytes of source files read, by planning (dedup) and by the upload.
    pub bytes_read: u64,
    /// `bytes_read` per byte uploaded (1.0: every byte read once); none
    /// when nothing was uploaded.
    pub read_per_uploaded_byte: Option<f64>,
    /// The process's own I/O counters from /proc/self/io (Linux): `rchar`
    /// (bytes asked of read calls, sockets included) and `read_bytes`
    /// (bytes fetched from storage, not the page cache).
    pub process_io: Option<ProcessIo>,
}

/// The counters of /proc/self/io that tell reads apart.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIo {
    pub rchar: u64,
    pub read_bytes: u64,
}

impl ProcessIo {
    /// This process's counters now (None off Linux).
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/self/io").ok()?)
    }

    fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
        };
        Some(Self {
            rchar: field("rchar")?,
            read_bytes: field("read_bytes")?,
        })
    }
}

impl<'a> MigrateDoc<'a> {
    pub fn new(m: &'a Migrated, s: &'a MigrateSettings) -> Self {
        let mut plan = PlanDoc::new(&m.planned, &s.run);
        plan.command = "migrate";
        plan.failed.extend(m.failed.iter().map(|f| Failure {
            path: f.path.to_string(),
            error: f.error.clone(),
        }));
        let mut verified = BTreeMap::new();
        for u in &m.uploaded {
            *verified.entry(u.verification).or_insert(0) += 1;
        }
        let (copied, sent): (Vec<_>, Vec<_>) = m.uploaded.iter().partition(|u| u.copied);
        let bytes_uploaded: u64 = sent.iter().map(|u| u.bytes).sum();
        let secs = m.elapsed.as_secs_f64();
        let bytes_read = plan.bytes_hashed + m.bytes_read;
        Self {
            bytes_read,
            read_per_uploaded_byte: (bytes_uploaded > 0)
                .then(|| (bytes_read as f64 / bytes_uploaded as f64 * 1000.0).round() / 1000.0),
            process_io: ProcessIo::now(),
            objects_uploaded: sent.len() as u64,
            bytes_uploaded,
            objects_copied: copied.len() as u64,
            bytes_copied: copied.iter().map(|u| u.bytes).sum(),
            objects_skipped_existing: m.planned.plan.summary.objects_already_present,
            verified,
            map_dir: s.map_dir.display().to_string(),
            map_files: m.maps.iter().map(|p| p.display().to_string()).collect(),
            map_entries: m.map_entries,
            elapsed_s: (secs * 1000.0).round() / 1000.0,
            objects_interrupted: m.interrupted,
            journal: m.journal.display().to_string(),
            journal_write_s: (m.journal_write.as_secs_f64() * 1000.0).round() / 1000.0,
            throttled_requests: m.pace.throttled_requests,
            timeouts: m.pace.timeouts,
            unreachable_requests: m.pace.unreachable,
            concurrency_min: m.pace.concurrency_min,
            concurrency_max: m.pace.concurrency_max,
            throughput_bytes_per_s: if secs > 0.0 {
                (bytes_uploaded as f64 / secs).round()
            } else {
                0.0
            },
            plan,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.plan.failed.is_empty() && self.plan.conflicts.is_empty()
    }
}

/// The human-readable end of a migration.
pub fn migrate_text(doc: &MigrateDoc<'_>) -> String {
    let p = &doc.plan;
    let s = p.summary;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Migrated {} -> {}  ({})",
        p.source, p.destination, p.endpoint
    );
    let _ = writeln!(o);
    let made = match p.key_layout {
        KeyLayout::Preserve => ("copied in the bucket", doc.objects_copied, doc.bytes_copied),
        KeyLayout::Content => (
            duplicates_label(p.key_layout),
            s.duplicate_files,
            s.duplicate_bytes,
        ),
    };
    rows(
        &mut o,
        &[
            ("media files", s.files_total, s.bytes_total),
            ("uploaded", doc.objects_uploaded, doc.bytes_uploaded),
            made,
            (
                "already in the bucket",
                doc.objects_skipped_existing,
                s.bytes_already_present,
            ),
        ],
    );
    let _ = writeln!(
        o,
        "  {:<26}{:>10}",
        "failed",
        thousands(p.failed.len() as u64)
    );
    let _ = writeln!(
        o,
        "  {:<26}{}",
        "verified",
        if doc.verified.is_empty() {
            "-".to_string()
        } else {
            proofs(&doc.verified)
        }
    );
    let _ = writeln!(
        o,
        "  {:<26}{:.1} s, {}/s",
        "time",
        doc.elapsed_s,
        ByteSize(doc.throughput_bytes_per_s as u64)
    );
    if let Some(r) = doc.read_per_uploaded_byte {
        let _ = writeln!(
            o,
            "  {:<26}{} ({r:.2} per byte uploaded)",
            "read from SOURCE_DIR",
            ByteSize(doc.bytes_read)
        );
    }
    let mut store = format!(
        "concurrency {}-{}",
        doc.concurrency_min, doc.concurrency_max
    );
    for (n, what) in [
        (doc.throttled_requests, "throttled"),
        (doc.timeouts, "timed out"),
        (doc.unreachable_requests, "unreachable"),
    ] {
        if n > 0 {
            let _ = write!(store, ", {} {what} (retried)", thousands(n));
        }
    }
    let _ = writeln!(o, "  {:<26}{store}", "requests");
    unhandled(&mut o, p.conflicts, &p.failed, "Failed");
    let _ = writeln!(
        o,
        "\nURL maps ({} entries) in {}:",
        thousands(doc.map_entries as u64),
        doc.map_dir
    );
    for f in &doc.map_files {
        let _ = writeln!(o, "  {f}");
    }
    if doc.objects_interrupted > 0 {
        let _ = writeln!(
            o,
            "\nInterrupted: {} object(s) not uploaded yet. Run the same command again to resume.",
            thousands(doc.objects_interrupted as u64)
        );
    }
    if !doc.is_clean() {
        let _ = writeln!(
            o,
            "\nSome files were not migrated (listed above). Fix them and run the same command again:"
        );
        let _ = writeln!(o, "what is already uploaded is recognised and skipped.");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_self_io_is_read_by_field_name() {
        let text = "rchar: 4096\nwchar: 10\nsyscr: 3\nsyscw: 1\nread_bytes: 512\nwrite_bytes: 0\ncancelled_write_bytes: 0\n";
        assert_eq!(
            ProcessIo::parse(text),
            Some(ProcessIo {
                rchar: 4096,
                read_bytes: 512
            })
        );
        assert_eq!(ProcessIo::parse("rchar: x\n"), None);
        assert!(ProcessIo::now().is_some(), "this machine runs Linux");
    }
}
