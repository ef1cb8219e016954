//! The plan: which objects a run creates, under which keys, in how many
//! requests, at what cost. Pure code, no I/O: every input (the walk, the
//! dedup grouping, what the bucket already holds) is handed in, so the plan
//! is tested exhaustively without a server, and `plan` and `migrate
//! --dry-run` can never disagree.
//!
//! `keys` names the objects, `names` finds the names that will cause
//! trouble, `build` decides each object's action and adds up the requests
//! and the cost.

mod build;
mod keys;
mod names;

pub use build::{
    Action, Conflict, Existence, Existing, Failure, Plan, PlanRules, Prices, Summary, build,
};
pub use keys::{KeyLayout, Keys, assign_keys};
pub use names::NameProblems;
