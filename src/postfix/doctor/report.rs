//! The findings counted, and rendered as text or as JSON (schema
//! [`SCHEMA`]).

use std::path::Path;

use serde::Serialize;

use super::{Finding, Level, count};

/// Name of the JSON schema; bumped only for incompatible changes.
pub const SCHEMA: &str = "sasldb-doctor/1";

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub store: String,
    pub findings: Vec<Finding>,
    pub errors: usize,
    pub warnings: usize,
    pub fixed: usize,
    /// PostgreSQL store: the Cyrus `sql` auxprop lines for it (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cyrus_lines: Option<Vec<String>>,
}

impl Report {
    pub fn new(store: &Path, findings: Vec<Finding>) -> Report {
        let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
        Report {
            schema: SCHEMA,
            store: store.display().to_string(),
            errors: count(Level::Error),
            warnings: count(Level::Warning),
            fixed: findings.iter().filter(|f| f.fixed).count(),
            findings,
            cyrus_lines: None,
        }
    }

    pub fn text(&self, prog: &str) -> String {
        let mut s = format!("{prog} --doctor: {}\n", self.store);
        for (level, title) in [
            (Level::Ok, "ok"),
            (Level::Warning, "warning"),
            (Level::Error, "error"),
        ] {
            let group: Vec<&Finding> = self.findings.iter().filter(|f| f.level == level).collect();
            if group.is_empty() {
                continue;
            }
            s.push_str(&format!("{title}:\n"));
            for f in group {
                s.push_str(&format!("  [{}] {}\n", f.id, f.message));
                if let Some(was) = &f.was {
                    s.push_str(&format!("      fixed, was: {was}\n"));
                }
                if level != Level::Ok
                    && let Some(h) = &f.hint
                {
                    s.push_str(&format!("      fix: {h}\n"));
                }
            }
        }
        s.push_str(&format!(
            "{}, {}{}\n",
            count(self.errors, "error"),
            count(self.warnings, "warning"),
            if self.fixed > 0 {
                format!(", {} fixed", self.fixed)
            } else {
                String::new()
            }
        ));
        s
    }

    /// The report as JSON, pretty-printed, with a final newline.
    pub fn json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self).map(|j| j + "\n")
    }
}
