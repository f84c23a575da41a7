//! The command line's flags, as clap parses them: [`Cli`] and its [`Command`]s, one argument
//! struct per command, and the groups several commands share ([`InputArgs`], [`LiveArgs`],
//! [`StopArgs`], [`Limits`], [`PolicyArgs`], [`KubeArgs`], [`ClusterFlags`]). Only values and
//! their syntax are checked here; `setup` turns them into the objects that do the work.

use super::values;
use crate::check::{EvidenceLevel, Requirement};
use crate::report::Format;
use clap::{Args, Parser, Subcommand};

/// Is this TCP traffic really encrypted, and is the client really authenticated?
#[derive(Parser, Debug)]
#[command(name = "mtlscope", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every command says how it is used in its `--help` (and in its man page), after the flags:
/// `Examples:` and one command line per line, real flags only (a test in this file walks the
/// whole command tree for them).
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Give every TCP connection in capture files a verdict: plaintext, tls or mtls.
    #[command(after_help = ANALYZE_EXAMPLES)]
    Analyze(AnalyzeArgs),
    /// Capture live on an interface (optionally inside another network namespace) and give
    /// every connection a verdict as it is decided.
    #[command(after_help = CAPTURE_EXAMPLES)]
    Capture(CaptureArgs),
    /// Fail (exit 1) when connections in capture files (or a live capture) are not encrypted as
    /// required.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Istio PeerAuthentication, computed as Istio does.
    #[command(subcommand, after_help = EXPLAIN_EXAMPLES)]
    Policy(PolicyCommand),
    /// Capture in Kubernetes pods through a helper pod on their node (`kubectl mtlscope sniff`),
    /// with pod names and the expected PeerAuthentication mode for every connection.
    #[command(after_help = SNIFF_EXAMPLES)]
    Sniff(SniffArgs),
    /// Delete helper pods that a killed `sniff` left behind.
    #[command(after_help = CLEANUP_EXAMPLES)]
    Cleanup(CleanupArgs),
    /// Run on a node (by the kubectl plugin's helper pod): find a container's process by its
    /// container ID, capture in its network namespace, stream verdicts as JSON lines.
    #[command(after_help = AGENT_EXAMPLES)]
    Agent(AgentArgs),
    /// Run until stopped: capture in a changing set of network namespaces (the pods of a node, or
    /// the --netns given) and serve every connection's verdict as Prometheus metrics.
    #[command(after_help = MONITOR_EXAMPLES)]
    Monitor(MonitorArgs),
    /// Can a namespace switch from PERMISSIVE to STRICT? The clients each port saw over a
    /// window, from the monitors' counters in Prometheus; exit 1 when a port is not safe.
    #[command(after_help = super::readiness::READINESS_EXAMPLES)]
    Readiness(super::readiness::ReadinessArgs),
    /// Print a shell completion script for mtlscope.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command to a folder.
    #[command(after_help = MAN_EXAMPLES)]
    Man(ManArgs),
}

const ANALYZE_EXAMPLES: &str = "Examples:
  mtlscope analyze capture.pcap
  mtlscope analyze -r capture.pcap.gz -o json
  mtlscope analyze a.pcap b.pcapng -f 'tcp port 443' -o jsonl
  tcpdump -i eth0 -U -w - | mtlscope analyze - -o jsonl
  mtlscope analyze capture.pcap --policy-from cluster.yaml";

const CAPTURE_EXAMPLES: &str = "Examples:
  sudo mtlscope capture -i eth0
  sudo mtlscope capture -i any -f 'tcp port 9080' --duration 30s -o jsonl
  sudo mtlscope capture -i eth0 --pid 4242 -w out.pcap
  sudo mtlscope capture -i eth0 --netns cni-1234 --policy-from cluster.yaml";

const CHECK_EXAMPLES: &str = "Examples:
  mtlscope check -r capture.pcap --require mtls
  mtlscope check capture.pcap --require tls --exclude 'port 15020 or port 15021'
  mtlscope check capture.pcap --rules rules.yaml --junit report.xml -o json
  mtlscope check capture.pcap --require policy --policy-from cluster.yaml
  sudo mtlscope check -i eth0 --duration 1m --require mtls";

const EXPLAIN_EXAMPLES: &str = "Examples:
  mtlscope policy explain --from cluster.yaml -n bookinfo --pod reviews-v1-5d9f --port 9080
  mtlscope policy explain --cluster -n bookinfo --pod reviews-v1-5d9f --service-port 9080 -o json";

