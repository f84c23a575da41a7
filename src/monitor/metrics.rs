//! The metrics `mtlscope monitor` serves (issue #16's contract; docs/monitor.md lists them), kept
//! in a `prometheus-client` registry and encoded in its text format for `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The Content-Type of [`Metrics::encode`]'s text (prometheus-client writes OpenMetrics).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Content-Type of [`Metrics::encode_text`]'s.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The labels of `mtlscope_connections_total`, in the contract's order.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub source_workload: String,
    pub source_workload_namespace: String,
    pub destination_workload: String,
    pub destination_workload_namespace: String,
    pub destination_port: String,
    pub verdict: String,
    pub confidence: String,
    pub expected_mode: String,
    pub finding: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NetnsLabels {
    pub netns: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// Every series the monitor exposes. Cheap to share: the families are reference-counted.
pub struct Metrics {
    registry: Registry,
    pub connections: Family<ConnectionLabels, Counter>,
    pub packets: Family<NetnsLabels, Counter>,
    pub drops: Family<NetnsLabels, Counter>,
    pub targets: Gauge,
    pub flows: Gauge,
    pub limit_hits: Family<LimitLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            connections: Family::default(),
            packets: Family::default(),
            drops: Family::default(),
            targets: Gauge::default(),
            flows: Gauge::default(),
            limit_hits: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "mtlscope_connections",
            "TCP connections by final verdict, counted once when the verdict is final, between workloads as Istio names them, with the PeerAuthentication mode expected for the server's port and what the verdict means under it",
            m.connections.clone(),
        );
        let build: Family<VersionLabels, Gauge> = Family::default();
        build
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register(
            "mtlscope_build_info",
            "The mtlscope version serving these metrics (always 1)",
            build,
        );
        registry.register(
            "mtlscope_capture_packets",
            "Packets captured per network namespace (netns: the target's name)",
            m.packets.clone(),
        );
        registry.register(
            "mtlscope_capture_drops",
            "Packets the kernel dropped per network namespace because its capture ring was full (raise --buffer-size)",
            m.drops.clone(),
        );
        registry.register(
            "mtlscope_capture_targets",
            "Network namespaces being captured in now",
            m.targets.clone(),
        );
        registry.register(
            "mtlscope_flows_tracked",
            "Connections tracked now, across all namespaces",
            m.flows.clone(),
        );
        registry.register(
            "mtlscope_buffer_limit_hits",
            "Times a limit made the monitor give up state (limit: max_flows or max_syn_only closed connections early, total_buffer gave up buffered bytes)",
            m.limit_hits.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The exposition, as `/metrics` serves it.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The exposition in Prometheus' classic text format (0.0.4), for clients that do not ask for
    /// OpenMetrics (curl, `promtool check metrics`): the same samples, with a counter's HELP and
    /// TYPE naming its `_total` series as that format wants, and no `# EOF`.
    pub fn encode_text(&self) -> String {
        classic_text(&self.encode())
    }

    /// A target is gone: its series go too.
    pub fn remove_target(&self, name: &str) {
        let l = NetnsLabels { netns: name.into() };
        self.packets.remove(&l);
        self.drops.remove(&l);
    }
}

/// OpenMetrics as prometheus-client writes it, in the classic text format.
fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in openmetrics.lines().filter(|l| *l != "# EOF") {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_the_series_of_the_contract() {
        let m = Metrics::new();
        m.packets.get_or_create(&NetnsLabels { netns: "ns1".into() }).inc_by(3);
        m.limit_hits
            .get_or_create(&LimitLabels {
                limit: "max_flows".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("mtlscope_capture_packets_total{netns=\"ns1\"} 3"),
            "{text}"
        );
        assert!(text.contains("mtlscope_build_info{version=\""), "{text}");
        assert!(
            text.contains("mtlscope_buffer_limit_hits_total{limit=\"max_flows\"} 1"),
            "{text}"
        );
        assert!(text.contains("mtlscope_capture_targets 0"), "{text}");
        let classic = m.encode_text();
        assert!(
            classic.contains("# TYPE mtlscope_capture_packets_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP mtlscope_capture_packets_total Packets"),
            "{classic}"
        );
        assert!(classic.contains("# TYPE mtlscope_capture_targets gauge\n"), "{classic}");
        assert!(!classic.contains("# EOF"), "{classic}");
        m.remove_target("ns1");
        assert!(!m.encode().contains("netns=\"ns1\""));
    }
}
