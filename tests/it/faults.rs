//! Faults and a live server: the fault proxy between mediashift and the
//! real server stalls, throttles and refuses, and every run either
//! completes with every object proven independently or fails with a clear
//! message, within a bounded time. One test per row of the faults table of
//! the issue, scaled down.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::migrate::{check_migrated, csv_rows, migrate_args};
use crate::support::proxy::{Fault, Match};
use crate::support::{
    Proxy, Target, Tree, bytes, json as doc, mediashift, spawn_mediashift, stderr, target,
    wait_with_timeout,
};

const MIB: usize = 1024 * 1024;

/// A shop's media scaled down: small images of 2 to 20 KB and videos of the
/// given sizes (uploaded in 5 MiB parts).
struct Shop {
    tree: Tree,
    target: Target,
    maps: tempfile::TempDir,
    files: BTreeMap<String, Vec<u8>>,
}

impl Shop {
    fn new(name: &str, small: usize, videos: &[usize]) -> Self {
        let tree = Tree::new();
        let mut files = BTreeMap::new();
        for i in 0..small {
            let rel = format!("catalog/product/{}/img-{i}.jpg", i % 5);
            files.insert(rel, bytes(i as u64 + 1, 2_000 + i * 131 % 18_000));
        }
        for (i, size) in videos.iter().enumerate() {
            files.insert(format!("video/v{i}.mp4"), bytes(1000 + i as u64, *size));
        }
        for (rel, data) in &files {
            tree.file(rel, data);
        }
        Self {
            tree,
            target: target(name),
            maps: tempfile::tempdir().unwrap(),
            files,
        }
    }

    fn args(&self, proxy: &Proxy, extra: &[&str]) -> Vec<String> {
        let mut all = vec![
            "--endpoint-url",
            &proxy.endpoint,
            "--multipart-threshold",
            "8MiB",
            "--part-size",
            "5MiB",
        ];
        all.extend_from_slice(extra);
        migrate_args(&self.tree, &self.target, self.maps.path(), &all)
    }

    /// Runs a migration through `proxy`; fails the test if it takes longer
    /// than `limit`.
    fn run(&self, proxy: &Proxy, extra: &[&str], limit: Duration) -> (Output, Value, Duration) {
        self.run_env(proxy, extra, &[], limit)
    }

    fn run_env(
        &self,
        proxy: &Proxy,
        extra: &[&str],
        env: &[(&str, &str)],
        limit: Duration,
    ) -> (Output, Value, Duration) {
        let started = Instant::now();
        let out = wait_with_timeout(spawn_mediashift(self.args(proxy, extra), env), limit);
        let took = started.elapsed();
        let v = doc(&out);
        (out, v, took)
    }

    /// Every file is in the maps and its object holds its bytes, read back
    /// straight from the server.
    fn check(&self) {
        check_migrated(&self.target, self.maps.path(), &self.files);
    }

    fn map_rows(&self) -> Vec<BTreeMap<String, String>> {
        csv_rows(&self.maps.path().join("map.csv"))
    }
}

fn clean(out: &Output, v: &Value) {
    assert!(out.status.success(), "{}\n{v}", stderr(out));
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
}

