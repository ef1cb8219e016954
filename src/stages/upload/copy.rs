//! A duplicate's own object (`--key-layout preserve`): applications build
//! a media URL from the base and the file's own path, so every file needs
//! an object at its own key, but the bytes of a duplicate need not cross
//! the shop's link again. The object of the first file of the group is
//! uploaded; each other file's object is a server-side copy of it
//! (CopyObject; above 5 GiB, UploadPartCopy in parts), with the file's own
//! content type and metadata and a checksum asked for, proven like any
//! object by the server's checksum against the file's digests (`verify`),
//! and journaled under its own key.
//!
//! A server that cannot copy (501 NotImplemented, a copy it cannot prove,
//! a source that is gone) is not a failure: the job comes back as
//! [`JobError::CannotCopy`] and the engine uploads the duplicate from its
//! own file instead. After the first "not implemented", no more copies are
//! tried in the run.

use std::sync::Arc;

use super::context::Ctx;
use super::job::{CopyFrom, Job, JobError, Uploaded};
use super::multipart::intend;
use super::read::{hash, unchanged};
use crate::checksum::{self, Algorithm};
use crate::digest::Digests;
use crate::journal::{Record, UploadRow};
use crate::limits::{PartLayout, copy_layout};
use crate::stages::verify::{self, How, Local, Proof, object_metadata};
use crate::store::{BodyChecksum, DonePart, ErrorKind, NewObject, ObjectStore, StoreError};
use crate::types::UploadId;

/// Whether a store error on a copy means "upload it instead": the server
/// cannot or will not copy (not implemented, refused, the source gone),
/// which an upload of the file's own bytes may well get past. Network
/// trouble is not such a case: it fails the job as it would an upload.
fn upload_instead(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Unsupported
            | ErrorKind::NotFound
            | ErrorKind::Fatal
            | ErrorKind::AccessDenied
            | ErrorKind::Checksum
    )
}

/// A copy that was made but cannot stand: the upload that replaces it
/// must overwrite it.
fn wrote(why: String) -> JobError {
    JobError::CannotCopy { why, wrote: true }
}

/// A store error on a copy, as the engine should take it.
fn copy_error<S>(ctx: &Ctx<S>, e: StoreError) -> JobError {
    if e.kind() == ErrorKind::Unsupported {
        ctx.refuse_copies(&e.to_string());
    }
    if upload_instead(e.kind()) {
        JobError::CannotCopy {
            why: e.to_string(),
            wrote: false,
        }
    } else {
        JobError::Store(e)
    }
}

/// Makes `job`'s object by copying `from`, proves it and records it.
pub(super) async fn copy<S: ObjectStore>(
    ctx: &Arc<Ctx<S>>,
    job: &Job,
    from: &CopyFrom,
) -> Result<Uploaded, JobError> {
    if let Some(why) = ctx.copies_refused() {
        return Err(JobError::CannotCopy { why, wrote: false });
    }
    let path = job.path(&ctx.root);
    unchanged(job, &path, "since the walk")?;
    // An earlier run's copy in parts, cut off: it is started over.
    if let Some(r) = &job.resume {
        ctx.abort(job, &r.upload_id).await;
    }
    // Digests not known (a hard link, which dedup did not read; a source
    // hashed from its parts as it was sent): the file is hashed, as the
    // proof and the metadata need them.
    let digests = match job.digests {
        Some(d) => d,
        None => hash(ctx, job, &path).await?,
    };
    let meta = object_metadata(&digests, &job.rel);
    let obj = job.new_object(&meta, &ctx.settings.options);
    let layout = copy_layout(job.size, ctx.settings.copy_limit)
        .map_err(|e| JobError::Failed(e.to_string()))?;
    let (how, whole) = match layout {
        None => whole_copy(ctx, job, from, &obj, digests).await?,
        Some(layout) => in_parts(ctx, job, from, &obj, digests, layout).await?,
    };
    // A file that changed meanwhile is not what was copied.
    unchanged(job, &path, "while being copied")?;
    Ok(ctx.proven(job, how, whole.as_ref(), 0, true))
}

