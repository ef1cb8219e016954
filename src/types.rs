//! Small value types shared by every stage: byte sizes, content digests,
//! object keys and the S3 destination.
//!
//! They exist so that a size is never confused with a count, a digest is
//! never a bare string, and a key is only built through code that checks
//! S3's rules (valid UTF-8, at most 1,024 bytes).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::Serialize;

use crate::limits::MAX_KEY_BYTES;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number of bytes. Displays as a human-readable binary size ("16 MiB").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;
    pub const GIB: u64 = 1024 * 1024 * 1024;
    pub const TIB: u64 = 1024 * 1024 * 1024 * 1024;

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else if value.fract() == 0.0 {
            write!(f, "{value:.0} {}", UNITS[unit])
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

/// Why a size given on the command line was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a size: use a number with an optional unit, e.g. 8MiB, 16M, 512KiB or 1GiB")]
pub struct ParseSizeError(String);

impl FromStr for ByteSize {
    type Err = ParseSizeError;

    /// Accepts `123`, `8M`, `8MB`, `8MiB`, `1.5GiB` (case-insensitive).
    /// Units are binary (M = MiB), as in the AWS CLI's `multipart_chunksize`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSizeError(s.to_string());
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: f64 = num.parse().map_err(|_| err())?;
        let mult = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => Self::KIB,
            "m" | "mb" | "mib" => Self::MIB,
            "g" | "gb" | "gib" => Self::GIB,
            "t" | "tb" | "tib" => Self::TIB,
            _ => return Err(err()),
        };
        let bytes = num * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
            return Err(err());
        }
        Ok(Self(bytes as u64))
    }
}

/// A SHA-256 digest of a file's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn to_hex(self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// The base64 form S3 uses in `x-amz-checksum-sha256`.
    pub fn to_base64(self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// The CRC64/NVME of a whole file: S3's default full-object checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Crc64Nvme(pub u64);

impl Crc64Nvme {
    /// The base64 of the big-endian bytes, as in `x-amz-checksum-crc64nvme`.
    pub fn to_base64(self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.to_be_bytes())
    }
}

/// An S3 object key: valid UTF-8 (guaranteed by `String`) and at most
/// 1,024 bytes long.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ObjectKey(String);

/// A key that S3 would refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("key is {len} bytes long; S3 allows at most 1024")]
pub struct KeyTooLong {
    pub len: usize,
}

impl ObjectKey {
    pub fn new(key: String) -> Result<Self, KeyTooLong> {
        if key.len() > MAX_KEY_BYTES {
            return Err(KeyTooLong { len: key.len() });
        }
        Ok(Self(key))
    }

    /// A key already checked once: the same inputs give the same key.
    pub fn rebuilt(key: String) -> Self {
        debug_assert!(key.len() <= MAX_KEY_BYTES);
        Self(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where objects go: `s3://BUCKET[/PREFIX]`. The prefix never starts with
/// `/` and, when not empty, always ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    #[error("'{0}' is not an S3 URL: write it as s3://BUCKET or s3://BUCKET/PREFIX")]
    NotS3Url(String),
    #[error("'{0}' has no bucket name: write it as s3://BUCKET or s3://BUCKET/PREFIX")]
    NoBucket(String),
    #[error(
        "bucket name '{0}' is not valid: S3 bucket names are 3-63 characters of a-z, 0-9, '.' and '-'"
    )]
    BadBucket(String),
}

impl FromStr for Destination {
    type Err = DestinationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| DestinationError::NotS3Url(s.to_string()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(DestinationError::NoBucket(s.to_string()));
        }
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        if !valid {
            return Err(DestinationError::BadBucket(bucket.to_string()));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Ok(Self {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The id S3 gives a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UploadId(pub String);

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!("8MiB".parse::<ByteSize>().unwrap(), ByteSize(8 << 20));
        assert_eq!("8m".parse::<ByteSize>().unwrap(), ByteSize(8 << 20));
        assert_eq!("1.5GiB".parse::<ByteSize>().unwrap(), ByteSize(3 << 29));
        assert_eq!("512".parse::<ByteSize>().unwrap(), ByteSize(512));
        assert_eq!("16 KB".parse::<ByteSize>().unwrap(), ByteSize(16 << 10));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("5XB".parse::<ByteSize>().is_err());
        assert!("0.5".parse::<ByteSize>().is_err());
    }

    #[test]
    fn sizes_display_readably() {
        assert_eq!(ByteSize(512).to_string(), "512 B");
        assert_eq!(ByteSize(16 << 20).to_string(), "16 MiB");
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
    }

    #[test]
    fn digests_show_as_hex_and_base64() {
        let d = Sha256Digest([0xab; 32]);
        assert_eq!(d.to_hex(), "ab".repeat(32));
        assert_eq!(d.to_string(), d.to_hex());
        assert_eq!(d.to_base64().len(), 44);
    }

    #[test]
    fn keys_over_1024_bytes_are_refused() {
        assert!(ObjectKey::new("a".repeat(1024)).is_ok());
        assert_eq!(
            ObjectKey::new("é".repeat(513)).unwrap_err(),
            KeyTooLong { len: 1026 }
        );
    }

    #[test]
    fn destinations_parse() {
        let d: Destination = "s3://media/shop/img/".parse().unwrap();
        assert_eq!(d.bucket, "media");
        assert_eq!(d.prefix, "shop/img/");
        let d: Destination = "s3://media".parse().unwrap();
        assert_eq!(d.prefix, "");
        assert_eq!(d.to_string(), "s3://media/");
        assert!(matches!(
            "media/x".parse::<Destination>(),
            Err(DestinationError::NotS3Url(_))
        ));
        assert!(matches!(
            "s3:///x".parse::<Destination>(),
            Err(DestinationError::NoBucket(_))
        ));
        assert!(matches!(
            "s3://Media_Bucket".parse::<Destination>(),
            Err(DestinationError::BadBucket(_))
        ));
    }
}
