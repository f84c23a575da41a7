//! `mtlscope monitor`: [`crate::monitor::run`] until Ctrl-C or SIGTERM, fed either by the pod
//! follower (`--node`: the node's pods as targets, the cluster's objects in the view, from the
//! API) or by the command line (`--netns`, or the monitor's own namespace, and the cluster of
//! `--policy-from`); with `--reports`, the OpenReports writer beside it.

use super::flags::MonitorArgs;
use crate::kube::client::KubeTarget;
use crate::kube::follow::FollowOptions;
use crate::kube::reports::ReportOptions;
use crate::live::netns::NetnsTarget;
use crate::monitor::targets::{Target, TargetEvent};
use crate::monitor::view::ClusterView;
use crate::monitor::MonitorOptions;
use crate::policy::Cluster;
use crate::promql::Prometheus;
use crate::report::EXIT_OK;
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// `mtlscope monitor`.
pub fn monitor(args: &MonitorArgs) -> Result<i32> {
    let node = args
        .node
        .clone()
        .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()));
    if node.is_some() && !args.policy.policy_from.is_empty() {
        anyhow::bail!(
            "--policy-from is for a monitor outside a cluster: with --node (or NODE_NAME) the pods,              Services and PeerAuthentications come from the API; drop one of them"
        );
    }
    let cluster = match (&node, args.policy.load()?) {
        (None, Some(c)) => Arc::unwrap_or_clone(c),
        _ => Cluster::new(),
    };
    let view = Arc::new(ClusterView::new(cluster));
    let (tx, rx) = mpsc::channel();
    if node.is_none() {
        for target in fixed_targets(&args.netns) {
            // The receiver is alive: it is `rx`, not yet handed over.
            let _ = tx.send(TargetEvent::Add(target));
        }
    }
    let stop = stop_on_signals()?;
    let kube = match (&node, args.reports) {
        (None, false) => None,
        _ => Some(kube_thread(args, node.clone(), tx.clone(), view.clone(), stop.clone())?),
    };
    drop(tx);
    let opts = MonitorOptions {
        interface: args.interface.clone(),
        snaplen: 262_144,
        buffer_size: args.buffer_size,
        max_pods: args.max_pods,
        metrics_addr: args.metrics_addr,
        engine: args.limits.config(),
        node,
    };
    let ran = crate::monitor::run(&opts, rx, view, stop.clone());
    // The API side stops with the monitor, and a failure there (RBAC, credentials) stopped it.
    stop.store(true, Ordering::Relaxed);
    let kube = kube.map(|t| {
        t.join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the Kubernetes API thread panicked")))
    });
    ran?;
    if let Some(Err(e)) = kube {
        return Err(e);
    }
    Ok(EXIT_OK)
}

/// The Kubernetes side on a thread of its own (the capture threads and the metrics server do
/// not wait on it): the pod follower of `--node`, which sends the node's pods as targets and
/// keeps `view` current, and the Report writer of `--reports`. The follower failing for good
/// (no permission, no credentials) sets `stop`, so the monitor ends with that error; the Report
/// writer failing is a warning and ends only the writer.
fn kube_thread(
    args: &MonitorArgs,
    node: Option<String>,
    targets: mpsc::Sender<TargetEvent>,
    view: Arc<ClusterView>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let follow = node.map(|node| {
        let mut o = FollowOptions::new(node, args.proc_root.clone());
        o.root_namespace = args.policy.root_namespace.clone();
        o
    });
    let reports = match (args.reports, &args.prometheus) {
        (true, Some(url)) => {
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let namespace = args
                .lease_namespace
                .clone()
                .or_else(|| env("POD_NAMESPACE"))
                .unwrap_or_default();
            let identity = env("POD_NAME").unwrap_or_default();
            let mut o = ReportOptions::new(Prometheus::new(url, None)?, &namespace, &identity);
            o.interval = args.report_interval;
            o.window = args.report_window;
            Some(o)
        }
        _ => None,
    };
    let target = KubeTarget {
        kubeconfig: args.policy.kube.kubeconfig.clone(),
        context: args.policy.kube.context.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(std::thread::Builder::new().name("kubernetes".into()).spawn(move || {
        let result = runtime.block_on(async {
            let client = crate::kube::client::client(&target).await?;
            let follow = async {
                match follow {
                    Some(o) => crate::kube::follow::follow(client.clone(), o, targets, view, stopped(&stop)).await,
                    None => Ok(()),
                }
            };
            let reports = async {
                match reports {
                    Some(o) => crate::kube::reports::run_reports(client.clone(), o, stopped(&stop)).await,
                    None => Ok(()),
                }
            };
            // The follower failing for good stops the monitor (through `stop`): without it the
            // targets and the view go stale. The Report writer failing (no permission on
            // Reports or Leases) stops only itself: capture and /metrics go on.
            let (f, ()) = tokio::join!(
                async {
                    let r = follow.await;
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    r
                },
                async {
                    if let Err(e) = reports.await {
                        eprintln!("mtlscope: warning: the Report writer stopped: {e}; capture and /metrics go on");
                    }
                }
            );
            f.context("following the node's pods")?;
            anyhow::Ok(())
        });
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        result
    })?)
}

/// Completes once `stop` is set (Ctrl-C, SIGTERM, or the other half failed).
async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `--netns` as given, each a target of that name; none: the monitor's own namespace, `host`.
fn fixed_targets(netns: &[String]) -> Vec<Target> {
    if netns.is_empty() {
        return vec![Target {
            name: "host".into(),
            netns: None,
        }];
    }
    netns
        .iter()
        .map(|n| Target {
            name: n.clone(),
            netns: Some(NetnsTarget::Netns(n.clone())),
        })
        .collect()
}

/// A flag Ctrl-C and SIGTERM set; a second one while stopping ends the process at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_the_command_line() {
        let t = fixed_targets(&[]);
        assert_eq!((t[0].name.as_str(), t[0].netns.is_none()), ("host", true));
        let t = fixed_targets(&["a".into(), "/proc/1/ns/net".into()]);
        assert_eq!(t[1].name, "/proc/1/ns/net");
        assert_eq!(t[1].netns, Some(NetnsTarget::Netns("/proc/1/ns/net".into())));
    }
}
