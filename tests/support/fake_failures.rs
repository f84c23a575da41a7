//! Failing where real clusters fail, for the fake API server (its child module, [`Failures`]):
//! RBAC from Role YAML on every resource request and on exec, validating admission with the
//! real refusal messages, the API server's version, and the kubelet's start failures and
//! OOMKilled containers. Kept apart from the serving code, which calls it at a few points:
//! `authorize` per resource request, `authorize_exec` and `admit` per exec, `admit` per create,
//! `start` when the kubelet would start a pod, `oom_kill` per exec.

use super::{key, rfc3339_now, str_at, Builder, ExecAction, ExecRequest, Key, Reply, State};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub api_groups: Vec<String>,
    /// `pods`, `pods/exec`, `*`.
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

impl Rule {
    fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        any(&self.api_groups, group) && any(&self.resources, resource) && any(&self.verbs, verb)
    }
}

/// The rules of every Role and ClusterRole in a YAML text (documents separated by `---`), as
/// `kubectl apply` would read them.
pub fn rules_from_yaml(yaml: &str) -> Vec<Rule> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for doc in yaml.split("\n---") {
        let Ok(v) = serde_norway::from_str::<Value>(doc) else {
            panic!("not YAML: {doc}");
        };
        if !matches!(str_at(&v, "/kind"), Some("Role" | "ClusterRole")) {
            continue;
        }
        for r in v.get("rules").and_then(Value::as_array).into_iter().flatten() {
            out.push(Rule {
                api_groups: strings(&r["apiGroups"]),
                resources: strings(&r["resources"]),
                verbs: strings(&r["verbs"]),
            });
        }
    }
    out
}

/// Where a set of rules is bound: everywhere (a ClusterRoleBinding) or in one namespace (a
/// RoleBinding, of a Role or a ClusterRole).
#[derive(Debug, Clone)]
struct Binding {
    rules: Vec<Rule>,
    namespace: Option<String>,
}

/// How the kubelet fails to start a created pod, with the reasons and messages it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// Waiting `ImageInspectError`: the image in the node's store cannot be read.
    ImageInspectError,
    /// Waiting `RegistryUnavailable` (the CRI's error, turned into the kubelet's message).
    RegistryUnavailable,
    /// Terminated `StartError` from containerd, the command built for another architecture.
    WrongArchitecture,
    /// Terminated with this reason, exit code and message (`restartPolicy: Never`: Failed).
    Terminated {
        reason: String,
        exit_code: i32,
        message: String,
    },
}

/// An admission decision: sees the operation (`CREATE`, `CONNECT`), the resource (`pods`,
/// `pods/exec`), the namespace and the object (for `CONNECT`, its name and namespace only), and
/// may refuse with a reply ([`Reply::policy_denied`], [`Reply::quota_exceeded`],
/// [`Reply::webhook_denied`]). Runs after authorization and, for a create, after the name is
/// generated, as kube-apiserver's validating admission does.
pub type Admission = Arc<dyn Fn(&str, &str, Option<&str>, &Value) -> Option<Reply> + Send + Sync>;

/// What the fake does that a permissive fake would not: RBAC, admission, the API server's
/// version, and kubelet failures.
#[derive(Default)]
pub struct Failures {
    /// `None`: no RBAC at all (every request allowed).
    bindings: Option<Vec<Binding>>,
    /// The minor version of `/version` and of the exec authorization rules; 33 by default.
    minor: Option<u32>,
    admission: Vec<Admission>,
    start: Option<StartFailure>,
    /// The n-th exec into a pod finds its memory limit: the container is OOMKilled.
    oom_on_exec: Option<usize>,
    execs: BTreeMap<Key, usize>,
}

const USER: &str = "system:serviceaccount:default:mtlscope";

impl Failures {
    pub(super) fn minor(&self) -> u32 {
        self.minor.unwrap_or(33)
    }

