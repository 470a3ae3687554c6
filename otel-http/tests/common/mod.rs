//! Helpers shared by the integration tests: real servers on 127.0.0.1:0, the two server
//! layers side by side, metric lookup, an allocation counter.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, MetricData, ResourceMetrics, SumDataPoint,
};
use otel_http::HttpServerLayerBuilder;
use tower::util::BoxService;
use tower::{Layer, ServiceExt};

/// Sends `request` (through the client's middlewares) and returns the response body as text.
pub async fn text_of(request: reqwest_middleware::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}

/// Serves `app` on 127.0.0.1 (port chosen by the OS) with the peer address available.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// The data points of the f64 histogram `name`.
pub fn histogram_points(metrics: &[ResourceMetrics], name: &str) -> Vec<HistogramDataPoint<f64>> {
    let mut out = Vec::new();
    for rm in metrics {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                if m.name() == name
                    && let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data()
                {
                    out.extend(h.data_points().cloned());
                }
            }
        }
    }
    out
}

/// The data points of the i64 sum `name`.
pub fn sum_points(metrics: &[ResourceMetrics], name: &str) -> Vec<SumDataPoint<i64>> {
    let mut out = Vec::new();
    for rm in metrics {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                if m.name() == name
                    && let AggregatedMetrics::I64(MetricData::Sum(s)) = m.data()
                {
                    out.extend(s.data_points().cloned());
                }
            }
        }
    }
    out
}

/// Attribute `key` of a data point, as text.
pub fn point_attr<'a>(mut attrs: impl Iterator<Item = &'a KeyValue>, key: &str) -> Option<String> {
    attrs
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// The two server layers, one configuration and one request logic: the tests of what a
/// response goes through (span end at the body's end, streaming, panics, request id echo) run
/// against both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerLayer {
    /// `HttpServerLayer` (`build()`): answers `Response<ResponseBody<B>>`.
    Generic,
    /// `AxumServerLayer` (`build_axum()`): answers `axum::response::Response`.
    Axum,
}

/// A service answering `Response<Body>` for both layers, as the tests call them in process.
pub type BoxedService = BoxService<http::Request<Body>, http::Response<Body>, Infallible>;

impl ServerLayer {
    /// `router` behind this layer, built from `builder` (`Router::layer`: after routing).
    pub fn router<S>(self, router: Router<S>, builder: HttpServerLayerBuilder) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        match self {
            ServerLayer::Generic => router.layer(builder.build()),
            ServerLayer::Axum => router.layer(builder.build_axum()),
        }
    }

    /// `inner` behind this layer, built from `builder`. The generic layer's `ResponseBody` is
    /// boxed into an axum `Body`, as `Router::layer` does.
    pub fn service<S>(self, builder: HttpServerLayerBuilder, inner: S) -> BoxedService
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        match self {
            ServerLayer::Generic => BoxService::new(
                builder
                    .build()
                    .layer(inner)
                    .map_response(|response| response.map(Body::new)),
            ),
            ServerLayer::Axum => BoxService::new(builder.build_axum().layer(inner)),
        }
    }
}

/// Declares, for each async test function `name(ServerLayer)`, the tests `name::generic` and
/// `name::axum`.
#[allow(unused_macros)]
macro_rules! for_both_layers {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn generic() {
                super::$name(crate::common::ServerLayer::Generic).await;
            }

            #[tokio::test]
            async fn axum() {
                super::$name(crate::common::ServerLayer::Axum).await;
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use for_both_layers;

/// A global allocator that counts the allocations of each thread, for tests that prove a path
/// allocates nothing more than another. Install it in a test file with
/// `#[global_allocator] static ALLOCATOR: common::CountingAllocator = common::CountingAllocator;`.
pub struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is a
// const-initialised thread local without destructor, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The allocations made on this thread so far (by [`CountingAllocator`], when installed).
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// How many allocations one request to `router` makes, response body collected, on a
/// current-thread runtime (after one request to warm up lazy statics and caches).
///
/// The router is first given its state, as `axum::serve` does: that builds each handler's
/// route, with its layers, once. A `Router<()>` called as is builds it on every request.
pub fn allocations_per_request(router: &Router, path: &str) -> u64 {
    let router: Router = router.clone().with_state(());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let request = || http::Request::get(path).body(Body::empty()).unwrap();
    let run = |request: http::Request<Body>| {
        rt.block_on(async {
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap();
        })
    };
    run(request());
    let request = request();
    let before = allocations();
    run(request);
    allocations() - before
}
