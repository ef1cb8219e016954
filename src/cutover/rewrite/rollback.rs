//! Where the rewritten bytes go, and the record that undoes them.
//!
//! Several old forms (http, https, scheme-relative) become one new URL, so
//! the map alone cannot undo a rewrite. While the output is written, every
//! replaced span is recorded: its position in the output, its length there
//! and the original bytes. The record is a text file: a header line
//! (`mediashift-rollback 1`), a JSON line with the sizes and SHA-256 of the
//! input and the output, then one line per span (`offset length base64`).
//! Undo refuses an output that changed since (its SHA-256), puts the
//! original bytes back, and checks the result against the input's SHA-256.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::pipe::{ReadAhead, WriteBehind};
use crate::input::InputFile;
use crate::staged::Staged;

const MAGIC: &str = "mediashift-rollback 1";

/// The record's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub input: String,
    pub input_size: u64,
    pub input_sha256: String,
    pub output: String,
    pub output_size: u64,
    pub output_sha256: String,
    pub spans: u64,
}

/// Where a rewrite writes: the output (or nowhere, for a dry run), with
/// its size and SHA-256, and the spans for the rollback record. The output
/// is hashed and written on another thread.
pub struct Out {
    sink: Option<WriteBehind<Staged>>,
    size: u64,
    /// Spans, written as they come to a temporary file (they can be many).
    spans: Option<(Staged, u64)>,
}

impl Out {
    /// Writes to `output` (staged), recording spans into `rollback`; both
    /// `None` for a dry run.
    pub fn new(output: Option<&Path>, rollback: Option<&Path>) -> io::Result<Self> {
        let sink = output
            .map(Staged::create)
            .transpose()?
            .map(WriteBehind::spawn);
        let spans = match rollback {
            Some(r) => {
                let mut s = Staged::create(&r.with_extension("spans"))?;
                s.flush()?;
                Some((s, 0))
            }
            None => None,
        };
        Ok(Self {
            sink,
            size: 0,
            spans,
        })
    }

    /// Bytes that pass through unchanged.
    pub fn same(&mut self, b: &[u8]) -> io::Result<()> {
        self.size += b.len() as u64;
        if let Some(s) = &mut self.sink {
            s.write(b)?;
        }
        Ok(())
    }

    /// `new` written where `original` was.
    pub fn changed(&mut self, original: &[u8], new: &[u8]) -> io::Result<()> {
        if let Some((s, n)) = &mut self.spans {
            writeln!(s, "{} {} {}", self.size, new.len(), B64.encode(original))?;
            *n += 1;
        }
        self.size += new.len() as u64;
        if let Some(s) = &mut self.sink {
            s.write(new)?;
        }
        Ok(())
    }

    /// Puts the output in place and writes the rollback record at
    /// `rollback`: the header, then the spans.
    pub fn finish(
        self,
        input: (&Path, u64, String),
        output: &Path,
        rollback: Option<&Path>,
    ) -> io::Result<Header> {
        // A dry run hashes nothing: it writes neither output nor record.
        let (sink, output_sha256) = match self.sink.map(WriteBehind::finish).transpose()? {
            Some((sink, sha)) => (Some(sink), sha),
            None => (None, String::new()),
        };
        let header = Header {
            input: input.0.display().to_string(),
            input_size: input.1,
            input_sha256: input.2,
            output: output.display().to_string(),
            output_size: self.size,
            output_sha256,
            spans: self.spans.as_ref().map_or(0, |(_, n)| *n),
        };
        if let (Some((spans, _)), Some(path)) = (self.spans, rollback) {
            let spans_path = path.with_extension("spans");
            spans.commit()?;
            let mut record = Staged::create(path)?;
            writeln!(record, "{MAGIC}")?;
            serde_json::to_writer(&mut record, &header).map_err(io::Error::other)?;
            writeln!(record)?;
            io::copy(&mut File::open(&spans_path)?, &mut record)?;
            record.commit()?;
            std::fs::remove_file(&spans_path)?;
        }
        if let Some(s) = sink {
            s.commit()?;
        }
        Ok(header)
    }
}

