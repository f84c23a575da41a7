//! The `check --rules` file parser (YAML or JSON). Layout: the whole input is the file's text
//! (invalid UTF-8 is replaced, as a file read would reject it before the parser sees it). A
//! parsed rule set is then evaluated against no connections, which compiles every network and
//! glob again, and rendered every way `check` renders it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtlscope::check::{evaluate, parse_rules, CheckOptions, EvidenceLevel};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_rules("fuzz.yaml", &text) {
        Ok(rules) => {
            assert!(!rules.is_empty(), "an accepted rules file has at least one rule");
            let opts = CheckOptions {
                evidence: EvidenceLevel::Inferred,
                allow_empty: true,
                min_flows: 0,
                include_loopback: false,
            };
            let report = evaluate(&rules, &[], &opts);
            let _ = report.text(true);
            let _ = report.junit(true);
            let _ = report.github(false, Some("capture.pcap"));
        }
        Err(e) => {
            // Every error names the file it is about.
            assert!(e.to_string().contains("fuzz.yaml"), "{e}");
        }
    }
});
