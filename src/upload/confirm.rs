//! After each write, the proof that the object holds what was sent, by the
//! rules of `verify`: the write's answer when it carries a checksum,
//! otherwise one HeadObject.

use super::context::Ctx;
use super::job::{Job, JobError};
use crate::store::{ObjectStore, Written};
use crate::verify::{self, How, Local, Proof};

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
