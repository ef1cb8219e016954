//! [`Journal`]: the journal of one migration, open and locked for this
//! process, with its writer thread.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::read::{self, PlacedFacts, PlacedFile};
use super::records::{FileRow, Identity, JournalError, ObjectSettingsRow, OffloadRow, UploadRow};
use super::schema;
use super::writer::{Recorder, Writer};

/// An open journal, locked for this process.
pub struct Journal {
    path: PathBuf,
    conn: Connection,
    _lock: File,
    writer: Option<Writer>,
}

impl Journal {
    /// Opens (creating if needed) and locks the journal in `dir` for a
    /// migration with `identity`.
    pub fn open(dir: &Path, identity: &Identity) -> Result<Self, JournalError> {
        let (path, conn, lock) = schema::open_locked(dir, identity)?;
        Ok(Self {
            path,
            conn,
            _lock: lock,
            writer: None,
        })
    }

    /// Opens and locks the journal that must already be in `dir`, with the
    /// identity of its migration (for commands that act on its files).
    pub fn open_existing(dir: &Path) -> Result<(Self, Identity), JournalError> {
        let (path, conn, lock, identity) = schema::open_existing_locked(dir)?;
        let journal = Self {
            path,
            conn,
            _lock: lock,
            writer: None,
        };
        Ok((journal, identity))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records what this run writes objects with (replacing an earlier
    /// run's).
    pub fn set_object_settings(&self, row: &ObjectSettingsRow) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT INTO object_settings (id, cache_control, content_types) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET cache_control = ?1, content_types = ?2",
                rusqlite::params![row.cache_control, row.content_types],
            )
            .map_err(JournalError::sql(&self.path))?;
        Ok(())
    }

    /// Files `offload` took out of SOURCE_DIR or is taking, by path.
    pub fn offloads(&self) -> Result<HashMap<String, OffloadRow>, JournalError> {
        read::offloads(&self.conn, &self.path)
    }

    /// All file rows in path order (byte order, as the walk sorts).
    pub fn files(&self) -> Result<Vec<FileRow>, JournalError> {
        read::files(&self.conn, &self.path)
    }

    /// Every file row in path order, handed to `each` as it is read (a
    /// million rows are never held at once).
    pub fn each_file<E: From<JournalError>>(
        &self,
        each: impl FnMut(FileRow) -> Result<(), E>,
    ) -> Result<(), E> {
        read::each_file(&self.conn, &self.path, each)
    }

    /// Every file the URL maps hold, in path order, handed to `each` as it
    /// is read. Flush first: it reads what is committed.
    pub fn each_placed<E: From<JournalError>>(
        &self,
        each: impl FnMut(PlacedFile) -> Result<(), E>,
    ) -> Result<(), E> {
        read::each_placed(&self.conn, &self.path, each)
    }

    /// What the nginx map needs to know of the placed files before its
    /// first row.
    pub fn placed_facts(&self) -> Result<PlacedFacts, JournalError> {
        read::placed_facts(&self.conn, &self.path)
    }

    /// Multipart uploads in progress, with their parts, by key.
    pub fn uploads(&self) -> Result<HashMap<String, UploadRow>, JournalError> {
        read::uploads(&self.conn, &self.path)
    }

    /// Keys an earlier run may have left an unrecorded upload for.
    pub fn upload_intents(&self) -> Result<HashMap<String, String>, JournalError> {
        read::upload_intents(&self.conn, &self.path)
    }

    /// Starts the writer thread (once) and returns a handle to send records.
    pub fn recorder(&mut self) -> Result<Recorder, JournalError> {
        if self.writer.is_none() {
            self.writer = Some(Writer::start(&self.path)?);
        }
        Ok(self
            .writer
            .as_ref()
            .map(Writer::recorder)
            .expect("just started"))
    }

