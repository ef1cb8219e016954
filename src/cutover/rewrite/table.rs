//! The map as the rewriter sees it: each old path (decoded, relative to the
//! source base) and what replaces a reference to it, plus the bases under
//! which the application writes those paths, and what the matcher needs to
//! know about the paths as a whole (how long one can be written, which
//! characters that end a URL some path holds).
//!
//! Forward, a reference `BASE + path` becomes the path's `new_url`; when
//! that URL ends with the path itself, strictly percent-encoded (the
//! `preserve` key layout: public base, prefix, path), the entry keeps the
//! length of the URL's head, so the reference can keep its path as it is
//! written (raw, percent-encoded, JSON-escaped) after the new head. Under
//! the `content` layout (or a duplicate whose URL names another file's
//! object) the whole new URL replaces it. This is decided per entry, here,
//! once. A
//! Magento directive `{{media url="path"}}` becomes the object's path
//! relative to the new media base (the public base plus the destination's
//! prefix), which differs from the old path only with the content key
//! layout. `--reverse` turns it around: a new URL becomes the first base
//! plus the path of the file that owns the object (duplicates share one
//! object, so they come back as that file's URL).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::urls;

/// Which bytes, written raw, continue a path (see `refs`' module doc): kept with the table, which
/// needs it to know where a mapped path may stop, and which `refs` reads.
const CONTINUES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c >= 0x80
            || c.is_ascii_alphanumeric()
            || matches!(c, b'.' | b'-' | b'_' | b'~' | b'%' | b'/' | b'+' | b'@');
        b += 1;
    }
    t
};

/// Whether `b`, written raw, continues a path: after a path, it says the
/// URL goes on, so the path is not the URL's.
pub fn continues(b: u8) -> bool {
    CONTINUES[usize::from(b)]
}

/// A map that cannot be used, or a base that cannot be matched.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("cannot read the map {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a mediashift map.json ({detail}): give --map the map.json (or the --map-dir) that migrate wrote"
    )]
    Format { path: String, detail: String },
    #[error(
        "{path} was written by an earlier mediashift without its base URLs: run the same `mediashift migrate` again (it uploads nothing new and rewrites the maps), then rewrite"
    )]
    NoBases { path: String },
    #[error(
        "{path}: entry {index} ({url}) is not under the map's base {base}: the map is damaged; run `mediashift migrate` again to write it anew"
    )]
    Entry {
        path: String,
        index: usize,
        url: String,
        base: String,
    },
    #[error("cannot build the search for the bases: {0}")]
    Search(String),
    #[error(
        "--base {base}: give an absolute URL (https://shop.example/media/), a scheme-relative one (//shop.example/media/) or a root-relative path (/media/)"
    )]
    Base { base: String },
}

#[derive(Deserialize)]
struct MapFile {
    version: u32,
    destination: String,
    source_base_url: Option<String>,
    public_base_url: Option<String>,
    entries: Vec<MapEntry>,
}

#[derive(Deserialize)]
struct MapEntry {
    old_url: String,
    new_url: String,
    key: String,
    #[serde(default)]
    duplicate_of: String,
}

/// How a base is anchored: what may come before it in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// `https://host/media/`: not after a scheme character.
    Absolute,
    /// `//host/media/`: not after `:` (it would be inside `https://...`).
    SchemeRelative,
    /// `/media/`: not after a host or path character.
    RootRelative,
}

/// One form under which the application writes the old (or, reversed,
/// the new) URLs; it ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub url: String,
    pub anchor: Anchor,
}

impl Base {
    pub fn parse(url: &str) -> Result<Self, MapError> {
        let bad = || MapError::Base {
            base: url.to_string(),
        };
        let anchor = if url.starts_with("//") {
            Anchor::SchemeRelative
        } else if url.starts_with('/') {
            Anchor::RootRelative
        } else if let Some((scheme, rest)) = url.split_once("://") {
            let ok = !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !rest.is_empty();
            if !ok {
                return Err(bad());
            }
            Anchor::Absolute
        } else {
            return Err(bad());
        };
        if url.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            return Err(bad());
        }
        let mut url = url.to_string();
        if !url.ends_with('/') {
            url.push('/');
        }
        Ok(Self { url, anchor })
    }
}

