//! Formatting shared by the text reports: counts, rows, and the sections
//! listing files that were not handled.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::stages::plan::{Conflict, Failure};
use crate::stages::verify::How;
use crate::types::ByteSize;

/// Objects by how they were proven, for a text report: "3 by checksum by
/// HeadObject, 1 by ...".
pub(super) fn proofs(by: &BTreeMap<How, u64>) -> String {
    by.iter()
        .map(|(how, n)| format!("{} by {}", thousands(*n), proof_name(*how)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a proof reads in a text report.
pub(super) fn proof_name(how: How) -> &'static str {
    match how {
        How::ChecksumInResponse => "checksum in the write's answer",
        How::ChecksumInHead => "checksum by HeadObject",
        How::Etag => "ETag = MD5",
        How::Sha256Metadata => "sha256 metadata only (a claim: no server checksum)",
        How::Download => "download and hash",
        How::Journal => "the journal (proven by an earlier run)",
    }
}

pub use crate::types::thousands;

/// `label  files  bytes` lines of a report.
pub(super) fn rows(o: &mut String, rows: &[(&str, u64, u64)]) {
    for (label, files, bytes) in rows {
        let _ = writeln!(o, "  {label:<26}{}", amount(*files, *bytes));
    }
}

/// The conflicts and failures sections shared by the plan and migrate
/// reports: every file not handled, with why.
pub(super) fn unhandled(o: &mut String, conflicts: &[Conflict], failed: &[Failure], title: &str) {
    if !conflicts.is_empty() {
        let _ = writeln!(
            o,
            "\nConflicts, not uploaded (what is under the key is not proven to be the file; --overwrite replaces it):"
        );
        for c in conflicts {
            let _ = writeln!(o, "  {} -> {}: {}", c.path, c.key, c.detail);
        }
    }
    if !failed.is_empty() {
        let _ = writeln!(o, "\n{title} ({}):", thousands(failed.len() as u64));
        for f in failed {
            let _ = writeln!(o, "  {}: {}", f.path, f.error);
        }
    }
}

pub(super) fn amount(files: u64, bytes: u64) -> String {
    format!(
        "{:>10}  {:>10}",
        thousands(files),
        ByteSize(bytes).to_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
