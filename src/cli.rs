//! The command line as clap sees it. Nothing outside this module and
//! `settings` knows clap: `settings` turns these raw values into checked,
//! typed settings, and everything downstream takes those.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::types::{ByteSize, Destination};
use crate::values;

#[derive(Debug, Parser)]
#[command(
    name = "mediashift",
    version,
    about = "Move a web shop's media from local disk to S3 or any S3-compatible store, safely and fast.",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// More log output on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan a migration without writing anything: what would be uploaded,
    /// what is already there, duplicates, problem names, requests and cost.
    /// Takes every `migrate` option, so the two are a verb swap.
    Plan(MigrateArgs),

    /// Upload the media: each distinct content once, checksummed and
    /// verified, then write the URL rewrite maps.
    Migrate(MigrateArgs),

    /// What the journal knows: files by state, bytes done and remaining,
    /// uploads in flight, failures.
    Status(StatusArgs),

    /// Re-check every object the journal says is in place: it exists, its
    /// size, checksum and sha256 metadata match (--deep: its bytes).
    Verify(VerifyArgs),

    /// Abort incomplete multipart uploads under a prefix (they cost storage).
    Gc(GcArgs),

    /// Point the application's own data at the new URLs: rewrite every
    /// reference to a migrated file in database dumps (mysqldump, pg_dump)
    /// and content files, in any encoding and keeping its form, with a
    /// record to undo it.
    ///
    /// Exit code 1 if a file could not be rewritten whole (unreadable, a
    /// serialized value with wrong lengths, bytes not UTF-8), or, with
    /// --strict, if a reference under a base is not in the map.
    Rewrite(RewriteArgs),

    /// Free the server's disk: move to a quarantine (or delete) each file
    /// whose object is proven in the bucket now, unchanged since its upload.
    Offload(OffloadArgs),

    /// Put offloaded files back, from the quarantine or from the bucket,
    /// each checked against the journal's SHA-256.
    Restore(RestoreArgs),

    /// Work with the URL maps: `maps merge` joins the maps of a sharded
    /// migration into one set.
    Maps {
        #[command(subcommand)]
        command: MapsCommand,
    },

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: Shell,
    },

    /// Print the man page (roff): `mediashift man > mediashift.1`, and one
    /// per command: `mediashift man migrate > mediashift-migrate.1`.
    Man {
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
}

/// The output flags every command takes (`-q` is global, on [`Cli`]).
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print one JSON document on stdout instead of the text report.
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    /// No progress on stderr (bars on a terminal, a status line otherwise).
    #[arg(long, help_heading = "Output")]
    pub no_progress: bool,

    /// When stderr is not a terminal (cron, systemd), a one-line status
    /// every this long, e.g. 10s or 1m.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = values::positive_duration,
        help_heading = "Output"
    )]
    pub progress_interval: Duration,
}

#[derive(Debug, Subcommand)]
pub enum MapsCommand {
    /// Join the maps of shards (each shard's --map-dir) into one set: one
    /// map.csv, map.json, nginx.map and apache.map. Refuses maps of other
    /// migrations, two shards mapping one old URL to different new URLs,
    /// and a declared shard that is missing.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' map directories.
    #[arg(value_name = "MAP_DIR", required = true)]
    pub inputs: Vec<PathBuf>,

    /// Where the merged maps go.
    #[arg(short = 'o', long = "output", value_name = "MAP_DIR")]
    pub output: PathBuf,

    #[command(flatten)]
    pub out: OutputArgs,
}

/// A shell `completions` writes for.
pub type Shell = clap_complete::Shell;

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory as _;
    clap_complete::generate(shell, &mut Cli::command(), "mediashift", out);
}

/// Writes the man page of mediashift, or of one of its commands, to
/// `out`; `Ok(false)` when there is no such command.
pub fn man(command: Option<&str>, out: &mut dyn std::io::Write) -> std::io::Result<bool> {
    use clap::CommandFactory as _;
    let cmd = Cli::command();
    let page = match command {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => {
                // Once per process: clap takes a static name.
                let full: &'static str = Box::leak(format!("mediashift-{name}").into_boxed_str());
                sub.clone().name(full).bin_name(full)
            }
            None => return Ok(false),
        },
    };
    clap_mangen::Man::new(page).render(out)?;
    Ok(true)
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("how").required(true).args(["quarantine", "delete"]))]
pub struct OffloadArgs {
    /// The migrated directory.
    #[arg(value_name = "SOURCE_DIR")]
    pub source: PathBuf,

