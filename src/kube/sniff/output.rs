//! What `sniff` prints: the connections as they arrive (JSON lines) or at the end (a table or
//! one JSON document) with the summary over every agent, and with `--dry-run` the helper pods.

use super::cluster::{join_cluster, Known};
use super::options::{SniffFormat, SniffOptions};
use super::plan::{agent_command, Capture};
use crate::kube::helper_pod::UPLOADED_AGENT;
use crate::kube::labels::CONTAINER;
use crate::kube::upload::{upload_command, Agent};
use crate::pipeline::record::{CaptureStats, FlowReport, Summary, SCHEMA_VERSION};
use crate::report::{self, Row};
use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// `--dry-run`: the helper pods as YAML, each with the upload and the agent commands it would
/// run as comments, or as JSON.
pub(super) fn print_dry_run(
    helpers: &[(String, Pod)],
    agents: &BTreeMap<String, Agent>,
    captures: &[Capture],
    opts: &SniffOptions,
    format: SniffFormat,
) -> Result<()> {
    let mut out = io::stdout().lock();
    let commands = |node: &str| -> Vec<String> {
        captures
            .iter()
            .filter(|c| c.node == node)
            .map(|c| format!("{}: {}", c.label(), shell_words::join(agent_command(c, opts))))
            .collect()
    };
    match format {
        SniffFormat::Json => {
            let items: Vec<Value> = helpers
                .iter()
                .map(|(_, p)| serde_json::to_value(p))
                .collect::<Result<_, _>>()?;
            let doc = if items.len() == 1 {
                items.into_iter().next().unwrap_or_default()
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items})
            };
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        _ => {
            for (i, (node, pod)) in helpers.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                match agents.get(node) {
                    Some(agent) => {
                        writeln!(
                            out,
                            "# helper for node {node}; through exec in container {CONTAINER}, the plugin uploads the \
                             agent\n#   {}\n# into {UPLOADED_AGENT}, on the standard input of:",
                            agent.describe()
                        )?;
                        let cmd = upload_command(agent);
                        writeln!(out, "#   sh -c \"$SCRIPT\" {}", shell_words::join(&cmd[3..]))?;
                        writeln!(out, "# where SCRIPT is:")?;
                        for line in cmd[2].lines() {
                            writeln!(out, "#     {line}")?;
                        }
                        writeln!(out, "# then runs:")?;
                    }
                    None => writeln!(
                        out,
                        "# helper for node {node}; the plugin then runs, through exec in container {CONTAINER}:"
                    )?,
                }
                for c in commands(node) {
                    writeln!(out, "#   {c}")?;
                }
                out.write_all(serde_norway::to_string(pod)?.as_bytes())?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// One connection as the plugin prints it: the record the agent sent, joined to the cluster,
/// and where it was captured.
#[derive(Serialize)]
struct PluginFlow<'a> {
    #[serde(flatten)]
    report: &'a FlowReport,
    captured_in: &'a CapturedIn,
}

#[derive(Debug, Clone, Serialize)]
struct CapturedIn {
    /// `namespace/name` of the target pod.
    pod: String,
    container: String,
    node: String,
}

/// The summary over every agent, with one entry per capture.
#[derive(Serialize)]
struct PluginSummary<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    captures: Vec<CaptureEntry<'a>>,
}

#[derive(Serialize)]
struct CaptureEntry<'a> {
    pod: String,
    container: &'a str,
    node: &'a str,
    helper: Option<&'a str>,
    /// The kernel's counters: from the agent's summary, or its stderr line with `-w`.
    capture: Option<&'a CaptureStats>,
    written: Option<String>,
    /// The agent's summary arrived.
    finished: bool,
}

