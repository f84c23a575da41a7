//! `kubectl mtlscope sniff` and `kubectl mtlscope cleanup`: capture in pods through a helper
//! pod on each pod's node (see [`crate::kube::helper_pod`] for what the helper may do, and why).
//!
//! One run: resolve the target to pods ([`client::resolve_targets`]) and pick each pod's
//! container; build one helper pod per node; create them, wait until they run, and in each one
//! `exec` `mtlscope agent --container-id ID ...` for every target pod on that node. Each agent
//! streams JSON lines (one per connection as soon as its verdict is final, then a summary); with
//! `-w` it streams pcap instead, which is written to the file and analysed here with the same
//! engine. Connections are joined to the cluster (pod names for both ends, the expected
//! PeerAuthentication mode) and shown as `capture` shows them.
//!
//! The helpers are deleted on every way out: the end of the capture, an error, Ctrl-C,
//! SIGTERM, SIGHUP. The first signal asks the agents to stop (a `stop` line on their stdin) so
//! the connections still open are reported; a second one stops at once. A plugin killed with
//! SIGKILL leaves helpers behind: their `activeDeadlineSeconds` ends them, and `cleanup` deletes
//! them.

use crate::kube::client::{self, KubeError, KubeTarget};
use crate::kube::helper_pod::{self, HelperOptions, ANNOTATION_TARGETS, CONTAINER, LABEL_MANAGED_BY, MANAGED_BY};
use crate::pipeline::engine::{Config, Engine};
use crate::pipeline::record::{FlowReport, Output, Summary};
use crate::pipeline::source::CaptureReader;
use crate::pipeline::verdict::Kind;
use crate::policy;
use crate::policy::Cluster;
use crate::report::{self, Row};
use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How the results (or, with `--dry-run`, the helper pods) are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SniffFormat {
    Table,
    Json,
    Jsonl,
    /// Only with --dry-run: the helper pods as YAML.
    Yaml,
}

/// Everything `sniff` needs, from the command line.
#[derive(Debug, Clone)]
pub struct SniffOptions {
    pub kube: KubeTarget,
    pub namespace: Option<String>,
    pub target: Option<String>,
    pub selector: Option<String>,
    pub container: Option<String>,
    pub interface: String,
    pub filter: Option<String>,
    pub duration: Option<Duration>,
    /// Without --duration, the capture still ends after this (the helper's backstop).
    pub max_duration: Duration,
    pub count: Option<u64>,
    pub write: Option<PathBuf>,
    pub format: Option<SniffFormat>,
    pub dry_run: bool,
    pub image: String,
    pub pull_policy: String,
    pub privileged: bool,
    pub helper_namespace: Option<String>,
    pub running_timeout: Duration,
    /// Leave out the PeerAuthentication join (pod names are still shown).
    pub no_policy: bool,
    pub root_namespace: Option<String>,
    /// The agent's path in the helper image.
    pub agent: String,
    pub limits: Config,
}

/// One target pod to capture in, and where.
#[derive(Debug, Clone)]
struct Capture {
    pod: policy::Pod,
    container: String,
    container_id: String,
    node: String,
    /// The helper pod's name once created.
    helper: Option<String>,
    /// `-w` file for this pod.
    write: Option<PathBuf>,
}

impl Capture {
    fn label(&self) -> String {
        format!("{}/{}", self.pod.namespace, self.pod.name)
    }
}

/// `kubectl mtlscope sniff`; returns the exit status.
pub fn sniff(opts: SniffOptions) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(sniff_async(opts))
}

