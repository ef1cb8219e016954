//! The upload engine: puts every planned object, streaming, in parallel,
//! within fixed limits, and proves each one arrived.
//!
//! `run` schedules: small files and large files on two sides that share
//! the run's permits (`permits`), a second pass for files that changed
//! while being read, then the server-side copies (a duplicate's own object
//! under `preserve`, once its source is in place), then an upload for each
//! duplicate the server could not copy; every task's outcome, a panic
//! included, is accounted to its file. The rest is split by
//! responsibility: `job` (what goes in and comes out), `context` (what the
//! tasks share), `read` (file reads and change detection), `single` (one
//! PutObject), `multipart` (parts and completion), `resume` (continuing an
//! earlier run's upload), `parts` (multipart state as plain data),
//! `copy` (server-side copies), `confirm` (the proof after each write) and
//! `buffers` (reused read buffers).
//!
//! The engine sees the store only as an [`ObjectStore`], so its unit tests
//! run against an in-memory one.

mod buffers;
mod confirm;
mod context;
mod copy;
mod job;
mod multipart;
mod parts;
mod permits;
mod read;
mod resume;
mod single;
mod whole;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{Id, JoinError, JoinSet};

pub use self::job::{CopyFrom, Failed, Job, Outcome, UploadSettings, Uploaded};

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
    let jobs = jobs.into_iter();
    let first = pass(&ctx, jobs.clone().filter(|j| j.copy.is_none())).await;
    let mut outcome = Outcome::default();
    let (mut changed, _) = absorb(&mut outcome, first);
    if !changed.is_empty() && !ctx.halted() {
        tracing::warn!(
            "{} file(s) changed while being uploaded; trying them once more",
            changed.len()
        );
        // Digests known from planning stay: a file whose duplicates were
        // matched to its old content must not be uploaded with new content.
        let again: Vec<Job> = changed.into_iter().map(|(job, _)| job).collect();
        let second = pass(&ctx, again.into_iter()).await;
        changed = absorb(&mut outcome, second).0;
    }
    // Changed twice: left for the next run.
    settle_changed(&ctx, changed, &mut outcome);

    // Duplicates' own objects, copied once their sources are in place.
    let placed: HashSet<u32> = outcome.uploaded.iter().map(|u| u.object).collect();
    let copies = copy_side(&ctx, jobs.filter(|j| j.copy.is_some()), &placed).await;
    let (changed, fallback) = absorb(&mut outcome, copies);
    settle_changed(&ctx, changed, &mut outcome);
    // Those the server could not copy, and those whose source this run
    // could not upload: from their own files.
    if !fallback.is_empty() && !ctx.halted() {
        if let Some((_, why)) = fallback.iter().find(|(_, why)| !why.is_empty()) {
            tracing::warn!(
                "{} duplicate(s) are uploaded from their own files (a copy in the bucket could not be made; the first: {why})",
                fallback.len()
            );
        }
        let jobs: Vec<Job> = fallback.into_iter().map(|(job, _)| job).collect();
        let last = pass(&ctx, jobs.into_iter()).await;
        let (changed, _) = absorb(&mut outcome, last);
        settle_changed(&ctx, changed, &mut outcome);
    } else {
        outcome.interrupted += fallback.len();
    }
    ctx.progress.finish();
    outcome.bytes_read = ctx.bytes_read();
    outcome
}

/// Takes a pass's successes, failures and interruptions into `outcome`;
/// hands back the jobs still to settle: those whose file changed, and
/// copies to upload instead (each with why).
fn absorb(outcome: &mut Outcome, r: PassResult) -> (Vec<WithWhy>, Vec<WithWhy>) {
    outcome.uploaded.extend(r.uploaded);
    outcome.failed.extend(r.failed);
    outcome.interrupted += r.interrupted;
    (r.changed, r.fallback)
}

