//! The plan's report: the `plan --json` document and its text.

use std::fmt::Write as _;

use serde::Serialize;

use super::format::{proofs, rows, thousands, unhandled};
use crate::settings::RunSettings;
use crate::stages::plan::{Conflict, Failure, KeyLayout, NameProblems, Summary};
use crate::stages::scan::SkipLog;
use crate::stages::shard::ShardPlan;
use crate::stages::survey::Planned;
use crate::types::ByteSize;

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
    /// The split (`--shard`, `--shards`); absent for a whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharding: Option<ShardDoc<'a>>,
}

/// The split, in `plan --json`: the shard this run takes (if any), each
/// shard's files and bytes, and how even the split is.
#[derive(Serialize)]
pub struct ShardDoc<'a> {
    #[serde(flatten)]
    pub plan: &'a ShardPlan,
    /// The largest share over the fair share (1.0: even).
    pub imbalance: f64,
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
            endpoint: &p.endpoint,
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
            sharding: p.shard.as_ref().map(|plan| ShardDoc {
                plan,
                imbalance: (plan.imbalance() * 1000.0).round() / 1000.0,
            }),
        }
    }
}

/// The split: this shard's share, or a row per shard.
fn shard_text(o: &mut String, d: &ShardDoc<'_>) {
    let p = d.plan;
    let tree = format!(
        "{} files, {}",
        thousands(p.tree.files),
        ByteSize(p.tree.bytes)
    );
    match p.shard {
        Some(s) => {
            let share = p.shares[s.index as usize];
            let _ = writeln!(
                o,
                "  shard {s}: {} files, {} (the whole tree: {tree}; the largest shard holds {:.2}x the fair share)",
                thousands(share.files),
                ByteSize(share.bytes),
                d.imbalance
            );
        }
        None => {
            let _ = writeln!(
                o,
                "  split into {} shards ({tree}; largest {:.2}x the fair share; {} crowded size(s) split by content):",
                p.count, d.imbalance, p.crowded_sizes
            );
            for (i, share) in p.shares.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "    shard {i}/{}: {:>10} files, {}",
                    p.count,
                    thousands(share.files),
                    ByteSize(share.bytes)
                );
            }
        }
    }
    let _ = writeln!(o);
}

/// Names of one kind listed in the text (`--json` has them all).
const SHOWN_NAMES: usize = 20;

/// What happens to duplicates under a key layout.
pub fn duplicates_label(layout: KeyLayout) -> &'static str {
    match layout {
        KeyLayout::Preserve => "duplicates (copied)",
        KeyLayout::Content => "duplicates (shared)",
    }
}

/// The human-readable plan.
pub fn plan_text(doc: &PlanDoc<'_>) -> String {
    let s = doc.summary;
    let mut o = String::new();
    let _ = writeln!(o, "Plan: {} -> {}", doc.source, doc.destination);
    let _ = writeln!(
        o,
        "  endpoint {}, key layout {}, multipart from {} in parts of {}",
        doc.endpoint,
        doc.key_layout.name(),
        ByteSize(doc.multipart_threshold),
        ByteSize(doc.part_size),
    );
    let _ = writeln!(o);
    if let Some(sh) = &doc.sharding {
        shard_text(&mut o, sh);
    }
    let mut table = vec![
        ("media files", s.files_total, s.bytes_total),
        ("distinct contents", s.files_unique, s.bytes_unique),
        (
            duplicates_label(doc.key_layout),
            s.duplicate_files,
            s.duplicate_bytes,
        ),
        (
            "already in the bucket",
            s.objects_already_present,
            s.bytes_already_present,
        ),
        ("to upload", s.objects_to_upload, s.bytes_to_upload),
    ];
    if doc.key_layout == KeyLayout::Preserve {
        table.push(("to copy in the bucket", s.objects_to_copy, s.bytes_to_copy));
    }
    rows(&mut o, &table);
    if !s.already_present_by_proof.is_empty() {
        let by = proofs(&s.already_present_by_proof);
        let _ = writeln!(o, "  {:<26}{by}", "  ...proven by");
    }
    let r = &s.requests;
    let mut copies = String::new();
    if r.copy_object + r.upload_part_copy > 0 {
        copies = format!("; {} CopyObject", thousands(r.copy_object));
        if r.upload_part_copy > 0 {
            let _ = write!(copies, ", {} part copies", thousands(r.upload_part_copy));
        }
    }
    let _ = writeln!(
        o,
        "  {:<26}{:>10}  ({} PutObject; {} multipart: {} create, {} parts, {} complete{copies})",
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
            "\nNames that collide (fine in S3; trouble on case-insensitive file systems; names equal but for case go into nginx.map as case-sensitive regular expressions, since nginx compares map strings without regard to case):"
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
    if !n.unservable.is_empty() {
        let _ = writeln!(
            o,
            "\nNames the application's own URLs will not reach once its media base points at the bucket:"
        );
        for u in n.unservable.iter().take(SHOWN_NAMES) {
            let _ = writeln!(o, "  {}: {}", u.path, u.why);
        }
        if n.unservable.len() > SHOWN_NAMES {
            let _ = writeln!(
                o,
                "  ... and {} more (--json lists them all under problems.unservable)",
                thousands((n.unservable.len() - SHOWN_NAMES) as u64)
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
