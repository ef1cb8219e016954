//! The Apache map, tested with a real Apache (Debian's apache2) started on
//! a loopback port with the README's snippet: every old path answers 301
//! to its new URL, from the `txt:` map and from its `dbm:` conversion by
//! httxt2dbm, the query string is passed on, and paths outside the media
//! prefix never consult the map.

use std::path::Path;
use std::process::Command;

use crate::migrate::{csv_rows, hex, migrated_weird_tree};
use crate::support::web::{WebServer, apache, apache_binary as binary, readable};
use crate::support::{get_raw, signed_get, stderr};

/// The snippet the map's own header gives, with `map` for its RewriteMap.
fn snippet(header_of: &Path, map: &str) -> String {
    let text = std::fs::read_to_string(header_of).unwrap();
    let lines: Vec<String> = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .skip_while(|l| !l.contains("In the server config"))
        .skip(1)
        .filter_map(|l| l.strip_prefix("#   "))
        .map(|l| {
            if l.starts_with("RewriteMap ") {
                format!("RewriteMap mediashift \"{map}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with("RewriteRule")),
        "no snippet in the header of {}:\n{text}",
        header_of.display()
    );
    lines.join("\n")
}

fn start(snippet: &str) -> WebServer {
    apache("warn rewrite:trace5", |d, port| {
        std::fs::create_dir_all(d.join("htdocs")).unwrap();
        let d = d.display();
        format!(
            r#"DocumentRoot "{d}/htdocs"
<VirtualHost 127.0.0.1:{port}>
{snippet}
</VirtualHost>"#
        )
    })
}

#[test]
fn apache_redirects_every_old_path_from_the_txt_map_and_its_dbm_form() {
    let (_tree, files, _t, maps) = migrated_weird_tree("apache-map");
    let txt = maps.path().join("apache.map");
    // The conversion the map's header and the README give.
    let dbm = maps.path().join("apache.dbm");
    let conv = Command::new(binary("httxt2dbm"))
        .arg("-i")
        .arg(&txt)
        .arg("-o")
        .arg(&dbm)
        .output()
        .unwrap();
    assert!(conv.status.success(), "httxt2dbm: {}", stderr(&conv));
    for f in std::fs::read_dir(maps.path()).unwrap() {
        readable(&f.unwrap().path());
    }
    readable(maps.path());

    let rows = csv_rows(&maps.path().join("map.csv"));
    assert_eq!(rows.len(), files.len());
    for map in [
        format!("txt:{}", txt.display()),
        format!("dbm:{}", dbm.display()),
    ] {
        let apache = start(&snippet(&txt, &map));
        for row in &rows {
            let (status, location) = get_raw(apache.port, &row["old_url"]);
            assert_eq!(status, 301, "{map}: {} was not redirected", row["old_url"]);
            assert_eq!(location.as_deref(), Some(row["new_url"].as_str()), "{map}");
        }
        // A browser sends `+` as it is, not as %2B: the map has that form.
        let plus = rows
            .iter()
            .find(|r| r["old_url"].contains("plus%2Bsign"))
            .unwrap();
        let (status, location) = get_raw(apache.port, "/media/plus+sign.jpg");
        assert_eq!(
            (status, location.as_deref()),
            (301, Some(plus["new_url"].as_str()))
        );
        // The query string is passed on.
        let (status, location) = get_raw(apache.port, &format!("{}?v=123", rows[0]["old_url"]));
        assert_eq!(status, 301);
        assert_eq!(location, Some(format!("{}?v=123", rows[0]["new_url"])));
        // Outside the media path nothing is looked up or redirected: a
        // txt: map is read line by line on every lookup.
        assert_eq!(get_raw(apache.port, "/checkout/cart").0, 404);
        assert_eq!(get_raw(apache.port, "/media/not-migrated.jpg").0, 404);
        let log = std::fs::read_to_string(apache.error_log()).unwrap();
        let lookups: Vec<&str> = log.lines().filter(|l| l.contains("map lookup")).collect();
        assert!(
            lookups.iter().any(|l| l.contains("not-migrated")),
            "the map is consulted under /media/:\n{log}"
        );
        assert!(
            !lookups.iter().any(|l| l.contains("checkout")),
            "the map is consulted for /checkout/cart:\n{log}"
        );
    }
    // Every new URL serves the file's bytes.
    for row in rows.iter().take(3) {
        assert_eq!(hex(&signed_get(&row["new_url"])), row["sha256"]);
    }
}