async fn sniff_async(opts: SniffOptions) -> Result<i32> {
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
    let pods = client::resolve_targets(&client, &namespace, opts.target.as_deref(), opts.selector.as_deref()).await?;
    let mut captures = plan(&pods, opts.container.as_deref())?;
    if let Some(w) = &opts.write {
        let many = captures.len() > 1;
        for c in &mut captures {
            c.write = Some(if many { per_pod_path(w, &c.pod) } else { w.clone() });
        }
    }
    let helper_ns = opts.helper_namespace.clone().unwrap_or_else(|| namespace.clone());
    let helper_opts = HelperOptions {
        namespace: helper_ns.clone(),
        image: opts.image.clone(),
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
            (node.clone(), helper_pod::helper_pod(&helper_opts, node, &targets))
        })
        .collect();

    if opts.dry_run {
        print_dry_run(&helpers, &captures, &opts, format)?;
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
    let result = run(&mut session, &helpers, &mut captures, &opts, format, cluster.as_ref()).await;
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

/// A signal arrived before the capture started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Interrupted(&'static str);

/// As a shell reports a process ended by Ctrl-C.
const EXIT_INTERRUPTED: i32 = 130;

/// The pods to capture in, with their container and node; pods that cannot be captured in are
/// skipped with a warning when others remain, and are an error when none does.
fn plan(pods: &[policy::Pod], container: Option<&str>) -> Result<Vec<Capture>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for p in pods {
        let name = format!("{}/{}", p.namespace, p.name);
        let Some(node) = p.node.clone() else {
            problems.push(format!("pod {name} is not scheduled on a node yet"));
            continue;
        };
        if p.phase.as_deref() != Some("Running") {
            problems.push(format!(
                "pod {name} is {} (not Running)",
                p.phase.as_deref().unwrap_or("in an unknown phase")
            ));
            continue;
        }
        let c = match p.container(container) {
            Ok(c) => c,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let Some(id) = c.id.clone() else {
            problems.push(format!(
                "container '{}' of pod {name} has no container ID (not started yet?)",
                c.name
            ));
            continue;
        };
        if p.host_network {
            eprintln!(
                "mtlscope: warning: pod {name} uses the node's network (hostNetwork): the capture sees all of node \
                 {node}'s traffic on the interface"
            );
        }
        out.push(Capture {
            pod: p.clone(),
            container: c.name.clone(),
            container_id: id,
            node,
            helper: None,
            write: None,
        });
    }
    if out.is_empty() {
        bail!("nothing to capture in: {}", problems.join("; "));
    }
    for p in problems {
        eprintln!("mtlscope: warning: skipping {p}");
    }
    Ok(out)
}

/// `out.pcap` -> `out-<namespace>-<pod>.pcap` when several pods are captured.
fn per_pod_path(path: &Path, pod: &policy::Pod) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{}-{}.{}", pod.namespace, pod.name, ext.to_string_lossy()),
        None => format!("{stem}-{}-{}", pod.namespace, pod.name),
    };
    path.with_file_name(name)
}

/// Random enough to tell two runs apart: time and process ID.
fn session_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{:04x}", nanos & 0xffff_ffff_ffff, std::process::id() & 0xffff)
}

/// The command the plugin runs in the helper for one target pod.
fn agent_command(c: &Capture, opts: &SniffOptions) -> Vec<String> {
    let mut cmd = vec![
        opts.agent.clone(),
        "agent".into(),
        "--container-id".into(),
        c.container_id.clone(),
        "-i".into(),
        opts.interface.clone(),
        "--stop-on-stdin".into(),
    ];
    if let Some(f) = &opts.filter {
        cmd.extend(["-f".into(), f.clone()]);
    }
    let d = opts.duration.unwrap_or(opts.max_duration);
    cmd.extend(["--duration".into(), format!("{}ms", d.as_millis())]);
    if let Some(n) = opts.count {
        cmd.extend(["--count".into(), n.to_string()]);
    }
    if c.write.is_some() {
        cmd.push("--pcap".into());
    }
    let l = &opts.limits;
    cmd.extend([
        "--max-flows".into(),
        l.max_flows.to_string(),
        "--stream-buffer".into(),
        l.dir_cap.to_string(),
        "--total-buffer".into(),
        l.total_buffer_cap.to_string(),
        "--idle-timeout".into(),
        (l.idle_timeout_ns / 1_000_000_000).to_string(),
    ]);
    if l.show_payload {
        cmd.push("--show-payload".into());
    }
    cmd
}

