//! What the engine is given and what it hands back: the settings, one job
//! per object, the results, and how a job can fail.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checksum::Algorithm;
use crate::digest::Digests;
use crate::journal::UploadRow;
use crate::stages::verify::How;
use crate::store::{ErrorKind, NewObject, ObjectOptions, StoreError};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub algorithm: Algorithm,
    pub concurrency: usize,
    /// Bytes of file data held in memory at most.
    pub max_memory: u64,
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Large files uploading at once (their parts share `concurrency`).
    pub large_files: usize,
    pub hash_threads: usize,
    pub options: ObjectOptions,
    /// The largest object one CopyObject copies; larger copies go in parts.
    pub copy_limit: u64,
}

/// One object to upload.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index of the object in the plan.
    pub object: u32,
    pub rel: Arc<str>,
    pub key: String,
    pub content_type: String,
    pub size: u64,
    pub mtime_ns: i64,
    /// Known when dedup or the existence check already hashed the file.
    pub digests: Option<Digests>,
    /// Refuse to replace an object that appeared after planning.
    pub must_not_exist: bool,
    /// A multipart upload of this key that an earlier run began.
    pub resume: Option<UploadRow>,
    /// An earlier run was killed between sending CreateMultipartUpload for
    /// this key and recording its answer: the server may hold an upload of
    /// it that the journal never named, to be aborted.
    pub stray_upload: bool,
    /// Made by a server-side copy of another object with the same bytes
    /// (a duplicate's own object), not by reading the file.
    pub copy: Option<CopyFrom>,
}

/// The object a copy job copies.
#[derive(Debug, Clone)]
pub struct CopyFrom {
    /// Its index in the plan.
    pub object: u32,
    pub key: String,
    /// Whether this run uploads it: the copy then waits for it, and if it
    /// fails, the duplicate is uploaded from its own file instead.
    pub uploaded_now: bool,
}

impl Job {
    pub(super) fn path(&self, root: &Path) -> PathBuf {
        root.join(&*self.rel)
    }

    /// What PutObject or CreateMultipartUpload create for this job.
    pub(super) fn new_object<'a>(
        &'a self,
        metadata: &'a [(&'static str, String)],
        options: &'a ObjectOptions,
    ) -> NewObject<'a> {
        NewObject {
            key: &self.key,
            content_type: &self.content_type,
            metadata,
            options,
        }
    }

    /// The failure of this job, for the report.
    pub(super) fn failed(&self, error: String) -> Failed {
        Failed {
            path: self.rel.clone(),
            error,
        }
    }
}

/// A successful upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// Which object of the plan (the audit trail names its key).
    pub object: u32,
    pub verification: How,
    pub bytes: u64,
    /// Made by a server-side copy: its bytes did not cross the link.
    pub copied: bool,
}

/// A failed upload.
#[derive(Debug, Clone)]
pub struct Failed {
    pub path: Arc<str>,
    pub error: String,
}

/// What a run of the engine did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub uploaded: Vec<Uploaded>,
    pub failed: Vec<Failed>,
    /// Objects not finished because of a stop request.
    pub interrupted: usize,
    /// Bytes of source files the engine read (sent, or hashed first).
    pub bytes_read: u64,
}

/// Why a job did not succeed.
#[derive(Debug)]
pub(super) enum JobError {
    /// The file changed while being read: worth one more try.
    Changed(String),
    /// The store refused or failed; its kind decides what happens next.
    Store(StoreError),
    /// Failed for good by our own checks (a proof that failed, a file that
    /// cannot be read): a multipart upload is aborted.
    Failed(String),
    /// Stopped on request (Ctrl-C): nothing is aborted.
    Interrupted,
    /// A copy the server could not make or prove: the file is uploaded
    /// from its own bytes instead (over what the copy `wrote`, if it did).
    CannotCopy { why: String, wrote: bool },
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl JobError {
    /// Whether a multipart upload this error stopped is kept for the next
    /// run to resume (a network or server problem, a stop request) rather
    /// than aborted (bad data, a changed file, a refusal).
    pub(super) fn keeps_upload(&self) -> bool {
        match self {
            Self::Interrupted => true,
            Self::Store(e) => matches!(
                e.kind(),
                ErrorKind::Transient
                    | ErrorKind::Unreachable
                    | ErrorKind::Throttled
                    | ErrorKind::Timeout
            ),
            Self::Changed(_) | Self::Failed(_) | Self::CannotCopy { .. } => false,
        }
    }

    /// What the report says.
    pub(super) fn message(&self) -> String {
        match self {
            Self::Store(e) if e.kind() == ErrorKind::Precondition => format!(
                "{e} (an object appeared under this key during the run; run again to re-plan)"
            ),
            Self::Store(e) => e.to_string(),
            Self::Changed(m) | Self::Failed(m) | Self::CannotCopy { why: m, .. } => m.clone(),
            Self::Interrupted => "interrupted".into(),
        }
    }
}
