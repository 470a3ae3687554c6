//! The tower retry adapter: [`RetryLayer`] wraps a client `Service<http::Request<B>>`
//! (a hyper-util `Client`, a tonic `Channel`, or a stack ending in one) with a
//! [`RetryPolicy`], a [`RetryBudget`] (on by default) and telemetry.
//!
//! Telemetry of one logical call:
//! - an INTERNAL span named `retry {method}` (target `otel_resilience`, level INFO) with
//!   `retry.max_attempts`, `retry.attempts` (the first attempt included),
//!   `retry.budget_exhausted`, and on final failure `error.type` and status error. It is
//!   opened lazily, when the first attempt fails (an error status, a transport error, a
//!   breaker rejection), whether the call is then retried or not: a call whose first attempt
//!   succeeds, the healthy path, has no retry span at all, only its attempt's client span, as
//!   the OpenTelemetry HTTP conventions describe an attempt. The retry span is a child of the
//!   span current when the first attempt failed (the caller's), so the first attempt's client
//!   span, already ended by then, is its sibling just before it, and every retry's client span
//!   is its child; a breaker rejection of any attempt is recorded under it. A call made
//!   outside any span (no current OpenTelemetry span context) opens its retry span at once,
//!   as the root of all its attempts: opened later it would start a second trace, apart from
//!   the first attempt's;
//! - one `retry.attempt` event per retry with `retry.attempt` (the number of the attempt about
//!   to be sent), `retry.delay_ms`, `retry.reason` (the `error.type` of the failed attempt)
//!   and `retry.delay_source` (`backoff`, `retry_after`, `pushback`);
//! - a `retry.budget_exhausted` event when the budget refused a retry;
//! - each retry request carries `otel_core::extensions::ResendCount(n)`, which the tracing
//!   client layer below records as `http.request.resend_count` on that attempt's client span.
//!
//! ```
//! use std::time::Duration;
//! use otel_resilience::{RetryLayer, RetryPolicy, backoff::Backoff};
//!
//! let layer = RetryLayer::builder()
//!     .policy(RetryPolicy::default().max_attempts(3).backoff(Backoff::exponential(Duration::from_millis(50))))
//!     .build();
//! let service = tower::ServiceBuilder::new()
//!     .layer(layer)
//!     .service_fn(|_req: http::Request<http_body_util::Full<bytes::Bytes>>| async {
//!         Ok::<_, std::io::Error>(http::Response::new(()))
//!     });
//! # let _ = service;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::TraceContextExt;
use otel_core::attributes::{self, error_type, semconv};
use otel_core::extensions::ResendCount;
use pin_project::pin_project;
use tower::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker_layer::{DeferRejections, record_deferred_rejection};
use crate::budget::RetryBudget;
use crate::clock::{SharedClock, TokioClock};
use crate::config_error::ConfigError;
use crate::metrics::ResilienceMetrics;
use crate::random::RandomSource;
use crate::replay_body::{BufferBody, Buffered, ReplayBody};
use crate::retry_policy::{Decision, DelaySource, Failure, GiveUpReason, RetryPolicy, RetryState};

/// Retries failed attempts of the wrapped service by its [`RetryPolicy`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RetryLayer {
    shared: Arc<RetryShared>,
}

/// Builds a [`RetryLayer`] (also used by the reqwest middleware).
pub struct RetryLayerBuilder {
    policy: RetryPolicy,
    budget: Option<RetryBudget>,
    clock: SharedClock,
    rng: Option<RandomSource>,
    metrics: Option<ResilienceMetrics>,
}

/// The service made by [`RetryLayer`].
#[derive(Clone, Debug)]
pub struct RetryService<S> {
    inner: S,
    shared: Arc<RetryShared>,
}

/// The error returned when the retry budget refused a retry after a transport failure (a
/// failed *response* is returned as is). Its source is the last attempt's error.
#[derive(Debug, thiserror::Error)]
#[error("retry budget exhausted after {attempts} attempt(s): {source}")]
pub struct RetryBudgetExhausted {
    /// Attempts made.
    pub attempts: u32,
    /// The error of the last attempt.
    #[source]
    pub source: BoxError,
}

