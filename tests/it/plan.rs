//! `mediashift plan` against the real server.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{
    Target, Tree, bytes, json as doc, mediashift, mediashift_env, stderr, target,
};

const MIB: usize = 1024 * 1024;

fn plan(tree: &Tree, t: &Target, extra: &[&str]) -> (std::process::Output, Value) {
    let mut args = vec![
        "plan".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--json".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = mediashift(&args);
    let v = doc(&out);
    (out, v)
}

fn hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A shop-like tree: 10 media files, 5 distinct contents.
fn shop_tree() -> Tree {
    let t = Tree::new();
    let shoe = bytes(1, 50_000);
    let promo = bytes(4, 20 * MIB);
    t.file("catalog/product/a/b/shoe.jpg", &shoe)
        .file("catalog/product/c/d/shoe-copy.jpg", &shoe)
        .file("catalog/product/e/shoe-again.JPG", &shoe)
        .file("catalog/product/a/b/bag.png", &bytes(2, 50_000))
        .file("catalog/product/x/hat.webp", &bytes(3, 1234))
        .file("video/promo.mp4", &promo)
        .file("video/promo-copy.mp4", &promo)
        .file("docs/readme.txt", b"not media")
        .file("cache/tmp.jpg", b"excluded")
        .file("empty.gif", b"")
        .file("sub/empty2.gif", b"");
    std::fs::hard_link(
        t.join("catalog/product/x/hat.webp"),
        t.join("catalog/product/x/hat-link.webp"),
    )
    .unwrap();
    t
}

#[test]
fn plan_counts_a_tree_with_duplicates_and_writes_nothing() {
    let tree = shop_tree();
    let t = target("plan-counts");
    t.put(&format!("{}unrelated/keep.jpg", t.prefix), b"keep me", None);
    let before = t.objects();

    let (out, v) = plan(&tree, &t, &["--exclude", "cache/"]);
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        stderr(&out)
    );

    let bytes_unique = 50_000 + 50_000 + 1234 + 20 * MIB as u64;
    let bytes_total = 4 * 50_000 + 2 * 1234 + 2 * 20 * MIB as u64;
    assert_eq!(v["files_total"], 10);
    assert_eq!(v["bytes_total"], bytes_total);
    assert_eq!(v["files_unique"], 5);
    assert_eq!(v["bytes_unique"], bytes_unique);
    assert_eq!(v["duplicate_files"], 5);
    assert_eq!(v["duplicate_bytes"], bytes_total - bytes_unique);
    assert_eq!(v["objects_to_upload"], 5);
    assert_eq!(v["bytes_to_upload"], bytes_unique);
    // Each duplicate gets its own object, copied in the bucket.
    assert_eq!(v["objects_to_copy"], 5);
    assert_eq!(v["bytes_to_copy"], bytes_total - bytes_unique);
    assert_eq!(v["objects_already_present"], 0);
    assert_eq!(v["multipart_objects"], 1);
    // 20 MiB in 8 MiB parts: 3 parts; the 20 MiB duplicate: one copy.
    assert_eq!(
        v["requests"],
        json!({"put_object": 4, "create_multipart": 1, "upload_part": 3, "complete_multipart": 1,
               "copy_object": 5, "upload_part_copy": 0})
    );
    assert_eq!(v["skipped"]["not_media"]["count"], 1);
    assert_eq!(
        v["skipped"]["not_media"]["examples"][0]["path"],
        "docs/readme.txt"
    );
    assert_eq!(v["skipped"]["excluded"]["count"], 1);
    assert_eq!(v["failed"], json!([]));
    // Copies are requests and stored bytes too.
    let expected_cost = 14.0 / 1000.0 * 0.005 + bytes_total as f64 / (1u64 << 30) as f64 * 0.023;
    let cost = v["estimated_cost_usd"].as_f64().unwrap();
    assert!(
        (cost - expected_cost).abs() < 0.0001,
        "cost {cost}, expected {expected_cost}"
    );
    // What dedup read: head+tail (16 KiB each) of the four 50,000-byte files,
    // then the three shoes in full (bag.png differs in its head); the same
    // for the two promos. The hard-linked hat and the empty files: nothing.
    let partial = 2 * 16 * 1024;
    assert_eq!(
        v["bytes_hashed"],
        4 * partial + 3 * 50_000 + 2 * partial + 2 * 20 * MIB as u64
    );

    assert_eq!(t.objects(), before, "plan must not write to the bucket");
}

