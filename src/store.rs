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
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectCannedAcl, ServerSideEncryption, StorageClass,
};
use bytes::Bytes;

use crate::checksum::Algorithm;
use crate::types::UploadId;

/// How to reach the store; resolved from flags and environment by `settings`.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSettings {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// `Some(true)`: adaptive retries; `Some(false)`: standard; `None`: as
    /// AWS_RETRY_MODE or the profile say (standard by default).
    pub adaptive_retries: Option<bool>,
    pub max_attempts: Option<u32>,
    /// `--sign-payload`: sign request bodies whatever the endpoint.
    pub always_sign_payload: bool,
}

/// A lookup's error as "absent" when the thing is not there (`Ok(None)`).
fn absent<T>(err: StoreError) -> Result<Option<T>, StoreError> {
    if err.kind == ErrorKind::NotFound {
        Ok(None)
    } else {
        Err(err)
    }
}

/// Whether request bodies sent to `endpoint` must be signed (a SHA-256 of
/// the body in the SigV4 signature). SigV4 payload signing guards the body
/// against change in transit. Over HTTPS, TLS does that already (the AWS
/// SDKs send unsigned payloads there too), and on a loopback address there
/// is no network to cross; either way the checksum header, which is signed,
/// still lets the server reject a corrupted body. Skipping it saves one
/// SHA-256 pass over every byte on both sides, which on a small machine
/// shared with the server is CPU the server gets back. Plain HTTP to another
/// host keeps it.
pub fn payload_signing_needed(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        // https:// (or the default AWS endpoint)
        return !endpoint.starts_with("https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// Attempts per request when nothing else says: a migration over a flaky
/// link should ride out a few errors (the SDK's own default is 3).
const DEFAULT_MAX_ATTEMPTS: u32 = 5;

fn retry_config(conn: &ConnectionSettings) -> Option<RetryConfig> {
    let env_set = |n: &str| std::env::var(n).is_ok_and(|v| !v.is_empty());
    let from_env =
        env_set("AWS_RETRY_MODE") || env_set("AWS_MAX_ATTEMPTS") || conn.profile.is_some();
    if conn.adaptive_retries.is_none() && conn.max_attempts.is_none() && from_env {
        return None; // aws-config reads them
    }
    let base = if conn.adaptive_retries == Some(true) {
        RetryConfig::adaptive()
    } else {
        RetryConfig::standard()
    };
    Some(base.with_max_attempts(conn.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS)))
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
    sign_payload: bool,
}

impl Store {
    /// Builds the client. Fails at once (before any request) when no
    /// credentials can be found.
    pub async fn connect(conn: &ConnectionSettings, bucket: &str) -> Result<Self, StoreError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
        if let Some(r) = retry_config(conn) {
            loader = loader.retry_config(r);
        }
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
        let sign_payload = conn.always_sign_payload || payload_signing_needed(&endpoint);
        tracing::debug!(sign_payload, "request bodies");
        Ok(Self {
            client: Client::from_conf(config),
            bucket: bucket.to_string(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            path_style,
            region,
            sign_payload,
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
            Err(e) => absent(self.err(&format!("HeadObject {key}"), &e)),
        }
    }
}

/// Settings applied to every object written.
#[derive(Debug, Clone, Default)]
pub struct ObjectOptions {
    pub cache_control: Option<String>,
    pub storage_class: Option<String>,
    pub acl: Option<String>,
    /// `AES256` or `aws:kms`.
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
}

/// One object to create.
#[derive(Debug, Clone)]
pub struct NewObject<'a> {
    pub key: &'a str,
    pub content_type: &'a str,
    pub metadata: &'a [(&'static str, String)],
    pub options: &'a ObjectOptions,
}

/// What the server answered to a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub etag: Option<String>,
    /// The checksum of the requested algorithm, if the server returned it.
    pub checksum: Option<String>,
}

