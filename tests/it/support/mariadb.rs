//! A private MariaDB for one test: its own data directory in a temporary
//! directory, reached only through a Unix socket there (no TCP), started
//! in its own process group and stopped when dropped. Never the system
//! instance: every client call names the socket and reads no option file.
//!
//! The tools come from Debian's mariadb-server and mariadb-client, which
//! `scripts/ensure-db-tools` installs when they are missing (with php-cli,
//! which the rewrite tests use to unserialize PHP values).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{stderr, stop_child};

const MARIADBD: &str = "/usr/sbin/mariadbd";
const INSTALL: &str =
    "scripts/ensure-db-tools (or: apt-get install mariadb-server mariadb-client php-cli)";

/// Runs `scripts/ensure-db-tools` once per test binary, then makes sure
/// every binary the tests use is there: fails with the install command,
/// never skips.
pub fn ensure_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        super::run_ensure_script("ensure-db-tools", INSTALL);
        for tool in [
            MARIADBD,
            "mariadb-install-db",
            "mariadb",
            "mariadb-dump",
            "php",
        ] {
            assert!(
                binary(tool).is_some(),
                "{tool} is missing after scripts/ensure-db-tools: install it with {INSTALL}"
            );
        }
    });
}

/// `name` as an absolute path, or on the PATH.
fn binary(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[allow(unsafe_code)]
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A running server.
pub struct MariaDb {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for MariaDb {
    /// SIGTERM is mariadbd's clean shutdown; SIGKILL if it lingers.
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM);
    }
}

impl MariaDb {
    /// Installs a fresh data directory and starts a server on it.
    pub fn start() -> Self {
        ensure_tools();
        let dir = tempfile::Builder::new()
            .prefix("mediashift-mariadb-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let socket = dir.path().join("sock");
        let log = dir.path().join("error.log");
        assert!(
            socket.as_os_str().len() < 100,
            "the socket path {} is too long for a Unix socket: set TMPDIR to a shorter directory",
            socket.display()
        );
        // As root, mariadbd refuses to run unless told to run as root.
        let user: Vec<String> = if running_as_root() {
            vec!["--user=root".into()]
        } else {
            Vec::new()
        };
        let install = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .args(&user)
            .output()
            .expect("run mariadb-install-db");
        assert!(
            install.status.success(),
            "mariadb-install-db failed ({}): {}{}",
            install.status,
            String::from_utf8_lossy(&install.stdout),
            stderr(&install)
        );
        // Its own process group: a signal to the test runner's group never
        // reaches it, and it never signals ours.
        let child = Command::new(MARIADBD)
            .process_group(0)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg("--skip-networking")
            .arg("--skip-log-bin")
            .arg("--character-set-server=utf8mb4")
            .arg("--collation-server=utf8mb4_unicode_ci")
            .arg("--innodb-buffer-pool-size=32M")
            .args(&user)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let mut db = Self { child, socket, dir };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = db.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("mariadbd exited ({status}):\n{log}");
            }
            if db.socket.exists()
                && db
                    .client(None)
                    .arg("-e")
                    .arg("SELECT 1")
                    .output()
                    .is_ok_and(|o| o.status.success())
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mariadbd did not answer on {} within 30 s:\n{}",
                db.socket.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        db
    }

    /// The server's temporary directory (dumps go there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's Unix socket (for clients other than `mariadb`, such as
    /// PHP's mysqli: `localhost:/path/to/sock`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The `mariadb` client on this server's socket, as root, utf8mb4.
    fn client(&self, db: Option<&str>) -> Command {
        let mut c = Command::new("mariadb");
        c.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--user=root", "--default-character-set=utf8mb4"])
            .stdin(Stdio::null());
        if let Some(db) = db {
            c.arg(format!("--database={db}"));
        }
        c
    }

    fn checked(what: &str, out: Output) -> Output {
        assert!(
            out.status.success(),
            "{what} failed ({}): {}",
            out.status,
            stderr(&out)
        );
        out
    }

    /// Runs `stmt` (one or more statements) in `db` ("" for none).
    pub fn sql(&self, db: &str, stmt: &str) {
        let out = self
            .client((!db.is_empty()).then_some(db))
            .arg("-e")
            .arg(stmt)
            .output()
            .expect("run mariadb");
        Self::checked(&format!("mariadb -e {stmt:?}"), out);
    }

    /// The result of `sql` in `db`: tab-separated rows, one a line, no
    /// header, values as they are (`--batch --raw`).
    pub fn query(&self, db: &str, sql: &str) -> String {
        let out = self
            .client(Some(db))
            .args(["--batch", "--raw", "--skip-column-names", "-e"])
            .arg(sql)
            .output()
            .expect("run mariadb");
        let out = Self::checked(&format!("mariadb -e {sql:?}"), out);
        String::from_utf8(out.stdout).expect("query output is UTF-8")
    }

    /// Runs the SQL file `file` in `db` through the client, as a dump is
    /// imported.
    pub fn import(&self, db: &str, file: &Path) {
        let input =
            std::fs::File::open(file).unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
        let out = self
            .client(Some(db))
            .stdin(input)
            .output()
            .expect("run mariadb");
        Self::checked(&format!("importing {} into {db}", file.display()), out);
    }

    /// `mariadb-dump` of `db` (its default options: extended inserts,
    /// locks, charset header; no dump date) into `<dir>/<db>.sql`.
    pub fn dump(&self, db: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{db}.sql"));
        let file = std::fs::File::create(&path).expect("create dump file");
        let out = Command::new("mariadb-dump")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--user=root", "--skip-dump-date", db])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::piped())
            .output()
            .expect("run mariadb-dump");
        Self::checked(&format!("mariadb-dump {db}"), out);
        path
    }
}
