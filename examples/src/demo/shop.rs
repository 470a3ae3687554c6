//! The small shop the demo runs in one process, every server on 127.0.0.1 (port 0): the
//! axum `gateway` (the only service the "user" calls), the flaky `payments` HTTP service,
//! the `inventory` gRPC service, a slow external `rates` API, a SQLite database, and the
//! address of a `cache` that refuses connections.
//!
//! ```no_run
//! # async fn run() -> Result<(), examples::demo::DemoError> {
//! let shop = examples::demo::shop::Shop::start().await?;
//! let page = shop.user.get(shop.url("/api/dashboard/batched")).send().await?;
//! assert!(page.status().is_success());
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use otel_http::AxumServerLayer;
use otel_http::reqwest::TracingMiddleware;
use otel_resilience::backoff::Backoff;
use otel_resilience::{
    CircuitBreakerConfig, CircuitBreakerLayer, CircuitBreakerRegistry, RetryBudget, RetryLayer,
    RetryMiddleware, RetryPolicy,
};
use otel_sql::TracedPool;
use reqwest_middleware::ClientWithMiddleware;
use sqlx::Sqlite;
use tokio::sync::Notify;

use super::inventory::{self, Inventory, InventoryChannel};
use super::payments::Payments;
use super::{DemoError, database, n_plus_one, rates, request_id, retry_storm};
use super::{dead_inventory, shared_dependency, slow_api};

/// Attempts of the naive payments client: 1 + 5 retries.
pub const NAIVE_ATTEMPTS: u32 = 6;
/// Attempts of the resilient payments client.
pub const RESILIENT_ATTEMPTS: u32 = 3;
/// The cache's host name (resolved to its refused address by the gateway's cache client).
pub const CACHE_HOST: &str = "cache.internal";
/// Consecutive failures that open the inventory breaker.
pub const BREAKER_FAILURES: u32 = 3;

/// The running shop.
pub struct Shop {
    /// The gateway's base URL (`http://127.0.0.1:port`).
    pub gateway: String,
    /// The payments service's switches and counters.
    pub payments: Payments,
    /// The inventory service's switch.
    pub inventory: Inventory,
    /// The "user": a plain reqwest client (no tracing: the gateway starts each trace).
    pub user: reqwest::Client,
    /// Notified each time a background job of the gateway finishes.
    pub jobs_done: Arc<Notify>,
    /// Where the cache would be (`cache.internal:port`); nothing listens there.
    pub cache_authority: String,
    /// Each service's name and port, for the per-service trace trees.
    pub services: Vec<(&'static str, u16)>,
    /// Holds the cache's port so that no other server gets it.
    _cache_socket: tokio::net::TcpSocket,
}

/// The gateway's state: its clients of the other services.
#[derive(Clone)]
pub struct Gateway {
    /// `http://127.0.0.1:port/charge` of payments.
    pub payments_url: String,
    /// `http://127.0.0.1:port/rates` of the external API.
    pub rates_url: String,
    /// `http://cache.internal:port` (connection refused).
    pub cache_url: String,
    /// Payments through a naive retry: 6 attempts, no delay, no budget.
    pub naive_payments: ClientWithMiddleware,
    /// Payments through `RetryMiddleware`: 3 attempts, backoff with jitter, retry budget.
    pub resilient_payments: ClientWithMiddleware,
    /// A traced client, no retry (payments, the rates API).
    pub http: ClientWithMiddleware,
    /// A traced client that resolves `cache.internal` to the refused address.
    pub cache: ClientWithMiddleware,
    /// Inventory with no breaker.
    pub inventory: InventoryChannel,
    /// Inventory behind a circuit breaker.
    pub inventory_with_breaker: InventoryChannel,
    /// The database.
    pub db: TracedPool<Sqlite>,
    /// Notified when a background job finishes.
    pub jobs_done: Arc<Notify>,
}

impl Shop {
    /// Opens the database and starts every service.
    pub async fn start() -> Result<Shop, DemoError> {
        let db = database::open().await?;
        let payments = Payments::default();
        let payments_addr = serve(payments.router()).await?;
        let rates_addr = serve(rates::router()).await?;
        let inventory = Inventory::default();
        let inventory_addr = inventory.serve().await?;
        let (cache_socket, cache_addr) = refused_address()?;
        let jobs_done = Arc::new(Notify::new());

        let breaker = CircuitBreakerLayer::with_registry(
            CircuitBreakerRegistry::builder()
                .config(CircuitBreakerConfig::default().consecutive_failures(BREAKER_FAILURES))
                .build(),
        );
        let gateway = Gateway {
            payments_url: format!("http://{payments_addr}/charge"),
            rates_url: format!("http://{rates_addr}/rates"),
            cache_url: format!("http://{CACHE_HOST}:{}", cache_addr.port()),
            naive_payments: naive_client(),
            resilient_payments: resilient_client(),
            http: traced(reqwest::Client::new()),
            cache: traced(
                reqwest::Client::builder()
                    .resolve(CACHE_HOST, cache_addr)
                    .connect_timeout(Duration::from_secs(2))
                    .build()?,
            ),
            inventory: inventory::client(inventory_addr, None)?,
            inventory_with_breaker: inventory::client(inventory_addr, Some(breaker))?,
            db,
            jobs_done: jobs_done.clone(),
        };
        let router = Router::new()
            .merge(retry_storm::routes())
            .merge(n_plus_one::routes())
            .merge(slow_api::routes())
            .merge(dead_inventory::routes())
            .merge(shared_dependency::routes())
            .merge(request_id::routes())
            .with_state(gateway)
            .layer(AxumServerLayer::new());
        let gateway_addr = serve(router).await?;

        Ok(Shop {
            gateway: format!("http://{gateway_addr}"),
            payments,
            inventory,
            user: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            jobs_done,
            cache_authority: format!("{CACHE_HOST}:{}", cache_addr.port()),
            services: vec![
                ("gateway", gateway_addr.port()),
                ("payments", payments_addr.port()),
                ("inventory", inventory_addr.port()),
                ("rates-api", rates_addr.port()),
            ],
            _cache_socket: cache_socket,
        })
    }

