//! Which files a shard takes, when one migration is split across N
//! independent processes (`--shard I/N`), with dedup still exact.
//!
//! Identical contents have equal sizes, so a file goes to the shard its
//! **size** hashes to: every group of duplicates lands in one shard and no
//! shard needs to know what the others do. A size shared by very many
//! files (thumbnails cut to one byte count, say) would overload its shard,
//! so such a *crowded* size is split further by the file's partial hash
//! (its first and last 16 KiB, as dedup computes it): identical files still
//! agree on it, so they still land together.
//!
//! The hash is SHA-256 of fixed bytes, so the assignment is the same on
//! every run and machine. Which sizes are crowded depends on the tree every
//! shard walks; the shards record a fingerprint of it, and `maps merge`
//! refuses shards that saw different trees.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::stages::dedup::partial_hash;
use crate::stages::scan::SourceFile;

/// Shards at most (a sanity bound for the flag).
pub const MAX_SHARDS: u32 = 10_000;

/// One shard of N: `index` is 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, 0 ≤ I < N.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not I/N with 0 <= I < N (for example 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        Self::new(index, count).ok_or_else(bad)
    }
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Option<Self> {
        ((1..=MAX_SHARDS).contains(&count) && index < count).then_some(Self { index, count })
    }
}

/// A size is crowded when more files than this share it: a 32nd of a
/// shard's fair share, and never fewer than 256 files.
fn crowded_above(files: usize, count: u32) -> usize {
    (files / (count as usize * 32)).max(256)
}

/// Which shard of `count` each file goes to, and what it was decided from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// By file index.
    pub shard_of: Vec<u32>,
    /// Sizes split by partial hash.
    pub crowded: BTreeSet<u64>,
    /// Hex SHA-256 of the tree's file count, the shard count and the
    /// crowded sizes: shards that agree on it split the same tree the same
    /// way.
    pub fingerprint: String,
}

fn bucket(count: u32, size: u64, partial: Option<&[u8; 32]>) -> u32 {
    let mut h = Sha256::new();
    h.update(b"mediashift shard v1\0");
    h.update(size.to_le_bytes());
    if let Some(p) = partial {
        h.update(p);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(first) % u64::from(count)) as u32
}

/// Assigns every file of the walk to one of `count` shards. Files of a
/// crowded size are read (head and tail) for their partial hash; one that
/// cannot be read goes by its size alone (it fails later, in its shard).
pub fn assign(files: &[SourceFile], root: &Path, count: u32) -> Assignment {
    let mut per_size: HashMap<u64, usize> = HashMap::new();
    for f in files {
        *per_size.entry(f.size).or_default() += 1;
    }
    let limit = crowded_above(files.len(), count);
    let crowded: BTreeSet<u64> = per_size
        .into_iter()
        .filter(|&(_, n)| n > limit)
        .map(|(size, _)| size)
        .collect();
    let shard_of = files
        .iter()
        .map(|f| {
            if crowded.contains(&f.size) {
                let p = partial_hash(&f.path(root), f.size).ok();
                bucket(count, f.size, p.as_ref())
            } else {
                bucket(count, f.size, None)
            }
        })
        .collect();
    let mut h = Sha256::new();
    h.update((files.len() as u64).to_le_bytes());
    h.update(count.to_le_bytes());
    for s in &crowded {
        h.update(s.to_le_bytes());
    }
    let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Assignment {
        shard_of,
        crowded,
        fingerprint,
    }
}

/// Files and bytes per shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Share {
    pub files: u64,
    pub bytes: u64,
}

impl Assignment {
    pub fn shares(&self, files: &[SourceFile], count: u32) -> Vec<Share> {
        let mut out = vec![Share::default(); count as usize];
        for (f, &s) in files.iter().zip(&self.shard_of) {
            let share = &mut out[s as usize];
            share.files += 1;
            share.bytes += f.size;
        }
        out
    }
}

/// What planning learned of the split: this shard's share (`--shard`), or
/// every shard's (`--shards` with `plan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardPlan {
    /// The shard this run takes; `None` when it only shows the split.
    pub shard: Option<Shard>,
    pub count: u32,
    /// The whole tree every shard walks.
    pub tree: Share,
    /// By shard index.
    pub shares: Vec<Share>,
    /// Sizes so crowded that their files are split by partial hash.
    pub crowded_sizes: usize,
    pub fingerprint: String,
}

impl ShardPlan {
    /// The largest share's files over the fair share (1.0: even).
    pub fn imbalance(&self) -> f64 {
        let most = self.shares.iter().map(|s| s.files).max().unwrap_or(0);
        if self.tree.files == 0 {
            return 1.0;
        }
        most as f64 * f64::from(self.count) / self.tree.files as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, size: u64) -> SourceFile {
        SourceFile {
            rel: rel.into(),
            size,
            dev: 1,
            ino: size,
            mtime_ns: 0,
        }
    }

    #[test]
    fn shard_flags_parse_and_bad_ones_are_refused() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(Shard { index: 0, count: 1 }.to_string(), "0/1");
        for bad in ["3/3", "1", "-1/3", "a/b", "0/0", "1/20000"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_shard_of_a_size_is_fixed_across_runs_and_machines() {
        // Fixed values: a change in the hash would split a running
        // migration differently between its shards (old and new binaries).
        let got: Vec<u32> = [0u64, 1, 1000, 65_536, 1 << 40]
            .iter()
            .map(|&s| bucket(7, s, None))
            .collect();
        assert_eq!(got, FIXED);
        let files: Vec<SourceFile> = (0..50).map(|i| file(&format!("f{i}"), i * 37)).collect();
        let dir = tempfile::tempdir().unwrap();
        let a = assign(&files, dir.path(), 4);
        assert_eq!(a, assign(&files, dir.path(), 4), "deterministic");
        assert!(a.crowded.is_empty());
        for (f, &s) in files.iter().zip(&a.shard_of) {
            assert_eq!(s, bucket(4, f.size, None));
        }
    }

    /// Computed independently (Python's hashlib over the same bytes).
    const FIXED: [u32; 5] = [4, 3, 6, 3, 2];

    #[test]
    fn a_crowded_size_is_split_by_content_and_twins_stay_together() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        // 600 files of one size, in 300 pairs of identical content.
        for i in 0..600u32 {
            let rel = format!("t{i:04}.jpg");
            let mut body = vec![0u8; 100];
            body[..4].copy_from_slice(&(i / 2).to_le_bytes());
            std::fs::write(dir.path().join(&rel), &body).unwrap();
            files.push(file(&rel, 100));
        }
        let a = assign(&files, dir.path(), 3);
        assert_eq!(a.crowded, BTreeSet::from([100]));
        for pair in a.shard_of.chunks(2) {
            assert_eq!(pair[0], pair[1], "identical files share a shard");
        }
        let shares = a.shares(&files, 3);
        for s in &shares {
            assert!(s.files > 120, "split, not all in one shard: {shares:?}");
        }
    }
}
