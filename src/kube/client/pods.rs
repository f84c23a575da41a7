//! The plugin's helper pods through the API: create (with admission refusals explained),
//! get, delete, list by label, and exec into them.

use super::error::KubeError;
use super::request::{api_error, is_status, Asked, MAX_PAGES, PAGE_SIZE};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

/// What Kubernetes would say to an admin about a refused helper pod, from the API server's
/// message: Pod Security admission, OpenShift's SCCs, or a validating webhook (Kyverno,
/// Gatekeeper...). `None` for a plain RBAC refusal.
fn admission_refusal(namespace: &str, message: &str) -> Option<(String, String)> {
    const NEEDS: &str = "the helper needs hostPID and the capabilities NET_RAW, SYS_ADMIN and SYS_PTRACE \
                         (see docs/kubernetes.md)";
    if let Some(rest) = message.split("violates PodSecurity \"").nth(1) {
        let level = rest.split(['"', ':']).next().unwrap_or("restricted");
        return Some((
            format!("Pod Security admission (the namespace enforces level \"{level}\")"),
            format!(
                "{NEEDS}, which only the \"privileged\" level allows: allow it in this namespace with `kubectl label \
                 namespace {namespace} pod-security.kubernetes.io/enforce=privileged --overwrite`, or create the \
                 helpers in a namespace that allows it with --helper-namespace NS"
            ),
        ));
    }
    if message.contains("security context constraint") {
        return Some((
            "OpenShift SecurityContextConstraints (no SCC the helper may use allows it)".to_owned(),
            format!(
                "{NEEDS}; grant the privileged SCC to the service account the helper runs as: `oc adm policy \
                 add-scc-to-user privileged -z default -n {namespace}`, or use --helper-namespace NS with a \
                 namespace where that is allowed"
            ),
        ));
    }
    if let Some(rest) = message.split("admission webhook \"").nth(1) {
        let webhook = rest.split('"').next().unwrap_or_default();
        return Some((
            format!("the admission webhook \"{webhook}\""),
            format!("{NEEDS}; ask the cluster's admins for an exception for pods labelled app.kubernetes.io/managed-by=kubectl-mtlscope in namespace {namespace}, or use --helper-namespace NS"),
        ));
    }
    None
}

/// Create a helper pod (`generateName`); returns it as stored, with its name.
pub async fn create_pod(client: &kube::Client, namespace: &str, pod: &Pod) -> Result<Pod, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let asked = Asked::pods("create", "pods", Some(namespace), None);
    match api.create(&kube::api::PostParams::default(), pod).await {
        Ok(p) => Ok(p),
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
            match admission_refusal(namespace, &status.message) {
                Some((policy, remedy)) => Err(KubeError::HelperRejected {
                    namespace: namespace.to_owned(),
                    policy,
                    message: status.message,
                    remedy,
                }),
                None => Err(api_error(kube::Error::Api(status), &asked)),
            }
        }
        Err(e) => Err(api_error(e, &asked)),
    }
}

pub async fn get_pod(client: &kube::Client, namespace: &str, name: &str) -> Result<Pod, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.get(name)
        .await
        .map_err(|e| api_error(e, &Asked::pods("get", "pods", Some(namespace), Some(name))))
}

/// Delete a pod at once (grace period 0). A pod that is already gone is not an error.
pub async fn delete_pod(client: &kube::Client, namespace: &str, name: &str) -> Result<(), KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api
        .delete(name, &kube::api::DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(api_error(
            e,
            &Asked::pods("delete", "pods", Some(namespace), Some(name)),
        )),
    }
}

/// Pods with these labels, in one namespace or all of them, as (namespace, pod).
pub async fn list_pods_labelled(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: &str,
) -> Result<Vec<Pod>, KubeError> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let asked = Asked::pods("list", "pods", namespace, None);
    let mut out = Vec::new();
    let mut params = ListParams::default().labels(selector).limit(PAGE_SIZE);
    for _ in 0..MAX_PAGES {
        let page = api.list(&params).await.map_err(|e| api_error(e, &asked))?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(out)
}

/// Run `command` in a container of a pod through the exec API (WebSocket), with stdin, stdout
/// and stderr attached.
pub async fn exec(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container: &str,
    command: Vec<String>,
) -> Result<kube::api::AttachedProcess, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = kube::api::AttachParams::default()
        .container(container)
        .stdin(true)
        .stdout(true)
        .stderr(true);
    api.exec(pod, command, &params)
        .await
        .map_err(|e| api_error(e, &Asked::pods("create", "pods/exec", Some(namespace), Some(pod))))
}

#[cfg(test)]
mod tests {
    use super::admission_refusal;

    #[test]
    fn pod_security_refusal_names_the_level_and_the_label() {
        let m = "pods \"mtlscope-w1-abcde\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces \
                 (hostPID=true), non-default capabilities (container \"agent\" must not include \"SYS_ADMIN\", \
                 \"SYS_PTRACE\" in securityContext.capabilities.add)";
        let (policy, remedy) = admission_refusal("bookinfo", m).unwrap();
        assert!(policy.contains("\"baseline\""), "{policy}");
        assert!(
            remedy.contains("kubectl label namespace bookinfo pod-security.kubernetes.io/enforce=privileged"),
            "{remedy}"
        );
    }

    #[test]
    fn openshift_scc_refusal_says_what_to_grant() {
        let m = "pods \"mtlscope-w1-x\" is forbidden: unable to validate against any security context constraint: \
                 [provider \"anyuid\": Forbidden: not usable by user or serviceaccount, spec.containers[0].\
                 securityContext.capabilities.add: Invalid value: \"SYS_ADMIN\": capability may not be added]";
        let (policy, remedy) = admission_refusal("shop", m).unwrap();
        assert!(policy.contains("SecurityContextConstraints"));
        assert!(remedy.contains("oc adm policy add-scc-to-user privileged -z default -n shop"));
    }

    #[test]
    fn rbac_refusal_is_not_admission() {
        assert!(admission_refusal(
            "x",
            "pods is forbidden: User \"dev\" cannot create resource \"pods\" in API group \"\" in the namespace \"x\""
        )
        .is_none());
    }
}
