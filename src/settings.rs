//! Turning raw command-line values into checked, typed settings.
//!
//! Every check on user input happens here, once, with a one-line message
//! that names the flag or path and says what to do. Nothing downstream
//! sees clap or re-validates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checksum::Algorithm;
use crate::cli::{
    ChecksumArg, ConnectionArgs, GcArgs, KeyLayoutArg, MergeArgs, MigrateArgs, OffloadArgs,
    RestoreArgs, RewriteArgs, RunArgs, StatusArgs, VerifyArgs,
};
use crate::limits::{MAX_PART_SIZE, MAX_PUT_SIZE, MIN_PART_SIZE};
use crate::stages::plan::{KeyLayout, PlanRules, Prices};
use crate::stages::scan::ScanOptions;
use crate::stages::select::Selector;
use crate::stages::shard::{MAX_SHARDS, Shard};
use crate::stages::upload::UploadSettings;
use crate::store::{CaBundle, CaBundleFrom, Caps, ConnectionSettings, ObjectOptions};
use crate::types::{ByteSize, Destination};

/// A problem with the command line or configuration (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn bad(msg: impl Into<String>) -> SettingsError {
    SettingsError(msg.into())
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

/// URL bases for the rewrite maps.
#[derive(Debug, Clone)]
pub struct UrlSettings {
    pub source_base: String,
    /// `None`: the endpoint's URL for the bucket, known once connected.
    pub public_base: Option<String>,
}

/// Everything `plan` (and later `migrate`) needs.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub scan: ScanOptions,
    pub destination: Destination,
    pub connection: ConnectionSettings,
    pub rules: PlanRules,
    pub urls: UrlSettings,
    pub state_dir: PathBuf,
    pub concurrency: usize,
    pub hash_threads: usize,
    pub output: OutputSettings,
    /// An empty selection is not an error (`--allow-empty`).
    pub allow_empty: bool,
    pub sharding: Sharding,
}

/// Whether the run takes the whole tree or a shard of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharding {
    Whole,
    /// `--shard I/N`: this shard's files only.
    One(Shard),
    /// `--shards N` alone: `plan` shows the split.
    Split(u32),
}

/// The variable Kubernetes Indexed Jobs set to each pod's index.
pub const JOB_INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

impl Sharding {
    fn from_flags(shard: Option<&str>, shards: Option<u32>) -> Result<Self, SettingsError> {
        if let Some(n) = shards
            && !(1..=MAX_SHARDS).contains(&n)
        {
            return Err(bad(format!(
                "--shards {n}: give a number of shards from 1 to {MAX_SHARDS}"
            )));
        }
        Ok(match (shard, shards) {
            (None, None) => Self::Whole,
            (None, Some(n)) => Self::Split(n),
            (Some(s), n) => {
                let shard: Shard = s.parse().map_err(|e| bad(format!("--shard {e}")))?;
                if let Some(n) = n
                    && n != shard.count
                {
                    return Err(bad(format!(
                        "--shard {s} and --shards {n} disagree on the number of shards: give one of them"
                    )));
                }
                Self::One(shard)
            }
        })
    }

    /// For `migrate`, which runs one shard: `--shards N` alone takes the
    /// index from [`JOB_INDEX_VAR`] (`index`, its value).
    pub fn for_one_run(self, index: Option<&str>) -> Result<Self, SettingsError> {
        let Self::Split(n) = self else {
            return Ok(self);
        };
        let Some(v) = index.map(str::trim).filter(|v| !v.is_empty()) else {
            return Err(bad(format!(
                "--shards {n} without --shard: give --shard I/{n}, or set {JOB_INDEX_VAR} (Kubernetes Indexed Jobs set it)"
            )));
        };
        v.parse::<u32>()
            .ok()
            .and_then(|i| Shard::new(i, n))
            .map(Self::One)
            .ok_or_else(|| {
                bad(format!(
                    "{JOB_INDEX_VAR}={v} is not a shard of --shards {n}: it must be 0 to {}",
                    n - 1
                ))
            })
    }
}

fn size_flag(flag: &str, value: &str) -> Result<u64, SettingsError> {
    value
        .parse::<ByteSize>()
        .map(ByteSize::get)
        .map_err(|e| bad(format!("{flag}: {e}")))
}

