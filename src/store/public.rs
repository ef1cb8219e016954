//! Reading objects as the application's visitors will, at public URLs:
//! plain HTTP(S) with no credentials, redirects followed as a browser
//! follows them, a HEAD or a GET whose body is hashed as it arrives
//! (`verify --via-url`). Beside the SDK's client, the only HTTP client; it
//! trusts the certificates `tls` says.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body as _;
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::error::{StoreError, chain};
use super::tls::{Trust, client_config};
use crate::types::Sha256Digest;

/// Redirects followed at most, as browsers bound them too.
const MAX_REDIRECTS: usize = 5;

/// Why a URL could not be asked at all.
#[derive(Debug, thiserror::Error)]
pub enum VisitError {
    #[error("{url} is not a URL a browser can request: {why}")]
    BadUrl { url: String, why: String },
    #[error("no answer from {url}: {why}")]
    NoAnswer { url: String, why: String },
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    Redirects { url: String },
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Visit {
    /// The last URL asked (after redirects).
    pub url: String,
    pub status: u16,
    /// `Content-Length`, or with `deep` the bytes received.
    pub length: Option<u64>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    /// With `deep` and a 200: the SHA-256 of the body.
    #[serde(skip)]
    pub sha256: Option<Sha256Digest>,
}

/// An anonymous HTTP(S) client.
pub struct Visitor {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, String>,
    /// How long a request (or a pause in a body) may take.
    timeout: Duration,
}

impl Visitor {
    pub fn new(trust: &Trust, timeout: Duration) -> Result<Self, StoreError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_config(trust)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Self { client, timeout })
    }

    /// Asks `url` as a browser would: HEAD, or with `deep` GET and hash.
    pub async fn visit(&self, url: &str, deep: bool) -> Result<Visit, VisitError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let uri: Uri =
                url.parse()
                    .map_err(|e: hyper::http::uri::InvalidUri| VisitError::BadUrl {
                        url: url.clone(),
                        why: e.to_string(),
                    })?;
            let request = Request::builder()
                .method(if deep { Method::GET } else { Method::HEAD })
                .uri(uri)
                .header(
                    USER_AGENT,
                    concat!("mediashift/", env!("CARGO_PKG_VERSION")),
                )
                .body(String::new())
                .map_err(|e| VisitError::BadUrl {
                    url: url.clone(),
                    why: e.to_string(),
                })?;
            let no_answer = |why: String| VisitError::NoAnswer {
                url: url.clone(),
                why,
            };
            let response = tokio::time::timeout(self.timeout, self.client.request(request))
                .await
                .map_err(|_| no_answer(format!("nothing within {:?}", self.timeout)))?
                .map_err(|e| no_answer(chain(&e)))?;
            let status = response.status().as_u16();
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
                    .map(str::to_string)
            };
            if response.status().is_redirection()
                && let Some(location) = header(LOCATION)
            {
                url = resolve(&url, &location);
                continue;
            }
            let mut visit = Visit {
                status,
                length: header(CONTENT_LENGTH).and_then(|v| v.parse().ok()),
                content_type: header(CONTENT_TYPE),
                cache_control: header(CACHE_CONTROL),
                sha256: None,
                url: url.clone(),
            };
            if deep && status == 200 {
                let (len, sha) = self
                    .hash_body(response.into_body())
                    .await
                    .map_err(no_answer)?;
                visit.length = Some(len);
                visit.sha256 = Some(sha);
            }
            return Ok(visit);
        }
        Err(VisitError::Redirects { url })
    }

    /// Reads a body to its end, hashing it: (bytes, SHA-256).
    async fn hash_body(
        &self,
        mut body: hyper::body::Incoming,
    ) -> Result<(u64, Sha256Digest), String> {
        let mut sha = Sha256::new();
        let mut len = 0u64;
        loop {
            let frame = tokio::time::timeout(
                self.timeout,
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
            )
            .await
            .map_err(|_| format!("the body stalled for {:?}", self.timeout))?;
            match frame {
                None => break,
                Some(Err(e)) => return Err(format!("reading the body: {e}")),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        let data: Bytes = data;
                        len += data.len() as u64;
                        sha.update(&data);
                    }
                }
            }
        }
        Ok((len, Sha256Digest(sha.finalize().into())))
    }
}

/// `location` (absolute, or a path on the same host) as a URL.
fn resolve(from: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let after_scheme = from.find("://").map_or(0, |i| i + 3);
    let host_end = from[after_scheme..]
        .find('/')
        .map_or(from.len(), |i| after_scheme + i);
    if location.starts_with('/') {
        format!("{}{location}", &from[..host_end])
    } else {
        let dir = from
            .rfind('/')
            .filter(|&i| i >= host_end)
            .unwrap_or(host_end);
        format!("{}/{location}", &from[..dir])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_url_asked() {
        let from = "https://cdn.example/media/a/b.jpg";
        assert_eq!(resolve(from, "https://other/x"), "https://other/x");
        assert_eq!(resolve(from, "/x/y.jpg"), "https://cdn.example/x/y.jpg");
        assert_eq!(resolve(from, "c.jpg"), "https://cdn.example/media/a/c.jpg");
        assert_eq!(resolve("http://h", "c.jpg"), "http://h/c.jpg");
    }
}
