//! After each write, the proof that the object holds what was sent, by the
//! rules of `verify`: the write's answer when it carries a checksum,
//! otherwise one HeadObject. And after a write that failed in a way that
//! may hide a success (a refusal because the key is taken, a completion
//! whose answer was lost), whether the object is already what was meant.

use super::context::Ctx;
use super::job::{Job, JobError};
use crate::stages::verify::{self, How, Local, Proof};
use crate::store::{ObjectStore, Written};

/// Whether the object under `job`'s key already holds what `local`
/// describes: `Some(how)` when proven. Used where a write failed but our own
/// earlier attempt may have succeeded (the SDK retried a request whose
/// answer was lost; a request of a killed run completed late). A HEAD that
/// fails proves nothing.
pub(super) async fn already_there<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    local: &Local<'_>,
) -> Option<How> {
    let head = ctx.store.head(&job.key).await.ok()?;
    match verify::prove(head.as_ref(), local) {
        Proof::Proven { how } => {
            tracing::info!(
                "{}: the object is already in place ({})",
                job.rel,
                how.name()
            );
            Some(how)
        }
        _ => None,
    }
}

/// Proves the object `job` wrote, spending a request only when the
/// write's answer did not already prove it.
pub(super) async fn confirm<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    written: &Written,
    local: &Local<'_>,
) -> Result<How, JobError> {
    match verify::prove_answer(written, local) {
        Proof::Proven { how } => return Ok(how),
        Proof::Different { why } => {
            return Err(JobError::Failed(format!("the server's answer: {why}")));
        }
        Proof::Unproven { .. } | Proof::Missing => {}
    }
    let mut head = ctx.store.head(&job.key).await?;
    if let Some(h) = &mut head
        && h.etag.is_none()
    {
        h.etag.clone_from(&written.etag);
    }
    match verify::prove(head.as_ref(), local) {
        Proof::Proven { how } => Ok(how),
        Proof::Missing => Err(JobError::Failed(
            "the object is missing right after its upload".into(),
        )),
        Proof::Different { why } => Err(JobError::Failed(format!("HeadObject: {why}"))),
        Proof::Unproven { why } => Err(JobError::Failed(format!("cannot prove the upload: {why}"))),
    }
}
