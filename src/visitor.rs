//! What a visitor's browser gets at a URL, checked before the switch
//! (`verify --via-url`): a bucket or CDN that is not public, a wrong
//! prefix, a name the URL cannot carry, a content type or cache header a
//! CDN changed, all show here before any customer sees them.
//!
//! Plain HTTP(S) with no credentials, redirects followed as a browser
//! follows them: a HEAD, or with `deep` a GET whose body is hashed as it
//! arrives. This and the SDK's client (in `store`) are the only code that
//! speaks HTTP; the certificates it trusts come from `store::client_config`.

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

use crate::store::{StoreError, Trust, client_config};
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

/// What a visitor should get for a file.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub size: u64,
    pub sha256: Sha256Digest,
    pub content_type: &'a str,
    /// As set at migrate (`--cache-control`); not judged when `None`.
    pub cache_control: Option<&'a str>,
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
                .map_err(|e| no_answer(crate::store::chain(&e)))?;
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

/// What is wrong with what a visitor got, if anything (each reason in
/// words).
pub fn judge(visit: &Visit, expected: &Expected<'_>, deep: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    match visit.status {
        200 => {}
        401 | 403 => {
            wrong.push(format!(
                "HTTP {}: the bucket or CDN does not let anonymous visitors read it (make the objects public, or the CDN's origin access right)",
                visit.status
            ));
            return wrong;
        }
        404 => {
            wrong.push(
                "HTTP 404: nothing at this URL (a wrong --via-url or prefix, or a name the URL cannot carry: S3 reads a raw + as a space)"
                    .into(),
            );
            return wrong;
        }
        s => {
            wrong.push(format!("HTTP {s}"));
            return wrong;
        }
    }
    if let Some(len) = visit.length
        && len != expected.size
    {
        wrong.push(format!("{len} bytes, the file has {}", expected.size));
    }
    let media_type = |v: &str| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    };
    match &visit.content_type {
        Some(t) if media_type(t) == media_type(expected.content_type) => {}
        Some(t) => wrong.push(format!(
            "served as {t}, not {} (what migrate gave the object)",
            expected.content_type
        )),
        None => wrong.push(format!(
            "no Content-Type (migrate gave the object {})",
            expected.content_type
        )),
    }
    if let Some(want) = expected.cache_control {
        match &visit.cache_control {
            Some(got) if got.trim() == want.trim() => {}
            Some(got) => wrong.push(format!(
                "Cache-Control {got}, not {want} (as set at migrate)"
            )),
            None => wrong.push(format!("no Cache-Control (set at migrate: {want})")),
        }
    }
    if deep
        && let Some(sha) = visit.sha256
        && sha != expected.sha256
    {
        wrong.push(format!(
            "its bytes hash to {sha}, the file's SHA-256 is {}",
            expected.sha256
        ));
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_visit() -> Visit {
        Visit {
            url: "https://cdn.example/a.jpg".into(),
            status: 200,
            length: Some(5),
            content_type: Some("image/jpeg".into()),
            cache_control: Some("max-age=60".into()),
            sha256: Some(Sha256Digest([1; 32])),
        }
    }

    fn expected() -> Expected<'static> {
        Expected {
            size: 5,
            sha256: Sha256Digest([1; 32]),
            content_type: "image/jpeg",
            cache_control: Some("max-age=60"),
        }
    }

    #[test]
    fn a_visit_is_judged_by_status_length_type_cache_and_bytes() {
        assert!(judge(&ok_visit(), &expected(), true).is_empty());
        let mut v = ok_visit();
        v.status = 403;
        assert!(judge(&v, &expected(), false)[0].contains("anonymous"));
        v.status = 404;
        assert!(judge(&v, &expected(), false)[0].contains("raw +"));
        let mut v = ok_visit();
        v.length = Some(4);
        v.content_type = Some("binary/octet-stream".into());
        v.cache_control = None;
        v.sha256 = Some(Sha256Digest([2; 32]));
        let wrong = judge(&v, &expected(), true);
        assert_eq!(wrong.len(), 4, "{wrong:?}");
        // The bytes are only judged with --deep; parameters and case of a
        // content type do not matter; an unset cache header is not judged.
        let mut v = ok_visit();
        v.sha256 = Some(Sha256Digest([2; 32]));
        v.content_type = Some("Image/JPEG; charset=binary".into());
        v.cache_control = None;
        let mut e = expected();
        e.cache_control = None;
        assert!(judge(&v, &e, false).is_empty());
    }

    #[test]
    fn redirects_resolve_against_the_url_asked() {
        let from = "https://cdn.example/media/a/b.jpg";
        assert_eq!(resolve(from, "https://other/x"), "https://other/x");
        assert_eq!(resolve(from, "/x/y.jpg"), "https://cdn.example/x/y.jpg");
        assert_eq!(resolve(from, "c.jpg"), "https://cdn.example/media/a/c.jpg");
        assert_eq!(resolve("http://h", "c.jpg"), "http://h/c.jpg");
    }
}
