//! What `scripts/release` puts in dist/, checked as a shop's server would
//! meet it: a binary that asks for no glibc newer than 2.17, run on a
//! Debian 11 userland (glibc 2.31) against the real S3 server; the .deb
//! installed there with dpkg, its man pages and bash completion used, then
//! removed; the .rpm's metadata and file list; SHA256SUMS.
//!
//! The first test to need dist/ runs `scripts/release` (once per test
//! binary), which rebuilds only what changed: `scripts/test` runs it before
//! the tests, so here it takes seconds; run alone on a cold tree it builds
//! the release binary first (several minutes). The Debian 11 userland is
//! made once by `scripts/ensure-bullseye-chroot` (cached under .tools/) and
//! copied for each test, which then changes only its copy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::support::{REPO, bytes, run_ensure_script, server, stderr, stdout, target};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The oldest glibc the binary must start on (the Rust toolchain's own
/// floor for x86_64-unknown-linux-gnu).
const GLIBC_FLOOR: (u32, u32) = (2, 17);

/// The artifacts of one `scripts/release` run.
struct Dist {
    dir: PathBuf,
    tarball: PathBuf,
    deb: PathBuf,
    rpm: PathBuf,
    /// The tarball unpacked: `<unpacked>/mediashift-VERSION-x86_64-linux-gnu/`.
    unpacked: tempfile::TempDir,
}

impl Dist {
    fn top(&self) -> PathBuf {
        self.unpacked
            .path()
            .join(format!("mediashift-{VERSION}-x86_64-linux-gnu"))
    }

    fn binary(&self) -> PathBuf {
        self.top().join("mediashift")
    }
}

