//! `kubectl mtlscope sniff` and `kubectl mtlscope cleanup`: capture in pods through a helper
//! pod on each pod's node (see [`crate::kube::helper_pod`] for what the helper may do, and why).
//!
//! One run: resolve the target to pods ([`client::resolve_targets`]) and pick each pod's
//! container; read their nodes (skipping Windows and virtual nodes) and, without `--image`,
//! find the static agent for each node's architecture ([`crate::kube::upload`]); build one
//! helper pod per node; create them, wait until they run, upload the agent into each one (one
//! exec, checked in the pod), and in each one `exec` `mtlscope agent --container-id ID ...`
//! (the uploaded `/mtlscope/agent`, or `mtlscope` in an `--image`) for every target pod on
//! that node. Each agent
//! streams JSON lines (one per connection as soon as its verdict is final, then a summary, read
//! back into the records it wrote by [`crate::kube::wire`]); with
//! `-w` it streams pcap instead, which is written to the file and analysed here with the same
//! engine. Connections are joined to the cluster (pod names for both ends, the expected
//! PeerAuthentication mode) and shown as `capture` shows them.
//!
//! The helpers are deleted on every way out: the end of the capture, an error, Ctrl-C,
//! SIGTERM, SIGHUP. The first signal asks the agents to stop (a `stop` line on their stdin) so
//! the connections still open are reported; a second one stops at once. A plugin killed with
//! SIGKILL leaves helpers behind: their `activeDeadlineSeconds` ends them, and `cleanup` deletes
//! them.
//!
//! The parts, each in its own file: `options` (what was asked), `plan` (pods, containers,
//! agent commands), `nodes` (which nodes, which architecture), `cluster` (names and policy),
//! `session` (helpers, uploads and agents), `wait` (a helper that does not or no longer runs,
//! and why), `stream` (what the agents send), `output` (what is printed), `cleanup`. This file
//! only starts a run;
//! the parts never use it.

mod cleanup;
mod cluster;
mod nodes;
mod options;
mod output;
mod plan;
mod session;
mod signals;
mod stream;
mod wait;

pub use cleanup::cleanup;
pub use options::{SniffFormat, SniffOptions};

use crate::kube::client;
use crate::kube::helper_pod::{self, HelperOptions, UPLOADED_AGENT};
use crate::kube::upload::{find_agent, Agent, AgentChoice};
use crate::policy;
use anyhow::{bail, Context, Result};
use cluster::load_cluster;
use k8s_openapi::api::core::v1::Pod;
use output::print_dry_run;
use plan::{per_pod_path, plan, session_id};
use session::{run, Interrupted, Session, EXIT_INTERRUPTED};
use std::collections::BTreeMap;

/// `kubectl mtlscope sniff`; returns the exit status.
pub fn sniff(opts: SniffOptions) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(sniff_async(opts))
}

async fn sniff_async(mut opts: SniffOptions) -> Result<i32> {
    let format = match (opts.format, opts.dry_run) {
        (None, true) => SniffFormat::Yaml,
        (None, false) => SniffFormat::Table,
        (Some(SniffFormat::Yaml), false) => bail!("-o yaml prints the helper pods: it needs --dry-run"),
        (Some(SniffFormat::Table | SniffFormat::Jsonl), true) => {
            bail!("--dry-run prints the helper pods: use -o yaml (the default) or -o json")
        }
        (Some(f), _) => f,
    };
    let (client, default_ns) = client::connect(&opts.kube).await?;
    let namespace = opts.namespace.clone().unwrap_or(default_ns);
    let pods =
        client::resolve_target_pods(&client, &namespace, opts.target.as_deref(), opts.selector.as_deref()).await?;
    let captures = plan(&pods, opts.container.as_deref())?;
    let upload = opts.image.is_none();
    let node_facts = nodes::read_nodes(&client, &captures, upload).await;
    let mut captures = nodes::keep_capturable(captures, &node_facts)?;
    // Without --image: the agent for each node's architecture, uploaded into the helper.
    let mut agents: BTreeMap<String, Agent> = BTreeMap::new();
    if upload {
        let choice = AgentChoice::new(opts.agent_binary.clone(), opts.allow_dynamic_agent);
        let mut by_arch = BTreeMap::new();
        for facts in node_facts
            .values()
            .filter(|f| captures.iter().any(|c| c.node == f.name))
        {
            let arch = nodes::node_arch(facts)?;
            let agent = match by_arch.entry(arch) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(find_agent(arch, &choice).map_err(anyhow::Error::msg)?)
                }
            };
            agents.insert(facts.name.clone(), agent.clone());
        }
        if opts.allow_dynamic_agent {
            eprintln!(
                "mtlscope: warning: --allow-dynamic-agent: a dynamically linked agent runs only in a helper image \
                 with its C library"
            );
        }
        opts.agent = UPLOADED_AGENT.to_owned();
    }
    if let Some(w) = &opts.write {
        let many = captures.len() > 1;
        for c in &mut captures {
            c.write = Some(if many { per_pod_path(w, &c.pod) } else { w.clone() });
        }
    }
    let helper_ns = opts.helper_namespace.clone().unwrap_or_else(|| namespace.clone());
    let helper_opts = HelperOptions {
        namespace: helper_ns.clone(),
        image: opts.image.clone().unwrap_or_else(|| opts.helper_image.clone()),
        pull_policy: opts.pull_policy.clone(),
        privileged: opts.privileged,
        deadline: HelperOptions::deadline_for(opts.duration.unwrap_or(opts.max_duration), opts.running_timeout),
        session: session_id(),
    };
    let nodes: BTreeMap<String, Vec<usize>> = captures.iter().enumerate().fold(BTreeMap::new(), |mut m, (i, c)| {
        m.entry(c.node.clone()).or_insert_with(Vec::new).push(i);
        m
    });
    let helpers: Vec<(String, Pod)> = nodes
        .iter()
        .map(|(node, idx)| {
            let targets: Vec<&policy::Pod> = idx.iter().map(|&i| &captures[i].pod).collect();
            let size = agents.get(node).map(|a| a.bytes.len() as u64);
            (node.clone(), helper_pod::helper_pod(&helper_opts, node, &targets, size))
        })
        .collect();

    if opts.dry_run {
        print_dry_run(&helpers, &agents, &captures, &opts, format)?;
        return Ok(crate::report::EXIT_OK);
    }

    let cluster = load_cluster(&client, &namespace, &opts).await;
    let mut session = Session {
        client: client.clone(),
        namespace: helper_ns,
        id: helper_opts.session.clone(),
        created: Vec::new(),
        tasks: Vec::new(),
    };
    let image = helper_opts.image.clone();
    let result = run(
        &mut session,
        &helpers,
        &agents,
        &image,
        &mut captures,
        &opts,
        format,
        cluster.as_ref(),
    )
    .await;
    let cleanup = session.delete_all().await;
    session.drain().await;
    match (result, cleanup) {
        (Ok(code), Ok(())) => Ok(code),
        (Err(e), Ok(())) if e.is::<Interrupted>() => {
            eprintln!("mtlscope: {e}; helper pods deleted");
            Ok(EXIT_INTERRUPTED)
        }
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(c)) => Err(e.context(format!("and cleaning up failed too: {c:#}"))),
    }
}
