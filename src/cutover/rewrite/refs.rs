//! A reference: a base, then the longest path the map holds that is
//! written there and ends where the URL ends.
//!
//! Reading. What follows a base is read a character at a time, each as
//! its context writes it: JSON `\/` and `\uXXXX` (where the base was found
//! JSON-escaped), HTML `&amp;` (`&#38;`, `&#x26;`), any other byte as
//! itself; percent-encoding is undone when a path is looked up. A
//! character *continues* a path (`continues`) if it is a letter, a digit,
//! `.`, `-`, `_`, `~`, `%`, `/`, `+`, `@`, a byte of a non-ASCII character,
//! or a JSON `\/` or `\uXXXX` of one of those. Before any other (a space, a
//! quote, `?`, `#`, `,`, `;`, `&`, `<`, `)`, `\`...) a path may end: those
//! positions are its candidate ends, and so are the end of the text and
//! each `.` of a run that ends there or before such a character (the end
//! of a sentence).
//! The map says how far to read: past such a character only if some path
//! holds it and begins with what was read up to it (so `sunset beach.jpg`
//! is read whole when the map holds it, and `a.jpg 2x, ...` stops at the
//! space), and never past the most bytes a path of the map can take
//! written (the table's window, from its longest path in its longest form:
//! a text full of spaces after a base costs no more than that). Candidate
//! ends are tried longest first, each percent-decoded (what the URL means)
//! and, if the map does not hold that, as the literal name (a file named
//! `100%25.jpg`, written raw). So a mapped path counts only where the URL
//! ends: `/media/a.jpg.webp` is not a reference to `a.jpg` (it is the
//! unknown path `a.jpg.webp`), while `a.jpg?v=2`, `a.jpg 2x`, `a.jpg,` and
//! `a.jpg"` are references to `a.jpg`.
//!
//! Writing. A reference keeps its form. When the entry's new URL ends with
//! the path strictly percent-encoded (`table::Tail`: the preserve layout),
//! the reference becomes the URL's head, in the reference's escaping (`\/`
//! in JSON), followed by the path exactly as it was written: raw UTF-8
//! stays raw (WordPress finds an image's attachment by the file name in
//! its `src`), percent-encoding stays as it was, so do `\/`, `\u00e9` and
//! `&amp;`. Only what would give the new URL another meaning is
//! percent-encoded: `+` (S3 reads a `+` in a path as a space) becomes
//! `%2B`, `?` `%3F` and `#` `%23` (they would start a query string or a
//! fragment), and a `%` that does not start an escape `%25` (so does every
//! `%` of a path that matched as a literal name). A raw `?`, `#` or stray
//! `%` is part of a path only when the map holds that path with it (the
//! longest match), and the new URL then names that file's object. Other
//! entries (the content layout, or a URL that names another file's object)
//! write the whole new URL, in the reference's escaping. What follows the
//! path (a query string, a fragment, ` 2x`) stays as it is. `--reverse`
//! works the same way: the part of the object's path that is the file's
//! path (the preserve layout) is kept as written.
//!
//! Paths under a base that the map does not know are listed, up to their
//! first character that ends a URL, never guessed.

use std::collections::BTreeMap;

use super::find::{DIRECTIVE, Escaping, Finder, Found, Hit};
use super::table::continues;
use super::table::{Anchor, Table, Target};

/// The longest path (as written) read for a directive or an unknown path.
pub const MAX_PATH: usize = 4096;
/// How many distinct unknown paths and examples a report keeps.
const KEEP_UNKNOWN: usize = 1000;
const KEEP_EXAMPLES: usize = 5;

/// What a rewrite did, for the report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub replacements: u64,
    /// (old, new), the first few.
    pub examples: Vec<(String, String)>,
    /// References under a base whose path the map does not know, by path
    /// (the first thousand distinct), and how many in all.
    pub not_in_map: BTreeMap<String, u64>,
    pub not_in_map_total: u64,
    /// Serialized values left unchanged because their lengths were
    /// already wrong, with where.
    pub serialized_errors: Vec<String>,
    /// The report these are added to has its examples: make none.
    skip_examples: bool,
}

impl Stats {
    /// Stats for a part of a file (a dump's literal) whose own are
    /// `whole`: examples are made only while `whole` takes more.
    pub fn part_of(whole: &Stats) -> Self {
        Self {
            skip_examples: whole.skip_examples || whole.examples.len() >= KEEP_EXAMPLES,
            ..Self::default()
        }
    }

    fn wants_example(&self) -> bool {
        !self.skip_examples && self.examples.len() < KEEP_EXAMPLES
    }

    pub fn add(&mut self, other: &Stats) {
        self.replacements += other.replacements;
        for e in &other.examples {
            if self.examples.len() < KEEP_EXAMPLES && !self.examples.contains(e) {
                self.examples.push(e.clone());
            }
        }
        // unknown() counts the listed ones; the rest were counted but not
        // listed.
        let listed: u64 = other.not_in_map.values().sum();
        for (p, n) in &other.not_in_map {
            self.unknown(p, *n);
        }
        self.not_in_map_total += other.not_in_map_total - listed;
        self.serialized_errors
            .extend(other.serialized_errors.iter().cloned());
    }

    /// One more replacement; `example` (old, new) is made only while
    /// examples are still kept.
    fn replaced(&mut self, example: impl FnOnce() -> (String, String)) {
        self.replacements += 1;
        if self.wants_example() {
            let (old, new) = example();
            if !self.examples.iter().any(|(o, _)| *o == old) {
                self.examples.push((old, new));
            }
        }
    }

