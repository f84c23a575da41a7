//! A check's result for people: one line per violation with its first piece of evidence, one
//! line per rule with its counts, and a closing `PASS`/`FAIL` line.

use crate::check::evaluate::{CheckReport, Status};
use std::fmt::Write as _;

impl CheckReport {
    /// One line per violation, then one per rule and a verdict line.
    pub fn text(&self, allow_empty: bool) -> String {
        let mut s = String::new();
        for r in &self.rules {
            for v in &r.violations {
                let _ = writeln!(
                    s,
                    "FAIL [{}] {} -> {} {}: {}",
                    r.name,
                    v.client_name(),
                    v.server_name(),
                    v.verdict.name(),
                    v.reason.trim_start_matches(&format!("{}: ", v.verdict.name()))
                );
                // An uncertain verdict's reason already quotes this line.
                if let Some(e) = v.evidence.first().filter(|e| !v.reason.contains(e.as_str())) {
                    let _ = writeln!(s, "     evidence: {e}");
                }
            }
            if r.violations_not_listed > 0 {
                let _ = writeln!(
                    s,
                    "FAIL [{}] ... and {} more violations not listed (the first {} are; -o json has the same)",
                    r.name,
                    r.violations_not_listed,
                    r.violations.len()
                );
            }
        }
        for r in &self.rules {
            let status = match (r.status, allow_empty) {
                (Status::Pass, _) => "ok",
                (Status::Fail, _) => "FAILED",
                (Status::Empty, true) => "empty (allowed)",
                (Status::Empty, false) => "FAILED: nothing to check",
            };
            let mut line = format!(
                "rule '{}' (require {}): {} matched, {} passed, {} failed",
                r.name,
                serde_json::to_value(r.require)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                r.matched,
                r.passed,
                r.failed()
            );
            if r.passed_inferred > 0 {
                line.push_str(&format!(" ({} passed on inferred verdicts)", r.passed_inferred));
            }
            if r.passed_uncertain > 0 {
                let allowed = if r.allow_uncertain { ", allowed" } else { "" };
                line.push_str(&format!(
                    " ({} passed on uncertain verdicts{allowed})",
                    r.passed_uncertain
                ));
            }
            if r.no_data > 0 {
                line.push_str(&format!(", {} without data not checked", r.no_data));
            }
            if r.loopback > 0 {
                line.push_str(&format!(", {} loopback not checked", r.loopback));
            }
            let _ = writeln!(s, "{line}: {status}");
        }
        for p in &self.problems {
            let _ = writeln!(s, "FAILED: {p}");
        }
        let failed: usize = self.rules.iter().map(|r| r.failed()).sum();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let _ = writeln!(
            s,
            "{}: {}, {}, {}",
            if self.ok { "PASS" } else { "FAIL" },
            plural(self.connections, "connection"),
            plural(self.rules.len(), "rule"),
            plural(failed, "violation")
        );
        s
    }
}
