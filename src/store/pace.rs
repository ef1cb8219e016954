//! How fast the store is asked: request slots whose number adapts to how
//! the store answers, and optional caps on bytes and requests per second.
//!
//! The number of requests in flight follows AIMD, as TCP does: it starts
//! below the ceiling (`--concurrency`) and grows while requests succeed (by
//! one per success until the first push-back, then by about one per round
//! of requests), and is cut by 30% (the SDK's adaptive factor) when the
//! store pushes back (503 SlowDown, 429, a timeout, a refused connection),
//! at most once per request time, never below one. Within one of the limit
//! at which the store last pushed back it grows eight times slower (as
//! CUBIC probes near its last loss), so a store with a fixed capacity
//! spends most of the run just below it rather than being pushed over it
//! every few rounds. With `adaptive` off it stays at the ceiling.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The share of the limit kept when the store pushes back.
const DECREASE: f64 = 0.7;
/// Where the limit starts (or the ceiling, if lower).
const START: f64 = 8.0;
/// How many times slower the limit grows near where the store pushed back.
const PROBE: f64 = 8.0;

/// Caps on what is sent, from `--max-bandwidth` and `--max-rps`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Caps {
    /// Bytes of request bodies per second.
    pub bytes_per_s: Option<u64>,
    pub requests_per_s: Option<f64>,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    ceiling: usize,
    adaptive: bool,
    /// Until the first push-back the limit grows by one per success.
    slow_start: bool,
    last_decrease: Option<Instant>,
    /// A smoothed request time: push-backs within one count once.
    latency: Duration,
    lowest: usize,
    highest: usize,
    /// Since when the endpoint could not be reached, until a success.
    unreachable_since: Option<Instant>,
    /// The limit at which the store last pushed back.
    pushed_back_at: Option<f64>,
}

/// What the pace saw, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaceStats {
    pub throttled_requests: u64,
    pub timeouts: u64,
    pub unreachable: u64,
    pub concurrency_min: usize,
    pub concurrency_max: usize,
    /// Requests allowed in flight now.
    pub concurrency: usize,
    /// How long the endpoint has not been reachable, if it is not now.
    pub unreachable_for: Option<Duration>,
}

impl PaceStats {
    /// "concurrency 12 (8-24), throttled 37, timeouts 1" for the status
    /// line; "store unreachable for 5s" while it is.
    pub fn status(&self) -> String {
        let mut out = format!(
            "concurrency {} ({}-{})",
            self.concurrency, self.concurrency_min, self.concurrency_max
        );
        if self.throttled_requests > 0 {
            out.push_str(&format!(", throttled {}", self.throttled_requests));
        }
        if self.timeouts > 0 {
            out.push_str(&format!(", timeouts {}", self.timeouts));
        }
        if let Some(d) = self.unreachable_for {
            out.push_str(&format!(
                ", store unreachable for {}s, retrying",
                d.as_secs()
            ));
        }
        out
    }
}

/// A token bucket: `rate` tokens per second, up to `burst` saved.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes `n` tokens, waiting until they are there; a request larger
    /// than the burst waits for its share and goes (the bucket goes into
    /// debt), so any size gets through at the rate.
    async fn take(&self, n: f64) {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let (tokens, at) = *s;
            let tokens =
                (tokens + now.duration_since(at).as_secs_f64() * self.rate).min(self.burst);
            let left = tokens - n;
            *s = (left, now);
            if left >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-left / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The store's pace. Shared by every request of a run.
#[derive(Debug)]
pub struct Pace {
    state: Mutex<State>,
    freed: Notify,
    bytes: Option<Bucket>,
    requests: Option<Bucket>,
    throttled: AtomicU64,
    timeouts: AtomicU64,
    unreachable: AtomicU64,
}

/// A request slot; the request counts as in flight until it is dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    pace: &'a Pace,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.pace.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        drop(s);
        self.pace.freed.notify_one();
    }
}

/// Why the store pushed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushBack {
    Throttled,
    Timeout,
    Unreachable,
}

