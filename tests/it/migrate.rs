//! `mediashift migrate` against the real server, checked independently of
//! mediashift: object bytes, metadata, listings and multipart state come
//! from the S3 API directly; the maps are checked row by row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{
    Target, Tree, bytes, json as doc, mediashift, mediashift_env, runtime, s3, stderr, stdout,
    strict_path, target,
};

const MIB: usize = 1024 * 1024;

pub fn migrate_in(
    tree: &Tree,
    t: &Target,
    maps: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Output, Value) {
    let out = mediashift_env(migrate_args(tree, t, maps, extra), env);
    let v = doc(&out);
    (out, v)
}

/// `verify --json` of `tree` against `t`, with the journal `migrate_in`
/// keeps in `maps`.
pub fn verify_in(tree: &Tree, t: &Target, maps: &Path) -> std::process::Output {
    mediashift([
        "verify".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--state".to_string(),
        maps.join("state").display().to_string(),
        "--json".to_string(),
    ])
}

/// The arguments of a `migrate --json` of `tree` to `t`, with its maps and
/// journal in `maps`.
pub fn migrate_args(tree: &Tree, t: &Target, maps: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "migrate".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--json".to_string(),
        "--map-dir".to_string(),
        maps.display().to_string(),
        "--source-base-url".to_string(),
        "/media/".to_string(),
        // The journal of this test's runs lives beside its maps.
        "--state".to_string(),
        maps.join("state").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads an object's bytes and headers straight from the server.
pub fn get(t: &Target, key: &str) -> (Vec<u8>, String, BTreeMap<String, String>) {
    runtime().block_on(async {
        let o = s3()
            .get_object()
            .bucket(&t.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
        let ct = o.content_type().unwrap_or_default().to_string();
        let meta: BTreeMap<String, String> = o
            .metadata()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let body = o
            .body
            .collect()
            .await
            .expect("read body")
            .into_bytes()
            .to_vec();
        (body, ct, meta)
    })
}

/// `data`'s CRC in `algorithm`, base64 as S3 gives it.
fn crc_base64(algorithm: crc_fast::CrcAlgorithm, data: &[u8]) -> String {
    use base64::Engine as _;
    let mut d = crc_fast::Digest::new(algorithm);
    d.update(data);
    let v = d.finalize();
    let bytes = if algorithm == crc_fast::CrcAlgorithm::Crc64Nvme {
        v.to_be_bytes().to_vec()
    } else {
        (v as u32).to_be_bytes().to_vec()
    };
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Checks that an object carries a whole-object checksum of `data`: a
/// full-object CRC64NVME or CRC32C equal to the file's, or a composite
/// SHA-256 over its parts (`…-N`, which needs the part size to recompute).
pub fn assert_whole_checksum(t: &Target, key: &str, data: &[u8]) {
    let o = runtime().block_on(async {
        s3().head_object()
            .bucket(&t.bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap_or_else(|e| panic!("HEAD {key}: {e:?}"))
    });
    let kind = o.checksum_type().map(|k| k.as_str().to_string());
    if let Some(c) = o.checksum_crc64_nvme() {
        assert_eq!(
            c,
            crc_base64(crc_fast::CrcAlgorithm::Crc64Nvme, data),
            "{key}"
        );
        assert_eq!(kind.as_deref(), Some("FULL_OBJECT"), "{key}");
    } else if let Some(c) = o.checksum_crc32_c() {
        assert_eq!(
            c,
            crc_base64(crc_fast::CrcAlgorithm::Crc32Iscsi, data),
            "{key}"
        );
    } else if let Some(c) = o.checksum_sha256() {
        assert!(c.rsplit_once('-').is_some(), "{key}: composite SHA-256 {c}");
    } else {
        panic!("{key}: no sha256 metadata and no whole-object checksum: {o:?}");
    }
}

pub fn incomplete_uploads(t: &Target) -> usize {
    upload_ids(t).len()
}

/// The ids of the multipart uploads in progress under the target.
pub fn upload_ids(t: &Target) -> Vec<String> {
    runtime().block_on(async {
        let out = s3()
            .list_multipart_uploads()
            .bucket(&t.bucket)
            .prefix(&t.prefix)
            .send()
            .await
            .expect("list uploads");
        out.uploads()
            .iter()
            .filter_map(|u| u.upload_id().map(str::to_string))
            .collect()
    })
}

/// Rows of map.csv as field maps (the test keys have no commas or quotes
/// except where noted, so a simple split is not enough: parse RFC 4180).
pub fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("map.csv");
    let mut records = parse_csv(&text).into_iter();
    let header = records.next().expect("header");
    assert_eq!(
        header.join(","),
        "old_url,new_url,key,sha256,size,content_type,duplicate_of"
    );
    records
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

/// The weird names of the foundation issue, plus large and empty files.
pub fn weird_tree() -> (Tree, BTreeMap<String, Vec<u8>>) {
    let tree = Tree::new();
    let mut files = BTreeMap::new();
    let long = format!("deep/{}.jpg", "n".repeat(196));
    let shoe = bytes(1, 40_000);
    let entries: Vec<(String, Vec<u8>)> = vec![
        ("catalog/product/a/b/shoe.jpg".into(), shoe.clone()),
        ("catalog/product/c/d/shoe copy.jpg".into(), shoe),
        ("a b.jpg".into(), bytes(2, 1000)),
        ("plus+sign.jpg".into(), bytes(3, 1001)),
        ("100%.jpg".into(), bytes(4, 1002)),
        ("hash#tag.jpg".into(), bytes(5, 1003)),
        ("what?.jpg".into(), bytes(6, 1004)),
        ("caf\u{e9}.jpg".into(), bytes(7, 1005)),
        ("cafe\u{301}.jpg".into(), bytes(8, 1006)),
        ("\u{1F3AC} clip.mp4".into(), bytes(9, 1007)),
        (long, bytes(10, 1008)),
        ("UPPER.JPEG".into(), bytes(11, 1009)),
        ("photo.avif".into(), bytes(12, 1010)),
        ("zero.png".into(), Vec::new()),
        // Multipart: 21 MiB in 5 MiB parts (5 parts), and exactly at the
        // 8 MiB threshold (2 parts).
        ("video/big.mp4".into(), bytes(13, 21 * MIB + 17)),
        ("video/at-threshold.webm".into(), bytes(14, 8 * MIB)),
    ];
    for (name, data) in entries {
        tree.file(&name, &data);
        files.insert(name, data);
    }
    tree.file(b"bad\xff.jpg", b"latin-1 name");
    (tree, files)
}

/// The Content-Type a file of this name must be stored with, from the
/// registered media types (independent of mediashift's own table).
fn expected_content_type(rel: &str) -> &'static str {
    let ext = rel
        .rsplit_once('.')
        .map_or("", |(_, e)| e)
        .to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        other => panic!("no expected content type for .{other} in the tests"),
    }
}

/// [`weird_tree`] migrated into a fresh target (the non-UTF-8 name is the
/// one failure): the tree, its files, the target and the map directory.
pub fn migrated_weird_tree(
    name: &str,
) -> (Tree, BTreeMap<String, Vec<u8>>, Target, tempfile::TempDir) {
    let (tree, files) = weird_tree();
    let t = target(name);
    let maps = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, maps.path(), &MULTIPART_FLAGS, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "only the non-UTF-8 name fails\n{}",
        stderr(&out)
    );
    assert_eq!(v["failed"].as_array().unwrap().len(), 1, "{v}");
    (tree, files, t, maps)
}

pub const MULTIPART_FLAGS: [&str; 4] = ["--multipart-threshold", "8MiB", "--part-size", "5MiB"];

/// Checks the bucket and the maps against the files, independently.
pub fn check_migrated(
    t: &Target,
    maps: &Path,
    files: &BTreeMap<String, Vec<u8>>,
) -> Vec<BTreeMap<String, String>> {
    let rows = csv_rows(&maps.join("map.csv"));
    let by_path: BTreeMap<String, &BTreeMap<String, String>> = rows
        .iter()
        .map(|r| {
            let rel = r["old_url"]
                .strip_prefix("/media/")
                .expect("old_url under /media/");
            (
                percent_encoding::percent_decode_str(rel)
                    .decode_utf8()
                    .expect("utf-8")
                    .into_owned(),
                r,
            )
        })
        .collect();
    assert_eq!(
        by_path.keys().cloned().collect::<BTreeSet<_>>(),
        files.keys().cloned().collect::<BTreeSet<_>>(),
        "one map row per file"
    );

    let mut keys = BTreeSet::new();
    for (rel, data) in files {
        let row = by_path[rel];
        let key = &row["key"];
        keys.insert(key.clone());
        assert_eq!(row["sha256"], hex(data), "{rel}");
        assert_eq!(row["size"], data.len().to_string(), "{rel}");
        let (body, content_type, meta) = get(t, key);
        assert!(
            body == *data,
            "object {key} does not hold the bytes of {rel}"
        );
        assert_eq!(content_type, row["content_type"], "{rel}");
        let expected_ct = expected_content_type(rel);
        assert_eq!(content_type, expected_ct, "{rel}");
        match meta.get("sha256") {
            Some(sha) => assert_eq!(sha, &hex(data), "{rel}"),
            // A large file hashed while it was sent (nothing hashed it
            // before): its proof is the server's whole-object checksum.
            None => assert_whole_checksum(t, key, data),
        }
        assert!(
            row["new_url"].ends_with(&strict_path(key)),
            "{rel}: {}",
            row["new_url"]
        );
    }
    let listed: BTreeSet<String> = t.objects().into_keys().collect();
    assert_eq!(listed, keys, "exactly the expected objects, nothing extra");
    assert_eq!(
        incomplete_uploads(t),
        0,
        "no incomplete multipart uploads left"
    );
    rows
}

#[test]
fn migrates_everything_once_and_proves_it() {
    let (tree, files) = weird_tree();
    let t = target("migrate-e2e");
    let maps = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, maps.path(), &MULTIPART_FLAGS, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the non-UTF-8 file makes exit 1\n{}",
        stderr(&out)
    );
    assert_eq!(v["failed"].as_array().unwrap().len(), 1, "{}", v["failed"]);
    assert_eq!(v["failed"][0]["path"], "bad\\xFF.jpg");

    let unique = files.len() as u64 - 1;
    assert_eq!(v["files_total"], files.len());
    assert_eq!(v["duplicate_files"], 1);
    assert_eq!(v["objects_uploaded"], unique);
    let unique_bytes: u64 = files
        .iter()
        .filter(|(k, _)| !k.contains("shoe copy"))
        .map(|(_, d)| d.len() as u64)
        .sum();
    assert_eq!(v["bytes_uploaded"], unique_bytes);
    assert_eq!(v["objects_skipped_existing"], 0);
    assert_eq!(v["multipart_objects"], 2);
    assert_eq!(v["requests"]["upload_part"], 5 + 2);
    // Every upload proven by the checksum in the server's answer; the
    // copy by its answer's (Garage, AWS) or its HEAD's (SeaweedFS).
    let proven = |how: &str| v["verified"][how].as_u64().unwrap_or(0);
    assert_eq!(
        proven("checksum_in_response") + proven("checksum_in_head"),
        unique + 1,
        "the server returns checksums: {}",
        v["verified"]
    );
    assert!(
        proven("checksum_in_response") >= unique,
        "{}",
        v["verified"]
    );

    let rows = check_migrated(&t, maps.path(), &files);
    let shoe = rows
        .iter()
        .find(|r| r["old_url"].ends_with("/shoe.jpg"))
        .unwrap();
    let copy = rows
        .iter()
        .find(|r| r["old_url"].ends_with("/shoe%20copy.jpg"))
        .unwrap();
    // Every file at its own key (BASE + its path serves it after a base
    // switch): the duplicate's object is a copy of the first file's,
    // made in the bucket, so its bytes were not sent again.
    assert_eq!(
        copy["key"],
        format!("{}catalog/product/c/d/shoe copy.jpg", t.prefix)
    );
    assert_ne!(copy["key"], shoe["key"]);
    assert_eq!(copy["duplicate_of"], "catalog/product/a/b/shoe.jpg");
    assert_eq!(shoe["duplicate_of"], "");
    assert_eq!(v["objects_copied"], 1);
    assert_eq!(
        v["bytes_copied"],
        files["catalog/product/c/d/shoe copy.jpg"].len()
    );
    assert_eq!(v["requests"]["copy_object"], 1);

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(maps.path().join("map.json")).unwrap())
            .unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["entries"].as_array().unwrap().len(), files.len());
}

