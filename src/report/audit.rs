//! The audit trail (`migrate --report FILE`): what the run did to every
//! file of the migration and how each object was proven, for the ops team
//! that must show it. FILE holds the run's JSON report under `summary` and
//! one row per file under `files`; FILE.csv holds the same rows.
//!
//! The rows come from the journal at the end of the run, so they cover
//! every file the migration knows, not only those this run selected.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::journal::{FileRow, FileState};
use crate::stages::maps::{atomic_write, csv_field};

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its object was uploaded by this run.
    Uploaded,
    /// Its own object was copied by this run, in the bucket, from the
    /// object of a file with the same content (`preserve`).
    Copied,
    /// It shares the object of another file (same content), in place
    /// (`content` layout).
    Duplicate,
    /// Its object was in place before this run (an earlier run, or there
    /// already) and proven.
    AlreadyPresent,
    Failed,
    /// Not done yet (the run was stopped, or it was not selected this time).
    Pending,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Self::Uploaded => "uploaded",
            Self::Copied => "copied",
            Self::Duplicate => "duplicate",
            Self::AlreadyPresent => "already_present",
            Self::Failed => "failed",
            Self::Pending => "pending",
        }
    }
}

/// One file's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub path: String,
    pub key: Option<String>,
    pub outcome: Outcome,
    /// How its object was proven (`checksum_in_response`, `etag`, …).
    pub verification: Option<String>,
    pub bytes: u64,
    pub error: Option<String>,
}

/// Makes sure `--report`'s directory takes a file, before anything is
/// uploaded.
pub fn probe(report: Option<&Path>) -> crate::error::Result<()> {
    let Some(path) = report else { return Ok(()) };
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    crate::stages::maps::probe(dir).map_err(|source| crate::error::Error::Report {
        path: path.display().to_string(),
        source,
    })
}

/// The rows for the journal's files, given what this run made: each
/// object's key, and whether it was copied (else uploaded).
pub fn of_run(files: &[FileRow], made: &[(String, bool)]) -> Vec<Row> {
    let made_by = |copied: bool| -> HashSet<&str> {
        (made.iter())
            .filter(|(_, c)| *c == copied)
            .map(|(k, _)| k.as_str())
            .collect()
    };
    rows(files, &made_by(false), &made_by(true))
}

/// The rows for the journal's files (in path order), given the keys this
/// run uploaded and those it copied.
pub fn rows(files: &[FileRow], uploaded: &HashSet<&str>, copied: &HashSet<&str>) -> Vec<Row> {
    // The first path of each key (byte order, as dedup chooses) is the
    // object's own file; the others are its duplicates.
    let mut seen: HashSet<&str> = HashSet::new();
    files
        .iter()
        .map(|f| {
            let key = f.key.as_deref();
            let first = key.is_some_and(|k| seen.insert(k));
            let outcome = match f.state {
                FileState::Failed => Outcome::Failed,
                FileState::Verified if !first => Outcome::Duplicate,
                FileState::Verified if key.is_some_and(|k| copied.contains(k)) => Outcome::Copied,
                FileState::Verified if key.is_some_and(|k| uploaded.contains(k)) => {
                    Outcome::Uploaded
                }
                FileState::Verified => Outcome::AlreadyPresent,
                FileState::Planned | FileState::Uploading | FileState::Uploaded => Outcome::Pending,
            };
            Row {
                path: f.path.clone(),
                key: f.key.clone(),
                outcome,
                verification: f.verification.clone(),
                bytes: f.size,
                error: f.error.clone(),
            }
        })
        .collect()
}

/// `FILE.csv` beside `FILE`.
pub fn csv_path(report: &Path) -> PathBuf {
    let mut name = report.as_os_str().to_owned();
    name.push(".csv");
    PathBuf::from(name)
}

/// Writes FILE (the summary and the rows) and FILE.csv; their paths.
pub fn write<T: Serialize>(report: &Path, summary: &T, rows: &[Row]) -> io::Result<[PathBuf; 2]> {
    #[derive(Serialize)]
    struct Doc<'a, T> {
        summary: &'a T,
        files: &'a [Row],
    }
    let json = atomic_write(report, |w| {
        serde_json::to_writer_pretty(
            &mut *w,
            &Doc {
                summary,
                files: rows,
            },
        )?;
        writeln!(w)
    })?;
    let csv = atomic_write(&csv_path(report), |w| {
        writeln!(w, "path,key,outcome,verification,bytes,error")?;
        for r in rows {
            writeln!(
                w,
                "{},{},{},{},{},{}",
                csv_field(&r.path),
                csv_field(r.key.as_deref().unwrap_or_default()),
                r.outcome.name(),
                csv_field(r.verification.as_deref().unwrap_or_default()),
                r.bytes,
                csv_field(r.error.as_deref().unwrap_or_default())
            )?;
        }
        Ok(())
    })?;
    Ok([json, csv])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digests;

    fn row(path: &str, key: &str, state: FileState) -> FileRow {
        FileRow {
            path: path.into(),
            size: 3,
            mtime_ns: 0,
            ino: 0,
            digests: Some(Digests::of_bytes(b"abc")),
            key: Some(key.into()),
            state,
            verification: Some("etag".into()),
            checksum: None,
            error: (state == FileState::Failed).then(|| "boom, \"quoted\"".to_string()),
        }
    }

    #[test]
    fn each_file_gets_its_outcome_and_the_csv_quotes() {
        let files = [
            row("a.jpg", "p/a.jpg", FileState::Verified),
            row("b.jpg", "p/a.jpg", FileState::Verified),
            row("c.jpg", "p/c.jpg", FileState::Verified),
            row("d.jpg", "p/d.jpg", FileState::Failed),
            row("e.jpg", "p/e.jpg", FileState::Planned),
            row("f.jpg", "p/f.jpg", FileState::Verified),
        ];
        let uploaded: HashSet<&str> = ["p/a.jpg"].into();
        let copied: HashSet<&str> = ["p/f.jpg"].into();
        let r = rows(&files, &uploaded, &copied);
        let outcomes: Vec<Outcome> = r.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Uploaded,
                Outcome::Duplicate,
                Outcome::AlreadyPresent,
                Outcome::Failed,
                Outcome::Pending,
                Outcome::Copied
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.json");
        write(&file, &"summary", &r).unwrap();
        let csv = std::fs::read_to_string(csv_path(&file)).unwrap();
        assert!(
            csv.contains("d.jpg,p/d.jpg,failed,etag,3,\"boom, \"\"quoted\"\"\""),
            "{csv}"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(doc["summary"], "summary");
        assert_eq!(doc["files"][1]["outcome"], "duplicate");
    }
}
