//! The upload engine: puts every planned object, streaming, in parallel,
//! within fixed limits, and proves each one arrived.
//!
//! Limits: one semaphore bounds requests in flight (`--concurrency`), shared
//! by small files and parts, so a tree of thumbnails and a tree of videos
//! both keep the pipe full; a second bounds the bytes held in buffers
//! (`--max-memory`), so memory stays flat whatever the file count or sizes.
//! File reads and hashing run on the blocking pool, never on the runtime.
//!
//! Small files (below the multipart threshold) are read once: the read
//! computes the SHA-256 (for the `sha256` metadata) and the request checksum
//! together. Large files need their SHA-256 before CreateMultipartUpload (it
//! goes in the metadata), so unless dedup already hashed them they are
//! hashed first; their parts are then read by position, each part carrying
//! its own checksum, and the whole-object checksum is combined from them.
//!
//! A file that changes while it is read (size or mtime before and after, or
//! content that no longer matches its hash) is never recorded as uploaded:
//! it is retried once at the end of the run, then reported.

use std::collections::HashMap;
use std::io::Read as _;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest as _, Md5};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

mod buffers;

use self::buffers::BufferPool;
use crate::checksum::{self, Algorithm, Summer};
use crate::dedup::{Digests, Hasher};
use crate::faults;
use crate::journal::{FileState, PartRow, Record, Recorder, UploadRow};
use crate::plan::PartLayout;
use crate::report::TransferProgress;
use crate::store::{
    DonePart, ErrorKind, ListedPart, NewObject, ObjectOptions, Store, StoreError, Written,
};
use crate::types::UploadId;
use crate::verify::{SHA256_METADATA, SOURCE_PATH_METADATA};

/// Buffers are accounted in units of this many bytes.
const MEMORY_UNIT: u64 = 64 * 1024;

/// Small-file read buffers: allocated with at least this capacity (most
/// shop images fit), and kept for reuse up to `SMALL_BUFFER_MAX`, one per
/// request slot but no more than the memory budget holds, so idle buffers
/// never exceed `--max-memory` (16 MiB in the usual case at the defaults).
const SMALL_BUFFER_MIN: usize = 256 * 1024;
const SMALL_BUFFER_MAX: usize = 1024 * 1024;

/// How many small-file buffers the pool keeps.
fn small_buffers_kept(settings: &UploadSettings) -> usize {
    let by_budget = effective_memory(settings) / SMALL_BUFFER_MAX as u64;
    settings.concurrency.min(by_budget as usize).max(1)
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub algorithm: Algorithm,
    pub concurrency: usize,
    /// Bytes of file data held in memory at most.
    pub max_memory: u64,
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Large files uploading at once (their parts share `concurrency`).
    pub large_files: usize,
    pub hash_threads: usize,
    pub options: ObjectOptions,
}

/// One object to upload.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index of the object in the plan.
    pub object: u32,
    pub rel: Arc<str>,
    pub key: String,
    pub content_type: String,
    pub size: u64,
    pub mtime_ns: i64,
    /// Known when dedup or the existence check already hashed the file.
    pub digests: Option<Digests>,
    /// Refuse to replace an object that appeared after planning.
    pub must_not_exist: bool,
    /// A multipart upload of this key that an earlier run began.
    pub resume: Option<UploadRow>,
}

/// How an object was proven to hold the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// The server returned, in its answer to the write, the checksum we
    /// computed (no extra request).
    ChecksumInResponse,
    /// HeadObject returned the checksum we computed.
    ChecksumInHead,
    /// The ETag equals the MD5 (or MD5 of part MD5s) we computed.
    Etag,
}

impl Verification {
    pub fn name(self) -> &'static str {
        match self {
            Self::ChecksumInResponse => "checksum_in_response",
            Self::ChecksumInHead => "checksum_in_head",
            Self::Etag => "etag",
        }
    }
}

/// A successful upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub object: u32,
    pub digests: Digests,
    pub verification: Verification,
    pub bytes: u64,
}

/// A failed upload.
#[derive(Debug, Clone)]
pub struct Failed {
    pub object: u32,
    pub path: Arc<str>,
    pub error: String,
}