#[test]
fn a_second_run_uploads_nothing_and_a_changed_file_goes_up_again() {
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 5000))
        .file("b.png", &bytes(2, 6000))
        .file("v.mp4", &bytes(3, 9 * MIB));
    let t = target("migrate-rerun");
    let maps = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, maps.path(), &MULTIPART_FLAGS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 3);

    let (out, v) = migrate_in(&tree, &t, maps.path(), &MULTIPART_FLAGS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 0);
    assert_eq!(v["objects_skipped_existing"], 3);
    assert_eq!(v["requests"]["put_object"], 0);

    // Same size, other bytes: the earlier object is ours and stale.
    let changed = bytes(4, 5000);
    tree.file("a.jpg", &changed);
    let (out, v) = migrate_in(&tree, &t, maps.path(), &MULTIPART_FLAGS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 1);
    assert_eq!(v["objects_changed_since_upload"], 1);
    assert_eq!(get(&t, &format!("{}a.jpg", t.prefix)).0, changed);
    let files: BTreeMap<String, Vec<u8>> = ["a.jpg", "b.png", "v.mp4"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(tree.join(n)).unwrap()))
        .collect();
    check_migrated(&t, maps.path(), &files);
}

#[test]
fn sha256_and_crc32c_checksums_work() {
    for (alg, multipart_suffix) in [("sha256", true), ("crc32c", false)] {
        let tree = Tree::new();
        tree.file("small.jpg", &bytes(1, 7000))
            .file("video/big.mp4", &bytes(2, 12 * MIB + 5));
        let t = target(&format!("checksum-{alg}"));
        let maps = tempfile::tempdir().unwrap();
        let mut flags = MULTIPART_FLAGS.to_vec();
        flags.extend(["--checksum", alg]);
        let (out, v) = migrate_in(&tree, &t, maps.path(), &flags, &[]);
        assert!(out.status.success(), "{alg}: {}", stderr(&out));
        assert_eq!(v["objects_uploaded"], 2, "{alg}");
        assert_eq!(
            v["verified"]["checksum_in_response"], 2,
            "{alg}: {}",
            v["verified"]
        );
        let files: BTreeMap<String, Vec<u8>> = ["small.jpg", "video/big.mp4"]
            .iter()
            .map(|n| (n.to_string(), std::fs::read(tree.join(n)).unwrap()))
            .collect();
        check_migrated(&t, maps.path(), &files);
        let head = runtime().block_on(async {
            s3().head_object()
                .bucket(&t.bucket)
                .key(format!("{}video/big.mp4", t.prefix))
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
                .await
                .unwrap()
        });
        if multipart_suffix {
            let c = head.checksum_sha256().expect("sha256 checksum stored");
            assert!(c.ends_with("-3"), "composite over 3 parts: {c}");
        } else {
            let c = head.checksum_crc32_c().expect("crc32c checksum stored");
            assert!(!c.contains('-'), "full-object: {c}");
        }
    }
}

