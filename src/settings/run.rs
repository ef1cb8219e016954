//! `plan`'s and `migrate`'s settings: the walk, the keys and URLs, the
//! transfer, the objects' settings, the shard.

use std::path::PathBuf;
use std::time::Duration;

use super::common::{OutputSettings, SettingsError, bad, connection, resolve_source, resolved};
use crate::checksum::Algorithm;
use crate::cli::{ChecksumArg, KeyLayoutArg, MigrateArgs, RunArgs, SseArg};
use crate::limits::{MAX_PART_SIZE, MAX_PUT_SIZE, MIN_PART_SIZE};
use crate::stages::plan::{KeyLayout, PlanRules, Prices};
use crate::stages::scan::ScanOptions;
use crate::stages::select::Selector;
use crate::stages::shard::{MAX_SHARDS, Shard};
use crate::stages::upload::UploadSettings;
use crate::store::{Caps, ConnectionSettings, ObjectOptions};
use crate::types::{ByteSize, Destination};

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
            return Err(bad(
                "--shards",
                format!("{n}: give a number of shards from 1 to {MAX_SHARDS}"),
            ));
        }
        Ok(match (shard, shards) {
            (None, None) => Self::Whole,
            (None, Some(n)) => Self::Split(n),
            (Some(s), n) => {
                let shard = s
                    .parse::<Shard>()
                    .map_err(|e| bad("--shard", e.to_string()))?;
                if let Some(n) = n
                    && n != shard.count
                {
                    return Err(bad(
                        "--shard",
                        format!(
                            "{s} and --shards {n} disagree on the number of shards: give one of them"
                        ),
                    ));
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
            return Err(bad(
                "--shards",
                format!(
                    "{n} without --shard: give --shard I/{n}, or set {JOB_INDEX_VAR} (Kubernetes Indexed Jobs set it)"
                ),
            ));
        };
        v.parse::<u32>()
            .ok()
            .and_then(|i| Shard::new(i, n))
            .map(Self::One)
            .ok_or_else(|| {
                bad(
                    JOB_INDEX_VAR,
                    format!(
                        "'{v}' is not a shard of --shards {n}: it must be 0 to {}",
                        n - 1
                    ),
                )
            })
    }
}

impl RunSettings {
    /// `plan`'s settings (and `migrate`'s run), `quiet` with `-q`.
    pub fn from_args(args: &RunArgs, quiet: bool) -> Result<Self, SettingsError> {
        let source = resolve_source(&args.source)?;
        let destination = args.destination.clone();
        if args.concurrency == 0 || args.concurrency > 1024 {
            return Err(bad("--concurrency", "must be between 1 and 1024"));
        }
        let connection = connection(&args.connection, args.concurrency)?;

        let multipart_threshold = args.multipart_threshold.get();
        if multipart_threshold > MAX_PUT_SIZE {
            return Err(bad(
                "--multipart-threshold",
                format!(
                    "{} is above 5 GiB, the largest single PutObject S3 accepts",
                    args.multipart_threshold
                ),
            ));
        }
        let part_size = args.part_size.get();
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
            return Err(bad(
                "--part-size",
                format!(
                    "{} is outside S3's limits: use 5MiB to 5GiB",
                    args.part_size
                ),
            ));
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hash_threads = args.hash_threads.unwrap_or(cores);
        if hash_threads == 0 || hash_threads > 256 {
            return Err(bad("--hash-threads", "must be between 1 and 256"));
        }
        for (flag, v) in [
            ("--price-put-per-1000", args.price_put_per_1000),
            ("--price-gb-month", args.price_gb_month),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(flag, "must be a non-negative number of USD"));
            }
        }

        let selector = Selector::new(args.all_files, &args.include, &args.exclude)?;
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
                source_base: args.source_base_url.clone(),
                public_base: args
                    .public_base_url
                    .as_deref()
                    .map(|u| {
                        if u.contains(['?', '#']) {
                            return Err(bad("--public-base-url", format!(
                                "'{u}' has a query string or fragment: give the URL objects are served under; each object's URL is it plus the key"
                            )));
                        }
                        Ok(u.to_string())
                    })
                    .transpose()?,
            },
            state_dir,
            concurrency: args.concurrency,
            hash_threads,
            output: OutputSettings::new(&args.out, quiet),
            allow_empty: args.allow_empty,
            sharding: Sharding::from_flags(args.shard.as_deref(), args.shards)?,
        })
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
        return Err(bad(
            flag,
            format!(
                "'{}' must be a non-empty header value without control characters",
                v.escape_debug()
            ),
        ));
    }
    Ok(v.to_string())
}

