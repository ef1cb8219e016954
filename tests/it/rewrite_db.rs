//! `mediashift rewrite` against a real MariaDB and PHP: media migrated for
//! real, a WordPress-like database whose content refers to them in every
//! form and encoding the application writes (HTML, srcset, Gutenberg and
//! Elementor JSON with escaped slashes and `\u00e9`, PHP-serialized values
//! nested in each other, an object), dumped by `mariadb-dump`, rewritten,
//! imported again, and checked value by value: against the map, by PHP's
//! own `unserialize`, and byte for byte for what had no media. Then the
//! undo gives back the original dump exactly, and refuses a changed one.
//!
//! The content is written as templates: `«FORM|STYLE|path»` is a
//! reference to the migrated file `path`, FORM the base it is written
//! under (https, http, sr = scheme-relative, root = root-relative) and
//! STYLE how: `p` percent-encoded as the map's old_url, `r` its path raw
//! UTF-8 (spaces included), `j` percent-encoded in JSON (`\/`), `u` raw in
//! JSON with `\/` and `\uXXXX` escapes. Each template gives the value
//! inserted and the value expected after the rewrite: the new URL's head
//! followed by the path as it was written, in the same escaping (for `p`
//! and `j`, the new_url itself).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::migrate::migrate_args;
use crate::support::mariadb::MariaDb;
use crate::support::{Tree, bytes, json as doc, mediashift, signed_get, stderr, stdout, target};

const SOURCE_BASE: &str = "https://shop.example/wp-content/uploads/";
/// The forms the shop writes its media URLs in, all given as --base.
const BASES: [&str; 4] = [
    "https://shop.example/wp-content/uploads/",
    "http://shop.example/wp-content/uploads/",
    "//shop.example/wp-content/uploads/",
    "/wp-content/uploads/",
];

/// The media library: a dozen files, some with non-ASCII names, one with a
/// space.
const FILES: [&str; 12] = [
    "2024/05/hero.jpg",
    "2024/05/hero-300x200.jpg",
    "2024/05/hero-1024x683.jpg",
    "2024/05/café.jpg",
    "2024/05/my photo.jpg",
    "2024/06/banner.webp",
    "2024/06/logo.png",
    "2024/06/Ünïcödé-straße.png",
    "2024/07/gallery-1.jpg",
    "2024/07/gallery-2.jpg",
    "2023/12/clip.mp4",
    "elementor/thumbs/bg.jpg",
];

/// The migrated files: path -> (old_url, new_url), from map.json.
struct Media {
    urls: BTreeMap<String, (String, String)>,
}

impl Media {
    fn old_path(&self, file: &str) -> &str {
        let (old, _) = self
            .urls
            .get(file)
            .unwrap_or_else(|| panic!("{file} is not in the map"));
        old.strip_prefix(SOURCE_BASE)
            .expect("old_url under the source base")
    }

    fn new_url(&self, file: &str) -> &str {
        &self.urls[file].1
    }

    /// The new URL less the file's path (strictly encoded, as in old_url).
    fn head(&self, file: &str) -> &str {
        let new = self.new_url(file);
        new.strip_suffix(self.old_path(file))
            .unwrap_or_else(|| panic!("{new} does not end with the path of {file}"))
    }
}

/// A text value as inserted (`old`) and as it must read after the
/// rewrite (`new`), with the references it holds per file.
#[derive(Debug, Clone, Default)]
struct Expect {
    old: String,
    new: String,
    refs: BTreeMap<String, u64>,
    /// For a PHP-serialized value: its tree before and after the rewrite
    /// (their leaves are what PHP must unserialize it to) and how many
    /// serialized values are nested in it.
    serialized: Option<(Value, Value, usize)>,
}

impl Expect {
    fn refs(&self) -> u64 {
        self.refs.values().sum()
    }

    /// A value that must not change (no media, or a column left alone).
    fn same(s: &str) -> Self {
        Self {
            old: s.into(),
            new: s.into(),
            ..Self::default()
        }
    }
}

/// `s` as PHP's json_encode writes it: `\/`, and non-ASCII as `\uXXXX`.
fn json_escaped(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out
}

/// A template's value before and after the rewrite.
fn render(m: &Media, template: &str) -> Expect {
    let mut e = Expect::default();
    let mut rest = template;
    while let Some(i) = rest.find('«') {
        e.old.push_str(&rest[..i]);
        e.new.push_str(&rest[..i]);
        let after = &rest[i + '«'.len_utf8()..];
        let j = after.find('»').expect("a « without its »");
        let spec: Vec<&str> = after[..j].split('|').collect();
        let [form, style, file] = spec[..] else {
            panic!("bad reference «{}»", &after[..j]);
        };
        let base = match form {
            "https" => BASES[0],
            "http" => BASES[1],
            "sr" => BASES[2],
            "root" => BASES[3],
            other => panic!("no form {other}"),
        };
        let new = m.new_url(file);
        assert!(new.is_ascii(), "new_url {new} is percent-encoded");
        let head = m.head(file);
        let (old, new) = match style {
            "p" => (format!("{base}{}", m.old_path(file)), new.to_string()),
            "r" => (format!("{base}{file}"), format!("{head}{file}")),
            "j" => (
                json_escaped(&format!("{base}{}", m.old_path(file))),
                json_escaped(new),
            ),
            "u" => (
                json_escaped(&format!("{base}{file}")),
                json_escaped(&format!("{head}{file}")),
            ),
            other => panic!("no style {other}"),
        };
        e.old.push_str(&old);
        e.new.push_str(&new);
        *e.refs.entry(file.to_string()).or_insert(0) += 1;
        rest = &after[j + '»'.len_utf8()..];
    }
    e.old.push_str(rest);
    e.new.push_str(rest);
    e
}

