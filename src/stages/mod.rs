//! The migration's pipeline, one module per stage, in the order a run
//! takes them (and the README tells them):
//!
//! 1. `select` decides which files are taken (the media filter, the
//!    patterns); `scan` walks the tree; `shard` keeps one of N shares.
//! 2. `dedup` finds identical content, reading as little as it must.
//! 3. `plan` names the objects and decides each one's action (pure).
//! 4. `bucket` asks the bucket what is already there (and what the
//!    journal of earlier runs proves); `survey` runs 1 to 4 for `plan`
//!    and `migrate`.
//! 5. `record` brings the journal in step with the plan (each file's row,
//!    earlier runs' uploads continued or spent); `upload` puts, copies and
//!    proves the objects (`survey`'s plan hands it its jobs); `record`
//!    then leaves out files whose object has gone.
//! 6. `verify` holds the proof rules every stage and command judges by.
//! 7. `maps` writes the URL maps of what is in place (from the journal).
//!
//! After a migration: `recheck` proves every recorded object again and
//! `visit` fetches every file as a visitor will (both `verify`); `gc`
//! aborts leftover multipart uploads. `fan` is how the stages that ask
//! about many objects keep at most N in flight.

pub mod bucket;
pub mod dedup;
pub mod fan;
pub mod gc;
pub mod maps;
pub mod plan;
pub mod recheck;
pub mod record;
pub mod scan;
pub mod select;
pub mod shard;
pub mod survey;
pub mod upload;
pub mod verify;
pub mod visit;
