//! `mediashift offload` and `mediashift restore`: files leave the web
//! server's disk only when their object is proven again at that moment, are
//! never lost (a kill at any point, a quarantine on another file system),
//! come back exactly as they were (bytes, mtime, mode), and a real nginx
//! and Apache, configured with the README's snippets, serve each old URL
//! from disk while the file is there and redirect it once it is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::migrate::{csv_rows, hex};
use crate::support::web::{
    WebServer, apache, free_port, nginx_http_prelude, nginx_in, nginx_main, readable,
};
use crate::support::{
    ChecksumAlgorithm, SmallDisk, Target, bytes, json as doc, mediashift, mediashift_env,
    signed_get, stderr, stdout, target,
};

/// One shop: its document root `www/` with the media in `www/media/`
/// (served at `/media/`), the journal, the maps and a quarantine beside
/// it, and a bucket of its own.
struct Shop {
    dir: tempfile::TempDir,
    target: Target,
    files: BTreeMap<String, Vec<u8>>,
}

impl Shop {
    fn new(name: &str, files: &[(&str, Vec<u8>)]) -> Self {
        let shop = Self {
            dir: tempfile::Builder::new()
                .prefix("mediashift-offload-")
                .tempdir()
                .unwrap(),
            target: target(name),
            files: files
                .iter()
                .map(|(n, d)| (n.to_string(), d.clone()))
                .collect(),
        };
        std::fs::create_dir_all(shop.source()).unwrap();
        for (rel, data) in &shop.files {
            shop.write(rel, data);
        }
        shop
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    fn source(&self) -> PathBuf {
        self.root().join("media")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn maps(&self) -> PathBuf {
        self.dir.path().join("maps")
    }

    fn quarantine(&self) -> PathBuf {
        self.dir.path().join("quarantine")
    }

    fn src(&self) -> String {
        self.source().display().to_string()
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.target.prefix)
    }

    fn write(&self, rel: &str, data: &[u8]) {
        let p = self.source().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }

    fn migrate(&self) -> Value {
        let out = mediashift([
            "migrate",
            &self.src(),
            &self.target.url(),
            "--json",
            "--no-progress",
            "--state",
            &self.state().display().to_string(),
            "--map-dir",
            &self.maps().display().to_string(),
            "--source-base-url",
            "/media/",
        ]);
        assert!(out.status.success(), "migrate: {}", stderr(&out));
        doc(&out)
    }

    fn offload_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "offload".to_string(),
            self.src(),
            self.target.url(),
            "--state".into(),
            self.state().display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// `COMMAND --json` with `before` then `extra`, as a document.
    fn json(&self, mut args: Vec<String>, before: &[&str], extra: &[&str]) -> (Output, Value) {
        args.push("--json".into());
        args.extend(before.iter().chain(extra).map(|s| s.to_string()));
        let out = mediashift(args);
        let v = doc(&out);
        (out, v)
    }

    fn quarantine_flag(&self) -> [String; 2] {
        [
            "--quarantine".into(),
            self.quarantine().display().to_string(),
        ]
    }

    /// `offload --json` with `extra`.
    fn offload(&self, extra: &[&str]) -> (Output, Value) {
        self.json(self.offload_args(&[]), &[], extra)
    }

    /// `offload --quarantine <the shop's quarantine> --json`.
    fn offload_q(&self, extra: &[&str]) -> (Output, Value) {
        let q = self.quarantine_flag();
        self.json(self.offload_args(&[]), &[&q[0], &q[1]], extra)
    }

    fn restore_args(&self) -> Vec<String> {
        vec![
            "restore".to_string(),
            self.src(),
            "--state".into(),
            self.state().display().to_string(),
        ]
    }

    /// `restore --json` with `extra`.
    fn restore(&self, extra: &[&str]) -> (Output, Value) {
        self.json(self.restore_args(), &[], extra)
    }

    /// `restore --quarantine <the shop's quarantine> --json`.
    fn restore_q(&self, extra: &[&str]) -> (Output, Value) {
        let q = self.quarantine_flag();
        self.json(self.restore_args(), &[&q[0], &q[1]], extra)
    }

    /// `restore --from <the bucket> --json`.
    fn restore_from(&self, extra: &[&str]) -> (Output, Value) {
        self.json(self.restore_args(), &["--from", &self.target.url()], extra)
    }

    fn status(&self) -> Value {
        let out = mediashift([
            "status",
            "--json",
            "--state",
            &self.state().display().to_string(),
        ]);
        assert!(out.status.success(), "status: {}", stderr(&out));
        doc(&out)
    }

    fn delete_object(&self, rel: &str) {
        self.target.delete(&self.key(rel));
    }

    fn total_bytes(&self) -> u64 {
        self.files.values().map(|d| d.len() as u64).sum()
    }
}

/// A file as `restore` must put it back.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    data: Vec<u8>,
    mtime: (i64, i64),
    mode: u32,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes sha256 {}…, mtime {}.{:09}, mode {:o}",
            self.data.len(),
            &hex(&self.data)[..12],
            self.mtime.0,
            self.mtime.1,
            self.mode
        )
    }
}

