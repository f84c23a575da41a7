//! What readiness says per port ([`PortReadiness`], [`PortVerdict`]) and how the two queries'
//! series become it ([`evaluate`]).

use crate::promql::Sample;
use std::collections::BTreeMap;
use std::time::Duration;

/// Connections per verdict label (`mtls`, `tls`, `plaintext`, `encrypted`, `no-data`).
pub type Counts = BTreeMap<String, u64>;

/// What a port's clients say about switching it to STRICT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortVerdict {
    /// Every client over the window used mTLS, and there was traffic.
    Safe,
    /// At least one client sent plaintext, TLS without a certificate, or unproven encryption.
    NotSafe,
    /// Series exist, but no connection with data in the window.
    NoTraffic,
    /// The port already expects STRICT.
    Strict,
}

impl PortVerdict {
    pub fn text(self) -> &'static str {
        match self {
            PortVerdict::Safe => "safe to switch to STRICT",
            PortVerdict::NotSafe => "not safe",
            PortVerdict::NoTraffic => "no traffic",
            PortVerdict::Strict => "already STRICT",
        }
    }
}

/// How one client connected to one port over the window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClientTraffic {
    pub workload: String,
    pub namespace: String,
    pub connections: Counts,
    /// When its connections last grew (Unix seconds, to the query's step); `None` when
    /// Prometheus has no timestamp for it.
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_seen: Option<f64>,
}

impl ClientTraffic {
    /// Plaintext and TLS-without-certificate connections: what STRICT would refuse.
    pub fn insecure(&self) -> u64 {
        count(&self.connections, "plaintext") + count(&self.connections, "tls")
    }

    /// Encrypted connections whose handshake was not seen: maybe mTLS, not proven.
    pub fn unproven(&self) -> u64 {
        count(&self.connections, "encrypted")
    }

    /// Connections with data: everything but `no-data`.
    pub fn with_data(&self) -> u64 {
        self.connections
            .iter()
            .filter(|(k, _)| k.as_str() != "no-data")
            .map(|(_, n)| n)
            .sum()
    }
}

fn count(c: &Counts, verdict: &str) -> u64 {
    c.get(verdict).copied().unwrap_or(0)
}

/// One server workload and port.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PortReadiness {
    pub workload: String,
    pub port: String,
    /// The mode the server expected when it was last seen: STRICT, PERMISSIVE, DISABLE, UNSET.
    pub expected_mode: String,
    pub verdict: PortVerdict,
    pub clients: Vec<ClientTraffic>,
}

impl PortReadiness {
    /// The clients that make it not safe, as `workload.namespace`.
    pub fn blocking_clients(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter(|c| c.insecure() + c.unproven() > 0)
            .map(|c| format!("{}.{}", c.workload, c.namespace))
            .collect()
    }
}

/// The answer for one namespace.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Readiness {
    pub namespace: String,
    #[serde(serialize_with = "humantime")]
    pub window: Duration,
    pub prometheus: String,
    #[serde(serialize_with = "rfc3339")]
    pub evaluated_at: f64,
    pub ports: Vec<PortReadiness>,
}

impl Readiness {
    /// True when every port is safe or already STRICT, and there is at least one.
    pub fn all_ready(&self) -> bool {
        !self.ports.is_empty()
            && self
                .ports
                .iter()
                .all(|p| matches!(p.verdict, PortVerdict::Safe | PortVerdict::Strict))
    }
}

/// (server workload, port) -> (client workload, client namespace) -> verdict -> count, plus
/// mode -> latest time seen.
#[derive(Default)]
struct PortAcc {
    clients: BTreeMap<(String, String), (Counts, Option<f64>)>,
    modes: BTreeMap<String, f64>,
}

