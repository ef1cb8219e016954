//! The layout check: the modules of `src/` form no import cycle, the
//! crates with one home stay in it (aws-sdk-s3 in `store/s3/`, indicatif in
//! `ui`, clap in `cli`/`settings`/`main`, rusqlite in `journal/`,
//! tracing-subscriber in `ui`), no command imports another (shared work is
//! a stage's), and no stage names the concrete store (`S3`): stages run on
//! any `ObjectStore`, only commands open the real one.
//!
//! Each file is a module (`x/mod.rs` is `x`); inline modules (`mod tests
//! { ... }`) belong to their file. A module depends on another when it
//! names it: `use crate::a::b`, `crate::a::f()`, `super::b`, `self::c`, or
//! a child module by name. A path resolves to the longest module it names,
//! so an item re-exported by a parent counts as the parent's: children must
//! name their siblings (`super::job::Job`), not the parent's re-exports,
//! or the parent and child form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates that may be named only under these paths of `src/`.
const HOMES: &[(&str, &[&str])] = &[
    ("aws_sdk_s3", &["store/s3/"]),
    ("aws_config", &["store/s3/", "store/tls.rs"]),
    ("aws_smithy_", &["store/s3/", "store/tls.rs"]),
    ("aws_types", &["store/s3/"]),
    ("aws_credential_types", &["store/s3/"]),
    ("http_body", &["store/"]),
    ("hyper", &["store/"]),
    ("hyper_util", &["store/"]),
    ("hyper_rustls", &["store/"]),
    ("rustls", &["store/"]),
    ("aho_corasick", &["cutover/rewrite/"]),
    ("indicatif", &["ui.rs"]),
    ("tracing_subscriber", &["ui.rs"]),
    ("clap", &["cli.rs", "settings/", "main.rs"]),
    ("rusqlite", &["journal/"]),
];

/// Where one module names another (or a crate).
#[derive(Debug, Clone)]
struct Use {
    target: String,
    file: String,
    line: usize,
    text: String,
}

/// Replaces comments and the contents of string and char literals with
/// spaces, keeping line breaks, so only code is left to read.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        match c[i] {
            '/' if at(i + 1) == '/' => {
                while i < c.len() && c[i] != '\n' {
                    out.push(' ');
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        out.push_str("  ");
                        i += 2;
                    } else if c[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        out.push_str("  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        out.push(blank(c[i]));
                        i += 1;
                    }
                }
            }
            'r' if (at(i + 1) == '"' || (at(i + 1) == '#' && matches!(at(i + 2), '#' | '"')))
                && !(i > 0
                    && (c[i - 1].is_alphanumeric() || c[i - 1] == '_')
                    && c[i - 1] != 'b') =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while at(j) == '#' {
                    hashes += 1;
                    j += 1;
                }
                // j is at the opening quote.
                out.push(' ');
                for _ in 0..=hashes {
                    out.push(' ');
                }
                j += 1;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (1..=hashes).all(|h| at(j + h) == '#') {
                        for _ in 0..=hashes {
                            out.push(' ');
                        }
                        j += 1 + hashes;
                        break;
                    }
                    out.push(blank(c[j]));
                    j += 1;
                }
                i = j;
            }
            '"' => {
                out.push(' ');
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        out.push(' ');
                        i += 1;
                    }
                    if i < c.len() {
                        out.push(blank(c[i]));
                        i += 1;
                    }
                }
                out.push(' ');
                i += 1;
            }
            '\'' if at(i + 1) == '\\' => {
                // An escaped char literal: up to the closing quote.
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                for _ in i..=j.min(c.len() - 1) {
                    out.push(' ');
                }
                i = j + 1;
            }
            '\'' if at(i + 2) == '\'' => {
                out.push_str("   ");
                i += 3;
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Path,
    Punct(char),
}

fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// The paths a `use` tree starting at `toks[*i]` names, each with `prefix`.
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match toks.get(*i).map(|t| &t.0) {
            Some(Tok::Ident(s)) if s == "as" => {
                *i += 2;
                out.push(path);
                return;
            }
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
            }
            Some(Tok::Path) => *i += 1,
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match toks.get(*i).map(|t| &t.0) {
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        None => return,
                        _ => use_tree(toks, i, path.clone(), out),
                    }
                }
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(path);
                return;
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}

