//! From checked flags to the objects that do the work (ripgrep's low-level / high-level
//! arguments): the engine's [`Config`] from [`Limits`], [`LiveOptions`] from [`LiveArgs`], the
//! Kubernetes target, the cluster (a dump and/or the API) from [`PolicyArgs`] and [`KubeArgs`],
//! and whether to show progress. Notes about the cluster go to standard error here.

use super::flags::{ClusterFlags, Command, InputArgs, KubeArgs, Limits, LiveArgs, PolicyArgs};
use crate::kube::client::KubeTarget;
use crate::live::capture::LiveOptions;
use crate::live::netns::NetnsTarget;
use crate::pipeline::engine::Config;
use crate::policy::Cluster;
use anyhow::{Context, Result};
use clap::ArgMatches;
use std::io::{self, IsTerminal};
use std::sync::Arc;

impl ClusterFlags {
    pub(super) fn target(&self) -> KubeTarget {
        KubeTarget {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

impl LiveArgs {
    /// The live capture, or `None` without `-i/--interface` (files are read instead).
    pub(super) fn options(&self, filter: Option<String>) -> Option<LiveOptions> {
        let interface = self.interface.clone()?;
        let netns = match (&self.netns, self.pid) {
            (Some(n), _) => Some(NetnsTarget::Netns(n.clone())),
            (None, Some(p)) => Some(NetnsTarget::Pid(p)),
            (None, None) => None,
        };
        Some(LiveOptions {
            interface,
            netns,
            filter,
            program: None,
            snaplen: self.snaplen,
            promisc: self.promisc,
            duration: self.stop.duration,
            count: self.stop.count,
            write: self.stop.write.clone(),
            buffer_size: self.buffer_size,
        })
    }
}

/// `-w -` (or `/dev/stdout`) when the report goes to standard output too: a reader of either
/// would get pcap and report interleaved (`capture -w - -o jsonl` did), so it is refused,
/// naming `report` (`-o jsonl`) and the ways to get the packets.
pub(super) fn refuse_packets_on_stdout(options: &LiveOptions, report: &str) -> Result<()> {
    const STDOUT: [&str; 4] = ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];
    let Some(w) = options.write.as_deref() else {
        return Ok(());
    };
    if STDOUT.iter().any(|s| w == std::path::Path::new(s)) {
        anyhow::bail!(
            "-w {}: the report ({report}) goes to standard output, so the packets cannot go there too; \
             write them to a file (-w capture.pcap), or capture them alone with `tcpdump -i {} -w -` \
             (`mtlscope analyze -` reads them)",
            w.display(),
            options.interface
        );
    }
    Ok(())
}

impl InputArgs {
    /// Progress on standard error: as asked, else only on a terminal and not under CI.
    pub(super) fn progress(&self) -> bool {
        if self.no_progress {
            return false;
        }
        self.progress || (io::stderr().is_terminal() && std::env::var_os("CI").is_none())
    }

    /// Folds the `-r FILE`s into the FILE arguments, in the order the command line gave them
    /// (`m`: the matches of this command), so that `-r a -r b`, `a -r b` and `a b` read alike.
    fn merge_read_files(&mut self, m: &ArgMatches) {
        if self.read_file.is_empty() {
            return;
        }
        let at = |id| m.indices_of(id).into_iter().flatten();
        let mut all: Vec<(usize, String)> = at("inputs")
            .zip(std::mem::take(&mut self.inputs))
            .chain(at("read_file").zip(std::mem::take(&mut self.read_file)))
            .collect();
        all.sort_by_key(|&(i, _)| i);
        self.inputs = all.into_iter().map(|(_, p)| p).collect();
    }
}

impl Command {
    /// What clap's derive cannot say: `-r` and FILE arguments are one list (see
    /// [`InputArgs::merge_read_files`]). `m`: the matches of the whole command line.
    pub(super) fn finish(&mut self, m: &ArgMatches) {
        let input = match self {
            Command::Analyze(a) => &mut a.input,
            Command::Check(a) => &mut a.input,
            _ => return,
        };
        if let Some((_, sub)) = m.subcommand() {
            input.merge_read_files(sub);
        }
    }
}

impl Limits {
    /// The engine's bounds.
    pub fn config(&self) -> Config {
        Config {
            dir_cap: self.stream_buffer,
            // At most 7 days (values::idle_timeout), far below u64::MAX nanoseconds.
            idle_timeout_ns: u64::try_from(self.idle_timeout.as_nanos()).unwrap_or(u64::MAX),
            max_flows: self.max_flows,
            total_buffer_cap: self.total_buffer,
            show_payload: self.show_payload,
            ..Config::default()
        }
    }
}

impl KubeArgs {
    /// The cluster's objects, read through the Kubernetes API (`namespace`: only that one and
    /// the root namespace). Notes (no Istio installed, v1beta1 fallback) go to standard error.
    pub(super) fn read(&self, namespace: Option<&str>) -> Result<Cluster> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let target = KubeTarget {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        };
        let objects = rt.block_on(async {
            let client = crate::kube::client::client(&target).await?;
            crate::kube::client::cluster_objects(&client, namespace).await
        })?;
        for n in &objects.notes {
            eprintln!("mtlscope: {n}");
        }
        objects.into_cluster().context("--cluster")
    }
}

/// A cluster from dump files (given with `flag`, named in errors) or the live cluster, with the
/// root namespace override.
pub(super) fn load_cluster(
    flag: &str,
    paths: &[std::path::PathBuf],
    kube: &KubeArgs,
    root_namespace: Option<&str>,
    namespace: Option<&str>,
) -> Result<Option<Cluster>> {
    let mut c = match (paths.is_empty(), kube.cluster) {
        (true, false) => return Ok(None),
        (false, false) => Cluster::load_paths(paths).context(flag.to_owned())?,
        (true, true) => kube.read(namespace)?,
        (false, true) => anyhow::bail!("give a cluster dump (--policy-from/--from) or --cluster, not both"),
    };
    if let Some(ns) = root_namespace {
        c.set_root_namespace(ns);
    }
    for w in c.warnings() {
        eprintln!("mtlscope: warning: {w}");
    }
    // Objects Istio's admission would refuse: said once each, then left out, as Istio does.
    for r in c.rejected() {
        eprintln!("mtlscope: warning: skipped {r}");
    }
    Ok(Some(c))
}

impl PolicyArgs {
    pub(super) fn load(&self) -> Result<Option<Arc<Cluster>>> {
        Ok(load_cluster(
            "--policy-from",
            &self.policy_from,
            &self.kube,
            self.root_namespace.as_deref(),
            None,
        )?
        .map(Arc::new))
    }
}
