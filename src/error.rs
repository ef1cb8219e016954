//! The errors that end a run as a whole, by what failed, each keeping its
//! cause. Failures of single files are not errors: they are recorded in
//! the plan or report and make the exit code 1.

use crate::journal::JournalError;
use crate::settings::SettingsError;
use crate::store::StoreError;

/// Errors that end a run as a whole (exit code 2). Failures of single files
/// are not errors: they are recorded in the plan or report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot write the URL maps: {0}")]
    Maps(#[source] std::io::Error),
    #[error(
        "--map-dir {dir} cannot take the maps ({source}): give a writable directory (nothing was uploaded)"
    )]
    MapDir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--map-dir {dir} holds the maps of {theirs}; this run is {ours}: give each shard its own --map-dir (nothing was uploaded)"
    )]
    MapDirOfShard {
        dir: String,
        theirs: String,
        ours: String,
    },
    #[error("cannot read the maps to merge: {0}")]
    MergeInput(#[source] std::io::Error),
    #[error(
        "nothing selected in {root}: {detail}; check SOURCE_DIR and the --include/--exclude patterns, or pass --allow-empty"
    )]
    NothingSelected { root: String, detail: String },
    #[error("cannot write the --report {path}: {source}")]
    Report {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no upload could be aborted: {0}")]
    NothingAborted(String),
    #[error("{what} failed: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("--low-priority: cannot lower the process's priority: {0}")]
    Priority(#[source] std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write to stdout: {0}")]
    Output(#[source] std::io::Error),
    #[error(transparent)]
    Map(#[from] crate::cutover::rewrite::MapError),
    #[error(transparent)]
    Undo(#[from] crate::cutover::rewrite::rollback::UndoError),
}

impl Error {
    /// The process's exit code for this error: 2 (usage, configuration,
    /// connection), but 1 for an empty selection, which is a run that
    /// found nothing to do rather than one that could not start.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NothingSelected { .. } => 1,
            _ => 2,
        }
    }

    /// Whether stdout was closed early (`mediashift plan --json | head`):
    /// not an error of the run, which ends quietly.
    pub fn is_closed_stdout(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
