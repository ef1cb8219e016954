//! The rewrite's report: per INPUT, what was replaced (per table for a
//! dump), examples, the references under a base that the map does not
//! know, and anything left unchanged and why.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::format::thousands;
use crate::commands::rewrite::Rewritten;
use crate::cutover::rewrite::file::FileResult;
use crate::cutover::rewrite::rollback::Header;

#[derive(Serialize)]
pub struct Example {
    pub old: String,
    pub new: String,
}

#[derive(Serialize)]
pub struct Unknown {
    pub path: String,
    pub count: u64,
}

#[derive(Serialize)]
pub struct FileDoc {
    pub input: String,
    pub output: Option<String>,
    pub rollback: Option<String>,
    pub backup: Option<String>,
    pub format: &'static str,
    pub replacements: u64,
    /// Replacements per table (dumps).
    pub tables: BTreeMap<String, u64>,
    pub examples: Vec<Example>,
    /// References under a base whose path the map does not know (the first
    /// thousand distinct paths), and how many in all.
    pub not_in_map: Vec<Unknown>,
    pub not_in_map_total: u64,
    pub serialized_errors: Vec<String>,
    pub invalid_utf8_at: Option<u64>,
    /// What the input did not let the rewrite know.
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

/// The `rewrite --json` document.
#[derive(Serialize)]
pub struct RewriteDoc {
    pub command: &'static str,
    pub map: String,
    pub map_entries: usize,
    pub bases: Vec<String>,
    pub reverse: bool,
    pub dry_run: bool,
    /// Whether references not in the map make the exit code 1.
    pub strict: bool,
    /// Replacements in all files.
    pub replacements: u64,
    /// References under a base not in the map, in all files.
    pub not_in_map_total: u64,
    pub files: Vec<FileDoc>,
}

impl RewriteDoc {
    pub fn new(r: &Rewritten, strict: bool) -> Self {
        let files: Vec<FileDoc> = r.files.iter().map(file_doc).collect();
        Self {
            command: "rewrite",
            map: r.map.clone(),
            map_entries: r.entries,
            bases: r.bases.clone(),
            reverse: r.reverse,
            dry_run: r.dry_run,
            strict,
            replacements: files.iter().map(|f| f.replacements).sum(),
            not_in_map_total: files.iter().map(|f| f.not_in_map_total).sum(),
            files,
        }
    }

