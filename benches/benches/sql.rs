//! SQL: one SQLite in-memory query through sqlx, bare and instrumented, in one criterion group;
//! and the SQL fingerprint side by side with `sqlparser`'s tokenizer.
//!
//! Run (from `benches/`): `cargo bench --bench sql -- --warm-up-time 1 --measurement-time 3`.
//!
//! Goals: our query span + N+1 detector ≤ 1.25x the overhead of one bare bridged child span
//! (`reference/one_bridged_child_span`); fingerprint of a 100-byte query ≤ 400 ns, cached
//! ≤ 30 ns. Our queries run under a sampled request span (the N+1 scope), as in a service.
//! `sqlx-otel` 0.5 supports OpenTelemetry 0.32 only: it runs on its own 0.32 SDK (global
//! provider, as it requires), spans straight from the OpenTelemetry API with no bridge.

use std::hint::black_box;

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use opentelemetry::context::FutureExt as _;
use otel_benches::{bridged_subscriber, provider};
use otel_core::repeated_shape::{self, DetectorConfig, Mode, Scope};
use otel_sql::fingerprint::{self, Dialect};
use sqlx::{Executor, Sqlite};
use tracing::Instrument;

const QUERY: &str = "SELECT id, name FROM users WHERE id = ?";

/// 100 bytes, with literals to replace.
const FINGERPRINTED: &str = "SELECT u.id, u.name, u.email FROM users u WHERE u.org_id = 42 AND u.active = 1 ORDER BY name LIMIT 1";

async fn query<'e, E: Executor<'e, Database = Sqlite>>(executor: E) -> (i64, String) {
    sqlx::query_as(QUERY)
        .bind(1_i64)
        .fetch_one(executor)
        .await
        .unwrap()
}

fn run<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    rt: &tokio::runtime::Runtime,
    f: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (i64, String)>,
{
    assert_eq!(rt.block_on(f()), (1, "alice".to_owned()), "{name}");
    group.bench_function(name, |b| b.iter(|| rt.block_on(f())));
}

fn sql(c: &mut Criterion) {
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
        pool.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL); INSERT INTO users VALUES (1, 'alice')")
            .await
            .unwrap();
        pool
    });
    let mut group = c.benchmark_group("sql");
    run(&mut group, "bare/sqlx", &rt, || query(&pool));

    {
        use opentelemetry_0_32::trace::TracerProvider as _;
        let provider = opentelemetry_sdk_0_32::trace::SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk_0_32::trace::Sampler::AlwaysOn)
            .build();
        let _ = provider.tracer("warm-up");
        opentelemetry_0_32::global::set_tracer_provider(provider);
        let peer = sqlx_otel::PoolBuilder::from(pool.clone()).build();
        run(&mut group, "peer/sqlx-otel", &rt, || query(&peer));
    }

    let provider = provider();
    let _subscriber = tracing::subscriber::set_default(bridged_subscriber(&provider));
    otel_core::sampling::set_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
        opentelemetry_sdk::trace::Sampler::AlwaysOn,
    )));
    // The request span the queries run under, sampled, entered for the whole group.
    let request = tracing::info_span!("GET /users/{id}");
    let _entered = request.enter();

    run(&mut group, "reference/one_bridged_child_span", &rt, || {
        query(&pool).instrument(tracing::info_span!(
            target: "otel_sql",
            "SELECT users",
            otel.kind = "client",
            "db.system.name" = "sqlite",
            "db.operation.name" = "SELECT",
            "db.collection.name" = "users",
            "db.query.text" = QUERY,
            "db.query.summary" = "SELECT users",
        ))
    });

    repeated_shape::set_config(DetectorConfig::builder().mode(Mode::Off).build().unwrap());
    let untracked = otel_sql::TracedPool::builder(pool.clone())
        .detect_repeats(false)
        .build();
    run(&mut group, "ours/span", &rt, || query(&untracked));

    // The detector on, in the request's N+1 scope (as the server layer opens it). One shape
    // repeated: its counters stay bounded (one entry), the finding is reported once.
    repeated_shape::set_config(DetectorConfig::builder().mode(Mode::Warn).build().unwrap());
    let scope = Scope::new(request.clone()).named("GET /users/{id}");
    let cx = otel_core::context::current().with_value(scope);
    let tracked = otel_sql::TracedPool::builder(pool.clone())
        .detect_repeats(true)
        .build();
    run(&mut group, "ours/span+n_plus_one_detector", &rt, || {
        query(&tracked).with_context(cx.clone())
    });
    repeated_shape::set_config(DetectorConfig::builder().mode(Mode::Off).build().unwrap());
    group.finish();

    assert_eq!(FINGERPRINTED.len(), 100);
    let mut group = c.benchmark_group("fingerprint-100-bytes");
    group.bench_function("ours/fingerprint", |b| {
        b.iter(|| fingerprint::fingerprint(black_box(FINGERPRINTED)))
    });
    let _ = fingerprint::cached(FINGERPRINTED, Dialect::Generic);
    group.bench_function("ours/cached", |b| {
        b.iter(|| fingerprint::cached(black_box(FINGERPRINTED), Dialect::Generic))
    });
    let dialect = sqlparser::dialect::GenericDialect {};
    group.bench_function("sqlparser/tokenize", |b| {
        b.iter(|| {
            sqlparser::tokenizer::Tokenizer::new(&dialect, black_box(FINGERPRINTED))
                .tokenize()
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, sql);
criterion_main!(benches);