    fn unknown(&mut self, path: &str, n: u64) {
        self.not_in_map_total += n;
        if let Some(c) = self.not_in_map.get_mut(path) {
            *c += n;
        } else if self.not_in_map.len() < KEEP_UNKNOWN {
            self.not_in_map.insert(path.to_string(), n);
        }
    }
}

/// Bytes `start..end` of the text become `with`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub with: Vec<u8>,
}

/// Rewrites references with one table and its finder.
#[derive(Debug, Clone, Copy)]
pub struct Rewriter<'a> {
    pub table: &'a Table,
    pub finder: &'a Finder,
}

/// Whether the base found at `start` stands on its own, not inside a
/// longer URL or word.
fn anchored(text: &[u8], start: usize, anchor: Anchor) -> bool {
    let Some(&p) = start.checked_sub(1).and_then(|i| text.get(i)) else {
        return true;
    };
    match anchor {
        Anchor::Absolute => !(p.is_ascii_alphanumeric() || b"+-.".contains(&p)),
        Anchor::SchemeRelative => !(p.is_ascii_alphanumeric() || b":/\\".contains(&p)),
        Anchor::RootRelative => {
            !(p.is_ascii_alphanumeric() || p >= 0x80 || b".-_~:/%@\\".contains(&p))
        }
    }
}

/// A JSON `\uXXXX` (a surrogate pair: two) at `text[i..]`, its escape
/// written `esc`: the character and how many bytes it takes.
fn json_char(text: &[u8], i: usize, esc: &[u8]) -> Option<(char, usize)> {
    let e = esc.len();
    let unit = |at: usize| -> Option<u16> {
        let h = text.get(at..at + 4)?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    if text.get(i + e) != Some(&b'u') {
        return None;
    }
    let hi = unit(i + e + 1)?;
    let one = e + 5;
    if (0xD800..0xDC00).contains(&hi) {
        let second = text.get(i + one..)?;
        if !(second.starts_with(esc) && second.get(e) == Some(&b'u')) {
            return None;
        }
        let lo = unit(i + one + e + 1)?;
        let c = char::decode_utf16([hi, lo]).next()?.ok()?;
        Some((c, 2 * one))
    } else {
        Some((char::decode_utf16([hi]).next()?.ok()?, one))
    }
}

/// One character of a path at `text[i]` (`i` in bounds), written with the
/// escape `esc` (none, `\` or `\\`): what it stands for is appended to
/// `out`. Returns how many bytes it takes and, if it is a character that
/// ends a URL, which.
fn unit(text: &[u8], i: usize, esc: &[u8], out: &mut Vec<u8>) -> (usize, Option<u8>) {
    let b = text[i];
    if continues(b) {
        out.push(b);
        return (1, None);
    }
    if b == b'\\' && !esc.is_empty() && text[i..].starts_with(esc) {
        let e = esc.len();
        if text.get(i + e) == Some(&b'/') {
            out.push(b'/');
            return (e + 1, None);
        }
        if let Some((c, used)) = json_char(text, i, esc) {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            let ends = u8::try_from(c)
                .ok()
                .filter(|&a| a.is_ascii() && !continues(a));
            return (used, ends);
        }
    }
    if b == b'&' {
        for entity in [&b"&amp;"[..], b"&#38;", b"&#x26;"] {
            if text[i..].starts_with(entity) {
                out.push(b'&');
                return (entity.len(), Some(b'&'));
            }
        }
    }
    out.push(b);
    (1, Some(b))
}

fn hex(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `u` percent-decoded into `d` (a `%` that starts no escape stays).
fn percent_decode(u: &[u8], d: &mut Vec<u8>) {
    d.clear();
    let mut i = 0;
    while i < u.len() {
        if u[i] == b'%'
            && let (Some(h), Some(l)) = (hex(u.get(i + 1)), hex(u.get(i + 2)))
        {
            d.push((h << 4) | l);
            i += 3;
        } else {
            d.push(u[i]);
            i += 1;
        }
    }
}

/// A path as written, decoded: escapes of its context undone, then
/// percent-decoded; and with only its context's escapes undone. `None` if
/// it is not text.
fn decode(raw: &[u8], escaping: Escaping) -> Option<(String, String)> {
    let esc = escaping.escape();
    let mut u = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        i += unit(raw, i, esc, &mut u).0;
    }
    let mut d = Vec::with_capacity(u.len());
    percent_decode(&u, &mut d);
    Some((String::from_utf8(d).ok()?, String::from_utf8(u).ok()?))
}

/// What the text after a base was read into; reused from one base to the
/// next.
#[derive(Debug, Default)]
struct Scratch {
    /// The characters read (context escapes undone, not percent-decoded).
    u: Vec<u8>,
    /// A percent-decoded copy.
    d: Vec<u8>,
    /// Candidate ends, shortest first: (position in the text, bytes of `u`
    /// up to there).
    ends: Vec<(usize, usize)>,
}

/// A path the map holds, found after a base.
struct Match<'a> {
    target: &'a Target,
    /// Where it ends in the text.
    end: usize,
    /// Bytes of `Scratch::u` it takes.
    len: usize,
    /// Found by its literal name (its `%` are not escapes).
    literal: bool,
}

/// `(position, bytes read)` as a candidate end, after the candidate ends
/// before each `.` of a run (`dots`: where it began) that leads to it.
fn push_end(ends: &mut Vec<(usize, usize)>, at: usize, read: usize, dots: Option<(usize, usize)>) {
    if let Some((p, r)) = dots {
        ends.extend((0..at - p).map(|k| (p + k, r + k)));
    }
    ends.push((at, read));
}

