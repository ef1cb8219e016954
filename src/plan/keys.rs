//! Naming objects: one key per distinct content, by relative path
//! (`preserve`) or by content hash (`content`), within S3's key length.

use serde::Serialize;

use crate::dedup::Grouping;
use crate::scan::SourceFile;
use crate::types::ObjectKey;

/// How objects are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLayout {
    /// `<prefix><relative path>`.
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

/// One object to exist at the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSlot {
    /// Index of the canonical file.
    pub canonical: u32,
    pub key: ObjectKey,
}

/// A file whose key S3 would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LongKey {
    pub path: String,
    pub key_bytes: usize,
}

/// In [`Keys::object_of`]: no object.
const NO_OBJECT: u32 = u32::MAX;

/// Keys for every distinct content.
#[derive(Debug, Default)]
pub struct Keys {
    pub objects: Vec<ObjectSlot>,
    /// Object index by file index (`NO_OBJECT` where the file is not a
    /// canonical one with a key): a slot per file, 4 MB for a million.
    pub object_of: Vec<u32>,
    pub too_long: Vec<LongKey>,
}

impl Keys {
    /// The object of canonical file `file`, if it has one.
    pub fn object(&self, file: u32) -> Option<u32> {
        self.object_of
            .get(file as usize)
            .copied()
            .filter(|&o| o != NO_OBJECT)
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

/// Names every distinct content's object: `prefix` (the destination's)
/// and the relative path, or its content hash under `--key-layout content`.
pub fn assign_keys(
    files: &[SourceFile],
    grouping: &Grouping,
    prefix: &str,
    layout: KeyLayout,
) -> Keys {
    let mut keys = Keys {
        object_of: vec![NO_OBJECT; files.len()],
        ..Keys::default()
    };
    for (i, f) in files.iter().enumerate() {
        if !grouping.is_canonical(i) {
            continue;
        }
        match ObjectKey::new(key_for(prefix, layout, f, grouping, i as u32)) {
            Ok(key) => {
                keys.object_of[i] = keys.objects.len() as u32;
                keys.objects.push(ObjectSlot {
                    canonical: i as u32,
                    key,
                });
            }
            Err(e) => keys.too_long.push(LongKey {
                path: f.rel.to_string(),
                key_bytes: e.len,
            }),
        }
    }
    keys
}