impl RetryLayer {
    /// A layer with the default policy and budget.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder.
    pub fn builder() -> RetryLayerBuilder {
        RetryLayerBuilder {
            policy: RetryPolicy::default(),
            budget: Some(RetryBudget::default()),
            clock: Arc::new(TokioClock),
            rng: None,
            metrics: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }

    #[cfg(feature = "reqwest")]
    pub(crate) fn shared(&self) -> &Arc<RetryShared> {
        &self.shared
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryLayerBuilder {
    /// The retry policy (default [`RetryPolicy::default`]).
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// The retry budget (default [`RetryBudget::default`]: 20% over 10 s, floor 10/s).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }
    /// Turns the retry budget off (not recommended: every retry then multiplies load).
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self
    }
    /// The clock (default [`TokioClock`]); the budget keeps its own clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
    /// A reproducible jitter source.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Some(RandomSource::seeded(seed));
        self
    }
    /// The meter provider of the retry metrics (default: the global one).
    pub fn meter_provider<P: MeterProvider + ?Sized>(mut self, provider: &P) -> Self {
        self.metrics = Some(ResilienceMetrics::new(provider));
        self
    }
    /// The layer.
    ///
    /// # Panics
    ///
    /// At setup, with the [`ConfigError`] message, when the policy, its backoff or the budget
    /// holds a refused value; [`try_build`](Self::try_build) returns the error instead.
    pub fn build(self) -> RetryLayer {
        self.try_build().unwrap_or_else(|e| panic!("{e}"))
    }
    /// The layer, or the first refused configuration value.
    pub fn try_build(self) -> Result<RetryLayer, ConfigError> {
        self.policy.validate()?;
        if let Some(budget) = &self.budget {
            budget.validate()?;
        }
        Ok(RetryLayer {
            shared: Arc::new(RetryShared {
                policy: self.policy,
                budget: self.budget,
                clock: self.clock,
                rng: self.rng.unwrap_or_default(),
                metrics: self.metrics.unwrap_or_else(ResilienceMetrics::global),
                attempt_attributes: (1..=PREBUILT_ATTEMPTS)
                    .map(|attempt| [attempt_attribute(attempt)])
                    .collect(),
            }),
        })
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;
    fn layer(&self, inner: S) -> RetryService<S> {
        RetryService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

impl<S, B, RB> Service<Request<B>> for RetryService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    B::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The service that was polled ready goes into the future; a clone stays here.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let call = shared.start(req.method());
        let (parts, body) = req.into_parts();
        let limit = shared.policy.get_max_replay_body();
        let (state, replay) = match BufferBody::immediate(body, limit) {
            Ok(Buffered::Replayable(bytes)) => (State::First { once: None }, Some(bytes)),
            Ok(Buffered::Once(body)) => (State::First { once: Some(body) }, None),
            Err(body) => (
                State::Buffering {
                    buffer: BufferBody::new(body, limit),
                },
                None,
            ),
        };
        ResponseFuture {
            state,
            service,
            shared,
            parts: Some(parts),
            replay,
            call,
        }
    }
}

/// The future of [`RetryService`]: buffers the body, sends, waits, resends.
#[pin_project]
pub struct ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[pin]
    state: State<S::Future, B>,
    service: S,
    shared: Arc<RetryShared>,
    /// The request head, kept for the retries (`None` once given to an attempt that cannot
    /// be retried).
    parts: Option<http::request::Parts>,
    /// The buffered body, when it can be sent again.
    replay: Option<Bytes>,
    call: LogicalCall,
}

#[pin_project(project = StateProj)]
enum State<F, B> {
    Buffering {
        #[pin]
        buffer: BufferBody<B>,
    },
    /// The first attempt, to be sent (its service is ready): with the body `once` when it
    /// cannot be replayed, else with the `replay` bytes.
    First { once: Option<B> },
    /// Waiting for the service to be ready before a retry.
    Ready,
    Calling {
        #[pin]
        future: F,
    },
    /// Boxed: a `Sleep` is larger than the rest of the future, which every call moves.
    Sleeping { sleep: Pin<Box<tokio::time::Sleep>> },
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The logical-call span exists once an attempt failed; retries run inside it.
        let mut _entered = this.call.span().cloned().map(tracing::Span::entered);
        loop {
            match this.state.as_mut().project() {
                StateProj::Buffering { buffer } => {
                    let buffered = match ready!(buffer.poll(cx)) {
                        Ok(b) => b,
                        Err(e) => {
                            let e: BoxError = e.into();
                            _entered = this.call.open_span(this.shared);
                            this.call.finish_error(&Failure::from_error(&*e), false);
                            return Poll::Ready(Err(e));
                        }
                    };
                    match buffered {
                        Buffered::Replayable(bytes) => {
                            *this.replay = Some(bytes);
                            this.state.set(State::First { once: None });
                        }
                        Buffered::Once(body) => this.state.set(State::First { once: Some(body) }),
                    }
                }
                StateProj::First { once } => {
                    // The service is already ready.
                    let (body, resendable) = match once.take() {
                        Some(body) => (body, false),
                        None => {
                            let bytes = replay_bytes(this.replay);
                            (
                                B::from_bytes(bytes),
                                this.shared.policy.get_max_attempts() > 1,
                            )
                        }
                    };
                    let (service, call, shared) =
                        (&mut *this.service, &mut *this.call, &**this.shared);
                    let future = match &mut *this.parts {
                        Some(parts) if resendable => {
                            send(service, call, shared, || copy_request(parts, body))
                        }
                        // Never resent: the head is not copied.
                        parts => send(service, call, shared, || {
                            let parts = parts.take().expect("the first attempt has the parts");
                            Request::from_parts(parts, body)
                        }),
                    };
                    this.state.set(State::Calling { future });
                }
                StateProj::Ready => {
                    if let Err(e) = ready!(this.service.poll_ready(cx)) {
                        let e: BoxError = e.into();
                        _entered = this.call.open_span(this.shared);
                        this.call.finish_error(&Failure::from_error(&*e), false);
                        return Poll::Ready(Err(e));
                    }
                    let Some(parts) = this.parts.as_ref() else {
                        unreachable!("a retry keeps the parts")
                    };
                    let bytes = replay_bytes(this.replay);
                    let resend_count = ResendCount(this.call.attempts);
                    let future = send(this.service, this.call, this.shared, || {
                        let mut req = copy_request(parts, B::from_bytes(bytes));
                        req.extensions_mut().insert(resend_count);
                        req
                    });
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let polled = {
                        let _defer = DeferRejections::enter();
                        future.poll(cx)
                    };
                    // Each arm builds its output from its own binding: on the healthy path the
                    // response goes out as it came in, not moved through intermediate results.
                    let (result, failure) = match polled {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(resp)) => {
                            let classified = this.shared.policy.classify_response_with(
                                resp.status(),
                                resp.headers(),
                                || this.shared.clock.system_now(),
                            );
                            let Some(failure) = classified else {
                                this.shared.record_success();
                                this.call.finish_ok();
                                return Poll::Ready(Ok(resp));
                            };
                            (Ok(resp), failure)
                        }
                        Poll::Ready(Err(e)) => {
                            let e: BoxError = e.into();
                            let failure = Failure::from_error(&*e);
                            (Err(e), failure)
                        }
                    };
                    if _entered.is_none() {
                        _entered = this.call.open_span(this.shared);
                    }
                    if let Err(e) = &result {
                        record_deferred_rejection(&**e);
                    }
                    let replayable = this.replay.is_some() && this.parts.is_some();
                    match this.shared.on_failure(this.call, &failure, replayable) {
                        Some(delay) if delay.is_zero() => this.state.set(State::Ready),
                        Some(delay) => {
                            this.state.set(State::Sleeping {
                                sleep: Box::pin(tokio::time::sleep(delay)),
                            });
                        }
                        None => {
                            return Poll::Ready(match result {
                                Ok(resp) => Ok(resp),
                                Err(e) => Err(this.call.wrap_error(e)),
                            });
                        }
                    }
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state.set(State::Ready);
                }
            }
        }
    }
}