fn url_flag(flag: &str, value: &str, allow_path: bool) -> Result<String, SettingsError> {
    let ok = value.starts_with("http://")
        || value.starts_with("https://")
        || (allow_path && value.starts_with('/'));
    if !ok || value.chars().any(char::is_whitespace) {
        let what = if allow_path {
            "an absolute path like /media/ or an http(s):// URL"
        } else {
            "an http(s):// URL"
        };
        return Err(bad(format!(
            "{flag} '{value}' must be {what}, without spaces"
        )));
    }
    Ok(value.to_string())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Resolves the connection flags (and the endpoint variables).
pub fn connection(args: &ConnectionArgs) -> Result<ConnectionSettings, SettingsError> {
    let endpoint_url = match &args.endpoint_url {
        Some(u) => Some(url_flag("--endpoint-url", u, false)?),
        None => env_nonempty("AWS_ENDPOINT_URL_S3").or_else(|| env_nonempty("AWS_ENDPOINT_URL")),
    };
    if let Some(n) = args.max_attempts
        && !(1..=100).contains(&n)
    {
        return Err(bad("--max-attempts must be between 1 and 100"));
    }
    // The SDK panics on a bad AWS_RETRY_MODE or AWS_MAX_ATTEMPTS: they are
    // read and checked here, and the SDK never reads them.
    let adaptive_retries = match args.retry_mode.as_deref() {
        Some(m) => Some(m == "adaptive"),
        None => match env_nonempty("AWS_RETRY_MODE").as_deref().map(str::trim) {
            None => None,
            Some(m) if m.eq_ignore_ascii_case("standard") => Some(false),
            Some(m) if m.eq_ignore_ascii_case("adaptive") => Some(true),
            Some(m) => {
                return Err(bad(format!(
                    "AWS_RETRY_MODE '{m}' is not a retry mode mediashift knows: set it to standard or adaptive, or unset it"
                )));
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
                        bad(format!(
                            "AWS_MAX_ATTEMPTS '{v}' is not a number of attempts: set it to a whole number from 1 to 100, or unset it"
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
        request_timeout: positive_duration("--request-timeout", &args.request_timeout)?,
        patience: duration_flag("--unreachable-timeout", &args.unreachable_timeout)?,
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

/// Parses a duration like `500ms`, `90s`, `30m`, `24h`, `7d` or `0`.
pub fn duration_flag(flag: &str, value: &str) -> Result<Duration, SettingsError> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        bad(format!(
            "{flag} '{value}' is not a duration: write it like 30s, 10m, 24h or 7d"
        ))
    })?;
    let unit_ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(bad(format!(
                "{flag} '{value}' has an unknown unit: use ms, s, m, h or d"
            )));
        }
    };
    Ok(Duration::from_millis(n.saturating_mul(unit_ms)))
}

/// A duration that must not be zero.
fn positive_duration(flag: &str, value: &str) -> Result<Duration, SettingsError> {
    let d = duration_flag(flag, value)?;
    if d.is_zero() {
        return Err(bad(format!("{flag} must be more than 0")));
    }
    Ok(d)
}

/// Parses a rate of bytes like `20MiB/s` (the `/s` may be left out).
fn rate_flag(flag: &str, value: &str) -> Result<u64, SettingsError> {
    let v = value.trim();
    let size = v.strip_suffix("/s").unwrap_or(v);
    let n = size_flag(flag, size)?;
    if n == 0 {
        return Err(bad(format!(
            "{flag} '{value}' must be more than 0, e.g. 20MiB/s"
        )));
    }
    Ok(n)
}

impl RunSettings {
    pub fn from_args(args: &RunArgs) -> Result<Self, SettingsError> {
        let source = resolve_source(&args.source)?;
        let destination: Destination = args.destination.parse().map_err(|e| bad(format!("{e}")))?;

        let mut connection = connection(&args.connection)?;

        let multipart_threshold = size_flag("--multipart-threshold", &args.multipart_threshold)?;
        if multipart_threshold > MAX_PUT_SIZE {
            return Err(bad(format!(
                "--multipart-threshold {} is above 5 GiB, the largest single PutObject S3 accepts",
                args.multipart_threshold
            )));
        }
        let part_size = size_flag("--part-size", &args.part_size)?;
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
            return Err(bad(format!(
                "--part-size {} is outside S3's limits: use 5MiB to 5GiB",
                args.part_size
            )));
        }
        if args.concurrency == 0 || args.concurrency > 1024 {
            return Err(bad("--concurrency must be between 1 and 1024"));
        }
        connection.ceiling = args.concurrency;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hash_threads = args.hash_threads.unwrap_or(cores);
        if hash_threads == 0 || hash_threads > 256 {
            return Err(bad("--hash-threads must be between 1 and 256"));
        }
        for (flag, v) in [
            ("--price-put-per-1000", args.price_put_per_1000),
            ("--price-gb-month", args.price_gb_month),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(format!("{flag} must be a non-negative number of USD")));
            }
        }

        let selector = Selector::new(args.all_files, &args.include, &args.exclude)
            .map_err(|e| bad(e.to_string()))?;
        let state_dir = resolved("--state", &args.state)?;
        let prune = vec![state_dir.clone()];

        Ok(Self {
            scan: ScanOptions {
                root: source,
                selector,
                follow_symlinks: args.follow_symlinks,
                prune,
            },
            destination: destination.clone(),
            connection,
            rules: PlanRules {
                prefix: destination.prefix,
                key_layout: match args.key_layout {
                    KeyLayoutArg::Preserve => KeyLayout::Preserve,
                    KeyLayoutArg::Content => KeyLayout::Content,
                },
                multipart_threshold,
                part_size,
                prices: Prices {
                    put_per_1000: args.price_put_per_1000,
                    storage_gb_month: args.price_gb_month,
                },
                overwrite: args.overwrite,
                copy_limit: crate::faults::copy_limit(),
            },
            urls: UrlSettings {
                source_base: url_flag("--source-base-url", &args.source_base_url, true)?,
                public_base: args
                    .public_base_url
                    .as_deref()
                    .map(|u| {
                        if u.contains(['?', '#']) {
                            return Err(bad(format!(
                                "--public-base-url '{u}' has a query string or fragment: give the URL objects are served under; each object's URL is it plus the key"
                            )));
                        }
                        url_flag("--public-base-url", u, false)
                    })
                    .transpose()?,
            },
            state_dir,
            concurrency: args.concurrency,
            hash_threads,
            output: OutputSettings {
                json: args.json,
                quiet: false,
                progress: !args.no_progress,
                progress_interval: positive_duration(
                    "--progress-interval",
                    &args.progress_interval,
                )?,
            },
            allow_empty: args.allow_empty,
            sharding: Sharding::from_flags(args.shard.as_deref(), args.shards)?,
        })
    }
}

