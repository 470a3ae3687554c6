//! The tower retry adapter: [`RetryLayer`] wraps a client `Service<http::Request<B>>`
//! (a hyper-util `Client`, a tonic `Channel`, or a stack ending in one) with a
//! [`RetryPolicy`], a [`RetryBudget`] (on by default) and telemetry.
//!
//! Telemetry of one logical call:
//! - an INTERNAL span named `retry {method}` (target `otel_resilience`, level INFO) around all
//!   attempts, with `retry.max_attempts`, `retry.attempts`, `retry.budget_exhausted`, and on
//!   final failure `error.type` and status error;
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
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use otel_core::attributes::{self, error_type, semconv};
use otel_core::extensions::ResendCount;
use pin_project::pin_project;
use tower::BoxError;
use tower_layer::Layer;
use tower_service::Service;

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
        let state = match BufferBody::immediate(body, limit) {
            Ok(buffered) => State::Ready {
                first: Some(buffered),
            },
            Err(body) => State::Buffering {
                buffer: BufferBody::new(body, limit),
            },
        };
        ResponseFuture {
            state,
            service,
            shared,
            parts,
            replay: None,
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
    parts: http::request::Parts,
    replay: Option<Bytes>,
    call: LogicalCall,
}

#[pin_project(project = StateProj)]
enum State<F, B> {
    Buffering {
        #[pin]
        buffer: BufferBody<B>,
    },
    /// Waiting for the service to be ready (before a retry; the first attempt is ready).
    Ready { first: Option<Buffered<B>> },
    Calling {
        #[pin]
        future: F,
    },
    Sleeping {
        #[pin]
        sleep: tokio::time::Sleep,
    },
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
        let span = this.call.span.clone();
        let _entered = span.enter();
        loop {
            match this.state.as_mut().project() {
                StateProj::Buffering { buffer } => {
                    let buffered = match ready!(buffer.poll(cx)) {
                        Ok(b) => b,
                        Err(e) => {
                            let e: BoxError = e.into();
                            this.call.finish_error(&Failure::from_error(&*e), false);
                            return Poll::Ready(Err(e));
                        }
                    };
                    this.state.set(State::Ready {
                        first: Some(buffered),
                    });
                }
                StateProj::Ready { first } => {
                    let req = match first.take() {
                        Some(buffered) => {
                            // The first attempt: the service is already ready.
                            let body = match buffered {
                                Buffered::Replayable(bytes) => {
                                    let body = B::from_bytes(bytes.clone());
                                    *this.replay = Some(bytes);
                                    body
                                }
                                Buffered::Once(body) => body,
                            };
                            attempt_request(this.parts, body, 0)
                        }
                        None => {
                            if let Err(e) = ready!(this.service.poll_ready(cx)) {
                                let e: BoxError = e.into();
                                this.call.finish_error(&Failure::from_error(&*e), false);
                                return Poll::Ready(Err(e));
                            }
                            let bytes = this.replay.clone().unwrap_or_default();
                            attempt_request(
                                this.parts,
                                B::from_bytes(bytes),
                                this.call.state.attempts,
                            )
                        }
                    };
                    this.call.state.attempts += 1;
                    this.shared.count_attempt(this.call.state.attempts);
                    let future = this.service.call(req);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx)).map_err(Into::<BoxError>::into);
                    let failure = match &result {
                        Ok(resp) => this.shared.policy.classify_response(
                            resp.status(),
                            resp.headers(),
                            this.shared.clock.system_now(),
                        ),
                        Err(e) => Some(Failure::from_error(&**e)),
                    };
                    let Some(failure) = failure else {
                        this.shared.record_success();
                        this.call.finish_ok();
                        return Poll::Ready(result);
                    };
                    let replayable = this.replay.is_some();
                    match this.shared.on_failure(
                        this.call,
                        &this.parts.method,
                        &failure,
                        replayable,
                    ) {
                        Some(delay) if delay.is_zero() => {
                            this.state.set(State::Ready { first: None });
                        }
                        Some(delay) => {
                            this.state.set(State::Sleeping {
                                sleep: tokio::time::sleep(delay),
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
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready { first: None });
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
    pub(crate) span: tracing::Span,
    pub(crate) state: RetryState,
    budget_exhausted: bool,
}

impl RetryShared {
    /// Opens the logical-call span and counts the request in the budget.
    pub(crate) fn start(&self, method: &Method) -> LogicalCall {
        if let Some(b) = &self.budget {
            b.deposit();
        }
        let span = tracing::info_span!(
            target: "otel_resilience",
            "retry",
            otel.name = span_name(method),
            otel.kind = "internal",
            otel.status_code = tracing::field::Empty,
            { attributes::RETRY_MAX_ATTEMPTS } = i64::from(self.policy.get_max_attempts()),
            { attributes::RETRY_ATTEMPTS } = tracing::field::Empty,
            { attributes::RETRY_BUDGET_EXHAUSTED } = tracing::field::Empty,
            { semconv::attribute::ERROR_TYPE } = tracing::field::Empty,
            { attributes::REQUEST_ID } = tracing::field::Empty,
        );
        record_request_id(&span);
        LogicalCall {
            span,
            state: RetryState::new(self.clock.now()),
            budget_exhausted: false,
        }
    }

    pub(crate) fn count_attempt(&self, attempt: u32) {
        self.metrics.attempts.add(
            1,
            &[KeyValue::new(attributes::RETRY_ATTEMPT, i64::from(attempt))],
        );
    }

    pub(crate) fn record_success(&self) {
        if let Some(b) = &self.budget {
            b.record_attempt(true);
        }
    }

    /// After a failed attempt: the delay before the next one, or `None` to give up (the
    /// span is then finished with the failure).
    pub(crate) fn on_failure(
        &self,
        call: &mut LogicalCall,
        method: &Method,
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
        let mut decision = self
            .rng
            .with(|rng| self.policy.decide(&call.state, method, failure, now, rng));
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
                call.state.previous_delay = delay;
                emit_retry_event(call.state.attempts + 1, delay, failure, source);
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
                            { attributes::RETRY_ATTEMPTS } = i64::from(call.state.attempts),
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
    pub(crate) fn finish_ok(&self) {
        self.span
            .record(attributes::RETRY_ATTEMPTS, i64::from(self.state.attempts));
        self.span.record(attributes::RETRY_BUDGET_EXHAUSTED, false);
    }

    pub(crate) fn finish_error(&mut self, failure: &Failure, budget_exhausted: bool) {
        self.budget_exhausted = budget_exhausted;
        self.span
            .record(attributes::RETRY_ATTEMPTS, i64::from(self.state.attempts));
        self.span
            .record(attributes::RETRY_BUDGET_EXHAUSTED, budget_exhausted);
        let error_type = if budget_exhausted {
            std::borrow::Cow::Borrowed(error_type::RETRY_BUDGET_EXHAUSTED)
        } else {
            failure.error_type()
        };
        self.span
            .record(semconv::attribute::ERROR_TYPE, &*error_type);
        self.span.record("otel.status_code", "ERROR");
    }

    /// Whether the budget stopped the call.
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn budget_exhausted(&self) -> bool {
        self.budget_exhausted
    }

    /// Wraps the last error in [`RetryBudgetExhausted`] when the budget stopped the call.
    pub(crate) fn wrap_error(&self, e: BoxError) -> BoxError {
        if self.budget_exhausted {
            Box::new(RetryBudgetExhausted {
                attempts: self.state.attempts,
                source: e,
            })
        } else {
            e
        }
    }
}

// ---- helpers ----------------------------------------------------------------------------

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

/// Builds the request of one attempt from the kept parts; `resends` > 0 marks a retry.
fn attempt_request<B>(parts: &http::request::Parts, body: B, resends: u32) -> Request<B> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    *req.extensions_mut() = parts.extensions.clone();
    if resends > 0 {
        req.extensions_mut().insert(ResendCount(resends));
    }
    req
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
