//! Which TLS certificates the endpoint may present: the system's roots
//! (the SDK's default client), the CA certificates of a PEM bundle
//! instead of them (`--ca-bundle`, `AWS_CA_BUNDLE`, the profile's
//! `ca_bundle`, in that order, as the AWS CLI does), or none checked at
//! all (`--no-verify-ssl`).
//!
//! A bundle gets the SDK's own HTTPS client with a trust store of its
//! certificates. The SDK offers no way to skip verification, so
//! `--no-verify-ssl` gets a hyper client of its own with a rustls verifier
//! that accepts any certificate (the handshake's signatures are still
//! checked against the key the server presented).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::profile::Profile;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind as RetryKind;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::error::{ErrorKind, StoreError};

/// Where a CA bundle was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaBundleFrom {
    /// `--ca-bundle FILE`
    Flag,
    /// `AWS_CA_BUNDLE`
    Env,
    /// `ca_bundle` in this AWS profile.
    Profile(String),
}

/// A PEM file of CA certificates to trust instead of the system's roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    pub path: PathBuf,
    pub from: CaBundleFrom,
}

impl CaBundle {
    /// The file as the user named it, for messages.
    fn named(&self) -> String {
        let path = self.path.display();
        match &self.from {
            CaBundleFrom::Flag => format!("--ca-bundle {path}"),
            CaBundleFrom::Env => format!("AWS_CA_BUNDLE {path}"),
            CaBundleFrom::Profile(p) => {
                format!("the AWS profile '{p}' sets ca_bundle = {path}, and that file")
            }
        }
    }
}

/// What the endpoint's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
    System,
    /// Only the CA certificates of this bundle.
    Bundle(CaBundle),
    /// Nothing is checked (`--no-verify-ssl`).
    Unchecked,
}

/// The trust for this run: `--no-verify-ssl`, then the bundle from the
/// flag or AWS_CA_BUNDLE (resolved by `settings`), then the profile's
/// `ca_bundle`, then the system's roots.
pub fn trust(
    verify_ssl: bool,
    ca_bundle: Option<&CaBundle>,
    profile: Option<&Profile>,
    profile_name: &str,
) -> Trust {
    if !verify_ssl {
        return Trust::Unchecked;
    }
    if let Some(b) = ca_bundle {
        return Trust::Bundle(b.clone());
    }
    match profile
        .and_then(|p| p.get("ca_bundle"))
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        Some(path) => Trust::Bundle(CaBundle {
            path: expand_home(path),
            from: CaBundleFrom::Profile(profile_name.to_string()),
        }),
        None => Trust::System,
    }
}

/// `~/x` as $HOME/x, as a shell would have done for a flag.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn bundle_error(bundle: &CaBundle, what: impl fmt::Display) -> StoreError {
    StoreError::new(
        ErrorKind::Fatal,
        "ca-bundle",
        format!("{} {what}", bundle.named()),
    )
}

/// The bundle's bytes, once they are known to hold at least one PEM
/// certificate and only certificates that parse (the SDK's client would
/// panic on any other).
pub fn read_bundle(bundle: &CaBundle) -> Result<Vec<u8>, StoreError> {
    let pem = std::fs::read(&bundle.path).map_err(|e| {
        bundle_error(
            bundle,
            format!("cannot be read ({e}): give a PEM file of the CA certificates to trust"),
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            bundle_error(
                bundle,
                format!("is not a valid PEM file ({e}): give the CA certificates in PEM form"),
            )
        })?;
    if certs.is_empty() {
        return Err(bundle_error(
            bundle,
            "holds no PEM certificate (no -----BEGIN CERTIFICATE----- block): give the CA certificates in PEM form \
             (`openssl x509 -inform der -in ca.der -out ca.pem` converts a DER one)",
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (n, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            bundle_error(
                bundle,
                format!(
                    "holds a certificate that cannot be used as a CA (number {}: {e})",
                    n + 1
                ),
            )
        })?;
    }
    Ok(pem)
}

/// The HTTP client for `trust`: `None` for the SDK's default one.
pub fn http_client(trust: &Trust) -> Result<Option<SharedHttpClient>, StoreError> {
    match trust {
        Trust::System => Ok(None),
        Trust::Bundle(bundle) => {
            let pem = read_bundle(bundle)?;
            let context = TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
                .build()
                .map_err(|e| bundle_error(bundle, format!("cannot be used: {e}")))?;
            Ok(Some(bundle_client(context)))
        }
        Trust::Unchecked => Ok(Some(SharedHttpClient::new(UncheckedClient::new()?))),
    }
}

/// A rustls configuration for `trust`, for plain HTTPS requests outside
/// the SDK (`verify --via-url`): the system's roots, a bundle's
/// certificates, or no check.
pub fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let fail = |what: String| StoreError::new(ErrorKind::Fatal, "tls", what);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(format!("cannot set up TLS: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Trust::Unchecked => {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth());
        }
        Trust::Bundle(bundle) => {
            let pem = read_bundle(bundle)?;
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                roots
                    .add(cert)
                    .map_err(|e| bundle_error(bundle, format!("cannot be used: {e}")))?;
            }
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system certificate rustls cannot use is left out, as the
                // SDK's client does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(fail(format!(
                    "no CA certificates found on this system ({:?}): install the ca-certificates package, or give --ca-bundle",
                    found.errors
                )));
            }
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The SDK's default HTTPS client (rustls with aws-lc, the proxy from the
/// environment), trusting `context`'s certificates.
fn bundle_client(context: TlsContext) -> SharedHttpClient {
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = Connector::builder()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context.clone());
        builder.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            builder.set_sleep_impl(c.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

/// Accepts any certificate for any name: `--no-verify-ssl`.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type Hyper = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    SdkBody,
>;

/// The `--no-verify-ssl` client: one hyper client (its connection pool)
/// per connect timeout the SDK asks for.
struct UncheckedClient {
    tls: rustls::ClientConfig,
    connectors: Mutex<HashMap<Option<Duration>, SharedHttpConnector>>,
}

impl fmt::Debug for UncheckedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UncheckedClient")
    }
}

