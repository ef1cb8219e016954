//! The plan: which objects a run creates, under which keys, in how many
//! requests, at what cost. Pure code, no I/O: every input (the walk, the
//! dedup grouping, what the bucket already holds) is handed in, so the plan
//! is tested exhaustively without a server, and `plan` and `migrate
//! --dry-run` can never disagree.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::dedup::Grouping;
use crate::scan::{SkipLog, SourceFile};
use crate::types::{ByteSize, ObjectKey};

/// S3's multipart limits.
pub const MIN_PART_SIZE: u64 = 5 * ByteSize::MIB;
pub const MAX_PART_SIZE: u64 = 5 * ByteSize::GIB;
pub const MAX_PARTS: u64 = 10_000;
pub const MAX_OBJECT_SIZE: u64 = 5 * ByteSize::TIB;
/// The largest object a single PutObject may carry.
pub const MAX_PUT_SIZE: u64 = 5 * ByteSize::GIB;

/// How a large object is cut into parts: all parts `part_size` bytes except
/// the last, which holds the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartLayout {
    pub part_size: u64,
    pub parts: u64,
    pub last_part_size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("{size} bytes is larger than S3's 5 TiB object limit")]
    TooLarge { size: u64 },
    #[error("a part size of {0} is larger than S3's 5 GiB part limit")]
    PartTooLarge(u64),
}

impl PartLayout {
    /// `part_size = max(target, ceil(size / 10,000), 5 MiB)`, so any object
    /// up to 5 TiB fits in 10,000 parts.
    pub fn new(size: u64, target_part_size: u64) -> Result<Self, LayoutError> {
        if size > MAX_OBJECT_SIZE {
            return Err(LayoutError::TooLarge { size });
        }
        let part_size = target_part_size
            .max(size.div_ceil(MAX_PARTS))
            .max(MIN_PART_SIZE);
        if part_size > MAX_PART_SIZE {
            return Err(LayoutError::PartTooLarge(part_size));
        }
        let parts = size.div_ceil(part_size).max(1);
        let last_part_size = size - (parts - 1) * part_size;
        Ok(Self {
            part_size,
            parts,
            last_part_size,
        })
    }

    /// Byte range `[start, end)` of part `number` (1-based).
    pub fn range(&self, number: u64) -> (u64, u64) {
        let start = (number - 1) * self.part_size;
        let len = if number == self.parts {
            self.last_part_size
        } else {
            self.part_size
        };
        (start, start + len)
    }
}

/// How objects are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLayout {
    /// `<prefix><relative path>`.
    Preserve,
    /// `<prefix>ab/cd/<sha256>.<ext>`: identical content, identical key.
    Content,
}

/// List prices used for the cost estimate, in USD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    /// Per 1,000 PUT, COPY, POST or LIST requests (S3 Standard: 0.005).
    pub put_per_1000: f64,
    /// Per GB-month stored, GB = 2^30 bytes (S3 Standard, first 50 TB: 0.023).
    pub storage_gb_month: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            put_per_1000: 0.005,
            storage_gb_month: 0.023,
        }
    }
}

/// The rules a plan is made with.
#[derive(Debug, Clone)]
pub struct PlanRules {
    pub prefix: String,
    pub key_layout: KeyLayout,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub prices: Prices,
    pub overwrite: bool,
}

/// One object to exist at the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSlot {
    /// Index of the canonical file.
    pub canonical: u32,
    pub key: ObjectKey,
}

/// A file whose key S3 would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LongKey {
    pub path: String,
    pub key_bytes: usize,
}

/// Keys for every distinct content.
#[derive(Debug, Default)]
pub struct Keys {
    pub objects: Vec<ObjectSlot>,
    /// Object index by canonical file index.
    pub object_of: HashMap<u32, u32>,
    pub too_long: Vec<LongKey>,
}

