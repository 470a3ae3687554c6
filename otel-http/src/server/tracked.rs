//! Per-request state carried from the call through the response future to the end of the body.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use http::{HeaderValue, Response};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use otel_core::attributes::{self, error_type, semconv::attribute as sc};
use otel_core::repeated_shape::Scope;
use smallvec::SmallVec;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::ServerConfig;
use super::request_info::METHODS;

/// What one traced request needs until it ends.
///
/// Boxed by the response future and body (`Box<Tracked>`): it is moved several times on its
/// way from the call to the end of the body, and a pointer keeps the future and body of an
/// untraced request (SDK disabled, filtered path) as small as the inner ones.
pub(crate) struct Tracked {
    pub(crate) config: Arc<ServerConfig>,
    /// The SERVER span of a sampled request.
    pub(crate) span: Option<tracing::Span>,
    /// The context of an unsampled request, attached on every poll.
    pub(crate) cx: Option<Context>,
    /// The request's N+1 detection scope (when the detector is on). Finished before the span
    /// ends, so its findings land on the span and the span/scope cycle is broken.
    pub(crate) scope: Option<Scope>,
    /// `http.route`, moved into the duration metric's attributes when the request ends.
    route: Option<Arc<str>>,
    start: Instant,
    /// Index of `http.request.method` in [`METHODS`].
    method: usize,
    scheme: &'static str,
    version: &'static str,
    /// The request id header value echoed on the response.
    echo: Option<HeaderValue>,
    status: Option<u16>,
    error_type: Option<Cow<'static, str>>,
    active: bool,
    finished: bool,
}

/// The attributes of one request's metrics, on the stack: at most six, no allocation.
type MetricAttributes = SmallVec<[KeyValue; 6]>;

impl Tracked {
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        start: Instant,
        method: usize,
        route: Option<Arc<str>>,
        scheme: &'static str,
        version: &'static str,
        echo: Option<HeaderValue>,
    ) -> Self {
        Tracked {
            config,
            span: None,
            cx: None,
            scope: None,
            route,
            start,
            method,
            scheme,
            version,
            echo,
            status: None,
            error_type: None,
            active: false,
            finished: false,
        }
    }

    /// Counts the request in `http.server.active_requests`.
    pub(crate) fn start_active(&mut self) {
        self.config.metrics.active.add(1, self.active_attributes());
        self.active = true;
    }

    /// Records the response head on the span and echoes the request id (and, when
    /// configured, the trace context) in the response headers.
    pub(crate) fn on_response<B>(&mut self, response: &mut Response<B>) {
        let status = response.status().as_u16();
        self.status = Some(status);
        if status >= 500 {
            self.error_type = Some(Cow::Owned(status.to_string()));
        }
        if let Some(value) = self.echo.take() {
            self.config
                .request_id
                .echo_value(value, response.headers_mut());
        }
        if let Some(span) = &self.span {
            span.record(sc::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
            if let Some(error) = &self.error_type {
                span.record(sc::ERROR_TYPE, &**error);
                span.record("otel.status_code", "error");
            }
            super::record_headers(span, &self.config.response_headers, response.headers());
        }
        if self.config.traceparent_in_response {
            let cx = match (&self.span, &self.cx) {
                (Some(span), _) => span.context(),
                (None, Some(cx)) => cx.clone(),
                (None, None) => return,
            };
            match &self.config.propagator {
                Some(p) => otel_core::propagation::inject_with(&**p, &cx, response.headers_mut()),
                None => otel_core::propagation::inject(&cx, response.headers_mut()),
            }
        }
    }

    /// Records a failure of the inner service or of the response body.
    pub(crate) fn on_error(&mut self, class: &'static str) {
        self.error_type = Some(Cow::Borrowed(class));
        if let Some(span) = &self.span {
            span.record(sc::ERROR_TYPE, class);
            span.record("otel.status_code", "error");
        }
    }

    /// Records a handler panic.
    pub(crate) fn on_panic(&mut self) {
        self.on_error(error_type::PANIC);
    }

    /// Ends the request: metrics, then the span (dropping it closes it).
    pub(crate) fn finish(mut self: Box<Self>, body_complete: bool) {
        self.end(body_complete);
    }

    fn end(&mut self, body_complete: bool) {
        if self.finished {
            return;
        }
        self.finished = true;
        if !body_complete && let Some(span) = &self.span {
            span.record(attributes::HTTP_RESPONSE_BODY_INCOMPLETE, true);
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let mut attrs = MetricAttributes::new();
        attrs.push(KeyValue::new(sc::HTTP_REQUEST_METHOD, METHODS[self.method]));
        attrs.push(KeyValue::new(sc::URL_SCHEME, self.scheme));
        attrs.push(KeyValue::new(sc::NETWORK_PROTOCOL_VERSION, self.version));
        // The request is over: the route moves into its attribute, no reference-count churn.
        if let Some(route) = self.route.take() {
            attrs.push(KeyValue::new(sc::HTTP_ROUTE, route));
        }
        if let Some(status) = self.status {
            attrs.push(KeyValue::new(
                sc::HTTP_RESPONSE_STATUS_CODE,
                i64::from(status),
            ));
        }
        if let Some(error) = self.error_type.take() {
            attrs.push(KeyValue::new(sc::ERROR_TYPE, error));
        }
        self.config.metrics.duration.record(elapsed, &attrs);
        if self.active {
            self.config.metrics.active.add(-1, self.active_attributes());
            self.active = false;
        }
        if let Some(scope) = self.scope.take() {
            scope.finish();
        }
        if let Some(span) = self.span.take() {
            // End the OpenTelemetry span now, when the body has been sent. Left to the bridge,
            // it would end when the last clone of the `tracing` span closes (a task spawned
            // with the span can hold one long after the response) and with the time of the
            // span's last exit (the handler's last poll, not the body's end); stamping the end
            // by entering and leaving once more would cost a full subscriber round trip. The
            // bridge's own end, on close, then finds the span ended and does nothing.
            span.context().span().end();
        }
    }

    /// The attributes of `http.server.active_requests`, built once per method and scheme:
    /// making and dropping two `KeyValue`s on every call cost more than the call itself.
    fn active_attributes(&self) -> &'static [KeyValue] {
        static ATTRIBUTES: LazyLock<Vec<[KeyValue; 2]>> = LazyLock::new(|| {
            METHODS
                .iter()
                .flat_map(|method| {
                    ["http", "https"].map(|scheme| {
                        [
                            KeyValue::new(sc::HTTP_REQUEST_METHOD, *method),
                            KeyValue::new(sc::URL_SCHEME, scheme),
                        ]
                    })
                })
                .collect()
        });
        let https = usize::from(self.scheme == "https");
        ATTRIBUTES
            .get(self.method * 2 + https)
            .map_or(&[], |attributes| attributes.as_slice())
    }
}

impl Drop for Tracked {
    /// A request dropped before its response body was sent to the end (client gone, future
    /// cancelled) still ends its span and metrics, marked incomplete.
    fn drop(&mut self) {
        self.end(false);
    }
}
