//! The durable journal: what a migration has done, so that the same command
//! run again continues where it stopped, whatever stopped it.
//!
//! SQLite (WAL mode) in `--state DIR/journal.sqlite`. It records the run's
//! identity (source, destination, key layout, checksum), each file (path,
//! size, mtime, inode, digests once known, key, state), each multipart
//! upload in progress (upload id, part size) and each acknowledged part
//! (number, size, checksum, ETag).
//!
//! Durability contract:
//! - a part is recorded only after the server acknowledged it and its
//!   checksum matched; an object is recorded `verified` only after the
//!   post-upload check;
//! - records are written by one thread, in order, batched into transactions
//!   (up to 20 ms or 4,096 records), so the journal never limits throughput;
//! - a crash at any instant leaves the journal as of its last committed
//!   transaction, which is consistent: at worst the last batch is redone
//!   (a few parts re-sent, a few objects re-checked);
//! - one process at a time: an exclusive lock on `DIR/lock` is held for the
//!   whole run; a second run fails at once instead of racing.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::dedup::Digests;
use crate::types::{Crc64Nvme, Sha256Digest, UploadId};

pub const FILE_NAME: &str = "journal.sqlite";
const SCHEMA_VERSION: i64 = 1;
const BATCH_RECORDS: usize = 4096;
const BATCH_TIME: Duration = Duration::from_millis(20);

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
    #[error("{0}")]
    Other(String),
}

/// What makes two runs the same migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub source: String,
    pub destination: String,
    pub key_layout: String,
    pub checksum: String,
}

impl Identity {
    fn describe(&self) -> String {
        format!(
            "{} -> {}, key layout {}, checksum {}",
            self.source, self.destination, self.key_layout, self.checksum
        )
    }
}

/// A file's state in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    Planned,
    Uploading,
    Uploaded,
    Verified,
    Failed,
}

impl FileState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Uploading => "uploading",
            Self::Uploaded => "uploaded",
            Self::Verified => "verified",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "uploading" => Self::Uploading,
            "uploaded" => Self::Uploaded,
            "verified" => Self::Verified,
            "failed" => Self::Failed,
            _ => Self::Planned,
        }
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
    pub verification: Option<String>,
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
    pub sha256: Sha256Digest,
    pub started_at: i64,
    pub parts: Vec<PartRow>,
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
        error: Option<String>,
    },
    /// The digests of a file, for the hash cache.
    Digests {
        path: String,
        digests: Digests,
    },
    UploadStarted(UploadRow),
    PartDone {
        upload_id: UploadId,
        part: PartRow,
    },
    /// The upload completed or was abandoned: forget it and its parts.
    UploadEnded {
        upload_id: UploadId,
    },
}

enum Msg {
    Record(Box<Record>),
    Flush(std::sync::mpsc::Sender<Result<(), String>>),
    /// Commit what is pending and end the writer thread.
    Shutdown,
}

/// A cheap handle for sending records (from any task).
#[derive(Clone)]
pub struct Recorder {
    tx: UnboundedSender<Msg>,
}

impl Recorder {
    pub fn record(&self, r: Record) {
        // If the writer is gone the run is ending; the record is lost, which
        // the contract allows (it is redone next run).
        let _ = self.tx.send(Msg::Record(Box::new(r)));
    }
}

/// An open journal, locked for this process.
pub struct Journal {
    path: PathBuf,
    conn: Connection,
    _lock: File,
    writer: Option<std::thread::JoinHandle<()>>,
    tx: Option<UnboundedSender<Msg>>,
    write_nanos: Arc<AtomicU64>,
}

