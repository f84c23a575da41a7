//! The monitor's loop: one engine for every namespace, behind a mutex, fed by one capture
//! thread per target; targets come and go by [`TargetEvent`]s; the metrics are served until
//! the stop flag is set.
//!
//! Memory is bounded by the engine's caps (`--max-flows`, `--total-buffer`, ...) however many
//! pods there are, plus one AF_PACKET ring per target (`--buffer-size`, 2 MiB by default: 110
//! targets, `--max-pods`' default, take 220 MiB of kernel memory at most). A connection between
//! two pods of the node is seen in both namespaces with the same addresses; only one of the two
//! feeds it to the engine ([`crate::monitor::peers`]), so it is counted once.

use crate::live::capture::{self, LiveOptions, PacketSink};
use crate::monitor::count::{Counting, LocalPods};
use crate::monitor::metrics::{LimitLabels, Metrics, NetnsLabels};
use crate::monitor::peers::{Own, Peers};
use crate::monitor::serve::{ServeError, Server};
use crate::monitor::targets::{Target, TargetEvent};
use crate::monitor::view::ClusterView;
use crate::pipeline::decode::{self, Packet};
use crate::pipeline::engine::{Config, Engine};
use crate::pipeline::source::LinkType;
use prometheus_client::metrics::counter::Counter;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The default per-target AF_PACKET ring (`--buffer-size`).
pub const DEFAULT_BUFFER_SIZE: i32 = 2 << 20;
/// The default most targets captured at once (`--max-pods`): the kubelet's default maxPods.
pub const DEFAULT_MAX_PODS: usize = 110;
/// How often idle connections are closed and the gauges updated, packets or not.
const TICK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// The interface captured on in every target (`-i`).
    pub interface: String,
    pub snaplen: i32,
    /// Per target.
    pub buffer_size: i32,
    pub max_pods: usize,
    pub metrics_addr: SocketAddr,
    pub engine: Config,
    /// `--node`: the pods of this node are the ones whose connections this monitor counts as
    /// their server's (see [`crate::monitor::count`]). `None` outside a cluster.
    pub node: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Serve(#[from] ServeError),
}

type SharedEngine = Arc<Mutex<Engine<Counting>>>;

fn lock(engine: &SharedEngine) -> MutexGuard<'_, Engine<Counting>> {
    // A capture thread that panicked mid-packet left the engine usable: keep counting.
    engine.lock().unwrap_or_else(|e| e.into_inner())
}

/// Packets of one target into the shared engine: decoded outside the engine's lock, and only
/// those this namespace is the one to feed (see [`crate::monitor::peers`]).
struct TargetSink {
    engine: SharedEngine,
    own: Own,
    packets: Counter,
    drops: Counter,
    drops_seen: u64,
    /// Tells the monitor that the capture started, or why it ended (who this is: `name`,
    /// `generation`).
    news: mpsc::Sender<News>,
    name: String,
    generation: u64,
}

impl PacketSink for TargetSink {
    fn packet(&mut self, ts_ns: u64, link: LinkType, data: &[u8]) {
        self.packets.inc();
        // The first packet may come before the first tick.
        self.own.refresh();
        let packet = decode::decode_packet(link, data);
        if let Ok(Packet::Tcp(seg)) = &packet {
            if !self.own.feeds((seg.src, seg.sport), (seg.dst, seg.dport)) {
                return;
            }
        }
        let _ = lock(&self.engine).decoded(ts_ns, packet);
    }
    fn started(&mut self) {
        let _ = self.news.send(News::Started {
            name: self.name.clone(),
            generation: self.generation,
        });
    }
    fn tick(&mut self) {
        self.own.refresh();
    }
    fn kernel_drops(&mut self, total: u64) {
        self.drops.inc_by(total.saturating_sub(self.drops_seen));
        self.drops_seen = self.drops_seen.max(total);
    }
}

/// What a capture thread tells the monitor: its target's name, which start of it, and that its
/// socket is open, or that it ended by itself and why.
enum News {
    Started { name: String, generation: u64 },
    Ended { name: String, generation: u64, why: String },
}

