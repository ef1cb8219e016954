//! The object store: the only code that knows aws-sdk-s3.
//!
//! [`S3`] is a client bound to one bucket, built from the standard AWS
//! chain (`connect`). Every SDK error becomes a [`StoreError`] classified by
//! meaning in one tested place (`error`), so the rest of the program decides
//! on "not found", "access denied", "throttled" or "unreachable" without
//! knowing the SDK's types. Writes (`write`), listings with one pagination
//! helper (`list`) and reads (`read`) are split by what they do; `public`
//! reads objects as visitors will, at public URLs with no credentials
//! (`verify --via-url`), the only HTTP client beside the SDK's.
//!
//! Every call goes through the run's retry policy (`retry`) and pace
//! (`pace`: adaptive concurrency, the bandwidth and request-rate caps);
//! uploads are timed by their progress (`watch`).
//!
//! Every stage sees the store only through [`ObjectStore`], so their unit
//! tests run against an in-memory store (`memory`), which one suite of
//! store behaviour (`conformance`) holds to what the real server does;
//! both are built for the tests only (`test` or the `test-support`
//! feature). Only the commands open the [`S3`] one.
//! Credentials are never logged or printed.

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod connect;
mod error;
mod interface;
mod list;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
mod pace;
mod public;
mod read;
mod retry;
mod tls;
mod watch;
mod write;

pub use connect::{ConnectionSettings, S3};
pub use error::{ErrorKind, StoreError, chain};
pub use interface::{
    BodyChecksum, ChecksumType, Checksums, DonePart, ListedPart, NewObject, ObjectOptions,
    ObjectStore, RemoteObject, Written,
};
pub use pace::{Caps, PaceStats};
pub use public::{Visit, VisitError, Visitor};
pub use tls::{CaBundle, CaBundleFrom, Trust};
