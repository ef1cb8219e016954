//! A large file: sent in parts read by position, each carrying its own
//! checksum, then completed with the whole-object checksum combined from
//! the parts, then proven. Each byte is read once: the file's SHA-256 (for
//! the journal and the maps) is computed from the parts as they are read,
//! unless dedup had already hashed the file, and then it also goes into the
//! `sha256` metadata given at CreateMultipartUpload. Without it, the
//! object's proof is its full-object checksum (CRC64NVME by default),
//! which the server validates at completion.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::confirm::{already_there, confirm};
use super::context::Ctx;
use super::job::{Job, JobError, Uploaded};
use super::parts::{SentPart, combine};
use super::read::{hash, read_part, unchanged};
use super::resume::{Resumed, resumable};
use super::whole::InOrder;
use crate::checksum::{self, Algorithm};
use crate::digest::Digests;
use crate::faults;
use crate::journal::{Record, UploadRow};
use crate::limits::PartLayout;
use crate::progress::Phase;
use crate::stages::verify::{How, Local, object_metadata, source_metadata};
use crate::store::{BodyChecksum, DonePart, ObjectStore};
use crate::types::{Crc64Nvme, UploadId};

pub(super) async fn put_multipart<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    job: &Job,
) -> Result<Uploaded, JobError> {
    let path = job.path(&ctx.root);
    unchanged(job, &path, "since the walk")?;
    let mut known = job.digests;
    if known.is_none() && job.resume.as_ref().is_some_and(|r| r.sha256.is_some()) {
        // An upload begun with the file's SHA-256 (by an earlier version,
        // which hashed first): continued only after checking it is the
        // same file.
        known = Some(hash(ctx, job, &path).await?);
    }
    let layout = PartLayout::new(job.size, ctx.settings.part_size)
        .map_err(|e| JobError::Failed(e.to_string()))?;

    // Resume what an earlier run began, if the file is the same file.
    let (upload, reuse) = match resumable(ctx, job, known.as_ref(), layout).await? {
        Resumed::Continue(id, reuse) => (id, reuse),
        Resumed::Fresh => (
            create(ctx, job, known.as_ref(), layout).await?,
            HashMap::new(),
        ),
        Resumed::Completed(how) => return Ok(done(ctx, job, how, None)),
    };

    let bar = ctx.progress.large_file(&job.rel, job.size);
    // The SHA-256 from the parts, when nothing computed it before.
    let sha = known.is_none().then(|| Arc::new(InOrder::new()));
    let result = upload_parts(ctx, job, &path, &upload, layout, &bar, reuse, sha.clone()).await;
    bar.finish();
    let sent = match result {
        Ok(r) => r,
        Err(e) => return Err(give_up(ctx, job, &upload, e).await),
    };
    let whole = combine(ctx.settings.algorithm, &sent);
    let digests = match known {
        // The parts we sent must add up to the file we hashed.
        Some(d) if whole.crc64 != d.crc64.to_base64() => {
            let e =
                JobError::Changed("the file's content changed while it was being uploaded".into());
            return Err(give_up(ctx, job, &upload, e).await);
        }
        Some(d) => d,
        None => match from_parts(sha, &whole.crc64, layout) {
            Some(d) => d,
            None => {
                let e = JobError::Failed(
                    "the file's SHA-256 could not be computed from its parts".into(),
                );
                return Err(give_up(ctx, job, &upload, e).await);
            }
        },
    };
    if let Err(e) = unchanged(job, &path, "while being uploaded") {
        return Err(give_up(ctx, job, &upload, e).await);
    }
    if known.is_none() {
        ctx.record_digests(job, digests);
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
    faults::crash_point(crate::faults::CrashPoint::BeforeComplete);
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
        //
        // A refusal of the condition (412: another run, an overlapping
        // shard say, completed the key first) leaves our upload open, so
        // it is aborted once the object is proven to be this file.
        Err(e) => match already_there(ctx, job, &local).await {
            Some(how) if is_precondition(&e) => {
                ctx.abort(job, &upload).await;
                return Ok(done(ctx, job, how, Some(&sent_checksum)));
            }
            Some(how) => {
                ctx.upload_ended(&upload);
                return Ok(done(ctx, job, how, Some(&sent_checksum)));
            }
            None => return Err(give_up(ctx, job, &upload, e).await),
        },
    };
    faults::crash_point(crate::faults::CrashPoint::AfterComplete);
    let how = confirm(ctx, job, &written, &local).await;
    // Completed: the upload id is spent whatever the check says.
    ctx.upload_ended(&upload);
    Ok(done(ctx, job, how?, Some(&sent_checksum)))
}