/// `--metadata KEY=VALUE`s: keys as S3 stores them (lower case, letters,
/// digits, `-` and `_`), not mediashift's own.
fn metadata_flags(items: &[String]) -> Result<Vec<(String, String)>, SettingsError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(bad("--metadata", format!("'{item}' must be KEY=VALUE")));
        };
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "--metadata",
                format!("'{item}': the key must be letters, digits, '-' or '_'"),
            ));
        }
        if key == crate::stages::verify::SHA256_METADATA
            || key == crate::stages::verify::SOURCE_PATH_METADATA
        {
            return Err(bad(
                "--metadata",
                format!(
                    "'{item}': '{key}' is mediashift's own (the file's proof and path); use another key"
                ),
            ));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(bad("--metadata", format!("'{key}' is given twice")));
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
            return Err(bad(
                "--content-type",
                format!("'{item}' must be EXT=TYPE, e.g. heic=image/heif"),
            ));
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
    /// The settings `migrate`'s flags give (`plan` takes the same), `quiet`
    /// with `-q`. A `migrate` (`one_shard`) takes one shard: `--shards N`
    /// alone takes the index [`JOB_INDEX_VAR`] gives; `plan` shows the split.
    pub fn from_args(
        args: &MigrateArgs,
        quiet: bool,
        one_shard: bool,
    ) -> Result<Self, SettingsError> {
        let mut run = RunSettings::from_args(&args.run, quiet)?;
        if one_shard {
            let index = std::env::var(JOB_INDEX_VAR).ok();
            run.sharding = run.sharding.for_one_run(index.as_deref())?;
        }
        let max_memory = args.max_memory.get();
        if max_memory < 16 * ByteSize::MIB {
            return Err(bad(
                "--max-memory",
                format!("{} is too small: give at least 16MiB", args.max_memory),
            ));
        }
        if args.large_files == 0 || args.large_files > 256 {
            return Err(bad("--large-files", "must be between 1 and 256"));
        }
        if let Some(c) = &args.storage_class
            && !STORAGE_CLASSES.contains(&c.as_str())
        {
            return Err(bad(
                "--storage-class",
                format!("'{c}' is not one of {}", STORAGE_CLASSES.join(", ")),
            ));
        }
        if let Some(a) = &args.acl
            && !ACLS.contains(&a.as_str())
        {
            return Err(bad(
                "--acl",
                format!("'{a}' is not one of {}", ACLS.join(", ")),
            ));
        }
        if args.sse_kms_key_id.is_some() && args.sse != Some(SseArg::AwsKms) {
            return Err(bad("--sse-kms-key-id", "needs --sse aws:kms"));
        }
        if let Some(cc) = &args.cache_control
            && (cc.trim().is_empty() || cc.chars().any(char::is_control))
        {
            return Err(bad(
                "--cache-control",
                "must be a non-empty header value without control characters",
            ));
        }
        let map_dir = resolved("--map-dir", &args.map_dir)?;
        if map_dir.starts_with(&run.scan.root) {
            return Err(bad(
                "--map-dir",
                format!(
                    "'{}' is inside SOURCE_DIR ({}): put the maps elsewhere so they are not taken for media",
                    args.map_dir.display(),
                    map_dir.display()
                ),
            ));
        }
        run.scan.prune.push(map_dir.clone());
        let report = args
            .report
            .as_deref()
            .map(|r| {
                let abs = resolved("--report", r)?;
                if abs.starts_with(&run.scan.root) {
                    return Err(bad(
                        "--report",
                        format!(
                            "'{}' is inside SOURCE_DIR ({}): put it elsewhere",
                            r.display(),
                            run.scan.root.display()
                        ),
                    ));
                }
                if abs.is_dir() {
                    return Err(bad(
                        "--report",
                        format!("'{}' is a directory: give a file name", r.display()),
                    ));
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
                sse: args.sse.map(|s| s.header().to_string()),
                sse_kms_key_id: args.sse_kms_key_id.clone(),
            },
            copy_limit: run.rules.copy_limit,
        };
        if let Some(r) = args.max_rps
            && !(r.is_finite() && r > 0.0)
        {
            return Err(bad(
                "--max-rps",
                "must be a number of requests per second above 0",
            ));
        }
        run.connection.caps = Caps {
            bytes_per_s: args.max_bandwidth,
            requests_per_s: args.max_rps,
        };
        Ok(Self {
            run,
            dry_run: args.dry_run,
            map_dir,
            upload,
            stop_timeout: args.stop_timeout,
            low_priority: args.low_priority,
            content_types: content_type_flags(&args.content_types)?,
            report,
            recheck: args.recheck,
        })
    }
}