/// What replaces a reference to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL a `BASE + path` reference becomes.
    pub url: Box<str>,
    /// The path a `{{media url=...}}` directive becomes.
    pub media_path: Box<str>,
    /// Set when `url` ends with the path (less its first `skip` bytes)
    /// strictly percent-encoded: a reference may then keep that part of
    /// its path as written, after `url`'s head.
    pub tail: Option<Tail>,
}

/// `url[..head]` followed by the path from its byte `skip` on, strictly
/// percent-encoded, is the whole URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    pub head: u32,
    pub skip: u32,
}

impl Target {
    /// A target for `path`, whose references may keep their path as
    /// written from its byte `skip` on (a segment's start) if `url` ends
    /// with that part of it, percent-encoded, after a `/`.
    pub fn new(path: &str, url: String, media_path: String, skip: usize) -> Self {
        let tail = path
            .get(skip..)
            .filter(|_| skip == 0 || path.as_bytes()[skip - 1] == b'/')
            .and_then(|kept| {
                let encoded = urls::encode_path(kept);
                let head = url.strip_suffix(&encoded)?;
                (head.ends_with('/') && !kept.is_empty()).then_some(head.len())
            })
            .and_then(|head| {
                Some(Tail {
                    head: u32::try_from(head).ok()?,
                    skip: u32::try_from(skip).ok()?,
                })
            });
        Self {
            url: url.into(),
            media_path: media_path.into(),
            tail,
        }
    }
}

/// The lookup: decoded path to target.
#[derive(Debug, Default)]
pub struct Table {
    paths: HashMap<Box<str>, u32>,
    targets: Vec<Target>,
    pub bases: Vec<Base>,
    /// The most bytes a path can take written in any form (each character
    /// percent-encoded, or as a JSON `\\uXXXX` in a dump): how far after
    /// a base the matcher reads.
    pub window: usize,
    /// Characters that end a URL (`refs::continues` says no) and that
    /// some path holds: one of them after a base may be inside the path.
    inner_ends: [u64; 2],
    /// Every path's beginnings up to and including such a character: the
    /// text must match one of them to read on past that character.
    stems: HashSet<Box<[u8]>>,
}

/// The most bytes `path` can take as a reference writes it: each character
/// percent-encoded (3 bytes per UTF-8 byte) or as JSON `\\uXXXX` escapes
/// inside a dump (7 bytes per UTF-16 unit), whichever is longer.
fn longest_written(path: &str) -> usize {
    path.chars()
        .map(|c| (3 * c.len_utf8()).max(7 * c.len_utf16()))
        .sum()
}

/// `url` without `base` (and the one `/` that joins them), decoded: the
/// path `urls::url_for(base, path)` was made from.
fn path_under(base: &str, url: &str) -> Option<String> {
    let joined = format!("{}/", base.trim_end_matches('/'));
    let encoded = url.strip_prefix(&joined)?;
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(|p| p.into_owned())
}