/// Every regular file under `dir` (relative path → bytes, mtime, mode);
/// empty if `dir` does not exist.
fn snapshot(dir: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(
                    rel,
                    Entry {
                        data: std::fs::read(&p).unwrap(),
                        mtime: (m.mtime(), m.mtime_nsec()),
                        mode: m.mode() & 0o7777,
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The file contents under `dir` only.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(dir)
        .into_iter()
        .map(|(k, e)| (k, e.data))
        .collect()
}

/// Every directory under `dir` (relative paths).
fn subdirs(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Asserts two snapshots are equal, naming each path that differs.
fn assert_same(what: &str, got: &BTreeMap<String, Entry>, want: &BTreeMap<String, Entry>) {
    let mut diffs = Vec::new();
    for (rel, w) in want {
        match got.get(rel) {
            None => diffs.push(format!("{rel}: missing")),
            Some(g) if g != w => diffs.push(format!("{rel}: is {g:?}, was {w:?}")),
            Some(_) => {}
        }
    }
    for rel in got.keys().filter(|r| !want.contains_key(*r)) {
        diffs.push(format!("{rel}: unexpected"));
    }
    assert!(diffs.is_empty(), "{what}:\n  {}", diffs.join("\n  "));
}

fn set_mtime(p: &Path, secs: u64, nanos: u32) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::new(secs, nanos))
        .unwrap();
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `files_kept` as path → reason (each entry must have a detail string).
fn kept(v: &Value) -> BTreeMap<String, String> {
    v["files_kept"]
        .as_array()
        .unwrap_or_else(|| panic!("no files_kept list: {v}"))
        .iter()
        .map(|k| {
            assert!(k["detail"].is_string(), "kept without a detail: {k}");
            (
                k["path"].as_str().unwrap().to_string(),
                k["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The paths of a list of `{"path", ...}` objects (`offloaded`, `restored`).
fn paths(v: &Value, list: &str) -> BTreeSet<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} list: {v}"))
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn reasons(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(p, r)| (p.to_string(), r.to_string()))
        .collect()
}

/// The test hook: SIGKILL right after the second file is moved, before
/// the journal records it.
const KILL_AT_SECOND_MOVE: &[(&str, &str)] = &[("MEDIASHIFT_TEST_CRASH_AT", "offload-moved:2")];

fn killed(out: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal() == Some(libc::SIGKILL)
}

fn shop_files() -> Vec<(&'static str, Vec<u8>)> {
    let dup = bytes(2, 3000);
    vec![
        ("a.jpg", bytes(1, 2500)),
        ("catalog/product/1/2/12.jpg", dup.clone()),
        ("catalog/product/3/4/34.jpg", dup),
        ("catalog/product/3/4/other.png", bytes(3, 4100)),
        ("wysiwyg/banner.webp", bytes(4, 1800)),
        ("video/clip.mp4", bytes(5, 6000)),
    ]
}

#[test]
fn offload_moves_every_proven_file_to_the_quarantine_once() {
    let shop = Shop::new("offload-quarantine", &shop_files());
    // An empty directory the shop had before: not left behind by offload.
    std::fs::create_dir_all(shop.source().join("import")).unwrap();
    let before = snapshot(&shop.source());
    let v = shop.migrate();
    assert_eq!(v["objects_uploaded"], 5, "one object for the pair: {v}");
    assert_eq!(
        shop.status()["offloaded"],
        json!({"files": 0, "bytes": 0}),
        "nothing offloaded yet"
    );

    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    let all: BTreeSet<String> = shop.files.keys().cloned().collect();
    assert_eq!(v["dry_run"], false, "{v}");
    assert_eq!(v["files_offloaded"], 6, "{v}");
    assert_eq!(v["bytes_freed"], shop.total_bytes(), "{v}");
    assert_eq!(v["already_offloaded"], 0, "{v}");
    assert_eq!(v["files_kept"], json!([]), "{v}");
    assert_eq!(paths(&v, "offloaded"), all, "{v}");
    for e in v["offloaded"].as_array().unwrap() {
        let rel = e["path"].as_str().unwrap();
        assert_eq!(e["size"], shop.files[rel].len(), "{e}");
        assert_eq!(
            e["to"].as_str(),
            Some(shop.quarantine().join(rel).display().to_string().as_str()),
            "{e}"
        );
    }

    // Gone from the source, byte for byte in the quarantine, with their
    // mtimes; the directories they left empty are gone, the root is not.
    assert!(shop.source().is_dir(), "the source root was removed");
    assert_eq!(
        contents(&shop.source()),
        BTreeMap::new(),
        "files left in the source"
    );
    assert_eq!(
        subdirs(&shop.source()),
        set(&["import"]),
        "only the directory that was empty before offload remains"
    );
    assert_same("the quarantine", &snapshot(&shop.quarantine()), &before);

    // A second offload has nothing to do.
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 0, "{v}");
    assert_eq!(v["bytes_freed"], 0, "{v}");
    assert_eq!(v["already_offloaded"], 6, "{v}");
    assert_eq!(v["files_kept"], json!([]), "{v}");
    assert_eq!(v["offloaded"], json!([]), "{v}");
    assert_same("the quarantine", &snapshot(&shop.quarantine()), &before);

    assert_eq!(
        shop.status()["offloaded"],
        json!({"files": 6, "bytes": shop.total_bytes()})
    );
    // The objects are untouched: one per file, the duplicate's a copy.
    assert_eq!(shop.target.objects().len(), 6);
}

#[test]
fn offload_with_delete_removes_the_files() {
    let shop = Shop::new("offload-delete", &shop_files());
    shop.migrate();
    let (out, v) = shop.offload(&["--delete"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 6, "{v}");
    assert_eq!(v["bytes_freed"], shop.total_bytes(), "{v}");
    assert_eq!(v["files_kept"], json!([]), "{v}");
    for e in v["offloaded"].as_array().unwrap() {
        assert!(e["to"].is_null(), "--delete moves nothing anywhere: {e}");
    }
    assert_eq!(paths(&v, "offloaded").len(), 6, "{v}");
    assert!(shop.source().is_dir(), "the source root was removed");
    assert_eq!(contents(&shop.source()), BTreeMap::new());
    assert_eq!(subdirs(&shop.source()), BTreeSet::new());
    assert!(!shop.quarantine().exists());
    assert_eq!(
        shop.status()["offloaded"],
        json!({"files": 6, "bytes": shop.total_bytes()})
    );
    let (out, v) = shop.offload(&["--delete"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 0, "{v}");
    assert_eq!(v["already_offloaded"], 6, "{v}");
}

#[test]
fn a_file_whose_object_is_not_proven_now_stays() {
    let files = [
        ("keep/no-proof.jpg", bytes(11, 3000)),
        ("keep/forged.jpg", bytes(12, 3000)),
        ("keep/forged-crc32.jpg", bytes(13, 3000)),
        ("keep/deleted.jpg", bytes(14, 3000)),
        ("go/fine.jpg", bytes(15, 3000)),
    ];
    let shop = Shop::new("offload-unproven", &files);
    shop.migrate();
    let data = |rel: &str| shop.files[rel].clone();
    let other = bytes(99, 3000);
    // Other bytes of the same size: as another client writes them (CRC32,
    // no metadata): nothing proves them; with a copy of the file's sha256
    // metadata and a CRC64NVME the server computed: the checksum says they
    // differ; the copied metadata under a CRC32: a claim, no proof.
    shop.target.put_with(
        &shop.key("keep/no-proof.jpg"),
        &other,
        None,
        ChecksumAlgorithm::Crc32,
    );
    shop.target.put(
        &shop.key("keep/forged.jpg"),
        &other,
        Some(&hex(&data("keep/forged.jpg"))),
    );
    shop.target.put_with(
        &shop.key("keep/forged-crc32.jpg"),
        &other,
        Some(&hex(&data("keep/forged-crc32.jpg"))),
        ChecksumAlgorithm::Crc32,
    );
    shop.delete_object("keep/deleted.jpg");

    let (out, v) = shop.offload_q(&[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(
        kept(&v),
        reasons(&[
            ("keep/no-proof.jpg", "no_proof"),
            ("keep/forged.jpg", "object_differs"),
            ("keep/forged-crc32.jpg", "no_proof"),
            ("keep/deleted.jpg", "object_missing"),
        ]),
        "{v}"
    );
    assert_eq!(paths(&v, "offloaded"), set(&["go/fine.jpg"]), "{v}");
    assert_eq!(v["files_offloaded"], 1, "{v}");
    assert_eq!(v["bytes_freed"], 3000, "{v}");
    let mut left = shop.files.clone();
    left.remove("go/fine.jpg");
    assert_eq!(contents(&shop.source()), left, "kept files are in place");
    assert_eq!(
        contents(&shop.quarantine()),
        BTreeMap::from([("go/fine.jpg".to_string(), data("go/fine.jpg"))])
    );
    assert!(
        !shop.source().join("go").exists(),
        "the emptied directory is removed"
    );

    // --deep downloads them: the unproven ones are found to differ.
    let (out, v) = shop.offload_q(&["--deep"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(
        kept(&v),
        reasons(&[
            ("keep/no-proof.jpg", "object_differs"),
            ("keep/forged.jpg", "object_differs"),
            ("keep/forged-crc32.jpg", "object_differs"),
            ("keep/deleted.jpg", "object_missing"),
        ]),
        "{v}"
    );
    assert_eq!(v["files_offloaded"], 0, "{v}");
    assert_eq!(v["already_offloaded"], 1, "{v}");
    assert_eq!(contents(&shop.source()), left);

    // Without --json: each kept file named with its reason, then a summary.
    let out =
        mediashift(shop.offload_args(&["--quarantine", &shop.quarantine().display().to_string()]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    for (rel, reason) in [
        ("keep/no-proof.jpg", "no_proof"),
        ("keep/forged.jpg", "object_differs"),
        ("keep/deleted.jpg", "object_missing"),
    ] {
        assert!(
            text.lines().any(|l| l.contains(rel)
                && (l.contains(reason) || l.contains(&reason.replace('_', " ")))),
            "{rel} is not named with its reason ({reason}):\n{text}"
        );
    }
    let last = stdout(&out)
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        last.contains("offloaded") || last.contains("kept"),
        "no summary line at the end of the output:\n{}",
        stdout(&out)
    );
    assert_eq!(contents(&shop.source()), left);
}

#[test]
fn a_file_changed_since_its_upload_stays() {
    let files = [
        ("resized.jpg", bytes(21, 3000)),
        ("touched.jpg", bytes(22, 3000)),
        ("replaced.jpg", bytes(23, 3000)),
        ("same.jpg", bytes(24, 3000)),
    ];
    let shop = Shop::new("offload-changed", &files);
    shop.migrate();
    // Other content (and size); the same bytes with a new mtime; the same
    // bytes and mtime in a new inode (a copy renamed over it).
    shop.write("resized.jpg", &bytes(25, 3100));
    let touched = shop.source().join("touched.jpg");
    set_mtime(&touched, 1_700_000_000, 5);
    let replaced = shop.source().join("replaced.jpg");
    let m = std::fs::metadata(&replaced).unwrap();
    let copy = shop.source().join("replaced.jpg.new");
    std::fs::copy(&replaced, &copy).unwrap();
    set_mtime(&copy, m.mtime() as u64, m.mtime_nsec() as u32);
    std::fs::rename(&copy, &replaced).unwrap();
    assert_ne!(std::fs::metadata(&replaced).unwrap().ino(), m.ino());
    // A file uploaded to the shop after the migration.
    shop.write("new/upload.jpg", &bytes(26, 1000));
    let left = contents(&shop.source());

    let (out, v) = shop.offload_q(&[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(
        kept(&v),
        reasons(&[
            ("resized.jpg", "changed_since_upload"),
            ("touched.jpg", "changed_since_upload"),
            ("replaced.jpg", "changed_since_upload"),
            ("new/upload.jpg", "not_migrated"),
        ]),
        "{v}"
    );
    assert_eq!(paths(&v, "offloaded"), set(&["same.jpg"]), "{v}");
    let mut left = left;
    left.remove("same.jpg");
    assert_eq!(contents(&shop.source()), left, "kept files are in place");
}

#[test]
fn deep_finds_new_bytes_under_the_old_size_and_mtime() {
    let files = [
        ("edited.jpg", bytes(31, 4000)),
        ("same.jpg", bytes(32, 4000)),
    ];
    let shop = Shop::new("offload-deep", &files);
    shop.migrate();
    // Rewritten in place (same inode), same size, its mtime put back to
    // the nanosecond: only the bytes tell.
    let p = shop.source().join("edited.jpg");
    let m = std::fs::metadata(&p).unwrap();
    let mut edited = shop.files["edited.jpg"].clone();
    edited[2000] ^= 0x55;
    std::fs::write(&p, &edited).unwrap();
    set_mtime(&p, m.mtime() as u64, m.mtime_nsec() as u32);
    let now = std::fs::metadata(&p).unwrap();
    assert_eq!(
        (now.ino(), now.len(), now.mtime(), now.mtime_nsec()),
        (m.ino(), m.len(), m.mtime(), m.mtime_nsec())
    );

    let (out, v) = shop.offload_q(&["--deep"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(
        kept(&v),
        reasons(&[("edited.jpg", "changed_since_upload")]),
        "{v}"
    );
    assert_eq!(paths(&v, "offloaded"), set(&["same.jpg"]), "{v}");
    assert_eq!(
        std::fs::read(&p).unwrap(),
        edited,
        "the edited file is in place"
    );
    assert!(!shop.quarantine().join("edited.jpg").exists());
}

#[test]
fn each_duplicate_goes_only_with_its_own_object() {
    let twin = bytes(41, 3500);
    let files = [
        ("p/first.jpg", twin.clone()),
        ("q/second.jpg", twin.clone()),
        ("x.jpg", bytes(42, 2000)),
    ];
    let shop = Shop::new("offload-dups", &files);
    shop.migrate();
    // Every file has its own object (the duplicate's copied in the bucket).
    assert_eq!(
        shop.target.objects().into_keys().collect::<BTreeSet<_>>(),
        set(&[
            &shop.key("p/first.jpg"),
            &shop.key("q/second.jpg"),
            &shop.key("x.jpg")
        ])
    );
    // The first file's object gone: that file stays; its duplicate, whose
    // own object is proven, goes.
    shop.delete_object("p/first.jpg");
    let (out, v) = shop.offload_q(&[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(
        kept(&v),
        reasons(&[("p/first.jpg", "object_missing")]),
        "{v}"
    );
    assert_eq!(
        paths(&v, "offloaded"),
        set(&["q/second.jpg", "x.jpg"]),
        "{v}"
    );
    assert_eq!(
        std::fs::read(shop.source().join("p/first.jpg")).unwrap(),
        twin
    );
    assert!(!shop.source().join("q/second.jpg").exists());

    // The object back (as mediashift writes it): the first file goes too.
    shop.target
        .put(&shop.key("p/first.jpg"), &twin, Some(&hex(&twin)));
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(paths(&v, "offloaded"), set(&["p/first.jpg"]), "{v}");
    assert_eq!(v["already_offloaded"], 2, "{v}");
    assert_eq!(v["bytes_freed"], 3500, "{v}");
    assert_eq!(contents(&shop.quarantine()), shop.files);

    // Each copy holds its file's bytes: restore --from brings both back
    // from their own objects.
    shop.target.delete(&shop.key("p/first.jpg"));
    let (out, v) = shop.restore_from(&[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_restored"], 2, "{v}");
    assert_eq!(
        std::fs::read(shop.source().join("q/second.jpg")).unwrap(),
        twin
    );
}

/// The files a rerun accounts for: offloaded now, by an earlier run, or
/// (`recovered`, beyond the brief's fields) moved by a killed run and
/// recorded now.
fn done(v: &Value) -> u64 {
    v["files_offloaded"].as_u64().unwrap()
        + v["already_offloaded"].as_u64().unwrap()
        + v["recovered"].as_u64().unwrap_or(0)
}

/// Each file is wholly in exactly one place: the source or the quarantine.
fn assert_nothing_lost(shop: &Shop) -> (BTreeSet<String>, BTreeSet<String>) {
    let src = contents(&shop.source());
    let q = contents(&shop.quarantine());
    for (rel, data) in &shop.files {
        match (src.get(rel), q.get(rel)) {
            (Some(s), None) => assert!(s == data, "{rel} changed in the source"),
            (None, Some(d)) => assert!(d == data, "{rel} is not whole in the quarantine"),
            (Some(_), Some(_)) => panic!("{rel} is in both the source and the quarantine"),
            (None, None) => panic!("{rel} is lost: in neither the source nor the quarantine"),
        }
    }
    for rel in q.keys() {
        assert!(
            shop.files.contains_key(rel),
            "a stray file in the quarantine: {rel}"
        );
    }
    (src.into_keys().collect(), q.into_keys().collect())
}

#[test]
fn killed_right_after_a_move_a_rerun_finishes_and_nothing_is_lost() {
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("d{i}/f{i}.jpg"), bytes(50 + i, 1500 + i as usize)))
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    let shop = Shop::new("offload-kill", &files);
    shop.migrate();

    let q = shop.quarantine().display().to_string();
    let out = mediashift_env(
        shop.offload_args(&["--quarantine", &q, "--json"]),
        KILL_AT_SECOND_MOVE,
    );
    assert!(
        killed(&out),
        "expected the test hook's SIGKILL, got {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let (in_source, in_quarantine) = assert_nothing_lost(&shop);
    assert_eq!(
        in_quarantine.len(),
        2,
        "killed right after the second move: {in_quarantine:?}"
    );
    assert_eq!(in_source.len(), 4);

    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_kept"], json!([]), "{v}");
    assert_eq!(done(&v), 6, "every file is accounted for: {v}");
    assert!(
        paths(&v, "offloaded").is_superset(&in_source),
        "the rerun offloaded the files the first left: {v}"
    );
    let (in_source, _) = assert_nothing_lost(&shop);
    assert!(in_source.is_empty(), "{in_source:?}");
    assert_eq!(
        shop.status()["offloaded"],
        json!({"files": 6, "bytes": shop.total_bytes()})
    );
    // And it converged: a third run is a no-op.
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 0, "{v}");
    assert_eq!(v["already_offloaded"], 6, "{v}");
    // Each file had a directory of its own: the one the killed run emptied
    // goes too (checked last, so the checks above run either way).
    assert_eq!(
        subdirs(&shop.source()),
        BTreeSet::new(),
        "empty directories left"
    );
}

#[test]
fn killed_right_after_a_delete_a_rerun_records_it() {
    let files = [
        ("a/a.jpg", bytes(61, 1000)),
        ("b/b.jpg", bytes(62, 1001)),
        ("c/c.jpg", bytes(63, 1002)),
    ];
    let shop = Shop::new("offload-kill-delete", &files);
    shop.migrate();
    let out = mediashift_env(
        shop.offload_args(&["--delete", "--json"]),
        KILL_AT_SECOND_MOVE,
    );
    assert!(killed(&out), "{:?}\n{}", out.status, stderr(&out));
    assert_eq!(contents(&shop.source()).len(), 1, "two deleted, one left");

    let (out, v) = shop.offload(&["--delete"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_kept"], json!([]), "{v}");
    assert_eq!(done(&v), 3, "every file is accounted for: {v}");
    assert_eq!(contents(&shop.source()), BTreeMap::new());
    assert_eq!(
        shop.status()["offloaded"],
        json!({"files": 3, "bytes": 3003})
    );
    let dirs = subdirs(&shop.source());
    // Every file can come back from the bucket.
    let (out, v) = shop.restore_from(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(contents(&shop.source()), shop.files);
    // The directory the killed run emptied goes too (checked last).
    assert_eq!(
        dirs,
        BTreeSet::new(),
        "empty directories left after the rerun"
    );
}

/// Files with their own modes and mtimes (nanoseconds), to see them come
/// back exactly.
fn restore_shop(name: &str) -> (Shop, BTreeMap<String, Entry>) {
    let shop = Shop::new(
        name,
        &[
            ("a.jpg", bytes(71, 2000)),
            ("b.png", bytes(72, 2100)),
            ("catalog/product/c.jpg", bytes(73, 2200)),
            ("catalog/product/d/e.jpg", bytes(74, 2300)),
            ("video/v.mp4", bytes(75, 2400)),
        ],
    );
    for (i, rel) in shop.files.keys().enumerate() {
        let p = shop.source().join(rel);
        set_mode(&p, [0o644, 0o600, 0o640, 0o444, 0o664][i]);
        set_mtime(&p, 1_600_000_000 + i as u64 * 1000, 123_456_789 + i as u32);
    }
    let before = snapshot(&shop.source());
    assert_eq!(before["b.png"].mode, 0o600);
    shop.migrate();
    (shop, before)
}

#[test]
fn restore_puts_files_back_exactly_from_the_quarantine_and_the_bucket() {
    let (shop, before) = restore_shop("restore");
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 5, "{v}");

    let (out, v) = shop.restore_q(&["--only", "a.jpg"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(paths(&v, "restored"), set(&["a.jpg"]), "{v}");
    assert_eq!(v["files_restored"], 1, "{v}");
    assert_eq!(v["bytes_restored"], 2000, "{v}");
    assert_eq!(v["files_kept"], json!([]), "{v}");
    for e in v["restored"].as_array().unwrap() {
        assert_eq!(e["size"], 2000, "{e}");
        assert!(e["from"].is_string(), "{e}");
    }
    // `**` crosses folders; --only is repeatable.
    let (out, v) = shop.restore_q(&["--only", "catalog/**", "--only", "nothing/*"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(
        paths(&v, "restored"),
        set(&["catalog/product/c.jpg", "catalog/product/d/e.jpg"]),
        "{v}"
    );
    assert_eq!(
        shop.status()["offloaded"],
        json!({"files": 2, "bytes": 4500}),
        "restored files are no longer offloaded"
    );

    // A file that reappeared at its path is never overwritten; a file gone
    // from the quarantine is named.
    shop.write("b.png", b"a new b.png, uploaded since");
    std::fs::remove_file(shop.quarantine().join("video/v.mp4")).unwrap();
    let (out, v) = shop.restore_q(&[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(
        kept(&v),
        reasons(&[("b.png", "exists"), ("video/v.mp4", "quarantine_missing")]),
        "{v}"
    );
    assert_eq!(v["files_restored"], 0, "{v}");
    assert_eq!(
        std::fs::read(shop.source().join("b.png")).unwrap(),
        b"a new b.png, uploaded since"
    );
    assert_eq!(
        std::fs::read(shop.quarantine().join("b.png")).unwrap(),
        shop.files["b.png"],
        "the quarantined b.png is kept"
    );
    // The bucket has the one the quarantine lost; the new b.png goes.
    let (out, v) = shop.restore_from(&["--only", "video/*"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(paths(&v, "restored"), set(&["video/v.mp4"]), "{v}");
    std::fs::remove_file(shop.source().join("b.png")).unwrap();
    let (out, v) = shop.restore_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(paths(&v, "restored"), set(&["b.png"]), "{v}");
    assert_same("the restored tree", &snapshot(&shop.source()), &before);
    assert_eq!(
        contents(&shop.quarantine()),
        BTreeMap::new(),
        "restored files left a copy in the quarantine"
    );
    assert_eq!(shop.status()["offloaded"], json!({"files": 0, "bytes": 0}));

    // Restored files can be offloaded again; from the bucket, each object
    // is checked before it replaces anything.
    let (out, v) = shop.offload(&["--delete"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 5, "{v}");
    assert_eq!(contents(&shop.source()), BTreeMap::new());
    shop.target.put(
        &shop.key("a.jpg"),
        &bytes(79, 2000),
        Some(&hex(&shop.files["a.jpg"])),
    );
    shop.delete_object("catalog/product/c.jpg");
    let (out, v) = shop.restore_from(&[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(
        kept(&v),
        reasons(&[
            ("a.jpg", "object_differs"),
            ("catalog/product/c.jpg", "object_missing")
        ]),
        "{v}"
    );
    assert_eq!(v["files_restored"], 3, "{v}");
    assert!(!shop.source().join("a.jpg").exists(), "other bytes written");
    assert!(!shop.source().join("catalog/product/c.jpg").exists());
    for rel in ["a.jpg", "catalog/product/c.jpg"] {
        shop.target.put(
            &shop.key(rel),
            &shop.files[rel],
            Some(&hex(&shop.files[rel])),
        );
    }
    let (out, v) = shop.restore_from(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(
        paths(&v, "restored"),
        set(&["a.jpg", "catalog/product/c.jpg"]),
        "{v}"
    );
    assert_same(
        "the tree restored from the bucket",
        &snapshot(&shop.source()),
        &before,
    );

    // Downloaded files (new inodes) can be offloaded again too.
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 5, "{v}");
    assert_same("the quarantine", &snapshot(&shop.quarantine()), &before);
}

#[test]
fn only_matches_the_relative_path_and_star_stays_within_a_folder() {
    let (shop, _) = restore_shop("restore-only");
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    for (glob, want) in [
        ("*.jpg", &["a.jpg"][..]),
        ("catalog/*", &[]),
        ("catalog/product/*", &["catalog/product/c.jpg"]),
        ("**/e.jpg", &["catalog/product/d/e.jpg"]),
        ("video/**", &["video/v.mp4"]),
    ] {
        let (out, v) = shop.restore_q(&["--only", glob]);
        assert!(out.status.success(), "{glob}: {}\n{v}", stderr(&out));
        assert_eq!(paths(&v, "restored"), set(want), "--only {glob}: {v}");
    }
    assert_eq!(
        contents(&shop.quarantine())
            .into_keys()
            .collect::<BTreeSet<_>>(),
        set(&["b.png"])
    );
}

#[test]
fn a_quarantine_copy_that_changed_is_not_restored_and_the_text_names_what_is_kept() {
    let (shop, before) = restore_shop("restore-tampered");
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    // Same size, other bytes in the quarantine; a file back at its path.
    let q = shop.quarantine().join("catalog/product/c.jpg");
    let mut other = shop.files["catalog/product/c.jpg"].clone();
    other[100] ^= 1;
    std::fs::write(&q, &other).unwrap();
    shop.write("b.png", b"uploaded again");
    let (out, v) = shop.restore_q(&["--only", "catalog/product/c.jpg"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(
        kept(&v),
        reasons(&[("catalog/product/c.jpg", "quarantine_differs")]),
        "{v}"
    );

    let out = mediashift([
        "restore",
        &shop.src(),
        "--state",
        &shop.state().display().to_string(),
        "--quarantine",
        &shop.quarantine().display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        !shop.source().join("catalog/product/c.jpg").exists(),
        "a quarantine copy that is not the file's bytes was put in place"
    );
    assert_eq!(
        std::fs::read(shop.source().join("b.png")).unwrap(),
        b"uploaded again"
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    for rel in ["catalog/product/c.jpg", "b.png"] {
        assert!(
            text.lines().any(|l| l.contains(rel)),
            "{rel} is kept but not named:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.contains("b.png") && l.contains("exists")),
        "b.png is not named with its reason (exists):\n{text}"
    );
    let last = stdout(&out)
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        last.contains("restored") || last.contains("kept"),
        "no summary line at the end of the output:\n{}",
        stdout(&out)
    );
    // The other three came back exactly; the bucket still has c.jpg.
    let mut want = before.clone();
    want.remove("catalog/product/c.jpg");
    want.remove("b.png");
    let mut got = snapshot(&shop.source());
    got.remove("b.png");
    assert_same("the restored files", &got, &want);
    std::fs::remove_file(&q).unwrap();
    let (out, v) = shop.restore_from(&["--only", "catalog/**"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(
        paths(&v, "restored"),
        set(&["catalog/product/c.jpg"]),
        "{v}"
    );
}

#[test]
fn offload_never_overwrites_a_file_in_the_quarantine() {
    let shop = Shop::new(
        "offload-occupied",
        &[("a.jpg", bytes(111, 1000)), ("b.jpg", bytes(112, 1000))],
    );
    shop.migrate();
    let stale = shop.quarantine().join("a.jpg");
    std::fs::create_dir_all(shop.quarantine()).unwrap();
    std::fs::write(&stale, b"something else").unwrap();
    // What a kill between the copy to another file system and the removal
    // leaves: the same bytes at both places. That one can go.
    std::fs::write(shop.quarantine().join("b.jpg"), &shop.files["b.jpg"]).unwrap();
    let (out, v) = shop.offload_q(&[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(paths(&v, "offloaded"), set(&["b.jpg"]), "{v}");
    assert!(kept(&v).contains_key("a.jpg"), "{v}");
    assert_eq!(std::fs::read(&stale).unwrap(), b"something else");
    assert_eq!(
        std::fs::read(shop.source().join("a.jpg")).unwrap(),
        shop.files["a.jpg"]
    );
}

#[test]
fn migrate_again_after_an_offload_keeps_the_offloaded_files_and_takes_new_ones() {
    let shop = Shop::new("offload-remigrate", &shop_files());
    shop.migrate();
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    // The shop goes on: a new upload, and the usual migrate run.
    shop.write("catalog/product/9/new.jpg", &bytes(120, 2700));
    let v = shop.migrate();
    assert_eq!(v["objects_uploaded"], 1, "{v}");
    assert_eq!(v["failed"], json!([]), "{v}");
    let rows = csv_rows(&shop.maps().join("map.csv"));
    assert_eq!(rows.len(), 7, "the maps keep the offloaded files");
    let out = mediashift([
        "verify",
        &shop.src(),
        &shop.target.url(),
        "--json",
        "--state",
        &shop.state().display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "verify after offload: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(
        paths(&v, "offloaded"),
        set(&["catalog/product/9/new.jpg"]),
        "{v}"
    );
    assert_eq!(v["already_offloaded"], 6, "{v}");
    let (out, v) = shop.restore_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_restored"], 7, "{v}");
}

#[test]
fn odd_names_and_an_empty_file_go_and_come_back() {
    let shop = Shop::new(
        "offload-odd-names",
        &[
            ("a b+c%20d.jpg", bytes(130, 1200)),
            ("caf\u{e9}/\u{fc}n\u{ef}.png", bytes(131, 1300)),
            ("what?#.jpg", bytes(132, 1400)),
            ("zero.png", Vec::new()),
        ],
    );
    let before = snapshot(&shop.source());
    shop.migrate();
    let (out, v) = shop.offload(&["--delete"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 4, "{v}");
    assert_eq!(contents(&shop.source()), BTreeMap::new());
    let (out, v) = shop.restore_from(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_restored"], 4, "{v}");
    assert_same("the restored tree", &snapshot(&shop.source()), &before);
}

#[test]
fn a_quarantine_on_another_file_system_is_copied_checked_and_restored() {
    let (shop, before) = restore_shop("offload-xdev");
    let disk = SmallDisk::new("8M", false);
    let q = disk.path().join("quarantine");
    let qs = q.display().to_string();
    let (out, v) = shop.offload(&["--quarantine", &qs]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 5, "{v}");
    for e in v["offloaded"].as_array().unwrap() {
        let rel = e["path"].as_str().unwrap();
        assert_eq!(
            e["to"].as_str(),
            Some(q.join(rel).display().to_string().as_str())
        );
    }
    assert_eq!(contents(&shop.source()), BTreeMap::new());
    assert_eq!(subdirs(&shop.source()), BTreeSet::new());
    assert_same("the quarantine on tmpfs", &snapshot(&q), &before);

    let (out, v) = shop.restore(&["--quarantine", &qs]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_restored"], 5, "{v}");
    assert_eq!(v["bytes_restored"], shop.total_bytes(), "{v}");
    assert_same(
        "the tree restored across file systems",
        &snapshot(&shop.source()),
        &before,
    );
    assert_eq!(contents(&q), BTreeMap::new());
}

#[test]
fn a_quarantine_that_fills_up_loses_nothing() {
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("big/f{i}.jpg"), bytes(80 + i, 100_000)))
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    let shop = Shop::new("offload-full", &files);
    shop.migrate();
    // Room for two of the four files.
    let disk = SmallDisk::new("256k", false);
    let q = disk.path().join("quarantine");
    let (out, v) = shop.offload(&["--quarantine", &q.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    let moved = paths(&v, "offloaded");
    let kept = kept(&v);
    assert!(!kept.is_empty() && !moved.is_empty(), "{v}");
    assert_eq!(moved.len() + kept.len(), 4, "{v}");
    let src = contents(&shop.source());
    let quarantined = contents(&q);
    for (rel, data) in &shop.files {
        match (src.get(rel), quarantined.get(rel)) {
            (Some(s), None) => {
                assert!(s == data, "{rel} changed");
                assert!(kept.contains_key(rel), "{rel} in place but not named: {v}");
            }
            (None, Some(d)) => {
                assert!(d == data, "{rel} is not whole in the quarantine");
                assert!(moved.contains(rel), "{v}");
            }
            other => panic!(
                "{rel}: in source {}, in quarantine {}",
                other.0.is_some(),
                other.1.is_some()
            ),
        }
    }
    assert_eq!(
        quarantined.len(),
        moved.len(),
        "partial copies left in the quarantine: {:?}",
        quarantined.keys()
    );
}

#[test]
fn dry_run_touches_nothing_and_lists_what_would_move() {
    let shop = Shop::new("offload-dry", &shop_files());
    shop.migrate();
    let before = snapshot(&shop.source());
    let dirs = subdirs(&shop.source());
    let status = shop.status();

    let (out, v) = shop.offload_q(&["--dry-run"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["dry_run"], true, "{v}");
    assert_eq!(v["files_offloaded"], 6, "{v}");
    let would: BTreeSet<String> = shop.files.keys().cloned().collect();
    assert_eq!(paths(&v, "offloaded"), would, "{v}");
    assert_same(
        "the source after --dry-run",
        &snapshot(&shop.source()),
        &before,
    );
    assert_eq!(subdirs(&shop.source()), dirs);
    assert!(
        !shop.quarantine().exists() || contents(&shop.quarantine()).is_empty(),
        "--dry-run wrote to the quarantine"
    );
    assert_eq!(shop.status(), status, "--dry-run changed the journal");
    let (out, v) = shop.offload(&["--delete", "--dry-run"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(paths(&v, "offloaded"), would, "{v}");
    // SOURCE_DIR named with a trailing slash is the same directory.
    let mut args = shop.offload_args(&["--delete", "--dry-run", "--json"]);
    args[1].push('/');
    let out = mediashift(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(paths(&doc(&out), "offloaded"), would);
    assert_same(
        "the source after --dry-run",
        &snapshot(&shop.source()),
        &before,
    );

    // The real run moves exactly what the dry run listed.
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(paths(&v, "offloaded"), would, "{v}");
    // A dry run after it has nothing to move.
    let (out, v) = shop.offload_q(&["--dry-run"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_offloaded"], 0, "{v}");
    assert_eq!(v["already_offloaded"], 6, "{v}");
}

/// A refused run: a usage or configuration error, one clear line, and
/// nothing touched.
/// A configuration error is one line on stderr.
fn assert_one_line(out: &Output) {
    let err = stderr(out);
    assert_eq!(
        err.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "not one line:\n{err}"
    );
}

fn assert_refused(shop: &Shop, out: &Output, names: &[&str]) {
    let err = stderr(out);
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "expected exit code 2 (or 1), got {:?}\n{err}",
        out.status
    );
    for n in names {
        assert!(err.contains(n), "the error does not name {n}:\n{err}");
    }
    assert_eq!(
        contents(&shop.source()),
        shop.files,
        "a refused run moved files"
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let shop = Shop::new("offload-bad", &[("a.jpg", bytes(91, 1000))]);
    shop.migrate();
    let q = shop.quarantine().display().to_string();

    let out = mediashift(shop.offload_args(&[]));
    assert_refused(&shop, &out, &["--quarantine", "--delete"]);
    let out = mediashift(shop.offload_args(&["--quarantine", &q, "--delete"]));
    assert_refused(&shop, &out, &["--quarantine", "--delete"]);
    let out = mediashift([
        "restore",
        &shop.src(),
        "--state",
        &shop.state().display().to_string(),
    ]);
    assert_refused(&shop, &out, &["--quarantine", "--from"]);

    // A quarantine inside SOURCE_DIR, however it is named.
    std::fs::create_dir_all(shop.source().join("sub")).unwrap();
    let link = shop.dir.path().join("link-into-media");
    std::os::unix::fs::symlink(shop.source(), &link).unwrap();
    for inside in [
        shop.source().join("quarantine"),
        shop.source().join("sub/../q"),
        shop.source(),
        link.join("q"),
        // ... or one that holds it.
        shop.root(),
    ] {
        let inside = inside.display().to_string();
        let out = mediashift(shop.offload_args(&["--quarantine", &inside]));
        assert_refused(&shop, &out, &["--quarantine"]);
        assert_eq!(out.status.code(), Some(2), "{inside}: {}", stderr(&out));
        assert_one_line(&out);
    }

    // A --state with no journal.
    let empty = shop.dir.path().join("no-journal");
    let out = mediashift([
        "offload",
        &shop.src(),
        &shop.target.url(),
        "--state",
        &empty.display().to_string(),
        "--quarantine",
        &q,
    ]);
    assert_refused(&shop, &out, &[&empty.display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_one_line(&out);
    let out = mediashift([
        "restore",
        &shop.src(),
        "--state",
        &empty.display().to_string(),
        "--quarantine",
        &q,
    ]);
    assert_refused(&shop, &out, &[&empty.display().to_string()]);

    // Another bucket than the journal's migration: refused, or at least
    // nothing moved on the strength of objects elsewhere.
    let other = target("offload-bad-other");
    let out = mediashift([
        "offload",
        &shop.src(),
        &other.url(),
        "--state",
        &shop.state().display().to_string(),
        "--quarantine",
        &q,
    ]);
    assert_refused(&shop, &out, &[]);
    assert!(shop.status()["offloaded"]["files"] == 0);
}

// ---------------------------------------------------------------------
// Web servers during the transition: the README's snippets.

/// The code block between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
/// in README.md, without its fence.
fn readme_snippet(name: &str) -> String {
    let readme = std::fs::read_to_string(format!("{}/README.md", crate::support::REPO)).unwrap();
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let start = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("README.md has no {begin}"));
    let stop = readme[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("README.md has no {end}"))
        + start;
    readme[start + begin.len()..stop]
        .lines()
        .filter(|l| !l.trim_start().starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A GET over HTTP/1.0: status, Location header, body.
fn http_get(port: u16, path: &str) -> (u16, Option<String>, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: shop.example\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let location = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    (status, location, resp[split + 4..].to_vec())
}

/// nginx on a loopback port with the README's transition snippet, its
/// root at the shop's document root.
fn start_nginx(shop: &Shop) -> WebServer {
    let dir = tempfile::Builder::new()
        .prefix("mediashift-nginx-")
        .tempdir()
        .unwrap();
    let port = free_port();
    let snippet = readme_snippet("offload-nginx")
        .replace(
            "/etc/nginx/mediashift/nginx.map",
            &shop.maps().join("nginx.map").display().to_string(),
        )
        .replace("/var/www/shop/pub", &shop.root().display().to_string());
    assert!(snippet.contains("try_files"), "{snippet}");
    let snippet = snippet
        .replacen(
            "http {",
            &format!("http {{\n{}", nginx_http_prelude(dir.path())),
            1,
        )
        .replacen(
            "server {",
            &format!("server {{\n        listen 127.0.0.1:{port};"),
            1,
        );
    let conf = format!("{}{snippet}\n", nginx_main(dir.path()));
    nginx_in(dir, port, &conf)
}

/// Apache on a loopback port with the README's transition snippet in a
/// VirtualHost whose DocumentRoot is the shop's document root.
fn start_apache(shop: &Shop) -> WebServer {
    let snippet = readme_snippet("offload-apache").replace(
        "dbm:/etc/apache2/mediashift/apache.dbm",
        &format!("txt:{}", shop.maps().join("apache.map").display()),
    );
    assert!(snippet.contains("RewriteMap"), "{snippet}");
    readable(shop.dir.path());
    let root = shop.root().display().to_string();
    apache("warn", |_, port| {
        format!(
            r#"DocumentRoot "{root}"
<Directory "{root}">
    Require all granted
</Directory>
<VirtualHost 127.0.0.1:{port}>
DocumentRoot "{root}"
{snippet}
</VirtualHost>"#
        )
    })
}

/// A shop half offloaded: everything offloaded, then a part restored.
/// Returns the shop, the map rows and the paths on disk.
fn half_offloaded(name: &str) -> (Shop, Vec<BTreeMap<String, String>>, BTreeSet<String>) {
    let twin = bytes(104, 2600);
    let shop = Shop::new(
        name,
        &[
            ("catalog/product/a/one.jpg", bytes(101, 2000)),
            ("catalog/product/a/space name+\u{e9}.jpg", bytes(102, 2100)),
            ("catalog/product/b/two.jpg", bytes(103, 2200)),
            ("wysiwyg/banner.png", twin.clone()),
            ("wysiwyg/copy of banner.png", twin),
            ("top.jpg", bytes(105, 2300)),
        ],
    );
    shop.migrate();
    let (out, v) = shop.offload_q(&[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    let (out, v) = shop.restore_q(&["--only", "catalog/product/a/*", "--only", "top.jpg"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    let present = set(&[
        "catalog/product/a/one.jpg",
        "catalog/product/a/space name+\u{e9}.jpg",
        "top.jpg",
    ]);
    assert_eq!(paths(&v, "restored"), present, "{v}");
    assert_eq!(
        contents(&shop.source())
            .into_keys()
            .collect::<BTreeSet<_>>(),
        present
    );
    let rows = csv_rows(&shop.maps().join("map.csv"));
    assert_eq!(rows.len(), 6);
    (shop, rows, present)
}

/// Every old URL: 200 with the file's bytes while it is on disk, 301 to
/// its new URL (which serves the bytes) once it is offloaded.
fn check_transition(
    port: u16,
    shop: &Shop,
    rows: &[BTreeMap<String, String>],
    present: &BTreeSet<String>,
) {
    for row in rows {
        let rel =
            percent_encoding::percent_decode_str(row["old_url"].strip_prefix("/media/").unwrap())
                .decode_utf8()
                .unwrap()
                .into_owned();
        let (status, location, body) = http_get(port, &row["old_url"]);
        if present.contains(&rel) {
            assert_eq!(status, 200, "{rel} is on disk: {}", row["old_url"]);
            assert!(
                body == shop.files[&rel],
                "{rel}: other bytes served from disk"
            );
        } else {
            assert_eq!(status, 301, "{rel} is offloaded: {}", row["old_url"]);
            assert_eq!(location.as_deref(), Some(row["new_url"].as_str()), "{rel}");
            assert_eq!(hex(&signed_get(&row["new_url"])), row["sha256"], "{rel}");
        }
    }
    // The query string goes along; what is neither on disk nor in the map
    // is a 404.
    let gone = rows
        .iter()
        .find(|r| r["old_url"].ends_with("two.jpg"))
        .unwrap();
    let (status, location, _) = http_get(port, &format!("{}?v=123", gone["old_url"]));
    assert_eq!(status, 301);
    assert_eq!(location, Some(format!("{}?v=123", gone["new_url"])));
    assert_eq!(http_get(port, "/media/not-migrated.jpg").0, 404);
}

#[test]
fn nginx_serves_files_on_disk_and_redirects_offloaded_ones() {
    let (shop, rows, present) = half_offloaded("offload-nginx");
    let nginx = start_nginx(&shop);
    check_transition(nginx.port, &shop, &rows, &present);
    // A file restored while nginx runs is served from disk at once.
    let (out, v) = shop.restore_q(&["--only", "wysiwyg/**"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    let mut present = present;
    present.extend(paths(&v, "restored"));
    assert_eq!(present.len(), 5);
    check_transition(nginx.port, &shop, &rows, &present);
}

#[test]
fn apache_serves_files_on_disk_and_redirects_offloaded_ones() {
    let (shop, rows, present) = half_offloaded("offload-apache");
    let apache = start_apache(&shop);
    check_transition(apache.port, &shop, &rows, &present);
}

/// `offload --exclude GLOB` leaves files alone: a folder that must stay on
/// disk is neither offloaded nor reported, nor are files never migrated
/// under it.
#[test]
fn excluded_files_are_left_alone_and_not_reported() {
    let shop = Shop::new("offload-exclude", &shop_files());
    shop.migrate();
    shop.write("catalog/product/cache/new.jpg", &bytes(41, 900));
    let (out, v) = shop.offload_q(&["--exclude", "catalog/**", "--exclude", "*.mp4"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{v}", stderr(&out));
    assert_eq!(kept(&v), reasons(&[]), "nothing excluded is reported: {v}");
    assert_eq!(
        paths(&v, "offloaded"),
        set(&["a.jpg", "wysiwyg/banner.webp"]),
        "{v}"
    );
    for rel in [
        "catalog/product/1/2/12.jpg",
        "catalog/product/cache/new.jpg",
        "video/clip.mp4",
    ] {
        assert!(shop.source().join(rel).exists(), "{rel} stays");
    }
    // Without the patterns the rest goes, and the new file is named.
    let (out, v) = shop.offload_q(&[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(
        kept(&v),
        reasons(&[("catalog/product/cache/new.jpg", "not_migrated")]),
        "{v}"
    );
    assert_eq!(v["already_offloaded"], 2, "{v}");
}
