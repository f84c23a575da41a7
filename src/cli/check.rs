//! `mtlscope check`: the CI gate. Rules from `--require` and `--rules`, the connections of
//! capture files or a live capture, then the result as text, JSON, GitHub annotations and
//! JUnit XML; exit 1 on a violation, 2 when an input could not be read completely.

use super::flags::{CheckArgs, CheckFormat};
use super::run::{checked, live, report_errors, report_live};
use crate::check::{self, CheckOptions, Requirement, Rule};
use crate::pipeline::filter::PacketFilter;
use crate::pipeline::runner::{engine, Inputs};
use crate::report::{EXIT_OK, EXIT_VIOLATION};
use anyhow::{Context, Result};
use std::io::{self, Write};

/// `mtlscope check`.
pub fn check(args: &CheckArgs) -> Result<i32> {
    let rules = rules(args)?;
    let expr = filter_expr(args);
    let filter = expr
        .as_deref()
        .map(PacketFilter::new)
        .transpose()
        .context("-f/--filter or --exclude")?;
    let mut cfg = args.input.limits.config();
    let live_capture = args.live.interface.is_some();
    cfg.keylog = super::analyze::load_keylog(&args.input.keylog_file, live_capture)?;
    let cluster = args.input.policy.load()?;
    if cluster.is_none() && rules.iter().any(|r| r.require == Requirement::Policy) {
        anyhow::bail!("--require policy needs --policy-from (a cluster dump with the PeerAuthentications)");
    }
    let opts = CheckOptions {
        evidence: args.evidence,
        allow_empty: args.allow_empty,
        min_flows: args.min_flows,
        include_loopback: args.include_loopback,
    };
    // Each connection is judged when it is reported and let go: the check keeps counts and
    // the first violations, not the connections.
    let engine = engine(cfg, check::Evaluator::new(&rules, &opts), cluster.as_ref());
    let ran = match args.live.options(expr) {
        Some(options) => {
            if !args.input.inputs.is_empty() {
                anyhow::bail!("give capture files or -i/--interface, not both");
            }
            super::setup::refuse_packets_on_stdout(&options, "the check's result")?;
            let ran = live(&options, engine, false)?;
            report_live(&ran.summary);
            ran
        }
        None => {
            if args.input.inputs.is_empty() {
                anyhow::bail!(
                    "no capture file given (name files, as arguments or with -r FILE, `-` for standard input, or -i IFACE to capture live)"
                );
            }
            let inputs = Inputs {
                paths: &args.input.inputs,
                filter,
                progress: args.input.progress(),
            };
            checked(inputs.run(engine))?
        }
    };
    super::analyze::report_keylog(&ran.summary);
    let mut result = ran.out.finish();
    result.add_input_errors(&ran.summary.errors);
    write_result(args, &result)?;
    // An input not read completely fails the check whatever the rules said.
    let code = report_errors(&ran.summary.errors);
    Ok(if code != EXIT_OK {
        code
    } else if result.ok {
        EXIT_OK
    } else {
        EXIT_VIOLATION
    })
}

/// The `--rules` file's rules, after a first one over every connection for `--require`;
/// `--allow-uncertain` is then said on each.
fn rules(args: &CheckArgs) -> Result<Vec<Rule>> {
    let mut rules = match &args.rules {
        Some(path) => check::load_rules(path)?,
        None => Vec::new(),
    };
    if let Some(level) = args.require {
        let name = match &args.exclude {
            Some(x) => format!("every connection (--require, --exclude '{x}')"),
            None => "every connection (--require)".to_string(),
        };
        rules.insert(
            0,
            Rule {
                name,
                selector: Default::default(),
                require: level,
                client_identity: None,
                allow_uncertain: false,
            },
        );
    }
    if args.allow_uncertain {
        for r in &mut rules {
            r.allow_uncertain = true;
        }
    }
    Ok(rules)
}

/// `-f` without what `--exclude` matches. --exclude drops the packets it matches, so the
/// connections they make are never seen.
fn filter_expr(args: &CheckArgs) -> Option<String> {
    match (&args.input.filter, &args.exclude) {
        (Some(f), Some(x)) => Some(format!("({f}) and not ({x})")),
        (Some(f), None) => Some(f.clone()),
        (None, Some(x)) => Some(format!("not ({x})")),
        (None, None) => None,
    }
}

/// GitHub annotations on standard error (under GitHub Actions: the runner reads both streams),
/// then the text or JSON result on standard output; the JUnit file with `--junit`.
fn write_result(args: &CheckArgs, result: &check::CheckReport) -> Result<()> {
    if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
        // The report has no file per connection: name the capture when there is only one.
        let file = match args.input.inputs.as_slice() {
            [one] if one != "-" => Some(one.as_str()),
            _ => None,
        };
        let mut err = io::stderr().lock();
        err.write_all(result.github(args.allow_empty, file).as_bytes())
            .and_then(|()| err.flush())
            .context("writing the GitHub annotations to standard error")?;
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        CheckFormat::Text => out.write_all(result.text(args.allow_empty).as_bytes())?,
        CheckFormat::Json => {
            serde_json::to_writer_pretty(&mut out, result)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush().context("writing to standard output")?;
    if let Some(path) = &args.junit {
        std::fs::write(path, result.junit(args.allow_empty))
            .with_context(|| format!("--junit {}: cannot write the report", path.display()))?;
    }
    Ok(())
}