fn print_dry_run(
    helpers: &[(String, Pod)],
    captures: &[Capture],
    opts: &SniffOptions,
    format: SniffFormat,
) -> Result<()> {
    let mut out = io::stdout().lock();
    let commands = |node: &str| -> Vec<String> {
        captures
            .iter()
            .filter(|c| c.node == node)
            .map(|c| format!("{}: {}", c.label(), shell_words(&agent_command(c, opts))))
            .collect()
    };
    match format {
        SniffFormat::Json => {
            let items: Vec<Value> = helpers
                .iter()
                .map(|(_, p)| serde_json::to_value(p))
                .collect::<Result<_, _>>()?;
            let doc = if items.len() == 1 {
                items.into_iter().next().unwrap_or_default()
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items})
            };
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        _ => {
            for (i, (node, pod)) in helpers.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                writeln!(
                    out,
                    "# helper for node {node}; the plugin then runs, through exec in container {CONTAINER}:"
                )?;
                for c in commands(node) {
                    writeln!(out, "#   {c}")?;
                }
                out.write_all(serde_norway::to_string(pod)?.as_bytes())?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A command line as a shell would need it typed.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,".contains(&b)) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Pods (for names) and PeerAuthentications (for expected modes) from the cluster. Failing to
/// read them is not fatal: the capture goes on without names or policy, and says so.
async fn load_cluster(client: &kube::Client, namespace: &str, opts: &SniffOptions) -> Option<Known> {
    let objects = match client::cluster_objects(client, None).await {
        Ok(o) => o,
        Err(KubeError::Forbidden { .. }) => match client::cluster_objects(client, Some(namespace)).await {
            Ok(o) => {
                eprintln!(
                    "mtlscope: note: cannot list pods in all namespaces; only pods in namespace '{namespace}' are \
                     shown by name"
                );
                o
            }
            Err(e) => {
                eprintln!("mtlscope: warning: connections are shown without pod names or policy: {e}");
                return None;
            }
        },
        Err(e) => {
            eprintln!("mtlscope: warning: connections are shown without pod names or policy: {e}");
            return None;
        }
    };
    for n in &objects.notes {
        eprintln!("mtlscope: note: {n}");
    }
    let policy_api = objects.peer_authentication_version.is_some();
    let mut cluster = match objects.into_cluster() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mtlscope: warning: connections are shown without pod names or policy: {e}");
            return None;
        }
    };
    if let Some(root) = &opts.root_namespace {
        cluster.set_root_namespace(root);
    }
    for w in cluster.warnings() {
        eprintln!("mtlscope: warning: {w}");
    }
    if !policy_api && !opts.no_policy {
        eprintln!(
            "mtlscope: note: this cluster does not serve Istio's PeerAuthentication API (security.istio.io): \
             connections are shown without an expected mode"
        );
    }
    Some(Known {
        cluster,
        policy: policy_api && !opts.no_policy,
    })
}

/// What the cluster says about addresses, and whether its PeerAuthentications apply (not
/// without Istio's API, nor with `--no-policy`).
struct Known {
    cluster: Cluster,
    policy: bool,
}

/// The helper pods created so far, to delete on every way out, and the tasks that read the
/// agents' streams, to let them finish (a `-w` file complete) once the helpers are gone.
struct Session {
    client: kube::Client,
    namespace: String,
    /// The value of the session label on this run's helpers.
    id: String,
    created: Vec<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How long one delete may take before the helper is reported as left behind.
const DELETE_TIMEOUT: Duration = Duration::from_secs(20);

impl Session {
    /// Delete the helpers this run created: by name, and by the session label too, which also
    /// finds a helper whose create was sent but whose answer never arrived.
    async fn delete_all(&mut self) -> Result<()> {
        let mut names = std::mem::take(&mut self.created);
        let selector = format!("{}={}", helper_pod::LABEL_SESSION, self.id);
        let listed = tokio::time::timeout(
            DELETE_TIMEOUT,
            client::list_pods_labelled(&self.client, Some(&self.namespace), &selector),
        )
        .await;
        if let Ok(Ok(pods)) = listed {
            names.extend(pods.into_iter().filter_map(|p| p.metadata.name));
        }
        names.sort();
        names.dedup();
        let mut failed = Vec::new();
        for name in names {
            let why =
                match tokio::time::timeout(DELETE_TIMEOUT, client::delete_pod(&self.client, &self.namespace, &name))
                    .await
                {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer from the API server in {}s", DELETE_TIMEOUT.as_secs()),
                };
            failed.push(format!(
                "{name}: {why} (delete it with `kubectl delete pod -n {} {name}` or `kubectl mtlscope cleanup -n {}`)",
                self.namespace, self.namespace
            ));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("helper pods left behind: {}", failed.join("; "))
        }
    }