#[test]
fn a_body_the_server_rejects_is_a_failure_and_the_rest_carries_on() {
    let tree = Tree::new();
    tree.file("ok.jpg", &bytes(1, 3000))
        .file("bad-small.jpg", &bytes(2, 3000))
        .file("video/bad-big.mp4", &bytes(3, 11 * MIB));
    let t = target("corrupt");
    let maps = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(
        &tree,
        &t,
        maps.path(),
        &MULTIPART_FLAGS,
        &[("MEDIASHIFT_TEST_CORRUPT_KEY", "bad-")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 1);
    let failed: BTreeMap<&str, &str> = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["error"].as_str().unwrap()))
        .collect();
    assert_eq!(
        failed.keys().copied().collect::<Vec<_>>(),
        ["bad-small.jpg", "video/bad-big.mp4"]
    );
    for (path, err) in &failed {
        assert!(
            err.contains("BadDigest") || err.contains("InvalidDigest"),
            "{path}: {err}"
        );
    }
    assert_eq!(
        t.objects().into_keys().collect::<Vec<_>>(),
        [format!("{}ok.jpg", t.prefix)]
    );
    assert_eq!(
        incomplete_uploads(&t),
        0,
        "the failed multipart upload was aborted"
    );
    let rows = csv_rows(&maps.path().join("map.csv"));
    assert_eq!(rows.len(), 1, "only what is in place is mapped");
}

