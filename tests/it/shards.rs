//! Sharding against the real server: `migrate --shard I/N` run as separate
//! processes at once, `--shards N` with `JOB_COMPLETION_INDEX`, a shard
//! killed and rerun, two runs of one shard overlapping, the refusals of
//! shared state, `plan`'s split, and `maps merge` (joined, and refused).
//! Buckets, listings and multipart state are read from the S3 API directly;
//! which shard a file belongs to is computed here from the documented rule.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::migrate::{MULTIPART_FLAGS, check_migrated, csv_rows, hex, migrate_args, upload_ids};
use crate::support::{
    Proxy, Target, Tree, bytes, json as doc, mediashift, mediashift_env, spawn_mediashift, stderr,
    stdout, target, wait_with_timeout,
};

const MIB: usize = 1024 * 1024;

/// How long one shard's run may take before the test calls it hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The shard of `count` that a file of `size` bytes goes to, by the rule
/// the sharding documents (src/shard.rs): SHA-256 of `mediashift shard
/// v1\0` and the size (u64, little-endian); its first 8 bytes read as a
/// little-endian u64, modulo the count. Computed here, independently, so a
/// test can give every shard files of its own and check where each went.
/// (None of the tests' sizes is shared by enough files to be "crowded".)
fn shard_of(size: usize, count: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(b"mediashift shard v1\0");
    h.update((size as u64).to_le_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(first) % u64::from(count)) as u32
}

/// The smallest size from `from` up whose files go to `shard` of 3.
fn size_for(shard: u32, from: usize) -> usize {
    (from..).find(|&s| shard_of(s, 3) == shard).expect("a size")
}

/// A tree for three shards, each with files of its own: three identical
/// copies of one file, three files of one size but different bytes, and a
/// file of its own. With `multipart`, shard 0 also holds two identical
/// multipart-sized videos and shard 1 one (3 parts of MULTIPART_FLAGS).
/// Returns the tree and its files (path -> bytes).
fn three_shard_tree(multipart: bool) -> (Tree, BTreeMap<String, Vec<u8>>) {
    let tree = Tree::new();
    let mut files = BTreeMap::new();
    let mut add = |rel: String, data: Vec<u8>| {
        tree.file(&rel, &data);
        files.insert(rel, data);
    };
    for s in 0..3u32 {
        let seed = 100 * (u64::from(s) + 1);
        let step = 1000 * s as usize;
        let shoe = bytes(seed, size_for(s, 3000 + step));
        for k in 0..3 {
            add(format!("catalog/product/{s}/{k}/shoe.jpg"), shoe.clone());
        }
        let same = size_for(s, 20_000 + step);
        for k in 0..3u64 {
            add(
                format!("catalog/category/{s}/same-size-{k}.png"),
                bytes(seed + 10 + k, same),
            );
        }
        add(
            format!("wysiwyg/{s}/banner.gif"),
            bytes(seed + 50, size_for(s, 50_000 + step)),
        );
    }
    if multipart {
        let video = bytes(7, size_for(0, 9 * MIB));
        add("video/promo.mp4".into(), video.clone());
        add("video/copy/promo.mp4".into(), video);
        add(
            "video/intro.webm".into(),
            bytes(8, size_for(1, 10 * MIB + 1)),
        );
    }
    (tree, files)
}

/// The files of `files` that go to `shard` of 3, by [`shard_of`].
fn share_of(files: &BTreeMap<String, Vec<u8>>, shard: u32) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .filter(|(_, d)| shard_of(d.len(), 3) == shard)
        .map(|(k, d)| (k.clone(), d.clone()))
        .collect()
}

/// How many different contents `files` hold: the objects a run writes.
fn distinct(files: &BTreeMap<String, Vec<u8>>) -> usize {
    files
        .values()
        .map(|d| hex(d))
        .collect::<BTreeSet<_>>()
        .len()
}

/// The `migrate` arguments of shard `shard` ("I/3", or none) with its
/// maps (and, beside them, its journal) in `maps`.
fn shard_args(tree: &Tree, t: &Target, maps: &Path, shard: &str, extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<&str> = MULTIPART_FLAGS.to_vec();
    flags.extend(["--no-progress", "--shard", shard]);
    flags.extend(extra);
    migrate_args(tree, t, maps, &flags)
}

