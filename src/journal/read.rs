//! Every query of the journal: the rows `migrate` resumes from, and the
//! read-only views `status`, `verify` and `gc` take, as typed values.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use super::records::{
    FileRow, FileState, Identity, JournalError, ObjectSettingsRow, OffloadRow, PartRow, UploadRow,
};
use super::schema;
use crate::digest::Digests;
use crate::types::{Crc64Nvme, Sha256Digest, UploadId};

/// Every row of `query` with `params`, each mapped by `row`; errors name
/// the journal file. Statements are cached, so a query run once per upload
/// is prepared once.
fn query_all<T, P: rusqlite::Params>(
    conn: &Connection,
    path: &Path,
    query: &str,
    params: P,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, JournalError> {
    let mut all = Vec::new();
    query_each(conn, path, query, params, row, |t| {
        all.push(t);
        Ok::<_, JournalError>(())
    })?;
    Ok(all)
}

/// Every row of `query` with `params`, each mapped by `row` and handed to
/// `each` as it is read, so memory does not grow with the journal (a
/// million files). `each` stops it with its own error.
fn query_each<T, P: rusqlite::Params, E: From<JournalError>>(
    conn: &Connection,
    path: &Path,
    query: &str,
    params: P,
    mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    mut each: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let sql = JournalError::sql(path);
    let mut stmt = conn.prepare_cached(query).map_err(&sql)?;
    let mut rows = stmt.query(params).map_err(&sql)?;
    while let Some(r) = rows.next().map_err(&sql)? {
        each(row(r).map_err(&sql)?)?;
    }
    Ok(())
}

/// A stored state name as a [`FileState`], or the journal is damaged.
fn state(path: &Path, file: &str, name: &str) -> Result<FileState, JournalError> {
    FileState::parse(name).ok_or_else(|| JournalError::Damaged {
        path: path.display().to_string(),
        detail: format!("{file} has the unknown state '{name}'"),
    })
}

fn digests_from(sha: Option<Vec<u8>>, crc: Option<i64>) -> Option<Digests> {
    let sha: [u8; 32] = sha?.try_into().ok()?;
    Some(Digests {
        sha256: Sha256Digest(sha),
        crc64: Crc64Nvme(crc? as u64),
    })
}

/// All file rows in path order (byte order, as the walk sorts).
pub(super) fn files(conn: &Connection, path: &Path) -> Result<Vec<FileRow>, JournalError> {
    let mut all = Vec::new();
    each_file(conn, path, |row| {
        all.push(row);
        Ok::<_, JournalError>(())
    })?;
    Ok(all)
}

/// Every file row in path order, handed to `each` as it is read.
pub(super) fn each_file<E: From<JournalError>>(
    conn: &Connection,
    path: &Path,
    mut each: impl FnMut(FileRow) -> Result<(), E>,
) -> Result<(), E> {
    query_each(
        conn,
        path,
        "SELECT path, size, mtime_ns, ino, sha256, crc64, key, state, verification, error, checksum
         FROM files ORDER BY path",
        [],
        |r| {
            Ok((
                FileRow {
                    path: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    mtime_ns: r.get(2)?,
                    ino: r.get::<_, i64>(3)? as u64,
                    digests: digests_from(r.get(4)?, r.get(5)?),
                    key: r.get(6)?,
                    state: FileState::Planned,
                    verification: r.get(8)?,
                    error: r.get(9)?,
                    checksum: r.get(10)?,
                },
                r.get::<_, String>(7)?,
            ))
        },
        |(mut row, name): (FileRow, String)| {
            row.state = state(path, &row.path, &name)?;
            each(row)
        },
    )
}

/// A file the URL maps hold: verified, with its object's key and its
/// digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedFile {
    pub path: String,
    pub key: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    /// The first path (in byte order) of the placed files with the same
    /// content, when it is another file's: the file this one duplicates
    /// (under `preserve`, whose object this one's was copied from; under
    /// `content`, the object's own file, which this one shares).
    pub first: Option<String>,
}

/// What the nginx map needs to know of all placed files before the first
/// row is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacedFacts {
    /// Bytes of the longest path.
    pub longest_path: usize,
    /// Paths, ASCII letters lower-cased, that more than one placed file
    /// has (names equal but for letter case).
    pub case_twins: HashSet<String>,
}

/// The condition of a placed file, for the `files` table as `t`: verified,
/// with a key and both digests (a damaged SHA-256 is not one).
fn placed(t: &str) -> String {
    format!(
        "{t}.state = 'verified' AND {t}.key IS NOT NULL AND length({t}.sha256) = 32 AND {t}.crc64 IS NOT NULL"
    )
}

