//! Resume: kills at chosen points and at random moments, Ctrl-C, changed
//! files, forgotten upload ids, the journal's lock and identity, the hash
//! cache, and the `status`, `verify` and `gc` commands. All against the
//! real server; bytes on the wire are counted by a proxy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::migrate::{check_migrated, incomplete_uploads, upload_ids};
use crate::support::{
    ChecksumAlgorithm, Proxy, Target, Tree, bytes, json as doc, mediashift, runtime, s3,
    spawn_mediashift, stderr, target, wait_with_timeout,
};

const MIB: usize = 1024 * 1024;

/// One migration (tree, bucket, journal, maps) run again and again.
struct Migration {
    tree: Tree,
    target: Target,
    dir: tempfile::TempDir,
    endpoint: Option<String>,
    extra: Vec<String>,
}

impl Migration {
    fn new(name: &str, tree: Tree) -> Self {
        Self {
            tree,
            target: target(name),
            dir: tempfile::tempdir().unwrap(),
            endpoint: None,
            extra: [
                "--multipart-threshold",
                "8MiB",
                "--part-size",
                "5MiB",
                "--max-memory",
                "16MiB",
                "--concurrency",
                "4",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn maps(&self) -> PathBuf {
        self.dir.path().join("maps")
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "migrate".to_string(),
            self.tree.path().display().to_string(),
            self.target.url(),
            "--json".into(),
            "--no-progress".into(),
            "--state".into(),
            self.state().display().to_string(),
            "--map-dir".into(),
            self.maps().display().to_string(),
            "--source-base-url".into(),
            "/media/".into(),
        ];
        if let Some(e) = &self.endpoint {
            a.extend(["--endpoint-url".to_string(), e.clone()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    fn run(&self, env: &[(&str, &str)]) -> Output {
        crate::support::mediashift_env(self.args(), env)
    }

    fn spawn(&self, env: &[(&str, &str)]) -> Child {
        spawn_mediashift(self.args(), env)
    }

    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        walk(self.tree.path(), self.tree.path())
    }
}

fn walk(root: &std::path::Path, dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(root, &p));
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, std::fs::read(&p).unwrap());
        }
    }
    out
}

/// Large files of many parts and some small ones.
fn big_tree(large: &[usize], small: usize) -> Tree {
    let tree = Tree::new();
    for (i, size) in large.iter().enumerate() {
        tree.file(
            format!("video/clip-{i}.mp4"),
            &bytes(1000 + i as u64, *size),
        );
    }
    for i in 0..small {
        tree.file(
            format!("catalog/product/{}/img-{i}.jpg", i % 7),
            &bytes(i as u64, 20_000 + i * 37),
        );
    }
    tree
}

fn killed(out: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal() == Some(9)
}

#[test]
fn killed_at_any_point_it_resumes_and_resends_little() {
    let sizes = [120 * MIB + 3, 100 * MIB + 11, 64 * MIB];
    let mut m = Migration::new("kill-resume", big_tree(&sizes, 30));
    let proxy = Proxy::start();
    m.endpoint = Some(proxy.endpoint.clone());
    let unique: u64 = m.files().values().map(|d| d.len() as u64).sum();

    // Chosen points: an upload created but not journaled; a part
    // acknowledged but not journaled; inside a journal transaction;
    // between CompleteMultipartUpload and its verification.
    for point in [
        // Between CreateMultipartUpload's answer and its journal record:
        // the next run must abort the upload nobody knows of.
        "after-create:2",
        "part-acked:6",
        "journal-before-commit:4",
        "after-complete:1",
    ] {
        let out = m.run(&[("MEDIASHIFT_TEST_CRASH_AT", point)]);
        assert!(
            killed(&out),
            "{point}: expected SIGKILL, got {:?}\n{}",
            out.status,
            stderr(&out)
        );
    }
    // A random moment: mid-part, while data flows.
    let child = m.spawn(&[]);
    let before = proxy.bytes_sent();
    let start = Instant::now();
    while proxy.bytes_sent() < before + 40 * MIB as u64 && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert!(killed(&out) || out.status.success(), "{:?}", out.status);

    // Run until done.
    let mut last = None;
    for _ in 0..3 {
        let out = m.run(&[]);
        if out.status.success() {
            last = Some(doc(&out));
            break;
        }
    }
    let v: Value = last.expect("the migration finishes after the kills");
    assert_eq!(v["failed"], serde_json::json!([]));
    check_migrated(&m.target, &m.maps(), &m.files());

    let sent = proxy.bytes_sent();
    let ratio = sent as f64 / unique as f64;
    eprintln!("kill test: {sent} bytes sent over all runs for {unique} unique bytes ({ratio:.3}x)");
    assert!(
        ratio < 1.25,
        "sent {sent} bytes over all runs for {unique} unique bytes: {ratio:.3}x"
    );
}

/// Starts a run and SIGKILLs it once the proxy has seen `until` bytes in
/// all (or lets it finish, if it gets there first).
fn kill_when(m: &Migration, proxy: &Proxy, until: u64) {
    let child = m.spawn(&[]);
    let start = Instant::now();
    while proxy.bytes_sent() < until && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert!(killed(&out) || out.status.success(), "{:?}", out.status);
}

#[test]
fn killed_twice_the_first_rerun_finishes_and_little_is_sent_again() {
    // The scenario scaled down (500 small files and two 300 MiB
    // videos there): killed at 30% and again at 60% of the bytes.
    let mut m = Migration::new("kill-twice", big_tree(&[60 * MIB + 7, 60 * MIB + 13], 300));
    let proxy = Proxy::start();
    m.endpoint = Some(proxy.endpoint.clone());
    let unique: u64 = m.files().values().map(|d| d.len() as u64).sum();
    kill_when(&m, &proxy, unique * 3 / 10);
    kill_when(&m, &proxy, unique * 6 / 10);
    let out = m.run(&[]);
    assert!(
        out.status.success(),
        "the first rerun finishes: {}",
        stderr(&out)
    );
    assert_eq!(doc(&out)["failed"], serde_json::json!([]));
    check_migrated(&m.target, &m.maps(), &m.files());
    let sent = proxy.bytes_sent();
    let ratio = sent as f64 / unique as f64;
    eprintln!("two kills: {sent} bytes sent over all runs for {unique} unique bytes ({ratio:.3}x)");
    assert!(
        ratio <= 1.25,
        "sent {sent} bytes over all runs for {unique} unique bytes: {ratio:.3}x"
    );
}

#[test]
fn ctrl_c_stops_gracefully_writes_maps_and_resumes() {
    let m = Migration::new("sigint", big_tree(&[150 * MIB], 20));
    let proxy = Proxy::start();
    let mut m = m;
    m.endpoint = Some(proxy.endpoint.clone());
    let child = m.spawn(&[]);
    let start = Instant::now();
    while proxy.bytes_sent() < 30 * MIB as u64 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run the same command again to resume"),
        "{}",
        stderr(&out)
    );
    let v = doc(&out);
    assert!(v["objects_interrupted"].as_u64().unwrap() >= 1, "{v}");
    // The maps cover exactly what is done so far.
    let rows = crate::migrate::csv_rows(&m.maps().join("map.csv"));
    assert_eq!(rows.len() as u64, v["objects_uploaded"].as_u64().unwrap());
    // The large upload is kept for resuming, not aborted.
    assert_eq!(incomplete_uploads(&m.target), 1);
    let status = mediashift([
        "status",
        "--json",
        "--state",
        &m.state().display().to_string(),
    ]);
    let st = doc(&status);
    assert_eq!(st["uploads_in_flight"].as_array().unwrap().len(), 1, "{st}");
    assert!(
        st["uploads_in_flight"][0]["parts_done"].as_u64().unwrap() >= 1,
        "{st}"
    );

