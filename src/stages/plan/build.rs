//! Building the plan: each object's action, the requests it takes, what
//! it costs, and every file that cannot be handled.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::keys::{KeyLayout, Keys};
use super::names::{NameProblems, name_problems};
use crate::limits::{PartLayout, copy_layout};
use crate::stages::dedup::Grouping;
use crate::stages::scan::{SkipLog, SourceFile};
use crate::stages::verify::{How, Proof};
use crate::types::ByteSize;

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
    /// The destination's prefix, where every key starts.
    pub prefix: String,
    pub key_layout: KeyLayout,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub prices: Prices,
    pub overwrite: bool,
    /// The largest object one CopyObject copies ([`crate::limits::MAX_COPY_OBJECT`]).
    pub copy_limit: u64,
}

/// What the destination holds under a planned key (keys with nothing
/// there are not in the plan's input at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Whether it holds the file's bytes, by the rules of `verify`.
    pub proof: Proof,
    /// mediashift wrote it from this same path: when not proven, it is an
    /// earlier upload of a file that has changed since, and is replaced.
    pub same_path: bool,
    /// The whole checksum (`BodyChecksum::record`) that proved it, when
    /// the file's digests alone could not: the journal keeps it for
    /// `verify`.
    pub checksum: Option<String>,
}

impl Existing {
    /// A proven object (the journal's shortcut uses it too).
    pub const fn proven(how: How) -> Self {
        Self {
            proof: Proof::Proven { how },
            same_path: false,
            checksum: None,
        }
    }
}

/// The journal's proof, as [`Existence::get`] hands it out.
static BY_JOURNAL: Existing = Existing::proven(How::Journal);

/// What the destination holds under the planned keys.
#[derive(Debug, Default)]
pub struct Existence {
    /// Objects the bucket showed, judged by the proof rules, by object
    /// index (objects with nothing under their key are absent).
    pub found: HashMap<u32, Existing>,
    /// By object index: proven by the journal (its file unchanged since it
    /// was verified under this key), and so not asked about again. A bit
    /// per object, where a million proofs by key would cost a hundred MB.
    pub by_journal: Vec<bool>,
}

impl Existence {
    /// What is under the key of object `object` of the plan.
    pub fn get(&self, object: u32) -> Option<&Existing> {
        if self.by_journal.get(object as usize) == Some(&true) {
            return Some(&BY_JOURNAL);
        }
        self.found.get(&object)
    }
}

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Upload,
    /// A duplicate's own object (`preserve`), made by a server-side copy
    /// of the object of the file it duplicates: its bytes do not cross the
    /// link again.
    Copy,
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
    /// Server-side copies (`preserve` duplicates), billed as PUTs.
    pub copy_object: u64,
    /// Parts of copies above 5 GiB (with their create and complete counted
    /// above).
    pub upload_part_copy: u64,
}

