//! SDK errors classified by meaning, in one tested place: the only code
//! that reads SDK error variants, HTTP statuses and S3 error codes. The
//! SDK error itself is kept as the [`StoreError`]'s source.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::store::error::{ErrorKind, StoreError, chain};

/// Classifies an SDK error. `operation` names the operation and its target
/// for the message ("HeadBucket media").
pub fn classify<E>(operation: &str, endpoint: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let status = match &err {
        SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
        SdkError::ResponseError(ctx) => Some(ctx.raw().status().as_u16()),
        _ => None,
    };
    let code = err.code().map(str::to_string);
    let kind = kind_of(&err, status, code.as_deref());
    let message = match kind {
        _ if let Some((why, cause, what_to_do)) = certificate_rejected(&err) => format!(
            "the S3 endpoint {endpoint} presented a TLS certificate that {why} ({operation}: {cause}); {what_to_do}"
        ),
        ErrorKind::Timeout => format!(
            "cannot reach the S3 endpoint {endpoint} ({operation}): no answer in time ({}); check --endpoint-url and that the server is running, or raise --request-timeout",
            chain(&err)
        ),
        ErrorKind::Unreachable => format!(
            "cannot reach the S3 endpoint {endpoint} ({operation}): {}; check --endpoint-url and that the server is running",
            chain(&err)
        ),
        ErrorKind::AccessDenied if matches!(err, SdkError::ConstructionFailure(_)) => format!(
            "no usable AWS credentials for {endpoint}: {}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or use --profile",
            chain(&err)
        ),
        _ => {
            let said = match (&code, err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.clone(),
                (None, Some(m)) => m.to_string(),
                (None, None) => status.map_or_else(|| chain(&err), |s| format!("HTTP {s}")),
            };
            format!("{operation} failed at {endpoint}: {said}")
        }
    };
    StoreError::caused_by(kind, operation, message, err)
}

/// The first error of type `T` in `err`'s chain. An `io::Error` wrapping
/// another is looked into too: its `source()` skips the error it wraps
/// (hyper-rustls nests rustls's error in two of them).
fn find<'e, T: StdError + 'static>(err: &'e (dyn StdError + 'static)) -> Option<&'e T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            let inner: &(dyn StdError + 'static) = inner;
            if let Some(t) = find::<T>(inner) {
                return Some(t);
            }
        }
        cur = e.source();
    }
    None
}

/// Why a TLS handshake refused the server's certificate (rustls's error,
/// found by its type), rustls's words for it, and what to do.
fn certificate_rejected(
    err: &(dyn StdError + 'static),
) -> Option<(&'static str, String, &'static str)> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cause) = find::<rustls::Error>(err)? else {
        return None;
    };
    let trust = "give the CA certificate(s) that signed it with --ca-bundle FILE or AWS_CA_BUNDLE \
                 (or ca_bundle in the profile), or skip the check with --no-verify-ssl";
    let check =
        "check --endpoint-url and the server's certificate, or skip the check with --no-verify-ssl";
    let (why, what_to_do) = match cause {
        C::UnknownIssuer => ("is not signed by a CA this run trusts", trust),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            ("is not for the host name in the endpoint URL", check)
        }
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            ("has expired or is not valid yet", check)
        }
        _ => ("was rejected", trust),
    };
    Some((
        why,
        format!("invalid peer certificate: {cause}"),
        what_to_do,
    ))
}