/// A tree of templates rendered: (before, after, references per file,
/// nested serialized values). `{"__ser": x}` is `x` serialized into a
/// string, `{"__obj": {...}}` a stdClass.
fn render_tree(m: &Media, v: &Value) -> (Value, Value, BTreeMap<String, u64>, usize) {
    let mut refs = BTreeMap::new();
    let mut nested = 0;
    let (old, new) = render_tree_in(m, v, &mut refs, &mut nested);
    (old, new, refs, nested)
}

fn render_tree_in(
    m: &Media,
    v: &Value,
    refs: &mut BTreeMap<String, u64>,
    nested: &mut usize,
) -> (Value, Value) {
    match v {
        Value::String(s) => {
            let e = render(m, s);
            for (f, n) in e.refs {
                *refs.entry(f).or_insert(0) += n;
            }
            (Value::String(e.old), Value::String(e.new))
        }
        Value::Array(items) => {
            let (o, n): (Vec<_>, Vec<_>) = items
                .iter()
                .map(|x| render_tree_in(m, x, refs, nested))
                .unzip();
            (Value::Array(o), Value::Array(n))
        }
        Value::Object(map) => {
            if map.contains_key("__ser") {
                *nested += 1;
            }
            let mut o = serde_json::Map::new();
            let mut n = serde_json::Map::new();
            for (k, x) in map {
                let (a, b) = render_tree_in(m, x, refs, nested);
                o.insert(k.clone(), a);
                n.insert(k.clone(), b);
            }
            (Value::Object(o), Value::Object(n))
        }
        other => (other.clone(), other.clone()),
    }
}

/// The leaves of a tree in order, nested serialized values and objects
/// looked through: what PHP must unserialize the value to.
fn leaves(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|x| leaves(x, out)),
        Value::Object(map) => map.values().for_each(|x| leaves(x, out)),
        other => out.push(other.clone()),
    }
}

