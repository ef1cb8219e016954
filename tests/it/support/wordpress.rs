//! WordPress for one test: Debian's `wordpress` package (WordPress 6.1,
//! in /usr/share/wordpress) run by PHP's command line, with a config of
//! our own, against a database of a test's private MariaDB
//! ([`super::mariadb`]). Its `wp-content` (and so the uploads) is in a
//! temporary directory. No web server: a test runs PHP snippets inside
//! WordPress ([`WordPress::run`]) and gets their result back as JSON.
//!
//! `scripts/ensure-wordpress` installs the package, php-cli, php-mysql
//! and php-gd when they are missing; `scripts/ensure-db-tools` MariaDB.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

use super::mariadb::{self, MariaDb};
use super::{stderr, stdout};

/// Where Debian's package puts WordPress (`ABSPATH`).
pub const ABSPATH: &str = "/usr/share/wordpress/";
const INSTALL: &str = "scripts/ensure-wordpress (or: apt-get install --no-install-recommends \
     wordpress php-cli php-mysql php-gd)";

/// Runs `scripts/ensure-db-tools` and `scripts/ensure-wordpress` once per
/// test binary: fails with the install command, never skips.
pub fn ensure_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        mariadb::ensure_tools();
        super::run_ensure_script("ensure-wordpress", INSTALL);
        assert!(
            Path::new(ABSPATH).join("wp-settings.php").is_file(),
            "{ABSPATH}wp-settings.php is missing after scripts/ensure-wordpress: install it with {INSTALL}"
        );
        for ext in ["mysqli", "gd"] {
            let ok = Command::new("php")
                .args(["-r", &format!("exit(extension_loaded('{ext}') ? 0 : 1);")])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "PHP has no {ext} extension: install it with {INSTALL}");
        }
    });
}

