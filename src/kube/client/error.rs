//! Why talking to the cluster failed: [`KubeError`], whose messages say what was asked, where,
//! and what to do about it (which flag to pass, which RBAC rule to grant).

use std::path::PathBuf;

/// Why talking to the cluster failed. Each message says what was asked, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(
        "no Kubernetes configuration: {} does not exist, KUBECONFIG is not set, and this is not running in a \
         pod; pass --kubeconfig FILE or set KUBECONFIG",
        default_path.as_ref().map_or_else(|| "~/.kube/config".to_owned(), |p| p.display().to_string())
    )]
    NoConfig { default_path: Option<PathBuf> },
    /// A kubeconfig file that cannot be read or used. `origin` names the file(s) and how they
    /// were chosen (`--kubeconfig`, `KUBECONFIG`, the default path).
    #[error("{origin}: {message}")]
    Kubeconfig { origin: String, message: String },
    #[error(
        "{origin} has no current-context; pass --context NAME (contexts: {})",
        list_or_none(known)
    )]
    NoContext { origin: String, known: Vec<String> },
    #[error(
        "context '{context}' not found in {origin} (contexts: {}); `kubectl config get-contexts` lists them",
        list_or_none(known)
    )]
    UnknownContext {
        context: String,
        origin: String,
        known: Vec<String>,
    },
    #[error("running in a pod, but its service account cannot be used: {message}; pass --kubeconfig FILE instead")]
    InCluster { message: String },
    #[error("--context {context} needs a kubeconfig, and there is none ({why}); pass --kubeconfig FILE")]
    ContextWithoutKubeconfig { context: String, why: &'static str },
    #[error("cannot set up the connection to the API server ({origin}): {message}")]
    Client { origin: String, message: String },
    #[error(
        "cannot reach the Kubernetes API server: {message} (is the cluster running, and is the server address in \
         the kubeconfig right? `kubectl cluster-info` checks both)"
    )]
    Unreachable { message: String },
    #[error(
        "the API server rejected the credentials (401 Unauthorized) when asked to {verb} {resource}: {message}; \
         log in again or refresh the kubeconfig user's token or certificate"
    )]
    Unauthorized {
        verb: &'static str,
        resource: String,
        message: String,
    },
    #[error(
        "forbidden: cannot {verb} {resource} {} (needs RBAC: {} on {resource}, {}; check with \
         `kubectl auth can-i {verb} {resource} {}`); the API server said: {message}",
        scope_text(namespace.as_deref()),
        rbac_verbs(verb),
        rbac_binding(namespace.as_deref()),
        can_i_scope(namespace.as_deref())
    )]
    Forbidden {
        verb: &'static str,
        resource: String,
        namespace: Option<String>,
        message: String,
    },
    #[error("{kind} '{name}' not found{}{hint}", in_namespace(namespace.as_deref()))]
    NotFound {
        /// `pod`, `deployment`, ...
        kind: &'static str,
        name: String,
        namespace: Option<String>,
        /// Empty, or `" (pods whose name starts with it: ...)"`.
        hint: String,
    },
    #[error("{owner} in namespace '{namespace}' has no pods matching {selector}")]
    NoPodsForWorkload {
        owner: String,
        namespace: String,
        selector: String,
    },
    #[error("no pods in namespace '{namespace}' match {selector}")]
    NoPodsMatch { namespace: String, selector: String },
    #[error("{owner} in namespace '{namespace}' {reason}; name a pod or use -l SELECTOR")]
    UnusableSelector {
        owner: String,
        namespace: String,
        reason: String,
    },
    #[error("cannot use '{target}' as a target: {reason}")]
    BadTarget { target: String, reason: String },
    #[error("{0}")]
    Usage(&'static str),
    #[error(
        "container '{container}' not found in pod '{pod}' in namespace '{namespace}' (containers: {})",
        list_or_none(known)
    )]
    NoContainer {
        container: String,
        pod: String,
        namespace: String,
        known: Vec<String>,
    },
    #[error(
        "cannot {verb} {resource} {}: the API server answered {code} {reason}: {message}",
        scope_text(namespace.as_deref())
    )]
    Api {
        verb: &'static str,
        resource: String,
        namespace: Option<String>,
        code: u16,
        reason: String,
        message: String,
    },
    /// Admission control refused the plugin's helper pod.
    #[error("the helper pod was refused in namespace '{namespace}' by {policy}: {message}; {remedy}")]
    HelperRejected {
        namespace: String,
        /// `Pod Security admission (level "baseline")`, `OpenShift SecurityContextConstraints`, ...
        policy: String,
        message: String,
        /// What to grant, as commands.
        remedy: String,
    },
    #[error("unexpected answer when asked to {what}: {message}")]
    Decode { what: String, message: String },
    #[error("cannot {what}: {message}")]
    Other { what: String, message: String },
}

pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

pub(super) fn scope_text(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace '{ns}'"),
        None => "in all namespaces".to_owned(),
    }
}

fn in_namespace(namespace: Option<&str>) -> String {
    namespace.map_or_else(String::new, |ns| format!(" in namespace '{ns}'"))
}

fn rbac_verbs(verb: &str) -> String {
    match verb {
        "get" | "list" => "get/list".to_owned(),
        other => other.to_owned(),
    }
}

fn rbac_binding(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("from a Role or ClusterRole bound in namespace '{ns}'"),
        None => "from a ClusterRole bound with a ClusterRoleBinding".to_owned(),
    }
}

fn can_i_scope(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("-n {ns}"),
        None => "-A".to_owned(),
    }
}

/// An error and all its sources, one after the other, repeated text left out (hyper and tower
/// wrap the same cause several times).
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_message_names_the_rule_to_grant() {
        let e = KubeError::Forbidden {
            verb: "list",
            resource: "peerauthentications.security.istio.io".into(),
            namespace: None,
            message: "denied".into(),
        };
        assert_eq!(
            e.to_string(),
            "forbidden: cannot list peerauthentications.security.istio.io in all namespaces (needs RBAC: get/list on \
             peerauthentications.security.istio.io, from a ClusterRole bound with a ClusterRoleBinding; check with \
             `kubectl auth can-i list peerauthentications.security.istio.io -A`); the API server said: denied"
        );
    }
}