    /// Wait (briefly) for the stream readers: with the helpers deleted their streams end.
    async fn drain(&mut self) {
        for t in std::mem::take(&mut self.tasks) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// What the agents' streams deliver to the main loop.
enum Event {
    /// A connection's JSON object.
    Flow(usize, Value),
    /// The agent's final summary object.
    Summary(usize, Value),
    /// The kernel's counters, from an agent streaming pcap (on its stderr).
    Capture(usize, Value),
    /// A line the agent wrote on standard error.
    Stderr(usize, String),
    /// The exec stream ended: `Err` says why the agent failed.
    Done(usize, std::result::Result<(), String>),
}

/// How the run was stopped by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    No,
    /// First signal: the agents were asked to stop.
    Asked,
}

async fn run(
    session: &mut Session,
    helpers: &[(String, Pod)],
    captures: &mut [Capture],
    opts: &SniffOptions,
    format: SniffFormat,
    cluster: Option<&Known>,
) -> Result<i32> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    macro_rules! interruptible {
        ($fut:expr) => {
            tokio::select! {
                r = $fut => r,
                _ = sigint.recv() => return Err(Interrupted("interrupted").into()),
                _ = sigterm.recv() => return Err(Interrupted("terminated").into()),
                _ = sighup.recv() => return Err(Interrupted("hung up").into()),
            }
        };
    }

    // Create the helpers, then wait until each one runs. A create is never abandoned half way
    // (the pod could exist without this run knowing its name): a signal that arrives meanwhile
    // is seen by the next interruptible step.
    for (node, pod) in helpers {
        let created = client::create_pod(&session.client, &session.namespace, pod)
            .await
            .with_context(|| format!("creating the helper pod for node {node}"))?;
        let name = created.metadata.name.clone().unwrap_or_default();
        session.created.push(name.clone());
        for c in captures.iter_mut().filter(|c| &c.node == node) {
            c.helper = Some(name.clone());
        }
    }
    for name in session.created.clone() {
        interruptible!(wait_running(
            &session.client,
            &session.namespace,
            &name,
            opts.running_timeout
        ))?;
    }

    // Start one agent per target pod.
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut stdins = Vec::new();
    for (i, c) in captures.iter().enumerate() {
        let helper = c.helper.clone().unwrap_or_default();
        let mut attached = interruptible!(client::exec(
            &session.client,
            &session.namespace,
            &helper,
            CONTAINER,
            agent_command(c, opts)
        ))
        .with_context(|| format!("starting the agent for {} in helper pod {helper}", c.label()))?;
        stdins.push(attached.stdin());
        let outputs = spawn_streams(i, &mut attached, c, opts, tx.clone())?;
        let status = attached.take_status();
        let done = tx.clone();
        let task = tokio::spawn(async move {
            let outcome = match status {
                Some(s) => match s.await {
                    Some(st) if st.status.as_deref() == Some("Success") => Ok(()),
                    Some(st) => Err(st.message.unwrap_or_else(|| "the agent failed".to_owned())),
                    None => Ok(()),
                },
                None => Ok(()),
            };
            // Keep the process (and its stream) alive until the status has arrived, and report
            // the end only after everything the agent wrote has been handed on.
            let _ = attached.join().await;
            for o in outputs {
                let _ = o.await;
            }
            let _ = done.send(Event::Done(i, outcome));
        });
        session.tasks.push(task);
    }
    drop(tx);

