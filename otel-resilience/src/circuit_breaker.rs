//! The circuit breaker state machine: closed → open (failure rate, consecutive failures or
//! slow-call rate) → half-open (exactly N probes admitted) → closed or open again, with an
//! open duration that grows on repeated trips. Plain Rust with an injected clock and random
//! source; the tower and reqwest adapters only call [`CircuitBreaker::admit`] and
//! [`Permit::record`].
//!
//! Defaults: opens when ≥ 50% of the calls of the last 10 s failed (at least 20 calls), or on
//! 5 consecutive failures; stays open 5 s (minus up to 10% jitter), doubling on each trip
//! that follows a failed probe, up to 60 s; half-open admits 1 probe and rejects the rest.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use otel_resilience::circuit_breaker::{BreakerState, CircuitBreaker, CircuitBreakerConfig};
//! use otel_resilience::clock::ManualClock;
//!
//! let clock = Arc::new(ManualClock::new());
//! let breaker = CircuitBreaker::builder("inventory:8080").clock(clock.clone()).seed(1).build();
//! for _ in 0..5 {
//!     breaker.admit().unwrap().record(false);
//! }
//! assert_eq!(breaker.state(), BreakerState::Open);
//! let rejected = breaker.admit().unwrap_err();
//! assert!(rejected.next_probe_in().unwrap() <= Duration::from_secs(5));
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use otel_core::attributes;
use parking_lot::Mutex;

use crate::clock::{Periods, SharedClock, TokioClock};
use crate::config_error::{ConfigError, Value, check, refuse};
use crate::metrics::ResilienceMetrics;
use crate::random::RandomSource;

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until the open duration elapses.
    Open,
    /// A limited number of probes are admitted; the rest are rejected.
    HalfOpen,
}

/// How a breaker acts on its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BreakerMode {
    /// Track and reject (the default).
    #[default]
    Normal,
    /// Reject every call (an operator switch for a dependency known to be down).
    ForcedOpen,
    /// Admit every call and track nothing.
    Disabled,
    /// Track state, transitions and metrics, but never reject (to tune thresholds safely).
    MetricsOnly,
}

/// Configuration of a breaker. Every field has a production default.
#[derive(Debug, Clone)]
pub struct CircuitBreakerConfig {
    failure_rate: f64,
    minimum_calls: u32,
    window: Duration,
    consecutive_failures: u32,
    slow_call: Option<(Duration, f64)>,
    open_duration: Duration,
    max_open_duration: Duration,
    open_jitter: f64,
    half_open_probes: u32,
    mode: BreakerMode,
    invalid: Option<ConfigError>,
}

/// The error of a rejected call: nothing was sent. Says when the breaker probes next.
#[derive(Debug)]
pub struct CircuitOpen {
    name: Arc<str>,
    state: BreakerState,
    next_probe_in: Option<Duration>,
    /// The rejection's span is still to be recorded: the breaker left it to the retry layer
    /// above, which records it under its logical-call span; if nobody does, it is recorded
    /// when the error is dropped.
    span_pending: AtomicBool,
}

impl Clone for CircuitOpen {
    /// A clone never records the rejection span: the original keeps that duty.
    fn clone(&self) -> Self {
        CircuitOpen {
            name: self.name.clone(),
            state: self.state,
            next_probe_in: self.next_probe_in,
            span_pending: AtomicBool::new(false),
        }
    }
}

/// Admission to call the dependency. Report the outcome with [`record`](Permit::record);
/// dropping it unrecorded (a cancelled call) counts nothing and frees a probe slot.
#[derive(Debug)]
pub struct Permit {
    breaker: Option<Arc<CircuitBreaker>>,
    generation: u64,
    probe: bool,
    /// When the call was admitted; read only by the slow-call rule, so the clock is not read
    /// when that rule is off.
    started: Option<Instant>,
}

