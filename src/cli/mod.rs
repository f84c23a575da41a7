//! The command line: flags are parsed and checked here, then turned into the objects that do the
//! work (reader, filter, engine, output). `main.rs` only calls [`main`].

use crate::check::{self, CheckOptions, EvidenceLevel, Requirement, Rule};
use crate::live::capture::{LiveOptions, PacketSink};
use crate::live::netns::NetnsTarget;
use crate::pipeline::engine::{Config, Engine};
use crate::pipeline::filter::PacketFilter;
use crate::pipeline::record::{CaptureStats, Collect, FlowReport, Output, Summary};
use crate::pipeline::runner::{engine, InputErrors, Inputs, Live, Ran, RunError};
use crate::policy::{Cluster, Explanation};
use crate::report::{self, Format, JsonLines, LiveTable};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Is this TCP traffic really encrypted, and is the client really authenticated?
#[derive(Parser, Debug)]
#[command(name = "mtlscope", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Give every TCP connection in capture files a verdict: plaintext, tls or mtls.
    Analyze(AnalyzeArgs),
    /// Capture live on an interface (optionally inside another network namespace) and give
    /// every connection a verdict as it is decided.
    Capture(CaptureArgs),
    /// Fail (exit 1) when connections in capture files (or a live capture) are not encrypted as
    /// required.
    Check(CheckArgs),
    /// Istio PeerAuthentication, computed as Istio does.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Capture in Kubernetes pods through a helper pod on their node (`kubectl mtlscope sniff`),
    /// with pod names and the expected PeerAuthentication mode for every connection.
    #[command(after_help = SNIFF_EXAMPLES)]
    Sniff(SniffArgs),
    /// Delete helper pods that a killed `sniff` left behind.
    Cleanup(CleanupArgs),
    /// Run on a node (by the kubectl plugin's helper pod): find a container's process by its
    /// container ID, capture in its network namespace, stream verdicts as JSON lines.
    Agent(AgentArgs),
}

const SNIFF_EXAMPLES: &str = "Examples:
  kubectl mtlscope sniff productpage-v1-7d9f -n bookinfo
  kubectl mtlscope sniff deploy/productpage -n bookinfo --duration 30s
  kubectl mtlscope sniff -l app=reviews -n bookinfo -o jsonl
  kubectl mtlscope sniff productpage-v1-7d9f -c istio-proxy -i eth0 -f 'tcp port 9080' -w out.pcap
  kubectl mtlscope sniff deploy/reviews -n bookinfo --dry-run -o yaml";

/// Which cluster, as kubectl's flags say it.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterFlags {
    /// The namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
}

