//! The effective mode for a pod and port, computed as istiod computes it (the module doc's
//! "Istio's rules"): mesh, namespace and workload policies, the oldest at each level, then
//! `portLevelMtls`; with the policies passed over and why.

use super::cluster::Cluster;
use super::model::{PeerAuthentication, Pod};
use super::query::selects;
use super::types::{Applied, DecidedBy, Decision, Ignored, Level, Mode, PortDecision};
use std::cmp::Ordering;

impl Cluster {
    /// [`Cluster::effective`] for a connection to a Service port: translated to the pod's port
    /// first. `None` when no Service maps that port to the pod.
    pub fn effective_for_service_port(&self, pod: &Pod, service_port: u16) -> Option<PortDecision> {
        let port = self.target_port(pod, service_port)?;
        Some(PortDecision {
            port,
            decision: self.effective(pod, port),
        })
    }

    /// The mode Istio enforces for connections to `pod` on `port` (the pod's own port, see
    /// [`Cluster::target_port`]), which policy decided it, and which policies were passed over.
    pub fn effective(&self, pod: &Pod, port: u16) -> Decision {
        let root = self.root_namespace();
        let mut ignored = Vec::new();
        let mut mesh = Vec::new();
        let mut namespace = Vec::new();
        let mut workload = Vec::new();
        for p in &self.policies {
            if p.namespace != pod.namespace && p.namespace != root {
                continue;
            }
            match &p.selector {
                None if p.namespace == root => mesh.push(p),
                None => namespace.push(p),
                Some(sel) if selects(sel, &pod.labels) => {
                    if p.namespace == root {
                        ignored.push(Ignored {
                            namespace: p.namespace.clone(),
                            name: p.name.clone(),
                            reason: format!(
                                "selector policy in the root namespace {root}: Istio never \
                                 applies those; put it in the workload's namespace"
                            ),
                        });
                    } else {
                        workload.push(p);
                    }
                }
                Some(_) => {}
            }
        }

        let mesh = oldest(mesh, Level::Mesh, &mut ignored);
        let namespace = oldest(namespace, Level::Namespace, &mut ignored);
        let workload = oldest(workload, Level::Workload, &mut ignored);

        let mut mode = Mode::Permissive;
        let mut decided_by = DecidedBy::default_mode();
        let mut applied = Vec::new();
        for (level, policy) in [
            (Level::Mesh, mesh),
            (Level::Namespace, namespace),
            (Level::Workload, workload),
        ] {
            let Some(p) = policy else { continue };
            applied.push(Applied {
                level,
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                mode: p.mode,
            });
            if p.mode != Mode::Unset {
                mode = p.mode;
                decided_by = policy_decided(p, level);
            }
        }
        if let Some(w) = workload {
            if let Some(&port_mode) = w.port_level.get(&port) {
                applied.push(Applied {
                    level: Level::Port,
                    namespace: w.namespace.clone(),
                    name: w.name.clone(),
                    mode: port_mode,
                });
                if port_mode != Mode::Unset {
                    mode = port_mode;
                    decided_by = policy_decided(w, Level::Port);
                }
            }
        }

        // Policies the user wrote for this pod but Istio would have refused.
        for r in &self.rejected {
            let (Some(ns), Some(name)) = (&r.namespace, &r.name) else {
                continue;
            };
            let meant_for_pod = r.selector.as_ref().is_none_or(|sel| selects(sel, &pod.labels));
            if r.kind == "PeerAuthentication" && (ns == &pod.namespace || ns == root) && meant_for_pod {
                ignored.push(Ignored {
                    namespace: ns.clone(),
                    name: name.clone(),
                    reason: format!("invalid, Istio would reject it: {}", r.reason),
                });
            }
        }

        Decision {
            mode,
            decided_by,
            ignored,
            applied,
        }
    }
}

fn policy_decided(p: &PeerAuthentication, level: Level) -> DecidedBy {
    DecidedBy {
        kind: "PeerAuthentication",
        namespace: Some(p.namespace.clone()),
        name: Some(p.name.clone()),
        level,
    }
}

/// Istio's order at one level (`sortConfigByCreationTime`): creation time, then name, then
/// namespace. A missing timestamp is Go's zero time, before every other.
fn istio_order(a: &PeerAuthentication, b: &PeerAuthentication) -> Ordering {
    a.creation_timestamp
        .cmp(&b.creation_timestamp)
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| a.namespace.cmp(&b.namespace))
}

fn created_text(p: &PeerAuthentication) -> &str {
    p.created.as_deref().unwrap_or("no creationTimestamp")
}