fn dist() -> &'static Dist {
    static DIST: OnceLock<Dist> = OnceLock::new();
    DIST.get_or_init(|| {
        let out = Command::new(format!("{REPO}/scripts/release"))
            .output()
            .expect("cannot run scripts/release");
        assert!(
            out.status.success(),
            "scripts/release failed ({}):\n{}\nRun it by hand to see the whole log: scripts/release",
            out.status,
            tail(&stderr(&out), 60)
        );
        let dir = Path::new(REPO).join("dist");
        let tarball = dir.join(format!("mediashift-{VERSION}-x86_64-linux-gnu.tar.gz"));
        let deb = dir.join(format!("mediashift_{VERSION}-1_amd64.deb"));
        let rpm = dir.join(format!("mediashift-{VERSION}-1.x86_64.rpm"));
        for f in [&tarball, &deb, &rpm] {
            assert!(f.is_file(), "scripts/release made no {}", f.display());
        }
        let unpacked = tempfile::tempdir().unwrap();
        run_ok(
            Command::new("tar")
                .arg("-xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(unpacked.path()),
        );
        Dist {
            dir,
            tarball,
            deb,
            rpm,
            unpacked,
        }
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The highest `GLIBC_x.y` among the versions of a binary's dynamic
/// symbols, as `objdump -T` lists them.
fn max_glibc(objdump_t: &str) -> Option<(u32, u32)> {
    objdump_t
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
}

#[test]
fn max_glibc_reads_objdump_s_symbol_versions() {
    let listing = "\
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.2.5) memcpy
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.34) __libc_start_main
0000000000000000  w   DF *UND*  0000000000000000 (GLIBC_2.17) clock_gettime
0000000000000000      DF *UND*  0000000000000000  GLIBC_2.3.4 __sprintf_chk
";
    assert_eq!(max_glibc(listing), Some((2, 34)));
    assert_eq!(max_glibc("no versions here"), None);
    assert!(max_glibc(listing).unwrap() > GLIBC_FLOOR);
}

#[test]
fn the_release_binary_asks_for_no_glibc_newer_than_2_17() {
    let d = dist();
    let out = run_ok(Command::new("objdump").arg("-T").arg(d.binary()));
    let max = max_glibc(&stdout(&out)).expect("objdump -T lists no GLIBC_ version");
    assert!(
        max <= GLIBC_FLOOR,
        "the release binary needs GLIBC_{}.{}: it would not start on a server with glibc {}.{} \
         (Debian 11 has 2.31, RHEL 8 2.28, Amazon Linux 2 2.26)",
        max.0,
        max.1,
        GLIBC_FLOOR.0,
        GLIBC_FLOOR.1
    );
    // It needs no shared library a minimal server may lack.
    let out = run_ok(Command::new("objdump").arg("-p").arg(d.binary()));
    let needed: BTreeSet<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(|l| l.trim().to_string())
        .collect();
    let glibc_and_gcc = [
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libgcc_s.so.1",
        "ld-linux-x86-64.so.2",
    ];
    for lib in &needed {
        assert!(
            glibc_and_gcc.contains(&lib.as_str()),
            "the binary needs {lib}, which is not part of glibc or libgcc: {needed:?}"
        );
    }
    // The release profile: stripped (no .symtab), and no test hooks.
    let out = run_ok(Command::new("objdump").arg("-h").arg(d.binary()));
    assert!(
        !stdout(&out).contains(".symtab"),
        "the binary is not stripped"
    );
    let binary = std::fs::read(d.binary()).unwrap();
    assert!(
        !binary.windows(15).any(|w| w == b"MEDIASHIFT_TEST"),
        "the test-hooks feature leaked into the release binary"
    );
}

/// A copy of the cached Debian 11 userland, removed when dropped, with the
/// S3 server's address and credentials for what runs in it.
struct Bullseye {
    dir: tempfile::TempDir,
}

impl Bullseye {
    fn new() -> Self {
        run_ensure_script(
            "ensure-bullseye-chroot",
            "apt-get install debootstrap && scripts/ensure-bullseye-chroot (as root)",
        );
        let cached = stdout(&run_ok(&mut Command::new(format!(
            "{REPO}/scripts/ensure-bullseye-chroot"
        ))))
        .trim()
        .to_string();
        let dir = tempfile::Builder::new()
            .prefix("mediashift-bullseye-")
            .tempdir()
            .unwrap();
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{cached}/."))
                .arg(dir.path()),
        );
        let me = Self { dir };
        // The userland it claims to be.
        let ldd = me.sh("ldd --version");
        assert!(
            stdout(&ldd).contains("GLIBC 2.31"),
            "not Debian 11's glibc: {}",
            stdout(&ldd)
        );
        me
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `chroot ROOT ARGS...` with a clean environment: PATH, HOME, a UTF-8
    /// locale and the S3 server's variables (a chroot shares the network,
    /// so the host's loopback server answers).
    fn cmd(&self, args: &[&str]) -> Command {
        let s = server();
        let mut cmd = Command::new("chroot");
        cmd.arg(self.root())
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .env("AWS_ENDPOINT_URL", &s.endpoint)
            .env("AWS_ACCESS_KEY_ID", &s.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &s.secret_key)
            .env("AWS_REGION", &s.region);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }

    fn sh(&self, script: &str) -> Output {
        run_ok(&mut self.cmd(&["/bin/sh", "-c", script]))
    }

    /// Every path in the userland, but those that change by merely using
    /// it (dpkg's database and logs, man's index cache, /tmp).
    fn paths(&self) -> BTreeSet<String> {
        let skip = ["var/lib/dpkg", "var/log", "var/cache", "tmp", "root"];
        walk(self.root())
            .into_iter()
            .filter(|p| {
                !skip
                    .iter()
                    .any(|s| p == s || p.starts_with(&format!("{s}/")))
            })
            .collect()
    }
}

/// Every path under `root`, relative, without following symbolic links.
fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// A few media files, one a duplicate, in `dir`.
fn media(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let files = vec![
        ("catalog/product/a/b/shoe.jpg".to_string(), bytes(1, 40_000)),
        (
            "catalog/product/a/b/shoe-2.png".to_string(),
            bytes(2, 7_000),
        ),
        ("wysiwyg/banner.webp".to_string(), bytes(3, 120_000)),
        (
            "catalog/product/c/d/copy-of-shoe.jpg".to_string(),
            bytes(1, 40_000),
        ),
    ];
    for (rel, body) in &files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    files
}

#[test]
fn the_release_binary_migrates_and_verifies_on_debian_11() {
    let d = dist();
    let os = Bullseye::new();
    std::fs::copy(d.binary(), os.root().join("usr/local/bin/mediashift")).unwrap();
    let files = media(&os.root().join("srv/shop/media"));
    let t = target("release-bullseye");

    let out = os.run(&["mediashift", "--version"]);
    assert!(
        out.status.success() && stdout(&out).trim() == format!("mediashift {VERSION}"),
        "--version on Debian 11: {}{}",
        stdout(&out),
        stderr(&out)
    );

    let common = [
        "/srv/shop/media",
        &t.url(),
        "--state",
        "/root/state",
        "--no-progress",
    ];
    let mut plan = vec!["mediashift", "plan"];
    plan.extend(common);
    plan.push("--json");
    let out = os.run(&plan);
    assert!(out.status.success(), "plan: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan --json");
    assert_eq!(v["files_total"], 4, "{v}");
    assert_eq!(v["files_unique"], 3, "{v}");
    assert_eq!(v["objects_to_copy"], 1, "{v}");

    let mut migrate = vec!["mediashift", "migrate"];
    migrate.extend(common);
    migrate.extend(["--map-dir", "/root/maps", "--source-base-url", "/media/"]);
    let out = os.run(&migrate);
    assert!(
        out.status.success(),
        "migrate on Debian 11: {}{}",
        stdout(&out),
        stderr(&out)
    );

    // What the bucket holds, asked of the server directly.
    let objects = t.objects();
    let want: std::collections::BTreeMap<String, i64> = files
        .iter()
        .map(|(k, b)| (format!("{}{k}", t.prefix), b.len() as i64))
        .collect();
    assert_eq!(objects, want);

    let mut verify = vec!["mediashift", "verify"];
    verify.extend(common);
    verify.push("--deep");
    let out = os.run(&verify);
    assert!(
        out.status.success(),
        "verify --deep on Debian 11: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn the_deb_installs_on_debian_11_with_man_pages_and_completion_and_removes_cleanly() {
    let d = dist();
    let os = Bullseye::new();
    let before = os.paths();
    std::fs::copy(&d.deb, os.root().join("tmp/mediashift.deb")).unwrap();

    let out = os.run(&["dpkg", "-i", "/tmp/mediashift.deb"]);
    assert!(
        out.status.success(),
        "dpkg -i on Debian 11: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = os.sh("mediashift --version");
    assert_eq!(stdout(&out).trim(), format!("mediashift {VERSION}"));
    // The installed binary is the tarball's.
    assert_eq!(
        std::fs::read(os.root().join("usr/bin/mediashift")).unwrap(),
        std::fs::read(d.binary()).unwrap()
    );

    // man finds the pages where the package put them.
    for (page, expect) in [
        ("mediashift", "mediashift-migrate"),
        ("mediashift-migrate", "--map-dir"),
        ("mediashift-offload", "--quarantine"),
    ] {
        let out = os.sh(&format!("MANWIDTH=100 man -P cat {page}"));
        let text = stdout(&out);
        assert!(text.contains(expect), "man {page}: {text}");
    }

    // bash-completion loads the package's completion on demand, as an
    // interactive shell does, and it completes commands and flags.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let script = format!(
            ". /usr/share/bash-completion/bash_completion
             __load_completion mediashift || exit 3
             COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT={point}
             $(complete -p mediashift | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p') mediashift '{cur}' '{prev}'
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            cword = words.len() - 1,
            point = line.len(),
            cur = words[words.len() - 1],
            prev = words[words.len() - 2],
        );
        let out = run_ok(&mut os.cmd(&["/bin/bash", "-c", &script]));
        stdout(&out)
            .lines()
            .map(str::to_string)
            .collect::<BTreeSet<_>>()
    };
    let got = complete("mediashift mi");
    assert!(got.contains("migrate"), "mediashift mi<TAB>: {got:?}");
    let got = complete("mediashift offload --qu");
    assert!(got.contains("--quarantine"), "offload --qu<TAB>: {got:?}");

    let out = os.run(&["dpkg", "-r", "mediashift"]);
    assert!(
        out.status.success(),
        "dpkg -r: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let status = os.run(&["dpkg-query", "-W", "-f=${Status}", "mediashift"]);
    let status = stdout(&status);
    assert!(
        status.is_empty() || status.contains("not-installed"),
        "after dpkg -r: {status}"
    );
    let after = os.paths();
    assert_eq!(
        after.difference(&before).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "dpkg -r left these behind"
    );
    assert_eq!(
        before.difference(&after).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "dpkg -i/-r took these away"
    );
}

/// What the .deb and .rpm install, besides their own metadata.
fn packaged_files(doc_dir: &str, zsh_dir: &str) -> BTreeSet<String> {
    let mut want: BTreeSet<String> = [
        "/usr/bin/mediashift",
        "/usr/share/bash-completion/completions/mediashift",
        "/usr/share/fish/vendor_completions.d/mediashift.fish",
        "/usr/share/man/man1/mediashift.1.gz",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.insert(format!("{zsh_dir}/_mediashift"));
    want.insert(format!("{doc_dir}/README.md"));
    for c in [
        "plan",
        "migrate",
        "status",
        "verify",
        "gc",
        "rewrite",
        "offload",
        "restore",
        "maps",
        "completions",
        "man",
    ] {
        want.insert(format!("/usr/share/man/man1/mediashift-{c}.1.gz"));
    }
    want
}

#[test]
fn the_rpm_holds_the_binary_man_pages_completions_and_licences() {
    let d = dist();
    let out = run_ok(Command::new("rpm").arg("-qlp").arg(&d.rpm));
    let listed: BTreeSet<String> = stdout(&out).lines().map(str::to_string).collect();
    let mut want = packaged_files("/usr/share/doc/mediashift", "/usr/share/zsh/site-functions");
    want.insert("/usr/share/licenses/mediashift/LICENSE-MIT".into());
    want.insert("/usr/share/licenses/mediashift/LICENSE-APACHE".into());
    assert_eq!(listed, want, "rpm -qlp {}", d.rpm.display());

    let out = run_ok(
        Command::new("rpm")
            .args([
                "-qp",
                "--queryformat",
                "%{NAME}|%{VERSION}|%{ARCH}|%{LICENSE}|%{PAYLOADCOMPRESSOR}|%{SUMMARY}|%{DESCRIPTION}",
            ])
            .arg(&d.rpm),
    );
    let fields: Vec<String> = stdout(&out).split('|').map(str::to_string).collect();
    // xz, which rpm 4.11 (RHEL/CentOS 7, Amazon Linux 2) reads; not zstd.
    assert_eq!(
        fields[..5],
        ["mediashift", VERSION, "x86_64", "MIT OR Apache-2.0", "xz"]
    );
    assert!(fields[5].contains("S3"), "summary: {}", fields[5]);
    assert!(fields[6].contains("S3"), "description: {}", fields[6]);

    // It asks for glibc 2.17's symbols at most, as the binary does.
    let out = run_ok(Command::new("rpm").arg("-qpR").arg(&d.rpm));
    let requires = stdout(&out);
    assert!(requires.contains("libc.so.6"), "{requires}");
    assert!(!requires.contains("PayloadIsZstd"), "{requires}");
    assert!(
        max_glibc(&requires.replace(['(', ')'], " ")).is_none_or(|v| v <= GLIBC_FLOOR),
        "{requires}"
    );

    // The same binary as the tarball's.
    let dir = tempfile::tempdir().unwrap();
    // rpm2archive comes with Debian's rpm (its rpm2cpio package).
    let script = format!(
        "rpm2archive - < '{}' | tar -xz ./usr/bin/mediashift",
        d.rpm.display()
    );
    run_ok(
        Command::new("sh")
            .args(["-c", &script])
            .current_dir(dir.path()),
    );
    assert_eq!(
        std::fs::read(dir.path().join("usr/bin/mediashift")).unwrap(),
        std::fs::read(d.binary()).unwrap()
    );
}

#[test]
fn the_deb_holds_the_binary_man_pages_completions_licences_and_a_description() {
    let d = dist();
    let out = run_ok(Command::new("dpkg-deb").arg("-c").arg(&d.deb));
    let files: BTreeSet<String> = stdout(&out)
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_string())
        .collect();
    let mut want = packaged_files(
        "/usr/share/doc/mediashift",
        "/usr/share/zsh/vendor-completions",
    );
    for f in ["LICENSE-MIT", "LICENSE-APACHE", "copyright"] {
        want.insert(format!("/usr/share/doc/mediashift/{f}"));
    }
    assert_eq!(files, want, "dpkg-deb -c {}", d.deb.display());

    let out = run_ok(Command::new("dpkg-deb").arg("-f").arg(&d.deb));
    let control = stdout(&out);
    for field in [
        "Package: mediashift".to_string(),
        format!("Version: {VERSION}-1"),
        "Architecture: amd64".to_string(),
        "Depends: libc6 (>= 2.17)".to_string(),
    ] {
        assert!(control.contains(&field), "no '{field}' in:\n{control}");
    }
    assert!(control.contains("Description: "), "{control}");
    assert!(
        control.contains("resumes"),
        "extended description:\n{control}"
    );
}

#[test]
fn the_tarball_holds_the_binary_readme_licences_completions_and_man_pages() {
    let d = dist();
    let top = d.top();
    for f in [
        "mediashift",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "completions/mediashift.bash",
        "completions/_mediashift",
        "completions/mediashift.fish",
        "man/man1/mediashift.1",
        "man/man1/mediashift-migrate.1",
        "man/man1/mediashift-offload.1",
    ] {
        assert!(top.join(f).is_file(), "the tarball has no {f}");
    }
    // Everything in the tarball sits under its one top directory.
    let out = run_ok(Command::new("tar").arg("-tzf").arg(&d.tarball));
    let prefix = format!("mediashift-{VERSION}-x86_64-linux-gnu/");
    for entry in stdout(&out).lines() {
        assert!(entry.starts_with(&prefix), "{entry} is outside {prefix}");
    }
    let out = run_ok(Command::new(d.binary()).arg("--version"));
    assert_eq!(stdout(&out).trim(), format!("mediashift {VERSION}"));
}

#[test]
fn sha256sums_match_the_artifacts() {
    let d = dist();
    let sums = std::fs::read_to_string(d.dir.join("SHA256SUMS")).unwrap();
    let mut listed = BTreeSet::new();
    for line in sums.lines() {
        let (sum, name) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("not a sha256sum line: {line}"));
        let body = std::fs::read(d.dir.join(name))
            .unwrap_or_else(|e| panic!("SHA256SUMS names {name}: {e}"));
        let got: String = Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, sum, "{name}");
        listed.insert(name.to_string());
    }
    let want: BTreeSet<String> = [&d.tarball, &d.deb, &d.rpm]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, want);
    // As a user checks it.
    run_ok(
        Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS"])
            .current_dir(&d.dir),
    );
}
