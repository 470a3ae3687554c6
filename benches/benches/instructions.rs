//! Instruction-count versions of the hottest paths, for `benches/callgrind.sh`: wall-clock
//! numbers on a loaded 2-core machine are noisy, instruction counts are not, so a regression
//! shows up here first.
//!
//! `instructions <path> <iterations>` sets the path up, runs it once to warm caches and lazy
//! statics, then calls it `<iterations>` times inside `measure`, the only function callgrind
//! collects in (`--collect-atstart=no --toggle-collect=*instructions*measure*`). Paths:
//! `w3c_extract`, `request_id`, `fingerprint`, `fingerprint_cached`, the axum router
//! `GET /users/{id}`: `server_no_layer` (no layer at all), `server_bare` (a no-op
//! `Router::layer`, the floor of any layer), `server_disabled` (ours, `AxumServerLayer`, with
//! `sampling::set_enabled(false)`),
//! `server_filtered` (ours, the path skipped by the layer's filter), `server_unsampled`,
//! `server_sampled`, the same with the generic `HttpServerLayer`: `server_generic_disabled`,
//! `server_generic_unsampled`, `server_generic_sampled`, `server_unsampled_metered` and
//! `server_sampled_metered` (ours with an SDK meter provider instead of the no-op global one,
//! as after `Telemetry::install` with OTLP), and `server_reference` (one bridged span with the
//! same fields, no layer logic); the
//! retry + breaker healthy path as a tower call without network: `tower_bare`, `retry_breaker`
//! (both boxed, so the difference is the two layers), `tower_retry` (the floor of any layer
//! that can resend: `tower::retry::Retry` with a minimal policy that clones the request, no
//! backoff, no budget, no telemetry), and the same inside a sampled request span with a
//! bridged subscriber, as in a service: `tower_bare_in_span`, `retry_breaker_in_span`,
//! `tower_retry_in_span`; the reqwest client over loopback to an
//! in-process server: `client_chain` (empty middleware chain), `client_ours`, `client_peer`
//! (`reqwest-tracing` on its OpenTelemetry 0.32 stack); one SQLite query through sqlx:
//! `sql_bare`, `sql_reference` (one bridged child span), `sql_ours` (`TracedPool`, detector
//! off), `sql_ours_detector`. The SQLite driver runs queries on a worker thread that the
//! toggled function does not cover: the script counts those paths over the whole program at
//! two iteration counts and divides the difference.
//! Under `cargo bench` (no path given) it only says how to run it.

