//! The shop chain: every hop of a request across the workspace's crates, on 127.0.0.1.
//!
//! ```text
//! client ──HTTP──▶ gateway  GET /dashboard          (axum + otel_http::AxumServerLayer)
//!                    │ reqwest: RetryMiddleware → CircuitBreakerMiddleware → TracingMiddleware
//!                    ▼
//!                  backend  GET /posts/{author}     (axum + otel_http::HttpServerLayer)
//!                    │ tonic Channel under otel_grpc::GrpcClientLayer
//!                    ▼
//!                  shop.Blog/CommentCounts          (tonic server + otel_grpc::GrpcServerLayer)
//!                    │ 1 query for the posts, then 1 query per post: an N+1 loop
//!                    ▼
//!                  SQLite in memory                 (otel_sql::TracedPool)
//! ```
//!
//! Every layer is given the same propagator (by name, as `OTEL_PROPAGATORS` would) and the
//! test's meter provider, so tests stay off the process-global ones.
//!
//! ```no_run
//! # async fn run() {
//! use otel_core::testing::TestTelemetry;
//!
//! let telemetry = TestTelemetry::new();
//! let shop = integration_tests::chain::Shop::start("b3", telemetry.meter_provider()).await;
//! shop.fail_backend_calls(1); // the first attempt gets a 503 and is retried
//! let body = reqwest::get(shop.dashboard_url()).await.unwrap().text().await.unwrap();
//! assert!(body.ends_with("comments=1,2,3,4,5,6"));
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use otel_core::extensions::UrlTemplate;
use otel_core::propagation::CompositePropagator;
use otel_grpc::{GrpcClient, GrpcClientLayer, GrpcServerLayer};
use otel_http::HttpServerLayer;
use otel_http::reqwest::TracingMiddleware;
use otel_resilience::{
    Backoff, CircuitBreakerMiddleware, CircuitBreakerRegistry, ManualClock, RetryLayer,
    RetryMiddleware, RetryPolicy,
};
use otel_sql::TracedPool;
use reqwest_middleware::ClientWithMiddleware;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, Sqlite};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};

/// The author whose dashboard the gateway serves.
pub const AUTHOR_ID: i64 = 7;
/// Posts of [`AUTHOR_ID`]: the backend's gRPC handler runs one comment query per post.
pub const POSTS: i64 = 6;
/// The gRPC method the backend calls.
pub const COMMENT_COUNTS_METHOD: &str = "shop.Blog/CommentCounts";
/// The SQL run once per post (the "N" of the N+1).
pub const COMMENT_COUNT_SQL: &str = "SELECT COUNT(*) FROM comments WHERE post_id = ?";
/// The SQL run once before the loop (the "1").
pub const POSTS_SQL: &str = "SELECT id FROM posts WHERE author_id = ? ORDER BY id";
/// The propagation headers the backend and the gRPC handler report, in this order.
pub const WIRE_HEADERS: [&str; 3] = ["traceparent", "b3", "x-request-id"];

/// The running shop: three servers on 127.0.0.1 and the database behind them.
pub struct Shop {
    /// The gateway (`GET /dashboard`).
    pub gateway: SocketAddr,
    /// The backend (`GET /posts/{author}`).
    pub backend: SocketAddr,
    /// The tonic server of `shop.Blog`.
    pub blog: SocketAddr,
    /// The traced pool the gRPC handler queries.
    pub pool: TracedPool<Sqlite>,
    backend_failures: Arc<AtomicUsize>,
    backend_calls: Arc<AtomicUsize>,
    breaker_clock: Arc<ManualClock>,
}

