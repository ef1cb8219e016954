//! A self-hosted S3 server behind TLS with a private CA: a CA and a
//! server certificate for 127.0.0.1 made with the `openssl` CLI, a TLS
//! front on loopback before the real test server (`support::tls`), and
//! mediashift trusting that CA through --ca-bundle, AWS_CA_BUNDLE or the
//! profile's ca_bundle, or checking nothing with --no-verify-ssl.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::migrate::migrate_in;
use crate::support::tls::TlsFront;
use crate::support::{Target, Tree, bytes, json as doc, mediashift_env, stderr, target};

/// A CA, a server certificate for IP 127.0.0.1 signed by it, and a second
/// CA that signed nothing here, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cannot run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mediashift-tls-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let ca = |name: &str, cn: &str| {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        };
        ca("ca", "mediashift test CA");
        ca("other", "mediashift unrelated CA");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        // No AWS config or credentials file of the machine's: only what a
        // test writes.
        std::fs::write(d.join("empty-config"), "").unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// The TLS front presenting the server certificate.
    fn front(&self) -> TlsFront {
        TlsFront::start(&self.path("server.pem"), &self.path("server.key"))
    }

    /// The environment every run starts from here: no CA bundle, no
    /// profile files but `config`'s.
    fn env<'a>(&'a self, config: &'a str, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("AWS_CA_BUNDLE", ""),
            ("AWS_CONFIG_FILE", config),
            ("AWS_SHARED_CREDENTIALS_FILE", config),
        ];
        env.extend_from_slice(more);
        env
    }
}

/// A tree of two small media files and an empty target for them.
fn fixture(name: &str) -> (Tree, Target) {
    let tree = Tree::new();
    tree.file("a.jpg", &bytes(1, 3000))
        .file("catalog/b.png", &bytes(2, 5000));
    (tree, target(name))
}

