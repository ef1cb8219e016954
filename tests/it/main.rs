//! Integration tests: the real `mediashift` binary against a real S3
//! server (see `support` for which one). One test binary, so the server is
//! started once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apache;
mod copies;
mod deploy;
mod faults;
mod layout;
mod migrate;
mod nginx;
mod offload;
mod package;
mod plan;
mod release;
mod rerun;
mod resume;
mod rewrite;
mod rewrite_db;
mod scripts;
mod shards;
mod store_conformance;
mod support;
mod tls;
mod trust;
mod via_url;
mod wordpress;