impl Shop {
    /// Seeds the database and starts the three servers, on the current thread's runtime,
    /// with every layer using the propagators named in `propagators` (`"tracecontext"`,
    /// `"b3"`, ...) and `meter_provider`.
    pub async fn start(propagators: &str, meter_provider: &SdkMeterProvider) -> Shop {
        let propagator = || CompositePropagator::from_names(propagators).expect("known names");
        let pool = seeded_pool(meter_provider).await;

        let blog = serve_grpc(
            GrpcServerLayer::new()
                .propagator(propagator())
                .meter_provider(meter_provider.clone())
                .legacy_attributes(false),
            BlogService { pool: pool.clone() },
        )
        .await;

        let channel = Endpoint::from_shared(format!("http://{blog}"))
            .expect("valid endpoint")
            .connect_lazy();
        let grpc_client = tower::ServiceBuilder::new()
            .layer(
                GrpcClientLayer::new()
                    .propagator(propagator())
                    .meter_provider(meter_provider.clone())
                    .legacy_attributes(false)
                    .server_address(blog.ip().to_string(), blog.port()),
            )
            .service(channel);
        let backend_failures = Arc::new(AtomicUsize::new(0));
        let backend_calls = Arc::new(AtomicUsize::new(0));
        let backend = crate::serve::http(
            Router::new()
                .route("/posts/{author}", get(posts))
                .layer(
                    HttpServerLayer::builder()
                        .propagator(propagator())
                        .meter_provider(meter_provider)
                        .build(),
                )
                .with_state(Backend {
                    blog: tonic::client::Grpc::new(grpc_client),
                    failures: backend_failures.clone(),
                    calls: backend_calls.clone(),
                }),
        )
        .await;

        let breaker_clock = Arc::new(ManualClock::new());
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(RetryMiddleware::new(
                RetryLayer::builder()
                    // No delay between attempts: the test is about the tree, not the wait.
                    .policy(RetryPolicy::default().backoff(Backoff::none()))
                    .seed(7)
                    .meter_provider(meter_provider)
                    .build(),
            ))
            .with(CircuitBreakerMiddleware::new(
                CircuitBreakerRegistry::builder()
                    .clock(breaker_clock.clone())
                    .seed(7)
                    .meter_provider(meter_provider)
                    .build(),
            ))
            .with(
                TracingMiddleware::builder()
                    .propagator(propagator())
                    .meter_provider(meter_provider)
                    .build(),
            )
            .build();
        let gateway = crate::serve::http(
            Router::new()
                .route("/dashboard", get(dashboard))
                .layer(
                    HttpServerLayer::builder()
                        .propagator(propagator())
                        .meter_provider(meter_provider)
                        .build_axum(),
                )
                .with_state(Gateway { client, backend }),
        )
        .await;

        Shop {
            gateway,
            backend,
            blog,
            pool,
            backend_failures,
            backend_calls,
            breaker_clock,
        }
    }

    /// The clock of the gateway's circuit breakers: it moves only when advanced, so an open
    /// breaker stays open however slow the test machine is.
    pub fn breaker_clock(&self) -> &ManualClock {
        &self.breaker_clock
    }

    /// The gateway's dashboard URL.
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/dashboard", self.gateway)
    }

    /// Makes the next `n` backend calls answer `503 Service Unavailable` without calling
    /// the gRPC service.
    pub fn fail_backend_calls(&self, n: usize) {
        self.backend_failures.store(n, Ordering::SeqCst);
    }

    /// Requests the backend has received so far.
    pub fn backend_calls(&self) -> usize {
        self.backend_calls.load(Ordering::SeqCst)
    }
}

/// The request message of `shop.Blog/CommentCounts`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommentCountsRequest {
    /// Whose posts.
    #[prost(int64, tag = "1")]
    pub author_id: i64,
}

/// The response message of `shop.Blog/CommentCounts`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommentCounts {
    /// Comments per post, in post id order.
    #[prost(int64, repeated, tag = "1")]
    pub counts: Vec<i64>,
    /// The propagation metadata the handler received (`name=value` lines, [`WIRE_HEADERS`]).
    #[prost(string, tag = "2")]
    pub wire: String,
}

