//! STRICT readiness: can this namespace's PeerAuthentication go from PERMISSIVE (or UNSET) to
//! STRICT without breaking a client? The answer comes from what every node's `mtlscope monitor`
//! counted, summed by Prometheus over a window ([`crate::promql::queries`]): per server workload
//! and port, the clients seen and how they connected.
//!
//! A port is "safe to switch to STRICT" only when the window had traffic and every client's
//! connections were mTLS (connections that carried no data are left out: there was nothing to
//! judge). A client that sent plaintext or TLS without a certificate makes it "not safe", and so
//! does one whose encryption could not be proven (`encrypted`: the handshake was not seen).
//! [`output`] draws the table and the JSON document.

pub mod model;
pub mod output;

pub use model::{evaluate, ClientTraffic, Counts, PortReadiness, PortVerdict, Readiness};

use crate::promql::{queries, PromError, Prometheus};
use std::time::Duration;

/// Ask Prometheus about `namespace` over `window`.
pub async fn readiness(prom: &Prometheus, namespace: &str, window: Duration) -> Result<Readiness, PromError> {
    let counts = prom
        .query(&queries::counts(Some(namespace), window, queries::READINESS_BY))
        .await?;
    let last = prom
        .query(&queries::last_seen(Some(namespace), window, queries::READINESS_BY))
        .await?;
    let evaluated_at = counts
        .first()
        .map(|s| s.timestamp)
        .unwrap_or_else(|| jiff::Timestamp::now().as_millisecond() as f64 / 1000.0);
    Ok(Readiness {
        namespace: namespace.to_owned(),
        window,
        prometheus: prom.url().to_owned(),
        evaluated_at,
        ports: evaluate(&counts, &last),
    })
}