#[derive(Debug)]
enum JobError {
    /// The file changed while being read: worth one more try.
    Changed(String),
    /// Failed for good (checksum rejected, refused, ...): a multipart
    /// upload is aborted.
    Failed(String),
    /// Failed after the SDK's retries on a network or server problem: a
    /// multipart upload is kept, and the next run resumes it.
    Transient(String),
    /// Stopped on request (Ctrl-C): nothing is aborted.
    Interrupted,
}

/// A request to stop: set by the first Ctrl-C or SIGTERM. Work in flight
/// finishes; nothing new starts.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    requested: Arc<std::sync::atomic::AtomicBool>,
    uploading: Arc<std::sync::atomic::AtomicBool>,
}

impl Stop {
    pub fn request(&self) {
        self.requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.requested.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks the start of the upload phase (from then on a stop is graceful).
    pub fn uploading(&self) {
        self.uploading
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_uploading(&self) -> bool {
        self.uploading.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What a run of the engine did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub uploaded: Vec<Uploaded>,
    pub failed: Vec<Failed>,
    /// Objects not finished because of a stop request.
    pub interrupted: usize,
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e.kind {
            ErrorKind::Precondition => Self::Failed(format!(
                "{e} (an object appeared under this key during the run; run again to re-plan)"
            )),
            ErrorKind::Transient | ErrorKind::Unreachable | ErrorKind::Throttled => {
                Self::Transient(e.message)
            }
            _ => Self::Failed(e.message),
        }
    }
}

struct Ctx {
    store: Store,
    root: PathBuf,
    settings: UploadSettings,
    requests: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    buffers: Arc<BufferPool>,
    small_buffers: Arc<BufferPool>,
    cpu: Arc<Semaphore>,
    progress: TransferProgress,
    journal: Option<Recorder>,
    stop: Stop,
}

impl Ctx {
    fn record(&self, r: Record) {
        if let Some(j) = &self.journal {
            j.record(r);
        }
    }

    fn record_verified(&self, job: &Job, v: Verification) {
        self.record(Record::KeyState {
            key: job.key.clone(),
            state: FileState::Verified,
            verification: Some(v.name().to_string()),
            error: None,
        });
    }
}

fn units(bytes: u64) -> u32 {
    bytes.div_ceil(MEMORY_UNIT).max(1) as u32
}

/// The budget never blocks a single buffer forever.
pub fn effective_memory(settings: &UploadSettings) -> u64 {
    let biggest = settings.multipart_threshold.max(settings.part_size);
    settings.max_memory.max(biggest)
}

/// Uploads every job; returns successes and failures (in no fixed order).
pub async fn run(
    store: &Store,
    root: &Path,
    jobs: Vec<Job>,
    settings: &UploadSettings,
    progress: TransferProgress,
    journal: Option<Recorder>,
    stop: Stop,
) -> Outcome {
    let ctx = Arc::new(Ctx {
        store: store.clone(),
        root: root.to_path_buf(),
        settings: settings.clone(),
        requests: Arc::new(Semaphore::new(settings.concurrency)),
        memory: Arc::new(Semaphore::new(units(effective_memory(settings)) as usize)),
        buffers: BufferPool::new(settings.part_size as usize, effective_memory(settings)),
        small_buffers: BufferPool::sized(
            SMALL_BUFFER_MIN,
            SMALL_BUFFER_MAX,
            small_buffers_kept(settings),
        ),
        cpu: Arc::new(Semaphore::new(settings.hash_threads.max(1))),
        progress,
        journal,
        stop,
    });
    let total = jobs.len();
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut queue = jobs;
    for attempt in 0..2 {
        let (ok, changed, bad) = pass(&ctx, std::mem::take(&mut queue)).await;
        done.extend(ok);
        failed.extend(bad);
        if changed.is_empty() || ctx.stop.requested() {
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
            failed.extend(changed.into_iter().map(|(job, why)| {
                let error = format!("{why}; not uploaded (it will be retried by the next run)");
                ctx.record(failed_record(&job, &error));
                Failed {
                    object: job.object,
                    path: job.rel.clone(),
                    error,
                }
            }));
        }
    }
    ctx.progress.finish();
    let interrupted = total - done.len() - failed.len();
    Outcome {
        uploaded: done,
        failed,
        interrupted,
    }
}

fn failed_record(job: &Job, error: &str) -> Record {
    Record::KeyState {
        key: job.key.clone(),
        state: FileState::Failed,
        verification: None,
        error: Some(error.to_string()),
    }
}

type PassResult = (Vec<Uploaded>, Vec<(Job, String)>, Vec<Failed>);

async fn pass(ctx: &Arc<Ctx>, jobs: Vec<Job>) -> PassResult {
    let threshold = ctx.settings.multipart_threshold;
    let (small, large): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.size < threshold);

    let small_side = {
        let ctx = ctx.clone();
        async move {
            let mut set: JoinSet<(Job, Result<Uploaded, JobError>)> = JoinSet::new();
            let mut results = Vec::new();
            for job in small {
                if ctx.stop.requested() {
                    break;
                }
                // Take the request slot and the memory before spawning, so
                // no more than `concurrency` small uploads exist at once.
                let Ok(req) = ctx.requests.clone().acquire_owned().await else {
                    break;
                };
                let Ok(mem) = ctx.memory.clone().acquire_many_owned(units(job.size)).await else {
                    break;
                };
                let c = ctx.clone();
                set.spawn(async move {
                    let r = put_small(&c, &job, req, mem).await;
                    (job, r)
                });
                while set.len() > ctx.settings.concurrency * 2 {
                    if let Some(r) = set.join_next().await {
                        results.push(r);
                    }
                }
            }
            while let Some(r) = set.join_next().await {
                results.push(r);
            }
            results
        }
    };
    let large_side = {
        let ctx = ctx.clone();
        async move {
            let slots = Arc::new(Semaphore::new(ctx.settings.large_files.max(1)));
            let mut set: JoinSet<(Job, Result<Uploaded, JobError>)> = JoinSet::new();
            let mut results = Vec::new();
            for job in large {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                if ctx.stop.requested() {
                    break;
                }
                let c = ctx.clone();
                set.spawn(async move {
                    let r = put_multipart(&c, &job).await;
                    drop(slot);
                    (job, r)
                });
                while let Some(r) = set.try_join_next() {
                    results.push(r);
                }
            }
            while let Some(r) = set.join_next().await {
                results.push(r);
            }
            results
        }
    };
    let (a, b) = tokio::join!(small_side, large_side);
    let mut out: PassResult = (Vec::new(), Vec::new(), Vec::new());
    for joined in a.into_iter().chain(b) {
        match joined {
            Ok((_, Ok(u))) => out.0.push(u),
            Ok((job, Err(JobError::Changed(why)))) => out.1.push((job, why)),
            Ok((_, Err(JobError::Interrupted))) => {}
            Ok((job, Err(JobError::Failed(error) | JobError::Transient(error)))) => {
                ctx.progress.file_failed();
                ctx.record(failed_record(&job, &error));
                out.2.push(Failed {
                    object: job.object,
                    path: job.rel.clone(),
                    error,
                })
            }
            Err(e) => tracing::error!("an upload task panicked: {e}"),
        }
    }
    out
}

/// (size, mtime) of a file now.
fn stat(path: &Path) -> Result<(u64, i64), JobError> {
    let m = std::fs::metadata(path)
        .map_err(|e| JobError::Failed(format!("cannot read the file: {e}")))?;
    Ok((
        m.len(),
        m.mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(m.mtime_nsec()),
    ))
}

fn unchanged(job: &Job, now: (u64, i64), when: &str) -> Result<(), JobError> {
    if now != (job.size, job.mtime_ns) {
        return Err(JobError::Changed(format!(
            "the file changed {when} (size {} -> {}, mtime changed: {})",
            job.size,
            now.0,
            now.1 != job.mtime_ns
        )));
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobError> {
    let _cpu = ctx
        .cpu
        .acquire()
        .await
        .map_err(|_| JobError::Failed("shutting down".into()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| JobError::Failed(format!("a reader thread failed: {e}")))
}

fn metadata(job: &Job, digests: &Digests) -> [(&'static str, String); 2] {
    [
        (SHA256_METADATA, digests.sha256.to_hex()),
        (SOURCE_PATH_METADATA, crate::urls::encode_path(&job.rel)),
    ]
}

fn same_digests(job: &Job, got: &Digests) -> Result<(), JobError> {
    match &job.digests {
        Some(known) if known != got => Err(JobError::Changed(
            "the file's content changed since it was hashed during planning".into(),
        )),
        _ => Ok(()),
    }
}

/// Reads a small file whole into a pooled buffer and computes its digests
/// and request checksum in the same pass. A size or mtime change after this
/// read is caught by the caller's stat; one byte more than planned is read,
/// so growth is seen here too.
fn read_small(
    path: &Path,
    size: u64,
    algorithm: Algorithm,
    pool: &Arc<BufferPool>,
) -> Result<(Bytes, Digests, checksum::Value), JobError> {
    let mut buf = pool.take_empty(size as usize + 1);
    std::fs::File::open(path)
        .and_then(|f| f.take(size + 1).read_to_end(buf.as_mut_vec()))
        .map_err(|e| JobError::Failed(format!("cannot read the file: {e}")))?;
    let data = buf.as_ref();
    let got = data.len() as u64;
    if got != size {
        return Err(JobError::Changed(if got > size {
            format!("the file grew beyond its planned {size} bytes")
        } else {
            format!("the file is now {got} bytes, not {size}")
        }));
    }
    let mut h = Hasher::new();
    h.update(data);
    let digests = h.finish();
    let sum = match algorithm {
        Algorithm::Crc64nvme => checksum::Value::Crc64(digests.crc64.0),
        Algorithm::Sha256 => checksum::Value::Sha256(digests.sha256.0),
        Algorithm::Crc32c => Summer::of(algorithm, data).value,
    };
    Ok((buf.freeze(), digests, sum))
}

async fn put_small(
    ctx: &Ctx,
    job: &Job,
    _req: OwnedSemaphorePermit,
    _mem: OwnedSemaphorePermit,
) -> Result<Uploaded, JobError> {
    let path = job.path(&ctx.root);
    let algorithm = ctx.settings.algorithm;
    let size = job.size;
    let pool = ctx.small_buffers.clone();
    let (body, digests, sum) =
        blocking(ctx, move || read_small(&path, size, algorithm, &pool)).await??;
    unchanged(job, stat(&job.path(&ctx.root))?, "while being read")?;
    same_digests(job, &digests)?;

    let local = sum.to_base64();
    let meta = metadata(job, &digests);
    let obj = job.new_object(&meta, &ctx.settings.options);
    let send = faults::maybe_corrupt(&job.key, body.clone());
    let written = ctx
        .store
        .put_object(&obj, send, algorithm, &local, job.must_not_exist)
        .await?;
    let verification = confirm(ctx, job, &written, &local, || md5_hex(&body)).await?;
    ctx.record(Record::Digests {
        path: job.rel.to_string(),
        digests,
    });
    ctx.record_verified(job, verification);
    ctx.progress.file_done(size);
    Ok(Uploaded {
        object: job.object,
        digests,
        verification,
        bytes: size,
    })
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Proves the object holds our bytes, spending a request only when the
/// write's answer did not already prove it.
async fn confirm(
    ctx: &Ctx,
    job: &Job,
    written: &Written,
    local: &str,
    etag: impl FnOnce() -> String,
) -> Result<Verification, JobError> {
    let alg = ctx.settings.algorithm.name();
    if let Some(remote) = &written.checksum {
        return if remote == local {
            Ok(Verification::ChecksumInResponse)
        } else {
            Err(JobError::Failed(format!(
                "the server stored {alg} {remote}, but the file's is {local}"
            )))
        };
    }
    let head =
        ctx.store.head(&job.key).await?.ok_or_else(|| {
            JobError::Failed("the object is missing right after its upload".into())
        })?;
    let from_head = match ctx.settings.algorithm {
        Algorithm::Crc64nvme => head.checksum_crc64nvme,
        Algorithm::Sha256 => head.checksum_sha256,
        Algorithm::Crc32c => head.checksum_crc32c,
    };
    if head.size != job.size {
        return Err(JobError::Failed(format!(
            "the object holds {} bytes, the file {}",
            head.size, job.size
        )));
    }
    if let Some(remote) = from_head {
        return if remote == local {
            Ok(Verification::ChecksumInHead)
        } else {
            Err(JobError::Failed(format!(
                "HeadObject shows {alg} {remote}, but the file's is {local}"
            )))
        };
    }
    let expected = etag();
    match head.etag.or_else(|| written.etag.clone()) {
        Some(e) if e.trim_matches('"') == expected => Ok(Verification::Etag),
        Some(e) => Err(JobError::Failed(format!(
            "the server returned no checksum and its ETag {e} is not the expected {expected}"
        ))),
        None => Err(JobError::Failed(
            "the server returned neither a checksum nor an ETag to verify".into(),
        )),
    }
}

impl Job {
    fn path(&self, root: &Path) -> PathBuf {
        root.join(&*self.rel)
    }

    /// What PutObject or CreateMultipartUpload create for this job.
    fn new_object<'a>(
        &'a self,
        metadata: &'a [(&'static str, String)],
        options: &'a ObjectOptions,
    ) -> NewObject<'a> {
        NewObject {
            key: &self.key,
            content_type: &self.content_type,
            metadata,
            options,
        }
    }
}

/// A part's data, read and summed on the blocking pool.
struct ReadPart {
    body: Bytes,
    sum: checksum::Part,
    crc64: checksum::Part,
}

fn read_part(
    path: &Path,
    start: u64,
    len: u64,
    algorithm: Algorithm,
    pool: &Arc<BufferPool>,
) -> Result<ReadPart, JobError> {
    let file = std::fs::File::open(path)
        .map_err(|e| JobError::Failed(format!("cannot read the file: {e}")))?;
    let mut pooled = pool.take(len as usize);
    let buf = pooled.as_mut_slice();
    file.read_exact_at(buf, start).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            JobError::Changed("the file became shorter while being uploaded".into())
        } else {
            JobError::Failed(format!("cannot read the file: {e}"))
        }
    })?;
    let crc64 = Summer::of(Algorithm::Crc64nvme, buf);
    let sum = if algorithm == Algorithm::Crc64nvme {
        crc64
    } else {
        Summer::of(algorithm, buf)
    };
    Ok(ReadPart {
        body: pooled.freeze(),
        sum,
        crc64,
    })
}

