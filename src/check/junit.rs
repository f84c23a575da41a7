//! A check's result as JUnit XML (quick-junit), for GitLab's `artifacts:reports:junit` and
//! Jenkins' `junit` step: one testsuite per rule, one testcase per checked connection, and a
//! failure per violation carrying its reason and evidence.

use crate::check::evaluate::{CheckReport, Status};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

impl CheckReport {
    /// JUnit XML: one testsuite per rule, one testcase per checked connection. A rule that
    /// checked nothing gets one `nothing to check` testcase: failed, or skipped when empty
    /// rules are allowed.
    pub fn junit(&self, allow_empty: bool) -> String {
        let mut report = Report::new("mtlscope");
        for r in &self.rules {
            let mut suite = TestSuite::new(r.name.as_str());
            // The failing cases come in the order of the violations they made.
            let mut violations = r.violations.iter();
            for (client, server, fail) in &r.cases {
                let status = match fail {
                    None => TestCaseStatus::success(),
                    Some(reason) => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        s.set_message(reason.as_str());
                        let evidence = violations.next().map(|v| v.evidence.join("\n"));
                        s.set_description(evidence.unwrap_or_default());
                        s
                    }
                };
                let mut case = TestCase::new(format!("{client} -> {server}"), status);
                case.set_classname(r.name.as_str());
                suite.add_test_case(case);
            }
            // Past the cap, one testcase stands for the connections not listed: failed if any
            // of them failed.
            let not_listed = r.violations_not_listed + r.cases_not_listed;
            if not_listed > 0 {
                let status = if r.violations_not_listed > 0 {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(format!(
                        "{} of these connections failed the rule; their reasons are not listed",
                        r.violations_not_listed
                    ));
                    s
                } else {
                    TestCaseStatus::success()
                };
                let mut case = TestCase::new(format!("{not_listed} more connections not listed"), status);
                case.set_classname(r.name.as_str());
                suite.add_test_case(case);
            }
            if r.cases.is_empty() && not_listed == 0 {
                let status = if r.status == Status::Empty && !allow_empty {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message("no connection matched this rule");
                    s
                } else {
                    TestCaseStatus::skipped()
                };
                let mut case = TestCase::new("nothing to check", status);
                case.set_classname(r.name.as_str());
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        // Run-level problems: an input not read completely is an error testcase named after
        // the file and offset, `--min-flows` a failure.
        if !self.problems.is_empty() {
            let mut suite = TestSuite::new("mtlscope run");
            for (i, problem) in self.problems.iter().enumerate() {
                let (name, kind) = match self.unread.get(i) {
                    Some((what, Some(offset))) => (format!("read {what} (at byte {offset})"), NonSuccessKind::Error),
                    Some((what, None)) => (format!("read {what}"), NonSuccessKind::Error),
                    None => ("--min-flows".to_string(), NonSuccessKind::Failure),
                };
                let mut status = TestCaseStatus::non_success(kind);
                status.set_message(problem.as_str());
                let mut case = TestCase::new(name, status);
                case.set_classname("mtlscope run");
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        // Serializing into memory has no I/O to fail, and every string went in as XmlString
        // (control characters that XML 1.0 forbids are already taken out).
        report.to_string().expect("a JUnit report serializes into memory")
    }
}

#[cfg(test)]
mod tests {
    use crate::check::evaluate::{CheckReport, RuleResult, Status, Violation};
    use crate::check::rules::{Match, Requirement};
    use crate::pipeline::verdict::{Confidence, Handshake, Kind};
    use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

    fn endpoint(s: &str) -> crate::pipeline::flows::Endpoint {
        let a: std::net::SocketAddr = s.parse().unwrap();
        crate::pipeline::flows::Endpoint {
            ip: a.ip(),
            port: a.port(),
        }
    }

    fn rule(name: &str, cases: Vec<(&str, &str, Option<&str>)>, evidence: &[&str]) -> RuleResult {
        let violations: Vec<Violation> = cases
            .iter()
            .filter_map(|(c, s, fail)| {
                fail.map(|reason| Violation {
                    id: 1,
                    community_id: None,
                    file: None,
                    client: endpoint(c),
                    server: endpoint(s),
                    client_pod: None,
                    server_pod: None,
                    verdict: Kind::Plaintext,
                    confidence: Confidence::Certain,
                    handshake: Handshake::None,
                    failure: "verdict",
                    reason: reason.to_string(),
                    evidence: evidence.iter().map(|e| e.to_string()).collect(),
                })
            })
            .collect();
        RuleResult {
            name: name.to_string(),
            require: Requirement::Mtls,
            selector: Match::default(),
            client_identity: None,
            allow_uncertain: false,
            status: match (cases.is_empty(), violations.is_empty()) {
                (true, _) => Status::Empty,
                (false, true) => Status::Pass,
                (false, false) => Status::Fail,
            },
            matched: cases.len(),
            passed: cases.len() - violations.len(),
            passed_inferred: 0,
            passed_uncertain: 0,
            no_data: 0,
            loopback: 0,
            violations,
            violations_not_listed: 0,
            cases_not_listed: 0,
            cases: cases
                .into_iter()
                .map(|(c, s, f)| (c.to_string(), s.to_string(), f.map(String::from)))
                .collect(),
        }
    }

    fn report() -> CheckReport {
        CheckReport {
            schema_version: crate::pipeline::record::SCHEMA_VERSION,
            ok: false,
            connections: 2,
            rules: vec![
                rule(
                    "a <rule> & \"more\"",
                    vec![
                        ("10.0.0.1:1", "10.0.0.2:80", Some("plaintext: requires mtls\u{1}")),
                        ("10.0.0.1:2", "10.0.0.2:443", None),
                    ],
                    &["http request GET / in clear", "second line"],
                ),
                rule("empty", vec![], &[]),
            ],
            problems: Vec::new(),
            unread: Vec::new(),
        }
    }

    /// What the XML says, read back by quick-junit's own parser: the same suites, cases,
    /// failures and messages as the report, and no control character XML 1.0 forbids.
    #[test]
    fn junit_reads_back_with_every_case_failure_and_message() {
        let xml = report().junit(false);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"), "{xml}");
        assert!(!xml.contains('\u{1}'), "{xml}");
        let back = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((back.tests, back.failures), (3, 2));
        let [suite, empty] = &back.test_suites[..] else {
            panic!("two suites expected: {xml}")
        };
        assert_eq!(suite.name.as_str(), "a <rule> & \"more\"");
        assert_eq!((suite.tests, suite.failures), (2, 1));
        let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["10.0.0.1:1 -> 10.0.0.2:80", "10.0.0.1:2 -> 10.0.0.2:443"]);
        assert_eq!(suite.test_cases[0].classname.as_deref(), Some("a <rule> & \"more\""));
        match &suite.test_cases[0].status {
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                message,
                description,
                ..
            } => {
                assert_eq!(message.as_deref(), Some("plaintext: requires mtls"));
                assert_eq!(description.as_deref(), Some("http request GET / in clear\nsecond line"));
            }
            other => panic!("a failure expected: {other:?}"),
        }
        assert!(matches!(suite.test_cases[1].status, TestCaseStatus::Success { .. }));
        assert_eq!(empty.test_cases[0].name.as_str(), "nothing to check");
        match &empty.test_cases[0].status {
            TestCaseStatus::NonSuccess { message, .. } => {
                assert_eq!(message.as_deref(), Some("no connection matched this rule"))
            }
            other => panic!("a failure expected: {other:?}"),
        }
    }

    #[test]
    fn junit_skips_an_allowed_empty_rule() {
        let xml = report().junit(true);
        let back = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((back.tests, back.failures, back.skipped), (3, 1, 1));
        assert!(matches!(
            back.test_suites[1].test_cases[0].status,
            TestCaseStatus::Skipped { .. }
        ));
    }
}