    /// The gateway URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }
}

/// Serves `router` on 127.0.0.1 (port 0) in the background; returns its address.
pub async fn serve(router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!("server on {addr} stopped: {e}");
        }
    });
    Ok(addr)
}

// ---- helpers ----------------------------------------------------------------------------

/// An address where nothing listens: a socket bound but never listening keeps the port
/// (so no other server of the demo gets it) and makes connections to it refused.
fn refused_address() -> std::io::Result<(tokio::net::TcpSocket, SocketAddr)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = socket.local_addr()?;
    Ok((socket, addr))
}

/// `client` with otel-http's tracing middleware (a CLIENT span per request).
fn traced(client: reqwest::Client) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(client)
        .with(TracingMiddleware::new())
        .build()
}

/// What many services start with: retry everything (POST included) 5 times, at once, with
/// no budget. Built from `RetryLayer` so both clients show the same telemetry.
fn naive_client() -> ClientWithMiddleware {
    let policy = RetryPolicy::default()
        .max_attempts(NAIVE_ATTEMPTS)
        .backoff(Backoff::none())
        .retry_methods([http::Method::POST]);
    let retry = RetryLayer::builder().policy(policy).no_budget().build();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(RetryMiddleware::new(retry))
        .with(TracingMiddleware::new())
        .build()
}

/// The fix: 3 attempts with exponential backoff and full jitter, under a retry budget of
/// 20% of the requests (no floor, so the demo's five requests show it).
fn resilient_client() -> ClientWithMiddleware {
    let policy = RetryPolicy::default()
        .max_attempts(RESILIENT_ATTEMPTS)
        .backoff(Backoff::exponential(Duration::from_millis(50)))
        .retry_methods([http::Method::POST]);
    let retry = RetryLayer::builder()
        .policy(policy)
        .budget(RetryBudget::ratio(0.2, Duration::from_secs(10), 0))
        .build();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(RetryMiddleware::new(retry))
        .with(TracingMiddleware::new())
        .build()
}
