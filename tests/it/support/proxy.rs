//! A test-only HTTP proxy between mediashift and the real S3 server, which
//! counts what clients send and misbehaves on request: it answers 503
//! SlowDown (at a rate, or above N requests in flight), 500, resets a
//! connection mid-body, accepts a request and never answers, loses the
//! response after the server stored the request, or refuses connections for
//! a while. Rules are chosen per test and are deterministic by seed.
//!
//! It speaks just enough HTTP/1.1 for the AWS SDK and SeaweedFS: requests
//! and responses with Content-Length or chunked bodies, keep-alive, and
//! `Expect: 100-continue` (answered by the proxy itself).

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which requests a rule applies to.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// "PUT", "POST", "GET", "HEAD", "DELETE"; any if `None`.
    pub method: Option<&'static str>,
    /// Substrings the request target (path and query) must all contain.
    pub target: Vec<String>,
    /// Only while more than this many requests are in flight (this one
    /// included).
    pub in_flight_above: Option<usize>,
    /// Only this share of the matching requests (0.0 to 1.0), by the seed.
    pub rate: Option<f64>,
    /// Only requests carrying this header (e.g. `x-amz-copy-source`: a
    /// CopyObject, not a PutObject to the same key).
    pub header: Option<&'static str>,
}

impl Match {
    pub fn method(m: &'static str) -> Self {
        Self {
            method: Some(m),
            ..Self::default()
        }
    }

    /// The target must also contain `t`.
    pub fn target(mut self, t: &str) -> Self {
        self.target.push(t.to_string());
        self
    }

    pub fn any() -> Self {
        Self::default()
    }

    /// The request must also carry header `h`.
    pub fn with_header(mut self, h: &'static str) -> Self {
        self.header = Some(h);
        self
    }
}

/// What the proxy does with a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 SlowDown with S3's XML error body.
    SlowDown,
    /// 500 InternalError.
    InternalError,
    /// 501 NotImplemented, as a server that lacks an operation answers.
    NotImplemented,
    /// Closes the connection after half the request body.
    ResetMidBody,
    /// Reads the request and never answers (the connection stays open).
    Stall,
    /// Forwards the request, reads the server's whole response, and closes
    /// the connection without passing it on: the server did the work, the
    /// client never hears of it.
    LoseResponse,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub matches: Match,
    pub fault: Fault,
    /// How many times it may fire (`None`: without end).
    pub times: Option<usize>,
}

/// What the proxy saw.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: u64,
    /// Faults by kind, as applied.
    pub faults: Vec<(Fault, String)>,
    /// The largest number of requests in flight at once.
    pub max_in_flight: usize,
    /// (method, `x-amz-content-sha256`) of each request.
    pub payload_hashes: Vec<(String, String)>,
    /// (method, target) of each request, in order of arrival.
    pub seen: Vec<(String, String)>,
    /// (seconds since start, status) of every answer clients got.
    pub answers: Vec<(f64, u16)>,
}

impl Stats {
    /// ListObjectsV2 requests.
    pub fn listings(&self) -> usize {
        self.seen
            .iter()
            .filter(|(m, t)| m == "GET" && t.contains("list-type=2"))
            .count()
    }
}

struct State {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    stats: Mutex<Stats>,
    in_flight: AtomicUsize,
    /// Bytes of requests (heads and bodies) clients sent through us.
    sent: AtomicU64,
    rng: Mutex<u64>,
    refuse_until: Mutex<Option<Instant>>,
    started: Instant,
    closed: AtomicBool,
    /// Connections held open by `Stall`, so they stay open until the end.
    stalled: Mutex<Vec<TcpStream>>,
}

/// The proxy; it stops accepting when dropped.
pub struct Proxy {
    pub endpoint: String,
    state: Arc<State>,
    port: u16,
}

impl Proxy {
    /// A proxy in front of the test server, with no rules yet.
    pub fn start() -> Self {
        Self::seeded(1)
    }

