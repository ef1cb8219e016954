//! The URL rewrite maps: old URL to new URL for every migrated file,
//! duplicates included, in the forms applications and web servers read.
//!
//! - `map.csv` and `map.json` for the application (a database update, a
//!   search-and-replace in content).
//! - `nginx.map`, to `include` inside `map $uri $new_url { ... }`: nginx
//!   matches the *decoded, normalised* path in `$uri`, so keys are raw
//!   UTF-8 paths, quoted and escaped for nginx's parser.
//! - `apache.map`, a `RewriteMap txt:` file: space-separated, so keys are
//!   the percent-encoded paths as browsers send them.
//!
//! The four are written together, row by row as the rows come (from the
//! journal, in path order), each to a temporary name in the same directory,
//! then synced and renamed over the old ones, so a reader never sees half
//! a map.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use super::plan::KeyLayout;
use super::select::ContentTypes;
use crate::error::{Error, Result};
use crate::journal::{Journal, PlacedFile};
use crate::settings::{MigrateSettings, Sharding};
use crate::staged::Staged;
use crate::stages::shard::Shard;
use crate::stages::survey::Planned;
use crate::urls;

/// One row: one source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub old_url: String,
    pub new_url: String,
    pub key: String,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    /// The path of the file whose object this duplicate shares ("" if none).
    pub duplicate_of: String,
    /// The path relative to SOURCE_DIR (in the JSON only, as `path`).
    #[serde(rename = "path")]
    pub rel: String,
}

/// The shard a set of maps comes from, and the split it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapShard {
    pub index: u32,
    pub count: u32,
    /// Identifies the tree and the split (see `shard::Assignment`): shards
    /// with another fingerprint saw another tree.
    pub fingerprint: String,
}

impl MapShard {
    pub fn shard(&self) -> Shard {
        Shard {
            index: self.index,
            count: self.count,
        }
    }
}

/// Everything the map files say.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Maps {
    pub version: u32,
    pub source: String,
    pub destination: String,
    /// `--source-base-url`: every `old_url` is it plus the encoded path.
    pub source_base_url: String,
    /// Where the objects are served: every `new_url` is it plus the
    /// encoded key.
    pub public_base_url: String,
    /// Set in the maps of one shard; absent in a whole or merged set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<MapShard>,
    pub entries: Vec<Entry>,
}

impl Maps {
    /// Everything but the rows.
    pub fn meta(&self) -> MapMeta {
        MapMeta {
            version: self.version,
            source: self.source.clone(),
            destination: self.destination.clone(),
            source_base_url: self.source_base_url.clone(),
            public_base_url: self.public_base_url.clone(),
            shard: self.shard.clone(),
        }
    }
}

/// What the maps say besides their rows (the fields of [`Maps`] before
/// `entries`, in the same order).
#[derive(Debug, Clone, Serialize)]
pub struct MapMeta {
    pub version: u32,
    pub source: String,
    pub destination: String,
    pub source_base_url: String,
    pub public_base_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<MapShard>,
}

/// The file in a map directory that says which shard's maps it holds
/// (`I/N`, or `whole`), so that two shards never write one directory.
const SHARD_MARKER: &str = ".mediashift-shard";

