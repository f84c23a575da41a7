//! `mtlscope check`: rules over verdicts, for CI. A rule selects connections (server ports,
//! CIDRs, SNI) and states what they require; every selected connection that falls short is a
//! violation. An empty rule is not a pass.
//!
//! In the order of the work: [`rules`] reads the rules file, [`evaluate`] selects the
//! connections of each rule and [`judge`] tells why one falls short (a connection passes only
//! on positive evidence), into a [`CheckReport`]; the renderings of that report are lines for
//! people ([`text`]), GitHub Actions `::error` commands ([`annotations`]) and JUnit XML
//! ([`junit`]); JSON is the report's `Serialize`.

pub mod annotations;
pub mod evaluate;
pub mod judge;
pub mod junit;
pub mod rules;
pub mod text;

pub use evaluate::{evaluate, CheckOptions, CheckReport, Evaluator, RuleResult, Status, Violation, MAX_LISTED};
pub use judge::{EvidenceLevel, Shortfall};
pub use rules::{load_rules, parse_rules, Cidr, Match, Pattern, Requirement, Rule, RulesError, ValueError};
