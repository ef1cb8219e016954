//! The proof rules: whether an object at the destination holds a file's
//! bytes. The one home of those rules, used before uploading (`plan`: is it
//! already there?), after every write (`upload`: did it arrive?) and by
//! `mediashift verify` (is it still there?).
//!
//! Only proofs count, and evidence outranks claims. In order:
//! 1. The object must have the file's size.
//! 2. Where the server returns a checksum that can be compared with what is
//!    known of the file, it decides, and every such checksum must match:
//!    CRC64NVME and full-object SHA-256 against the file's digests; CRC32C
//!    and composite SHA-256 (`…-N`) against the file's value in that
//!    algorithm, when it is known (sent by this run, recorded by the
//!    journal, or computed from the file).
//! 3. A server checksum that cannot be compared (another client's CRC32,
//!    say) proves nothing, and no claim outranks it: the object is
//!    unproven.
//! 4. Only an object with no server checksum at all is judged by what is
//!    left: after our own write, its ETag against the MD5 of what we sent;
//!    otherwise its `sha256` user metadata, a claim anyone can copy, which
//!    the proof says it is ([`How::Sha256Metadata`]).
//!
//! Evidence that disagrees makes the object [`Proof::Different`]; an
//! object that offers none is [`Proof::Unproven`], never assumed equal.

use serde::Serialize;

use crate::checksum::Algorithm;
use crate::digest::Digests;
use crate::limits::PartLayout;
use crate::store::{
    BodyChecksum, ChecksumType, Checksums, ObjectStore, RemoteObject, StoreError, Visit, Written,
};
use crate::types::Sha256Digest;

/// The user metadata key holding the file's hex SHA-256.
pub const SHA256_METADATA: &str = "sha256";

/// The user metadata key holding the file's path relative to SOURCE_DIR
/// (percent-encoded, as metadata must be ASCII).
pub const SOURCE_PATH_METADATA: &str = "source-path";

