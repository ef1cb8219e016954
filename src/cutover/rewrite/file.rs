//! One INPUT rewritten: its format told from its first bytes (a MySQL or
//! PostgreSQL dump, or text), streamed through the rewriter into its
//! output (staged, renamed into place when complete), with its rollback
//! record and, if asked, a backup of the original. A file that cannot be
//! read or written is an error of that file only.

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::pipe::ReadAhead;
use super::refs::{Rewriter, Stats};
use super::rollback::Out;
use super::sql::{self, Dialect};
use super::text;
use crate::input::InputFile;
use crate::settings::RewriteJob;

/// What happened to one INPUT.
#[derive(Debug, Default)]
pub struct FileResult {
    pub job: Option<RewriteJob>,
    /// "mysql dump", "postgresql dump" or "text".
    pub format: &'static str,
    pub stats: Stats,
    pub tables: BTreeMap<String, u64>,
    /// Where the first byte that is not UTF-8 is (text files).
    pub invalid_utf8_at: Option<u64>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

/// Rewrites `job`'s INPUT; what happened, with the error if it failed.
pub fn rewrite_file(job: &RewriteJob, rw: Rewriter<'_>, include_guid: bool) -> FileResult {
    let mut r = FileResult {
        job: Some(job.clone()),
        ..FileResult::default()
    };
    if let Err(e) = one(job, rw, include_guid, &mut r) {
        r.error = Some(e);
    }
    r
}

/// Rewrites one INPUT; an error names what failed.
fn one(
    job: &RewriteJob,
    rw: Rewriter<'_>,
    include_guid: bool,
    r: &mut FileResult,
) -> std::result::Result<(), String> {
    let input = &job.input;
    let shown = input.display().to_string();
    let file = InputFile::open(input).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut reader = ReadAhead::spawn(file);
    // The first bytes say whether it is a dump.
    let mut head = Vec::new();
    text::fill(&mut reader, &mut head, 64 * 1024)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let sql_name = input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("sql"));
    let dialect = sql::detect(&head, sql_name);
    r.format = match dialect {
        Some(Dialect::MySql) => "mysql dump",
        Some(Dialect::Postgres) => "postgresql dump",
        None => "text",
    };
    let written = |e: io::Error| {
        let to = job
            .output
            .as_ref()
            .map_or(shown.clone(), |o| o.display().to_string());
        format!("cannot rewrite {shown} into {to}: {e}")
    };
    let mut out = Out::new(job.output.as_deref(), job.rollback.as_deref()).map_err(written)?;
    let mut all = io::Cursor::new(head).chain(&mut reader);
    match dialect {
        Some(d) => {
            let s = sql::rewrite(&mut all, &mut out, rw, d, include_guid).map_err(written)?;
            r.stats = s.stats;
            r.tables = s.tables;
            r.warnings = s.warnings;
        }
        None => {
            r.invalid_utf8_at =
                text::rewrite(&mut all, &mut out, &rw, &mut r.stats).map_err(written)?;
        }
    }
    drop(all);
    let (sha, size) = reader
        .finish()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if let Some(backup) = &job.backup {
        // The original keeps its inode under the backup's name; the
        // rewritten file is renamed over INPUT by finish().
        std::fs::hard_link(input, backup)
            .or_else(|_| std::fs::copy(input, backup).map(|_| ()))
            .map_err(|e| format!("cannot keep the backup {}: {e}", backup.display()))?;
    }
    let output = job.output.clone().unwrap_or_else(|| input.clone());
    out.finish((input, size, sha), &output, job.rollback.as_deref())
        .map_err(written)?;
    Ok(())
}
