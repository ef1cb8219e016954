//! The store on S3 through aws-sdk-s3, the only code that knows the SDK:
//! [`Sdk`] sends each request once (retries and pace are the
//! [`Governed`] layer's, the same around any store), and [`S3`] is what
//! the commands open: the SDK store, governed.
//!
//! Here: building the client from the standard AWS chain (environment,
//! profile, `--endpoint-url`, `--region`), with path-style addressing for
//! custom endpoints (MinIO, Garage, SeaweedFS), the certificates its TLS
//! trusts (`tls`), and the first check that the bucket is there and may be
//! used. Writes (`write`), listing pages (`list`) and reads (`read`) are
//! split by what they do. Uploads are timed by their progress (`watch`):
//! a body interceptor of the SDK's, so it stays inside this store.

mod classify;
mod list;
mod read;
mod watch;
mod write;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::profile::Profile;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{ProvideCredentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_types::os_shim_internal::{Env, Fs};

use aws_sdk_s3::config::StalledStreamProtectionConfig;

use self::classify::classify;
use self::watch::{Stalled, Watch};
use super::error::{ErrorKind, StoreError};
use super::governed::Governed;
use super::pace::{Caps, Pace};
use super::retry::RetryPolicy;
use super::tls::{self, CaBundle, Trust};

/// How to reach the store, and how hard to push it; resolved from flags
/// and environment by `settings`.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// `Some(true)`: adaptive (concurrency follows the store's answers);
    /// `Some(false)`: standard (fixed at the ceiling); `None`: as the
    /// profile says (adaptive by default).
    pub adaptive_retries: Option<bool>,
    pub max_attempts: Option<u32>,
    /// `--sign-payload`: sign request bodies whatever the endpoint.
    pub always_sign_payload: bool,
    /// A request that makes no progress for this long is cut off and
    /// retried (`--request-timeout`).
    pub request_timeout: Duration,
    /// How long a request keeps trying while throttled or while the
    /// endpoint cannot be reached (`--unreachable-timeout`).
    pub patience: Duration,
    /// Requests in flight at most (`--concurrency`).
    pub ceiling: usize,
    pub caps: Caps,
    /// `--ca-bundle` or `AWS_CA_BUNDLE`: the CA certificates to trust
    /// instead of the system's (the profile's `ca_bundle` comes after).
    /// Boxed: these settings travel inside other values, kept small.
    pub ca_bundle: Option<Box<CaBundle>>,
    /// `false` with `--no-verify-ssl`: no certificate is checked.
    pub verify_ssl: bool,
    /// An access key and secret given in code, not by the AWS chain: the
    /// integration tests' conformance run, in a process whose environment
    /// does not name the test server's keys (`test-support` only).
    #[cfg(feature = "test-support")]
    pub test_keys: Option<(String, String)>,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            profile: None,
            adaptive_retries: None,
            max_attempts: None,
            always_sign_payload: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            patience: RetryPolicy::default().patience,
            ceiling: 64,
            caps: Caps::default(),
            ca_bundle: None,
            verify_ssl: true,
            #[cfg(feature = "test-support")]
            test_keys: None,
        }
    }
}

/// A request with no progress for this long is cut off: long enough for S3
/// over the internet (the AWS CLI's read timeout is 60 s too).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A backstop only: a body of N bytes gets at most the request timeout plus
/// N at this rate. Uploads are judged by their progress (`watch`), so a
/// slow link is not cut off while bytes move; this bounds an upload whose
/// bytes trickle for ever.
const SLOWEST_BODY: u64 = 8 * 1024;

/// The endpoint S3 requests go to, chosen as `aws_sdk_s3::config::Builder::from`
/// chooses it: one set in code (`--endpoint-url`, or AWS_ENDPOINT_URL[_S3]
/// as settings read them) wins; else the S3 entry of the profile's
/// `services` section (or AWS_ENDPOINT_URL_S3); else the profile's global
/// `endpoint_url`. `None`: AWS itself. The report and the maps name this
/// one, so they say where the objects really are.
fn s3_endpoint_url(sdk: &aws_types::SdkConfig) -> Option<String> {
    if sdk.get_origin("endpoint_url").is_client_config() {
        return sdk.endpoint_url().map(str::to_string);
    }
    let key = aws_types::service_config::ServiceConfigKey::builder()
        .service_id("S3")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|c| c.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_string))
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

