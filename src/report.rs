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
        let style = ProgressStyle::with_template("{spinner} {msg}: {human_pos} files ({per_sec})")
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
    let _ = writeln!(
        o,
        "  {:<26}{}",
        "media files",
        amount(s.files_total, s.bytes_total)
    );
    let _ = writeln!(
        o,
        "  {:<26}{}",
        "distinct contents",
        amount(s.files_unique, s.bytes_unique)
    );
    let _ = writeln!(
        o,
        "  {:<26}{}",
        "duplicates (not uploaded)",
        amount(s.duplicate_files, s.duplicate_bytes)
    );
    let _ = writeln!(
        o,
        "  {:<26}{}",
        "already in the bucket",
        amount(s.objects_already_present, s.bytes_already_present)
    );
    let _ = writeln!(
        o,
        "  {:<26}{}",
        "to upload",
        amount(s.objects_to_upload, s.bytes_to_upload)
    );
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
    if !doc.conflicts.is_empty() {
        let _ = writeln!(
            o,
            "\nConflicts (different content already under the key; --overwrite replaces it):"
        );
        for c in doc.conflicts {
            let _ = writeln!(o, "  {} -> {}: {}", c.path, c.key, c.detail);
        }
    }
    if !doc.failed.is_empty() {
        let _ = writeln!(
            o,
            "\nFiles that cannot be migrated ({}):",
            thousands(doc.failed.len() as u64)
        );
        for f in &doc.failed {
            let _ = writeln!(o, "  {}: {}", f.path, f.error);
        }
    }
    let _ = writeln!(
        o,
        "\nNothing was written. Run `mediashift migrate` with the same arguments to carry this out."
    );
    o
}
