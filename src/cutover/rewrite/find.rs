//! One search for every base in every escaping it can be written in, and
//! for Magento's `{{media url=` directives, over bytes that are mostly not
//! references: aho-corasick with its SIMD prefilters skips them at memory
//! speed.
//!
//! Escapings searched: plain; JSON with escaped slashes (`https:\/\/...`,
//! as PHP's json_encode writes); and that JSON escaped again by a dump
//! (`https:\\/\\/...`, as mysqldump and pg_dump's COPY write it), so a
//! dump's literal can be rewritten as it is written, without decoding it.

use aho_corasick::{AhoCorasick, MatchKind};

use super::table::Base;

/// How the slashes of a reference are written where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    Plain,
    /// `\/` for `/` (inside a JSON string).
    Json,
    /// `\\/` for `/`: JSON inside a dump's backslash-escaped literal.
    DumpJson,
}

impl Escaping {
    /// What starts an escape sequence (`\/`, `\u00e9`), if any.
    pub fn escape(self) -> &'static [u8] {
        match self {
            Self::Plain => b"",
            Self::Json => b"\\",
            Self::DumpJson => b"\\\\",
        }
    }

    /// `s` written this way.
    pub fn apply(self, s: &str) -> String {
        match self {
            Self::Plain => s.to_string(),
            Self::Json => s.replace('/', "\\/"),
            Self::DumpJson => s.replace('/', "\\\\/"),
        }
    }

    /// `s` written this way, into `out`.
    pub fn apply_into(self, s: &str, out: &mut Vec<u8>) {
        let slash: &[u8] = match self {
            Self::Plain => return out.extend_from_slice(s.as_bytes()),
            Self::Json => b"\\/",
            Self::DumpJson => b"\\\\/",
        };
        for piece in s.as_bytes().split_inclusive(|&b| b == b'/') {
            match piece.strip_suffix(b"/") {
                Some(p) => {
                    out.extend_from_slice(p);
                    out.extend_from_slice(slash);
                }
                None => out.extend_from_slice(piece),
            }
        }
    }
}

/// What a pattern stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// Base number `base`, written with `escaping`.
    Base { base: usize, escaping: Escaping },
    /// `{{media url=`.
    Directive,
}

/// A found pattern: where, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub end: usize,
    pub hit: Hit,
}

pub const DIRECTIVE: &str = "{{media url=";

/// The compiled searches.
#[derive(Debug)]
pub struct Finder {
    exact: AhoCorasick,
    hits: Vec<Hit>,
    /// Every form of every pattern, for a yes/no check of escaped bytes.
    any: AhoCorasick,
    /// The longest pattern, for the carry-over of streamed text.
    pub longest: usize,
}

impl Finder {
    pub fn new(bases: &[Base], directives: bool) -> Result<Self, aho_corasick::BuildError> {
        let mut patterns = Vec::new();
        let mut hits = Vec::new();
        let mut any = Vec::new();
        for (i, b) in bases.iter().enumerate() {
            for escaping in [Escaping::Plain, Escaping::Json, Escaping::DumpJson] {
                let p = escaping.apply(&b.url);
                any.push(p.clone());
                patterns.push(p);
                hits.push(Hit::Base { base: i, escaping });
            }
        }
        if directives {
            patterns.push(DIRECTIVE.to_string());
            hits.push(Hit::Directive);
            any.push(DIRECTIVE.to_string());
        }
        let build = |p: &[String]| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(p)
        };
        Ok(Self {
            longest: patterns.iter().map(String::len).max().unwrap_or(0),
            exact: build(&patterns)?,
            hits,
            any: build(&any)?,
        })
    }

    /// Every pattern in `hay`, left to right, not overlapping.
    pub fn find<'a>(&'a self, hay: &'a [u8]) -> impl Iterator<Item = Found> + 'a {
        self.exact.find_iter(hay).map(|m| Found {
            start: m.start(),
            end: m.end(),
            hit: self.hits[m.pattern().as_usize()],
        })
    }

    /// Whether `hay` may hold a reference in any escaping (a dump's raw
    /// literal): when not, it is passed through without being decoded.
    pub fn may_hold(&self, hay: &[u8]) -> bool {
        self.any.is_match(hay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_found_plain_and_json_escaped_and_longest_first() {
        let bases = [
            Base::parse("https://shop.example/media/").unwrap(),
            Base::parse("//shop.example/media/").unwrap(),
        ];
        let f = Finder::new(&bases, true).unwrap();
        let text = br#"<img src="https://shop.example/media/a.jpg"> {"u":"https:\/\/shop.example\/media\/b.jpg"} {{media url="c.jpg"}}"#;
        let found: Vec<Found> = f.find(text).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(
            found[0].hit,
            Hit::Base {
                base: 0,
                escaping: Escaping::Plain
            },
            "https://... wins over the //... inside it"
        );
        assert_eq!(
            found[1].hit,
            Hit::Base {
                base: 0,
                escaping: Escaping::Json
            }
        );
        assert_eq!(found[2].hit, Hit::Directive);
        assert!(f.may_hold(br#"'{\"u\":\"https:\\/\\/shop.example\\/media\\/b.jpg\"}'"#));
        assert!(!f.may_hold(b"nothing here: https://other.example/media/"));
    }

    #[test]
    fn apply_into_writes_what_apply_gives() {
        for e in [Escaping::Plain, Escaping::Json, Escaping::DumpJson] {
            for s in ["", "/", "https://cdn.example/a/b.jpg", "a//b/", "no slash"] {
                let mut out = b"x".to_vec();
                e.apply_into(s, &mut out);
                assert_eq!(out, format!("x{}", e.apply(s)).into_bytes(), "{e:?} {s}");
            }
        }
    }
}
