//! Any file that is not a dump (HTML, CSS, JSON, CSV, theme files),
//! streamed in chunks. A chunk's last bytes (the longest base plus the
//! most a path can take written, or an unknown path's report) are carried
//! into the next, so a reference cut by a buffer boundary is still found
//! whole. Bytes that are not valid UTF-8 are kept
//! as they are, and where the first one is is reported.

use std::io::{self, Read};

use super::pipe::CHUNK;
use super::refs::{MAX_PATH, Rewriter, Stats};
use super::rollback::Out;

/// Reads into `buf` until it holds `want` more bytes or the input ends;
/// whether it ended.
pub fn fill(input: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let target = buf.len() + want;
    while buf.len() < target {
        let at = buf.len();
        buf.resize(target, 0);
        match input.read(&mut buf[at..]) {
            Ok(0) => {
                buf.truncate(at);
                return Ok(true);
            }
            Ok(n) => buf.truncate(at + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(at),
            Err(e) => {
                buf.truncate(at);
                return Err(e);
            }
        }
    }
    Ok(false)
}

/// Finds the first byte that is not UTF-8 in a stream of pieces.
#[derive(Debug, Default)]
pub struct Utf8Check {
    /// The start of a character cut by the last piece's end.
    carry: Vec<u8>,
    /// Bytes fed so far.
    pos: u64,
    pub first_bad: Option<u64>,
}

impl Utf8Check {
    pub fn feed(&mut self, b: &[u8]) {
        let start = self.pos - self.carry.len() as u64;
        self.pos += b.len() as u64;
        if self.first_bad.is_some() {
            return;
        }
        let joined;
        let data = if self.carry.is_empty() {
            b
        } else {
            let mut j = std::mem::take(&mut self.carry);
            j.extend_from_slice(b);
            joined = j;
            &joined[..]
        };
        match std::str::from_utf8(data) {
            Ok(_) => {}
            // A character cut by the piece's end: wait for the rest.
            Err(e) if e.error_len().is_none() => self.carry = data[e.valid_up_to()..].to_vec(),
            Err(e) => self.first_bad = Some(start + e.valid_up_to() as u64),
        }
    }

    pub fn finish(&mut self) -> Option<u64> {
        if self.first_bad.is_none() && !self.carry.is_empty() {
            self.first_bad = Some(self.pos - self.carry.len() as u64);
        }
        self.first_bad
    }
}

/// Streams `input` to `out` with its references rewritten; returns the
/// offset of the first byte that is not UTF-8, if any.
pub fn rewrite(
    input: &mut impl Read,
    out: &mut Out,
    rw: &Rewriter<'_>,
    stats: &mut Stats,
) -> io::Result<Option<u64>> {
    let keep = rw.finder.longest + rw.table.window.max(MAX_PATH) + 16;
    let mut buf = Vec::with_capacity(CHUNK + keep);
    let mut utf8 = Utf8Check::default();
    loop {
        let eof = fill(input, &mut buf, CHUNK)?;
        let limit = if eof {
            buf.len()
        } else {
            buf.len().saturating_sub(keep)
        };
        let edits = rw.edits(&buf, limit, stats);
        let mut at = 0;
        for e in &edits {
            out.same(&buf[at..e.start])?;
            out.changed(&buf[e.start..e.end], &e.with)?;
            at = e.end;
        }
        let consumed = limit.max(at);
        out.same(&buf[at..consumed])?;
        utf8.feed(&buf[..consumed]);
        buf.drain(..consumed);
        if eof {
            return Ok(utf8.finish());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cutover::rewrite::find::Finder;
    use crate::cutover::rewrite::refs::tests::table;

    /// A reader that hands out at most `n` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_reference_across_a_buffer_boundary_is_found() {
        let t = table();
        let f = Finder::new(&t.bases, true).unwrap();
        let rw = Rewriter {
            table: &t,
            finder: &f,
        };
        // References at and around the 1 MiB chunk boundary.
        let reference = "<img src=\"https://shop.example/media/a.jpg\">";
        for shift in [0usize, 1, 10, 30, 44, 4200] {
            let mut text = "x".repeat(CHUNK - shift);
            text.push_str(reference);
            text.push_str(&"y".repeat(100));
            text.push_str(reference);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.html");
            let mut out = Out::new(Some(&path), None).unwrap();
            let mut stats = Stats::default();
            let bad = rewrite(
                &mut Trickle(text.as_bytes(), 65_536),
                &mut out,
                &rw,
                &mut stats,
            )
            .unwrap();
            out.finish((&path, 0, String::new()), &path, None).unwrap();
            assert_eq!(bad, None);
            assert_eq!(stats.replacements, 2, "shift {shift}");
            let got = std::fs::read_to_string(&path).unwrap();
            assert_eq!(
                got,
                text.replace(
                    "https://shop.example/media/a.jpg",
                    "https://cdn.example/shop/a.jpg"
                )
            );
        }
    }

    #[test]
    fn the_first_invalid_byte_is_found_across_pieces() {
        let mut c = Utf8Check::default();
        let e = "é".as_bytes();
        c.feed(b"ab");
        c.feed(&e[..1]);
        c.feed(&e[1..]);
        c.feed(b"cd\xFFef");
        assert_eq!(c.finish(), Some(6));
        let mut ok = Utf8Check::default();
        ok.feed(&e[..1]);
        ok.feed(&e[1..]);
        assert_eq!(ok.finish(), None);
        let mut cut = Utf8Check::default();
        cut.feed(b"ab");
        cut.feed(&e[..1]);
        assert_eq!(cut.finish(), Some(2), "a character the input ends in");
    }
}
