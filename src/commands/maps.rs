//! `mediashift maps merge`: the shards' maps joined into one set, or the
//! reasons they cannot be (nothing is written then).

use crate::error::{Error, Result};
use crate::settings::MergeSettings;
use crate::stages::maps::{self, MergeRefusal};

/// What a merge did.
#[derive(Debug)]
pub struct Merged {
    /// The inputs, with the rows and shard each held.
    pub inputs: Vec<MergedInput>,
    /// Rows written (each old URL once); zero when refused.
    pub rows: usize,
    pub written: Vec<std::path::PathBuf>,
    pub refusal: MergeRefusal,
}

#[derive(Debug)]
pub struct MergedInput {
    pub dir: String,
    pub rows: usize,
    pub shard: Option<String>,
}

pub fn run(settings: &MergeSettings) -> Result<Merged> {
    let mut inputs = Vec::new();
    for dir in &settings.inputs {
        let m = maps::read(dir).map_err(Error::MergeInput)?;
        inputs.push((dir.display().to_string(), m));
    }
    let listed = inputs
        .iter()
        .map(|(dir, m)| MergedInput {
            dir: dir.clone(),
            rows: m.entries.len(),
            shard: m.shard.as_ref().map(|s| s.shard().to_string()),
        })
        .collect();
    let (rows, written, refusal) = match maps::merge(&inputs) {
        Ok(merged) => {
            drop(inputs);
            let source_base = merged.source_base_url.clone();
            let written =
                maps::write_all(&settings.output, &merged, &source_base).map_err(Error::Maps)?;
            (merged.entries.len(), written, MergeRefusal::default())
        }
        Err(refusal) => (0, Vec::new(), refusal),
    };
    Ok(Merged {
        inputs: listed,
        rows,
        written,
        refusal,
    })
}
