//! The checksums S3 validates, computed locally from the bytes we read.
//!
//! Every PutObject and UploadPart carries the checksum of its body, so the
//! server rejects a body that changed in transit. A multipart object also
//! gets a whole-object value: CRC64NVME and CRC32C are *full-object*
//! checksums (the CRC of the whole file, combined here from the part CRCs
//! without reading twice, as the AWS CLI does); SHA-256 is *composite* (the
//! SHA-256 of the part digests, suffixed `-N`). Comparing the server's
//! answer with these values is the end-to-end proof.
//!
//! Servers that return no checksum still return an ETag, which for a plain
//! object is the MD5 of its bytes and for a multipart object the MD5 of the
//! part MD5s suffixed `-N`; those are computed here too.

use base64::Engine as _;
use crc_fast::CrcAlgorithm as Crc;
use md5::Md5;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The algorithm asked for with `--checksum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Crc64nvme,
    Sha256,
    Crc32c,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc64nvme => "CRC64NVME",
            Self::Sha256 => "SHA256",
            Self::Crc32c => "CRC32C",
        }
    }

    /// The algorithm a [`Algorithm::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Crc64nvme, Self::Sha256, Self::Crc32c]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// Whether the multipart checksum is full-object (else composite).
    pub fn full_object(self) -> bool {
        !matches!(self, Self::Sha256)
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A checksum of one body (an object or a part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Crc64(u64),
    Crc32(u32),
    Sha256([u8; 32]),
}

impl Value {
    /// Reads back a value written by [`Value::to_base64`].
    pub fn from_base64(algorithm: Algorithm, text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        Some(match algorithm {
            Algorithm::Crc64nvme => Self::Crc64(u64::from_be_bytes(bytes.try_into().ok()?)),
            Algorithm::Crc32c => Self::Crc32(u32::from_be_bytes(bytes.try_into().ok()?)),
            Algorithm::Sha256 => Self::Sha256(bytes.try_into().ok()?),
        })
    }

    /// The base64 text of `x-amz-checksum-*`.
    pub fn to_base64(self) -> String {
        match self {
            Self::Crc64(v) => b64(&v.to_be_bytes()),
            Self::Crc32(v) => b64(&v.to_be_bytes()),
            Self::Sha256(d) => b64(&d),
        }
    }
}

/// Incremental checksum of one body.
pub struct Summer {
    state: State,
    len: u64,
}

enum State {
    Crc64(crc_fast::Digest),
    Crc32(crc_fast::Digest),
    Sha(Sha256),
}

impl Summer {
    pub fn new(algorithm: Algorithm) -> Self {
        let state = match algorithm {
            Algorithm::Crc64nvme => State::Crc64(crc_fast::Digest::new(Crc::Crc64Nvme)),
            Algorithm::Crc32c => State::Crc32(crc_fast::Digest::new(Crc::Crc32Iscsi)),
            Algorithm::Sha256 => State::Sha(Sha256::new()),
        };
        Self { state, len: 0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc64(c) | State::Crc32(c) => c.update(data),
            State::Sha(s) => s.update(data),
        }
        self.len += data.len() as u64;
    }

    pub fn finish(self) -> Part {
        let value = match self.state {
            State::Crc64(c) => Value::Crc64(c.finalize()),
            State::Crc32(c) => Value::Crc32(c.finalize() as u32),
            State::Sha(s) => Value::Sha256(s.finalize().into()),
        };
        Part {
            value,
            len: self.len,
        }
    }

    pub fn of(algorithm: Algorithm, data: &[u8]) -> Part {
        let mut s = Self::new(algorithm);
        s.update(data);
        s.finish()
    }
}

/// A part's checksum and length (lengths are needed to combine CRCs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub value: Value,
    pub len: u64,
}

