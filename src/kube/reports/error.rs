//! Why the Report writer stopped or a round failed: [`ReportsError`].

use crate::promql::PromError;

/// Why the writer stopped or a round failed. Messages name the resource, namespace and object
/// and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    #[error("cannot {verb} {resource} '{name}'{}: {message}{}", in_namespace(namespace), hint(*code, resource, verb))]
    Api {
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        name: String,
        code: u16,
        message: String,
    },
    #[error("cannot encode the Report for namespace {namespace}: {message}")]
    Encode { namespace: String, message: String },
    #[error(transparent)]
    Prometheus(#[from] PromError),
    #[error("{0}")]
    Options(String),
}

fn in_namespace(ns: &str) -> String {
    if ns.is_empty() {
        String::new()
    } else {
        format!(" in namespace {ns}")
    }
}

fn hint(code: u16, resource: &str, verb: &str) -> String {
    match code {
        403 => {
            format!("; grant the monitor's ServiceAccount `{verb}` on {resource} (the ClusterRole in deploy/ has it)")
        }
        404 if resource.starts_with("reports.") => "; is the OpenReports CRD installed? kubectl apply -f \
             https://raw.githubusercontent.com/openreports/reports-api/main/config/crd/openreports.io_reports.yaml"
            .to_owned(),
        _ => String::new(),
    }
}

impl ReportsError {
    pub(crate) fn api(verb: &'static str, resource: &'static str, namespace: &str, name: &str, e: kube::Error) -> Self {
        let (code, message) = match e {
            kube::Error::Api(s) => (s.code, s.message.clone()),
            e => (0, e.to_string()),
        };
        ReportsError::Api {
            verb,
            resource,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            code,
            message,
        }
    }

    /// RBAC refusals do not heal by themselves: the writer stops on them.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(
            self,
            ReportsError::Api { code: 401 | 403, .. } | ReportsError::Options(_)
        )
    }
}