async fn put_multipart(ctx: &Arc<Ctx>, job: &Job) -> Result<Uploaded, JobError> {
    let path = job.path(&ctx.root);
    unchanged(job, stat(&path)?, "since the walk")?;
    let digests = match job.digests {
        Some(d) => d,
        None => {
            let p = path.clone();
            let size = job.size;
            let hashing = ctx.progress.hashing(&job.rel, size);
            let h = hashing.clone();
            let hashed = blocking(ctx, move || crate::dedup::hash_file(&p, size, &h)).await;
            hashing.finish();
            let d = hashed?
                .map_err(|e| JobError::Changed(format!("the file could not be hashed: {e}")))?;
            ctx.record(Record::Digests {
                path: job.rel.to_string(),
                digests: d,
            });
            d
        }
    };
    let layout = PartLayout::new(job.size, ctx.settings.part_size)
        .map_err(|e| JobError::Failed(e.to_string()))?;
    let algorithm = ctx.settings.algorithm;

    // Resume what an earlier run began, if the file is the same file.
    let (upload, reuse) = match resumable(ctx, job, &digests, layout).await? {
        Some(r) => r,
        None => {
            let meta = metadata(job, &digests);
            let obj = job.new_object(&meta, &ctx.settings.options);
            let id = {
                let _req = ctx
                    .requests
                    .acquire()
                    .await
                    .map_err(|_| JobError::Failed("shutting down".into()))?;
                ctx.store.create_multipart(&obj, algorithm).await?
            };
            ctx.record(Record::UploadStarted(UploadRow {
                key: job.key.clone(),
                path: job.rel.to_string(),
                upload_id: id.clone(),
                part_size: layout.part_size,
                size: job.size,
                mtime_ns: job.mtime_ns,
                sha256: digests.sha256,
                started_at: crate::journal::now(),
                parts: Vec::new(),
            }));
            (id, HashMap::new())
        }
    };

    let bar = ctx.progress.large_file(&job.rel, job.size);
    let result = upload_parts(ctx, job, &path, &upload, layout, &bar, reuse).await;
    bar.finish();
    let sent = match result {
        Ok(r) => r,
        Err(e) => return Err(give_up(ctx, job, &upload, e).await),
    };
    let parts: Vec<DonePart> = sent.iter().map(|p| p.done.clone()).collect();
    let sums: Vec<checksum::Part> = sent.iter().map(|p| p.sum).collect();
    let crcs: Vec<checksum::Part> = sent.iter().map(|p| p.crc64).collect();
    let md5s: Vec<Option<[u8; 16]>> = sent.iter().map(|p| p.md5).collect();
    // The parts we sent must add up to the file we hashed.
    let combined = checksum::multipart_value(Algorithm::Crc64nvme, &crcs);
    if combined != digests.crc64.to_base64() {
        let e = JobError::Changed("the file's content changed while it was being uploaded".into());
        return Err(give_up(ctx, job, &upload, e).await);
    }
    if let Err(e) = unchanged(job, stat(&path)?, "while being uploaded") {
        return Err(give_up(ctx, job, &upload, e).await);
    }
    let local = checksum::multipart_value(algorithm, &sums);
    let full = algorithm.full_object().then_some(local.as_str());
    faults::crash_point("before-complete");
    let written = {
        let _req = ctx
            .requests
            .acquire()
            .await
            .map_err(|_| JobError::Failed("shutting down".into()))?;
        ctx.store
            .complete_multipart(
                &job.key,
                &upload,
                &parts,
                algorithm,
                full,
                job.must_not_exist,
            )
            .await
    };
    let written = match written {
        Ok(w) => w,
        Err(e) => return Err(give_up(ctx, job, &upload, e.into()).await),
    };
    faults::crash_point("after-complete");
    let verification = confirm(ctx, job, &written, &local, || multipart_etag(&md5s)).await;
    // Completed: the upload id is spent whatever the check says.
    ctx.record(Record::UploadEnded {
        upload_id: upload.clone(),
    });
    let verification = verification?;
    ctx.record_verified(job, verification);
    ctx.progress.file_done(0);
    Ok(Uploaded {
        object: job.object,
        digests,
        verification,
        bytes: job.size,
    })
}

