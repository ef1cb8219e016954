//! The subcommands: each ties settings, stages and the store together and
//! returns what the report needs. Rendering happens in `report`.

pub mod gc;
pub mod maps;
pub mod migrate;
pub mod offload;
pub mod plan;
pub mod restore;
pub mod rewrite;
pub mod status;
pub mod verify;

#[cfg(test)]
mod tests;