/// Claims `dir` for the maps of `shard` (`whole` for an unsharded run):
/// `Err(holder)` when another shard's (or the whole run's) maps are there.
pub fn claim(dir: &Path, shard: &str) -> io::Result<Result<(), String>> {
    let marker = dir.join(SHARD_MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(held) if held.trim() == shard => Ok(Ok(())),
        Ok(held) => Ok(Err(held.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // An unsharded run's maps from before shards existed carry no
            // marker: only a shard needs to say so.
            if shard == "whole" {
                return Ok(Ok(()));
            }
            if dir.join("map.json").exists() {
                return Ok(Err("whole".into()));
            }
            atomic_write(&marker, |w| writeln!(w, "{shard}"))?;
            Ok(Ok(()))
        }
        Err(e) => Err(e),
    }
}

/// Makes sure `dir` takes the maps of this run before anything is
/// uploaded: it can be written, and no other shard's (or the unsharded
/// run's) maps are there (shards write their own map directories, never
/// one another's).
pub fn take_dir(dir: &Path, sharding: Sharding) -> Result<()> {
    let dir_error = |source| Error::MapDir {
        dir: dir.display().to_string(),
        source,
    };
    probe(dir).map_err(dir_error)?;
    let this = match sharding {
        Sharding::One(s) => s.to_string(),
        Sharding::Whole | Sharding::Split(_) => "whole".to_string(),
    };
    if let Err(holder) = claim(dir, &this).map_err(dir_error)? {
        let name = |s: &str| {
            if s == "whole" {
                "the unsharded migration".to_string()
            } else {
                format!("shard {s}")
            }
        };
        return Err(Error::MapDirOfShard {
            dir: dir.display().to_string(),
            theirs: name(&holder),
            ours: name(&this),
        });
    }
    Ok(())
}

/// The four URL maps in `dir`, a row for every file of the migration
/// whose object is in place (verified in the journal, whatever this run
/// selected: a rerun with another selection, a stop, or a file that fails
/// this time never takes a working redirect out of the maps), streamed
/// from the journal in path order. Their paths and row count.
pub fn write_placed(
    journal: &Journal,
    dir: &Path,
    meta: &MapMeta,
    layout: KeyLayout,
    types: &ContentTypes,
) -> Result<(Vec<PathBuf>, usize)> {
    let source_base = &meta.source_base_url;
    let facts = journal.placed_facts()?;
    let mut w = MapWriter::create(dir, meta, source_base, facts.longest_path, facts.case_twins)
        .map_err(Error::Maps)?;
    journal.each_placed(|r: PlacedFile| -> Result<()> {
        let (old_url, new_url) = urls_for(source_base, &meta.public_base_url, &r.path, &r.key);
        // The object's own file gives the content type: under `content`
        // the first of the files sharing it (byte order, as dedup chooses).
        let own = match layout {
            KeyLayout::Preserve => None,
            KeyLayout::Content => r.first.as_deref(),
        };
        let entry = Entry {
            old_url,
            new_url,
            content_type: types.of(own.unwrap_or(&r.path)),
            duplicate_of: r.first.unwrap_or_default(),
            key: r.key,
            sha256: r.sha256.to_hex(),
            size: r.size,
            rel: r.path,
        };
        w.push(&entry).map_err(Error::Maps)
    })?;
    let rows = w.rows();
    Ok((w.finish().map_err(Error::Maps)?, rows))
}

/// Reads the `map.json` in `dir`.
pub fn read(dir: &Path) -> io::Result<Maps> {
    let path = dir.join("map.json");
    let text = std::fs::read(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a mediashift map.json ({e})", path.display()),
        )
    })
}

/// Why shards' maps cannot be merged: each names what disagrees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergeRefusal {
    /// Maps of another migration (source, destination or URL bases), or
    /// of another split: one line each.
    pub mismatched: Vec<String>,
    /// One old URL mapped to different new URLs by different inputs.
    pub conflicts: Vec<Conflict>,
    /// Shard indices of the declared count that no input holds.
    pub missing_shards: Vec<u32>,
    /// One shard given twice (by index).
    pub repeated_shards: Vec<u32>,
}

impl MergeRefusal {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Two rows for one old URL that disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub old_url: String,
    /// (input directory, new URL), one per disagreeing row.
    pub rows: Vec<(String, String)>,
}