    /// RBAC's answer for a resource request; `None`: allowed.
    pub(super) fn authorize(
        &self,
        group: &str,
        plural: &str,
        subresource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
        verb: &str,
    ) -> Option<Reply> {
        let bindings = self.bindings.as_ref()?;
        let resource = match subresource {
            Some(sub) => format!("{plural}/{sub}"),
            None => plural.to_owned(),
        };
        let allowed = bindings.iter().any(|b| {
            (b.namespace.is_none() || b.namespace.as_deref() == namespace)
                && b.rules.iter().any(|r| r.allows(group, &resource, verb))
        });
        if allowed {
            return None;
        }
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        // responsewriters.Forbidden: apierrors.NewForbidden(group resource, name, reason).
        let qualified = if group.is_empty() {
            plural.to_owned()
        } else {
            format!("{plural}.{group}")
        };
        let subject = match name {
            Some(n) => format!("{qualified} \"{n}\""),
            None => qualified,
        };
        Some(Reply::status(
            403,
            "Forbidden",
            &format!(
                "{subject} is forbidden: User \"{USER}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" \
                 {scope}"
            ),
            Some(json!({"name": name.unwrap_or_default(), "group": group, "kind": plural})),
        ))
    }

    /// An exec's authorization: the WebSocket upgrade is a GET, checked as `get` on pods/exec;
    /// from 1.35 the pod registry also checks `create` (`ensureAuthorizedForVerb`), whose
    /// refusal carries RBAC's empty reason: `pods "NAME" is forbidden: `.
    pub(super) fn authorize_exec(&self, namespace: &str, pod: &str) -> Option<Reply> {
        if let Some(r) = self.authorize("", "pods", Some("exec"), Some(namespace), Some(pod), "get") {
            return Some(r);
        }
        if self.minor() >= 35
            && self
                .authorize("", "pods", Some("exec"), Some(namespace), Some(pod), "create")
                .is_some()
        {
            return Some(Reply::status(
                403,
                "Forbidden",
                &format!("pods \"{pod}\" is forbidden: "),
                Some(json!({"name": pod, "kind": "pods"})),
            ));
        }
        None
    }

    pub(super) fn admit(
        &self,
        operation: &str,
        resource: &str,
        namespace: Option<&str>,
        object: &Value,
    ) -> Option<Reply> {
        self.admission
            .iter()
            .find_map(|a| a(operation, resource, namespace, object))
    }

    /// The pod as the kubelet leaves it when it cannot start it; `None`: it starts.
    pub(super) fn start(&self, pod: &Value) -> Option<Value> {
        let failure = self.start.as_ref()?;
        let image = str_at(pod, "/spec/containers/0/image").unwrap_or_default().to_owned();
        let name = str_at(pod, "/spec/containers/0/name").unwrap_or_default().to_owned();
        let command = str_at(pod, "/spec/containers/0/command/0")
            .unwrap_or("sleep")
            .to_owned();
        let (phase, state) = match failure {
            StartFailure::ImageInspectError => (
                "Pending",
                json!({"waiting": {"reason": "ImageInspectError", "message": format!(
                    "Failed to inspect image \"{image}\": rpc error: code = Unknown desc = failed to get image \
                     \"{image}\": content digest sha256:5c8a...: not found")}}),
            ),
            StartFailure::RegistryUnavailable => (
                "Pending",
                json!({"waiting": {"reason": "RegistryUnavailable", "message": format!(
                    "image pull failed for {image} because the registry is unavailable: dial tcp: lookup \
                     registry.example on 10.96.0.10:53: no such host")}}),
            ),
            StartFailure::WrongArchitecture => (
                "Failed",
                json!({"terminated": {"reason": "StartError", "exitCode": 128, "message": format!(
                    "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc \
                     create failed: unable to start container process: exec: \"{command}\": exec format error: \
                     unknown"), "startedAt": "1970-01-01T00:00:00Z", "finishedAt": rfc3339_now()}}),
            ),
            StartFailure::Terminated {
                reason,
                exit_code,
                message,
            } => (
                "Failed",
                json!({"terminated": {"reason": reason, "exitCode": exit_code, "message": message,
                       "startedAt": rfc3339_now(), "finishedAt": rfc3339_now()}}),
            ),
        };
        let mut pod = pod.clone();
        pod["status"] = json!({
            "phase": phase, "qosClass": "Burstable", "startTime": rfc3339_now(),
            "containerStatuses": [{"name": name, "image": image, "imageID": "", "ready": false,
                                   "restartCount": 0, "started": false, "state": state}],
        });
        Some(pod)
    }
}

