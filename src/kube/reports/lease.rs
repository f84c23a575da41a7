//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! the holder renews every few seconds; another candidate takes over only after it has seen the
//! same resourceVersion for a whole lease duration on its own clock (no trust in other nodes'
//! clocks), or when the lease is free. Every change is a compare-and-swap on resourceVersion,
//! so two candidates can never both believe they won the same round.

use super::error::ReportsError;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use std::time::{Duration, Instant};

/// One candidate for the lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
    duration: Duration,
    /// The resourceVersion last seen and when this process first saw it.
    observed: Option<(String, Instant)>,
    /// When the last successful acquire or renew was sent (before sending: the lease runs from
    /// then at the latest).
    renewed: Option<Instant>,
}

impl Elector {
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            duration,
            observed: None,
            renewed: None,
        }
    }

    /// True while the last renewal is younger than the lease duration: the only time this
    /// process may write.
    pub fn is_leader(&self) -> bool {
        self.renewed.is_some_and(|t| t.elapsed() < self.duration)
    }

    fn err(&self, verb: &'static str, e: kube::Error) -> ReportsError {
        ReportsError::api(verb, "leases.coordination.k8s.io", &self.namespace, &self.name, e)
    }

    fn spec(&self, acquire: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: Some(acquire.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Acquire, renew or take over the lease if this candidate may; returns whether it leads.
    pub async fn tick(&mut self) -> Result<bool, ReportsError> {
        let sent = Instant::now();
        let current = self.api.get_opt(&self.name).await.map_err(|e| self.err("get", e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(l) => Ok(self.won(l, sent)),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(self.lost()),
                Err(e) => Err(self.err("create", e)),
            };
        };
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != rv) {
            self.observed = Some((rv, Instant::now()));
        }
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let theirs = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let mine = holder == self.identity;
        let expired = self.observed.as_ref().is_some_and(|(_, at)| at.elapsed() >= theirs);
        if !(mine || holder.is_empty() || expired) {
            return Ok(self.lost());
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquire = if mine { spec.acquire_time.clone() } else { None };
        lease.spec = Some(self.spec(acquire, transitions));
        // replace sends the resourceVersion it read: a change since then is a 409, not a win.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(l) => Ok(self.won(l, sent)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(self.lost()),
            Err(e) => Err(self.err("update", e)),
        }
    }

    fn won(&mut self, lease: Lease, sent: Instant) -> bool {
        self.renewed = Some(sent);
        self.observed = lease.metadata.resource_version.map(|rv| (rv, Instant::now()));
        true
    }

    fn lost(&mut self) -> bool {
        self.renewed = None;
        false
    }

    /// Give the lease up (on shutdown) so another monitor takes over at once instead of after
    /// a lease duration.
    pub async fn release(&mut self) -> Result<(), ReportsError> {
        if !self.is_leader() {
            return Ok(());
        }
        self.renewed = None;
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(|e| self.err("get", e))? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(self.err("update", e)),
        }
    }
}
