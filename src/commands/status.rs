//! `mediashift status`: what the journal knows, without touching the
//! store. Safe while a migration runs (the journal is read, not locked).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use crate::journal::{self, Identity, JournalError, query_all};

#[derive(Debug, Serialize, Default)]
pub struct Count {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct InFlight {
    pub key: String,
    pub path: String,
    pub upload_id: String,
    pub parts_done: u64,
    pub bytes_done: u64,
    pub size: u64,
    pub started_at: i64,
}

#[derive(Debug, Serialize)]
pub struct FailedFile {
    pub path: String,
    pub error: String,
}

/// The `status --json` document.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub journal: String,
    #[serde(flatten)]
    pub identity: Identity,
    /// Files by state: planned, uploading, uploaded, verified, failed.
    pub files: BTreeMap<String, Count>,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_remaining: u64,
    pub uploads_in_flight: Vec<InFlight>,
    pub failures: Vec<FailedFile>,
}

pub fn run(state_dir: &Path) -> Result<StatusDoc, JournalError> {
    let (conn, identity) = journal::Journal::open_read_only(state_dir)?;
    let path = state_dir.join(journal::FILE_NAME);
    build(&conn, &path, identity)
}

fn build(conn: &Connection, path: &Path, identity: Identity) -> Result<StatusDoc, JournalError> {
    let mut files: BTreeMap<String, Count> = BTreeMap::new();
    let counts = query_all(
        conn,
        path,
        "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM files GROUP BY state",
        [],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    )?;
    for (state, n, bytes) in counts {
        files.insert(
            state,
            Count {
                files: n as u64,
                bytes: bytes as u64,
            },
        );
    }
    let total = files.values().map(|c| c.files).sum();
    let done = files.get("verified").map_or(0, |c| c.bytes);
    let remaining = files
        .iter()
        .filter(|(s, _)| s.as_str() != "verified")
        .map(|(_, c)| c.bytes)
        .sum();

    let uploads = query_all(
        conn,
        path,
        "SELECT u.key, u.path, u.upload_id, u.size, u.started_at,
                COUNT(p.number), COALESCE(SUM(p.size), 0)
         FROM uploads u LEFT JOIN parts p ON p.upload_id = u.upload_id
         GROUP BY u.upload_id ORDER BY u.key",
        [],
        |r| {
            Ok(InFlight {
                key: r.get(0)?,
                path: r.get(1)?,
                upload_id: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
                started_at: r.get(4)?,
                parts_done: r.get::<_, i64>(5)? as u64,
                bytes_done: r.get::<_, i64>(6)? as u64,
            })
        },
    )?;
    let failures = query_all(
        conn,
        path,
        "SELECT path, COALESCE(error, '') FROM files WHERE state = 'failed' ORDER BY path",
        [],
        |r| {
            Ok(FailedFile {
                path: r.get(0)?,
                error: r.get(1)?,
            })
        },
    )?;

    Ok(StatusDoc {
        journal: path.display().to_string(),
        identity,
        files,
        files_total: total,
        bytes_done: done,
        bytes_remaining: remaining,
        uploads_in_flight: uploads,
        failures,
    })
}
