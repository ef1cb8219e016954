//! The nginx map, tested with a real nginx: every old path must answer 301
//! to its new URL, and that URL must serve the file's bytes from the S3
//! endpoint (a signed GET of exactly that URL).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::migrate::{MULTIPART_FLAGS, csv_rows, hex, migrate_in, weird_tree};
use crate::support::{server, stderr, target};

struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> String {
    for p in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("nginx is not installed: run scripts/ensure-nginx (or apt-get install nginx-light)");
}

fn start_nginx(map: &std::path::Path) -> Nginx {
    let dir = tempfile::Builder::new()
        .prefix("mediashift-nginx-")
        .tempdir()
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.path().display();
    let conf = format!(
        r#"daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    map_hash_bucket_size 512;
    map $uri $mediashift_url {{
        default "";
        include {map};
    }}
    server {{
        listen 127.0.0.1:{port};
        location /media/ {{
            if ($mediashift_url) {{
                return 301 $mediashift_url;
            }}
            return 404;
        }}
    }}
}}
"#,
        map = map.display()
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-e")
        .arg(dir.path().join("error.log"))
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

/// A raw HTTP/1.0 GET: (status, Location header).
fn get_raw(port: u16, path: &str) -> (u16, Option<String>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
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
fn signed_get(url: &str) -> Vec<u8> {
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

#[test]
fn nginx_redirects_every_old_path_to_a_url_that_serves_the_file() {
    let (tree, files) = weird_tree();
    let t = target("nginx-map");
    let maps = tempfile::tempdir().unwrap();
    let (out, v) = migrate_in(&tree, &t, maps.path(), &MULTIPART_FLAGS, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "only the non-UTF-8 name fails\n{}",
        stderr(&out)
    );
    assert_eq!(v["failed"].as_array().unwrap().len(), 1);

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
}
