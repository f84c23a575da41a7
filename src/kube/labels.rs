//! The names that mark a helper pod, shared by the code that builds it (`kube::helper_pod`)
//! and the code that finds, execs into and deletes it (the plugin, `kube::sniff`): its labels,
//! its targets annotation and its container. A leaf: it uses nothing else of the crate.

/// `app.kubernetes.io/managed-by` of every helper pod; `cleanup` deletes pods with it.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "kubectl-mtlscope";
/// One plugin run: the helpers it started, so it deletes exactly those.
pub const LABEL_SESSION: &str = "mtlscope.io/session";
/// `namespace/pod` of the pods the helper captures in, comma-separated.
pub const ANNOTATION_TARGETS: &str = "mtlscope.io/targets";
/// The helper's only container.
pub const CONTAINER: &str = "agent";
