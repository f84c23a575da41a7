//! A check's result as GitHub Actions workflow commands: one `::error` per violation, per rule
//! that found nothing to check, and per run-level problem, so each shows as an annotation.
//!
//! The runner reads workflow commands from a step's standard output and standard error alike,
//! so `check` writes them to standard error: `check -o json > r.json` stays JSON.

use crate::check::evaluate::{CheckReport, Status};
use std::fmt::Write as _;

/// A workflow command's message: `%`, CR and LF escaped.
fn message(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value: also `:` and `,`, which end a value.
fn property(s: &str) -> String {
    message(s).replace(':', "%3A").replace(',', "%2C")
}

impl CheckReport {
    /// GitHub Actions workflow commands, one `::error` per violation or failed rule, each with
    /// a `title` (`mtlscope: RULE`) and `file=` so the annotation points at the capture: a
    /// violation's own file when several were read, else `file`, the one capture read.
    pub fn github(&self, allow_empty: bool, file: Option<&str>) -> String {
        let props = |title: &str, file: Option<&str>| match file {
            Some(f) => format!("file={},title={}", property(f), property(title)),
            None => format!("title={}", property(title)),
        };
        let mut s = String::new();
        for r in &self.rules {
            let title = format!("mtlscope: {}", r.name);
            for v in &r.violations {
                let text = format!("{} -> {} {}", v.client_name(), v.server_name(), v.reason);
                let file = v.file.as_deref().or(file);
                let _ = writeln!(s, "::error {}::{}", props(&title, file), message(&text));
            }
            if r.status == Status::Empty && !allow_empty {
                let _ = writeln!(s, "::error {}::nothing to check", props(&title, file));
            }
        }
        for p in &self.problems {
            let _ = writeln!(s, "::error {}::{}", props("mtlscope", file), message(p));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_escape_what_ends_a_value() {
        assert_eq!(property("a, b: 50%\n"), "a%2C b%3A 50%25%0A");
        assert_eq!(message("a, b: 50%\r\n"), "a, b: 50%25%0D%0A");
    }

    #[test]
    fn every_command_has_a_title_and_the_file_when_known() {
        let r = CheckReport {
            schema_version: crate::pipeline::record::SCHEMA_VERSION,
            ok: false,
            connections: 0,
            rules: Vec::new(),
            problems: vec!["capture.pcap: truncated at offset 24".into()],
            unread: Vec::new(),
        };
        assert_eq!(
            r.github(false, Some("ci/capture, 1.pcap")),
            "::error file=ci/capture%2C 1.pcap,title=mtlscope::capture.pcap: truncated at offset 24\n"
        );
        assert_eq!(
            r.github(false, None),
            "::error title=mtlscope::capture.pcap: truncated at offset 24\n"
        );
    }
}
