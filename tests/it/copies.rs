//! Every file at its own key (`--key-layout preserve`, the default): an
//! application builds each media URL from its base and the file's own
//! path, so after `migrate` the base switch alone must serve every file,
//! duplicates included. A duplicate's object is a copy made in the bucket
//! (its bytes do not cross the link again), proven, journaled, checked by
//! `verify` and `offload` like any; a server that cannot copy gets the
//! duplicate uploaded instead.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::migrate::{MULTIPART_FLAGS, check_migrated, migrate_args, verify_in};
use crate::support::proxy::{Fault, Match};
use crate::support::{
    Proxy, Target, Tree, anonymous_get, bytes, json as doc, mediashift, mediashift_env, stderr,
    target,
};

const MIB: usize = 1024 * 1024;

/// Copies above 6 MiB go in parts (UploadPartCopy), so that the 12 MiB
/// video's duplicate exercises them.
const COPY_LIMIT: (&str, &str) = ("MEDIASHIFT_TEST_COPY_LIMIT", "6291456");

/// A shop's media with duplicates in several folders: the same product
/// photo in three, a banner under an odd name (a `+`, a space, a `%25`, an
/// accent: the copy's source must be named exactly), a video and its copy
/// (above the copy limit), two empty files, a hard link.
fn shop() -> (Tree, BTreeMap<String, Vec<u8>>) {
    let shoe = bytes(1, 40_000);
    let banner = bytes(2, 5_000);
    let video = bytes(3, 12 * MIB);
    let files: BTreeMap<String, Vec<u8>> = [
        ("catalog/product/a/b/shoe.jpg", shoe.clone()),
        ("catalog/product/c/d/shoe-1.jpg", shoe.clone()),
        ("wysiwyg/home/shoe.jpg", shoe),
        ("wysiwyg/banner.png", banner.clone()),
        ("wysiwyg/odd/red+blue banner é%25.png", banner),
        ("video/promo.mp4", video.clone()),
        ("video/copy/promo.mp4", video),
        ("catalog/product/u/unique.jpg", bytes(4, 3_000)),
        ("empty/a.gif", Vec::new()),
        ("empty/b.gif", Vec::new()),
        ("hl/orig.jpg", bytes(5, 7_777)),
    ]
    .into_iter()
    .map(|(p, d)| (p.to_string(), d))
    .collect();
    let tree = Tree::new();
    for (rel, data) in &files {
        tree.file(rel, data);
    }
    // A hard link: dedup takes it for a duplicate without reading it.
    std::fs::hard_link(tree.join("hl/orig.jpg"), tree.join("hl/link.jpg")).unwrap();
    let mut files = files;
    files.insert("hl/link.jpg".into(), bytes(5, 7_777));
    (tree, files)
}

/// Files whose bytes an earlier file (in path order) already has.
const DUPLICATES: u64 = 6;

fn unique_bytes(files: &BTreeMap<String, Vec<u8>>) -> u64 {
    let mut seen = std::collections::BTreeSet::new();
    files
        .values()
        .filter(|d| seen.insert(d.to_vec()))
        .map(|d| d.len() as u64)
        .sum()
}

fn migrate(tree: &Tree, t: &Target, maps: &Path, extra: &[&str]) -> (std::process::Output, Value) {
    let mut all = MULTIPART_FLAGS.to_vec();
    all.extend_from_slice(extra);
    let out = mediashift_env(migrate_args(tree, t, maps, &all), &[COPY_LIMIT]);
    let v = doc(&out);
    (out, v)
}

