//! A small Prometheus HTTP API client: instant queries (`/api/v1/query`) whose result is a
//! vector, over http or https (rustls, the system's roots), with an optional bearer token.
//! [`queries`] holds the PromQL that readiness and the OpenReports writer send.
//!
//! Every [`PromError`] names the URL and the query and says what to do: Prometheus down, a query
//! Prometheus refused (with its own message), an answer that is not a vector.

pub mod queries;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client as HttpClient};
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one query may take, connection included, before it is an error.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes of an answer read: a vector of bounded-cardinality series is far smaller.
const MAX_BODY: usize = 64 << 20;

/// Why a query failed. Messages name the URL and the query and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error(
        "--prometheus {url}: {message}; pass a URL such as http://localhost:9090 or https://prometheus.example:9091"
    )]
    BadUrl { url: String, message: String },
    #[error(
        "cannot reach Prometheus at {url} for query `{query}`: {message}; is Prometheus running there? \
         (`kubectl -n monitoring port-forward svc/prometheus 9090` then --prometheus http://localhost:9090)"
    )]
    Unreachable {
        url: String,
        query: String,
        message: String,
    },
    #[error("Prometheus at {url} did not answer query `{query}` within {}s; is it overloaded? try a shorter --since", QUERY_TIMEOUT.as_secs())]
    Timeout { url: String, query: String },
    #[error("Prometheus at {url} refused query `{query}` ({status} {error_type}): {message}")]
    Refused {
        url: String,
        query: String,
        status: u16,
        error_type: String,
        message: String,
    },
    #[error(
        "{url} answered query `{query}` with HTTP {status} and no Prometheus API response; is this \
         Prometheus's address (not Grafana's or the Pushgateway's)? check --prometheus"
    )]
    NotPrometheus { url: String, query: String, status: u16 },
    #[error("Prometheus at {url} answered query `{query}` with a {result_type}, not a vector")]
    NotVector {
        url: String,
        query: String,
        result_type: String,
    },
}

/// One series of an instant vector: its labels, its value and the evaluation time (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp: f64,
}

impl Sample {
    /// A label's value, `""` when the series does not have it (as PromQL treats a missing label).
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A Prometheus server: its base URL (`http://host:9090`, a path prefix allowed) and how to
/// authenticate.
#[derive(Clone)]
pub struct Prometheus {
    base: String,
    token: Option<String>,
    http: HttpClient<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for Prometheus {
    // The token is a credential: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Prometheus {
    /// A client for the server at `url` (http or https), sending `Authorization: Bearer TOKEN`
    /// when a token is given.
    pub fn new(url: &str, token: Option<String>) -> Result<Prometheus, PromError> {
        let bad = |message: &str| PromError::BadUrl {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => return Err(bad(&format!("scheme {other} is not http or https"))),
            None => return Err(bad("no scheme (http:// or https://)")),
        }
        if uri.host().is_none() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("a query string is not allowed in the base URL"));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| bad(&format!("cannot load the system's TLS root certificates ({e})")))?
            .https_or_http()
            .enable_http1()
            .build();
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        Ok(Prometheus {
            base: url.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// The base URL, as errors and reports name it.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Evaluate `query` now (an instant query); its result must be a vector.
    pub async fn query(&self, query: &str) -> Result<Vec<Sample>, PromError> {
        match tokio::time::timeout(QUERY_TIMEOUT, self.query_untimed(query)).await {
            Ok(r) => r,
            Err(_) => Err(PromError::Timeout {
                url: self.base.clone(),
                query: query.to_owned(),
            }),
        }
    }

    async fn query_untimed(&self, query: &str) -> Result<Vec<Sample>, PromError> {
        let url = format!("{}/api/v1/query", self.base);
        let unreachable = |message: String| PromError::Unreachable {
            url: self.base.clone(),
            query: query.to_owned(),
            message,
        };
        // POST with a form body, as Prometheus accepts: long queries never meet a URL limit.
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .finish();
        let mut req = http::Request::post(&url)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| unreachable(format!("cannot build the request ({e})")))?;
        let resp = self.http.request(req).await.map_err(|e| unreachable(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| unreachable(format!("the answer was cut short ({e})")))?
            .to_bytes();
        parse_answer(&self.base, query, status, &body)
    }
}

/// The error and its causes on one line: hyper's own message ("client error (Connect)") says
/// little without them.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

#[derive(serde::Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Prometheus's JSON answer (https://prometheus.io/docs/prometheus/latest/querying/api/).
fn parse_answer(url: &str, query: &str, status: u16, body: &[u8]) -> Result<Vec<Sample>, PromError> {
    let not_prom = || PromError::NotPrometheus {
        url: url.to_owned(),
        query: query.to_owned(),
        status,
    };
    let answer: Answer = serde_json::from_slice(body).map_err(|_| not_prom())?;
    if answer.status != "success" {
        return Err(PromError::Refused {
            url: url.to_owned(),
            query: query.to_owned(),
            status,
            error_type: answer.error_type.unwrap_or_default(),
            message: answer.error.unwrap_or_default(),
        });
    }
    let data = answer.data.ok_or_else(not_prom)?;
    if data.result_type != "vector" {
        return Err(PromError::NotVector {
            url: url.to_owned(),
            query: query.to_owned(),
            result_type: data.result_type,
        });
    }
    let items: Vec<VectorItem> = serde_json::from_value(data.result).map_err(|_| not_prom())?;
    Ok(items
        .into_iter()
        .map(|i| Sample {
            labels: i.metric,
            // Prometheus writes values as strings: "1", "NaN", "+Inf".
            value: i.value.1.parse().unwrap_or(f64::NAN),
            timestamp: i.value.0,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_answer_parsed() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"verdict":"mtls"},"value":[1700000000.5,"12"]}]}}"#;
        let v = parse_answer("http://p", "q", 200, body).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].label("verdict"), "mtls");
        assert_eq!(v[0].label("absent"), "");
        assert_eq!(v[0].value, 12.0);
        assert_eq!(v[0].timestamp, 1700000000.5);
    }

    #[test]
    fn refusal_keeps_prometheus_message() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#;
        let e = parse_answer("http://p:9090", "sum(", 400, body)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http://p:9090") && e.contains("`sum(`") && e.contains("parse error: unexpected"),
            "{e}"
        );
    }

    #[test]
    fn matrix_is_not_a_vector() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        let e = parse_answer("http://p", "up[5m]", 200, body).unwrap_err().to_string();
        assert!(e.contains("matrix, not a vector"), "{e}");
    }

    #[test]
    fn html_page_is_not_prometheus() {
        let e = parse_answer("http://p", "up", 404, b"<html>").unwrap_err().to_string();
        assert!(e.contains("HTTP 404") && e.contains("--prometheus"), "{e}");
    }

    #[test]
    fn bad_urls_refused() {
        assert!(Prometheus::new("localhost:9090", None).is_err());
        assert!(Prometheus::new("ftp://p", None).is_err());
        assert!(Prometheus::new("http://p:9090/?x=1", None).is_err());
        assert_eq!(Prometheus::new("http://p:9090/", None).unwrap().url(), "http://p:9090");
    }
}