impl ClusterFlags {
    fn target(&self) -> crate::kube::client::KubeTarget {
        crate::kube::client::KubeTarget {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct SniffArgs {
    /// What to capture in: POD, pod/NAME, deploy/NAME, sts/NAME, ds/NAME, rs/NAME or svc/NAME
    /// (every pod of a workload).
    #[arg(value_name = "TARGET", required_unless_present = "selector")]
    pub target: Option<String>,
    /// Capture in every pod matching this label selector instead.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR", conflicts_with = "target")]
    pub selector: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterFlags,
    /// The container whose process the helper enters (default: the
    /// kubectl.kubernetes.io/default-container annotation, else the first that is not a mesh
    /// sidecar). All containers of a pod share its network, so this rarely matters.
    #[arg(short = 'c', long, value_name = "NAME")]
    pub container: Option<String>,
    /// Interface inside the pod: eth0 for pod-to-pod (sidecar-to-sidecar) traffic, lo for the
    /// app <-> sidecar leg, any for both.
    #[arg(short = 'i', long = "interface", default_value = "eth0", value_name = "IFACE")]
    pub interface: String,
    /// Only packets matching this BPF expression (tcpdump syntax).
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Stop after this long (e.g. 30s, 2m); default: until Ctrl-C.
    #[arg(long, value_parser = crate::live::capture::parse_duration, value_name = "DURATION")]
    pub duration: Option<std::time::Duration>,
    /// Stop each pod's capture after this many packets.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Also bring the packets back and write them to this pcap file (one file per pod when
    /// there are several: FILE-<namespace>-<pod>.pcap). Without it only verdicts leave the node.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<std::path::PathBuf>,
    /// table, json or jsonl; with --dry-run: yaml (default) or json.
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub format: Option<crate::kube::sniff::SniffFormat>,
    /// Print the helper pods (and the agent commands) without creating anything.
    #[arg(long)]
    pub dry_run: bool,
    /// The helper image (default: the published image of this version).
    #[arg(long, value_name = "IMAGE", default_value_t = crate::kube::helper_pod::default_image())]
    pub image: String,
    /// The helper's imagePullPolicy.
    #[arg(long, value_name = "POLICY", default_value = "IfNotPresent")]
    pub image_pull_policy: String,
    /// Run the helper as a privileged container instead of with the capabilities NET_RAW,
    /// SYS_ADMIN and SYS_PTRACE (for runtimes whose seccomp or AppArmor profile refuses setns).
    #[arg(long)]
    pub privileged: bool,
    /// Create the helper pods in this namespace (default: the target's).
    #[arg(long, value_name = "NS")]
    pub helper_namespace: Option<String>,
    /// How long to wait for a helper pod to run (image pull included).
    #[arg(long, value_parser = crate::live::capture::parse_duration, default_value = "2m", value_name = "DURATION")]
    pub pod_running_timeout: std::time::Duration,
    /// Do not join the cluster's PeerAuthentications (pod names are still shown).
    #[arg(long)]
    pub no_policy: bool,
    /// Istio's root namespace (default: from the mesh config, else istio-system).
    #[arg(long, value_name = "NS")]
    pub root_namespace: Option<String>,
    /// The agent's command in the helper image.
    #[arg(long, default_value = "mtlscope", value_name = "PATH", hide = true)]
    pub agent_path: String,
    /// Without --duration, stop anyway after this long (the helper pod's deadline follows).
    #[arg(long, value_parser = crate::live::capture::parse_duration, default_value = "1h", value_name = "DURATION")]
    pub max_duration: std::time::Duration,
    /// Most connections each agent tracks at once (sized for the helper's 512 MiB limit).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction of a connection.
    #[arg(long, default_value_t = crate::pipeline::reassembly::DEFAULT_DIR_CAP, value_name = "BYTES")]
    pub stream_buffer: usize,
    /// Close a connection after this many seconds without packets.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub idle_timeout: u64,
    /// Bytes all connections of one agent may buffer (sized for the helper's 512 MiB limit).
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub total_buffer: usize,
    /// Include the first bytes of plaintext connections (they leave the node with the verdicts).
    #[arg(long)]
    pub show_payload: bool,
}

#[derive(Args, Debug)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub cluster: ClusterFlags,
    /// Look in every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Only list what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The target container, as in the pod's status.containerStatuses[].containerID
    /// (e.g. containerd://3f1c...); all containers of a pod share its network namespace.
    #[arg(long, value_name = "ID")]
    pub container_id: String,
    /// Where the node's processes are visible (the helper runs with hostPID: true).
    #[arg(long, default_value = "/proc", value_name = "DIR")]
    pub proc_root: std::path::PathBuf,
    /// Interface inside the pod: eth0 for sidecar-to-sidecar traffic, lo for the app <-> sidecar leg, any for both.
    #[arg(short = 'i', long = "interface", default_value = "eth0", value_name = "IFACE")]
    pub interface: String,
    /// Only packets matching this BPF expression (tcpdump syntax).
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    #[command(flatten)]
    pub stop: StopArgs,
    #[command(flatten)]
    pub limits: Limits,
    /// Stream the captured packets as pcap on standard output instead of verdicts (the plugin's
    /// `-w`); the summary goes to standard error.
    #[arg(long, conflicts_with = "write")]
    pub pcap: bool,
    /// Stop (and report the connections still open) when standard input says `stop` or ends:
    /// how the plugin stops the agent through the exec stream on Ctrl-C.
    #[arg(long)]
    pub stop_on_stdin: bool,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// The effective PeerAuthentication mode for a pod and port, the policy that decided it,
    /// and the policies that were ignored and why.
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Files or folders of YAML/JSON with the pods, services, PeerAuthentications and the
    /// `istio` ConfigMap (`kubectl get ... -A -o yaml`).
    #[arg(long = "from", value_name = "PATH", required_unless_present = "cluster")]
    pub from: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The pod's namespace.
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: String,
    #[arg(long, value_name = "NAME")]
    pub pod: String,
    /// The pod's (container) port; with --service-port, a port of a Service in front of it.
    #[arg(long, value_name = "PORT", required_unless_present = "service_port")]
    pub port: Option<u16>,
    /// A Service port, translated to the pod's target port as Istio does.
    #[arg(long, value_name = "PORT", conflicts_with = "port")]
    pub service_port: Option<u16>,
    #[arg(long, value_name = "NS")]
    pub root_namespace: Option<String>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub format: CheckFormat,
}

/// When a live capture stops, and whether it keeps the packets: shared by `capture`, `check`
/// and `agent`.
#[derive(Args, Debug, Clone)]
pub struct StopArgs {
    /// Stop after this long (e.g. 30s, 2m).
    #[arg(long, value_parser = crate::live::capture::parse_duration, value_name = "DURATION")]
    pub duration: Option<std::time::Duration>,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,
    /// Also write the captured packets to this pcap file.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<std::path::PathBuf>,
}

/// Live capture options, shared by `capture` and `check`.
#[derive(Args, Debug, Clone)]
pub struct LiveArgs {
    /// Capture live on this interface (`any` for all of them) instead of reading files.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// Enter this network namespace first: a name under /var/run/netns, or a path such as
    /// /proc/PID/ns/net.
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "pid")]
    pub netns: Option<String>,
    /// Enter the network namespace of this process first.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Bytes kept of each packet.
    #[arg(short = 's', long, default_value_t = 262_144, value_name = "BYTES")]
    pub snaplen: i32,
    /// Put the interface in promiscuous mode (off by default, as `tcpdump -p`).
    #[arg(long)]
    pub promisc: bool,
    #[command(flatten)]
    pub stop: StopArgs,
    /// Kernel capture buffer; a larger one survives bursts without drops.
    #[arg(long, default_value_t = 32 << 20, value_name = "BYTES")]
    pub buffer_size: i32,
}

