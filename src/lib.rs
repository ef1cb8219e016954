//! mediashift moves a web shop's media from local disk to S3 or any
//! S3-compatible store: it walks the tree, deduplicates by content, uploads
//! each distinct content once with checksums the server validates, and
//! writes the URL maps the application needs to switch over.
//!
//! The library is organised as the pipeline is: `scan` (the walk), `select`
//! (which files), `dedup` (identical content), `plan` (pure: keys, actions,
//! requests, cost), `store` (the only code that knows aws-sdk-s3), `verify`
//! (proof of content), `report` (the only code that knows indicatif) and
//! `commands` (each subcommand's I/O). `cli` and `settings` are the only code
//! that knows clap.

pub mod checksum;
pub mod cli;
pub mod commands;
pub mod dedup;
pub mod faults;
pub mod journal;
pub mod plan;
pub mod report;
pub mod rewrite;
pub mod scan;
pub mod select;
pub mod settings;
pub mod store;
pub mod types;
pub mod upload;
pub mod urls;
pub mod verify;

/// Errors that end a run as a whole (exit code 2). Failures of single files
/// are not errors: they are recorded in the plan or report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