    let mut out = Results::new(format, captures);
    let mut stop = Stop::No;
    let mut grace: Option<tokio::time::Instant> = None;
    let mut running = captures.len();
    let mut failures: Vec<String> = Vec::new();
    let started = Instant::now();
    while running > 0 {
        let deadline = grace.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
        let signalled = tokio::select! {
            ev = rx.recv() => {
                match ev {
                    None => break,
                    Some(Event::Flow(i, v)) => out.flow(i, v, captures, cluster)?,
                    Some(Event::Summary(i, v)) => out.summary(i, v),
                    Some(Event::Capture(i, v)) => out.kernel[i] = Some(v),
                    Some(Event::Stderr(i, line)) => out.agent_said(i, &line, captures),
                    Some(Event::Done(i, r)) => {
                        running -= 1;
                        match r {
                            Err(e) => failures.push(format!(
                                "agent for {} failed: {e}{}",
                                captures[i].label(),
                                out.last_words(i)
                            )),
                            Ok(()) if out.summaries[i].is_none() => eprintln!(
                                "mtlscope: warning: the stream from the agent for {} ended before its summary (the \
                                 connection to the API server or the helper pod was lost): connections still open \
                                 there are not reported",
                                captures[i].label()
                            ),
                            Ok(()) => {}
                        }
                    }
                }
                false
            }
            _ = sigint.recv() => true,
            _ = sigterm.recv() => true,
            _ = sighup.recv() => true,
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!("mtlscope: the agents did not stop within 10 s; stopping without their last connections");
                break;
            }
        };
        if signalled {
            if stop == Stop::Asked {
                eprintln!("mtlscope: stopping now");
                break;
            }
            stop = Stop::Asked;
            eprintln!("mtlscope: stopping the capture (Ctrl-C again to stop at once)");
            for s in stdins.iter_mut().flatten() {
                let _ = s.write_all(b"stop\n").await;
                let _ = s.flush().await;
            }
            grace = Some(tokio::time::Instant::now() + Duration::from_secs(10));
        }
        out.tick(started, running);
    }
    out.finish(captures)?;
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(crate::report::EXIT_OK)
}

/// Poll the helper until its container runs; fail early when it cannot start.
async fn wait_running(client: &kube::Client, namespace: &str, name: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let pod = client::get_pod(client, namespace, name).await?;
        if helper_pod::running(&pod) {
            return Ok(());
        }
        if let Some(why) = helper_pod::failure(&pod) {
            bail!("helper pod {namespace}/{name} cannot run: {why}");
        }
        if start.elapsed() >= timeout {
            let phase = pod.status.and_then(|s| s.phase).unwrap_or_else(|| "unknown".into());
            bail!(
                "helper pod {namespace}/{name} is not running after {}s (phase {phase}); `kubectl describe pod -n \
                 {namespace} {name}` shows why (raise the wait with --pod-running-timeout)",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Read an agent's stdout (JSON lines, or pcap with -w) and stderr into events. The handle
/// ends when the last event from stdout has been sent.
fn spawn_streams(
    i: usize,
    attached: &mut kube::api::AttachedProcess,
    c: &Capture,
    opts: &SniffOptions,
    tx: mpsc::UnboundedSender<Event>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut handles = Vec::new();
    if let Some(stderr) = attached.stderr() {
        let tx = tx.clone();
        handles.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // An agent streaming pcap reports the kernel's counters as one JSON line here.
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v.get("capture").is_some() => {
                        let _ = tx.send(Event::Capture(i, v["capture"].clone()));
                    }
                    _ => {
                        let _ = tx.send(Event::Stderr(i, line));
                    }
                }
            }
        }));
    }
    let Some(stdout) = attached.stdout() else {
        bail!("the exec stream of {} has no standard output", c.label());
    };
    let handle = match &c.write {
        None => {
            let label = c.label();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) if v.get("summary").is_some() => {
                            let _ = tx.send(Event::Summary(i, v["summary"].clone()));
                        }
                        Ok(v) if v.is_object() => {
                            let _ = tx.send(Event::Flow(i, v));
                        }
                        _ => {
                            let _ = tx.send(Event::Stderr(
                                i,
                                format!("unexpected output from the agent for {label} (not a JSON object)"),
                            ));
                        }
                    }
                }
            })
        }
        Some(path) => {
            let path = path.clone();
            let cfg = opts.limits.clone();
            // Bounded: a local analysis slower than the stream holds this task back (not the
            // runtime), and the -w file is written whatever the analysis does.
            let (chunks_tx, chunks_rx) = mpsc::channel::<Vec<u8>>(64);
            // The pcap stream: to the file, and to a local engine on a thread of its own.
            let analysis_tx = tx.clone();
            let name = path.display().to_string();
            let analysis = std::thread::spawn(move || analyse_stream(i, &name, cfg, chunks_rx, analysis_tx));
            tokio::spawn(async move {
                match tokio::fs::File::create(&path).await {
                    Ok(mut file) => {
                        let mut stdout = stdout;
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            let n = match stdout.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if let Err(e) = file.write_all(&buf[..n]).await {
                                let _ = tx.send(Event::Stderr(i, format!("-w {}: {e}", path.display())));
                                break;
                            }
                            // The analysis may have stopped (a broken stream): keep the file going.
                            let _ = chunks_tx.send(buf[..n].to_vec()).await;
                        }
                        let _ = file.flush().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Event::Stderr(
                            i,
                            format!("-w {}: cannot create it: {e}", path.display()),
                        ));
                    }
                }
                // The end of the stream ends the local analysis, which sends the summary.
                drop(chunks_tx);
                let _ = tokio::task::spawn_blocking(move || analysis.join()).await;
            })
        }
    };
    handles.push(handle);
    Ok(handles)
}

