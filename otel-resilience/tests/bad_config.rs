//! Bad configuration is refused at setup with an error that names the setting and the fix;
//! nothing is silently clamped.

use std::time::Duration;

use otel_resilience::{
    Backoff, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerRegistry, ConfigError,
    RetryBudget, RetryLayer, RetryPolicy,
};

fn retry_error(policy: RetryPolicy) -> ConfigError {
    RetryLayer::builder()
        .policy(policy)
        .try_build()
        .expect_err("the policy must be refused")
}

fn breaker_error(config: CircuitBreakerConfig) -> ConfigError {
    CircuitBreaker::builder("db")
        .config(config)
        .try_build()
        .expect_err("the breaker configuration must be refused")
}

#[test]
fn retry_policy_values_are_refused_naming_the_setting_and_the_fix() {
    let cases = [
        (
            retry_error(RetryPolicy::default().max_attempts(0)),
            "RetryPolicy::max_attempts = 0 is refused: use at least 1 (the first attempt counts; 1 = never retry, default 3)",
        ),
        (
            retry_error(RetryPolicy::default().deadline(Duration::ZERO)),
            "RetryPolicy::deadline = 0ns is refused: use a positive duration, or leave the deadline unset (default: none)",
        ),
        (
            retry_error(
                RetryPolicy::default()
                    .backoff(Backoff::exponential(Duration::from_millis(10)).multiplier(0.5)),
            ),
            "Backoff::multiplier = 0.5 is refused: use a finite factor of at least 1.0 (1.0 = constant delay, default 2.0)",
        ),
        (
            retry_error(RetryPolicy::default().backoff(Backoff::default().multiplier(f64::NAN))),
            "Backoff::multiplier = NaN is refused: use a finite factor of at least 1.0 (1.0 = constant delay, default 2.0)",
        ),
    ];
    for (err, message) in cases {
        assert_eq!(err.to_string(), message);
    }
    assert_eq!(
        retry_error(RetryPolicy::default().max_attempts(0)).setting(),
        "RetryPolicy::max_attempts"
    );
}

#[test]
fn the_first_refused_setting_is_reported() {
    let err = retry_error(
        RetryPolicy::default()
            .max_attempts(0)
            .deadline(Duration::ZERO),
    );
    assert_eq!(err.setting(), "RetryPolicy::max_attempts");
}

#[test]
fn retry_budget_values_are_refused() {
    let cases: [(Result<RetryBudget, ConfigError>, &str); 6] = [
        (
            RetryBudget::try_ratio(-0.1, Duration::from_secs(10), 10),
            "RetryBudget::ratio(ratio) = -0.1 is refused: use a finite ratio in [0, 1000] (0.2 = retries add at most 20%; 0 = only the floor)",
        ),
        (
            RetryBudget::try_ratio(f64::INFINITY, Duration::from_secs(10), 10),
            "RetryBudget::ratio(ratio) = inf is refused: use a finite ratio in [0, 1000] (0.2 = retries add at most 20%; 0 = only the floor)",
        ),
        (
            RetryBudget::try_ratio(0.2, Duration::ZERO, 10),
            "RetryBudget::ratio(window) = 0ns is refused: use a window of at least 1 s (default 10 s)",
        ),
        (
            RetryBudget::try_token_bucket(0.0, 0.1),
            "RetryBudget::token_bucket(max_tokens) = 0 is refused: use a finite bucket size in [1, 1000] (gRPC's example: 10)",
        ),
        (
            RetryBudget::try_token_bucket(10.0, -1.0),
            "RetryBudget::token_bucket(token_ratio) = -1 is refused: use a finite ratio in [0, 1] (gRPC's example: 0.1)",
        ),
        (
            RetryBudget::try_token_bucket(10.0, f64::NAN),
            "RetryBudget::token_bucket(token_ratio) = NaN is refused: use a finite ratio in [0, 1] (gRPC's example: 0.1)",
        ),
    ];
    for (result, message) in cases {
        assert_eq!(result.expect_err(message).to_string(), message);
    }
    // The infallible constructor remembers the refusal; the layer refuses it at build.
    let err = RetryLayer::builder()
        .budget(RetryBudget::ratio(0.2, Duration::from_millis(10), 0))
        .try_build()
        .expect_err("a 10 ms window is refused");
    assert_eq!(err.setting(), "RetryBudget::ratio(window)");
    // Valid edges are accepted.
    assert!(RetryBudget::try_ratio(0.0, Duration::from_secs(1), 0).is_ok());
    assert!(RetryBudget::try_token_bucket(1.0, 0.0).is_ok());
}