/// Copies `n` bytes into `dest` (or skips them), through `buf`.
fn copy_n(
    from: &mut impl Read,
    n: u64,
    mut dest: Option<&mut WriteBehind<Staged>>,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut left = n;
    while left > 0 {
        let want = (left as usize).min(buf.len());
        from.read_exact(&mut buf[..want])?;
        if let Some(d) = dest.as_deref_mut() {
            d.write(&buf[..want])?;
        }
        left -= want as u64;
    }
    Ok(())
}

/// Why an undo was refused.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a mediashift rollback record ({detail})")]
    Format { path: String, detail: String },
    #[error(
        "{output} changed since it was rewritten (its SHA-256 is not the one {record} recorded): undo would not give back the original; restore the backup instead"
    )]
    Changed { output: String, record: String },
    #[error(
        "the restored file does not match the original's SHA-256 ({record} is damaged); nothing was written"
    )]
    Mismatch { record: String },
}

/// Restores the input of a rewrite from `output` and its `record` into
/// `to` (staged: nothing is left half-written). Returns the header.
pub fn undo(record: &Path, output: &Path, to: &Path) -> Result<Header, UndoError> {
    let rec_shown = record.display().to_string();
    let io_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| UndoError::Io { path, source }
    };
    let bad = |detail: &str| UndoError::Format {
        path: rec_shown.clone(),
        detail: detail.to_string(),
    };
    let mut lines = BufReader::new(File::open(record).map_err(io_err(record))?).lines();
    let mut line = || -> Result<Option<String>, UndoError> {
        lines.next().transpose().map_err(io_err(record))
    };
    if line()?.as_deref() != Some(MAGIC) {
        return Err(bad("no header line"));
    }
    let header: Header = line()?
        .and_then(|l| serde_json::from_str(&l).ok())
        .ok_or_else(|| bad("no readable header"))?;
    let changed = || UndoError::Changed {
        output: output.display().to_string(),
        record: rec_shown.clone(),
    };
    let file = InputFile::open(output).map_err(io_err(output))?;
    if file.metadata().map_err(io_err(output))?.len() != header.output_size {
        return Err(changed());
    }
    // One pass: the output is hashed as it is read, the restored file as
    // it is written (each on its own thread); neither is kept unless both
    // hashes are the recorded ones.
    let mut from = ReadAhead::spawn(file);
    let mut dest = WriteBehind::spawn(Staged::create(to).map_err(io_err(to))?);
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while let Some(l) = line()? {
        let mut parts = l.splitn(3, ' ');
        let (Some(off), Some(len), Some(orig)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("a span line without offset, length and bytes"));
        };
        let (Ok(off), Ok(len), Ok(orig)) =
            (off.parse::<u64>(), len.parse::<u64>(), B64.decode(orig))
        else {
            return Err(bad("a span line that cannot be read"));
        };
        if off < at || off + len > header.output_size {
            return Err(bad("spans out of order or past the end"));
        }
        copy_n(&mut from, off - at, Some(&mut dest), &mut buf).map_err(io_err(output))?;
        // Skip the replacement, write the original.
        copy_n(&mut from, len, None, &mut buf).map_err(io_err(output))?;
        dest.write(&orig).map_err(io_err(to))?;
        at = off + len;
    }
    copy_n(
        &mut from,
        header.output_size - at,
        Some(&mut dest),
        &mut buf,
    )
    .map_err(io_err(output))?;
    // The whole output is read: its hash is final.
    let mut rest = [0u8; 1];
    if from.read(&mut rest).map_err(io_err(output))? != 0 {
        return Err(changed());
    }
    let (staged, restored) = dest.finish().map_err(io_err(to))?;
    let (output_sha, _) = from.finish().map_err(io_err(output))?;
    if output_sha != header.output_sha256 {
        return Err(changed());
    }
    if restored != header.input_sha256 {
        return Err(UndoError::Mismatch { record: rec_shown });
    }
    staged.commit().map_err(io_err(to))?;
    Ok(header)
}
