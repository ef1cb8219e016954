//! Continuing a multipart upload an earlier run began.
//!
//! The server's ListParts is the truth; the journal says which of those
//! parts this file's bytes produced. A part is reused only where both agree
//! (same number, ETag and size, at the size the layout gives it); every
//! other part is sent again, except a part the server holds that the
//! journal never recorded, which is read again and reused if its MD5 is the
//! ETag the server lists. SeaweedFS lists a re-sent part number twice (old
//! and new ETag): the one whose ETag matches is the one reused.

use std::collections::HashMap;

use super::confirm::already_there;
use super::context::Ctx;
use super::job::{Job, JobError};
use super::parts::SentPart;
use super::read::read_part;
use crate::checksum::{self, Algorithm};
use crate::digest::Digests;
use crate::journal::{PartRow, Record};
use crate::limits::PartLayout;
use crate::stages::verify::{How, Local};
use crate::store::{DonePart, ListedPart, ObjectStore};
use crate::types::UploadId;

/// What becomes of the upload an earlier run left for a key.
pub(super) enum Resumed {
    /// None to continue: start a new one.
    Fresh,
    /// Continue this upload, reusing these parts.
    Continue(UploadId, HashMap<u32, SentPart>),
    /// The upload completed after all (its answer was lost, or a killed
    /// run's request finished late): the object is proven in place.
    Completed(How),
}

/// The upload an earlier run left for this key, if it can be continued:
/// same file (size, mtime, and SHA-256 where it was known when the upload
/// began), same part size, and the server still knows it; with the parts
/// to reuse. A stale upload is aborted. An upload the server no longer
/// knows may have completed: the object is checked (the file is hashed for
/// that if it was not) before the file is sent again.
///
/// An upload begun without the SHA-256 is continued on size and mtime; its
/// reused parts are read again to compute the SHA-256, and each must still
/// have the CRC64NVME recorded when it was sent.
pub(super) async fn resumable<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    digests: Option<&Digests>,
    layout: PartLayout,
) -> Result<Resumed, JobError> {
    let Some(r) = &job.resume else {
        return Ok(Resumed::Fresh);
    };
    let same_digest = match (r.sha256, digests) {
        (None, _) => true,
        (Some(recorded), Some(d)) => recorded == d.sha256,
        // Begun with a SHA-256 this run does not know: nothing to check
        // the file against, so it starts over.
        (Some(_), None) => false,
    };
    let same_file = r.size == job.size && r.mtime_ns == job.mtime_ns && same_digest;
    if !same_file || r.part_size != layout.part_size {
        tracing::info!(
            "{}: the file changed since its upload began; starting over",
            job.rel
        );
        ctx.abort(job, &r.upload_id).await;
        return Ok(Resumed::Fresh);
    }
    let listed = ctx
        .permits
        .send(ctx.store.list_parts(&job.key, &r.upload_id))
        .await?;
    let Some(listed) = listed else {
        ctx.upload_ended(&r.upload_id);
        let digests = match digests {
            Some(d) => *d,
            None => super::read::hash(ctx, job, &job.path(&ctx.root)).await?,
        };
        let local = Local::file(job.size, Some(digests));
        if let Some(how) = already_there(ctx, job, &local).await {
            return Ok(Resumed::Completed(how));
        }
        tracing::info!(
            "{}: the server no longer knows upload {}; starting over",
            job.rel,
            r.upload_id
        );
        return Ok(Resumed::Fresh);
    };
    let mut reuse = reusable(&r.parts, &listed, layout, ctx.settings.algorithm);
    let recorded = reuse.len();
    recover(ctx, job, &r.upload_id, &listed, layout, &mut reuse).await?;
    tracing::info!(
        "{}: resuming upload {} with {} of {} parts already there ({} of them not in the journal, recovered from ListParts)",
        job.rel,
        r.upload_id,
        reuse.len(),
        layout.parts,
        reuse.len() - recorded
    );
    Ok(Resumed::Continue(r.upload_id.clone(), reuse))
}

