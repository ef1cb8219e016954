//! Everything the user sees while a run goes on: progress bars and log
//! lines on stderr. This is the only module that knows indicatif.
//!
//! Bars are drawn only when stderr is a terminal and `--no-progress` was not
//! given; otherwise every handle is a cheap no-op, so the stages call them
//! unconditionally. Log lines are written through the bars (suspending them)
//! so they never tear a bar.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Creates the progress display. `enabled` is the user's wish; bars are
/// still off when stderr is not a terminal.
#[derive(Clone)]
pub struct Reporter {
    multi: Option<MultiProgress>,
}

impl Reporter {
    pub fn new(enabled: bool) -> Self {
        let multi = (enabled && io::stderr().is_terminal()).then(|| {
            MULTI
                .get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
                .clone()
        });
        Self { multi }
    }

    pub fn disabled() -> Self {
        Self { multi: None }
    }

    fn add(&self, bar: ProgressBar) -> Phase {
        match &self.multi {
            Some(m) => {
                let bar = m.add(bar);
                bar.enable_steady_tick(Duration::from_millis(120));
                Phase { bar: Some(bar) }
            }
            None => Phase { bar: None },
        }
    }

    /// A counter with no known total ("walking: 12,345 files").
    pub fn counter(&self, message: &str) -> Phase {
        let style = ProgressStyle::with_template("{spinner} {msg}: {human_pos} files")
            .expect("static template");
        self.add(
            ProgressBar::no_length()
                .with_style(style)
                .with_message(message.to_string()),
        )
    }

    /// A bar over a known number of bytes.
    pub fn bytes(&self, message: &str, total: u64) -> Phase {
        let style = ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("static template")
        .progress_chars("=> ");
        self.add(
            ProgressBar::new(total)
                .with_style(style)
                .with_message(message.to_string()),
        )
    }

    /// A bar over a known number of items.
    pub fn items(&self, message: &str, total: u64) -> Phase {
        let style =
            ProgressStyle::with_template("{msg:>10} [{bar:30}] {human_pos}/{human_len} ETA {eta}")
                .expect("static template")
                .progress_chars("=> ");
        self.add(
            ProgressBar::new(total)
                .with_style(style)
                .with_message(message.to_string()),
        )
    }
}

/// Progress of the upload phase: overall bytes (rate, ETA), files done,
/// and one bar per large file in flight.
#[derive(Clone)]
pub struct TransferProgress {
    reporter: Reporter,
    bytes: Phase,
    files: Phase,
}

impl TransferProgress {
    pub fn new(reporter: &Reporter, total_bytes: u64, total_files: u64) -> Self {
        Self {
            reporter: reporter.clone(),
            bytes: reporter.bytes("uploading", total_bytes),
            files: reporter.items("objects", total_files),
        }
    }

    pub fn hidden() -> Self {
        Self {
            reporter: Reporter::disabled(),
            bytes: Phase::hidden(),
            files: Phase::hidden(),
        }
    }

    /// Bytes of a part acknowledged by the server.
    pub fn bytes(&self, n: u64) {
        self.bytes.inc(n);
    }

    /// An object finished; `bytes` not yet counted through [`Self::bytes`].
    pub fn file_done(&self, bytes: u64) {
        self.bytes.inc(bytes);
        self.files.inc(1);
    }

    pub fn file_failed(&self) {
        self.files.inc(1);
    }

    /// A bar for one large file's parts.
    pub fn large_file(&self, name: &str, size: u64) -> Phase {
        self.reporter.bytes(&short(name), size)
    }

    /// A bar for hashing one large file before its upload.
    pub fn hashing(&self, name: &str, size: u64) -> Phase {
        self.reporter.bytes(&format!("hash {}", short(name)), size)
    }

    pub fn finish(&self) {
        self.bytes.finish();
        self.files.finish();
    }
}

/// The last 24 characters of a path, for bar labels.
fn short(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= 24 {
        name.to_string()
    } else {
        format!("…{}", chars[chars.len() - 23..].iter().collect::<String>())
    }
}

/// The process's resident memory now and at its peak, in KiB (Linux), for
/// debug logs at phase boundaries.
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Logs a phase boundary with the memory in use (at -v).
pub fn phase_done(name: &str) {
    let (rss, peak) = memory_kib();
    tracing::debug!(
        "{name} done: RSS {} MiB, peak {} MiB",
        rss / 1024,
        peak / 1024
    );
}