/// The user metadata written with an object whose SHA-256 is known
/// before the upload begins.
pub fn object_metadata(digests: &Digests, rel: &str) -> [(&'static str, String); 2] {
    [
        (SHA256_METADATA, digests.sha256.to_hex()),
        source_metadata(rel),
    ]
}

/// The user metadata written with every object: its source path. (A large
/// file hashed while it is sent has only this.)
pub fn source_metadata(rel: &str) -> (&'static str, String) {
    (SOURCE_PATH_METADATA, crate::urls::encode_path(rel))
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
    /// The object has no server checksum; its `sha256` metadata matched:
    /// a claim, weaker than the others.
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
    /// The file's whole-object checksum in the object's algorithm, as a
    /// server reports it (multipart: combined, or composite `…-N` for
    /// SHA-256), when known: sent by this run, recorded by the journal, or
    /// computed from the file.
    whole: Option<&'a BodyChecksum>,
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
            whole: None,
            etag: None,
            claims: true,
        }
    }

    /// The same file, with its whole-object checksum in one algorithm.
    pub fn with_checksum(self, whole: Option<&'a BodyChecksum>) -> Self {
        Self { whole, ..self }
    }

    /// A file whose bytes a server-side copy just put under its own key:
    /// only the server's checksums count (its metadata is ours, written
    /// with the copy: a claim, not evidence).
    pub fn copied(size: u64, digests: Digests) -> Self {
        Self {
            size,
            digests: Some(digests),
            whole: None,
            etag: None,
            claims: false,
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
            whole: Some(sent),
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

/// Judges a server-side copy (`copy`: HeadObject of it) of the object
/// `source` (HeadObject of it), which holds the file's bytes by an earlier
/// proof. The copy's own checksums decide where the file's digests can be
/// compared with them; where they cannot (a composite SHA-256, a CRC32C),
/// the copy is proven only when the server gives it the very checksums the
/// source has, of the same size: the server's word that the bytes are the
/// source's.
pub fn prove_copy(
    copy: Option<&RemoteObject>,
    source: Option<&RemoteObject>,
    local: &Local<'_>,
) -> Proof {
    let proof = prove(copy, local);
    let (Proof::Unproven { .. }, Some(c), Some(s)) = (&proof, copy, source) else {
        return proof;
    };
    let theirs = [
        (&c.checksums.crc64nvme, &s.checksums.crc64nvme),
        (&c.checksums.sha256, &s.checksums.sha256),
        (&c.checksums.crc32c, &s.checksums.crc32c),
    ];
    let shared = theirs
        .iter()
        .filter(|(a, b)| a.is_some() && b.is_some())
        .count();
    if s.size == c.size && shared > 0 && theirs.iter().all(|(a, b)| a == b) {
        return Proof::Proven {
            how: How::ChecksumInHead,
        };
    }
    proof
}

/// The whole checksum a copy was proven by, where the file's digests
/// cannot prove it (composite SHA-256, CRC32C): for the journal, so that
/// `verify` proves the copy as it proves an upload.
pub fn whole_checksum(object: &RemoteObject) -> Option<BodyChecksum> {
    let c = &object.checksums;
    if c.crc64nvme.is_some() {
        return None;
    }
    match (&c.sha256, &c.crc32c) {
        (Some(v), _) if is_composite(c, v) => Some(BodyChecksum {
            algorithm: Algorithm::Sha256,
            value: v.clone(),
        }),
        (Some(_), _) => None,
        (None, Some(v)) => Some(BodyChecksum {
            algorithm: Algorithm::Crc32c,
            value: v.clone(),
        }),
        (None, None) => None,
    }
}

/// What a visitor should get for a file.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub size: u64,
    pub sha256: Sha256Digest,
    pub content_type: &'a str,
    /// As set at migrate (`--cache-control`); not judged when `None`.
    pub cache_control: Option<&'a str>,
}

/// What is wrong with what a visitor got, if anything (each reason in
/// words).
pub fn judge_visit(visit: &Visit, expected: &Expected<'_>, deep: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    match visit.status {
        200 => {}
        401 | 403 => {
            wrong.push(format!(
                "HTTP {}: the bucket or CDN does not let anonymous visitors read it (make the objects public, or the CDN's origin access right)",
                visit.status
            ));
            return wrong;
        }
        404 => {
            wrong.push(
                "HTTP 404: nothing at this URL (a wrong --via-url or prefix, or a name the URL cannot carry: S3 reads a raw + as a space)"
                    .into(),
            );
            return wrong;
        }
        s => {
            wrong.push(format!("HTTP {s}"));
            return wrong;
        }
    }
    if let Some(len) = visit.length
        && len != expected.size
    {
        wrong.push(format!("{len} bytes, the file has {}", expected.size));
    }
    let media_type = |v: &str| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    };
    match &visit.content_type {
        Some(t) if media_type(t) == media_type(expected.content_type) => {}
        Some(t) => wrong.push(format!(
            "served as {t}, not {} (what migrate gave the object)",
            expected.content_type
        )),
        None => wrong.push(format!(
            "no Content-Type (migrate gave the object {})",
            expected.content_type
        )),
    }
    if let Some(want) = expected.cache_control {
        match &visit.cache_control {
            Some(got) if got.trim() == want.trim() => {}
            Some(got) => wrong.push(format!(
                "Cache-Control {got}, not {want} (as set at migrate)"
            )),
            None => wrong.push(format!("no Cache-Control (set at migrate: {want})")),
        }
    }
    if deep
        && let Some(sha) = visit.sha256
        && sha != expected.sha256
    {
        wrong.push(format!(
            "its bytes hash to {sha}, the file's SHA-256 is {}",
            expected.sha256
        ));
    }
    wrong
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