    let sent_before = proxy.bytes_sent();
    let out = m.run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = doc(&out);
    assert!(v["objects_uploaded"].as_u64().unwrap() >= 1);
    check_migrated(&m.target, &m.maps(), &m.files());
    let resent = proxy.bytes_sent() - sent_before;
    assert!(
        resent < 150 * MIB as u64,
        "the resumed run sent {resent} bytes: parts were re-sent from scratch"
    );
}

#[test]
fn a_file_changed_since_its_upload_began_starts_over() {
    let m = Migration::new("changed-file", big_tree(&[40 * MIB], 0));
    let out = m.run(&[("MEDIASHIFT_TEST_CRASH_AT", "part-acked:4")]);
    assert!(killed(&out));
    assert_eq!(incomplete_uploads(&m.target), 1);
    let old_upload = upload_ids(&m.target);

    m.tree.file("video/clip-0.mp4", &bytes(77, 40 * MIB));
    let out = m.run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids_after = upload_ids(&m.target);
    assert!(
        ids_after.is_empty(),
        "the stale upload {old_upload:?} was aborted"
    );
    check_migrated(&m.target, &m.maps(), &m.files());
}

#[test]
fn an_upload_the_server_forgot_starts_over_cleanly() {
    let m = Migration::new("expired-upload", big_tree(&[30 * MIB], 0));
    let out = m.run(&[("MEDIASHIFT_TEST_CRASH_AT", "part-acked:3")]);
    assert!(killed(&out));
    // Abort it behind mediashift's back (as a lifecycle rule would).
    runtime().block_on(async {
        let c = s3();
        let ups = c
            .list_multipart_uploads()
            .bucket(&m.target.bucket)
            .send()
            .await
            .unwrap();
        for u in ups.uploads() {
            c.abort_multipart_upload()
                .bucket(&m.target.bucket)
                .key(u.key().unwrap())
                .upload_id(u.upload_id().unwrap())
                .send()
                .await
                .unwrap();
        }
    });
    let out = m.run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    check_migrated(&m.target, &m.maps(), &m.files());
}

