//! The limits every task of a run shares, handed out in one place: request
//! slots (`--concurrency`, shared by small files and parts, so a tree of
//! thumbnails and a tree of videos both keep the pipe full), memory for
//! buffers (`--max-memory`, so memory stays flat whatever the file count or
//! sizes), and the threads that read and hash (`--hash-threads`; file I/O
//! never runs on the async runtime).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::job::JobError;
use crate::store::StoreError;

/// Buffers are accounted in units of this many bytes.
pub(super) const MEMORY_UNIT: u64 = 64 * 1024;

/// Memory units for a buffer of `bytes`.
pub(super) fn units(bytes: u64) -> u32 {
    bytes.div_ceil(MEMORY_UNIT).max(1) as u32
}

pub(super) struct Permits {
    requests: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    cpu: Semaphore,
}

/// A semaphore is closed only when the run is torn down.
fn closed<E>(_: E) -> JobError {
    JobError::Interrupted
}

impl Permits {
    pub(super) fn new(concurrency: usize, memory: u64, hash_threads: usize) -> Self {
        Self {
            requests: Arc::new(Semaphore::new(concurrency)),
            memory: Arc::new(Semaphore::new(units(memory) as usize)),
            cpu: Semaphore::new(hash_threads.max(1)),
        }
    }

    /// A request slot, held until the permit is dropped.
    pub(super) async fn request(&self) -> Result<OwnedSemaphorePermit, JobError> {
        self.requests.clone().acquire_owned().await.map_err(closed)
    }

    /// Room for a buffer of `bytes`, held until the permit is dropped.
    pub(super) async fn memory(&self, bytes: u64) -> Result<OwnedSemaphorePermit, JobError> {
        self.memory
            .clone()
            .acquire_many_owned(units(bytes))
            .await
            .map_err(closed)
    }

    /// One store call, made while holding a request slot.
    pub(super) async fn send<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, JobError> {
        let _slot = self.request().await?;
        Ok(call.await?)
    }

    /// Runs `f` on the blocking pool, at most `hash_threads` at a time.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobError> {
        let _cpu = self.cpu.acquire().await.map_err(closed)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| JobError::Failed(format!("a reader thread failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_counted_in_units_and_never_zero() {
        assert_eq!(units(1), 1);
        assert_eq!(units(0), 1);
        assert_eq!(units(MEMORY_UNIT), 1);
        assert_eq!(units(MEMORY_UNIT + 1), 2);
    }

    #[tokio::test]
    async fn a_call_holds_a_request_slot_while_it_runs() {
        let p = Permits::new(1, 1 << 20, 1);
        let held = p.request().await.unwrap();
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            p.send(async { Ok::<_, StoreError>(()) }),
        )
        .await;
        assert!(blocked.is_err(), "no slot free: the call waits");
        drop(held);
        assert!(p.send(async { Ok::<_, StoreError>(7) }).await.is_ok());
    }
}