/// Ends a multipart upload that cannot complete now: aborted when it never
/// will (bad data, a changed file), kept for the next run when a network or
/// server problem or a stop request interrupted it.
async fn give_up(ctx: &Ctx, job: &Job, upload: &UploadId, e: JobError) -> JobError {
    match e {
        JobError::Interrupted | JobError::Transient(_) => {}
        JobError::Changed(_) | JobError::Failed(_) => {
            abort(ctx, job, upload).await;
            ctx.record(Record::UploadEnded {
                upload_id: upload.clone(),
            });
        }
    }
    e
}

/// The upload an earlier run left for this key, if it can be continued:
/// same file (size, mtime, SHA-256), same part size, and the server still
/// knows it. Parts are taken from the server's ListParts (the truth), one
/// per part number, and reused only where the journal recorded the same
/// ETag and size; everything else is sent again. A stale upload is aborted.
async fn resumable(
    ctx: &Ctx,
    job: &Job,
    digests: &Digests,
    layout: PartLayout,
) -> Result<Option<(UploadId, HashMap<u32, SentPart>)>, JobError> {
    let Some(r) = &job.resume else {
        return Ok(None);
    };
    let same_file = r.size == job.size && r.mtime_ns == job.mtime_ns && r.sha256 == digests.sha256;
    if !same_file || r.part_size != layout.part_size {
        tracing::info!(
            "{}: the file changed since its upload began; starting over",
            job.rel
        );
        abort(ctx, job, &r.upload_id).await;
        ctx.record(Record::UploadEnded {
            upload_id: r.upload_id.clone(),
        });
        return Ok(None);
    }
    let listed = {
        let _req = ctx
            .requests
            .acquire()
            .await
            .map_err(|_| JobError::Failed("shutting down".into()))?;
        ctx.store.list_parts(&job.key, &r.upload_id).await?
    };
    let Some(listed) = listed else {
        tracing::info!(
            "{}: the server no longer knows upload {}; starting over",
            job.rel,
            r.upload_id
        );
        ctx.record(Record::UploadEnded {
            upload_id: r.upload_id.clone(),
        });
        return Ok(None);
    };
    let mut on_server: HashMap<u32, Vec<&ListedPart>> = HashMap::new();
    for p in &listed {
        on_server.entry(p.number).or_default().push(p);
    }
    let mut reuse = HashMap::new();
    for p in &r.parts {
        if p.number == 0 || u64::from(p.number) > layout.parts {
            continue;
        }
        let (start, end) = layout.range(u64::from(p.number));
        let there = on_server
            .get(&p.number)
            .is_some_and(|ps| ps.iter().any(|l| l.etag == p.etag && l.size == p.size));
        let Some(value) = checksum::Value::from_base64(ctx.settings.algorithm, &p.checksum) else {
            continue;
        };
        if there && p.size == end - start {
            reuse.insert(
                p.number,
                SentPart {
                    done: DonePart {
                        number: p.number,
                        etag: p.etag.clone(),
                        checksum: p.checksum.clone(),
                    },
                    sum: checksum::Part { value, len: p.size },
                    crc64: checksum::Part {
                        value: checksum::Value::Crc64(p.crc64),
                        len: p.size,
                    },
                    md5: None,
                },
            );
        }
    }
    tracing::info!(
        "{}: resuming upload {} with {} of {} parts already there",
        job.rel,
        r.upload_id,
        reuse.len(),
        layout.parts
    );
    Ok(Some((r.upload_id.clone(), reuse)))
}