#[test]
fn one_run_at_a_time_per_journal() {
    let mut m = Migration::new("lock", big_tree(&[60 * MIB], 0));
    let proxy = Proxy::start();
    m.endpoint = Some(proxy.endpoint.clone());
    let at = m.extra.iter().position(|a| a == "--concurrency").unwrap();
    m.extra[at + 1] = "1".to_string();
    let first = m.spawn(&[]);
    let start = Instant::now();
    while proxy.bytes_sent() < MIB as u64 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = m.run(&[]);
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("in use by another mediashift run"),
        "{}",
        stderr(&second)
    );
    assert!(
        stderr(&second).contains(&first.id().to_string()),
        "names the pid: {}",
        stderr(&second)
    );
    let out = wait_with_timeout(first, Duration::from_secs(120));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_journal_of_another_migration_is_refused() {
    let tree = Tree::new();
    tree.file("a.jpg", b"a");
    let m = Migration::new("journal-a", tree);
    assert!(m.run(&[]).status.success());
    let other = target("journal-b");
    let out = mediashift([
        "migrate",
        &m.tree.path().display().to_string(),
        &other.url(),
        "--state",
        &m.state().display().to_string(),
        "--map-dir",
        &m.maps().display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("use another --state"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unchanged_files_are_not_read_again() {
    let tree = Tree::new();
    // Same sizes everywhere, so dedup and the existence check must hash.
    for i in 0..20u64 {
        tree.file(format!("p/{i}.jpg"), &bytes(i % 15, 30_000));
    }
    tree.file("video/v.mp4", &bytes(99, 12 * MIB));
    let m = Migration::new("hash-cache", tree);
    let out = m.run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(doc(&out)["bytes_hashed"].as_u64().unwrap() > 0);

    let out = m.run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = doc(&out);
    assert_eq!(v["bytes_hashed"], 0, "nothing is re-hashed");
    assert_eq!(v["objects_uploaded"], 0);
    // An object per file: 15 contents uploaded, 6 duplicates copied.
    assert_eq!(v["objects_skipped_existing"], 21);
}

#[test]
fn verify_finds_overwritten_deleted_and_unexpected_objects() {
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 4000))
        .file("b.jpg", &bytes(2, 4000))
        .file("c.jpg", &bytes(3, 4000));
    let m = Migration::new("verify", tree);
    assert!(m.run(&[]).status.success());
    let verify = |deep: bool| {
        let mut args = vec![
            "verify".to_string(),
            m.tree.path().display().to_string(),
            m.target.url(),
            "--json".into(),
            "--state".into(),
            m.state().display().to_string(),
        ];
        if deep {
            args.push("--deep".into());
        }
        mediashift(&args)
    };
    let out = verify(true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(doc(&out)["objects_ok"], 3);

    let key = |n: &str| format!("{}{n}", m.target.prefix);
    m.target.put(&key("a.jpg"), &bytes(9, 4000), None); // same size, other bytes
    m.target.delete(&key("b.jpg"));
    m.target.put(&key("stray.jpg"), b"stray", None);
    for deep in [false, true] {
        let out = verify(deep);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let v = doc(&out);
        assert_eq!(v["mismatched"][0]["key"], key("a.jpg"), "{v}");
        assert_eq!(v["missing"][0]["key"], key("b.jpg"), "{v}");
        assert_eq!(v["unexpected"], serde_json::json!([key("stray.jpg")]));
        assert_eq!(v["objects_ok"], 1);
    }
}

#[test]
fn verify_calls_an_object_it_cannot_prove_unproven() {
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 4000))
        .file("b.jpg", &bytes(2, 4000));
    let m = Migration::new("verify-unproven", tree);
    assert!(m.run(&[]).status.success());
    // Another client overwrites a.jpg with other bytes of the same size: no
    // metadata, its own default checksum (CRC32), which mediashift does not
    // compute. Nothing proves the object holds the file's bytes.
    let key = format!("{}a.jpg", m.target.prefix);
    m.target
        .put_with(&key, &bytes(9, 4000), None, ChecksumAlgorithm::Crc32);
    let verify = |deep: bool| {
        let mut args = vec![
            "verify".to_string(),
            m.tree.path().display().to_string(),
            m.target.url(),
            "--json".into(),
            "--state".into(),
            m.state().display().to_string(),
        ];
        if deep {
            args.push("--deep".into());
        }
        let out = mediashift(&args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        doc(&out)
    };
    let v = verify(false);
    assert_eq!(v["objects_ok"], 1, "{v}");
    assert_eq!(v["unproven"][0]["key"], key, "{v}");
    let why = v["unproven"][0]["detail"].as_str().unwrap();
    assert!(why.contains("CRC32"), "{why}");
    assert_eq!(v["mismatched"], serde_json::json!([]));
    // Its bytes tell: they are not the file's.
    let v = verify(true);
    assert_eq!(v["mismatched"][0]["key"], key, "{v}");
    assert_eq!(v["unproven"], serde_json::json!([]));
}

#[test]
fn gc_aborts_only_what_nobody_will_resume() {
    let m = Migration::new("gc", big_tree(&[20 * MIB], 0));
    let out = m.run(&[("MEDIASHIFT_TEST_CRASH_AT", "part-acked:2")]);
    assert!(killed(&out));
    // A stray upload nobody will resume.
    let stray = runtime().block_on(async {
        s3().create_multipart_upload()
            .bucket(&m.target.bucket)
            .key(format!("{}stray.mp4", m.target.prefix))
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_string()
    });
    let gc = |extra: &[&str]| {
        let mut args = vec![
            "gc".to_string(),
            m.target.url(),
            "--json".into(),
            "--state".into(),
            m.state().display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = mediashift(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        doc(&out)
    };
    // Fresh uploads are not touched by the default age.
    let v = gc(&[]);
    assert!(
        v["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["action"] == "kept_recent"),
        "{v}"
    );
    let v = gc(&["--older-than", "0", "--dry-run"]);
    assert_eq!(v["aborted"], 0);
    assert_eq!(upload_ids(&m.target).len(), 2);

    let v = gc(&["--older-than", "0"]);
    let actions: BTreeMap<String, String> = v["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["upload_id"].as_str().unwrap().to_string(),
                u["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(actions[&stray], "aborted");
    assert_eq!(
        actions.values().filter(|a| *a == "kept_for_resume").count(),
        1,
        "{v}"
    );
    assert_eq!(upload_ids(&m.target).len(), 1);

    // The kept upload is resumed by the next run.
    let out = m.run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    check_migrated(&m.target, &m.maps(), &m.files());
}

/// A rerun says what it takes up before it starts.
#[test]
fn a_rerun_says_what_it_resumes() {
    let tree = Tree::new();
    tree.file("video/big.mp4", &bytes(7, 30 * MIB))
        .file("a.jpg", &bytes(8, 5000));
    let t = target("resume-line");
    let dir = tempfile::tempdir().unwrap();
    let args = vec![
        "migrate".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--map-dir".into(),
        dir.path().join("maps").display().to_string(),
        "--state".into(),
        dir.path().join("state").display().to_string(),
    ];
    let out = mediashift(&args);
    assert!(
        !stderr(&out).contains("resuming"),
        "a first run resumes nothing"
    );
    // Start over in a fresh bucket state: kill a run after two parts.
    let t2 = target("resume-line-2");
    let mut args2 = args.clone();
    args2[2] = t2.url();
    args2[6] = dir.path().join("state2").display().to_string();
    let out =
        crate::support::mediashift_env(&args2, &[("MEDIASHIFT_TEST_CRASH_AT", "part-acked:3")]);
    assert!(killed(&out), "{:?}\n{}", out.status, stderr(&out));
    let out = mediashift(&args2);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("resuming: 1 of 2 objects left, 1 multipart upload continued")
            || err.contains("resuming: 2 of 2 objects left, 1 multipart upload continued"),
        "{err}"
    );
    let again = mediashift(&args2);
    assert!(
        stderr(&again).contains("resuming: 0 of 2 objects left"),
        "{}",
        stderr(&again)
    );
}