fn is_precondition(e: &JobError) -> bool {
    matches!(e, JobError::Store(s) if s.kind() == crate::store::ErrorKind::Precondition)
}

/// The file's digests from its parts: the SHA-256 hashed in order, and the
/// CRC64NVME combined from the parts' (base64, as `combine` gives it).
fn from_parts(sha: Option<Arc<InOrder>>, crc64: &str, layout: PartLayout) -> Option<Digests> {
    let sha = Arc::into_inner(sha?)?.finish(layout.parts)?;
    let checksum::Value::Crc64(crc) = checksum::Value::from_base64(Algorithm::Crc64nvme, crc64)?
    else {
        return None;
    };
    Some(Digests {
        sha256: sha,
        crc64: Crc64Nvme(crc),
    })
}

/// Records a proven large file and reports it done (its parts' bytes were
/// counted as they went).
fn done<S>(ctx: &Ctx<S>, job: &Job, how: How, whole: Option<&BodyChecksum>) -> Uploaded {
    ctx.proven(job, how, whole, 0, false)
}

/// What comes before CreateMultipartUpload (of parts sent or copied): a
/// stray upload a killed run left for the key is aborted, and the intent
/// is committed to the journal, so that a kill before the answer is
/// recorded still leaves a trace: the next run then aborts what the
/// server holds for the key (see [`sweep`]).
pub(super) async fn intend<S: ObjectStore>(ctx: &Ctx<S>, job: &Job) -> Result<(), JobError> {
    if job.stray_upload {
        sweep(ctx, job).await;
    }
    ctx.record_committed(Record::UploadIntent {
        key: job.key.clone(),
        path: job.rel.to_string(),
    })
    .await
}

/// Starts a new multipart upload and records it for resume.
async fn create<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    digests: Option<&Digests>,
    layout: PartLayout,
) -> Result<UploadId, JobError> {
    intend(ctx, job).await?;
    let with_sha;
    let without = [source_metadata(&job.rel)];
    let meta: &[(&str, String)] = match digests {
        Some(d) => {
            with_sha = object_metadata(d, &job.rel);
            &with_sha
        }
        None => &without,
    };
    let obj = job.new_object(meta, &ctx.settings.options);
    let id = ctx
        .permits
        .send(ctx.store.create_multipart(&obj, ctx.settings.algorithm))
        .await?;
    faults::crash_point(crate::faults::CrashPoint::AfterCreate);
    ctx.record(Record::UploadStarted(UploadRow {
        key: job.key.clone(),
        path: job.rel.to_string(),
        upload_id: id.clone(),
        part_size: layout.part_size,
        size: job.size,
        mtime_ns: job.mtime_ns,
        sha256: digests.map(|d| d.sha256),
        started_at: crate::journal::now(),
        parts: Vec::new(),
    }));
    Ok(id)
}