impl Requests {
    pub fn total(&self) -> u64 {
        self.put_object
            + self.create_multipart
            + self.upload_part
            + self.complete_multipart
            + self.copy_object
            + self.upload_part_copy
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
    /// Duplicates' own objects to make by a server-side copy (`preserve`).
    pub objects_to_copy: u64,
    pub bytes_to_copy: u64,
    pub objects_already_present: u64,
    /// The objects already present, by how each was proven.
    pub already_present_by_proof: BTreeMap<How, u64>,
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

/// Builds the plan from its inputs: the walk, the dedup grouping, the keys,
/// and what exists under those keys.
pub fn build(
    files: &[SourceFile],
    grouping: &Grouping,
    keys: Keys,
    existing: &Existence,
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

    // Objects, in path order: a duplicate's source (the first file of its
    // group) comes before it, so its action is known.
    for (o, &i) in keys.files().iter().enumerate() {
        let o = o as u32;
        if grouping.canonical[i as usize].is_none() {
            plan.actions.push(Action::Failed);
            continue;
        }
        let f = &files[i as usize];
        // A duplicate whose source will be in place is copied from it;
        // one whose source cannot be (a conflict) is uploaded itself.
        let copies = keys.source(o, grouping).is_some_and(|src| {
            matches!(
                plan.actions[src as usize],
                Action::Upload | Action::AlreadyPresent
            )
        });
        let make = if copies { Action::Copy } else { Action::Upload };
        let action = match existing.get(o) {
            None => make,
            Some(e) => match &e.proof {
                Proof::Proven { how } => {
                    *s.already_present_by_proof.entry(*how).or_default() += 1;
                    Action::AlreadyPresent
                }
                Proof::Missing => make,
                _ if e.same_path => {
                    s.objects_changed_since_upload += 1;
                    make
                }
                _ if rules.overwrite => make,
                Proof::Different { why } | Proof::Unproven { why } => {
                    plan.conflicts.push(Conflict {
                        path: f.rel.to_string(),
                        key: keys.key(o, files, grouping).into_string(),
                        detail: why.clone(),
                    });
                    Action::Conflict
                }
            },
        };
        match action {
            Action::AlreadyPresent => {
                s.objects_already_present += 1;
                s.bytes_already_present += f.size;
            }
            Action::Conflict => s.objects_conflicting += 1,
            Action::Failed => {}
            Action::Copy => {
                s.objects_to_copy += 1;
                s.bytes_to_copy += f.size;
                match copy_layout(f.size, rules.copy_limit) {
                    Ok(None) => s.requests.copy_object += 1,
                    Ok(Some(layout)) => {
                        s.requests.create_multipart += 1;
                        s.requests.upload_part_copy += layout.parts;
                        s.requests.complete_multipart += 1;
                    }
                    Err(e) => plan.failures.push(Failure {
                        path: f.rel.to_string(),
                        error: e.to_string(),
                    }),
                }
            }
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

    // Copies are stored objects too: their bytes are billed like any.
    let gb = (s.bytes_to_upload + s.bytes_to_copy) as f64 / ByteSize::GIB as f64;
    s.cost = Cost {
        requests_usd: s.requests.total() as f64 / 1000.0 * rules.prices.put_per_1000,
        storage_first_month_usd: gb * rules.prices.storage_gb_month,
        put_per_1000_usd: rules.prices.put_per_1000,
        storage_gb_month_usd: rules.prices.storage_gb_month,
    };
    s.estimated_cost_usd = round_cents(s.cost.requests_usd + s.cost.storage_first_month_usd);

    plan.names = name_problems(
        files,
        skipped,
        &keys.too_long,
        rules.key_layout == KeyLayout::Preserve,
    );
    plan.keys = keys;
    plan.summary = s;
    plan
}

/// Rounds to 1/10,000 of a dollar, enough for small runs to show non-zero.
fn round_cents(usd: f64) -> f64 {
    (usd * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digests;
    use crate::stages::plan::keys::assign_keys;

    const MIB: u64 = ByteSize::MIB;

    fn keys_of(files: &[SourceFile], g: &Grouping, r: &PlanRules) -> Keys {
        assign_keys(files, g, &r.prefix, r.key_layout)
    }

    /// The plan of `files` with what `existing` says is in the bucket.
    fn plan_of(
        files: &[SourceFile],
        g: &Grouping,
        r: &PlanRules,
        existing: &HashMap<String, Existing>,
    ) -> Plan {
        let keys = keys_of(files, g, r);
        // By key in the tests, as readable; by object in the plan.
        let found = (0..keys.len() as u32)
            .filter_map(|o| Some((o, existing.get(keys.key(o, files, g).as_str())?.clone())))
            .collect();
        let existence = Existence {
            found,
            by_journal: Vec::new(),
        };
        build(files, g, keys, &existence, r, &SkipLog::default())
    }

    fn unproven(detail: &str) -> Existing {
        Existing {
            proof: Proof::Unproven { why: detail.into() },
            same_path: false,
            checksum: None,
        }
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
            copy_limit: crate::limits::MAX_COPY_OBJECT,
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
        let keys = keys_of(&files, &g, &r);
        let keynames: Vec<_> = (0..keys.len() as u32)
            .map(|o| keys.key(o, &files, &g).into_string())
            .collect();
        // Every file at its own key, the duplicate included.
        assert_eq!(
            keynames,
            [
                "shop/a.jpg",
                "shop/big.mp4",
                "shop/c/a-copy.jpg",
                "shop/thumb.PNG"
            ]
        );
        let plan = build(
            &files,
            &g,
            keys,
            &Existence::default(),
            &r,
            &SkipLog::default(),
        );
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
        // The duplicate's bytes are not sent: its object is a copy.
        assert_eq!(s.objects_to_upload, 3);
        assert_eq!(s.bytes_to_upload, 100 + 56 * MIB);
        assert_eq!((s.objects_to_copy, s.bytes_to_copy), (1, 100));
        assert_eq!(
            plan.actions,
            [Action::Upload, Action::Upload, Action::Copy, Action::Upload]
        );
        // thumb.PNG is exactly at the threshold: multipart (2 parts of 8 MiB).
        assert_eq!(s.multipart_objects, 2);
        assert_eq!(
            s.requests,
            Requests {
                put_object: 1,
                create_multipart: 2,
                upload_part: 5 + 2,
                complete_multipart: 2,
                copy_object: 1,
                upload_part_copy: 0,
            }
        );
        // The copy is a request and a stored object like any.
        let expected =
            12.0 / 1000.0 * 0.005 + (200 + 56 * MIB) as f64 / ByteSize::GIB as f64 * 0.023;
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
        remote.insert(
            "shop/a.jpg".to_string(),
            Existing::proven(How::ChecksumInHead),
        );
        remote.insert(
            "shop/big.mp4".to_string(),
            Existing {
                proof: Proof::Different {
                    why: "size 3 differs".into(),
                },
                same_path: false,
                checksum: None,
            },
        );
        remote.insert("shop/thumb.PNG".to_string(), unproven("no proof"));
        let plan = plan_of(&files, &g, &r, &remote);
        // An object that proves nothing is never taken for the file. The
        // duplicate's own key is empty: copied from a.jpg's object.
        assert_eq!(
            plan.actions,
            [
                Action::AlreadyPresent,
                Action::Conflict,
                Action::Copy,
                Action::Conflict
            ]
        );
        assert_eq!(plan.summary.objects_already_present, 1);
        assert_eq!(plan.summary.objects_to_upload, 0);
        assert_eq!(plan.summary.objects_to_copy, 1);
        assert_eq!(plan.conflicts[0].path, "big.mp4");
        assert_eq!(
            (
                plan.conflicts[1].path.as_str(),
                plan.conflicts[1].detail.as_str()
            ),
            ("thumb.PNG", "no proof")
        );
        assert!(!plan.is_clean(&SkipLog::default()));

        r.overwrite = true;
        let plan = plan_of(&files, &g, &r, &remote);
        assert_eq!(
            plan.actions,
            [
                Action::AlreadyPresent,
                Action::Upload,
                Action::Copy,
                Action::Upload
            ]
        );
    }

    #[test]
    fn a_duplicate_whose_source_conflicts_is_uploaded_itself() {
        let (files, g) = fixture();
        let r = rules(KeyLayout::Preserve);
        let mut remote = HashMap::new();
        remote.insert("shop/a.jpg".to_string(), unproven("another tool's"));
        let plan = plan_of(&files, &g, &r, &remote);
        assert_eq!(
            plan.actions,
            [
                Action::Conflict,
                Action::Upload,
                Action::Upload,
                Action::Upload
            ]
        );
        assert_eq!(plan.summary.objects_to_copy, 0);
        // Its own key holding another tool's object: a conflict of its own.
        remote.insert("shop/c/a-copy.jpg".to_string(), unproven("theirs"));
        let plan = plan_of(&files, &g, &r, &remote);
        assert_eq!(plan.actions[2], Action::Conflict);
        assert_eq!(plan.conflicts.len(), 2);
    }

    #[test]
    fn copies_above_the_copy_limit_are_counted_in_parts() {
        let files = vec![file("a.mp4", 25 * MIB, 1), file("b.mp4", 25 * MIB, 2)];
        let g = Grouping {
            canonical: vec![Some(0), Some(0)],
            ..Grouping::default()
        };
        let mut r = rules(KeyLayout::Preserve);
        r.copy_limit = 10 * MIB;
        let plan = plan_of(&files, &g, &r, &HashMap::new());
        assert_eq!(plan.actions, [Action::Upload, Action::Copy]);
        let q = &plan.summary.requests;
        // The upload: 1 + 4 + 1; the copy: 1 + 3 parts of 10 MiB + 1.
        assert_eq!(
            (
                q.create_multipart,
                q.upload_part,
                q.upload_part_copy,
                q.copy_object,
                q.complete_multipart
            ),
            (2, 4, 3, 0, 2)
        );
    }

    #[test]
    fn objects_the_journal_proves_are_present_without_a_listing() {
        let (files, g) = fixture();
        let r = rules(KeyLayout::Preserve);
        let existence = Existence {
            found: HashMap::new(),
            by_journal: vec![true, false, true, true],
        };
        let plan = build(
            &files,
            &g,
            keys_of(&files, &g, &r),
            &existence,
            &r,
            &SkipLog::default(),
        );
        assert_eq!(
            plan.actions,
            [
                Action::AlreadyPresent,
                Action::Upload,
                Action::AlreadyPresent,
                Action::AlreadyPresent
            ]
        );
        assert_eq!(
            plan.summary.already_present_by_proof,
            BTreeMap::from([(How::Journal, 3)])
        );
    }

    #[test]
    fn an_unproven_earlier_upload_of_the_same_path_is_replaced() {
        let (files, g) = fixture();
        let r = rules(KeyLayout::Preserve);
        let mut remote = HashMap::new();
        let mut ours = unproven("size differs");
        ours.same_path = true;
        remote.insert("shop/a.jpg".to_string(), ours);
        let plan = plan_of(&files, &g, &r, &remote);
        assert_eq!(plan.actions[0], Action::Upload);
        assert_eq!(plan.summary.objects_changed_since_upload, 1);
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn content_layout_names_objects_by_hash() {
        let (files, g) = fixture();
        let r = rules(KeyLayout::Content);
        let keys = keys_of(&files, &g, &r);
        let hex = Digests::of_bytes(b"thumb").sha256.to_hex();
        let key = format!("shop/{}/{}/{hex}.png", &hex[..2], &hex[2..4]);
        assert_eq!(keys.key(2, &files, &g).as_str(), key);
        // A listed key finds its object, under either layout.
        assert_eq!(keys.finder(&files, &g).find(&key), Some(2));
        assert_eq!(keys.finder(&files, &g).find("shop/ab/cd/nothing.png"), None);
        // Under content, a duplicate shares its content's object.
        assert_eq!(keys.object_for(2, &g), Some(0));
        assert_eq!(keys.source(0, &g), None);
        let preserve = keys_of(&files, &g, &rules(KeyLayout::Preserve));
        let finder = preserve.finder(&files, &g);
        assert_eq!(finder.find("shop/thumb.PNG"), Some(3));
        // Under preserve, a duplicate has its own object, copied from its
        // content's first file's.
        assert_eq!(finder.find("shop/c/a-copy.jpg"), Some(2));
        assert_eq!(preserve.object_for(2, &g), Some(2));
        assert_eq!(preserve.source(2, &g), Some(0));
        assert_eq!(preserve.source(0, &g), None);
        assert_eq!(finder.find("other/thumb.PNG"), None);
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
        let plan = plan_of(&files, &g, &r, &HashMap::new());
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

    #[test]
    fn a_plus_in_a_name_is_flagged_for_a_base_switch_only() {
        let files = vec![file("red+blue.png", 1, 1), file("red blue.png", 2, 2)];
        let mut g = Grouping {
            canonical: vec![Some(0), Some(1)],
            ..Grouping::default()
        };
        g.digests.insert(0, Digests::of_bytes(b"r"));
        g.digests.insert(1, Digests::of_bytes(b"rb"));
        let plan = plan_of(&files, &g, &rules(KeyLayout::Preserve), &HashMap::new());
        let flagged: Vec<&str> = plan
            .names
            .unservable
            .iter()
            .map(|u| u.path.as_str())
            .collect();
        assert_eq!(flagged, ["red+blue.png"]);
        assert!(plan.names.unservable[0].why.contains("%2B"));
        // A warning, not a failure.
        assert!(plan.is_clean(&SkipLog::default()));
        // No base switch under the content layout: nothing to flag.
        let plan = plan_of(&files, &g, &rules(KeyLayout::Content), &HashMap::new());
        assert!(plan.names.unservable.is_empty());
    }
}