/// `plan --json` through the front, with `extra` flags and `env`.
fn plan(
    pki: &Pki,
    tree: &Tree,
    t: &Target,
    front: &TlsFront,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let config = pki.arg("empty-config");
    let mut args = vec![
        "plan".to_string(),
        tree.path().display().to_string(),
        t.url(),
        "--endpoint-url".to_string(),
        front.url(),
        "--json".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    mediashift_env(args, &pki.env(&config, env))
}

/// The run worked: the plan saw the tree and the (empty) bucket.
fn planned(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
    let v = doc(out);
    assert_eq!(v["files_total"], 2, "{v}");
    assert_eq!(v["objects_to_upload"], 2, "{v}");
    assert_eq!(v["objects_already_present"], 0, "{v}");
}

/// Exit 2 with one line on stderr, returned.
fn refused(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty(), "no report on a refused run");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn without_the_ca_the_handshake_fails_at_once_saying_what_to_do() {
    let pki = Pki::new();
    let front = pki.front();
    let (tree, t) = fixture("tls-unknown-ca");
    let start = Instant::now();
    let out = plan(&pki, &tree, &t, &front, &[], &[]);
    let err = refused(&out);
    // Refused at once, not waited out as an unreachable endpoint.
    assert!(start.elapsed() < Duration::from_secs(30), "{err}");
    assert!(
        err.starts_with(&format!(
            "mediashift: error: the S3 endpoint {} presented a TLS certificate that is not signed by a CA this run trusts",
            front.url()
        )),
        "{err}"
    );
    for says in [
        "UnknownIssuer",
        "--ca-bundle FILE",
        "AWS_CA_BUNDLE",
        "--no-verify-ssl",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }
    // A CA that did not sign the server's certificate is no better.
    let other = pki.arg("other.pem");
    let err = refused(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--ca-bundle", &other],
        &[],
    ));
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn the_flag_the_variable_and_the_profile_each_trust_the_private_ca() {
    let pki = Pki::new();
    let front = pki.front();
    let (tree, t) = fixture("tls-ca-bundle");
    let (ca, other) = (pki.arg("ca.pem"), pki.arg("other.pem"));

    planned(&plan(&pki, &tree, &t, &front, &["--ca-bundle", &ca], &[]));
    planned(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &[],
        &[("AWS_CA_BUNDLE", &ca)],
    ));

    // The profile's ca_bundle, credentials from the environment.
    let config = pki.path("config");
    let write = |bundle: &str| {
        std::fs::write(
            &config,
            format!(
                "[profile tlstest]\nca_bundle = {bundle}\n\n[profile plain]\nregion = us-east-1\n"
            ),
        )
        .unwrap()
    };
    let config_arg = config.display().to_string();
    let with_config = [("AWS_CONFIG_FILE", config_arg.as_str())];
    write(&ca);
    planned(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--profile", "tlstest"],
        &with_config,
    ));
    // Chosen through AWS_PROFILE too.
    planned(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &[],
        &[with_config[0], ("AWS_PROFILE", "tlstest")],
    ));
    // Another profile's ca_bundle is not this one's.
    let err = refused(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--profile", "plain"],
        &with_config,
    ));
    assert!(err.contains("UnknownIssuer"), "{err}");

    // The flag wins over the variable, the variable over the profile, and
    // each is trusted instead of, not beside, what comes after it.
    planned(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--ca-bundle", &ca],
        &[("AWS_CA_BUNDLE", &other)],
    ));
    let err = refused(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--ca-bundle", &other],
        &[("AWS_CA_BUNDLE", &ca)],
    ));
    assert!(err.contains("UnknownIssuer"), "{err}");
    write(&other);
    planned(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--profile", "tlstest"],
        &[with_config[0], ("AWS_CA_BUNDLE", &ca)],
    ));
    write(&ca);
    let err = refused(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--profile", "tlstest"],
        &[with_config[0], ("AWS_CA_BUNDLE", &other)],
    ));
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn no_verify_ssl_checks_nothing_and_says_so() {
    let pki = Pki::new();
    let front = pki.front();
    let (tree, t) = fixture("tls-no-verify");
    let out = plan(&pki, &tree, &t, &front, &["--no-verify-ssl"], &[]);
    planned(&out);
    let err = stderr(&out);
    assert!(
        err.contains(
            "mediashift: warning: --no-verify-ssl: the server's certificate is not checked"
        ),
        "{err}"
    );
    // Said with -q too, and with a bundle in the environment (ignored).
    let ca = pki.arg("ca.pem");
    let out = mediashift_env(
        [
            "-q",
            "plan",
            &tree.path().display().to_string(),
            &t.url(),
            "--endpoint-url",
            &front.url(),
            "--json",
            "--no-verify-ssl",
        ],
        &pki.env(&pki.arg("empty-config"), &[("AWS_CA_BUNDLE", &ca)]),
    );
    planned(&out);
    assert!(stderr(&out).contains("--no-verify-ssl: the server's certificate is not checked"));
    // Not with --ca-bundle: one or the other.
    let out = plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--no-verify-ssl", "--ca-bundle", &ca],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bundle_that_is_missing_or_not_pem_is_named_with_where_it_came_from() {
    let pki = Pki::new();
    let front = pki.front();
    let (tree, t) = fixture("tls-bad-bundle");
    let missing = pki.arg("no-such-ca.pem");
    let err = refused(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--ca-bundle", &missing],
        &[],
    ));
    assert!(
        err.starts_with(&format!(
            "mediashift: error: --ca-bundle {missing} cannot be read"
        )),
        "{err}"
    );
    // A key is PEM but no certificate.
    let key = pki.arg("server.key");
    let err = refused(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &[],
        &[("AWS_CA_BUNDLE", &key)],
    ));
    assert!(
        err.starts_with(&format!(
            "mediashift: error: AWS_CA_BUNDLE {key} holds no PEM certificate"
        )),
        "{err}"
    );
    let config = pki.path("config");
    std::fs::write(
        &config,
        format!("[profile tlstest]\nca_bundle = {missing}\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let err = refused(&plan(
        &pki,
        &tree,
        &t,
        &front,
        &["--profile", "tlstest"],
        &[("AWS_CONFIG_FILE", &config)],
    ));
    assert!(
        err.contains(&format!(
            "the AWS profile 'tlstest' sets ca_bundle = {missing}, and that file cannot be read"
        )),
        "{err}"
    );
}

#[test]
fn migrate_uploads_through_tls_with_the_private_ca() {
    let pki = Pki::new();
    let front = pki.front();
    let (tree, t) = fixture("tls-migrate");
    let maps = tempfile::tempdir().unwrap();
    let (ca, config) = (pki.arg("ca.pem"), pki.arg("empty-config"));
    let url = front.url();
    let (out, v) = migrate_in(
        &tree,
        &t,
        maps.path(),
        &["--endpoint-url", &url, "--ca-bundle", &ca],
        &pki.env(&config, &[]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["objects_uploaded"], 2, "{v}");
    let objects = t.objects();
    assert_eq!(
        objects.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            format!("{}a.jpg", t.prefix),
            format!("{}catalog/b.png", t.prefix)
        ],
        "{objects:?}"
    );
    assert_eq!(objects[&format!("{}a.jpg", t.prefix)], 3000);
    assert_eq!(objects[&format!("{}catalog/b.png", t.prefix)], 5000);
}