/// Joins shards' maps into one set (rows in path order, as one run writes
/// them), or says why not. `inputs` pairs each directory's name (for the
/// messages) with its maps. Rows two shards both hold (a file uploaded by
/// two overlapping shards) are kept once when they agree.
pub fn merge(inputs: &[(String, Maps)]) -> Result<Maps, MergeRefusal> {
    let mut refusal = MergeRefusal::default();
    let Some((first_dir, first)) = inputs.first() else {
        return Err(refusal);
    };
    for (dir, m) in &inputs[1..] {
        for (what, a, b) in [
            ("source", &first.source, &m.source),
            ("destination", &first.destination, &m.destination),
            (
                "source_base_url",
                &first.source_base_url,
                &m.source_base_url,
            ),
            (
                "public_base_url",
                &first.public_base_url,
                &m.public_base_url,
            ),
        ] {
            if a != b {
                refusal
                    .mismatched
                    .push(format!("{dir}: {what} {b}, but {first_dir} has {a}"));
            }
        }
    }
    // The split: every input a shard of one count and one tree, or none a
    // shard at all.
    let shards: Vec<(&str, &MapShard)> = inputs
        .iter()
        .filter_map(|(d, m)| m.shard.as_ref().map(|s| (d.as_str(), s)))
        .collect();
    if let Some((dir0, s0)) = shards.first() {
        for (dir, m) in inputs {
            match &m.shard {
                None => refusal.mismatched.push(format!(
                    "{dir}: not the maps of a shard, but {dir0} is shard {}",
                    s0.shard()
                )),
                Some(s) if s.count != s0.count => refusal.mismatched.push(format!(
                    "{dir}: shard {} of a split into {}, but {dir0} is shard {}",
                    s.shard(),
                    s.count,
                    s0.shard()
                )),
                Some(s) if s.fingerprint != s0.fingerprint => refusal.mismatched.push(format!(
                    "{dir}: shard {} saw another tree than {dir0} (shard {}): the tree changed between their walks; run the shards again",
                    s.shard(),
                    s0.shard()
                )),
                Some(_) => {}
            }
        }
        let mut seen = BTreeSet::new();
        for (_, s) in &shards {
            if !seen.insert(s.index) {
                refusal.repeated_shards.push(s.index);
            }
        }
        refusal.missing_shards = (0..s0.count).filter(|i| !seen.contains(i)).collect();
    }
    let mut rows: BTreeMap<&str, (&str, &Entry)> = BTreeMap::new();
    let mut conflicts: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for (dir, m) in inputs {
        for e in &m.entries {
            match rows.get(e.old_url.as_str()) {
                None => {
                    rows.insert(&e.old_url, (dir, e));
                }
                Some((_, kept)) if kept.new_url == e.new_url => {}
                Some((kept_dir, kept)) => {
                    let c = conflicts
                        .entry(&e.old_url)
                        .or_insert_with(|| vec![(kept_dir.to_string(), kept.new_url.clone())]);
                    c.push((dir.clone(), e.new_url.clone()));
                }
            }
        }
    }
    refusal.conflicts = conflicts
        .into_iter()
        .map(|(old_url, rows)| Conflict {
            old_url: old_url.to_string(),
            rows,
        })
        .collect();
    if !refusal.is_empty() {
        return Err(refusal);
    }
    let mut entries: Vec<Entry> = rows.into_values().map(|(_, e)| e.clone()).collect();
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(Maps {
        version: first.version,
        source: first.source.clone(),
        destination: first.destination.clone(),
        source_base_url: first.source_base_url.clone(),
        public_base_url: first.public_base_url.clone(),
        shard: None,
        entries,
    })
}

/// The path part of `--source-base-url`, decoded, ending with `/`: what
/// nginx's `$uri` starts with for these files.
pub fn source_path_prefix(source_base: &str) -> String {
    let path = match source_base.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => source_base,
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned();
    format!("{}/", decoded.trim_end_matches('/'))
}

/// Builds an entry's URLs from the bases and the path/key.
pub fn urls_for(source_base: &str, public_base: &str, rel: &str, key: &str) -> (String, String) {
    (
        urls::url_for(source_base, rel),
        urls::url_for(public_base, key),
    )
}

