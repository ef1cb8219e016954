//! `mediashift rewrite`: the map loaded once, then each INPUT rewritten
//! (`cutover::rewrite::file`); `--undo` puts an input back from its
//! record. A file that cannot be read or written is recorded and the
//! others carry on.

use std::path::Path;

use crate::cutover::rewrite::file::{self, FileResult};
use crate::cutover::rewrite::find::Finder;
use crate::cutover::rewrite::refs::Rewriter;
use crate::cutover::rewrite::rollback::{self, Header};
use crate::cutover::rewrite::{MapError, Table};
use crate::error::Result;
use crate::settings::RewriteJob;

/// Everything a rewrite did, for the report.
#[derive(Debug)]
pub struct Rewritten {
    pub map: String,
    pub entries: usize,
    pub bases: Vec<String>,
    pub reverse: bool,
    pub dry_run: bool,
    pub files: Vec<FileResult>,
}

pub fn run(
    map: &Path,
    bases: &[String],
    jobs: &[RewriteJob],
    reverse: bool,
    include_guid: bool,
    dry_run: bool,
) -> Result<Rewritten> {
    let table = Table::load(map, bases, reverse)?;
    if table.is_empty() {
        tracing::warn!(
            "the map {} has no entries: nothing will be replaced",
            map.display()
        );
    }
    let finder = Finder::new(&table.bases, true).map_err(|e| MapError::Search(e.to_string()))?;
    let rw = Rewriter {
        table: &table,
        finder: &finder,
    };
    let files = jobs
        .iter()
        .map(|job| file::rewrite_file(job, rw, include_guid))
        .collect::<Vec<FileResult>>();
    let unknown: u64 = files.iter().map(|f| f.stats.not_in_map_total).sum();
    if unknown > 0 {
        tracing::warn!(
            "{unknown} reference(s) under a base are not in the map ({}) and were left as they are (listed in the report)",
            map.display()
        );
    }
    Ok(Rewritten {
        map: map.display().to_string(),
        entries: table.len(),
        bases: table.bases.iter().map(|b| b.url.clone()).collect(),
        reverse,
        dry_run,
        files,
    })
}

/// `--undo`: the original restored into `to`.
pub fn undo(record: &Path, output: &Path, to: &Path) -> Result<Header> {
    Ok(rollback::undo(record, output, to)?)
}