/// The policy Istio uses at one level (the oldest), and an [`Ignored`] entry for each other one.
fn oldest<'a>(
    mut candidates: Vec<&'a PeerAuthentication>,
    level: Level,
    ignored: &mut Vec<Ignored>,
) -> Option<&'a PeerAuthentication> {
    candidates.sort_by(|a, b| istio_order(a, b));
    let (&winner, rest) = candidates.split_first()?;
    for p in rest {
        let why = if p.creation_timestamp == winner.creation_timestamp {
            format!(
                "same creationTimestamp as {}/{} ({}); Istio breaks the tie by name, then \
                 namespace, and uses only that one",
                winner.namespace,
                winner.name,
                created_text(winner)
            )
        } else {
            format!(
                "{}/{} is older ({} vs {}); Istio uses only the oldest",
                winner.namespace,
                winner.name,
                created_text(winner),
                created_text(p)
            )
        };
        ignored.push(Ignored {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            reason: format!("another {level}-level policy applies: {why}"),
        });
    }
    Some(winner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::*;
    use crate::policy::Timestamp;
    use serde_json::json;
    use std::collections::BTreeMap;

    // --- one test per rule -------------------------------------------------------------------

    #[test]
    fn default_is_permissive() {
        let c = cluster(vec![reviews()]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by, DecidedBy::default_mode());
        assert!(d.ignored.is_empty() && d.applied.is_empty());
    }

    #[test]
    fn mesh_policy_applies_to_every_namespace() {
        let c = cluster(vec![
            reviews(),
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Mesh, Some("istio-system"), Some("default")));
    }

    #[test]
    fn namespace_overrides_mesh() {
        let c = cluster(vec![
            reviews(),
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa("bookinfo", "default", T1, json!({"mtls": {"mode": "PERMISSIVE"}})),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(by(&d), (Level::Namespace, Some("bookinfo"), Some("default")));
        assert_eq!(d.applied.len(), 2);
    }

    #[test]
    fn workload_selector_overrides_namespace() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "default", T0, json!({"mtls": {"mode": "PERMISSIVE"}})),
            pa(
                "bookinfo",
                "reviews",
                T1,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Workload, Some("bookinfo"), Some("reviews")));
    }

    #[test]
    fn workload_selector_must_be_subset_of_pod_labels() {
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "reviews-v2-only",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews", "version": "v2"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Default);
    }

    #[test]
    fn selector_in_other_namespace_never_applies() {
        let c = cluster(vec![
            reviews(),
            pa(
                "other",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
            pa("other", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
        ]);
        assert_eq!(decide(&c, 9080).mode, Mode::Permissive);
    }

    #[test]
    fn empty_selector_counts_as_no_selector() {
        // `selector: {}` and `matchLabels: {}` are namespace-wide in ComposePeerAuthentication.
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "empty-selector",
                T0,
                json!({"selector": {}, "mtls": {"mode": "STRICT"}}),
            ),
            pa(
                "istio-system",
                "empty-match-labels",
                T0,
                json!({
                    "selector": {"matchLabels": {}}, "mtls": {"mode": "DISABLE"}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Namespace, Some("bookinfo"), Some("empty-selector")));
        assert_eq!(d.applied[0].level, Level::Mesh);
    }

    #[test]
    fn unset_inherits_from_level_above() {
        let c = cluster(vec![
            reviews(),
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa("bookinfo", "default", T0, json!({"mtls": {"mode": "UNSET"}})),
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Mesh, Some("istio-system"), Some("default")));
        assert_eq!(d.applied.len(), 3);
    }

    #[test]
    fn mesh_unset_is_default_permissive() {
        let c = cluster(vec![reviews(), pa("istio-system", "default", T0, json!({"mtls": {}}))]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Default);
    }

    #[test]
    fn port_level_overrides_workload_for_that_port_only() {
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"},
                    "portLevelMtls": {"9080": {"mode": "DISABLE"}}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Disable);
        assert_eq!(by(&d), (Level::Port, Some("bookinfo"), Some("reviews")));
        let d = decide(&c, 15090);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(d.decided_by.level, Level::Workload);
    }

    #[test]
    fn port_level_only_from_selector_policy() {
        // Istio refuses portLevelMtls without a selector; even if one got into the data it must
        // not set a port's mode, and the user is told why.
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "default",
                T0,
                json!({
                    "mtls": {"mode": "PERMISSIVE"},
                    "portLevelMtls": {"9080": {"mode": "STRICT"}}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Default);
        assert_eq!(d.ignored.len(), 1);
        assert!(d.ignored[0].reason.contains("portLevelMtls requires selector"));
        assert_eq!(c.rejected().len(), 1);
    }

    #[test]
    fn unset_port_inherits_workload() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "default", T0, json!({"mtls": {"mode": "DISABLE"}})),
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"},
                    "portLevelMtls": {"9080": {"mode": "UNSET"}, "9443": {}}
                }),
            ),
        ]);
        for port in [9080, 9443] {
            let d = decide(&c, port);
            assert_eq!(d.mode, Mode::Strict, "port {port}");
            assert_eq!(by(&d), (Level::Workload, Some("bookinfo"), Some("reviews")));
            assert_eq!(
                d.applied.last().map(|a| (a.level, a.mode)),
                Some((Level::Port, Mode::Unset))
            );
        }
    }

    #[test]
    fn unset_port_with_unset_workload_inherits_namespace() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "default", T0, json!({"mtls": {"mode": "DISABLE"}})),
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "portLevelMtls": {"9080": {"mode": "UNSET"}}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Disable);
        assert_eq!(by(&d), (Level::Namespace, Some("bookinfo"), Some("default")));
    }

    #[test]
    fn port_level_keyed_by_target_port_not_service_port() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"selector": {"app": "reviews"}, "ports": [{"port": 80, "targetPort": 9080}]}
        });
        let c = cluster(vec![
            reviews(),
            svc,
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"},
                    "portLevelMtls": {"80": {"mode": "DISABLE"}, "9080": {"mode": "PERMISSIVE"}}
                }),
            ),
        ]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        let PortDecision { port, decision: d } = c.effective_for_service_port(p, 80).unwrap();
        assert_eq!(port, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Port);
    }

    #[test]
    fn root_namespace_selector_policy_ignored() {
        let c = cluster(vec![
            reviews(),
            pa(
                "istio-system",
                "reviews-from-root",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
            pa(
                "istio-system",
                "not-for-reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "ratings"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Default);
        assert_eq!(d.ignored.len(), 1, "only the one whose selector matches");
        assert_eq!(d.ignored[0].name, "reviews-from-root");
        assert!(d.ignored[0].reason.contains("root namespace istio-system"));
    }

    #[test]
    fn root_namespace_selector_policy_ignored_for_pods_in_root_namespace() {
        let gw = pod("istio-system", "gw", "10.0.0.9", json!({"istio": "ingressgateway"}));
        let c = cluster(vec![
            gw,
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa(
                "istio-system",
                "gw",
                T0,
                json!({
                    "selector": {"matchLabels": {"istio": "ingressgateway"}},
                    "mtls": {"mode": "PERMISSIVE"}
                }),
            ),
        ]);
        let p = c.pod("istio-system", "gw").unwrap();
        let d = c.effective(p, 8080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Mesh, Some("istio-system"), Some("default")));
        assert_eq!(d.ignored.len(), 1);
    }

    #[test]
    fn oldest_creation_timestamp_wins() {
        let sel = json!({"app": "reviews"});
        let c = cluster(vec![
            reviews(),
            pa(
                "istio-system",
                "aaa-newer-mesh",
                T1,
                json!({"mtls": {"mode": "DISABLE"}}),
            ),
            pa(
                "istio-system",
                "zzz-older-mesh",
                T0,
                json!({"mtls": {"mode": "STRICT"}}),
            ),
            pa("bookinfo", "b-ns", T2, json!({"mtls": {"mode": "PERMISSIVE"}})),
            pa("bookinfo", "c-ns", T1, json!({"mtls": {"mode": "UNSET"}})),
            pa(
                "bookinfo",
                "wl-new",
                T2,
                json!({"selector": {"matchLabels": sel}, "mtls": {"mode": "DISABLE"}}),
            ),
            pa("bookinfo", "wl-old", T1, json!({"selector": {"matchLabels": sel}})),
        ]);
        let d = decide(&c, 9080);
        // Oldest at each level: zzz-older-mesh STRICT, c-ns UNSET, wl-old UNSET -> STRICT.
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Mesh, Some("istio-system"), Some("zzz-older-mesh")));
        let names: Vec<&str> = d.ignored.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["aaa-newer-mesh", "b-ns", "wl-new"]);
        assert!(d.ignored[0].reason.contains("is older"), "{}", d.ignored[0].reason);
    }

    #[test]
    fn missing_creation_timestamp_is_oldest() {
        // Go's zero time.Time sorts before every real timestamp.
        let mut no_time = pa("bookinfo", "zzz-no-time", T0, json!({"mtls": {"mode": "DISABLE"}}));
        no_time["metadata"].as_object_mut().unwrap().remove("creationTimestamp");
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "aaa-timed", T0, json!({"mtls": {"mode": "STRICT"}})),
            no_time,
        ]);
        assert_eq!(decide(&c, 9080).mode, Mode::Disable);
    }

    #[test]
    fn timestamps_compare_as_instants_not_text() {
        // 10:00+02:00 is 08:00Z, older than 09:00Z although it sorts later as text.
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "a",
                "2024-01-01T09:00:00Z",
                json!({"mtls": {"mode": "STRICT"}}),
            ),
            pa(
                "bookinfo",
                "b",
                "2024-01-01T10:00:00+02:00",
                json!({"mtls": {"mode": "DISABLE"}}),
            ),
        ]);
        assert_eq!(decide(&c, 9080).decided_by.name.as_deref(), Some("b"));
    }

    #[test]
    fn tie_broken_by_name_then_namespace() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "zeta", T0, json!({"mtls": {"mode": "DISABLE"}})),
            pa("bookinfo", "alpha", T0, json!({"mtls": {"mode": "STRICT"}})),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(by(&d), (Level::Namespace, Some("bookinfo"), Some("alpha")));
        assert!(d.ignored[0].reason.contains("same creationTimestamp"));

        // Same time and name: the namespace decides. Every candidate at one level shares a
        // namespace, so this is only visible to `oldest` itself.
        let mk = |ns: &str, mode| PeerAuthentication {
            namespace: ns.into(),
            name: "same".into(),
            api_version: "security.istio.io/v1".into(),
            creation_timestamp: Timestamp::parse_rfc3339(T0).ok(),
            created: Some(T0.into()),
            selector: None,
            mode,
            port_level: BTreeMap::new(),
            source: None,
        };
        let (b, a) = (mk("b-ns", Mode::Strict), mk("a-ns", Mode::Disable));
        let mut ignored = Vec::new();
        let winner = oldest(vec![&b, &a], Level::Namespace, &mut ignored).unwrap();
        assert_eq!(winner.namespace, "a-ns");
        assert_eq!(ignored[0].namespace, "b-ns");
    }

    #[test]
    fn v1beta1_and_v1_both_read() {
        let mut beta = pa("bookinfo", "default", T0, json!({"mtls": {"mode": "STRICT"}}));
        beta["apiVersion"] = json!("security.istio.io/v1beta1");
        let c = cluster(vec![
            reviews(),
            beta,
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "portLevelMtls": {"9080": {"mode": "DISABLE"}}
                }),
            ),
        ]);
        assert_eq!(c.policies().len(), 2);
        assert_eq!(c.policies()[0].api_version, "security.istio.io/v1beta1");
        assert_eq!(decide(&c, 15090).mode, Mode::Strict);
        assert_eq!(decide(&c, 9080).mode, Mode::Disable);
    }

    fn bookinfo_decision(c: &Cluster, ip: &str, port: u16) -> (Mode, Level, String) {
        let p = c.pod_by_ip(ip.parse().unwrap()).expect("pod by ip");
        let d = c.effective(p, port);
        let who = format!(
            "{}/{}",
            d.decided_by.namespace.as_deref().unwrap_or("-"),
            d.decided_by.name.as_deref().unwrap_or("-")
        );
        (d.mode, d.decided_by.level, who)
    }

    #[test]
    fn bookinfo_dump_effective_modes() {
        let c = bookinfo();
        let ns = (Mode::Permissive, Level::Namespace, "bookinfo/default".to_owned());
        // details: no workload policy; namespace PERMISSIVE overrides mesh STRICT.
        assert_eq!(bookinfo_decision(&c, "10.244.0.12", 9080), ns);
        // productpage: workload UNSET, port 9080 STRICT; other ports inherit the namespace.
        assert_eq!(
            bookinfo_decision(&c, "10.99.0.1", 9080),
            (Mode::Strict, Level::Port, "bookinfo/productpage-ports".into())
        );
        assert_eq!(bookinfo_decision(&c, "10.99.0.1", 15090), ns);
        // reviews (both versions): workload STRICT on every port.
        let reviews = (Mode::Strict, Level::Workload, "bookinfo/reviews-strict".to_owned());
        assert_eq!(bookinfo_decision(&c, "10.99.0.2", 8080), reviews);
        assert_eq!(bookinfo_decision(&c, "10.244.0.14", 9080), reviews);
        // ratings: the UNSET port entry keeps the workload's STRICT.
        assert_eq!(
            bookinfo_decision(&c, "10.244.0.15", 9080),
            (Mode::Strict, Level::Workload, "bookinfo/ratings-strict".into())
        );
        // The ingress gateway: mesh STRICT; its selector policy in istio-system is ignored, and
        // so is the mesh policy that lost the tie on name.
        let gw = c.pod("istio-system", "istio-ingressgateway-6b7f8d9c5d-p9wxl").unwrap();
        let d = c.effective(gw, 8080);
        assert_eq!((d.mode, d.decided_by.level), (Mode::Strict, Level::Mesh));
        let ignored: Vec<_> = d.ignored.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(ignored, ["ingressgateway-permissive", "mesh-permissive"]);
    }
}