/// The ports of one namespace from the two queries' series (grouped by
/// [`queries::READINESS_BY`]).
pub fn evaluate(counts: &[Sample], last_seen: &[Sample]) -> Vec<PortReadiness> {
    let key = |s: &Sample| {
        (
            s.label("destination_workload").to_owned(),
            s.label("destination_port").to_owned(),
        )
    };
    let client = |s: &Sample| {
        (
            s.label("source_workload").to_owned(),
            s.label("source_workload_namespace").to_owned(),
        )
    };
    let mut ports: BTreeMap<(String, String), PortAcc> = BTreeMap::new();
    for s in counts {
        // increase() extrapolates to the window's edges: 11.7 connections were 12.
        let n = if s.value.is_finite() {
            s.value.round().max(0.0) as u64
        } else {
            0
        };
        let acc = ports.entry(key(s)).or_default();
        acc.modes.entry(s.label("expected_mode").to_owned()).or_insert(f64::MIN);
        if n == 0 {
            continue;
        }
        let entry = acc.clients.entry(client(s)).or_default();
        *entry.0.entry(s.label("verdict").to_owned()).or_default() += n;
    }
    for s in last_seen {
        let Some(acc) = ports.get_mut(&key(s)) else { continue };
        let mode = acc.modes.entry(s.label("expected_mode").to_owned()).or_insert(f64::MIN);
        *mode = mode.max(s.value);
        if let Some(entry) = acc.clients.get_mut(&client(s)) {
            entry.1 = Some(entry.1.map_or(s.value, |t| t.max(s.value)));
        }
    }
    let mut out: Vec<PortReadiness> = ports
        .into_iter()
        .map(|((workload, port), acc)| {
            // The mode the server had most recently (a PeerAuthentication may have changed
            // within the window).
            let expected_mode = acc
                .modes
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(m, _)| m.clone())
                .unwrap_or_default();
            let clients: Vec<ClientTraffic> = acc
                .clients
                .into_iter()
                .map(|((workload, namespace), (connections, last_seen))| ClientTraffic {
                    workload,
                    namespace,
                    connections,
                    last_seen,
                })
                .collect();
            let verdict = if expected_mode == "STRICT" {
                PortVerdict::Strict
            } else if clients.iter().any(|c| c.insecure() + c.unproven() > 0) {
                PortVerdict::NotSafe
            } else if clients.iter().all(|c| c.with_data() == 0) {
                PortVerdict::NoTraffic
            } else {
                PortVerdict::Safe
            };
            PortReadiness {
                workload,
                port,
                expected_mode,
                verdict,
                clients,
            }
        })
        .collect();
    // Ports in numeric order within a workload (9080 before 15000).
    out.sort_by(|a, b| {
        (
            a.workload.as_str(),
            a.port.parse::<u32>().unwrap_or(u32::MAX),
            a.port.as_str(),
        )
            .cmp(&(
                b.workload.as_str(),
                b.port.parse::<u32>().unwrap_or(u32::MAX),
                b.port.as_str(),
            ))
    });
    out
}

/// Unix seconds as RFC 3339 UTC to the second: `2026-12-04T22:04:07Z`.
pub fn rfc3339_text(seconds: f64) -> String {
    jiff::Timestamp::from_second(seconds.round() as i64)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{seconds}"))
}

fn rfc3339<S: serde::Serializer>(t: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_text(*t))
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339_text(*t)),
        None => s.serialize_none(),
    }
}

fn humantime<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&::humantime::format_duration(*d).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(src: &str, dst: &str, port: &str, verdict: &str, mode: &str, value: f64) -> Sample {
        let labels = [
            ("source_workload", src),
            ("source_workload_namespace", "ns"),
            ("destination_workload", dst),
            ("destination_port", port),
            ("verdict", verdict),
            ("expected_mode", mode),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Sample {
            labels,
            value,
            timestamp: 0.0,
        }
    }

    #[test]
    fn verdict_per_port() {
        let counts = [
            s("a", "safe", "9080", "mtls", "PERMISSIVE", 10.4),
            s("a", "safe", "9080", "no-data", "PERMISSIVE", 3.0),
            s("a", "bad", "80", "mtls", "UNSET", 5.0),
            s("b", "bad", "80", "plaintext", "UNSET", 2.0),
            s("a", "idle", "80", "mtls", "PERMISSIVE", 0.0),
            s("a", "strict", "443", "plaintext", "STRICT", 1.0),
            s("a", "enc", "80", "encrypted", "PERMISSIVE", 1.0),
        ];
        let p = evaluate(&counts, &[]);
        let v: Vec<(&str, PortVerdict)> = p.iter().map(|p| (p.workload.as_str(), p.verdict)).collect();
        assert_eq!(
            v,
            [
                ("bad", PortVerdict::NotSafe),
                ("enc", PortVerdict::NotSafe),
                ("idle", PortVerdict::NoTraffic),
                ("safe", PortVerdict::Safe),
                ("strict", PortVerdict::Strict),
            ]
        );
        assert_eq!(p[0].blocking_clients(), ["b.ns"]);
        assert_eq!(p[3].clients[0].connections["mtls"], 10);
    }

    #[test]
    fn latest_mode_wins() {
        let counts = [
            s("a", "w", "80", "plaintext", "PERMISSIVE", 1.0),
            s("a", "w", "80", "mtls", "STRICT", 1.0),
        ];
        let mut last = counts.clone();
        last[0].value = 100.0;
        last[1].value = 200.0;
        let p = evaluate(&counts, &last);
        assert_eq!(p[0].expected_mode, "STRICT");
        assert_eq!(p[0].clients[0].last_seen, Some(200.0));
    }
}
