//! What the journal holds and what is sent to it: typed rows, records,
//! and the journal's errors.

use std::path::Path;

use serde::Serialize;

use crate::digest::Digests;
use crate::types::{Sha256Digest, UploadId};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "the journal {path} is in use by another mediashift run{holder}: wait for it to finish, or use another --state"
    )]
    Locked { path: String, holder: String },
    #[error(
        "the journal in {dir} belongs to another migration ({theirs}); this one is {ours}: use another --state DIR for it (or delete {dir} to start over)"
    )]
    OtherRun {
        dir: String,
        theirs: String,
        ours: String,
    },
    #[error(
        "the journal in {dir} is {theirs}'s; this run is {ours}: give each shard its own --state DIR (and --map-dir)"
    )]
    OtherShard {
        dir: String,
        theirs: String,
        ours: String,
    },
    #[error("no journal in {dir}: give the --state DIR the migration used")]
    Missing { dir: String },
    #[error(
        "the journal {path} is damaged ({detail}): move it aside and run again (the bucket is the truth)"
    )]
    Damaged { path: String, detail: String },
    #[error("journal {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("journal directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state directory {dir} cannot be written ({source}): free space on its disk or give another --state"
    )]
    NotWritable {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot write the journal {path} ({detail}): uploads stopped; free space on its disk and run again (what was recorded is kept, the rest is checked again)"
    )]
    WriteFailed { path: String, detail: String },
    #[error("{0}")]
    Other(String),
}

impl JournalError {
    /// Maps an SQLite error to one naming the journal file.
    /// Maps an SQLite error to one naming the journal file; a file that is
    /// not a database, or a damaged one, is said so with what to do.
    pub(super) fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> Self + '_ {
        move |source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                Self::Damaged {
                    path: path.display().to_string(),
                    detail: "it is not a readable SQLite database".into(),
                }
            }
            _ => Self::Sqlite {
                path: path.display().to_string(),
                source,
            },
        }
    }
}

/// What makes two runs the same migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub source: String,
    pub destination: String,
    pub key_layout: String,
    pub checksum: String,
    /// `I/N` for one shard of a split migration; empty for a whole one.
    pub shard: String,
}

impl Identity {
    /// Refuses a journal (in `state_dir`) of another migration than
    /// `source` -> `destination`.
    pub fn check_same(
        &self,
        state_dir: &Path,
        source: &Path,
        destination: &str,
    ) -> Result<(), JournalError> {
        let source = source.display().to_string();
        if self.source != source || self.destination != destination {
            return Err(JournalError::Other(format!(
                "the journal in {} is for {} -> {}, not {source} -> {destination}: give the --state of this migration",
                state_dir.display(),
                self.source,
                self.destination
            )));
        }
        Ok(())
    }

    pub(super) fn describe(&self) -> String {
        let mut d = format!(
            "{} -> {}, key layout {}, checksum {}",
            self.source, self.destination, self.key_layout, self.checksum
        );
        if !self.shard.is_empty() {
            d.push_str(&format!(", shard {}", self.shard));
        }
        d
    }
}

/// A file's state in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    Planned,
    Uploading,
    Uploaded,
    Verified,
    Failed,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Uploading => "uploading",
            Self::Uploaded => "uploaded",
            Self::Verified => "verified",
            Self::Failed => "failed",
        }
    }

    /// The state a stored name stands for; `None` for a name no version of
    /// mediashift writes (a damaged journal).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Planned,
            Self::Uploading,
            Self::Uploaded,
            Self::Verified,
            Self::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A file's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub digests: Option<Digests>,
    pub key: Option<String>,
    pub state: FileState,
    /// How the object was proven (a `verify::How` name).
    pub verification: Option<String>,
    /// The object's whole checksum that proved it, when the file's digests
    /// alone cannot (`CRC32C:…`, `SHA256:…-N`), for `verify`.
    pub checksum: Option<String>,
    pub error: Option<String>,
}

/// A part the server acknowledged, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    pub number: u32,
    pub size: u64,
    /// Base64 checksum of the run's algorithm.
    pub checksum: String,
    pub crc64: u64,
    pub etag: String,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    pub key: String,
    pub path: String,
    pub upload_id: UploadId,
    pub part_size: u64,
    pub size: u64,
    pub mtime_ns: i64,
    /// The file's SHA-256 when it was known as the upload began (dedup had
    /// hashed it); `None` when it is computed from the parts as they are
    /// read, so that the file is read once.
    pub sha256: Option<Sha256Digest>,
    pub started_at: i64,
    pub parts: Vec<PartRow>,
}

/// What every object of the migration was written with, beyond its bytes:
/// what a visitor should get with them (`verify --via-url`). The last
/// `migrate`'s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSettingsRow {
    /// `--cache-control`, if given.
    pub cache_control: Option<String>,
    /// `--content-type EXT=TYPE` overrides, one `ext=type` per line.
    pub content_types: String,
}

/// A file `offload` took out of SOURCE_DIR, or is taking (`done` false:
/// the intent was recorded before the move, so a rerun after a crash knows
/// whose move it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffloadRow {
    pub path: String,
    pub done: bool,
    /// The quarantine copy; `None` when the file was deleted.
    pub place: Option<String>,
    pub size: u64,
    pub mtime_ns: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// When it was recorded (seconds since the epoch).
    pub at: i64,
}

/// Something to write.
#[derive(Debug, Clone)]
pub enum Record {
    /// Insert or refresh a file's row (walk facts, digests, key, state).
    File(FileRow),
    /// Every file whose key is `key` is now in `state`.
    KeyState {
        key: String,
        state: FileState,
        verification: Option<String>,
        checksum: Option<String>,
        error: Option<String>,
    },
    /// The digests of a file, for the hash cache.
    Digests {
        path: String,
        digests: Digests,
    },
    /// A CreateMultipartUpload for `key` is about to be sent. Committed
    /// before the request goes, and cleared by the key's `UploadStarted`:
    /// an intent still there on the next run means a kill came between
    /// the two, so the server may hold an upload the journal never named.
    UploadIntent {
        key: String,
        path: String,
    },
    /// A multipart upload began (clears the key's intent).
    UploadStarted(UploadRow),
    PartDone {
        upload_id: UploadId,
        part: PartRow,
    },
    /// The upload completed or was abandoned: forget it and its parts.
    UploadEnded {
        upload_id: UploadId,
    },
    /// `offload` is about to move or delete this file.
    OffloadStarted(OffloadRow),
    /// ...and did.
    Offloaded {
        path: String,
    },
    /// ...and did not: the file stays where it is.
    OffloadDropped {
        path: String,
    },
    /// `restore` put the file back (as inode `ino`).
    Restored {
        path: String,
        ino: u64,
    },
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_names_are_refused() {
        for s in [
            FileState::Planned,
            FileState::Uploading,
            FileState::Uploaded,
            FileState::Verified,
            FileState::Failed,
        ] {
            assert_eq!(FileState::parse(s.as_str()), Some(s));
        }
        assert_eq!(FileState::parse("bogus"), None);
        assert_eq!(FileState::parse(""), None);
    }
}
