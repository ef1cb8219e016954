//! A reference: a base, then a path the map knows. What follows a base is
//! read up to a character no URL in markup, CSS or JSON carries raw
//! (whitespace, a quote, `<>()`...), decoded (JSON `\/` and `\u00XX`, HTML
//! `&amp;`, then percent-encoding), and looked up; if the whole does not
//! match, it is cut back at `?`, `#`, `,`, `;`, `&`, `.`, `:` or `!` (a
//! query string, a srcset list, the end of a sentence), longest first. The
//! replacement is written in the escaping the reference was found in.
//! Paths under a base that the map does not know are listed, never
//! guessed.

use std::collections::BTreeMap;

use super::find::{DIRECTIVE, Escaping, Finder, Found, Hit};
use super::table::{Anchor, Table, Target};

/// The longest path (as written) read after a base.
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
}

impl Stats {
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

    fn replaced(&mut self, old: String, new: &str) {
        self.replacements += 1;
        if self.examples.len() < KEEP_EXAMPLES && !self.examples.iter().any(|(o, _)| *o == old) {
            self.examples.push((old, new.to_string()));
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

/// A byte no reference carries raw: its path ends before it.
fn hard_end(b: u8) -> bool {
    b <= b' '
        || b == 0x7f
        || matches!(
            b,
            b'"' | b'\''
                | b'<'
                | b'>'
                | b'('
                | b')'
                | b'`'
                | b'{'
                | b'}'
                | b'['
                | b']'
                | b'|'
                | b'^'
        )
}

/// Where a path may be cut back to.
fn soft_end(b: u8) -> bool {
    matches!(b, b'?' | b'#' | b',' | b';' | b'&' | b'.' | b':' | b'!')
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

/// The end of the path that starts at `from`, written with `escaping`.
fn path_end(text: &[u8], from: usize, escaping: Escaping) -> usize {
    let stop = text.len().min(from + MAX_PATH);
    let esc = escaping.escape();
    let mut i = from;
    while i < stop {
        let b = text[i];
        if b == b'\\' {
            let after = i + esc.len();
            let escaped = !esc.is_empty() && text[i..].starts_with(esc);
            match (escaped, text.get(after)) {
                (true, Some(b'/')) => i = after + 1,
                (true, Some(b'u'))
                    if text
                        .get(after + 1..after + 5)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                {
                    i = after + 5
                }
                _ => break,
            }
            continue;
        }
        if hard_end(b) {
            break;
        }
        i += 1;
    }
    i.min(stop)
}

/// A path as written, decoded: escapes of its context undone, then
/// percent-decoded. `None` if it is not text.
fn decode(raw: &[u8], escaping: Escaping) -> Option<(String, String)> {
    let esc = escaping.escape();
    let e = esc.len();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if !esc.is_empty() && raw[i..].starts_with(esc) {
            match raw.get(i + e) {
                Some(b'/') => {
                    out.push(b'/');
                    i += e + 1;
                }
                Some(b'u') => {
                    let unit = |at: usize| {
                        raw.get(at..at + 4)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u16::from_str_radix(h, 16).ok())
                    };
                    let hi = unit(i + e + 1)?;
                    let one = e + 5;
                    let (c, used) = if (0xD800..0xDC00).contains(&hi) {
                        let second = raw.get(i + one..)?;
                        let lo = (second.starts_with(esc) && second.get(e) == Some(&b'u'))
                            .then(|| unit(i + one + e + 1))
                            .flatten()?;
                        let c = char::decode_utf16([hi, lo]).next()?.ok()?;
                        (c, 2 * one)
                    } else {
                        (char::decode_utf16([hi]).next()?.ok()?, one)
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += used;
                }
                _ => return None,
            }
            continue;
        }
        if let Some(n) = [&b"&amp;"[..], b"&#38;", b"&#x26;"]
            .iter()
            .find(|e| raw[i..].starts_with(e))
            .map(|e| e.len())
        {
            out.push(b'&');
            i += n;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    let unescaped = String::from_utf8(out).ok()?;
    let decoded = percent_encoding::percent_decode_str(&unescaped)
        .decode_utf8()
        .ok()?
        .into_owned();
    Some((decoded, unescaped))
}

impl<'a> Rewriter<'a> {
    /// The target of the longest known path starting at `from` (ending at
    /// or before `end`), and where it ends.
    fn lookup(
        &self,
        text: &[u8],
        from: usize,
        end: usize,
        escaping: Escaping,
    ) -> Option<(&'a Target, usize, String)> {
        let mut cut = end;
        for _ in 0..32 {
            if cut <= from {
                return None;
            }
            if let Some((decoded, raw)) = decode(&text[from..cut], escaping) {
                for p in [&decoded, &raw] {
                    if let Some(t) = self.table.get(p) {
                        return Some((t, cut, decoded.clone()));
                    }
                }
            }
            cut = (from..cut).rev().find(|&i| soft_end(text[i]))?;
        }
        None
    }

    /// What an unknown path is reported as: up to its first query or
    /// fragment character, decoded if it can be.
    fn shown(text: &[u8], from: usize, end: usize, escaping: Escaping) -> String {
        let cut = (from..end)
            .find(|&i| matches!(text[i], b'?' | b'#' | b'&' | b','))
            .unwrap_or(end);
        let mut cut = cut;
        while cut > from && matches!(text[cut - 1], b'.' | b':' | b'!' | b';') {
            cut -= 1;
        }
        decode(&text[from..cut], escaping).map_or_else(
            || String::from_utf8_lossy(&text[from..cut]).into_owned(),
            |(d, _)| d,
        )
    }

    /// The edits for the references in `text` that start before `limit`
    /// (the text may go on past it, so a path that starts before it is
    /// read whole), in order.
    pub fn edits(&self, text: &[u8], limit: usize, stats: &mut Stats) -> Vec<Edit> {
        let mut edits = Vec::new();
        for Found { start, end, hit } in self.finder.find(text) {
            if start >= limit {
                break;
            }
            match hit {
                Hit::Base { base, escaping } => {
                    let b = &self.table.bases[base];
                    if !anchored(text, start, b.anchor) {
                        continue;
                    }
                    let stop = path_end(text, end, escaping);
                    if stop == end {
                        continue; // the base alone: not a file
                    }
                    match self.lookup(text, end, stop, escaping) {
                        Some((target, cut, path)) => {
                            let with = escaping.apply(&target.url);
                            stats.replaced(format!("{}{path}", b.url), &target.url);
                            edits.push(Edit {
                                start,
                                end: cut,
                                with: with.into_bytes(),
                            });
                        }
                        None => {
                            // The base then punctuation (`/media/.`): no file.
                            let shown = Self::shown(text, end, stop, escaping);
                            if !shown.is_empty() {
                                stats.unknown(&shown, 1);
                            }
                        }
                    }
                }
                Hit::Directive => {
                    if let Some(e) = self.directive(text, end, stats) {
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
        stats.replaced(
            format!("{DIRECTIVE}\"{raw}\"}}}}"),
            &format!("{DIRECTIVE}\"{}\"}}}}", target.media_path),
        );
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
    use crate::rewrite::table::Target;

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
            rows.iter().map(|(p, u, m)| {
                (
                    p.to_string(),
                    Target {
                        url: (*u).into(),
                        media_path: (*m).into(),
                    },
                )
            }),
        )
    }

    pub fn rewrite(text: &str) -> (String, Stats) {
        let t = table();
        let f = Finder::new(&t.bases, true).unwrap();
        let rw = Rewriter {
            table: &t,
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
            r#"<img src="https://cdn.example/shop/a.jpg?v=2" srcset="https://cdn.example/shop/a.jpg 1x, https://cdn.example/shop/x/caf%C3%A9.jpg 2x"> <div style="background:url(https://cdn.example/shop/a.jpg)"></div> url('https://cdn.example/shop/b%26c.png') url(https://cdn.example/shop/v%201.mp4)"#
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
            r#"{"url":"https:\/\/cdn.example\/shop\/x\/caf%C3%A9.jpg","b":"https:\/\/cdn.example\/shop\/a.jpg","c":"https://cdn.example/shop/a.jpg"}"#
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
}