/// The key for a canonical file.
pub fn key_for(rules: &PlanRules, file: &SourceFile, grouping: &Grouping, index: u32) -> String {
    match rules.key_layout {
        KeyLayout::Preserve => format!("{}{}", rules.prefix, file.rel),
        KeyLayout::Content => {
            let hex = grouping
                .digests
                .get(&index)
                .expect("content layout hashes every canonical file")
                .sha256
                .to_hex();
            let name = file.rel.rsplit('/').next().unwrap_or(&file.rel);
            let ext = name
                .rsplit_once('.')
                .map(|(stem, ext)| (stem, ext.to_lowercase()))
                .filter(|(stem, ext)| !stem.is_empty() && !ext.is_empty())
                .map(|(_, ext)| format!(".{ext}"))
                .unwrap_or_default();
            format!("{}{}/{}/{hex}{ext}", rules.prefix, &hex[..2], &hex[2..4])
        }
    }
}

/// Names every distinct content's object.
pub fn assign_keys(files: &[SourceFile], grouping: &Grouping, rules: &PlanRules) -> Keys {
    let mut keys = Keys::default();
    for (i, f) in files.iter().enumerate() {
        if !grouping.is_canonical(i) {
            continue;
        }
        match ObjectKey::new(key_for(rules, f, grouping, i as u32)) {
            Ok(key) => {
                keys.object_of.insert(i as u32, keys.objects.len() as u32);
                keys.objects.push(ObjectSlot {
                    canonical: i as u32,
                    key,
                });
            }
            Err(e) => keys.too_long.push(LongKey {
                path: f.rel.to_string(),
                key_bytes: e.len,
            }),
        }
    }
    keys
}

/// What the destination holds under a planned key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Same size and a matching checksum or `sha256` metadata.
    Same,
    /// Something else is there.
    Different { detail: String },
    /// An earlier upload of this same file, which has changed since.
    Stale,
}

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Upload,
    AlreadyPresent,
    /// Different content under the key, and no `--overwrite`.
    Conflict,
    /// The file could not be read; listed in the plan's failures.
    Failed,
}

/// Requests a run will make to create objects, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    pub put_object: u64,
    pub create_multipart: u64,
    pub upload_part: u64,
    pub complete_multipart: u64,
}

impl Requests {
    pub fn total(&self) -> u64 {
        self.put_object + self.create_multipart + self.upload_part + self.complete_multipart
    }
}

/// A key that holds other content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub path: String,
    pub key: String,
    pub detail: String,
}

/// A file that cannot be handled, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub path: String,
    pub error: String,
}

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
}

/// The numbers of a plan; field names are part of the `--json` contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub files_total: u64,
    pub bytes_total: u64,
    pub files_unique: u64,
    pub bytes_unique: u64,
    pub duplicate_files: u64,
    pub duplicate_bytes: u64,
    pub objects_to_upload: u64,
    pub bytes_to_upload: u64,
    pub objects_already_present: u64,
    pub bytes_already_present: u64,
    pub objects_conflicting: u64,
    /// Objects mediashift uploaded earlier from a file that has changed
    /// since; they are uploaded again (included in objects_to_upload).
    pub objects_changed_since_upload: u64,
    pub multipart_objects: u64,
    pub requests: Requests,
    pub estimated_cost_usd: f64,
    pub cost: Cost,
}

/// How the estimate was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cost {
    pub requests_usd: f64,
    pub storage_first_month_usd: f64,
    pub put_per_1000_usd: f64,
    pub storage_gb_month_usd: f64,
}

/// A complete plan.
#[derive(Debug, Default)]
pub struct Plan {
    pub keys: Keys,
    /// Per object (same order as `keys.objects`).
    pub actions: Vec<Action>,
    pub summary: Summary,
    pub conflicts: Vec<Conflict>,
    pub failures: Vec<Failure>,
    pub names: NameProblems,
}

impl Plan {
    /// True when every file the user asked for can be handled.
    pub fn is_clean(&self, skipped: &SkipLog) -> bool {
        self.failures.is_empty() && self.conflicts.is_empty() && skipped.problem_count() == 0
    }
}