#[test]
fn every_file_resolves_at_the_base_and_its_own_path_after_migrate() {
    let (tree, files) = shop();
    let t = target("copies-base");
    t.make_public();
    let maps = tempfile::tempdir().unwrap();

    // The plan counts the copies and flags the name a base switch cannot
    // serve (S3 reads a raw + as a space).
    let plan = mediashift_env(
        [
            "plan".to_string(),
            tree.path().display().to_string(),
            t.url(),
            "--json".into(),
            "--multipart-threshold".into(),
            "8MiB".into(),
            "--part-size".into(),
            "5MiB".into(),
        ],
        &[COPY_LIMIT],
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    let p = doc(&plan);
    assert_eq!(p["objects_to_copy"], DUPLICATES, "{p}");
    assert_eq!(p["requests"]["copy_object"], DUPLICATES - 1, "{p}");
    assert_eq!(
        p["requests"]["upload_part_copy"], 2,
        "12 MiB in 6 MiB parts"
    );
    assert_eq!(
        p["problems"]["unservable"][0]["path"], "wysiwyg/odd/red+blue banner é%25.png",
        "{}",
        p["problems"]
    );

    let (out, v) = migrate(&tree, &t, maps.path(), &[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["objects_copied"], DUPLICATES, "{v}");
    assert_eq!(v["objects_uploaded"], files.len() as u64 - DUPLICATES);
    assert_eq!(
        v["bytes_uploaded"],
        unique_bytes(&files),
        "a duplicate's bytes do not cross the link"
    );

    // What a browser gets at BASE + each file's path, with no credentials:
    // every file, duplicates included, with its own bytes.
    for (rel, data) in &files {
        let url = t.public_url(&format!("{}{rel}", t.prefix));
        let (status, body) = anonymous_get(&url);
        assert_eq!(status, 200, "GET {url} ({rel})");
        assert!(body == *data, "GET {url} does not serve the bytes of {rel}");
    }
    // The bucket holds exactly an object per file, each with its file's
    // bytes, content type and sha256 metadata; the maps a row per file.
    let rows = check_migrated(&t, maps.path(), &files);
    let row = |p: &str| rows.iter().find(|r| r["key"].ends_with(p)).unwrap();
    // The first path in byte order is uploaded, the other copied from it.
    assert_eq!(
        row("video/promo.mp4")["duplicate_of"],
        "video/copy/promo.mp4"
    );
    assert_eq!(row("hl/orig.jpg")["duplicate_of"], "hl/link.jpg");

    // verify proves each copy as an object of its own; offload would let
    // every file go, each against its own object.
    let out = verify_in(&tree, &t, maps.path());
    let checked = doc(&out);
    assert!(out.status.success(), "{}\n{checked}", stderr(&out));
    assert_eq!(checked["objects_ok"], files.len() as u64, "{checked}");
    let out = mediashift([
        "offload".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--state".into(),
        maps.path().join("state").display().to_string(),
        "--delete".into(),
        "--dry-run".into(),
        "--json".into(),
    ]);
    let off = doc(&out);
    assert!(out.status.success(), "{}\n{off}", stderr(&out));
    assert_eq!(
        off["offloaded"].as_array().unwrap().len(),
        files.len(),
        "{off}"
    );

    // A rerun has nothing to upload or copy.
    let (out, v) = migrate(&tree, &t, maps.path(), &[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(
        (&v["objects_uploaded"], &v["objects_copied"]),
        (&Value::from(0), &Value::from(0)),
        "{v}"
    );
    assert_eq!(v["objects_skipped_existing"], files.len() as u64);
}

#[test]
fn a_copy_deleted_behind_the_journals_back_is_copied_again_by_recheck() {
    let (tree, files) = shop();
    let t = target("copies-recheck");
    let maps = tempfile::tempdir().unwrap();
    let (out, _) = migrate(&tree, &t, maps.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    t.delete(&format!("{}wysiwyg/home/shoe.jpg", t.prefix));
    let out = verify_in(&tree, &t, maps.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify reports the copy missing"
    );
    assert_eq!(doc(&out)["missing"][0]["path"], "wysiwyg/home/shoe.jpg");
    let (out, v) = migrate(&tree, &t, maps.path(), &["--recheck"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["objects_copied"], 1, "{v}");
    assert_eq!(v["objects_uploaded"], 0, "{v}");
    check_migrated(&t, maps.path(), &files);
}

#[test]
fn a_server_that_cannot_copy_gets_each_duplicate_uploaded() {
    let (tree, files) = shop();
    let t = target("copies-refused");
    let maps = tempfile::tempdir().unwrap();
    let proxy = Proxy::start();
    proxy.rule(
        Match::method("PUT").with_header("x-amz-copy-source"),
        Fault::NotImplemented,
        None,
    );
    let (out, v) = migrate(&tree, &t, maps.path(), &["--endpoint-url", &proxy.endpoint]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert!(
        stderr(&out).contains("the server cannot copy objects"),
        "{}",
        stderr(&out)
    );
    assert_eq!(v["objects_copied"], 0, "{v}");
    assert_eq!(v["objects_uploaded"], files.len() as u64, "{v}");
    let refused = proxy.stats().faults.len() as u64;
    assert!(
        (1..=DUPLICATES).contains(&refused),
        "{refused} copies tried"
    );
    check_migrated(&t, maps.path(), &files);
}