/// The n-th exec into a pod (with [`Builder::oom_kill_on_exec`]): the container goes over its
/// memory limit, the kernel kills it, the kubelet reports it `OOMKilled` (exit code 137, phase
/// Failed with `restartPolicy: Never`), and the exec that pushed it over ends with 137.
pub(super) fn oom_kill(state: &mut State, namespace: &str, pod: &str) -> Option<ExecAction> {
    let n = state.failures.oom_on_exec?;
    let k = key("", "Pod", Some(namespace), pod);
    let count = state.failures.execs.entry(k.clone()).or_insert(0);
    *count += 1;
    if *count < n {
        return None;
    }
    let mut killed = state.store.objects.get(&k)?.clone();
    let now = rfc3339_now();
    killed["status"]["phase"] = json!("Failed");
    if let Some(statuses) = killed["status"]["containerStatuses"].as_array_mut() {
        for cs in statuses {
            let started = cs["state"]["running"]["startedAt"].clone();
            cs["ready"] = json!(false);
            cs["state"] = json!({"terminated": {"reason": "OOMKilled", "exitCode": 137, "startedAt": started,
                                                 "finishedAt": now, "containerID": cs["containerID"]}});
        }
    }
    state.store.insert(killed);
    Some(ExecAction::Script {
        stdout: Vec::new(),
        stderr: Vec::new(),
        exit_code: 137,
    })
}

/// containerd's answer to an exec of a binary built for another architecture.
pub fn exec_format_error(req: &ExecRequest) -> ExecAction {
    let program = req.command.first().cloned().unwrap_or_default();
    ExecAction::StartFailed(super::runtime_error(&format!("exec: \"{program}\": exec format error")))
}

impl Reply {
    /// A ValidatingAdmissionPolicy's denial: `reason` `Forbidden` (403) when its validation
    /// says so, else `Invalid` (422), the plugin's default.
    pub fn policy_denied(
        resource: &str,
        name: &str,
        policy: &str,
        binding: &str,
        message: &str,
        reason: &str,
    ) -> Reply {
        let cause = format!("ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}");
        let code = if reason == "Forbidden" { 403 } else { 422 };
        Reply::status(
            code,
            reason,
            &format!("{resource} \"{name}\" is forbidden: {cause}"),
            Some(json!({"name": name, "kind": resource, "causes": [{"message": cause}]})),
        )
    }

    /// The ResourceQuota admission plugin's refusal.
    pub fn quota_exceeded(name: &str, quota: &str, requested: &str, used: &str, limited: &str) -> Reply {
        Reply::status(
            403,
            "Forbidden",
            &format!(
                "pods \"{name}\" is forbidden: exceeded quota: {quota}, requested: {requested}, used: {used}, \
                 limited: {limited}"
            ),
            Some(json!({"name": name, "kind": "pods"})),
        )
    }

    /// A validating webhook's denial as the dispatcher turns it into a Status (`ToStatusErr`):
    /// the webhook's code, at least 400, and its message after `admission webhook "NAME" denied
    /// the request: `.
    pub fn webhook_denied(webhook: &str, code: u16, message: &str) -> Reply {
        let mut r = Reply::status(
            code.max(400),
            "",
            &format!("admission webhook \"{webhook}\" denied the request: {message}"),
            None,
        );
        if let Some(m) = r.body.as_object_mut() {
            m.remove("reason");
        }
        r
    }
}

impl Builder {
    /// RBAC: only what these rules allow, bound cluster-wide (`None`, a ClusterRoleBinding) or
    /// in one namespace (a RoleBinding). Called again, adds another binding. Discovery stays
    /// open, as `system:discovery` keeps it.
    pub fn rbac(mut self, rules: Vec<Rule>, namespace: Option<&str>) -> Builder {
        self.failures.bindings.get_or_insert_with(Vec::new).push(Binding {
            rules,
            namespace: namespace.map(str::to_owned),
        });
        self
    }

    /// The API server's minor version (1.`minor`): `/version`, and whether an exec needs
    /// `create` besides `get` (1.35 and later).
    pub fn server_minor(mut self, minor: u32) -> Builder {
        self.failures.minor = Some(minor);
        self
    }

    /// See [`Admission`]; consulted in the order added.
    pub fn admission(
        mut self,
        f: impl Fn(&str, &str, Option<&str>, &Value) -> Option<Reply> + Send + Sync + 'static,
    ) -> Builder {
        self.failures.admission.push(Arc::new(f));
        self
    }

    /// Created pods do not start (with [`Builder::kubelet`]): the kubelet reports this instead.
    pub fn start_failure(mut self, failure: StartFailure) -> Builder {
        self.failures.start = Some(failure);
        self
    }

    /// The `n`-th exec into a pod OOM-kills its container (see [`oom_kill`]).
    pub fn oom_kill_on_exec(mut self, n: usize) -> Builder {
        self.failures.oom_on_exec = Some(n);
        self
    }
}