/// `p` as one absolute path whatever it was called: symlinks resolved as
/// far as the path exists, `.` and `..` resolved in the rest, so that two
/// names of one directory compare equal.
fn resolved(flag: &str, p: &Path) -> Result<PathBuf, SettingsError> {
    let abs = std::path::absolute(p).map_err(|e| bad(format!("{flag} '{}': {e}", p.display())))?;
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

fn resolve_source(p: &Path) -> Result<PathBuf, SettingsError> {
    let shown = p.display();
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => p
            .canonicalize()
            .map_err(|e| bad(format!("SOURCE_DIR '{shown}' cannot be resolved: {e}"))),
        Ok(_) => Err(bad(format!(
            "SOURCE_DIR '{shown}' is a file, not a directory: give the media directory"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(bad(format!(
            "SOURCE_DIR '{shown}' does not exist: check the path"
        ))),
        Err(e) => Err(bad(format!("SOURCE_DIR '{shown}' cannot be read: {e}"))),
    }
}

/// Everything `migrate` needs.
#[derive(Debug, Clone)]
pub struct MigrateSettings {
    pub run: RunSettings,
    pub dry_run: bool,
    pub map_dir: PathBuf,
    pub upload: UploadSettings,
    /// How long requests in flight get after a first stop signal.
    pub stop_timeout: Duration,
    /// Lowest CPU and I/O priority.
    pub low_priority: bool,
    /// Content types the user set by extension.
    pub content_types: crate::stages::select::ContentTypes,
    /// Where the audit trail goes (`--report FILE`).
    pub report: Option<PathBuf>,
    /// Ask the bucket about every object on a rerun (`--recheck`).
    pub recheck: bool,
}

/// A header value: not empty, no control characters.
fn header_value(flag: &str, v: &str) -> Result<String, SettingsError> {
    if v.trim().is_empty() || v.chars().any(char::is_control) {
        return Err(bad(format!(
            "{flag} '{}' must be a non-empty header value without control characters",
            v.escape_debug()
        )));
    }
    Ok(v.to_string())
}

/// `--metadata KEY=VALUE`s: keys as S3 stores them (lower case, letters,
/// digits, `-` and `_`), not mediashift's own.
fn metadata_flags(items: &[String]) -> Result<Vec<(String, String)>, SettingsError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(bad(format!("--metadata '{item}' must be KEY=VALUE")));
        };
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(format!(
                "--metadata '{item}': the key must be letters, digits, '-' or '_'"
            )));
        }
        if key == crate::stages::verify::SHA256_METADATA
            || key == crate::stages::verify::SOURCE_PATH_METADATA
        {
            return Err(bad(format!(
                "--metadata '{item}': '{key}' is mediashift's own (the file's proof and path); use another key"
            )));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(bad(format!("--metadata '{key}' is given twice")));
        }
        out.push((key, header_value("--metadata", v)?));
    }
    Ok(out)
}