#[test]
fn plan_text_report_is_readable() {
    let tree = shop_tree();
    let t = target("plan-text");
    let out = mediashift(["plan".as_ref(), tree.path().as_os_str(), t.url().as_ref()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "media files",
        "duplicates (copied)",
        "to upload",
        "to copy in the bucket",
        "estimated cost",
        "Nothing was written",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        text.contains("docs/readme.txt"),
        "skipped examples are shown:\n{text}"
    );
}

#[test]
fn weird_names_are_planned_and_the_non_utf8_one_is_reported() {
    let tree = Tree::new();
    let long = format!("{}.jpg", "n".repeat(196));
    let names: Vec<&[u8]> = vec![
        b"a b.jpg",
        b"plus+sign.jpg",
        b"100%.jpg",
        b"hash#tag.jpg",
        b"what?.jpg",
        "caf\u{e9}.jpg".as_bytes(),
        "cafe\u{301}.jpg".as_bytes(),
        "\u{1F3AC} clip.mp4".as_bytes(),
        long.as_bytes(),
        b"UPPER.JPEG",
    ];
    for (i, name) in names.iter().enumerate() {
        tree.file(name, &bytes(100 + i as u64, 1000 + i));
    }
    tree.file("zero.png", b"");
    tree.file(b"bad\xff.jpg", b"latin-1 name");

    let t = target("weird-names");
    let (out, v) = plan(&tree, &t, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a file that cannot be migrated makes exit 1\n{}",
        stderr(&out)
    );
    assert_eq!(v["files_total"], 11);
    assert_eq!(v["files_unique"], 11);
    assert_eq!(v["objects_to_upload"], 11);
    assert_eq!(v["skipped"]["not_utf8"]["count"], 1);
    assert_eq!(v["problems"]["not_utf8"], json!(["bad\\xFF.jpg"]));
    assert_eq!(v["failed"].as_array().unwrap().len(), 1);
    assert_eq!(v["failed"][0]["path"], "bad\\xFF.jpg");
    assert!(v["failed"][0]["error"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(
        v["problems"]["normalization_collisions"],
        json!([["cafe\u{301}.jpg", "caf\u{e9}.jpg"]]),
        "grouped, in byte order"
    );
    assert_eq!(t.objects().len(), 0);
}

#[test]
fn names_differing_only_by_case_are_listed() {
    let tree = Tree::new();
    tree.file("img/Logo.png", b"1")
        .file("img/logo.PNG", b"22")
        .file("img/other.png", b"333");
    let t = target("case-collisions");
    let (out, v) = plan(&tree, &t, &[]);
    assert!(
        out.status.success(),
        "collisions are warnings, not failures\n{}",
        stderr(&out)
    );
    assert_eq!(
        v["problems"]["case_collisions"],
        json!([["img/Logo.png", "img/logo.PNG"]])
    );
}

#[test]
fn keys_over_1024_bytes_are_failures() {
    let tree = Tree::new();
    let name = format!("{}.jpg", "k".repeat(196));
    tree.file(&name, b"x").file("ok.jpg", b"y");
    let mut t = target("long-keys");
    t.prefix = format!("{}{}/", t.prefix, "p".repeat(900));
    let (out, v) = plan(&tree, &t, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["files_total"], 1);
    assert_eq!(v["problems"]["long_keys"][0]["path"], name);
    let err = v["failed"][0]["error"].as_str().unwrap();
    assert!(err.contains("1024"), "{err}");
}

#[test]
fn objects_already_in_the_bucket_are_recognised_and_conflicts_reported() {
    let tree = Tree::new();
    let (a, b, c, d) = (
        bytes(11, 3000),
        bytes(12, 3000),
        bytes(13, 3000),
        bytes(14, 3000),
    );
    tree.file("a.jpg", &a)
        .file("b.jpg", &b)
        .file("c.jpg", &c)
        .file("d.jpg", &d)
        .file("e.jpg", b"new");
    let t = target("already-present");
    let key = |n: &str| format!("{}{n}", t.prefix);
    t.put(&key("a.jpg"), &a, Some(&hex(&a))); // same, proven by sha256 metadata
    t.put(&key("b.jpg"), &b, None); // same, proven by the CRC64NVME checksum
    t.put(&key("c.jpg"), &bytes(99, 3000), None); // same size, other content
    t.put(&key("d.jpg"), b"short", None); // other size
    let before = t.objects();

    let (out, v) = plan(&tree, &t, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "conflicts need --overwrite\n{}",
        stderr(&out)
    );
    assert_eq!(v["objects_already_present"], 2);
    assert_eq!(v["bytes_already_present"], 6000);
    assert_eq!(v["objects_conflicting"], 2);
    assert_eq!(v["objects_to_upload"], 1);
    let conflicts: Vec<&str> = v["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(conflicts, ["c.jpg", "d.jpg"]);

    let (out, v) = plan(&tree, &t, &["--overwrite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_to_upload"], 3);
    assert_eq!(v["objects_already_present"], 2);
    assert_eq!(t.objects(), before, "plan must not write to the bucket");
}

#[test]
fn content_layout_keys_are_the_sha256() {
    let tree = Tree::new();
    let img = bytes(21, 5000);
    tree.file("x/one.JPG", &img)
        .file("y/two.jpg", &img)
        .file("z/three.png", &bytes(22, 10));
    let t = target("content-layout");
    let h = hex(&img);
    // The object this content would get, already there.
    t.put(
        &format!("{}{}/{}/{h}.jpg", t.prefix, &h[..2], &h[2..4]),
        &img,
        Some(&h),
    );
    let (out, v) = plan(&tree, &t, &["--key-layout", "content"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["key_layout"], "content");
    assert_eq!(v["files_unique"], 2);
    assert_eq!(v["objects_already_present"], 1);
    assert_eq!(v["objects_to_upload"], 1);
}

#[test]
fn symlinks_are_skipped_unless_followed_and_loops_are_reported() {
    let tree = Tree::new();
    tree.file("real/a.jpg", b"a");
    std::os::unix::fs::symlink(tree.join("real/a.jpg"), tree.join("link.jpg")).unwrap();
    std::os::unix::fs::symlink(tree.join("real"), tree.join("real/loop")).unwrap();
    let t = target("symlinks");

    let (out, v) = plan(&tree, &t, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["files_total"], 1);
    assert_eq!(v["skipped"]["symlink"]["count"], 2);

    let (out, v) = plan(&tree, &t, &["--follow-symlinks"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["files_total"], 2);
    assert_eq!(
        v["files_unique"], 1,
        "a followed link to a file already taken is a duplicate"
    );
    let loops = &v["skipped"]["symlink"];
    assert_eq!(loops["count"], 1);
    assert!(
        loops["examples"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("loop")
    );
}

fn assert_one_line_error(out: &std::process::Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err:?}");
    }
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
}

#[test]
fn a_missing_bucket_is_a_clear_error() {
    let tree = shop_tree();
    let out = mediashift([
        "plan".as_ref(),
        tree.path().as_os_str(),
        "s3://no-such-bucket-mediashift".as_ref(),
    ]);
    assert_one_line_error(&out, &["no-such-bucket-mediashift", "does not exist"]);
}

#[test]
fn wrong_credentials_are_a_clear_error() {
    let tree = shop_tree();
    let t = target("wrong-creds");
    let out = mediashift_env(
        ["plan".as_ref(), tree.path().as_os_str(), t.url().as_ref()],
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
    );
    assert_one_line_error(&out, &["refused", "AWS_SECRET_ACCESS_KEY"]);
    let secret = &crate::support::server().secret_key;
    assert!(
        !stderr(&out).contains(secret.as_str()),
        "credentials never appear in output"
    );
}

#[test]
fn an_unreachable_endpoint_fails_within_seconds() {
    let tree = Tree::new();
    tree.file("a.jpg", b"a");
    // A port nobody listens on: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let start = Instant::now();
    let out = mediashift([
        "plan".as_ref(),
        tree.path().as_os_str(),
        "s3://media".as_ref(),
        "--endpoint-url".as_ref(),
        format!("http://{closed}").as_ref(),
    ]);
    assert_one_line_error(&out, &["cannot reach", &closed.to_string()]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );

    // A listener that accepts connections but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let start = Instant::now();
    let out = mediashift([
        "plan".as_ref(),
        tree.path().as_os_str(),
        "s3://media".as_ref(),
        "--endpoint-url".as_ref(),
        format!("http://{addr}").as_ref(),
    ]);
    assert_one_line_error(&out, &["cannot reach", &addr.to_string()]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    drop(silent);
}

#[test]
fn bad_arguments_name_the_flag_or_path() {
    let tree = shop_tree();
    let t = target("bad-args");
    let src = tree.path().display().to_string();
    let url = t.url();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["plan", "/no/such/dir", &url],
            vec!["SOURCE_DIR", "/no/such/dir", "does not exist"],
        ),
        (
            vec!["plan", &src, "media/x"],
            vec!["media/x", "s3://BUCKET"],
        ),
        (
            vec!["plan", &src, &url, "--part-size", "1MiB"],
            vec!["--part-size", "5MiB"],
        ),
        (
            vec!["plan", &src, &url, "--part-size", "lots"],
            vec!["--part-size", "lots"],
        ),
        (
            vec!["plan", &src, &url, "--multipart-threshold", "6GiB"],
            vec!["--multipart-threshold"],
        ),
        (
            vec!["plan", &src, &url, "--exclude", "a["],
            vec!["--exclude", "a["],
        ),
        (
            vec!["plan", &src, &url, "--public-base-url", "cdn.example.com"],
            vec!["--public-base-url", "http"],
        ),
        (
            vec![
                "plan",
                &src,
                &url,
                "--public-base-url",
                "https://cdn.example.com/m?sig=1",
            ],
            vec!["--public-base-url", "query string"],
        ),
    ];
    for (args, needles) in cases {
        let out = mediashift(&args);
        assert_one_line_error(&out, &needles);
    }
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let tree = shop_tree();
    let t = target("closed-stdout");
    // The reader is gone before mediashift writes (`plan --json | head -c
    // 0`): every write to stdout fails with a broken pipe.
    let mut child = crate::support::spawn_mediashift(
        [
            "plan".to_string(),
            tree.path().display().to_string(),
            t.url(),
            "--json".into(),
        ],
        &[],
    );
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn bad_aws_settings_in_the_environment_or_a_profile_are_one_line_errors() {
    let tree = shop_tree();
    let t = target("bad-env");
    let src = tree.path().display().to_string();
    let url = t.url();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[default]\nregion = us-east-1\n\n[profile slow]\nmax_attempts = abc\n\n[profile shop]\nretry_mode = adaptive\n",
    )
    .unwrap();
    let cfg = config.path().display().to_string();
    let plan = &["plan", src.as_str(), url.as_str()][..];
    let with = |extra: &[&str]| -> Vec<String> {
        plan.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        // The SDK panics (exit 101) on these; mediashift names the variable.
        (
            with(&[]),
            vec![("AWS_MAX_ATTEMPTS", "abc")],
            vec!["AWS_MAX_ATTEMPTS", "abc", "1 to 100"],
        ),
        (
            with(&[]),
            vec![("AWS_RETRY_MODE", "banana")],
            vec!["AWS_RETRY_MODE", "banana", "standard"],
        ),
        (
            with(&["--profile", "slow"]),
            vec![("AWS_CONFIG_FILE", &cfg)],
            vec!["'slow'", "max_attempts = abc"],
        ),
        // A profile that does not exist is not silently replaced by the
        // credentials in the environment.
        (
            with(&["--profile", "doesnotexist"]),
            vec![("AWS_CONFIG_FILE", &cfg)],
            vec!["--profile 'doesnotexist'", "no such profile", "slow"],
        ),
        (
            with(&[]),
            vec![("AWS_CONFIG_FILE", &cfg), ("AWS_PROFILE", "nope")],
            vec!["AWS_PROFILE 'nope'", "no such profile"],
        ),
    ];
    for (args, env, needles) in cases {
        let out = mediashift_env(&args, &env);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        assert_one_line_error(&out, &needles);
    }
    // A profile that exists and is valid is used.
    let out = mediashift_env(
        with(&["--profile", "shop", "--json"]),
        &[("AWS_CONFIG_FILE", &cfg)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn plan_takes_every_migrate_option() {
    let tree = shop_tree();
    let t = target("plan-options");
    let maps = tempfile::tempdir().unwrap();
    let map_dir = maps.path().display().to_string();
    let (out, v) = plan(
        &tree,
        &t,
        &[
            "--map-dir",
            &map_dir,
            "--cache-control",
            "public, max-age=60",
            "--checksum",
            "sha256",
            "--max-memory",
            "64MiB",
            "--large-files",
            "2",
            "--storage-class",
            "STANDARD",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(v["command"], "plan");
    assert!(
        std::fs::read_dir(maps.path()).unwrap().next().is_none(),
        "plan writes nothing"
    );
}

#[test]
fn a_journal_that_is_not_a_database_is_one_line_saying_what_to_do() {
    let tree = shop_tree();
    let t = target("bad-journal");
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("journal.sqlite"), vec![b'x'; 4096]).unwrap();
    let st = state.path().display().to_string();
    let (src, url) = (tree.path().display().to_string(), t.url());
    let maps = state.path().join("maps").display().to_string();
    for cmd in [
        vec!["migrate", &src, &url, "--state", &st, "--map-dir", &maps],
        vec!["status", "--state", &st],
    ] {
        let out = mediashift(&cmd);
        assert_one_line_error(&out, &["journal.sqlite", "damaged", "move it aside"]);
    }
}

/// AWS CLI habits: `--exclude 'FOLDER/*'` reaches only the folder's own
/// files under our glob rules, so a warning names the pattern and the fix;
/// a selection with nothing in it is said, with exit 1, unless allowed.
#[test]
fn shallow_folder_patterns_warn_and_an_empty_selection_is_an_error() {
    let tree = Tree::new();
    tree.file("catalog/product/cache/a.jpg", &bytes(1, 100))
        .file("catalog/product/cache/1/b.jpg", &bytes(2, 100))
        .file("catalog/product/cache/1/2/c.jpg", &bytes(3, 100))
        .file("catalog/product/d.jpg", &bytes(4, 100))
        .file("notes.txt", b"not media");
    let t = target("shallow-patterns");
    let (out, v) = plan(&tree, &t, &["--exclude", "catalog/product/cache/*"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(v["files_total"], 3, "the documented rule still holds");
    let err = stderr(&out);
    assert!(
        err.contains("--exclude 'catalog/product/cache/*' matches only the files directly in catalog/product/cache/: 2 file(s) in its subfolders are still selected; use 'catalog/product/cache/**'"),
        "{err}"
    );
    let (out, v) = plan(&tree, &t, &["--exclude", "catalog/product/cache/**"]);
    assert_eq!(v["files_total"], 1);
    assert!(!stderr(&out).contains("matches only"), "{}", stderr(&out));

    let (out, _) = plan(&tree, &t, &["--include", "catalog/*", "--allow-empty"]);
    assert!(
        stderr(&out).contains("--include 'catalog/*' matches only the files directly in catalog/: 4 file(s) in its subfolders are not included"),
        "{}",
        stderr(&out)
    );

    // The AWS CLI's order-dependent filters do not apply: exclude wins.
    let raw = |tree: &Tree, extra: &[&str]| {
        let mut args = vec![
            "plan".to_string(),
            tree.path().display().to_string(),
            t.url(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        mediashift(&args)
    };
    let out = raw(&tree, &["--exclude", "*", "--include", "*.jpg"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing selected in")
            && stderr(&out).contains("5 file(s) seen, 5 excluded by the patterns")
            && stderr(&out).contains("--allow-empty"),
        "{}",
        stderr(&out)
    );
    let (out, v) = plan(
        &tree,
        &t,
        &["--exclude", "*", "--include", "*.jpg", "--allow-empty"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(v["files_total"], 0);

    let empty = Tree::new();
    let out = raw(&empty, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an empty SOURCE_DIR is most often a wrong path"
    );
    assert!(stderr(&out).contains("0 file(s) seen"), "{}", stderr(&out));
}