/// A part of a multipart upload that the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DonePart {
    pub number: u32,
    pub etag: String,
    pub checksum: String,
}

fn sdk_algorithm(a: Algorithm) -> ChecksumAlgorithm {
    match a {
        Algorithm::Crc64nvme => ChecksumAlgorithm::Crc64Nvme,
        Algorithm::Sha256 => ChecksumAlgorithm::Sha256,
        Algorithm::Crc32c => ChecksumAlgorithm::Crc32C,
    }
}

/// Sets the `x-amz-checksum-*` value of the chosen algorithm on any builder.
macro_rules! with_checksum {
    ($req:expr, $alg:expr, $value:expr) => {
        match $alg {
            Algorithm::Crc64nvme => $req.checksum_crc64_nvme($value),
            Algorithm::Sha256 => $req.checksum_sha256($value),
            Algorithm::Crc32c => $req.checksum_crc32_c($value),
        }
    };
}

/// PutObject or UploadPart, with its body signed or not as the endpoint
/// needs (`payload_signing_needed`); the two builders share no trait.
macro_rules! signing {
    ($store:expr, $req:expr) => {{
        let op = $req.customize();
        if $store.sign_payload {
            op
        } else {
            op.disable_payload_signing()
        }
    }};
}

/// Reads the returned checksum of the chosen algorithm from any output.
macro_rules! returned_checksum {
    ($out:expr, $alg:expr) => {
        match $alg {
            Algorithm::Crc64nvme => $out.checksum_crc64_nvme(),
            Algorithm::Sha256 => $out.checksum_sha256(),
            Algorithm::Crc32c => $out.checksum_crc32_c(),
        }
        .map(str::to_string)
    };
}

/// Sets content type, metadata and object options on PutObject or
/// CreateMultipartUpload builders (same setter names on both).
macro_rules! with_object {
    ($req:expr, $obj:expr) => {{
        let mut r = $req.key($obj.key).content_type($obj.content_type);
        for (k, v) in $obj.metadata {
            r = r.metadata(*k, v);
        }
        let o = $obj.options;
        if let Some(v) = &o.cache_control {
            r = r.cache_control(v);
        }
        if let Some(v) = &o.storage_class {
            r = r.storage_class(StorageClass::from(v.as_str()));
        }
        if let Some(v) = &o.acl {
            r = r.acl(ObjectCannedAcl::from(v.as_str()));
        }
        if let Some(v) = &o.sse {
            r = r.server_side_encryption(ServerSideEncryption::from(v.as_str()));
        }
        if let Some(v) = &o.sse_kms_key_id {
            r = r.ssekms_key_id(v);
        }
        r
    }};
}

impl Store {
    /// PutObject with the body's checksum, which the server validates.
    /// `must_not_exist` sends `If-None-Match: *` (Garage ignores it).
    pub async fn put_object(
        &self,
        obj: &NewObject<'_>,
        body: Bytes,
        algorithm: Algorithm,
        checksum: &str,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        let len = body.len() as i64;
        let mut req = with_object!(self.client.put_object().bucket(&self.bucket), obj)
            .content_length(len)
            .body(ByteStream::from(body));
        if must_not_exist {
            req = req.if_none_match("*");
        }
        let out = signing!(self, with_checksum!(req, algorithm, checksum))
            .send()
            .await
            .map_err(|e| self.err(&format!("PutObject {}", obj.key), &e))?;
        Ok(Written {
            etag: out.e_tag().map(str::to_string),
            checksum: returned_checksum!(out, algorithm),
        })
    }

