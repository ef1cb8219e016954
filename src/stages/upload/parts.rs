//! The state of a multipart upload as plain data: each part the server
//! acknowledged, with what was computed from its bytes.

use crate::checksum::{self, Algorithm};
use crate::journal::PartRow;
use crate::store::DonePart;

/// A part the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SentPart {
    pub done: DonePart,
    /// The checksum of the run's algorithm.
    pub sum: checksum::Part,
    /// Always CRC64NVME, to compare the parts with the hashed file.
    pub crc64: checksum::Part,
    /// Only when the server answered without a checksum (ETag check).
    pub md5: Option<[u8; 16]>,
}

impl SentPart {
    /// A part an earlier run recorded; `None` if its checksum is not a
    /// value of `algorithm` (then it is sent again).
    pub(super) fn recorded(row: &PartRow, algorithm: Algorithm) -> Option<Self> {
        let value = checksum::Value::from_base64(algorithm, &row.checksum)?;
        Some(Self {
            done: DonePart {
                number: row.number,
                etag: row.etag.clone(),
                checksum: row.checksum.clone(),
            },
            sum: checksum::Part {
                value,
                len: row.size,
            },
            crc64: checksum::Part {
                value: checksum::Value::Crc64(row.crc64),
                len: row.size,
            },
            md5: None,
        })
    }

    /// What the journal records of it.
    pub(super) fn row(&self) -> PartRow {
        PartRow {
            number: self.done.number,
            size: self.sum.len,
            checksum: self.done.checksum.clone(),
            crc64: match self.crc64.value {
                checksum::Value::Crc64(v) => v,
                _ => 0,
            },
            etag: self.done.etag.clone(),
        }
    }
}

/// The whole object's values from its parts in order: the checksum of the
/// run's algorithm as the server reports it, the CRC64NVME of the whole
/// file, and the ETag it should get.
pub(super) struct Combined {
    pub checksum: String,
    pub crc64: String,
    pub etag: String,
}

pub(super) fn combine(algorithm: Algorithm, parts: &[SentPart]) -> Combined {
    let sums: Vec<checksum::Part> = parts.iter().map(|p| p.sum).collect();
    let crcs: Vec<checksum::Part> = parts.iter().map(|p| p.crc64).collect();
    let md5s: Vec<Option<[u8; 16]>> = parts.iter().map(|p| p.md5).collect();
    let checksum = checksum::multipart_value(algorithm, &sums);
    // The same value when the run's algorithm is CRC64NVME (the default):
    // combined once (each combination costs some 64x64 matrix squarings).
    let crc64 = if algorithm == Algorithm::Crc64nvme {
        checksum.clone()
    } else {
        checksum::multipart_value(Algorithm::Crc64nvme, &crcs)
    };
    Combined {
        checksum,
        crc64,
        etag: checksum::multipart_etag(&md5s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::Summer;

    #[test]
    fn a_recorded_part_round_trips_and_a_foreign_checksum_is_refused() {
        let sum = Summer::of(Algorithm::Sha256, b"part");
        let part = SentPart {
            done: DonePart {
                number: 3,
                etag: "\"e\"".into(),
                checksum: sum.value.to_base64(),
            },
            sum,
            crc64: Summer::of(Algorithm::Crc64nvme, b"part"),
            md5: None,
        };
        let row = part.row();
        assert_eq!(SentPart::recorded(&row, Algorithm::Sha256), Some(part));
        assert_eq!(SentPart::recorded(&row, Algorithm::Crc64nvme), None);
    }

    #[test]
    fn parts_combine_to_the_whole_file() {
        let data = b"0123456789abcdef";
        let parts: Vec<SentPart> = data
            .chunks(5)
            .enumerate()
            .map(|(i, c)| SentPart {
                done: DonePart {
                    number: i as u32 + 1,
                    etag: String::new(),
                    checksum: String::new(),
                },
                sum: Summer::of(Algorithm::Crc32c, c),
                crc64: Summer::of(Algorithm::Crc64nvme, c),
                md5: Some(checksum::md5(c)),
            })
            .collect();
        let c = combine(Algorithm::Crc32c, &parts);
        assert_eq!(
            c.checksum,
            Summer::of(Algorithm::Crc32c, data).value.to_base64()
        );
        assert_eq!(
            c.crc64,
            Summer::of(Algorithm::Crc64nvme, data).value.to_base64()
        );
        assert!(c.etag.ends_with("-4"));
    }
}
