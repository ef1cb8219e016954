//! mediashift moves a web shop's media from local disk to S3 or any
//! S3-compatible store: it walks the tree, deduplicates by content, uploads
//! each distinct content once with checksums the server validates, proves
//! every object, and writes the URL maps the application needs to switch
//! over.
//!
//! The modules follow the pipeline: `stages` holds it in order (select,
//! scan, shard, dedup, plan, bucket, survey, record, upload, verify, maps;
//! then recheck and visit for `verify`, gc), each stage running on any
//! `store::ObjectStore`; `cutover` what comes after (rewrite, offload,
//! restore); `store` holds the interface and its stores (only
//! `store::s3` knows aws-sdk-s3; retries and pace are a layer around any
//! store), `journal` the only SQL. `commands` are adapters (settings, stages on a
//! store, a document); `report` renders the documents; `cli` and
//! `settings` are the only code that knows clap; `app` ties them together
//! for `main`. Shared vocabulary sits in leaves: `types`, `digest`,
//! `checksum`, `limits`, `urls`, `input`, `values`, `progress` (drawn by
//! `ui`, the only code that knows indicatif) and `cancel` (the stop
//! signal).

// The migrate command's future (a survey, an upload engine and a store
// chosen by the caller, all generic) is deeper than the default limit lets
// clippy's large_futures lint lay out.
#![recursion_limit = "256"]

mod app;
mod cancel;
mod checksum;
pub mod cli;
mod commands;
mod cutover;
mod digest;
mod error;
mod faults;
mod input;
mod journal;
mod limits;
mod priority;
mod progress;
mod report;
mod settings;
mod staged;
mod stages;
mod store;
mod types;
mod ui;
mod urls;
mod values;

pub use app::{Exit, run};
pub use error::{Error, Result};
pub use ui::{init_logging, terminal_safe};

/// What the integration tests reach inside the crate: the store interface,
/// the in-memory store and the conformance suite every store passes
/// (`test-support` feature only).
#[cfg(feature = "test-support")]
pub mod testing {
    pub use crate::store::conformance::suite;
    pub use crate::store::memory::MemoryStore;
    pub use crate::store::{ConnectionSettings, ObjectStore, S3};
}