    /// Starts a multipart upload whose parts carry `algorithm` checksums
    /// (full-object type for CRCs, composite for SHA-256).
    pub async fn create_multipart(
        &self,
        obj: &NewObject<'_>,
        algorithm: Algorithm,
    ) -> Result<UploadId, StoreError> {
        let kind = if algorithm.full_object() {
            ChecksumType::FullObject
        } else {
            ChecksumType::Composite
        };
        let out = with_object!(
            self.client.create_multipart_upload().bucket(&self.bucket),
            obj
        )
        .checksum_algorithm(sdk_algorithm(algorithm))
        .checksum_type(kind)
        .send()
        .await
        .map_err(|e| self.err(&format!("CreateMultipartUpload {}", obj.key), &e))?;
        out.upload_id()
            .map(|id| UploadId(id.to_string()))
            .ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Fatal,
                    format!(
                        "CreateMultipartUpload {}: no upload id in the answer",
                        obj.key
                    ),
                )
            })
    }

    pub async fn upload_part(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
        algorithm: Algorithm,
        checksum: &str,
    ) -> Result<Written, StoreError> {
        let len = body.len() as i64;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload.0)
            .part_number(number as i32)
            .content_length(len)
            .body(ByteStream::from(body));
        let out = signing!(self, with_checksum!(req, algorithm, checksum))
            .send()
            .await
            .map_err(|e| self.err(&format!("UploadPart {key} #{number}"), &e))?;
        Ok(Written {
            etag: out.e_tag().map(str::to_string),
            checksum: returned_checksum!(out, algorithm),
        })
    }

    /// Completes a multipart upload. For full-object algorithms the whole
    /// object's checksum is sent, and the server checks it.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload: &UploadId,
        parts: &[DonePart],
        algorithm: Algorithm,
        full_object_checksum: Option<&str>,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        let completed: Vec<CompletedPart> = parts
            .iter()
            .map(|p| {
                let b = CompletedPart::builder()
                    .part_number(p.number as i32)
                    .e_tag(&p.etag);
                with_checksum!(b, algorithm, &p.checksum).build()
            })
            .collect();
        let mut req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload.0)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            );
        if let Some(full) = full_object_checksum {
            req = with_checksum!(req, algorithm, full).checksum_type(ChecksumType::FullObject);
        }
        if must_not_exist {
            req = req.if_none_match("*");
        }
        let out = req
            .send()
            .await
            .map_err(|e| self.err(&format!("CompleteMultipartUpload {key}"), &e))?;
        Ok(Written {
            etag: out.e_tag().map(str::to_string),
            checksum: returned_checksum!(out, algorithm),
        })
    }

    pub async fn abort_multipart(&self, key: &str, upload: &UploadId) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload.0)
            .send()
            .await
            .map_err(|e| self.err(&format!("AbortMultipartUpload {key}"), &e))?;
        Ok(())
    }
}

/// A part as ListParts shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

/// A multipart upload in progress, as ListMultipartUploads shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUpload {
    pub key: String,
    pub upload_id: UploadId,
    /// Seconds since the epoch.
    pub initiated: Option<i64>,
}