const CLEANUP_EXAMPLES: &str = "Examples:
  kubectl mtlscope cleanup -n bookinfo
  kubectl mtlscope cleanup -A --dry-run";

const AGENT_EXAMPLES: &str = "Examples (the helper pod of `kubectl mtlscope sniff` runs it; see `sniff --dry-run`):
  mtlscope agent --container-id containerd://3f1c0e2a -i eth0 --duration 30s
  mtlscope agent --container-id containerd://3f1c0e2a -i lo --pcap --stop-on-stdin";

const MONITOR_EXAMPLES: &str = "Examples:
  sudo mtlscope monitor --netns cni-1234 --netns cni-5678 --policy-from cluster.yaml
  sudo mtlscope monitor -i any --metrics-addr 127.0.0.1:9477
  mtlscope monitor --node worker-1 --reports --prometheus http://prometheus:9090";

#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// In a cluster: capture in the pods of this node, followed through the API with the pod's
    /// service account or the kubeconfig (default: the NODE_NAME environment variable).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Interface captured on in every namespace.
    #[arg(short = 'i', long = "interface", default_value = "eth0", value_name = "IFACE")]
    pub interface: String,
    /// Outside a cluster: capture in this network namespace (a name under /var/run/netns, or a
    /// path such as /proc/PID/ns/net); repeat for more. Without it and without --node, the
    /// monitor's own namespace (`host` in the metrics).
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "node")]
    pub netns: Vec<String>,
    /// Serve /metrics and /healthz here: HOST:PORT, or :PORT for every address.
    #[arg(long, value_parser = metrics_addr, default_value = ":9477", value_name = "ADDR")]
    pub metrics_addr: std::net::SocketAddr,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Where the node's processes are visible (a DaemonSet with hostPID: true): pods' network
    /// namespaces are found through it.
    #[arg(long, default_value = "/proc", value_name = "DIR")]
    pub proc_root: std::path::PathBuf,
    /// Kernel capture buffer of each namespace: 64KiB to 1GiB (k, M and G are powers of 1024).
    /// --max-pods of them may be allocated at once.
    #[arg(long, value_parser = values::buffer_size, default_value = "2MiB", value_name = "SIZE")]
    pub buffer_size: i32,
    /// Most network namespaces captured in at once; more are refused with a warning.
    #[arg(long, value_parser = max_pods, default_value = "110", value_name = "N")]
    pub max_pods: usize,
    #[command(flatten)]
    pub limits: Limits,
    /// Also write one OpenReports Report per namespace (pass / warn / fail per workload and port
    /// against its PeerAuthentication mode), from what --prometheus has recorded of these
    /// metrics (one monitor writes them, holding a Lease).
    #[arg(long, requires = "prometheus")]
    pub reports: bool,
    /// The Prometheus that scrapes the monitors (its HTTP API), for --reports.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// How often the reports are written.
    #[arg(long, value_parser = report_duration, default_value = "1m", value_name = "DURATION", requires = "reports")]
    pub report_interval: std::time::Duration,
    /// How far back the reports look.
    #[arg(long, value_parser = report_duration, default_value = "1h", value_name = "DURATION", requires = "reports")]
    pub report_window: std::time::Duration,
    /// The namespace of the reports' Lease (default: the POD_NAMESPACE environment variable).
    #[arg(long, value_name = "NS", requires = "reports")]
    pub lease_namespace: Option<String>,
}

/// `--metrics-addr`: `HOST:PORT`, `[V6]:PORT`, or `:PORT` (every IPv4 address).
pub fn metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    full.parse().map_err(|_| {
        format!("'{s}' is not an address to listen on: give HOST:PORT (127.0.0.1:9477, [::]:9477) or :PORT")
    })
}

fn max_pods(s: &str) -> Result<usize, String> {
    values::count_in(s, 1..=100_000, "network namespaces captured at once").map(|n| n as usize)
}

fn report_duration(s: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    values::duration_in(
        s,
        Duration::from_secs(1)..=Duration::from_secs(30 * 86_400),
        "for --reports",
    )
}

const COMPLETIONS_EXAMPLES: &str = "Examples:
  mtlscope completions bash > /etc/bash_completion.d/mtlscope
  mtlscope completions zsh > \"${fpath[1]}/_mtlscope\"
  mtlscope completions fish > ~/.config/fish/completions/mtlscope.fish";