struct Running {
    generation: u64,
    /// The socket is open: what the namespace sends from now on is seen. Until then the target
    /// is not said to be captured (not on standard error, not in `mtlscope_capture_targets`).
    started: bool,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

struct Monitor<'a> {
    opts: &'a MonitorOptions,
    engine: SharedEngine,
    metrics: Arc<Metrics>,
    local: Arc<LocalPods>,
    /// The addresses of the namespaces captured now, so that each packet is fed once.
    peers: Arc<Peers>,
    running: BTreeMap<String, Running>,
    generation: u64,
    news_tx: mpsc::Sender<News>,
    /// Engine counters already added to the metrics: (max_flows, max_syn_only, total_buffer).
    limits_seen: (u64, u64, u64),
}

/// Run the monitor until `stop` is set: serve the metrics on `opts.metrics_addr`, capture in
/// the targets `events` adds (and stop where it removes them), count every connection's final
/// verdict with the labels `view`'s snapshot of the moment gives. A target that cannot be
/// captured in, or whose capture breaks off (the pod went away), is said on standard error with
/// its name and its series removed; the monitor goes on. `Err` only when it could not start.
pub fn run(
    opts: &MonitorOptions,
    events: Receiver<TargetEvent>,
    view: Arc<ClusterView>,
    stop: Arc<AtomicBool>,
) -> Result<(), MonitorError> {
    let metrics = Arc::new(Metrics::new());
    let server = Server::start(opts.metrics_addr, metrics.clone())?;
    eprintln!("mtlscope: serving metrics on http://{}/metrics", server.addr);
    let local = Arc::new(LocalPods {
        node: opts.node.clone(),
        ..LocalPods::default()
    });
    let out = Counting {
        view,
        local: local.clone(),
        metrics: metrics.clone(),
    };
    let (news_tx, news_rx) = mpsc::channel();
    let mut m = Monitor {
        opts,
        engine: Arc::new(Mutex::new(Engine::new(opts.engine.clone(), out))),
        metrics,
        local,
        peers: Arc::new(Peers::default()),
        running: BTreeMap::new(),
        generation: 0,
        news_tx,
        limits_seen: (0, 0, 0),
    };
    let mut events = Some(events);
    while !stop.load(Ordering::Relaxed) {
        match events.as_ref().map(|e| e.recv_timeout(TICK)) {
            Some(Ok(TargetEvent::Add(t))) => m.add(t),
            Some(Ok(TargetEvent::Remove { name })) => m.remove(&name),
            Some(Err(RecvTimeoutError::Timeout)) => {}
            // Nobody sends changes any more: the targets stay as they are.
            Some(Err(RecvTimeoutError::Disconnected)) => events = None,
            None => std::thread::sleep(TICK),
        }
        while let Ok(news) = news_rx.try_recv() {
            match news {
                News::Started { name, generation } => m.started(&name, generation),
                News::Ended { name, generation, why } => m.ended(&name, generation, &why),
            }
        }
        m.tick();
    }
    let names: Vec<String> = m.running.keys().cloned().collect();
    for name in names {
        m.remove(&name);
    }
    server.stop();
    Ok(())
}