    /// Where it was migrated: s3://BUCKET or s3://BUCKET/PREFIX.
    #[arg(value_name = "s3://BUCKET[/PREFIX]")]
    pub destination: Destination,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// The migration's state directory (its journal says what is verified).
    #[arg(long, value_name = "DIR", default_value = ".mediashift")]
    pub state: PathBuf,

    /// Move each file here, under its relative path (outside SOURCE_DIR;
    /// `restore --quarantine` brings them back).
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,

    /// Delete each file (`restore --from` downloads it back).
    #[arg(long)]
    pub delete: bool,

    /// Also re-hash each file and download and hash each object.
    #[arg(long)]
    pub deep: bool,

    /// Leave files matching GLOB alone: neither offloaded nor reported
    /// (repeatable; the patterns of migrate's --exclude).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// List what would be offloaded and what kept; touch nothing.
    #[arg(long, short = 'n', visible_alias = "dryrun")]
    pub dry_run: bool,

    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source_of_bytes").required(true).args(["quarantine", "from"]))]
pub struct RestoreArgs {
    /// The migrated directory the files go back to.
    #[arg(value_name = "SOURCE_DIR")]
    pub source: PathBuf,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// The migration's state directory.
    #[arg(long, value_name = "DIR", default_value = ".mediashift")]
    pub state: PathBuf,

    /// The quarantine `offload --quarantine` moved the files to.
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,

    /// Download them from where they were migrated: s3://BUCKET[/PREFIX].
    #[arg(long, value_name = "s3://BUCKET[/PREFIX]")]
    pub from: Option<Destination>,

    /// Only files whose relative path matches (repeatable; `*` stays
    /// within a directory, `**` crosses them).
    #[arg(long = "only", value_name = "GLOB")]
    pub only: Vec<String>,

    /// Downloads in flight at once (with --from).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// The map `migrate` wrote: map.json, or the --map-dir holding it.
    #[arg(long, value_name = "MAP", required_unless_present = "undo")]
    pub map: Option<PathBuf>,

    /// A form under which the application writes the old URLs, e.g.
    /// https://shop.example/media/, //shop.example/media/, /media/
    /// (repeatable; default: the map's --source-base-url). With --reverse,
    /// the first one is what new URLs go back to.
    #[arg(long = "base", value_name = "URL")]
    pub bases: Vec<String>,

    /// Files to rewrite: SQL dumps (by their header or a .sql name) or any
    /// text (HTML, CSS, JSON, CSV). With --undo: the rewritten file.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,

    /// Where the rewritten file goes (one INPUT). With --undo: where the
    /// original is restored.
    #[arg(short = 'o', long, value_name = "OUTPUT")]
    pub output: Option<PathBuf>,

    /// Write each rewritten INPUT under its file name in DIR.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["output", "in_place"])]
    pub output_dir: Option<PathBuf>,

    /// Replace each INPUT, keeping the original as INPUT.bak.
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,

    /// With --in-place: keep no INPUT.bak (the rollback record still
    /// restores it).
    #[arg(long, requires = "in_place")]
    pub no_backup: bool,

    /// Where the rollback record goes (one INPUT; default OUTPUT.rollback).
    #[arg(long, value_name = "FILE")]
    pub rollback: Option<PathBuf>,

    /// Apply the map backwards: new URLs become the first --base (for
    /// data that has no rollback record).
    #[arg(long, conflicts_with = "undo")]
    pub reverse: bool,

    /// Also rewrite WordPress's posts.guid (an identifier, left alone by
    /// default).
    #[arg(long)]
    pub include_guid: bool,

    /// Only report what would be replaced; write nothing.
    #[arg(long, short = 'n', visible_alias = "dryrun")]
    pub dry_run: bool,

