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
    /// RBAC refused the request (a 403 that no admission plugin wrote).
    #[error("{}", forbidden_text(verb, resource, namespace.as_deref(), message))]
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
    /// RBAC allowed the request, but admission control or a quota refused it: granting
    /// permissions does not help, the policy, webhook or quota named in `by` decides.
    #[error(
        "cannot {verb} {resource} {}: refused by {by}, not by RBAC (the permission is there; more RBAC does not \
         help): {}; the API server answered {code}: {message}",
        scope_text(namespace.as_deref()),
        by.remedy(namespace.as_deref())
    )]
    Refused {
        verb: &'static str,
        resource: String,
        namespace: Option<String>,
        code: u16,
        /// Boxed: it would make every `Result<_, KubeError>` larger.
        by: Box<Refuser>,
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

/// What refused a request that RBAC allowed, read from the message kube-apiserver writes for
/// it (the formats are its own: `ValidatingAdmissionPolicy '%s' with binding '%s' denied
/// request: %s` from the policy plugin, `exceeded quota: %s, requested: ...` and `failed quota:
/// %s: must specify ...` from the ResourceQuota plugin, `admission webhook %q denied the
/// request` from the webhook dispatcher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refuser {
    ValidatingAdmissionPolicy { policy: String, binding: Option<String> },
    ResourceQuota { quota: String },
    Webhook { webhook: String },
}

impl std::fmt::Display for Refuser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refuser::ValidatingAdmissionPolicy {
                policy,
                binding: Some(b),
            } => {
                write!(f, "the ValidatingAdmissionPolicy '{policy}' (binding '{b}')")
            }
            Refuser::ValidatingAdmissionPolicy { policy, binding: None } => {
                write!(f, "the ValidatingAdmissionPolicy '{policy}'")
            }
            Refuser::ResourceQuota { quota } => write!(f, "the ResourceQuota '{quota}'"),
            Refuser::Webhook { webhook } => write!(f, "the admission webhook \"{webhook}\""),
        }
    }
}

impl Refuser {
    /// Who refused, from the API server's message; `None` for anything else (RBAC's own 403,
    /// a validation error).
    pub fn from_message(message: &str) -> Option<Refuser> {
        if let Some(rest) = message.split("ValidatingAdmissionPolicy '").nth(1) {
            let (policy, rest) = rest.split_once('\'')?;
            let binding = rest
                .strip_prefix(" with binding '")
                .and_then(|b| b.split_once('\''))
                .map(|(b, _)| b.to_owned());
            return Some(Refuser::ValidatingAdmissionPolicy {
                policy: policy.to_owned(),
                binding,
            });
        }
        for marker in ["exceeded quota: ", "failed quota: "] {
            if let Some(rest) = message.split(marker).nth(1) {
                let quota = rest.split([',', ':']).next().unwrap_or_default().trim();
                return Some(Refuser::ResourceQuota {
                    quota: quota.to_owned(),
                });
            }
        }
        let rest = message.split("admission webhook \"").nth(1)?;
        let (webhook, rest) = rest.split_once('"')?;
        rest.trim_start()
            .starts_with("denied the request")
            .then(|| Refuser::Webhook {
                webhook: webhook.to_owned(),
            })
    }

    /// What to do, as commands where there are some.
    fn remedy(&self, namespace: Option<&str>) -> String {
        let ns = namespace.map_or_else(String::new, |n| format!(" -n {n}"));
        let elsewhere = "or run the helpers in a namespace it does not cover with --helper-namespace NS";
        match self {
            Refuser::ValidatingAdmissionPolicy { policy, binding } => format!(
                "`kubectl get validatingadmissionpolicy {policy} -o yaml`{} shows what it checks; ask the cluster's \
                 admins for an exception for pods labelled app.kubernetes.io/managed-by=kubectl-mtlscope, {elsewhere}",
                binding.as_ref().map_or_else(String::new, |b| format!(
                    " and `kubectl get validatingadmissionpolicybinding {b} -o yaml`"
                ))
            ),
            Refuser::ResourceQuota { quota } => format!(
                "the namespace's quota has no room left for what the request asks (for a helper pod: its requests \
                 and limits); `kubectl describe resourcequota {quota}{ns}` shows what is used: free some room, raise \
                 the quota, {elsewhere}"
            ),
            Refuser::Webhook { webhook } => format!(
                "`kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations` shows which \
                 configuration calls \"{webhook}\"; ask its owners for an exception for pods labelled \
                 app.kubernetes.io/managed-by=kubectl-mtlscope, {elsewhere}"
            ),
        }
    }
}