/// Where the connections go, in the chosen format.
pub(super) struct Results {
    format: SniffFormat,
    /// Where each capture's connections were captured, as printed with them.
    captured_in: Vec<CapturedIn>,
    /// Kept for a table or a JSON document, with the capture they came from; JSON lines are
    /// written at once.
    flows: Vec<(FlowReport, usize)>,
    counts: Summary,
    /// The agents' summaries, as they arrive.
    pub(super) summaries: Vec<Option<Summary>>,
    /// Kernel counters reported apart from the summary (agents streaming pcap).
    pub(super) kernel: Vec<Option<CaptureStats>>,
    /// The agents' last lines on stderr, for an error message.
    stderr: Vec<Vec<String>>,
    live_status: bool,
    last_status: Instant,
}

impl Results {
    pub(super) fn new(format: SniffFormat, captures: &[Capture]) -> Results {
        use std::io::IsTerminal;
        Results {
            format,
            captured_in: captures
                .iter()
                .map(|c| CapturedIn {
                    pod: c.label(),
                    container: c.container.clone(),
                    node: c.node.clone(),
                })
                .collect(),
            flows: Vec::new(),
            counts: Summary::default(),
            summaries: vec![None; captures.len()],
            kernel: vec![None; captures.len()],
            stderr: vec![Vec::new(); captures.len()],
            live_status: format == SniffFormat::Table && io::stderr().is_terminal(),
            last_status: Instant::now(),
        }
    }

    /// A connection from the agent for capture `i`: joined to the cluster, counted, and
    /// printed now (JSON lines) or kept for the end.
    pub(super) fn flow(&mut self, i: usize, mut report: FlowReport, cluster: Option<&Known>) -> Result<()> {
        join_cluster(&mut report, cluster);
        self.counts.count(&report.verdict);
        self.counts.count_finding(&report.kubernetes);
        if self.format == SniffFormat::Jsonl {
            let mut out = io::stdout().lock();
            write_line(&mut out, &self.line(&report, i))?;
            out.flush()?;
        } else {
            self.flows.push((report, i));
        }
        Ok(())
    }

    fn line<'a>(&'a self, report: &'a FlowReport, i: usize) -> PluginFlow<'a> {
        PluginFlow {
            report,
            captured_in: &self.captured_in[i],
        }
    }

    pub(super) fn summary(&mut self, i: usize, s: Summary) {
        self.summaries[i] = Some(s);
    }

    pub(super) fn agent_said(&mut self, i: usize, line: &str, captures: &[Capture]) {
        eprintln!("[{}] {line}", captures[i].label());
        let s = &mut self.stderr[i];
        s.push(line.to_owned());
        if s.len() > 5 {
            s.remove(0);
        }
    }

    pub(super) fn last_words(&self, i: usize) -> String {
        match self.stderr[i].last() {
            Some(l) => format!(" (it said: {l})"),
            None => String::new(),
        }
    }

    /// A status line on a terminal while the table is being collected.
    pub(super) fn tick(&mut self, started: Instant, running: usize) {
        if !self.live_status || self.last_status.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last_status = Instant::now();
        eprint!(
            "\r\x1b[Kcapturing for {}s | {} connections | {running} agent(s) running | Ctrl-C to stop",
            started.elapsed().as_secs(),
            self.counts.connections
        );
    }

