//! The proof rules: whether an object at the destination holds a file's
//! bytes. The one home of those rules, used before uploading (`plan`: is it
//! already there?), after every write (`upload`: did it arrive?) and by
//! `mediashift verify` (is it still there?).
//!
//! Only proofs count. An object is [`Proof::Proven`] when it has the file's
//! size and at least one piece of evidence matches while none disagrees:
//! - every checksum the server returned that can be compared with what is
//!   known locally: CRC64NVME and full-object SHA-256 against the file's
//!   digests, and the whole-object checksum this run sent (a composite
//!   SHA-256 or a CRC32C) against the server's;
//! - the `sha256` user metadata, where a claim may count: not right after
//!   our own write (we just wrote it; it proves nothing about the bytes);
//! - after our own write only, when nothing else is there, the ETag against
//!   the MD5 of what we sent.
//!
//! Evidence that disagrees makes the object [`Proof::Different`]; an
//! object that offers none is [`Proof::Unproven`], never assumed equal.

use serde::Serialize;

use crate::digest::Digests;
use crate::store::{BodyChecksum, ChecksumType, Checksums, RemoteObject, Written};
use crate::types::Sha256Digest;

/// The user metadata key holding the file's hex SHA-256.
pub const SHA256_METADATA: &str = "sha256";

/// The user metadata key holding the file's path relative to SOURCE_DIR
/// (percent-encoded, as metadata must be ASCII).
pub const SOURCE_PATH_METADATA: &str = "source-path";

/// The user metadata written with every object.
pub fn object_metadata(digests: &Digests, rel: &str) -> [(&'static str, String); 2] {
    [
        (SHA256_METADATA, digests.sha256.to_hex()),
        (SOURCE_PATH_METADATA, crate::urls::encode_path(rel)),
    ]
}

/// How an object was proven to hold the file's bytes. The names are part
/// of the `--json` output and of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// The server's answer to our write carried the checksum we computed.
    ChecksumInResponse,
    /// HeadObject returned a checksum equal to the file's.
    ChecksumInHead,
    /// The ETag equals the MD5 (or MD5 of part MD5s) of what we sent.
    Etag,
    /// Only the `sha256` metadata matched (the object has no checksum to
    /// compare): a claim, weaker than the others.
    Sha256Metadata,
    /// The object was downloaded and its bytes hashed (`verify --deep`).
    Download,
    /// An earlier run proved it; the journal says so and the object still
    /// has the file's size (plan's shortcut; `verify` proves it again).
    Journal,
}

impl How {
    pub fn name(self) -> &'static str {
        match self {
            Self::ChecksumInResponse => "checksum_in_response",
            Self::ChecksumInHead => "checksum_in_head",
            Self::Etag => "etag",
            Self::Sha256Metadata => "sha256_metadata",
            Self::Download => "download",
            Self::Journal => "journal",
        }
    }
}

/// Whether an object holds a file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Proven {
        how: How,
    },
    /// Evidence disagrees with the file.
    Different {
        why: String,
    },
    /// Nothing to compare: the object may or may not hold the bytes.
    Unproven {
        why: String,
    },
    Missing,
}

impl Proof {
    pub fn is_proven(&self) -> bool {
        matches!(self, Self::Proven { .. })
    }
}

/// What is known locally about the bytes an object should hold.
#[derive(Clone, Copy)]
pub struct Local<'a> {
    pub size: u64,
    /// The file's digests, once hashed (or as the journal recorded them).
    pub digests: Option<Digests>,
    /// The whole-object checksum this run sent, as the server reports it
    /// (multipart: combined, or composite `…-N` for SHA-256).
    sent: Option<&'a BodyChecksum>,
    /// The ETag our write should produce, computed only if needed.
    etag: Option<&'a (dyn Fn() -> String + Sync)>,
    /// Whether the `sha256` metadata may count.
    claims: bool,
}

impl<'a> Local<'a> {
    /// A file as planned or recorded: its size and digests.
    pub fn file(size: u64, digests: Option<Digests>) -> Self {
        Self {
            size,
            digests,
            sent: None,
            etag: None,
            claims: true,
        }
    }

