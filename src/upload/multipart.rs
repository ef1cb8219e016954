//! A large file: hashed first (its SHA-256 goes in the metadata, given at
//! CreateMultipartUpload) unless dedup already did, then sent in parts read
//! by position, each carrying its own checksum, then completed with the
//! whole-object checksum combined from the parts, then proven.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::confirm::{already_there, confirm};
use super::context::Ctx;
use super::job::{Job, JobError, Uploaded};
use super::parts::{SentPart, combine};
use super::read::{read_part, unchanged};
use super::resume::{Resumed, resumable};
use crate::checksum;
use crate::digest::{Digests, hash_file};
use crate::faults;
use crate::journal::{Record, UploadRow};
use crate::limits::PartLayout;
use crate::progress::Phase;
use crate::store::{BodyChecksum, DonePart, ObjectStore};
use crate::types::UploadId;
use crate::verify::{How, Local, object_metadata};

pub(super) async fn put_multipart<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    job: &Job,
) -> Result<Uploaded, JobError> {
    let path = job.path(&ctx.root);
    unchanged(job, &path, "since the walk")?;
    let digests = match job.digests {
        Some(d) => d,
        None => hash(ctx, job, &path).await?,
    };
    let layout = PartLayout::new(job.size, ctx.settings.part_size)
        .map_err(|e| JobError::Failed(e.to_string()))?;

    // Resume what an earlier run began, if the file is the same file.
    let (upload, reuse) = match resumable(ctx, job, &digests, layout).await? {
        Resumed::Continue(id, reuse) => (id, reuse),
        Resumed::Fresh => (create(ctx, job, &digests, layout).await?, HashMap::new()),
        Resumed::Completed(how) => return Ok(done(ctx, job, how, None)),
    };

    let bar = ctx.progress.large_file(&job.rel, job.size);
    let result = upload_parts(ctx, job, &path, &upload, layout, &bar, reuse).await;
    bar.finish();
    let sent = match result {
        Ok(r) => r,
        Err(e) => return Err(give_up(ctx, job, &upload, e).await),
    };
    let whole = combine(ctx.settings.algorithm, &sent);
    // The parts we sent must add up to the file we hashed.
    if whole.crc64 != digests.crc64.to_base64() {
        let e = JobError::Changed("the file's content changed while it was being uploaded".into());
        return Err(give_up(ctx, job, &upload, e).await);
    }
    if let Err(e) = unchanged(job, &path, "while being uploaded") {
        return Err(give_up(ctx, job, &upload, e).await);
    }
    let algorithm = ctx.settings.algorithm;
    let full = algorithm.full_object().then_some(whole.checksum.as_str());
    let parts: Vec<DonePart> = sent.iter().map(|p| p.done.clone()).collect();
    let sent_checksum = BodyChecksum {
        algorithm,
        value: whole.checksum.clone(),
    };
    let etag = || whole.etag.clone();
    let local = Local::written(job.size, digests, &sent_checksum, &etag);
    faults::crash_point("before-complete");
    let written = ctx
        .permits
        .send(ctx.store.complete_multipart(
            &job.key,
            &upload,
            &parts,
            algorithm,
            full,
            job.must_not_exist,
        ))
        .await;
    let written = match written {
        Ok(w) => w,
        // The completion may have happened with its answer lost (the
        // retry then hears "no such upload" or "the key is taken"): if the
        // object is whole, it is done, and nothing is aborted.
        Err(e) => match already_there(ctx, job, &local).await {
            Some(how) => {
                ctx.upload_ended(&upload);
                return Ok(done(ctx, job, how, Some(&sent_checksum)));
            }
            None => return Err(give_up(ctx, job, &upload, e).await),
        },
    };
    faults::crash_point("after-complete");
    let how = confirm(ctx, job, &written, &local).await;
    // Completed: the upload id is spent whatever the check says.
    ctx.upload_ended(&upload);
    Ok(done(ctx, job, how?, Some(&sent_checksum)))
}

/// Records a proven large file and reports it done.
fn done<S>(ctx: &Ctx<S>, job: &Job, how: How, whole: Option<&BodyChecksum>) -> Uploaded {
    ctx.record_verified(job, how, whole);
    ctx.progress.object_done(0);
    Uploaded {
        object: job.object,
        verification: how,
        bytes: job.size,
    }
}