// ---- shared with the reqwest middleware -------------------------------------------------

pub(crate) struct RetryShared {
    pub(crate) policy: RetryPolicy,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) clock: SharedClock,
    pub(crate) rng: RandomSource,
    pub(crate) metrics: ResilienceMetrics,
    /// The `retry.attempt` attribute set of attempts 1..=[`PREBUILT_ATTEMPTS`], built once:
    /// counting an attempt then builds and drops no attribute.
    attempt_attributes: Box<[[KeyValue; 1]]>,
}

/// How many attempt numbers have a pre-built attribute set (later ones build theirs).
const PREBUILT_ATTEMPTS: u32 = 8;

fn attempt_attribute(attempt: u32) -> KeyValue {
    KeyValue::new(attributes::RETRY_ATTEMPT, i64::from(attempt))
}

impl std::fmt::Debug for RetryShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryShared")
            .field("policy", &self.policy)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// The state and span of one logical call.
pub(crate) struct LogicalCall {
    method: Method,
    /// When the call started: read only for the policy's deadline, so taken only when one is
    /// set (otherwise when the first attempt failed).
    started: Option<Instant>,
    /// Attempts made so far.
    pub(crate) attempts: u32,
    /// What only a call past its healthy path needs, boxed so that the healthy path (which
    /// moves this struct with its future) carries one word: made when an attempt fails, or at
    /// the start of a call made outside any span.
    unhealthy: Option<Box<Unhealthy>>,
}

