//! The durable journal: what a migration has done, so that the same command
//! run again continues where it stopped, whatever stopped it.
//!
//! SQLite (WAL mode) in `--state DIR/journal.sqlite`. It records the run's
//! identity (source, destination, key layout, checksum), each file (path,
//! size, mtime, inode, digests once known, key, state), each multipart
//! upload in progress (upload id, part size), each acknowledged part
//! (number, size, checksum, ETag), and each file `offload` took out of
//! SOURCE_DIR (where it went, its mode and owner, for `restore`).
//!
//! Durability contract:
//! - a part is recorded only after the server acknowledged it and its
//!   checksum matched; an object is recorded `verified` only after the
//!   post-upload check;
//! - records are written by one thread, in order, batched into transactions
//!   (up to 20 ms or 4,096 records), so the journal never limits throughput;
//! - a crash at any instant leaves the journal as of its last committed
//!   transaction, which is consistent: at worst the last batch is redone
//!   (a few parts re-sent, a few objects re-checked);
//! - one process at a time: an exclusive lock on `DIR/lock` is held for the
//!   whole run; a second run fails at once instead of racing.
//!
//! Every SQL statement of the program lives in this module: `schema`
//! (tables, the lock, the run's identity), `read` (every SELECT, for
//! `migrate`, `status`, `verify` and `gc`), `writer` (the writer thread and
//! its transactions). The rest of the program sees typed rows and records.

mod handle;
mod read;
mod records;
mod schema;
mod writer;

pub use handle::Journal;
pub use read::{
    FailedFile, InFlight, OffloadCount, PlacedFile, Reader, StateCount, VerifiedObject,
};
pub use records::{
    FileRow, FileState, Identity, JournalError, ObjectSettingsRow, OffloadRow, PartRow, Record,
    UploadRow, now,
};
pub use schema::exists;
pub use writer::Recorder;
