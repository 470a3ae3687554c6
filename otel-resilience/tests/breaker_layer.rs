//! The tower circuit-breaker layer seen from outside: a dead dependency answered fast once
//! the breaker opens, rejections visible on their own span and never retried, exactly one
//! probe out of 1,000 concurrent calls, per-authority breakers, metrics.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use opentelemetry::trace::{SpanKind, Status};
use otel_core::extensions::SpanAttributes;
use otel_core::testing::TestTelemetry;
use otel_resilience::{
    BreakerState, CircuitBreakerConfig, CircuitBreakerLayer, CircuitBreakerRegistry, CircuitOpen,
    RetryLayer,
};
use support::{StubService, attr, recording_stub, request, serve, status, taken_attributes};
use tower::{Layer, ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn dead_dependency_is_answered_in_under_a_millisecond_once_open() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let dead = support::serve_nothing().await;
    let registry = CircuitBreakerRegistry::builder().seed(1).build();
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::with_registry(registry.clone()))
        .timeout(Duration::from_secs(30))
        .service(support::client());
    let url = format!("http://{dead}/stock");

    // Five calls wait for the 30 s timeout: that is what every call cost without a breaker.
    for _ in 0..5 {
        let start = tokio::time::Instant::now();
        let err = svc
            .clone()
            .oneshot(request(Method::GET, &url))
            .await
            .unwrap_err();
        assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
    let breaker = registry.get(&dead.to_string());
    assert_eq!(breaker.state(), BreakerState::Open);

    // Then the breaker answers at once, with when it will probe next.
    for _ in 0..100 {
        let start = tokio::time::Instant::now();
        let err = svc
            .clone()
            .oneshot(request(Method::GET, &url))
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "answered in {:?} of virtual time",
            start.elapsed()
        );
        let open = err.downcast_ref::<CircuitOpen>().expect("fail fast");
        assert_eq!(open.name(), dead.to_string());
        assert!(open.next_probe_in().unwrap() <= Duration::from_secs(5));
    }
}

type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

fn failing_stub() -> (Seen, impl StubService) {
    recording_stub(|_| Ok(503), taken_attributes)
}

#[tokio::test(start_paused = true)]
async fn rejections_get_their_own_span_and_are_never_retried() {
    let telemetry = TestTelemetry::new();
    let (seen, inner) = failing_stub();
    let registry = CircuitBreakerRegistry::builder()
        .seed(2)
        .meter_provider(telemetry.meter_provider())
        .build();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().seed(2).build())
        .layer(CircuitBreakerLayer::with_registry(registry).named("payments"))
        .service(inner);

    // Call 1: 3 attempts fail. Call 2: 2 attempts fail (5 in a row: open), the third is
    // rejected by the breaker and not retried.
    for _ in 0..2 {
        let _ = svc
            .clone()
            .oneshot(request(Method::GET, "http://payments/charge"))
            .await;
    }
    let err = svc
        .clone()
        .oneshot(request(Method::GET, "http://payments/charge"))
        .await
        .unwrap_err();
    assert!(err.is::<CircuitOpen>());

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        5,
        "the rejected attempts never reached the client"
    );
    for (i, attrs) in seen.iter().enumerate() {
        assert_eq!(
            attrs,
            &[
                ("circuit_breaker.state".to_owned(), "closed".to_owned()),
                ("circuit_breaker.failures".to_owned(), i.to_string()),
            ]
        );
    }

    let retries = telemetry.spans_named("retry GET");
    assert_eq!(retries.len(), 3);
    assert_eq!(attr(&retries[1], "retry.attempts").as_deref(), Some("3"));
    assert_eq!(
        attr(&retries[1], "error.type").as_deref(),
        Some("circuit_open")
    );
    assert_eq!(attr(&retries[2], "retry.attempts").as_deref(), Some("1"));
    assert_eq!(
        attr(&retries[2], "error.type").as_deref(),
        Some("circuit_open")
    );

    let rejections = telemetry.spans_named("circuit_breaker payments");
    assert_eq!(rejections.len(), 2);
    let r = &rejections[0];
    assert_eq!(r.span_kind, SpanKind::Internal);
    assert_eq!(attr(r, "error.type").as_deref(), Some("circuit_open"));
    assert_eq!(attr(r, "circuit_breaker.state").as_deref(), Some("open"));
    assert_eq!(attr(r, "circuit_breaker.name").as_deref(), Some("payments"));
    let next_probe: i64 = attr(r, "circuit_breaker.next_probe_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!((4000..=5000).contains(&next_probe), "{next_probe}");
    assert!(
        matches!(&r.status, Status::Error { description } if description.contains("next probe in"))
    );
    assert!(TestTelemetry::is_child_of(r, &retries[1]));

    let opened: Vec<_> = retries[1]
        .events
        .iter()
        .filter(|e| e.name == "circuit_breaker.opened")
        .collect();
    assert_eq!(
        opened.len(),
        1,
        "the transition is an event on the span it happened under"
    );

    let metrics = telemetry.metrics();
    let names: Vec<String> = metrics
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .flat_map(|sm| sm.metrics())
        .map(|m| m.name().to_owned())
        .collect();
    for expected in [
        "circuit_breaker.state",
        "circuit_breaker.transitions",
        "circuit_breaker.rejections",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_calls_against_half_open_send_exactly_one_probe() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (c, r, h) = (calls.clone(), release.clone(), healthy.clone());
    let inner = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        c.fetch_add(1, Ordering::SeqCst);
        let (r, h) = (r.clone(), h.clone());
        async move {
            if h.load(Ordering::SeqCst) {
                r.notified().await; // the probe hangs until released
                Ok::<_, std::io::Error>(status(200))
            } else {
                Ok(status(500))
            }
        }
    });
    let registry = CircuitBreakerRegistry::builder().seed(3).build();
    let svc = CircuitBreakerLayer::with_registry(registry.clone()).layer(inner);
    for _ in 0..5 {
        let _ = svc
            .clone()
            .oneshot(request(Method::GET, "http://inventory:8080/"))
            .await;
    }
    let breaker = registry.get("inventory:8080");
    assert_eq!(breaker.state(), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(5)).await;
    healthy.store(true, Ordering::SeqCst);
    calls.store(0, Ordering::SeqCst);

    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                svc.oneshot(request(Method::GET, "http://inventory:8080/"))
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    // Let every task run up to its first await.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "exactly one probe reached the dependency"
    );
    release.notify_waiters();
    let mut ok = 0;
    let mut rejected = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(s) => {
                assert_eq!(s, 200);
                ok += 1;
            }
            Err(e) => {
                let open = e.downcast_ref::<CircuitOpen>().expect("rejection");
                assert_eq!(open.state(), BreakerState::HalfOpen);
                rejected += 1;
            }
        }
    }
    assert_eq!((ok, rejected), (1, 999));
    assert_eq!(breaker.state(), BreakerState::Closed, "the probe succeeded");
}