/// The part of a [`LogicalCall`] that a call whose first attempt succeeds never needs.
#[derive(Default)]
struct Unhealthy {
    /// The `retry {method}` span, opened when an attempt first fails.
    span: Option<tracing::Span>,
    /// The delay waited before the latest attempt.
    previous_delay: Duration,
    budget_exhausted: bool,
}

impl RetryShared {
    /// Counts the request in the budget and starts the call. Under a current span its own
    /// span waits for a failure; a call made outside any span opens it at once, so that its
    /// attempts share one trace (see the module docs).
    #[inline]
    pub(crate) fn start(&self, method: &Method) -> LogicalCall {
        if let Some(b) = &self.budget {
            b.deposit();
        }
        let mut call = LogicalCall {
            method: method.clone(),
            started: self.policy.get_deadline().map(|_| self.clock.now()),
            attempts: 0,
            unhealthy: None,
        };
        if !has_current_span() {
            call.open_root_span(self);
        }
        call
    }

    #[inline(always)]
    pub(crate) fn count_attempt(&self, attempt: u32) {
        let prebuilt = usize::try_from(attempt)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.attempt_attributes.get(i));
        match prebuilt {
            Some(attributes) => self.metrics.attempts.add(1, attributes),
            None => self.metrics.attempts.add(1, &[attempt_attribute(attempt)]),
        }
    }

    #[inline]
    pub(crate) fn record_success(&self) {
        if let Some(b) = &self.budget {
            b.record_attempt(true);
        }
    }

    /// After a failed attempt (the call's span is open and entered): the delay before the
    /// next one, or `None` to give up (the span is then finished with the failure).
    pub(crate) fn on_failure(
        &self,
        call: &mut LogicalCall,
        failure: &Failure,
        replayable: bool,
    ) -> Option<Duration> {
        if let Some(b) = &self.budget
            && self.policy.is_retryable(&failure.kind)
        {
            // Token-bucket mode counts only the failures a retry would answer (gRPC rule).
            b.record_attempt(false);
        }
        let now = self.clock.now();
        let state = RetryState {
            started: *call.started.get_or_insert(now),
            attempts: call.attempts,
            previous_delay: call
                .unhealthy
                .as_ref()
                .map_or(Duration::ZERO, |u| u.previous_delay),
        };
        let mut decision = self
            .rng
            .with(|rng| self.policy.decide(&state, &call.method, failure, now, rng));
        if matches!(decision, Decision::Retry { .. }) && !replayable {
            decision = Decision::GiveUp(GiveUpReason::BodyNotReplayable);
        }
        if matches!(decision, Decision::Retry { .. })
            && let Some(b) = &self.budget
            && !b.try_withdraw()
        {
            decision = Decision::GiveUp(GiveUpReason::BudgetExhausted);
        }
        match decision {
            Decision::Retry { delay, source } => {
                call.unhealthy().previous_delay = delay;
                emit_retry_event(call.attempts + 1, delay, failure, source);
                Some(delay)
            }
            Decision::GiveUp(reason) => {
                let exhausted = reason == GiveUpReason::BudgetExhausted;
                if exhausted {
                    self.metrics.budget_rejections.add(1, &[]);
                    tracing::event!(
                        name: "retry.budget_exhausted",
                        target: "otel_resilience",
                        tracing::Level::WARN,
                        {
                            { attributes::RETRY_ATTEMPTS } = i64::from(call.attempts),
                            { attributes::RETRY_REASON } = %failure.error_type(),
                        },
                        "retry.budget_exhausted"
                    );
                }
                call.finish_error(failure, exhausted);
                None
            }
        }
    }
}