#[test]
fn other_content_under_a_key_is_kept_unless_overwrite() {
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 3000))
        .file("b.jpg", &bytes(2, 3000));
    let t = target("conflict");
    let key = format!("{}a.jpg", t.prefix);
    t.put(&key, b"someone else's picture", None);
    let maps = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, maps.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(v["conflicts"][0]["path"], "a.jpg");
    assert_eq!(v["objects_uploaded"], 1);
    assert_eq!(get(&t, &key).0, b"someone else's picture");

    let (out, v) = migrate_in(&tree, &t, maps.path(), &["--overwrite"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 1);
    assert_eq!(get(&t, &key).0, bytes(1, 3000));
}

#[test]
fn dry_run_prints_exactly_the_plan() {
    let (tree, _) = weird_tree();
    let t = target("dry-run");
    let maps = tempfile::tempdir().unwrap();
    let src = tree.path().display().to_string();
    let url = t.url();
    let plan = mediashift(["plan", &src, &url, "--json"]);
    let dry = mediashift([
        "migrate",
        &src,
        &url,
        "--json",
        "--dry-run",
        "--map-dir",
        &maps.path().display().to_string(),
    ]);
    assert_eq!(dry.status.code(), plan.status.code());
    assert_eq!(
        String::from_utf8_lossy(&dry.stdout),
        String::from_utf8_lossy(&plan.stdout)
    );
    let text_plan = mediashift(["plan", &src, &url]);
    let text_dry = mediashift(["migrate", &src, &url, "--dry-run"]);
    assert_eq!(text_dry.stdout, text_plan.stdout);
    // The AWS CLI's spelling and rclone's short flag mean the same.
    for spelling in ["--dryrun", "-n"] {
        let other = mediashift(["migrate", &src, &url, spelling]);
        assert_eq!(other.stdout, text_plan.stdout, "{spelling}");
    }
    assert!(t.objects().is_empty(), "a dry run writes nothing");
    assert_eq!(
        std::fs::read_dir(maps.path()).unwrap().count(),
        0,
        "nor maps"
    );
}

