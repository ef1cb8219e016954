//! The upload engine: puts every planned object, streaming, in parallel,
//! within fixed limits, and proves each one arrived.
//!
//! `run` schedules: small files and large files on two sides that share
//! the run's permits (`permits`), a second pass for files that changed
//! while being read, and every task's outcome, a panic included, accounted
//! to its file. The rest is split by responsibility: `job` (what goes in
//! and comes out), `context` (what the tasks share), `read` (file reads
//! and change detection), `single` (one PutObject), `multipart` (parts and
//! completion), `resume` (continuing an earlier run's upload), `parts`
//! (multipart state as plain data), `confirm` (the proof after each write)
//! and `buffers` (reused read buffers).
//!
//! The engine sees the store only as an [`ObjectStore`], so its unit tests
//! run against an in-memory one.

mod buffers;
mod confirm;
mod context;
mod job;
mod multipart;
mod parts;
mod permits;
mod read;
mod resume;
mod single;
mod whole;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::{Id, JoinError, JoinSet};

pub use self::job::{Failed, Job, Outcome, UploadSettings, Uploaded};

use self::context::Ctx;
use self::job::JobError;
use crate::cancel::Stop;
use crate::journal::Recorder;
use crate::progress::Transfer;
use crate::store::ObjectStore;

/// Uploads every job; returns successes and failures (in no fixed order).
///
/// Jobs are taken from `jobs` as there is room for them, never all at
/// once: a million-file plan can hand over an iterator that makes each job
/// when it is reached. The iterator is walked twice, once for the small
/// files and once for the large ones (each side skips the other's), so it
/// must be cheap to clone.
pub async fn run<S, I>(
    store: &S,
    root: &Path,
    jobs: I,
    settings: &UploadSettings,
    progress: Transfer,
    journal: Option<Recorder>,
    stop: Stop,
) -> Outcome
where
    S: ObjectStore,
    I: IntoIterator<Item = Job>,
    I::IntoIter: Clone,
{
    let ctx = Arc::new(Ctx::new(
        store.clone(),
        root.to_path_buf(),
        settings,
        progress,
        journal,
        stop,
    ));
    let first = pass(&ctx, jobs.into_iter()).await;
    let mut outcome = Outcome {
        uploaded: first.uploaded,
        failed: first.failed,
        interrupted: first.interrupted,
        bytes_read: 0,
    };
    let mut changed = first.changed;
    if !changed.is_empty() && !ctx.halted() {
        tracing::warn!(
            "{} file(s) changed while being uploaded; trying them once more",
            changed.len()
        );
        // Digests known from planning stay: a file whose duplicates were
        // matched to its old content must not be uploaded with new content.
        let again: Vec<Job> = changed.into_iter().map(|(job, _)| job).collect();
        let second = pass(&ctx, again.into_iter()).await;
        outcome.uploaded.extend(second.uploaded);
        outcome.failed.extend(second.failed);
        outcome.interrupted += second.interrupted;
        changed = second.changed;
        if !ctx.halted() {
            outcome.failed.extend(changed.drain(..).map(|(job, why)| {
                let error = format!("{why}; not uploaded (it will be retried by the next run)");
                ctx.record_failed(&job, &error);
                job.failed(error)
            }));
        }
    }
    // Changed files a stop left for the next run.
    outcome.interrupted += changed.len();
    ctx.progress.finish();
    outcome.bytes_read = ctx.bytes_read();
    outcome
}

/// What one pass did: successes, files that changed while being read (with
/// why), failures, and jobs a stop left undone.
#[derive(Default)]
struct PassResult {
    uploaded: Vec<Uploaded>,
    changed: Vec<(Job, String)>,
    failed: Vec<Failed>,
    interrupted: usize,
}

impl PassResult {
    fn join(mut self, other: Self) -> Self {
        self.uploaded.extend(other.uploaded);
        self.changed.extend(other.changed);
        self.failed.extend(other.failed);
        self.interrupted += other.interrupted;
        self
    }
}

/// Tasks of one side of a pass, each remembered with its job so that an
/// outcome (a panic included) always comes back with the job it concerns,
/// and is settled as soon as it is in: only running jobs are held.
struct Tasks<'c, S: ObjectStore> {
    ctx: &'c Arc<Ctx<S>>,
    set: JoinSet<Result<Uploaded, JobError>>,
    jobs: HashMap<Id, Arc<Job>>,
    done: PassResult,
}

impl<'c, S: ObjectStore> Tasks<'c, S> {
    fn new(ctx: &'c Arc<Ctx<S>>) -> Self {
        Self {
            ctx,
            set: JoinSet::new(),
            jobs: HashMap::new(),
            done: PassResult::default(),
        }
    }

    fn spawn(
        &mut self,
        job: Arc<Job>,
        task: impl Future<Output = Result<Uploaded, JobError>> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.jobs.insert(id, job);
    }

