//! Naming objects, within S3's key length. Under `preserve` (the default)
//! every file has an object at its own path, since applications build a
//! media URL from the base and the file's path: the first file of a group
//! of identical files is uploaded, the others are server-side copies of it
//! ([`Keys::source`]). Under `content` there is one object per distinct
//! content, named by its hash, and duplicates share it.

use serde::Serialize;

use crate::stages::dedup::Grouping;
use crate::stages::scan::SourceFile;
use crate::types::ObjectKey;

/// How objects are named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLayout {
    /// `<prefix><relative path>`.
    #[default]
    Preserve,
    /// `<prefix>ab/cd/<sha256>.<ext>`: identical content, identical key.
    Content,
}

impl KeyLayout {
    /// The name `--key-layout` takes (and the journal records).
    pub fn name(self) -> &'static str {
        match self {
            Self::Preserve => "preserve",
            Self::Content => "content",
        }
    }
}

/// A file whose key S3 would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LongKey {
    pub path: String,
    pub key_bytes: usize,
}

/// In [`Keys::object_of`]: no object.
const NO_OBJECT: u32 = u32::MAX;

/// The objects of a plan and their keys: one per readable file under
/// `preserve`, one per distinct content under `content`.
///
/// Keys are not stored: each is derived when needed from the object's
/// file (its path, or its digests under the content layout). A million
/// stored keys took 86 MB, as much as the walk's paths again.
#[derive(Debug, Default)]
pub struct Keys {
    /// The destination's prefix, where every key starts.
    prefix: String,
    layout: KeyLayout,
    /// The file each object is named after, by object index, in path
    /// order (under `content`, the canonical file of its content).
    file: Vec<u32>,
    /// Object index by file index (`NO_OBJECT` where the file names no
    /// object): a slot per file, 4 MB for a million.
    object_of: Vec<u32>,
    pub too_long: Vec<LongKey>,
}

impl Keys {
    /// How many objects.
    pub fn len(&self) -> usize {
        self.file.len()
    }

    /// The file object `o` is named after (and, but for a copy, read from).
    pub fn file(&self, o: u32) -> u32 {
        self.file[o as usize]
    }

    /// Every object's file, in object order.
    pub fn files(&self) -> &[u32] {
        &self.file
    }

    /// The object named after file `file`, if it has one.
    pub fn object(&self, file: u32) -> Option<u32> {
        self.object_of
            .get(file as usize)
            .copied()
            .filter(|&o| o != NO_OBJECT)
    }

    /// The object that holds file `file`'s bytes: its own under
    /// `preserve`, its content's under `content`.
    pub fn object_for(&self, file: u32, grouping: &Grouping) -> Option<u32> {
        match self.layout {
            KeyLayout::Preserve => self.object(file),
            KeyLayout::Content => self.object(grouping.canonical[file as usize]?),
        }
    }

    /// The object whose bytes object `o` copies, when its file duplicates
    /// another's (`preserve`): the object of the group's first file, which
    /// is uploaded. `None` for an object whose file is read and uploaded.
    pub fn source(&self, o: u32, grouping: &Grouping) -> Option<u32> {
        let f = self.file(o);
        match grouping.canonical[f as usize] {
            Some(c) if c != f => self.object(c),
            _ => None,
        }
    }

    /// Object `o`'s key (checked for S3's length when the keys were
    /// assigned).
    pub fn key(&self, o: u32, files: &[SourceFile], grouping: &Grouping) -> ObjectKey {
        let i = self.file(o);
        ObjectKey::rebuilt(key_for(
            &self.prefix,
            self.layout,
            &files[i as usize],
            grouping,
            i,
        ))
    }

    /// Finds the objects of listed keys (`find`), without a map of every
    /// key: under the preserve layout a key is the prefix and a path, so the
    /// path is looked up in the walk (sorted); under the content layout the
    /// SHA-256 in the key is looked up among the objects' digests.
    pub fn finder<'a>(&'a self, files: &'a [SourceFile], grouping: &'a Grouping) -> KeyFinder<'a> {
        let by_digest = match self.layout {
            KeyLayout::Preserve => Vec::new(),
            KeyLayout::Content => {
                let mut v: Vec<(u64, u32)> = (0..self.len() as u32)
                    .filter_map(|o| {
                        let d = grouping.digests.get(&self.file(o))?;
                        Some((short(&d.sha256.0), o))
                    })
                    .collect();
                v.sort_unstable();
                v
            }
        };
        KeyFinder {
            keys: self,
            files,
            grouping,
            by_digest,
        }
    }
}