#[test]
fn object_settings_are_stored() {
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 100))
        .file("v.mp4", &bytes(2, 9 * MIB))
        .file("p.heic", &bytes(3, 200));
    let t = target("object-settings");
    let maps = tempfile::tempdir().unwrap();
    let mut flags = MULTIPART_FLAGS.to_vec();
    flags.extend([
        "--cache-control",
        "public, max-age=31536000, immutable",
        "--metadata",
        "Team=shop-ops",
        "--metadata",
        "origin=web1",
        "--content-disposition",
        "inline",
        "--content-type",
        "heic=image/heif",
        "--content-type",
        ".MP4=video/x-test",
    ]);
    let (out, _) = migrate_in(&tree, &t, maps.path(), &flags, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (key, ty) in [
        ("a.jpg", "image/jpeg"),
        ("v.mp4", "video/x-test"),
        ("p.heic", "image/heif"),
    ] {
        let head = runtime().block_on(async {
            s3().head_object()
                .bucket(&t.bucket)
                .key(format!("{}{key}", t.prefix))
                .send()
                .await
                .unwrap()
        });
        assert_eq!(
            head.cache_control(),
            Some("public, max-age=31536000, immutable"),
            "{key}"
        );
        assert_eq!(head.content_disposition(), Some("inline"), "{key}");
        assert_eq!(head.content_type(), Some(ty), "{key}");
        let meta = head.metadata().unwrap();
        assert_eq!(meta.get("source-path").map(String::as_str), Some(key));
        assert_eq!(meta.get("team").map(String::as_str), Some("shop-ops"));
        assert_eq!(meta.get("origin").map(String::as_str), Some("web1"));
    }
    // The map says what the object says.
    let map: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(maps.path().join("map.json")).unwrap())
            .unwrap();
    let heic = map["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"].as_str().is_some_and(|k| k.ends_with("p.heic")))
        .unwrap();
    assert_eq!(heic["content_type"], "image/heif");
    // Bad values are said clearly, naming the flag.
    for (flag, value, says) in [
        ("--metadata", "sha256=x", "mediashift's own"),
        ("--metadata", "novalue", "KEY=VALUE"),
        ("--content-type", "heic", "EXT=TYPE"),
        ("--content-disposition", " ", "--content-disposition"),
    ] {
        let src = tree.path().display().to_string();
        let out = mediashift(["plan", &src, &t.url(), flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(
            stderr(&out).contains(says),
            "{flag} {value}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn bodies_are_signed_only_when_asked_on_a_loopback_endpoint() {
    let tree = Tree::new();
    let small = bytes(1, 7000);
    tree.file("small.jpg", &small)
        .file("video/big.mp4", &bytes(2, 12 * MIB + 5));
    let files: BTreeMap<String, Vec<u8>> = ["small.jpg", "video/big.mp4"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(tree.join(n)).unwrap()))
        .collect();
    for sign in [false, true] {
        let proxy = crate::support::Proxy::start();
        let t = target(&format!("signing-{sign}"));
        let maps = tempfile::tempdir().unwrap();
        let mut flags = MULTIPART_FLAGS.to_vec();
        flags.extend(["--endpoint-url", &proxy.endpoint]);
        if sign {
            flags.push("--sign-payload");
        }
        let (out, v) = migrate_in(&tree, &t, maps.path(), &flags, &[]);
        assert!(out.status.success(), "sign {sign}: {}", stderr(&out));
        assert_eq!(v["objects_uploaded"], 2);
        check_migrated(&t, maps.path(), &files);

        // One PutObject and three UploadParts carry file data.
        let puts: Vec<String> = proxy
            .payload_hashes()
            .into_iter()
            .filter(|(m, _)| m == "PUT")
            .map(|(_, h)| h)
            .collect();
        assert_eq!(puts.len(), 4, "sign {sign}: {puts:?}");
        if sign {
            assert!(
                puts.iter()
                    .all(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())),
                "{puts:?}"
            );
            assert!(puts.contains(&hex(&small)), "the small file's own SHA-256");
        } else {
            assert!(puts.iter().all(|h| h == "UNSIGNED-PAYLOAD"), "{puts:?}");
        }
    }
}

/// `-q` for cron and systemd: nothing at all on success; on failure only
/// errors, on stderr. `--json` still prints the document it was asked for.
#[test]
fn quiet_prints_nothing_on_success_and_only_errors_on_failure() {
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 3000))
        .file("b/c.png", &bytes(2, 4000));
    let t = target("quiet");
    let state = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "migrate".to_string(),
            tree.path().display().to_string(),
            t.url(),
            "--map-dir".into(),
            state.path().join("maps").display().to_string(),
            "--state".into(),
            state.path().join("state").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        mediashift_env(&args, env)
    };
    let out = run(&["-q", "--dry-run"], &[]);
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (Some(0), String::new(), String::new())
    );
    tree.file("d.jpg", &bytes(3, 5000));
    let out = run(&["-q"], &[("MEDIASHIFT_TEST_READ_ERROR", "d.jpg@0")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "no report with -q");
    assert!(
        stderr(&out).contains("finished with failures") && !stderr(&out).contains("journal"),
        "{}",
        stderr(&out)
    );
    let out = run(&["-q"], &[]);
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (Some(0), String::new(), String::new())
    );
    let out = run(&["-q", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        doc(&out)["objects_uploaded"],
        0,
        "--json is printed even with -q"
    );
    assert_eq!(stderr(&out), "");
    // Without -q the same run talks.
    let out = run(&[], &[]);
    assert!(!stdout(&out).is_empty() && stderr(&out).contains("journal"));
}