/// Waits for a spawned run; fails the test if it was not a clean exit.
fn finished_clean(what: &str, child: std::process::Child) -> (Output, Value) {
    let out = wait_with_timeout(child, RUN_LIMIT);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {:?}\nstderr:\n{}",
        out.status,
        stderr(&out)
    );
    let v = doc(&out);
    assert_eq!(v["failed"], json!([]), "{what}: {}", stderr(&out));
    (out, v)
}

/// `mediashift maps merge INPUTS... -o OUT [--json]`.
fn merge(inputs: &[&Path], out: &Path, json: bool) -> Output {
    let mut args: Vec<String> = vec!["maps".into(), "merge".into()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(["-o".into(), out.display().to_string()]);
    if json {
        args.push("--json".into());
    }
    mediashift(&args)
}

/// The map files in `dir` (none when it does not exist).
fn map_files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| ["map.csv", "map.json", "nginx.map", "apache.map"].contains(&n.as_str()))
        .collect()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// map.csv's rows in `maps` (of a migration into `t`) with the target's
/// place taken off `key` and `new_url`, so that two migrations of one tree
/// into different buckets or prefixes compare equal. Also the row count.
fn rows_relative(maps: &Path, t: &Target) -> (usize, BTreeSet<Vec<String>>) {
    let public = read_json(&maps.join("map.json"))["public_base_url"]
        .as_str()
        .expect("map.json has public_base_url")
        .trim_end_matches('/')
        .to_string();
    let base = format!("{public}/{}", t.prefix);
    let rows = csv_rows(&maps.join("map.csv"));
    let set = rows
        .iter()
        .map(|r| {
            let key = r["key"].strip_prefix(&t.prefix).unwrap_or_else(|| {
                panic!(
                    "{}: key {} is not under {}",
                    maps.display(),
                    r["key"],
                    t.prefix
                )
            });
            let url = r["new_url"].strip_prefix(&base).unwrap_or_else(|| {
                panic!(
                    "{}: new_url {} is not under {base}",
                    maps.display(),
                    r["new_url"]
                )
            });
            [
                &r["old_url"],
                url,
                key,
                &r["sha256"],
                &r["size"],
                &r["content_type"],
                &r["duplicate_of"],
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        })
        .collect();
    (rows.len(), set)
}

/// The keys a run's `--report` says it uploaded (outcome "uploaded").
/// The keys a run's report says it wrote with `outcome` (`uploaded`,
/// `copied`).
fn written_keys(report: &Path, outcome: &str) -> BTreeSet<String> {
    read_json(report)["files"]
        .as_array()
        .expect("the report lists files")
        .iter()
        .filter(|r| r["outcome"] == outcome)
        .map(|r| {
            r["key"]
                .as_str()
                .expect("an uploaded row has its key")
                .to_string()
        })
        .collect()
}

/// `mediashift verify` of a migration by its journals (one per shard).
fn verify(tree: &Tree, t: &Target, states: &[&Path]) -> Output {
    let mut args = vec![
        "verify".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--json".into(),
        "--no-progress".into(),
    ];
    for s in states {
        args.extend(["--state".to_string(), s.display().to_string()]);
    }
    mediashift(args)
}

/// Checks a run's exit code, showing its output when it is not `code`.
fn exits(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(out),
        stderr(out)
    );
}

/// Checks that a run was refused (exit 2) with a message naming every one
/// of `needles`; returns the message.
fn refused(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for n in needles {
        assert!(err.contains(n), "the message names {n:?}: {err}");
    }
    err
}

fn killed(out: &Output) -> bool {
    out.status.signal() == Some(libc::SIGKILL)
}