impl LogicalCall {
    /// The span of a call made outside any span, opened at once (see
    /// [`RetryShared::start`]); kept only if a subscriber wants it.
    #[cold]
    #[inline(never)]
    fn open_root_span(&mut self, shared: &RetryShared) {
        let span = self.new_span(shared);
        // No subscriber wants it: nothing to record, on the healthy path or later.
        if !span.is_disabled() {
            self.unhealthy().span = Some(span);
        }
    }

    /// The `retry {method}` span, once opened.
    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        self.unhealthy.as_ref().and_then(|u| u.span.as_ref())
    }

    fn unhealthy(&mut self) -> &mut Unhealthy {
        self.unhealthy.get_or_insert_with(Box::default)
    }

    /// Opens the `retry {method}` span (once), under the current span, and returns it
    /// entered.
    pub(crate) fn open_span(&mut self, shared: &RetryShared) -> Option<tracing::span::EnteredSpan> {
        Some(self.ensure_span(shared).clone().entered())
    }

    /// The `retry {method}` span, opened under the current span if it is not open yet.
    fn ensure_span(&mut self, shared: &RetryShared) -> &tracing::Span {
        if self.span().is_none() {
            let span = self.new_span(shared);
            self.unhealthy().span = Some(span);
        }
        self.span().expect("just opened")
    }

    /// A new `retry {method}` span under the current span.
    fn new_span(&self, shared: &RetryShared) -> tracing::Span {
        let span = tracing::info_span!(
            target: "otel_resilience",
            "retry",
            otel.name = span_name(&self.method),
            otel.kind = "internal",
            otel.status_code = tracing::field::Empty,
            { attributes::RETRY_MAX_ATTEMPTS } = i64::from(shared.policy.get_max_attempts()),
            { attributes::RETRY_ATTEMPTS } = tracing::field::Empty,
            { attributes::RETRY_BUDGET_EXHAUSTED } = tracing::field::Empty,
            { semconv::attribute::ERROR_TYPE } = tracing::field::Empty,
            { attributes::REQUEST_ID } = tracing::field::Empty,
        );
        record_request_id(&span);
        span
    }

    #[inline]
    pub(crate) fn finish_ok(&self) {
        // Without a span the first attempt succeeded: its client span tells it all.
        if let Some(span) = self.span() {
            span.record(attributes::RETRY_ATTEMPTS, i64::from(self.attempts));
            span.record(attributes::RETRY_BUDGET_EXHAUSTED, false);
        }
    }

    pub(crate) fn finish_error(&mut self, failure: &Failure, budget_exhausted: bool) {
        self.unhealthy().budget_exhausted = budget_exhausted;
        let Some(span) = self.span() else { return };
        span.record(attributes::RETRY_ATTEMPTS, i64::from(self.attempts));
        span.record(attributes::RETRY_BUDGET_EXHAUSTED, budget_exhausted);
        let error_type = if budget_exhausted {
            std::borrow::Cow::Borrowed(error_type::RETRY_BUDGET_EXHAUSTED)
        } else {
            failure.error_type()
        };
        span.record(semconv::attribute::ERROR_TYPE, &*error_type);
        span.record("otel.status_code", "ERROR");
    }

    /// Whether the budget stopped the call.
    pub(crate) fn budget_exhausted(&self) -> bool {
        self.unhealthy.as_ref().is_some_and(|u| u.budget_exhausted)
    }

    /// Wraps the last error in [`RetryBudgetExhausted`] when the budget stopped the call.
    pub(crate) fn wrap_error(&self, e: BoxError) -> BoxError {
        if self.budget_exhausted() {
            Box::new(RetryBudgetExhausted {
                attempts: self.attempts,
                source: e,
            })
        } else {
            e
        }
    }
}

