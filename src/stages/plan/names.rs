//! Names that upload but will cause trouble: paths equal but for letter
//! case or Unicode normalization, names that are not UTF-8, keys too long,
//! and names a switch of the application's media base URL to the bucket
//! cannot serve.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::keys::LongKey;
use crate::stages::scan::{SkipLog, SkipReason, SourceFile};

/// Names that will cause trouble even though they upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameProblems {
    /// Groups of paths equal but for letter case: they collide on
    /// case-insensitive file systems and in case-insensitive URL maps.
    pub case_collisions: Vec<Vec<String>>,
    /// Groups of paths equal once Unicode-normalized (NFC vs NFD):
    /// they look identical to people and collide on macOS.
    pub normalization_collisions: Vec<Vec<String>>,
    /// Paths that are not valid UTF-8 (escaped); S3 keys must be.
    pub not_utf8: Vec<String>,
    /// Files whose key would exceed 1,024 bytes.
    pub long_keys: Vec<LongKey>,
    /// Files the application's own URLs (the new media base and the path
    /// as it is, raw) will not reach in the bucket after a base switch
    /// (`preserve`), with why.
    pub unservable: Vec<Unservable>,
}

/// A file a base switch cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unservable {
    pub path: String,
    pub why: &'static str,
}

/// Why a name with a `+` is not served after a base switch.
const PLUS: &str = "S3 reads a raw + in a URL path as a space, and applications write the path raw: rename the file, or rewrite its references (rewrite writes %2B)";

/// Whether the application's raw URL for `rel` under the bucket's base
/// names another object on S3, and why.
fn unservable(rel: &str) -> Option<&'static str> {
    rel.contains('+').then_some(PLUS)
}

/// The names in `files` (and the walk's skips) that will cause trouble;
/// with `base_switch` (the `preserve` layout, where the application's
/// media base moves to the bucket), those that switch cannot serve.
pub fn name_problems(
    files: &[SourceFile],
    skipped: &SkipLog,
    long: &[LongKey],
    base_switch: bool,
) -> NameProblems {
    use unicode_normalization::UnicodeNormalization;
    NameProblems {
        case_collisions: collisions(files, |r| {
            if r.bytes().any(|b| b.is_ascii_uppercase()) || !r.is_ascii() {
                Cow::Owned(r.to_lowercase())
            } else {
                Cow::Borrowed(r)
            }
        }),
        normalization_collisions: collisions(files, |r| {
            if r.is_ascii() {
                Cow::Borrowed(r)
            } else {
                Cow::Owned(r.nfc().collect())
            }
        }),
        not_utf8: skipped
            .problems()
            .filter(|(r, _)| *r == SkipReason::NotUtf8)
            .map(|(_, s)| s.path.clone())
            .collect(),
        long_keys: long.to_vec(),
        unservable: files
            .iter()
            .filter(|_| base_switch)
            .filter_map(|f| {
                Some(Unservable {
                    path: f.rel.to_string(),
                    why: unservable(&f.rel)?,
                })
            })
            .collect(),
    }
}

/// Groups of paths that are equal once `fold`ed, in path order. Keeps only
/// a 64-bit hash per file; the few files whose hashes meet are compared for
/// real, so memory stays small for millions of files.
fn collisions(files: &[SourceFile], fold: impl Fn(&str) -> Cow<'_, str>) -> Vec<Vec<String>> {
    use std::hash::{BuildHasher, RandomState};
    let hasher = RandomState::new();
    let mut first: HashMap<u64, u32> = HashMap::with_capacity(files.len());
    let mut met: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let h = hasher.hash_one(fold(&f.rel).as_ref());
        match first.get(&h) {
            Some(&j) => met.entry(h).or_insert_with(|| vec![j]).push(i as u32),
            None => {
                first.insert(h, i as u32);
            }
        }
    }
    let mut groups: Vec<Vec<String>> = Vec::new();
    for members in met.into_values() {
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for i in members {
            let rel = &files[i as usize].rel;
            by_name
                .entry(fold(rel).into_owned())
                .or_default()
                .push(rel.to_string());
        }
        groups.extend(by_name.into_values().filter(|v| v.len() > 1));
    }
    groups.sort();
    groups
}
