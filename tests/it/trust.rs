//! Trust under real conditions: every "verified" is a proof, a lost answer
//! is not a failure, the maps never shrink, odd names converge, state is
//! never uploaded, and a disk that cannot take the results is found before
//! anything is uploaded. Against the real server, with the fault proxy
//! where a fault is needed.

use std::collections::BTreeMap;

use crate::migrate::{check_migrated, csv_rows, migrate_in, verify_in};
use crate::support::proxy::{Fault, Match};
use crate::support::{
    ChecksumAlgorithm, Proxy, SmallDisk, Tree, bytes, json as doc, mediashift, mediashift_at,
    stderr, target,
};

const MIB: usize = 1024 * 1024;

fn files(tree: &Tree, names: &[(&str, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    names
        .iter()
        .map(|(n, d)| {
            tree.file(n, d);
            (n.to_string(), d.clone())
        })
        .collect()
}

#[test]
fn copied_metadata_over_other_bytes_is_found_and_overwrite_repairs_it() {
    let tree = Tree::new();
    let t = target("forged");
    let maps = tempfile::tempdir().unwrap();
    let all = files(
        &tree,
        &[("a.jpg", bytes(1, 5000)), ("b.jpg", bytes(2, 5000))],
    );
    let (out, _) = migrate_in(&tree, &t, maps.path(), &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Flipped bytes under a copy of the old sha256 metadata, written as
    // boto3 writes (its CRC32): a claim anyone can copy.
    let mut flipped = all["a.jpg"].clone();
    flipped[0] ^= 0xFF;
    let sha = crate::migrate::hex(&all["a.jpg"]);
    let key = format!("{}a.jpg", t.prefix);
    t.put_with(&key, &flipped, Some(&sha), ChecksumAlgorithm::Crc32);

    let verify = verify_in(&tree, &t, maps.path());
    assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
    assert_eq!(doc(&verify)["unproven"][0]["key"], key);

    // A fresh journal: not "already in the bucket", a conflict.
    let fresh = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, fresh.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(v["objects_conflicting"], 1, "{v}");
    assert_eq!(v["objects_skipped_existing"], 1, "{v}");
    assert_eq!(v["already_present_by_proof"]["checksum_in_head"], 1, "{v}");
    // --overwrite replaces it.
    let (out, v) = migrate_in(&tree, &t, fresh.path(), &["--overwrite"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 1, "{v}");
    check_migrated(&t, fresh.path(), &all);
}

#[test]
fn a_lost_answer_is_not_a_failure_when_the_object_arrived() {
    let tree = Tree::new();
    let t = target("lost-answer");
    let maps = tempfile::tempdir().unwrap();
    let all = files(
        &tree,
        &[
            ("small/a.jpg", bytes(3, 3000)),
            ("small/b.jpg", bytes(4, 3000)),
            ("video/v.mp4", bytes(5, 12 * MIB)),
        ],
    );
    let proxy = Proxy::start();
    // The server stores the PUT and completes the upload; the answers are
    // lost, the SDK retries, and the retries are refused (412, 404).
    proxy.rule(
        Match::method("PUT").target("a.jpg"),
        Fault::LoseResponse,
        Some(1),
    );
    proxy.rule(
        Match::method("POST").target("v.mp4").target("uploadId="),
        Fault::LoseResponse,
        Some(1),
    );
    let (out, v) = migrate_in(
        &tree,
        &t,
        maps.path(),
        &[
            "--endpoint-url",
            &proxy.endpoint,
            "--multipart-threshold",
            "8MiB",
            "--part-size",
            "5MiB",
        ],
        &[],
    );
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
    let fired: Vec<String> = proxy
        .stats()
        .faults
        .iter()
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(fired.len(), 2, "both answers were lost: {fired:?}");
    check_migrated(&t, maps.path(), &all);
}

#[test]
fn the_maps_keep_every_migrated_file_whatever_a_rerun_selects() {
    let tree = Tree::new();
    let t = target("maps-journal");
    let maps = tempfile::tempdir().unwrap();
    let all = files(
        &tree,
        &[
            ("a.jpg", bytes(6, 2000)),
            ("b.jpg", bytes(7, 2000)),
            ("c/d.jpg", bytes(8, 2000)),
        ],
    );
    let (out, _) = migrate_in(&tree, &t, maps.path(), &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let entries = || csv_rows(&maps.path().join("map.csv")).len();
    assert_eq!(entries(), 3);

    // A rerun that selects nothing writes the same maps.
    let (out, v) = migrate_in(
        &tree,
        &t,
        maps.path(),
        &["--exclude", "*", "--allow-empty"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["map_entries"], 3, "{v}");
    check_migrated(&t, maps.path(), &all);

    // An object gone from the bucket, its file not selected: reported and
    // left out, never silently dropped.
    t.delete(&format!("{}b.jpg", t.prefix));
    let (out, v) = migrate_in(
        &tree,
        &t,
        maps.path(),
        &["--exclude", "*", "--allow-empty"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(v["failed"][0]["path"], "b.jpg", "{v}");
    let why = v["failed"][0]["error"].as_str().unwrap();
    assert!(why.contains("no longer in the bucket"), "{why}");
    assert_eq!(entries(), 2);
    // Selected again, it goes up again and is back in the maps.
    let (out, _) = migrate_in(&tree, &t, maps.path(), &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(), 3);
}

/// A file this run did not select shares its object with one it did (the
/// content layout gives identical files one key). The object was deleted
/// and this run put it back: the unselected file's row stays in the maps,
/// and the selected one stays verified.
#[test]
fn an_object_this_run_put_back_keeps_the_unselected_file_that_shares_it() {
    let tree = Tree::new();
    let t = target("put-back");
    let maps = tempfile::tempdir().unwrap();
    let same = bytes(13, 2500);
    files(&tree, &[("a/x.jpg", same.clone()), ("b/y.jpg", same)]);
    let layout = ["--key-layout", "content"];
    let (out, v) = migrate_in(
        &tree,
        &t,
        maps.path(),
        &[&layout[..], &["--exclude", "b/*"]].concat(),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 1, "{v}");
    let key = t.objects().into_keys().next().expect("one object");
    t.delete(&key);

    let (out, v) = migrate_in(
        &tree,
        &t,
        maps.path(),
        &[&layout[..], &["--exclude", "a/*"]].concat(),
        &[],
    );
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 1, "{v}");
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
    let rows = csv_rows(&maps.path().join("map.csv"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["key"] == key), "{rows:?}");

    // The journal agrees: a run over both has nothing to do.
    let (out, v) = migrate_in(&tree, &t, maps.path(), &layout, &[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 0, "{v}");
    assert_eq!(v["map_entries"], 2, "{v}");
}

#[test]
fn names_servers_list_mangled_converge() {
    let tree = Tree::new();
    let t = target("odd-names");
    let maps = tempfile::tempdir().unwrap();
    let all = files(
        &tree,
        &[
            ("ctl\u{1}x.jpg", bytes(9, 1500)),
            ("tab\tname.jpg", bytes(10, 1501)),
            ("back\\slash.jpg", bytes(11, 1502)),
            ("plain.jpg", bytes(12, 1503)),
        ],
    );
    let (out, v) = migrate_in(&tree, &t, maps.path(), &[], &[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 4);
    // The second run finds every object, uploads nothing, keeps every row.
    let (out, v) = migrate_in(&tree, &t, maps.path(), &[], &[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 0, "{v}");
    assert_eq!(v["objects_skipped_existing"], 4, "{v}");
    // A fresh journal too (the listing alone must tell).
    let fresh = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, fresh.path(), &[], &[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 0, "{v}");
    assert_eq!(csv_rows(&fresh.path().join("map.csv")).len(), 4);
    let _ = all;
}

#[test]
fn state_and_maps_inside_the_source_are_never_uploaded() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("media");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.jpg"), bytes(13, 1000)).unwrap();
    let t = target("state-inside");
    // The state directory named through `..`, with every file taken.
    let state = base.path().join("media/../media/st");
    let maps = base.path().join("maps");
    let out = mediashift([
        "migrate".as_ref(),
        src.as_os_str(),
        t.url().as_ref(),
        "--all-files".as_ref(),
        "--state".as_ref(),
        state.as_os_str(),
        "--map-dir".as_ref(),
        maps.as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_again = mediashift([
        "migrate".as_ref(),
        src.as_os_str(),
        t.url().as_ref(),
        "--all-files".as_ref(),
        "--state".as_ref(),
        state.as_os_str(),
        "--map-dir".as_ref(),
        maps.as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(run_again.status.success(), "{}", stderr(&run_again));
    let keys: Vec<String> = t.objects().into_keys().collect();
    assert_eq!(keys, [format!("{}a.jpg", t.prefix)], "only the media");

    // A map directory that is inside SOURCE_DIR through a symlink is
    // refused; `..` out of SOURCE_DIR, from inside it, is not.
    std::fs::create_dir_all(src.join("maps-here")).unwrap();
    std::os::unix::fs::symlink(src.join("maps-here"), base.path().join("link")).unwrap();
    let out = mediashift([
        "migrate".as_ref(),
        src.as_os_str(),
        t.url().as_ref(),
        "--map-dir".as_ref(),
        base.path().join("link").as_os_str(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("inside SOURCE_DIR"),
        "{}",
        stderr(&out)
    );
    let out = mediashift_at(
        &src,
        [
            "migrate",
            ".",
            &t.url(),
            "--map-dir",
            "../elsewhere",
            "--state",
            "../st2",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(base.path().join("elsewhere/map.csv").exists());
}

#[test]
fn a_map_dir_or_state_dir_that_cannot_take_writes_fails_before_any_upload() {
    let tree = Tree::new();
    files(
        &tree,
        &[("a.jpg", bytes(14, 1000)), ("b.jpg", bytes(15, 1000))],
    );
    let t = target("unwritable");
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let read_only = SmallDisk::new("1m", true);
    let full = SmallDisk::new("2m", false);
    full.fill(0);
    let state = scratch.path().join("state").display().to_string();
    let cases = [
        (
            vec![
                "--map-dir".to_string(),
                file.display().to_string(),
                "--state".into(),
                state.clone(),
            ],
            "--map-dir",
        ),
        (
            vec![
                "--map-dir".to_string(),
                read_only.path().join("maps").display().to_string(),
                "--state".into(),
                state.clone(),
            ],
            "--map-dir",
        ),
        (
            vec![
                "--map-dir".to_string(),
                scratch.path().join("maps").display().to_string(),
                "--state".into(),
                full.path().join("state").display().to_string(),
            ],
            "state directory",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec![
            "migrate".to_string(),
            tree.path().display().to_string(),
            t.url(),
        ];
        args.extend(extra);
        let out = mediashift(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.matches("(os error").count() <= 1, "said once: {err}");
        assert!(t.objects().is_empty(), "nothing uploaded: {args:?}");
    }
}

#[test]
fn a_journal_that_fills_its_disk_stops_the_uploads_and_says_where() {
    let tree = Tree::new();
    let names: Vec<(String, Vec<u8>)> = (0..1500)
        .map(|i| (format!("p/{}/{i}.jpg", i % 10), bytes(100 + i, 200)))
        .collect();
    for (n, d) in &names {
        tree.file(n, d);
    }
    let t = target("journal-full");
    let disk = SmallDisk::new("1m", false);
    // Room for the probe and the schema, not for the rows of every file.
    disk.fill(200 * 1024);
    let maps = tempfile::tempdir().unwrap();
    let state = disk.path().join("state");
    let out = mediashift([
        "migrate".as_ref(),
        tree.path().as_os_str(),
        t.url().as_ref(),
        "--state".as_ref(),
        state.as_os_str(),
        "--map-dir".as_ref(),
        maps.path().as_os_str(),
        "--concurrency".as_ref(),
        "2".as_ref(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write the journal"), "{err}");
    assert!(
        err.contains(&state.display().to_string()),
        "names the path: {err}"
    );
    assert!(
        t.objects().len() < names.len(),
        "uploads stopped when the journal could not record them"
    );
}
