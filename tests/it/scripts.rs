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
        .tempdir()
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
