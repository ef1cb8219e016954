//! The journal's file: its tables, the lock that keeps one run at a time,
//! and the identity check that keeps one migration per journal.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::records::{Identity, JournalError, now};

pub const FILE_NAME: &str = "journal.sqlite";
const SCHEMA_VERSION: i64 = 1;

/// Whether `dir` holds a journal.
pub fn exists(dir: &Path) -> bool {
    dir.join(FILE_NAME).exists()
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
    checksum TEXT,
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
CREATE TABLE IF NOT EXISTS offloads (
    path TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    place TEXT,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS object_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cache_control TEXT,
    content_types TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS upload_intents (
    key TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    at INTEGER NOT NULL
);
";

pub(super) fn open_conn(path: &Path) -> Result<Connection, JournalError> {
    let conn = Connection::open(path).map_err(JournalError::sql(path))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(JournalError::sql(path))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(JournalError::sql(path))?;
    Ok(conn)
}

/// Opens the journal at `path` for writing, with every table of this
/// version (tables and columns later versions added are added).
fn open_tables(path: &Path) -> Result<Connection, JournalError> {
    let sql = JournalError::sql(path);
    let conn = open_conn(path)?;
    conn.execute_batch(SCHEMA).map_err(&sql)?;
    // Journals made before sharding lack the shard column (whole runs).
    if !has_column(&conn, "meta", "shard").map_err(&sql)? {
        conn.execute_batch("ALTER TABLE meta ADD COLUMN shard TEXT NOT NULL DEFAULT ''")
            .map_err(&sql)?;
    }
    // Journals made before proofs were recorded lack the checksum column.
    if !has_column(&conn, "files", "checksum").map_err(&sql)? {
        conn.execute_batch("ALTER TABLE files ADD COLUMN checksum TEXT")
            .map_err(&sql)?;
    }
    drop(sql);
    Ok(conn)
}

const IDENTITY: &str =
    "SELECT source, destination, key_layout, checksum, shard FROM meta WHERE id = 1";

fn identity_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Identity> {
    Ok(Identity {
        source: r.get(0)?,
        destination: r.get(1)?,
        key_layout: r.get(2)?,
        checksum: r.get(3)?,
        shard: r.get(4)?,
    })
}

/// Opens (creating if needed) and locks the journal in `dir` for a
/// migration with `identity`: its path, a connection, and the lock, held
/// as long as the file handle lives.
pub(super) fn open_locked(
    dir: &Path,
    identity: &Identity,
) -> Result<(PathBuf, Connection, File), JournalError> {
    std::fs::create_dir_all(dir).map_err(|source| JournalError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let lock = lock(dir)?;
    probe(dir)?;
    let path = dir.join(FILE_NAME);
    let sql = JournalError::sql(&path);
    let conn = open_tables(&path)?;
    let version: Option<i64> = conn
        .query_row("SELECT schema_version FROM meta WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(&sql)?;
    match version {
        None => {
            conn.execute(
                "INSERT INTO meta (id, schema_version, source, destination, key_layout, checksum, created_at, shard)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    SCHEMA_VERSION,
                    identity.source,
                    identity.destination,
                    identity.key_layout,
                    identity.checksum,
                    now(),
                    identity.shard
                ],
            )
            .map_err(&sql)?;
        }
        Some(v) if v != SCHEMA_VERSION => {
            return Err(JournalError::Other(format!(
                "the journal {} has schema version {v}; this mediashift reads version {SCHEMA_VERSION}: use another --state",
                path.display()
            )));
        }
        Some(_) => {
            let theirs = conn.query_row(IDENTITY, [], identity_row).map_err(&sql)?;
            let same_but_shard = Identity {
                shard: identity.shard.clone(),
                ..theirs.clone()
            } == *identity;
            if same_but_shard && theirs.shard != identity.shard {
                let name = |s: &str| {
                    if s.is_empty() {
                        "the unsharded migration".to_string()
                    } else {
                        format!("shard {s}")
                    }
                };
                return Err(JournalError::OtherShard {
                    dir: dir.display().to_string(),
                    theirs: name(&theirs.shard),
                    ours: name(&identity.shard),
                });
            }
            if theirs != *identity {
                return Err(JournalError::OtherRun {
                    dir: dir.display().to_string(),
                    theirs: theirs.describe(),
                    ours: identity.describe(),
                });
            }
        }
    }
    drop(sql);
    Ok((path, conn, lock))
}

/// Opens and locks the journal that must already be in `dir` (for
/// `offload` and `restore`, which act on a migration's files): its path, a
/// connection, the lock, and the migration's identity.
pub(super) fn open_existing_locked(
    dir: &Path,
) -> Result<(PathBuf, Connection, File, Identity), JournalError> {
    let path = dir.join(FILE_NAME);
    if !path.exists() {
        return Err(JournalError::Missing {
            dir: dir.display().to_string(),
        });
    }
    let lock = lock(dir)?;
    let sql = JournalError::sql(&path);
    let conn = open_tables(&path)?;
    let identity = conn.query_row(IDENTITY, [], identity_row).map_err(&sql)?;
    drop(sql);
    Ok((path, conn, lock, identity))
}

/// Writes, syncs and removes a probe file: a state directory that cannot
/// take writes (a full disk) is found before anything is uploaded.
fn probe(dir: &Path) -> Result<(), JournalError> {
    use std::io::Write as _;
    let p = dir.join(format!(".probe-{}", std::process::id()));
    let written = File::create(&p).and_then(|mut f| {
        f.write_all(&[0; 64 * 1024])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&p);
    written.map_err(|source| JournalError::NotWritable {
        dir: dir.display().to_string(),
        source,
    })
}

/// Whether `table` has `column`.
pub(super) fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    for n in names {
        if n? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the journal has `table` (a read-only view of a journal made
/// before it existed has not).
pub(super) fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Opens an existing journal read-only, without the lock (for `status`
/// while a run goes on; WAL lets readers and the writer coexist).
pub(super) fn open_read_only(dir: &Path) -> Result<(PathBuf, Connection, Identity), JournalError> {
    let path = dir.join(FILE_NAME);
    if !path.exists() {
        return Err(JournalError::Missing {
            dir: dir.display().to_string(),
        });
    }
    let sql = JournalError::sql(&path);
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(&sql)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(&sql)?;
    let identity = conn.query_row(IDENTITY, [], identity_row).map_err(&sql)?;
    drop(sql);
    Ok((path, conn, identity))
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