/// A circuit breaker for one dependency. Cheap on the healthy path: a closed breaker admits
/// with a few atomic loads, and records a success in a closed breaker whose window holds no
/// failure with one clock read and one atomic add; every other outcome takes a short,
/// non-async lock.
pub struct CircuitBreaker {
    name: Arc<str>,
    config: CircuitBreakerConfig,
    clock: SharedClock,
    rng: Arc<RandomSource>,
    metrics: Option<ResilienceMetrics>,
    fast_state: AtomicU8,
    mode: AtomicU8,
    generation: AtomicU64,
    failures: AtomicU32,
    /// Failures in a row (written under the lock; read without it by the success fast path).
    consecutive: AtomicU32,
    /// The sliding window, one bucket per tenth (written under the lock, except the success
    /// fast path's `calls` increment).
    buckets: [Bucket; BUCKETS],
    /// The buckets' numbers (epochs): one tenth of the window each.
    bucket_periods: Periods,
    inner: Mutex<Inner>,
    /// [`span_attributes`](Self::span_attributes) of a closed breaker with no failure.
    healthy_attributes: [KeyValue; 2],
}

/// Builds a [`CircuitBreaker`].
pub struct CircuitBreakerBuilder {
    name: Arc<str>,
    config: CircuitBreakerConfig,
    clock: SharedClock,
    rng: Option<Arc<RandomSource>>,
    metrics: Option<ResilienceMetrics>,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failure_rate: 0.5,
            minimum_calls: 20,
            window: Duration::from_secs(10),
            consecutive_failures: 5,
            slow_call: None,
            open_duration: Duration::from_secs(5),
            max_open_duration: Duration::from_secs(60),
            open_jitter: 0.1,
            half_open_probes: 1,
            mode: BreakerMode::Normal,
            invalid: None,
        }
    }
}

impl CircuitBreakerConfig {
    /// Opens when the failure rate over the window reaches `rate` (default 0.5; in `(0, 1]`).
    ///
    /// Every setter of this type remembers a refused value (the setting keeps its default)
    /// and [`validate`](Self::validate), `CircuitBreaker::builder(..).try_build()` or the
    /// registry report it as a [`ConfigError`].
    pub fn failure_rate(mut self, rate: f64) -> Self {
        if rate.is_finite() && rate > 0.0 && rate <= 1.0 {
            self.failure_rate = rate;
        } else {
            self.refuse(
                "CircuitBreakerConfig::failure_rate",
                Value::Float(rate),
                "use a rate in (0, 1] (0.5 = open when half the calls fail; default 0.5)",
            );
        }
        self
    }
    /// The rate rules apply only once the window holds this many calls (default 20; at
    /// least 1).
    pub fn minimum_calls(mut self, n: u32) -> Self {
        if n == 0 {
            self.refuse(
                "CircuitBreakerConfig::minimum_calls",
                Value::Int(0),
                "use at least 1 call (default 20)",
            );
        } else {
            self.minimum_calls = n;
        }
        self
    }
    /// The sliding window of the rate rules (default 10 s, at least 1 s).
    pub fn window(mut self, window: Duration) -> Self {
        if window < Duration::from_secs(1) {
            self.refuse(
                "CircuitBreakerConfig::window",
                Value::Duration(window),
                "use a window of at least 1 s (default 10 s)",
            );
        } else {
            self.window = window;
        }
        self
    }
    /// Opens after this many consecutive failures (default 5; 0 disables the rule).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n;
        self
    }
    /// Also opens when the share of calls slower than `threshold` reaches `rate`
    /// (default: off; `threshold` positive, `rate` in `(0, 1]`).
    pub fn slow_calls(mut self, threshold: Duration, rate: f64) -> Self {
        if threshold.is_zero() {
            self.refuse(
                "CircuitBreakerConfig::slow_calls(threshold)",
                Value::Duration(threshold),
                "use a positive threshold (every call is slower than zero)",
            );
        } else if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
            self.refuse(
                "CircuitBreakerConfig::slow_calls(rate)",
                Value::Float(rate),
                "use a rate in (0, 1] (0.5 = open when half the calls are slow)",
            );
        } else {
            self.slow_call = Some((threshold, rate));
        }
        self
    }
    /// Open duration of the first trip (default 5 s) and its cap on repeated trips
    /// (default 60 s). `first` must be positive and `max` at least `first`.
    pub fn open_duration(mut self, first: Duration, max: Duration) -> Self {
        if first.is_zero() || max < first {
            self.refuse(
                "CircuitBreakerConfig::open_duration",
                Value::Durations(first, max),
                "use a positive first open duration and a cap at least as long (default (5s, 60s))",
            );
        } else {
            self.open_duration = first;
            self.max_open_duration = max;
        }
        self
    }
    /// The share of the open duration taken off at random (default 0.1 = up to 10%; in
    /// `[0, 1]`), so that clients that tripped together do not probe together.
    pub fn open_jitter(mut self, fraction: f64) -> Self {
        if fraction.is_finite() && (0.0..=1.0).contains(&fraction) {
            self.open_jitter = fraction;
        } else {
            self.refuse(
                "CircuitBreakerConfig::open_jitter",
                Value::Float(fraction),
                "use a fraction in [0, 1] (0 = no jitter, default 0.1)",
            );
        }
        self
    }
    /// How many probes half-open admits (default 1; at least 1); all must succeed to close.
    pub fn half_open_probes(mut self, n: u32) -> Self {
        if n == 0 {
            self.refuse(
                "CircuitBreakerConfig::half_open_probes",
                Value::Int(0),
                "use at least 1 probe (default 1)",
            );
        } else {
            self.half_open_probes = n;
        }
        self
    }
    /// `Err` with the first refused setting, if any.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(&self.invalid)
    }
    /// The mode (default [`BreakerMode::Normal`]).
    pub fn mode(mut self, mode: BreakerMode) -> Self {
        self.mode = mode;
        self
    }
}