/// Every module file under `src`, by module path ("" for the crate root).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<String, PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, src, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(src).expect("under src");
                let mut parts: Vec<String> = rel
                    .with_extension("")
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect();
                if parts
                    .last()
                    .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
                {
                    parts.pop();
                }
                if rel == Path::new("main.rs") {
                    // The binary is its own crate; it can name only the
                    // library's public API, never form a cycle with it.
                    continue;
                }
                out.insert(parts.join("::"), p);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// The longest module that `path` (absolute, from the crate) names.
fn resolve(path: &[String], modules: &BTreeMap<String, PathBuf>) -> String {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains_key(m))
        .unwrap_or_default()
}

fn parent(m: &str) -> String {
    m.rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}

/// What each module names: other modules, and crates.
struct Graph {
    edges: BTreeMap<String, BTreeMap<String, Use>>,
    crates: Vec<(String, Use)>,
}

fn graph(src: &Path) -> Graph {
    let modules = modules(src);
    let mut g = Graph {
        edges: BTreeMap::new(),
        crates: Vec::new(),
    };
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("read source");
        let lines: Vec<&str> = text.lines().collect();
        let rel = file
            .strip_prefix(src)
            .expect("under src")
            .display()
            .to_string();
        let toks = tokens(&strip(&text));
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|m| parent(m) == *module && !m.is_empty())
            .map(|m| m.rsplit("::").next().unwrap_or(m).to_string())
            .collect();
        // Inline modules (`mod tests { ... }`), by the depth they close at.
        let mut inline: Vec<usize> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < toks.len() {
            let (tok, line) = &toks[i];
            let mut paths: Vec<Vec<String>> = Vec::new();
            match tok {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if inline.last() == Some(&depth) {
                        inline.pop();
                    }
                }
                Tok::Ident(s) if s == "mod" => {
                    if matches!(toks.get(i + 2), Some((Tok::Punct('{'), _))) {
                        inline.push(depth);
                    }
                }
                Tok::Ident(s) if s == "use" => {
                    i += 1;
                    use_tree(&toks, &mut i, Vec::new(), &mut paths);
                    i -= 1;
                }
                Tok::Ident(s)
                    if matches!(toks.get(i + 1), Some((Tok::Path, _)))
                        && !matches!(
                            i.checked_sub(1).and_then(|k| toks.get(k)),
                            Some((Tok::Path, _))
                        ) =>
                {
                    let mut p = vec![s.clone()];
                    let mut k = i + 1;
                    while matches!(toks.get(k), Some((Tok::Path, _))) {
                        match ident(toks.get(k + 1)) {
                            Some(seg) => {
                                p.push(seg.to_string());
                                k += 2;
                            }
                            None => break,
                        }
                    }
                    paths.push(p);
                }
                _ => {}
            }
            for p in paths {
                let Some(first) = p.first() else { continue };
                let here = Use {
                    target: String::new(),
                    file: rel.clone(),
                    line: *line,
                    text: lines.get(line - 1).map_or("", |l| l.trim()).to_string(),
                };
                if let Some((name, _)) = HOMES
                    .iter()
                    .find(|(c, _)| first == c || (c.ends_with('_') && first.starts_with(c)))
                {
                    g.crates.push((name.to_string(), here.clone()));
                    continue;
                }
                // Inside an inline module, `super` is the file's module.
                let base = match first.as_str() {
                    "crate" => Some((String::new(), &p[1..])),
                    "super" if !inline.is_empty() => Some((module.clone(), &p[1..])),
                    "super" => Some((parent(module), &p[1..])),
                    "self" => Some((module.clone(), &p[1..])),
                    c if children.contains(c) && inline.is_empty() => {
                        Some((module.clone(), &p[..]))
                    }
                    _ => None,
                };
                let Some((mut base, mut rest)) = base else {
                    continue;
                };
                while rest.first().is_some_and(|s| s == "super") {
                    base = parent(&base);
                    rest = &rest[1..];
                }
                let mut full: Vec<String> = if base.is_empty() {
                    Vec::new()
                } else {
                    base.split("::").map(str::to_string).collect()
                };
                full.extend(rest.iter().cloned());
                let target = resolve(&full, &modules);
                if target != *module {
                    g.edges
                        .entry(module.clone())
                        .or_default()
                        .entry(target.clone())
                        .or_insert(Use { target, ..here });
                }
            }
            i += 1;
        }
    }
    g
}