const MAN_EXAMPLES: &str = "Examples:
  mtlscope man | man -l -
  mtlscope man --dir /usr/local/share/man/man1";

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write mtlscope.1 and a page per command (mtlscope-analyze.1, ...) to this folder instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
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
    /// Stop after this long (30s, 2m, 1h30m, 500ms, or seconds); default: until Ctrl-C.
    #[arg(long, value_parser = values::capture_duration, value_name = "DURATION")]
    pub duration: Option<std::time::Duration>,
    /// Stop each pod's capture after this many packets.
    #[arg(long, value_parser = values::packet_count, value_name = "N")]
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
    /// A prebuilt image with mtlscope inside, run as the helper instead of uploading the agent
    /// (air-gapped clusters, a registry of your own; see docs/kubernetes.md).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// The stock image the agent is uploaded into (without --image): any image with sh, head,
    /// wc, sha256sum, chmod, mv and sleep, such as a mirror's copy of the default.
    #[arg(long, value_name = "IMAGE", default_value = crate::kube::helper_pod::DEFAULT_HELPER_IMAGE, conflicts_with = "image")]
    pub helper_image: String,
    /// The static Linux agent to upload (default: this plugin when it is one, else
    /// mtlscope-agent-linux-<arch> beside it, as in the release archive).
    #[arg(long, value_name = "PATH", conflicts_with = "image")]
    pub agent_binary: Option<std::path::PathBuf>,
    /// Accept a dynamically linked --agent-binary (a helper image with its C library; the tests).
    #[arg(long, hide = true, requires = "agent_binary")]
    pub allow_dynamic_agent: bool,
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
    /// How long to wait for a helper pod to run (image pull included): 1s to 1day.
    #[arg(long, value_parser = values::pod_running_timeout, default_value = "2m", value_name = "DURATION")]
    pub pod_running_timeout: std::time::Duration,
    /// Do not join the cluster's PeerAuthentications (pod names are still shown).
    #[arg(long)]
    pub no_policy: bool,
    /// Istio's root namespace (default: from the mesh config, else istio-system).
    #[arg(long, value_name = "NS")]
    pub root_namespace: Option<String>,
    /// The agent's command in an --image.
    #[arg(long, default_value = "mtlscope", value_name = "PATH", hide = true)]
    pub agent_path: String,
    /// Without --duration, stop anyway after this long (the helper pod's deadline follows).
    #[arg(long, value_parser = values::max_duration, default_value = "1h", value_name = "DURATION")]
    pub max_duration: std::time::Duration,
    /// Most connections each agent tracks at once (sized for the helper's 512 MiB limit): 1 to
    /// 100000000.
    #[arg(long, value_parser = values::max_flows, default_value = "100000", value_name = "N")]
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction of a connection: 1KiB to 1GiB (k, M and G are
    /// powers of 1024).
    #[arg(long, value_parser = values::stream_buffer, default_value = "256KiB", value_name = "SIZE")]
    pub stream_buffer: usize,
    /// Close a connection after this long without packets (10m, 90s, or seconds): 1s to 7days.
    #[arg(long, value_parser = values::idle_timeout, default_value = "10m", value_name = "DURATION")]
    pub idle_timeout: std::time::Duration,
    /// Bytes all connections of one agent may buffer (sized for the helper's 512 MiB limit):
    /// 64KiB to 64GiB (k, M and G are powers of 1024).
    #[arg(long, value_parser = values::total_buffer, default_value = "64MiB", value_name = "SIZE")]
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
    /// Only packets matching this BPF expression (tcpdump syntax); needs a build with libpcap
    /// (the static agent has none: it takes --bpf-program).
    #[arg(short = 'f', long = "filter", value_name = "EXPR", conflicts_with = "bpf_program")]
    pub filter: Option<String>,
    /// Only packets matching this compiled filter, applied in the kernel: `tcpdump -ddd` output
    /// with its lines joined by commas (`4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0`); what the
    /// plugin passes for `sniff -f`.
    #[arg(long, value_name = "PROGRAM", requires = "bpf_link_type")]
    pub bpf_program: Option<String>,
    /// The link type --bpf-program was compiled for (1: Ethernet, as eth0 and lo are; 113: Linux
    /// cooked, as `-i any` is); a program for another link type than the interface's is refused.
    #[arg(long, value_name = "LINKTYPE", requires = "bpf_program")]
    pub bpf_link_type: Option<i32>,
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
    #[command(after_help = EXPLAIN_EXAMPLES)]
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
    /// Stop after this long (30s, 2m, 1h30m, 500ms, or seconds): up to 30days.
    #[arg(long, value_parser = values::capture_duration, value_name = "DURATION")]
    pub duration: Option<std::time::Duration>,
    /// Stop after this many packets (at least 1).
    #[arg(short = 'c', long, value_parser = values::packet_count, value_name = "N")]
    pub count: Option<u64>,
    /// Also write the captured packets to this pcap file (not `-`: the report is on standard
    /// output; `tcpdump -w -` streams packets alone).
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
    /// Bytes kept of each packet: 1 to 256KiB; 0 keeps whole packets (256KiB), as in tcpdump.
    #[arg(short = 's', long, value_parser = values::snaplen, default_value = "256KiB", value_name = "SIZE")]
    pub snaplen: i32,
    /// Put the interface in promiscuous mode (off by default, as `tcpdump -p`).
    #[arg(long)]
    pub promisc: bool,
    #[command(flatten)]
    pub stop: StopArgs,
    /// Kernel capture buffer; a larger one survives bursts without drops: 64KiB to 1GiB (k, M
    /// and G are powers of 1024).
    #[arg(long, value_parser = values::buffer_size, default_value = "32MiB", value_name = "SIZE")]
    pub buffer_size: i32,
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Only packets matching this BPF expression (tcpdump syntax), applied in the kernel.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// A table that refreshes as verdicts arrive (on a terminal; `wide`: more columns and all
    /// the evidence), one JSON document at the end, or JSON lines as soon as each verdict is final.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub format: Format,
    /// A TLS key log (NSS format, as SSLKEYLOGFILE, `openssl s_client -keylogfile` and Go's
    /// KeyLogWriter write it): the TLS 1.3 handshakes it has secrets for are decrypted, for a
    /// certain verdict and the client's certificate (docs/keylogs.md). Repeat for more files;
    /// a pcapng Decryption Secrets Block is used without it. Keep the file short-lived: it
    /// decrypts the traffic it covers.
    #[arg(long = "keylog-file", value_name = "FILE")]
    pub keylog_file: Vec<std::path::PathBuf>,
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
    /// Read this capture file (`-`: standard input), as tcpdump -r and tshark -r do; repeat it
    /// for more files. Same as a FILE argument; all are read in command-line order.
    #[arg(short = 'r', long = "read-file", value_name = "FILE")]
    pub read_file: Vec<String>,
    /// Only packets matching this BPF expression (tcpdump syntax), e.g. 'tcp port 443'.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Show progress on standard error (default: only when it is a terminal and not under CI).
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show progress.
    #[arg(long)]
    pub no_progress: bool,
    /// A TLS key log (NSS format, as SSLKEYLOGFILE, `openssl s_client -keylogfile` and Go's
    /// KeyLogWriter write it): the TLS 1.3 handshakes it has secrets for are decrypted, for a
    /// certain verdict and the client's certificate (docs/keylogs.md). Repeat for more files;
    /// a pcapng Decryption Secrets Block is used without it. Keep the file short-lived: it
    /// decrypts the traffic it covers.
    #[arg(long = "keylog-file", value_name = "FILE")]
    pub keylog_file: Vec<std::path::PathBuf>,
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

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format: a table (`wide`: more columns and all the evidence), one JSON document,
    /// or JSON lines (one connection per line as soon as its verdict is final, then a summary
    /// line).
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
    /// Every connection (after --exclude) must meet this, on positive evidence: a failed
    /// handshake never meets mtls, tls or encrypted, nor does an uncertain verdict (see
    /// --allow-uncertain).
    #[arg(long, value_enum, value_name = "LEVEL", required_unless_present = "rules")]
    pub require: Option<Requirement>,
    /// Leave out packets matching this BPF expression, e.g. 'port 15020 or port 15021'.
    #[arg(long, value_name = "EXPR")]
    pub exclude: Option<String>,
    /// YAML file of rules: `rules: [{name, match: {ports, cidrs, server_cidrs, client_cidrs, sni}, require, client_identity, allow_uncertain}]`.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
    /// Also write a JUnit XML report (one testsuite per rule, one testcase per connection).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<std::path::PathBuf>,
    /// Report format on standard output.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub format: CheckFormat,
    /// `certain` refuses tls and mtls verdicts inferred from encrypted lengths (TLS 1.3) or
    /// linked resumptions, for --require tls, mtls and policy (STRICT); uncertain ones too,
    /// whatever --allow-uncertain says.
    #[arg(long, value_enum, default_value = "inferred")]
    pub evidence: EvidenceLevel,
    /// Let an uncertain verdict (record padding, a resumption whose first handshake is not in
    /// the capture, a handshake seen in part) pass a requirement its kind meets, in every rule,
    /// as `allow_uncertain: true` does for one rule: an uncertain `tls` passes tls and
    /// encrypted, never mtls. Counted apart; a failed handshake and --evidence certain still fail it.
    #[arg(long)]
    pub allow_uncertain: bool,
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

/// Resource bounds. Sizes take bytes or units that are all powers of 1024 (64k = 64KiB =
/// 65536, 32M = 32MB = 32MiB); durations take seconds or units (10m, 90s, 1h30m, 500ms).
#[derive(Args, Debug, Clone)]
pub struct Limits {
    /// Most connections tracked at once; the least recently active are closed past it: 1 to
    /// 100000000.
    #[arg(long, value_parser = values::max_flows, default_value = "1000000", value_name = "N")]
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction of a connection before a hole is given up:
    /// 1KiB to 1GiB (64k, 1MiB, or bytes; k, M and G are powers of 1024).
    #[arg(long, value_parser = values::stream_buffer, default_value = "256KiB", value_name = "SIZE")]
    pub stream_buffer: usize,
    /// Close a connection after this long without packets, in capture time (10m, 90s, or
    /// seconds): 1s to 7days.
    #[arg(long, value_parser = values::idle_timeout, default_value = "10m", value_name = "DURATION")]
    pub idle_timeout: std::time::Duration,
    /// Bytes all connections together may buffer before the largest buffers are given up:
    /// 64KiB to 64GiB (32MiB, 1G, or bytes; k, M and G are powers of 1024).
    #[arg(long, value_parser = values::total_buffer, default_value = "256MiB", value_name = "SIZE")]
    pub total_buffer: usize,
    /// Include the first bytes of plaintext connections in the report. Off by default: they
    /// can carry credentials and personal data.
    #[arg(long)]
    pub show_payload: bool,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    #[test]
    fn metrics_addresses() {
        assert_eq!(super::metrics_addr(":9477").unwrap().to_string(), "0.0.0.0:9477");
        assert_eq!(super::metrics_addr("127.0.0.1:1").unwrap().to_string(), "127.0.0.1:1");
        assert_eq!(super::metrics_addr("[::]:9477").unwrap().to_string(), "[::]:9477");
        assert!(super::metrics_addr("localhost").unwrap_err().contains(":PORT"));
    }

    /// The command line an example line runs mtlscope with: the part of a pipeline or a
    /// redirection that names it, without `sudo` or `kubectl`.
    fn example_args(line: &str) -> Option<Vec<String>> {
        let part = line.split(['|', '>']).find(|p| p.contains("mtlscope"))?;
        let mut words = shell_words::split(part).ok()?;
        words.retain(|w| w != "sudo" && w != "kubectl");
        (words.first().map(String::as_str) == Some("mtlscope")).then_some(words)
    }

    /// Every command and subcommand has an `Examples:` section in its help, and every example
    /// there parses: a flag renamed or removed breaks this test, not a reader's copy-paste.
    #[test]
    fn every_command_has_examples_that_parse() {
        fn walk(cmd: &clap::Command, path: String, checked: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| panic!("`{path}` has no examples"));
                let mut lines = help.lines();
                assert!(
                    lines.next().is_some_and(|l| l.starts_with("Examples")),
                    "{path}: {help}"
                );
                let mut n = 0;
                for line in lines {
                    let args = example_args(line).unwrap_or_else(|| panic!("{path}: not an mtlscope line: {line}"));
                    assert!(
                        args.join(" ").contains(path.trim()),
                        "{path}: example of another command: {line}"
                    );
                    if let Err(e) = Cli::try_parse_from(&args) {
                        panic!("{path}: example does not parse: {line}\n{e}");
                    }
                    n += 1;
                }
                assert!(n > 0, "{path}: no example lines");
                checked.push(path.clone());
                walk(sub, path, checked);
            }
        }
        let mut checked = Vec::new();
        walk(&Cli::command(), String::new(), &mut checked);
        assert!(checked.len() >= 10, "{checked:?}");
    }
}