    /// Whether every file was rewritten whole. References not in the map
    /// are listed but count only with --strict: the output is right
    /// without them (their files are still served where they were).
    pub fn is_clean(&self) -> bool {
        self.files.iter().all(|f| {
            f.error.is_none()
                && f.invalid_utf8_at.is_none()
                && (f.not_in_map_total == 0 || !self.strict)
                && f.serialized_errors.is_empty()
        })
    }
}

fn file_doc(f: &FileResult) -> FileDoc {
    let shown = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let job = f.job.as_ref();
    FileDoc {
        input: job.map_or_else(String::new, |j| j.input.display().to_string()),
        output: job.and_then(|j| shown(&j.output)),
        rollback: job.and_then(|j| shown(&j.rollback)),
        backup: job.and_then(|j| shown(&j.backup)),
        format: f.format,
        replacements: f.stats.replacements,
        tables: f.tables.clone(),
        examples: f
            .stats
            .examples
            .iter()
            .map(|(o, n)| Example {
                old: o.clone(),
                new: n.clone(),
            })
            .collect(),
        not_in_map: f
            .stats
            .not_in_map
            .iter()
            .map(|(p, n)| Unknown {
                path: p.clone(),
                count: *n,
            })
            .collect(),
        not_in_map_total: f.stats.not_in_map_total,
        serialized_errors: f.stats.serialized_errors.clone(),
        invalid_utf8_at: f.invalid_utf8_at,
        warnings: f.warnings.clone(),
        error: f.error.clone(),
    }
}

/// How many of a list are shown in the text.
const SHOWN: usize = 10;

pub fn rewrite_text(doc: &RewriteDoc) -> String {
    let mut o = String::new();
    let verb = if doc.dry_run {
        "Would rewrite"
    } else {
        "Rewrote"
    };
    let _ = writeln!(
        o,
        "{verb} {} file(s) with {} ({} entries{}): {} replacement(s)",
        doc.files.len(),
        doc.map,
        thousands(doc.map_entries as u64),
        if doc.reverse { ", reversed" } else { "" },
        thousands(doc.replacements)
    );
    let _ = writeln!(o, "  bases: {}", doc.bases.join("  "));
    for f in &doc.files {
        let _ = writeln!(o);
        let to = f
            .output
            .as_deref()
            .map_or(String::new(), |t| format!(" -> {t}"));
        let _ = writeln!(
            o,
            "{} ({}){to}: {} replacement(s)",
            f.input,
            f.format,
            thousands(f.replacements)
        );
        if let Some(e) = &f.error {
            let _ = writeln!(o, "  FAILED: {e}");
            continue;
        }
        if !f.tables.is_empty() {
            let t: Vec<String> = f
                .tables
                .iter()
                .map(|(t, n)| format!("{t} {}", thousands(*n)))
                .collect();
            let _ = writeln!(o, "  by table: {}", t.join(", "));
        }
        for e in &f.examples {
            let _ = writeln!(o, "  e.g. {} -> {}", e.old, e.new);
        }
        if f.not_in_map_total > 0 {
            let hint = if f.replacements == 0 {
                "none is: is --map the map of the migration these URLs belong to?"
            } else {
                "left as they are; were these files migrated?"
            };
            let _ = writeln!(
                o,
                "  {} reference(s) under a base are not in the map ({hint}):",
                thousands(f.not_in_map_total)
            );
            for u in f.not_in_map.iter().take(SHOWN) {
                let _ = writeln!(o, "    {} ({})", u.path, u.count);
            }
            if f.not_in_map.len() > SHOWN {
                let _ = writeln!(
                    o,
                    "    ... and {} more paths (--json lists them)",
                    f.not_in_map.len() - SHOWN
                );
            }
        }
        for w in &f.warnings {
            let _ = writeln!(o, "  warning: {w}");
        }
        for e in &f.serialized_errors {
            let _ = writeln!(o, "  serialized value left unchanged: {e}");
        }
        if let Some(at) = f.invalid_utf8_at {
            let _ = writeln!(
                o,
                "  not valid UTF-8 from byte {at} (those bytes are kept as they are): is this a text file?"
            );
        }
        if let Some(r) = &f.rollback {
            let _ = writeln!(o, "  rollback record: {r}");
        }
        if let Some(b) = &f.backup {
            let _ = writeln!(o, "  original kept as: {b}");
        }
    }
    if !doc.is_clean() {
        let _ = writeln!(o, "\nSome references were left unchanged (listed above).");
    } else if doc.not_in_map_total > 0 {
        let _ = writeln!(
            o,
            "\nReferences not in the map were left as they are (listed above); --strict makes them an error."
        );
    }
    o
}

/// The `rewrite --undo --json` document.
#[derive(Serialize)]
pub struct UndoDoc {
    pub command: &'static str,
    pub restored: String,
    pub from: String,
    pub bytes: u64,
    pub sha256: String,
    pub spans: u64,
}

impl UndoDoc {
    pub fn new(h: &Header, to: &std::path::Path) -> Self {
        Self {
            command: "rewrite --undo",
            restored: to.display().to_string(),
            from: h.output.clone(),
            bytes: h.input_size,
            sha256: h.input_sha256.clone(),
            spans: h.spans,
        }
    }
}

pub fn undo_text(doc: &UndoDoc) -> String {
    format!(
        "Restored {} ({} bytes, SHA-256 {}) from {}: {} span(s) put back\n",
        doc.restored,
        thousands(doc.bytes),
        doc.sha256,
        doc.from,
        thousands(doc.spans)
    )
}