/// The retry settings: flags, then the environment (both resolved by
/// `settings`), then the profile's `retry_mode` and `max_attempts`, then
/// adaptive with [`DEFAULT_MAX_ATTEMPTS`]: whether concurrency adapts, and
/// the attempts per request. mediashift retries itself (`retry`); the SDK
/// makes one attempt per call, and never reads these settings (it would
/// panic on a bad value).
fn retry_settings(
    conn: &ConnectionSettings,
    profile: Option<&Profile>,
    profile_name: &str,
) -> Result<(bool, u32), StoreError> {
    let setting = |key: &str| profile.and_then(|p| p.get(key)).map(str::trim);
    let bad = |key: &str, value: &str, want: &str| {
        StoreError::new(
            ErrorKind::Fatal,
            "profile",
            format!(
                "the AWS profile '{profile_name}' sets {key} = {value}: use {want} (in ~/.aws/config or AWS_CONFIG_FILE)"
            ),
        )
    };
    let adaptive = match (conn.adaptive_retries, setting("retry_mode")) {
        (Some(a), _) => a,
        (None, None) => true,
        (None, Some(m)) if m.eq_ignore_ascii_case("standard") => false,
        (None, Some(m)) if m.eq_ignore_ascii_case("adaptive") => true,
        (None, Some(m)) => return Err(bad("retry_mode", m, "standard or adaptive")),
    };
    let attempts = match (conn.max_attempts, setting("max_attempts")) {
        (Some(n), _) => n,
        (None, None) => DEFAULT_MAX_ATTEMPTS,
        (None, Some(v)) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| bad("max_attempts", v, "a whole number from 1 to 100"))?,
    };
    Ok((adaptive, attempts))
}

/// The shared config and credentials files, and the profile this run uses
/// (`--profile`, AWS_PROFILE, or `default`). A profile named by the user
/// must exist: without it the SDK would silently take credentials from
/// elsewhere.
async fn profile(conn: &ConnectionSettings) -> Result<(String, Option<Profile>), StoreError> {
    let chosen = conn.profile.clone().or_else(|| {
        std::env::var("AWS_PROFILE")
            .ok()
            .filter(|p| !p.trim().is_empty())
    });
    let set = aws_config::profile::load(
        &Fs::real(),
        &Env::real(),
        &Default::default(),
        chosen.clone().map(Cow::Owned),
    )
    .await
    .map_err(|e| {
        StoreError::new(
            ErrorKind::Fatal,
            "profile",
            format!(
                "cannot read the AWS config files: {}",
                super::error::chain(&e)
            ),
        )
    })?;
    let name = chosen.clone().unwrap_or_else(|| "default".into());
    let found = set.get_profile(&name).cloned();
    if found.is_none()
        && let Some(p) = chosen
    {
        let from = if conn.profile.is_some() {
            "--profile"
        } else {
            "AWS_PROFILE"
        };
        return Err(StoreError::new(
            ErrorKind::AccessDenied,
            "profile",
            format!(
                "{from} '{p}': no such profile in ~/.aws/config or ~/.aws/credentials (or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE); profiles there: {}",
                {
                    let names: Vec<&str> = set.profiles().collect();
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                }
            ),
        ));
    }
    Ok((name, found))
}

/// Says once per run, whatever the output settings, that nothing is
/// checked: a run that looks normal must not hide it.
fn warn_unchecked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        eprintln!(
            "mediashift: warning: --no-verify-ssl: the server's certificate is not checked, \
             so anyone on the network path can read and change what is sent; prefer --ca-bundle FILE"
        );
    });
}

/// An S3 client bound to one bucket; each call is one request.
#[derive(Clone)]
pub struct Sdk {
    request_timeout: Duration,
    client: Client,
    bucket: String,
    endpoint: String,
    path_style: bool,
    region: String,
    sign_payload: bool,
}

/// The store the commands use: S3 through the SDK, each request retried by
/// the run's policy within the run's pace.
pub type S3 = Governed<Sdk>;

