//! Continuing a multipart upload an earlier run began.
//!
//! The server's ListParts is the truth; the journal says which of those
//! parts this file's bytes produced. A part is reused only where both agree
//! (same number, ETag and size, at the size the layout gives it); every
//! other part is sent again. SeaweedFS lists a re-sent part number twice
//! (old and new ETag): the one the journal recorded is the one reused.

use std::collections::HashMap;

use super::context::Ctx;
use super::job::{Job, JobError};
use super::parts::SentPart;
use crate::checksum::Algorithm;
use crate::digest::Digests;
use crate::journal::PartRow;
use crate::limits::PartLayout;
use crate::store::{ListedPart, ObjectStore};
use crate::types::UploadId;

/// The upload an earlier run left for this key, if it can be continued:
/// same file (size, mtime, SHA-256), same part size, and the server still
/// knows it; with the parts to reuse. A stale upload is aborted.
pub(super) async fn resumable<S: ObjectStore>(
    ctx: &Ctx<S>,
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
        ctx.abort(job, &r.upload_id).await;
        return Ok(None);
    }
    let listed = ctx
        .permits
        .send(ctx.store.list_parts(&job.key, &r.upload_id))
        .await?;
    let Some(listed) = listed else {
        tracing::info!(
            "{}: the server no longer knows upload {}; starting over",
            job.rel,
            r.upload_id
        );
        ctx.upload_ended(&r.upload_id);
        return Ok(None);
    };
    let reuse = reusable(&r.parts, &listed, layout, ctx.settings.algorithm);
    tracing::info!(
        "{}: resuming upload {} with {} of {} parts already there",
        job.rel,
        r.upload_id,
        reuse.len(),
        layout.parts
    );
    Ok(Some((r.upload_id.clone(), reuse)))
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