/// One bar or counter. Cloning shares it (safe across threads).
#[derive(Clone, Default)]
pub struct Phase {
    bar: Option<ProgressBar>,
}

impl Phase {
    pub fn hidden() -> Self {
        Self { bar: None }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn inc_length(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc_length(n);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A `tracing` writer that prints log lines above the bars.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match MULTI.get() {
            Some(m) => m.suspend(|| io::stderr().write_all(buf))?,
            None => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

// ---------------------------------------------------------------------------
// Final reports.

use serde::Serialize;

use crate::commands::plan::Planned;
use crate::plan::{Conflict, Failure, KeyLayout, NameProblems, Summary};
use crate::scan::SkipLog;
use crate::settings::RunSettings;

/// The `plan --json` document. Field names are a contract.
#[derive(Serialize)]
pub struct PlanDoc<'a> {
    pub command: &'static str,
    pub source: String,
    pub destination: String,
    pub endpoint: &'a str,
    pub key_layout: KeyLayout,
    pub source_base_url: &'a str,
    pub public_base_url: &'a str,
    pub multipart_threshold: u64,
    pub part_size: u64,
    #[serde(flatten)]
    pub summary: &'a Summary,
    pub skipped: &'a SkipLog,
    pub problems: &'a NameProblems,
    pub conflicts: &'a [Conflict],
    /// Every file that cannot be handled: unreadable, not UTF-8, vanished,
    /// key too long, unreadable while hashing.
    pub failed: Vec<Failure>,
    pub bytes_hashed: u64,
}

impl<'a> PlanDoc<'a> {
    pub fn new(p: &'a Planned, s: &'a RunSettings) -> Self {
        let mut failed: Vec<Failure> = p
            .scan
            .skipped
            .problems()
            .map(|(reason, sk)| Failure {
                path: sk.path.clone(),
                error: if sk.detail.is_empty() {
                    reason.label().to_string()
                } else {
                    format!("{}: {}", reason.label(), sk.detail)
                },
            })
            .collect();
        failed.extend(p.plan.failures.iter().cloned());
        Self {
            command: "plan",
            source: s.scan.root.display().to_string(),
            destination: s.destination.to_string(),
            endpoint: p.store.endpoint(),
            key_layout: s.rules.key_layout,
            source_base_url: &s.urls.source_base,
            public_base_url: &p.public_base,
            multipart_threshold: s.rules.multipart_threshold,
            part_size: s.rules.part_size,
            summary: &p.plan.summary,
            skipped: &p.scan.skipped,
            problems: &p.plan.names,
            conflicts: &p.plan.conflicts,
            failed,
            bytes_hashed: p.grouping.bytes_read,
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One `label  files  bytes` line of a report.
fn row(o: &mut String, label: &str, files: u64, bytes: u64) {
    use std::fmt::Write as _;
    let _ = writeln!(o, "  {label:<26}{}", amount(files, bytes));
}

/// The conflicts and failures sections shared by the plan and migrate
/// reports: every file not handled, with why.
fn unhandled(o: &mut String, conflicts: &[Conflict], failed: &[Failure], title: &str) {
    use std::fmt::Write as _;
    if !conflicts.is_empty() {
        let _ = writeln!(
            o,
            "\nConflicts, not uploaded (different content already under the key; --overwrite replaces it):"
        );
        for c in conflicts {
            let _ = writeln!(o, "  {} -> {}: {}", c.path, c.key, c.detail);
        }
    }
    if !failed.is_empty() {
        let _ = writeln!(o, "\n{title} ({}):", thousands(failed.len() as u64));
        for f in failed {
            let _ = writeln!(o, "  {}: {}", f.path, f.error);
        }
    }
}

fn amount(files: u64, bytes: u64) -> String {
    format!(
        "{:>10}  {:>10}",
        thousands(files),
        crate::types::ByteSize(bytes).to_string()
    )
}

/// The human-readable plan.
pub fn plan_text(doc: &PlanDoc<'_>) -> String {
    use std::fmt::Write as _;
    let s = doc.summary;
    let mut o = String::new();
    let _ = writeln!(o, "Plan: {} -> {}", doc.source, doc.destination);
    let _ = writeln!(
        o,
        "  endpoint {}, key layout {}, multipart from {} in parts of {}",
        doc.endpoint,
        match doc.key_layout {
            KeyLayout::Preserve => "preserve",
            KeyLayout::Content => "content",
        },
        crate::types::ByteSize(doc.multipart_threshold),
        crate::types::ByteSize(doc.part_size),
    );
    let _ = writeln!(o);
    row(&mut o, "media files", s.files_total, s.bytes_total);
    row(&mut o, "distinct contents", s.files_unique, s.bytes_unique);
    row(
        &mut o,
        "duplicates (not uploaded)",
        s.duplicate_files,
        s.duplicate_bytes,
    );
    row(
        &mut o,
        "already in the bucket",
        s.objects_already_present,
        s.bytes_already_present,
    );
    row(&mut o, "to upload", s.objects_to_upload, s.bytes_to_upload);
    let r = &s.requests;
    let _ = writeln!(
        o,
        "  {:<26}{:>10}  ({} PutObject; {} multipart: {} create, {} parts, {} complete)",
        "requests",
        thousands(r.total()),
        thousands(r.put_object),
        thousands(s.multipart_objects),
        thousands(r.create_multipart),
        thousands(r.upload_part),
        thousands(r.complete_multipart),
    );
    let _ = writeln!(
        o,
        "  {:<26}{:>10}  (requests ${:.4} at ${}/1,000; first month of storage ${:.4} at ${}/GB-month)",
        "estimated cost",
        format!("${:.4}", s.estimated_cost_usd),
        s.cost.requests_usd,
        s.cost.put_per_1000_usd,
        s.cost.storage_first_month_usd,
        s.cost.storage_gb_month_usd,
    );

    if !doc.skipped.0.is_empty() {
        let _ = writeln!(o, "\nSkipped:");
        for (reason, group) in &doc.skipped.0 {
            if reason.is_problem() {
                continue;
            }
            let examples: Vec<&str> = group.examples.iter().map(|e| e.path.as_str()).collect();
            let more = if group.count as usize > examples.len() {
                ", ..."
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "  {:<16}{:>8}  (e.g. {}{more})",
                reason.label(),
                thousands(group.count),
                examples.join(", ")
            );
        }
    }
    let n = &doc.problems;
    if !n.case_collisions.is_empty() || !n.normalization_collisions.is_empty() {
        let _ = writeln!(
            o,
            "\nNames that collide (fine in S3, trouble in case-insensitive maps and file systems):"
        );
        for g in &n.case_collisions {
            let _ = writeln!(o, "  differ only by case: {}", g.join(" | "));
        }
        for g in &n.normalization_collisions {
            let _ = writeln!(
                o,
                "  differ only by Unicode normalization: {}",
                g.join(" | ")
            );
        }
    }
    unhandled(
        &mut o,
        doc.conflicts,
        &doc.failed,
        "Files that cannot be migrated",
    );
    let _ = writeln!(
        o,
        "\nNothing was written. Run `mediashift migrate` with the same arguments to carry this out."
    );
    o
}

/// The `migrate --json` document: the plan's fields plus what happened.
#[derive(Serialize)]
pub struct MigrateDoc<'a> {
    #[serde(flatten)]
    pub plan: PlanDoc<'a>,
    pub objects_uploaded: u64,
    pub bytes_uploaded: u64,
    pub objects_skipped_existing: u64,
    /// Objects by how they were proven to hold the file's bytes.
    pub verified: std::collections::BTreeMap<crate::upload::Verification, u64>,
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
}

impl<'a> MigrateDoc<'a> {
    pub fn new(
        m: &'a crate::commands::migrate::Migrated,
        s: &'a crate::settings::MigrateSettings,
    ) -> Self {
        let mut plan = PlanDoc::new(&m.planned, &s.run);
        plan.command = "migrate";
        plan.failed.extend(m.failed.iter().map(|f| Failure {
            path: f.path.to_string(),
            error: f.error.clone(),
        }));
        let mut verified = std::collections::BTreeMap::new();
        for u in &m.uploaded {
            *verified.entry(u.verification).or_insert(0) += 1;
        }
        let bytes_uploaded: u64 = m.uploaded.iter().map(|u| u.bytes).sum();
        let secs = m.elapsed.as_secs_f64();
        Self {
            objects_uploaded: m.uploaded.len() as u64,
            bytes_uploaded,
            objects_skipped_existing: m.planned.plan.summary.objects_already_present,
            verified,
            map_dir: s.map_dir.display().to_string(),
            map_files: m.maps.iter().map(|p| p.display().to_string()).collect(),
            map_entries: m.map_entries,
            elapsed_s: (secs * 1000.0).round() / 1000.0,
            objects_interrupted: m.interrupted,
            journal: m.journal.display().to_string(),
            journal_write_s: (m.journal_write.as_secs_f64() * 1000.0).round() / 1000.0,
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
    use std::fmt::Write as _;
    let p = &doc.plan;
    let s = p.summary;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Migrated {} -> {}  ({})",
        p.source, p.destination, p.endpoint
    );
    let _ = writeln!(o);
    row(&mut o, "media files", s.files_total, s.bytes_total);
    row(&mut o, "uploaded", doc.objects_uploaded, doc.bytes_uploaded);
    row(
        &mut o,
        "duplicates (not uploaded)",
        s.duplicate_files,
        s.duplicate_bytes,
    );
    row(
        &mut o,
        "already in the bucket",
        doc.objects_skipped_existing,
        s.bytes_already_present,
    );
    let _ = writeln!(
        o,
        "  {:<26}{:>10}",
        "failed",
        thousands(p.failed.len() as u64)
    );
    let levels: Vec<String> = doc
        .verified
        .iter()
        .map(|(level, n)| {
            let name = match level {
                crate::upload::Verification::ChecksumInResponse => "checksum in the write's answer",
                crate::upload::Verification::ChecksumInHead => "checksum by HeadObject",
                crate::upload::Verification::Etag => "ETag = MD5",
            };
            format!("{} by {name}", thousands(*n))
        })
        .collect();
    let _ = writeln!(
        o,
        "  {:<26}{}",
        "verified",
        if levels.is_empty() {
            "-".to_string()
        } else {
            levels.join(", ")
        }
    );
    let _ = writeln!(
        o,
        "  {:<26}{:.1} s, {}/s",
        "time",
        doc.elapsed_s,
        crate::types::ByteSize(doc.throughput_bytes_per_s as u64)
    );
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

/// The human-readable `status`.
pub fn status_text(d: &crate::commands::status::StatusDoc) -> String {
    use std::fmt::Write as _;
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
        crate::types::ByteSize(d.bytes_done),
        crate::types::ByteSize(d.bytes_remaining)
    );
    if !d.uploads_in_flight.is_empty() {
        let _ = writeln!(
            o,
            "\nMultipart uploads in flight (resumed by the next run):"
        );
        for u in &d.uploads_in_flight {
            let _ = writeln!(
                o,
                "  {}: {} parts, {} of {}",
                u.key,
                u.parts_done,
                crate::types::ByteSize(u.bytes_done),
                crate::types::ByteSize(u.size)
            );
        }
    }
    if !d.failures.is_empty() {
        let _ = writeln!(o, "\nFailed ({}):", thousands(d.failures.len() as u64));
        for f in &d.failures {
            let _ = writeln!(o, "  {}: {}", f.path, f.error);
        }
    }
    o
}

/// The human-readable `verify`.
pub fn verify_text(d: &crate::commands::verify::VerifyDoc) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Verified {} ({}{}): {} of {} objects check out",
        d.destination,
        d.endpoint,
        if d.deep { ", bytes re-hashed" } else { "" },
        thousands(d.objects_ok),
        thousands(d.objects_checked)
    );
    for (title, list) in [("Missing", &d.missing), ("Mismatched", &d.mismatched)] {
        if !list.is_empty() {
            let _ = writeln!(o, "\n{title} ({}):", list.len());
            for p in list {
                let _ = writeln!(o, "  {} ({}): {}", p.key, p.path, p.detail);
            }
        }
    }
    if !d.unexpected.is_empty() {
        let _ = writeln!(
            o,
            "\nUnexpected objects, which no migrated file maps to ({}):",
            d.unexpected.len()
        );
        for k in &d.unexpected {
            let _ = writeln!(o, "  {k}");
        }
    }
    o
}

/// The human-readable `gc`.
pub fn gc_text(d: &crate::commands::gc::GcDoc) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Incomplete multipart uploads under {} ({} found, older than {} s targeted{}):",
        d.destination,
        d.uploads.len(),
        d.older_than_s,
        if d.dry_run { ", dry run" } else { "" }
    );
    for u in &d.uploads {
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
            u.action, u.key, u.upload_id
        );
    }
    let _ = writeln!(o, "{} aborted, {} failed", d.aborted, d.failed);
    o
}