impl CircuitBreakerBuilder {
    /// The configuration.
    pub fn config(mut self, config: CircuitBreakerConfig) -> Self {
        self.config = config;
        self
    }
    /// The clock (default [`TokioClock`]).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
    /// The random source for open-duration jitter (default: seeded from the OS).
    pub fn random(mut self, rng: Arc<RandomSource>) -> Self {
        self.rng = Some(rng);
        self
    }
    /// A reproducible random source.
    pub fn seed(self, seed: u64) -> Self {
        self.random(Arc::new(RandomSource::seeded(seed)))
    }
    /// Records state and transition metrics through `metrics`.
    pub fn metrics(mut self, metrics: ResilienceMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
    /// The breaker.
    ///
    /// # Panics
    ///
    /// At setup, with the [`ConfigError`] message, when the configuration holds a refused
    /// value; [`try_build`](Self::try_build) returns the error instead.
    pub fn build(self) -> Arc<CircuitBreaker> {
        self.try_build().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The breaker, or the first refused configuration value.
    pub fn try_build(self) -> Result<Arc<CircuitBreaker>, ConfigError> {
        self.config.validate()?;
        let origin = self.clock.now();
        let breaker = CircuitBreaker {
            mode: AtomicU8::new(mode_to_u8(self.config.mode)),
            name: self.name,
            rng: self.rng.unwrap_or_default(),
            metrics: self.metrics,
            fast_state: AtomicU8::new(CLOSED),
            generation: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            consecutive: AtomicU32::new(0),
            buckets: Default::default(),
            bucket_periods: Periods::new(origin, self.config.window / BUCKETS as u32),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                trips: 0,
                open_until: origin,
                probes_in_flight: 0,
                probe_successes: 0,
            }),
            clock: self.clock,
            config: self.config,
            healthy_attributes: [
                KeyValue::new(
                    attributes::CIRCUIT_BREAKER_STATE,
                    BreakerState::Closed.as_str(),
                ),
                KeyValue::new(attributes::CIRCUIT_BREAKER_FAILURES, 0_i64),
            ],
        };
        if let Some(m) = &breaker.metrics {
            m.breaker_state.record(0, &[breaker.name_kv()]);
        }
        Ok(Arc::new(breaker))
    }
}

