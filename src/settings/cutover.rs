//! The cutover's settings: `rewrite`, `offload` and `restore`.

use std::path::{Path, PathBuf};

use super::common::{
    OutputSettings, SettingsError, bad, concurrency_flag, connection, resolve_source, resolved,
};
use crate::cli::{OffloadArgs, RestoreArgs, RewriteArgs};
use crate::store::ConnectionSettings;
use crate::types::Destination;

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
        output: OutputSettings,
    },
    Undo {
        record: PathBuf,
        output: PathBuf,
        to: PathBuf,
        report: OutputSettings,
    },
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

impl RewriteSettings {
    pub fn from_args(args: &RewriteArgs, quiet: bool) -> Result<Self, SettingsError> {
        if let Some(record) = &args.undo {
            let ([output], Some(to)) = (&args.inputs[..], &args.output) else {
                return Err(bad(
                    "--undo",
                    "takes the rewritten file and -o ORIGINAL: mediashift rewrite --undo OUTPUT.rollback OUTPUT -o ORIGINAL",
                ));
            };
            return Ok(Self::Undo {
                record: record.clone(),
                output: output.clone(),
                to: to.clone(),
                report: OutputSettings::new(&args.out, quiet),
            });
        }
        let map = args.map.clone().ok_or_else(|| {
            bad(
                "--map",
                "is needed: the map.json (or --map-dir) migrate wrote",
            )
        })?;
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
                "-o OUTPUT, --output-dir DIR or --in-place",
                "is needed: say where the rewritten files go (or give --dry-run to only report)",
            ));
        }
        if args.output.is_some() && args.inputs.len() != 1 {
            return Err(bad(
                "-o",
                format!(
                    "takes one INPUT, not {}: use --output-dir DIR for several",
                    args.inputs.len()
                ),
            ));
        }
        if args.rollback.is_some() && args.inputs.len() != 1 {
            return Err(bad("--rollback", "FILE takes one INPUT"));
        }
        let mut jobs = Vec::new();
        let mut names = std::collections::HashSet::new();
        for input in &args.inputs {
            if !input.is_file() {
                return Err(bad(
                    "INPUT",
                    format!(
                        "{}: not a file (give dumps and content files, not directories)",
                        input.display()
                    ),
                ));
            }
            let output = if args.dry_run {
                None
            } else if let Some(o) = &args.output {
                Some(o.clone())
            } else if let Some(dir) = &args.output_dir {
                let name = input.file_name().ok_or_else(|| {
                    bad("INPUT", format!("{}: has no file name", input.display()))
                })?;
                if !names.insert(name.to_os_string()) {
                    return Err(bad(
                        "--output-dir",
                        format!(
                            "gets two INPUTs named {}: rewrite them into different directories",
                            name.to_string_lossy()
                        ),
                    ));
                }
                Some(dir.join(name))
            } else {
                Some(input.clone())
            };
            if let Some(o) = &output
                && !args.in_place
                && std::path::absolute(o).ok() == std::path::absolute(input).ok()
            {
                return Err(bad(
                    if args.output.is_some() {
                        "-o"
                    } else {
                        "--output-dir"
                    },
                    format!(
                        "{}: the output would overwrite its INPUT; use --in-place (which keeps a backup)",
                        o.display()
                    ),
                ));
            }
            let backup = (args.in_place && !args.no_backup && !args.dry_run)
                .then(|| with_suffix(input, ".bak"));
            if let Some(b) = &backup
                && b.exists()
            {
                return Err(bad(
                    "--in-place",
                    format!(
                        "would overwrite the backup {}, which exists already: move it away, or give --no-backup",
                        b.display()
                    ),
                ));
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
            return Err(bad(
                "--output-dir",
                format!("{}: not a directory (create it first)", dir.display()),
            ));
        }
        Ok(Self::Rewrite {
            map,
            bases: args.bases.clone(),
            jobs,
            reverse: args.reverse,
            include_guid: args.include_guid,
            dry_run: args.dry_run,
            strict: args.strict,
            output: OutputSettings::new(&args.out, quiet),
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
    pub output: OutputSettings,
}

/// A quarantine must not be inside SOURCE_DIR (moved files would still be
/// on the same tree, and a later migrate would see them) nor hold it.
fn quarantine_flag(flag: &str, p: &Path, source: &Path) -> Result<PathBuf, SettingsError> {
    let q = resolved(flag, p)?;
    if q.starts_with(source) || source.starts_with(&q) {
        return Err(bad(
            flag,
            format!(
                "{}: the quarantine must be outside SOURCE_DIR {} (and not hold it): give another directory",
                p.display(),
                source.display()
            ),
        ));
    }
    if q.exists() && !q.is_dir() {
        return Err(bad(flag, format!("{}: not a directory", p.display())));
    }
    Ok(q)
}

impl OffloadSettings {
    /// Whether `--exclude` leaves the file at `rel` alone.
    pub fn excluded(&self, rel: &str) -> bool {
        self.exclude.as_ref().is_some_and(|r| r.matches(rel))
    }

    pub fn from_args(args: &OffloadArgs, quiet: bool) -> Result<Self, SettingsError> {
        let source = resolve_source(&args.source)?;
        let to = match (&args.quarantine, args.delete) {
            (Some(q), false) => OffloadTo::Quarantine(quarantine_flag("--quarantine", q, &source)?),
            (None, true) => OffloadTo::Delete,
            _ => {
                return Err(bad(
                    "--quarantine DIR or --delete",
                    "is needed: give one of them",
                ));
            }
        };
        let concurrency = concurrency_flag(args.concurrency)?;
        let connection = connection(&args.connection, concurrency)?;
        Ok(Self {
            source,
            destination: args.destination.clone(),
            connection,
            state_dir: resolved("--state", &args.state)?,
            to,
            deep: args.deep,
            exclude: if args.exclude.is_empty() {
                None
            } else {
                Some(crate::stages::select::Rules::new(
                    "--exclude",
                    &args.exclude,
                )?)
            },
            dry_run: args.dry_run,
            concurrency,
            output: OutputSettings::new(&args.out, quiet),
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
    pub output: OutputSettings,
}

impl RestoreSettings {
    pub fn from_args(args: &RestoreArgs, quiet: bool) -> Result<Self, SettingsError> {
        let source = resolve_source(&args.source)?;
        let concurrency = concurrency_flag(args.concurrency)?;
        let from = match (&args.quarantine, &args.from) {
            (Some(q), None) => {
                RestoreFrom::Quarantine(quarantine_flag("--quarantine", q, &source)?)
            }
            (None, Some(d)) => RestoreFrom::Bucket {
                destination: d.clone(),
                connection: Box::new(connection(&args.connection, concurrency)?),
            },
            _ => {
                return Err(bad(
                    "--quarantine DIR or --from s3://BUCKET[/PREFIX]",
                    "is needed: give one of them",
                ));
            }
        };
        let only = if args.only.is_empty() {
            None
        } else {
            Some(crate::stages::select::Rules::paths("--only", &args.only)?)
        };
        Ok(Self {
            source,
            state_dir: resolved("--state", &args.state)?,
            from,
            only,
            concurrency,
            output: OutputSettings::new(&args.out, quiet),
        })
    }
}