/// Builds the plan from its inputs.
pub fn build(
    files: &[SourceFile],
    grouping: &Grouping,
    keys: Keys,
    remote: &HashMap<String, Remote>,
    rules: &PlanRules,
    skipped: &SkipLog,
) -> Plan {
    let mut plan = Plan::default();
    let mut s = Summary::default();

    for (i, err) in &grouping.failed {
        plan.failures.push(Failure {
            path: files[*i as usize].rel.to_string(),
            error: err.to_string(),
        });
    }
    let long: std::collections::HashSet<&str> =
        keys.too_long.iter().map(|l| l.path.as_str()).collect();
    for l in &keys.too_long {
        plan.failures.push(Failure {
            path: l.path.clone(),
            error: format!("its key would be {} bytes; S3 allows at most 1024 (shorten the name or the prefix)", l.key_bytes),
        });
    }

    // Files: every readable file whose content has a key.
    for (i, f) in files.iter().enumerate() {
        let Some(c) = grouping.canonical[i] else {
            continue;
        };
        if long.contains(&*files[c as usize].rel) {
            continue;
        }
        s.files_total += 1;
        s.bytes_total += f.size;
        if c as usize == i {
            s.files_unique += 1;
            s.bytes_unique += f.size;
        }
    }
    s.duplicate_files = s.files_total - s.files_unique;
    s.duplicate_bytes = s.bytes_total - s.bytes_unique;

    // Objects.
    for slot in &keys.objects {
        if grouping.canonical[slot.canonical as usize].is_none() {
            plan.actions.push(Action::Failed);
            continue;
        }
        let f = &files[slot.canonical as usize];
        let action = match remote.get(slot.key.as_str()) {
            Some(Remote::Same) => Action::AlreadyPresent,
            Some(Remote::Stale) => {
                s.objects_changed_since_upload += 1;
                Action::Upload
            }
            Some(Remote::Different { .. }) if rules.overwrite => Action::Upload,
            Some(Remote::Different { detail }) => {
                plan.conflicts.push(Conflict {
                    path: f.rel.to_string(),
                    key: slot.key.to_string(),
                    detail: detail.clone(),
                });
                Action::Conflict
            }
            None => Action::Upload,
        };
        match action {
            Action::AlreadyPresent => {
                s.objects_already_present += 1;
                s.bytes_already_present += f.size;
            }
            Action::Conflict => s.objects_conflicting += 1,
            Action::Failed => {}
            Action::Upload => {
                s.objects_to_upload += 1;
                s.bytes_to_upload += f.size;
                if f.size >= rules.multipart_threshold {
                    match PartLayout::new(f.size, rules.part_size) {
                        Ok(layout) => {
                            s.multipart_objects += 1;
                            s.requests.create_multipart += 1;
                            s.requests.upload_part += layout.parts;
                            s.requests.complete_multipart += 1;
                        }
                        Err(e) => plan.failures.push(Failure {
                            path: f.rel.to_string(),
                            error: e.to_string(),
                        }),
                    }
                } else {
                    s.requests.put_object += 1;
                }
            }
        }
        plan.actions.push(action);
    }

    let gb = s.bytes_to_upload as f64 / ByteSize::GIB as f64;
    s.cost = Cost {
        requests_usd: s.requests.total() as f64 / 1000.0 * rules.prices.put_per_1000,
        storage_first_month_usd: gb * rules.prices.storage_gb_month,
        put_per_1000_usd: rules.prices.put_per_1000,
        storage_gb_month_usd: rules.prices.storage_gb_month,
    };
    s.estimated_cost_usd = round_cents(s.cost.requests_usd + s.cost.storage_first_month_usd);

    plan.names = name_problems(files, skipped, &keys.too_long);
    plan.keys = keys;
    plan.summary = s;
    plan
}

/// Rounds to 1/10,000 of a dollar, enough for small runs to show non-zero.
fn round_cents(usd: f64) -> f64 {
    (usd * 10_000.0).round() / 10_000.0
}

