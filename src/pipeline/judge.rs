//! The verdict stage for whole connections: an [`Inspected`] connection gets its verdict (with
//! the evidence its flow's counters add), its report (joined to the cluster dump when there is
//! one) and its counts in the summary. A resumed session is judged by the full handshake it
//! continues, so connections are judged in the order their inspection ended.
//!
//! The engine judges on its own thread, unless its output takes the connections as they are
//! ([`crate::pipeline::record::Output::inspected`]): the JSON lines of a run over files, with a
//! second core, are judged on their writing thread. That took a fifth of the analysis thread's
//! work off it (the bench capture's analysis thread: 599.7 M instructions before, 473.4 M
//! after; callgrind).

use crate::pipeline::flows::{FlowFacts, Inspected};
use crate::pipeline::inspect::coverage::Coverage;
use crate::pipeline::inspect::Outcome;
use crate::pipeline::record::{is_loopback, FlowReport, Summary};
use crate::pipeline::verdict::{self, Resumption, SessionOrigin, Verdict};
use crate::policy::Cluster;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;

/// Judges connections in order, remembering full handshakes for the resumed ones.
pub struct Judge {
    sessions: Sessions,
    max_sessions: usize,
    show_payload: bool,
    cluster: Option<Arc<Cluster>>,
}

impl Judge {
    /// `max_sessions` session IDs / tickets are remembered; `show_payload` keeps plaintext
    /// connections' first bytes in their reports.
    pub fn new(max_sessions: usize, show_payload: bool, cluster: Option<Arc<Cluster>>) -> Judge {
        Judge {
            sessions: Sessions::default(),
            max_sessions,
            show_payload,
            cluster,
        }
    }

    /// Join every report to this cluster dump (pods, PeerAuthentication).
    pub fn with_cluster(mut self, cluster: Arc<Cluster>) -> Judge {
        self.cluster = Some(cluster);
        self
    }

    /// The report of a connection whose inspection is over; its verdict and findings are
    /// counted in `summary`.
    pub fn judge(&mut self, c: Inspected, summary: &mut Summary) -> FlowReport {
        let Inspected {
            outcome,
            facts,
            coverage,
            resumption,
            keys,
            file,
        } = c;
        let origin = resumption.and_then(|r| self.sessions.get(&r).cloned());
        let v = judge(outcome, &facts, &coverage, origin.as_ref(), self.show_payload);
        let session = (!keys.is_empty()).then(|| (v.verdict, v.client_identity.clone()));
        summary.count(&v);
        let mut report = self.report(&facts, v);
        report.file = file;
        summary.count_finding(&report.kubernetes);
        if let Some((kind, client_identity)) = session {
            for k in keys {
                let o = SessionOrigin {
                    flow_id: facts.id,
                    kind,
                    client_identity: client_identity.clone(),
                };
                self.sessions.insert(k, o, self.max_sessions);
            }
        }
        report
    }

    /// A report for a connection judged before (for outputs that want it again when it
    /// closes), joined to the cluster dump when there is one.
    pub fn report(&self, flow: &FlowFacts, v: Verdict) -> FlowReport {
        let mut r = FlowReport::build(flow, v);
        if let Some(c) = &self.cluster {
            r.kubernetes = crate::pipeline::enrich::lookup(
                c,
                r.client.ip,
                r.server.ip,
                r.server.port,
                r.loopback,
                r.verdict.verdict.name(),
            );
        }
        r
    }
}

/// The verdict of a connection whose inspection is over, with the evidence the flow's own
/// counters add. `coverage` says what the capture holds of it; `origin` is the earlier
/// handshake a resumed session continues, if known.
fn judge(
    outcome: Outcome,
    flow: &FlowFacts,
    coverage: &Coverage,
    origin: Option<&SessionOrigin>,
    show_payload: bool,
) -> Verdict {
    let mut v = verdict::decide(outcome, coverage, flow.server.port, origin, show_payload);
    let conflicts: u32 = flow.stream_stats.iter().map(|s| s.conflicts).sum();
    if conflicts > 0 {
        v.evidence.push(format!(
            "{conflicts} overlapping segment(s) carried different bytes than the first copy: possible evasion"
        ));
    }
    if v.verdict == verdict::Kind::Plaintext && is_loopback(flow.client.ip, flow.server.ip) {
        v.evidence
            .push("loopback traffic (inside a pod: the app <-> sidecar leg, plaintext by design)".into());
    }
    v
}

/// Earlier full handshakes by session ID / ticket, oldest forgotten first.
#[derive(Default)]
struct Sessions {
    map: FxHashMap<Resumption, SessionOrigin>,
    order: VecDeque<Resumption>,
}

impl Sessions {
    fn get(&self, key: &Resumption) -> Option<&SessionOrigin> {
        self.map.get(key)
    }

    fn insert(&mut self, key: Resumption, origin: SessionOrigin, cap: usize) {
        if self.map.insert(key, origin).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}