/// `md5(concat(part md5s))-N`, the ETag S3 gives a multipart object.
fn multipart_etag(md5s: &[Option<[u8; 16]>]) -> String {
    let mut outer = Md5::new();
    for m in md5s.iter().flatten() {
        outer.update(m);
    }
    let hex: String = outer
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}-{}", md5s.len())
}

async fn abort(ctx: &Ctx, job: &Job, upload: &UploadId) {
    if let Err(e) = ctx.store.abort_multipart(&job.key, upload).await {
        tracing::warn!(
            "could not abort the multipart upload of {}: {e} (`mediashift gc` cleans it up)",
            job.key
        );
    }
}

/// A part the server acknowledged, with what we computed from its bytes.
#[derive(Debug, Clone)]
struct SentPart {
    done: DonePart,
    /// The checksum of the run's algorithm.
    sum: checksum::Part,
    /// Always CRC64NVME, to compare the parts with the hashed file.
    crc64: checksum::Part,
    /// Only when the server answered without a checksum (ETag check).
    md5: Option<[u8; 16]>,
}

async fn upload_parts(
    ctx: &Arc<Ctx>,
    job: &Job,
    path: &Path,
    upload: &UploadId,
    layout: PartLayout,
    bar: &crate::report::Phase,
    mut reuse: HashMap<u32, SentPart>,
) -> Result<Vec<SentPart>, JobError> {
    let mut set: JoinSet<Result<SentPart, JobError>> = JoinSet::new();
    let n = layout.parts as usize;
    let mut parts: Vec<Option<SentPart>> = vec![None; n];
    let mut first_error = None;
    for number in 1..=layout.parts {
        let (start, end) = layout.range(number);
        let len = end - start;
        if let Some(p) = reuse.remove(&(number as u32)) {
            bar.inc(len);
            ctx.progress.bytes(len);
            parts[number as usize - 1] = Some(p);
            continue;
        }
        if ctx.stop.requested() {
            first_error.get_or_insert(JobError::Interrupted);
            break;
        }
        // Wait for a request slot and the memory before reading the part.
        let req = ctx
            .requests
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| JobError::Failed("shutting down".into()))?;
        let mem = ctx
            .memory
            .clone()
            .acquire_many_owned(units(len))
            .await
            .map_err(|_| JobError::Failed("shutting down".into()))?;
        let (c, p, u, key, bar) = (
            ctx.clone(),
            path.to_path_buf(),
            upload.clone(),
            job.key.clone(),
            bar.clone(),
        );
        set.spawn(async move {
            let _held = (req, mem);
            let alg = c.settings.algorithm;
            let pool = c.buffers.clone();
            let read = blocking(&c, move || read_part(&p, start, len, alg, &pool)).await??;
            let local = read.sum.value.to_base64();
            let body = faults::maybe_corrupt(&key, read.body.clone());
            let w = c
                .store
                .upload_part(&key, &u, number as u32, body, alg, &local)
                .await?;
            let etag = w.etag.clone().ok_or_else(|| {
                JobError::Failed(format!("UploadPart #{number}: no ETag in the answer"))
            })?;
            let mut md5 = None;
            match &w.checksum {
                Some(remote) if *remote != local => {
                    return Err(JobError::Failed(format!(
                        "part {number}: the server stored {} {remote}, but the part's is {local}",
                        alg.name()
                    )));
                }
                Some(_) => {}
                None => {
                    // No checksum in the answer: the part's ETag is its MD5.
                    let digest: [u8; 16] = Md5::digest(&read.body).into();
                    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                    if etag.trim_matches('"') != hex {
                        return Err(JobError::Failed(format!(
                            "part {number}: ETag {etag} is not the part's MD5 {hex}"
                        )));
                    }
                    md5 = Some(digest);
                }
            }
            faults::crash_point("part-acked");
            c.record(Record::PartDone {
                upload_id: u.clone(),
                part: PartRow {
                    number: number as u32,
                    size: len,
                    checksum: local.clone(),
                    crc64: match read.crc64.value {
                        checksum::Value::Crc64(v) => v,
                        _ => 0,
                    },
                    etag: etag.clone(),
                },
            });
            bar.inc(len);
            c.progress.bytes(len);
            Ok(SentPart {
                done: DonePart {
                    number: number as u32,
                    etag,
                    checksum: local,
                },
                sum: read.sum,
                crc64: read.crc64,
                md5,
            })
        });
        while let Some(r) = set.try_join_next() {
            collect(r, &mut parts, &mut first_error);
        }
        if first_error.is_some() {
            break;
        }
    }
    while let Some(r) = set.join_next().await {
        collect(r, &mut parts, &mut first_error);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    parts
        .into_iter()
        .map(|p| p.ok_or_else(|| JobError::Failed("a part went missing".into())))
        .collect()
}

