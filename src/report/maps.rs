//! The report of `maps merge`.

use std::fmt::Write as _;

use serde::Serialize;

use super::format::thousands;
use crate::commands::maps::Merged;
use crate::settings::MergeSettings;
use crate::stages::maps::MergeRefusal;

/// The `maps merge --json` document.
#[derive(Serialize)]
pub struct MergeDoc<'a> {
    pub command: &'static str,
    pub output: String,
    pub inputs: Vec<MergeInputDoc<'a>>,
    pub rows: usize,
    pub map_files: Vec<String>,
    /// Why nothing was written (empty lists when merged).
    pub refused: &'a MergeRefusal,
}

#[derive(Serialize)]
pub struct MergeInputDoc<'a> {
    pub dir: &'a str,
    pub rows: usize,
    pub shard: Option<&'a str>,
}

impl<'a> MergeDoc<'a> {
    pub fn new(m: &'a Merged, s: &MergeSettings) -> Self {
        Self {
            command: "maps merge",
            output: s.output.display().to_string(),
            inputs: m
                .inputs
                .iter()
                .map(|i| MergeInputDoc {
                    dir: &i.dir,
                    rows: i.rows,
                    shard: i.shard.as_deref(),
                })
                .collect(),
            rows: m.rows,
            map_files: m.written.iter().map(|p| p.display().to_string()).collect(),
            refused: &m.refusal,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.refused.is_empty()
    }
}

/// Conflicts listed in the text at most (all are in the JSON).
const SHOWN: usize = 20;

/// The human-readable `maps merge`.
pub fn merge_text(d: &MergeDoc<'_>) -> String {
    let mut o = String::new();
    for i in &d.inputs {
        let shard = i.shard.map(|s| format!(" (shard {s})")).unwrap_or_default();
        let _ = writeln!(o, "  {}{shard}: {} rows", i.dir, thousands(i.rows as u64));
    }
    let r = d.refused;
    if r.is_empty() {
        let _ = writeln!(
            o,
            "Merged {} map dirs into {}: {} rows",
            d.inputs.len(),
            d.output,
            thousands(d.rows as u64)
        );
        return o;
    }
    let _ = writeln!(o, "Not merged (nothing written to {}):", d.output);
    for m in &r.mismatched {
        let _ = writeln!(o, "  {m}");
    }
    if !r.missing_shards.is_empty() {
        let list: Vec<String> = r.missing_shards.iter().map(u32::to_string).collect();
        let _ = writeln!(
            o,
            "  shards missing: {} (give every shard's --map-dir)",
            list.join(", ")
        );
    }
    if !r.repeated_shards.is_empty() {
        let list: Vec<String> = r.repeated_shards.iter().map(u32::to_string).collect();
        let _ = writeln!(o, "  shards given twice: {}", list.join(", "));
    }
    if !r.conflicts.is_empty() {
        let _ = writeln!(
            o,
            "  {} old URL(s) mapped to different new URLs:",
            thousands(r.conflicts.len() as u64)
        );
        for c in r.conflicts.iter().take(SHOWN) {
            let rows: Vec<String> = c
                .rows
                .iter()
                .map(|(dir, url)| format!("{url} (in {dir})"))
                .collect();
            let _ = writeln!(o, "    {}: {}", c.old_url, rows.join(" vs "));
        }
        if r.conflicts.len() > SHOWN {
            let _ = writeln!(
                o,
                "    ... and {} more (see --json)",
                r.conflicts.len() - SHOWN
            );
        }
    }
    o
}