/// Parts the server holds that the journal never recorded (acknowledged
/// just before a kill, before the journal's next commit): each is read
/// again from the file and reused when its MD5 is the ETag the server
/// lists for it, which costs a read instead of a resend. Recovered parts
/// are recorded.
async fn recover<S: ObjectStore>(
    ctx: &Ctx<S>,
    job: &Job,
    upload: &UploadId,
    listed: &[ListedPart],
    layout: PartLayout,
    reuse: &mut HashMap<u32, SentPart>,
) -> Result<(), JobError> {
    let mut unrecorded: Vec<u32> = listed
        .iter()
        .filter(|p| p.number >= 1 && u64::from(p.number) <= layout.parts)
        .filter(|p| {
            let (start, end) = layout.range(u64::from(p.number));
            p.size == end - start && !reuse.contains_key(&p.number)
        })
        .map(|p| p.number)
        .collect();
    unrecorded.sort_unstable();
    unrecorded.dedup();
    let path = job.path(&ctx.root);
    let algorithm = ctx.settings.algorithm;
    for number in unrecorded {
        let (start, end) = layout.range(u64::from(number));
        let _memory = ctx.permits.memory(end - start).await?;
        let (p, pool) = (path.clone(), ctx.part_buffers.clone());
        let read = ctx
            .permits
            .blocking(move || read_part(&p, start, end - start, algorithm, &pool))
            .await??;
        ctx.count_read(end - start);
        let md5 = checksum::md5(&read.body);
        let hex = checksum::hex(&md5);
        let Some(on_server) = listed
            .iter()
            .find(|l| l.number == number && l.etag.trim_matches('"') == hex)
        else {
            continue;
        };
        let part = SentPart {
            done: DonePart {
                number,
                etag: on_server.etag.clone(),
                checksum: read.sum.value.to_base64(),
            },
            sum: read.sum,
            crc64: read.crc64,
            md5: Some(md5),
        };
        ctx.record(Record::PartDone {
            upload_id: upload.clone(),
            part: part.row(),
        });
        reuse.insert(number, part);
    }
    Ok(())
}

/// The recorded parts the server still holds as recorded, by number.
fn reusable(
    recorded: &[PartRow],
    listed: &[ListedPart],
    layout: PartLayout,
    algorithm: Algorithm,
) -> HashMap<u32, SentPart> {
    let mut on_server: HashMap<u32, Vec<&ListedPart>> = HashMap::new();
    for p in listed {
        on_server.entry(p.number).or_default().push(p);
    }
    recorded
        .iter()
        .filter(|p| p.number != 0 && u64::from(p.number) <= layout.parts)
        .filter(|p| {
            let (start, end) = layout.range(u64::from(p.number));
            p.size == end - start
                && on_server
                    .get(&p.number)
                    .is_some_and(|ls| ls.iter().any(|l| l.etag == p.etag && l.size == p.size))
        })
        .filter_map(|p| Some((p.number, SentPart::recorded(p, algorithm)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::Summer;

    const MIB: u64 = 1 << 20;

    fn recorded(number: u32, size: u64, etag: &str) -> PartRow {
        PartRow {
            number,
            size,
            checksum: Summer::of(Algorithm::Crc64nvme, etag.as_bytes())
                .value
                .to_base64(),
            crc64: 1,
            etag: etag.into(),
        }
    }

    fn listed(number: u32, size: u64, etag: &str) -> ListedPart {
        ListedPart {
            number,
            etag: etag.into(),
            size,
        }
    }

    #[test]
    fn only_parts_the_server_and_the_journal_agree_on_are_reused() {
        let layout = PartLayout::new(12 * MIB, 5 * MIB).unwrap(); // 5 + 5 + 2
        let rec = [
            recorded(1, 5 * MIB, "a"),
            recorded(2, 5 * MIB, "b"),
            recorded(3, 2 * MIB, "c"),
        ];
        let server = [
            listed(1, 5 * MIB, "a"),
            // Part 2 re-sent after the journal's record: listed twice, as
            // SeaweedFS does; the recorded ETag is among them.
            listed(2, 5 * MIB, "b-new"),
            listed(2, 5 * MIB, "b"),
            // Part 3: the server holds other bytes.
            listed(3, 2 * MIB, "c-other"),
        ];
        let reuse = reusable(&rec, &server, layout, Algorithm::Crc64nvme);
        let mut numbers: Vec<u32> = reuse.keys().copied().collect();
        numbers.sort();
        assert_eq!(numbers, [1, 2]);
        assert_eq!(reuse[&2].done.etag, "b");
    }

    #[test]
    fn parts_outside_the_layout_or_of_the_wrong_size_are_sent_again() {
        let layout = PartLayout::new(10 * MIB, 5 * MIB).unwrap(); // 2 parts
        let rec = [
            recorded(0, 5 * MIB, "z"),
            recorded(1, 4 * MIB, "a"),
            recorded(3, 5 * MIB, "c"),
        ];
        let server = [
            listed(0, 5 * MIB, "z"),
            listed(1, 4 * MIB, "a"),
            listed(3, 5 * MIB, "c"),
        ];
        assert!(reusable(&rec, &server, layout, Algorithm::Crc64nvme).is_empty());
    }
}