/// Every placed file in path order, handed to `each` as it is read.
///
/// The first file of each content held by more than one placed file (the
/// duplicates, a tenth of a shop's files) comes from a query of its own,
/// not from a subquery per row, which took 10.7 s of the 11.3 over a
/// million rows.
pub(super) fn each_placed<E: From<JournalError>>(
    conn: &Connection,
    path: &Path,
    mut each: impl FnMut(PlacedFile) -> Result<(), E>,
) -> Result<(), E> {
    let mut first: HashMap<Vec<u8>, String> = HashMap::new();
    query_each(
        conn,
        path,
        &format!(
            "SELECT f.sha256, MIN(f.path) FROM files f WHERE {} GROUP BY f.sha256 HAVING COUNT(*) > 1",
            placed("f")
        ),
        [],
        |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)),
        |(sha, path)| {
            first.insert(sha, path);
            Ok::<_, JournalError>(())
        },
    )?;
    query_each(
        conn,
        path,
        &format!(
            "SELECT f.path, f.key, f.size, f.sha256 FROM files f WHERE {} ORDER BY f.path",
            placed("f")
        ),
        [],
        |r| {
            let sha: Vec<u8> = r.get(3)?;
            Ok(PlacedFile {
                path: r.get(0)?,
                key: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                sha256: Sha256Digest(sha.try_into().unwrap_or([0; 32])),
                first: None,
            })
        },
        |mut p: PlacedFile| {
            p.first = first
                .get(&p.sha256.0[..])
                .filter(|f| **f != p.path)
                .cloned();
            each(p)
        },
    )
}

/// The facts the nginx map needs, over the placed files.
pub(super) fn placed_facts(conn: &Connection, path: &Path) -> Result<PlacedFacts, JournalError> {
    let longest = query_all(
        conn,
        path,
        &format!(
            "SELECT COALESCE(MAX(length(CAST(f.path AS BLOB))), 0) FROM files f WHERE {}",
            placed("f")
        ),
        [],
        |r| r.get::<_, i64>(0),
    )?;
    // SQLite's lower() folds ASCII letters only, as nginx does.
    let twins = query_all(
        conn,
        path,
        &format!(
            "SELECT lower(f.path) FROM files f WHERE {} GROUP BY lower(f.path) HAVING COUNT(*) > 1",
            placed("f")
        ),
        [],
        |r| r.get::<_, String>(0),
    )?;
    Ok(PlacedFacts {
        longest_path: longest.first().copied().unwrap_or(0) as usize,
        case_twins: twins.into_iter().collect(),
    })
}

/// Multipart uploads in progress, with their parts, by key.
pub(super) fn uploads(
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
            // Empty: not known when the upload began. A damaged digest
            // cannot prove the file is the one whose parts were sent. All
            // zeros matches no real file, so the resume check aborts that
            // upload and starts the file over.
            let sha256 = (!sha.is_empty()).then(|| sha.try_into().map(Sha256Digest).unwrap_or_else(|_| {
                tracing::warn!(
                    "{}: the journal's SHA-256 for the upload of {key} is damaged; it will start over",
                    path.display()
                );
                Sha256Digest([0; 32])
            }));
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

/// Every file `offload` took out of SOURCE_DIR or is taking, by path.
/// Keys whose CreateMultipartUpload may have been sent without the journal
/// hearing its answer (a kill in between): path by key.
pub(super) fn upload_intents(
    conn: &Connection,
    path: &Path,
) -> Result<HashMap<String, String>, JournalError> {
    if !schema::has_table(conn, "upload_intents").map_err(JournalError::sql(path))? {
        return Ok(HashMap::new());
    }
    let rows = query_all(
        conn,
        path,
        "SELECT key, path FROM upload_intents",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows.into_iter().collect())
}

pub(super) fn offloads(
    conn: &Connection,
    path: &Path,
) -> Result<HashMap<String, OffloadRow>, JournalError> {
    if !schema::has_table(conn, "offloads").map_err(JournalError::sql(path))? {
        return Ok(HashMap::new());
    }
    let rows = query_all(
        conn,
        path,
        "SELECT path, state, place, size, mtime_ns, mode, uid, gid, at FROM offloads",
        [],
        |r| {
            Ok(OffloadRow {
                path: r.get(0)?,
                done: r.get::<_, String>(1)? == "done",
                place: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
                mtime_ns: r.get(4)?,
                mode: r.get(5)?,
                uid: r.get(6)?,
                gid: r.get(7)?,
                at: r.get(8)?,
            })
        },
    )?;
    Ok(rows.into_iter().map(|o| (o.path.clone(), o)).collect())
}

/// Files `offload` took out of SOURCE_DIR, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OffloadCount {
    pub files: u64,
    pub bytes: u64,
}

/// Files and bytes in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateCount {
    pub state: FileState,
    pub files: u64,
    pub bytes: u64,
}

/// A multipart upload the next run will resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InFlight {
    pub key: String,
    pub path: String,
    pub upload_id: String,
    pub parts_done: u64,
    pub bytes_done: u64,
    pub size: u64,
    pub started_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedFile {
    pub path: String,
    pub error: String,
}