#[tokio::test(start_paused = true)]
async fn breakers_are_per_authority() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let healthy = serve(|_, _| status(200)).await;
    let broken = serve(|_, _| status(503)).await;
    let registry = CircuitBreakerRegistry::builder()
        .config(CircuitBreakerConfig::default().consecutive_failures(2))
        .build();
    let svc = CircuitBreakerLayer::with_registry(registry.clone()).layer(support::client());
    for _ in 0..3 {
        let _ = svc
            .clone()
            .oneshot(request(Method::GET, &broken.url("/")))
            .await;
    }
    assert_eq!(broken.hits(), 2, "third call rejected");
    let resp = svc
        .clone()
        .oneshot(request(Method::GET, &healthy.url("/")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        registry.get(&broken.addr.to_string()).state(),
        BreakerState::Open
    );
    assert_eq!(
        registry.get(&healthy.addr.to_string()).state(),
        BreakerState::Closed
    );
}

/// A stub downstream answering by authority (`ok.test` 200, `down.test` 503, any other
/// 200), recording what a client layer would put on each call's span.
fn stub_by_authority() -> (Seen, impl StubService) {
    recording_stub(
        |req| {
            Ok(if req.uri().host() == Some("down.test") {
                503
            } else {
                200
            })
        },
        |req| {
            let authority = req.uri().authority().unwrap().to_string();
            let mut attrs = vec![("authority".to_owned(), authority)];
            attrs.extend(taken_attributes(req));
            attrs
        },
    )
}

