//! What the tasks of one engine run share: the store, the settings, the
//! permits, the buffer pools, progress, the journal and the stop signal.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::buffers::BufferPool;
use super::job::{Job, UploadSettings};
use super::permits::Permits;
use crate::cancel::Stop;
use crate::digest::Digests;
use crate::journal::{FileState, Record, Recorder};
use crate::progress::Transfer;
use crate::stages::verify::How;
use crate::store::{BodyChecksum, ObjectStore};
use crate::types::UploadId;

/// Small-file read buffers: allocated with at least this capacity (most
/// shop images fit), and kept for reuse up to `SMALL_BUFFER_MAX`, one per
/// request slot but no more than the memory budget holds, so idle buffers
/// never exceed `--max-memory` (16 MiB in the usual case at the defaults).
const SMALL_BUFFER_MIN: usize = 256 * 1024;
const SMALL_BUFFER_MAX: usize = 1024 * 1024;

/// The memory budget, grown to hold the largest single buffer so that no
/// buffer waits forever.
pub(super) fn effective_memory(settings: &UploadSettings) -> u64 {
    let biggest = settings.multipart_threshold.max(settings.part_size);
    settings.max_memory.max(biggest)
}

/// How many small-file buffers the pool keeps.
fn small_buffers_kept(settings: &UploadSettings) -> usize {
    let by_budget = effective_memory(settings) / SMALL_BUFFER_MAX as u64;
    settings.concurrency.min(by_budget as usize).max(1)
}

pub(super) struct Ctx<S> {
    pub store: S,
    pub root: PathBuf,
    pub settings: UploadSettings,
    pub permits: Permits,
    pub part_buffers: Arc<BufferPool>,
    pub small_buffers: Arc<BufferPool>,
    pub progress: Transfer,
    journal: Option<Recorder>,
    pub stop: Stop,
    /// Bytes of source files read so far (to send, or to hash).
    read: AtomicU64,
    /// Why the server cannot copy (it said it does not implement it):
    /// no more copies are tried.
    copy_refused: std::sync::OnceLock<String>,
}

impl<S> Ctx<S> {
    pub(super) fn new(
        store: S,
        root: PathBuf,
        settings: &UploadSettings,
        progress: Transfer,
        journal: Option<Recorder>,
        stop: Stop,
    ) -> Self {
        let memory = effective_memory(settings);
        Self {
            store,
            root,
            permits: Permits::new(settings.concurrency, memory, settings.hash_threads),
            part_buffers: BufferPool::new(settings.part_size as usize, memory),
            small_buffers: BufferPool::sized(
                SMALL_BUFFER_MIN,
                SMALL_BUFFER_MAX,
                small_buffers_kept(settings),
            ),
            settings: settings.clone(),
            progress,
            journal,
            stop,
            read: AtomicU64::new(0),
            copy_refused: std::sync::OnceLock::new(),
        }
    }

    /// The server cannot copy: every later copy is an upload instead.
    pub(super) fn refuse_copies(&self, why: &str) {
        if self.copy_refused.set(why.to_string()).is_ok() {
            tracing::warn!(
                "the server cannot copy objects ({why}): duplicates are uploaded from their own files"
            );
        }
    }

    /// Why copies are not tried any more, if they are not.
    pub(super) fn copies_refused(&self) -> Option<String> {
        self.copy_refused.get().cloned()
    }

    /// Counts `bytes` of a source file read.
    pub(super) fn count_read(&self, bytes: u64) {
        self.read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes of source files read so far.
    pub(super) fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Whether nothing new may start: a stop was asked for, or the journal
    /// can no longer record what is done.
    pub(super) fn halted(&self) -> bool {
        self.stop.requested() || self.journal.as_ref().is_some_and(Recorder::failed)
    }

    pub(super) fn record(&self, r: Record) {
        if let Some(j) = &self.journal {
            j.record(r);
        }
    }

    /// Records `r` and waits until the journal committed it.
    pub(super) async fn record_committed(&self, r: Record) -> Result<(), super::job::JobError> {
        match &self.journal {
            Some(j) => j.record_committed(r).await.map_err(|e| {
                super::job::JobError::Failed(format!("the journal could not record it: {e}"))
            }),
            None => Ok(()),
        }
    }

    pub(super) fn record_digests(&self, job: &Job, digests: Digests) {
        self.record(Record::Digests {
            path: job.rel.to_string(),
            digests,
        });
    }

    /// The job's object is proven (`how`; `whole`, its whole checksum):
    /// recorded, counted (`bytes` not yet counted as sent), and reported.
    pub(super) fn proven(
        &self,
        job: &Job,
        how: How,
        whole: Option<&BodyChecksum>,
        bytes: u64,
        copied: bool,
    ) -> super::job::Uploaded {
        self.record_verified(job, how, whole);
        self.progress.object_done(bytes);
        super::job::Uploaded {
            object: job.object,
            verification: how,
            bytes: job.size,
            copied,
        }
    }

    /// The object is proven (`how`); `whole` is its whole checksum.
    fn record_verified(&self, job: &Job, how: How, whole: Option<&BodyChecksum>) {
        self.record(Record::KeyState {
            key: job.key.clone(),
            state: FileState::Verified,
            verification: Some(how.name().to_string()),
            checksum: whole.map(BodyChecksum::record),
            error: None,
        });
    }

    pub(super) fn record_failed(&self, job: &Job, error: &str) {
        self.record(Record::KeyState {
            key: job.key.clone(),
            state: FileState::Failed,
            verification: None,
            checksum: None,
            error: Some(error.to_string()),
        });
    }

    /// The upload completed or was abandoned: its id is spent.
    pub(super) fn upload_ended(&self, upload: &UploadId) {
        self.record(Record::UploadEnded {
            upload_id: upload.clone(),
        });
    }
}

impl<S: ObjectStore> Ctx<S> {
    /// Aborts a multipart upload that will never complete, and forgets it.
    /// A failure is only a warning: `mediashift gc` cleans up.
    pub(super) async fn abort(&self, job: &Job, upload: &UploadId) {
        // NoSuchUpload: nothing left to abort (it completed, or was
        // aborted already).
        if let Err(e) = self.store.abort_multipart(&job.key, upload).await
            && e.kind() != crate::store::ErrorKind::NotFound
        {
            tracing::warn!(
                "could not abort the multipart upload of {}: {e} (`mediashift gc` cleans it up)",
                job.key
            );
        }
        self.upload_ended(upload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::Algorithm;
    use crate::store::ObjectOptions;

    fn settings(concurrency: usize, max_memory: u64) -> UploadSettings {
        UploadSettings {
            algorithm: Algorithm::Crc64nvme,
            concurrency,
            max_memory,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            large_files: 1,
            hash_threads: 1,
            options: ObjectOptions::default(),
            copy_limit: crate::limits::MAX_COPY_OBJECT,
        }
    }

    #[test]
    fn memory_budget_fits_the_largest_buffer() {
        assert_eq!(effective_memory(&settings(4, 1)), 16 << 20);
    }

    #[test]
    fn idle_small_buffers_stay_within_the_memory_budget() {
        assert_eq!(
            small_buffers_kept(&settings(64, 128 << 20)),
            64,
            "one per request slot"
        );
        assert_eq!(
            small_buffers_kept(&settings(64, 32 << 20)),
            32,
            "no more than the budget holds"
        );
        assert_eq!(small_buffers_kept(&settings(1, 128 << 20)), 1);
    }
}
