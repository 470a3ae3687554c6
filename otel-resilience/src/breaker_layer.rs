//! The tower circuit-breaker adapter: [`CircuitBreakerLayer`] guards a client
//! `Service<http::Request<B>>` with one breaker per downstream authority (from a
//! [`CircuitBreakerRegistry`]).
//!
//! - Every admitted call carries `circuit_breaker.state` and `circuit_breaker.failures`,
//!   recorded by the tracing client layer below on that attempt's client span. They are
//!   handed off with [`SpanAttributes::hand_off`] (no allocation per call), which needs the
//!   client layer to build its span inside the breaker's `call`, as every layer of the
//!   recommended stack does; with a `tower::buffer` (or anything that moves the call to
//!   another task) between them, switch to the request extension with
//!   [`CircuitBreakerLayer::attributes_in_extensions`].
//! - A rejected call sends nothing, so no client span exists: the layer records a short
//!   INTERNAL span `circuit_breaker {name}` (target `otel_resilience`) with
//!   `error.type = circuit_open`, `circuit_breaker.state`, `circuit_breaker.name`,
//!   `circuit_breaker.next_probe_ms` and status error, under the current span (under a
//!   [`RetryLayer`](crate::RetryLayer), under its logical-call span, which the retry layer
//!   opens first), and fails fast with [`CircuitOpen`].
//! - Failures for the breaker: transport errors and timeouts, HTTP 5xx, and on gRPC
//!   responses (`content-type: application/grpc*`) `grpc-status` `UNKNOWN`,
//!   `DEADLINE_EXCEEDED`, `INTERNAL`, `UNAVAILABLE` (trailers-only responses).
//!
//! ```
//! use otel_resilience::{CircuitBreakerLayer, CircuitBreakerRegistry, CircuitBreakerConfig};
//!
//! let registry = CircuitBreakerRegistry::builder()
//!     .config(CircuitBreakerConfig::default().consecutive_failures(3))
//!     .build();
//! let layer = CircuitBreakerLayer::with_registry(registry);
//! # let _ = layer;
//! ```

use std::borrow::Cow;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use otel_core::attributes::{self, error_type, semconv};
use otel_core::extensions::SpanAttributes;
use pin_project::pin_project;
use tower::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker_registry::{CircuitBreakerRegistry, DEFAULT_BREAKER_KEY};
use crate::circuit_breaker::{CircuitBreaker, CircuitOpen, Permit};
use crate::retry_policy::{grpc_status, is_grpc};

/// Guards the wrapped service with circuit breakers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    shared: Arc<BreakerShared>,
}

/// The service made by [`CircuitBreakerLayer`].
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    shared: Arc<BreakerShared>,
}

/// Which outcomes count as failures for the breaker.
#[derive(Debug, Clone)]
pub struct BreakerClassifier {
    /// The failure statuses: one bit per status code 0..=1023 (status codes are 100..=999),
    /// so that judging a response is one load, not a scan of a list.
    statuses: [u64; 16],
    grpc_codes: Cow<'static, [i32]>,
}

impl Default for BreakerClassifier {
    fn default() -> Self {
        BreakerClassifier::DEFAULT
    }
}

impl BreakerClassifier {
    /// Every 5xx; gRPC `UNKNOWN`, `DEADLINE_EXCEEDED`, `INTERNAL`, `UNAVAILABLE`.
    const DEFAULT: BreakerClassifier = BreakerClassifier {
        statuses: status_range_set(500, 600),
        grpc_codes: Cow::Borrowed(&[2, 4, 13, 14]),
    };

    /// The HTTP statuses that count as failures (default: every 5xx).
    pub fn failure_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = status_set(statuses);
        self
    }
    /// The gRPC codes that count as failures (default `UNKNOWN`, `DEADLINE_EXCEEDED`,
    /// `INTERNAL`, `UNAVAILABLE`).
    pub fn failure_grpc_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.grpc_codes = Cow::Owned(codes.into_iter().collect());
        self
    }
    /// Whether a response with this status and headers is a success for the breaker: a gRPC
    /// response (`content-type: application/grpc*`) by its `grpc-status` header (a
    /// trailers-only response), any other by its HTTP status.
    #[inline]
    pub fn is_success(&self, status: StatusCode, headers: &http::HeaderMap) -> bool {
        if is_grpc(headers)
            && let Some(code) = grpc_status(headers)
        {
            return !self.grpc_codes.contains(&code);
        }
        let code = usize::from(status.as_u16()) & 1023;
        self.statuses[code / 64] & (1 << (code % 64)) == 0
    }
}

/// The status set of the codes `from..to` (in `0..1024`), built at compile time.
const fn status_range_set(from: usize, to: usize) -> [u64; 16] {
    let mut set = [0u64; 16];
    let mut code = from;
    while code < to {
        set[code / 64] |= 1 << (code % 64);
        code += 1;
    }
    set
}