/// `--content-type EXT=TYPE`s.
fn content_type_flags(
    items: &[String],
) -> Result<crate::stages::select::ContentTypes, SettingsError> {
    let mut out = crate::stages::select::ContentTypes::default();
    for item in items {
        let ok = item.split_once('=').filter(|(ext, ty)| {
            let ext = ext.trim_start_matches('.');
            !ext.is_empty()
                && !ext.contains(['/', '.', ' '])
                && ty.contains('/')
                && !ty.chars().any(|c| c.is_control() || c.is_whitespace())
        });
        let Some((ext, ty)) = ok else {
            return Err(bad(format!(
                "--content-type '{item}' must be EXT=TYPE, e.g. heic=image/heif"
            )));
        };
        out.set(ext, ty);
    }
    Ok(out)
}

const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];

const ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

impl MigrateSettings {
    pub fn from_args(args: &MigrateArgs) -> Result<Self, SettingsError> {
        let run = RunSettings::from_args(&args.run)?;
        let max_memory = size_flag("--max-memory", &args.max_memory)?;
        if max_memory < 16 * ByteSize::MIB {
            return Err(bad(format!(
                "--max-memory {} is too small: give at least 16MiB",
                args.max_memory
            )));
        }
        if args.large_files == 0 || args.large_files > 256 {
            return Err(bad("--large-files must be between 1 and 256"));
        }
        if let Some(c) = &args.storage_class
            && !STORAGE_CLASSES.contains(&c.as_str())
        {
            return Err(bad(format!(
                "--storage-class '{c}' is not one of {}",
                STORAGE_CLASSES.join(", ")
            )));
        }
        if let Some(a) = &args.acl
            && !ACLS.contains(&a.as_str())
        {
            return Err(bad(format!(
                "--acl '{a}' is not one of {}",
                ACLS.join(", ")
            )));
        }
        if args.sse_kms_key_id.is_some() && args.sse.as_deref() != Some("aws:kms") {
            return Err(bad("--sse-kms-key-id needs --sse aws:kms"));
        }
        if let Some(cc) = &args.cache_control
            && (cc.trim().is_empty() || cc.chars().any(char::is_control))
        {
            return Err(bad(
                "--cache-control must be a non-empty header value without control characters",
            ));
        }
        let mut run = run;
        let map_dir = resolved("--map-dir", &args.map_dir)?;
        if map_dir.starts_with(&run.scan.root) {
            return Err(bad(format!(
                "--map-dir '{}' is inside SOURCE_DIR ({}): put the maps elsewhere so they are not taken for media",
                args.map_dir.display(),
                map_dir.display()
            )));
        }
        run.scan.prune.push(map_dir.clone());
        let report = args
            .report
            .as_deref()
            .map(|r| {
                let abs = resolved("--report", r)?;
                if abs.starts_with(&run.scan.root) {
                    return Err(bad(format!(
                        "--report '{}' is inside SOURCE_DIR ({}): put it elsewhere",
                        r.display(),
                        run.scan.root.display()
                    )));
                }
                if abs.is_dir() {
                    return Err(bad(format!(
                        "--report '{}' is a directory: give a file name",
                        r.display()
                    )));
                }
                Ok(abs)
            })
            .transpose()?;
        let upload = UploadSettings {
            algorithm: match args.checksum {
                ChecksumArg::Crc64nvme => Algorithm::Crc64nvme,
                ChecksumArg::Sha256 => Algorithm::Sha256,
                ChecksumArg::Crc32c => Algorithm::Crc32c,
            },
            concurrency: run.concurrency,
            max_memory,
            multipart_threshold: run.rules.multipart_threshold,
            part_size: run.rules.part_size,
            large_files: args.large_files,
            hash_threads: run.hash_threads,
            options: ObjectOptions {
                cache_control: args.cache_control.clone(),
                content_disposition: args
                    .content_disposition
                    .as_deref()
                    .map(|v| header_value("--content-disposition", v))
                    .transpose()?,
                metadata: metadata_flags(&args.metadata)?,
                storage_class: args.storage_class.clone(),
                acl: args.acl.clone(),
                sse: args.sse.clone(),
                sse_kms_key_id: args.sse_kms_key_id.clone(),
            },
            copy_limit: run.rules.copy_limit,
        };
        if let Some(r) = args.max_rps
            && !(r.is_finite() && r > 0.0)
        {
            return Err(bad(
                "--max-rps must be a number of requests per second above 0",
            ));
        }
        run.connection.caps = Caps {
            bytes_per_s: args
                .max_bandwidth
                .as_deref()
                .map(|v| rate_flag("--max-bandwidth", v))
                .transpose()?,
            requests_per_s: args.max_rps,
        };
        Ok(Self {
            run,
            dry_run: args.dry_run,
            map_dir,
            upload,
            stop_timeout: duration_flag("--stop-timeout", &args.stop_timeout)?,
            low_priority: args.low_priority,
            content_types: content_type_flags(&args.content_types)?,
            report,
            recheck: args.recheck,
        })
    }
}

