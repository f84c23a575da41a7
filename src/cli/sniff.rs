//! `mtlscope sniff` (`kubectl mtlscope sniff`) and `mtlscope cleanup`: the flags become
//! [`SniffOptions`]; finding the pods, running the helper pods and joining their verdicts is
//! [`crate::kube::sniff`]'s work.

use super::flags::{CleanupArgs, Limits, SniffArgs};
use crate::kube::sniff::SniffOptions;
use anyhow::Result;

/// `mtlscope sniff` (`kubectl mtlscope sniff`).
pub fn sniff(args: SniffArgs) -> Result<i32> {
    crate::kube::sniff::sniff(SniffOptions {
        kube: args.cluster.target(),
        namespace: args.cluster.namespace.clone(),
        target: args.target,
        selector: args.selector,
        container: args.container,
        interface: args.interface,
        filter: args.filter,
        duration: args.duration,
        max_duration: args.max_duration,
        count: args.count,
        write: args.write,
        format: args.format,
        dry_run: args.dry_run,
        image: args.image,
        helper_image: args.helper_image,
        agent_binary: args.agent_binary,
        allow_dynamic_agent: args.allow_dynamic_agent,
        pull_policy: args.image_pull_policy,
        privileged: args.privileged,
        helper_namespace: args.helper_namespace,
        running_timeout: args.pod_running_timeout,
        no_policy: args.no_policy,
        root_namespace: args.root_namespace,
        agent: args.agent_path,
        limits: Limits {
            max_flows: args.max_flows,
            stream_buffer: args.stream_buffer,
            idle_timeout: args.idle_timeout,
            total_buffer: args.total_buffer,
            show_payload: args.show_payload,
        }
        .config(),
    })
}

/// `mtlscope cleanup`: the helper pods a killed `sniff` left behind.
pub fn cleanup(args: &CleanupArgs) -> Result<i32> {
    crate::kube::sniff::cleanup(
        &args.cluster.target(),
        args.cluster.namespace.clone(),
        args.all_namespaces,
        args.dry_run,
    )
}