    /// What our own write just sent.
    pub fn written(
        size: u64,
        digests: Digests,
        sent: &'a BodyChecksum,
        etag: &'a (dyn Fn() -> String + Sync),
    ) -> Self {
        Self {
            size,
            digests: Some(digests),
            sent: Some(sent),
            etag: Some(etag),
            claims: false,
        }
    }
}

/// Judges what HeadObject returned (`None`: no such object).
pub fn prove(object: Option<&RemoteObject>, local: &Local<'_>) -> Proof {
    let Some(o) = object else {
        return Proof::Missing;
    };
    judge(
        Evidence {
            size: Some(o.size),
            checksums: &o.checksums,
            etag: o.etag.as_deref(),
            sha256_metadata: o.metadata.get(SHA256_METADATA).map(String::as_str),
            server: How::ChecksumInHead,
        },
        local,
    )
}

/// What a listing alone tells of an object (`size`: its size in the
/// listing, `None` when not listed): that it is missing or holds another
/// number of bytes; `None` when only its checksums can tell.
pub fn from_listing(size: Option<u64>, local: &Local<'_>) -> Option<Proof> {
    match size {
        None => Some(Proof::Missing),
        Some(s) if s != local.size => Some(different_size(s, local)),
        Some(_) => None,
    }
}

fn different_size(size: u64, local: &Local<'_>) -> Proof {
    Proof::Different {
        why: format!("the object holds {size} bytes, the file {}", local.size),
    }
}

/// Judges the server's answer to our write. Without a checksum in it the
/// answer proves nothing ([`Proof::Unproven`]): HeadObject must tell.
pub fn prove_answer(written: &Written, local: &Local<'_>) -> Proof {
    judge(
        Evidence {
            size: None,
            checksums: &written.checksums,
            etag: None,
            sha256_metadata: None,
            server: How::ChecksumInResponse,
        },
        local,
    )
}

/// Judges a downloaded object: its length and the SHA-256 of its bytes.
pub fn prove_download(len: u64, sha256: Sha256Digest, local: &Local<'_>) -> Proof {
    if len != local.size {
        return Proof::Different {
            why: format!("{len} bytes downloaded, the file has {}", local.size),
        };
    }
    match local.digests {
        Some(d) if d.sha256 == sha256 => Proof::Proven { how: How::Download },
        Some(d) => Proof::Different {
            why: format!(
                "its bytes hash to {sha256}, the file's SHA-256 is {}",
                d.sha256
            ),
        },
        None => Proof::Unproven {
            why: "the file's SHA-256 is not known to compare the download with".into(),
        },
    }
}

/// Whether mediashift wrote this object from the file at `rel` (its
/// `source-path` metadata): an unproven object of ours is an earlier upload
/// of a file that has changed since.
pub fn from_same_path(object: &RemoteObject, rel: &str) -> bool {
    object
        .metadata
        .get(SOURCE_PATH_METADATA)
        .is_some_and(|p| *p == crate::urls::encode_path(rel))
}

/// What the server said about an object.
struct Evidence<'a> {
    size: Option<u64>,
    checksums: &'a Checksums,
    etag: Option<&'a str>,
    sha256_metadata: Option<&'a str>,
    /// How a matching server checksum counts (from the answer or a HEAD).
    server: How,
}

fn judge(e: Evidence<'_>, local: &Local<'_>) -> Proof {
    if let Some(size) = e.size
        && size != local.size
    {
        return different_size(size, local);
    }
    let mut proven = None;
    for (name, theirs, ours) in comparable(e.checksums, local) {
        if theirs != ours {
            return Proof::Different {
                why: format!("the object's {name} is {theirs}, the file's {ours}"),
            };
        }
        proven = Some(e.server);
    }
    if local.claims
        && let (Some(meta), Some(d)) = (e.sha256_metadata, local.digests)
    {
        let ours = d.sha256.to_hex();
        if !meta.eq_ignore_ascii_case(&ours) {
            return Proof::Different {
                why: format!("its sha256 metadata is {meta}, the file's SHA-256 {ours}"),
            };
        }
        proven.get_or_insert(How::Sha256Metadata);
    }
    if let Some(how) = proven {
        return Proof::Proven { how };
    }
    if let Some(expected) = local.etag {
        let expected = expected();
        return match e.etag {
            Some(etag) if etag.trim_matches('"') == expected => Proof::Proven { how: How::Etag },
            Some(etag) => Proof::Different {
                why: format!(
                    "the server returned no checksum and its ETag {etag} is not the expected {expected}"
                ),
            },
            None => Proof::Unproven {
                why: "the server returned neither a checksum nor an ETag".into(),
            },
        };
    }
    Proof::Unproven {
        why: match e.checksums.other {
            Some(alg) => format!(
                "same size, but its only checksum ({alg}) is not one mediashift computes, and it has no sha256 metadata to compare"
            ),
            None => "same size, but the object has neither a full-object checksum nor sha256 metadata to prove its content".into(),
        },
    }
}