/// One file to rewrite: where it goes, its rollback record and backup
/// (all `None` on a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteJob {
    pub input: PathBuf,
    pub output: Option<PathBuf>,
    pub rollback: Option<PathBuf>,
    pub backup: Option<PathBuf>,
}

/// Everything `rewrite` needs.
#[derive(Debug, Clone)]
pub enum RewriteSettings {
    Rewrite {
        map: PathBuf,
        bases: Vec<String>,
        jobs: Vec<RewriteJob>,
        reverse: bool,
        include_guid: bool,
        dry_run: bool,
        /// Unknown references make the exit code 1.
        strict: bool,
        json: bool,
    },
    Undo {
        record: PathBuf,
        output: PathBuf,
        to: PathBuf,
        json: bool,
    },
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

impl RewriteSettings {
    pub fn from_args(args: &RewriteArgs) -> Result<Self, SettingsError> {
        if let Some(record) = &args.undo {
            let ([output], Some(to)) = (&args.inputs[..], &args.output) else {
                return Err(bad(
                    "--undo takes the rewritten file and -o ORIGINAL: mediashift rewrite --undo OUTPUT.rollback OUTPUT -o ORIGINAL",
                ));
            };
            return Ok(Self::Undo {
                record: record.clone(),
                output: output.clone(),
                to: to.clone(),
                json: args.json,
            });
        }
        let map = args
            .map
            .clone()
            .ok_or_else(|| bad("--map is needed: the map.json (or --map-dir) migrate wrote"))?;
        let chosen = [
            args.output.is_some(),
            args.output_dir.is_some(),
            args.in_place,
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if chosen == 0 && !args.dry_run {
            return Err(bad(
                "say where the rewritten files go: -o OUTPUT, --output-dir DIR or --in-place (or --dry-run to only report)",
            ));
        }
        if args.output.is_some() && args.inputs.len() != 1 {
            return Err(bad(format!(
                "-o takes one INPUT, not {}: use --output-dir DIR for several",
                args.inputs.len()
            )));
        }
        if args.rollback.is_some() && args.inputs.len() != 1 {
            return Err(bad("--rollback FILE takes one INPUT"));
        }
        let mut jobs = Vec::new();
        let mut names = std::collections::HashSet::new();
        for input in &args.inputs {
            if !input.is_file() {
                return Err(bad(format!(
                    "INPUT {}: not a file (give dumps and content files, not directories)",
                    input.display()
                )));
            }
            let output = if args.dry_run {
                None
            } else if let Some(o) = &args.output {
                Some(o.clone())
            } else if let Some(dir) = &args.output_dir {
                let name = input
                    .file_name()
                    .ok_or_else(|| bad(format!("INPUT {}: has no file name", input.display())))?;
                if !names.insert(name.to_os_string()) {
                    return Err(bad(format!(
                        "--output-dir: two INPUTs are named {}: rewrite them into different directories",
                        name.to_string_lossy()
                    )));
                }
                Some(dir.join(name))
            } else {
                Some(input.clone())
            };
            if let Some(o) = &output
                && !args.in_place
                && std::path::absolute(o).ok() == std::path::absolute(input).ok()
            {
                return Err(bad(format!(
                    "{}: the output would overwrite its INPUT; use --in-place (which keeps a backup)",
                    o.display()
                )));
            }
            let backup = (args.in_place && !args.no_backup && !args.dry_run)
                .then(|| with_suffix(input, ".bak"));
            if let Some(b) = &backup
                && b.exists()
            {
                return Err(bad(format!(
                    "--in-place: the backup {} exists already: move it away, or give --no-backup",
                    b.display()
                )));
            }
            let rollback = match (&output, &args.rollback) {
                (None, _) => None,
                (Some(_), Some(r)) => Some(r.clone()),
                (Some(o), None) => Some(with_suffix(o, ".rollback")),
            };
            jobs.push(RewriteJob {
                input: input.clone(),
                output,
                rollback,
                backup,
            });
        }
        if let Some(dir) = &args.output_dir
            && !dir.is_dir()
        {
            return Err(bad(format!(
                "--output-dir {}: not a directory (create it first)",
                dir.display()
            )));
        }
        Ok(Self::Rewrite {
            map,
            bases: args.bases.clone(),
            jobs,
            reverse: args.reverse,
            include_guid: args.include_guid,
            dry_run: args.dry_run,
            strict: args.strict,
            json: args.json,
        })
    }
}

/// Everything `status` needs.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub state_dir: PathBuf,
    pub json: bool,
}

impl StatusSettings {
    pub fn from_args(args: &StatusArgs) -> Result<Self, SettingsError> {
        Ok(Self {
            state_dir: resolved("--state", &args.state)?,
            json: args.json,
        })
    }
}

/// Everything `maps merge` needs.
#[derive(Debug, Clone)]
pub struct MergeSettings {
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
    pub json: bool,
}

impl MergeSettings {
    pub fn from_args(args: &MergeArgs) -> Result<Self, SettingsError> {
        let output = resolved("--output", &args.output)?;
        let mut inputs = Vec::new();
        for dir in &args.inputs {
            let d = resolved("MAP_DIR", dir)?;
            if !d.join("map.json").is_file() {
                return Err(bad(format!(
                    "MAP_DIR '{}' has no map.json: give the --map-dir of each shard",
                    dir.display()
                )));
            }
            if d == output {
                return Err(bad(format!(
                    "--output '{}' is one of the inputs: merge into another directory",
                    args.output.display()
                )));
            }
            if inputs.contains(&d) {
                return Err(bad(format!("MAP_DIR '{}' is given twice", dir.display())));
            }
            inputs.push(d);
        }
        Ok(Self {
            inputs,
            output,
            json: args.json,
        })
    }
}

/// Everything `verify` needs.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub source: PathBuf,
    pub destination: Destination,
    pub connection: ConnectionSettings,
    /// One journal, or every shard's (`--state` repeated).
    pub state_dirs: Vec<PathBuf>,
    pub deep: bool,
    /// `--via-url BASE`: check what a visitor gets at BASE instead of
    /// proving objects through the S3 API. Ends with `/`.
    pub via_url: Option<String>,
    pub concurrency: usize,
    pub output: OutputSettings,
}