impl KubeError {
    /// A failure the API server answered with a `Status` (besides 401, and 404 for a named
    /// object): a refusal by admission control or a quota, RBAC's 403, or another status.
    /// Admission refusals come with 400, 403 or 422 (a ValidatingAdmissionPolicy answers 422
    /// unless its validation sets another reason; webhooks choose their code, at least 400).
    pub(super) fn from_status(
        verb: &'static str,
        resource: String,
        namespace: Option<String>,
        code: u16,
        reason: String,
        message: String,
    ) -> KubeError {
        let refuser = matches!(code, 400 | 403 | 422)
            .then(|| Refuser::from_message(&message))
            .flatten();
        match (refuser, code) {
            (Some(by), _) => KubeError::Refused {
                verb,
                resource,
                namespace,
                code,
                by: Box::new(by),
                message,
            },
            (None, 403) => KubeError::Forbidden {
                verb,
                resource,
                namespace,
                message,
            },
            (None, code) => KubeError::Api {
                verb,
                resource,
                namespace,
                code,
                reason,
                message,
            },
        }
    }
}

/// RBAC's refusal of `verb` on `resource`: which rule to grant, where, and the `kubectl auth
/// can-i` commands that check it. An exec (`pods/exec`) is a WebSocket upgrade, that is a
/// `GET`: kube-apiserver authorizes it as `get`, and from Kubernetes 1.35
/// (`AuthorizePodWebsocketUpgradeCreatePermission`, on by default) checks `create` as well, so
/// it needs both whatever verb the request was described with.
fn forbidden_text(verb: &str, resource: &str, namespace: Option<&str>, message: &str) -> String {
    let scope = scope_text(namespace);
    let binding = rbac_binding(namespace);
    let (base, sub) = match resource.split_once('/') {
        Some((b, s)) => (b, Some(s)),
        None => (resource, None),
    };
    let can_i = |v: &str| match sub {
        Some(s) => format!(
            "`kubectl auth can-i {v} {base} --subresource={s} {}`",
            can_i_scope(namespace)
        ),
        None => format!("`kubectl auth can-i {v} {resource} {}`", can_i_scope(namespace)),
    };
    if matches!(sub, Some("exec" | "attach" | "portforward")) {
        // RBAC's own message names the verb it refused; the 1.35 `create` check's says only
        // "is forbidden".
        let refused = if message.contains(&format!("cannot get resource \"{resource}\"")) {
            "`get` was refused"
        } else if message.contains(&format!("cannot create resource \"{resource}\"")) || !message.contains("User \"") {
            "`create` was refused"
        } else {
            "refused"
        };
        return format!(
            "forbidden: cannot open {resource} {scope} ({refused}; needs RBAC: get and create on {resource}, {binding}: \
             the exec stream is a WebSocket upgrade, a GET, which the API server authorizes as `get`, and Kubernetes \
             1.35 and later check `create` too; check with {} and {}); the API server said: {message}",
            can_i("get"),
            can_i("create"),
        );
    }
    format!(
        "forbidden: cannot {verb} {resource} {scope} (needs RBAC: {} on {resource}, {binding}; check with {}); the API \
         server said: {message}",
        rbac_verbs(verb),
        can_i(verb)
    )
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
    fn admission_refusals_are_told_from_rbac() {
        let vap = "pods \"mtlscope-w1-bcdfg\" is forbidden: ValidatingAdmissionPolicy 'no-host-pid' with binding \
                   'no-host-pid-shop' denied request: hostPID is not allowed";
        assert_eq!(
            Refuser::from_message(vap),
            Some(Refuser::ValidatingAdmissionPolicy {
                policy: "no-host-pid".into(),
                binding: Some("no-host-pid-shop".into())
            })
        );
        let quota = "pods \"mtlscope-w1-bcdfg\" is forbidden: exceeded quota: compute, requested: \
                     limits.memory=512Mi, used: limits.memory=1792Mi, limited: limits.memory=2Gi";
        assert_eq!(
            Refuser::from_message(quota),
            Some(Refuser::ResourceQuota {
                quota: "compute".into()
            })
        );
        let must = "pods \"x\" is forbidden: failed quota: compute: must specify limits.memory for: agent";
        assert_eq!(
            Refuser::from_message(must),
            Some(Refuser::ResourceQuota {
                quota: "compute".into()
            })
        );
        let hook = "admission webhook \"validate.kyverno.svc-fail\" denied the request: policy disallow-host-pid";
        assert_eq!(
            Refuser::from_message(hook),
            Some(Refuser::Webhook {
                webhook: "validate.kyverno.svc-fail".into()
            })
        );
        let rbac = "pods is forbidden: User \"dev\" cannot create resource \"pods\" in API group \"\" in the \
                    namespace \"shop\"";
        assert_eq!(Refuser::from_message(rbac), None);
        let e = KubeError::from_status(
            "create",
            "pods".into(),
            Some("shop".into()),
            403,
            "Forbidden".into(),
            quota.into(),
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "cannot create pods in namespace 'shop': refused by the ResourceQuota 'compute', not by RBAC"
            ),
            "{text}"
        );
        assert!(
            text.contains("`kubectl describe resourcequota compute -n shop`"),
            "{text}"
        );
        let e = KubeError::from_status(
            "create",
            "pods".into(),
            Some("shop".into()),
            403,
            "Forbidden".into(),
            rbac.into(),
        );
        assert!(matches!(e, KubeError::Forbidden { .. }), "{e:?}");
    }

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