impl Table {
    /// Reads `map` (a map.json, or the directory holding it). `bases` are
    /// the forms given with `--base`; none means the map's own base (for
    /// `--reverse`, the map's public base is always the one searched, and
    /// the first base, or the map's, is what references become).
    pub fn load(map: &Path, bases: &[String], reverse: bool) -> Result<Self, MapError> {
        let path = if map.is_dir() {
            map.join("map.json")
        } else {
            map.to_path_buf()
        };
        let shown = path.display().to_string();
        let file = std::fs::File::open(&path).map_err(|source| MapError::Read {
            path: shown.clone(),
            source,
        })?;
        let doc: MapFile = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
            MapError::Format {
                path: shown.clone(),
                detail: e.to_string(),
            }
        })?;
        if doc.version != 1 {
            return Err(MapError::Format {
                path: shown,
                detail: format!("version {}, this mediashift reads version 1", doc.version),
            });
        }
        let (Some(source_base), Some(public_base)) =
            (doc.source_base_url.clone(), doc.public_base_url.clone())
        else {
            return Err(MapError::NoBases { path: shown });
        };
        let prefix = doc
            .destination
            .strip_prefix("s3://")
            .and_then(|d| d.split_once('/'))
            .map_or(String::new(), |(_, p)| p.to_string());
        let mut table = Self::default();
        let given: Vec<Base> = bases
            .iter()
            .map(|b| Base::parse(b))
            .collect::<Result<_, _>>()?;
        let own = Base::parse(&source_base)?;
        let first = given.first().cloned().unwrap_or_else(|| own.clone());
        // Forward: old path -> new URL. Reverse: object path -> the URL of
        // the file that owns it.
        let mut owner_of_key: HashMap<&str, String> = HashMap::new();
        for (index, e) in doc.entries.iter().enumerate() {
            let entry_err = |url: &str, base: &str| MapError::Entry {
                path: shown.clone(),
                index,
                url: url.to_string(),
                base: base.to_string(),
            };
            let rel = path_under(&source_base, &e.old_url)
                .ok_or_else(|| entry_err(&e.old_url, &source_base))?;
            if reverse {
                let object = path_under(&public_base, &e.new_url)
                    .ok_or_else(|| entry_err(&e.new_url, &public_base))?;
                if e.duplicate_of.is_empty() || !owner_of_key.contains_key(e.key.as_str()) {
                    owner_of_key.insert(&e.key, rel.clone());
                }
                let owner = owner_of_key[e.key.as_str()].clone();
                // The owner's path is the object's less the prefix (the
                // preserve layout): a reference keeps that part as written.
                let skip = object
                    .strip_suffix(owner.as_str())
                    .filter(|p| p.is_empty() || p.ends_with('/'))
                    .map_or(0, str::len);
                let url = urls::url_for(&first.url, &owner);
                let target = Target::new(&object, url, owner, skip);
                table.insert(object, target);
            } else {
                let media_path = e.key.strip_prefix(&prefix).unwrap_or(&e.key).to_string();
                let target = Target::new(&rel, e.new_url.clone(), media_path, 0);
                table.insert(rel, target);
            }
        }
        table.bases = if reverse {
            vec![Base::parse(&public_base)?]
        } else if given.is_empty() {
            vec![own]
        } else {
            given
        };
        Ok(table)
    }

    /// A table from (path, new URL, media path) rows.
    #[cfg(test)]
    pub fn from_rows(
        bases: &[&str],
        rows: impl IntoIterator<Item = (String, String, String)>,
    ) -> Self {
        let mut t = Self {
            bases: bases.iter().filter_map(|b| Base::parse(b).ok()).collect(),
            ..Self::default()
        };
        for (p, url, media_path) in rows {
            let target = Target::new(&p, url, media_path, 0);
            t.insert(p, target);
        }
        t
    }

    fn insert(&mut self, path: String, target: Target) {
        use std::collections::hash_map::Entry;
        self.window = self.window.max(longest_written(&path));
        for (i, b) in path.bytes().enumerate() {
            if b.is_ascii() && !continues(b) {
                self.inner_ends[usize::from(b >> 6)] |= 1 << (b & 63);
                self.stems.insert(path.as_bytes()[..=i].into());
            }
        }
        let next = self.targets.len() as u32;
        match self.paths.entry(path.into_boxed_str()) {
            // A later row for the same path wins, as in the maps.
            Entry::Occupied(e) => self.targets[*e.get() as usize] = target,
            Entry::Vacant(e) => {
                e.insert(next);
                self.targets.push(target);
            }
        }
    }

    pub fn get(&self, path: &str) -> Option<&Target> {
        self.paths.get(path).map(|&i| &self.targets[i as usize])
    }

    /// Whether some path holds `b`, a character that ends a URL.
    pub fn inside_some_path(&self, b: u8) -> bool {
        b.is_ascii() && self.inner_ends[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    /// Whether some path begins with `prefix`, which ends with a character
    /// that ends a URL.
    pub fn is_stem(&self, prefix: &[u8]) -> bool {
        !self.stems.is_empty() && self.stems.contains(prefix)
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_map(dir: &Path, body: &serde_json::Value) -> std::path::PathBuf {
        let p = dir.join("map.json");
        std::fs::write(&p, serde_json::to_vec(body).unwrap()).unwrap();
        p
    }

    fn doc() -> serde_json::Value {
        serde_json::json!({
            "version": 1,
            "source": "/srv/media",
            "destination": "s3://bucket/shop/",
            "source_base_url": "https://old.example/media/",
            "public_base_url": "https://cdn.example",
            "entries": [
                {"old_url": "https://old.example/media/a%20b.jpg", "new_url": "https://cdn.example/shop/aa/x.jpg",
                 "key": "shop/aa/x.jpg", "sha256": "", "size": 1, "content_type": "image/jpeg", "duplicate_of": ""},
                {"old_url": "https://old.example/media/caf%C3%A9.jpg", "new_url": "https://cdn.example/shop/aa/x.jpg",
                 "key": "shop/aa/x.jpg", "sha256": "", "size": 1, "content_type": "image/jpeg", "duplicate_of": "a b.jpg"}
            ]
        })
    }

    #[test]
    fn a_map_is_read_forward_and_reversed() {
        let dir = tempfile::tempdir().unwrap();
        write_map(dir.path(), &doc());
        let t = Table::load(dir.path(), &[], false).unwrap();
        assert_eq!(t.len(), 2);
        let a = t.get("a b.jpg").unwrap();
        assert_eq!(&*a.url, "https://cdn.example/shop/aa/x.jpg");
        assert_eq!(&*a.media_path, "aa/x.jpg", "relative to the new media base");
        assert!(t.get("café.jpg").is_some(), "paths are decoded");
        assert_eq!(t.bases[0].url, "https://old.example/media/");

        let r = Table::load(dir.path(), &["//old.example/media".into()], true).unwrap();
        let back = r.get("shop/aa/x.jpg").unwrap();
        assert_eq!(
            &*back.url, "//old.example/media/a%20b.jpg",
            "a shared object comes back as its owner's URL, under the first base"
        );
        assert_eq!(r.bases[0].url, "https://cdn.example/");
    }

    #[test]
    fn an_entry_keeps_its_written_path_only_when_its_url_ends_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = doc();
        d["entries"] = serde_json::json!([
            // preserve: the URL ends with the path.
            {"old_url": "https://old.example/media/x/caf%C3%A9%2B1.jpg", "new_url": "https://cdn.example/shop/x/caf%C3%A9%2B1.jpg",
             "key": "shop/x/café+1.jpg", "sha256": "", "size": 1, "content_type": "image/jpeg", "duplicate_of": ""},
            // a duplicate with its own object (its own path) ...
            {"old_url": "https://old.example/media/x/caf%C3%A9%2B1-1.jpg", "new_url": "https://cdn.example/shop/x/caf%C3%A9%2B1-1.jpg",
             "key": "shop/x/café+1-1.jpg", "sha256": "", "size": 1, "content_type": "image/jpeg", "duplicate_of": "x/café+1.jpg"},
            // ... and one whose URL names another file's object.
            {"old_url": "https://old.example/media/x/b.jpg", "new_url": "https://cdn.example/shop/x/caf%C3%A9%2B1.jpg",
             "key": "shop/x/café+1.jpg", "sha256": "", "size": 1, "content_type": "image/jpeg", "duplicate_of": "x/café+1.jpg"},
            // the content layout; and a name that only ends like its key.
            {"old_url": "https://old.example/media/y/ab.jpg", "new_url": "https://cdn.example/shop/12/34/ab.jpg",
             "key": "shop/12/34/ab.jpg", "sha256": "", "size": 1, "content_type": "image/jpeg", "duplicate_of": ""},
            {"old_url": "https://old.example/media/b.jpg", "new_url": "https://cdn.example/shop/12/34/ab.jpg",
             "key": "shop/12/34/ab.jpg", "sha256": "", "size": 1, "content_type": "image/jpeg", "duplicate_of": "y/ab.jpg"}
        ]);
        write_map(dir.path(), &d);
        let t = Table::load(dir.path(), &[], false).unwrap();
        let tail = |p: &str| t.get(p).unwrap().tail;
        let head = "https://cdn.example/shop/".len() as u32;
        assert_eq!(tail("x/café+1.jpg"), Some(Tail { head, skip: 0 }));
        assert_eq!(tail("x/café+1-1.jpg"), Some(Tail { head, skip: 0 }));
        assert_eq!(tail("x/b.jpg"), None, "another file's object");
        assert_eq!(tail("y/ab.jpg"), None, "content layout");
        assert_eq!(
            tail("b.jpg"),
            None,
            "ab.jpg ends with b.jpg, but not after a /"
        );
        assert!(t.window >= 7 * "x/café+1-1.jpg".chars().count());

        // Reversed: the object's path less the prefix is the file's path.
        let r = Table::load(dir.path(), &["/media/".into()], true).unwrap();
        assert_eq!(
            r.get("shop/x/café+1.jpg").unwrap().tail,
            Some(Tail {
                head: "/media/".len() as u32,
                skip: "shop/".len() as u32
            })
        );
        assert_eq!(r.get("shop/12/34/ab.jpg").unwrap().tail, None);
    }

    #[test]
    fn bad_maps_and_bases_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = doc();
        old.as_object_mut().unwrap().remove("source_base_url");
        let p = write_map(dir.path(), &old);
        let e = Table::load(&p, &[], false).unwrap_err().to_string();
        assert!(e.contains("run the same `mediashift migrate` again"), "{e}");

        let mut other = doc();
        other["entries"][0]["old_url"] = "https://elsewhere.example/x.jpg".into();
        write_map(dir.path(), &other);
        let e = Table::load(&p, &[], false).unwrap_err().to_string();
        assert!(
            e.contains("entry 0") && e.contains("not under the map's base"),
            "{e}"
        );

        std::fs::write(&p, b"{\"rows\": []}").unwrap();
        let e = Table::load(&p, &[], false).unwrap_err().to_string();
        assert!(e.contains("is not a mediashift map.json"), "{e}");

        for bad in ["media/", "shop.example/media", "https://", "/a b/"] {
            assert!(Base::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Base::parse("/media").unwrap().url, "/media/");
        assert_eq!(
            Base::parse("//h/m/").unwrap().anchor,
            Anchor::SchemeRelative
        );
    }

    #[test]
    fn a_million_entries_load_and_look_up() {
        let rows = (0..1_000_000u32).map(|i| {
            (
                format!("catalog/product/{}/{}/img-{i}.jpg", i % 16, i % 7),
                format!("https://cdn.example/shop/img-{i}.jpg"),
                format!("img-{i}.jpg"),
            )
        });
        let t = Table::from_rows(&["/media/"], rows);
        assert_eq!(t.len(), 1_000_000);
        let i = 999_989;
        let path = format!("catalog/product/{}/{}/img-{i}.jpg", i % 16, i % 7);
        assert_eq!(
            &*t.get(&path).unwrap().url,
            "https://cdn.example/shop/img-999989.jpg"
        );
        assert!(t.get("catalog/product/5/3/img-1000001.jpg").is_none());
    }
}