    pub fn seeded(seed: u64) -> Self {
        let upstream = super::server()
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            upstream,
            rules: Mutex::new(Vec::new()),
            stats: Mutex::new(Stats::default()),
            in_flight: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            rng: Mutex::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            refuse_until: Mutex::new(None),
            started: Instant::now(),
            closed: AtomicBool::new(false),
            stalled: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        std::thread::spawn(move || accept(listener, port, s));
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            port,
        }
    }

    /// Adds a rule; rules are tried in the order added.
    pub fn rule(&self, matches: Match, fault: Fault, times: Option<usize>) -> &Self {
        self.state.rules.lock().unwrap().push(Rule {
            matches,
            fault,
            times,
        });
        self
    }

    /// Drops every rule.
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Refuses connections (the port is closed) for `d`, from now; an open
    /// connection is closed when its next request arrives.
    pub fn refuse_for(&self, d: Duration) {
        *self.state.refuse_until.lock().unwrap() = Some(Instant::now() + d);
        // Wake the accept loop so it closes the port now.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }

    pub fn bytes_sent(&self) -> u64 {
        self.state.sent.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> Stats {
        self.state.stats.lock().unwrap().clone()
    }

    /// (method, `x-amz-content-sha256`) of each request seen so far.
    pub fn payload_hashes(&self) -> Vec<(String, String)> {
        self.stats().payload_hashes
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self.state.stalled.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept(mut listener: TcpListener, port: u16, state: Arc<State>) {
    loop {
        let Ok((client, _)) = listener.accept() else {
            continue;
        };
        if state.closed.load(Ordering::SeqCst) {
            return;
        }
        let refuse = *state.refuse_until.lock().unwrap();
        if let Some(until) = refuse {
            // Close the port: connecting clients get "connection refused".
            drop(client);
            drop(listener);
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            *state.refuse_until.lock().unwrap() = None;
            listener = loop {
                match TcpListener::bind(("127.0.0.1", port)) {
                    Ok(l) => break l,
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            };
            continue;
        }
        let s = state.clone();
        std::thread::spawn(move || {
            let _ = serve(client, &s);
        });
    }
}

/// A request or response as read off the wire.
struct Message {
    /// The start line and headers, as received.
    head: Vec<u8>,
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// The message with its head re-written (header `drop` removed).
    fn bytes_without(&self, drop: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case(drop) {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// A message head as read: its bytes, its start line, its headers.
type Head = (Vec<u8>, String, Vec<(String, String)>);

/// Reads a message head; `None` at a clean end of the stream.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        let end = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some((head, start, headers)))
}

/// Reads a body by Content-Length or chunked encoding (kept as received).
fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    limit: Option<usize>,
) -> std::io::Result<Vec<u8>> {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)?;
            body.extend_from_slice(&size_line);
            let text = String::from_utf8_lossy(&size_line);
            let size = usize::from_str_radix(text.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                return Ok(body);
            }
        }
    }
    let len: usize = get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; limit.map_or(len, |l| l.min(len))];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn read_message(
    r: &mut impl BufRead,
    has_body: impl Fn(&str) -> bool,
) -> std::io::Result<Option<Message>> {
    let Some((head, start, headers)) = read_head(r)? else {
        return Ok(None);
    };
    let body = if has_body(&start) {
        read_body(r, &headers, None)?
    } else {
        Vec::new()
    };
    Ok(Some(Message {
        head,
        start,
        headers,
        body,
    }))
}

fn answer(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>proxy</RequestId></Error>"
    );
    let reason = if status == 503 {
        "Service Unavailable"
    } else {
        "Internal Server Error"
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl State {
    fn random(&self) -> f64 {
        let mut x = self.rng.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The fault for this request, if a rule fires.
    fn fault(
        &self,
        method: &str,
        target: &str,
        headers: &[&str],
        in_flight: usize,
    ) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        for r in rules.iter_mut() {
            let m = &r.matches;
            let hit = m.method.is_none_or(|x| x == method)
                && m.target.iter().all(|t| target.contains(t.as_str()))
                && m.header
                    .is_none_or(|h| headers.iter().any(|k| k.eq_ignore_ascii_case(h)))
                && m.in_flight_above.is_none_or(|n| in_flight > n)
                && r.times != Some(0);
            if hit && m.rate.is_none_or(|p| self.random() < p) {
                if let Some(t) = &mut r.times {
                    *t -= 1;
                }
                let mut stats = self.stats.lock().unwrap();
                stats.faults.push((r.fault, format!("{method} {target}")));
                return Some(r.fault);
            }
        }
        None
    }

    fn refusing(&self) -> bool {
        self.refuse_until
            .lock()
            .unwrap()
            .is_some_and(|until| Instant::now() < until)
    }

    fn answered(&self, status: u16) {
        let t = self.started.elapsed().as_secs_f64();
        self.stats.lock().unwrap().answers.push((t, status));
    }
}

/// Decrements the in-flight count when a request is done, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(client: TcpStream, state: &State) -> std::io::Result<()> {
    let mut to_client = client.try_clone()?;
    let mut from_client = BufReader::new(client);
    let mut upstream: Option<(TcpStream, BufReader<TcpStream>)> = None;
    loop {
        let Some((head, start, headers)) = read_head(&mut from_client)? else {
            return Ok(());
        };
        if state.refusing() {
            // A server that went away: its open connections die too.
            let _ = to_client.shutdown(Shutdown::Both);
            return Ok(());
        }
        let mut parts = start.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let n = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = InFlight(&state.in_flight);
        {
            let mut stats = state.stats.lock().unwrap();
            stats.requests += 1;
            stats.max_in_flight = stats.max_in_flight.max(n);
            stats.seen.push((method.clone(), target.clone()));
            if let Some((_, v)) = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-content-sha256"))
            {
                stats.payload_hashes.push((method.clone(), v.clone()));
            }
        }
        let expect = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue")
        });
        if expect {
            to_client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let fault = state.fault(&method, &target, &names, n);
        if fault == Some(Fault::ResetMidBody) {
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let half = read_body(&mut from_client, &headers, Some(len / 2))?;
            state
                .sent
                .fetch_add((head.len() + half.len()) as u64, Ordering::SeqCst);
            let _ = to_client.shutdown(Shutdown::Both);
            return Ok(());
        }
        let body = read_body(&mut from_client, &headers, None)?;
        state
            .sent
            .fetch_add((head.len() + body.len()) as u64, Ordering::SeqCst);
        let request = Message {
            head,
            start,
            headers,
            body,
        };
        match fault {
            Some(Fault::SlowDown) => {
                to_client.write_all(&answer(
                    503,
                    "SlowDown",
                    "Please reduce your request rate.",
                ))?;
                state.answered(503);
                continue;
            }
            Some(Fault::InternalError) => {
                to_client.write_all(&answer(
                    500,
                    "InternalError",
                    "We encountered an internal error.",
                ))?;
                state.answered(500);
                continue;
            }
            Some(Fault::NotImplemented) => {
                to_client.write_all(&answer(
                    501,
                    "NotImplemented",
                    "A header you provided implies functionality that is not implemented.",
                ))?;
                state.answered(501);
                continue;
            }
            Some(Fault::Stall) => {
                state.stalled.lock().unwrap().push(to_client);
                return Ok(());
            }
            _ => {}
        }
        if upstream.is_none() {
            let s = TcpStream::connect(&state.upstream)?;
            let r = BufReader::new(s.try_clone()?);
            upstream = Some((s, r));
        }
        let Some((up, up_reader)) = upstream.as_mut() else {
            return Ok(());
        };
        up.write_all(&request.bytes_without("expect"))?;
        let is_head = method == "HEAD";
        let response = loop {
            let Some(r) = read_message(up_reader, |start| {
                let status: u16 = start
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(200);
                !is_head && status != 204 && status != 304 && status >= 200
            })?
            else {
                return Ok(());
            };
            // Interim answers (100 Continue) were already given by us.
            if !r
                .start
                .split_whitespace()
                .nth(1)
                .is_some_and(|s| s.starts_with('1'))
            {
                break r;
            }
        };
        if fault == Some(Fault::LoseResponse) {
            let _ = to_client.shutdown(Shutdown::Both);
            return Ok(());
        }
        let status = response
            .start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        to_client.write_all(&response.head)?;
        to_client.write_all(&response.body)?;
        state.answered(status);
        if request.closes() || response.closes() {
            return Ok(());
        }
    }
}