impl VerifySettings {
    pub fn from_args(args: &VerifyArgs) -> Result<Self, SettingsError> {
        if args.concurrency == 0 || args.concurrency > 1024 {
            return Err(bad("--concurrency must be between 1 and 1024"));
        }
        let mut connection = connection(&args.connection)?;
        connection.ceiling = args.concurrency;
        Ok(Self {
            source: resolve_source(&args.source)?,
            destination: args.destination.parse().map_err(|e| bad(format!("{e}")))?,
            connection,
            state_dirs: args
                .state
                .iter()
                .map(|d| resolved("--state", d))
                .collect::<Result<_, _>>()?,
            deep: args.deep,
            via_url: args.via_url.as_deref().map(via_url).transpose()?,
            concurrency: args.concurrency,
            output: OutputSettings {
                json: args.json,
                quiet: false,
                progress: !args.no_progress,
                progress_interval: Duration::from_secs(10),
            },
        })
    }
}

/// `--via-url BASE`: an http(s) URL with a host, no query or fragment,
/// ending with `/` (added if missing).
fn via_url(base: &str) -> Result<String, SettingsError> {
    let bad_url = |why: &str| {
        bad(format!(
            "--via-url {base}: {why}: give the URL the application will use for the media, such as https://cdn.example/media/"
        ))
    };
    let Some((scheme, rest)) = base.split_once("://") else {
        return Err(bad_url("not a URL"));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(bad_url("only http:// and https:// URLs are fetched"));
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad_url("no host"));
    }
    if base.contains(['?', '#']) || base.contains(char::is_whitespace) {
        return Err(bad_url("a base URL carries no query, fragment or space"));
    }
    let mut base = base.to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    Ok(base)
}