/// `name=value` lines of [`WIRE_HEADERS`] in `headers` (`-` for a missing one).
pub fn wire_lines(headers: &HeaderMap) -> String {
    WIRE_HEADERS
        .iter()
        .map(|name| {
            let value = headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- the gateway ----------------------------------------------------------------------------

#[derive(Clone)]
struct Gateway {
    client: ClientWithMiddleware,
    backend: SocketAddr,
}

/// Calls the backend through retry, breaker and tracing; answers with its status and body.
async fn dashboard(State(gateway): State<Gateway>) -> (StatusCode, String) {
    let url = format!("http://{}/posts/{AUTHOR_ID}", gateway.backend);
    let sent = gateway
        .client
        .get(url)
        .with_extension(UrlTemplate::new("/posts/{author}"))
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

// ---- the backend ----------------------------------------------------------------------------

#[derive(Clone)]
struct Backend {
    blog: tonic::client::Grpc<GrpcClient<Channel>>,
    failures: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

/// Answers the headers it received, the gRPC handler's, and the comment counts:
///
/// ```text
/// traceparent=…  b3=…  x-request-id=…     (one a line: what reached the backend)
/// traceparent=…  b3=…  x-request-id=…     (what reached the gRPC handler)
/// comments=1,2,3,4,5,6
/// ```
async fn posts(
    State(mut backend): State<Backend>,
    Path(author): Path<i64>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    backend.calls.fetch_add(1, Ordering::SeqCst);
    let failing = backend
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return (StatusCode::SERVICE_UNAVAILABLE, "backend overloaded".into());
    }
    match comment_counts(&mut backend.blog, author).await {
        Ok(reply) => {
            let counts: Vec<String> = reply.counts.iter().map(i64::to_string).collect();
            let body = format!(
                "{}\n{}\ncomments={}",
                wire_lines(&headers),
                reply.wire,
                counts.join(",")
            );
            (StatusCode::OK, body)
        }
        Err(status) => (StatusCode::BAD_GATEWAY, format!("{:?}", status.code())),
    }
}

async fn comment_counts(
    client: &mut tonic::client::Grpc<GrpcClient<Channel>>,
    author_id: i64,
) -> Result<CommentCounts, tonic::Status> {
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static("/shop.Blog/CommentCounts");
    let codec = tonic_prost::ProstCodec::<CommentCountsRequest, CommentCounts>::default();
    let request = tonic::Request::new(CommentCountsRequest { author_id });
    Ok(client.unary(request, path, codec).await?.into_inner())
}

// ---- the gRPC service -----------------------------------------------------------------------

/// `shop.Blog`, written by hand (no protoc): one unary method, `CommentCounts`.
#[derive(Clone)]
struct BlogService {
    pool: TracedPool<Sqlite>,
}

impl NamedService for BlogService {
    const NAME: &'static str = "shop.Blog";
}

type GrpcFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl tower::Service<http::Request<Body>> for BlogService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = GrpcFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() != "/shop.Blog/CommentCounts" {
            return Box::pin(async {
                Ok(tonic::Status::unimplemented("no such method").into_http())
            });
        }
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                CommentCounts,
                CommentCountsRequest,
            >::default());
            let handler = tower::service_fn(move |req: tonic::Request<CommentCountsRequest>| {
                let pool = pool.clone();
                async move {
                    let wire = wire_lines(&req.metadata().clone().into_headers());
                    let counts = n_plus_one_counts(&pool, req.into_inner().author_id)
                        .await
                        .map_err(|e| tonic::Status::internal(e.to_string()))?;
                    Ok::<_, tonic::Status>(tonic::Response::new(CommentCounts { counts, wire }))
                }
            });
            Ok(grpc.unary(handler, req).await)
        })
    }
}

/// The incident: the posts, then one COUNT query per post instead of one grouped query.
async fn n_plus_one_counts(pool: &TracedPool<Sqlite>, author_id: i64) -> sqlx::Result<Vec<i64>> {
    let posts: Vec<i64> = sqlx::query_scalar(POSTS_SQL)
        .bind(author_id)
        .fetch_all(pool)
        .await?;
    let mut counts = Vec::with_capacity(posts.len());
    for post in posts {
        let count: i64 = sqlx::query_scalar(COMMENT_COUNT_SQL)
            .bind(post)
            .fetch_one(pool)
            .await?;
        counts.push(count);
    }
    Ok(counts)
}

// ---- servers and database -------------------------------------------------------------------

async fn serve_grpc(layer: GrpcServerLayer, service: BlogService) -> SocketAddr {
    let listener = crate::serve::loopback().await;
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .expect("gRPC server");
    });
    addr
}

/// SQLite in memory on one connection that never closes (each connection to `:memory:` is
/// its own database). Post `k` (1-based) of [`AUTHOR_ID`] has `k` comments; author 8 has
/// one post that must not be counted. Seeded through the bare pool: no spans.
async fn seeded_pool(meter_provider: &SdkMeterProvider) -> TracedPool<Sqlite> {
    let options: SqliteConnectOptions = "sqlite::memory:".parse().expect("sqlite URL");
    let options = options.disable_statement_logging();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .expect("SQLite in memory");
    sqlx::raw_sql(
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, title TEXT);
         CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL, body TEXT);",
    )
    .execute(&pool)
    .await
    .expect("schema");
    for k in 1..=POSTS {
        let post: i64 =
            sqlx::query_scalar("INSERT INTO posts (author_id, title) VALUES (?, ?) RETURNING id")
                .bind(AUTHOR_ID)
                .bind(format!("post {k}"))
                .fetch_one(&pool)
                .await
                .expect("post");
        for c in 0..k {
            sqlx::query("INSERT INTO comments (post_id, body) VALUES (?, ?)")
                .bind(post)
                .bind(format!("comment {c}"))
                .execute(&pool)
                .await
                .expect("comment");
        }
    }
    sqlx::query("INSERT INTO posts (author_id, title) VALUES (8, 'someone else')")
        .execute(&pool)
        .await
        .expect("other post");
    TracedPool::builder(pool)
        .meter_provider(meter_provider.clone())
        .build()
}
