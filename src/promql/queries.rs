//! The PromQL that readiness and the OpenReports writer send, over `mtlscope_connections_total`
//! (docs/readiness.md quotes them). All aggregation happens in Prometheus: the counters of every
//! node's monitor are summed there, never here.

use std::time::Duration;

/// The counter every monitor exposes.
pub const CONNECTIONS: &str = "mtlscope_connections_total";

/// The labels readiness groups by: one series per client, server workload and port, verdict and
/// the mode the server expected.
pub const READINESS_BY: &str =
    "source_workload, source_workload_namespace, destination_workload, destination_port, verdict, expected_mode";

/// The labels the Report groups by: one series per namespace, workload, port, verdict, mode and
/// finding (clients are summed).
pub const REPORT_BY: &str =
    "destination_workload_namespace, destination_workload, destination_port, verdict, expected_mode, finding";

/// A PromQL duration in whole seconds (at least 1s): `3600s`.
pub fn duration(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// A PromQL string literal: `"bookinfo"`, with `\` and `"` escaped.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The selector of one destination namespace's connections, or of every namespace's.
fn selector(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{CONNECTIONS}{{destination_workload_namespace={}}}", string_literal(ns)),
        None => CONNECTIONS.to_owned(),
    }
}

/// Series born within `range` count whole: they start at their first connections, which
/// `increase` would miss (it needs two samples and takes the first as its base, so a client
/// seen once, or only in the first scrape of its series, would be seen never). Older series
/// count their `increase`, which also sees through a monitor's restart.
fn grown(selector: &str, range: &str) -> String {
    format!("(({selector} unless {selector} offset {range}) or increase({selector}[{range}]))")
}

/// Connections over the window, summed across nodes, per `by`.
pub fn counts(namespace: Option<&str>, window: Duration, by: &str) -> String {
    format!("sum by ({by}) {}", grown(&selector(namespace), &duration(window)))
}

/// The subquery's step for a window: 60 steps over it, at least 1s. Its inner range covers two
/// steps and at least 2m, so no increase falls between steps and a 1m scrape interval still has
/// two samples in it.
fn last_seen_step(window: Duration) -> (Duration, Duration) {
    let step = Duration::from_secs((window.as_secs() / 60).max(1));
    let inner = (step * 2).max(Duration::from_secs(120));
    (step, inner)
}

/// When each series last grew within the window (Unix seconds, to the subquery's step). A
/// series born after the subquery's last step (steps are aligned to multiples of the step, so
/// up to a step ago) has no value there; it takes the time of the query instead.
pub fn last_seen(namespace: Option<&str>, window: Duration, by: &str) -> String {
    let (step, inner) = last_seen_step(window);
    let grown = grown(&selector(namespace), &duration(inner));
    format!(
        "max by ({by}) (max_over_time(timestamp({grown} > 0)[{}:{}])) or max by ({by}) (timestamp({grown} > 0))",
        duration(window),
        duration(step)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_query_as_documented() {
        assert_eq!(
            counts(Some("bookinfo"), Duration::from_secs(3600), READINESS_BY),
            "sum by (source_workload, source_workload_namespace, destination_workload, destination_port, verdict, \
             expected_mode) ((mtlscope_connections_total{destination_workload_namespace=\"bookinfo\"} unless \
             mtlscope_connections_total{destination_workload_namespace=\"bookinfo\"} offset 3600s) or \
             increase(mtlscope_connections_total{destination_workload_namespace=\"bookinfo\"}[3600s]))"
        );
        assert_eq!(
            last_seen(None, Duration::from_secs(3600), "verdict"),
            "max by (verdict) (max_over_time(timestamp(((mtlscope_connections_total unless mtlscope_connections_total \
             offset 120s) or increase(mtlscope_connections_total[120s])) > 0)[3600s:60s])) or max by (verdict) \
             (timestamp(((mtlscope_connections_total unless mtlscope_connections_total offset 120s) or \
             increase(mtlscope_connections_total[120s])) > 0))"
        );
    }

    #[test]
    fn literal_escaped() {
        assert_eq!(string_literal(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn short_window_steps_in_seconds() {
        let (step, inner) = last_seen_step(Duration::from_secs(30));
        assert_eq!((step.as_secs(), inner.as_secs()), (1, 120));
        let (step, inner) = last_seen_step(Duration::from_secs(86400));
        assert_eq!((step.as_secs(), inner.as_secs()), (1440, 2880));
    }
}