/// Aborts every upload the server holds for this key: an earlier run was
/// killed after sending CreateMultipartUpload and before recording its
/// answer, so an upload of the key exists that nobody would continue. The
/// key is this migration's, and this job is about to start the only
/// upload of it that counts. A failure is only a warning (`mediashift gc`
/// cleans up).
async fn sweep<S: ObjectStore>(ctx: &Ctx<S>, job: &Job) {
    let listed = ctx.permits.send(ctx.store.uploads_of(&job.key)).await;
    let stray = match listed {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(
                "{}: could not list the uploads a killed run may have left: {} (`mediashift gc` cleans them up)",
                job.key,
                e.message()
            );
            return;
        }
    };
    for id in stray {
        tracing::info!(
            "{}: aborting upload {id}, which a killed run began but never recorded",
            job.key
        );
        ctx.abort(job, &id).await;
    }
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
/// whole run, each once its request slot and memory are free. With `sha`,
/// every part is handed to it once read, reused parts included (read again
/// for that, and checked against the CRC64NVME recorded when sent).
#[allow(clippy::too_many_arguments)]
async fn upload_parts<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    job: &Job,
    path: &Path,
    upload: &UploadId,
    layout: PartLayout,
    bar: &Phase,
    mut reuse: HashMap<u32, SentPart>,
    sha: Option<Arc<InOrder>>,
) -> Result<Vec<SentPart>, JobError> {
    let mut set: JoinSet<Result<SentPart, JobError>> = JoinSet::new();
    let mut parts: Vec<Option<SentPart>> = vec![None; layout.parts as usize];
    let mut first_error = None;
    for number in 1..=layout.parts {
        let (start, end) = layout.range(number);
        let len = end - start;
        let reused = reuse.remove(&(number as u32));
        if ctx.halted() {
            first_error.get_or_insert(JobError::Interrupted);
            break;
        }
        let part = Part {
            path: path.to_path_buf(),
            key: job.key.clone(),
            upload: upload.clone(),
            number: number as u32,
            start,
            len,
            sha: sha.clone(),
        };
        let (c, bar) = (ctx.clone(), bar.clone());
        match (reused, &sha) {
            (Some(p), None) => {
                bar.inc(len);
                ctx.progress.bytes(len);
                parts[number as usize - 1] = Some(p);
                continue;
            }
            (Some(p), Some(_)) => {
                let memory = ctx.permits.memory(len).await?;
                set.spawn(async move {
                    let _memory = memory;
                    let checked = rehash_part(&c, &part, p).await?;
                    bar.inc(len);
                    c.progress.bytes(len);
                    Ok(checked)
                });
            }
            (None, _) => {
                // Wait for a request slot and the memory before reading.
                let held = (ctx.permits.request().await?, ctx.permits.memory(len).await?);
                set.spawn(async move {
                    let _held = held;
                    let sent = send_part(&c, &part).await?;
                    bar.inc(len);
                    c.progress.bytes(len);
                    Ok(sent)
                });
            }
        }
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
    /// Where the part's bytes go once read, for the file's SHA-256.
    sha: Option<Arc<InOrder>>,
}

/// Reads a part, handing its bytes to the file's SHA-256 on the same
/// thread.
async fn read<S>(ctx: &Ctx<S>, part: &Part) -> Result<super::read::ReadPart, JobError> {
    let (alg, pool) = (ctx.settings.algorithm, ctx.part_buffers.clone());
    let (p, start, len) = (part.path.clone(), part.start, part.len);
    let (sha, number) = (part.sha.clone(), part.number);
    let read = ctx
        .permits
        .blocking(move || {
            let read = read_part(&p, start, len, alg, &pool)?;
            if let Some(sha) = sha {
                sha.feed(number, read.body.clone());
            }
            Ok::<_, JobError>(read)
        })
        .await??;
    ctx.count_read(len);
    Ok(read)
}

/// A part an earlier run sent, read again only for the file's SHA-256: its
/// bytes must still be those it was sent with.
async fn rehash_part<S>(ctx: &Ctx<S>, part: &Part, sent: SentPart) -> Result<SentPart, JobError> {
    let read = read(ctx, part).await?;
    if read.crc64 != sent.crc64 {
        return Err(JobError::Changed(format!(
            "the file changed since part {} was sent by an earlier run",
            part.number
        )));
    }
    Ok(sent)
}

/// Reads, sends and checks one part, and records it once acknowledged.
async fn send_part<S: ObjectStore>(ctx: &Ctx<S>, part: &Part) -> Result<SentPart, JobError> {
    let alg = ctx.settings.algorithm;
    let read = read(ctx, part).await?;
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
    faults::crash_point(crate::faults::CrashPoint::PartAcked);
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
