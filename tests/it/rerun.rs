//! What a rerun asks the bucket. The journal proves the objects of files
//! unchanged since their upload: a rerun trusts those proofs once a sample
//! of them is found in place, asks (HEAD) only about the rest when they
//! are few, and lists the bucket when they are many, when the sample
//! finds objects missing, or with `--recheck`. Requests are counted by a
//! proxy in front of the real server.

use crate::migrate::{csv_rows, migrate_in, verify_in};
use crate::support::{Proxy, Target, Tree, bytes, json, stderr, target};

/// Files `from..to` of a tree of distinct small images.
fn add_files(tree: &Tree, from: u64, to: u64) {
    for n in from..to {
        tree.file(
            format!("img/{n:03}.jpg"),
            &bytes(1000 + n, 700 + n as usize),
        );
    }
}

/// A tree of `n` files, migrated once (directly, not through a proxy).
fn migrated(name: &str, n: u64) -> (Tree, Target, tempfile::TempDir) {
    let tree = Tree::new();
    add_files(&tree, 0, n);
    let t = target(name);
    let maps = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, maps.path(), &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], n, "{v}");
    (tree, t, maps)
}

/// A rerun through a fresh proxy; its output, report and the proxy.
fn rerun(
    tree: &Tree,
    t: &Target,
    maps: &std::path::Path,
    extra: &[&str],
) -> (std::process::Output, serde_json::Value, Proxy) {
    let proxy = Proxy::start();
    let mut args = vec!["--endpoint-url", proxy.endpoint.as_str()];
    args.extend_from_slice(extra);
    let (out, v) = migrate_in(tree, t, maps, &args, &[]);
    (out, v, proxy)
}

/// HEAD requests on objects of the target (not the bucket check).
fn object_heads(p: &Proxy, t: &Target) -> usize {
    let under = format!("/{}/{}", t.bucket, t.prefix);
    p.stats()
        .seen
        .iter()
        .filter(|(m, target)| {
            m == "HEAD" && target.len() > under.len() && target.starts_with(&under)
        })
        .count()
}

#[test]
fn a_rerun_over_unchanged_files_lists_nothing_and_asks_only_about_new_ones() {
    let (tree, t, maps) = migrated("rerun-trust", 40);
    add_files(&tree, 40, 41);
    let (out, v, proxy) = rerun(&tree, &t, maps.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 1, "{v}");
    assert_eq!(v["already_present_by_proof"]["journal"], 40, "{v}");
    assert_eq!(v["map_entries"], 41, "{v}");
    assert_eq!(proxy.stats().listings(), 0, "no listing");
    // 32 sampled objects of the journal's, and the new file's key.
    assert_eq!(object_heads(&proxy, &t), 33, "{:?}", proxy.stats().seen);
    assert_eq!(t.objects().len(), 41);
}

#[test]
fn many_new_files_are_found_by_listing_the_bucket() {
    let (tree, t, maps) = migrated("rerun-many", 40);
    // 10 unknown objects against 40 rows: listing beats 10 HEADs.
    add_files(&tree, 40, 50);
    let (out, v, proxy) = rerun(&tree, &t, maps.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 10, "{v}");
    assert_eq!(v["already_present_by_proof"]["journal"], 40, "{v}");
    assert!(proxy.stats().listings() >= 1, "the bucket is listed");
    assert_eq!(
        object_heads(&proxy, &t),
        32,
        "only the sample: the listing showed every journal object with its size, and none of the new keys"
    );
}

#[test]
fn a_sample_missing_from_the_bucket_makes_the_rerun_check_everything() {
    let (tree, t, maps) = migrated("rerun-emptied", 40);
    for k in t.objects().into_keys() {
        t.delete(&k);
    }
    let (out, v, proxy) = rerun(&tree, &t, maps.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("objects the journal holds as verified are not in the bucket"),
        "{}",
        stderr(&out)
    );
    assert_eq!(v["objects_uploaded"], 40, "{v}");
    assert!(proxy.stats().listings() >= 1);
    assert_eq!(t.objects().len(), 40);
    assert_eq!(csv_rows(&maps.path().join("map.csv")).len(), 40);
}

/// The trade-off, pinned: an object deleted behind the journal's back and
/// missed by the sample stays missing for a plain rerun; `verify` finds it
/// and `--recheck` puts it back.
#[test]
fn recheck_lists_the_bucket_and_puts_back_a_deleted_object() {
    let (tree, t, maps) = migrated("rerun-recheck", 40);
    let keys: Vec<String> = t.objects().into_keys().collect();
    // The sample takes 32 of the 40 objects, evenly spread (0, 1, 2, 3, 5,
    // ...): the fifth is not among them.
    let gone = &keys[4];
    t.delete(gone);

    let (out, v, proxy) = rerun(&tree, &t, maps.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 0, "{v}");
    assert_eq!(proxy.stats().listings(), 0);

    let verify = verify_in(&tree, &t, maps.path());
    assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
    assert_eq!(json(&verify)["missing"][0]["key"], gone.as_str());

    let (out, v, proxy) = rerun(&tree, &t, maps.path(), &["--recheck"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 1, "{v}");
    assert_eq!(proxy.stats().listings(), 1, "one listing page");
    assert!(t.objects().contains_key(gone));
}