    fn take(&mut self, joined: Result<(Id, Result<Uploaded, JobError>), JoinError>) {
        let (id, result) = match joined {
            Ok((id, r)) => (id, r),
            Err(e) => (e.id(), Err(panicked(e))),
        };
        if let Some(job) = self.jobs.remove(&id) {
            self.settle(job, result);
        }
    }

    /// Files the outcome of one job.
    fn settle(&mut self, job: Arc<Job>, result: Result<Uploaded, JobError>) {
        match result {
            Ok(u) => self.done.uploaded.push(u),
            Err(JobError::Changed(why)) => {
                self.done.changed.push((Arc::unwrap_or_clone(job), why));
            }
            Err(JobError::Interrupted) => self.done.interrupted += 1,
            Err(e) => {
                let error = e.message();
                self.ctx.progress.object_failed();
                self.ctx.record_failed(&job, &error);
                self.done.failed.push(job.failed(error));
            }
        }
    }

    /// Takes what has finished, without waiting.
    fn reap(&mut self) {
        while let Some(r) = self.set.try_join_next_with_id() {
            self.take(r);
        }
    }

    /// Waits until no more than `n` are running; if `stop` says to cancel
    /// meanwhile, the running ones are cancelled (they count as
    /// interrupted: their multipart uploads are kept for the next run).
    async fn wait_below(&mut self, n: usize, stop: &Stop) {
        let mut cancelled = false;
        while self.set.len() > n {
            tokio::select! {
                joined = self.set.join_next_with_id() => match joined {
                    Some(r) => self.take(r),
                    None => break,
                },
                () = stop.cancelled(), if !cancelled => {
                    cancelled = true;
                    self.set.abort_all();
                }
            }
        }
    }

    /// Waits for the rest; `left` jobs were never started (a stop).
    async fn finish(mut self, left: usize) -> PassResult {
        self.wait_below(0, &self.ctx.stop.clone()).await;
        self.done.interrupted += left;
        self.done
    }
}

/// A task that panicked is a failure of its file, with the panic's message.
fn panicked(e: JoinError) -> JobError {
    if !e.is_panic() {
        return JobError::Interrupted;
    }
    let payload = e.into_panic();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    JobError::Failed(format!("the upload task panicked: {msg}"))
}

async fn pass<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    jobs: impl Iterator<Item = Job> + Clone,
) -> PassResult {
    let threshold = ctx.settings.multipart_threshold;
    let small = jobs.clone().filter(|j| j.size < threshold);
    let large = jobs.filter(|j| j.size >= threshold);
    let (a, b) = tokio::join!(small_side(ctx, small), large_side(ctx, large));
    a.join(b)
}

/// Small files: the request slot and the memory are taken before a task is
/// spawned, so no more than `concurrency` small uploads exist at once.
async fn small_side<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    mut jobs: impl Iterator<Item = Job>,
) -> PassResult {
    let mut tasks = Tasks::new(ctx);
    let mut left = 0;
    while let Some(job) = jobs.next() {
        if ctx.halted() {
            left = 1 + jobs.count();
            break;
        }
        let permits = async {
            let slot = ctx.permits.request().await?;
            Ok::<_, JobError>((slot, ctx.permits.memory(job.size).await?))
        };
        let (slot, memory) = tokio::select! {
            p = permits => match p {
                Ok(p) => p,
                Err(_) => {
                    left = 1 + jobs.count();
                    break;
                }
            },
            () = ctx.stop.cancelled() => {
                left = 1 + jobs.count();
                break;
            }
        };
        let (c, job) = (ctx.clone(), Arc::new(job));
        let j = job.clone();
        tasks.spawn(
            job,
            async move { single::put_small(&c, &j, slot, memory).await },
        );
        tasks.reap();
        tasks
            .wait_below(ctx.settings.concurrency * 2, &ctx.stop)
            .await;
    }
    tasks.finish(left).await
}

/// Large files: `large_files` at once; their parts share the request slots.
async fn large_side<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    mut jobs: impl Iterator<Item = Job>,
) -> PassResult {
    let slots = Arc::new(Semaphore::new(ctx.settings.large_files.max(1)));
    let mut tasks = Tasks::new(ctx);
    let mut left = 0;
    while let Some(job) = jobs.next() {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.ok(),
            () = ctx.stop.cancelled() => None,
        };
        let Some(slot) = slot.filter(|_| !ctx.halted()) else {
            left = 1 + jobs.count();
            break;
        };
        let (c, job) = (ctx.clone(), Arc::new(job));
        let j = job.clone();
        tasks.spawn(job, async move {
            let r = multipart::put_multipart(&c, &j).await;
            drop(slot);
            r
        });
        tasks.reap();
    }
    tasks.finish(left).await
}

#[cfg(test)]
mod tests;