// ---- helpers ----------------------------------------------------------------------------

/// Sends the next attempt (its service is ready), built by `request`, and counts it. The
/// request is built as the argument of the call, so that it is not moved on the way.
#[inline(always)]
fn send<S: Service<Request<B>>, B>(
    service: &mut S,
    call: &mut LogicalCall,
    shared: &RetryShared,
    request: impl FnOnce() -> Request<B>,
) -> S::Future {
    call.attempts += 1;
    shared.count_attempt(call.attempts);
    let _defer = DeferRejections::enter();
    service.call(request())
}

/// The bytes to send again: an empty body (the usual one, a GET) is not cloned.
#[inline]
fn replay_bytes(replay: &Option<Bytes>) -> Bytes {
    match replay {
        Some(bytes) if !bytes.is_empty() => bytes.clone(),
        _ => Bytes::new(),
    }
}

/// A request with a copy of the head `parts` and `body`, built in place: the head is not
/// copied twice, and an empty header map or extension set is not cloned (an empty one is
/// what a new request has).
#[inline(always)]
fn copy_request<B>(parts: &http::request::Parts, body: B) -> Request<B> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    if !parts.headers.is_empty() {
        *req.headers_mut() = parts.headers.clone();
    }
    if !parts.extensions.is_empty() {
        *req.extensions_mut() = parts.extensions.clone();
    }
    req
}

fn emit_retry_event(attempt: u32, delay: Duration, failure: &Failure, source: DelaySource) {
    tracing::event!(
        name: "retry.attempt",
        target: "otel_resilience",
        tracing::Level::INFO,
        {
            { attributes::RETRY_ATTEMPT } = i64::from(attempt),
            { attributes::RETRY_DELAY_MS } = delay.as_millis() as i64,
            { attributes::RETRY_REASON } = %failure.error_type(),
            { attributes::RETRY_DELAY_SOURCE } = source.as_str(),
        },
        "retry.attempt"
    );
}

/// `retry {method}`, from a static table so that no name is allocated per call.
pub(crate) fn span_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "retry GET",
        Method::POST => "retry POST",
        Method::PUT => "retry PUT",
        Method::DELETE => "retry DELETE",
        Method::HEAD => "retry HEAD",
        Method::OPTIONS => "retry OPTIONS",
        Method::PATCH => "retry PATCH",
        Method::TRACE => "retry TRACE",
        Method::CONNECT => "retry CONNECT",
        _ => "retry _OTHER",
    }
}

/// Whether a span is current, to which the first attempt's client span and a retry span
/// opened later would both belong: a valid current OpenTelemetry span context (the bridge
/// makes an entered `tracing` span's context current). A few loads, no allocation.
#[inline]
fn has_current_span() -> bool {
    opentelemetry::Context::map_current(|cx| cx.span().span_context().is_valid())
}

/// Records the request id of the request being served (if any) on `span`, so the id a user
/// quotes leads to the retries and breaker rejections of that request too.
pub(crate) fn record_request_id(span: &tracing::Span) {
    if span.is_disabled() {
        return;
    }
    if let Some(id) = otel_core::RequestId::current() {
        span.record(attributes::REQUEST_ID, id.as_str());
    }
}
