//! The object store: the only module that knows aws-sdk-s3.
//!
//! It builds the client from the standard AWS chain (environment, profile,
//! `--endpoint-url`, `--region`), uses path-style addressing for custom
//! endpoints (MinIO, Garage, SeaweedFS), and turns every SDK error into a
//! [`StoreError`] classified by meaning in one place ([`classify`]), so the
//! rest of the program decides on "not found", "access denied", "throttled"
//! or "unreachable" without knowing the SDK's types. Credentials are never
//! logged or printed.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{ProvideCredentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::ChecksumMode;

/// How to reach the store; resolved from flags and environment by `settings`.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSettings {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

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
    /// The endpoint could not be reached (refused, DNS, timeout).
    Unreachable,
    /// A 5xx or a dropped connection: worth retrying later.
    Transient,
    /// Anything else: retrying will not help.
    Fatal,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StoreError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Classifies any SDK error. `what` names the operation and its target for
/// the message ("HeadBucket media").
pub fn classify<E>(what: &str, endpoint: &str, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = match err {
        SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
        SdkError::ResponseError(ctx) => Some(ctx.raw().status().as_u16()),
        _ => None,
    };
    let code = err.code().map(str::to_string);
    let server_msg = err.message().map(str::to_string);
    let said = match (&code, &server_msg) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => status.map_or_else(
            || DisplayErrorContext(err).to_string(),
            |s| format!("HTTP {s}"),
        ),
    };
    let kind = match (err, status, code.as_deref()) {
        (SdkError::TimeoutError(_), _, _) => ErrorKind::Unreachable,
        (SdkError::DispatchFailure(d), _, _) => {
            if d.is_io() || d.is_timeout() {
                ErrorKind::Unreachable
            } else {
                ErrorKind::Transient
            }
        }
        (SdkError::ConstructionFailure(_), _, _) => {
            let text = DisplayErrorContext(err).to_string();
            if text.contains("credentials") {
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
        (_, Some(s), _) if s >= 500 => ErrorKind::Transient,
        (SdkError::ResponseError(_), _, _) => ErrorKind::Transient,
        _ => ErrorKind::Fatal,
    };
    let message = match kind {
        ErrorKind::Unreachable => format!(
            "cannot reach the S3 endpoint {endpoint} ({what}): {}; check --endpoint-url and that the server is running",
            chain(err)
        ),
        ErrorKind::AccessDenied if matches!(err, SdkError::ConstructionFailure(_)) => format!(
            "no usable AWS credentials for {endpoint}: {}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or use --profile",
            chain(err)
        ),
        _ => format!("{what} failed at {endpoint}: {said}"),
    };
    StoreError::new(kind, message)
}

/// The Display of an error and its sources, joined, without repeats and
/// without the Debug dumps some SDK errors append.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// What HeadObject tells about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteObject {
    pub size: u64,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    /// `x-amz-meta-*`, keys lower-case.
    pub metadata: HashMap<String, String>,
    pub checksum_crc64nvme: Option<String>,
    pub checksum_sha256: Option<String>,
    pub checksum_crc32c: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE`.
    pub checksum_type: Option<String>,
}

/// A client bound to one bucket.
#[derive(Clone)]
pub struct Store {
    client: Client,
    bucket: String,
    endpoint: String,
    path_style: bool,
    region: String,
}

impl Store {
    /// Builds the client. Fails at once (before any request) when no
    /// credentials can be found.
    pub async fn connect(conn: &ConnectionSettings, bucket: &str) -> Result<Self, StoreError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            )
            .retry_config(RetryConfig::standard());
        if let Some(p) = &conn.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &conn.region {
            loader = loader.region(Region::new(r.clone()));
        } else if conn.endpoint_url.is_some() {
            // A custom endpoint rarely cares about the region; never ask the
            // EC2 instance metadata service for one (slow, noisy off EC2).
            let chain = aws_config::meta::region::RegionProviderChain::first_try(
                aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
            )
            .or_else(aws_config::profile::ProfileFileRegionProvider::builder().build())
            .or_else(Region::new("us-east-1"));
            loader = loader.region(chain);
        }
        if let Some(e) = &conn.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let sdk = loader.load().await;
        let endpoint_url = sdk.endpoint_url().map(str::to_string);
        let region = sdk
            .region()
            .map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
        let endpoint = endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));

        let Some(provider) = sdk.credentials_provider() else {
            return Err(StoreError::new(
                ErrorKind::AccessDenied,
                "no AWS credentials provider is configured: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or use --profile",
            ));
        };
        if let Err(e) = provider.provide_credentials().await {
            tracing::debug!("credential chain: {}", DisplayErrorContext(&e));
            return Err(StoreError::new(
                ErrorKind::AccessDenied,
                "no AWS credentials found (environment, profile, web identity, container or instance): \
                 set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use --profile",
            ));
        }

        let path_style = endpoint_url.is_some();
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .region(Region::new(region.clone()))
            .force_path_style(path_style)
            .build();
        Ok(Self {
            client: Client::from_conf(config),
            bucket: bucket.to_string(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            path_style,
            region,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The URL at which the bucket's objects are served by the endpoint
    /// itself (the default `--public-base-url`).
    pub fn bucket_url(&self) -> String {
        if self.path_style {
            format!("{}/{}", self.endpoint, self.bucket)
        } else {
            format!("https://{}.s3.{}.amazonaws.com", self.bucket, self.region)
        }
    }

    fn err<E>(&self, what: &str, e: &SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        classify(what, &self.endpoint, e)
    }

    /// Checks that the bucket exists and the credentials may use it,
    /// within seconds even when the endpoint does not answer.
    pub async fn check_bucket(&self) -> Result<(), StoreError> {
        let result = self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .customize()
            .config_override(
                aws_sdk_s3::config::Config::builder()
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(3))
                            .operation_attempt_timeout(Duration::from_secs(5))
                            .operation_timeout(Duration::from_secs(12))
                            .build(),
                    )
                    .retry_config(RetryConfig::standard().with_max_attempts(2)),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let mut err = self.err(&format!("HeadBucket {}", self.bucket), &e);
                err.message = match err.kind {
                    ErrorKind::NotFound => format!(
                        "bucket '{}' does not exist at {}: create it first or check the name in s3://BUCKET",
                        self.bucket, self.endpoint
                    ),
                    ErrorKind::AccessDenied => format!(
                        "access to bucket '{}' at {} was refused (HTTP 403): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or --profile, and the bucket's permissions",
                        self.bucket, self.endpoint
                    ),
                    _ => err.message,
                };
                Err(err)
            }
        }
    }

    /// Calls `f(key, size)` for every object under `prefix`.
    pub async fn list(
        &self,
        prefix: &str,
        mut f: impl FnMut(&str, u64),
    ) -> Result<u64, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut n = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                self.err(&format!("ListObjectsV2 s3://{}/{prefix}", self.bucket), &e)
            })?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    f(key, obj.size().unwrap_or(0).max(0) as u64);
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// HeadObject with checksums; `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<RemoteObject>, StoreError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match result {
            Ok(o) => Ok(Some(RemoteObject {
                size: o.content_length().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().map(str::to_string),
                content_type: o.content_type().map(str::to_string),
                metadata: o
                    .metadata()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                checksum_crc64nvme: o.checksum_crc64_nvme().map(str::to_string),
                checksum_sha256: o.checksum_sha256().map(str::to_string),
                checksum_crc32c: o.checksum_crc32_c().map(str::to_string),
                checksum_type: o.checksum_type().map(|t| t.as_str().to_string()),
            })),
            Err(e) => {
                let err = self.err(&format!("HeadObject {key}"), &e);
                if err.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }
}
