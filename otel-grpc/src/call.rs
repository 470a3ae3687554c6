//! One gRPC call being recorded: its span (or, when unsampled, its context), its start time
//! and deadline, and what is recorded when it ends. Shared by the server and client layers;
//! the response future and the response body hand it on until the call ends.

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::{Histogram, MeterProvider};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::{Context, ContextGuard, InstrumentationScope, KeyValue};
use otel_core::attributes::error_type;
use otel_core::request_id::RequestIdConfig;
use tokio::time::Instant;
use tonic::Code;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::conventions::{
    self, ERROR_TYPE, GRPC, LEGACY_RPC_GRPC_STATUS_CODE, RPC_METHOD, RPC_RESPONSE_STATUS_CODE,
    RPC_SYSTEM_NAME, SemconvMode,
};
use crate::method::RpcMethod;
use crate::status::{Side, code_name, is_error};

/// The error type of both layers' services and response bodies (the one tonic uses).
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Configuration shared by the layers' builders.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) propagator: Option<Arc<dyn TextMapPropagator + Send + Sync>>,
    pub(crate) meter_provider: Option<Arc<dyn MeterProvider + Send + Sync>>,
    pub(crate) request_id: RequestIdConfig,
    pub(crate) mode: Option<SemconvMode>,
    histogram: Arc<OnceLock<Histogram<f64>>>,
}

impl Config {
    pub(crate) fn new() -> Self {
        Config {
            propagator: None,
            meter_provider: None,
            request_id: RequestIdConfig::default(),
            mode: None,
            histogram: Arc::new(OnceLock::new()),
        }
    }

    /// Forgets instruments made from an earlier meter provider.
    pub(crate) fn reset_instruments(&mut self) {
        self.histogram = Arc::new(OnceLock::new());
    }

    pub(crate) fn mode(&self) -> SemconvMode {
        self.mode.unwrap_or_else(SemconvMode::from_env)
    }

    pub(crate) fn extract(&self, headers: &http::HeaderMap) -> Context {
        match &self.propagator {
            Some(p) => otel_core::propagation::extract_with(p.as_ref(), headers),
            None => otel_core::propagation::extract(headers),
        }
    }

    pub(crate) fn inject(&self, cx: &Context, headers: &mut http::HeaderMap) {
        match &self.propagator {
            Some(p) => otel_core::propagation::inject_with(p.as_ref(), cx, headers),
            None => otel_core::propagation::inject(cx, headers),
        }
    }

    /// The duration histogram of `side`, made on first use (so a layer built before the global
    /// meter provider was installed still reports to it).
    pub(crate) fn histogram(&self, side: Side) -> Histogram<f64> {
        self.histogram
            .get_or_init(|| {
                let scope = InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build();
                let meter = match &self.meter_provider {
                    Some(provider) => provider.meter_with_scope(scope),
                    None => opentelemetry::global::meter_provider().meter_with_scope(scope),
                };
                let (name, description) = match side {
                    Side::Server => (
                        conventions::RPC_SERVER_CALL_DURATION,
                        "Duration of gRPC calls served, until the response stream ended",
                    ),
                    Side::Client => (
                        conventions::RPC_CLIENT_CALL_DURATION,
                        "Duration of gRPC calls made, until the response stream ended",
                    ),
                };
                meter
                    .f64_histogram(name)
                    .with_unit("s")
                    .with_description(description)
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build()
            })
            .clone()
    }
}