    /// Exit 1 if a reference under a base is not in the map. Without it
    /// such references are listed (in the report, --json's not_in_map),
    /// left as they are, and do not change the exit code: a file the
    /// migration did not take (a PDF under the media base) is still served
    /// from the old URL.
    #[arg(long)]
    pub strict: bool,

    /// Undo a rewrite: give the record, then the rewritten file as INPUT
    /// and -o ORIGINAL.
    #[arg(long, value_name = "ROLLBACK", conflicts_with_all = ["map", "bases", "output_dir", "in_place", "dry_run", "strict"])]
    pub undo: Option<PathBuf>,

    #[command(flatten)]
    pub out: OutputArgs,
}

/// `--retry-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RetryModeArg {
    Standard,
    Adaptive,
}

/// `--sse`: server-side encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SseArg {
    #[value(name = "AES256")]
    Aes256,
    #[value(name = "aws:kms")]
    AwsKms,
}

impl SseArg {
    /// As S3's `x-amz-server-side-encryption` spells it.
    pub fn header(self) -> &'static str {
        match self {
            Self::Aes256 => "AES256",
            Self::AwsKms => "aws:kms",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChecksumArg {
    /// CRC64NVME, full-object on multipart uploads (the AWS CLI's default).
    Crc64nvme,
    /// SHA-256, composite on multipart uploads.
    Sha256,
    /// CRC32C, full-object on multipart uploads.
    Crc32c,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Print the plan (exactly what `mediashift plan` prints) and write nothing.
    #[arg(long, short = 'n', visible_alias = "dryrun")]
    pub dry_run: bool,

    /// Where the URL maps go (map.csv, map.json, nginx.map, apache.map).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "mediashift-maps",
        help_heading = "Keys and URLs"
    )]
    pub map_dir: std::path::PathBuf,

    /// An audit trail of the run: FILE gets the JSON report plus one row per
    /// file (path, key, outcome, how it was proven, bytes, error), and
    /// FILE.csv the same rows.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,

    /// On a rerun, check the bucket for every object: list it and take
    /// no proof of the journal's without the object there with its size.
    /// (By default a rerun trusts the proofs the journal recorded for files
    /// unchanged since, once a sample of them is found in the bucket; it
    /// asks only about the rest. `mediashift verify` proves every object.)
    #[arg(long)]
    pub recheck: bool,

    /// Checksum sent with every request and checked by the server.
    #[arg(long, value_enum, default_value_t = ChecksumArg::Crc64nvme, help_heading = "Transfer")]
    pub checksum: ChecksumArg,

    // 128 MiB holds 16 parts of 8 MiB in flight: enough to keep a remote S3
    // busy at 50-100 ms per part. Peak RSS on 3 x 1 GiB at this default is
    // 151 MiB (bench/README.md). Against the local server 64 MiB was as fast,
    // but there each part takes a few milliseconds.
    /// Memory for file data in flight (small files and parts).
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "128MiB",
        help_heading = "Transfer"
    )]
    pub max_memory: ByteSize,

    /// Large files uploading at once (their parts share --concurrency).
    #[arg(long, value_name = "N", default_value_t = 4, help_heading = "Transfer")]
    pub large_files: usize,

    /// Cache-Control header stored with each object (e.g. "public, max-age=31536000, immutable").
    #[arg(long, value_name = "VALUE", help_heading = "Object settings")]
    pub cache_control: Option<String>,

    /// User metadata stored with each object (repeatable), as
    /// x-amz-meta-KEY. `sha256` and `source-path` are mediashift's own.
    #[arg(
        long = "metadata",
        value_name = "KEY=VALUE",
        help_heading = "Object settings"
    )]
    pub metadata: Vec<String>,

    /// Content-Disposition header stored with each object (e.g. inline).
    #[arg(long, value_name = "VALUE", help_heading = "Object settings")]
    pub content_disposition: Option<String>,

    /// Content-Type for files with this extension, instead of the one
    /// guessed from it (repeatable), e.g. --content-type heic=image/heif.
    #[arg(
        long = "content-type",
        value_name = "EXT=TYPE",
        help_heading = "Object settings"
    )]
    pub content_types: Vec<String>,

    /// Storage class, e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING.
    #[arg(long, value_name = "CLASS", help_heading = "Object settings")]
    pub storage_class: Option<String>,

    /// Canned ACL, e.g. private, public-read, bucket-owner-full-control.
    #[arg(long, value_name = "ACL", help_heading = "Object settings")]
    pub acl: Option<String>,

    /// Server-side encryption: AES256 or aws:kms.
    #[arg(
        long,
        value_name = "MODE",
        value_enum,
        help_heading = "Object settings"
    )]
    pub sse: Option<SseArg>,

    /// KMS key for --sse aws:kms.
    #[arg(
        long,
        value_name = "KEY_ID",
        requires = "sse",
        help_heading = "Object settings"
    )]
    pub sse_kms_key_id: Option<String>,

    /// After a first Ctrl-C or SIGTERM, requests in flight get this long
    /// to finish; the rest are cancelled, the journal flushed and the maps
    /// written. A second signal quits at once.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = values::duration,
        help_heading = "Transfer"
    )]
    pub stop_timeout: Duration,

    /// At most this many bytes of file data per second, e.g. 20MiB/s.
    #[arg(long, value_name = "RATE", value_parser = values::rate, help_heading = "Gentle on the server")]
    pub max_bandwidth: Option<u64>,

    /// At most this many requests per second.
    #[arg(long, value_name = "N", help_heading = "Gentle on the server")]
    pub max_rps: Option<f64>,

    /// Run at the lowest CPU and I/O priority (nice 19, idle I/O class),
    /// so the shop on the same server goes first.
    #[arg(long, help_heading = "Gentle on the server")]
    pub low_priority: bool,
}