/// `text[start..end]`, a path as written with `esc`, into `out`, with what
/// would change the new URL's meaning percent-encoded: `+`, `?`, `#`, and
/// a `%` that starts no escape (every `%` if the path is a `literal`
/// name).
fn keep_path(text: &[u8], start: usize, end: usize, esc: &[u8], literal: bool, out: &mut Vec<u8>) {
    let path = &text[start..end];
    if !path
        .iter()
        .any(|b| matches!(b, b'+' | b'?' | b'#' | b'%' | b'\\'))
    {
        out.extend_from_slice(path);
        return;
    }
    let mut one = Vec::with_capacity(4);
    let mut i = start;
    while i < end {
        one.clear();
        let n = unit(text, i, esc, &mut one).0.min(end - i);
        match one[..] {
            [b'+'] => out.extend_from_slice(b"%2B"),
            [b'?'] => out.extend_from_slice(b"%3F"),
            [b'#'] => out.extend_from_slice(b"%23"),
            [b'%'] if literal || !escape_follows(text, i + n, end, esc) => {
                out.extend_from_slice(b"%25")
            }
            _ => out.extend_from_slice(&text[i..i + n]),
        }
        i += n;
    }
}

/// Whether two hex digits are written at `text[i..end]`.
fn escape_follows(text: &[u8], i: usize, end: usize, esc: &[u8]) -> bool {
    let mut two = Vec::with_capacity(8);
    let mut j = i;
    while two.len() < 2 && j < end {
        j += unit(text, j, esc, &mut two).0;
    }
    two.len() == 2 && two.iter().all(u8::is_ascii_hexdigit)
}

impl<'a> Rewriter<'a> {
    /// Reads the text after a base (from `from`) as far as a path of the
    /// map may go, into `s`: the characters and the candidate ends.
    fn scan(&self, text: &[u8], from: usize, esc: &[u8], s: &mut Scratch) {
        s.u.clear();
        s.ends.clear();
        // A path of the map ends at most `window` bytes on: the byte there
        // is read to know whether it ends one.
        let limit = from
            .saturating_add(self.table.window)
            .saturating_add(1)
            .min(text.len());
        // A run of `.` just read: where it began, and bytes read then.
        let mut dots: Option<(usize, usize)> = None;
        let mut i = from;
        while i < limit {
            // Bytes that continue a path, at once.
            let run = text[i..limit]
                .iter()
                .position(|&b| !continues(b))
                .unwrap_or(limit - i);
            if run > 0 {
                let piece = &text[i..i + run];
                let trailing = piece.iter().rev().take_while(|&&b| b == b'.').count();
                let read = s.u.len();
                dots = if trailing == run {
                    dots.or(Some((i, read)))
                } else if trailing > 0 {
                    Some((i + run - trailing, read + run - trailing))
                } else {
                    None
                };
                s.u.extend_from_slice(piece);
                i += run;
                continue;
            }
            let read = s.u.len();
            let (n, ends) = unit(text, i, esc, &mut s.u);
            match ends {
                None => dots = None,
                Some(b) => {
                    push_end(&mut s.ends, i, read, dots);
                    dots = None;
                    // Read on only into a path the map holds.
                    if !self.table.inside_some_path(b) || !self.is_stem(s) {
                        return;
                    }
                }
            }
            i += n;
        }
        if i >= text.len() {
            push_end(&mut s.ends, text.len(), s.u.len(), dots);
        }
        // Else the window ended inside a run: no path of the map is that
        // long.
    }

    /// Whether what was read (which ends with a character that ends a
    /// URL) begins some path of the map, decoded or literally.
    fn is_stem(&self, s: &mut Scratch) -> bool {
        if self.table.is_stem(&s.u) {
            return true;
        }
        if memchr::memchr(b'%', &s.u).is_none() {
            return false;
        }
        percent_decode(&s.u, &mut s.d);
        self.table.is_stem(&s.d)
    }

