//! `verify --via-url`: the switch checked before it is flipped, as the
//! application's visitors will see it, against the real server (private,
//! then public by a bucket policy) and an nginx in front of it standing in
//! for a CDN.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::migrate::{csv_rows, migrate_args};
use crate::support::web::{WebServer, free_port, nginx_conf, nginx_in};
use crate::support::{Target, Tree, bytes, json as doc, mediashift, server, stderr, target};

const CACHE: &str = "public, max-age=31536000, immutable";

/// A few files as a shop has them: a duplicate, a raw space, an accent.
fn shop() -> Tree {
    let tree = Tree::new();
    tree.file("2024/11/product.jpg", &bytes(1, 4_000))
        .file("2024/11/product-1.jpg", &bytes(1, 4_000))
        .file("2024/11/sunset beach.jpg", &bytes(2, 3_000))
        .file("2024/11/café.png", &bytes(3, 2_000))
        .file("2024/11/clip.webm", &bytes(4, 5_000));
    tree
}

const FILES: u64 = 5;

fn migrate(tree: &Tree, t: &Target, maps: &Path, extra: &[&str]) {
    let mut all = vec!["--cache-control", CACHE];
    all.extend_from_slice(extra);
    let out = mediashift(migrate_args(tree, t, maps, &all));
    assert!(out.status.success(), "migrate: {}", stderr(&out));
}

/// `verify --via-url BASE --json` (and `extra`).
fn via(tree: &Tree, t: &Target, maps: &Path, base: &str, extra: &[&str]) -> (Output, Value) {
    let mut args = vec![
        "verify".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--state".into(),
        maps.join("state").display().to_string(),
        "--via-url".into(),
        base.to_string(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = mediashift(args);
    let v = doc(&out);
    (out, v)
}

/// Every problem's detail, each containing `needle`.
fn all_say(v: &Value, needle: &str) {
    let problems = v["problems"].as_array().expect("problems");
    assert_eq!(problems.len() as u64, FILES, "{v}");
    for p in problems {
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{needle:?} not in {detail:?}: {v}");
    }
}

/// An nginx in front of the server, as a CDN: the same paths, with the
/// Cache-Control replaced by its own.
fn cdn() -> WebServer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let upstream = server().endpoint.trim_start_matches("http://").to_string();
    let conf = nginx_conf(
        dir.path(),
        &format!(
            r#"    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            proxy_hide_header Cache-Control;
            add_header Cache-Control "max-age=300";
        }}
    }}
"#
        ),
    );
    nginx_in(dir, port, &conf)
}

#[test]
fn the_switch_is_checked_as_a_visitor_would_see_it() {
    let tree = shop();
    let t = target("via-url");
    let maps = tempfile::tempdir().unwrap();
    migrate(&tree, &t, maps.path(), &[]);
    let base = format!("{}/{}/{}", server().endpoint, t.bucket, t.prefix);

    // Not public yet: every file refused to an anonymous visitor.
    let (out, v) = via(&tree, &t, maps.path(), &base, &[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_ok"], 0, "{v}");
    all_say(&v, "anonymous");

    // Public: every file, the duplicate and the raw space included, as
    // migrated (status, length, Content-Type, Cache-Control).
    t.make_public();
    for deep in [&[][..], &["--deep"][..]] {
        let (out, v) = via(&tree, &t, maps.path(), &base, deep);
        assert!(out.status.success(), "{deep:?}: {}\n{v}", stderr(&out));
        assert_eq!(v["files_ok"], FILES, "{v}");
        assert_eq!(v["statuses"]["200"], FILES, "{v}");
    }

    // A wrong prefix: nothing there.
    let (out, v) = via(&tree, &t, maps.path(), &format!("{base}nope/"), &[]);
    assert_eq!(out.status.code(), Some(1), "{v}");
    all_say(&v, "HTTP 404");

    // Through a CDN that replaces the cache header: each file says so.
    let cdn = cdn();
    let through = format!("http://127.0.0.1:{}/{}/{}", cdn.port, t.bucket, t.prefix);
    let (out, v) = via(&tree, &t, maps.path(), &through, &[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v}", stderr(&out));
    all_say(
        &v,
        "Cache-Control max-age=300, not public, max-age=31536000",
    );
    let text = mediashift([
        "verify".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--state".into(),
        maps.path().join("state").display().to_string(),
        "--via-url".into(),
        through.clone(),
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("0 of 5 files served as migrated")
            && text.contains("2024/11/sunset beach.jpg (")
            && text.contains("Fix these before pointing the application at"),
        "{text}"
    );

    // A bad base is refused at once, naming the flag.
    let out = mediashift([
        "verify".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--via-url".into(),
        "ftp://cdn.example/".into(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--via-url ftp://cdn.example/"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn under_the_content_layout_each_files_new_url_is_checked() {
    let tree = shop();
    let t = target("via-url-content");
    let maps = tempfile::tempdir().unwrap();
    migrate(&tree, &t, maps.path(), &["--key-layout", "content"]);
    t.make_public();
    let public = format!("{}/{}/", server().endpoint, t.bucket);
    let (out, v) = via(&tree, &t, maps.path(), &public, &[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["files_ok"], FILES, "{v}");

    // An object gone: its file is reported at its new URL, the maps' own.
    let rows = csv_rows(&maps.path().join("map.csv"));
    let row = rows
        .iter()
        .find(|r| r["old_url"].ends_with("clip.webm"))
        .unwrap();
    t.delete(&row["key"]);
    let (out, v) = via(&tree, &t, maps.path(), &public, &[]);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["problems"][0]["path"], "2024/11/clip.webm", "{v}");
    assert_eq!(v["problems"][0]["url"], row["new_url"].as_str(), "{v}");
    assert_eq!(v["problems"][0]["status"], 404, "{v}");
}
