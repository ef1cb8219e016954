//! Real web servers for the tests: Apache (Debian's apache2) on a free
//! loopback port with a configuration a test writes, stopped when dropped.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::stop_child;

/// A server process on `port`, stopped with `signal` when dropped.
pub struct WebServer {
    pub child: Child,
    pub port: u16,
    signal: i32,
    dir: tempfile::TempDir,
}

impl WebServer {
    /// The server's error log.
    pub fn error_log(&self) -> std::path::PathBuf {
        self.dir.path().join("error.log")
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        stop_child(&mut self.child, self.signal);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `child` listens on `port`; if it exits first, panics with
/// its stderr and `log`.
pub fn wait_listening(child: &mut Child, port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut err);
            }
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}): {err}{log}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An Apache binary (or its tools) from Debian's apache2.
pub fn apache_binary(name: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(name);
    assert!(
        p.exists(),
        "{name} is not installed: run scripts/ensure-web-servers (or apt-get install apache2)"
    );
    p
}

/// Lets Apache's children (they run as www-data) read `path`, everything
/// under it, and the directories above it that a test created.
pub fn readable(path: &Path) {
    for e in walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
    {
        let mode = if e.file_type().is_dir() { 0o755 } else { 0o644 };
        let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode));
    }
    let mut p = path.parent();
    while let Some(d) = p {
        if d == Path::new("/tmp") || d == Path::new("/") {
            break;
        }
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
        p = d.parent();
    }
}

/// Apache on a free loopback port: the server-wide part of the
/// configuration (modules, logs, `Listen`) is written here, and `site`
/// (given the server's directory and port) adds the rest, such as a
/// DocumentRoot and a VirtualHost. `log_level` is Apache's LogLevel.
pub fn apache(log_level: &str, site: impl FnOnce(&Path, u16) -> String) -> WebServer {
    let dir = tempfile::Builder::new()
        .prefix("mediashift-apache-")
        .tempdir()
        .unwrap();
    let port = free_port();
    let d = dir.path().display();
    let m = "/usr/lib/apache2/modules";
    let conf = format!(
        r#"ServerRoot "{d}"
Listen 127.0.0.1:{port}
PidFile {d}/httpd.pid
ErrorLog {d}/error.log
LogLevel {log_level}
DefaultRuntimeDir {d}
Mutex file:{d} default
LoadModule mpm_prefork_module {m}/mod_mpm_prefork.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule rewrite_module {m}/mod_rewrite.so
User www-data
Group www-data
ServerName localhost
StartServers 1
{}
"#,
        site(dir.path(), port)
    );
    std::fs::write(dir.path().join("httpd.conf"), conf).unwrap();
    readable(dir.path());
    // Its own process group: Apache signals its whole group when it stops,
    // which would otherwise be the test runner's.
    let mut child = Command::new(apache_binary("apache2"))
        .process_group(0)
        .arg("-f")
        .arg(dir.path().join("httpd.conf"))
        .arg("-DFOREGROUND")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start apache2");
    wait_listening(&mut child, port, "apache2", &dir.path().join("error.log"));
    WebServer {
        child,
        port,
        signal: libc::SIGTERM,
        dir,
    }
}

/// The top of a test nginx's configuration in `dir`: in the foreground,
/// one process, its pid file and error log in `dir`.
pub fn nginx_main(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n"
    )
}

/// The lines a test nginx's `http` block starts with: no access log, its
/// temporary files in `dir`.
pub fn nginx_http_prelude(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n"
    )
}

/// A whole test nginx configuration in `dir` whose `http` block holds
/// `http` (maps, servers).
pub fn nginx_conf(dir: &Path, http: &str) -> String {
    format!(
        "{}http {{\n{}{http}}}\n",
        nginx_main(dir),
        nginx_http_prelude(dir)
    )
}

/// nginx (Debian's nginx-light) from a configuration `conf` in `dir`,
/// listening on `port`, stopped with SIGQUIT when dropped.
pub fn nginx_in(dir: tempfile::TempDir, port: u16, conf: &str) -> WebServer {
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx is not installed: run scripts/ensure-web-servers");
    wait_listening(&mut child, port, "nginx", &dir.path().join("error.log"));
    WebServer {
        child,
        port,
        signal: libc::SIGQUIT,
        dir,
    }
}