/// The server's checksums that can be compared with what is known
/// locally: (name, server's value, our value).
fn comparable<'e>(c: &'e Checksums, local: &Local<'_>) -> Vec<(&'static str, &'e str, String)> {
    use crate::checksum::Algorithm;
    let sent = |alg: Algorithm| {
        local
            .sent
            .filter(|s| s.algorithm == alg)
            .map(|s| s.value.clone())
    };
    // Base64 has no '-': a value with one is composite ("…-N") whatever
    // the server says of its type.
    let composite = |v: &str| c.kind == Some(ChecksumType::Composite) || v.contains('-');
    let mut out = Vec::new();
    if let Some(v) = c.crc64nvme.as_deref()
        && let Some(ours) = local
            .digests
            .map(|d| d.crc64.to_base64())
            .or_else(|| sent(Algorithm::Crc64nvme))
    {
        out.push(("CRC64NVME", v, ours));
    }
    if let Some(v) = c.sha256.as_deref() {
        let ours = if composite(v) {
            sent(Algorithm::Sha256)
        } else {
            local.digests.map(|d| d.sha256.to_base64())
        };
        if let Some(ours) = ours {
            out.push(("SHA-256 checksum", v, ours));
        }
    }
    if let Some(v) = c.crc32c.as_deref()
        && let Some(ours) = sent(Algorithm::Crc32c)
    {
        out.push(("CRC32C", v, ours));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::Algorithm;

    fn local() -> Digests {
        Digests::of_bytes(b"hello")
    }

    fn file() -> Local<'static> {
        Local::file(5, Some(local()))
    }

    fn remote() -> RemoteObject {
        RemoteObject {
            size: 5,
            ..RemoteObject::default()
        }
    }

    fn different(p: &Proof) -> bool {
        matches!(p, Proof::Different { .. })
    }

    #[test]
    fn size_first() {
        let mut r = remote();
        r.size = 4;
        r.checksums.crc64nvme = Some(local().crc64.to_base64());
        assert!(different(&prove(Some(&r), &file())));
        assert_eq!(prove(None, &file()), Proof::Missing);
    }

    #[test]
    fn sha256_metadata_proves_only_as_a_claim_and_must_agree_with_checksums() {
        let mut r = remote();
        r.metadata.insert("sha256".into(), local().sha256.to_hex());
        assert_eq!(
            prove(Some(&r), &file()),
            Proof::Proven {
                how: How::Sha256Metadata
            }
        );
        // Copied metadata over other bytes: the server's checksum tells.
        r.checksums.crc64nvme = Some(Digests::of_bytes(b"world").crc64.to_base64());
        assert!(different(&prove(Some(&r), &file())));
        // Right bytes, wrong metadata: evidence disagrees.
        let mut r = remote();
        r.metadata.insert("sha256".into(), "00".repeat(32));
        r.checksums.crc64nvme = Some(local().crc64.to_base64());
        assert!(different(&prove(Some(&r), &file())));
    }

    #[test]
    fn full_object_checksums_prove_content() {
        let mut r = remote();
        r.checksums.crc64nvme = Some(local().crc64.to_base64());
        assert_eq!(
            prove(Some(&r), &file()),
            Proof::Proven {
                how: How::ChecksumInHead
            }
        );
        let mut r = remote();
        r.checksums.sha256 = Some(local().sha256.to_base64());
        r.checksums.kind = Some(ChecksumType::FullObject);
        assert!(prove(Some(&r), &file()).is_proven());
        r.checksums.sha256 = Some(Digests::of_bytes(b"world").sha256.to_base64());
        assert!(different(&prove(Some(&r), &file())));
    }

    #[test]
    fn composite_checksums_other_algorithms_and_bare_objects_prove_nothing() {
        let mut r = remote();
        r.checksums.sha256 = Some(format!("{}-2", local().sha256.to_base64()));
        r.checksums.kind = Some(ChecksumType::Composite);
        assert!(matches!(prove(Some(&r), &file()), Proof::Unproven { .. }));
        assert!(matches!(
            prove(Some(&remote()), &file()),
            Proof::Unproven { .. }
        ));
        // Another client's CRC32 cannot be compared without reading the file.
        let mut r = remote();
        r.checksums.other = Some("CRC32");
        match prove(Some(&r), &file()) {
            Proof::Unproven { why } => assert!(why.contains("CRC32"), "{why}"),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn after_our_write_the_sent_checksum_proves_and_metadata_does_not() {
        let sent = BodyChecksum {
            algorithm: Algorithm::Crc32c,
            value: "AAAAAA==".into(),
        };
        let etag = || crate::checksum::md5_hex(b"hello");
        let ours = Local::written(5, local(), &sent, &etag);
        let answer = Written {
            etag: None,
            checksums: Checksums::only(Algorithm::Crc32c, "AAAAAA==".into(), None),
        };
        assert_eq!(
            prove_answer(&answer, &ours),
            Proof::Proven {
                how: How::ChecksumInResponse
            }
        );
        let wrong = Written {
            etag: None,
            checksums: Checksums::only(Algorithm::Crc32c, "BBBBBB==".into(), None),
        };
        assert!(different(&prove_answer(&wrong, &ours)));
        // No checksum in the answer: HeadObject must tell.
        assert!(matches!(
            prove_answer(&Written::default(), &ours),
            Proof::Unproven { .. }
        ));
        // A HEAD with only our own metadata and no checksum: the ETag decides.
        let mut r = remote();
        r.metadata.insert("sha256".into(), local().sha256.to_hex());
        r.etag = Some(format!("\"{}\"", etag()));
        assert_eq!(prove(Some(&r), &ours), Proof::Proven { how: How::Etag });
        r.etag = Some("\"0000\"".into());
        assert!(different(&prove(Some(&r), &ours)));
        r.etag = None;
        assert!(matches!(prove(Some(&r), &ours), Proof::Unproven { .. }));
    }

    #[test]
    fn a_composite_sha256_we_sent_is_compared_with_ours() {
        let sent = BodyChecksum {
            algorithm: Algorithm::Sha256,
            value: "abc=-3".into(),
        };
        let etag = String::new;
        let ours = Local::written(5, local(), &sent, &etag);
        let mut r = remote();
        r.checksums = Checksums::only(
            Algorithm::Sha256,
            "abc=-3".into(),
            Some(ChecksumType::Composite),
        );
        assert!(prove(Some(&r), &ours).is_proven());
        r.checksums.sha256 = Some("abd=-3".into());
        assert!(different(&prove(Some(&r), &ours)));
    }

    #[test]
    fn a_listing_tells_only_what_is_gone_or_of_another_size() {
        assert_eq!(from_listing(None, &file()), Some(Proof::Missing));
        assert!(matches!(
            from_listing(Some(4), &file()),
            Some(Proof::Different { .. })
        ));
        assert_eq!(from_listing(Some(5), &file()), None);
    }

    #[test]
    fn a_download_proves_by_its_bytes() {
        let l = file();
        assert_eq!(
            prove_download(5, local().sha256, &l),
            Proof::Proven { how: How::Download }
        );
        assert!(different(&prove_download(
            5,
            Digests::of_bytes(b"world").sha256,
            &l
        )));
        assert!(different(&prove_download(4, local().sha256, &l)));
    }

    #[test]
    fn our_own_object_is_known_by_its_source_path() {
        let mut r = remote();
        r.metadata
            .insert("source-path".into(), "dir/a%20b.jpg".into());
        assert!(from_same_path(&r, "dir/a b.jpg"));
        assert!(!from_same_path(&r, "other.jpg"));
    }
}
