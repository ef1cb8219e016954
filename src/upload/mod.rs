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
pub async fn run<S: ObjectStore>(
    store: &S,
    root: &Path,
    jobs: Vec<Job>,
    settings: &UploadSettings,
    progress: Transfer,
    journal: Option<Recorder>,
    stop: Stop,
) -> Outcome {
    let ctx = Arc::new(Ctx::new(
        store.clone(),
        root.to_path_buf(),
        settings,
        progress,
        journal,
        stop,
    ));
    let total = jobs.len();
    let mut outcome = Outcome::default();
    let mut queue = jobs;
    for attempt in 0..2 {
        let (ok, changed, failed) = pass(&ctx, std::mem::take(&mut queue)).await;
        outcome.uploaded.extend(ok);
        outcome.failed.extend(failed);
        if changed.is_empty() || ctx.halted() {
            break;
        }
        if attempt == 0 {
            tracing::warn!(
                "{} file(s) changed while being uploaded; trying them once more",
                changed.len()
            );
            // Digests known from planning stay: a file whose duplicates were
            // matched to its old content must not be uploaded with new content.
            queue = changed.into_iter().map(|(job, _)| job).collect();
        } else {
            outcome.failed.extend(changed.into_iter().map(|(job, why)| {
                let error = format!("{why}; not uploaded (it will be retried by the next run)");
                ctx.record_failed(&job, &error);
                job.failed(error)
            }));
        }
    }
    ctx.progress.finish();
    outcome.interrupted = total - outcome.uploaded.len() - outcome.failed.len();
    outcome.bytes_read = ctx.bytes_read();
    outcome
}

/// Successes, files that changed (with why), and failures of one pass.
type PassResult = (Vec<Uploaded>, Vec<(Job, String)>, Vec<Failed>);

/// Tasks of one side of a pass, each remembered with its job so that an
/// outcome (a panic included) always comes back with the job it concerns.
struct Tasks {
    set: JoinSet<Result<Uploaded, JobError>>,
    jobs: HashMap<Id, Arc<Job>>,
    done: Vec<(Arc<Job>, Result<Uploaded, JobError>)>,
}

impl Tasks {
    fn new() -> Self {
        Self {
            set: JoinSet::new(),
            jobs: HashMap::new(),
            done: Vec::new(),
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
            self.done.push((job, result));
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

    async fn finish(mut self, stop: &Stop) -> Vec<(Arc<Job>, Result<Uploaded, JobError>)> {
        self.wait_below(0, stop).await;
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

async fn pass<S: ObjectStore>(ctx: &Arc<Ctx<S>>, jobs: Vec<Job>) -> PassResult {
    let threshold = ctx.settings.multipart_threshold;
    let (small, large): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.size < threshold);
    let (a, b) = tokio::join!(small_side(ctx, small), large_side(ctx, large));
    let mut out: PassResult = (Vec::new(), Vec::new(), Vec::new());
    for (job, result) in a.into_iter().chain(b) {
        match result {
            Ok(u) => out.0.push(u),
            Err(JobError::Changed(why)) => out.1.push((Arc::unwrap_or_clone(job), why)),
            Err(JobError::Interrupted) => {}
            Err(e) => {
                let error = e.message();
                ctx.progress.object_failed();
                ctx.record_failed(&job, &error);
                out.2.push(job.failed(error));
            }
        }
    }
    out
}

/// Small files: the request slot and the memory are taken before a task is
/// spawned, so no more than `concurrency` small uploads exist at once.
async fn small_side<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    jobs: Vec<Job>,
) -> Vec<(Arc<Job>, Result<Uploaded, JobError>)> {
    let mut tasks = Tasks::new();
    for job in jobs {
        if ctx.halted() {
            break;
        }
        let permits = async {
            let slot = ctx.permits.request().await?;
            Ok::<_, JobError>((slot, ctx.permits.memory(job.size).await?))
        };
        let (slot, memory) = tokio::select! {
            p = permits => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = ctx.stop.cancelled() => break,
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
    tasks.finish(&ctx.stop).await
}

/// Large files: `large_files` at once; their parts share the request slots.
async fn large_side<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    jobs: Vec<Job>,
) -> Vec<(Arc<Job>, Result<Uploaded, JobError>)> {
    let slots = Arc::new(Semaphore::new(ctx.settings.large_files.max(1)));
    let mut tasks = Tasks::new();
    for job in jobs {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = ctx.stop.cancelled() => break,
        };
        if ctx.halted() {
            break;
        }
        let (c, job) = (ctx.clone(), Arc::new(job));
        let j = job.clone();
        tasks.spawn(job, async move {
            let r = multipart::put_multipart(&c, &j).await;
            drop(slot);
            r
        });
        tasks.reap();
    }
    tasks.finish(&ctx.stop).await
}

#[cfg(test)]
mod tests;