/// How to reach the store.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// S3 endpoint, e.g. http://127.0.0.1:8333 for a local server. Default:
    /// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile, then AWS itself.
    /// A custom endpoint uses path-style addressing.
    #[arg(long, value_name = "URL", value_parser = values::http_url, help_heading = "Connection")]
    pub endpoint_url: Option<String>,

    /// AWS region (default: AWS_REGION, the profile, then us-east-1).
    #[arg(long, help_heading = "Connection")]
    pub region: Option<String>,

    /// Named profile from ~/.aws/config and ~/.aws/credentials.
    #[arg(long, help_heading = "Connection")]
    pub profile: Option<String>,

    /// How many requests are in flight: adaptive starts below
    /// --concurrency, adds while requests succeed and cuts by 30% when the
    /// store pushes back (503 SlowDown, 429, timeouts, refused
    /// connections); standard keeps --concurrency. Either way a throttled
    /// request waits and is retried without spending its attempts.
    /// Default: AWS_RETRY_MODE, the profile, then adaptive.
    #[arg(long, value_name = "MODE", value_enum, help_heading = "Connection")]
    pub retry_mode: Option<RetryModeArg>,

    /// Attempts per request, first one included, for errors that may pass
    /// (5xx, dropped connections, timeouts); throttling and an unreachable
    /// store are waited out instead (--unreachable-timeout). Default:
    /// AWS_MAX_ATTEMPTS, the profile, then 5.
    #[arg(long, value_name = "N", help_heading = "Connection")]
    pub max_attempts: Option<u32>,

    /// Sign file data into each request (SigV4 payload hash) even over
    /// HTTPS or loopback, where it is skipped by default as the AWS SDKs do:
    /// TLS or the absence of a network already guards the data in transit,
    /// and the checksum the server validates still covers every byte.
    #[arg(long, help_heading = "Connection")]
    pub sign_payload: bool,

    /// A request that makes no progress for this long is cut off and tried
    /// again (a body whose bytes stop being taken, an answer that does not
    /// come after the last byte), e.g. 30s or 2m. An upload that keeps
    /// moving is never cut off by it, however slow the link.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        value_parser = values::positive_duration,
        help_heading = "Connection"
    )]
    pub request_timeout: Duration,

    /// How long requests keep trying while the store throttles them or
    /// cannot be reached (work pauses and the endpoint is probed), e.g. 3m.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "3m",
        value_parser = values::duration,
        help_heading = "Connection"
    )]
    pub unreachable_timeout: Duration,

    /// A PEM file of the CA certificates to check the endpoint's TLS
    /// certificate against, instead of the system's (as the AWS CLI does):
    /// a self-hosted server's private CA. Default: AWS_CA_BUNDLE, then the
    /// profile's ca_bundle.
    #[arg(long, value_name = "FILE", help_heading = "Connection")]
    pub ca_bundle: Option<PathBuf>,

    /// Check no TLS certificate at all (a warning says so on every run):
    /// anyone on the network path could read and change the traffic.
    /// Prefer --ca-bundle.
    #[arg(long, conflicts_with = "ca_bundle", help_heading = "Connection")]
    pub no_verify_ssl: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The migration's state directory.
    #[arg(long, value_name = "DIR", default_value = ".mediashift")]
    pub state: PathBuf,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The migrated directory.
    #[arg(value_name = "SOURCE_DIR")]
    pub source: PathBuf,

    /// Where it was migrated: s3://BUCKET or s3://BUCKET/PREFIX.
    #[arg(value_name = "s3://BUCKET[/PREFIX]")]
    pub destination: Destination,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// The migration's state directory (its journal says what should be
    /// there). Repeat it to verify a sharded migration: one per shard.
    #[arg(long, value_name = "DIR", default_value = ".mediashift")]
    pub state: Vec<PathBuf>,

    /// Download every object and re-hash it (reads everything back).
    #[arg(long)]
    pub deep: bool,

    /// Check the switch before flipping it: fetch every file over plain
    /// HTTP(S), without credentials, as the application's visitors will
    /// (HEAD; with --deep, GET and hash), at BASE + its path as the
    /// application writes it (the new media base: the bucket's or CDN's
    /// URL and the prefix), and report what a browser gets: status,
    /// length, Content-Type, Cache-Control. With --key-layout content, at
    /// BASE + its object's key (its new_url in the maps, BASE being
    /// --public-base-url).
    #[arg(long, value_name = "BASE")]
    pub via_url: Option<String>,

    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub concurrency: usize,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Where to look: s3://BUCKET or s3://BUCKET/PREFIX.
    #[arg(value_name = "s3://BUCKET[/PREFIX]")]
    pub destination: Destination,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Only uploads started longer ago than this (e.g. 30m, 24h, 7d; 0 for all).
    #[arg(long, value_name = "AGE", default_value = "24h", value_parser = values::duration)]
    pub older_than: Duration,

    /// A migration's state directory: uploads its journal will resume are kept.
    #[arg(long, value_name = "DIR", default_value = ".mediashift")]
    pub state: PathBuf,

    /// Abort uploads the journal would resume, too.
    #[arg(long)]
    pub all: bool,

    /// List what would be aborted; abort nothing.
    #[arg(long, short = 'n', visible_alias = "dryrun")]
    pub dry_run: bool,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyLayoutArg {
    /// <prefix>/<relative path>
    Preserve,
    /// <prefix>/ab/cd/<sha256>.<ext>
    Content,
}