/// One CopyObject, then the proof: the answer's checksum, else HeadObject
/// of the copy (and, where its checksum cannot be compared with the
/// file's digests, of the source).
async fn whole_copy<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    from: &CopyFrom,
    obj: &NewObject<'_>,
    digests: Digests,
) -> Result<(How, Option<BodyChecksum>), JobError> {
    let local = Local::copied(job.size, digests);
    let algorithm = ctx.settings.algorithm;
    let sent = ctx
        .permits
        .send(
            ctx.store
                .copy_object(obj, &from.key, algorithm, job.must_not_exist),
        )
        .await;
    let written = match sent {
        Ok(w) => w,
        // The key is taken: by our own earlier attempt (an answer lost, a
        // killed run's late request) if it holds these bytes.
        Err(JobError::Store(e)) if e.kind() == ErrorKind::Precondition => {
            return match prove_now(ctx, job, from, &local).await? {
                Proof::Proven { how } => Ok((how, None)),
                _ => Err(e.into()),
            };
        }
        Err(JobError::Store(e)) => return Err(copy_error(ctx, e)),
        Err(e) => return Err(e),
    };
    match verify::prove_answer(&written, &local) {
        Proof::Proven { how } => return Ok((how, None)),
        Proof::Different { why } => {
            return Err(wrote(format!("the server's answer: {why}")));
        }
        Proof::Unproven { .. } | Proof::Missing => {}
    }
    let head = ctx.permits.send(ctx.store.head(&job.key)).await?;
    match proof_of_copy(ctx, from, head.as_ref(), &local).await? {
        Proof::Proven { how } => Ok((how, head.as_ref().and_then(verify::whole_checksum))),
        Proof::Missing => Err(wrote("the object is missing right after its copy".into())),
        Proof::Different { why } => Err(wrote(format!("HeadObject: {why}"))),
        Proof::Unproven { why } => Err(wrote(format!("the copy cannot be proven: {why}"))),
    }
}

/// Judges the copy as HeadObject showed it, asking for the source only
/// when the copy's own checksum cannot be compared with the digests.
async fn proof_of_copy<S: ObjectStore>(
    ctx: &Ctx<S>,
    from: &CopyFrom,
    head: Option<&crate::store::RemoteObject>,
    local: &Local<'_>,
) -> Result<Proof, JobError> {
    let proof = verify::prove(head, local);
    if !matches!(proof, Proof::Unproven { .. }) {
        return Ok(proof);
    }
    let source = ctx.permits.send(ctx.store.head(&from.key)).await?;
    Ok(verify::prove_copy(head, source.as_ref(), local))
}

/// Whether the object under the job's key already holds the file's bytes.
async fn prove_now<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    from: &CopyFrom,
    local: &Local<'_>,
) -> Result<Proof, JobError> {
    let head = ctx.permits.send(ctx.store.head(&job.key)).await?;
    proof_of_copy(ctx, from, head.as_ref(), local).await
}

/// A copy above the single-copy limit: a multipart upload whose parts are
/// UploadPartCopy ranges of the source, completed with the whole-object
/// checksum combined from the parts' (which, for CRC64NVME, must be the
/// file's), then proven. The upload is recorded so that a killed run's is
/// aborted by the next (a copy is not resumed: it sends no bytes).
async fn in_parts<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    from: &CopyFrom,
    obj: &NewObject<'_>,
    digests: Digests,
    layout: PartLayout,
) -> Result<(How, Option<BodyChecksum>), JobError> {
    let algorithm = ctx.settings.algorithm;
    intend(ctx, job).await?;
    let upload = match ctx
        .permits
        .send(ctx.store.create_multipart(obj, algorithm))
        .await
    {
        Ok(id) => id,
        Err(JobError::Store(e)) => return Err(copy_error(ctx, e)),
        Err(e) => return Err(e),
    };
    ctx.record(Record::UploadStarted(UploadRow {
        key: job.key.clone(),
        path: job.rel.to_string(),
        upload_id: upload.clone(),
        part_size: layout.part_size,
        size: job.size,
        mtime_ns: job.mtime_ns,
        sha256: Some(digests.sha256),
        started_at: crate::journal::now(),
        parts: Vec::new(),
    }));
    let result = copy_parts(ctx, job, from, &upload, digests, layout).await;
    match result {
        Ok(done) => {
            ctx.upload_ended(&upload);
            Ok(done)
        }
        Err(e) => {
            if !e.keeps_upload() {
                ctx.abort(job, &upload).await;
            }
            Err(e)
        }
    }
}

