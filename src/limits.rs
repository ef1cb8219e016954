//! S3's limits, and how a large object is cut into parts within them.
//!
//! A leaf: `settings` checks flags against these numbers, `plan` counts
//! parts with [`PartLayout`] and `upload` sends them by it, so the three can
//! never disagree about where a part starts.

use serde::Serialize;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// The smallest part S3 accepts (all but the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const MAX_PART_SIZE: u64 = 5 * GIB;
pub const MAX_PARTS: u64 = 10_000;
pub const MAX_OBJECT_SIZE: u64 = 5 * TIB;
/// The largest object a single PutObject may carry.
pub const MAX_PUT_SIZE: u64 = 5 * GIB;
/// The largest object a single CopyObject may copy; larger ones are
/// copied in parts (UploadPartCopy).
pub const MAX_COPY_OBJECT: u64 = 5 * GIB;
/// The part size a copy in parts aims at: large, since no byte crosses the
/// client's link, so fewer requests (never above the copy limit).
const COPY_PART_SIZE: u64 = GIB;
/// The longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// How a large object is cut into parts: all parts `part_size` bytes except
/// the last, which holds the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartLayout {
    pub part_size: u64,
    pub parts: u64,
    pub last_part_size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("{size} bytes is larger than S3's 5 TiB object limit")]
    TooLarge { size: u64 },
    #[error("a part size of {0} is larger than S3's 5 GiB part limit")]
    PartTooLarge(u64),
}

impl PartLayout {
    /// `part_size = max(target, ceil(size / 10,000), 5 MiB)`, so any object
    /// up to 5 TiB fits in 10,000 parts.
    pub fn new(size: u64, target_part_size: u64) -> Result<Self, LayoutError> {
        if size > MAX_OBJECT_SIZE {
            return Err(LayoutError::TooLarge { size });
        }
        let part_size = target_part_size
            .max(size.div_ceil(MAX_PARTS))
            .max(MIN_PART_SIZE);
        if part_size > MAX_PART_SIZE {
            return Err(LayoutError::PartTooLarge(part_size));
        }
        let parts = size.div_ceil(part_size).max(1);
        let last_part_size = size - (parts - 1) * part_size;
        Ok(Self {
            part_size,
            parts,
            last_part_size,
        })
    }

    /// Byte range `[start, end)` of part `number` (1-based).
    pub fn range(&self, number: u64) -> (u64, u64) {
        let start = (number - 1) * self.part_size;
        let len = if number == self.parts {
            self.last_part_size
        } else {
            self.part_size
        };
        (start, start + len)
    }
}

/// How an object of `size` bytes is copied server-side: `None` in one
/// CopyObject (up to `limit`, [`MAX_COPY_OBJECT`] outside tests), else in
/// parts of this layout.
pub fn copy_layout(size: u64, limit: u64) -> Result<Option<PartLayout>, LayoutError> {
    if size <= limit {
        return Ok(None);
    }
    PartLayout::new(size, COPY_PART_SIZE.min(limit)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_layout_uses_the_target_when_it_fits() {
        let l = PartLayout::new(100 * MIB + 1, 16 * MIB).unwrap();
        assert_eq!(l.part_size, 16 * MIB);
        assert_eq!(l.parts, 7);
        assert_eq!(l.last_part_size, 100 * MIB + 1 - 6 * 16 * MIB);
        assert_eq!(l.range(1), (0, 16 * MIB));
        assert_eq!(l.range(7), (96 * MIB, 100 * MIB + 1));
    }

    #[test]
    fn part_layout_never_below_5_mib() {
        let l = PartLayout::new(12 * MIB, MIB).unwrap();
        assert_eq!(
            (l.part_size, l.parts, l.last_part_size),
            (5 * MIB, 3, 2 * MIB)
        );
    }

    #[test]
    fn part_layout_exact_multiple_has_a_full_last_part() {
        let l = PartLayout::new(32 * MIB, 16 * MIB).unwrap();
        assert_eq!((l.parts, l.last_part_size), (2, 16 * MIB));
        let l = PartLayout::new(0, 16 * MIB).unwrap();
        assert_eq!((l.parts, l.last_part_size), (1, 0));
    }

    #[test]
    fn part_layout_stretches_parts_to_stay_within_10000() {
        let size = 5 * TIB;
        let l = PartLayout::new(size, 8 * MIB).unwrap();
        assert_eq!(l.part_size, size.div_ceil(10_000));
        assert!(l.parts <= 10_000);
        assert!(l.last_part_size <= l.part_size && l.last_part_size > 0);
        assert_eq!((l.parts - 1) * l.part_size + l.last_part_size, size);
        // 100 GiB at 8 MiB would be 12,800 parts.
        let l = PartLayout::new(100 * GIB, 8 * MIB).unwrap();
        assert_eq!(l.parts, 10_000);
    }

    #[test]
    fn part_layout_refuses_what_s3_refuses() {
        assert_eq!(
            PartLayout::new(5 * TIB + 1, 8 * MIB),
            Err(LayoutError::TooLarge { size: 5 * TIB + 1 })
        );
        assert!(matches!(
            PartLayout::new(10 * GIB, 6 * GIB),
            Err(LayoutError::PartTooLarge(_))
        ));
    }

    #[test]
    fn copies_above_the_limit_go_in_parts_of_at_most_a_gib() {
        assert_eq!(copy_layout(MAX_COPY_OBJECT, MAX_COPY_OBJECT), Ok(None));
        let l = copy_layout(MAX_COPY_OBJECT + 1, MAX_COPY_OBJECT)
            .unwrap()
            .unwrap();
        assert_eq!((l.part_size, l.parts, l.last_part_size), (GIB, 6, 1));
        // A lowered limit (the tests') cuts smaller parts.
        let l = copy_layout(12 * MIB, 10 * MIB).unwrap().unwrap();
        assert_eq!(
            (l.part_size, l.parts, l.last_part_size),
            (10 * MIB, 2, 2 * MIB)
        );
    }
}
