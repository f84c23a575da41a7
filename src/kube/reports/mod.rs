//! OpenReports from continuous mode: one elected monitor ([`lease`]) writes one
//! `openreports.io/v1alpha1` Report per namespace ([`report`]) from what Prometheus summed over
//! every node's counters — no aggregation here. The lead wires [`run_reports`] into
//! `mtlscope monitor --reports --prometheus URL`; docs/readiness.md describes the Reports.

mod error;
pub mod lease;
pub mod report;

pub use error::ReportsError;

use crate::promql::{queries, Prometheus};
use std::future::Future;
use std::time::{Duration, Instant};

/// The Lease the monitors elect the writer with.
pub const LEASE_NAME: &str = "mtlscope-reports";

/// What [`run_reports`] needs: where the data is, how often to write, and who this monitor is.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub prometheus: Prometheus,
    /// How often the leader rewrites every Report (`--report-interval`, default 1m).
    pub interval: Duration,
    /// The window each Report covers (`--report-window`, default 1h).
    pub window: Duration,
    /// Where the Lease lives (`--lease-namespace`, default POD_NAMESPACE).
    pub lease_namespace: String,
    /// This monitor's name in the Lease (POD_NAME).
    pub identity: String,
    /// leaseDurationSeconds (30s); a leader that could not renew for this long stops writing.
    pub lease_duration: Duration,
    /// How often the lease is renewed or tried (10s).
    pub renew_every: Duration,
}

impl ReportOptions {
    /// The defaults: write every minute over the last hour, a 30s lease renewed every 10s.
    pub fn new(prometheus: Prometheus, lease_namespace: &str, identity: &str) -> ReportOptions {
        ReportOptions {
            prometheus,
            interval: Duration::from_secs(60),
            window: Duration::from_secs(3600),
            lease_namespace: lease_namespace.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
        }
    }
}

/// One round of Reports: query Prometheus, build, write. Returns the namespaces written.
pub async fn write_round(client: &kube::Client, opts: &ReportOptions) -> Result<Vec<String>, ReportsError> {
    let samples = opts
        .prometheus
        .query(&queries::counts(None, opts.window, queries::REPORT_BY))
        .await?;
    let now = jiff::Timestamp::now().as_second();
    report::write(client, report::build(&samples, opts.window, now, &opts.identity)).await
}

/// Run until `shutdown` completes: take part in the election every `renew_every`, and while
/// leading write the Reports every `interval`. Errors of one round (Prometheus down, a
/// conflict) are printed and retried next round; RBAC refusals stop it with an error. On
/// shutdown the lease is given up.
pub async fn run_reports(
    client: kube::Client,
    opts: ReportOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ReportsError> {
    if opts.identity.is_empty() || opts.lease_namespace.is_empty() {
        return Err(ReportsError::Options(
            "--reports needs this monitor's name and the Lease's namespace: set POD_NAME and POD_NAMESPACE \
             (the DaemonSet in deploy/ does) or pass --lease-namespace"
                .to_owned(),
        ));
    }
    if opts.renew_every >= opts.lease_duration {
        return Err(ReportsError::Options(format!(
            "the lease is renewed every {:?} but lasts {:?}: renew more often than it expires",
            opts.renew_every, opts.lease_duration
        )));
    }
    let mut elector = lease::Elector::new(
        client.clone(),
        &opts.lease_namespace,
        LEASE_NAME,
        &opts.identity,
        opts.lease_duration,
    );
    let mut last_write: Option<Instant> = None;
    let mut last_error = String::new();
    tokio::pin!(shutdown);
    loop {
        let round = async {
            if !elector.tick().await? {
                last_write = None;
                return Ok(());
            }
            if last_write.is_none_or(|t| t.elapsed() >= opts.interval) && elector.is_leader() {
                write_round(&client, &opts).await?;
                last_write = Some(Instant::now());
            }
            Ok::<(), ReportsError>(())
        };
        let outcome = tokio::select! {
            r = round => r,
            () = &mut shutdown => break,
        };
        match outcome {
            Ok(()) => last_error.clear(),
            Err(e) if e.is_permanent() => {
                let _ = elector.release().await;
                return Err(e);
            }
            Err(e) => {
                // Once per distinct error, not every 10 seconds.
                let text = e.to_string();
                if text != last_error {
                    eprintln!("mtlscope: reports: {text} (retrying every {:?})", opts.renew_every);
                    last_error = text;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(opts.renew_every) => {}
            () = &mut shutdown => break,
        }
    }
    elector.release().await
}