/// The parts of a copy in parts, its completion and its proof.
async fn copy_parts<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    from: &CopyFrom,
    upload: &UploadId,
    digests: Digests,
    layout: PartLayout,
) -> Result<(How, Option<BodyChecksum>), JobError> {
    let algorithm = ctx.settings.algorithm;
    let mut done = Vec::with_capacity(layout.parts as usize);
    let mut sums = Vec::with_capacity(layout.parts as usize);
    for number in 1..=layout.parts {
        if ctx.halted() {
            return Err(JobError::Interrupted);
        }
        let range = layout.range(number);
        let written = ctx
            .permits
            .send(
                ctx.store
                    .upload_part_copy(&job.key, upload, number as u32, &from.key, range),
            )
            .await
            .map_err(|e| match e {
                JobError::Store(e) => copy_error(ctx, e),
                e => e,
            })?;
        let Some(etag) = written.etag else {
            return Err(JobError::CannotCopy {
                why: format!("the server gave no ETag for part {number} it copied"),
                wrote: false,
            });
        };
        // A part's checksum, where the server gives it (AWS, LocalStack;
        // Garage and SeaweedFS may not).
        let value = written.checksums.of(algorithm).map(str::to_string);
        if let Some(v) = &value {
            let Some(parsed) = checksum::Value::from_base64(algorithm, v) else {
                return Err(JobError::CannotCopy {
                    why: format!(
                        "the server's {} checksum of part {number} is not one ({v})",
                        algorithm.name()
                    ),
                    wrote: false,
                });
            };
            sums.push(checksum::Part {
                value: parsed,
                len: range.1 - range.0,
            });
        }
        done.push(DonePart {
            number: number as u32,
            etag,
            checksum: value.unwrap_or_default(),
        });
    }
    // The whole object's value: combined from the parts', or, when the
    // server gave none, the file's CRC64NVME, which the server checks at
    // completion against what it holds. Other algorithms need the parts'.
    let whole = if sums.len() == done.len() {
        BodyChecksum {
            algorithm,
            value: checksum::multipart_value(algorithm, &sums),
        }
    } else if algorithm == Algorithm::Crc64nvme {
        for p in &mut done {
            p.checksum.clear();
        }
        BodyChecksum {
            algorithm,
            value: digests.crc64.to_base64(),
        }
    } else {
        return Err(JobError::CannotCopy {
            why: format!(
                "the server gave no {} checksums for the parts it copied",
                algorithm.name()
            ),
            wrote: false,
        });
    };
    if algorithm == Algorithm::Crc64nvme && whole.value != digests.crc64.to_base64() {
        return Err(JobError::CannotCopy {
            why: "the parts the server copied add up to other bytes than the file's".into(),
            wrote: false,
        });
    }
    let local = Local::copied(job.size, digests).with_checksum(Some(&whole));
    let full = algorithm.full_object().then_some(whole.value.as_str());
    let completed = ctx
        .permits
        .send(ctx.store.complete_multipart(
            &job.key,
            upload,
            &done,
            algorithm,
            full,
            job.must_not_exist,
        ))
        .await;
    let written = match completed {
        Ok(w) => w,
        // Completed with its answer lost, or another run's object first
        // (our upload is then still open, and aborted): done if the object
        // holds the bytes.
        Err(e) => {
            if matches!(&e, JobError::Store(s) if s.kind() == ErrorKind::Precondition) {
                ctx.abort(job, upload).await;
            }
            return match prove_now(ctx, job, from, &local).await? {
                Proof::Proven { how } => Ok((how, Some(whole))),
                _ => Err(e),
            };
        }
    };
    if let Proof::Proven { how } = verify::prove_answer(&written, &local) {
        return Ok((how, Some(whole)));
    }
    match prove_now(ctx, job, from, &local).await? {
        Proof::Proven { how } => Ok((how, Some(whole))),
        Proof::Missing => Err(wrote("the object is missing right after its copy".into())),
        Proof::Different { why } | Proof::Unproven { why } => {
            Err(wrote(format!("the copy cannot be proven: {why}")))
        }
    }
}
