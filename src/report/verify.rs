//! The `verify` report.

use std::fmt::Write as _;

use serde::Serialize;

use super::format::{proofs, thousands};
use crate::commands::verify::Checked;
use crate::settings::VerifySettings;

/// The `verify --json` document.
#[derive(Debug, Serialize)]
pub struct VerifyDoc<'a> {
    pub destination: String,
    pub deep: bool,
    #[serde(flatten)]
    pub checked: &'a Checked,
}

impl<'a> VerifyDoc<'a> {
    pub fn new(checked: &'a Checked, s: &VerifySettings) -> Self {
        Self {
            destination: s.destination.to_string(),
            deep: s.deep,
            checked,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.checked.is_clean()
    }
}

/// The human-readable `verify`.
pub fn verify_text(d: &VerifyDoc<'_>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Verified {} ({}{}): {} of {} objects check out",
        d.destination,
        d.checked.endpoint,
        if d.deep { ", bytes re-hashed" } else { "" },
        thousands(d.checked.objects_ok),
        thousands(d.checked.objects_checked)
    );
    let c = d.checked;
    if !c.proofs.is_empty() {
        let _ = writeln!(o, "  proven: {}", proofs(&c.proofs));
    }
    for (title, list) in [
        ("Missing", &c.missing),
        ("Mismatched", &c.mismatched),
        (
            "Unproven, nothing to compare (--deep proves them by their bytes)",
            &c.unproven,
        ),
    ] {
        if !list.is_empty() {
            let _ = writeln!(o, "\n{title} ({}):", list.len());
            for p in list {
                let _ = writeln!(o, "  {} ({}): {}", p.key, p.path, p.detail);
            }
        }
    }
    if !c.unexpected.is_empty() {
        let _ = writeln!(
            o,
            "\nUnexpected objects, which no migrated file maps to ({}):",
            c.unexpected.len()
        );
        for k in &c.unexpected {
            let _ = writeln!(o, "  {k}");
        }
    }
    if let Some(why) = &c.unexpected_not_checked {
        let _ = writeln!(o, "\nNote: {why}.");
    }
    o
}