/// Files that changed while being read, with no try left in this run:
/// failed, for the next run to retry (or, after a stop, interrupted).
fn settle_changed<S: ObjectStore>(ctx: &Ctx<S>, changed: Vec<WithWhy>, outcome: &mut Outcome) {
    if ctx.halted() {
        outcome.interrupted += changed.len();
        return;
    }
    outcome.failed.extend(changed.into_iter().map(|(job, why)| {
        let error = format!("{why}; not uploaded (it will be retried by the next run)");
        ctx.record_failed(&job, &error);
        job.failed(error)
    }));
}

/// A job, and why it is not done yet.
type WithWhy = (Job, String);

/// What one pass did: successes, files that changed while being read (with
/// why), failures, and jobs a stop left undone.
#[derive(Default)]
struct PassResult {
    uploaded: Vec<Uploaded>,
    changed: Vec<WithWhy>,
    failed: Vec<Failed>,
    interrupted: usize,
    /// Copy jobs to upload from their own files instead, with why the
    /// server could not copy (empty: their source was not placed).
    fallback: Vec<WithWhy>,
}

impl PassResult {
    fn join(mut self, other: Self) -> Self {
        self.uploaded.extend(other.uploaded);
        self.changed.extend(other.changed);
        self.failed.extend(other.failed);
        self.interrupted += other.interrupted;
        self.fallback.extend(other.fallback);
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

    /// Spawns `task`, which holds `slot` until it ends.
    fn spawn_holding(
        &mut self,
        job: Arc<Job>,
        slot: OwnedSemaphorePermit,
        task: impl Future<Output = Result<Uploaded, JobError>> + Send + 'static,
    ) {
        self.spawn(job, async move {
            let r = task.await;
            drop(slot);
            r
        });
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
            Err(JobError::CannotCopy { why, wrote }) => {
                let mut job = Arc::unwrap_or_clone(job);
                job.copy = None;
                // Replace what the copy left under the key.
                job.must_not_exist &= !wrote;
                self.done.fallback.push((job, why));
            }
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

/// One of `slots` for a task, once free; `None` when the run stops
/// meanwhile (nothing new may start).
async fn task_slot<S>(ctx: &Ctx<S>, slots: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    let slot = tokio::select! {
        s = slots.clone().acquire_owned() => s.ok(),
        () = ctx.stop.cancelled() => None,
    };
    slot.filter(|_| !ctx.halted())
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
        let Some(slot) = task_slot(ctx, &slots).await else {
            left = 1 + jobs.count();
            break;
        };
        let (c, job) = (ctx.clone(), Arc::new(job));
        let j = job.clone();
        tasks.spawn_holding(
            job,
            slot,
            async move { multipart::put_multipart(&c, &j).await },
        );
        tasks.reap();
    }
    tasks.finish(left).await
}

/// Copies: each duplicate's object from its source's, `concurrency` at a
/// time (each call also takes a request slot). A copy whose source this
/// run was to upload and did not (`placed` holds what it did) is handed
/// back to be uploaded from its own file.
async fn copy_side<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    mut jobs: impl Iterator<Item = Job>,
    placed: &HashSet<u32>,
) -> PassResult {
    let slots = Arc::new(Semaphore::new(ctx.settings.concurrency.max(1)));
    let mut tasks = Tasks::new(ctx);
    let mut left = 0;
    while let Some(mut job) = jobs.next() {
        let Some(from) = job.copy.clone() else {
            continue;
        };
        if ctx.halted() {
            left = 1 + jobs.count();
            break;
        }
        if from.uploaded_now && !placed.contains(&from.object) {
            job.copy = None;
            tasks.done.fallback.push((job, String::new()));
            continue;
        }
        let Some(slot) = task_slot(ctx, &slots).await else {
            left = 1 + jobs.count();
            break;
        };
        let (c, job) = (ctx.clone(), Arc::new(job));
        let j = job.clone();
        tasks.spawn_holding(job, slot, async move { copy::copy(&c, &j, &from).await });
        tasks.reap();
    }
    tasks.finish(left).await
}

#[cfg(test)]
mod tests;
