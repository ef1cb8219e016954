//! The errors that end a run as a whole, by what failed, each keeping its
//! cause. Failures of single files are not errors: they are recorded in
//! the plan or report and make the exit code 1.
//!
//! An error's own words say what failed; its cause is its `source`, and the
//! edge prints the chain once ([`Error::text`]), a cause whose words are
//! already in the line left out.

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
    #[error("cannot write the URL maps")]
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
    #[error("cannot read the maps to merge")]
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
    #[error("{what} failed")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("--low-priority: cannot lower the process's priority")]
    Priority(#[source] std::io::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write to stdout")]
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

    /// The line the edge prints: this error's words, then each cause's in
    /// turn, those already said left out.
    pub fn text(&self) -> String {
        match self {
            // A store error's words already say its cause (the SDK's error,
            // kept as its source for the code, not for the reader).
            Self::Store(e) => e.to_string(),
            _ => crate::store::chain(self),
        }
    }

    /// Whether stdout was closed early (`mediashift plan --json | head`):
    /// not an error of the run, which ends quietly.
    pub fn is_closed_stdout(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_printed_once() {
        let e = Error::Maps(std::io::Error::other("disk full"));
        assert_eq!(e.to_string(), "cannot write the URL maps");
        assert_eq!(e.text(), "cannot write the URL maps: disk full");
        // A cause already in the words is not repeated.
        let e = Error::MapDir {
            dir: "m".into(),
            source: std::io::Error::other("read-only file system"),
        };
        assert_eq!(
            e.text().matches("read-only file system").count(),
            1,
            "{}",
            e.text()
        );
    }
}