/// Every row of `query` with `params`, each mapped by `row`; errors name
/// the journal file. Statements are cached, so a query run once per upload
/// is prepared once.
pub fn query_all<T, P: rusqlite::Params>(
    conn: &Connection,
    path: &Path,
    query: &str,
    params: P,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, JournalError> {
    let mut stmt = conn.prepare_cached(query).map_err(sql(path))?;
    let rows = stmt.query_map(params, row).map_err(sql(path))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql(path))
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
    move |source| JournalError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

fn open_conn(path: &Path) -> Result<Connection, JournalError> {
    let conn = Connection::open(path).map_err(sql(path))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(sql(path))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(sql(path))?;
    Ok(conn)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    key_layout TEXT NOT NULL,
    checksum TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    sha256 BLOB,
    crc64 INTEGER,
    key TEXT,
    state TEXT NOT NULL,
    verification TEXT,
    error TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_key ON files(key);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    path TEXT NOT NULL,
    part_size INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    crc64 INTEGER NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (upload_id, number)
);
";

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Journal {
    /// Opens (creating if needed) and locks the journal in `dir` for a
    /// migration with `identity`.
    pub fn open(dir: &Path, identity: &Identity) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = lock(dir)?;
        let path = dir.join(FILE_NAME);
        let conn = open_conn(&path)?;
        conn.execute_batch(SCHEMA).map_err(sql(&path))?;
        let theirs: Option<(i64, Identity)> = conn
            .query_row(
                "SELECT schema_version, source, destination, key_layout, checksum FROM meta WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        Identity {
                            source: r.get(1)?,
                            destination: r.get(2)?,
                            key_layout: r.get(3)?,
                            checksum: r.get(4)?,
                        },
                    ))
                },
            )
            .optional()
            .map_err(sql(&path))?;
        match theirs {
            None => {
                conn.execute(
                    "INSERT INTO meta (id, schema_version, source, destination, key_layout, checksum, created_at)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        SCHEMA_VERSION,
                        identity.source,
                        identity.destination,
                        identity.key_layout,
                        identity.checksum,
                        now_s()
                    ],
                )
                .map_err(sql(&path))?;
            }
            Some((version, _)) if version != SCHEMA_VERSION => {
                return Err(JournalError::Other(format!(
                    "the journal {} has schema version {version}; this mediashift reads version {SCHEMA_VERSION}: use another --state",
                    path.display()
                )));
            }
            Some((_, theirs)) if theirs != *identity => {
                return Err(JournalError::OtherRun {
                    dir: dir.display().to_string(),
                    theirs: theirs.describe(),
                    ours: identity.describe(),
                });
            }
            Some(_) => {}
        }
        Ok(Self {
            path,
            conn,
            _lock: lock,
            writer: None,
            tx: None,
            write_nanos: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Opens an existing journal read-only, without the lock (for `status`
    /// while a run goes on; WAL lets readers and the writer coexist).
    pub fn open_read_only(dir: &Path) -> Result<(Connection, Identity), JournalError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Err(JournalError::Other(format!(
                "no journal in {}: give the --state DIR the migration used",
                dir.display()
            )));
        }
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql(&path))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(sql(&path))?;
        let identity = conn
            .query_row(
                "SELECT source, destination, key_layout, checksum FROM meta WHERE id = 1",
                [],
                |r| {
                    Ok(Identity {
                        source: r.get(0)?,
                        destination: r.get(1)?,
                        key_layout: r.get(2)?,
                        checksum: r.get(3)?,
                    })
                },
            )
            .map_err(sql(&path))?;
        Ok((conn, identity))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All file rows in path order (byte order, as the walk sorts).
    pub fn files(&self) -> Result<Vec<FileRow>, JournalError> {
        read_files(&self.conn, &self.path)
    }

    /// Multipart uploads in progress, with their parts, by key.
    pub fn uploads(&self) -> Result<HashMap<String, UploadRow>, JournalError> {
        read_uploads(&self.conn, &self.path)
    }

    /// Starts the writer thread and returns a handle to send records.
    pub fn recorder(&mut self) -> Result<Recorder, JournalError> {
        if let Some(tx) = &self.tx {
            return Ok(Recorder { tx: tx.clone() });
        }
        let (tx, rx) = unbounded_channel();
        let conn = open_conn(&self.path)?;
        let nanos = self.write_nanos.clone();
        let path = self.path.clone();
        let handle = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || writer(conn, rx, nanos, path))
            .map_err(|e| JournalError::Other(format!("cannot start the journal writer: {e}")))?;
        self.writer = Some(handle);
        self.tx = Some(tx.clone());
        Ok(Recorder { tx })
    }

    /// Waits until everything sent so far is committed.
    pub fn flush(&self) -> Result<(), JournalError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        tx.send(Msg::Flush(done_tx))
            .map_err(|_| JournalError::Other("the journal writer stopped".into()))?;
        done_rx
            .recv()
            .map_err(|_| JournalError::Other("the journal writer stopped".into()))?
            .map_err(JournalError::Other)
    }

    /// Time spent writing (inside transactions), for the report.
    pub fn write_time(&self) -> Duration {
        Duration::from_nanos(self.write_nanos.load(Ordering::Relaxed))
    }

    /// Flushes and stops the writer (recorders still held elsewhere just
    /// stop recording).
    pub fn close(mut self) -> Result<(), JournalError> {
        let r = self.flush();
        self.stop_writer();
        r
    }

    fn stop_writer(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Shutdown);
        }
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop_writer();
    }
}