fn status_set(statuses: impl IntoIterator<Item = StatusCode>) -> [u64; 16] {
    let mut set = [0u64; 16];
    for status in statuses {
        let code = usize::from(status.as_u16()) & 1023;
        set[code / 64] |= 1 << (code % 64);
    }
    set
}

impl CircuitBreakerLayer {
    /// One breaker per authority with the default configuration and the global meter
    /// provider.
    pub fn new() -> Self {
        Self::with_registry(CircuitBreakerRegistry::builder().build())
    }

    /// Breakers from `registry`, keyed per authority.
    pub fn with_registry(registry: Arc<CircuitBreakerRegistry>) -> Self {
        CircuitBreakerLayer {
            shared: Arc::new(BreakerShared {
                registry,
                fixed: None,
                classifier: Classifier::default(),
                attributes_in_extensions: false,
                cache: BreakerCache::default(),
            }),
        }
    }

    /// All calls share the breaker `name` (e.g. a tonic `Channel`, whose request URIs carry
    /// no authority) instead of one per authority.
    pub fn named(self, name: &str) -> Self {
        let breaker = self.shared.registry.get(name);
        self.update(|s| s.fixed = Some(breaker))
    }

    /// Which outcomes count as failures.
    pub fn classifier(self, classifier: BreakerClassifier) -> Self {
        self.update(|s| s.classifier = Classifier::custom(classifier))
    }

    /// Puts `circuit_breaker.state` and `circuit_breaker.failures` in the request's
    /// [`SpanAttributes`] extension instead of handing them off during the call (the default,
    /// see the module docs). Needed when the client layer builds its span on another task
    /// than the breaker's `call` (a `tower::buffer` between them); costs an extension map and
    /// a `Vec` per call.
    ///
    /// ```
    /// let layer = otel_resilience::CircuitBreakerLayer::new().attributes_in_extensions();
    /// # let _ = layer;
    /// ```
    pub fn attributes_in_extensions(self) -> Self {
        self.update(|s| s.attributes_in_extensions = true)
    }

    /// The registry behind the layer.
    pub fn registry(&self) -> &Arc<CircuitBreakerRegistry> {
        &self.shared.registry
    }

    fn update(self, f: impl FnOnce(&mut BreakerShared)) -> Self {
        let mut shared = BreakerShared::clone(&self.shared);
        f(&mut shared);
        CircuitBreakerLayer {
            shared: Arc::new(shared),
        }
    }
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;
    fn layer(&self, inner: S) -> CircuitBreakerService<S> {
        CircuitBreakerService {
            inner,
            // The layer's settings with a breaker cache of the service's own (its clones
            // share it).
            shared: Arc::new(BreakerShared::clone(&self.shared)),
        }
    }
}

impl<S, B, RB> Service<Request<B>> for CircuitBreakerService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline(always)]
    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let breaker = self.shared.breaker_for(req.uri());
        match breaker.admit() {
            Ok(permit) => {
                let future = if self.shared.attributes_in_extensions {
                    push_span_attributes(&breaker, req.extensions_mut());
                    self.inner.call(req)
                } else {
                    let inner = &mut self.inner;
                    let built;
                    let attributes = match breaker.healthy_span_attributes() {
                        Some(attributes) => attributes,
                        None => {
                            built = breaker.span_attributes();
                            &built
                        }
                    };
                    SpanAttributes::hand_off(attributes, move || inner.call(req))
                };
                ResponseFuture {
                    state: FutureState::Called { future },
                    permit: Some(permit),
                    classifier: self.shared.classifier.clone(),
                }
            }
            Err(open) => ResponseFuture {
                state: FutureState::Rejected {
                    error: Some(reject(open)),
                },
                permit: None,
                classifier: Classifier::default(),
            },
        }
    }
}

/// The future of [`CircuitBreakerService`].
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    state: FutureState<F>,
    permit: Option<Permit>,
    /// The layer's classifier: the default one needs no reference count.
    classifier: Classifier,
}

#[pin_project(project = FutureStateProj)]
enum FutureState<F> {
    Called {
        #[pin]
        future: F,
    },
    Rejected {
        error: Option<CircuitOpen>,
    },
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            FutureStateProj::Rejected { error } => Poll::Ready(Err(Box::new(
                error.take().expect("polled after completion"),
            ))),
            FutureStateProj::Called { future } => {
                // The outcome is judged where it lies, and the output made from it in one move.
                let polled = future.poll(cx);
                let success = match &polled {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(resp)) => this
                        .classifier
                        .get()
                        .is_success(resp.status(), resp.headers()),
                    Poll::Ready(Err(_)) => false,
                };
                if let Some(permit) = this.permit.take() {
                    permit.record(success);
                }
                polled.map_err(Into::into)
            }
        }
    }
}