impl Pace {
    pub fn new(ceiling: usize, adaptive: bool, caps: Caps) -> Self {
        let ceiling = ceiling.max(1);
        let limit = if adaptive {
            START.min(ceiling as f64)
        } else {
            ceiling as f64
        };
        Self {
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                ceiling,
                adaptive,
                slow_start: true,
                last_decrease: None,
                latency: Duration::from_millis(50),
                lowest: limit as usize,
                highest: limit as usize,
                unreachable_since: None,
                pushed_back_at: None,
            }),
            freed: Notify::new(),
            // A tenth of a second's worth of bytes may go at once, so the
            // cap holds over short runs too; a larger part waits for its
            // share (an 8 MiB part at 20 MiB/s, 0.4 s less the burst).
            bytes: caps
                .bytes_per_s
                .map(|r| Bucket::new(r as f64, r as f64 / 10.0)),
            requests: caps.requests_per_s.map(|r| Bucket::new(r, r.max(1.0))),
            throttled: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            unreachable: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot under the current limit, and for the caps.
    pub async fn slot(&self, body_bytes: u64) -> Slot<'_> {
        loop {
            let freed = self.freed.notified();
            {
                let mut s = self.lock();
                if (s.in_flight as f64) < s.limit.floor().max(1.0) {
                    s.in_flight += 1;
                    break;
                }
            }
            freed.await;
        }
        let slot = Slot { pace: self };
        if let Some(b) = &self.requests {
            b.take(1.0).await;
        }
        if let (Some(b), true) = (&self.bytes, body_bytes > 0) {
            b.take(body_bytes as f64).await;
        }
        slot
    }

    /// A request succeeded after `took`: the limit may grow.
    pub fn success(&self, took: Duration) {
        let mut s = self.lock();
        s.latency = (s.latency * 7 + took) / 8;
        s.unreachable_since = None;
        if !s.adaptive || s.limit >= s.ceiling as f64 {
            return;
        }
        let near = |w: f64| s.limit >= w - 1.0 && s.limit < w + 1.0;
        let grow = if s.slow_start {
            1.0
        } else if s.pushed_back_at.is_some_and(near) {
            1.0 / (s.limit * PROBE)
        } else {
            1.0 / s.limit
        };
        let before = s.limit as usize;
        s.limit = (s.limit + grow).min(s.ceiling as f64);
        s.highest = s.highest.max(s.limit as usize);
        let grew = s.limit as usize > before;
        drop(s);
        if grew {
            self.freed.notify_one();
        }
    }

    /// The store pushed back: the limit is cut, once per request time.
    pub fn pushed_back(&self, why: PushBack) {
        match why {
            PushBack::Throttled => &self.throttled,
            PushBack::Timeout => &self.timeouts,
            PushBack::Unreachable => &self.unreachable,
        }
        .fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        let now = Instant::now();
        if why == PushBack::Unreachable {
            s.unreachable_since.get_or_insert(now);
        }
        if !s.adaptive {
            return;
        }
        if s.last_decrease
            .is_some_and(|t| now.duration_since(t) < s.latency)
        {
            return;
        }
        s.last_decrease = Some(now);
        s.slow_start = false;
        s.pushed_back_at = Some(s.limit);
        s.limit = (s.limit * DECREASE).max(1.0);
        s.lowest = s.lowest.min(s.limit as usize);
    }

    /// The current limit (whole requests).
    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.lock().limit as usize
    }

    pub fn stats(&self) -> PaceStats {
        let s = self.lock();
        PaceStats {
            throttled_requests: self.throttled.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            unreachable: self.unreachable.load(Ordering::Relaxed),
            concurrency_min: s.lowest,
            concurrency_max: s.highest,
            concurrency: s.limit as usize,
            unreachable_for: s.unreachable_since.map(|t| t.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limit_ramps_up_is_cut_by_push_back_and_never_leaves_its_bounds() {
        let p = Pace::new(64, true, Caps::default());
        assert_eq!(p.limit(), 8, "starts below the ceiling");
        for _ in 0..10 {
            p.success(Duration::from_millis(1));
        }
        assert_eq!(p.limit(), 18, "slow start: one per success");
        p.pushed_back(PushBack::Throttled);
        assert_eq!(p.limit(), 12, "cut by 30%");
        // Push-backs within one request time count once.
        p.pushed_back(PushBack::Throttled);
        assert_eq!(p.limit(), 12);
        for _ in 0..12 {
            p.success(Duration::from_millis(1));
        }
        assert_eq!(p.limit(), 13, "then about one per round of requests");
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(5));
            p.pushed_back(PushBack::Timeout);
        }
        assert_eq!(p.limit(), 1, "never below one");
        let s = p.stats();
        assert_eq!((s.throttled_requests, s.timeouts), (2, 20));
        assert_eq!((s.concurrency_min, s.concurrency_max), (1, 18));
        assert_eq!(s.status(), "concurrency 1 (1-18), throttled 2, timeouts 20");
        p.pushed_back(PushBack::Unreachable);
        assert!(
            p.stats()
                .status()
                .ends_with("store unreachable for 0s, retrying"),
            "{}",
            p.stats().status()
        );
        p.success(Duration::from_millis(1));
        assert_eq!(p.stats().unreachable_for, None, "reached again");
        let fixed = Pace::new(16, false, Caps::default());
        fixed.pushed_back(PushBack::Throttled);
        assert_eq!(fixed.limit(), 16, "not adaptive: stays at the ceiling");
    }

    #[tokio::test]
    async fn slots_wait_under_the_limit() {
        let p = Pace::new(2, false, Caps::default());
        let a = p.slot(0).await;
        let _b = p.slot(0).await;
        let third = tokio::time::timeout(Duration::from_millis(50), p.slot(0)).await;
        assert!(third.is_err(), "a third waits");
        drop(a);
        let third = tokio::time::timeout(Duration::from_millis(500), p.slot(0)).await;
        assert!(third.is_ok(), "and goes when one is freed");
    }

    #[test]
    fn near_where_the_store_pushed_back_the_limit_grows_slowly() {
        let ms = Duration::from_millis(1);
        let p = Pace::new(64, true, Caps::default());
        p.success(ms);
        p.success(ms);
        p.pushed_back(PushBack::Throttled);
        assert_eq!(p.limit(), 7, "10 cut by 30%");
        let successes_until = |n: usize| {
            let mut count = 0;
            while p.limit() < n {
                p.success(ms);
                count += 1;
            }
            count
        };
        // Up to one below where it broke: about one per round (7 + 8).
        assert!(successes_until(9) <= 16);
        // Then eight rounds per step while near it...
        let near = successes_until(11);
        assert!(near >= 8 * (9 + 10) - 2, "{near}");
        // ...and one round per step past it.
        assert!(successes_until(12) <= 12);
    }

    #[tokio::test]
    async fn the_caps_hold_the_rate() {
        let p = Pace::new(
            8,
            false,
            Caps {
                bytes_per_s: Some(10_000_000),
                requests_per_s: None,
            },
        );
        let start = Instant::now();
        // A tenth of a second's worth (1 MB) goes at once; 1.5 MB more is
        // 0.15 s, whatever the request sizes.
        drop(p.slot(2_000_000).await);
        drop(p.slot(500_000).await);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(140) && took < Duration::from_millis(400),
            "{took:?}"
        );
    }
}
