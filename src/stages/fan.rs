//! Work on many items with a bounded number in flight: the HEADs of the
//! bucket check, `verify`'s proofs and visits, `offload`'s proofs and
//! `restore`'s downloads. Each item's work is its own task (so hashing a
//! download runs beside the others), waits for one of `limit` permits,
//! and its result is handed back as soon as it is ready, in no fixed
//! order, to code that runs on the caller's task (so it may borrow and
//! mutate the caller's state: the report, the journal's recorder).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{Error, Result};

/// Runs `work(item)` for every item, at most `limit` at once, and calls
/// `done` with each result as it finishes. A task that panics ends the
/// whole (as `Error::Task`, naming `what`), as does an error from `done`;
/// the tasks still running are then dropped (aborted).
pub async fn at_most<I, F, Fut, R>(
    limit: usize,
    what: &'static str,
    items: I,
    work: F,
    mut done: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = JoinSet::new();
    for item in items {
        let (permits, job) = (permits.clone(), work(item));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            job.await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        done(joined.map_err(|source| Error::Task { what, source })?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_than_the_limit_in_flight_and_every_result_handed_back() {
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut got = Vec::new();
        at_most(
            3,
            "a test task",
            0..40u32,
            |i| {
                let (now, most) = (now.clone(), most.clone());
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(i % 4))).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                }
            },
            |r| {
                got.push(r);
                Ok(())
            },
        )
        .await
        .unwrap();
        got.sort_unstable();
        assert_eq!(got, (0..40).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} in flight at once");
    }

    #[tokio::test]
    async fn a_panicking_task_is_an_error_naming_the_work() {
        let r = at_most(
            2,
            "a test task",
            [1, 2],
            |i| async move {
                assert!(i != 2, "boom");
                i
            },
            |_| Ok(()),
        )
        .await;
        assert!(
            matches!(
                r,
                Err(Error::Task {
                    what: "a test task",
                    ..
                })
            ),
            "{r:?}"
        );
    }
}