impl LiveArgs {
    fn options(&self, filter: Option<String>) -> Option<LiveOptions> {
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
            snaplen: self.snaplen,
            promisc: self.promisc,
            duration: self.stop.duration,
            count: self.stop.count,
            write: self.stop.write.clone(),
            buffer_size: self.buffer_size,
        })
    }
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Only packets matching this BPF expression (tcpdump syntax), applied in the kernel.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// A table that refreshes as verdicts arrive (on a terminal), one JSON document at the
    /// end, or JSON lines as soon as each verdict is final.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub format: Format,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Where packets come from and which of them count: shared by `analyze` and `check`.
#[derive(Args, Debug)]
pub struct InputArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed); `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub inputs: Vec<String>,
    /// Only packets matching this BPF expression (tcpdump syntax), e.g. 'tcp port 443'.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Show progress on standard error (default: only when it is a terminal and not under CI).
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show progress.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// A cluster dump to join connections to pods and PeerAuthentication.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Files or folders of YAML/JSON (e.g. `kubectl get pods,services,peerauthentications,configmaps -A -o yaml`):
    /// shows pod names and the PeerAuthentication mode Istio expects for each connection.
    #[arg(long = "policy-from", value_name = "PATH")]
    pub policy_from: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Istio's root namespace (default: the mesh config's rootNamespace, else istio-system).
    #[arg(long, value_name = "NS")]
    pub root_namespace: Option<String>,
}

/// Reading the cluster itself instead of a dump.
#[derive(Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// Read pods, services, PeerAuthentications (security.istio.io v1, else v1beta1) and the
    /// `istio` mesh config from the cluster of the current kubeconfig context.
    #[arg(long)]
    pub cluster: bool,
    /// The kubeconfig context to use (as kubectl --context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Path to the kubeconfig file (as kubectl --kubeconfig; default: KUBECONFIG, ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
}

impl KubeArgs {
    /// The cluster's objects, read through the Kubernetes API (`namespace`: only that one and
    /// the root namespace). Notes (no Istio installed, v1beta1 fallback) go to standard error.
    fn read(&self, namespace: Option<&str>) -> Result<Cluster> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let target = crate::kube::client::KubeTarget {
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

/// A cluster from dump files and/or the live cluster, with the root namespace override.
fn load_cluster(
    paths: &[std::path::PathBuf],
    kube: &KubeArgs,
    root_namespace: Option<&str>,
    namespace: Option<&str>,
) -> Result<Option<Cluster>> {
    let mut c = match (paths.is_empty(), kube.cluster) {
        (true, false) => return Ok(None),
        (false, false) => Cluster::load_paths(paths).context("--policy-from")?,
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
    fn load(&self) -> Result<Option<Arc<Cluster>>> {
        Ok(load_cluster(&self.policy_from, &self.kube, self.root_namespace.as_deref(), None)?.map(Arc::new))
    }
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format: a table, one JSON document, or JSON lines (one connection per line as
    /// soon as its verdict is final, then a summary line).
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Every connection (after --exclude) must meet this.
    #[arg(long, value_enum, value_name = "LEVEL", required_unless_present = "rules")]
    pub require: Option<Requirement>,
    /// Leave out packets matching this BPF expression, e.g. 'port 15020 or port 15021'.
    #[arg(long, value_name = "EXPR")]
    pub exclude: Option<String>,
    /// YAML file of rules: `rules: [{name, match: {ports, cidrs, server_cidrs, client_cidrs, sni}, require, client_identity}]`.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
    /// Also write a JUnit XML report (one testsuite per rule, one testcase per connection).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<std::path::PathBuf>,
    /// Report format on standard output.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub format: CheckFormat,
    /// `certain` refuses verdicts inferred from encrypted lengths (TLS 1.3) or linked resumptions.
    #[arg(long, value_enum, default_value = "inferred")]
    pub evidence: EvidenceLevel,
    /// A rule that matches no connection passes instead of failing with "nothing to check".
    #[arg(long)]
    pub allow_empty: bool,
    /// Fail unless at least this many connections carried data.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub min_flows: usize,
    /// Also judge loopback connections (inside a pod, the app <-> sidecar leg is plaintext by
    /// design, so they are left out by default).
    #[arg(long)]
    pub include_loopback: bool,
}

/// Resource bounds.
#[derive(Args, Debug, Clone)]
pub struct Limits {
    /// Most connections tracked at once; the least recently active are closed past it.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction of a connection before a hole is given up.
    #[arg(long, default_value_t = crate::pipeline::reassembly::DEFAULT_DIR_CAP, value_name = "BYTES")]
    pub stream_buffer: usize,
    /// Close a connection after this many seconds without packets (capture time).
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub idle_timeout: u64,
    /// Bytes all connections together may buffer before the largest buffers are given up.
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub total_buffer: usize,
    /// Include the first bytes of plaintext connections in the report. Off by default: they
    /// can carry credentials and personal data.
    #[arg(long)]
    pub show_payload: bool,
}

impl Limits {
    pub fn config(&self) -> Config {
        Config {
            dir_cap: self.stream_buffer,
            idle_timeout_ns: self.idle_timeout.saturating_mul(1_000_000_000),
            max_flows: self.max_flows.max(1),
            total_buffer_cap: self.total_buffer.max(1 << 16),
            show_payload: self.show_payload,
            ..Config::default()
        }
    }
}

pub use crate::report::{EXIT_BAD_INPUT, EXIT_OK, EXIT_VIOLATION};

/// Run the command line; returns the exit status.
pub fn main() -> i32 {
    run_cli(Cli::parse())
}

/// As [`main`], with usage and help naming the program `bin_name` (`kubectl mtlscope` when run
/// as a kubectl plugin).
pub fn main_as(bin_name: &'static str) -> i32 {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().bin_name(bin_name).get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => run_cli(cli),
        Err(e) => e.exit(),
    }
}

fn run_cli(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Analyze(args) => analyze(&args),
        Command::Capture(args) => capture(&args),
        Command::Check(args) => check(&args),
        Command::Policy(PolicyCommand::Explain(args)) => explain(&args),
        Command::Sniff(args) => sniff(args),
        Command::Cleanup(args) => crate::kube::sniff::cleanup(
            &args.cluster.target(),
            args.cluster.namespace.clone(),
            args.all_namespaces,
            args.dry_run,
        ),
        Command::Agent(args) => agent(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => EXIT_OK,
        Err(e) => {
            eprintln!("mtlscope: {e:#}");
            EXIT_BAD_INPUT
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn show_progress(args: &InputArgs) -> bool {
    if args.no_progress {
        return false;
    }
    args.progress || (io::stderr().is_terminal() && std::env::var_os("CI").is_none())
}

/// `mtlscope analyze`.
pub fn analyze(args: &AnalyzeArgs) -> Result<i32> {
    let filter = args
        .input
        .filter
        .as_deref()
        .map(PacketFilter::new)
        .transpose()
        .context("-f/--filter")?;
    let cfg = args.input.limits.config();
    let cluster = args.input.policy.load()?;
    let progress = show_progress(&args.input);
    let paths = &args.input.inputs;
    if paths.is_empty() {
        anyhow::bail!("no capture file given (name one or more files, or `-` for standard input; `mtlscope capture -i IFACE` captures live)");
    }
    let inputs = Inputs {
        paths,
        filter,
        progress,
    };
    let stdout = io::stdout();
    match args.format {
        Format::Jsonl => {
            // Regular files are read as fast as they can be: no flush per connection. Standard
            // input or a FIFO may be a live capture (`tcpdump -w - | mtlscope analyze -`).
            let files = paths
                .iter()
                .all(|p| p != "-" && std::fs::metadata(p).is_ok_and(|m| m.is_file()));
            let lines = if files {
                JsonLines::batched(io::BufWriter::with_capacity(64 << 10, stdout.lock()))
            } else {
                JsonLines::new(io::BufWriter::new(stdout.lock()))
            };
            let mut ran = checked(inputs.run(engine(cfg, lines, cluster.as_ref())))?;
            ran.out.summary(&ran.summary).context("writing to standard output")?;
            Ok(report_errors(&ran.summary.errors))
        }
        Format::Json | Format::Table => {
            let ran = checked(inputs.run(engine(cfg, Collect::default(), cluster.as_ref())))?;
            write_collected(args.format, &ran.out.sorted(), &ran.summary)?;
            Ok(report_errors(&ran.summary.errors))
        }
    }
}

/// The table or the JSON document, at the end of the run.
fn write_collected(format: Format, flows: &[FlowReport], summary: &Summary) -> Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    if format == Format::Json {
        report::write_json(&mut out, flows, summary)
    } else {
        let width = report::terminal_width();
        report::write_table(&mut out, flows, summary, width)
    }
    .and_then(|()| out.flush())
    .context("writing to standard output")
}

/// `mtlscope check`.
pub fn check(args: &CheckArgs) -> Result<i32> {
    let mut rules = match &args.rules {
        Some(path) => check::load_rules(path)?,
        None => Vec::new(),
    };
    if let Some(level) = args.require {
        let name = match &args.exclude {
            Some(x) => format!("every connection (--require, --exclude '{x}')"),
            None => "every connection (--require)".to_string(),
        };
        rules.insert(
            0,
            Rule {
                name,
                selector: Default::default(),
                require: level,
                client_identity: None,
            },
        );
    }
    // --exclude drops the packets it matches, so the connections they make are never seen.
    let expr = match (&args.input.filter, &args.exclude) {
        (Some(f), Some(x)) => Some(format!("({f}) and not ({x})")),
        (Some(f), None) => Some(f.clone()),
        (None, Some(x)) => Some(format!("not ({x})")),
        (None, None) => None,
    };
    let filter = expr
        .as_deref()
        .map(PacketFilter::new)
        .transpose()
        .context("-f/--filter or --exclude")?;
    let cfg = args.input.limits.config();
    let cluster = args.input.policy.load()?;
    if cluster.is_none() && rules.iter().any(|r| r.require == Requirement::Policy) {
        anyhow::bail!("--require policy needs --policy-from (a cluster dump with the PeerAuthentications)");
    }
    let engine = engine(cfg, Collect::default(), cluster.as_ref());
    let ran = match args.live.options(expr.clone()) {
        Some(options) => {
            if !args.input.inputs.is_empty() {
                anyhow::bail!("give capture files or -i/--interface, not both");
            }
            let ran = live(&options, engine, false)?;
            report_live(&ran.summary);
            ran
        }
        None => {
            if args.input.inputs.is_empty() {
                anyhow::bail!(
                    "no capture file given (name files, `-` for standard input, or -i IFACE to capture live)"
                );
            }
            let inputs = Inputs {
                paths: &args.input.inputs,
                filter,
                progress: show_progress(&args.input),
            };
            checked(inputs.run(engine))?
        }
    };
    let flows = ran.out.sorted();
    let opts = CheckOptions {
        evidence: args.evidence,
        allow_empty: args.allow_empty,
        min_flows: args.min_flows,
        include_loopback: args.include_loopback,
    };
    let result = check::evaluate(&rules, &flows, &opts);
    let mut out = io::BufWriter::new(io::stdout().lock());
    if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
        out.write_all(result.github(args.allow_empty).as_bytes())?;
    }
    match args.format {
        CheckFormat::Text => out.write_all(result.text(args.allow_empty).as_bytes())?,
        CheckFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &result)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush().context("writing to standard output")?;
    if let Some(path) = &args.junit {
        std::fs::write(path, result.junit(args.allow_empty))
            .with_context(|| format!("--junit {}: cannot write the report", path.display()))?;
    }
    let code = report_errors(&ran.summary.errors);
    Ok(if code != EXIT_OK {
        code
    } else if result.ok {
        EXIT_OK
    } else {
        EXIT_VIOLATION
    })
}

/// `mtlscope capture`.
pub fn capture(args: &CaptureArgs) -> Result<i32> {
    let Some(options) = args.live.options(args.filter.clone()) else {
        anyhow::bail!("-i/--interface is required (e.g. -i eth0, or -i any)");
    };
    let cfg = args.limits.config();
    let cluster = args.policy.load()?;
    let status = match &options.netns {
        Some(t) => format!("capturing on {} in {}", options.interface, t.path().display()),
        None => format!("capturing on {}", options.interface),
    };
    match args.format {
        Format::Jsonl => {
            stream_jsonl(&options, cfg, cluster.as_ref(), false)?;
        }
        Format::Json => {
            let ran = live(&options, engine(cfg, Collect::default(), cluster.as_ref()), false)?;
            let mut out = io::BufWriter::new(io::stdout().lock());
            report::write_json(&mut out, &ran.out.sorted(), &ran.summary)?;
            out.flush()?;
            report_live(&ran.summary);
        }
        Format::Table => {
            let table = LiveTable::new(status, io::stdout().is_terminal());
            let ran = live(&options, engine(cfg, table, cluster.as_ref()), false)?;
            let flows = ran.out.collect.sorted();
            let mut out = io::BufWriter::new(io::stdout().lock());
            report::write_table(&mut out, &flows, &ran.summary, report::terminal_width())?;
            out.flush()?;
            report_live(&ran.summary);
        }
    }
    Ok(EXIT_OK)
}

/// The run's result with a closed pipe or a full disk said as the command line says it.
fn checked<O>(ran: Result<Ran<O>, RunError>) -> Result<Ran<O>> {
    ran.or_else(|e| match e {
        RunError::Output(e) => Err(e).context("writing to standard output"),
        RunError::Capture(e) => Err(e.into()),
    })
}

/// Capture into `engine` until Ctrl-C, SIGTERM, --duration or --count (or, with
/// `stop_on_stdin`, a `stop` line or the end of standard input); then close every connection.
fn live<O: Output + Send>(options: &LiveOptions, engine: Engine<O>, stop_on_stdin: bool) -> Result<Ran<O>> {
    let stop = StopSignals::new(stop_on_stdin)?;
    checked(
        Live {
            options,
            stop: stop.flag(),
        }
        .run(engine),
    )
}

/// A flag that Ctrl-C and SIGTERM (and, with `stop_on_stdin`, the agent's standard input) set
/// while it lives; a second signal while stopping ends the process at once.
struct StopSignals {
    stop: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl StopSignals {
    fn new(stop_on_stdin: bool) -> Result<StopSignals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let mut signals = StopSignals {
            stop: stop.clone(),
            ids: Vec::new(),
        };
        for sig in [SIGINT, SIGTERM] {
            // A second signal while stopping ends the process at once: registered first, this
            // action sees the flag as it was before the signal set it.
            signals.ids.push(signal_hook::flag::register_conditional_shutdown(
                sig,
                130,
                stop.clone(),
            )?);
            signals.ids.push(signal_hook::flag::register(sig, stop.clone())?);
        }
        if stop_on_stdin {
            crate::kube::agent::stop_on_stdin(stop);
        }
        Ok(signals)
    }

    fn flag(&self) -> &AtomicBool {
        &self.stop
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Packets that only go to the `-w` file.
struct WriteOnly;

impl PacketSink for WriteOnly {
    fn packet(&mut self, _ts_ns: u64, _link: crate::pipeline::source::LinkType, _data: &[u8]) {}
}

/// The kernel's counters on standard error, with a warning when packets were dropped.
fn report_capture(s: &CaptureStats) {
    eprintln!(
        "mtlscope: {} packets captured on {}{} in {:.1}s; kernel: {} received, {} dropped, {} dropped by the interface{}",
        s.packets,
        s.interface,
        s.netns.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
        s.seconds,
        s.received,
        s.dropped,
        s.if_dropped,
        s.written.as_ref().map(|w| format!("; written to {w}")).unwrap_or_default()
    );
    if s.dropped > 0 || s.if_dropped > 0 {
        eprintln!(
            "mtlscope: warning: {} packets were dropped before mtlscope saw them: some verdicts may be missing or uncertain (try a larger --buffer-size or a narrower -f filter)",
            u64::from(s.dropped) + u64::from(s.if_dropped)
        );
    }
}

/// The kernel's counters of a live run (always there after [`live`]).
fn report_live(summary: &Summary) {
    if let Some(stats) = &summary.capture {
        report_capture(stats);
    }
}

/// `mtlscope sniff` (`kubectl mtlscope sniff`).
pub fn sniff(args: SniffArgs) -> Result<i32> {
    crate::kube::sniff::sniff(crate::kube::sniff::SniffOptions {
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

/// `mtlscope agent`: `capture -o jsonl` in the network namespace of a container's process.
pub fn agent(args: &AgentArgs) -> Result<i32> {
    let pid = crate::kube::agent::find_container_pid(&args.proc_root, &args.container_id)?;
    let ns = args.proc_root.join(pid.to_string()).join("ns/net");
    let live = LiveOptions {
        interface: args.interface.clone(),
        netns: Some(NetnsTarget::Netns(ns.display().to_string())),
        filter: args.filter.clone(),
        // `capture`'s defaults for -s and --buffer-size.
        snaplen: 262_144,
        promisc: false,
        duration: args.stop.duration,
        count: args.stop.count,
        write: match args.pcap {
            true => Some("/dev/stdout".into()),
            false => args.stop.write.clone(),
        },
        buffer_size: 32 << 20,
    };
    eprintln!("mtlscope agent: container {} is process {pid}", args.container_id);
    if args.pcap {
        // Packets leave the node only because -w asked for them; the plugin makes the verdicts.
        // The kernel's counters go to standard error, as one JSON line the plugin reads.
        let stats = {
            let stop = StopSignals::new(args.stop_on_stdin)?;
            crate::live::capture::run(&live, stop.flag(), &mut WriteOnly)?
        };
        eprintln!("{}", serde_json::json!({ "capture": stats }));
        report_capture(&stats);
    } else {
        stream_jsonl(&live, args.limits.config(), None, args.stop_on_stdin)?;
    }
    Ok(EXIT_OK)
}

/// JSON lines on standard output as verdicts are made, then the summary with the kernel's
/// counters; the counters on standard error too. Also what the agent streams to the plugin.
fn stream_jsonl(options: &LiveOptions, cfg: Config, cluster: Option<&Arc<Cluster>>, stop_on_stdin: bool) -> Result<()> {
    let out = JsonLines::new(io::BufWriter::new(io::stdout()));
    let mut ran = live(options, engine(cfg, out, cluster), stop_on_stdin)?;
    ran.out.summary(&ran.summary).context("writing to standard output")?;
    report_live(&ran.summary);
    Ok(())
}

/// `mtlscope policy explain`.
pub fn explain(args: &ExplainArgs) -> Result<i32> {
    let c = load_cluster(
        &args.from,
        &args.kube,
        args.root_namespace.as_deref(),
        Some(&args.namespace),
    )?
    .context("--from or --cluster is required")?;
    let pod = c.find_pod(&args.namespace, &args.pod)?;
    let (port, d) = match (args.port, args.service_port) {
        (Some(p), _) => (p, c.effective(pod, p)),
        (None, Some(sp)) => c.effective_for_service_port(pod, sp).with_context(|| {
            format!(
                "no Service in {} selects pod {} with port {sp}",
                pod.namespace, pod.name
            )
        })?,
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

/// Errors go to standard error, one line each; the exit status says whether there were any.
fn report_errors(errors: &InputErrors) -> i32 {
    for e in errors {
        eprintln!("mtlscope: {e}");
    }
    if errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_BAD_INPUT
    }
}
