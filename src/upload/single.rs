//! A small file: one read, one PutObject, one proof.

use tokio::sync::OwnedSemaphorePermit;

use super::confirm::confirm;
use super::context::Ctx;
use super::job::{Job, JobError, Uploaded};
use super::read::{read_small, same_digests, unchanged};
use crate::checksum;
use crate::faults;
use crate::store::{BodyChecksum, ObjectStore};
use crate::verify::{Local, object_metadata};

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
    unchanged(job, &path, "while being read")?;
    same_digests(job, &digests)?;

    let sent = BodyChecksum {
        algorithm,
        value: sum.to_base64(),
    };
    let meta = object_metadata(&digests, &job.rel);
    let obj = job.new_object(&meta, &ctx.settings.options);
    let send = faults::maybe_corrupt(&job.key, body.clone());
    let written = ctx
        .store
        .put_object(&obj, send, &sent, job.must_not_exist)
        .await?;
    let etag = || checksum::md5_hex(&body);
    let how = confirm(
        ctx,
        job,
        &written,
        &Local::written(size, digests, &sent, &etag),
    )
    .await?;
    ctx.record_digests(job, digests);
    ctx.record_verified(job, how);
    ctx.progress.object_done(size);
    Ok(Uploaded {
        object: job.object,
        digests,
        verification: how,
        bytes: size,
    })
}