/// The file's value that would decide for `object`, when its only
/// checksum is one the file's digests cannot be compared with: its CRC32C,
/// or its composite SHA-256 if it has the parts `part_size` gives a file of
/// its size. `None` when the digests suffice or nothing would.
pub fn wanted(object: &RemoteObject, part_size: u64) -> Option<(Algorithm, Option<PartLayout>)> {
    let c = &object.checksums;
    if c.crc64nvme.is_some() || c.sha256.as_deref().is_some_and(|v| !is_composite(c, v)) {
        return None;
    }
    if let Some(v) = c.sha256.as_deref() {
        let parts: u64 = v.rsplit_once('-')?.1.parse().ok()?;
        let layout = PartLayout::new(object.size, part_size).ok()?;
        return (layout.parts == parts).then_some((Algorithm::Sha256, Some(layout)));
    }
    match c.crc32c.as_deref() {
        Some(v) if !is_composite(c, v) => Some((Algorithm::Crc32c, None)),
        _ => None,
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
    // The server's checksums decide where they can be compared.
    let comparable = comparable(e.checksums, local);
    if !comparable.is_empty() {
        if let Some((name, theirs, ours)) = comparable.iter().find(|(_, t, o)| t != o) {
            return Proof::Different {
                why: format!("the object's {name} is {theirs}, the file's {ours}"),
            };
        }
        return Proof::Proven { how: e.server };
    }
    let uncompared = server_checksums(e.checksums);
    if !uncompared.is_empty() && local.etag.is_none() {
        return Proof::Unproven {
            why: format!(
                "same size, but its {} checksum cannot be compared with the file's (no sha256 metadata outranks a server checksum; verify --deep compares the bytes)",
                uncompared.join(" and ")
            ),
        };
    }
    // No server checksum to go by: after our own write the ETag tells.
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
    // Otherwise only a claim is left.
    if let (Some(meta), Some(d)) = (e.sha256_metadata.filter(|_| local.claims), local.digests) {
        let ours = d.sha256.to_hex();
        return if meta.eq_ignore_ascii_case(&ours) {
            Proof::Proven {
                how: How::Sha256Metadata,
            }
        } else {
            Proof::Different {
                why: format!("its sha256 metadata is {meta}, the file's SHA-256 {ours}"),
            }
        };
    }
    Proof::Unproven {
        why: "same size, but the object has neither a server checksum nor sha256 metadata to prove its content".into(),
    }
}

/// Whether a checksum value is composite (`…-N`): base64 has no '-', so a
/// value with one is, whatever the server says of its type.
fn is_composite(c: &Checksums, v: &str) -> bool {
    c.kind == Some(ChecksumType::Composite) || v.contains('-')
}

/// The names of every checksum the server returned.
fn server_checksums(c: &Checksums) -> Vec<String> {
    let mut out: Vec<String> = [
        ("CRC64NVME", &c.crc64nvme),
        ("SHA-256", &c.sha256),
        ("CRC32C", &c.crc32c),
    ]
    .into_iter()
    .filter_map(|(name, v)| {
        let v = v.as_deref()?;
        Some(if is_composite(c, v) {
            format!("composite {name}")
        } else {
            name.to_string()
        })
    })
    .collect();
    out.extend(c.other.map(str::to_string));
    out
}

/// The server's checksums that can be compared with what is known
/// locally: (name, server's value, our value).
fn comparable<'e>(c: &'e Checksums, local: &Local<'_>) -> Vec<(&'static str, &'e str, String)> {
    // The file's whole value in `alg`, composite or not as the server's is.
    let whole = |alg: Algorithm, composite: bool| {
        local
            .whole
            .filter(|w| w.algorithm == alg && w.value.contains('-') == composite)
            .map(|w| w.value.clone())
    };
    let mut out = Vec::new();
    if let Some(v) = c.crc64nvme.as_deref()
        && let Some(ours) = local
            .digests
            .map(|d| d.crc64.to_base64())
            .filter(|_| !is_composite(c, v))
            .or_else(|| whole(Algorithm::Crc64nvme, is_composite(c, v)))
    {
        out.push(("CRC64NVME", v, ours));
    }
    if let Some(v) = c.sha256.as_deref() {
        let composite = is_composite(c, v);
        let ours = if composite {
            whole(Algorithm::Sha256, true)
        } else {
            local
                .digests
                .map(|d| d.sha256.to_base64())
                .or_else(|| whole(Algorithm::Sha256, false))
        };
        if let Some(ours) = ours {
            out.push(("SHA-256 checksum", v, ours));
        }
    }
    if let Some(v) = c.crc32c.as_deref()
        && let Some(ours) = whole(Algorithm::Crc32c, is_composite(c, v))
    {
        out.push(("CRC32C", v, ours));
    }
    out
}