impl Monitor<'_> {
    fn add(&mut self, target: Target) {
        if self.running.contains_key(&target.name) {
            // A new namespace for the same name (a recreated sandbox): the old capture goes.
            self.stop_capture(&target.name);
        } else if self.running.len() >= self.opts.max_pods {
            eprintln!(
                "mtlscope: warning: not capturing in {}: already capturing in {} namespaces (raise --max-pods)",
                target.name, self.opts.max_pods
            );
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        let labels = NetnsLabels {
            netns: target.name.clone(),
        };
        let mut sink = TargetSink {
            engine: self.engine.clone(),
            own: Own::new(self.peers.clone(), generation),
            packets: self.metrics.packets.get_or_create(&labels).clone(),
            drops: self.metrics.drops.get_or_create(&labels).clone(),
            drops_seen: 0,
            news: self.news_tx.clone(),
            name: target.name.clone(),
            generation,
        };
        let live = LiveOptions {
            interface: self.opts.interface.clone(),
            netns: target.netns.clone(),
            filter: None,
            program: None,
            snaplen: self.opts.snaplen,
            promisc: false,
            duration: None,
            count: None,
            write: None,
            buffer_size: self.opts.buffer_size,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("capture {}", target.name))
            .spawn(move || {
                let why = match capture::run(&live, &flag, &mut sink) {
                    Err(e) => Some(format!("cannot capture: {e}")),
                    Ok(c) => c.broke_off.map(|e| format!("capture stopped: {e}")),
                };
                if let Some(why) = why.filter(|_| !flag.load(Ordering::Relaxed)) {
                    let _ = sink.news.send(News::Ended {
                        name: sink.name,
                        generation,
                        why,
                    });
                }
            });
        match thread {
            Ok(thread) => {
                self.running.insert(
                    target.name.clone(),
                    Running {
                        generation,
                        started: false,
                        stop,
                        thread,
                    },
                );
                self.local
                    .targets
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(target.name);
            }
            Err(e) => {
                eprintln!("mtlscope: not capturing in {}: starting its thread: {e}", target.name);
                self.metrics.remove_target(&target.name);
            }
        }
        // A replaced capture is no longer counted; the new one is once its socket is open.
        self.count_targets();
    }

    /// A target's socket is open: only now is it said to be captured.
    fn started(&mut self, name: &str, generation: u64) {
        match self.running.get_mut(name) {
            Some(r) if r.generation == generation => r.started = true,
            // A start since replaced, or stopped before its socket opened.
            _ => return,
        }
        eprintln!("mtlscope: capturing on {} in {name}", self.opts.interface);
        self.count_targets();
    }

    /// `mtlscope_capture_targets`: the targets whose socket is open.
    fn count_targets(&self) {
        let started = self.running.values().filter(|r| r.started).count();
        self.metrics.targets.set(started as i64);
    }

    /// Stop a target's capture and wait for it (at most a poll interval).
    fn stop_capture(&mut self, name: &str) {
        if let Some(r) = self.running.remove(name) {
            r.stop.store(true, Ordering::Relaxed);
            let _ = r.thread.join();
        }
    }

    fn remove(&mut self, name: &str) {
        if !self.running.contains_key(name) {
            return;
        }
        self.stop_capture(name);
        self.forget(name);
        eprintln!("mtlscope: stopped capturing in {name}");
    }

    fn forget(&mut self, name: &str) {
        self.metrics.remove_target(name);
        self.local
            .targets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.count_targets();
    }

    fn ended(&mut self, name: &str, generation: u64, why: &str) {
        // A capture since replaced by a new one of the same name is not the current one.
        if self.running.get(name).is_none_or(|r| r.generation != generation) {
            return;
        }
        self.stop_capture(name);
        self.forget(name);
        eprintln!("mtlscope: warning: {name}: {why}; its series are removed, the other targets go on");
    }

    /// Close idle connections (no packet may come to do it) and bring the gauges up to date.
    fn tick(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let mut engine = lock(&self.engine);
        engine.advance(now);
        self.metrics.flows.set(engine.active_flows() as i64);
        let s = &engine.summary;
        let now = (
            s.evicted_flows - s.evicted_syn_only,
            s.evicted_syn_only,
            s.buffer_limit_hits,
        );
        drop(engine);
        let seen = std::mem::replace(&mut self.limits_seen, now);
        for (limit, n) in [
            ("max_flows", now.0 - seen.0),
            ("max_syn_only", now.1 - seen.1),
            ("total_buffer", now.2 - seen.2),
        ] {
            if n > 0 {
                let l = LimitLabels { limit: limit.into() };
                self.metrics.limit_hits.get_or_create(&l).inc_by(n);
            }
        }
    }
}
