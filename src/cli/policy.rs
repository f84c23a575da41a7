//! `mtlscope policy explain`: the effective PeerAuthentication mode for a pod and port, the
//! policy that decided it and the ones that were ignored, from a cluster dump or the cluster.

use super::flags::{CheckFormat, ExplainArgs};
use super::setup::load_cluster;
use crate::policy::Explanation;
use crate::report::EXIT_OK;
use anyhow::{Context, Result};
use std::io::{self, Write};

/// `mtlscope policy explain`.
pub fn explain(args: &ExplainArgs) -> Result<i32> {
    let c = load_cluster(
        "--from",
        &args.from,
        &args.kube,
        args.root_namespace.as_deref(),
        Some(&args.namespace),
    )?
    .context("--from or --cluster is required")?;
    let pod = c.find_pod(&args.namespace, &args.pod)?;
    let (port, d) = match (args.port, args.service_port) {
        (Some(p), _) => (p, c.effective(pod, p)),
        (None, Some(sp)) => {
            let found = c.effective_for_service_port(pod, sp).with_context(|| {
                format!(
                    "no Service in {} selects pod {} with port {sp}",
                    pod.namespace, pod.name
                )
            })?;
            (found.port, found.decision)
        }
        // clap requires one of them; said again rather than assumed.
        (None, None) => anyhow::bail!("--port or --service-port is required"),
    };
    let mut out = io::stdout().lock();
    match args.format {
        CheckFormat::Json => {
            serde_json::to_writer(&mut out, &Explanation::new(pod, port, &d))?;
            writeln!(out)?;
        }
        CheckFormat::Text => {
            writeln!(out, "{}/{} port {port}: {}", pod.namespace, pod.name, d.mode.as_str())?;
            let by = &d.decided_by;
            match (&by.namespace, &by.name) {
                (Some(ns), Some(n)) => {
                    writeln!(out, "  decided by: {} {ns}/{n} ({} level)", by.kind, by.level.as_str())?
                }
                _ => writeln!(out, "  decided by: default (no PeerAuthentication applies: PERMISSIVE)")?,
            }
            for a in &d.applied {
                writeln!(
                    out,
                    "  applied:    {} {}/{}: {}",
                    a.level.as_str(),
                    a.namespace,
                    a.name,
                    a.mode.as_str()
                )?;
            }
            for i in &d.ignored {
                writeln!(out, "  ignored:    {}/{}: {}", i.namespace, i.name, i.reason)?;
            }
            writeln!(
                out,
                "  root namespace: {} ({})",
                c.root_namespace(),
                c.root_namespace_origin()
            )?;
            if !pod.sidecar && !pod.ambient {
                writeln!(
                    out,
                    "  note: the pod has no sidecar and is not in ambient mode: nothing enforces this mode"
                )?;
            }
        }
    }
    Ok(EXIT_OK)
}