fn name(m: &str) -> &str {
    if m.is_empty() { "crate" } else { m }
}

/// Every problem found: cycles (with the line of each step) and crates
/// named outside their home.
fn problems(src: &Path) -> Vec<String> {
    let g = graph(src);
    let mut out = Vec::new();
    for (krate, u) in &g.crates {
        let home = HOMES
            .iter()
            .find(|(c, _)| c == krate)
            .map_or(&[][..], |h| h.1);
        if !home.iter().any(|h| u.file.starts_with(h)) {
            out.push(format!(
                "{krate} is used outside {}: src/{}:{}: {}",
                home.join(", "),
                u.file,
                u.line,
                u.text
            ));
        }
    }
    // Commands are adapters: none imports another (their unit tests, in
    // `commands::tests`, run them all).
    for (from, uses) in &g.edges {
        if !from.starts_with("commands::") || from == "commands::tests" {
            continue;
        }
        for (to, u) in uses {
            if to.starts_with("commands::") && to != from {
                out.push(format!(
                    "the command {} imports the command {}: src/{}:{}: {}",
                    name(from),
                    name(to),
                    u.file,
                    u.line,
                    u.text
                ));
            }
        }
    }
    // Stages and the cutover's modules run on any store.
    for (module, file) in modules(src) {
        if !(module.starts_with("stages") || module.starts_with("cutover")) {
            continue;
        }
        let code = strip(&std::fs::read_to_string(&file).expect("read source"));
        for (n, line) in code.lines().enumerate() {
            let named = line
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == "S3");
            if named {
                let rel = file.strip_prefix(src).expect("under src").display();
                out.push(format!(
                    "the stage {} names the concrete store S3 (take an ObjectStore): src/{rel}:{}: {}",
                    name(&module),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    // Cycles, one report per tangle (strongly connected set of modules):
    // its members, and the shortest cycle through its first member.
    let mut done: BTreeSet<String> = BTreeSet::new();
    for start in g.edges.keys() {
        if done.contains(start) {
            continue;
        }
        let Some(cycle) = shortest_cycle(&g, start) else {
            continue;
        };
        let from = reachable(&g, start);
        let tangle: Vec<&String> = from
            .iter()
            .filter(|m| reachable(&g, m).contains(start))
            .collect();
        done.extend(tangle.iter().map(|m| (*m).clone()));
        let mut msg = format!("import cycle: {}", name(start));
        for u in &cycle {
            msg.push_str(&format!(" -> {}", name(&u.target)));
        }
        for u in &cycle {
            msg.push_str(&format!("\n    src/{}:{}: {}", u.file, u.line, u.text));
        }
        if tangle.len() > cycle.len() {
            let names: Vec<&str> = tangle.iter().map(|m| name(m)).collect();
            msg.push_str(&format!(
                "\n    ({} modules are tangled: {})",
                tangle.len(),
                names.join(", ")
            ));
        }
        out.push(msg);
    }
    out
}

/// Every module `start` depends on, directly or not, itself included.
fn reachable(g: &Graph, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::from([start.to_string()]);
    let mut todo = vec![start.to_string()];
    while let Some(m) = todo.pop() {
        for to in g.edges.get(&m).into_iter().flatten().map(|(to, _)| to) {
            if seen.insert(to.clone()) {
                todo.push(to.clone());
            }
        }
    }
    seen
}

/// The shortest way from `start` back to itself, as the uses that make it.
fn shortest_cycle(g: &Graph, start: &str) -> Option<Vec<Use>> {
    // For each module reached: the module before it and the use between.
    let mut back: BTreeMap<String, (String, Use)> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    let mut visited = BTreeSet::from([start.to_string()]);
    while let Some(m) = queue.pop_front() {
        for (to, u) in g.edges.get(&m).into_iter().flatten() {
            if to == start {
                let mut path = vec![u.clone()];
                let mut at = m.clone();
                while at != start {
                    let (prev, step) = back[&at].clone();
                    path.push(step);
                    at = prev;
                }
                path.reverse();
                return Some(path);
            }
            if visited.insert(to.clone()) {
                back.insert(to.clone(), (m.clone(), u.clone()));
                queue.push_back(to.clone());
            }
        }
    }
    None
}

#[test]
fn the_modules_form_no_cycle_and_crates_stay_in_their_module() {
    let src = Path::new(crate::support::REPO).join("src");
    let found = problems(&src);
    assert!(
        found.is_empty(),
        "the layout check failed ({} problems):\n{}",
        found.len(),
        found.join("\n")
    );
    // The check read the real tree: it knows the pipeline's edges.
    let g = graph(&src);
    assert!(g.edges["stages::upload::multipart"].contains_key("store"));
    assert!(g.edges["stages::bucket"].contains_key("stages::verify"));
    assert!(g.edges["commands::plan"].contains_key("stages::survey"));
    assert!(
        g.crates
            .iter()
            .any(|(c, u)| c == "aws_sdk_s3" && u.file.starts_with("store/s3/"))
    );
}

#[test]
fn the_check_finds_cycles_and_crates_out_of_place_but_not_in_comments_or_strings() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "lib.rs",
        "mod a;\nmod b;\nmod c;\nmod d;\nmod store;\nmod commands;\nmod stages;\n",
    );
    write("commands/mod.rs", "mod one;\nmod two;\n");
    write("stages/mod.rs", "mod up;\n");
    write("a.rs", "use crate::b::f;\npub fn g() {}\n");
    std::fs::create_dir_all(src.join("commands")).unwrap();
    std::fs::create_dir_all(src.join("stages")).unwrap();
    write("commands/one.rs", "use super::two::X;\n");
    write("commands/two.rs", "pub struct X;\n");
    write(
        "stages/up.rs",
        "// S3 in a comment is fine\nfn f(s: &crate::store::S3) {}\n",
    );
    write("b.rs", "pub fn f() {\n    crate::a::g();\n}\n");
    write("c.rs", "use indicatif::ProgressBar;\n");
    write(
        "d.rs",
        "// use crate::a;\n/* crate::b::f() */\nconst S: &str = \"crate::a::g\";\nconst R: &str = r#\"use crate::b;\"#;\nconst C: char = '\\'';\n",
    );
    write("store/mod.rs", "mod s3;\nmod x;\npub use x::Y;\n");
    write("store/s3/mod.rs", "use aws_sdk_s3::Client;\n");
    write(
        "store/x.rs",
        "use super::Y;\nuse aws_sdk_s3::Client;\npub struct Y;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    );
    let found = problems(src);
    let text = found.join("\n");
    assert!(text.contains("import cycle: a -> b -> a"), "{text}");
    assert!(text.contains("src/a.rs:1: use crate::b::f;"), "{text}");
    assert!(text.contains("src/b.rs:2: crate::a::g();"), "{text}");
    assert!(
        text.contains("import cycle: store -> store::x -> store"),
        "{text}"
    );
    assert!(
        text.contains("indicatif is used outside ui.rs: src/c.rs:1: use indicatif::ProgressBar;"),
        "{text}"
    );
    assert!(
        text.contains(
            "aws_sdk_s3 is used outside store/s3/: src/store/x.rs:2: use aws_sdk_s3::Client;"
        ),
        "{text}"
    );
    assert!(
        !text.contains("src/store/s3/mod.rs"),
        "store/s3/ may use the SDK: {text}"
    );
    assert!(
        text.contains("the command commands::one imports the command commands::two: src/commands/one.rs:1: use super::two::X;"),
        "{text}"
    );
    assert!(
        text.contains("the stage stages::up names the concrete store S3 (take an ObjectStore): src/stages/up.rs:2:"),
        "{text}"
    );
    assert_eq!(found.len(), 6, "{text}");
    assert!(
        !graph(src).edges.contains_key("d"),
        "comments and strings name nothing"
    );
}