impl UncheckedClient {
    fn new() -> Result<Self, StoreError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                StoreError::new(
                    ErrorKind::Fatal,
                    "tls",
                    format!("--no-verify-ssl: cannot set up TLS: {e}"),
                )
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Self {
            tls,
            connectors: Mutex::new(HashMap::new()),
        })
    }

    fn connector(&self, connect_timeout: Option<Duration>) -> SharedHttpConnector {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(connect_timeout);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(https);
        SharedHttpConnector::new(UncheckedConnector { client })
    }
}

impl HttpClient for UncheckedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = settings.connect_timeout();
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| self.connector(key))
            .clone()
    }
}

struct UncheckedConnector {
    client: Hyper,
}

impl fmt::Debug for UncheckedConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UncheckedConnector")
    }
}

impl HttpConnector for UncheckedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        HttpConnectorFuture::new(async move {
            let response = sent.await.map_err(connector_error)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// A hyper error as the SDK's own client classifies it: timeouts, then
/// connections that failed or dropped (I/O), then a cut-off answer
/// (transient), then anything else.
fn connector_error(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let mut hyper_err = None;
    let mut io = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            hyper_err.get_or_insert(h);
        }
        io |= e.is::<std::io::Error>();
        cur = e.source();
    }
    let (timeout, cut_off, closed) = hyper_err.map_or((false, false, false), |h| {
        (
            h.is_timeout(),
            h.is_incomplete_message(),
            h.is_closed() || h.is_canceled(),
        )
    });
    if timeout {
        return ConnectorError::timeout(err.into());
    }
    if cut_off {
        return ConnectorError::other(err.into(), Some(RetryKind::TransientError));
    }
    if closed || err.is_connect() || io {
        return ConnectorError::io(err.into());
    }
    ConnectorError::other(err.into(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::profile::Property;

    fn profile(ca: &str) -> Profile {
        let props = [(
            "ca_bundle".to_string(),
            Property::new("ca_bundle".into(), ca.into()),
        )]
        .into_iter()
        .collect();
        Profile::new("shop", props)
    }

    #[test]
    fn no_verify_wins_then_the_flag_or_variable_then_the_profile() {
        let flag = CaBundle {
            path: "/etc/flag.pem".into(),
            from: CaBundleFrom::Flag,
        };
        let p = profile("/etc/profile.pem");
        assert_eq!(
            trust(false, Some(&flag), Some(&p), "shop"),
            Trust::Unchecked
        );
        assert_eq!(
            trust(true, Some(&flag), Some(&p), "shop"),
            Trust::Bundle(flag)
        );
        assert_eq!(
            trust(true, None, Some(&p), "shop"),
            Trust::Bundle(CaBundle {
                path: "/etc/profile.pem".into(),
                from: CaBundleFrom::Profile("shop".into()),
            })
        );
        assert_eq!(
            trust(true, None, Some(&profile(" ")), "shop"),
            Trust::System
        );
        assert_eq!(trust(true, None, None, "default"), Trust::System);
    }

    #[test]
    fn a_bundle_that_is_missing_or_holds_no_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = CaBundle {
            path: dir.path().join("nope.pem"),
            from: CaBundleFrom::Flag,
        };
        let e = read_bundle(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with("--ca-bundle ") && e.contains("nope.pem"),
            "{e}"
        );
        assert!(e.contains("cannot be read"), "{e}");

        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let env = CaBundle {
            path: key_only,
            from: CaBundleFrom::Env,
        };
        let e = read_bundle(&env).unwrap_err().to_string();
        assert!(
            e.starts_with("AWS_CA_BUNDLE ") && e.contains("key.pem"),
            "{e}"
        );
        assert!(e.contains("holds no PEM certificate"), "{e}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let p = CaBundle {
            path: garbage,
            from: CaBundleFrom::Profile("shop".into()),
        };
        let e = read_bundle(&p).unwrap_err().to_string();
        assert!(
            e.starts_with("the AWS profile 'shop' sets ca_bundle = "),
            "{e}"
        );
        assert!(e.contains("cannot be used as a CA"), "{e}");
    }
}