impl CircuitBreaker {
    /// A builder for a breaker named `name` (usually the downstream authority).
    pub fn builder(name: impl Into<Arc<str>>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder {
            name: name.into(),
            config: CircuitBreakerConfig::default(),
            clock: Arc::new(TokioClock),
            rng: None,
            metrics: None,
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// The current state (an open breaker whose open time has elapsed still reads `Open`
    /// until the next call turns it half-open).
    pub fn state(&self) -> BreakerState {
        u8_to_state(self.fast_state.load(Ordering::Acquire))
    }

    /// Failures counted in the current window.
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The current mode.
    pub fn mode(&self) -> BreakerMode {
        u8_to_mode(self.mode.load(Ordering::Relaxed))
    }

    /// Switches the mode at run time (e.g. force open during an incident).
    pub fn set_mode(&self, mode: BreakerMode) {
        self.mode.store(mode_to_u8(mode), Ordering::Relaxed);
    }

    /// Asks to make a call: a [`Permit`], or a [`CircuitOpen`] rejection (send nothing).
    #[inline]
    pub fn admit(self: &Arc<Self>) -> Result<Permit, CircuitOpen> {
        // The healthy path, inlined: a closed breaker in normal mode admits with two loads.
        if self.mode.load(Ordering::Relaxed) == mode_to_u8(BreakerMode::Normal)
            && self.fast_state.load(Ordering::Acquire) == CLOSED
        {
            let started = self.slow_call_start();
            return Ok(self.permit(self.generation.load(Ordering::Acquire), false, started));
        }
        self.admit_slow()
    }

    /// [`admit`](Self::admit) past its healthy path.
    #[inline(never)]
    fn admit_slow(self: &Arc<Self>) -> Result<Permit, CircuitOpen> {
        match self.mode() {
            BreakerMode::Disabled => return Ok(Permit::untracked()),
            BreakerMode::ForcedOpen => {
                self.count_rejection();
                return Err(CircuitOpen {
                    name: self.name.clone(),
                    state: BreakerState::Open,
                    next_probe_in: None,
                    span_pending: AtomicBool::new(false),
                });
            }
            BreakerMode::Normal | BreakerMode::MetricsOnly => {}
        }
        if self.fast_state.load(Ordering::Acquire) == CLOSED {
            let started = self.slow_call_start();
            return Ok(self.permit(self.generation.load(Ordering::Acquire), false, started));
        }
        let now = self.clock.now();
        let started = self.config.slow_call.map(|_| now);
        let metrics_only = self.mode() == BreakerMode::MetricsOnly;
        let mut transition = None;
        let result = {
            let mut inner = self.inner.lock();
            if inner.state == BreakerState::Open && now >= inner.open_until {
                transition = Some(self.enter(&mut inner, BreakerState::HalfOpen, now));
            }
            match inner.state {
                BreakerState::Closed => {
                    Ok(self.permit(self.generation.load(Ordering::Acquire), false, started))
                }
                BreakerState::HalfOpen if inner.probes_in_flight < self.config.half_open_probes => {
                    inner.probes_in_flight += 1;
                    Ok(self.permit(self.generation.load(Ordering::Acquire), true, started))
                }
                _ if metrics_only => Ok(Permit::untracked()),
                BreakerState::HalfOpen => Err(CircuitOpen {
                    name: self.name.clone(),
                    state: BreakerState::HalfOpen,
                    next_probe_in: None,
                    span_pending: AtomicBool::new(false),
                }),
                BreakerState::Open => Err(CircuitOpen {
                    name: self.name.clone(),
                    state: BreakerState::Open,
                    next_probe_in: Some(inner.open_until.saturating_duration_since(now)),
                    span_pending: AtomicBool::new(false),
                }),
            }
        };
        if let Some(t) = transition {
            self.emit(t);
        }
        if result.is_err() {
            self.count_rejection();
        }
        result
    }

    /// The attributes every guarded call carries: `circuit_breaker.state` and
    /// `circuit_breaker.failures`.
    pub fn span_attributes(&self) -> [KeyValue; 2] {
        [
            KeyValue::new(attributes::CIRCUIT_BREAKER_STATE, self.state().as_str()),
            KeyValue::new(
                attributes::CIRCUIT_BREAKER_FAILURES,
                i64::from(self.failures()),
            ),
        ]
    }

    /// [`span_attributes`](Self::span_attributes) on the healthy path (closed, no failure in
    /// the window): a set built once with the breaker, so that a call builds and drops no
    /// attribute. `None` otherwise.
    #[inline]
    pub(crate) fn healthy_span_attributes(&self) -> Option<&[KeyValue]> {
        (self.fast_state.load(Ordering::Acquire) == CLOSED
            && self.failures.load(Ordering::Relaxed) == 0)
            .then_some(&self.healthy_attributes[..])
    }

    #[inline]
    fn permit(self: &Arc<Self>, generation: u64, probe: bool, started: Option<Instant>) -> Permit {
        Permit {
            breaker: Some(self.clone()),
            generation,
            probe,
            started,
        }
    }

    /// The admission time, when the slow-call rule needs it.
    #[inline]
    fn slow_call_start(&self) -> Option<Instant> {
        self.config.slow_call.map(|_| self.clock.now())
    }

    #[inline]
    fn record(&self, generation: u64, probe: bool, started: Option<Instant>, success: bool) {
        let now = self.clock.now();
        if success && self.record_success_fast(generation, probe, now) {
            return;
        }
        self.record_slow(generation, probe, started, success, now);
    }

    /// [`record`](Self::record) past its healthy path: under the lock.
    #[inline(never)]
    fn record_slow(
        &self,
        generation: u64,
        probe: bool,
        started: Option<Instant>,
        success: bool,
        now: Instant,
    ) {
        let slow = match (self.config.slow_call, started) {
            (Some((threshold, _)), Some(started)) => {
                now.saturating_duration_since(started) >= threshold
            }
            _ => false,
        };
        let mut transition = None;
        {
            let mut inner = self.inner.lock();
            if generation != self.generation.load(Ordering::Acquire) {
                return; // admitted in an earlier state: its outcome is stale.
            }
            match inner.state {
                BreakerState::Closed => {
                    self.count(now, success, slow);
                    if self.should_trip(now) {
                        transition = Some(self.enter(&mut inner, BreakerState::Open, now));
                    }
                }
                BreakerState::HalfOpen if probe => {
                    inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                    if !success {
                        transition = Some(self.enter(&mut inner, BreakerState::Open, now));
                    } else {
                        inner.probe_successes += 1;
                        if inner.probe_successes >= self.config.half_open_probes {
                            transition = Some(self.enter(&mut inner, BreakerState::Closed, now));
                        }
                    }
                }
                BreakerState::HalfOpen | BreakerState::Open => {}
            }
        }
        if let Some(t) = transition {
            self.emit(t);
        }
    }

    fn release_probe(&self, generation: u64) {
        let mut inner = self.inner.lock();
        if generation == self.generation.load(Ordering::Acquire)
            && inner.state == BreakerState::HalfOpen
        {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
    }
}

impl Permit {
    /// Reports the outcome of the call (`true` = success for the breaker).
    #[inline(always)]
    pub fn record(mut self, success: bool) {
        if let Some(b) = self.breaker.take() {
            b.record(self.generation, self.probe, self.started, success);
        }
        // Its drop would find nothing to release (the breaker is taken, the other fields own
        // nothing): skipped, it costs a call on every success.
        std::mem::forget(self);
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    fn untracked() -> Self {
        Permit {
            breaker: None,
            generation: 0,
            probe: false,
            started: None,
        }
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        if let Some(b) = self.breaker.take()
            && self.probe
        {
            b.release_probe(self.generation);
        }
    }
}

impl CircuitOpen {
    /// The name of the breaker that rejected the call.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The breaker state at rejection (`Open` or `HalfOpen`).
    pub fn state(&self) -> BreakerState {
        self.state
    }
    /// How long until the breaker admits its next probe: `None` when forced open or when a
    /// half-open probe is in flight (the next decision comes when it completes).
    pub fn next_probe_in(&self) -> Option<Duration> {
        self.next_probe_in
    }

    /// Leaves the rejection span to whoever takes it with
    /// [`take_pending_span`](Self::take_pending_span) (or to the drop of this error).
    pub(crate) fn defer_span(self) -> Self {
        self.span_pending.store(true, Ordering::Relaxed);
        self
    }

    /// Whether the rejection span was left to the caller, who records it now (once).
    pub(crate) fn take_pending_span(&self) -> bool {
        self.span_pending.swap(false, Ordering::AcqRel)
    }
}

impl Drop for CircuitOpen {
    fn drop(&mut self) {
        if self.take_pending_span() {
            crate::breaker_layer::record_rejection(self);
        }
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.next_probe_in) {
            (BreakerState::Open, Some(d)) => write!(
                f,
                "circuit breaker `{}` is open: call not sent; next probe in {} ms",
                self.name,
                d.as_millis()
            ),
            (BreakerState::HalfOpen, _) => write!(
                f,
                "circuit breaker `{}` is half-open and its probe is in flight: call not sent; \
                 next probe when the probe completes",
                self.name
            ),
            _ => write!(
                f,
                "circuit breaker `{}` is forced open: call not sent; no probe until it is \
                 switched back to normal mode",
                self.name
            ),
        }
    }
}

impl std::error::Error for CircuitOpen {}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

// ---- helpers ----------------------------------------------------------------------------

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;
const BUCKETS: usize = 10;

struct Inner {
    state: BreakerState,
    trips: u32,
    open_until: Instant,
    probes_in_flight: u32,
    probe_successes: u32,
}

/// One tenth of the window. Atomics so that the success fast path can count a call without
/// the lock; every other write happens under the lock.
#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl Bucket {
    fn clear(&self, epoch: u64) {
        self.calls.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
        self.epoch.store(epoch, Ordering::Release);
    }
}

struct Transition {
    to: BreakerState,
    failures: u32,
    open_for: Duration,
}

impl CircuitBreaker {
    fn epoch(&self, now: Instant) -> u64 {
        self.bucket_periods.number(now)
    }

    /// The healthy path of [`record`](Self::record): a success in a closed breaker whose
    /// window holds no failure and whose current bucket is live cannot change the state, so
    /// it only counts the call (one atomic add, no lock). `false`: take the locked path.
    #[inline]
    fn record_success_fast(&self, generation: u64, probe: bool, now: Instant) -> bool {
        if probe
            || self.config.slow_call.is_some()
            || self.fast_state.load(Ordering::Acquire) != CLOSED
            || self.failures.load(Ordering::Relaxed) != 0
            || self.consecutive.load(Ordering::Relaxed) != 0
            || generation != self.generation.load(Ordering::Acquire)
        {
            return false;
        }
        let epoch = self.epoch(now);
        let bucket = &self.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch.load(Ordering::Acquire) != epoch {
            return false; // a new bucket: the locked path clears it.
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn totals(&self, now: Instant) -> (u32, u32, u32) {
        let epoch = self.epoch(now);
        self.buckets
            .iter()
            .filter(|b| {
                let e = b.epoch.load(Ordering::Acquire);
                e <= epoch && e + BUCKETS as u64 > epoch
            })
            .fold((0u32, 0u32, 0u32), |(c, f, s), b| {
                (
                    c.saturating_add(b.calls.load(Ordering::Relaxed)),
                    f.saturating_add(b.failures.load(Ordering::Relaxed)),
                    s.saturating_add(b.slow.load(Ordering::Relaxed)),
                )
            })
    }

    /// Counts one outcome (under the lock).
    fn count(&self, now: Instant, success: bool, slow: bool) {
        let epoch = self.epoch(now);
        let bucket = &self.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch.load(Ordering::Acquire) != epoch {
            bucket.clear(epoch);
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        if !success {
            bucket.failures.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            bucket.slow.fetch_add(1, Ordering::Relaxed);
        }
        let consecutive = if success {
            0
        } else {
            self.consecutive.load(Ordering::Relaxed).saturating_add(1)
        };
        self.consecutive.store(consecutive, Ordering::Relaxed);
        let (_, failures, _) = self.totals(now);
        self.failures.store(failures, Ordering::Relaxed);
    }

    fn should_trip(&self, now: Instant) -> bool {
        let c = &self.config;
        if c.consecutive_failures > 0
            && self.consecutive.load(Ordering::Relaxed) >= c.consecutive_failures
        {
            return true;
        }
        let (calls, failures, slow) = self.totals(now);
        if calls < c.minimum_calls {
            return false;
        }
        let calls = f64::from(calls);
        f64::from(failures) / calls >= c.failure_rate
            || c.slow_call
                .is_some_and(|(_, rate)| f64::from(slow) / calls >= rate)
    }

    /// Moves to `to` under the lock; returns what to emit once the lock is released.
    fn enter(&self, inner: &mut Inner, to: BreakerState, now: Instant) -> Transition {
        let failures = self.failures.load(Ordering::Relaxed);
        let mut open_for = Duration::ZERO;
        match to {
            BreakerState::Open => {
                inner.trips = inner.trips.saturating_add(1);
                let c = &self.config;
                let grown = c
                    .open_duration
                    .saturating_mul(1u32 << (inner.trips - 1).min(16))
                    .min(c.max_open_duration);
                open_for = grown.mul_f64(1.0 - c.open_jitter * self.rng.unit());
                // A configured duration beyond the clock's range means "until further notice".
                inner.open_until = now
                    .checked_add(open_for)
                    .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
            }
            BreakerState::HalfOpen => {
                inner.probes_in_flight = 0;
                inner.probe_successes = 0;
            }
            BreakerState::Closed => {
                inner.trips = 0;
                self.consecutive.store(0, Ordering::Relaxed);
                self.buckets.iter().for_each(|b| b.clear(0));
                self.failures.store(0, Ordering::Relaxed);
            }
        }
        inner.state = to;
        self.generation.fetch_add(1, Ordering::AcqRel);
        let fast = match to {
            BreakerState::Closed => CLOSED,
            BreakerState::Open => OPEN,
            BreakerState::HalfOpen => HALF_OPEN,
        };
        self.fast_state.store(fast, Ordering::Release);
        Transition {
            to,
            failures,
            open_for,
        }
    }

    fn emit(&self, t: Transition) {
        let name: &str = &self.name;
        match t.to {
            BreakerState::Open => tracing::event!(
                name: "circuit_breaker.opened",
                target: "otel_resilience",
                tracing::Level::WARN,
                {
                    { attributes::CIRCUIT_BREAKER_NAME } = name,
                    { attributes::CIRCUIT_BREAKER_STATE } = "open",
                    { attributes::CIRCUIT_BREAKER_FAILURES } = t.failures,
                    { attributes::CIRCUIT_BREAKER_NEXT_PROBE_MS } = t.open_for.as_millis() as u64,
                },
                "circuit_breaker.opened"
            ),
            BreakerState::HalfOpen => tracing::event!(
                name: "circuit_breaker.half_opened",
                target: "otel_resilience",
                tracing::Level::INFO,
                {
                    { attributes::CIRCUIT_BREAKER_NAME } = name,
                    { attributes::CIRCUIT_BREAKER_STATE } = "half_open",
                },
                "circuit_breaker.half_opened"
            ),
            BreakerState::Closed => tracing::event!(
                name: "circuit_breaker.closed",
                target: "otel_resilience",
                tracing::Level::INFO,
                {
                    { attributes::CIRCUIT_BREAKER_NAME } = name,
                    { attributes::CIRCUIT_BREAKER_STATE } = "closed",
                },
                "circuit_breaker.closed"
            ),
        }
        if let Some(m) = &self.metrics {
            let state_value = match t.to {
                BreakerState::Closed => 0,
                BreakerState::Open => 1,
                BreakerState::HalfOpen => 2,
            };
            m.breaker_state.record(state_value, &[self.name_kv()]);
            m.transitions.add(
                1,
                &[
                    self.name_kv(),
                    KeyValue::new(attributes::CIRCUIT_BREAKER_STATE, t.to.as_str()),
                ],
            );
        }
    }

    fn count_rejection(&self) {
        if let Some(m) = &self.metrics {
            m.rejections.add(1, &[self.name_kv()]);
        }
    }

    fn name_kv(&self) -> KeyValue {
        KeyValue::new(attributes::CIRCUIT_BREAKER_NAME, self.name.to_string())
    }
}

impl CircuitBreakerConfig {
    fn refuse(&mut self, setting: &'static str, value: Value, fix: &'static str) {
        refuse(&mut self.invalid, ConfigError::new(setting, value, fix));
    }
}

fn u8_to_state(v: u8) -> BreakerState {
    match v {
        OPEN => BreakerState::Open,
        HALF_OPEN => BreakerState::HalfOpen,
        _ => BreakerState::Closed,
    }
}

const fn mode_to_u8(mode: BreakerMode) -> u8 {
    match mode {
        BreakerMode::Normal => 0,
        BreakerMode::ForcedOpen => 1,
        BreakerMode::Disabled => 2,
        BreakerMode::MetricsOnly => 3,
    }
}

fn u8_to_mode(v: u8) -> BreakerMode {
    match v {
        1 => BreakerMode::ForcedOpen,
        2 => BreakerMode::Disabled,
        3 => BreakerMode::MetricsOnly,
        _ => BreakerMode::Normal,
    }
}
