//! What one API request was about ([`Asked`]), to turn kube's error into a [`KubeError`] that
//! names it, and how far list requests page.

use super::error::{chain, scope_text, KubeError};

/// Items asked for per list request. The API server's own default is unlimited; pages keep a
/// large cluster's answer (and this process's peak memory) in bounded pieces.
pub(super) const PAGE_SIZE: u32 = 500;
/// A server that keeps handing out `continue` tokens is broken; stop instead of looping. 1000
/// pages of 500 is well past the 150,000 pods Kubernetes supports in one cluster.
pub(super) const MAX_PAGES: usize = 1000;

/// What a failed request was about, to turn a [`kube::Error`] into a [`KubeError`].
pub(super) struct Asked<'a> {
    pub(super) verb: &'static str,
    /// RBAC name (`pods`, `deployments.apps`).
    pub(super) resource: String,
    /// Singular, for "pod 'x' not found".
    pub(super) kind: &'static str,
    pub(super) namespace: Option<&'a str>,
    pub(super) name: Option<&'a str>,
}

impl<'a> Asked<'a> {
    /// A request on pods (or a pods subresource such as `pods/exec`).
    pub(super) fn pods(
        verb: &'static str,
        resource: &str,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Asked<'a> {
        Asked {
            verb,
            resource: resource.to_owned(),
            kind: "pod",
            namespace,
            name,
        }
    }

    pub(super) fn what(&self) -> String {
        let mut s = format!("{} {}", self.verb, self.resource);
        if let Some(name) = self.name {
            s.push_str(&format!(" '{name}'"));
        }
        s.push(' ');
        s.push_str(&scope_text(self.namespace));
        s
    }
}

pub(super) fn api_error(e: kube::Error, asked: &Asked<'_>) -> KubeError {
    let namespace = asked.namespace.map(str::to_owned);
    match e {
        kube::Error::Api(status) => match status.code {
            401 => KubeError::Unauthorized {
                verb: asked.verb,
                resource: asked.resource.clone(),
                message: status.message,
            },
            404 if asked.name.is_some() => KubeError::NotFound {
                kind: asked.kind,
                name: asked.name.unwrap_or_default().to_owned(),
                namespace,
                hint: String::new(),
            },
            // RBAC's 403, an admission or quota refusal, or another status.
            code => KubeError::from_status(
                asked.verb,
                asked.resource.clone(),
                namespace,
                code,
                status.reason,
                status.message,
            ),
        },
        // Leave out kube's own "ServiceError:" / "HyperError:" prefix: the causes say it all.
        kube::Error::HyperError(e) => KubeError::Unreachable { message: chain(&e) },
        kube::Error::Service(e) => KubeError::Unreachable { message: chain(&*e) },
        kube::Error::SerdeError(e) => KubeError::Decode {
            what: asked.what(),
            message: e.to_string(),
        },
        e => KubeError::Other {
            what: asked.what(),
            message: chain(&e),
        },
    }
}

pub(super) fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
