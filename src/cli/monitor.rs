//! `mtlscope monitor`: the fixed targets of the command line (`--netns`, or the monitor's own
//! namespace) sent into the same channel a pod follower would feed, the cluster of
//! `--policy-from` in the view, and [`crate::monitor::run`] until Ctrl-C or SIGTERM.

use super::flags::MonitorArgs;
use crate::live::netns::NetnsTarget;
use crate::monitor::targets::{Target, TargetEvent};
use crate::monitor::view::ClusterView;
use crate::monitor::MonitorOptions;
use crate::policy::Cluster;
use crate::report::EXIT_OK;
use anyhow::Result;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

/// `mtlscope monitor`.
pub fn monitor(args: &MonitorArgs) -> Result<i32> {
    let node = args
        .node
        .clone()
        .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()));
    if let Some(node) = &node {
        // In a cluster the targets come from `crate::kube::follow` (the lead wires it here:
        // it sends into `tx` and keeps `view` up to date); until then, say so plainly.
        anyhow::bail!(
            "--node {node} (or NODE_NAME): following the pods of a node is not in this build yet; \
             outside a cluster give the namespaces with --netns (and unset NODE_NAME)"
        );
    }
    if args.reports {
        anyhow::bail!(
            "--reports is not in this build yet: run `kubectl mtlscope readiness` against --prometheus instead"
        );
    }
    let cluster = match args.policy.load()? {
        Some(c) => Arc::unwrap_or_clone(c),
        None => Cluster::new(),
    };
    let view = Arc::new(ClusterView::new(cluster));
    let (tx, rx) = mpsc::channel();
    for target in fixed_targets(&args.netns) {
        // The receiver is alive: it is `rx`, not yet handed over.
        let _ = tx.send(TargetEvent::Add(target));
    }
    let stop = stop_on_signals()?;
    let opts = MonitorOptions {
        interface: args.interface.clone(),
        snaplen: 262_144,
        buffer_size: args.buffer_size,
        max_pods: args.max_pods,
        metrics_addr: args.metrics_addr,
        engine: args.limits.config(),
        node,
    };
    crate::monitor::run(&opts, rx, view, stop)?;
    drop(tx);
    Ok(EXIT_OK)
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