/// A `Read` over chunks handed over from the async side.
struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Decided connections of the local engine, as the agent's JSON lines would carry them.
struct ToEvents {
    i: usize,
    tx: mpsc::UnboundedSender<Event>,
}

impl Output for ToEvents {
    fn wants_closed(&self) -> bool {
        false
    }
    fn decided(&mut self, report: &FlowReport) -> io::Result<()> {
        let v = serde_json::to_value(report).map_err(io::Error::other)?;
        let _ = self.tx.send(Event::Flow(self.i, v));
        Ok(())
    }
    fn closed(&mut self, _report: FlowReport) -> io::Result<()> {
        Ok(())
    }
}

/// `-w`: verdicts from the pcap stream, made here by the same engine the agent runs.
fn analyse_stream(i: usize, name: &str, cfg: Config, rx: mpsc::Receiver<Vec<u8>>, tx: mpsc::UnboundedSender<Event>) {
    let reader = ChunkReader {
        rx,
        chunk: Vec::new(),
        pos: 0,
    };
    let mut engine = Engine::new(cfg, ToEvents { i, tx: tx.clone() });
    // A stream that ends before its header: the agent failed first, and its error says why.
    if let Ok(mut r) = CaptureReader::from_read(name, Box::new(reader)) {
        loop {
            match r.next_packet() {
                Ok(Some(p)) => {
                    let _ = engine.packet(p.ts_ns, p.link, p.data);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Event::Stderr(i, format!("reading the packet stream: {e}")));
                    break;
                }
            }
        }
    }
    engine.finish();
    if let Ok(v) = serde_json::to_value(&engine.summary) {
        let _ = tx.send(Event::Summary(i, v));
    }
}

/// Where the connections go, in the chosen format.
struct Results {
    format: SniffFormat,
    /// Kept for a table or a JSON document; JSON lines are written at once.
    flows: Vec<Value>,
    counts: Summary,
    summaries: Vec<Option<Value>>,
    /// Kernel counters reported apart from the summary (agents streaming pcap).
    kernel: Vec<Option<Value>>,
    /// The agents' last lines on stderr, for an error message.
    stderr: Vec<Vec<String>>,
    live_status: bool,
    last_status: Instant,
}

impl Results {
    fn new(format: SniffFormat, captures: &[Capture]) -> Results {
        use std::io::IsTerminal;
        Results {
            format,
            flows: Vec::new(),
            counts: Summary::default(),
            summaries: vec![None; captures.len()],
            kernel: vec![None; captures.len()],
            stderr: vec![Vec::new(); captures.len()],
            live_status: format == SniffFormat::Table && io::stderr().is_terminal(),
            last_status: Instant::now(),
        }
    }

    fn flow(&mut self, i: usize, mut v: Value, captures: &[Capture], cluster: Option<&Known>) -> Result<()> {
        join_cluster(&mut v, cluster);
        count_json(&mut self.counts, &v);
        v["captured_in"] = json!({
            "pod": captures[i].label(),
            "container": captures[i].container,
            "node": captures[i].node,
        });
        if self.format == SniffFormat::Jsonl {
            let mut out = io::stdout().lock();
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
            out.flush()?;
        } else {
            self.flows.push(v);
        }
        Ok(())
    }