/// The whole-object checksum of a multipart upload, from its parts in order,
/// as the server reports it after CompleteMultipartUpload.
pub fn multipart_value(algorithm: Algorithm, parts: &[Part]) -> String {
    match algorithm {
        Algorithm::Crc64nvme | Algorithm::Crc32c => {
            let crc = if algorithm == Algorithm::Crc64nvme {
                Crc::Crc64Nvme
            } else {
                Crc::Crc32Iscsi
            };
            let mut acc: Option<u64> = None;
            for p in parts {
                let v = match p.value {
                    Value::Crc64(v) => v,
                    Value::Crc32(v) => u64::from(v),
                    Value::Sha256(_) => continue,
                };
                acc = Some(match acc {
                    None => v,
                    Some(a) => crc_fast::checksum_combine(crc, a, v, p.len),
                });
            }
            let v = acc.unwrap_or(0);
            if algorithm == Algorithm::Crc64nvme {
                Value::Crc64(v).to_base64()
            } else {
                Value::Crc32(v as u32).to_base64()
            }
        }
        Algorithm::Sha256 => {
            let mut outer = Sha256::new();
            for p in parts {
                if let Value::Sha256(d) = p.value {
                    outer.update(d);
                }
            }
            format!("{}-{}", b64(&outer.finalize()), parts.len())
        }
    }
}

/// The MD5 of `data`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// Lower-case hex, as ETags show digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex MD5 of `data`: the ETag of a plain object.
pub fn md5_hex(data: &[u8]) -> String {
    hex(&md5(data))
}

/// `md5(concat(part md5s))-N`, the ETag S3 gives a multipart object.
pub fn multipart_etag(md5s: &[Option<[u8; 16]>]) -> String {
    let mut outer = Md5::new();
    for m in md5s.iter().flatten() {
        outer.update(m);
    }
    format!("{}-{}", hex(&outer.finalize()), md5s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_bodies_match_reference_values() {
        // CRC catalogue check values for "123456789".
        assert_eq!(
            Summer::of(Algorithm::Crc64nvme, b"123456789").value,
            Value::Crc64(0xae8b_1486_0a79_9888)
        );
        assert_eq!(
            Summer::of(Algorithm::Crc32c, b"123456789").value,
            Value::Crc32(0xe306_9283)
        );
        // SHA-256 of "abc" in base64, as in x-amz-checksum-sha256.
        assert_eq!(
            Summer::of(Algorithm::Sha256, b"abc").value.to_base64(),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn values_round_trip_base64() {
        for alg in [Algorithm::Crc64nvme, Algorithm::Crc32c, Algorithm::Sha256] {
            let v = Summer::of(alg, b"round trip").value;
            assert_eq!(Value::from_base64(alg, &v.to_base64()), Some(v), "{alg:?}");
        }
        assert_eq!(Value::from_base64(Algorithm::Crc64nvme, "AAAA"), None);
    }

    #[test]
    fn full_object_crcs_combine_parts_to_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for alg in [Algorithm::Crc64nvme, Algorithm::Crc32c] {
            let parts: Vec<Part> = data.chunks(30_000).map(|c| Summer::of(alg, c)).collect();
            assert_eq!(
                multipart_value(alg, &parts),
                Summer::of(alg, &data).value.to_base64(),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn composite_sha256_hashes_the_part_digests() {
        let a = Summer::of(Algorithm::Sha256, b"part one");
        let b = Summer::of(Algorithm::Sha256, b"part two");
        let mut outer = Sha256::new();
        for p in [a, b] {
            if let Value::Sha256(d) = p.value {
                outer.update(d);
            }
        }
        assert_eq!(
            multipart_value(Algorithm::Sha256, &[a, b]),
            format!("{}-2", b64(&outer.finalize()))
        );
    }

    #[test]
    fn etags_are_md5s_and_multipart_etags_hash_the_part_md5s() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let (a, b) = (md5(b"a"), md5(b"b"));
        let mut both = a.to_vec();
        both.extend_from_slice(&b);
        assert_eq!(
            multipart_etag(&[Some(a), Some(b)]),
            format!("{}-2", md5_hex(&both))
        );
    }
}