/// Bucket boundaries (seconds) recommended by the conventions for call durations.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Where the call's telemetry lives while it runs.
pub(crate) enum Scope {
    /// Sampled: the bridged `tracing` span, entered on every poll.
    Span(tracing::Span),
    /// Unsampled: no span; this context is attached on every poll.
    Context(Context),
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A status arrived (`grpc-status` in headers or trailers).
    Status(Code),
    /// The call failed below gRPC: `code` is what the client library reports, `class` the
    /// `error.type`.
    Transport { code: Code, class: &'static str },
    /// The response future or body was dropped before the call ended.
    Dropped,
}

/// A call being recorded.
pub(crate) struct Call {
    pub(crate) side: Side,
    pub(crate) scope: Scope,
    pub(crate) method: RpcMethod,
    pub(crate) start: Instant,
    pub(crate) timeout: Option<Duration>,
    pub(crate) mode: SemconvMode,
    pub(crate) histogram: Histogram<f64>,
    /// Low-cardinality attributes recorded on the metric besides the outcome (client:
    /// `server.address`, `server.port`).
    pub(crate) metric_attributes: Vec<KeyValue>,
    /// Server side: the call's N+1 detection scope (when the detector is on), finished
    /// before the span ends so its findings land on the span.
    pub(crate) n_plus_one: Option<otel_core::repeated_shape::Scope>,
}

/// Guard returned by [`Call::enter`].
pub(crate) enum Entered<'a> {
    Span(#[allow(dead_code)] tracing::span::Entered<'a>),
    Context(#[allow(dead_code)] ContextGuard),
}

impl Call {
    /// Makes the call's span (or context) current until the guard drops.
    pub(crate) fn enter(&self) -> Entered<'_> {
        match &self.scope {
            Scope::Span(span) => Entered::Span(span.enter()),
            Scope::Context(cx) => Entered::Context(cx.clone().attach()),
        }
    }

    /// Feeds the repeated-shape (N+1) detector with this client call: a handler that calls
    /// the same method once per item is flagged like an N+1 query.
    fn observe_repeat(&self) {
        let shape = self.method.full_name();
        let (cx, _entered) = match &self.scope {
            Scope::Span(span) => (span.context(), Some(span.enter())),
            Scope::Context(cx) => (cx.clone(), None),
        };
        otel_core::repeated_shape::observe(
            &cx,
            &otel_core::repeated_shape::Observation {
                shape,
                fingerprint: otel_core::repeated_shape::shape_fingerprint(shape),
                kind: otel_core::repeated_shape::ShapeKind::HttpCall,
                values_hash: None,
                started: self.start.into_std(),
                duration: self.start.elapsed(),
                call_site: None,
                suggestion: Some(
                    "fetch the items in one call (a batch or streaming RPC) instead of one call per item",
                ),
            },
        );
    }

    /// Records the outcome on the span and the duration histogram, and ends the span.
    pub(crate) fn finish(self, outcome: Outcome) {
        let deadline_passed = self
            .timeout
            .is_some_and(|timeout| self.start.elapsed() >= timeout);
        let (code, class) = match outcome {
            // tonic's server answers CANCELLED when its deadline fires; the client and the
            // server both report what happened: the deadline passed.
            Outcome::Status(Code::Cancelled) | Outcome::Dropped if deadline_passed => {
                (Code::DeadlineExceeded, None)
            }
            Outcome::Status(code) => (code, None),
            Outcome::Transport { code, class } => (code, Some(class)),
            Outcome::Dropped => (Code::Cancelled, None),
        };
        let failed = class.is_some() || is_error(code, self.side);
        let error_type = failed.then(|| class.unwrap_or_else(|| code_name(code)));
        let name = code_name(code);
        if let Some(scope) = &self.n_plus_one {
            scope.finish();
        }
        if self.side == Side::Client && otel_core::repeated_shape::is_enabled() {
            self.observe_repeat();
        }

        if let Scope::Span(span) = &self.scope {
            span.record(RPC_RESPONSE_STATUS_CODE, name);
            if let Some(error_type) = error_type {
                span.record(ERROR_TYPE, error_type);
                span.record("otel.status_code", "error");
            }
            if self.mode == SemconvMode::Duplicate {
                span.record(LEGACY_RPC_GRPC_STATUS_CODE, code as i64);
            }
        }

        let mut attributes = Vec::with_capacity(4 + self.metric_attributes.len());
        attributes.push(KeyValue::new(RPC_SYSTEM_NAME, GRPC));
        attributes.push(KeyValue::new(
            RPC_METHOD,
            self.method.full_name().to_owned(),
        ));
        attributes.push(KeyValue::new(RPC_RESPONSE_STATUS_CODE, name));
        if let Some(error_type) = error_type {
            attributes.push(KeyValue::new(ERROR_TYPE, error_type));
        }
        attributes.extend(self.metric_attributes);
        self.histogram
            .record(self.start.elapsed().as_secs_f64(), &attributes);
        // Dropping the scope ends the span (its end time is the last time it was exited).
    }
}

/// Classifies a failure below gRPC (transport, timeout) or a `tonic::Status` found in the
/// error's source chain.
pub(crate) fn classify(err: &(dyn StdError + 'static)) -> Outcome {
    let mut status = None;
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    // The chain is walked to a fixed depth: a cyclic or absurdly deep chain cannot hang us.
    for _ in 0..32 {
        let Some(e) = next else { break };
        if e.is::<tonic::TimeoutExpired>() {
            return transport(Code::DeadlineExceeded, error_type::TIMEOUT);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => {
                    return transport(Code::Unavailable, error_type::CONNECTION_REFUSED);
                }
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return transport(Code::Unavailable, error_type::CONNECTION_RESET);
                }
                TimedOut => return transport(Code::DeadlineExceeded, error_type::TIMEOUT),
                _ => {}
            }
        }
        if status.is_none()
            && let Some(s) = e.downcast_ref::<tonic::Status>()
        {
            status = Some(s.code());
        }
        next = e.source();
    }
    match status {
        Some(code) => Outcome::Status(code),
        None => transport(Code::Unknown, error_type::OTHER),
    }
}

fn transport(code: Code, class: &'static str) -> Outcome {
    Outcome::Transport { code, class }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(Box<dyn StdError + Send + Sync>);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapper")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(self.0.as_ref())
        }
    }

    fn io(kind: std::io::ErrorKind) -> Wrapper {
        Wrapper(Box::new(std::io::Error::from(kind)))
    }

    #[test]
    fn classify_table() {
        use std::io::ErrorKind::*;
        let cases: Vec<(Box<dyn StdError>, Outcome)> = vec![
            (
                Box::new(io(ConnectionRefused)),
                transport(Code::Unavailable, "connection_refused"),
            ),
            (
                Box::new(io(ConnectionReset)),
                transport(Code::Unavailable, "connection_reset"),
            ),
            (
                Box::new(io(BrokenPipe)),
                transport(Code::Unavailable, "connection_reset"),
            ),
            (
                Box::new(io(TimedOut)),
                transport(Code::DeadlineExceeded, "timeout"),
            ),
            (
                Box::new(Wrapper(Box::new(tonic::TimeoutExpired(())))),
                transport(Code::DeadlineExceeded, "timeout"),
            ),
            (
                Box::new(tonic::Status::not_found("x")),
                Outcome::Status(Code::NotFound),
            ),
            (
                Box::new(Wrapper(Box::new(tonic::Status::aborted("x")))),
                Outcome::Status(Code::Aborted),
            ),
            (
                Box::new(io(PermissionDenied)),
                transport(Code::Unknown, "_OTHER"),
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(classify(err.as_ref()), expected, "{err:?}");
        }
    }
}
