//! Breaker and retry-budget state under many threads: N threads × M calls, and the counts
//! add up exactly (no lost update, no probe admitted twice, no retry granted over budget).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use otel_core::testing::TestTelemetry;
use otel_resilience::RetryBudget;
use otel_resilience::circuit_breaker::{
    BreakerState, CircuitBreaker, CircuitBreakerConfig, Permit,
};
use otel_resilience::clock::ManualClock;

const THREADS: usize = 8;
const CALLS: usize = 2_000;

fn breaker(config: CircuitBreakerConfig) -> (Arc<ManualClock>, Arc<CircuitBreaker>) {
    let clock = Arc::new(ManualClock::new());
    let b = CircuitBreaker::builder("stress:80")
        .config(config)
        .clock(clock.clone())
        .seed(11)
        .build();
    (clock, b)
}

/// Runs `f(thread_index)` on `THREADS` threads released together; returns the sum.
fn on_threads(f: impl Fn(usize) -> usize + Send + Sync + 'static) -> usize {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (f, barrier) = (f.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                f(t)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .sum()
}

#[test]
fn failures_recorded_from_many_threads_add_up() {
    let _telemetry = TestTelemetry::new();
    // Rules that never trip: every outcome is counted in the closed state.
    let (_, b) = breaker(
        CircuitBreakerConfig::default()
            .consecutive_failures(0)
            .minimum_calls(u32::MAX),
    );
    let b2 = b.clone();
    let failed = on_threads(move |_| {
        let mut failed = 0;
        for i in 0..CALLS {
            let fail = i % 3 == 0;
            b2.admit().expect("closed admits").record(!fail);
            failed += usize::from(fail);
        }
        failed
    });
    assert_eq!(failed, THREADS * CALLS.div_ceil(3));
    assert_eq!(b.failures() as usize, failed);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_breaker_tripped_by_many_threads_opens_once_and_then_rejects_everything() {
    let _telemetry = TestTelemetry::new();
    let (_, b) = breaker(CircuitBreakerConfig::default());
    let b2 = b.clone();
    let admitted = on_threads(move |_| {
        let mut admitted = 0;
        for _ in 0..CALLS {
            if let Ok(permit) = b2.admit() {
                admitted += 1;
                permit.record(false);
            }
        }
        admitted
    });
    assert_eq!(b.state(), BreakerState::Open);
    // At least the 5 consecutive failures that trip it; at most one in-flight call per
    // thread past the trip (each thread holds one permit at a time).
    assert!((5..5 + THREADS).contains(&admitted), "{admitted} admitted");
    let rejected = on_threads({
        let b = b.clone();
        move |_| (0..CALLS).filter(|_| b.admit().is_err()).count()
    });
    assert_eq!(rejected, THREADS * CALLS);
}

#[test]
fn half_open_admits_exactly_the_probe_count_round_after_round() {
    let _telemetry = TestTelemetry::new();
    for probes in 1..=4u32 {
        let (clock, b) = breaker(CircuitBreakerConfig::default().half_open_probes(probes));
        for round in 0..10 {
            for _ in 0..5 {
                b.admit().expect("closed").record(false);
            }
            assert_eq!(
                b.state(),
                BreakerState::Open,
                "probes {probes} round {round}"
            );
            clock.advance(Duration::from_secs(120));
            let held = Arc::new(std::sync::Mutex::new(Vec::<Permit>::new()));
            let rejected = Arc::new(AtomicUsize::new(0));
            let admitted = on_threads({
                let (b, held, rejected) = (b.clone(), held.clone(), rejected.clone());
                move |_| {
                    let mut admitted = 0;
                    for _ in 0..200 {
                        match b.admit() {
                            Ok(permit) => {
                                assert!(permit.is_probe());
                                held.lock().unwrap().push(permit);
                                admitted += 1;
                            }
                            Err(_) => {
                                rejected.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    admitted
                }
            });
            assert_eq!(admitted, probes as usize, "probes {probes} round {round}");
            assert_eq!(
                rejected.load(Ordering::Relaxed),
                THREADS * 200 - probes as usize
            );
            // Odd rounds: one probe fails and reopens; even rounds: all succeed and close.
            let permits = std::mem::take(&mut *held.lock().unwrap());
            let fail_one = round % 2 == 1;
            for (i, permit) in permits.into_iter().enumerate() {
                permit.record(!(fail_one && i == 0));
            }
            let expected = if fail_one {
                BreakerState::Open
            } else {
                BreakerState::Closed
            };
            assert_eq!(b.state(), expected, "probes {probes} round {round}");
            if fail_one {
                clock.advance(Duration::from_secs(120));
                // Half-open again: a lone successful probe set closes it.
                let permits: Vec<_> = (0..probes).map(|_| b.admit().expect("probe")).collect();
                assert!(b.admit().is_err());
                permits.into_iter().for_each(|p| p.record(true));
                assert_eq!(b.state(), BreakerState::Closed);
            }
        }
    }
}

#[test]
fn ratio_budget_grants_exactly_its_share_under_contention() {
    let clock = Arc::new(ManualClock::new());
    let budget = RetryBudget::try_ratio(0.25, Duration::from_secs(10), 0)
        .expect("valid")
        .with_clock(clock);
    let deposited = on_threads({
        let budget = budget.clone();
        move |_| {
            (0..CALLS).for_each(|_| budget.deposit());
            CALLS
        }
    });
    assert_eq!(deposited, THREADS * CALLS);
    let granted = on_threads({
        let budget = budget.clone();
        move |_| (0..CALLS).filter(|_| budget.try_withdraw()).count()
    });
    assert_eq!(granted, THREADS * CALLS / 4);
    // Interleaved deposits and withdrawals: never over budget, and what is left is exact.
    let interleaved = on_threads({
        let budget = budget.clone();
        move |_| {
            (0..CALLS)
                .filter(|_| {
                    budget.deposit();
                    budget.try_withdraw()
                })
                .count()
        }
    });
    assert!(interleaved <= THREADS * CALLS / 4, "{interleaved}");
    let rest = std::iter::from_fn(|| budget.try_withdraw().then_some(()))
        .take(THREADS * CALLS)
        .count();
    assert_eq!(granted + interleaved + rest, 2 * THREADS * CALLS / 4);
}

#[test]
fn token_bucket_counts_every_outcome_from_many_threads() {
    // 100 tokens; retries allowed while more than 50 remain; a success gives back 0.5.
    let budget = RetryBudget::try_token_bucket(100.0, 0.5).expect("valid");
    on_threads({
        let budget = budget.clone();
        move |_| {
            (0..CALLS).for_each(|_| budget.record_attempt(false));
            0
        }
    });
    assert!(!budget.try_withdraw(), "empty bucket");
    // 8 × 12 successes = 48 tokens: still not more than half.
    on_threads({
        let budget = budget.clone();
        move |_| {
            (0..12).for_each(|_| budget.record_attempt(true));
            0
        }
    });
    assert!(!budget.try_withdraw());
    for _ in 0..4 {
        budget.record_attempt(true);
    }
    assert!(!budget.try_withdraw(), "exactly 50 is not more than half");
    budget.record_attempt(true);
    assert!(budget.try_withdraw(), "50.5 tokens");
}
