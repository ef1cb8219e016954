//! Which files a run takes: the media filter and `--include`/`--exclude`.
//!
//! Kept apart from the walker so the rules can be tested without a file
//! system. A file is taken when it passes the media filter (unless
//! `--all-files`), matches at least one `--include` (when any is given) and
//! matches no `--exclude`. Excludes always win.
//!
//! Pattern rules follow rclone and `.gitignore`: a pattern without `/`
//! matches the file name at any depth (`*.tmp`); a pattern with `/` matches
//! the whole path relative to SOURCE_DIR (`cache/**`, `/thumbs/*.jpg`); `*`
//! and `?` never cross `/`, `**` does; a trailing `/` means everything below.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// The outcome of the rules for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Take,
    NotMedia,
    Excluded,
}

#[derive(Debug, thiserror::Error)]
#[error("{flag} '{pattern}' is not a valid glob: {reason}")]
pub struct PatternError {
    pub flag: &'static str,
    pub pattern: String,
    pub reason: String,
}

/// Compiled selection rules.
#[derive(Debug, Clone)]
pub struct Selector {
    all_files: bool,
    includes: Option<Rules>,
    excludes: Rules,
    /// Patterns ending in `/*`, which AWS CLI users take for the whole
    /// folder: counted where the folder's deeper files go the other way.
    shallow: std::sync::Arc<Vec<Shallow>>,
}

/// A `FOLDER/*` pattern, with `FOLDER/**` to count what it leaves.
#[derive(Debug)]
struct Shallow {
    flag: &'static str,
    pattern: String,
    deep: Rules,
    /// Files in the folder's subfolders the pattern does not reach.
    missed: std::sync::atomic::AtomicU64,
}

