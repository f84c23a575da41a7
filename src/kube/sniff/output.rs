//! What `sniff` prints: the connections as they arrive (JSON lines) or at the end (a table or
//! one JSON document) with the summary over every agent, and with `--dry-run` the helper pods.

use super::cluster::{join_cluster, Known};
use super::options::{SniffFormat, SniffOptions};
use super::plan::{agent_command, Capture};
use crate::kube::labels::CONTAINER;
use crate::pipeline::record::Summary;
use crate::pipeline::verdict::Kind;
use crate::report::{self, Row};
use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::io::{self, Write};
use std::time::{Duration, Instant};

pub(super) fn print_dry_run(
    helpers: &[(String, Pod)],
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
                writeln!(
                    out,
                    "# helper for node {node}; the plugin then runs, through exec in container {CONTAINER}:"
                )?;
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

/// Where the connections go, in the chosen format.
pub(super) struct Results {
    pub(super) format: SniffFormat,
    /// Kept for a table or a JSON document; JSON lines are written at once.
    pub(super) flows: Vec<Value>,
    pub(super) counts: Summary,
    pub(super) summaries: Vec<Option<Value>>,
    /// Kernel counters reported apart from the summary (agents streaming pcap).
    pub(super) kernel: Vec<Option<Value>>,
    /// The agents' last lines on stderr, for an error message.
    pub(super) stderr: Vec<Vec<String>>,
    pub(super) live_status: bool,
    pub(super) last_status: Instant,
}

impl Results {
    pub(super) fn new(format: SniffFormat, captures: &[Capture]) -> Results {
        use std::io::IsTerminal;
        Results {
            format,
            flows: Vec::new(),
            counts: Summary::default(),
            summaries: vec![None; captures.len()],
            kernel: vec![None; captures.len()],
            stderr: vec![Vec::new(); captures.len()],
            live_status: format == SniffFormat::Table && io::stderr().is_terminal(),
            last_status: Instant::now(),
        }
    }

    pub(super) fn flow(&mut self, i: usize, mut v: Value, captures: &[Capture], cluster: Option<&Known>) -> Result<()> {
        join_cluster(&mut v, cluster);
        count_json(&mut self.counts, &v);
        v["captured_in"] = json!({
            "pod": captures[i].label(),
            "container": captures[i].container,
            "node": captures[i].node,
        });
        if self.format == SniffFormat::Jsonl {
            let mut out = io::stdout().lock();
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
            out.flush()?;
        } else {
            self.flows.push(v);
        }
        Ok(())
    }

    pub(super) fn summary(&mut self, i: usize, v: Value) {
        self.summaries[i] = Some(v);
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
        let (summary, line) = self.total(captures);
        let mut out = io::BufWriter::new(io::stdout().lock());
        match self.format {
            SniffFormat::Jsonl => {
                serde_json::to_writer(&mut out, &json!({ "summary": summary }))?;
                writeln!(out)?;
            }
            SniffFormat::Json | SniffFormat::Yaml => {
                serde_json::to_writer_pretty(&mut out, &json!({"summary": summary, "flows": self.flows}))?;
                writeln!(out)?;
            }
            SniffFormat::Table => {
                let rows: Vec<Row> = self.flows.iter().map(Row::from_json).collect();
                report::write_rows(&mut out, &rows, &line, crate::report::terminal_width())?;
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

    /// The summary over every agent: counts from the connections, packet and kernel counters
    /// from the agents' summaries, one entry per capture.
    fn total(&self, captures: &[Capture]) -> (Value, String) {
        let mut s = self.counts.clone();
        let mut per_capture = Vec::new();
        for (i, c) in captures.iter().enumerate() {
            let agent = self.summaries[i].as_ref();
            let n = |k: &str| agent.and_then(|a| a.get(k)).and_then(Value::as_u64).unwrap_or(0);
            s.packets += n("packets");
            s.tcp_packets += n("tcp_packets");
            s.evicted_flows += n("evicted_flows");
            s.buffer_limit_hits += n("buffer_limit_hits");
            for e in agent
                .and_then(|a| a.get("errors"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(e) = e.as_str() {
                    s.errors.push(format!("{}: {e}", c.label()));
                }
            }
            per_capture.push(json!({
                "pod": c.label(),
                "container": c.container,
                "node": c.node,
                "helper": c.helper,
                "capture": agent
                    .and_then(|a| a.get("capture"))
                    .filter(|c| !c.is_null())
                    .or(self.kernel[i].as_ref())
                    .cloned()
                    .unwrap_or(Value::Null),
                "written": c.write.as_ref().map(|w| w.display().to_string()),
                "finished": agent.is_some(),
            }));
        }
        let line = s.line();
        let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
        v["captures"] = Value::Array(per_capture);
        (v, line)
    }
}

/// Count a connection's JSON into a summary as [`Summary::count`] counts a verdict.
fn count_json(s: &mut Summary, f: &Value) {
    s.connections += 1;
    if let Some(k) = f
        .get("verdict")
        .and_then(Value::as_str)
        .and_then(|v| Kind::ALL.iter().find(|k| k.name() == v))
    {
        *s.verdicts.entry(k.name()).or_default() += 1;
    }
    match f.get("confidence").and_then(Value::as_str) {
        Some("inferred") => s.inferred += 1,
        Some("uncertain") => s.uncertain += 1,
        _ => {}
    }
    let severity = f.pointer("/kubernetes/policy/finding/severity").and_then(Value::as_str);
    if let Some(key) = ["violation", "warning", "note"]
        .into_iter()
        .find(|k| Some(*k) == severity)
    {
        *s.findings.entry(key).or_default() += 1;
    }
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
    fn counts_from_json() {
        let mut s = Summary::default();
        count_json(
            &mut s,
            &json!({"verdict": "plaintext", "confidence": "certain",
                    "kubernetes": {"policy": {"finding": {"severity": "violation", "message": "x"}}}}),
        );
        count_json(&mut s, &json!({"verdict": "mtls", "confidence": "inferred"}));
        assert_eq!(
            s.line(),
            "2 connections: 1 mtls, 1 plaintext (1 inferred); PeerAuthentication: 1 violation"
        );
    }
}