    /// The longest candidate end of `s` at which the map holds the path.
    fn lookup(&self, s: &mut Scratch) -> Option<Match<'a>> {
        for &(end, len) in s.ends.iter().rev() {
            let u = &s.u[..len];
            let Ok(literal) = std::str::from_utf8(u) else {
                continue;
            };
            if len == 0 {
                continue;
            }
            if memchr::memchr(b'%', u).is_some() {
                percent_decode(u, &mut s.d);
                if let Some(target) = std::str::from_utf8(&s.d)
                    .ok()
                    .and_then(|d| self.table.get(d))
                {
                    return Some(Match {
                        target,
                        end,
                        len,
                        literal: false,
                    });
                }
                if let Some(target) = self.table.get(literal) {
                    return Some(Match {
                        target,
                        end,
                        len,
                        literal: true,
                    });
                }
            } else if let Some(target) = self.table.get(literal) {
                return Some(Match {
                    target,
                    end,
                    len,
                    literal: false,
                });
            }
        }
        None
    }

    /// What an unknown path after a base (at `from`) is reported as: up to
    /// its first character that ends a URL (a query, a fragment, a space),
    /// less a sentence's final dots, decoded if it can be.
    fn shown(text: &[u8], from: usize, esc: &[u8]) -> String {
        let stop = text.len().min(from + MAX_PATH);
        let mut u = Vec::new();
        let mut i = from;
        while i < stop {
            let read = u.len();
            let (n, ends) = unit(text, i, esc, &mut u);
            if ends.is_some() {
                u.truncate(read);
                break;
            }
            i += n;
        }
        while u.last() == Some(&b'.') {
            u.pop();
        }
        let mut d = Vec::with_capacity(u.len());
        percent_decode(&u, &mut d);
        match String::from_utf8(d) {
            Ok(d) => d,
            Err(_) => String::from_utf8_lossy(&u).into_owned(),
        }
    }

    /// The reference `text[start..m.end]` (its path read from `from`, with
    /// `escaping`) as it is written after the rewrite; and the new URL as
    /// the report shows it (escapes undone), if `example`.
    fn replacement(
        &self,
        text: &[u8],
        from: usize,
        escaping: Escaping,
        m: &Match<'_>,
        u: &[u8],
        example: bool,
    ) -> (Vec<u8>, Option<String>) {
        let esc = escaping.escape();
        let url = &*m.target.url;
        let kept = m.target.tail.and_then(|tail| {
            let head = url.get(..tail.head as usize)?;
            let (at, read) = written_at(text, from, m.end, esc, &u[..m.len], tail, m.literal)?;
            Some((head, at, read))
        });
        let mut with = Vec::with_capacity(url.len() + m.end - from + 16);
        let Some((head, at, read)) = kept else {
            escaping.apply_into(url, &mut with);
            return (with, example.then(|| url.to_string()));
        };
        escaping.apply_into(head, &mut with);
        keep_path(text, at, m.end, esc, m.literal, &mut with);
        let shown = example.then(|| {
            let mut p = head.as_bytes().to_vec();
            keep_path(u, read, m.len, b"", m.literal, &mut p);
            String::from_utf8_lossy(&p).into_owned()
        });
        (with, shown)
    }

    /// The edits for the references in `text` that start before `limit`
    /// (the text may go on past it, so a path that starts before it is
    /// read whole), in order.
    pub fn edits(&self, text: &[u8], limit: usize, stats: &mut Stats) -> Vec<Edit> {
        let mut edits = Vec::new();
        let mut s = Scratch::default();
        // The text before this is inside an edit already.
        let mut free = 0;
        for Found { start, end, hit } in self.finder.find(text) {
            if start >= limit {
                break;
            }
            if start < free {
                continue;
            }
            match hit {
                Hit::Base { base, escaping } => {
                    let b = &self.table.bases[base];
                    if !anchored(text, start, b.anchor) {
                        continue;
                    }
                    let esc = escaping.escape();
                    self.scan(text, end, esc, &mut s);
                    let Some(m) = self.lookup(&mut s) else {
                        // The base then punctuation (`/media/.`): no file.
                        let shown = Self::shown(text, end, esc);
                        if !shown.is_empty() {
                            stats.unknown(&shown, 1);
                        }
                        continue;
                    };
                    let u = &s.u[..m.len];
                    let example = stats.wants_example();
                    let (with, shown) = self.replacement(text, end, escaping, &m, u, example);
                    stats.replaced(|| {
                        let mut d = Vec::new();
                        percent_decode(u, &mut d);
                        let path = match (m.literal, std::str::from_utf8(&d)) {
                            (false, Ok(d)) => d.to_string(),
                            _ => String::from_utf8_lossy(u).into_owned(),
                        };
                        (format!("{}{path}", b.url), shown.unwrap_or_default())
                    });
                    free = m.end;
                    edits.push(Edit {
                        start,
                        end: m.end,
                        with,
                    });
                }
                Hit::Directive => {
                    if let Some(e) = self.directive(text, end, stats) {
                        free = e.end;
                        edits.push(e);
                    }
                }
            }
        }
        edits
    }

    /// `{{media url=PATH}}` with PATH quoted (`"`, `'`, `&quot;`, `\"`) or
    /// not: PATH becomes the object's path under the new media base, when
    /// that differs (the content key layout).
    fn directive(&self, text: &[u8], from: usize, stats: &mut Stats) -> Option<Edit> {
        let rest = &text[from..text.len().min(from + MAX_PATH)];
        let quote: &[u8] = [&b"\\\\\\\""[..], b"\\\"", b"&quot;", b"\"", b"'"]
            .into_iter()
            .find(|q| rest.starts_with(q))
            .unwrap_or(b"");
        let escaping = match quote {
            b"\\\\\\\"" => Escaping::DumpJson,
            b"\\\"" => Escaping::Json,
            _ => Escaping::Plain,
        };
        let body = &rest[quote.len()..];
        let len = if quote.is_empty() {
            body.iter()
                .position(|&b| b == b'}' || b.is_ascii_whitespace())?
        } else {
            body.windows(quote.len()).position(|w| w == quote)?
        };
        let start = from + quote.len();
        let (decoded, raw) = decode(&text[start..start + len], escaping)?;
        let target = self.table.get(&raw).or_else(|| self.table.get(&decoded));
        let Some(target) = target else {
            stats.unknown(&raw, 1);
            return None;
        };
        if *target.media_path == *raw {
            return None; // the same path under the new base: nothing to do
        }
        stats.replaced(|| {
            (
                format!("{DIRECTIVE}\"{raw}\"}}}}"),
                format!("{DIRECTIVE}\"{}\"}}}}", target.media_path),
            )
        });
        Some(Edit {
            start,
            end: start + len,
            with: escaping.apply(&target.media_path).into_bytes(),
        })
    }

    /// `text` with its references rewritten, or `None` if it has none.
    pub fn rewrite(&self, text: &[u8], stats: &mut Stats) -> Option<Vec<u8>> {
        let edits = self.edits(text, text.len(), stats);
        (!edits.is_empty()).then(|| apply(text, &edits))
    }
}

