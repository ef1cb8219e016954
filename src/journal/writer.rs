//! The writer thread: records arrive over a channel from any task and are
//! committed in order, batched into transactions (up to 20 ms or 4,096
//! records), so the journal never limits throughput.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::records::{FileState, JournalError, Record, now};
use super::schema::open_conn;

const BATCH_RECORDS: usize = 4096;
const BATCH_TIME: Duration = Duration::from_millis(20);

enum Msg {
    Record(Box<Record>),
    /// Commit what is pending, then say how it went.
    Flush(Box<dyn FnOnce(Result<(), String>) + Send>),
    /// Commit what is pending and end the writer thread.
    Shutdown,
}

/// Why the writer stopped writing, once it has: shared with every
/// recorder, so the run stops starting work the journal cannot record.
type Failure = Arc<Mutex<Option<String>>>;

/// A cheap handle for sending records (from any task).
#[derive(Clone)]
pub struct Recorder {
    tx: UnboundedSender<Msg>,
    failure: Failure,
}

impl Recorder {
    pub fn record(&self, r: Record) {
        // If the writer is gone the run is ending; the record is lost, which
        // the contract allows (it is redone next run).
        let _ = self.tx.send(Msg::Record(Box::new(r)));
    }

    /// Records `r` and waits until it is committed: for a record that must
    /// be on disk before the request it describes is sent.
    pub async fn record_committed(&self, r: Record) -> Result<(), String> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let stopped = || "the journal writer stopped".to_string();
        self.tx
            .send(Msg::Record(Box::new(r)))
            .map_err(|_| stopped())?;
        self.tx
            .send(Msg::Flush(Box::new(move |r| {
                let _ = done_tx.send(r);
            })))
            .map_err(|_| stopped())?;
        done_rx.await.map_err(|_| stopped())?
    }

    /// Whether the journal can no longer be written (a full disk, say):
    /// nothing new should start, since it could not be recorded.
    pub fn failed(&self) -> bool {
        self.failure.lock().map_or(true, |f| f.is_some())
    }
}

/// The running writer thread.
pub(super) struct Writer {
    tx: UnboundedSender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
    nanos: Arc<AtomicU64>,
    failure: Failure,
    path: PathBuf,
}

impl Writer {
    /// Starts a writer on its own connection to the journal at `path`.
    pub(super) fn start(path: &Path) -> Result<Self, JournalError> {
        let (tx, rx) = unbounded_channel();
        let conn = open_conn(path)?;
        let nanos = Arc::new(AtomicU64::new(0));
        let failure = Failure::default();
        let (n, f) = (nanos.clone(), failure.clone());
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || run(conn, rx, n, f))
            .map_err(|e| JournalError::Other(format!("cannot start the journal writer: {e}")))?;
        Ok(Self {
            tx,
            thread: Some(thread),
            nanos,
            failure,
            path: path.to_path_buf(),
        })
    }

    pub(super) fn recorder(&self) -> Recorder {
        Recorder {
            tx: self.tx.clone(),
            failure: self.failure.clone(),
        }
    }

    /// Waits until everything sent so far is committed.
    pub(super) fn flush(&self) -> Result<(), JournalError> {
        let failed = |detail: String| JournalError::WriteFailed {
            path: self.path.display().to_string(),
            detail,
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        self.tx
            .send(Msg::Flush(Box::new(move |r| {
                let _ = done_tx.send(r);
            })))
            .map_err(|_| failed("the writer stopped".into()))?;
        done_rx
            .recv()
            .map_err(|_| failed("the writer stopped".into()))?
            .map_err(failed)
    }

    /// Time spent inside transactions.
    pub(super) fn write_time(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

impl Drop for Writer {
    /// Commits what is pending and waits for the thread (recorders still
    /// held elsewhere just stop recording).
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut conn: Connection,
    mut rx: UnboundedReceiver<Msg>,
    nanos: Arc<AtomicU64>,
    failure: Failure,
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
            // Said once, when the run ends (flush), naming the journal.
            failed = Some(e.to_string());
            if let Ok(mut f) = failure.lock() {
                f.clone_from(&failed);
            }
        }
        nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        for done in flushes {
            done(failed.clone().map_or(Ok(()), Err));
        }
    }
}