    fn summary(&mut self, i: usize, v: Value) {
        self.summaries[i] = Some(v);
    }

    fn agent_said(&mut self, i: usize, line: &str, captures: &[Capture]) {
        eprintln!("[{}] {line}", captures[i].label());
        let s = &mut self.stderr[i];
        s.push(line.to_owned());
        if s.len() > 5 {
            s.remove(0);
        }
    }

    fn last_words(&self, i: usize) -> String {
        match self.stderr[i].last() {
            Some(l) => format!(" (it said: {l})"),
            None => String::new(),
        }
    }

    /// A status line on a terminal while the table is being collected.
    fn tick(&mut self, started: Instant, running: usize) {
        if !self.live_status || self.last_status.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last_status = Instant::now();
        eprint!(
            "\r\x1b[Kcapturing for {}s | {} connections | {running} agent(s) running | Ctrl-C to stop",
            started.elapsed().as_secs(),
            self.counts.connections
        );
    }

    fn finish(&mut self, captures: &[Capture]) -> Result<()> {
        if self.live_status {
            eprint!("\r\x1b[K");
        }
        let (summary, line) = self.total(captures);
        let mut out = io::BufWriter::new(io::stdout().lock());
        match self.format {
            SniffFormat::Jsonl => {
                serde_json::to_writer(&mut out, &json!({ "summary": summary }))?;
                writeln!(out)?;
            }
            SniffFormat::Json | SniffFormat::Yaml => {
                serde_json::to_writer_pretty(&mut out, &json!({"summary": summary, "flows": self.flows}))?;
                writeln!(out)?;
            }
            SniffFormat::Table => {
                let rows: Vec<Row> = self.flows.iter().map(Row::from_json).collect();
                report::write_rows(&mut out, &rows, &line, crate::report::terminal_width())?;
            }
        }
        out.flush()?;
        for c in captures {
            if let Some(w) = &c.write {
                eprintln!("mtlscope: packets of {} written to {}", c.label(), w.display());
            }
        }
        Ok(())
    }

