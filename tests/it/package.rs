//! What a package of mediashift ships besides the binary: shell
//! completions and man pages generated from the same flag definitions, and
//! the licence files the metadata names.

use std::process::Command;

use crate::support::{REPO, mediashift, stderr, stdout};

const COMMANDS: [&str; 9] = [
    "plan", "migrate", "status", "verify", "gc", "rewrite", "offload", "restore", "man",
];

#[test]
fn completions_know_every_command_and_bash_reads_them() {
    for shell in ["bash", "zsh", "fish"] {
        let out = mediashift(["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for c in COMMANDS {
            assert!(script.contains(c), "{shell} completions lack {c}");
        }
        assert!(script.contains("--quarantine"), "{shell}: flags too");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mediashift.bash");
    std::fs::write(&file, stdout(&mediashift(["completions", "bash"]))).unwrap();
    // Sourced into a real bash, it registers the completion function.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p mediashift",
            file.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success() && stdout(&out).contains("_mediashift"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let bad = mediashift(["completions", "tcsh"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn man_pages_render_for_the_tool_and_each_command() {
    let dir = tempfile::tempdir().unwrap();
    for page in [None, Some("migrate"), Some("offload")] {
        let mut args = vec!["man"];
        args.extend(page);
        let out = mediashift(&args);
        assert!(out.status.success(), "{page:?}: {}", stderr(&out));
        let file = dir.path().join("page.1");
        std::fs::write(&file, &out.stdout).unwrap();
        // groff (man's formatter) reads it without a warning.
        let render = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&file)
            .output()
            .expect("groff is needed (apt-get install groff-base)");
        assert!(
            render.status.success() && render.stderr.is_empty(),
            "{page:?}: {}",
            stderr(&render)
        );
        let text = stdout(&out);
        match page {
            None => COMMANDS
                .iter()
                .for_each(|c| assert!(text.contains(c), "the page lists {c}")),
            Some(c) => {
                assert!(text.contains(&format!("mediashift\\-{c}")), "{c}: {text}");
            }
        }
    }
    let out = mediashift(["man", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("mediashift man nope: no such command"));
}

#[test]
fn the_metadata_names_a_licence_whose_files_are_there() {
    let manifest = std::fs::read_to_string(format!("{REPO}/Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
    for (file, first) in [
        ("LICENSE-MIT", "MIT License"),
        ("LICENSE-APACHE", "Apache License"),
    ] {
        let text = std::fs::read_to_string(format!("{REPO}/{file}")).unwrap();
        assert!(text.trim_start().starts_with(first), "{file}");
    }
}

/// docker-compose.yml gives the same server every time (images pinned to a
/// release, never `latest`) and keeps off 127.0.0.1:9000, which php-fpm
/// often holds on a shop server.
#[test]
fn the_compose_file_pins_its_images_and_keeps_off_php_fpm_s_port() {
    let compose = std::fs::read_to_string(format!("{REPO}/docker-compose.yml")).unwrap();
    let images: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(str::trim)
        .collect();
    assert_eq!(images.len(), 2, "{compose}");
    for image in images {
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
        assert!(
            tag.starts_with("RELEASE."),
            "{image} is not pinned to a release"
        );
    }
    assert!(
        !compose.contains("\"127.0.0.1:9000:"),
        "host port 9000 is php-fpm's"
    );
}
