//! `mediashift rewrite` from the command line, with maps from real
//! migrations: content files in every encoding, the output modes, undo,
//! reverse, and bad input. (The database round trip is in rewrite_db.)

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{
    Tree, bytes, json as doc, mediashift, mediashift_env, signed_get, stderr, target,
};

const BASE: &str = "https://shop.example/media/";

/// A tree migrated for real, with its maps.
struct Migrated {
    _tree: Tree,
    maps: tempfile::TempDir,
    /// old path -> new URL, from map.json.
    new_urls: std::collections::BTreeMap<String, String>,
    /// old path -> the object's key under the destination's prefix.
    media_paths: std::collections::BTreeMap<String, String>,
}

fn migrated(name: &str, files: &[&str], extra: &[&str]) -> Migrated {
    let tree = Tree::new();
    for (i, f) in files.iter().enumerate() {
        tree.file(f, &bytes(900 + i as u64, 1500 + i));
    }
    let t = target(name);
    let maps = tempfile::tempdir().unwrap();
    let mut args = vec![
        "migrate".to_string(),
        s(tree.path()),
        t.url(),
        "--map-dir".into(),
        s(maps.path()),
        "--state".into(),
        s(&maps.path().join("state")),
        "--source-base-url".into(),
        BASE.into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let out = mediashift(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let map: Value =
        serde_json::from_slice(&std::fs::read(maps.path().join("map.json")).unwrap()).unwrap();
    let mut new_urls = std::collections::BTreeMap::new();
    let mut media_paths = std::collections::BTreeMap::new();
    for e in map["entries"].as_array().unwrap() {
        let old = e["old_url"].as_str().unwrap();
        let rel = percent_encoding::percent_decode_str(old.strip_prefix(BASE).unwrap())
            .decode_utf8()
            .unwrap()
            .into_owned();
        let key = e["key"].as_str().unwrap();
        media_paths.insert(
            rel.clone(),
            key.strip_prefix(&t.prefix).unwrap().to_string(),
        );
        new_urls.insert(rel, e["new_url"].as_str().unwrap().to_string());
    }
    Migrated {
        _tree: tree,
        maps,
        new_urls,
        media_paths,
    }
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn rewrite(m: &Migrated, args: &[&str]) -> (std::process::Output, Value) {
    let mut all = vec![
        "rewrite".to_string(),
        "--map".into(),
        m.maps.path().display().to_string(),
        "--json".into(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let out = mediashift(&all);
    let v = doc(&out);
    (out, v)
}

/// `rewrite --undo` of `output` (with its record beside it) into `to`.
fn undo(output: &Path, to: &Path) -> std::process::Output {
    mediashift([
        "rewrite",
        "--undo",
        &format!("{}.rollback", s(output)),
        &s(output),
        "-o",
        &s(to),
    ])
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn content_files_in_every_encoding_are_rewritten_and_undone() {
    let m = migrated("rw-files", &["a.jpg", "x/café.jpg", "v 1.mp4"], &[]);
    let a = &m.new_urls["a.jpg"];
    let cafe = &m.new_urls["x/café.jpg"];
    let v1 = &m.new_urls["v 1.mp4"];
    let dir = tempfile::tempdir().unwrap();
    let html = write(
        dir.path(),
        "page.html",
        "<img src=\"https://shop.example/media/a.jpg\" srcset=\"http://shop.example/media/a.jpg 1x, //shop.example/media/x/caf%C3%A9.jpg 2x\"><video src='/media/v%201.mp4?autoplay=1'></video>",
    );
    let css = write(
        dir.path(),
        "theme.css",
        ".a{background:url(/media/a.jpg)} .b{background:url('/media/x/caf%C3%A9.jpg')} .c{background:url(\"https://shop.example/media/a.jpg\")}",
    );
    let json = write(
        dir.path(),
        "blocks.json",
        r#"{"url":"https:\/\/shop.example\/media\/x\/caf\u00e9.jpg","other":"https:\/\/elsewhere.example\/media\/a.jpg"}"#,
    );
    let out_dir = tempfile::tempdir().unwrap();
    let (out, v) = rewrite(
        &m,
        &[
            "--base",
            BASE,
            "--base",
            "http://shop.example/media/",
            "--base",
            "//shop.example/media/",
            "--base",
            "/media/",
            &s(&html),
            &s(&css),
            &s(&json),
            "--output-dir",
            &s(out_dir.path()),
        ],
    );
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(v["replacements"], 8, "{v}");
    let read = |n: &str| std::fs::read_to_string(out_dir.path().join(n)).unwrap();
    assert_eq!(
        read("page.html"),
        format!(
            "<img src=\"{a}\" srcset=\"{a} 1x, {cafe} 2x\"><video src='{v1}?autoplay=1'></video>"
        )
    );
    assert_eq!(
        read("theme.css"),
        format!(
            ".a{{background:url({a})}} .b{{background:url('{cafe}')}} .c{{background:url(\"{a}\")}}"
        )
    );
    // JSON's `\u00e9` stays as it was written, after the new URL's head.
    let cafe_head = cafe.strip_suffix("x/caf%C3%A9.jpg").unwrap();
    assert_eq!(
        read("blocks.json"),
        format!(
            r#"{{"url":"{}x\/caf\u00e9.jpg","other":"https:\/\/elsewhere.example\/media\/a.jpg"}}"#,
            cafe_head.replace('/', "\\/")
        )
    );
    // Each output undone gives back its input, byte for byte.
    for (input, name) in [
        (&html, "page.html"),
        (&css, "theme.css"),
        (&json, "blocks.json"),
    ] {
        let output = out_dir.path().join(name);
        let restored = dir.path().join(format!("{name}.restored"));
        let undo = undo(&output, &restored);
        assert!(undo.status.success(), "{}", stderr(&undo));
        assert_eq!(
            std::fs::read(&restored).unwrap(),
            std::fs::read(input).unwrap()
        );
    }
    // An output changed since is refused, and nothing is written.
    let output = out_dir.path().join("page.html");
    std::fs::write(&output, read("page.html").replace("img", "IMG")).unwrap();
    let restored = dir.path().join("refused.html");
    let undo = undo(&output, &restored);
    assert_eq!(undo.status.code(), Some(2));
    assert!(
        stderr(&undo).contains("changed since it was rewritten"),
        "{}",
        stderr(&undo)
    );
    assert!(!restored.exists());
}

#[test]
fn in_place_keeps_a_backup_reverse_goes_back_and_dry_run_writes_nothing() {
    let m = migrated("rw-inplace", &["a.jpg", "b.png"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let original = "<img src=\"https://shop.example/media/a.jpg\"> <img src=\"https://shop.example/media/b.png\">";
    let page = write(dir.path(), "page.html", original);

    let (out, v) = rewrite(&m, &[&s(&page), "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["replacements"], 2, "{v}");
    assert_eq!(
        std::fs::read_to_string(&page).unwrap(),
        original,
        "a dry run writes nothing"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let (out, v) = rewrite(&m, &[&s(&page), "--in-place"]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    let backup = dir.path().join("page.html.bak");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
    let rewritten = std::fs::read_to_string(&page).unwrap();
    assert!(rewritten.contains(&m.new_urls["a.jpg"]), "{rewritten}");
    assert!(dir.path().join("page.html.rollback").exists());

    // A second --in-place would overwrite the backup: refused.
    let out = mediashift([
        "rewrite",
        "--map",
        &s(m.maps.path()),
        &s(&page),
        "--in-place",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("page.html.bak, which exists already"),
        "{}",
        stderr(&out)
    );

    // Backwards: the new URLs go back under the first --base.
    let back = dir.path().join("back.html");
    let (out, v) = rewrite(
        &m,
        &[
            "--reverse",
            "--base",
            "https://shop.example/media/",
            &s(&page),
            "-o",
            &s(&back),
        ],
    );
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), original);
}

#[test]
fn magento_directives_follow_the_content_layout() {
    let m = migrated(
        "rw-magento",
        &["wysiwyg/banner.jpg", "catalog/product/a/b/ab.jpg"],
        &["--key-layout", "content"],
    );
    let dir = tempfile::tempdir().unwrap();
    let block = write(
        dir.path(),
        "block.html",
        r#"<p>{{media url="wysiwyg/banner.jpg"}}</p><div data-background-images='{\"desktop_image\":\"{{media url=wysiwyg/banner.jpg}}\"}'></div>"#,
    );
    let out_file = dir.path().join("block.new.html");
    let (out, v) = rewrite(&m, &[&s(&block), "-o", &s(&out_file)]);
    assert!(out.status.success(), "{}\n{v}", stderr(&out));
    // The content layout's key under the destination's prefix.
    let key_path = &m.media_paths["wysiwyg/banner.jpg"];
    assert_ne!(key_path, "wysiwyg/banner.jpg");
    let got = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(
        got,
        format!(
            r#"<p>{{{{media url="{key_path}"}}}}</p><div data-background-images='{{\"desktop_image\":\"{{{{media url={key_path}}}}}\"}}'></div>"#
        )
    );
    assert_eq!(v["replacements"], 2);
}

#[test]
fn bad_input_is_said_clearly_and_the_other_files_carry_on() {
    let m = migrated("rw-bad", &["a.jpg"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.html",
        "<img src=\"https://shop.example/media/a.jpg\">",
    );
    let failing = write(
        dir.path(),
        "failing.html",
        &format!(
            "{}<img src=\"https://shop.example/media/a.jpg\">",
            "x".repeat(3_000_000)
        ),
    );
    let latin1 = dir.path().join("latin1.html");
    std::fs::write(
        &latin1,
        b"caf\xE9 <img src=\"https://shop.example/media/a.jpg\">",
    )
    .unwrap();
    let missing = write(
        dir.path(),
        "missing.html",
        "<img src=\"https://shop.example/media/gone.jpg\">",
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = mediashift_env(
        [
            "rewrite",
            "--map",
            &s(m.maps.path()),
            "--json",
            &s(&good),
            &s(&failing),
            &s(&latin1),
            &s(&missing),
            "--output-dir",
            &s(out_dir.path()),
        ],
        &[("MEDIASHIFT_TEST_READ_ERROR", "failing.html@2000000")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = doc(&out);
    let f = |i: usize| &v["files"][i];
    assert_eq!(f(0)["replacements"], 1);
    assert!(f(0)["error"].is_null());
    let e = f(1)["error"].as_str().unwrap();
    assert!(
        e.contains("failing.html") && e.contains("Input/output error"),
        "{e}"
    );
    assert!(
        !out_dir.path().join("failing.html").exists(),
        "no half-written output"
    );
    assert_eq!(
        std::fs::read_dir(out_dir.path()).unwrap().count(),
        6,
        "good, latin1, missing and their rollbacks"
    );
    assert_eq!(f(2)["invalid_utf8_at"], 3);
    assert_eq!(
        std::fs::read(out_dir.path().join("latin1.html")).unwrap()[..4],
        *b"caf\xE9",
        "bytes that are not UTF-8 are kept"
    );
    assert_eq!(f(3)["not_in_map"][0]["path"], "gone.jpg");
    assert_eq!(f(3)["not_in_map_total"], 1);

    // A map that is not one, a base that is not one, a flag missing.
    let not_a_map = s(&write(dir.path(), "map.json", "{\"rows\": []}"));
    let (map, good) = (s(m.maps.path()), s(&good));
    for (args, says) in [
        (
            vec!["--map", &not_a_map, &good, "--dry-run"],
            "is not a mediashift map.json",
        ),
        (
            vec!["--map", &map, "--base", "media/", &good, "--dry-run"],
            "--base media/",
        ),
        (
            vec!["--map", &map, &good],
            "-o OUTPUT, --output-dir DIR or --in-place",
        ),
        (vec!["--map", &map, &good, "-o", &good], "use --in-place"),
    ] {
        let mut all = vec!["rewrite"];
        all.extend(args);
        let out = mediashift(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}");
        let err = stderr(&out);
        assert!(err.contains(says), "{all:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

/// `url` as a browser requests it: a raw space and non-ASCII bytes in the
/// path percent-encoded (the WHATWG path percent-encode set, for what a
/// rewrite leaves raw).
fn as_requested(url: &str) -> String {
    let mut out = String::new();
    for b in url.bytes() {
        if b == b' ' || b >= 0x80 {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

#[test]
fn raw_names_keep_their_form_and_unknown_paths_are_listed_with_exit_0_unless_strict() {
    let files = [
        "2024/11/café-crème-300x225.jpg",
        "2024/11/sunset beach.jpg",
        "weird/100%.jpg",
        "a+b.jpg",
    ];
    let m = migrated("rw-forms", &files, &[]);
    let head = {
        let url = &m.new_urls["a+b.jpg"];
        url.strip_suffix("a%2Bb.jpg").unwrap().to_string()
    };
    for f in files {
        assert!(m.new_urls[f].starts_with(&head), "{f}: one head for all");
    }
    let dir = tempfile::tempdir().unwrap();
    let original = concat!(
        r#"<img src="https://shop.example/media/2024/11/café-crème-300x225.jpg" srcset="https://shop.example/media/2024/11/café-crème-300x225.jpg 300w, https://shop.example/media/2024/11/caf%C3%A9-cr%C3%A8me-300x225.jpg 301w">"#,
        "\n",
        r#"<a href="https://shop.example/media/2024/11/sunset beach.jpg">Sunset</a>"#,
        "\n",
        r#"<img src="https://shop.example/media/weird/100%25.jpg"><img src="https://shop.example/media/weird/100%25.jpg.webp">"#,
        "\n",
        r#"<img src="https://shop.example/media/a+b.jpg?v=3">"#,
        "\n",
        r#"<a href="https://shop.example/media/catalogue.pdf">The catalogue</a>"#,
        "\n",
        r#"{"u":"https:\/\/shop.example\/media\/2024\/11\/sunset beach.jpg"}"#,
    );
    let page = write(dir.path(), "page.html", original);
    let out_file = dir.path().join("page.new.html");
    let (out, v) = rewrite(&m, &[&s(&page), "-o", &s(&out_file)]);
    assert_eq!(out.status.code(), Some(0), "{}\n{v:#}", stderr(&out));
    assert_eq!(v["replacements"], 7, "{v:#}");
    assert_eq!(v["strict"], false);
    let f = &v["files"][0];
    assert_eq!(
        f["not_in_map"],
        serde_json::json!([
            {"path": "catalogue.pdf", "count": 1},
            {"path": "weird/100%.jpg.webp", "count": 1}
        ]),
        "{f:#}"
    );
    assert!(
        stderr(&out).contains("2 reference(s) under a base are not in the map"),
        "{}",
        stderr(&out)
    );
    let hj = head.replace('/', "\\/");
    let want = format!(
        concat!(
            r#"<img src="{h}2024/11/café-crème-300x225.jpg" srcset="{h}2024/11/café-crème-300x225.jpg 300w, {h}2024/11/caf%C3%A9-cr%C3%A8me-300x225.jpg 301w">"#,
            "\n",
            r#"<a href="{h}2024/11/sunset beach.jpg">Sunset</a>"#,
            "\n",
            r#"<img src="{h}weird/100%25.jpg"><img src="https://shop.example/media/weird/100%25.jpg.webp">"#,
            "\n",
            r#"<img src="{h}a%2Bb.jpg?v=3">"#,
            "\n",
            r#"<a href="https://shop.example/media/catalogue.pdf">The catalogue</a>"#,
            "\n",
            r#"{{"u":"{hj}2024\/11\/sunset beach.jpg"}}"#,
        ),
        h = head,
        hj = hj
    );
    let got = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(got, want);
    // Each new URL, as a browser requests it, is the map's and serves the
    // file.
    for (i, f) in files.iter().enumerate() {
        let written = format!(
            "{head}{}",
            if *f == "a+b.jpg" {
                "a%2Bb.jpg"
            } else if *f == "weird/100%.jpg" {
                "weird/100%25.jpg"
            } else {
                f
            }
        );
        assert!(got.contains(&written), "{written}");
        assert_eq!(as_requested(&written), m.new_urls[*f]);
        assert!(
            signed_get(&m.new_urls[*f]) == bytes(900 + i as u64, 1500 + i),
            "{f}"
        );
    }
    // The undo gives the input back, byte for byte.
    let restored = dir.path().join("page.restored.html");
    let u = undo(&out_file, &restored);
    assert!(u.status.success(), "{}", stderr(&u));
    assert_eq!(std::fs::read(&restored).unwrap(), original.as_bytes());

    // --strict: the same references make the exit code 1 (and the text
    // report says why).
    let strict_out = dir.path().join("page.strict.html");
    let (out, v) = rewrite(&m, &[&s(&page), "-o", &s(&strict_out), "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{v:#}", stderr(&out));
    assert_eq!(
        (v["strict"].clone(), v["not_in_map_total"].clone()),
        (true.into(), 2.into())
    );
    assert_eq!(
        std::fs::read_to_string(&strict_out).unwrap(),
        want,
        "the same output"
    );
    let text = mediashift([
        "rewrite",
        "--map",
        &s(m.maps.path()),
        &s(&page),
        "--dry-run",
    ]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let report = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        report.contains("2 reference(s) under a base are not in the map")
            && report.contains("catalogue.pdf (1)")
            && report.contains("--strict makes them an error"),
        "{report}"
    );
}
