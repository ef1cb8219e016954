//! What every command's settings share: the error, the output flags, the
//! connection, paths resolved.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{ConnectionArgs, OutputArgs, RetryModeArg};
use crate::store::{CaBundle, CaBundleFrom, ConnectionSettings};

/// A problem with the command line or configuration (exit code 2): the
/// flag, argument or variable as the user gives it (`--concurrency`,
/// `SOURCE_DIR`, `AWS_RETRY_MODE`), and what is wrong with it and what to
/// do, which reads on from the flag ("must be between 1 and 1024").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {reason}")]
pub struct SettingsError {
    pub flag: String,
    pub reason: String,
}

impl SettingsError {
    pub fn new(flag: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            flag: flag.into(),
            reason: reason.into(),
        }
    }
}

pub(super) fn bad(flag: impl Into<String>, reason: impl Into<String>) -> SettingsError {
    SettingsError::new(flag, reason)
}

impl From<crate::stages::select::PatternError> for SettingsError {
    fn from(e: crate::stages::select::PatternError) -> Self {
        Self::new(
            e.flag,
            format!("'{}' is not a valid glob: {}", e.pattern, e.reason),
        )
    }
}

/// Output preferences.
#[derive(Debug, Clone, Copy)]
pub struct OutputSettings {
    pub json: bool,
    /// `-q`: errors only (no progress, no report unless --json).
    pub quiet: bool,
    pub progress: bool,
    /// How often a status line goes to stderr when it is not a terminal.
    pub progress_interval: Duration,
}

impl OutputSettings {
    /// From a command's output flags and the global `-q`.
    pub fn new(out: &OutputArgs, quiet: bool) -> Self {
        Self {
            json: out.json,
            quiet,
            progress: !out.no_progress && !quiet,
            progress_interval: out.progress_interval,
        }
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Resolves the connection flags (and the endpoint variables), with
/// `ceiling` requests in flight at most (the command's `--concurrency`).
pub fn connection(
    args: &ConnectionArgs,
    ceiling: usize,
) -> Result<ConnectionSettings, SettingsError> {
    let endpoint_url = match &args.endpoint_url {
        Some(u) => Some(u.clone()),
        None => env_nonempty("AWS_ENDPOINT_URL_S3").or_else(|| env_nonempty("AWS_ENDPOINT_URL")),
    };
    if let Some(n) = args.max_attempts
        && !(1..=100).contains(&n)
    {
        return Err(bad("--max-attempts", "must be between 1 and 100"));
    }
    // The SDK panics on a bad AWS_RETRY_MODE or AWS_MAX_ATTEMPTS: they are
    // read and checked here, and the SDK never reads them.
    let adaptive_retries = match args.retry_mode {
        Some(m) => Some(m == RetryModeArg::Adaptive),
        None => match env_nonempty("AWS_RETRY_MODE").as_deref().map(str::trim) {
            None => None,
            Some(m) if m.eq_ignore_ascii_case("standard") => Some(false),
            Some(m) if m.eq_ignore_ascii_case("adaptive") => Some(true),
            Some(m) => {
                return Err(bad(
                    "AWS_RETRY_MODE",
                    format!(
                        "'{m}' is not a retry mode mediashift knows: set it to standard or adaptive, or unset it"
                    ),
                ));
            }
        },
    };
    let max_attempts = match args.max_attempts {
        Some(n) => Some(n),
        None => match env_nonempty("AWS_MAX_ATTEMPTS") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        bad("AWS_MAX_ATTEMPTS", format!(
                            "'{v}' is not a number of attempts: set it to a whole number from 1 to 100, or unset it"
                        ))
                    })?,
            ),
        },
    };
    Ok(ConnectionSettings {
        endpoint_url,
        region: args.region.clone(),
        profile: args.profile.clone(),
        adaptive_retries,
        max_attempts,
        always_sign_payload: args.sign_payload,
        request_timeout: args.request_timeout,
        patience: args.unreachable_timeout,
        ceiling,
        ca_bundle: ca_bundle(args.ca_bundle.as_deref()),
        verify_ssl: !args.no_verify_ssl,
        ..ConnectionSettings::default()
    })
}

/// `--ca-bundle`, else AWS_CA_BUNDLE (as the AWS CLI reads them; the
/// profile's `ca_bundle` comes after, from the store). The file itself is
/// read, and checked to hold certificates, when the client is built.
fn ca_bundle(flag: Option<&Path>) -> Option<Box<CaBundle>> {
    let bundle = match flag {
        Some(path) => CaBundle {
            path: path.to_path_buf(),
            from: CaBundleFrom::Flag,
        },
        None => CaBundle {
            path: PathBuf::from(std::env::var_os("AWS_CA_BUNDLE").filter(|v| !v.is_empty())?),
            from: CaBundleFrom::Env,
        },
    };
    Some(Box::new(bundle))
}

/// `p` as one absolute path whatever it was called: symlinks resolved as
/// far as the path exists, `.` and `..` resolved in the rest, so that two
/// names of one directory compare equal.
pub(super) fn resolved(flag: &str, p: &Path) -> Result<PathBuf, SettingsError> {
    let abs = std::path::absolute(p).map_err(|e| bad(flag, format!("'{}': {e}", p.display())))?;
    let parts: Vec<std::path::Component<'_>> = abs.components().collect();
    for n in (1..=parts.len()).rev() {
        let head: PathBuf = parts[..n].iter().collect();
        if let Ok(mut out) = head.canonicalize() {
            for c in &parts[n..] {
                match c {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::Normal(name) => out.push(name),
                    _ => {}
                }
            }
            return Ok(out);
        }
    }
    Ok(abs)
}

pub(super) fn resolve_source(p: &Path) -> Result<PathBuf, SettingsError> {
    let shown = p.display();
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => p
            .canonicalize()
            .map_err(|e| bad("SOURCE_DIR", format!("'{shown}' cannot be resolved: {e}"))),
        Ok(_) => Err(bad(
            "SOURCE_DIR",
            format!("'{shown}' is a file, not a directory: give the media directory"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(bad(
            "SOURCE_DIR",
            format!("'{shown}' does not exist: check the path"),
        )),
        Err(e) => Err(bad("SOURCE_DIR", format!("'{shown}' cannot be read: {e}"))),
    }
}

pub(super) fn concurrency_flag(n: usize) -> Result<usize, SettingsError> {
    if n == 0 || n > 1024 {
        return Err(bad("--concurrency", "must be between 1 and 1024"));
    }
    Ok(n)
}