fn name_problems(files: &[SourceFile], skipped: &SkipLog, long: &[LongKey]) -> NameProblems {
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
            .filter(|(r, _)| *r == crate::scan::SkipReason::NotUtf8)
            .map(|(_, s)| s.path.clone())
            .collect(),
        long_keys: long.to_vec(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::Digests;

    const MIB: u64 = ByteSize::MIB;

    #[test]
    fn part_layout_uses_the_target_when_it_fits() {
        let l = PartLayout::new(100 * MIB + 1, 16 * MIB).unwrap();
        assert_eq!(l.part_size, 16 * MIB);
        assert_eq!(l.parts, 7);
        assert_eq!(l.last_part_size, 100 * MIB + 1 - 6 * 16 * MIB);
        assert_eq!(l.range(1), (0, 16 * MIB));
        assert_eq!(l.range(7), (96 * MIB, 100 * MIB + 1));
    }

    #[test]
    fn part_layout_never_below_5_mib() {
        let l = PartLayout::new(12 * MIB, MIB).unwrap();
        assert_eq!(
            (l.part_size, l.parts, l.last_part_size),
            (5 * MIB, 3, 2 * MIB)
        );
    }

    #[test]
    fn part_layout_exact_multiple_has_a_full_last_part() {
        let l = PartLayout::new(32 * MIB, 16 * MIB).unwrap();
        assert_eq!((l.parts, l.last_part_size), (2, 16 * MIB));
        let l = PartLayout::new(0, 16 * MIB).unwrap();
        assert_eq!((l.parts, l.last_part_size), (1, 0));
    }

    #[test]
    fn part_layout_stretches_parts_to_stay_within_10000() {
        let size = 5 * ByteSize::TIB;
        let l = PartLayout::new(size, 8 * MIB).unwrap();
        assert_eq!(l.part_size, size.div_ceil(10_000));
        assert!(l.parts <= 10_000);
        assert!(l.last_part_size <= l.part_size && l.last_part_size > 0);
        assert_eq!((l.parts - 1) * l.part_size + l.last_part_size, size);
        // 100 GiB at 8 MiB would be 12,800 parts.
        let l = PartLayout::new(100 * ByteSize::GIB, 8 * MIB).unwrap();
        assert_eq!(l.parts, 10_000);
    }

    #[test]
    fn part_layout_refuses_what_s3_refuses() {
        assert_eq!(
            PartLayout::new(5 * ByteSize::TIB + 1, 8 * MIB),
            Err(LayoutError::TooLarge {
                size: 5 * ByteSize::TIB + 1
            })
        );
        assert!(matches!(
            PartLayout::new(10 * ByteSize::GIB, 6 * ByteSize::GIB),
            Err(LayoutError::PartTooLarge(_))
        ));
    }

    fn file(rel: &str, size: u64, ino: u64) -> SourceFile {
        SourceFile {
            rel: rel.into(),
            size,
            dev: 1,
            ino,
            mtime_ns: 0,
        }
    }

    fn rules(layout: KeyLayout) -> PlanRules {
        PlanRules {
            prefix: "shop/".into(),
            key_layout: layout,
            multipart_threshold: 16 * MIB,
            part_size: 8 * MIB,
            prices: Prices::default(),
            overwrite: false,
        }
    }

    /// a.jpg and c/a-copy.jpg share content; big.mp4 is multipart.
    fn fixture() -> (Vec<SourceFile>, Grouping) {
        let files = vec![
            file("a.jpg", 100, 1),
            file("big.mp4", 40 * MIB, 2),
            file("c/a-copy.jpg", 100, 3),
            file("thumb.PNG", 16 * MIB, 4),
        ];
        let mut g = Grouping {
            canonical: vec![Some(0), Some(1), Some(0), Some(3)],
            ..Grouping::default()
        };
        for (i, b) in [(0u32, b"a" as &[u8]), (1, b"big"), (3, b"thumb")] {
            g.digests.insert(i, Digests::of_bytes(b));
        }
        (files, g)
    }

    #[test]
    fn plan_counts_duplicates_requests_and_cost() {
        let (files, g) = fixture();
        let r = rules(KeyLayout::Preserve);
        let keys = assign_keys(&files, &g, &r);
        let keynames: Vec<_> = keys.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keynames, ["shop/a.jpg", "shop/big.mp4", "shop/thumb.PNG"]);
        let plan = build(&files, &g, keys, &HashMap::new(), &r, &SkipLog::default());
        let s = &plan.summary;
        assert_eq!(
            (
                s.files_total,
                s.files_unique,
                s.duplicate_files,
                s.duplicate_bytes
            ),
            (4, 3, 1, 100)
        );
        assert_eq!(s.objects_to_upload, 3);
        assert_eq!(s.bytes_to_upload, 100 + 56 * MIB);
        // thumb.PNG is exactly at the threshold: multipart (2 parts of 8 MiB).
        assert_eq!(s.multipart_objects, 2);
        assert_eq!(
            s.requests,
            Requests {
                put_object: 1,
                create_multipart: 2,
                upload_part: 5 + 2,
                complete_multipart: 2
            }
        );
        let expected =
            11.0 / 1000.0 * 0.005 + (100 + 56 * MIB) as f64 / ByteSize::GIB as f64 * 0.023;
        assert!(
            (s.estimated_cost_usd - expected).abs() < 0.0001,
            "{} vs {expected}",
            s.estimated_cost_usd
        );
        assert!(plan.is_clean(&SkipLog::default()));
    }

    #[test]
    fn present_objects_are_not_uploaded_and_conflicts_need_overwrite() {
        let (files, g) = fixture();
        let mut r = rules(KeyLayout::Preserve);
        let mut remote = HashMap::new();
        remote.insert("shop/a.jpg".to_string(), Remote::Same);
        remote.insert(
            "shop/big.mp4".to_string(),
            Remote::Different {
                detail: "size 3 differs".into(),
            },
        );
        let plan = build(
            &files,
            &g,
            assign_keys(&files, &g, &r),
            &remote,
            &r,
            &SkipLog::default(),
        );
        assert_eq!(
            plan.actions,
            [Action::AlreadyPresent, Action::Conflict, Action::Upload]
        );
        assert_eq!(plan.summary.objects_already_present, 1);
        assert_eq!(plan.summary.objects_to_upload, 1);
        assert_eq!(plan.conflicts[0].path, "big.mp4");
        assert!(!plan.is_clean(&SkipLog::default()));

        r.overwrite = true;
        let plan = build(
            &files,
            &g,
            assign_keys(&files, &g, &r),
            &remote,
            &r,
            &SkipLog::default(),
        );
        assert_eq!(
            plan.actions,
            [Action::AlreadyPresent, Action::Upload, Action::Upload]
        );
    }

    #[test]
    fn content_layout_names_objects_by_hash() {
        let (files, g) = fixture();
        let r = rules(KeyLayout::Content);
        let keys = assign_keys(&files, &g, &r);
        let hex = Digests::of_bytes(b"thumb").sha256.to_hex();
        assert_eq!(
            keys.objects[2].key.as_str(),
            format!("shop/{}/{}/{hex}.png", &hex[..2], &hex[2..4])
        );
    }

    #[test]
    fn long_keys_and_name_collisions_are_reported() {
        let long = format!("{}.jpg", "x".repeat(1100));
        let files = vec![
            file("A.jpg", 1, 1),
            file("a.JPG", 2, 2),
            file("caf\u{e9}.jpg", 3, 3),
            file("cafe\u{301}.jpg", 4, 4),
            file(&long, 5, 5),
        ];
        let g = Grouping {
            canonical: (0..5).map(Some).collect(),
            ..Grouping::default()
        };
        let r = rules(KeyLayout::Preserve);
        let plan = build(
            &files,
            &g,
            assign_keys(&files, &g, &r),
            &HashMap::new(),
            &r,
            &SkipLog::default(),
        );
        assert_eq!(
            plan.names.case_collisions,
            [vec!["A.jpg".to_string(), "a.JPG".to_string()]]
        );
        assert_eq!(plan.names.normalization_collisions.len(), 1);
        assert_eq!(plan.names.long_keys[0].key_bytes, 1109);
        assert_eq!(plan.failures.len(), 1);
        assert_eq!(plan.summary.files_total, 4);
        assert!(!plan.is_clean(&SkipLog::default()));
    }
}
