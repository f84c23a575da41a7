//! `/metrics` and `/healthz` over HTTP/1 (hyper) on a thread of its own with a one-thread tokio
//! runtime; anything else is 404.

use crate::monitor::metrics::{Metrics, OPENMETRICS, TEXT};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

/// The running server; dropping it (or [`Server::stop`]) stops it.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "--metrics-addr {addr}: cannot listen there: {cause} (is another monitor or exporter on that port? \
         pick another with --metrics-addr HOST:PORT or :PORT)"
    )]
    Bind { addr: SocketAddr, cause: std::io::Error },
    #[error("starting the metrics server: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Server {
    /// Listen on `addr` now (so a taken port is an error before anything else starts) and serve.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<Server, ServeError> {
        let listener = std::net::TcpListener::bind(addr).map_err(|cause| ServeError::Bind { addr, cause })?;
        let bound = listener.local_addr().map_err(ServeError::Runtime)?;
        listener.set_nonblocking(true).map_err(ServeError::Runtime)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(ServeError::Runtime)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || runtime.block_on(serve(listener, metrics, rx)))
            .map_err(ServeError::Runtime)?;
        Ok(Server {
            addr: bound,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut();
    }
}

async fn serve(listener: std::net::TcpListener, metrics: Arc<Metrics>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mtlscope: metrics server: {e}");
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // A connection that failed before it was accepted (reset, out of files): the
                // next scrape tries again.
                Err(_) => continue,
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &metrics)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            // A scraper that hangs up early is not worth a message.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn wants_openmetrics(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

fn answer(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        // Prometheus asks for OpenMetrics; anyone else (curl, promtool) gets the classic text.
        "/metrics" if wants_openmetrics(req) => (StatusCode::OK, OPENMETRICS, metrics.encode()),
        "/metrics" => (StatusCode::OK, TEXT, metrics.encode_text()),
        "/healthz" => (StatusCode::OK, "text/plain; charset=utf-8", "ok".to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: mtlscope monitor serves /metrics and /healthz\n".to_string(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}
