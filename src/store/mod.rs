//! The object store: one interface, [`ObjectStore`], that every stage
//! uses, and the stores behind it.
//!
//! - `s3`: S3 through aws-sdk-s3, the only code that knows the SDK. Its
//!   `Sdk` sends each request once; every SDK error becomes a
//!   [`StoreError`] classified by meaning in one tested place
//!   (`s3::classify`), so the rest of the program decides on "not found",
//!   "access denied", "throttled" or "unreachable" without the SDK's
//!   types. Uploads are timed by their progress (an SDK body interceptor,
//!   so it stays inside `s3`).
//! - `governed`: retries and pace as a layer around any store: each
//!   request through the run's policy (`retry`), each attempt in a slot of
//!   the run's pace (`pace`: adaptive concurrency, the bandwidth and
//!   request-rate caps); listings a page at a time. [`S3`], what the
//!   commands open, is the SDK store governed.
//! - `memory`: an in-memory store for the stages' unit tests, with faults
//!   injected per operation and key; one suite of store behaviour
//!   (`conformance`) holds it, the governed store and the real server to
//!   the same behaviour. Both are built for the tests only (`test` or the
//!   `test-support` feature).
//! - `public`: objects read as visitors will, at public URLs with no
//!   credentials (`verify --via-url`), the only HTTP client beside the
//!   SDK's; `tls`: the certificates both trust.
//!
//! Credentials are never logged or printed.

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod error;
mod governed;
mod interface;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
mod pace;
mod public;
mod retry;
mod s3;
mod tls;

pub use error::{ErrorKind, StoreError, chain};
pub use interface::{
    BodyChecksum, ChecksumType, Checksums, DonePart, ListedPart, NewObject, ObjectOptions,
    ObjectStore, RemoteObject, Written,
};
pub use pace::{Caps, PaceStats};
pub use public::{Visit, VisitError, Visitor};
pub use s3::{ConnectionSettings, S3};
pub use tls::{CaBundle, CaBundleFrom, Trust};