/// Hashes a large file that dedup did not read, with its own bar.
async fn hash<S: ObjectStore>(ctx: &Ctx<S>, job: &Job, path: &Path) -> Result<Digests, JobError> {
    let (p, size) = (path.to_path_buf(), job.size);
    let hashing = ctx.progress.hashing(&job.rel, size);
    let h = hashing.clone();
    let hashed = ctx.permits.blocking(move || hash_file(&p, size, &h)).await;
    hashing.finish();
    let d = hashed?.map_err(|e| JobError::Changed(format!("the file could not be hashed: {e}")))?;
    ctx.record_digests(job, d);
    Ok(d)
}

/// Starts a new multipart upload and records it for resume.
async fn create<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    digests: &Digests,
    layout: PartLayout,
) -> Result<UploadId, JobError> {
    let meta = object_metadata(digests, &job.rel);
    let obj = job.new_object(&meta, &ctx.settings.options);
    let id = ctx
        .permits
        .send(ctx.store.create_multipart(&obj, ctx.settings.algorithm))
        .await?;
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
    Ok(id)
}

/// Ends a multipart upload that cannot complete now: aborted when it never
/// will (bad data, a changed file), kept for the next run when a network or
/// server problem or a stop request interrupted it.
async fn give_up<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    upload: &UploadId,
    e: impl Into<JobError>,
) -> JobError {
    let e = e.into();
    if !e.keeps_upload() {
        ctx.abort(job, upload).await;
    }
    e
}

/// Sends every part not in `reuse`, `concurrency` at a time across the
/// whole run, each once its request slot and memory are free.
async fn upload_parts<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    job: &Job,
    path: &Path,
    upload: &UploadId,
    layout: PartLayout,
    bar: &Phase,
    mut reuse: HashMap<u32, SentPart>,
) -> Result<Vec<SentPart>, JobError> {
    let mut set: JoinSet<Result<SentPart, JobError>> = JoinSet::new();
    let mut parts: Vec<Option<SentPart>> = vec![None; layout.parts as usize];
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
        if ctx.halted() {
            first_error.get_or_insert(JobError::Interrupted);
            break;
        }
        // Wait for a request slot and the memory before reading the part.
        let held = (ctx.permits.request().await?, ctx.permits.memory(len).await?);
        let part = Part {
            path: path.to_path_buf(),
            key: job.key.clone(),
            upload: upload.clone(),
            number: number as u32,
            start,
            len,
        };
        let (c, bar) = (ctx.clone(), bar.clone());
        set.spawn(async move {
            let _held = held;
            let sent = send_part(&c, &part).await?;
            bar.inc(len);
            c.progress.bytes(len);
            Ok(sent)
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

/// One part to send.
struct Part {
    path: std::path::PathBuf,
    key: String,
    upload: UploadId,
    number: u32,
    start: u64,
    len: u64,
}

/// Reads, sends and checks one part, and records it once acknowledged.
async fn send_part<S: ObjectStore>(ctx: &Ctx<S>, part: &Part) -> Result<SentPart, JobError> {
    let (alg, pool) = (ctx.settings.algorithm, ctx.part_buffers.clone());
    let (p, start, len) = (part.path.clone(), part.start, part.len);
    let read = ctx
        .permits
        .blocking(move || read_part(&p, start, len, alg, &pool))
        .await??;
    let local = BodyChecksum {
        algorithm: alg,
        value: read.sum.value.to_base64(),
    };
    let number = part.number;
    let body = faults::maybe_corrupt(&part.key, read.body.clone());
    let w = ctx
        .store
        .upload_part(&part.key, &part.upload, number, body, &local)
        .await?;
    let etag = w
        .etag
        .clone()
        .ok_or_else(|| JobError::Failed(format!("UploadPart #{number}: no ETag in the answer")))?;
    let mut md5 = None;
    match w.checksums.of(alg) {
        Some(remote) if *remote != local.value => {
            return Err(JobError::Failed(format!(
                "part {number}: the server stored {} {remote}, but the part's is {}",
                alg.name(),
                local.value
            )));
        }
        Some(_) => {}
        None => {
            // No checksum in the answer: the part's ETag is its MD5.
            let digest = checksum::md5(&read.body);
            let hex = checksum::hex(&digest);
            if etag.trim_matches('"') != hex {
                return Err(JobError::Failed(format!(
                    "part {number}: ETag {etag} is not the part's MD5 {hex}"
                )));
            }
            md5 = Some(digest);
        }
    }
    faults::crash_point("part-acked");
    let sent = SentPart {
        done: DonePart {
            number,
            etag,
            checksum: local.value,
        },
        sum: read.sum,
        crc64: read.crc64,
        md5,
    };
    ctx.record(Record::PartDone {
        upload_id: part.upload.clone(),
        part: sent.row(),
    });
    Ok(sent)
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