/// Options shared by `plan` and `migrate`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The directory holding the media (e.g. /var/www/shop/pub/media).
    #[arg(value_name = "SOURCE_DIR")]
    pub source: PathBuf,

    /// Where objects go: s3://BUCKET or s3://BUCKET/PREFIX.
    #[arg(value_name = "s3://BUCKET[/PREFIX]")]
    pub destination: Destination,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    // Selection.
    /// Take every file, not only images and videos.
    #[arg(long, help_heading = "Selection")]
    pub all_files: bool,

    /// A selection with no file in it is not an error (it is, by default:
    /// exit 1, as it is most often a wrong path or pattern).
    #[arg(long, help_heading = "Selection")]
    pub allow_empty: bool,

    /// Take only files matching GLOB (repeatable). A pattern without '/'
    /// matches file names at any depth; with '/', the path from SOURCE_DIR.
    #[arg(long, value_name = "GLOB", help_heading = "Selection")]
    pub include: Vec<String>,

    /// Leave out files matching GLOB (repeatable; wins over --include).
    #[arg(long, value_name = "GLOB", help_heading = "Selection")]
    pub exclude: Vec<String>,

    /// Follow symbolic links (loops are detected and reported).
    #[arg(long, help_heading = "Selection")]
    pub follow_symlinks: bool,

    /// Take one shard of the files: I/N, 0-based. Run each shard as its
    /// own process (on one host or many sharing the tree) with its own
    /// --state and --map-dir, then `mediashift maps merge`. A file's shard
    /// follows from its size, so duplicates stay together and dedup stays
    /// exact.
    #[arg(long, value_name = "I/N", help_heading = "Selection")]
    pub shard: Option<String>,

    /// Split into N shards. `plan` shows the split; `migrate` without
    /// --shard takes shard $JOB_COMPLETION_INDEX (set by Kubernetes
    /// Indexed Jobs).
    #[arg(long, value_name = "N", help_heading = "Selection")]
    pub shards: Option<u32>,

    /// mediashift's state directory (journal); never uploaded.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".mediashift",
        help_heading = "Selection"
    )]
    pub state: PathBuf,

    // Keys and URLs.
    /// How objects are named.
    #[arg(long, value_enum, default_value_t = KeyLayoutArg::Preserve, help_heading = "Keys and URLs")]
    pub key_layout: KeyLayoutArg,

    /// How the application serves SOURCE_DIR today (a path like /media/ or a URL).
    #[arg(
        long,
        value_name = "URL",
        default_value = "/",
        value_parser = values::path_or_url,
        help_heading = "Keys and URLs"
    )]
    pub source_base_url: String,

    /// Where objects will be served (a CDN, say). Default: the endpoint's URL for the bucket.
    #[arg(long, value_name = "URL", value_parser = values::http_url, help_heading = "Keys and URLs")]
    pub public_base_url: Option<String>,

    /// Replace objects that hold different content under the same key.
    #[arg(long, help_heading = "Keys and URLs")]
    pub overwrite: bool,

    // Transfer. Defaults measured with bench/run (bench/README.md).
    //
    // Below 16 MiB a file goes up in one PutObject (one request, not three or
    // more), read whole into memory: at most 8 such files fit the default
    // memory budget.
    /// Files this large or larger go up in parts.
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "16MiB",
        help_heading = "Transfer"
    )]
    pub multipart_threshold: ByteSize,

    // Parts of 5, 8, 16 and 32 MiB on the mixed corpus were within the noise
    // (larger parts cost the server slightly less CPU). 8 MiB, the AWS CLI's
    // default, keeps what a crash makes us resend small.
    /// Target part size (at least 5 MiB; grown so no object needs more than 10,000 parts).
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "8MiB",
        help_heading = "Transfer"
    )]
    pub part_size: ByteSize,

    // On the small corpus 8 requests in flight were ~15% slower than 16 or
    // more. Over 9 interleaved runs each, 64 beat 32 by ~5% in wall time and
    // cost the server ~7% less CPU per object (more requests per wake-up);
    // 96 and 128 were no better, and mixed could not tell 32 from 64. Against
    // a remote endpoint the count in flight sets throughput (64 x 100 KB /
    // 30 ms is ~200 MB/s). Disk reads stay bounded by the hashing threads and
    // memory by --max-memory, so a larger count only costs sockets (+9 MiB
    // RSS). s5cmd defaults to 256, the AWS CLI to 10.
    /// Requests in flight at once.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        help_heading = "Transfer"
    )]
    pub concurrency: usize,

    /// Threads that read and hash files (default: one per core).
    #[arg(long, value_name = "N", help_heading = "Transfer")]
    pub hash_threads: Option<usize>,

    // Cost.
    /// USD per 1,000 PUT/POST requests for the estimate (S3 Standard list price).
    #[arg(
        long,
        value_name = "USD",
        default_value_t = 0.005,
        help_heading = "Cost estimate"
    )]
    pub price_put_per_1000: f64,

    /// USD per GB-month stored for the estimate (S3 Standard, first 50 TB).
    #[arg(
        long,
        value_name = "USD",
        default_value_t = 0.023,
        help_heading = "Cost estimate"
    )]
    pub price_gb_month: f64,

    #[command(flatten)]
    pub out: OutputArgs,
}

/// The command a command line names, for the unit tests that run commands
/// (nothing but `cli` and `settings` may know clap).
#[cfg(test)]
pub fn command_of<I: IntoIterator<Item = String>>(args: I) -> Result<Command, clap::Error> {
    use clap::Parser as _;
    Cli::try_parse_from(args).map(|c| c.command)
}
