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
//! Each file is written to a temporary name in the same directory, synced,
//! then renamed over the old one, so a reader never sees half a map.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::shard::Shard;
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

/// Writes the four maps into `dir`; returns their paths.
pub fn write_all(dir: &Path, maps: &Maps, source_base: &str) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let prefix = source_path_prefix(source_base);
    let written = vec![
        atomic_write(&dir.join("map.csv"), |w| write_csv(w, maps))?,
        atomic_write(&dir.join("map.json"), |w| write_json(w, maps))?,
        atomic_write(&dir.join("nginx.map"), |w| write_nginx(w, maps, &prefix))?,
        atomic_write(&dir.join("apache.map"), |w| write_apache(w, maps, &prefix))?,
    ];
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(written)
}

/// Writes `path` through a temporary file beside it, synced and renamed
/// over it: a reader sees the old file or the new one, never half.
pub fn atomic_write(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("map");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
        .map(|()| path.to_path_buf())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// RFC 4180: quote when needed, double inner quotes.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv(w: &mut impl Write, maps: &Maps) -> io::Result<()> {
    writeln!(
        w,
        "old_url,new_url,key,sha256,size,content_type,duplicate_of"
    )?;
    for e in &maps.entries {
        writeln!(
            w,
            "{},{},{},{},{},{},{}",
            csv_field(&e.old_url),
            csv_field(&e.new_url),
            csv_field(&e.key),
            e.sha256,
            e.size,
            csv_field(&e.content_type),
            csv_field(&e.duplicate_of)
        )?;
    }
    Ok(())
}

fn write_json(w: &mut impl Write, maps: &Maps) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, maps).map_err(io::Error::other)?;
    writeln!(w)
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

fn write_nginx(w: &mut impl Write, maps: &Maps, prefix: &str) -> io::Result<()> {
    // nginx looks map strings up without regard to (ASCII) letter case:
    // two names equal but for case would make `nginx -t` fail ("conflicting
    // parameter"), and either would redirect to the other's object. Those
    // are written as case-sensitive regular expressions, which nginx tries
    // after the strings; everything else stays a plain string in the hash.
    let mut folded: HashMap<String, usize> = HashMap::new();
    for e in &maps.entries {
        *folded
            .entry(format!("{prefix}{}", e.rel).to_ascii_lowercase())
            .or_default() += 1;
    }
    let (regex, plain): (Vec<&Entry>, Vec<&Entry>) = maps
        .entries
        .iter()
        .partition(|e| folded[&format!("{prefix}{}", e.rel).to_ascii_lowercase()] > 1);
    let longest = plain
        .iter()
        .map(|e| prefix.len() + e.rel.len())
        .max()
        .unwrap_or(0);
    let bucket = (longest + 32).next_power_of_two().max(64);
    writeln!(
        w,
        "# mediashift URL map for nginx: {} -> {}",
        maps.source, maps.destination
    )?;
    writeln!(
        w,
        "# Use inside: map $uri $mediashift_url {{ default \"\"; include nginx.map; }}"
    )?;
    writeln!(
        w,
        "# and redirect with: return 301 $mediashift_url$is_args$args; ($uri has no query string)"
    )?;
    writeln!(
        w,
        "# The longest key is {longest} bytes: set map_hash_bucket_size {bucket}; (or more) in http {{}}."
    )?;
    for e in &plain {
        // Values hold no '$' (percent-encoded URLs), so nginx takes them literally.
        writeln!(
            w,
            "{} {};",
            nginx_quote(&format!("{prefix}{}", e.rel)),
            nginx_quote(&e.new_url)
        )?;
    }
    if !regex.is_empty() {
        writeln!(
            w,
            "# {} names equal but for letter case, as case-sensitive regular expressions:",
            regex.len()
        )?;
    }
    for e in &regex {
        let pattern = format!("~^{}$", regex_literal(&format!("{prefix}{}", e.rel)));
        writeln!(w, "{} {};", nginx_quote(&pattern), nginx_quote(&e.new_url))?;
    }
    Ok(())
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

fn write_apache(w: &mut impl Write, maps: &Maps, prefix: &str) -> io::Result<()> {
    writeln!(
        w,
        "# mediashift URL map for Apache RewriteMap: {} -> {}",
        maps.source, maps.destination
    )?;
    writeln!(
        w,
        "# Keys are request paths as sent on the wire: the strict encoding, and the browser one where it differs."
    )?;
    writeln!(
        w,
        "# A txt: map is read line by line for every lookup; convert it once for hashed lookups:"
    )?;
    writeln!(w, "#   httxt2dbm -i apache.map -o apache.dbm")?;
    writeln!(
        w,
        "# In the server config or a <VirtualHost> (RewriteMap is not allowed in .htaccess):"
    )?;
    writeln!(w, "#   RewriteEngine On")?;
    writeln!(
        w,
        "#   RewriteMap mediashift \"dbm:/etc/apache2/mediashift/apache.dbm\""
    )?;
    writeln!(
        w,
        "#   RewriteCond %{{THE_REQUEST}} \"^\\S+\\s+([^\\s?]+)\""
    )?;
    writeln!(
        w,
        "#   RewriteCond ${{mediashift:%1|NONE}} \"^(https?://.+)$\""
    )?;
    writeln!(
        w,
        "#   RewriteRule \"^{}\" \"%1\" [R=301,L,NE]",
        regex_literal(prefix)
    )?;
    writeln!(
        w,
        "# (The rule's pattern is matched first, so only requests under that path consult the map;"
    )?;
    writeln!(
        w,
        "#  the query string, a ?v=123 cache-buster say, is passed on to the new URL.)"
    )?;
    let encoded_prefix = urls::encode_path(prefix);
    for e in &maps.entries {
        let strict = format!("{encoded_prefix}{}", urls::encode_path(&e.rel));
        writeln!(w, "{strict} {}", e.new_url)?;
        let browser: String = format!("{prefix}{}", e.rel)
            .split('/')
            .map(|seg| utf8_percent_encode(seg, BROWSER_PATH).to_string())
            .collect::<Vec<_>>()
            .join("/");
        if browser != strict {
            writeln!(w, "{browser} {}", e.new_url)?;
        }
    }
    Ok(())
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
        let mut out = Vec::new();
        write_json(&mut out, &inputs[0].1).unwrap();
        let back: Maps = serde_json::from_slice(&out).unwrap();
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
        let mut out = Vec::new();
        write_csv(&mut out, &maps()).unwrap();
        let text = String::from_utf8(out).unwrap();
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
        let mut out = Vec::new();
        write_nginx(&mut out, &maps(), "/media/").unwrap();
        let text = String::from_utf8(out).unwrap();
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
        let mut out = Vec::new();
        write_nginx(&mut out, &m, "/media/").unwrap();
        let text = String::from_utf8(out).unwrap();
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
        let mut out = Vec::new();
        write_apache(&mut out, &maps(), "/media/").unwrap();
        let text = String::from_utf8(out).unwrap();
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
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