/// The first 8 bytes of a SHA-256, as an index.
fn short(sha: &[u8; 32]) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&sha[..8]);
    u64::from_be_bytes(b)
}

/// Looks listed keys up among a plan's objects (see [`Keys::finder`]).
pub struct KeyFinder<'a> {
    keys: &'a Keys,
    files: &'a [SourceFile],
    grouping: &'a Grouping,
    /// Content layout: (first 8 bytes of the SHA-256, object), sorted.
    by_digest: Vec<(u64, u32)>,
}

impl KeyFinder<'_> {
    /// The object whose key is `key`, if the plan has one.
    pub fn find(&self, key: &str) -> Option<u32> {
        let rest = key.strip_prefix(self.keys.prefix.as_str())?;
        let candidates: Vec<u32> = match self.keys.layout {
            KeyLayout::Preserve => {
                let i = self.files.binary_search_by(|f| (*f.rel).cmp(rest)).ok()?;
                vec![self.keys.object(i as u32)?]
            }
            KeyLayout::Content => {
                // ab/cd/<64 hex digits>[.ext]
                let hex = rest.get(6..70)?;
                let mut sha = [0u8; 8];
                for (j, b) in sha.iter_mut().enumerate() {
                    *b = u8::from_str_radix(hex.get(2 * j..2 * j + 2)?, 16).ok()?;
                }
                let s = u64::from_be_bytes(sha);
                let from = self.by_digest.partition_point(|(d, _)| *d < s);
                self.by_digest[from..]
                    .iter()
                    .take_while(|(d, _)| *d == s)
                    .map(|(_, o)| *o)
                    .collect()
            }
        };
        candidates
            .into_iter()
            .find(|&o| self.keys.key(o, self.files, self.grouping).as_str() == key)
    }
}

/// The key for a canonical file.
fn key_for(
    prefix: &str,
    layout: KeyLayout,
    file: &SourceFile,
    grouping: &Grouping,
    index: u32,
) -> String {
    match layout {
        KeyLayout::Preserve => format!("{prefix}{}", file.rel),
        KeyLayout::Content => {
            let hex = grouping
                .digests
                .get(&index)
                .expect("content layout hashes every canonical file")
                .sha256
                .to_hex();
            let name = file.rel.rsplit('/').next().unwrap_or(&file.rel);
            let ext = name
                .rsplit_once('.')
                .map(|(stem, ext)| (stem, ext.to_lowercase()))
                .filter(|(stem, ext)| !stem.is_empty() && !ext.is_empty())
                .map(|(_, ext)| format!(".{ext}"))
                .unwrap_or_default();
            format!("{prefix}{}/{}/{hex}{ext}", &hex[..2], &hex[2..4])
        }
    }
}

/// Names the objects: under `preserve` every readable file's, `prefix`
/// (the destination's) and its relative path; under `content` every
/// distinct content's, by its hash. A key S3 would refuse (over 1,024
/// bytes) gives no object, but a failure.
pub fn assign_keys(
    files: &[SourceFile],
    grouping: &Grouping,
    prefix: &str,
    layout: KeyLayout,
) -> Keys {
    let mut keys = Keys {
        prefix: prefix.to_string(),
        layout,
        object_of: vec![NO_OBJECT; files.len()],
        ..Keys::default()
    };
    for (i, f) in files.iter().enumerate() {
        let named = match layout {
            KeyLayout::Preserve => grouping.canonical[i].is_some(),
            KeyLayout::Content => grouping.is_canonical(i),
        };
        if !named {
            continue;
        }
        match ObjectKey::new(key_for(prefix, layout, f, grouping, i as u32)) {
            Ok(_) => {
                keys.object_of[i] = keys.file.len() as u32;
                keys.file.push(i as u32);
            }
            Err(e) => keys.too_long.push(LongKey {
                path: f.rel.to_string(),
                key_bytes: e.len,
            }),
        }
    }
    keys
}