fn apply(conn: &mut Connection, records: &[Record]) -> rusqlite::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    crate::faults::crash_point(crate::faults::CrashPoint::JournalBatch);
    let tx = conn.transaction()?;
    {
        let now = now();
        let mut file = tx.prepare_cached(
            "INSERT INTO files (path, size, mtime_ns, ino, sha256, crc64, key, state, verification, error, updated_at, checksum)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                 ino = excluded.ino, sha256 = excluded.sha256, crc64 = excluded.crc64, key = excluded.key,
                 state = excluded.state, verification = excluded.verification, error = excluded.error,
                 checksum = excluded.checksum,
                 updated_at = excluded.updated_at",
        )?;
        let mut key_state = tx.prepare_cached(
            "UPDATE files SET state = ?2, verification = ?3, error = ?4, updated_at = ?5, checksum = ?6
             WHERE key = ?1",
        )?;
        let mut digests =
            tx.prepare_cached("UPDATE files SET sha256 = ?2, crc64 = ?3 WHERE path = ?1")?;
        let mut upload = tx.prepare_cached(
            "INSERT OR REPLACE INTO uploads (upload_id, key, path, part_size, size, mtime_ns, sha256, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut intent = tx.prepare_cached(
            "INSERT OR REPLACE INTO upload_intents (key, path, at) VALUES (?1, ?2, ?3)",
        )?;
        let mut intent_done = tx.prepare_cached("DELETE FROM upload_intents WHERE key = ?1")?;
        let mut part = tx.prepare_cached(
            "INSERT OR REPLACE INTO parts (upload_id, number, size, checksum, crc64, etag) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut ended = tx.prepare_cached("DELETE FROM uploads WHERE upload_id = ?1")?;
        let mut offload = tx.prepare_cached(
            "INSERT OR REPLACE INTO offloads (path, state, place, size, mtime_ns, mode, uid, gid, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut offloaded =
            tx.prepare_cached("UPDATE offloads SET state = 'done', at = ?2 WHERE path = ?1")?;
        let mut unoffload = tx.prepare_cached("DELETE FROM offloads WHERE path = ?1")?;
        let mut ino = tx.prepare_cached("UPDATE files SET ino = ?2 WHERE path = ?1")?;
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
                        now,
                        f.checksum
                    ])?;
                }
                Record::KeyState {
                    key,
                    state,
                    verification,
                    checksum,
                    error,
                } => {
                    key_state.execute(params![
                        key,
                        state.as_str(),
                        verification,
                        error,
                        now,
                        checksum
                    ])?;
                }
                Record::Digests { path, digests: d } => {
                    digests.execute(params![path, d.sha256.0.to_vec(), d.crc64.0 as i64])?;
                }
                Record::UploadIntent { key, path } => {
                    intent.execute(params![key, path, now])?;
                }
                Record::UploadStarted(u) => {
                    // An empty digest: not known when the upload began.
                    upload.execute(params![
                        u.upload_id.0,
                        u.key,
                        u.path,
                        u.part_size as i64,
                        u.size as i64,
                        u.mtime_ns,
                        u.sha256.map(|d| d.0.to_vec()).unwrap_or_default(),
                        u.started_at
                    ])?;
                    intent_done.execute(params![u.key])?;
                    key_state.execute(params![
                        u.key,
                        FileState::Uploading.as_str(),
                        None::<String>,
                        None::<String>,
                        now,
                        None::<String>
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
                Record::OffloadStarted(o) => {
                    offload.execute(params![
                        o.path,
                        if o.done { "done" } else { "moving" },
                        o.place,
                        o.size as i64,
                        o.mtime_ns,
                        o.mode,
                        o.uid,
                        o.gid,
                        now
                    ])?;
                }
                Record::Offloaded { path } => {
                    offloaded.execute(params![path, now])?;
                }
                Record::OffloadDropped { path } => {
                    unoffload.execute(params![path])?;
                }
                Record::Restored { path, ino: i } => {
                    unoffload.execute(params![path])?;
                    ino.execute(params![path, *i as i64])?;
                }
            }
        }
    }
    crate::faults::crash_point(crate::faults::CrashPoint::JournalBeforeCommit);
    tx.commit()
}
