//! The scripts the test suite itself leans on: a throwaway server must not
//! outlive its owner or leave its data behind (each holds gigabytes).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{REPO, free_port_base};

/// Running, and not a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn start_owned(dir: &Path, owner: u32) -> std::process::Output {
    let mut out = None;
    for _ in 0..3 {
        let o = Command::new(format!("{REPO}/scripts/s3-server"))
            .args(["start", "--bucket", "owned", "--remove-dir", "--port"])
            .arg(free_port_base().to_string())
            .arg("--owner-pid")
            .arg(owner.to_string())
            .arg("--dir")
            .arg(dir)
            .output()
            .expect("cannot run scripts/s3-server");
        let in_use = String::from_utf8_lossy(&o.stderr).contains("in use");
        out = Some(o);
        if !in_use {
            break;
        }
    }
    out.unwrap()
}

#[test]
fn a_test_server_stops_with_its_owner_and_removes_its_data() {
    let dir = tempfile::Builder::new()
        .prefix("mediashift-it-owned-")
        .tempdir_in(crate::support::server_data_base())
        .unwrap()
        .keep();
    let mut owner = Command::new("sleep").arg("300").spawn().unwrap();
    let out = start_owned(&dir, owner.id());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: u32 = std::fs::read_to_string(dir.join("weed.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid), "the server runs while its owner does");
    assert!(dir.join("data").is_dir());

    owner.kill().unwrap();
    owner.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (alive(pid) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (running, kept) = (alive(pid), dir.exists());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!running, "the server outlived its owner by 30 s");
    assert!(!kept, "{} was not removed", dir.display());
}

/// SeaweedFS gives each bucket a volume and, unless told, allows only as
/// many volumes as the disk has free gigabytes: on a CI machine with little
/// disk the suite's later buckets all failed with InternalError. On a 2 GB
/// disk the test server still takes objects in five buckets.
#[test]
fn a_test_server_takes_more_buckets_than_its_disk_has_gigabytes() {
    let disk = crate::support::SmallDisk::new("2g", false);
    let dir = disk.path().join("s3");
    let mut owner = Command::new("sleep").arg("300").spawn().unwrap();
    let out = start_owned(&dir, owner.id());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let endpoint = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export AWS_ENDPOINT_URL="))
        .expect("the script prints the endpoint")
        .to_string();
    let curl = |args: &[&str]| {
        let o = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                // A new bucket's first object waits for its volume to be
                // grown: seconds, but over 20 s on a loaded 2-core machine
                // (seen once in a full suite run). The failure this test
                // is about is an immediate 500, not a slow answer.
                "--max-time",
                "90",
            ])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", "mediashift-local:mediashift-local-secret-key"])
            .args(args)
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let mut answers = Vec::new();
    for n in 0..5 {
        let bucket = format!("{endpoint}/many-{n}");
        answers.push(curl(&["-X", "PUT", &bucket]));
        answers.push(curl(&[
            "-X",
            "PUT",
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "--data-binary",
            "hello",
            &format!("{bucket}/x.txt"),
        ]));
    }
    owner.kill().unwrap();
    owner.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        answers.iter().all(|a| a == "200"),
        "bucket and object creations answered {answers:?}"
    );
}

/// SeaweedFS refuses every write once its disk has less than 1% free, and
/// each refused PUT takes 30 s: on a CI machine whose disk the build had
/// filled, the whole suite timed out that way. The script refuses to start
/// there at once, saying where and what to do.
#[test]
fn a_server_on_a_nearly_full_disk_is_refused_at_once_with_the_fix() {
    let disk = crate::support::SmallDisk::new("600m", false);
    disk.fill(3 << 20);
    let dir = disk.path().join("s3");
    let owner = std::process::id();
    let started = Instant::now();
    let out = start_owned(&dir, owner);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the server started on a full disk: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let line = err.lines().last().unwrap_or_default();
    assert!(
        line.contains(&dir.display().to_string())
            && line.contains("MiB free of 600 MiB")
            && line.contains("1%")
            && line.contains("--dir"),
        "{err}"
    );
    assert!(!dir.join("weed.pid").exists(), "{err}");
}

/// A pid file left by a server that died may name a process that reused
/// its number: `stop` must not kill it.
#[test]
fn a_stale_pid_file_does_not_stop_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = Command::new("sleep").arg("300").spawn().unwrap();
    std::fs::write(dir.path().join("weed.pid"), other.id().to_string()).unwrap();
    let out = Command::new(format!("{REPO}/scripts/s3-server"))
        .args(["stop", "--port"])
        .arg(free_port_base().to_string())
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("cannot run scripts/s3-server");
    std::thread::sleep(Duration::from_millis(300));
    let survived = alive(other.id());
    let _ = other.kill();
    let _ = other.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        survived,
        "scripts/s3-server stop killed an unrelated process"
    );
}
