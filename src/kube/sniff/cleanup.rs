//! `kubectl mtlscope cleanup`: delete the helper pods a run left behind.

use crate::kube::client::{self, KubeTarget};
use crate::kube::labels::{ANNOTATION_TARGETS, LABEL_MANAGED_BY, MANAGED_BY};
use anyhow::{Context, Result};
use std::io::{self, Write};

/// `kubectl mtlscope cleanup`: delete helper pods left behind (a plugin killed with SIGKILL, a
/// lost connection to the API server).
pub fn cleanup(kube: &KubeTarget, namespace: Option<String>, all_namespaces: bool, dry_run: bool) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let (client, default_ns) = client::connect(kube).await?;
        let ns = if all_namespaces {
            None
        } else {
            Some(namespace.unwrap_or(default_ns))
        };
        let selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY}");
        let pods = client::list_pods_labelled(&client, ns.as_deref(), &selector).await?;
        let mut out = io::stdout().lock();
        if pods.is_empty() {
            match &ns {
                Some(n) => writeln!(out, "No mtlscope helper pods found in namespace {n}.")?,
                None => writeln!(out, "No mtlscope helper pods found.")?,
            }
            return Ok(crate::report::EXIT_OK);
        }
        let mut failed = 0;
        for p in pods {
            let name = p.metadata.name.clone().unwrap_or_default();
            let pns = p.metadata.namespace.clone().unwrap_or_default();
            let targets = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_TARGETS))
                .cloned()
                .unwrap_or_default();
            if dry_run {
                writeln!(out, "pod/{name} in {pns} would be deleted (captured in: {targets})")?;
                continue;
            }
            match client::delete_pod(&client, &pns, &name).await {
                Ok(()) => writeln!(out, "pod/{name} deleted from {pns} (captured in: {targets})")?,
                Err(e) => {
                    failed += 1;
                    eprintln!("mtlscope: {e}");
                }
            }
        }
        Ok(if failed > 0 {
            crate::report::EXIT_BAD_INPUT
        } else {
            crate::report::EXIT_OK
        })
    })
}