fn lock(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| JournalError::Io {
            path: path.display().to_string(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::{Seek, Write};
            let mut f = &file;
            let _ = f.set_len(0);
            let _ = f.seek(std::io::SeekFrom::Start(0));
            let _ = write!(f, "{}", std::process::id());
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .map(|pid| format!(" (pid {})", pid.trim()))
                .unwrap_or_default();
            Err(JournalError::Locked {
                path: dir.display().to_string(),
                holder,
            })
        }
        Err(std::fs::TryLockError::Error(source)) => Err(JournalError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn digests_from(sha: Option<Vec<u8>>, crc: Option<i64>) -> Option<Digests> {
    let sha: [u8; 32] = sha?.try_into().ok()?;
    Some(Digests {
        sha256: Sha256Digest(sha),
        crc64: Crc64Nvme(crc? as u64),
    })
}

pub fn read_files(conn: &Connection, path: &Path) -> Result<Vec<FileRow>, JournalError> {
    query_all(
        conn,
        path,
        "SELECT path, size, mtime_ns, ino, sha256, crc64, key, state, verification, error
         FROM files ORDER BY path",
        [],
        |r| {
            Ok(FileRow {
                path: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                mtime_ns: r.get(2)?,
                ino: r.get::<_, i64>(3)? as u64,
                digests: digests_from(r.get(4)?, r.get(5)?),
                key: r.get(6)?,
                state: FileState::parse(&r.get::<_, String>(7)?),
                verification: r.get(8)?,
                error: r.get(9)?,
            })
        },
    )
}

pub fn read_uploads(
    conn: &Connection,
    path: &Path,
) -> Result<HashMap<String, UploadRow>, JournalError> {
    let mut out: HashMap<String, UploadRow> = HashMap::new();
    let uploads = query_all(
        conn,
        path,
        "SELECT upload_id, key, path, part_size, size, mtime_ns, sha256, started_at FROM uploads",
        [],
        |r| {
            let sha: Vec<u8> = r.get(6)?;
            let key: String = r.get(1)?;
            // A damaged digest cannot prove the file is the one whose parts
            // were sent. All zeros matches no real file, so the resume check
            // aborts that upload and starts the file over.
            let sha256 = sha.try_into().map(Sha256Digest).unwrap_or_else(|_| {
                tracing::warn!(
                    "{}: the journal's SHA-256 for the upload of {key} is damaged; it will start over",
                    path.display()
                );
                Sha256Digest([0; 32])
            });
            Ok(UploadRow {
                upload_id: UploadId(r.get(0)?),
                key,
                path: r.get(2)?,
                part_size: r.get::<_, i64>(3)? as u64,
                size: r.get::<_, i64>(4)? as u64,
                mtime_ns: r.get(5)?,
                sha256,
                started_at: r.get(7)?,
                parts: Vec::new(),
            })
        },
    )?;
    for mut u in uploads {
        u.parts = query_all(
            conn,
            path,
            "SELECT number, size, checksum, crc64, etag FROM parts WHERE upload_id = ?1 ORDER BY number",
            [&u.upload_id.0],
            |r| {
                Ok(PartRow {
                    number: r.get::<_, i64>(0)? as u32,
                    size: r.get::<_, i64>(1)? as u64,
                    checksum: r.get(2)?,
                    crc64: r.get::<_, i64>(3)? as u64,
                    etag: r.get(4)?,
                })
            },
        )?;
        // Two uploads for one key can exist after a crash between create
        // and record; the newest wins, the other is left for `gc`.
        match out.get(&u.key) {
            Some(old) if old.started_at > u.started_at => {}
            _ => {
                out.insert(u.key.clone(), u);
            }
        }
    }
    Ok(out)
}

fn writer(
    mut conn: Connection,
    mut rx: UnboundedReceiver<Msg>,
    nanos: Arc<AtomicU64>,
    path: PathBuf,
) {
    let mut failed: Option<String> = None;
    let mut shutdown = false;
    while !shutdown && let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + BATCH_TIME;
        while batch.len() < BATCH_RECORDS && Instant::now() < deadline {
            if matches!(batch.last(), Some(Msg::Flush(_) | Msg::Shutdown)) {
                break;
            }
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        let started = Instant::now();
        let mut flushes = Vec::new();
        let records: Vec<Record> = batch
            .into_iter()
            .filter_map(|m| match m {
                Msg::Record(r) => Some(*r),
                Msg::Flush(tx) => {
                    flushes.push(tx);
                    None
                }
                Msg::Shutdown => {
                    shutdown = true;
                    None
                }
            })
            .collect();
        if failed.is_none()
            && let Err(e) = apply(&mut conn, &records)
        {
            let msg = format!("cannot write the journal {}: {e}", path.display());
            tracing::error!("{msg}");
            failed = Some(msg);
        }
        nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        for tx in flushes {
            let _ = tx.send(failed.clone().map_or(Ok(()), Err));
        }
    }
}

fn apply(conn: &mut Connection, records: &[Record]) -> rusqlite::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    crate::faults::crash_point("journal-batch");
    let tx = conn.transaction()?;
    {
        let now = now_s();
        let mut file = tx.prepare_cached(
            "INSERT INTO files (path, size, mtime_ns, ino, sha256, crc64, key, state, verification, error, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                 ino = excluded.ino, sha256 = excluded.sha256, crc64 = excluded.crc64, key = excluded.key,
                 state = excluded.state, verification = excluded.verification, error = excluded.error,
                 updated_at = excluded.updated_at",
        )?;
        let mut key_state = tx.prepare_cached(
            "UPDATE files SET state = ?2, verification = ?3, error = ?4, updated_at = ?5 WHERE key = ?1",
        )?;
        let mut digests =
            tx.prepare_cached("UPDATE files SET sha256 = ?2, crc64 = ?3 WHERE path = ?1")?;
        let mut upload = tx.prepare_cached(
            "INSERT OR REPLACE INTO uploads (upload_id, key, path, part_size, size, mtime_ns, sha256, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut part = tx.prepare_cached(
            "INSERT OR REPLACE INTO parts (upload_id, number, size, checksum, crc64, etag) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut ended = tx.prepare_cached("DELETE FROM uploads WHERE upload_id = ?1")?;
        for r in records {
            match r {
                Record::File(f) => {
                    file.execute(params![
                        f.path,
                        f.size as i64,
                        f.mtime_ns,
                        f.ino as i64,
                        f.digests.map(|d| d.sha256.0.to_vec()),
                        f.digests.map(|d| d.crc64.0 as i64),
                        f.key,
                        f.state.as_str(),
                        f.verification,
                        f.error,
                        now
                    ])?;
                }
                Record::KeyState {
                    key,
                    state,
                    verification,
                    error,
                } => {
                    key_state.execute(params![key, state.as_str(), verification, error, now])?;
                }
                Record::Digests { path, digests: d } => {
                    digests.execute(params![path, d.sha256.0.to_vec(), d.crc64.0 as i64])?;
                }
                Record::UploadStarted(u) => {
                    upload.execute(params![
                        u.upload_id.0,
                        u.key,
                        u.path,
                        u.part_size as i64,
                        u.size as i64,
                        u.mtime_ns,
                        u.sha256.0.to_vec(),
                        u.started_at
                    ])?;
                    key_state.execute(params![
                        u.key,
                        FileState::Uploading.as_str(),
                        None::<String>,
                        None::<String>,
                        now
                    ])?;
                }
                Record::PartDone { upload_id, part: p } => {
                    part.execute(params![
                        upload_id.0,
                        p.number,
                        p.size as i64,
                        p.checksum,
                        p.crc64 as i64,
                        p.etag
                    ])?;
                }
                Record::UploadEnded { upload_id } => {
                    ended.execute(params![upload_id.0])?;
                }
            }
        }
    }
    crate::faults::crash_point("journal-before-commit");
    tx.commit()
}

/// Seconds since the epoch, for upload rows.
pub fn now() -> i64 {
    now_s()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            source: "/srv/media".into(),
            destination: "s3://b/p/".into(),
            key_layout: "preserve".into(),
            checksum: "crc64nvme".into(),
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
        assert_eq!(ups["p/v.mp4"].sha256, Sha256Digest([0; 32]));
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
            sha256: Sha256Digest([1; 32]),
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
    }
}
