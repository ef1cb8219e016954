//! The `verify` report.

use std::fmt::Write as _;

use serde::Serialize;

use super::format::{proofs, thousands};
use crate::settings::VerifySettings;
use crate::stages::recheck::Checked;
use crate::stages::visit::Visited;

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

/// The `verify --via-url --json` document.
#[derive(Debug, Serialize)]
pub struct VisitedDoc<'a> {
    pub destination: String,
    pub deep: bool,
    #[serde(flatten)]
    pub visited: &'a Visited,
}

impl<'a> VisitedDoc<'a> {
    pub fn new(visited: &'a Visited, s: &VerifySettings) -> Self {
        Self {
            destination: s.destination.to_string(),
            deep: s.deep,
            visited,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.visited.is_clean()
    }
}

/// The human-readable `verify --via-url`.
pub fn visited_text(d: &VisitedDoc<'_>) -> String {
    let v = d.visited;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Checked {} as a visitor ({}, no credentials): {} of {} files served as migrated",
        v.via_url,
        if d.deep { "GET, bytes hashed" } else { "HEAD" },
        thousands(v.files_ok),
        thousands(v.files_checked)
    );
    let answers: Vec<String> = v
        .statuses
        .iter()
        .map(|(status, n)| match status {
            0 => format!("no answer {}", thousands(*n)),
            s => format!("{s} {}", thousands(*n)),
        })
        .collect();
    if !answers.is_empty() {
        let _ = writeln!(o, "  answers: {}", answers.join(", "));
    }
    if !v.problems.is_empty() {
        let _ = writeln!(
            o,
            "\nNot served as migrated ({}):",
            thousands(v.problems.len() as u64)
        );
        for p in &v.problems {
            let _ = writeln!(o, "  {} ({}): {}", p.path, p.url, p.detail);
        }
        let _ = writeln!(
            o,
            "\nFix these before pointing the application at {}.",
            v.via_url
        );
    }
    o
}