    pub(super) fn finish(&mut self, captures: &[Capture]) -> Result<()> {
        if self.live_status {
            eprint!("\r\x1b[K");
        }
        let total = self.total();
        let summary = PluginSummary {
            summary: &total,
            captures: self.captures(captures),
        };
        let mut out = io::BufWriter::new(io::stdout().lock());
        match self.format {
            SniffFormat::Jsonl => {
                #[derive(Serialize)]
                struct Line<'a> {
                    schema_version: u32,
                    summary: PluginSummary<'a>,
                }
                let line = Line {
                    schema_version: SCHEMA_VERSION,
                    summary,
                };
                write_line(&mut out, &line)?;
            }
            SniffFormat::Json | SniffFormat::Yaml => {
                #[derive(Serialize)]
                struct Document<'a> {
                    schema_version: u32,
                    summary: PluginSummary<'a>,
                    flows: Vec<PluginFlow<'a>>,
                }
                let doc = Document {
                    schema_version: SCHEMA_VERSION,
                    summary,
                    flows: self.flows.iter().map(|(f, i)| self.line(f, *i)).collect(),
                };
                serde_json::to_writer_pretty(&mut out, &doc)?;
                writeln!(out)?;
            }
            SniffFormat::Table => {
                let rows: Vec<Row> = self.flows.iter().map(|(f, _)| Row::from_report(f)).collect();
                report::write_rows(&mut out, &rows, &total.line(), crate::report::terminal_width())?;
            }
        }
        out.flush()?;
        for c in captures {
            if let Some(w) = &c.write {
                eprintln!("mtlscope: packets of {} written to {}", c.label(), w.display());
            }
        }
        Ok(())
    }

    /// The summary over every agent: counts from the connections, packet counters and errors
    /// from the agents' summaries.
    fn total(&self) -> Summary {
        let mut s = self.counts.clone();
        for (a, c) in self.summaries.iter().zip(&self.captured_in) {
            let Some(a) = a else {
                continue;
            };
            s.packets += a.packets;
            s.tcp_packets += a.tcp_packets;
            s.evicted_flows += a.evicted_flows;
            s.buffer_limit_hits += a.buffer_limit_hits;
            s.errors.extend(a.errors.iter().map(|e| format!("{}: {e}", c.pod)));
        }
        s
    }

    fn captures<'a>(&'a self, captures: &'a [Capture]) -> Vec<CaptureEntry<'a>> {
        captures
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let agent = self.summaries[i].as_ref();
                CaptureEntry {
                    pod: c.label(),
                    container: &c.container,
                    node: &c.node,
                    helper: c.helper.as_deref(),
                    capture: agent.and_then(|a| a.capture.as_ref()).or(self.kernel[i].as_ref()),
                    written: c.write.as_ref().map(|w| w.display().to_string()),
                    finished: agent.is_some(),
                }
            })
            .collect()
    }
}

/// One JSON line, as [`crate::report::JsonLines`] writes the agent's.
fn write_line(out: &mut impl Write, line: &impl Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        let w: Vec<String> = ["mtlscope", "-f", "tcp port 9080", "it's"].map(String::from).to_vec();
        assert_eq!(shell_words::join(&w), "mtlscope -f 'tcp port 9080' 'it'\\''s'");
        // As the dry run prints an agent command: IDs and paths stay bare.
        let agent = [
            "mtlscope",
            "agent",
            "--container-id",
            "containerd://3f1c9e7a0b2d",
            "--duration",
            "30000ms",
        ];
        assert_eq!(
            shell_words::join(agent),
            "mtlscope agent --container-id containerd://3f1c9e7a0b2d --duration 30000ms"
        );
    }

    #[test]
    fn a_connection_is_the_agents_record_then_where_it_was_captured() {
        let capture = Capture {
            pod: crate::policy::Pod {
                namespace: "ns".into(),
                name: "web-0".into(),
                ..Default::default()
            },
            container: "app".into(),
            container_id: "containerd://aaaaaaaaaaaa".into(),
            node: "n1".into(),
            helper: Some("mtlscope-n1-abcde".into()),
            write: None,
        };
        let mut r = Results::new(SniffFormat::Json, std::slice::from_ref(&capture));
        let report = crate::report::json::tests::sample_report(7);
        r.flow(0, report.clone(), None).unwrap();
        assert_eq!(r.counts.line(), "1 connection: 1 no-data");
        let (kept, i) = &r.flows[0];
        let line = serde_json::to_string(&r.line(kept, *i)).unwrap();
        let agent = serde_json::to_string(&report).unwrap();
        assert_eq!(
            line,
            format!(
                "{},\"captured_in\":{{\"pod\":\"ns/web-0\",\"container\":\"app\",\"node\":\"n1\"}}}}",
                agent.strip_suffix('}').unwrap()
            )
        );
    }
}