// ---- shared with the reqwest middleware -------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct BreakerShared {
    pub(crate) registry: Arc<CircuitBreakerRegistry>,
    pub(crate) fixed: Option<Arc<CircuitBreaker>>,
    pub(crate) classifier: Classifier,
    pub(crate) attributes_in_extensions: bool,
    /// The breaker of the first authority called through this service (each service made by
    /// [`CircuitBreakerLayer::layer`] gets its own, empty: see [`BreakerCache`]).
    pub(crate) cache: BreakerCache,
}

impl BreakerShared {
    /// The breaker of `uri`'s authority (or the fixed one): borrowed from the cache when it
    /// holds that authority's breaker, else from the registry (a read lock and a hash).
    #[inline(always)]
    pub(crate) fn breaker_for(&self, uri: &http::Uri) -> Cow<'_, Arc<CircuitBreaker>> {
        if let Some(b) = &self.fixed {
            return Cow::Borrowed(b);
        }
        let key = uri.authority().map_or(DEFAULT_BREAKER_KEY, |a| a.as_str());
        if let Some(b) = self.cache.get(key) {
            return Cow::Borrowed(b);
        }
        let breaker = self.registry.get(key);
        self.cache.offer(key, &breaker);
        Cow::Owned(breaker)
    }
}

/// The classifier of a layer: the default one (a static, so that a call's future holds no
/// reference count for it, `None`) or a custom one. One word.
#[derive(Debug, Clone, Default)]
pub(crate) struct Classifier(Option<Arc<BreakerClassifier>>);

impl Classifier {
    pub(crate) fn custom(classifier: BreakerClassifier) -> Self {
        Classifier(Some(Arc::new(classifier)))
    }

    #[inline]
    pub(crate) fn get(&self) -> &BreakerClassifier {
        static DEFAULT: BreakerClassifier = BreakerClassifier::DEFAULT;
        self.0.as_deref().unwrap_or(&DEFAULT)
    }
}

/// The breaker of the first authority a service called, so that its next calls skip the
/// registry's read lock and hash (a shared cache line every call of every thread would
/// write). Hand-written: a `OnceLock` filled once is all it needs, and reading it is one load.
///
/// Keyed-per-authority semantics are exact: the registry creates the breaker of key `k`
/// under the name `k` and never removes one, so a cached breaker whose name equals the key is
/// the one the registry would return; a key past the registry's limit (served by the shared
/// `default` breaker, named otherwise) is never cached, and every other authority is looked
/// up as before. A service that calls several authorities caches the first one only: a
/// client service usually talks to one downstream.
#[derive(Debug, Default)]
pub(crate) struct BreakerCache(OnceLock<Arc<CircuitBreaker>>);

impl BreakerCache {
    /// The cached breaker, if it is the one of `key`.
    #[inline]
    fn get(&self, key: &str) -> Option<&Arc<CircuitBreaker>> {
        self.0.get().filter(|b| same_key(b.name(), key))
    }

    /// Caches `breaker` (the registry's for `key`) if nothing is cached yet and it is named
    /// `key`.
    fn offer(&self, key: &str, breaker: &Arc<CircuitBreaker>) {
        if self.0.get().is_none() && breaker.name() == key {
            let _ = self.0.set(breaker.clone());
        }
    }
}

impl Clone for BreakerCache {
    /// Empty: a copy of the settings (a new layer or a new service) starts its own cache.
    fn clone(&self) -> Self {
        BreakerCache::default()
    }
}

/// `a == b`, compared inline for the short strings that authorities are (8 to 32 bytes, a word
/// at a time): the call to `bcmp` that `==` makes costs more than the comparison itself.
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if !(8..=32).contains(&n) {
        return a == b;
    }
    // Overlapping words: the first and last eight bytes, and the middle ones past 16.
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8"));
    let same = |at: usize| word(a, at) == word(b, at);
    same(0) && same(n - 8) && (n <= 16 || (same(8) && same(n - 16)))
}

/// Pushes `circuit_breaker.state` and `circuit_breaker.failures` for the client span.
pub(crate) fn push_span_attributes(breaker: &CircuitBreaker, extensions: &mut http::Extensions) {
    for kv in breaker.span_attributes() {
        SpanAttributes::push(extensions, kv);
    }
}

/// What the breaker does with a rejection: records its span now, or, under a retry layer that
/// records it under its logical-call span (see [`DeferRejections`]), leaves it to that layer.
pub(crate) fn reject(open: CircuitOpen) -> CircuitOpen {
    if RETRY_ABOVE.with(Cell::get) > 0 {
        open.defer_span()
    } else {
        record_rejection(&open);
        open
    }
}