#[test]
fn three_shards_at_once_write_each_object_once_and_merge_into_the_unsharded_maps() {
    let (tree, files) = three_shard_tree(true);
    let unique = distinct(&files);
    let t = target("shards-three");
    let dir = tempfile::tempdir().expect("temp dir");
    let maps: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("shard-{i}")))
        .collect();
    let reports: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("report-{i}.json")))
        .collect();

    // All three at once, as separate processes.
    let children: Vec<_> = (0..3)
        .map(|i| {
            let report = reports[i].display().to_string();
            let args = shard_args(
                &tree,
                &t,
                &maps[i],
                &format!("{i}/3"),
                &["--report", &report],
            );
            spawn_mediashift(args, &[])
        })
        .collect();
    let docs: Vec<Value> = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| finished_clean(&format!("shard {i}/3"), c).1)
        .collect();

    let mut uploaded_total = 0;
    let mut keys_by_shard = Vec::new();
    for (i, v) in docs.iter().enumerate() {
        let share = share_of(&files, i as u32);
        assert!(share.len() >= 7, "shard {i} has files of its own");
        assert_eq!(
            v["files_total"],
            share.len(),
            "shard {i}/3 takes its share: {v}"
        );
        assert_eq!(v["objects_uploaded"], distinct(&share), "shard {i}/3: {v}");
        uploaded_total += v["objects_uploaded"].as_u64().expect("objects_uploaded");
        // Its maps hold its files, and only those.
        let rows = csv_rows(&maps[i].join("map.csv"));
        let paths: BTreeSet<String> = rows
            .iter()
            .map(|r| r["old_url"].trim_start_matches("/media/").to_string())
            .collect();
        assert_eq!(
            paths,
            share.keys().cloned().collect::<BTreeSet<_>>(),
            "shard {i}/3's map rows"
        );
        let mut keys = written_keys(&reports[i], "uploaded");
        assert_eq!(
            keys.len(),
            distinct(&share),
            "shard {i}/3 uploaded {keys:?}"
        );
        // Its duplicates (identical files share a shard) are copies of
        // its own uploads, at their own keys.
        let copied = written_keys(&reports[i], "copied");
        assert_eq!(
            copied.len(),
            share.len() - distinct(&share),
            "shard {i}/3 copied {copied:?}"
        );
        keys.extend(copied);
        keys_by_shard.push(keys);
    }
    assert_eq!(
        uploaded_total, unique as u64,
        "the shards together upload each distinct content once"
    );
    // No key was written by two shards, and what they wrote is the bucket.
    for a in 0..3 {
        for b in a + 1..3 {
            let both: Vec<_> = keys_by_shard[a].intersection(&keys_by_shard[b]).collect();
            assert!(both.is_empty(), "shards {a} and {b} both wrote {both:?}");
        }
    }
    let union: BTreeSet<String> = keys_by_shard.iter().flatten().cloned().collect();
    let listed: BTreeSet<String> = t.objects().into_keys().collect();
    assert_eq!(
        union, listed,
        "the bucket holds what the shards uploaded and copied"
    );
    assert_eq!(listed.len(), files.len(), "an object per file");

    // The merged maps prove the whole tree against the bucket.
    let merged = dir.path().join("merged");
    let inputs: Vec<&Path> = maps.iter().map(PathBuf::as_path).collect();
    let out = merge(&inputs, &merged, true);
    exits(&out, 0);
    let m = doc(&out);
    assert_eq!(m["rows"], files.len(), "{m}");
    assert!(
        m["refused"]
            .as_object()
            .is_some_and(|r| r.values().all(|l| l.as_array().is_some_and(Vec::is_empty))),
        "{m}"
    );
    check_migrated(&t, &merged, &files);
    assert_eq!(
        read_json(&merged.join("map.json")).get("shard"),
        None,
        "a merged set is no shard's"
    );

    // One unsharded run of the same tree elsewhere: the same rows.
    let whole_t = target("shards-three-whole");
    let whole_maps = dir.path().join("whole");
    let mut flags = MULTIPART_FLAGS.to_vec();
    flags.push("--no-progress");
    let out = mediashift(migrate_args(&tree, &whole_t, &whole_maps, &flags));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(doc(&out)["objects_uploaded"], unique);
    let (n_merged, merged_rows) = rows_relative(&merged, &t);
    let (n_whole, whole_rows) = rows_relative(&whole_maps, &whole_t);
    assert_eq!(n_merged, files.len(), "one merged row per file");
    assert_eq!(n_whole, files.len(), "one unsharded row per file");
    let only_merged: Vec<_> = merged_rows.difference(&whole_rows).collect();
    let only_whole: Vec<_> = whole_rows.difference(&merged_rows).collect();
    assert!(
        only_merged.is_empty() && only_whole.is_empty(),
        "merged and unsharded maps differ:\nonly merged: {only_merged:#?}\nonly unsharded: {only_whole:#?}"
    );

    // Each shard's journal verifies against the bucket; the other shards'
    // objects share the prefix, so keys it does not know are not called
    // unexpected, and it says so.
    for (i, m) in maps.iter().enumerate() {
        let out = verify(&tree, &t, &[&m.join("state")]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "verify with shard {i}/3's --state: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let v = doc(&out);
        assert_eq!(v["objects_ok"], keys_by_shard[i].len());
        assert!(
            v["unexpected_not_checked"]
                .as_str()
                .is_some_and(|w| w.contains("not given")),
            "{v}"
        );
    }
    // Every shard's journal at once: the whole result, unexpected objects
    // looked for too.
    let states: Vec<PathBuf> = maps.iter().map(|m| m.join("state")).collect();
    let refs: Vec<&Path> = states.iter().map(PathBuf::as_path).collect();
    let out = verify(&tree, &t, &refs);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let v = doc(&out);
    assert_eq!(
        v["objects_ok"],
        files.len() as u64,
        "every file's object: {v}"
    );
    assert_eq!(v["unexpected_not_checked"], Value::Null, "{v}");
    assert_eq!(v["unexpected"], json!([]), "{v}");
}