    /// Waits until everything sent so far is committed.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.writer.as_ref().map_or(Ok(()), Writer::flush)
    }

    /// Time the writer spent in transactions, for the report.
    pub fn write_time(&self) -> Duration {
        self.writer
            .as_ref()
            .map_or(Duration::ZERO, Writer::write_time)
    }

    /// Flushes and stops the writer.
    pub fn close(mut self) -> Result<(), JournalError> {
        let r = self.flush();
        self.writer = None;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digests;
    use crate::journal::read::{Reader, StateCount};
    use crate::journal::records::{FileState, PartRow, Record};
    use crate::types::{Sha256Digest, UploadId};

    fn identity() -> Identity {
        Identity {
            source: "/srv/media".into(),
            destination: "s3://b/p/".into(),
            key_layout: "preserve".into(),
            checksum: "crc64nvme".into(),
            shard: String::new(),
        }
    }

    fn row(path: &str, key: &str) -> FileRow {
        FileRow {
            path: path.into(),
            size: 3,
            mtime_ns: 7,
            ino: 9,
            digests: Some(Digests::of_bytes(b"abc")),
            key: Some(key.into()),
            state: FileState::Planned,
            verification: None,
            checksum: None,
            error: None,
        }
    }

    #[test]
    fn records_survive_reopen_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path(), &identity()).unwrap();
            let rec = j.recorder().unwrap();
            rec.record(Record::File(row("b.jpg", "p/b.jpg")));
            rec.record(Record::File(row("a.jpg", "p/a.jpg")));
            rec.record(Record::File(row("a-dup.jpg", "p/a.jpg")));
            rec.record(Record::KeyState {
                key: "p/a.jpg".into(),
                state: FileState::Verified,
                verification: Some("checksum_in_response".into()),
                checksum: None,
                error: None,
            });
            j.close().unwrap();
        }
        let j = Journal::open(dir.path(), &identity()).unwrap();
        let files = j.files().unwrap();
        let summary: Vec<_> = files.iter().map(|f| (f.path.as_str(), f.state)).collect();
        assert_eq!(
            summary,
            [
                ("a-dup.jpg", FileState::Verified),
                ("a.jpg", FileState::Verified),
                ("b.jpg", FileState::Planned)
            ]
        );
        assert_eq!(files[0].digests, Some(Digests::of_bytes(b"abc")));
    }

    #[test]
    fn a_damaged_upload_digest_reads_as_one_no_file_has() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), &identity()).unwrap();
        j.conn
            .execute(
                "INSERT INTO uploads (upload_id, key, path, part_size, size, mtime_ns, sha256, started_at)
                 VALUES ('u1', 'p/v.mp4', 'v.mp4', 5, 11, 1, x'0102', 10)",
                [],
            )
            .unwrap();
        let ups = j.uploads().unwrap();
        assert_eq!(ups["p/v.mp4"].sha256, Some(Sha256Digest([0; 32])));
        assert_ne!(Digests::of_bytes(b"").sha256, Sha256Digest([0; 32]));
    }

    #[test]
    fn uploads_and_parts_round_trip_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), &identity()).unwrap();
        let rec = j.recorder().unwrap();
        let up = UploadRow {
            key: "p/v.mp4".into(),
            path: "v.mp4".into(),
            upload_id: UploadId("u1".into()),
            part_size: 5 << 20,
            size: 11 << 20,
            mtime_ns: 1,
            sha256: Some(Sha256Digest([1; 32])),
            started_at: 10,
            parts: vec![],
        };
        rec.record(Record::UploadStarted(up.clone()));
        for n in [2, 1] {
            rec.record(Record::PartDone {
                upload_id: UploadId("u1".into()),
                part: PartRow {
                    number: n,
                    size: 5 << 20,
                    checksum: format!("c{n}"),
                    crc64: n as u64,
                    etag: format!("\"e{n}\""),
                },
            });
        }
        j.flush().unwrap();
        let ups = j.uploads().unwrap();
        let got = &ups["p/v.mp4"];
        assert_eq!(got.upload_id, up.upload_id);
        assert_eq!(got.sha256, up.sha256);
        assert_eq!(
            got.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
            [1, 2]
        );
        rec.record(Record::UploadEnded {
            upload_id: UploadId("u1".into()),
        });
        j.flush().unwrap();
        assert!(j.uploads().unwrap().is_empty());
        let parts: i64 = j
            .conn
            .query_row("SELECT COUNT(*) FROM parts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(parts, 0, "parts go with their upload");
    }

    #[test]
    fn a_second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _j = Journal::open(dir.path(), &identity()).unwrap();
        match Journal::open(dir.path(), &identity()) {
            Err(JournalError::Locked { holder, .. }) => {
                assert!(holder.contains(&std::process::id().to_string()))
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a second open must fail"),
        }
    }

    #[test]
    fn another_migration_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Journal::open(dir.path(), &identity()).unwrap();
        let other = Identity {
            destination: "s3://b/other/".into(),
            ..identity()
        };
        let err = Journal::open(dir.path(), &other).err().unwrap();
        assert!(matches!(err, JournalError::OtherRun { .. }));
        assert!(err.to_string().contains("use another --state"), "{err}");

        // The same migration's other shard: said so.
        let shard = Identity {
            shard: "1/3".into(),
            ..identity()
        };
        let err = Journal::open(dir.path(), &shard).err().unwrap();
        assert!(matches!(err, JournalError::OtherShard { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("is the unsharded migration's; this run is shard 1/3"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_state_is_a_damaged_journal_not_a_planned_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), &identity()).unwrap();
        j.recorder()
            .unwrap()
            .record(Record::File(row("a.jpg", "p/a.jpg")));
        j.flush().unwrap();
        j.conn
            .execute("UPDATE files SET state = 'bogus'", [])
            .unwrap();
        let err = j.files().unwrap_err();
        assert!(matches!(err, JournalError::Damaged { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("a.jpg has the unknown state 'bogus'"), "{msg}");
        assert!(msg.contains("move it aside"), "{msg}");
        let r = Reader::open(dir.path()).unwrap();
        assert!(matches!(r.counts(), Err(JournalError::Damaged { .. })));
    }

    #[test]
    fn the_reader_sees_counts_uploads_failures_and_verified_objects() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), &identity()).unwrap();
        let rec = j.recorder().unwrap();
        rec.record(Record::File(row("a.jpg", "p/a.jpg")));
        rec.record(Record::File(row("a-dup.jpg", "p/a.jpg")));
        rec.record(Record::File(row("b.jpg", "p/b.jpg")));
        rec.record(Record::File(row("c.jpg", "p/c.jpg")));
        rec.record(Record::KeyState {
            key: "p/a.jpg".into(),
            state: FileState::Verified,
            verification: Some("checksum_in_head".into()),
            checksum: Some("CRC32C:AAAAAA==".into()),
            error: None,
        });
        rec.record(Record::KeyState {
            key: "p/c.jpg".into(),
            state: FileState::Failed,
            verification: None,
            checksum: None,
            error: Some("refused".into()),
        });
        j.flush().unwrap();
        let r = Reader::open(dir.path()).unwrap();
        assert_eq!(r.identity(), &identity());
        assert_eq!(
            r.counts().unwrap(),
            [
                StateCount {
                    state: FileState::Planned,
                    files: 1,
                    bytes: 3
                },
                StateCount {
                    state: FileState::Verified,
                    files: 2,
                    bytes: 6
                },
                StateCount {
                    state: FileState::Failed,
                    files: 1,
                    bytes: 3
                },
            ]
        );
        let failures = r.failures().unwrap();
        assert_eq!(
            (failures[0].path.as_str(), failures[0].error.as_str()),
            ("c.jpg", "refused")
        );
        let verified = r.verified().unwrap();
        assert_eq!(verified.len(), 1);
        assert_eq!(
            (verified[0].key.as_str(), verified[0].path.as_str()),
            ("p/a.jpg", "a-dup.jpg")
        );
        assert_eq!(verified[0].checksum.as_deref(), Some("CRC32C:AAAAAA=="));
        assert_eq!(r.keys().unwrap().len(), 3);
        assert!(r.in_flight().unwrap().is_empty() && r.resumable().unwrap().is_empty());
        assert!(matches!(
            Reader::open(&dir.path().join("nowhere")),
            Err(JournalError::Missing { .. })
        ));
    }

    #[test]
    fn a_journal_from_before_recorded_checksums_gets_the_column() {
        let dir = tempfile::tempdir().unwrap();
        drop(Journal::open(dir.path(), &identity()).unwrap());
        let path = dir.path().join(super::schema::FILE_NAME);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("ALTER TABLE files DROP COLUMN checksum")
                .unwrap();
            c.execute(
                "INSERT INTO files (path, size, mtime_ns, ino, key, state, updated_at)
                 VALUES ('a.jpg', 3, 7, 9, 'p/a.jpg', 'verified', 1)",
                [],
            )
            .unwrap();
        }
        // Read-only, it reads as unrecorded; opened for a run, it is added.
        let r = Reader::open(dir.path()).unwrap();
        assert_eq!(r.verified().unwrap()[0].checksum, None);
        drop(r);
        let j = Journal::open(dir.path(), &identity()).unwrap();
        assert_eq!(j.files().unwrap()[0].checksum, None);
    }

    #[test]
    fn offloads_go_from_intent_to_done_and_restore_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path(), &identity()).unwrap();
            let rec = j.recorder().unwrap();
            rec.record(Record::File(row("a.jpg", "p/a.jpg")));
            rec.record(Record::File(row("b.jpg", "p/b.jpg")));
            j.close().unwrap();
        }
        // Only an existing journal opens this way, with its identity.
        assert!(matches!(
            Journal::open_existing(&dir.path().join("none")),
            Err(JournalError::Missing { .. })
        ));
        let (mut j, id) = Journal::open_existing(dir.path()).unwrap();
        assert_eq!(id, identity());
        let rec = j.recorder().unwrap();
        let offload = |path: &str| OffloadRow {
            path: path.into(),
            done: false,
            place: Some(format!("/q/{path}")),
            size: 3,
            mtime_ns: 7,
            mode: 0o644,
            uid: 1,
            gid: 2,
            at: 0,
        };
        rec.record(Record::OffloadStarted(offload("a.jpg")));
        rec.record(Record::OffloadStarted(offload("b.jpg")));
        j.flush().unwrap();
        let o = j.offloads().unwrap();
        assert!(!o["a.jpg"].done && !o["b.jpg"].done);
        assert_eq!(o["a.jpg"].place.as_deref(), Some("/q/a.jpg"));
        rec.record(Record::Offloaded {
            path: "a.jpg".into(),
        });
        rec.record(Record::OffloadDropped {
            path: "b.jpg".into(),
        });
        j.flush().unwrap();
        let o = j.offloads().unwrap();
        assert!(o["a.jpg"].done);
        assert!(!o.contains_key("b.jpg"));
        let r = Reader::open(dir.path()).unwrap();
        assert_eq!(r.offloaded().unwrap().files, 1);
        assert_eq!(r.offloaded().unwrap().bytes, 3);
        drop(r);
        rec.record(Record::Restored {
            path: "a.jpg".into(),
            ino: 42,
        });
        j.flush().unwrap();
        assert!(j.offloads().unwrap().is_empty());
        assert_eq!(j.files().unwrap()[0].ino, 42);
    }
}
