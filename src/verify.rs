//! Deciding whether an object at the destination holds a file's bytes.
//!
//! Used before uploading (is it already there?) and after (did it arrive?).
//! Only proofs count: the same size plus a matching full-object checksum or
//! a matching `sha256` metadata value. An object that offers neither is not
//! assumed equal; it is reported, and replaced only with `--overwrite`.

use crate::dedup::Digests;
use crate::plan::Remote;
use crate::store::RemoteObject;

/// The user metadata key holding the file's hex SHA-256.
pub const SHA256_METADATA: &str = "sha256";

/// The user metadata key holding the file's path relative to SOURCE_DIR
/// (percent-encoded, as metadata must be ASCII).
pub const SOURCE_PATH_METADATA: &str = "source-path";

/// Compares what the server holds under a key with a local file. An object
/// that differs but that mediashift wrote from this same path is `Stale`:
/// the file changed since its upload, and the new content replaces it.
pub fn compare(remote: &RemoteObject, rel: &str, size: u64, local: &Digests) -> Remote {
    let verdict = compare_content(remote, size, local);
    let ours = remote
        .metadata
        .get(SOURCE_PATH_METADATA)
        .is_some_and(|p| *p == crate::urls::encode_path(rel));
    match verdict {
        Remote::Different { .. } if ours => Remote::Stale,
        v => v,
    }
}

fn compare_content(remote: &RemoteObject, size: u64, local: &Digests) -> Remote {
    if remote.size != size {
        return Remote::Different {
            detail: format!("the object holds {} bytes, the file {size}", remote.size),
        };
    }
    if let Some(meta) = remote.metadata.get(SHA256_METADATA) {
        return if meta.eq_ignore_ascii_case(&local.sha256.to_hex()) {
            Remote::Same
        } else {
            Remote::Different {
                detail: "the object's sha256 metadata differs from the file's SHA-256".into(),
            }
        };
    }
    let composite = remote.checksum_type.as_deref() == Some("COMPOSITE");
    if let Some(c) = remote.checksum_crc64nvme.as_deref() {
        return same_if(c == local.crc64.to_base64(), "CRC64NVME");
    }
    if let Some(c) = remote.checksum_sha256.as_deref().filter(|_| !composite) {
        return same_if(c == local.sha256.to_base64(), "SHA-256 checksum");
    }
    Remote::Different {
        detail: "same size, but the object has neither a full-object checksum nor sha256 metadata to prove its content"
            .into(),
    }
}

fn same_if(equal: bool, what: &str) -> Remote {
    if equal {
        Remote::Same
    } else {
        Remote::Different {
            detail: format!("the object's {what} differs from the file's"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Digests {
        Digests::of_bytes(b"hello")
    }

    fn remote() -> RemoteObject {
        RemoteObject {
            size: 5,
            ..RemoteObject::default()
        }
    }

    #[test]
    fn size_first() {
        let r = RemoteObject {
            size: 4,
            ..remote()
        };
        assert!(matches!(
            compare(&r, "a.jpg", 5, &local()),
            Remote::Different { .. }
        ));
    }

    #[test]
    fn sha256_metadata_decides_when_present() {
        let mut r = remote();
        r.metadata.insert("sha256".into(), local().sha256.to_hex());
        assert_eq!(compare(&r, "a.jpg", 5, &local()), Remote::Same);
        r.metadata.insert("sha256".into(), "00".repeat(32));
        r.checksum_crc64nvme = Some(local().crc64.to_base64());
        assert!(matches!(
            compare(&r, "a.jpg", 5, &local()),
            Remote::Different { .. }
        ));
    }

    #[test]
    fn full_object_checksums_prove_content() {
        let mut r = remote();
        r.checksum_crc64nvme = Some(local().crc64.to_base64());
        assert_eq!(compare(&r, "a.jpg", 5, &local()), Remote::Same);
        let mut r = remote();
        r.checksum_sha256 = Some(local().sha256.to_base64());
        r.checksum_type = Some("FULL_OBJECT".into());
        assert_eq!(compare(&r, "a.jpg", 5, &local()), Remote::Same);
        r.checksum_sha256 = Some(Digests::of_bytes(b"world").sha256.to_base64());
        assert!(matches!(
            compare(&r, "a.jpg", 5, &local()),
            Remote::Different { .. }
        ));
    }

    #[test]
    fn our_own_object_of_a_changed_file_is_stale() {
        let mut r = RemoteObject {
            size: 9,
            ..remote()
        };
        r.metadata
            .insert("source-path".into(), "dir/a%20b.jpg".into());
        assert_eq!(compare(&r, "dir/a b.jpg", 5, &local()), Remote::Stale);
        assert!(matches!(
            compare(&r, "other.jpg", 5, &local()),
            Remote::Different { .. }
        ));
    }

    #[test]
    fn composite_checksums_and_bare_objects_prove_nothing() {
        let mut r = remote();
        r.checksum_sha256 = Some(format!("{}-2", local().sha256.to_base64()));
        r.checksum_type = Some("COMPOSITE".into());
        assert!(matches!(
            compare(&r, "a.jpg", 5, &local()),
            Remote::Different { .. }
        ));
        assert!(matches!(
            compare(&remote(), "a.jpg", 5, &local()),
            Remote::Different { .. }
        ));
    }
}