/// Where the part of a path that a reference keeps as written begins: the
/// path was read from `from` (`u`: its characters) and matched (as a
/// `literal` name or percent-decoded); the map's path is kept from its byte
/// `tail.skip` on. Returns the position in the text and in `u`.
fn written_at(
    text: &[u8],
    from: usize,
    end: usize,
    esc: &[u8],
    u: &[u8],
    tail: super::table::Tail,
    literal: bool,
) -> Option<(usize, usize)> {
    let skip = tail.skip as usize;
    if skip == 0 {
        return Some((from, 0));
    }
    // The byte of `u` where the decoded path reaches `skip` bytes.
    let mut k = 0;
    let mut decoded = 0;
    while decoded < skip {
        let escape = !literal
            && u.get(k) == Some(&b'%')
            && hex(u.get(k + 1)).is_some()
            && hex(u.get(k + 2)).is_some();
        k += if escape { 3 } else { 1 };
        decoded += 1;
    }
    if k > u.len() {
        return None;
    }
    // The text's character where `u` reaches that byte.
    let mut one = Vec::with_capacity(4);
    let (mut i, mut read) = (from, 0);
    while read < k && i < end {
        one.clear();
        i += unit(text, i, esc, &mut one).0;
        read += one.len();
    }
    (read == k).then_some((i, k))
}