impl S3 {
    /// Builds the client. Fails at once (before any request) when no
    /// credentials can be found.
    pub async fn connect(conn: &ConnectionSettings, bucket: &str) -> Result<Self, StoreError> {
        let (profile_name, profile) = profile(conn).await?;
        let (adaptive, max_attempts) = retry_settings(conn, profile.as_ref(), &profile_name)?;
        let trust = tls::trust(
            conn.verify_ssl,
            conn.ca_bundle.as_deref(),
            profile.as_ref(),
            &profile_name,
        );
        let http_client = tls::http_client(&trust)?;
        if trust == Trust::Unchecked {
            warn_unchecked();
        }
        let t = conn.request_timeout;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(t.min(Duration::from_secs(10)))
                    .operation_attempt_timeout(t)
                    .build(),
            )
            // A body that stops moving for the request timeout is cut off
            // however long it has been going; so is a download.
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .grace_period(t)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(1));
        if let Some(p) = &conn.profile {
            loader = loader.profile_name(p);
        }
        // For every request of the run, credential providers' included.
        if let Some(client) = http_client {
            loader = loader.http_client(client);
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
        #[cfg(feature = "test-support")]
        if let Some((id, secret)) = &conn.test_keys {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                id, secret, None, None, "tests",
            ));
        }
        let sdk = loader.load().await;
        let endpoint_url = s3_endpoint_url(&sdk);
        let region = sdk
            .region()
            .map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
        let endpoint = endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));

        let Some(provider) = sdk.credentials_provider() else {
            return Err(StoreError::new(
                ErrorKind::AccessDenied,
                "credentials",
                "no AWS credentials provider is configured: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or use --profile",
            ));
        };
        if let Err(e) = provider.provide_credentials().await {
            tracing::debug!("credential chain: {}", DisplayErrorContext(&e));
            return Err(StoreError::new(
                ErrorKind::AccessDenied,
                "credentials",
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
        let sdk = Sdk {
            client: Client::from_conf(config),
            bucket: bucket.to_string(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            path_style,
            region,
            sign_payload,
            request_timeout: t,
        };
        let policy = RetryPolicy {
            max_attempts,
            patience: conn.patience,
            ..RetryPolicy::default()
        };
        let pace = Arc::new(Pace::new(conn.ceiling, adaptive, conn.caps));
        Ok(Governed::new(sdk, policy, pace))
    }

    /// Connects to `bucket`, shows how the store answers in `progress`, and
    /// checks the bucket may be used: what every command does first.
    pub async fn open(
        conn: &ConnectionSettings,
        bucket: &str,
        progress: &crate::progress::Progress,
    ) -> Result<Self, StoreError> {
        let store = Self::connect(conn, bucket).await?;
        store.report_pace(progress);
        store.inner().head_bucket().await?;
        tracing::debug!(
            endpoint = store.inner().endpoint(),
            bucket,
            "bucket is reachable"
        );
        Ok(store)
    }
}

impl Sdk {
    /// The attempt timeout of a call that sends `body_bytes` (or waits on
    /// work proportional to them): the request timeout plus the body at
    /// the slowest rate allowed.
    pub(super) fn timeout_for(&self, body_bytes: u64) -> aws_sdk_s3::config::Builder {
        let t = self.request_timeout + Duration::from_secs(body_bytes / SLOWEST_BODY);
        aws_sdk_s3::config::Config::builder().timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(t)
                .build(),
        )
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

    /// Classifies an SDK error of `operation` at this endpoint.
    pub(super) fn err<E>(&self, operation: &str, e: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(operation, &self.endpoint, e)
    }

    /// An upload's answer, unless its watch saw no progress for the
    /// request timeout first.
    pub(super) async fn watched<T, E>(
        &self,
        watch: &Watch,
        operation: &str,
        send: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match watch::within(watch, self.request_timeout, send).await {
            Ok(r) => r.map_err(|e| self.err(operation, e)),
            Err(Stalled) => Err(self.stalled(operation)),
        }
    }

    /// A request that made no progress for the request timeout.
    fn stalled(&self, operation: &str) -> StoreError {
        let t = self.request_timeout.as_secs_f64();
        StoreError::new(
            ErrorKind::Timeout,
            operation,
            format!(
                "cannot reach the S3 endpoint {} ({operation}): no progress for {t}s; check that the server is running, or raise --request-timeout",
                self.endpoint
            ),
        )
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn sign_payload(&self) -> bool {
        self.sign_payload
    }

    /// Checks that the bucket exists and the credentials may use it,
    /// within seconds even when the endpoint does not answer.
    pub(super) async fn head_bucket(&self) -> Result<(), StoreError> {
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
                let err = self.err(&format!("HeadBucket {}", self.bucket), e);
                let message = match err.kind() {
                    ErrorKind::NotFound => format!(
                        "bucket '{}' does not exist at {}: create it first or check the name in s3://BUCKET",
                        self.bucket, self.endpoint
                    ),
                    ErrorKind::AccessDenied => format!(
                        "access to bucket '{}' at {} was refused (HTTP 403): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or --profile, and the bucket's permissions",
                        self.bucket, self.endpoint
                    ),
                    _ => return Err(err),
                };
                Err(err.with_message(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_default_to_five_adaptive_attempts_then_the_profile_then_flags() {
        use aws_config::profile::Property;
        let conn = ConnectionSettings::default();
        assert_eq!(retry_settings(&conn, None, "default").unwrap(), (true, 5));
        let profile = |mode: &str, attempts: &str| {
            let props = [("retry_mode", mode), ("max_attempts", attempts)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), Property::new(k.to_string(), v.to_string())))
                .collect();
            Profile::new("shop", props)
        };
        let p = profile("standard", "7");
        assert_eq!(retry_settings(&conn, Some(&p), "shop").unwrap(), (false, 7));
        let flags = ConnectionSettings {
            adaptive_retries: Some(true),
            max_attempts: Some(9),
            ..ConnectionSettings::default()
        };
        assert_eq!(retry_settings(&flags, Some(&p), "shop").unwrap(), (true, 9));
        // What the SDK would panic on is a one-line error naming the profile.
        let e = retry_settings(&conn, Some(&profile("banana", "7")), "shop").unwrap_err();
        assert!(
            e.to_string().contains("'shop' sets retry_mode = banana"),
            "{e}"
        );
        let e = retry_settings(&conn, Some(&profile("standard", "abc")), "shop").unwrap_err();
        assert!(e.to_string().contains("max_attempts = abc"), "{e}");
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