/// While alive, the breakers below a retry layer leave their rejection spans to it: it finds
/// the [`CircuitOpen`] in the error, opens its logical-call span and records the rejection
/// under it ([`record_deferred_rejection`]). Two thread-local writes, no allocation; a guard
/// rather than a closure, so that the request is not moved into one.
pub(crate) struct DeferRejections {
    /// Left on the thread that entered it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl DeferRejections {
    #[inline]
    pub(crate) fn enter() -> Self {
        // Hand-written: a depth counter in a thread-local is all a synchronous scope needs.
        RETRY_ABOVE.with(|depth| depth.set(depth.get().saturating_add(1)));
        DeferRejections {
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for DeferRejections {
    #[inline]
    fn drop(&mut self) {
        RETRY_ABOVE.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Records the rejection span a breaker below left to the caller, if `error` holds one.
pub(crate) fn record_deferred_rejection(error: &(dyn std::error::Error + 'static)) {
    let mut current = Some(error);
    for _ in 0..16 {
        let Some(err) = current else { return };
        if let Some(open) = err.downcast_ref::<CircuitOpen>() {
            if open.take_pending_span() {
                record_rejection(open);
            }
            return;
        }
        current = err.source();
    }
}

thread_local! {
    /// How many retry layers are inside a call or poll of the layers below them on this thread.
    static RETRY_ABOVE: Cell<u32> = const { Cell::new(0) };
}

/// Records a rejected call on a short span of its own (nothing was sent: no client span).
pub(crate) fn record_rejection(open: &CircuitOpen) {
    let next_probe_ms = open
        .next_probe_in()
        .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let span = tracing::info_span!(
        target: "otel_resilience",
        "circuit_breaker",
        otel.name = %format_args!("circuit_breaker {}", open.name()),
        otel.kind = "internal",
        otel.status_code = "ERROR",
        otel.status_description = %open,
        { attributes::CIRCUIT_BREAKER_NAME } = open.name(),
        { attributes::CIRCUIT_BREAKER_STATE } = open.state().as_str(),
        { attributes::CIRCUIT_BREAKER_NEXT_PROBE_MS } = next_probe_ms,
        { semconv::attribute::ERROR_TYPE } = error_type::CIRCUIT_OPEN,
        { attributes::REQUEST_ID } = tracing::field::Empty,
    );
    crate::retry_layer::record_request_id(&span);
    drop(span);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_as_strings_do() {
        let base = "inventory.internal.example.com:8443-and-some-more";
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(same_key(a, a), "{a}");
            let copy = String::from(a);
            assert!(same_key(a, &copy), "{a}");
            for at in 0..len {
                let mut b = a.as_bytes().to_vec();
                b[at] ^= 0x01;
                let b = String::from_utf8(b).unwrap();
                assert!(!same_key(a, &b), "{a} vs {b}");
            }
            if len > 0 {
                assert!(!same_key(a, &base[..len - 1]), "{a}");
            }
        }
    }

    #[test]
    fn the_default_classifier_fails_every_5xx_and_nothing_else() {
        let c = Classifier::default();
        let empty = http::HeaderMap::new();
        for code in 100..=999 {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                c.get().is_success(status, &empty),
                !(500..600).contains(&code),
                "{code}"
            );
        }
        let custom = Classifier::custom(
            BreakerClassifier::default().failure_statuses([StatusCode::TOO_MANY_REQUESTS]),
        );
        assert!(
            !custom
                .get()
                .is_success(StatusCode::TOO_MANY_REQUESTS, &empty)
        );
        assert!(
            custom
                .get()
                .is_success(StatusCode::INTERNAL_SERVER_ERROR, &empty)
        );
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> (StatusCode, http::HeaderMap) {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        (StatusCode::from_u16(status).unwrap(), map)
    }

    #[test]
    fn the_classifier_judges_http_by_status_and_grpc_by_grpc_status() {
        let c = BreakerClassifier::default();
        let judge = |c: &BreakerClassifier, status, headers: &[(&str, &str)]| {
            let (s, h) = response(status, headers);
            c.is_success(s, &h)
        };
        for failure in [500, 503, 599] {
            assert!(!judge(&c, failure, &[]), "{failure}");
        }
        for success in [100, 200, 302, 404, 499, 600, 999] {
            assert!(judge(&c, success, &[]), "{success}");
        }
        let grpc = [("content-type", "application/grpc"), ("grpc-status", "14")];
        assert!(!judge(&c, 200, &grpc), "UNAVAILABLE");
        let ok = [("content-type", "application/grpc"), ("grpc-status", "0")];
        assert!(judge(&c, 200, &ok));
        assert!(
            judge(&c, 200, &[("grpc-status", "14")]),
            "a plain HTTP response is judged by its status"
        );
        let custom = BreakerClassifier::default().failure_statuses([StatusCode::TOO_MANY_REQUESTS]);
        assert!(!judge(&custom, 429, &[]));
        assert!(judge(&custom, 500, &[]));
    }
}