fn collect(
    r: Result<Result<SentPart, JobError>, tokio::task::JoinError>,
    parts: &mut [Option<SentPart>],
    first_error: &mut Option<JobError>,
) {
    match r {
        Ok(Ok(p)) => {
            let i = p.done.number as usize - 1;
            parts[i] = Some(p);
        }
        Ok(Err(e)) => {
            first_error.get_or_insert(e);
        }
        Err(e) => {
            first_error.get_or_insert(JobError::Failed(format!("a part task failed: {e}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        let a: [u8; 16] = Md5::digest(b"a").into();
        let b: [u8; 16] = Md5::digest(b"b").into();
        let mut both = a.to_vec();
        both.extend_from_slice(&b);
        assert_eq!(
            multipart_etag(&[Some(a), Some(b)]),
            format!("{}-2", md5_hex(&both))
        );
    }

    #[test]
    fn a_small_file_is_read_whole_and_a_size_change_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        std::fs::write(&path, b"twelve bytes").unwrap();
        let pool = BufferPool::sized(4, 64, 2);

        let (body, digests, sum) = read_small(&path, 12, Algorithm::Sha256, &pool).unwrap();
        assert_eq!(body.as_ref(), b"twelve bytes");
        let mut expected = Hasher::new();
        expected.update(b"twelve bytes");
        assert_eq!(digests, expected.finish());
        assert_eq!(sum, checksum::Value::Sha256(digests.sha256.0));
        drop(body);

        // Planned at 10 bytes: the file grew. Planned at 20: it shrank.
        let grew = read_small(&path, 10, Algorithm::Crc64nvme, &pool);
        assert!(
            matches!(grew, Err(JobError::Changed(m)) if m.contains("grew beyond its planned 10"))
        );
        let shrank = read_small(&path, 20, Algorithm::Crc64nvme, &pool);
        assert!(matches!(shrank, Err(JobError::Changed(m)) if m.contains("now 12 bytes, not 20")));
        let gone = read_small(&dir.path().join("gone.jpg"), 1, Algorithm::Crc64nvme, &pool);
        assert!(matches!(gone, Err(JobError::Failed(m)) if m.contains("cannot read the file")));
    }

    #[test]
    fn memory_budget_fits_the_largest_buffer() {
        let s = UploadSettings {
            algorithm: Algorithm::Crc64nvme,
            concurrency: 4,
            max_memory: 1,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            large_files: 1,
            hash_threads: 1,
            options: ObjectOptions::default(),
        };
        assert_eq!(effective_memory(&s), 16 << 20);
        assert_eq!(units(1), 1);
        assert_eq!(units(0), 1);
        assert_eq!(units(MEMORY_UNIT + 1), 2);
    }

    #[test]
    fn idle_small_buffers_stay_within_the_memory_budget() {
        let mut s = UploadSettings {
            algorithm: Algorithm::Crc64nvme,
            concurrency: 64,
            max_memory: 128 << 20,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            large_files: 1,
            hash_threads: 1,
            options: ObjectOptions::default(),
        };
        assert_eq!(small_buffers_kept(&s), 64, "one per request slot");
        s.max_memory = 32 << 20;
        assert_eq!(small_buffers_kept(&s), 32, "no more than the budget holds");
        s.concurrency = 1;
        assert_eq!(small_buffers_kept(&s), 1);
    }
}