/// Everything `gc` needs.
#[derive(Debug, Clone)]
pub struct GcSettings {
    pub destination: Destination,
    pub connection: ConnectionSettings,
    pub older_than: std::time::Duration,
    pub state_dir: PathBuf,
    pub all: bool,
    pub dry_run: bool,
    pub json: bool,
}

impl GcSettings {
    pub fn from_args(args: &GcArgs) -> Result<Self, SettingsError> {
        Ok(Self {
            destination: args.destination.parse().map_err(|e| bad(format!("{e}")))?,
            connection: connection(&args.connection)?,
            older_than: duration_flag("--older-than", &args.older_than)?,
            state_dir: resolved("--state", &args.state)?,
            all: args.all,
            dry_run: args.dry_run,
            json: args.json,
        })
    }
}

/// Where `offload` puts a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffloadTo {
    /// Moved under this directory, at its relative path.
    Quarantine(PathBuf),
    Delete,
}

/// Everything `offload` needs.
#[derive(Debug, Clone)]
pub struct OffloadSettings {
    pub source: PathBuf,
    pub destination: Destination,
    pub connection: ConnectionSettings,
    pub state_dir: PathBuf,
    pub to: OffloadTo,
    pub deep: bool,
    /// Files left alone (`--exclude`).
    pub exclude: Option<crate::stages::select::Rules>,
    pub dry_run: bool,
    pub concurrency: usize,
    pub json: bool,
}

/// A quarantine must not be inside SOURCE_DIR (moved files would still be
/// on the same tree, and a later migrate would see them) nor hold it.
fn quarantine_flag(flag: &str, p: &Path, source: &Path) -> Result<PathBuf, SettingsError> {
    let q = resolved(flag, p)?;
    if q.starts_with(source) || source.starts_with(&q) {
        return Err(bad(format!(
            "{flag} {}: the quarantine must be outside SOURCE_DIR {} (and not hold it): give another directory",
            p.display(),
            source.display()
        )));
    }
    if q.exists() && !q.is_dir() {
        return Err(bad(format!("{flag} {}: not a directory", p.display())));
    }
    Ok(q)
}

fn concurrency_flag(n: usize) -> Result<usize, SettingsError> {
    if n == 0 || n > 1024 {
        return Err(bad("--concurrency must be between 1 and 1024"));
    }
    Ok(n)
}

impl OffloadSettings {
    /// Whether `--exclude` leaves the file at `rel` alone.
    pub fn excluded(&self, rel: &str) -> bool {
        self.exclude.as_ref().is_some_and(|r| r.matches(rel))
    }