impl Shallow {
    fn all(flag: &'static str, patterns: &[String]) -> Result<Vec<Self>, PatternError> {
        patterns
            .iter()
            .filter_map(|p| p.strip_suffix("/*").map(|folder| (p, folder)))
            .map(|(p, folder)| {
                Ok(Self {
                    flag,
                    pattern: p.clone(),
                    deep: Rules::new(flag, &[format!("{folder}/**")])?,
                    missed: std::sync::atomic::AtomicU64::new(0),
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Rules {
    by_name: GlobSet,
    by_path: GlobSet,
}

impl Rules {
    /// Patterns as `--include` takes them (`flag` names them in errors):
    /// one without `/` matches a file's name, one with `/` its relative
    /// path; `*` stays within a directory, `**` crosses them.
    pub fn new(flag: &'static str, patterns: &[String]) -> Result<Self, PatternError> {
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        for pattern in patterns {
            let err = |reason: String| PatternError {
                flag,
                pattern: pattern.clone(),
                reason,
            };
            if pattern.trim().is_empty() {
                return Err(err("the pattern is empty".into()));
            }
            let mut p = pattern.trim_start_matches('/').to_string();
            if p.ends_with('/') {
                p.push_str("**");
            }
            let glob = |p: &str| -> Result<Glob, PatternError> {
                GlobBuilder::new(p)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| err(e.kind().to_string()))
            };
            if pattern.contains('/') {
                by_path.add(glob(&p)?);
            } else {
                by_name.add(glob(&p)?);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| PatternError {
                flag,
                pattern: patterns.join(" "),
                reason: e.to_string(),
            })
        };
        Ok(Self {
            by_name: build(by_name)?,
            by_path: build(by_path)?,
        })
    }

    /// Patterns matched against the whole relative path only (`restore
    /// --only`): `*` stays within a directory, `**` crosses them, so
    /// `*.jpg` is the top folder's JPEGs and `**/*.jpg` all of them.
    pub fn paths(flag: &'static str, patterns: &[String]) -> Result<Self, PatternError> {
        let with_slash: Vec<String> = patterns
            .iter()
            .map(|p| {
                if p.contains('/') || p.trim().is_empty() {
                    p.clone()
                } else {
                    format!("/{p}")
                }
            })
            .collect();
        Self::new(flag, &with_slash)
    }

    pub fn matches(&self, rel_path: &str) -> bool {
        let name = rel_path.rsplit('/').next().unwrap_or(rel_path);
        self.by_name.is_match(name) || self.by_path.is_match(rel_path)
    }
}

impl Selector {
    pub fn new(
        all_files: bool,
        includes: &[String],
        excludes: &[String],
    ) -> Result<Self, PatternError> {
        Ok(Self {
            all_files,
            includes: if includes.is_empty() {
                None
            } else {
                Some(Rules::new("--include", includes)?)
            },
            excludes: Rules::new("--exclude", excludes)?,
            shallow: std::sync::Arc::new(
                Shallow::all("--include", includes)?
                    .into_iter()
                    .chain(Shallow::all("--exclude", excludes)?)
                    .collect(),
            ),
        })
    }

    /// Decides for a path relative to SOURCE_DIR, with `/` separators.
    pub fn verdict(&self, rel_path: &str) -> Verdict {
        let excluded = self.excludes.matches(rel_path);
        let included = self.includes.as_ref().is_none_or(|i| i.matches(rel_path));
        let media = self.all_files || is_media(rel_path);
        for s in self.shallow.iter() {
            // An --exclude FOLDER/* that leaves a deeper file selected, an
            // --include FOLDER/* that leaves one out that would be taken.
            let missed = match s.flag {
                "--exclude" => !excluded && included && media,
                _ => !included && !excluded && media,
            };
            if missed && s.deep.matches(rel_path) {
                s.missed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if excluded || !included {
            return Verdict::Excluded;
        }
        if !media {
            return Verdict::NotMedia;
        }
        Verdict::Take
    }
}

impl Selector {
    /// One line for each `FOLDER/*` pattern that did not reach files in
    /// FOLDER's subfolders (AWS CLI users expect the whole folder), once
    /// the walk has asked for every file.
    pub fn shallow_warnings(&self) -> Vec<String> {
        self.shallow
            .iter()
            .filter_map(|s| {
                let n = s.missed.load(std::sync::atomic::Ordering::Relaxed);
                let folder = s.pattern.strip_suffix("/*")?;
                let went = if s.flag == "--exclude" {
                    "are still selected"
                } else {
                    "are not included"
                };
                (n > 0).then(|| {
                    format!(
                        "{} '{}' matches only the files directly in {folder}/: {n} file(s) in its subfolders {went}; use '{folder}/**' for the whole folder",
                        s.flag, s.pattern
                    )
                })
            })
            .collect()
    }
}

/// Image and video formats that mime_guess does not know yet.
const EXTRA_MEDIA: &[&str] = &["avif", "heic", "heif", "jxl", "m4v"];

/// Whether the extension says image/* or video/* (case-insensitive).
pub fn is_media(rel_path: &str) -> bool {
    let name = rel_path.rsplit('/').next().unwrap_or(rel_path);
    let Some((_, ext)) = name.rsplit_once('.') else {
        return false;
    };
    if EXTRA_MEDIA.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
        return true;
    }
    mime_guess::from_ext(ext)
        .iter()
        .any(|m| m.type_() == mime_guess::mime::IMAGE || m.type_() == mime_guess::mime::VIDEO)
}

/// The Content-Type to store for a file, from its extension.
/// Content types by extension that the user set (`--content-type
/// EXT=TYPE`), over the guess from the extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentTypes {
    by_ext: std::collections::HashMap<String, String>,
}

impl ContentTypes {
    /// `ext` is matched without its dot, in any case.
    pub fn set(&mut self, ext: &str, content_type: &str) {
        self.by_ext.insert(
            ext.trim_start_matches('.').to_ascii_lowercase(),
            content_type.to_string(),
        );
    }

    /// The overrides as text, one `ext=type` per line in order (what the
    /// journal keeps); [`Self::from_lines`] reads it back.
    pub fn to_lines(&self) -> String {
        let mut lines: Vec<String> = self
            .by_ext
            .iter()
            .map(|(ext, t)| format!("{ext}={t}"))
            .collect();
        lines.sort();
        lines.join("\n")
    }

    /// Overrides from [`Self::to_lines`] (a line without `=` is ignored).
    pub fn from_lines(text: &str) -> Self {
        let mut c = Self::default();
        for (ext, t) in text.lines().filter_map(|l| l.split_once('=')) {
            c.set(ext, t);
        }
        c
    }

    /// The Content-Type an object for `rel_path` gets.
    pub fn of(&self, rel_path: &str) -> String {
        let name = rel_path.rsplit('/').next().unwrap_or(rel_path);
        name.rsplit_once('.')
            .and_then(|(_, ext)| self.by_ext.get(&ext.to_ascii_lowercase()))
            .cloned()
            .unwrap_or_else(|| content_type(rel_path))
    }
}

pub fn content_type(rel_path: &str) -> String {
    mime_guess::from_path(rel_path)
        .first_raw()
        .map(str::to_string)
        .or_else(|| {
            let ext = rel_path.rsplit_once('.')?.1.to_ascii_lowercase();
            Some(
                match ext.as_str() {
                    "avif" => "image/avif",
                    "heic" => "image/heic",
                    "heif" => "image/heif",
                    "jxl" => "image/jxl",
                    "m4v" => "video/x-m4v",
                    _ => return None,
                }
                .to_string(),
            )
        })
        .unwrap_or_else(|| "application/octet-stream".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(all: bool, inc: &[&str], exc: &[&str]) -> Selector {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Selector::new(all, &s(inc), &s(exc)).unwrap()
    }

    #[test]
    fn media_by_extension_case_insensitive() {
        for p in [
            "a.jpg", "b/C.JPG", "x.jpeg", "p.png", "w.webp", "g.gif", "s.svg", "v.mp4", "m.MOV",
            "w.webm", "a.avif", "h.HEIC", "t.tiff",
        ] {
            assert!(is_media(p), "{p} should be media");
        }
        for p in ["a.txt", "b.php", "noext", "x.jpg.bak", ".htaccess", "a.pdf"] {
            assert!(!is_media(p), "{p} should not be media");
        }
    }

    #[test]
    fn content_types_come_from_the_extension() {
        assert_eq!(content_type("a/B.JPG"), "image/jpeg");
        assert_eq!(content_type("v.mp4"), "video/mp4");
        assert_eq!(content_type("x.avif"), "image/avif");
        // What shops serve today, each with the type browsers expect.
        for (name, ty) in [
            ("a.webp", "image/webp"),
            ("a.AVIF", "image/avif"),
            ("a.heic", "image/heic"),
            ("a.svg", "image/svg+xml"),
            ("a.mp4", "video/mp4"),
            ("a.webm", "video/webm"),
            ("a.MOV", "video/quicktime"),
        ] {
            assert_eq!(content_type(name), ty, "{name}");
        }
        assert_eq!(content_type("x.unknownext"), "application/octet-stream");
        let only = Rules::paths("--only", &["*.jpg".into(), "catalog/**".into()]).unwrap();
        assert!(only.matches("a.jpg") && only.matches("catalog/x/y.png"));
        assert!(!only.matches("b/a.jpg"), "* does not cross a folder");
        let mut over = ContentTypes::default();
        over.set(".HEIC", "image/heif");
        over.set("bin", "application/x-test");
        assert_eq!(over.of("a/b.heic"), "image/heif");
        assert_eq!(over.of("x.bin"), "application/x-test");
        assert_eq!(over.of("a.jpg"), "image/jpeg");
        assert_eq!(over.of("heic"), "application/octet-stream");
        let back = ContentTypes::from_lines(&over.to_lines());
        assert_eq!(back.of("a/b.heic"), "image/heif");
        assert_eq!(back.of("x.bin"), "application/x-test");
        assert_eq!(over.to_lines(), "bin=application/x-test\nheic=image/heif");
    }

    #[test]
    fn default_takes_media_only() {
        let s = sel(false, &[], &[]);
        assert_eq!(s.verdict("cat/a.jpg"), Verdict::Take);
        assert_eq!(s.verdict("cat/a.txt"), Verdict::NotMedia);
        assert_eq!(sel(true, &[], &[]).verdict("cat/a.txt"), Verdict::Take);
    }

    #[test]
    fn name_patterns_match_at_any_depth_and_path_patterns_anchor() {
        let s = sel(false, &[], &["*.png", "cache/**", "/thumbs/*.jpg"]);
        assert_eq!(s.verdict("a/b/c.png"), Verdict::Excluded);
        assert_eq!(s.verdict("cache/x/y.jpg"), Verdict::Excluded);
        assert_eq!(s.verdict("a/cache/y.jpg"), Verdict::Take);
        assert_eq!(s.verdict("thumbs/t.jpg"), Verdict::Excluded);
        assert_eq!(
            s.verdict("thumbs/deeper/t.jpg"),
            Verdict::Take,
            "* must not cross /"
        );
    }

    #[test]
    fn trailing_slash_means_everything_below() {
        let s = sel(false, &[], &["tmp/"]);
        assert_eq!(s.verdict("tmp/a/b.jpg"), Verdict::Excluded);
        assert_eq!(s.verdict("tmpx/a.jpg"), Verdict::Take);
    }

    #[test]
    fn includes_narrow_and_excludes_win() {
        let s = sel(false, &["catalog/**"], &["*_old.jpg"]);
        assert_eq!(s.verdict("catalog/a/x.jpg"), Verdict::Take);
        assert_eq!(s.verdict("wysiwyg/x.jpg"), Verdict::Excluded);
        assert_eq!(s.verdict("catalog/a/x_old.jpg"), Verdict::Excluded);
        // Includes do not widen the media filter.
        assert_eq!(s.verdict("catalog/readme.txt"), Verdict::NotMedia);
    }

    #[test]
    fn bad_patterns_name_the_flag() {
        let err = Selector::new(false, &[], &["a[".to_string()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--exclude 'a[' is not a valid glob"),
            "{err}"
        );
        let err = Selector::new(false, &[String::new()], &[]).unwrap_err();
        assert!(err.to_string().contains("--include"), "{err}");
    }
}
