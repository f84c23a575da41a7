//! `mtlscope readiness` (`kubectl mtlscope readiness`): can a namespace switch to STRICT? Reads
//! what the monitors counted from Prometheus ([`crate::readiness`]) and prints a table or JSON;
//! the exit status says whether every port is ready (docs/readiness.md).

use super::values;
use crate::promql::Prometheus;
use crate::readiness::{output, readiness};
use crate::report::{terminal_width, EXIT_OK, EXIT_VIOLATION};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

pub const READINESS_EXAMPLES: &str = "Examples:
  kubectl mtlscope readiness -n bookinfo
  kubectl mtlscope readiness -n bookinfo --since 24h --prometheus http://localhost:9090
  kubectl mtlscope readiness -n bookinfo -o json --prometheus https://prometheus.example --prometheus-token-file token";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadinessFormat {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ReadinessArgs {
    /// The namespace whose servers would switch to STRICT.
    #[arg(short = 'n', long, value_name = "NS", value_parser = namespace)]
    pub namespace: String,
    /// The window to look back over (30m, 1h, 7d): 10s to 90 days.
    #[arg(long, default_value = "1h", value_parser = since, value_name = "DURATION")]
    pub since: Duration,
    /// The Prometheus that scrapes the monitors (http or https).
    #[arg(long, default_value = "http://localhost:9090", value_name = "URL")]
    pub prometheus: String,
    /// A file holding a bearer token for Prometheus (never on the command line, where `ps`
    /// shows it).
    #[arg(long, value_name = "FILE")]
    pub prometheus_token_file: Option<PathBuf>,
    /// table or json.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        default_value = "table",
        value_name = "FORMAT"
    )]
    pub format: ReadinessFormat,
}

fn since(s: &str) -> Result<Duration, String> {
    values::duration_in(
        s,
        Duration::from_secs(10)..=Duration::from_secs(90 * 86400),
        "how far back to look",
    )
}

/// A namespace name as Kubernetes allows it (an RFC 1123 label), so it is safe in PromQL.
fn namespace(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a namespace name (lower-case letters, digits and '-', at most 63)"
        ))
    }
}

/// Run `readiness`: 0 every port safe or already STRICT, 1 one is not (or had no traffic), 2
/// an error (Prometheus down, a bad flag).
pub fn run(args: &ReadinessArgs) -> Result<i32> {
    let token = match &args.prometheus_token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("--prometheus-token-file {}: cannot read it", p.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(async {
        let prom = Prometheus::new(&args.prometheus, token)?;
        readiness(&prom, &args.namespace, args.since).await
    })?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        ReadinessFormat::Json => output::write_json(&mut out, &result)?,
        ReadinessFormat::Table => output::write_table(&mut out, &result, terminal_width())?,
    }
    out.flush()?;
    Ok(if result.all_ready() { EXIT_OK } else { EXIT_VIOLATION })
}