    pub fn from_args(args: &OffloadArgs) -> Result<Self, SettingsError> {
        let source = resolve_source(&args.source)?;
        let to = match (&args.quarantine, args.delete) {
            (Some(q), false) => OffloadTo::Quarantine(quarantine_flag("--quarantine", q, &source)?),
            (None, true) => OffloadTo::Delete,
            _ => return Err(bad("give one of --quarantine DIR or --delete")),
        };
        let concurrency = concurrency_flag(args.concurrency)?;
        let mut connection = connection(&args.connection)?;
        connection.ceiling = concurrency;
        Ok(Self {
            source,
            destination: args.destination.parse().map_err(|e| bad(format!("{e}")))?,
            connection,
            state_dir: resolved("--state", &args.state)?,
            to,
            deep: args.deep,
            exclude: if args.exclude.is_empty() {
                None
            } else {
                Some(
                    crate::stages::select::Rules::new("--exclude", &args.exclude)
                        .map_err(|e| bad(e.to_string()))?,
                )
            },
            dry_run: args.dry_run,
            concurrency,
            json: args.json,
        })
    }
}

/// Where `restore` takes the bytes from.
#[derive(Debug, Clone)]
pub enum RestoreFrom {
    Quarantine(PathBuf),
    Bucket {
        destination: Destination,
        /// Boxed: the variants are kept near one size.
        connection: Box<ConnectionSettings>,
    },
}

/// Everything `restore` needs.
#[derive(Debug, Clone)]
pub struct RestoreSettings {
    pub source: PathBuf,
    pub state_dir: PathBuf,
    pub from: RestoreFrom,
    pub only: Option<crate::stages::select::Rules>,
    pub concurrency: usize,
    pub json: bool,
}

impl RestoreSettings {
    pub fn from_args(args: &RestoreArgs) -> Result<Self, SettingsError> {
        let source = resolve_source(&args.source)?;
        let concurrency = concurrency_flag(args.concurrency)?;
        let from = match (&args.quarantine, &args.from) {
            (Some(q), None) => {
                RestoreFrom::Quarantine(quarantine_flag("--quarantine", q, &source)?)
            }
            (None, Some(d)) => {
                let mut connection = connection(&args.connection)?;
                connection.ceiling = concurrency;
                RestoreFrom::Bucket {
                    destination: d.parse().map_err(|e| bad(format!("--from: {e}")))?,
                    connection: Box::new(connection),
                }
            }
            _ => {
                return Err(bad(
                    "give one of --quarantine DIR or --from s3://BUCKET[/PREFIX]",
                ));
            }
        };
        let only = if args.only.is_empty() {
            None
        } else {
            Some(
                crate::stages::select::Rules::paths("--only", &args.only)
                    .map_err(|e| bad(e.to_string()))?,
            )
        };
        Ok(Self {
            source,
            state_dir: resolved("--state", &args.state)?,
            from,
            only,
            concurrency,
            json: args.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(
            duration_flag("--older-than", "24h").unwrap().as_secs(),
            86_400
        );
        assert_eq!(
            duration_flag("--older-than", "30m").unwrap().as_secs(),
            1800
        );
        assert_eq!(duration_flag("--older-than", "0").unwrap().as_secs(), 0);
        assert_eq!(
            duration_flag("--older-than", "7d").unwrap().as_secs(),
            604_800
        );
        assert_eq!(
            duration_flag("--stop-timeout", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        let e = duration_flag("--older-than", "soon")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--older-than 'soon'"), "{e}");
        assert!(duration_flag("--older-than", "3w").is_err());
        let e = positive_duration("--request-timeout", "0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--request-timeout must be more than 0"), "{e}");
    }

    #[test]
    fn rates_parse() {
        assert_eq!(rate_flag("--max-bandwidth", "20MiB/s").unwrap(), 20 << 20);
        assert_eq!(rate_flag("--max-bandwidth", "512K").unwrap(), 512 << 10);
        assert!(rate_flag("--max-bandwidth", "0/s").is_err());
        let e = rate_flag("--max-bandwidth", "fast")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--max-bandwidth"), "{e}");
    }
}
