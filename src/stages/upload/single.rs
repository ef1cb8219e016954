//! A small file: one read, one PutObject, one proof.

use tokio::sync::OwnedSemaphorePermit;

use super::confirm::{already_there, confirm};
use super::context::Ctx;
use super::job::{Job, JobError, Uploaded};
use super::read::{read_small, same_digests, unchanged};
use crate::checksum;
use crate::faults;
use crate::stages::verify::{Local, object_metadata};
use crate::store::{BodyChecksum, ErrorKind, ObjectStore};

/// Uploads a file below the multipart threshold; `_slot` and `_memory`
/// (a request slot and room for its bytes) are held until it is proven.
pub(super) async fn put_small<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    _slot: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
) -> Result<Uploaded, JobError> {
    let path = job.path(&ctx.root);
    let algorithm = ctx.settings.algorithm;
    let size = job.size;
    let pool = ctx.small_buffers.clone();
    let p = path.clone();
    let (body, digests, sum) = ctx
        .permits
        .blocking(move || read_small(&p, size, algorithm, &pool))
        .await??;
    ctx.count_read(size);
    unchanged(job, &path, "while being read")?;
    same_digests(job, &digests)?;

    let sent = BodyChecksum {
        algorithm,
        value: sum.to_base64(),
    };
    let meta = object_metadata(&digests, &job.rel);
    let obj = job.new_object(&meta, &ctx.settings.options);
    let send = faults::maybe_corrupt(&job.key, body.clone());
    let etag = || checksum::md5_hex(&body);
    let local = Local::written(size, digests, &sent, &etag);
    let how = match ctx
        .store
        .put_object(&obj, send, &sent, job.must_not_exist)
        .await
    {
        Ok(written) => confirm(ctx, job, &written, &local).await?,
        // Refused because the key is taken: by our own earlier attempt
        // (an answer lost on the way back, a killed run's late request)
        // if the object holds these bytes.
        Err(e) if e.kind() == ErrorKind::Precondition => {
            match already_there(ctx, job, &local).await {
                Some(how) => how,
                None => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    ctx.record_digests(job, digests);
    Ok(ctx.proven(job, how, Some(&sent), size, false))
}
