//! What a command hands the user at the end: the `--json` documents (field
//! names are a contract) and their text rendering, one module per command.
//! Reports are built from the commands' results and depend on them and on
//! the stages, never the reverse.

pub mod audit;
mod format;
mod gc;
mod maps;
mod migrate;
mod offload;
mod plan;
mod rewrite;
mod status;
mod verify;

pub use gc::{GcDoc, gc_text};
pub use maps::{MergeDoc, merge_text};
pub use migrate::{MigrateDoc, migrate_text};
pub use offload::{OffloadDoc, RestoreDoc, offload_text, restore_text};
pub use plan::{PlanDoc, plan_text};
pub use rewrite::{RewriteDoc, UndoDoc, rewrite_text, undo_text};
pub use status::{StatusDoc, status_text};
pub use verify::{VerifyDoc, VisitedDoc, verify_text, visited_text};
