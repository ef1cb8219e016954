//! Retries as a policy: which failures a request tries again, how often,
//! and after how long. Every call to the store goes through [`run`], which
//! also takes the request's slot from the [`Pace`] and tells it how the
//! store answered.
//!
//! - A 5xx, a dropped connection or a timeout counts as an attempt; the
//!   request fails once `max_attempts` are spent.
//! - Throttling (503 SlowDown, 429) and an endpoint that cannot be reached
//!   do not count: the request waits, with backoff and without its slot
//!   (so the pace can hold the others back too), for up to `patience`
//!   since the trouble began. There is no shared quota that can run dry:
//!   each request has its own attempts.
//! - Anything else (not found, refused, a rejected checksum) fails at once.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::{ErrorKind, StoreError};
use super::pace::{Pace, PushBack};

/// How requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request on errors that may pass, the first included.
    pub max_attempts: u32,
    /// How long a request keeps trying while it is throttled or the
    /// endpoint cannot be reached.
    pub patience: Duration,
    /// The first backoff; later ones double, up to 200 times it (25 times
    /// for an unreachable endpoint, so it is probed often enough to notice
    /// it is back).
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            patience: Duration::from_secs(180),
            backoff: Duration::from_millis(100),
        }
    }
}

/// Full-jitter exponential backoff: a random wait up to `base * 2^n`,
/// capped.
fn backoff(policy: &RetryPolicy, retry: u32, kind: ErrorKind) -> Duration {
    let (base, cap) = match kind {
        ErrorKind::Unreachable => (policy.backoff * 2, policy.backoff * 50),
        _ => (policy.backoff, policy.backoff * 200),
    };
    let ceiling = base.saturating_mul(1u32 << retry.min(16)).min(cap);
    ceiling.mul_f64(jitter())
}

/// A number in [0.1, 1), from a shared xorshift: jitter needs no crypto.
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    0.1 + 0.9 * ((x >> 11) as f64 / (1u64 << 53) as f64)
}

/// Runs `attempt` under `policy`, each try in a slot of `pace` (and
/// within its caps, for a body of `body_bytes`).
pub async fn run<T, F, Fut>(
    pace: &Pace,
    policy: &RetryPolicy,
    body_bytes: u64,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut counted = 0u32;
    let mut retries = 0u32;
    let mut trouble_since: Option<Instant> = None;
    loop {
        let slot = pace.slot(body_bytes).await;
        let started = Instant::now();
        let result = attempt().await;
        drop(slot);
        let e = match result {
            Ok(v) => {
                pace.success(started.elapsed());
                return Ok(v);
            }
            Err(e) => e,
        };
        let waits = match e.kind() {
            ErrorKind::Throttled => {
                pace.pushed_back(PushBack::Throttled);
                true
            }
            ErrorKind::Unreachable => {
                pace.pushed_back(PushBack::Unreachable);
                true
            }
            ErrorKind::Timeout => {
                pace.pushed_back(PushBack::Timeout);
                false
            }
            ErrorKind::Transient => false,
            _ => return Err(e),
        };
        if waits {
            let since = *trouble_since.get_or_insert(started);
            if since.elapsed() >= policy.patience {
                let msg = format!("{e} (still so after {:?} of retries)", policy.patience);
                return Err(e.with_message(msg));
            }
        } else {
            counted += 1;
            if counted >= policy.max_attempts {
                let msg = format!("{e} (after {counted} attempts)");
                return Err(e.with_message(msg));
            }
        }
        retries += 1;
        tracing::debug!("{}: {e}; retrying ({retries})", e.operation());
        tokio::time::sleep(backoff(policy, retries, e.kind())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pace::Caps;
    use std::sync::atomic::AtomicU32;

    fn err(kind: ErrorKind) -> StoreError {
        StoreError::new(kind, "PutObject k", format!("{kind:?}"))
    }

    /// Runs a request whose attempts answer `answers` in turn (then Ok).
    async fn try_with(
        answers: Vec<ErrorKind>,
        policy: RetryPolicy,
    ) -> (Result<u32, StoreError>, u32) {
        let pace = Pace::new(4, true, Caps::default());
        let calls = AtomicU32::new(0);
        let r = run(&pace, &policy, 0, || {
            let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
            let answer = answers.get(n).copied();
            async move {
                match answer {
                    Some(kind) => Err(err(kind)),
                    None => Ok(n as u32),
                }
            }
        })
        .await;
        (r, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn errors_that_may_pass_are_retried_until_the_attempts_are_spent() {
        let p = RetryPolicy {
            max_attempts: 3,
            patience: Duration::from_secs(60),
            backoff: Duration::from_millis(1),
        };
        let (r, calls) = try_with(vec![ErrorKind::Transient, ErrorKind::Timeout], p).await;
        assert_eq!((r.unwrap(), calls), (2, 3));
        let (r, calls) = try_with(vec![ErrorKind::Transient; 5], p).await;
        let e = r.unwrap_err();
        assert_eq!((e.kind(), calls), (ErrorKind::Transient, 3));
        assert!(e.to_string().contains("after 3 attempts"), "{e}");
    }

    #[tokio::test]
    async fn throttling_does_not_use_up_attempts_but_patience_ends() {
        let p = RetryPolicy {
            max_attempts: 2,
            patience: Duration::from_secs(600),
            backoff: Duration::from_millis(1),
        };
        // Throttled ten times running: still within patience, and the
        // two attempts are for errors of another kind.
        let (r, calls) = try_with(vec![ErrorKind::Throttled; 10], p).await;
        assert_eq!((r.unwrap(), calls), (10, 11));
        let short = RetryPolicy {
            max_attempts: 2,
            patience: Duration::from_millis(300),
            backoff: Duration::from_millis(1),
        };
        let (r, _) = try_with(vec![ErrorKind::Unreachable; 1000], short).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        assert!(e.to_string().contains("still so after 300ms"), "{e}");
    }

    #[tokio::test]
    async fn other_errors_fail_at_once() {
        let (r, calls) = try_with(vec![ErrorKind::Precondition], RetryPolicy::default()).await;
        assert_eq!((r.unwrap_err().kind(), calls), (ErrorKind::Precondition, 1));
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy::default();
        for retry in 1..30 {
            let d = backoff(&p, retry, ErrorKind::Throttled);
            assert!(d <= Duration::from_secs(20), "{d:?}");
            let d = backoff(&p, retry, ErrorKind::Unreachable);
            assert!(d <= Duration::from_secs(5), "{d:?}");
        }
        assert!(backoff(&p, 1, ErrorKind::Throttled) <= Duration::from_millis(200));
    }
}