/// PHP, from a script file and a JSON input file: its JSON output.
fn php(work: &Path, name: &str, script: &str, input: &Value) -> Value {
    let script_path = work.join(format!("{name}.php"));
    let input_path = work.join(format!("{name}.json"));
    std::fs::write(&script_path, script).unwrap();
    std::fs::write(&input_path, serde_json::to_vec(input).unwrap()).unwrap();
    let out = Command::new("php")
        .args([
            "-n",
            "-d",
            "error_reporting=E_ALL",
            "-d",
            "display_errors=stderr",
        ])
        .arg(&script_path)
        .arg(&input_path)
        .output()
        .expect("run php");
    assert!(
        out.status.success(),
        "php {name} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("php {name}: not JSON ({e}): {}", stdout(&out)))
}

/// Serializes each tree with PHP's own serialize().
const SERIALIZE_PHP: &str = r#"<?php
function conv($v) {
    if (is_array($v)) {
        if (count($v) === 1 && array_key_exists('__ser', $v)) return serialize(conv($v['__ser']));
        if (count($v) === 1 && array_key_exists('__obj', $v)) return (object) conv($v['__obj']);
        return array_map('conv', $v);
    }
    return $v;
}
$in = json_decode(file_get_contents($argv[1]), true, 512, JSON_THROW_ON_ERROR);
$out = [];
foreach ($in as $v) $out[] = serialize(conv($v));
echo json_encode($out, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
"#;

/// Unserializes each value, and every serialized string nested in it:
/// {key: {ok, leaves, nested}}.
const UNSERIALIZE_PHP: &str = r#"<?php
function walk($v, &$out, &$nested) {
    if (is_object($v)) $v = get_object_vars($v);
    if (is_array($v)) { foreach ($v as $x) walk($x, $out, $nested); return; }
    if (is_string($v) && preg_match('/^(a|O|s):\d+:/', $v)) {
        $u = @unserialize($v);
        if ($u === false) { $out[] = ['nested value that does not unserialize' => $v]; return; }
        $nested++;
        walk($u, $out, $nested);
        return;
    }
    $out[] = $v;
}
$in = json_decode(file_get_contents($argv[1]), true, 512, JSON_THROW_ON_ERROR);
$res = [];
foreach ($in as $k => $s) {
    $u = @unserialize($s);
    if ($u === false && $s !== 'b:0;') { $res[$k] = ['ok' => false]; continue; }
    $out = []; $nested = 0;
    walk($u, $out, $nested);
    $res[$k] = ['ok' => true, 'leaves' => $out, 'nested' => $nested];
}
echo json_encode((object) $res, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
"#;

/// A serialized value from a tree of templates, serialized by PHP.
fn serialized(m: &Media, work: &Path, tree: Value) -> Expect {
    let (old, new, refs, nested) = render_tree(m, &tree);
    let out = php(work, "serialize", SERIALIZE_PHP, &json!([old, new]));
    let s = |i: usize| {
        out[i]
            .as_str()
            .expect("serialize() gives a string")
            .to_string()
    };
    Expect {
        old: s(0),
        new: s(1),
        refs,
        serialized: Some((old, new, nested)),
    }
}

#[derive(Debug)]
enum Cell {
    Int(i64),
    Text(Expect),
}

/// One row: its table, its primary key and its cells (the key included),
/// by column.
#[derive(Debug)]
struct Row {
    table: &'static str,
    id: i64,
    cells: Vec<(&'static str, Cell)>,
}

impl Row {
    fn refs(&self) -> u64 {
        self.texts().map(|(_, e)| e.refs()).sum()
    }

    fn texts(&self) -> impl Iterator<Item = (&'static str, &Expect)> {
        self.cells.iter().filter_map(|(c, v)| match v {
            Cell::Text(e) => Some((*c, e)),
            Cell::Int(_) => None,
        })
    }
}

const SCHEMA: &str = "
CREATE TABLE wp_posts (
  ID bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  post_title text NOT NULL,
  post_content longtext NOT NULL,
  post_type varchar(20) NOT NULL DEFAULT 'post',
  guid varchar(255) NOT NULL DEFAULT '',
  PRIMARY KEY (ID)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_postmeta (
  meta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  post_id bigint(20) unsigned NOT NULL DEFAULT 0,
  meta_key varchar(255) DEFAULT NULL,
  meta_value longtext DEFAULT NULL,
  PRIMARY KEY (meta_id),
  KEY post_id (post_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_options (
  option_id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  option_name varchar(191) NOT NULL DEFAULT '',
  option_value longtext NOT NULL,
  autoload varchar(20) NOT NULL DEFAULT 'yes',
  PRIMARY KEY (option_id),
  UNIQUE KEY option_name (option_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
";

const CLASSIC_POST: &str = concat!(
    "<p>Our summer collection.</p>\n",
    r#"<img class="wp-image-55" src="«https|p|2024/05/hero.jpg»" alt="Hero" srcset="«https|p|2024/05/hero-300x200.jpg» 300w, «http|p|2024/05/hero-1024x683.jpg» 1024w, «sr|p|2024/05/hero.jpg» 1600w" sizes="(max-width: 1600px) 100vw, 1600px" />"#,
    "\n",
    r#"<a href="«root|p|2024/05/café.jpg»"><img src="«https|r|2024/05/café.jpg»" alt="Café crème"></a>"#,
    "\n",
    r#"<a href="«https|r|2024/05/my photo.jpg»"><img src="«root|r|2024/05/my photo.jpg»" srcset="«root|r|2024/05/café.jpg» 1x, «http|r|2024/05/hero-300x200.jpg» 2x"></a>"#,
    "\n",
    r#"<figure><img src='«sr|p|2024/05/my photo.jpg»?v=2' /></figure>"#,
    "\n",
    r#"<video src="«https|p|2023/12/clip.mp4»#t=5" poster="«root|r|2024/06/Ünïcödé-straße.png»"></video>"#,
    "\n<p>It's \"quoted\", a back\\slash, a tab\tand\r\na new line; see «http|p|2024/06/banner.webp».</p>\n",
    r#"<div style="background-image:url(«root|p|2024/06/logo.png»)"></div>"#,
);

const GUTENBERG_POST: &str = r#"<!-- wp:image {"id":56,"url":"«https|u|2024/05/café.jpg»","sizeSlug":"large"} -->
<figure class="wp-block-image size-large"><img src="«https|p|2024/05/café.jpg»" alt="" class="wp-image-56"/></figure>
<!-- /wp:image -->
<!-- wp:cover {"url":"«https|j|2024/05/my photo.jpg»","id":57,"dimRatio":50} -->
<div class="wp-block-cover"><img class="wp-block-cover__image-background" src="«https|p|2024/05/my photo.jpg»" data-object-fit="cover"/></div>
<!-- /wp:cover -->
<!-- wp:gallery {"images":[{"url":"«root|j|2024/07/gallery-1.jpg»"},{"url":"«sr|u|2024/07/gallery-2.jpg»"}]} /-->
<!-- wp:media-text {"mediaUrl":"«http|u|2024/06/Ünïcödé-straße.png»","mediaType":"image"} /-->
<!-- wp:file {"href":"«https|u|2024/05/my photo.jpg»"} /-->"#;

/// No media: quotes, backslashes, control bytes a dump escapes (NUL,
/// \r, \n, ^Z), the bare base, and another host's uploads.
const PLAIN_POST: &str = concat!(
    "Plain text with 'single' and \"double\" quotes, a back\\slash, \\n as text,\n",
    "a NUL \u{0} and a ^Z \u{1a}, \r\nUploads live under /wp-content/uploads/ on this shop.\n",
    "Elsewhere: https://other.example/wp-content/uploads/2024/05/hero.jpg and ",
    r#"{"u":"https:\/\/other.example\/wp-content\/uploads\/2024\/05\/hero.jpg"} 🎬 café."#,
);

const ELEMENTOR_DATA: &str = r#"[{"id":"1a2b3c","elType":"section","settings":{"background_image":{"url":"«https|j|elementor/thumbs/bg.jpg»","id":58}},"elements":[{"id":"4d5e6f","elType":"widget","widgetType":"image","settings":{"image":{"url":"«https|u|2024/06/Ünïcödé-straße.png»","id":59}}},{"id":"7a8b9c","elType":"widget","widgetType":"text-editor","settings":{"editor":"<p><img src=\"«root|j|2024/06/logo.png»\" \/> d\u00e9j\u00e0 vu<\/p>"}}]}]"#;

const CUSTOM_CSS: &str = "\
.hero{background:url(«root|p|2024/05/hero.jpg»)}
.note{background:url(\"«https|p|2024/05/my photo.jpg»\") no-repeat}";

/// The database's rows, from the migrated files.
fn content(m: &Media, work: &Path) -> Vec<Row> {
    let t = |s: &str| Cell::Text(render(m, s));
    let same = |s: &str| Cell::Text(Expect::same(s));
    // guid keeps the old URL: rendered, but expected unchanged.
    let guid = |s: &str| Cell::Text(Expect::same(&render(m, s).old));
    let ser = |tree: Value| Cell::Text(serialized(m, work, tree));
    let post = |id, title: &str, body: Cell, kind: &str, g: Cell| Row {
        table: "wp_posts",
        id,
        cells: vec![
            ("ID", Cell::Int(id)),
            ("post_title", same(title)),
            ("post_content", body),
            ("post_type", same(kind)),
            ("guid", g),
        ],
    };
    let meta = |id, post_id, key: &str, value: Cell| Row {
        table: "wp_postmeta",
        id,
        cells: vec![
            ("meta_id", Cell::Int(id)),
            ("post_id", Cell::Int(post_id)),
            ("meta_key", same(key)),
            ("meta_value", value),
        ],
    };
    let option = |id, name: &str, value: Cell| Row {
        table: "wp_options",
        id,
        cells: vec![
            ("option_id", Cell::Int(id)),
            ("option_name", same(name)),
            ("option_value", value),
            ("autoload", same("yes")),
        ],
    };
    vec![
        post(
            1,
            "Summer",
            t(CLASSIC_POST),
            "post",
            same("https://shop.example/?p=1"),
        ),
        post(
            2,
            "Gutenberg",
            t(GUTENBERG_POST),
            "post",
            same("https://shop.example/?p=2"),
        ),
        post(
            3,
            "No media",
            same(PLAIN_POST),
            "post",
            same("https://shop.example/?p=3"),
        ),
        post(
            55,
            "Hero",
            same(""),
            "attachment",
            guid("«https|p|2024/05/hero.jpg»"),
        ),
        post(
            56,
            "Café",
            same(""),
            "attachment",
            guid("«http|p|2024/05/café.jpg»"),
        ),
        meta(101, 55, "_wp_attached_file", same("2024/05/hero.jpg")),
        meta(
            102,
            56,
            "_wp_attachment_metadata",
            ser(json!({
                "width": 1600,
                "height": 1067,
                "file": "2024/05/café.jpg",
                "filesize": 48213,
                "sizes": {"medium": {
                    "file": "café-300x200.jpg", "width": 300, "height": 200,
                    "mime-type": "image/jpeg"
                }},
                "image_meta": {"caption": "Café crème, d'été", "credit": "", "title": "café"},
                "original_image_url": "«https|r|2024/05/café.jpg»",
                "source": "«sr|p|2024/05/my photo.jpg»",
                "source_raw": "«https|r|2024/05/my photo.jpg»",
                "html": "<a href=\"«root|r|2024/05/my photo.jpg»\">«https|r|2024/06/Ünïcödé-straße.png»</a>"
            })),
        ),
        meta(103, 1, "_elementor_data", t(ELEMENTOR_DATA)),
        meta(
            104,
            1,
            "_plugin_gallery",
            ser(json!({
                "title": "Galerie d'été",
                "images": {"__ser": [
                    "«https|p|2024/07/gallery-1.jpg»",
                    "«https|r|2024/05/café.jpg»"
                ]},
                "deep": {"__ser": {
                    "thumb": {"__ser": ["«http|p|2024/07/gallery-2.jpg»"]},
                    "count": 1
                }},
                "settings": r#"{"bg":"«https|j|elementor/thumbs/bg.jpg»","fit":"cover"}"#,
                // A key with NUL bytes, as a protected property's name is
                // serialized, and JSON with \u escapes inside a string.
                "\u{0}*\u{0}poster": r#"{"src":"«https|u|2024/06/Ünïcödé-straße.png»"}"#,
                "count": 2
            })),
        ),
        meta(105, 1, "_thumbnail_id", same("55")),
        meta(106, 1, "_edit_lock", same("1716200000:1")),
        meta(
            107,
            2,
            "_plugin_note",
            ser(json!({"note": "Café ☕ — no pictures here; s:3:\"x\";", "tags": ["a", "b"]})),
        ),
        meta(
            108,
            2,
            "_product_video",
            ser(json!("«https|p|2023/12/clip.mp4»")),
        ),
        option(201, "siteurl", same("https://shop.example")),
        option(202, "blogname", same("Café Shop")),
        option(
            203,
            "theme_mods_shop",
            ser(json!({
                "custom_logo": 60,
                "header_image": "«https|p|2024/06/banner.webp»",
                "header_image_data": {"__obj": {
                    "url": "«https|p|2024/06/banner.webp»",
                    "thumbnail_url": "«sr|p|2024/06/banner.webp»",
                    "width": 1600,
                    "height": 400
                }},
                "background_image": "«root|p|2024/05/hero.jpg»"
            })),
        ),
        option(
            204,
            "widget_text",
            ser(json!({
                "2": {
                    "title": "Über uns",
                    "text": "<p>Willkommen!\r\n<img src=\"«https|p|2024/05/café.jpg»\" alt=\"café\"></p>\n<p>It's «root|r|2024/05/café.jpg».</p>",
                    "filter": true,
                    "visual": true
                },
                "_multiwidget": 1
            })),
        ),
        option(205, "elementor_custom_css", t(CUSTOM_CSS)),
        option(
            206,
            "wp_user_roles",
            ser(json!({"administrator": {
                "name": "Administrator",
                "capabilities": {"edit_posts": true, "upload_files": true}
            }})),
        ),
    ]
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The INSERT statements of the rows, every text as a hex literal: the
/// bytes go in exactly, with no escaping of ours.
fn insert_sql(rows: &[Row]) -> String {
    let mut sql = String::from("SET NAMES utf8mb4;\n");
    sql.push_str(SCHEMA);
    for r in rows {
        let cols: Vec<&str> = r.cells.iter().map(|(c, _)| *c).collect();
        let vals: Vec<String> = r
            .cells
            .iter()
            .map(|(_, v)| match v {
                Cell::Int(n) => n.to_string(),
                Cell::Text(e) if e.old.is_empty() => "''".to_string(),
                Cell::Text(e) => format!("_utf8mb4 X'{}'", hex_encode(e.old.as_bytes())),
            })
            .collect();
        sql.push_str(&format!(
            "INSERT INTO {} ({}) VALUES ({});\n",
            r.table,
            cols.join(", "),
            vals.join(", ")
        ));
    }
    sql
}

/// Every row's cells as the database holds them: (table, id) -> column ->
/// bytes (an integer as its decimal digits).
fn read_back(
    db: &MariaDb,
    name: &str,
    rows: &[Row],
) -> BTreeMap<(String, i64), BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut tables: Vec<&Row> = Vec::new();
    for r in rows {
        if !tables.iter().any(|t| t.table == r.table) {
            tables.push(r);
        }
    }
    for sample in tables {
        let select: Vec<String> = sample
            .cells
            .iter()
            .map(|(c, v)| match v {
                Cell::Int(_) => format!("`{c}`"),
                Cell::Text(_) => format!("HEX(`{c}`)"),
            })
            .collect();
        let pk = sample.cells[0].0;
        let text = db.query(
            name,
            &format!(
                "SELECT {} FROM {} ORDER BY `{pk}`",
                select.join(", "),
                sample.table
            ),
        );
        for line in text.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), sample.cells.len(), "{line}");
            let id: i64 = fields[0].parse().unwrap();
            let cells = sample
                .cells
                .iter()
                .zip(&fields)
                .map(|((c, v), f)| {
                    let bytes = match v {
                        Cell::Int(_) => f.as_bytes().to_vec(),
                        Cell::Text(_) => hex_decode(f),
                    };
                    (c.to_string(), bytes)
                })
                .collect();
            out.insert((sample.table.to_string(), id), cells);
        }
    }
    out
}

/// (table, first field) -> a row's tuple as a dump writes it.
type Tuples = BTreeMap<(String, String), Vec<u8>>;

/// The rows of a mariadb-dump's INSERT statements, as written: (table,
/// first field) -> the tuple's bytes; and every byte outside the INSERT
/// statements, in order.
fn dump_rows(dump: &[u8]) -> (Tuples, Vec<u8>) {
    let mut rows = BTreeMap::new();
    let mut other = Vec::new();
    let mut i = 0;
    while i < dump.len() {
        let at_line = i == 0 || dump[i - 1] == b'\n';
        let Some(rest) = dump[i..].strip_prefix(b"INSERT INTO `").filter(|_| at_line) else {
            other.push(dump[i]);
            i += 1;
            continue;
        };
        let name_end = rest.iter().position(|&b| b == b'`').unwrap();
        let table = String::from_utf8(rest[..name_end].to_vec()).unwrap();
        let values = rest[name_end..]
            .strip_prefix(b"` VALUES")
            .expect("INSERT INTO `t` VALUES (...)");
        let values_at = i + (dump[i..].len() - values.len());
        let (mut quoted, mut escaped, mut start, mut end) = (false, false, None, None);
        for (j, &b) in values.iter().enumerate() {
            if quoted {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'\'' {
                    quoted = false;
                }
                continue;
            }
            match b {
                b'\'' => quoted = true,
                b'(' if start.is_none() => start = Some(j),
                b')' => {
                    let s = start.take().expect("a ) outside a tuple");
                    let tuple = &values[s..=j];
                    let first = tuple[1..].iter().position(|&b| b == b',').unwrap();
                    let key = String::from_utf8(tuple[1..=first].to_vec()).unwrap();
                    assert!(
                        rows.insert((table.clone(), key), tuple.to_vec()).is_none(),
                        "a key twice in {table}"
                    );
                }
                b';' if start.is_none() => {
                    end = Some(j);
                    break;
                }
                _ => {}
            }
        }
        let end = end.expect("an INSERT without its ;");
        i = values_at + end + 1;
    }
    (rows, other)
}

/// Where a media reference to the shop is still written in `v` (any
/// escaping): `wp-content/uploads/` followed by a path, other than under
/// other.example.
fn old_reference_in(v: &str) -> Option<String> {
    for needle in ["wp-content/uploads/", "wp-content\\/uploads\\/"] {
        for (i, _) in v.match_indices(needle) {
            let before = &v[..i];
            if before.ends_with("other.example/") || before.ends_with("other.example\\/") {
                continue;
            }
            let after = &v[i + needle.len()..];
            if after.is_empty() || after.starts_with(char::is_whitespace) {
                continue; // the bare base, not a file
            }
            let from = i.saturating_sub(40);
            let from = (0..=from)
                .rev()
                .find(|&j| v.is_char_boundary(j))
                .unwrap_or(0);
            return Some(v[from..].chars().take(120).collect());
        }
    }
    None
}

/// Migrates the media tree for real: the map's path -> (old_url, new_url),
/// each new URL checked to serve the file's bytes.
fn migrate(work: &Path) -> (Media, PathBuf) {
    let tree = Tree::new();
    let mut data = BTreeMap::new();
    for (i, f) in FILES.iter().enumerate() {
        let b = bytes(700 + i as u64, 2000 + 37 * i);
        tree.file(f, &b);
        data.insert(f.to_string(), b);
    }
    let t = target("rewrite-db");
    let maps = work.join("maps");
    let mut args = migrate_args(&tree, &t, &maps, &[]);
    let at = args.iter().position(|a| a == "--source-base-url").unwrap();
    args[at + 1] = SOURCE_BASE.to_string();
    let out = mediashift(&args);
    let v = doc(&out);
    assert!(out.status.success(), "migrate: {}\n{v}", stderr(&out));

    let map: Value =
        serde_json::from_slice(&std::fs::read(maps.join("map.json")).unwrap()).unwrap();
    assert_eq!(map["source_base_url"], SOURCE_BASE);
    let mut urls = BTreeMap::new();
    for e in map["entries"].as_array().unwrap() {
        let (old, new) = (
            e["old_url"].as_str().unwrap(),
            e["new_url"].as_str().unwrap(),
        );
        let rel = percent_encoding::percent_decode_str(old.strip_prefix(SOURCE_BASE).unwrap())
            .decode_utf8()
            .unwrap()
            .into_owned();
        urls.insert(rel, (old.to_string(), new.to_string()));
    }
    assert_eq!(
        urls.keys().collect::<Vec<_>>(),
        data.keys().collect::<Vec<_>>(),
        "one map entry per file"
    );
    for (rel, (_, new)) in &urls {
        assert!(signed_get(new) == data[rel], "{new} does not serve {rel}");
    }
    (Media { urls }, maps)
}

/// `mediashift rewrite` of a dump with the map `map` and every base, and
/// `extra` flags: the run and its `--json` document.
fn rewrite_dump(map: &Path, input: &Path, output: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args: Vec<String> = vec!["rewrite".into(), "--map".into(), map.display().to_string()];
    for b in BASES {
        args.extend(["--base".to_string(), b.to_string()]);
    }
    args.extend([
        input.display().to_string(),
        "-o".into(),
        output.display().to_string(),
        "--json".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = mediashift(&args);
    let v = doc(&out);
    (out, v)
}

fn undo(record: &Path, rewritten: &Path, to: &Path) -> Output {
    mediashift([
        "rewrite".as_ref(),
        "--undo".as_ref(),
        record.as_os_str(),
        rewritten.as_os_str(),
        "-o".as_ref(),
        to.as_os_str(),
    ])
}

/// The report of a clean rewrite: every reference counted, per table,
/// none unknown.
fn check_report(v: &Value, rows: &[Row], rollback: &Path) {
    let total: u64 = rows.iter().map(Row::refs).sum();
    let mut per_table: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.refs() > 0) {
        *per_table.entry(r.table).or_insert(0) += r.refs();
    }
    assert_eq!(v["command"], "rewrite");
    assert_eq!(v["replacements"], total, "{v:#}");
    assert_eq!(v["files"].as_array().unwrap().len(), 1);
    let file = &v["files"][0];
    assert_eq!(file["format"], "mysql dump");
    assert_eq!(file["replacements"], total);
    assert_eq!(file["tables"], json!(per_table), "replacements per table");
    assert_eq!(file["not_in_map_total"], 0, "{file:#}");
    assert_eq!(file["not_in_map"], json!([]));
    assert_eq!(file["serialized_errors"], json!([]));
    assert_eq!(file["invalid_utf8_at"], Value::Null);
    assert_eq!(file["error"], Value::Null);
    assert_eq!(file["rollback"], rollback.display().to_string());
    assert!(rollback.exists());
    assert!(!file["examples"].as_array().unwrap().is_empty());
}

/// Every value of the rewritten database is the expected one, byte for
/// byte; no old reference is left but in guid. Returns the serialized
/// values, before and after, for PHP.
fn check_values(db: &MariaDb, rows: &[Row]) -> serde_json::Map<String, Value> {
    let now = read_back(db, "rewritten", rows);
    assert_eq!(now.len(), rows.len(), "every row is there, and no other");
    let mut serialized = serde_json::Map::new();
    for r in rows {
        let got = &now[&(r.table.to_string(), r.id)];
        for (c, cell) in &r.cells {
            let want = match cell {
                Cell::Int(n) => n.to_string().into_bytes(),
                Cell::Text(e) => e.new.clone().into_bytes(),
            };
            assert!(
                got[*c] == want,
                "{}.{c} of row {}:\n got: {}\nwant: {}",
                r.table,
                r.id,
                String::from_utf8_lossy(&got[*c]),
                String::from_utf8_lossy(&want)
            );
        }
        for (c, e) in r.texts() {
            let value = String::from_utf8(got[c].clone()).unwrap();
            if c == "guid" {
                assert_eq!(value, e.old, "guid is left alone");
            } else if let Some(left) = old_reference_in(&value) {
                panic!(
                    "{}.{c} of row {} still refers to the shop: {left}",
                    r.table, r.id
                );
            }
            if e.serialized.is_some() {
                serialized.insert(format!("{}:{}:new", r.table, r.id), value.into());
                serialized.insert(format!("{}:{}:old", r.table, r.id), e.old.clone().into());
            }
        }
    }
    serialized
}

/// PHP unserializes every serialized value, and the serialized strings
/// nested in it, to the expected values: the new URLs after the rewrite
/// (and the old ones before it).
fn check_php(work: &Path, rows: &[Row], values: serde_json::Map<String, Value>) {
    let res = php(work, "unserialize", UNSERIALIZE_PHP, &Value::Object(values));
    let mut checked = 0;
    for r in rows {
        for (c, e) in r.texts() {
            let Some((old_tree, new_tree, nested)) = &e.serialized else {
                continue;
            };
            for (which, tree) in [("new", new_tree), ("old", old_tree)] {
                let what = format!("the {which} {}.{c} of row {}", r.table, r.id);
                let res = &res[format!("{}:{}:{which}", r.table, r.id)];
                assert_eq!(res["ok"], true, "PHP cannot unserialize {what}");
                let mut want = Vec::new();
                leaves(tree, &mut want);
                assert_eq!(
                    res["leaves"],
                    Value::Array(want),
                    "PHP unserializes {what} to other values"
                );
                assert_eq!(res["nested"], *nested, "serialized values nested in {what}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 14, "only {checked} serialized values checked");
}

/// Rows without media are byte for byte what the dump had, and so is
/// everything outside the rows; the others changed.
fn check_untouched(original: &Path, rewritten: &Path, rows: &[Row]) {
    let (before, before_other) = dump_rows(&std::fs::read(original).unwrap());
    let (after, after_other) = dump_rows(&std::fs::read(rewritten).unwrap());
    assert_eq!(before.len(), rows.len(), "the dump has every row");
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert!(
        before_other == after_other,
        "the dump outside its rows changed"
    );
    for r in rows {
        let key = (r.table.to_string(), r.id.to_string());
        let (b, a) = (&before[&key], &after[&key]);
        if r.refs() == 0 {
            assert!(
                b == a,
                "row {} of {} has no media but changed:\n{}\n{}",
                r.id,
                r.table,
                String::from_utf8_lossy(b),
                String::from_utf8_lossy(a)
            );
        } else {
            assert!(b != a, "row {} of {} did not change", r.id, r.table);
        }
    }
}

#[test]
fn a_mariadb_dump_is_rewritten_imports_and_unserializes_and_undoes_exactly() {
    let work_dir = tempfile::Builder::new()
        .prefix("mediashift-rewrite-db-")
        .tempdir()
        .unwrap();
    let work = work_dir.path();
    let (media, maps) = migrate(work);
    let rows = content(&media, work);
    let total: u64 = rows.iter().map(Row::refs).sum();
    // The checks check: they see every old reference, and no decoy.
    assert!(old_reference_in(PLAIN_POST).is_none());
    for r in &rows {
        for (c, e) in r.texts().filter(|(_, e)| e.refs() > 0) {
            assert!(
                old_reference_in(&e.old).is_some(),
                "{}.{c} of {}",
                r.table,
                r.id
            );
        }
    }

    // The shop's database, filled through the client, as inserted.
    let db = MariaDb::start();
    db.sql(
        "",
        "CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci",
    );
    let insert = work.join("insert.sql");
    std::fs::write(&insert, insert_sql(&rows)).unwrap();
    db.import("shop", &insert);
    let inserted = read_back(&db, "shop", &rows);
    for r in &rows {
        for (c, e) in r.texts() {
            assert!(
                inserted[&(r.table.to_string(), r.id)][c] == e.old.as_bytes(),
                "{}.{c} of {} was not stored as inserted",
                r.table,
                r.id
            );
        }
    }
    let original = work.join("original.sql");
    std::fs::rename(db.dump("shop"), &original).unwrap();

    // The rewrite, and the dump it writes imported into a fresh database.
    let rewritten = work.join("rewritten.sql");
    let record = work.join("rewritten.sql.rollback");
    let (out, v) = rewrite_dump(&maps, &original, &rewritten, &[]);
    assert_eq!(out.status.code(), Some(0), "{}\n{v:#}", stderr(&out));
    check_report(&v, &rows, &record);
    db.sql(
        "",
        "CREATE DATABASE rewritten CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci",
    );
    db.import("rewritten", &rewritten);
    let serialized = check_values(&db, &rows);
    check_php(work, &rows, serialized);
    check_untouched(&original, &rewritten, &rows);

    // The undo gives back the original dump, byte for byte...
    let restored = work.join("restored.sql");
    let out = undo(&record, &rewritten, &restored);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        std::fs::read(&restored).unwrap() == std::fs::read(&original).unwrap(),
        "restored.sql is not original.sql"
    );
    // ...and refuses a rewritten dump changed since, writing nothing.
    let mut changed = std::fs::read(&rewritten).unwrap();
    let mid = changed.len() / 2;
    changed[mid] ^= 0x20;
    std::fs::write(&rewritten, &changed).unwrap();
    let refused = work.join("refused.sql");
    let out = undo(&record, &rewritten, &refused);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("changed since it was rewritten"),
        "{}",
        stderr(&out)
    );
    assert!(
        !refused.exists(),
        "nothing is written when the undo is refused"
    );

    // --include-guid rewrites the two guids too.
    let with_guid = work.join("with-guid.sql");
    let (out, v) = rewrite_dump(&maps, &original, &with_guid, &["--include-guid"]);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    let posts: u64 = rows
        .iter()
        .filter(|r| r.table == "wp_posts")
        .map(Row::refs)
        .sum();
    assert_eq!(v["replacements"], total + 2, "{v:#}");
    assert_eq!(v["files"][0]["tables"]["wp_posts"], posts + 2);
    let (guided, _) = dump_rows(&std::fs::read(&with_guid).unwrap());
    for (id, file) in [("55", "2024/05/hero.jpg"), ("56", "2024/05/café.jpg")] {
        let row = String::from_utf8_lossy(&guided[&("wp_posts".to_string(), id.to_string())])
            .into_owned();
        assert!(
            row.ends_with(&format!(",'{}')", media.new_url(file))),
            "{row}"
        );
    }

    // A file the map does not know is reported under its own path, in
    // every form and encoding it is written in; the output is right
    // without it, so the run exits 0, and 1 with --strict.
    let gone = "2024/05/café.jpg";
    let mut map: Value =
        serde_json::from_slice(&std::fs::read(maps.join("map.json")).unwrap()).unwrap();
    let entries = map["entries"].as_array_mut().unwrap();
    entries.retain(|e| e["old_url"] != media.urls[gone].0);
    assert_eq!(entries.len(), FILES.len() - 1);
    let partial_map = work.join("partial-map.json");
    std::fs::write(&partial_map, serde_json::to_vec(&map).unwrap()).unwrap();
    let gone_refs: u64 = rows
        .iter()
        .flat_map(Row::texts)
        .filter(|(c, _)| *c != "guid")
        .map(|(_, e)| e.refs.get(gone).copied().unwrap_or(0))
        .sum();
    assert!(gone_refs >= 8);
    for (strict, code) in [(&[][..], 0), (&["--strict"][..], 1)] {
        let (out, v) = rewrite_dump(&partial_map, &original, &work.join("partial.sql"), strict);
        assert_eq!(out.status.code(), Some(code), "{strict:?}: {v:#}");
        assert_eq!(v["replacements"], total - gone_refs, "{v:#}");
        assert_eq!(
            v["files"][0]["not_in_map"],
            json!([{"path": gone, "count": gone_refs}])
        );
        assert_eq!(v["files"][0]["not_in_map_total"], gone_refs);
    }
}
