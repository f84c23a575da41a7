//! `mtlscope check`: rules over verdicts, for CI. A rule selects connections (server ports,
//! CIDRs, SNI) and states what they require; every selected connection that falls short is a
//! violation. An empty rule is not a pass.
//!
//! In the order of the work: [`rules`] reads the rules file, [`evaluate`] judges connections
//! against it into a [`CheckReport`], and the renderings of that report are lines for people
//! ([`text`]), GitHub Actions `::error` commands ([`annotations`]) and JUnit XML ([`junit`]);
//! JSON is the report's `Serialize`.

pub mod annotations;
pub mod evaluate;
pub mod junit;
pub mod rules;
pub mod text;

pub use evaluate::{evaluate, CheckOptions, CheckReport, EvidenceLevel, RuleResult, Status, Violation};
pub use rules::{load_rules, parse_rules, Cidr, Match, Pattern, Requirement, Rule, RulesError, ValueError};
