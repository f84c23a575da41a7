//! A check's result as GitHub Actions workflow commands: one `::error` per violation, per rule
//! that found nothing to check, and per run-level problem, so each shows as an annotation.

use crate::check::evaluate::{CheckReport, Status};
use std::fmt::Write as _;

impl CheckReport {
    /// GitHub Actions workflow commands, one `::error` per violation or failed rule.
    pub fn github(&self, allow_empty: bool) -> String {
        let esc = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
        let mut s = String::new();
        for r in &self.rules {
            for v in &r.violations {
                let _ = writeln!(
                    s,
                    "::error title={}::{} -> {} {}",
                    esc(&format!("mtlscope: {}", r.name))
                        .replace(',', "%2C")
                        .replace(':', "%3A"),
                    esc(&v.client),
                    esc(&v.server),
                    esc(&v.reason)
                );
            }
            if r.status == Status::Empty && !allow_empty {
                let _ = writeln!(
                    s,
                    "::error title=mtlscope%3A {}::nothing to check",
                    esc(&r.name).replace(':', "%3A")
                );
            }
        }
        for p in &self.problems {
            let _ = writeln!(s, "::error title=mtlscope::{}", esc(p));
        }
        s
    }
}
