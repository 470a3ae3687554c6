//! Extract and inject of the strict propagators of `otel_core::propagation`, side by side with
//! the stock `opentelemetry_sdk` W3C propagator, and request-id generation.
//!
//! Run: `cargo bench -p otel-benches --bench propagation`. Goals: ≤ 250 ns per extract and per
//! inject, ≤ 100 ns per request id.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use otel_core::RequestId;
use otel_core::propagation::{
    B3Encoding, B3Propagator, HeaderExtractor, HeaderInjector, TraceContextPropagator,
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn context() -> Context {
    let sc = SpanContext::new(
        TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
        SpanId::from(0x00f067aa0ba902b7),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    );
    Context::new().with_remote_span_context(sc)
}

fn headers_of(p: &dyn TextMapPropagator) -> HeaderMap {
    let mut headers = HeaderMap::new();
    p.inject_context(&context(), &mut HeaderInjector(&mut headers));
    headers
}

fn bench_pair(c: &mut Criterion, name: &str, p: &dyn TextMapPropagator) {
    let headers = headers_of(p);
    assert!(
        p.extract_with_context(&Context::new(), &HeaderExtractor(&headers))
            .span()
            .span_context()
            .is_valid()
    );
    let mut group = c.benchmark_group(name);
    group.bench_function("extract", |b| {
        let base = Context::new();
        b.iter(|| black_box(p.extract_with_context(&base, &HeaderExtractor(black_box(&headers)))))
    });
    group.bench_function("inject", |b| {
        let cx = context();
        let mut out = HeaderMap::with_capacity(8);
        b.iter(|| {
            out.clear();
            p.inject_context(black_box(&cx), &mut HeaderInjector(&mut out));
            black_box(&out);
        })
    });
    group.finish();
}

fn propagation(c: &mut Criterion) {
    bench_pair(c, "w3c/otel-core", &TraceContextPropagator::new());
    bench_pair(
        c,
        "w3c/opentelemetry_sdk",
        &opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    bench_pair(
        c,
        "b3-single/otel-core",
        &B3Propagator::with_encoding(B3Encoding::Single),
    );
    bench_pair(
        c,
        "b3-multi/otel-core",
        &B3Propagator::with_encoding(B3Encoding::Multi),
    );

    // The W3C extract with a realistic `tracestate` too.
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", TRACEPARENT.parse().unwrap());
    headers.insert(
        "tracestate",
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".parse().unwrap(),
    );
    let ours = TraceContextPropagator::new();
    let sdk = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let mut group = c.benchmark_group("w3c-with-tracestate");
    group.bench_function("extract/otel-core", |b| {
        b.iter(|| {
            black_box(
                ours.extract_with_context(&Context::new(), &HeaderExtractor(black_box(&headers))),
            )
        })
    });
    group.bench_function("extract/opentelemetry_sdk", |b| {
        b.iter(|| {
            black_box(
                sdk.extract_with_context(&Context::new(), &HeaderExtractor(black_box(&headers))),
            )
        })
    });
    group.finish();

    c.bench_function("request_id/generate", |b| {
        b.iter(|| black_box(RequestId::generate()))
    });
}

criterion_group!(benches, propagation);
criterion_main!(benches);