/// An object the journal holds as verified: what it must still be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedObject {
    pub key: String,
    /// The first file (in path order) mapped to it.
    pub path: String,
    pub size: u64,
    pub digests: Option<Digests>,
    /// The whole checksum that proved it, where the digests cannot.
    pub checksum: Option<String>,
}

/// A journal opened read-only, without the lock.
pub struct Reader {
    path: PathBuf,
    conn: Connection,
    identity: Identity,
    /// Journals made before proofs were recorded have no checksum column
    /// (read-only: it cannot be added here).
    has_checksums: bool,
}

impl Reader {
    /// Opens the journal in `dir`, which must exist.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        let (path, conn, identity) = schema::open_read_only(dir)?;
        let has_checksums =
            schema::has_column(&conn, "files", "checksum").map_err(JournalError::sql(&path))?;
        Ok(Self {
            path,
            conn,
            identity,
            has_checksums,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Files and bytes by state, in state order.
    pub fn counts(&self) -> Result<Vec<StateCount>, JournalError> {
        let rows = query_all(
            &self.conn,
            &self.path,
            "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM files GROUP BY state",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            },
        )?;
        let mut out = rows
            .into_iter()
            .map(|(name, files, bytes)| {
                Ok(StateCount {
                    state: state(&self.path, "a file", &name)?,
                    files,
                    bytes,
                })
            })
            .collect::<Result<Vec<_>, JournalError>>()?;
        out.sort_by_key(|c| c.state);
        Ok(out)
    }

    /// Multipart uploads in progress, by key.
    pub fn in_flight(&self) -> Result<Vec<InFlight>, JournalError> {
        query_all(
            &self.conn,
            &self.path,
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
        )
    }

    /// Files that failed, with why, by path.
    pub fn failures(&self) -> Result<Vec<FailedFile>, JournalError> {
        query_all(
            &self.conn,
            &self.path,
            "SELECT path, COALESCE(error, '') FROM files WHERE state = ?1 ORDER BY path",
            [FileState::Failed.as_str()],
            |r| {
                Ok(FailedFile {
                    path: r.get(0)?,
                    error: r.get(1)?,
                })
            },
        )
    }

    /// Every object the journal holds as verified, one per key.
    pub fn verified(&self) -> Result<Vec<VerifiedObject>, JournalError> {
        let checksum = if self.has_checksums {
            "checksum"
        } else {
            "NULL"
        };
        query_all(
            &self.conn,
            &self.path,
            &format!(
                "SELECT key, MIN(path), size, sha256, crc64, {checksum} FROM files
                 WHERE state = ?1 AND key IS NOT NULL GROUP BY key ORDER BY key"
            ),
            [FileState::Verified.as_str()],
            |r| {
                Ok(VerifiedObject {
                    key: r.get(0)?,
                    path: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    digests: digests_from(r.get(3)?, r.get(4)?),
                    checksum: r.get(5)?,
                })
            },
        )
    }

    /// Every file whose object is in place (verified, with a key and its
    /// digests), in path order.
    pub fn placed(&self) -> Result<Vec<PlacedFile>, JournalError> {
        let mut all = Vec::new();
        each_placed(&self.conn, &self.path, |p| {
            all.push(p);
            Ok::<_, JournalError>(())
        })?;
        Ok(all)
    }

    /// What the last `migrate` wrote objects with; `None` for a journal
    /// made before it was recorded.
    pub fn object_settings(&self) -> Result<Option<ObjectSettingsRow>, JournalError> {
        let sql = JournalError::sql(&self.path);
        if !schema::has_table(&self.conn, "object_settings").map_err(&sql)? {
            return Ok(None);
        }
        Ok(query_all(
            &self.conn,
            &self.path,
            "SELECT cache_control, content_types FROM object_settings WHERE id = 1",
            [],
            |r| {
                Ok(ObjectSettingsRow {
                    cache_control: r.get(0)?,
                    content_types: r.get(1)?,
                })
            },
        )?
        .pop())
    }

    /// Files offloaded (moved to a quarantine or deleted) and their bytes.
    pub fn offloaded(&self) -> Result<OffloadCount, JournalError> {
        let done = offloads(&self.conn, &self.path)?
            .into_values()
            .filter(|o| o.done);
        Ok(done.fold(OffloadCount::default(), |c, o| OffloadCount {
            files: c.files + 1,
            bytes: c.bytes + o.size,
        }))
    }

    /// Every key any file of the migration maps to.
    pub fn keys(&self) -> Result<HashSet<String>, JournalError> {
        Ok(query_all(
            &self.conn,
            &self.path,
            "SELECT DISTINCT key FROM files WHERE key IS NOT NULL",
            [],
            |r| r.get::<_, String>(0),
        )?
        .into_iter()
        .collect())
    }

    /// The ids of the uploads the next run will resume.
    pub fn resumable(&self) -> Result<HashSet<UploadId>, JournalError> {
        Ok(uploads(&self.conn, &self.path)?
            .into_values()
            .map(|u| u.upload_id)
            .collect())
    }
}