fn last_seen(seen: &Seen) -> Vec<(String, String)> {
    seen.lock().unwrap().last().cloned().unwrap()
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

#[tokio::test(start_paused = true)]
async fn the_breaker_cache_follows_a_change_of_authority() {
    let _telemetry = TestTelemetry::new();
    let registry = CircuitBreakerRegistry::builder()
        .config(CircuitBreakerConfig::default().consecutive_failures(2))
        .build();
    let (seen, stub) = stub_by_authority();
    // One service and its clones (they share one cache), as a client in an app state.
    let svc = CircuitBreakerLayer::with_registry(registry.clone()).layer(stub);
    let call = |url: &'static str| {
        let svc = svc.clone();
        async move { svc.oneshot(request(Method::GET, url)).await }
    };
    // The first authority is cached; then calls alternate between it and another one.
    for _ in 0..2 {
        assert_eq!(call("http://ok.test/").await.unwrap().status(), 200);
        assert_eq!(call("http://down.test/").await.unwrap().status(), 503);
    }
    let err = call("http://down.test/").await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<CircuitOpen>()
            .expect("down.test tripped")
            .name(),
        "down.test"
    );
    // The cached breaker is the healthy authority's own: its calls still flow.
    assert_eq!(call("http://ok.test/").await.unwrap().status(), 200);
    assert_eq!(registry.get("ok.test").state(), BreakerState::Closed);
    assert_eq!(registry.get("down.test").state(), BreakerState::Open);
    assert_eq!(registry.breakers().len(), 2);
    // A new service of the same layer starts with an empty cache, and first calls the open
    // authority: it is cached and still rejects; the healthy one is looked up and flows.
    let (_, stub) = stub_by_authority();
    let other = CircuitBreakerLayer::with_registry(registry.clone()).layer(stub);
    let err = other
        .clone()
        .oneshot(request(Method::GET, "http://down.test/"))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<CircuitOpen>().is_some());
    let resp = other
        .clone()
        .oneshot(request(Method::GET, "http://ok.test/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        last_seen(&seen),
        vec![
            pair("authority", "ok.test"),
            pair("circuit_breaker.state", "closed"),
            pair("circuit_breaker.failures", "0"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn keys_past_the_registry_limit_share_the_default_breaker_through_the_cache() {
    let _telemetry = TestTelemetry::new();
    let registry = CircuitBreakerRegistry::builder()
        .max_breakers(1)
        .config(CircuitBreakerConfig::default().consecutive_failures(2))
        .build();
    let (_, stub) = stub_by_authority();
    let svc = CircuitBreakerLayer::with_registry(registry.clone()).layer(stub);
    let call = |url: &'static str| {
        let svc = svc.clone();
        async move { svc.oneshot(request(Method::GET, url)).await }
    };
    // `down.test` is past the limit: served by `default`, never cached as its own.
    assert_eq!(call("http://ok.test/").await.unwrap().status(), 200);
    for _ in 0..2 {
        assert_eq!(call("http://down.test/").await.unwrap().status(), 503);
    }
    let err = call("http://other.test/").await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<CircuitOpen>().unwrap().name(),
        "default",
        "the shared overflow breaker tripped"
    );
    assert_eq!(call("http://ok.test/").await.unwrap().status(), 200);
    assert_eq!(registry.get("ok.test").state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn state_transitions_are_seen_through_the_cached_breaker() {
    let _telemetry = TestTelemetry::new();
    let registry = CircuitBreakerRegistry::builder()
        .config(
            CircuitBreakerConfig::default()
                .consecutive_failures(3)
                .open_duration(Duration::from_secs(5), Duration::from_secs(60))
                .open_jitter(0.0),
        )
        .build();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = failing.clone();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let stub = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let mut attrs = Vec::new();
        SpanAttributes::take(req.extensions(), |kv| {
            attrs.push((kv.key.to_string(), kv.value.to_string()))
        });
        s.lock().unwrap().push(attrs);
        let code = if f.load(Ordering::SeqCst) { 503 } else { 200 };
        async move { Ok::<_, std::io::Error>(status(code)) }
    });
    let svc = CircuitBreakerLayer::with_registry(registry.clone()).layer(stub);
    let call = || {
        let svc = svc.clone();
        async move { svc.oneshot(request(Method::GET, "http://api.test/")).await }
    };
    let attrs = |state: &str, failures: &str| {
        vec![
            pair("circuit_breaker.state", state),
            pair("circuit_breaker.failures", failures),
        ]
    };
    // Healthy: the attribute set built once with the breaker.
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(last_seen(&seen), attrs("closed", "0"));
    failing.store(true, Ordering::SeqCst);
    assert_eq!(call().await.unwrap().status(), 503);
    assert_eq!(last_seen(&seen), attrs("closed", "0"));
    assert_eq!(call().await.unwrap().status(), 503);
    assert_eq!(
        last_seen(&seen),
        attrs("closed", "1"),
        "a failure is counted"
    );
    assert_eq!(call().await.unwrap().status(), 503);
    let err = call().await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<CircuitOpen>().unwrap().state(),
        BreakerState::Open
    );
    // The open time elapses: the cached breaker turns half-open and admits one probe.
    tokio::time::advance(Duration::from_secs(5)).await;
    failing.store(false, Ordering::SeqCst);
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(
        last_seen(&seen)[0],
        pair("circuit_breaker.state", "half_open")
    );
    assert_eq!(registry.get("api.test").state(), BreakerState::Closed);
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(last_seen(&seen)[0], pair("circuit_breaker.state", "closed"));
}