/// The config WordPress loads instead of its wp-config.php: the database
/// named by `MEDIASHIFT_WP_DB` on the test's socket, `wp-content` in the
/// temporary directory, no cron, no HTTP requests out, no mail, and a
/// request for `http://HOST/` as far as `$_SERVER` says.
const BOOTSTRAP: &str = r#"<?php
define('DB_NAME', getenv('MEDIASHIFT_WP_DB'));
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', 'localhost:@SOCKET@');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
$table_prefix = 'wp_';
define('WP_CONTENT_DIR', '@CONTENT@');
define('ABSPATH', '@ABSPATH@');
define('WP_DEBUG', false);
define('DISABLE_WP_CRON', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
if (getenv('MEDIASHIFT_WP_INSTALLING')) {
    define('WP_INSTALLING', true);
}
$_SERVER['HTTP_HOST'] = '@HOST@';
$_SERVER['SERVER_NAME'] = '@HOST@';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
// wp_install() mails the admin: there is no mail here. (pluggable.php
// defines wp_mail only if it is not defined yet.)
function wp_mail() { return true; }
require_once ABSPATH . 'wp-settings.php';
require_once ABSPATH . 'wp-admin/includes/image.php';
require_once ABSPATH . 'wp-admin/includes/file.php';
require_once ABSPATH . 'wp-admin/includes/media.php';
"#;

/// A snippet's frame: WordPress loaded, `$in` the input, the snippet's
/// `return` value written as JSON to the file named by the second
/// argument (stdout is WordPress's to print on).
const FRAME: &str = r#"<?php
require '@BOOTSTRAP@';
$in = json_decode(file_get_contents($argv[1]), true, 512, JSON_THROW_ON_ERROR);
$result = (function ($in) {
@CODE@
})($in);
file_put_contents($argv[2], json_encode($result, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR));
"#;

/// Installs WordPress (`wp_install`) and sets its `siteurl` and `home`.
const INSTALL_PHP: &str = r#"
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$r = wp_install('Shop', 'admin', 'admin@shop.test', false, '', wp_generate_password(), '');
update_option('siteurl', $in['site']);
update_option('home', $in['site']);
return ['user_id' => $r['user_id'], 'version' => $GLOBALS['wp_version']];
"#;

/// A WordPress install.
pub struct WordPress {
    dir: tempfile::TempDir,
    bootstrap: PathBuf,
    /// The WordPress version that runs (`$wp_version`).
    pub version: String,
    /// The administrator's user id.
    pub admin: u64,
    runs: AtomicU32,
}

impl WordPress {
    /// Creates the database `name` on `db` and installs WordPress in it,
    /// with `siteurl` and `home` set to `http://HOST`.
    pub fn install(db: &MariaDb, name: &str, host: &str) -> Self {
        ensure_tools();
        db.sql(
            "",
            &format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci"
            ),
        );
        let dir = tempfile::Builder::new()
            .prefix("mediashift-wordpress-")
            .tempdir()
            .expect("temp dir");
        let content = dir.path().join("wp-content");
        std::fs::create_dir_all(content.join("uploads")).unwrap();
        let socket = db.socket().display().to_string();
        let content_s = content.display().to_string();
        for p in [&socket, &content_s] {
            assert!(
                !p.contains(['\'', '\\']),
                "{p}: a path with a quote or backslash cannot go in the PHP config"
            );
        }
        let bootstrap = dir.path().join("bootstrap.php");
        std::fs::write(
            &bootstrap,
            BOOTSTRAP
                .replace("@SOCKET@", &socket)
                .replace("@CONTENT@", &content_s)
                .replace("@ABSPATH@", ABSPATH)
                .replace("@HOST@", host),
        )
        .unwrap();
        let mut wp = Self {
            dir,
            bootstrap,
            version: String::new(),
            admin: 0,
            runs: AtomicU32::new(0),
        };
        let site = format!("http://{host}");
        let out = wp.run_as(name, "install", INSTALL_PHP, &json!({ "site": site }), true);
        wp.version = out["version"].as_str().unwrap_or_default().to_string();
        wp.admin = out["user_id"].as_u64().expect("wp_install gives a user id");
        wp
    }

    /// `wp-content/uploads`: WordPress's upload directory.
    pub fn uploads(&self) -> PathBuf {
        self.dir.path().join("wp-content").join("uploads")
    }

    /// A scratch directory beside the install (not under wp-content).
    pub fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("scratch");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Runs `code`, the body of a PHP function of `$in` (the JSON `input`
    /// decoded to arrays), inside WordPress loaded on the database `db`;
    /// what it returns comes back as JSON. Fails on a PHP error or
    /// warning (deprecations are WordPress 6.1's own on PHP 8.2, and
    /// ignored), with what PHP printed.
    pub fn run(&self, db: &str, what: &str, code: &str, input: &Value) -> Value {
        self.run_as(db, what, code, input, false)
    }

    fn run_as(&self, db: &str, what: &str, code: &str, input: &Value, installing: bool) -> Value {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let base = self.dir.path().join(format!("run-{n:02}-{what}"));
        let script = base.with_extension("php");
        let input_path = base.with_extension("in.json");
        let output_path = base.with_extension("out.json");
        std::fs::write(
            &script,
            FRAME
                .replace("@BOOTSTRAP@", &self.bootstrap.display().to_string())
                .replace("@CODE@", code),
        )
        .unwrap();
        std::fs::write(&input_path, serde_json::to_vec(input).unwrap()).unwrap();
        let mut cmd = Command::new("php");
        cmd.args([
            "-d",
            "display_errors=0",
            "-d",
            "log_errors=1",
            "-d",
            "error_log=",
            "-d",
            "error_reporting=E_ALL & ~E_DEPRECATED",
        ])
        .arg(&script)
        .arg(&input_path)
        .arg(&output_path)
        .env("MEDIASHIFT_WP_DB", db);
        if installing {
            cmd.env("MEDIASHIFT_WP_INSTALLING", "1");
        }
        let out = cmd.output().expect("run php");
        let err = stderr(&out);
        let problems: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("PHP ") && !l.starts_with("PHP Deprecated:"))
            .collect();
        assert!(
            out.status.success() && problems.is_empty() && output_path.exists(),
            "WordPress ({what}, {}) failed ({}):\n{}\nstdout: {}\nstderr: {err}",
            script.display(),
            out.status,
            problems.join("\n"),
            stdout(&out)
        );
        serde_json::from_slice(&std::fs::read(&output_path).unwrap())
            .unwrap_or_else(|e| panic!("WordPress ({what}): its result is not JSON ({e})"))
    }
}