#[test]
fn a_shard_killed_mid_upload_finishes_on_its_rerun_and_its_maps_merge() {
    let (tree, files) = three_shard_tree(true);
    let t = target("shards-kill");
    let dir = tempfile::tempdir().expect("temp dir");
    let maps: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("shard-{i}")))
        .collect();
    // Shard 1 holds the 3-part video: killed once its first part is in.
    assert_eq!(shard_of(files["video/intro.webm"].len(), 3), 1);
    let children: Vec<_> = (0..3)
        .map(|i| {
            let env: &[(&str, &str)] = if i == 1 {
                &[("MEDIASHIFT_TEST_CRASH_AT", "part-acked:1")]
            } else {
                &[]
            };
            spawn_mediashift(shard_args(&tree, &t, &maps[i], &format!("{i}/3"), &[]), env)
        })
        .collect();
    let mut outs: Vec<Output> = children
        .into_iter()
        .map(|c| wait_with_timeout(c, RUN_LIMIT))
        .collect();
    let second = outs.remove(1);
    assert!(
        killed(&second),
        "shard 1/3 is SIGKILLed mid-run: {:?}\n{}",
        second.status,
        stderr(&second)
    );
    for (i, out) in [(0, &outs[0]), (2, &outs[1])] {
        assert_eq!(out.status.code(), Some(0), "shard {i}/3: {}", stderr(out));
    }
    assert_eq!(
        upload_ids(&t).len(),
        1,
        "the killed shard left its multipart upload half done"
    );

    // Its maps are not there yet: the merge is refused, writing nothing.
    let merged = dir.path().join("merged");
    let inputs: Vec<&Path> = maps.iter().map(PathBuf::as_path).collect();
    let out = merge(&inputs, &merged, false);
    exits(&out, 2);
    assert!(
        stderr(&out).contains(&maps[1].display().to_string()) && stderr(&out).contains("map.json"),
        "names the shard's map dir without maps: {}",
        stderr(&out)
    );
    assert_eq!(map_files_in(&merged), Vec::<String>::new());

    // The journal is shard 1/3's; the rerun finishes (the upload the kill
    // left unrecorded is aborted, or a recorded one taken up: check_migrated
    // below finds no upload left either way).
    let status = mediashift([
        "status".to_string(),
        "--json".into(),
        "--state".into(),
        maps[1].join("state").display().to_string(),
    ]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert_eq!(doc(&status)["shard"], "1/3");
    let out = mediashift(shard_args(&tree, &t, &maps[1], "1/3", &[]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the rerun of shard 1/3: {}",
        stderr(&out)
    );
    let v = doc(&out);
    assert_eq!(v["failed"], json!([]), "{v}");
    let share = share_of(&files, 1);
    assert_eq!(
        v["objects_uploaded"].as_u64().unwrap_or(0)
            + v["objects_skipped_existing"].as_u64().unwrap_or(0),
        distinct(&share) as u64,
        "the rerun accounts for every object of its shard: {v}"
    );

    let out = merge(&inputs, &merged, true);
    exits(&out, 0);
    assert_eq!(doc(&out)["rows"], files.len());
    check_migrated(&t, &merged, &files);
}

#[test]
fn merge_refuses_a_conflicting_old_url_and_a_missing_shard_and_writes_nothing() {
    let (tree, files) = three_shard_tree(false);
    let t = target("shards-merge-refused");
    let dir = tempfile::tempdir().expect("temp dir");
    let maps: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("shard-{i}")))
        .collect();
    for (i, m) in maps.iter().enumerate() {
        let out = mediashift(shard_args(&tree, &t, m, &format!("{i}/3"), &[]));
        assert_eq!(out.status.code(), Some(0), "shard {i}/3: {}", stderr(&out));
    }
    let inputs: Vec<&Path> = maps.iter().map(PathBuf::as_path).collect();
    // As run, they merge.
    let ok = dir.path().join("merged-ok");
    let out = merge(&inputs, &ok, true);
    exits(&out, 0);
    assert_eq!(doc(&out)["rows"], files.len());

    // Shard 1's map.json now also maps one of shard 0's old URLs, to
    // another new URL.
    let taken = read_json(&maps[0].join("map.json"))["entries"][0].clone();
    let old_url = taken["old_url"].as_str().expect("old_url").to_string();
    let theirs = taken["new_url"].as_str().expect("new_url").to_string();
    let forged = "https://cdn.example/elsewhere/shoe.jpg";
    let edited = maps[1].join("map.json");
    let mut m1 = read_json(&edited);
    let mut row = taken.clone();
    row["new_url"] = json!(forged);
    m1["entries"].as_array_mut().expect("entries").push(row);
    std::fs::write(&edited, serde_json::to_vec_pretty(&m1).expect("json")).expect("write map.json");

    let out_dir = dir.path().join("merged");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let out = merge(&inputs, &out_dir, false);
    exits(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&old_url) && text.contains(forged) && text.contains(&theirs),
        "the text names the old URL and both new URLs: {text}"
    );
    assert_eq!(
        map_files_in(&out_dir),
        Vec::<String>::new(),
        "nothing written"
    );

    let out = merge(&inputs, &out_dir, true);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = doc(&out);
    let conflicts = v["refused"]["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 1, "{v}");
    assert_eq!(conflicts[0]["old_url"], old_url.as_str(), "{v}");
    let urls: BTreeSet<&str> = conflicts[0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r[1].as_str())
        .collect();
    assert_eq!(urls, BTreeSet::from([theirs.as_str(), forged]), "{v}");
    assert_eq!(v["refused"]["missing_shards"], json!([]), "{v}");
    assert_eq!(v["rows"], 0);
    assert_eq!(v["map_files"], json!([]));
    assert_eq!(
        map_files_in(&out_dir),
        Vec::<String>::new(),
        "nothing written"
    );

    // Two of three: the missing one is named.
    let gap = dir.path().join("merged-gap");
    let out = merge(&[&maps[0], &maps[2]], &gap, true);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = doc(&out);
    assert_eq!(v["refused"]["missing_shards"], json!([1]), "{v}");
    assert_eq!(v["refused"]["conflicts"], json!([]), "{v}");
    assert_eq!(map_files_in(&gap), Vec::<String>::new(), "nothing written");
    let out = merge(&[&maps[0], &maps[2]], &gap, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("shards missing: 1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(map_files_in(&gap), Vec::<String>::new(), "nothing written");
}

#[test]
fn a_shard_refuses_another_shards_state_and_map_dir_and_takes_its_index_from_the_job() {
    let (tree, files) = three_shard_tree(false);
    let t = target("shards-refusals");
    let dir = tempfile::tempdir().expect("temp dir");
    let p = |n: &str| dir.path().join(n).display().to_string();
    let run = |flags: &[&str], maps: &str, state: &str, env: &[(&str, &str)]| {
        let mut args = vec![
            "migrate".to_string(),
            tree.path().display().to_string(),
            t.url(),
            "--no-progress".into(),
            "--source-base-url".into(),
            "/media/".into(),
            "--map-dir".into(),
            p(maps),
            "--state".into(),
            p(state),
        ];
        args.extend(flags.iter().map(|s| s.to_string()));
        mediashift_env(&args, env)
    };
    let out = run(&["--shard", "0/3"], "maps-0", "state-0", &[]);
    assert_eq!(out.status.code(), Some(0), "shard 0/3: {}", stderr(&out));
    let after_0 = t.objects();
    let map_0 = std::fs::read(dir.path().join("maps-0/map.json")).expect("shard 0's map.json");

    // Shard 1 with shard 0's journal.
    let out = run(&["--shard", "1/3"], "maps-1", "state-0", &[]);
    let err = refused(&out, &["shard 0/3", "shard 1/3"]);
    assert!(err.contains("give each shard its own --state"), "{err}");
    assert_eq!(t.objects(), after_0, "nothing uploaded");
    assert!(
        !dir.path().join("maps-1/map.json").exists(),
        "no maps written"
    );

    // Shard 1 with shard 0's map dir.
    let out = run(&["--shard", "1/3"], "maps-0", "state-1", &[]);
    let err = refused(&out, &["shard 0/3", "shard 1/3"]);
    assert!(err.contains("give each shard its own --map-dir"), "{err}");
    assert_eq!(t.objects(), after_0, "nothing uploaded");
    assert_eq!(
        std::fs::read(dir.path().join("maps-0/map.json")).expect("map.json"),
        map_0,
        "shard 0's maps are untouched"
    );
    // Nor may the unsharded migration write a shard's maps.
    let out = run(&[], "maps-0", "state-whole", &[]);
    refused(&out, &["shard 0/3", "unsharded"]);
    assert_eq!(t.objects(), after_0, "nothing uploaded");

    // --shards without --shard: the index comes from the Job, or it is
    // refused in one line.
    let out = run(
        &["--shards", "3"],
        "maps-j",
        "state-j",
        &[("JOB_COMPLETION_INDEX", "")],
    );
    let err = refused(&out, &["JOB_COMPLETION_INDEX", "--shard I/3"]);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let out = run(
        &["--shards", "3"],
        "maps-j",
        "state-j",
        &[("JOB_COMPLETION_INDEX", "3")],
    );
    refused(&out, &["JOB_COMPLETION_INDEX '3' is not a shard", "0 to 2"]);
    assert_eq!(t.objects(), after_0, "nothing uploaded");

    let out = run(
        &["--shards", "3", "--json"],
        "maps-j",
        "state-j",
        &[("JOB_COMPLETION_INDEX", "1")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let share = share_of(&files, 1);
    assert_eq!(doc(&out)["files_total"], share.len(), "shard 1's files");
    let map = read_json(&dir.path().join("maps-j/map.json"));
    assert_eq!(map["shard"]["index"], 1, "{}", map["shard"]);
    assert_eq!(map["shard"]["count"], 3, "{}", map["shard"]);
    let paths: BTreeSet<String> = map["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_string())
        .collect();
    assert_eq!(paths, share.keys().cloned().collect::<BTreeSet<_>>());
    let status = mediashift(["status", "--json", "--state", &p("state-j")]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert_eq!(doc(&status)["shard"], "1/3", "the journal is shard 1/3's");
}

/// Two processes of one shard, each with its own --state and --map-dir,
/// overlapping in time: A's CompleteMultipartUpload of the video is held
/// by the proxy (never answered) until B, started then, has found A's small
/// objects in place and written the video itself; A's retried completion is
/// refused by If-None-Match, and A proves B's object. Both succeed.
#[test]
fn two_runs_of_one_shard_at_once_both_succeed() {
    use crate::support::proxy::{Fault, Match};
    let (tree, files) = three_shard_tree(true);
    let share = share_of(&files, 0);
    assert!(
        share.contains_key("video/promo.mp4"),
        "shard 0 holds the videos"
    );
    let unique = distinct(&share);
    let t = target("shards-overlap");
    let proxy = Proxy::start();
    // CompleteMultipartUpload is `POST ...?uploadId=`; held once.
    proxy.rule(
        Match::method("POST").target("uploadId="),
        Fault::Stall,
        Some(1),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let maps = [dir.path().join("a"), dir.path().join("b")];
    let run = |m: &Path| {
        let args = shard_args(
            &tree,
            &t,
            m,
            "0/3",
            &["--endpoint-url", &proxy.endpoint, "--request-timeout", "4s"],
        );
        spawn_mediashift(args, &[])
    };
    let a = run(&maps[0]);
    // B starts once A's completion is held and A's small objects are in
    // place (on a loaded machine the first can come before the second).
    let small_ones = unique - 1;
    let start = std::time::Instant::now();
    while (proxy.stats().faults.is_empty() || t.objects().len() < small_ones)
        && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        proxy.stats().faults.len(),
        1,
        "run A reached CompleteMultipartUpload"
    );
    assert!(
        t.objects().len() >= small_ones,
        "run A's small objects are in place: {:?}",
        t.objects()
    );
    let b = run(&maps[1]);
    let (_, vb) = finished_clean("run B of shard 0/3", b);
    let (_, va) = finished_clean("run A of shard 0/3", a);

    let count = |v: &Value, f: &str| v[f].as_u64().unwrap_or_else(|| panic!("{f}: {v}"));
    assert_eq!(
        count(&va, "objects_uploaded"),
        unique as u64,
        "A wrote (or, refused, proved) every object: {va}"
    );
    assert!(
        count(&va, "timeouts") >= 1,
        "A's held completion was cut off: {va}"
    );
    assert_eq!(
        count(&vb, "objects_uploaded") + count(&vb, "objects_skipped_existing"),
        unique as u64,
        "B: {vb}"
    );
    assert!(
        count(&vb, "objects_skipped_existing") >= 1,
        "B found A's objects in place: {vb}"
    );
    let refused = proxy
        .stats()
        .answers
        .iter()
        .filter(|(_, s)| *s == 412)
        .count();
    assert!(
        refused >= 1,
        "a conditional write was refused (412): {:?}",
        proxy.stats().answers
    );
    let (_, rows_a) = rows_relative(&maps[0], &t);
    let (_, rows_b) = rows_relative(&maps[1], &t);
    assert_eq!(rows_a, rows_b, "both runs map the shard alike");
    // The run whose CompleteMultipartUpload is refused with 412 proves the
    // other run's object, counts it done, and aborts its own upload.
    assert_eq!(
        upload_ids(&t),
        Vec::<String>::new(),
        "no multipart upload is left behind by the run that lost the race"
    );
    for m in &maps {
        check_migrated(&t, m, &share);
    }
}

#[test]
fn plan_shows_the_split_and_each_shard_its_share() {
    let (tree, files) = three_shard_tree(false);
    let t = target("shards-plan");
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan".to_string(),
            tree.path().display().to_string(),
            t.url(),
            "--json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = mediashift(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "plan {extra:?}: {}",
            stderr(&out)
        );
        doc(&out)
    };
    let whole = plan(&[]);
    assert_eq!(whole["files_total"], files.len());
    assert_eq!(
        whole.get("sharding"),
        None,
        "no split, no sharding: {whole}"
    );

    let split = plan(&["--shards", "3"]);
    let sharding = &split["sharding"];
    assert_eq!(sharding["count"], 3, "{sharding}");
    assert_eq!(sharding["shard"], Value::Null, "{sharding}");
    let shares = sharding["shares"].as_array().expect("shares");
    assert_eq!(shares.len(), 3, "{sharding}");
    let sum = |field: &str| -> u64 { shares.iter().map(|s| s[field].as_u64().expect(field)).sum() };
    assert_eq!(
        sum("files"),
        whole["files_total"].as_u64().expect("files_total")
    );
    assert_eq!(
        sum("bytes"),
        whole["bytes_total"].as_u64().expect("bytes_total")
    );
    for (i, s) in shares.iter().enumerate() {
        let mine = share_of(&files, i as u32);
        assert_eq!(s["files"], mine.len(), "shard {i}: {sharding}");
        let bytes: usize = mine.values().map(Vec::len).sum();
        assert_eq!(s["bytes"], bytes, "shard {i}: {sharding}");
    }

    for (i, s) in shares.iter().enumerate() {
        let one = plan(&["--shard", &format!("{i}/3")]);
        assert_eq!(one["files_total"], s["files"], "plan --shard {i}/3: {one}");
        assert_eq!(one["bytes_total"], s["bytes"], "plan --shard {i}/3: {one}");
        assert_eq!(
            one["sharding"]["shard"],
            json!({"index": i, "count": 3}),
            "{}",
            one["sharding"]
        );
    }
}