impl Store {
    /// Every part the server holds for an upload, in listing order (which
    /// may repeat a part number: SeaweedFS lists a re-sent part twice).
    /// `Ok(None)` when the server no longer knows the upload.
    pub async fn list_parts(
        &self,
        key: &str,
        upload: &UploadId,
    ) -> Result<Option<Vec<ListedPart>>, StoreError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut req = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload.0);
            if let Some(m) = &marker {
                req = req.part_number_marker(m);
            }
            let page = match req.send().await {
                Ok(p) => p,
                Err(e) => return absent(self.err(&format!("ListParts {key}"), &e)),
            };
            for p in page.parts() {
                if let (Some(n), Some(etag)) = (p.part_number(), p.e_tag()) {
                    out.push(ListedPart {
                        number: n.max(0) as u32,
                        etag: etag.to_string(),
                        size: p.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            let next = page.next_part_number_marker().map(str::to_string);
            if page.is_truncated() != Some(true) || next.is_none() || next == marker {
                break;
            }
            marker = next;
        }
        Ok(Some(out))
    }

    /// Multipart uploads in progress under `prefix`, all pages. Servers that
    /// omit a marker (Garage: NextUploadIdMarker; SeaweedFS: NextKeyMarker)
    /// are paged with what they give; a page that would repeat ends it.
    pub async fn list_uploads(&self, prefix: &str) -> Result<Vec<ListedUpload>, StoreError> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let mut req = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix);
            if let Some(k) = &key_marker {
                req = req.key_marker(k);
            }
            if let Some(u) = &id_marker {
                req = req.upload_id_marker(u);
            }
            let page = req.send().await.map_err(|e| {
                self.err(
                    &format!("ListMultipartUploads s3://{}/{prefix}", self.bucket),
                    &e,
                )
            })?;
            let before = out.len();
            for u in page.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    let id = UploadId(id.to_string());
                    if out.iter().any(|o: &ListedUpload| o.upload_id == id) {
                        continue;
                    }
                    out.push(ListedUpload {
                        key: key.to_string(),
                        upload_id: id,
                        initiated: u.initiated().map(|t| t.secs()),
                    });
                }
            }
            if page.is_truncated() != Some(true) || out.len() == before {
                break;
            }
            let last = out.last().map(|u| (u.key.clone(), u.upload_id.0.clone()));
            key_marker = page
                .next_key_marker()
                .map(str::to_string)
                .or_else(|| last.as_ref().map(|l| l.0.clone()));
            id_marker = page
                .next_upload_id_marker()
                .map(str::to_string)
                .or_else(|| last.map(|l| l.1));
        }
        Ok(out)
    }
}

impl Store {
    /// Downloads an object and hashes it as it streams: (size, SHA-256),
    /// or `None` when there is no such object.
    pub async fn read_sha256(
        &self,
        key: &str,
    ) -> Result<Option<(u64, crate::types::Sha256Digest)>, StoreError> {
        use sha2::{Digest as _, Sha256};
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => return absent(self.err(&format!("GetObject {key}"), &e)),
        };
        let mut body = out.body;
        let mut sha = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            StoreError::new(
                ErrorKind::Transient,
                format!("GetObject {key}: reading the body: {e}"),
            )
        })? {
            sha.update(&chunk);
            len += chunk.len() as u64;
        }
        Ok(Some((
            len,
            crate::types::Sha256Digest(sha.finalize().into()),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_default_to_five_standard_attempts_and_flags_win() {
        let conn = ConnectionSettings::default();
        // (The test environment sets neither AWS_RETRY_MODE nor AWS_MAX_ATTEMPTS.)
        if std::env::var("AWS_RETRY_MODE").is_err() && std::env::var("AWS_MAX_ATTEMPTS").is_err() {
            let r = retry_config(&conn).unwrap();
            assert_eq!(r.max_attempts(), 5);
            assert_eq!(r.mode(), aws_config::retry::RetryMode::Standard);
        }
        let conn = ConnectionSettings {
            adaptive_retries: Some(true),
            max_attempts: Some(9),
            ..ConnectionSettings::default()
        };
        let r = retry_config(&conn).unwrap();
        assert_eq!(
            (r.max_attempts(), r.mode()),
            (9, aws_config::retry::RetryMode::Adaptive)
        );
    }

    #[test]
    fn payload_is_signed_only_over_plain_http_to_another_host() {
        for unsigned in [
            "https://s3.eu-west-1.amazonaws.com",
            "https://minio.example.com:9000/",
            "http://127.0.0.1:8333",
            "http://127.8.0.1",
            "http://localhost:9000/path",
            "http://LOCALHOST",
            "http://[::1]:8333",
            "http://user@127.0.0.1:8333",
        ] {
            assert!(!payload_signing_needed(unsigned), "{unsigned}");
        }
        for signed in [
            "http://10.0.0.5:9000",
            "http://minio.internal",
            "http://localhost.example.com",
            "http://[2001:db8::1]:8333",
            "http://127.0.0.1.nip.io",
        ] {
            assert!(payload_signing_needed(signed), "{signed}");
        }
    }
}
