//! Store errors by meaning: every store answers with a [`StoreError`] of
//! one [`ErrorKind`], and everything else decides on the kind and shows
//! the message (the S3 store's classification of SDK errors is
//! `s3::classify`, the one place that reads SDK error variants, HTTP
//! statuses and S3 error codes).

use std::error::Error as StdError;

/// What an error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bucket, key or upload does not exist.
    NotFound,
    /// Credentials missing, wrong, or not allowed.
    AccessDenied,
    /// A condition (If-Match, If-None-Match) was not met.
    Precondition,
    /// The server asked us to slow down (503 SlowDown, 429).
    Throttled,
    /// A checksum or digest was rejected by the server.
    Checksum,
    /// The endpoint could not be reached (refused, reset, DNS).
    Unreachable,
    /// No answer in time: the request was cut off.
    Timeout,
    /// A 5xx or a dropped connection: worth retrying later.
    Transient,
    /// The server does not implement the operation (501 NotImplemented):
    /// retrying will not help, but another way may (a copy becomes an
    /// upload).
    Unsupported,
    /// Anything else: retrying will not help.
    Fatal,
}

/// A failed store operation: what it means, which operation, a one-line
/// message for the user, and the SDK's error as the source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    kind: ErrorKind,
    operation: String,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// An error with `source` kept as its cause (the SDK's error, for
    /// the S3 store).
    pub fn caused_by(
        kind: ErrorKind,
        operation: impl Into<String>,
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            source: Some(Box::new(source)),
            ..Self::new(kind, operation, message)
        }
    }

    /// An error without a cause to keep (a malformed answer, a missing
    /// credential chain).
    pub fn new(kind: ErrorKind, operation: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            operation: operation.into(),
            message: message.into(),
            source: None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation and its target, e.g. "PutObject shop/a.jpg".
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The same error with a message that says more for its context.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

/// A lookup's error as "absent" when the thing is not there (`Ok(None)`).
pub fn absent<T>(err: StoreError) -> Result<Option<T>, StoreError> {
    if err.kind == ErrorKind::NotFound {
        Ok(None)
    } else {
        Err(err)
    }
}

/// The Display of an error and its sources, joined, without repeats and
/// without the Debug dumps some SDK errors append.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_drop_repeats() {
        let inner = std::io::Error::other("File exists (os error 17)");
        #[derive(Debug, thiserror::Error)]
        #[error("File exists (os error 17)")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(chain(&Outer(inner)), "File exists (os error 17)");
    }
}
