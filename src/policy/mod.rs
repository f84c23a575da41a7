//! Enrich, PeerAuthentication: the mTLS mode Istio enforces for a pod and port, computed the way
//! istiod computes it, and a loader for the cluster data it needs (pods, PeerAuthentications,
//! Services, the `istio` mesh ConfigMap) from `kubectl get ... -o yaml|json` dumps or from
//! objects fetched live.
//!
//! The rules follow istiod's source, not its documentation (see "Istio's rules" below): istio/istio
//! `pilot/pkg/security/authn/policy_applier.go` (`ComposePeerAuthentication`,
//! `GetMutualTLSModeForPort`), `pilot/pkg/model/authentication.go` (`getConfigsForWorkload`,
//! `addPeerAuthentication`), `pilot/pkg/model/config.go` (`sortConfigByCreationTime`),
//! `pkg/config/mesh/mesh.go` (`DefaultMeshConfig`: root namespace `istio-system`), and for what
//! is rejected, `pkg/config/validation` (`ValidatePeerAuthentication`) plus the CEL rules of the
//! CRD in istio/api `security/v1beta1/peer_authentication.proto`.
//!
//! # Istio's rules
//! 1. Start PERMISSIVE.
//! 2. Mesh level: a policy in the root namespace without a selector. Namespace level: a policy in
//!    the pod's namespace without a selector. A selector whose `matchLabels` is missing or empty
//!    counts as no selector (`Selector == nil || len(Selector.MatchLabels) == 0`).
//! 3. Workload level: a policy in the pod's namespace whose `matchLabels` are all among the pod's
//!    labels. A selector policy in the root namespace is never used, not even for pods in the root
//!    namespace (`else if cfg.Namespace != rootNamespace`), although the API reference says it
//!    would match workloads in every namespace.
//! 4. Mesh, then namespace, then workload: each mode that is not UNSET replaces the one before.
//! 5. `portLevelMtls` is read only from the workload policy, keyed by the port the pod receives
//!    on (the container port, a Service's `targetPort`), never the Service port. A non-UNSET entry
//!    replaces the workload result for that port; an UNSET entry keeps it.
//! 6. Several policies at one level: only the oldest `creationTimestamp` counts; equal timestamps
//!    (they have one-second resolution) are ordered by name, then namespace. A missing timestamp
//!    is Go's zero time, older than any other.
//! 7. The root namespace is `istio-system` unless the mesh config (`rootNamespace` in the `mesh`
//!    key of the `istio` ConfigMap) or an explicit override says otherwise.
//!
//! Objects that Istio's admission (CRD schema, CEL rules, validating webhook) would refuse are
//! not used: they are listed in [`Cluster::rejected`] with their namespace/name and why.

//!
//! # Layout
//! One file per job, in the order data goes through them: `types.rs` (modes, levels,
//! decisions) and `timestamp.rs` are leaves; `model.rs` holds the objects as kept; `fields.rs`,
//! `objects.rs` (pods, Services) and `admission.rs` (Istio's checks of a PeerAuthentication)
//! read them from JSON; `cluster.rs` is what was loaded and `load.rs` how; `query.rs` answers
//! lookups, `effective.rs` computes the mode, `explain.rs` and `finding.rs` turn a decision into
//! output. Everything public is re-exported here: `crate::policy::X` is the path to use.

mod admission;
mod cluster;
mod effective;
mod explain;
mod fields;
mod finding;
mod load;
mod model;
mod objects;
mod query;
#[cfg(test)]
mod test_support;
mod timestamp;
mod types;
pub mod yaml_bounds;

pub use cluster::{Cluster, Rejected, RootNamespaceOrigin, Summary, DEFAULT_ROOT_NAMESPACE};
pub use explain::{explain_json, Explanation};
pub use fields::ObjectError;
pub use finding::{finding, Finding};
pub use load::LoadError;
pub use model::{Container, ContainerPort, PeerAuthentication, Pod, Service, ServicePort, TargetPort, Workload};
pub use query::LookupError;
pub use timestamp::{Timestamp, TimestampError};
pub use types::{Applied, DecidedBy, Decision, Ignored, Level, Mode, PortDecision};
