//! Test support: a real HTTP/1 server on 127.0.0.1:0 that counts hits, and a hyper-util
//! client. The server uses no timers, so `tokio::time::pause()` only ever jumps over the
//! delays under test.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A running server.
#[derive(Clone)]
pub struct TestServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    times: Arc<Mutex<Vec<tokio::time::Instant>>>,
}

impl TestServer {
    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    /// Virtual (tokio) time of each request.
    pub fn times(&self) -> Vec<tokio::time::Instant> {
        self.times.lock().unwrap().clone()
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Serves `handler(hit_index, request)` (hit_index is 0-based).
pub async fn serve<F>(handler: F) -> TestServer
where
    F: Fn(usize, &Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = TestServer {
        addr: listener.local_addr().unwrap(),
        hits: Arc::default(),
        times: Arc::default(),
    };
    let handler = Arc::new(handler);
    let s = server.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let s = s.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let n = s.hits.fetch_add(1, Ordering::SeqCst);
                    s.times.lock().unwrap().push(tokio::time::Instant::now());
                    let resp = handler(n, &req);
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    server
}

/// A server that accepts connections and never answers (a hung dependency).
pub async fn serve_nothing() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// An address where nothing listens (connection refused).
pub async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn status(code: u16) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub fn request(method: http::Method, url: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap()
}

/// The value of attribute `key` on an event, as a string.
pub fn event_attr(event: &opentelemetry::trace::Event, key: &str) -> Option<String> {
    event
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The value of attribute `key` on a span, as a string.
pub fn attr(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    otel_core::testing::TestTelemetry::attr(span, key).map(|v| v.to_string())
}

/// Sum of a u64 counter across its data points.
pub fn sum_counter(
    metrics: &[opentelemetry_sdk::metrics::data::ResourceMetrics],
    name: &str,
) -> u64 {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    let mut total = 0;
    for rm in metrics.iter().rev().take(1) {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                if m.name() == name
                    && let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data()
                {
                    total += sum.data_points().map(|p| p.value()).sum::<u64>();
                }
            }
        }
    }
    total
}

/// The requests a [`recording_stub`] saw, as its `record` closure described them, in order.
pub type Recorded<T> = Arc<Mutex<Vec<T>>>;

/// The type of a stub downstream ([`recording_stub`]), named once for every test that hands one
/// on (a boxed service would hide the concrete type from the layers under test).
pub trait StubService:
    tower::Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = std::io::Error,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> StubService for S where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<Full<Bytes>>,
            Error = std::io::Error,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// A stub client under the layers being tested: for each request, inside an `attempt` span
/// (as a tracing client layer would open), keeps what `record` makes of it, then answers with
/// `answer`'s status code or fails with its transport error.
pub fn recording_stub<T: Send + 'static>(
    answer: impl Fn(&Request<Full<Bytes>>) -> Result<u16, std::io::ErrorKind> + Clone + Send + 'static,
    record: impl Fn(&Request<Full<Bytes>>) -> T + Clone + Send + 'static,
) -> (Recorded<T>, impl StubService) {
    let recorded: Recorded<T> = Arc::default();
    let r = recorded.clone();
    let svc = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let _span = tracing::info_span!("attempt").entered();
        r.lock().unwrap().push(record(&req));
        let answer = answer(&req);
        async move {
            match answer {
                Ok(code) => Ok(status(code)),
                Err(kind) => Err(std::io::Error::from(kind)),
            }
        }
    });
    (recorded, svc)
}

/// An `answer` for [`recording_stub`]: the items of `script`, one per request, in order.
pub fn scripted(
    script: Vec<Result<u16, std::io::ErrorKind>>,
) -> impl Fn(&Request<Full<Bytes>>) -> Result<u16, std::io::ErrorKind> + Clone + Send + 'static {
    let script = Arc::new(Mutex::new(script.into_iter()));
    move |_| script.lock().unwrap().next().expect("script exhausted")
}

/// What a client layer records on its span from the layers above: every attribute handed
/// off or put in the request's `SpanAttributes` extension, as (key, value) text.
pub fn taken_attributes(req: &Request<Full<Bytes>>) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    otel_core::extensions::SpanAttributes::take(req.extensions(), |kv| {
        attrs.push((kv.key.to_string(), kv.value.to_string()))
    });
    attrs
}