/// The proof now that the object `key` holds a file of `size` bytes with
/// `digests`: HeadObject, then with `deep` its bytes. `checksum` is the
/// whole checksum that proved it at upload, as the journal records it.
pub async fn prove_now<S: ObjectStore>(
    store: &S,
    key: &str,
    size: u64,
    digests: Option<Digests>,
    checksum: Option<&str>,
    deep: bool,
) -> std::result::Result<Proof, StoreError> {
    // The whole checksum that proved it at upload decides where the
    // digests cannot (CRC32C, composite SHA-256).
    let recorded = checksum.and_then(BodyChecksum::from_record);
    let local = Local::file(size, digests).with_checksum(recorded.as_ref());
    let head = store.head(key).await?;
    let proof = prove(head.as_ref(), &local);
    if !deep || matches!(proof, Proof::Different { .. } | Proof::Missing) {
        return Ok(proof);
    }
    Ok(match store.download(key, |_| Ok(())).await? {
        None => Proof::Missing,
        Some((len, sha)) => prove_download(len, sha, &local),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn sha256_metadata_proves_only_where_the_server_gives_no_checksum() {
        let mut r = remote();
        r.metadata.insert("sha256".into(), local().sha256.to_hex());
        assert_eq!(
            prove(Some(&r), &file()),
            Proof::Proven {
                how: How::Sha256Metadata
            }
        );
        r.metadata.insert("sha256".into(), "00".repeat(32));
        assert!(different(&prove(Some(&r), &file())));
    }

    #[test]
    fn the_server_checksum_outranks_the_metadata() {
        // Other bytes under copied metadata: the server's checksum tells.
        let mut r = remote();
        r.metadata.insert("sha256".into(), local().sha256.to_hex());
        r.checksums.crc64nvme = Some(Digests::of_bytes(b"world").crc64.to_base64());
        assert!(different(&prove(Some(&r), &file())));
        // The file's bytes under wrong metadata: the checksum proves them.
        let mut r = remote();
        r.metadata.insert("sha256".into(), "00".repeat(32));
        r.checksums.crc64nvme = Some(local().crc64.to_base64());
        assert_eq!(
            prove(Some(&r), &file()),
            Proof::Proven {
                how: How::ChecksumInHead
            }
        );
        // Copied metadata over a checksum that cannot be compared (another
        // client's CRC32): the claim does not count.
        let mut r = remote();
        r.metadata.insert("sha256".into(), local().sha256.to_hex());
        r.checksums.other = Some("CRC32");
        match prove(Some(&r), &file()) {
            Proof::Unproven { why } => assert!(why.contains("CRC32"), "{why}"),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn crc32c_and_composite_checksums_prove_when_the_file_s_value_is_known() {
        let crc = BodyChecksum {
            algorithm: Algorithm::Crc32c,
            value: "AAAAAA==".into(),
        };
        let mut r = remote();
        r.checksums.crc32c = Some("AAAAAA==".into());
        assert!(matches!(prove(Some(&r), &file()), Proof::Unproven { .. }));
        assert!(prove(Some(&r), &file().with_checksum(Some(&crc))).is_proven());
        r.checksums.crc32c = Some("BBBBBB==".into());
        assert!(different(&prove(
            Some(&r),
            &file().with_checksum(Some(&crc))
        )));

        let composite = BodyChecksum {
            algorithm: Algorithm::Sha256,
            value: "abc=-3".into(),
        };
        let mut r = remote();
        r.checksums = Checksums::only(
            Algorithm::Sha256,
            "abc=-3".into(),
            Some(ChecksumType::Composite),
        );
        let known = file().with_checksum(Some(&composite));
        assert!(prove(Some(&r), &known).is_proven());
        r.checksums.sha256 = Some("abd=-3".into());
        assert!(different(&prove(Some(&r), &known)));
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
        // Our own composite value, known, decides.
        let mut r = remote();
        r.checksums.sha256 = Some("abc=-2".into());
        match prove(Some(&r), &file()) {
            Proof::Unproven { why } => assert!(why.contains("composite SHA-256"), "{why}"),
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
    fn the_value_that_would_decide_is_asked_for_only_where_digests_cannot() {
        let mut r = remote();
        r.size = 12 << 20;
        r.checksums.crc64nvme = Some("x".into());
        assert_eq!(wanted(&r, 5 << 20), None, "the CRC64NVME digest decides");
        r.checksums = Checksums::only(Algorithm::Crc32c, "AAAAAA==".into(), None);
        assert_eq!(wanted(&r, 5 << 20), Some((Algorithm::Crc32c, None)));
        r.checksums = Checksums::only(Algorithm::Sha256, "abc=-3".into(), None);
        let layout = PartLayout::new(12 << 20, 5 << 20).unwrap();
        assert_eq!(wanted(&r, 5 << 20), Some((Algorithm::Sha256, Some(layout))));
        // Uploaded with another part size: the parts cannot be redone.
        assert_eq!(wanted(&r, 8 << 20), None);
        r.checksums = Checksums {
            other: Some("CRC32"),
            ..Checksums::default()
        };
        assert_eq!(wanted(&r, 5 << 20), None);
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

    #[test]
    fn a_copy_counts_only_server_checksums() {
        let copied = Local::copied(5, local());
        // Our own metadata on the copy is no proof.
        let mut c = remote();
        c.metadata.insert("sha256".into(), local().sha256.to_hex());
        assert!(matches!(
            prove_copy(Some(&c), Some(&c.clone()), &copied),
            Proof::Unproven { .. }
        ));
        // Its CRC64NVME against the digests decides, the source unasked.
        c.checksums.crc64nvme = Some(local().crc64.to_base64());
        assert_eq!(
            prove_copy(Some(&c), None, &copied),
            Proof::Proven {
                how: How::ChecksumInHead
            }
        );
        c.checksums.crc64nvme = Some(Digests::of_bytes(b"world").crc64.to_base64());
        assert!(different(&prove_copy(Some(&c), None, &copied)));
    }

    #[test]
    fn a_copy_with_a_checksum_the_digests_cannot_decide_needs_the_sources() {
        let copied = Local::copied(5, local());
        let mut source = remote();
        source.checksums.sha256 = Some("c29tZQ==-2".into());
        source.checksums.kind = Some(ChecksumType::Composite);
        let copy = source.clone();
        assert_eq!(
            prove_copy(Some(&copy), Some(&source), &copied),
            Proof::Proven {
                how: How::ChecksumInHead
            }
        );
        // Another value, another size, no source, no checksum: unproven.
        let mut other = source.clone();
        other.checksums.sha256 = Some("b3RoZXI=-2".into());
        assert!(!prove_copy(Some(&copy), Some(&other), &copied).is_proven());
        let mut bigger = source.clone();
        bigger.size = 6;
        assert!(!prove_copy(Some(&copy), Some(&bigger), &copied).is_proven());
        assert!(!prove_copy(Some(&copy), None, &copied).is_proven());
        assert!(!prove_copy(Some(&remote()), Some(&remote()), &copied).is_proven());
        // The journal keeps the composite value for verify.
        assert_eq!(
            whole_checksum(&copy),
            Some(BodyChecksum {
                algorithm: Algorithm::Sha256,
                value: "c29tZQ==-2".into()
            })
        );
        let mut crc = remote();
        crc.checksums.crc64nvme = Some(local().crc64.to_base64());
        assert_eq!(whole_checksum(&crc), None);
    }

    fn ok_visit() -> Visit {
        Visit {
            url: "https://cdn.example/a.jpg".into(),
            status: 200,
            length: Some(5),
            content_type: Some("image/jpeg".into()),
            cache_control: Some("max-age=60".into()),
            sha256: Some(Sha256Digest([1; 32])),
        }
    }

    fn expected() -> Expected<'static> {
        Expected {
            size: 5,
            sha256: Sha256Digest([1; 32]),
            content_type: "image/jpeg",
            cache_control: Some("max-age=60"),
        }
    }

    #[test]
    fn a_visit_is_judged_by_status_length_type_cache_and_bytes() {
        assert!(judge_visit(&ok_visit(), &expected(), true).is_empty());
        let mut v = ok_visit();
        v.status = 403;
        assert!(judge_visit(&v, &expected(), false)[0].contains("anonymous"));
        v.status = 404;
        assert!(judge_visit(&v, &expected(), false)[0].contains("raw +"));
        let mut v = ok_visit();
        v.length = Some(4);
        v.content_type = Some("binary/octet-stream".into());
        v.cache_control = None;
        v.sha256 = Some(Sha256Digest([2; 32]));
        let wrong = judge_visit(&v, &expected(), true);
        assert_eq!(wrong.len(), 4, "{wrong:?}");
        // The bytes are only judged with --deep; parameters and case of a
        // content type do not matter; an unset cache header is not judged.
        let mut v = ok_visit();
        v.sha256 = Some(Sha256Digest([2; 32]));
        v.content_type = Some("Image/JPEG; charset=binary".into());
        v.cache_control = None;
        let mut e = expected();
        e.cache_control = None;
        assert!(judge_visit(&v, &e, false).is_empty());
    }
}