/// Checks that `dir` takes the maps, before anything is uploaded: creates
/// it, and writes, syncs and removes a probe file.
pub fn probe(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join(format!(".mediashift-probe-{}", std::process::id()));
    let written = File::create(&p).and_then(|mut f| {
        f.write_all(&[0; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&p);
    written
}

/// Writes the four maps of `maps` into `dir`; returns their paths.
pub fn write_all(dir: &Path, maps: &Maps, source_base: &str) -> io::Result<Vec<PathBuf>> {
    let longest = maps.entries.iter().map(|e| e.rel.len()).max().unwrap_or(0);
    let mut seen = HashSet::new();
    let twins = maps
        .entries
        .iter()
        .map(|e| e.rel.to_ascii_lowercase())
        .filter(|folded| !seen.insert(folded.clone()))
        .collect();
    let mut w = MapWriter::create(dir, &maps.meta(), source_base, longest, twins)?;
    for e in &maps.entries {
        w.push(e)?;
    }
    w.finish()
}

/// The four maps, written row by row as the rows come (from the journal,
/// a million of them, never all in memory), each to a temporary file that
/// [`MapWriter::finish`] puts in place with the others.
pub struct MapWriter {
    dir: PathBuf,
    csv: Staged,
    json: Staged,
    nginx: Staged,
    apache: Staged,
    /// The source path prefix, decoded (nginx) and encoded (apache).
    prefix: String,
    encoded_prefix: String,
    /// Paths, lower-cased, that two rows share but for letter case: nginx
    /// gets them as case-sensitive regular expressions, after the rest.
    case_twins: HashSet<String>,
    /// Those rows' nginx lines, written last.
    regex: Vec<String>,
    rows: usize,
}

impl MapWriter {
    /// Starts the four maps in `dir`. nginx needs to know before its first
    /// row the longest path (`longest_path` bytes: its hash bucket size)
    /// and which paths are equal but for letter case (`case_twins`, ASCII
    /// lower-cased).
    pub fn create(
        dir: &Path,
        meta: &MapMeta,
        source_base: &str,
        longest_path: usize,
        case_twins: HashSet<String>,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let staged = |name: &str| {
            let p = dir.join(name);
            Staged::create(&p).map_err(|e| named(&p, e))
        };
        let prefix = source_path_prefix(source_base);
        let mut w = Self {
            dir: dir.to_path_buf(),
            csv: staged("map.csv")?,
            json: staged("map.json")?,
            nginx: staged("nginx.map")?,
            apache: staged("apache.map")?,
            encoded_prefix: urls::encode_path(&prefix),
            prefix,
            case_twins,
            regex: Vec::new(),
            rows: 0,
        };
        w.heads(meta, longest_path)?;
        Ok(w)
    }

    fn heads(&mut self, meta: &MapMeta, longest_path: usize) -> io::Result<()> {
        writeln!(
            self.csv,
            "old_url,new_url,key,sha256,size,content_type,duplicate_of"
        )?;

        // serde's pretty form of `Maps`, its entries spliced in as they come.
        let head = serde_json::to_string_pretty(meta).map_err(io::Error::other)?;
        let open = head.strip_suffix("\n}").unwrap_or(&head);
        write!(self.json, "{open},\n  \"entries\": [")?;

        // nginx looks map strings up without regard to (ASCII) letter case:
        // two names equal but for case would make `nginx -t` fail
        // ("conflicting parameter"), and either would redirect to the
        // other's object. Those are written as case-sensitive regular
        // expressions, which nginx tries after the strings; everything else
        // stays a plain string in the hash.
        let longest = self.prefix.len() + longest_path;
        let bucket = (longest + 32).next_power_of_two().max(64);
        let n = &mut self.nginx;
        writeln!(
            n,
            "# mediashift URL map for nginx: {} -> {}",
            meta.source, meta.destination
        )?;
        writeln!(
            n,
            "# Use inside: map $uri $mediashift_url {{ default \"\"; include nginx.map; }}"
        )?;
        writeln!(
            n,
            "# and redirect with: return 301 $mediashift_url$is_args$args; ($uri has no query string)"
        )?;
        writeln!(
            n,
            "# The longest key is {longest} bytes: set map_hash_bucket_size {bucket}; (or more) in http {{}}."
        )?;

        let a = &mut self.apache;
        writeln!(
            a,
            "# mediashift URL map for Apache RewriteMap: {} -> {}",
            meta.source, meta.destination
        )?;
        for line in [
            "# Keys are request paths as sent on the wire: the strict encoding, and the browser one where it differs.",
            "# A txt: map is read line by line for every lookup; convert it once for hashed lookups:",
            "#   httxt2dbm -i apache.map -o apache.dbm",
            "# In the server config or a <VirtualHost> (RewriteMap is not allowed in .htaccess):",
            "#   RewriteEngine On",
            "#   RewriteMap mediashift \"dbm:/etc/apache2/mediashift/apache.dbm\"",
            "#   RewriteCond %{THE_REQUEST} \"^\\S+\\s+([^\\s?]+)\"",
            "#   RewriteCond ${mediashift:%1|NONE} \"^(https?://.+)$\"",
        ] {
            writeln!(a, "{line}")?;
        }
        writeln!(
            a,
            "#   RewriteRule \"^{}\" \"%1\" [R=301,L,NE]",
            regex_literal(&self.prefix)
        )?;
        writeln!(
            a,
            "# (The rule's pattern is matched first, so only requests under that path consult the map;"
        )?;
        writeln!(
            a,
            "#  the query string, a ?v=123 cache-buster say, is passed on to the new URL.)"
        )
    }

    /// One row (rows come in path order).
    pub fn push(&mut self, e: &Entry) -> io::Result<()> {
        writeln!(
            self.csv,
            "{},{},{},{},{},{},{}",
            csv_field(&e.old_url),
            csv_field(&e.new_url),
            csv_field(&e.key),
            e.sha256,
            e.size,
            csv_field(&e.content_type),
            csv_field(&e.duplicate_of)
        )?;

        let pretty = serde_json::to_string_pretty(e).map_err(io::Error::other)?;
        self.json
            .write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
        for (i, line) in pretty.lines().enumerate() {
            if i > 0 {
                self.json.write_all(b"\n")?;
            }
            write!(self.json, "    {line}")?;
        }

        let path = format!("{}{}", self.prefix, e.rel);
        if self.case_twins.contains(&e.rel.to_ascii_lowercase()) {
            let pattern = format!("~^{}$", regex_literal(&path));
            self.regex.push(format!(
                "{} {};",
                nginx_quote(&pattern),
                nginx_quote(&e.new_url)
            ));
        } else {
            // Values hold no '$' (percent-encoded URLs), so nginx takes
            // them literally.
            writeln!(
                self.nginx,
                "{} {};",
                nginx_quote(&path),
                nginx_quote(&e.new_url)
            )?;
        }

        let strict = format!("{}{}", self.encoded_prefix, urls::encode_path(&e.rel));
        writeln!(self.apache, "{strict} {}", e.new_url)?;
        let browser: String = path
            .split('/')
            .map(|seg| utf8_percent_encode(seg, BROWSER_PATH).to_string())
            .collect::<Vec<_>>()
            .join("/");
        if browser != strict {
            writeln!(self.apache, "{browser} {}", e.new_url)?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Ends the four files and puts them in place; their paths.
    pub fn finish(mut self) -> io::Result<Vec<PathBuf>> {
        if self.rows == 0 {
            self.json.write_all(b"]\n}\n")?;
        } else {
            self.json.write_all(b"\n  ]\n}\n")?;
        }
        if !self.regex.is_empty() {
            writeln!(
                self.nginx,
                "# {} names equal but for letter case, as case-sensitive regular expressions:",
                self.regex.len()
            )?;
            for line in std::mem::take(&mut self.regex) {
                writeln!(self.nginx, "{line}")?;
            }
        }
        let mut written = Vec::new();
        for f in [self.csv, self.json, self.nginx, self.apache] {
            let p = f.path().to_path_buf();
            f.commit().map_err(|e| named(&p, e))?;
            written.push(p);
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(written)
    }
}

/// `e` with the path it concerns.
fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes `path` through a temporary file beside it, synced and renamed
/// over it: a reader sees the old file or the new one, never half.
pub fn atomic_write(
    path: &Path,
    fill: impl FnOnce(&mut Staged) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let mut staged = Staged::create(path).map_err(|e| named(path, e))?;
    fill(&mut staged)
        .and_then(|()| staged.commit())
        .map_err(|e| named(path, e))?;
    Ok(path.to_path_buf())
}

/// RFC 4180: quote when needed, double inner quotes.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A string quoted for nginx's configuration parser.
pub fn nginx_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` as a PCRE pattern that matches only `s` itself.
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What browsers leave unencoded in a path but RFC 3986's strict form
/// encodes: the second key form in `apache.map`.
const BROWSER_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'%');

/// What the maps say of the migration they come from.
pub fn meta(p: &Planned, settings: &MigrateSettings) -> MapMeta {
    MapMeta {
        version: 1,
        source: settings.run.scan.root.display().to_string(),
        destination: settings.run.destination.to_string(),
        source_base_url: settings.run.urls.source_base.clone(),
        public_base_url: p.public_base.clone(),
        shard: p.shard.as_ref().and_then(|s| {
            let one = s.shard?;
            Some(MapShard {
                index: one.index,
                count: one.count,
                fingerprint: s.fingerprint.clone(),
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel: &str, key: &str) -> Entry {
        let (old_url, new_url) = urls_for("/media/", "http://s3.local/bucket", rel, key);
        Entry {
            old_url,
            new_url,
            key: key.into(),
            sha256: "ab".repeat(32),
            size: 3,
            content_type: "image/jpeg".into(),
            duplicate_of: String::new(),
            rel: rel.into(),
        }
    }

    fn maps() -> Maps {
        Maps {
            version: 1,
            source: "/srv/media".into(),
            destination: "s3://bucket/shop/".into(),
            source_base_url: "/media/".into(),
            public_base_url: "https://cdn.example".into(),
            shard: None,
            entries: vec![
                entry("a b+c.jpg", "shop/a b+c.jpg"),
                entry("q,\"x\".jpg", "shop/q,\"x\".jpg"),
            ],
        }
    }

    /// The map file `name` that `write_all` writes for `m`.
    fn written(m: &Maps, name: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path(), m, &m.source_base_url).unwrap();
        std::fs::read_to_string(dir.path().join(name)).unwrap()
    }

    fn shard_maps(index: u32, rels: &[&str]) -> (String, Maps) {
        let mut m = maps();
        m.shard = Some(MapShard {
            index,
            count: 3,
            fingerprint: "f".into(),
        });
        m.entries = rels
            .iter()
            .map(|r| entry(r, &format!("shop/{r}")))
            .collect();
        (format!("maps-{index}"), m)
    }

    #[test]
    fn shards_merge_into_one_set_in_path_order() {
        let inputs = [
            shard_maps(2, &["b.jpg", "z.jpg"]),
            shard_maps(0, &["a.jpg", "c.jpg"]),
            // A file two overlapping shards both uploaded: kept once.
            shard_maps(1, &["d.jpg", "c.jpg"]),
        ];
        let merged = merge(&inputs).unwrap();
        let rels: Vec<&str> = merged.entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "z.jpg"]);
        assert_eq!(merged.shard, None);

        // The JSON round-trips, path included.
        let out = written(&inputs[0].1, "map.json");
        let back: Maps = serde_json::from_str(&out).unwrap();
        assert_eq!(back.entries, inputs[0].1.entries);
        assert_eq!(back.shard, inputs[0].1.shard);
    }

    #[test]
    fn merge_refuses_conflicts_missing_shards_and_other_migrations() {
        let mut odd = shard_maps(1, &["c.jpg"]);
        odd.1.entries[0].new_url = "https://elsewhere/c.jpg".into();
        let r = merge(&[shard_maps(0, &["a.jpg", "c.jpg"]), odd]).unwrap_err();
        assert_eq!(r.missing_shards, [2]);
        assert_eq!(r.conflicts.len(), 1, "{r:?}");
        assert_eq!(r.conflicts[0].old_url, "/media/c.jpg");
        assert_eq!(
            r.conflicts[0].rows,
            [
                (
                    "maps-0".to_string(),
                    "http://s3.local/bucket/shop/c.jpg".to_string()
                ),
                ("maps-1".to_string(), "https://elsewhere/c.jpg".to_string())
            ]
        );

        let mut other = shard_maps(1, &["b.jpg"]);
        other.1.destination = "s3://other/".into();
        other.1.shard.as_mut().unwrap().fingerprint = "g".into();
        let r = merge(&[shard_maps(0, &[]), other, shard_maps(0, &[])]).unwrap_err();
        assert!(
            r.mismatched
                .iter()
                .any(|m| m.contains("destination s3://other/")),
            "{r:?}"
        );
        assert!(
            r.mismatched.iter().any(|m| m.contains("saw another tree")),
            "{r:?}"
        );
        assert_eq!(r.repeated_shards, [0]);
        assert_eq!(r.missing_shards, [2]);
    }

    #[test]
    fn source_prefix_is_the_decoded_path() {
        assert_eq!(source_path_prefix("/"), "/");
        assert_eq!(source_path_prefix("/media"), "/media/");
        assert_eq!(
            source_path_prefix("https://shop.example.com/pub/media/"),
            "/pub/media/"
        );
        assert_eq!(source_path_prefix("https://shop.example.com"), "/");
        assert_eq!(source_path_prefix("/m%C3%A9dia/"), "/m\u{e9}dia/");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let text = written(&maps(), "map.csv");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "old_url,new_url,key,sha256,size,content_type,duplicate_of"
        );
        assert!(lines[1].starts_with(
            "/media/a%20b%2Bc.jpg,http://s3.local/bucket/shop/a%20b%2Bc.jpg,shop/a b+c.jpg,"
        ));
        assert!(
            lines[2].contains(",\"shop/q,\"\"x\"\".jpg\","),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn nginx_keys_are_decoded_and_escaped() {
        let text = written(&maps(), "nginx.map");
        assert!(
            text.contains("\"/media/a b+c.jpg\" \"http://s3.local/bucket/shop/a%20b%2Bc.jpg\";"),
            "{text}"
        );
        assert!(text.contains("\"/media/q,\\\"x\\\".jpg\""), "{text}");
        assert_eq!(nginx_quote("a\\b\nc"), "\"a\\\\b\\nc\"");
    }

    #[test]
    fn names_equal_but_for_case_are_case_sensitive_regexes_in_nginx() {
        let mut m = maps();
        m.entries = vec![
            entry("Case/Photo.jpg", "shop/Case/Photo.jpg"),
            entry("Case/photo.jpg", "shop/Case/photo.jpg"),
            entry("Case/other (1).jpg", "shop/Case/other (1).jpg"),
        ];
        let text = written(&m, "nginx.map");
        assert!(
            text.contains("\"/media/Case/other (1).jpg\" "),
            "the rest stays plain: {text}"
        );
        assert!(
            text.contains(
                "\"~^/media/Case/Photo\\\\.jpg$\" \"http://s3.local/bucket/shop/Case/Photo.jpg\";"
            ),
            "{text}"
        );
        assert!(text.contains("\"~^/media/Case/photo\\\\.jpg$\""), "{text}");
        assert!(!text.contains("\"/media/Case/Photo.jpg\""), "{text}");
        assert_eq!(regex_literal("a.b(c)[d]*$"), "a\\.b\\(c\\)\\[d\\]\\*\\$");
    }

    #[test]
    fn apache_keys_have_no_spaces() {
        let text = written(&maps(), "apache.map");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line.split(' ').count(), 2, "{line}");
        }
        assert!(text.contains("/media/a%20b%2Bc.jpg http://s3.local/bucket/shop/a%20b%2Bc.jpg"));
        assert!(
            text.contains("/media/a%20b+c.jpg http://s3.local/bucket/shop/a%20b%2Bc.jpg"),
            "browser form: {text}"
        );
    }

    #[test]
    fn maps_are_written_atomically_and_completely() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_all(dir.path(), &maps(), "/media/").unwrap();
        assert_eq!(paths.len(), 4);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("map.json")).unwrap())
                .unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["entries"].as_array().unwrap().len(), 2);
        assert!(json["entries"][0].get("rel").is_none());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn the_streamed_json_is_serdes_pretty_form_of_the_maps() {
        let mut with_shard = shard_maps(1, &["a.jpg", "b/c d.jpg", "\u{e9}t\u{e9}.png"]).1;
        with_shard.entries[1].duplicate_of = "a.jpg".into();
        let mut empty = maps();
        empty.entries.clear();
        for m in [maps(), with_shard, empty] {
            let expected = serde_json::to_string_pretty(&m).unwrap() + "\n";
            assert_eq!(written(&m, "map.json"), expected);
        }
    }

    #[test]
    fn a_writer_that_is_not_finished_leaves_the_old_maps() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path(), &maps(), "/media/").unwrap();
        let before = std::fs::read_to_string(dir.path().join("map.csv")).unwrap();
        let m = maps();
        let mut w =
            MapWriter::create(dir.path(), &m.meta(), "/media/", 10, HashSet::new()).unwrap();
        w.push(&entry("new.jpg", "shop/new.jpg")).unwrap();
        drop(w);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("map.csv")).unwrap(),
            before
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            4,
            "no temporary file left"
        );
    }
}