/// `text` with `edits` (in order, not overlapping) applied.
pub fn apply(text: &[u8], edits: &[Edit]) -> Vec<u8> {
    let grow: usize = edits.iter().map(|e| e.with.len()).sum();
    let mut out = Vec::with_capacity(text.len() + grow);
    let mut at = 0;
    for e in edits {
        out.extend_from_slice(&text[at..e.start]);
        out.extend_from_slice(&e.with);
        at = e.end;
    }
    out.extend_from_slice(&text[at..]);
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A table of a few files under two bases, the second scheme-relative.
    pub fn table() -> Table {
        let rows = [
            ("a.jpg", "https://cdn.example/shop/a.jpg", "a.jpg"),
            (
                "x/café.jpg",
                "https://cdn.example/shop/x/caf%C3%A9.jpg",
                "x/café.jpg",
            ),
            ("b&c.png", "https://cdn.example/shop/b%26c.png", "b&c.png"),
            (
                "wysiwyg/w.jpg",
                "https://cdn.example/shop/12/34/ab.jpg",
                "12/34/ab.jpg",
            ),
            ("v 1.mp4", "https://cdn.example/shop/v%201.mp4", "v 1.mp4"),
        ];
        Table::from_rows(
            &[
                "https://shop.example/media/",
                "//shop.example/media/",
                "/media/",
            ],
            rows.iter()
                .map(|(p, u, m)| (p.to_string(), u.to_string(), m.to_string())),
        )
    }

    pub fn rewrite(text: &str) -> (String, Stats) {
        rewrite_with(&table(), text)
    }

    fn rewrite_with(t: &Table, text: &str) -> (String, Stats) {
        let f = Finder::new(&t.bases, true).unwrap();
        let rw = Rewriter {
            table: t,
            finder: &f,
        };
        let mut stats = Stats::default();
        let out = rw.rewrite(text.as_bytes(), &mut stats);
        (
            String::from_utf8(out.unwrap_or_else(|| text.as_bytes().to_vec())).unwrap(),
            stats,
        )
    }

    #[test]
    fn html_srcset_css_and_query_strings() {
        let (out, s) = rewrite(
            r#"<img src="https://shop.example/media/a.jpg?v=2" srcset="/media/a.jpg 1x, //shop.example/media/x/caf%C3%A9.jpg 2x"> <div style="background:url(/media/a.jpg)"></div> url('/media/b&amp;c.png') url(/media/v%201.mp4)"#,
        );
        assert_eq!(
            out,
            r#"<img src="https://cdn.example/shop/a.jpg?v=2" srcset="https://cdn.example/shop/a.jpg 1x, https://cdn.example/shop/x/caf%C3%A9.jpg 2x"> <div style="background:url(https://cdn.example/shop/a.jpg)"></div> url('https://cdn.example/shop/b&amp;c.png') url(https://cdn.example/shop/v%201.mp4)"#,
            "each path as it was written, `&amp;` included"
        );
        assert_eq!(s.replacements, 6);
        assert_eq!(s.not_in_map_total, 0);
    }

    #[test]
    fn json_with_escaped_slashes_and_unicode_escapes() {
        let (out, s) = rewrite(
            r#"{"url":"https:\/\/shop.example\/media\/x\/caf\u00e9.jpg","b":"\/media\/a.jpg","c":"https://shop.example/media/a.jpg"}"#,
        );
        assert_eq!(
            out,
            r#"{"url":"https:\/\/cdn.example\/shop\/x\/caf\u00e9.jpg","b":"https:\/\/cdn.example\/shop\/a.jpg","c":"https://cdn.example/shop/a.jpg"}"#,
            "`\\/` and `\\u00e9` stay as they were written"
        );
        assert_eq!(s.replacements, 3);
    }

    #[test]
    fn other_hosts_and_unknown_paths_are_left_and_listed() {
        let (out, s) = rewrite(
            "https://other.example/media/a.jpg and https://cdn.shop.example/media/a.jpg and https://shop.example/media/missing.jpg. And https://shop.example/media/ alone.",
        );
        assert_eq!(
            out,
            "https://other.example/media/a.jpg and https://cdn.shop.example/media/a.jpg and https://shop.example/media/missing.jpg. And https://shop.example/media/ alone."
        );
        assert_eq!(s.replacements, 0);
        assert_eq!(s.not_in_map.keys().collect::<Vec<_>>(), ["missing.jpg"]);
        let (_, s) =
            rewrite("Files live under /media/. Or /media/? Or https://shop.example/media/, see.");
        assert_eq!(
            s.not_in_map_total, 0,
            "a base alone is not a reference: {s:?}"
        );
    }

    #[test]
    fn magento_directives_follow_the_content_layout_only() {
        let (out, s) = rewrite(
            r#"{{media url="wysiwyg/w.jpg"}} {{media url=wysiwyg/w.jpg}} {{media url=&quot;wysiwyg/w.jpg&quot;}} {"x":"{{media url=\"wysiwyg\/w.jpg\"}}"} {{media url="a.jpg"}}"#,
        );
        assert_eq!(
            out,
            r#"{{media url="12/34/ab.jpg"}} {{media url=12/34/ab.jpg}} {{media url=&quot;12/34/ab.jpg&quot;}} {"x":"{{media url=\"12\/34\/ab.jpg\"}}"} {{media url="a.jpg"}}"#,
            "a.jpg keeps its path under the new base: unchanged"
        );
        assert_eq!(s.replacements, 4);
    }

    /// Paths a shop really has: raw spaces, names that are longer
    /// versions of others, `%`, `+`, `?` and `#` in names, a duplicate with
    /// its own object and one whose URL is another file's (the map before
    /// each file had its own object), and the content layout.
    fn forms() -> Table {
        let cdn = "https://cdn.example/shop/";
        let own = |p: &str| {
            (
                p.to_string(),
                format!("{cdn}{}", crate::urls::encode_path(p)),
                p.to_string(),
            )
        };
        let mut rows: Vec<(String, String, String)> = [
            "a.jpg",
            "2024/11/sunset beach.jpg",
            "2024/11/café-crème-300x225.jpg",
            "weird/100%.jpg",
            "weird/100%25.jpg",
            "literal/100%25.jpg",
            "a+b.jpg",
            "x/crème+brûlée #2.jpg",
            "what?.jpg",
            "a#1.jpg",
            "b&c.png",
            "product-01.jpg",
            "product-01-1.jpg",
        ]
        .iter()
        .map(|p| own(p))
        .collect();
        rows.push((
            "product-02-1.jpg".into(),
            format!("{cdn}product-02.jpg"),
            "product-02.jpg".into(),
        ));
        rows.push((
            "wysiwyg/w é.jpg".into(),
            format!("{cdn}12/34/ab.jpg"),
            "12/34/ab.jpg".into(),
        ));
        Table::from_rows(&["https://shop.example/media/", "/media/"], rows)
    }

    #[test]
    fn a_raw_space_inside_a_quoted_value_is_part_of_a_mapped_path() {
        let t = forms();
        let (out, s) = rewrite_with(
            &t,
            concat!(
                r#"<a href="https://shop.example/media/2024/11/sunset beach.jpg">x</a> "#,
                r#"{"u":"https:\/\/shop.example\/media\/2024\/11\/sunset beach.jpg"} "#,
                r#"<img srcset="/media/a.jpg 1x, /media/2024/11/sunset beach.jpg 2x">"#
            ),
        );
        assert_eq!(
            out,
            concat!(
                r#"<a href="https://cdn.example/shop/2024/11/sunset beach.jpg">x</a> "#,
                r#"{"u":"https:\/\/cdn.example\/shop\/2024\/11\/sunset beach.jpg"} "#,
                r#"<img srcset="https://cdn.example/shop/a.jpg 1x, https://cdn.example/shop/2024/11/sunset beach.jpg 2x">"#
            )
        );
        assert_eq!((s.replacements, s.not_in_map_total), (4, 0), "{s:?}");

        // In a serialized string, whose length follows.
        let f = Finder::new(&t.bases, true).unwrap();
        let rw = Rewriter {
            table: &t,
            finder: &f,
        };
        let mut stats = Stats::default();
        let v = br#"a:1:{i:0;s:51:"https://shop.example/media/2024/11/sunset beach.jpg";}"#;
        let new = super::super::serialized::rewrite(v, &mut |x| rw.rewrite(x, &mut stats))
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(new).unwrap(),
            r#"a:1:{i:0;s:49:"https://cdn.example/shop/2024/11/sunset beach.jpg";}"#
        );
        assert_eq!(stats.replacements, 1);

        // Not in the map: reported up to the space, as before.
        let (out, s) = rewrite_with(&t, r#"<a href="/media/2024/11/sunrise beach.jpg">"#);
        assert_eq!(out, r#"<a href="/media/2024/11/sunrise beach.jpg">"#);
        assert_eq!(s.not_in_map.keys().collect::<Vec<_>>(), ["2024/11/sunrise"]);
    }

    #[test]
    fn a_mapped_path_counts_only_where_the_url_ends() {
        let t = forms();
        let (out, s) = rewrite_with(
            &t,
            r#"<img src="/media/a.jpg.webp"> <img src="/media/a.jpg-300x200.jpg"> <img src="/media/a.jpg?v=2"> <img srcset="/media/a.jpg 2x, /media/a.jpg, /media/a.jpg#top"> See /media/a.jpg. Or /media/a.jpg!"#,
        );
        assert_eq!(
            out,
            r#"<img src="/media/a.jpg.webp"> <img src="/media/a.jpg-300x200.jpg"> <img src="https://cdn.example/shop/a.jpg?v=2"> <img srcset="https://cdn.example/shop/a.jpg 2x, https://cdn.example/shop/a.jpg, https://cdn.example/shop/a.jpg#top"> See https://cdn.example/shop/a.jpg. Or https://cdn.example/shop/a.jpg!"#
        );
        assert_eq!(s.replacements, 6);
        assert_eq!(
            s.not_in_map.keys().collect::<Vec<_>>(),
            ["a.jpg-300x200.jpg", "a.jpg.webp"],
            "the longer names are not cut down to a.jpg: they are unknown"
        );
        // A WebP sibling of a `%25` name (the Magento sample tree).
        let (out, s) = rewrite_with(&t, r#"{"src":"/media/weird/100%25.jpg.webp"}"#);
        assert_eq!(out, r#"{"src":"/media/weird/100%25.jpg.webp"}"#);
        assert_eq!(
            s.not_in_map.keys().collect::<Vec<_>>(),
            ["weird/100%.jpg.webp"]
        );
    }

    #[test]
    fn each_reference_keeps_the_form_it_was_written_in() {
        let t = forms();
        let (out, s) = rewrite_with(
            &t,
            concat!(
                r#"<img src="https://shop.example/media/2024/11/café-crème-300x225.jpg"> "#,
                r#"<img src="/media/2024/11/caf%C3%A9-cr%C3%A8me-300x225.jpg"> "#,
                r#"<img src="/media/2024/11/caf%c3%a9-cr%c3%a8me-300x225.jpg"> "#,
                r#"{"url":"https:\/\/shop.example\/media\/2024\/11\/caf\u00e9-cr\u00e8me-300x225.jpg"} "#,
                r#"<a href="/media/b&amp;c.png"></a> /media/b&c.png "#,
                r#"'{\"u\":\"https:\\/\\/shop.example\\/media\\/2024\\/11\\/caf\\u00e9-cr\\u00e8me-300x225.jpg\"}'"#,
            ),
        );
        assert_eq!(
            out,
            concat!(
                r#"<img src="https://cdn.example/shop/2024/11/café-crème-300x225.jpg"> "#,
                r#"<img src="https://cdn.example/shop/2024/11/caf%C3%A9-cr%C3%A8me-300x225.jpg"> "#,
                r#"<img src="https://cdn.example/shop/2024/11/caf%c3%a9-cr%c3%a8me-300x225.jpg"> "#,
                r#"{"url":"https:\/\/cdn.example\/shop\/2024\/11\/caf\u00e9-cr\u00e8me-300x225.jpg"} "#,
                r#"<a href="https://cdn.example/shop/b&amp;c.png"></a> https://cdn.example/shop/b&c.png "#,
                r#"'{\"u\":\"https:\\/\\/cdn.example\\/shop\\/2024\\/11\\/caf\\u00e9-cr\\u00e8me-300x225.jpg\"}'"#,
            )
        );
        assert_eq!((s.replacements, s.not_in_map_total), (7, 0), "{s:?}");
        // The report shows the old path decoded and the new URL as written,
        // its context's escapes undone.
        assert_eq!(
            s.examples[0],
            (
                "https://shop.example/media/2024/11/café-crème-300x225.jpg".to_string(),
                "https://cdn.example/shop/2024/11/café-crème-300x225.jpg".to_string()
            )
        );
        assert!(
            s.examples.contains(&(
                "/media/b&c.png".to_string(),
                "https://cdn.example/shop/b&c.png".to_string()
            )),
            "{:?}",
            s.examples
        );
    }

    #[test]
    fn percent_signs_pluses_question_marks_and_hashes_in_names() {
        let t = forms();
        let (out, s) = rewrite_with(
            &t,
            concat!(
                // `100%.jpg`, percent-encoded; and raw (a `%` that starts
                // no escape).
                "/media/weird/100%25.jpg /media/weird/100%.jpg ",
                // `100%25.jpg`, percent-encoded.
                "/media/weird/100%2525.jpg ",
                // `literal/100%25.jpg` written raw: the map has no
                // `literal/100%.jpg`, so it is the literal name.
                "/media/literal/100%25.jpg ",
                // `a+b.jpg` raw, and percent-encoded.
                "/media/a+b.jpg /media/a%2Bb.jpg ",
                // `what?.jpg` and `a#1.jpg` raw: the map holds them.
                "\"/media/what?.jpg\" \"/media/a#1.jpg\" \"/media/what%3F.jpg?x=1\" ",
                // Raw UTF-8 stays, only `+` and `#` change.
                "\"/media/x/crème+brûlée #2.jpg\"",
            ),
        );
        assert_eq!(
            out,
            concat!(
                "https://cdn.example/shop/weird/100%25.jpg https://cdn.example/shop/weird/100%25.jpg ",
                "https://cdn.example/shop/weird/100%2525.jpg ",
                "https://cdn.example/shop/literal/100%2525.jpg ",
                "https://cdn.example/shop/a%2Bb.jpg https://cdn.example/shop/a%2Bb.jpg ",
                "\"https://cdn.example/shop/what%3F.jpg\" \"https://cdn.example/shop/a%231.jpg\" \"https://cdn.example/shop/what%3F.jpg?x=1\" ",
                "\"https://cdn.example/shop/x/crème%2Bbrûlée %232.jpg\"",
            )
        );
        assert_eq!((s.replacements, s.not_in_map_total), (10, 0), "{s:?}");
        // Each new URL is the map's (what names the object).
        for p in [
            "weird/100%.jpg",
            "weird/100%25.jpg",
            "literal/100%25.jpg",
            "a+b.jpg",
            "what?.jpg",
            "a#1.jpg",
        ] {
            assert!(out.contains(&*t.get(p).unwrap().url), "{p}");
        }
    }

    #[test]
    fn a_duplicate_keeps_its_own_file_name_and_the_content_layout_writes_the_whole_url() {
        let t = forms();
        let (out, s) = rewrite_with(
            &t,
            concat!(
                r#"<img src="/media/product-01-1.jpg"> <img src="/media/product-02-1.jpg"> "#,
                r#"<img src="/media/wysiwyg/w é.jpg?v=1"> {"u":"\/media\/wysiwyg\/w%20\u00e9.jpg"}"#,
            ),
        );
        assert_eq!(
            out,
            concat!(
                // Its own object: its own name.
                r#"<img src="https://cdn.example/shop/product-01-1.jpg"> "#,
                // A map whose duplicate URL names another file's object.
                r#"<img src="https://cdn.example/shop/product-02.jpg"> "#,
                r#"<img src="https://cdn.example/shop/12/34/ab.jpg?v=1"> {"u":"https:\/\/cdn.example\/shop\/12\/34\/ab.jpg"}"#,
            )
        );
        assert_eq!(s.replacements, 4);
    }

    #[test]
    fn a_part_of_a_report_that_has_its_examples_makes_none() {
        let t = table();
        let f = Finder::new(&t.bases, true).unwrap();
        let rw = Rewriter {
            table: &t,
            finder: &f,
        };
        let mut whole = Stats::default();
        let text = (0..6)
            .map(|i| format!("/media/a.jpg?{i} /media/x/caf%C3%A9.jpg#{i} /media/v%201.mp4 "))
            .collect::<String>();
        rw.rewrite(text.as_bytes(), &mut whole);
        assert_eq!(whole.examples.len(), 3, "one per distinct old URL");
        let mut part = Stats::part_of(&whole);
        assert!(part.wants_example(), "the whole has room for more");
        whole.examples.extend(whole.examples.clone());
        let mut part_of_full = Stats::part_of(&whole);
        rw.rewrite(b"/media/b&c.png", &mut part_of_full);
        rw.rewrite(b"/media/b&c.png", &mut part);
        assert_eq!(part_of_full.replacements, 1);
        assert!(part_of_full.examples.is_empty());
        assert_eq!(part.examples.len(), 1);
        assert!(
            Stats::part_of(&part_of_full).examples.is_empty()
                && !Stats::part_of(&part_of_full).wants_example(),
            "a part of a part"
        );
    }

    #[test]
    fn reading_after_a_base_is_bounded_by_the_map() {
        let t = forms();
        let f = Finder::new(&t.bases, true).unwrap();
        let rw = Rewriter {
            table: &t,
            finder: &f,
        };
        let mut s = Scratch::default();
        // A run no path of the map is as long as.
        let text = format!("/media/{}", "x".repeat(100_000));
        rw.scan(text.as_bytes(), 7, b"", &mut s);
        assert!(s.u.len() <= t.window + 1, "{} > {}", s.u.len(), t.window);
        assert!(s.ends.is_empty());
        // Spaces: read past one only into a path of the map.
        let text = format!("/media/2024/11/sunset beach {}", "y ".repeat(100_000));
        rw.scan(text.as_bytes(), 7, b"", &mut s);
        assert_eq!(s.u, b"2024/11/sunset beach ");
        assert_eq!(s.ends.len(), 2);
        // Many bases each followed by many words cost linear time.
        let text = "/media/2024/11/sunset and more words here ".repeat(50_000);
        let started = std::time::Instant::now();
        let (_, stats) = rewrite_with(&t, &text);
        assert_eq!(
            stats.not_in_map.keys().collect::<Vec<_>>(),
            ["2024/11/sunset"]
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn reversed_references_keep_their_form_too() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |p: &str| {
            serde_json::json!({
                "old_url": format!("https://shop.example/media/{}", crate::urls::encode_path(p)),
                "new_url": format!("https://cdn.example/shop/{}", crate::urls::encode_path(p)),
                "key": format!("shop/{p}"), "sha256": "", "size": 1,
                "content_type": "image/jpeg", "duplicate_of": ""
            })
        };
        let doc = serde_json::json!({
            "version": 1, "source": "/srv/media", "destination": "s3://bucket/shop/",
            "source_base_url": "https://shop.example/media/",
            "public_base_url": "https://cdn.example",
            "entries": [entry("2024/11/café crème.jpg"), entry("a+b.jpg")]
        });
        std::fs::write(dir.path().join("map.json"), doc.to_string()).unwrap();
        let original = r#"<img src="https://shop.example/media/2024/11/café crème.jpg"> {"u":"https:\/\/shop.example\/media\/2024\/11\/caf\u00e9 cr\u00e8me.jpg"} /media/a%2Bb.jpg"#;
        let forward = Table::load(
            dir.path(),
            &["https://shop.example/media/".into(), "/media/".into()],
            false,
        )
        .unwrap();
        let (new, _) = rewrite_with(&forward, original);
        assert_eq!(
            new,
            r#"<img src="https://cdn.example/shop/2024/11/café crème.jpg"> {"u":"https:\/\/cdn.example\/shop\/2024\/11\/caf\u00e9 cr\u00e8me.jpg"} https://cdn.example/shop/a%2Bb.jpg"#
        );
        let reverse =
            Table::load(dir.path(), &["https://shop.example/media/".into()], true).unwrap();
        let (back, s) = rewrite_with(&reverse, &new);
        assert_eq!(s.replacements, 3);
        assert_eq!(
            back,
            r#"<img src="https://shop.example/media/2024/11/café crème.jpg"> {"u":"https:\/\/shop.example\/media\/2024\/11\/caf\u00e9 cr\u00e8me.jpg"} https://shop.example/media/a%2Bb.jpg"#
        );
    }
}
