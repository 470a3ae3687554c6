//! The breaker's full transition table, driven by a manual clock and a seeded random source.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use otel_core::testing::TestTelemetry;
use otel_resilience::circuit_breaker::{
    BreakerMode, BreakerState, CircuitBreaker, CircuitBreakerConfig,
};
use otel_resilience::clock::ManualClock;

fn breaker(config: CircuitBreakerConfig) -> (Arc<ManualClock>, Arc<CircuitBreaker>) {
    let clock = Arc::new(ManualClock::new());
    let b = CircuitBreaker::builder("inventory:8080")
        .config(config)
        .clock(clock.clone())
        .seed(7)
        .build();
    (clock, b)
}

fn fail(b: &Arc<CircuitBreaker>, n: usize) {
    for _ in 0..n {
        b.admit().expect("admitted").record(false);
    }
}

fn succeed(b: &Arc<CircuitBreaker>, n: usize) {
    for _ in 0..n {
        b.admit().expect("admitted").record(true);
    }
}

/// Opens the breaker and returns the open duration it announced.
fn trip(b: &Arc<CircuitBreaker>) -> Duration {
    fail(b, 5);
    assert_eq!(b.state(), BreakerState::Open);
    b.admit().unwrap_err().next_probe_in().unwrap()
}

#[test]
fn closed_to_open_on_five_consecutive_failures() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (_, b) = breaker(CircuitBreakerConfig::default());
    fail(&b, 4);
    assert_eq!(b.state(), BreakerState::Closed);
    succeed(&b, 1);
    fail(&b, 4);
    assert_eq!(b.state(), BreakerState::Closed, "a success resets the run");
    assert_eq!(b.failures(), 8);
    fail(&b, 1);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn closed_to_open_on_failure_rate_with_minimum_calls() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (_, b) = breaker(CircuitBreakerConfig::default());
    // S F S F ...: never 5 in a row; 50% once 20 calls are in the window.
    for i in 0..19 {
        b.admit().unwrap().record(i % 2 == 0);
    }
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "19 calls: below the minimum"
    );
    b.admit().unwrap().record(false);
    assert_eq!(b.state(), BreakerState::Open, "10 failures of 20 calls");
}

#[test]
fn stays_closed_below_the_rate_and_forgets_old_failures() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (_, b) = breaker(CircuitBreakerConfig::default());
    for i in 0..40 {
        // 2 failures out of 5: 40%
        b.admit().unwrap().record(i % 5 >= 2);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    let (clock2, b2) = breaker(CircuitBreakerConfig::default().consecutive_failures(0));
    fail(&b2, 19);
    clock2.advance(Duration::from_secs(11));
    succeed(&b2, 1);
    assert_eq!(
        b2.failures(),
        0,
        "failures older than the 10 s window are dropped"
    );
    fail(&b2, 10);
    assert_eq!(b2.state(), BreakerState::Closed, "11 calls in window");
}

#[test]
fn open_rejects_until_the_probe_time_then_half_opens() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (clock, b) = breaker(CircuitBreakerConfig::default());
    let open_for = trip(&b);
    assert!(
        open_for >= Duration::from_millis(4500) && open_for <= Duration::from_secs(5),
        "{open_for:?}"
    );
    let err = b.admit().unwrap_err();
    assert_eq!(err.state(), BreakerState::Open);
    assert!(err.to_string().contains("next probe in"), "{err}");
    clock.advance(open_for - Duration::from_millis(1));
    assert!(b.admit().is_err());
    clock.advance(Duration::from_millis(1));
    let probe = b.admit().expect("the probe");
    assert!(probe.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let second = b.admit().unwrap_err();
    assert_eq!(second.state(), BreakerState::HalfOpen);
    assert_eq!(second.next_probe_in(), None);
    probe.record(true);
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(b.admit().is_ok());
}

#[test]
fn failed_probes_reopen_for_longer_up_to_sixty_seconds_and_closing_resets() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (clock, b) = breaker(CircuitBreakerConfig::default());
    let mut durations = vec![trip(&b)];
    for _ in 0..5 {
        clock.advance(*durations.last().unwrap());
        b.admit().expect("probe").record(false);
        assert_eq!(b.state(), BreakerState::Open);
        durations.push(b.admit().unwrap_err().next_probe_in().unwrap());
    }
    let nominal = [5, 10, 20, 40, 60, 60];
    for (d, n) in durations.iter().zip(nominal) {
        let n = Duration::from_secs(n);
        assert!(*d <= n && *d >= n.mul_f64(0.9), "{d:?} vs {n:?}");
    }
    clock.advance(*durations.last().unwrap());
    b.admit().unwrap().record(true);
    assert_eq!(b.state(), BreakerState::Closed);
    let again = trip(&b);
    assert!(
        again <= Duration::from_secs(5),
        "trip count reset on close: {again:?}"
    );
}

#[test]
fn several_probes_must_all_succeed() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (clock, b) = breaker(CircuitBreakerConfig::default().half_open_probes(3));
    clock.advance(trip(&b));
    let probes: Vec<_> = (0..3).map(|_| b.admit().expect("probe")).collect();
    assert!(b.admit().is_err(), "a fourth is rejected");
    let mut probes = probes.into_iter();
    probes.next().unwrap().record(true);
    probes.next().unwrap().record(true);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    probes.next().unwrap().record(true);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_dropped_probe_frees_its_slot() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (clock, b) = breaker(CircuitBreakerConfig::default());
    clock.advance(trip(&b));
    drop(b.admit().expect("probe"));
    assert!(
        b.admit().is_ok(),
        "cancelled probe does not wedge half-open"
    );
}