use std::hint::black_box;

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Full};
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use otel_core::propagation::{HeaderExtractor, TraceContextPropagator};
use tower::{Service, ServiceExt};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let (Some(path), Some(iterations)) = (args.next(), args.next().and_then(|n| n.parse().ok()))
    else {
        eprintln!("instruction counts: run `benches/callgrind.sh` (valgrind --tool=callgrind)");
        return;
    };
    let iterations: u64 = iterations;
    match path.as_str() {
        "w3c_extract" => {
            let mut headers = HeaderMap::new();
            headers.insert(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse()
                    .unwrap(),
            );
            let propagator = TraceContextPropagator::new();
            let base = Context::new();
            let mut f = || {
                black_box(
                    propagator.extract_with_context(&base, &HeaderExtractor(black_box(&headers))),
                );
            };
            f();
            measure(iterations, &mut f);
        }
        "request_id" => {
            let mut f = || {
                black_box(otel_core::RequestId::generate());
            };
            f();
            measure(iterations, &mut f);
        }
        "fingerprint" => {
            let sql = "SELECT u.id, u.name, u.email FROM users u WHERE u.org_id = 42 AND u.active = 1 ORDER BY name LIMIT 1";
            let mut f = || {
                black_box(otel_sql::fingerprint::fingerprint(black_box(sql)));
            };
            f();
            measure(iterations, &mut f);
        }
        "fingerprint_cached" => {
            let sql = "SELECT u.id, u.name, u.email FROM users u WHERE u.org_id = 42 AND u.active = 1 ORDER BY name LIMIT 1";
            let mut f = || {
                black_box(otel_sql::fingerprint::cached(
                    black_box(sql),
                    otel_sql::fingerprint::Dialect::Generic,
                ));
            };
            f();
            measure(iterations, &mut f);
        }
        "server_no_layer"
        | "server_bare"
        | "server_disabled"
        | "server_filtered"
        | "server_unsampled"
        | "server_sampled"
        | "server_generic_disabled"
        | "server_generic_unsampled"
        | "server_generic_sampled"
        | "server_unsampled_metered"
        | "server_sampled_metered"
        | "server_reference" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let provider = otel_benches::provider();
            let _subscriber =
                tracing::subscriber::set_default(otel_benches::bridged_subscriber(&provider));
            // `_metered`: an SDK meter provider (as `Telemetry::install` sets with OTLP), its
            // reader never collecting; the other variants record on the no-op global provider.
            let path = path.as_str();
            let (path, meters) = match path.strip_suffix("_metered") {
                Some(path) => (path, Some(otel_benches::meter_provider())),
                None => (path, None),
            };
            if path.ends_with("_sampled") {
                otel_core::sampling::set_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn);
            } else {
                otel_core::sampling::set_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff);
            }
            otel_core::sampling::set_enabled(!path.ends_with("_disabled"));
            let ours = || {
                let builder =
                    otel_http::HttpServerLayer::builder().propagator(TraceContextPropagator::new());
                match &meters {
                    Some(meters) => builder.meter_provider(meters),
                    None => builder,
                }
            };
            let app = match path {
                "server_no_layer" => otel_benches::router(),
                "server_bare" => {
                    otel_benches::router().layer(tower::layer::layer_fn(|inner| inner))
                }
                "server_reference" => {
                    otel_benches::router().layer(tower::layer::layer_fn(|inner| {
                        otel_benches::reference::SpanOnly { inner }
                    }))
                }
                // As a health check would be: the layer skips the path.
                "server_filtered" => otel_benches::router().layer(
                    ours()
                        .filter(|path| !path.starts_with("/users/"))
                        .build_axum(),
                ),
                generic if generic.starts_with("server_generic_") => {
                    otel_benches::router().layer(ours().build())
                }
                _ => otel_benches::router().layer(ours().build_axum()),
            };
            // Given its state once, as `axum::serve` does at startup (without it, every call
            // rebuilds each route with its layers).
            let app: axum::Router = app.with_state(());
            let mut f = || {
                rt.block_on(async {
                    let request = http::Request::get("/users/42")
                        .header("x-request-id", "bench-1")
                        .body(Body::empty())
                        .unwrap();
                    let response = app.clone().oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap();
                })
            };
            f();
            measure(iterations, &mut f);
        }
        "client_chain" | "client_ours" | "client_peer" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let url = format!("http://{}/users/42", listener.local_addr().unwrap());
            rt.spawn(async move { axum::serve(listener, otel_benches::router()).await });
            let builder = reqwest_middleware::ClientBuilder::new(reqwest::Client::new());
            let provider = otel_benches::provider();
            let provider_0_32 = opentelemetry_sdk_0_32::trace::SdkTracerProvider::builder()
                .with_sampler(opentelemetry_sdk_0_32::trace::Sampler::AlwaysOn)
                .build();
            let (client, _subscriber) = match path.as_str() {
                "client_chain" => (builder.build(), None),
                "client_ours" => {
                    otel_core::sampling::set_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn);
                    let middleware = otel_http::reqwest::TracingMiddleware::builder()
                        .propagator(TraceContextPropagator::new())
                        .curl_event(false)
                        .build();
                    let subscriber = tracing::subscriber::set_default(
                        otel_benches::bridged_subscriber(&provider),
                    );
                    (builder.with(middleware).build(), Some(subscriber))
                }
                _ => {
                    use opentelemetry_0_32::trace::TracerProvider as _;
                    use tracing_subscriber::layer::SubscriberExt as _;
                    opentelemetry_0_32::global::set_text_map_propagator(
                        opentelemetry_sdk_0_32::propagation::TraceContextPropagator::new(),
                    );
                    let subscriber = tracing::subscriber::set_default(
                        tracing_subscriber::registry()
                            .with(otel_benches::service_filter())
                            .with(
                                tracing_opentelemetry_0_33::layer()
                                    .with_tracer(provider_0_32.tracer("bench")),
                            ),
                    );
                    (
                        builder
                            .with(reqwest_tracing::TracingMiddleware::default())
                            .build(),
                        Some(subscriber),
                    )
                }
            };
            let mut f = || {
                rt.block_on(async {
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.bytes().await.unwrap();
                })
            };
            f();
            measure(iterations, &mut f);
        }
        "sql_bare" | "sql_reference" | "sql_ours" | "sql_ours_detector" => {
            use otel_core::repeated_shape::{self, DetectorConfig, Mode, Scope};
            use sqlx::Executor as _;
            use tracing::Instrument as _;
            const QUERY: &str = "SELECT id, name FROM users WHERE id = ?";
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let pool = rt.block_on(async {
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect("sqlite::memory:")
                    .await
                    .unwrap();
                pool.execute(
                    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL); \
                     INSERT INTO users VALUES (1, 'alice')",
                )
                .await
                .unwrap();
                pool
            });
            let provider = otel_benches::provider();
            let _subscriber =
                tracing::subscriber::set_default(otel_benches::bridged_subscriber(&provider));
            otel_core::sampling::set_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn);
            let request = tracing::info_span!("GET /users/{id}");
            let _entered = request.enter();
            let detector = path == "sql_ours_detector";
            let mode = if detector { Mode::Warn } else { Mode::Off };
            repeated_shape::set_config(DetectorConfig::builder().mode(mode).build().unwrap());
            let traced = otel_sql::TracedPool::builder(pool.clone())
                .detect_repeats(detector)
                .build();
            let cx = otel_core::context::current()
                .with_value(Scope::new(request.clone()).named("GET /users/{id}"));
            let mut f = || {
                let row: (i64, String) = rt.block_on(async {
                    let query = sqlx::query_as(QUERY).bind(1_i64);
                    match path.as_str() {
                        "sql_bare" => query.fetch_one(&pool).await,
                        "sql_reference" => {
                            query
                                .fetch_one(&pool)
                                .instrument(tracing::info_span!(
                                    target: "otel_sql",
                                    "SELECT users",
                                    otel.kind = "client",
                                    "db.system.name" = "sqlite",
                                    "db.operation.name" = "SELECT",
                                    "db.collection.name" = "users",
                                    "db.query.text" = QUERY,
                                    "db.query.summary" = "SELECT users",
                                ))
                                .await
                        }
                        _ => {
                            opentelemetry::context::FutureExt::with_context(
                                query.fetch_one(&traced),
                                cx.clone(),
                            )
                            .await
                        }
                    }
                    .unwrap()
                });
                assert_eq!(row.0, 1);
            };
            f();
            measure(iterations, &mut f);
        }
        "tower_bare"
        | "retry_breaker"
        | "tower_retry"
        | "tower_bare_in_span"
        | "retry_breaker_in_span"
        | "tower_retry_in_span" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _rt = rt.enter();
            // `*_in_span`: as in a service, a bridged subscriber and a sampled request span
            // current around each call (entered once, outside the measured loop).
            let in_span = path.ends_with("_in_span");
            let provider = otel_benches::provider();
            let _subscriber = in_span.then(|| {
                otel_core::sampling::set_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn);
                tracing::subscriber::set_default(otel_benches::bridged_subscriber(&provider))
            });
            let _request = in_span.then(|| tracing::info_span!("request").entered());
            let inner = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
                Ok::<_, std::io::Error>(http::Response::new(Empty::<Bytes>::new()))
            });
            let mut service: tower::util::BoxService<_, _, tower::BoxError> =
                if path.starts_with("tower_bare") {
                    tower::util::BoxService::new(inner.map_err(tower::BoxError::from))
                } else if path.starts_with("tower_retry") {
                    tower::util::BoxService::new(tower::retry::Retry::new(
                        otel_benches::CloneRetry::default(),
                        inner.map_err(tower::BoxError::from),
                    ))
                } else {
                    tower::util::BoxService::new(
                        tower::ServiceBuilder::new()
                            .layer(otel_resilience::RetryLayer::new())
                            .layer(otel_resilience::CircuitBreakerLayer::new())
                            .service(inner),
                    )
                };
            let mut f = || {
                let request = http::Request::get("http://api.internal/users/42")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let ready = poll_now(service.ready()).unwrap();
                assert_eq!(poll_now(ready.call(request)).unwrap().status(), 200);
            };
            f();
            measure(iterations, &mut f);
        }
        other => {
            eprintln!("unknown path {other}");
            std::process::exit(2);
        }
    }
}

/// Polls `future` once with a no-op waker: the services measured here answer at once.
fn poll_now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the service was expected to answer at once"),
    }
}

/// The only function callgrind collects in.
#[inline(never)]
fn measure(iterations: u64, f: &mut dyn FnMut()) {
    for _ in 0..iterations {
        f();
    }
}
