//! Readiness for people (a comfy-table table and one line per port saying why) and for programs
//! (one JSON document, docs/readiness.md).

use super::model::{rfc3339_text, ClientTraffic, PortReadiness, PortVerdict, Readiness};
use crate::report::Width;
use std::io::{self, Write};

/// The JSON document: the [`Readiness`] plus `ready` (what the exit status says).
pub fn write_json(out: &mut dyn Write, r: &Readiness) -> io::Result<()> {
    let mut v = serde_json::to_value(r).map_err(io::Error::other)?;
    v["ready"] = serde_json::Value::Bool(r.all_ready());
    serde_json::to_writer_pretty(&mut *out, &v).map_err(io::Error::other)?;
    writeln!(out)
}

fn n(p: &ClientTraffic, verdict: &str) -> String {
    p.connections.get(verdict).copied().unwrap_or(0).to_string()
}

/// The table (one row per client of each port) and, under it, one line per port with its
/// verdict and, when not safe, the clients to fix first.
pub fn write_table(out: &mut dyn Write, r: &Readiness, width: Width) -> io::Result<()> {
    use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
    if r.ports.is_empty() {
        return writeln!(
            out,
            "no connections to namespace {} in the last {} at {}: is `mtlscope monitor` running on its nodes \
             and is Prometheus scraping it? (query `{}` there)",
            r.namespace,
            ::humantime::format_duration(r.window),
            r.prometheus,
            crate::promql::queries::CONNECTIONS
        );
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    match width {
        Width::Columns(w) => {
            t.set_content_arrangement(ContentArrangement::Dynamic);
            t.set_width(w);
        }
        Width::Terminal => {
            t.set_content_arrangement(ContentArrangement::Dynamic);
        }
        Width::Unlimited => {
            t.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    t.set_header([
        "WORKLOAD",
        "PORT",
        "MODE",
        "CLIENT",
        "MTLS",
        "TLS",
        "PLAINTEXT",
        "OTHER",
        "LAST SEEN",
        "VERDICT",
    ]);
    for p in &r.ports {
        let verdict = p.verdict.text();
        if p.clients.is_empty() {
            t.add_row([
                &p.workload,
                &p.port,
                &p.expected_mode,
                "-",
                "0",
                "0",
                "0",
                "0",
                "-",
                verdict,
            ]);
        }
        for (i, c) in p.clients.iter().enumerate() {
            let other = c.connections.get("encrypted").copied().unwrap_or(0)
                + c.connections.get("no-data").copied().unwrap_or(0);
            let first = i == 0;
            t.add_row([
                if first { p.workload.clone() } else { String::new() },
                if first { p.port.clone() } else { String::new() },
                if first { p.expected_mode.clone() } else { String::new() },
                format!("{}.{}", c.workload, c.namespace),
                n(c, "mtls"),
                n(c, "tls"),
                n(c, "plaintext"),
                other.to_string(),
                c.last_seen.map_or_else(|| "-".to_owned(), rfc3339_text),
                if first { verdict.to_owned() } else { String::new() },
            ]);
        }
    }
    writeln!(out, "{t}")?;
    for p in &r.ports {
        writeln!(out, "{}", port_line(p, r))?;
    }
    Ok(())
}

/// `reviews:9080 (PERMISSIVE): not safe: productpage.bookinfo sent plaintext (12) ...`
pub fn port_line(p: &PortReadiness, r: &Readiness) -> String {
    let window = ::humantime::format_duration(r.window);
    let head = format!("{}:{} ({})", p.workload, p.port, p.expected_mode);
    match p.verdict {
        PortVerdict::Safe => format!(
            "{head}: safe to switch to STRICT: all {} client(s) used mTLS in the last {window}",
            p.clients.iter().filter(|c| c.with_data() > 0).count()
        ),
        PortVerdict::Strict => format!("{head}: already STRICT"),
        PortVerdict::NoTraffic => {
            format!("{head}: no traffic in the last {window}: nothing proves it safe; try a longer --since")
        }
        PortVerdict::NotSafe => {
            let why: Vec<String> = p
                .clients
                .iter()
                .filter(|c| c.insecure() + c.unproven() > 0)
                .map(|c| {
                    let mut parts = Vec::new();
                    for (v, what) in [
                        ("plaintext", "plaintext"),
                        ("tls", "TLS without a client certificate"),
                        ("encrypted", "encrypted traffic whose handshake was not seen"),
                    ] {
                        if let Some(k) = c.connections.get(v).filter(|k| **k > 0) {
                            parts.push(format!("{what} ({k})"));
                        }
                    }
                    format!("{}.{} sent {}", c.workload, c.namespace, parts.join(", "))
                })
                .collect();
            format!("{head}: not safe: {}", why.join("; "))
        }
    }
}