/// Whether the SDK cut off a body that stopped moving (its stalled-stream
/// protection). Its error type is private to aws-smithy-runtime, so this
/// one is known by its words, in this one place (the test below pins them).
fn stalled_stream(err: &(dyn StdError + 'static)) -> bool {
    chain(err).contains("minimum throughput")
}

fn kind_of<E>(err: &SdkError<E, HttpResponse>, status: Option<u16>, code: Option<&str>) -> ErrorKind
where
    E: StdError + 'static,
{
    match (err, status, code) {
        (SdkError::TimeoutError(_), _, _) => ErrorKind::Timeout,
        // Trying again will not change the certificate.
        (SdkError::DispatchFailure(_), _, _) if certificate_rejected(err).is_some() => {
            ErrorKind::Fatal
        }
        (SdkError::DispatchFailure(d), _, _) => {
            if d.is_timeout() {
                ErrorKind::Timeout
            } else if d.is_io() {
                ErrorKind::Unreachable
            } else {
                ErrorKind::Transient
            }
        }
        // A stalled body (the SDK's stalled-stream protection) is a
        // dispatch or response failure whose cause says so.
        (_, _, _) if stalled_stream(err) => ErrorKind::Timeout,
        (SdkError::ConstructionFailure(_), _, _) => {
            if find::<CredentialsError>(err).is_some() {
                ErrorKind::AccessDenied
            } else {
                ErrorKind::Fatal
            }
        }
        (_, _, Some("NoSuchBucket" | "NoSuchKey" | "NoSuchUpload" | "NotFound"))
        | (_, Some(404), _) => ErrorKind::NotFound,
        (
            _,
            _,
            Some(
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "InvalidToken"
                | "ExpiredToken"
                | "AllAccessDisabled",
            ),
        )
        | (_, Some(401 | 403), _) => ErrorKind::AccessDenied,
        (_, _, Some("PreconditionFailed")) | (_, Some(412), _) => ErrorKind::Precondition,
        (
            _,
            _,
            Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded"),
        )
        | (_, Some(429 | 503), _) => ErrorKind::Throttled,
        (_, _, Some("BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch")) => {
            ErrorKind::Checksum
        }
        (_, _, Some("NotImplemented")) | (_, Some(501), _) => ErrorKind::Unsupported,
        (_, Some(s), _) if s >= 500 => ErrorKind::Transient,
        (SdkError::ResponseError(_), _, _) => ErrorKind::Transient,
        _ => ErrorKind::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::error::absent;
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::head_object::HeadObjectError;
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    const AT: &str = "http://127.0.0.1:8333";

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
    }

    /// A service error as the SDK builds it from an S3 error document.
    fn service(status: u16, code: &str, message: &str) -> SdkError<PutObjectError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        SdkError::service_error(PutObjectError::generic(meta), response(status))
    }

    fn kind(err: SdkError<PutObjectError, HttpResponse>) -> ErrorKind {
        classify("PutObject k", AT, err).kind()
    }

    #[test]
    fn service_errors_are_classified_by_code_then_status() {
        assert_eq!(kind(service(404, "NoSuchBucket", "")), ErrorKind::NotFound);
        assert_eq!(
            kind(service(403, "SignatureDoesNotMatch", "")),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            kind(service(412, "PreconditionFailed", "")),
            ErrorKind::Precondition
        );
        assert_eq!(
            kind(service(503, "SlowDown", "Reduce your rate")),
            ErrorKind::Throttled
        );
        assert_eq!(kind(service(400, "BadDigest", "")), ErrorKind::Checksum);
        assert_eq!(kind(service(400, "InvalidDigest", "")), ErrorKind::Checksum);
        assert_eq!(
            kind(service(500, "InternalError", "")),
            ErrorKind::Transient
        );
        assert_eq!(kind(service(400, "InvalidArgument", "")), ErrorKind::Fatal);
        // Not implemented is not worth retrying (a copy falls back).
        assert_eq!(
            kind(service(501, "NotImplemented", "")),
            ErrorKind::Unsupported
        );
        assert_eq!(kind(service(501, "", "")), ErrorKind::Unsupported);
        // A code the server made up: the status decides.
        assert_eq!(kind(service(429, "TooMany", "")), ErrorKind::Throttled);
        assert_eq!(kind(service(401, "Nope", "")), ErrorKind::AccessDenied);
    }

    #[test]
    fn a_head_404_without_a_code_is_not_found() {
        let err: SdkError<HeadObjectError, HttpResponse> = SdkError::service_error(
            HeadObjectError::generic(ErrorMetadata::builder().build()),
            response(404),
        );
        let e = classify("HeadObject k", AT, err);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            format!("HeadObject k failed at {AT}: HTTP 404")
        );
        assert!(absent::<()>(e).unwrap().is_none());
    }

    #[test]
    fn connection_failures_are_unreachable_and_say_what_to_check() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = SdkError::<PutObjectError, HttpResponse>::dispatch_failure(ConnectorError::io(
            refused.into(),
        ));
        let e = classify("HeadBucket media", AT, err);
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "cannot reach the S3 endpoint {AT} (HeadBucket media)"
            )),
            "{msg}"
        );
        assert!(
            msg.contains("refused") && msg.contains("--endpoint-url"),
            "{msg}"
        );
        assert!(!msg.contains("DispatchFailure"), "no debug dump: {msg}");
        assert!(!msg.contains("ConnectorError"), "no debug dump: {msg}");

        let timeout = SdkError::<PutObjectError, HttpResponse>::timeout_error("too slow");
        let e = classify("PutObject k", AT, timeout);
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("--request-timeout"), "{e}");
        let other = SdkError::<PutObjectError, HttpResponse>::dispatch_failure(
            ConnectorError::other("tls".into(), None),
        );
        let e = classify("PutObject k", AT, other);
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(
            !e.to_string().contains("DispatchFailure"),
            "no debug dump: {e}"
        );
    }

    #[test]
    fn a_rejected_certificate_is_fatal_and_says_what_to_do() {
        /// As hyper-rustls nests rustls's error in two `io::Error`s.
        fn rejected(why: rustls::CertificateError) -> SdkError<PutObjectError, HttpResponse> {
            let tls = std::io::Error::other(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(why),
            ));
            SdkError::dispatch_failure(ConnectorError::io(tls.into()))
        }
        let e = classify(
            "HeadBucket media",
            AT,
            rejected(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(e.kind(), ErrorKind::Fatal);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "the S3 endpoint {AT} presented a TLS certificate that is not signed by a CA this run trusts (HeadBucket media: "
            )),
            "{msg}"
        );
        for hint in [
            "UnknownIssuer",
            "--ca-bundle FILE",
            "AWS_CA_BUNDLE",
            "--no-verify-ssl",
        ] {
            assert!(msg.contains(hint), "{hint}: {msg}");
        }
        assert!(!msg.contains('\n'), "one line: {msg}");
        let e = classify(
            "PutObject k",
            AT,
            rejected(rustls::CertificateError::NotValidForName),
        );
        assert_eq!(e.kind(), ErrorKind::Fatal);
        assert!(e.to_string().contains("not for the host name"), "{e}");
        assert!(e.to_string().contains("--no-verify-ssl"), "{e}");
    }

    #[test]
    fn a_rejected_certificate_is_known_by_its_type_not_its_words() {
        // Words alone, with no rustls error behind them, are not a
        // certificate problem.
        let tls = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let err = SdkError::<PutObjectError, HttpResponse>::dispatch_failure(ConnectorError::io(
            tls.into(),
        ));
        let e = classify("HeadBucket media", AT, err);
        assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    }

    #[test]
    fn a_missing_credential_is_access_denied_and_a_bad_body_is_transient() {
        let err = SdkError::<PutObjectError, HttpResponse>::construction_failure(
            CredentialsError::not_loaded("no credentials in the chain"),
        );
        let e = classify("PutObject k", AT, err);
        assert_eq!(e.kind(), ErrorKind::AccessDenied);
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        // Another construction failure that merely mentions credentials is
        // not a credentials problem.
        let other = SdkError::<PutObjectError, HttpResponse>::construction_failure(
            "the request could not be built (credentials scope)",
        );
        assert_eq!(kind(other), ErrorKind::Fatal);
        let bad = SdkError::<PutObjectError, HttpResponse>::response_error(
            "unexpected end of XML",
            response(200),
        );
        assert_eq!(kind(bad), ErrorKind::Transient);
    }

    #[test]
    fn the_sdk_error_is_kept_as_the_source() {
        let e = classify(
            "PutObject k",
            AT,
            service(503, "SlowDown", "Reduce your rate"),
        );
        assert_eq!(e.operation(), "PutObject k");
        assert_eq!(
            e.to_string(),
            format!("PutObject k failed at {AT}: SlowDown: Reduce your rate")
        );
        let source = e.source().expect("a source");
        assert!(
            source
                .downcast_ref::<SdkError<PutObjectError, HttpResponse>>()
                .is_some()
        );
    }
}