fn count(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

#[allow(unsafe_code)]
fn interrupt(child: &std::process::Child) {
    // SAFETY: signalling a child of ours by its pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
}

/// Waits until the proxy has seen `n` requests.
fn until_requests(proxy: &Proxy, n: u64) {
    let start = Instant::now();
    while proxy.stats().requests < n {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the proxy has applied `n` faults.
fn until_faults(proxy: &Proxy, n: usize) {
    let start = Instant::now();
    while proxy.stats().faults.len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the proxy saw {} faults, not {n}",
            proxy.stats().faults.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stalled_listing_upload_or_part_is_cut_off_and_retried() {
    let shop = Shop::new("stall", 12, &[12 * MIB]);
    let proxy = Proxy::start();
    // Accepted and never answered, once each: the bucket listing, one
    // small PUT and one part of the video.
    proxy.rule(
        Match::method("GET").target("list-type=2"),
        Fault::Stall,
        Some(1),
    );
    proxy.rule(
        Match::method("PUT").target("img-3.jpg"),
        Fault::Stall,
        Some(1),
    );
    proxy.rule(
        Match::method("PUT").target("partNumber=2"),
        Fault::Stall,
        Some(1),
    );
    let (out, v, took) = shop.run(
        &proxy,
        &["--request-timeout", "2s"],
        Duration::from_secs(120),
    );
    clean(&out, &v);
    assert_eq!(proxy.stats().faults.len(), 3, "{:?}", proxy.stats().faults);
    assert!(count(&v, "timeouts") >= 3, "{v}");
    eprintln!("three stalls cut off at 2 s each: the run took {took:?}");
    shop.check();
}

#[test]
fn a_store_that_never_answers_fails_clearly_and_soon() {
    let shop = Shop::new("stall-all", 2, &[]);
    let proxy = Proxy::start();
    proxy.rule(Match::any(), Fault::Stall, None);
    let started = Instant::now();
    let out = mediashift([
        "plan",
        &shop.tree.path().display().to_string(),
        &shop.target.url(),
        "--endpoint-url",
        &proxy.endpoint,
        "--request-timeout",
        "1s",
        "--max-attempts",
        "2",
    ]);
    let took = started.elapsed();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("raise --request-timeout"), "{err}");
    assert!(err.contains(&proxy.endpoint), "names the endpoint: {err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn ctrl_c_during_a_stall_ends_within_the_stop_timeout_and_a_second_at_once() {
    let shop = Shop::new("stall-stop", 24, &[]);
    let proxy = Proxy::start();
    // This file's PUT never gets an answer (and the request timeout is
    // long), so only the stop can end the run.
    proxy.rule(Match::method("PUT").target("img-7.jpg"), Fault::Stall, None);
    let long = ["--request-timeout", "10m"];

    // Two Ctrl-Cs: the second ends the run at once, stop timeout or not.
    let mut args = shop.args(&proxy, &long);
    args.extend(["--stop-timeout".into(), "10m".into()]);
    let child = spawn_mediashift(&args, &[]);
    until_faults(&proxy, 1);
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    interrupt(&child);
    let out = wait_with_timeout(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "the second Ctrl-C took {:?}",
        second.elapsed()
    );

    // One Ctrl-C: requests in flight get --stop-timeout, then the run
    // writes its maps and ends.
    let mut args = shop.args(&proxy, &long);
    args.extend(["--stop-timeout".into(), "2s".into()]);
    let child = spawn_mediashift(&args, &[]);
    until_faults(&proxy, 2);
    std::thread::sleep(Duration::from_millis(500));
    let stopped = Instant::now();
    interrupt(&child);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    let took = stopped.elapsed();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        took < Duration::from_secs(8),
        "one Ctrl-C with --stop-timeout 2s took {took:?}"
    );
    let v = doc(&out);
    let rows = shop.map_rows();
    assert_eq!(rows.len() as u64, count(&v, "map_entries"), "{v}");
    assert!(!rows.is_empty(), "the maps hold what is done: {v}");
    assert!(
        rows.iter().all(|r| !r["old_url"].contains("img-7.jpg")),
        "the stalled file is not in the maps"
    );
    assert!(count(&v, "objects_interrupted") >= 1, "{v}");

    // The journal was left consistent both times: the next run finishes.
    proxy.clear();
    let (out, v, _) = shop.run(&proxy, &[], Duration::from_secs(60));
    clean(&out, &v);
    shop.check();
}

#[test]
fn throttling_above_eight_in_flight_lowers_concurrency_and_nothing_fails() {
    let shop = Shop::new("throttle-8", 150, &[12 * MIB]);
    let proxy = Proxy::start();
    let mut m = Match::any();
    m.in_flight_above = Some(8);
    proxy.rule(m, Fault::SlowDown, None);
    // The default --concurrency (64) is the ceiling.
    let (out, v, took) = shop.run(&proxy, &[], Duration::from_secs(180));
    let answers = proxy.stats().answers;
    let slow = answers.iter().filter(|(_, s)| *s == 503).count();
    eprintln!(
        "503 above 8 in flight: {slow} of {} answers, concurrency {}-{}, {took:?}",
        answers.len(),
        v["concurrency_min"],
        v["concurrency_max"]
    );
    clean(&out, &v);
    // Concurrency backs off: a quarter of the requests at most are
    // throttled (with a fixed 64, most of them are).
    assert!(
        slow * 4 < answers.len(),
        "{slow} of {} requests throttled",
        answers.len()
    );
    let throttled = count(&v, "throttled_requests");
    assert!(throttled > 0, "the proxy throttled nothing: {v}");
    assert_eq!(slow as u64, throttled, "every 503 is counted");
    assert!(count(&v, "concurrency_min") <= 8, "{v}");
    shop.check();
}

#[test]
fn slow_down_on_half_the_requests_still_completes() {
    let shop = Shop::new("throttle-half", 40, &[12 * MIB]);
    let proxy = Proxy::seeded(7);
    let mut m = Match::any();
    m.rate = Some(0.5);
    proxy.rule(m, Fault::SlowDown, None);
    // Few attempts: throttling must not spend them.
    let (out, v, _) = shop.run(&proxy, &["--max-attempts", "2"], Duration::from_secs(180));
    clean(&out, &v);
    assert!(count(&v, "throttled_requests") > 20, "{v}");
    shop.check();
}

#[test]
fn an_unreachable_store_mid_run_is_waited_for() {
    let shop = Shop::new("unreachable", 120, &[12 * MIB]);
    let proxy = Proxy::start();
    let child = spawn_mediashift(shop.args(&proxy, &["--max-rps", "30"]), &[]);
    let start = Instant::now();
    until_requests(&proxy, 40);
    proxy.refuse_for(Duration::from_secs(8));
    let out = wait_with_timeout(child, Duration::from_secs(120));
    let v = doc(&out);
    clean(&out, &v);
    assert!(count(&v, "unreachable_requests") > 0, "{v}");
    assert!(start.elapsed() > Duration::from_secs(8));
    shop.check();
}

#[test]
fn a_store_gone_for_longer_than_the_unreachable_timeout_fails_the_files_clearly() {
    let shop = Shop::new("unreachable-long", 60, &[]);
    let proxy = Proxy::start();
    let child = spawn_mediashift(
        shop.args(&proxy, &["--max-rps", "20", "--unreachable-timeout", "3s"]),
        &[],
    );
    until_requests(&proxy, 20);
    proxy.refuse_for(Duration::from_secs(25));
    let gone = Instant::now();
    let out = wait_with_timeout(child, Duration::from_secs(60));
    let took = gone.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < Duration::from_secs(20), "took {took:?} to give up");
    let v = doc(&out);
    let failed = v["failed"].as_array().unwrap();
    assert!(!failed.is_empty(), "{v}");
    for f in failed {
        let e = f["error"].as_str().unwrap();
        assert!(e.contains("cannot reach"), "{e}");
        assert!(e.contains("still so after 3s"), "{e}");
    }
    // What was done is in the maps; the rest is for the next run.
    assert_eq!(shop.map_rows().len() as u64, count(&v, "map_entries"));
}

#[test]
fn a_read_error_in_the_middle_of_a_file_fails_that_file_only() {
    let shop = Shop::new("read-error", 10, &[12 * MIB]);
    let proxy = Proxy::start();
    let (out, v, _) = shop.run_env(
        &proxy,
        &[],
        &[("MEDIASHIFT_TEST_READ_ERROR", "video/v0.mp4@6000000")],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{v}");
    assert_eq!(failed[0]["path"], "video/v0.mp4");
    let e = failed[0]["error"].as_str().unwrap();
    assert!(e.contains("Input/output error"), "{e}");
    assert_eq!(shop.map_rows().len(), 10, "the other files carry on");
    // The disk is healed: the next run uploads the video.
    let (out, v, _) = shop.run(&proxy, &[], Duration::from_secs(60));
    clean(&out, &v);
    shop.check();
}

#[test]
fn without_a_terminal_a_status_line_is_printed_every_interval() {
    let shop = Shop::new("status-lines", 10, &[12 * MIB]);
    let proxy = Proxy::start();
    // 12 MiB at 4 MiB/s (a second's worth may go at once): 2 s or more.
    let (out, v, took) = shop.run(
        &proxy,
        &["--max-bandwidth", "4MiB/s", "--progress-interval", "500ms"],
        Duration::from_secs(60),
    );
    clean(&out, &v);
    assert!(
        took >= Duration::from_millis(1800),
        "the cap did not hold: {took:?}"
    );
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("mediashift: uploading "))
        .collect();
    assert!(lines.len() >= 2, "status lines: {err}");
    assert!(lines[0].contains("concurrency"), "{}", lines[0]);
    assert!(!err.contains('\x1b'), "no ANSI codes: {err}");
    shop.check();
}