#[test]
fn circuit_breaker_values_are_refused() {
    let d = CircuitBreakerConfig::default;
    let cases = [
        (
            breaker_error(d().failure_rate(0.0)),
            "CircuitBreakerConfig::failure_rate = 0 is refused: use a rate in (0, 1] (0.5 = open when half the calls fail; default 0.5)",
        ),
        (
            breaker_error(d().failure_rate(1.5)),
            "CircuitBreakerConfig::failure_rate = 1.5 is refused: use a rate in (0, 1] (0.5 = open when half the calls fail; default 0.5)",
        ),
        (
            breaker_error(d().minimum_calls(0)),
            "CircuitBreakerConfig::minimum_calls = 0 is refused: use at least 1 call (default 20)",
        ),
        (
            breaker_error(d().window(Duration::ZERO)),
            "CircuitBreakerConfig::window = 0ns is refused: use a window of at least 1 s (default 10 s)",
        ),
        (
            breaker_error(d().slow_calls(Duration::ZERO, 0.5)),
            "CircuitBreakerConfig::slow_calls(threshold) = 0ns is refused: use a positive threshold (every call is slower than zero)",
        ),
        (
            breaker_error(d().slow_calls(Duration::from_secs(1), -0.5)),
            "CircuitBreakerConfig::slow_calls(rate) = -0.5 is refused: use a rate in (0, 1] (0.5 = open when half the calls are slow)",
        ),
        (
            breaker_error(d().open_duration(Duration::ZERO, Duration::from_secs(60))),
            "CircuitBreakerConfig::open_duration = (0ns, 60s) is refused: use a positive first open duration and a cap at least as long (default (5s, 60s))",
        ),
        (
            breaker_error(d().open_duration(Duration::from_secs(10), Duration::from_secs(1))),
            "CircuitBreakerConfig::open_duration = (10s, 1s) is refused: use a positive first open duration and a cap at least as long (default (5s, 60s))",
        ),
        (
            breaker_error(d().open_jitter(2.0)),
            "CircuitBreakerConfig::open_jitter = 2 is refused: use a fraction in [0, 1] (0 = no jitter, default 0.1)",
        ),
        (
            breaker_error(d().half_open_probes(0)),
            "CircuitBreakerConfig::half_open_probes = 0 is refused: use at least 1 probe (default 1)",
        ),
    ];
    for (err, message) in cases {
        assert_eq!(err.to_string(), message);
    }
    assert_eq!(
        d().minimum_calls(0).validate().unwrap_err().fix(),
        "use at least 1 call (default 20)"
    );
    // consecutive_failures(0) is documented as "rule off", not an error.
    assert!(d().consecutive_failures(0).validate().is_ok());
}

#[test]
fn registry_refuses_zero_breakers_and_a_bad_shared_config() {
    let err = CircuitBreakerRegistry::builder()
        .max_breakers(0)
        .try_build()
        .expect_err("zero breakers");
    assert_eq!(
        err.to_string(),
        "CircuitBreakerRegistry::max_breakers = 0 is refused: use at least 1 (default 1024; keys past the limit share one breaker)"
    );
    let err = CircuitBreakerRegistry::builder()
        .config(CircuitBreakerConfig::default().half_open_probes(0))
        .try_build()
        .expect_err("bad config");
    assert_eq!(err.setting(), "CircuitBreakerConfig::half_open_probes");
}

#[test]
fn valid_configurations_build() {
    assert!(
        RetryLayer::builder()
            .policy(
                RetryPolicy::default()
                    .max_attempts(1)
                    .deadline(Duration::from_millis(1))
                    .backoff(Backoff::exponential(Duration::from_millis(1)).multiplier(1.0)),
            )
            .budget(RetryBudget::token_bucket(10.0, 0.1))
            .try_build()
            .is_ok()
    );
    let config = CircuitBreakerConfig::default()
        .failure_rate(1.0)
        .minimum_calls(1)
        .window(Duration::from_secs(1))
        .slow_calls(Duration::from_millis(1), 1.0)
        .open_duration(Duration::from_secs(1), Duration::from_secs(1))
        .open_jitter(0.0)
        .half_open_probes(1);
    assert!(
        CircuitBreaker::builder("db")
            .config(config.clone())
            .try_build()
            .is_ok()
    );
    assert!(
        CircuitBreakerRegistry::builder()
            .config(config)
            .max_breakers(1)
            .try_build()
            .is_ok()
    );
}

#[test]
#[should_panic(expected = "RetryPolicy::max_attempts = 0 is refused")]
fn the_infallible_build_panics_at_setup_with_the_same_message() {
    let _ = RetryLayer::builder()
        .policy(RetryPolicy::default().max_attempts(0))
        .build();
}

#[test]
#[should_panic(expected = "CircuitBreakerConfig::window = 10ms is refused")]
fn the_infallible_breaker_build_panics_at_setup() {
    let _ = CircuitBreaker::builder("db")
        .config(CircuitBreakerConfig::default().window(Duration::from_millis(10)))
        .build();
}