#[test]
fn stale_outcomes_from_before_a_transition_are_ignored() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (clock, b) = breaker(CircuitBreakerConfig::default());
    let slow = b.admit().unwrap();
    clock.advance(trip(&b));
    let probe = b.admit().unwrap();
    slow.record(false);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    probe.record(true);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn slow_call_rate_opens() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (clock, b) = breaker(
        CircuitBreakerConfig::default()
            .minimum_calls(10)
            .slow_calls(Duration::from_secs(1), 0.5),
    );
    for i in 0..10 {
        let p = b.admit().unwrap();
        if i % 2 == 0 {
            clock.advance(Duration::from_secs(2));
        }
        p.record(true);
    }
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn modes_forced_open_disabled_metrics_only() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let (_, b) = breaker(CircuitBreakerConfig::default().mode(BreakerMode::ForcedOpen));
    let err = b.admit().unwrap_err();
    assert_eq!(err.next_probe_in(), None);
    assert!(err.to_string().contains("forced open"));
    b.set_mode(BreakerMode::Normal);
    assert!(b.admit().is_ok());

    let (_, b) = breaker(CircuitBreakerConfig::default().mode(BreakerMode::Disabled));
    fail(&b, 50);
    assert_eq!(b.state(), BreakerState::Closed);

    let (clock, b) = breaker(CircuitBreakerConfig::default().mode(BreakerMode::MetricsOnly));
    fail(&b, 5);
    assert_eq!(b.state(), BreakerState::Open, "tracked");
    assert!(b.admit().is_ok(), "but never rejects");
    clock.advance(Duration::from_secs(5));
    let probe = b.admit().unwrap();
    assert!(b.admit().is_ok());
    probe.record(true);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn transitions_are_named_tracing_events() {
    let telemetry = TestTelemetry::new();
    let (clock, b) = breaker(CircuitBreakerConfig::default());
    tracing::info_span!("scope").in_scope(|| {
        clock.advance(trip(&b));
        b.admit().unwrap().record(true);
    });
    let span = telemetry.span("scope");
    let names: Vec<&str> = span.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "circuit_breaker.opened",
            "circuit_breaker.half_opened",
            "circuit_breaker.closed"
        ]
    );
    let opened = &span.events[0];
    let attr = |k: &str| {
        opened
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        attr("circuit_breaker.name").as_deref(),
        Some("inventory:8080")
    );
    assert_eq!(attr("circuit_breaker.failures").as_deref(), Some("5"));
}

#[test]
fn a_thousand_concurrent_calls_against_half_open_admit_exactly_the_probe_count() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    for probes in [1u32, 3] {
        let (clock, b) = breaker(CircuitBreakerConfig::default().half_open_probes(probes));
        clock.advance(trip(&b));
        let admitted = Arc::new(AtomicUsize::new(0));
        let rejected = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(8));
        let permits = Arc::new(held::Bag::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (b, admitted, rejected, barrier, permits) = (
                    b.clone(),
                    admitted.clone(),
                    rejected.clone(),
                    barrier.clone(),
                    permits.clone(),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..125 {
                        match b.admit() {
                            Ok(p) => {
                                admitted.fetch_add(1, Ordering::SeqCst);
                                permits.put(p); // held: the probe is in flight
                            }
                            Err(_) => {
                                rejected.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), probes as usize);
        assert_eq!(rejected.load(Ordering::SeqCst), 1000 - probes as usize);
    }
}

mod held {
    use std::sync::Mutex;

    /// Keeps permits alive until the test ends.
    #[derive(Default)]
    pub struct Bag(Mutex<Vec<otel_resilience::circuit_breaker::Permit>>);
    impl Bag {
        pub fn put(&self, p: otel_resilience::circuit_breaker::Permit) {
            self.0.lock().unwrap().push(p);
        }
    }
}

#[test]
fn successes_counted_without_the_lock_still_weigh_in_the_failure_rate() {
    let _telemetry = TestTelemetry::new();
    let config = CircuitBreakerConfig::default()
        .consecutive_failures(0)
        .minimum_calls(20)
        .failure_rate(0.5);
    let (clock, b) = breaker(config);
    // A healthy window: these successes take the lock-free path (closed, no failure yet).
    clock.advance(Duration::from_millis(1));
    succeed(&b, 1); // opens the current bucket (locked path)
    succeed(&b, 9); // lock-free
    fail(&b, 9);
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "19 calls: below the minimum"
    );
    fail(&b, 1);
    assert_eq!(b.state(), BreakerState::Open, "10 of 20 failed");

    // Successes on the fast path leave the window with their bucket.
    let (clock, b) = breaker(
        CircuitBreakerConfig::default()
            .consecutive_failures(0)
            .minimum_calls(10)
            .failure_rate(0.5),
    );
    succeed(&b, 20);
    clock.advance(Duration::from_secs(11));
    fail(&b, 9);
    assert_eq!(b.state(), BreakerState::Closed, "9 calls in the window");
    fail(&b, 1);
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "the old successes no longer dilute the rate"
    );
}

#[test]
fn a_success_after_expired_failures_still_resets_the_run() {
    let _telemetry = TestTelemetry::new();
    let (clock, b) = breaker(CircuitBreakerConfig::default());
    fail(&b, 4);
    clock.advance(Duration::from_secs(11));
    succeed(&b, 3);
    fail(&b, 4);
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "the run of 4 was broken by the successes"
    );
    fail(&b, 1);
    assert_eq!(b.state(), BreakerState::Open);
}