/// A log written to a file or a pipe (cron, systemd, `2>run.log`) carries
/// no colour codes.
#[test]
fn logs_off_a_terminal_carry_no_colour_codes() {
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 3000));
    let t = target("no-colour");
    let maps = tempfile::tempdir().unwrap();
    let (out, _) = migrate_in(
        &tree,
        &t,
        maps.path(),
        &[],
        &[("MEDIASHIFT_TEST_READ_ERROR", "a.jpg@0")],
    );
    let err = stderr(&out);
    // The read hook logs a warning: there is a log line to look at.
    assert!(err.contains("test hook: read error"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes in {err:?}");
}

/// A file name holding an escape sequence is printed escaped, in the
/// report, the log and the failure list alike: it cannot recolour or
/// rewrite the terminal of whoever reads the output.
#[test]
fn an_escape_sequence_in_a_file_name_is_printed_escaped() {
    let tree = Tree::new();
    tree.file("evil\u{1b}[31mred.jpg", &bytes(1, 3000))
        .file("fine.jpg", &bytes(2, 3000));
    let t = target("escape-name");
    let maps = tempfile::tempdir().unwrap();
    let args = vec![
        "migrate".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--map-dir".into(),
        maps.path().display().to_string(),
        "--state".into(),
        maps.path().join("state").display().to_string(),
    ];
    let out = mediashift_env(&args, &[("MEDIASHIFT_TEST_READ_ERROR", "evil@0")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for (what, text) in [("stdout", stdout(&out)), ("stderr", stderr(&out))] {
        assert!(!text.contains('\u{1b}'), "{what}: {text:?}");
        assert!(
            text.contains("evil\\u{1b}[31mred.jpg"),
            "{what} names the file, escaped: {text}"
        );
    }
}

/// `--report FILE`: the run's report and one row per file, in JSON and in
/// FILE.csv, including the file that failed and how each object was proven.
#[test]
fn the_report_file_has_a_row_per_file_with_its_outcome_and_proof() {
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 3000))
        .file("copy/a.jpg", &bytes(1, 3000))
        .file("b, \"odd\".png", &bytes(2, 4000))
        .file("broken.jpg", &bytes(3, 5000));
    let t = target("report-file");
    let maps = tempfile::tempdir().unwrap();
    let report = maps.path().join("audit/run.json");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    let r = report.display().to_string();
    let (out, v) = migrate_in(
        &tree,
        &t,
        maps.path(),
        &["--report", &r],
        &[("MEDIASHIFT_TEST_READ_ERROR", "broken.jpg@0")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let audit: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(audit["summary"]["objects_uploaded"], v["objects_uploaded"]);
    let rows: BTreeMap<String, Value> = audit["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["path"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    assert_eq!(rows.len(), 4, "{audit}");
    assert_eq!(rows["a.jpg"]["outcome"], "uploaded");
    assert_eq!(rows["a.jpg"]["verification"], "checksum_in_response");
    assert_eq!(rows["a.jpg"]["bytes"], 3000);
    assert_eq!(rows["copy/a.jpg"]["outcome"], "copied");
    assert_eq!(rows["copy/a.jpg"]["verification"], "checksum_in_head");
    assert_ne!(rows["copy/a.jpg"]["key"], rows["a.jpg"]["key"]);
    assert_eq!(rows["broken.jpg"]["outcome"], "failed");
    assert!(
        rows["broken.jpg"]["error"]
            .as_str()
            .unwrap()
            .contains("Input/output error"),
        "{}",
        rows["broken.jpg"]
    );
    let csv = std::fs::read_to_string(format!("{r}.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("path,key,outcome,verification,bytes,error\n"));
    assert!(csv.contains("\"b, \"\"odd\"\".png\","), "{csv}");
    // A second run: everything already there, the failure fixed.
    let (out, _) = migrate_in(&tree, &t, maps.path(), &["--report", &r], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let audit: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let outcome = |p: &str| {
        audit["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == p)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome("a.jpg"), "already_present");
    assert_eq!(outcome("broken.jpg"), "uploaded");
    // A report that cannot be written is found before anything is uploaded.
    std::fs::write(maps.path().join("a-file"), b"").unwrap();
    let nowhere = maps.path().join("a-file/run.json").display().to_string();
    tree.file("new.jpg", &bytes(4, 1000));
    let out = mediashift(migrate_args(
        &tree,
        &t,
        maps.path(),
        &["--report", &nowhere],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--report"), "{}", stderr(&out));
    assert!(!t.objects().keys().any(|k| k.ends_with("new.jpg")));
}

/// An endpoint set only in the profile's `services` section: requests go
/// there, and the report and the maps name it (not AWS's default).
#[test]
fn an_endpoint_from_the_profiles_services_section_is_the_one_reported_and_mapped() {
    let s = crate::support::server();
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 3000));
    let t = target("services-endpoint");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile shop]\nregion = {}\nservices = local-s3\n\n[services local-s3]\ns3 =\n  endpoint_url = {}\n",
            s.region, s.endpoint
        ),
    )
    .unwrap();
    let maps = dir.path().join("maps");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediashift"))
        .args([
            "migrate",
            &tree.path().display().to_string(),
            &t.url(),
            "--json",
        ])
        .args([
            "--profile",
            "shop",
            "--map-dir",
            &maps.display().to_string(),
        ])
        .args(["--state", &dir.path().join("state").display().to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_ACCESS_KEY_ID", &s.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &s.secret_key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = doc(&out);
    let endpoint = s.endpoint.trim_end_matches('/');
    assert_eq!(v["endpoint"], endpoint, "{v}");
    let map = std::fs::read_to_string(maps.join("map.csv")).unwrap();
    assert!(
        map.contains(&format!("{endpoint}/{}/a.jpg", t.bucket)),
        "the map points at the server the objects went to: {map}"
    );
    assert!(!map.contains("amazonaws.com"), "{map}");
    assert!(t.objects().contains_key("a.jpg"));
}

#[test]
fn a_file_whose_size_is_unique_is_read_once() {
    // No two sizes alike: dedup reads nothing, and each file, the two
    // multipart ones included, is read once while it is sent.
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(3, 7001))
        .file("b.png", &bytes(4, 300_002))
        .file("video/big.mp4", &bytes(5, 21 * MIB + 3))
        .file("video/other.mp4", &bytes(6, 9 * MIB + 1));
    let t = target("read-once");
    let maps = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, maps.path(), &MULTIPART_FLAGS, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let uploaded = v["bytes_uploaded"].as_u64().unwrap();
    assert_eq!(
        uploaded,
        7001 + 300_002 + 21 * MIB as u64 + 3 + 9 * MIB as u64 + 1
    );
    assert_eq!(v["bytes_read"], uploaded, "{v}");
    assert_eq!(v["read_per_uploaded_byte"], 1.0);
    let rchar = v["process_io"]["rchar"].as_u64().expect("Linux counters");
    assert!(rchar >= uploaded, "rchar {rchar} counts at least the media");
    let files: BTreeMap<String, Vec<u8>> = ["a.jpg", "b.png", "video/big.mp4", "video/other.mp4"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(tree.join(n)).unwrap()))
        .collect();
    check_migrated(&t, maps.path(), &files);
}
