//! The nginx map, tested with a real nginx: every old path must answer 301
//! to its new URL, and that URL must serve the file's bytes from the S3
//! endpoint (a signed GET of exactly that URL).

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::migrate::{csv_rows, hex, migrate_in, migrated_weird_tree};
use crate::support::web::nginx_conf;
use crate::support::{Tree, bytes, get_raw, signed_get, stderr, target};

struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// A graceful stop (SIGQUIT), then SIGKILL if it lingers. It runs with
    /// `master_process off`, so there is no worker left behind either way.
    fn drop(&mut self) {
        crate::support::stop_child(&mut self.child, libc::SIGQUIT);
    }
}

fn nginx_binary() -> String {
    for p in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!(
        "nginx is not installed: run scripts/ensure-web-servers (or apt-get install nginx-light)"
    );
}

/// A config for a test nginx serving `map` on a free loopback port, the
/// snippet of the README: (its directory, the port).
fn config(map: &std::path::Path) -> (tempfile::TempDir, u16) {
    let dir = tempfile::Builder::new()
        .prefix("mediashift-nginx-")
        .tempdir()
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = nginx_conf(
        dir.path(),
        &format!(
            r#"    map_hash_bucket_size 512;
    map $uri $mediashift_url {{
        default "";
        include {map};
    }}
    server {{
        listen 127.0.0.1:{port};
        location /media/ {{
            if ($mediashift_url) {{
                return 301 $mediashift_url$is_args$args;
            }}
            return 404;
        }}
    }}
"#,
            map = map.display()
        ),
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    (dir, port)
}

fn nginx_args(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    vec![
        "-p".into(),
        dir.into(),
        "-c".into(),
        dir.join("nginx.conf").into(),
        "-e".into(),
        dir.join("error.log").into(),
    ]
}

/// `nginx -t` with the map: does nginx accept it?
fn nginx_test(map: &std::path::Path) -> std::process::Output {
    let (dir, _) = config(map);
    Command::new(nginx_binary())
        .arg("-t")
        .args(nginx_args(dir.path()))
        .output()
        .expect("nginx -t")
}

fn start_nginx(map: &std::path::Path) -> Nginx {
    let (dir, port) = config(map);
    let child = Command::new(nginx_binary())
        .args(nginx_args(dir.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    let mut nginx = Nginx {
        child,
        port,
        _dir: dir,
    };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = nginx.child.try_wait() {
            let mut err = String::new();
            nginx
                .child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("nginx exited ({status}): {err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nginx did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
}

#[test]
fn nginx_redirects_every_old_path_to_a_url_that_serves_the_file() {
    let (_tree, files, _t, maps) = migrated_weird_tree("nginx-map");

    let nginx = start_nginx(&maps.path().join("nginx.map"));
    let rows = csv_rows(&maps.path().join("map.csv"));
    assert_eq!(rows.len(), files.len());
    for row in &rows {
        let (status, location) = get_raw(nginx.port, &row["old_url"]);
        assert_eq!(status, 301, "{} was not redirected", row["old_url"]);
        assert_eq!(
            location.as_deref(),
            Some(row["new_url"].as_str()),
            "{}",
            row["old_url"]
        );
        let body = signed_get(&row["new_url"]);
        assert_eq!(
            hex(&body),
            row["sha256"],
            "{} serves other bytes",
            row["new_url"]
        );
    }
    // A path that is not in the map is not redirected.
    assert_eq!(get_raw(nginx.port, "/media/not-migrated.jpg").0, 404);
    // $uri has no query string: a cache-buster finds the entry, and the
    // snippet passes it on.
    let row = &rows[0];
    let (status, location) = get_raw(nginx.port, &format!("{}?v=123", row["old_url"]));
    assert_eq!(status, 301);
    assert_eq!(location, Some(format!("{}?v=123", row["new_url"])));
}

#[test]
fn names_equal_but_for_case_each_redirect_to_their_own_object() {
    let tree = Tree::new();
    let (upper, lower, other) = (bytes(31, 900), bytes(32, 901), bytes(33, 902));
    tree.file("Case/Photo.jpg", &upper)
        .file("Case/photo.jpg", &lower)
        .file("Case/PHOTO.jpg", &other)
        .file("plain.jpg", &bytes(34, 903));
    let t = target("nginx-case");
    let maps = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, maps.path(), &[], &[]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    let map = maps.path().join("nginx.map");
    // nginx -t accepts the map (plain strings would be "conflicting").
    let test = nginx_test(&map);
    assert!(test.status.success(), "nginx -t: {}", stderr(&test));
    let nginx = start_nginx(&map);
    for (name, data) in [
        ("Case/Photo.jpg", &upper),
        ("Case/photo.jpg", &lower),
        ("Case/PHOTO.jpg", &other),
    ] {
        let (status, location) = get_raw(nginx.port, &format!("/media/{name}"));
        assert_eq!(status, 301, "{name}");
        let body = signed_get(&location.unwrap());
        assert!(body == *data, "{name} redirects to another object");
    }
    assert_eq!(
        get_raw(nginx.port, "/media/case/photo.jpg").0,
        404,
        "no fourth name matches"
    );
    assert_eq!(get_raw(nginx.port, "/media/plain.jpg").0, 301);
}