    /// The summary over every agent: counts from the connections, packet and kernel counters
    /// from the agents' summaries, one entry per capture.
    fn total(&self, captures: &[Capture]) -> (Value, String) {
        let mut s = self.counts.clone();
        let mut per_capture = Vec::new();
        for (i, c) in captures.iter().enumerate() {
            let agent = self.summaries[i].as_ref();
            let n = |k: &str| agent.and_then(|a| a.get(k)).and_then(Value::as_u64).unwrap_or(0);
            s.packets += n("packets");
            s.tcp_packets += n("tcp_packets");
            s.evicted_flows += n("evicted_flows");
            s.buffer_limit_hits += n("buffer_limit_hits");
            for e in agent
                .and_then(|a| a.get("errors"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(e) = e.as_str() {
                    s.errors.push(format!("{}: {e}", c.label()));
                }
            }
            per_capture.push(json!({
                "pod": c.label(),
                "container": c.container,
                "node": c.node,
                "helper": c.helper,
                "capture": agent
                    .and_then(|a| a.get("capture"))
                    .filter(|c| !c.is_null())
                    .or(self.kernel[i].as_ref())
                    .cloned()
                    .unwrap_or(Value::Null),
                "written": c.write.as_ref().map(|w| w.display().to_string()),
                "finished": agent.is_some(),
            }));
        }
        let line = s.line();
        let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
        v["captures"] = Value::Array(per_capture);
        (v, line)
    }
}

/// Count a connection's JSON into a summary as [`Summary::count`] counts a verdict.
fn count_json(s: &mut Summary, f: &Value) {
    s.connections += 1;
    if let Some(k) = f
        .get("verdict")
        .and_then(Value::as_str)
        .and_then(|v| Kind::ALL.iter().find(|k| k.name() == v))
    {
        *s.verdicts.entry(k.name()).or_default() += 1;
    }
    match f.get("confidence").and_then(Value::as_str) {
        Some("inferred") => s.inferred += 1,
        Some("uncertain") => s.uncertain += 1,
        _ => {}
    }
    let severity = f.pointer("/kubernetes/policy/finding/severity").and_then(Value::as_str);
    if let Some(key) = ["violation", "warning", "note"]
        .into_iter()
        .find(|k| Some(*k) == severity)
    {
        *s.findings.entry(key).or_default() += 1;
    }
}

/// Pod names for both ends and the expected PeerAuthentication mode, as `enrich` does for
/// `analyze --policy-from`.
fn join_cluster(v: &mut Value, known: Option<&Known>) {
    let Some(known) = known else {
        return;
    };
    let ip = |side: &str| {
        v.pointer(&format!("/{side}/ip"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
    };
    let (Some(client), Some(server)) = (ip("client"), ip("server")) else {
        return;
    };
    let port = v.pointer("/server/port").and_then(Value::as_u64).unwrap_or(0) as u16;
    let loopback = v.get("loopback").and_then(Value::as_bool).unwrap_or(false);
    let verdict = v.get("verdict").and_then(Value::as_str).unwrap_or("").to_owned();
    if let Some(mut k) = crate::pipeline::enrich::lookup(&known.cluster, client, server, port, loopback, &verdict) {
        if !known.policy {
            k.policy = None;
        }
        if let Ok(k) = serde_json::to_value(k) {
            v["kubernetes"] = k;
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy;

    fn pod(name: &str, node: Option<&str>, phase: &str, id: Option<&str>) -> policy::Pod {
        policy::Pod {
            namespace: "ns".into(),
            name: name.into(),
            node: node.map(str::to_owned),
            ips: vec![],
            phase: Some(phase.into()),
            host_network: false,
            containers: vec![
                policy::Container {
                    name: "istio-proxy".into(),
                    id: Some("containerd://1111111111111111".into()),
                    sidecar: true,
                },
                policy::Container {
                    name: "app".into(),
                    id: id.map(str::to_owned),
                    sidecar: false,
                },
            ],
            default_container: None,
            ..Default::default()
        }
    }

    #[test]
    fn plan_picks_the_app_container_and_skips_pods_that_cannot_be_captured() {
        let pods = vec![
            pod("a", Some("n1"), "Running", Some("containerd://aaaaaaaaaaaaaaaa")),
            pod("b", None, "Pending", None),
            pod("c", Some("n2"), "Running", None),
        ];
        let plan = plan(&pods, None).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!((plan[0].container.as_str(), plan[0].node.as_str()), ("app", "n1"));
        assert_eq!(plan[0].container_id, "containerd://aaaaaaaaaaaaaaaa");
        let sidecar = super::plan(&pods[..1], Some("istio-proxy")).unwrap();
        assert_eq!(sidecar[0].container_id, "containerd://1111111111111111");
        let err = super::plan(&pods[1..], None).unwrap_err().to_string();
        assert!(
            err.contains("ns/b is not scheduled") && err.contains("ns/c has no container ID"),
            "{err}"
        );
    }

    #[test]
    fn per_pod_file_names() {
        let p = pod("web-1", None, "Running", None);
        assert_eq!(
            per_pod_path(Path::new("/tmp/out.pcap"), &p),
            Path::new("/tmp/out-ns-web-1.pcap")
        );
        assert_eq!(per_pod_path(Path::new("cap"), &p), Path::new("cap-ns-web-1"));
    }

    #[test]
    fn shell_quoting() {
        let w: Vec<String> = ["mtlscope", "-f", "tcp port 9080", "it's"].map(String::from).to_vec();
        assert_eq!(shell_words(&w), "mtlscope -f 'tcp port 9080' 'it'\\''s'");
    }

    #[test]
    fn counts_from_json() {
        let mut s = Summary::default();
        count_json(
            &mut s,
            &json!({"verdict": "plaintext", "confidence": "certain",
                    "kubernetes": {"policy": {"finding": {"severity": "violation", "message": "x"}}}}),
        );
        count_json(&mut s, &json!({"verdict": "mtls", "confidence": "inferred"}));
        assert_eq!(
            s.line(),
            "2 connections: 1 mtls, 1 plaintext (1 inferred); PeerAuthentication: 1 violation"
        );
    }
}
