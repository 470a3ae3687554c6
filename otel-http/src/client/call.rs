//! One outgoing call, shared by the tower client layer and the reqwest middleware: the CLIENT
//! span, context and request-id injection, the curl event, the duration metric.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::{Extensions, HeaderMap, Method};
use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use otel_core::RequestId;
use otel_core::attributes::{self, semconv::attribute as sc};
use otel_core::extensions::{NoPropagation, ResendCount, SpanAttributes, UrlTemplate};
use otel_core::repeated_shape::{self, Observation, ShapeKind};
use otel_core::request_id::RequestIdConfig;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::curl::CurlCommand;
use crate::metrics::ClientMetrics;
use crate::redact::{self, QueryRedactor};

/// Configuration shared by every call of one client layer or middleware.
pub(crate) struct ClientConfig {
    pub(crate) propagator: Option<Arc<dyn TextMapPropagator + Send + Sync>>,
    pub(crate) request_id: RequestIdConfig,
    pub(crate) metrics: ClientMetrics,
    pub(crate) query_redactor: QueryRedactor,
    pub(crate) curl: bool,
    pub(crate) curl_body_limit: usize,
}

/// The parts of an outgoing request the span needs.
pub(crate) struct RequestHead<'a> {
    pub(crate) method: &'a Method,
    pub(crate) scheme: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) port: Option<u16>,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
}

/// An outgoing call in flight.
pub(crate) struct ClientCall {
    config: Arc<ClientConfig>,
    span: Option<tracing::Span>,
    start: Instant,
    metric_attributes: Vec<KeyValue>,
    enabled: bool,
    /// Shape, values hash and context of the call for N+1 detection (detector on only).
    repeated: Option<RepeatedCall>,
}

/// What the repeated-shape detector needs to know about a finished call.
struct RepeatedCall {
    shape: String,
    values_hash: u64,
    cx: opentelemetry::Context,
}

/// The fix the N+1 finding suggests for a repeated outgoing call.
const HTTP_N_PLUS_ONE_FIX: &str = "fetch the items in one request (a batch endpoint, e.g. ?ids=1,2,3) instead of one call per item";

impl ClientCall {
    /// Starts the call: builds the span (unless the current context is unsampled), injects
    /// the context and request id into `headers` (unless [`NoPropagation`]), adds the curl
    /// event.
    pub(crate) fn start(
        config: &Arc<ClientConfig>,
        head: RequestHead<'_>,
        headers: &mut HeaderMap,
        extensions: &Extensions,
        body: Option<&[u8]>,
    ) -> Self {
        let start = Instant::now();
        if !otel_core::sampling::is_enabled() {
            return ClientCall {
                config: config.clone(),
                span: None,
                start,
                metric_attributes: Vec::new(),
                enabled: false,
                repeated: None,
            };
        }
        let cx = otel_core::context::current();
        let method = crate::server::request_info::method(head.method);
        let scheme = match head.scheme {
            Some(s) if s.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        let port = head
            .port
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let template = extensions.get::<UrlTemplate>().map(|t| &*t.0);
        let parent = cx.span();
        let parent_sc = parent.span_context();
        // Sampling before bridging: under an unsampled parent the span would be dropped by the
        // parent-based sampler anyway, so build none and propagate the parent as is.
        let span = if parent_sc.is_valid() && !parent_sc.is_sampled() {
            None
        } else {
            let name: Cow<'_, str> = match template {
                Some(t) => Cow::Owned(format!("{} {t}", span_method(method))),
                None => Cow::Borrowed(span_method(method)),
            };
            let url = redact::url_from_parts(
                Some(scheme),
                head.host,
                head.port,
                head.path,
                head.query,
                &config.query_redactor,
            );
            let resend = extensions
                .get::<ResendCount>()
                .filter(|r| r.0 > 0)
                .map(|r| i64::from(r.0));
            let request_id = RequestId::from_context(&cx);
            let span = tracing::info_span!(
                target: "otel_http",
                "HTTP client request",
                otel.name = &*name,
                otel.kind = "client",
                otel.status_code = Empty,
                { sc::HTTP_REQUEST_METHOD } = method,
                { sc::HTTP_REQUEST_METHOD_ORIGINAL } = crate::server::request_info::method_original(method, head.method),
                { sc::SERVER_ADDRESS } = head.host,
                { sc::SERVER_PORT } = i64::from(port),
                { sc::URL_FULL } = url.as_str(),
                { sc::URL_TEMPLATE } = template,
                { sc::HTTP_REQUEST_RESEND_COUNT } = resend,
                { sc::HTTP_RESPONSE_STATUS_CODE } = Empty,
                { sc::ERROR_TYPE } = Empty,
                { attributes::REQUEST_ID } = request_id.map(RequestId::as_str),
            );
            SpanAttributes::take(extensions, |kv| span.set_attribute(kv.key, kv.value));
            Some((span, url))
        };

        if extensions.get::<NoPropagation>().is_none() {
            let inject_cx = match &span {
                Some((span, _)) => {
                    let span_cx = span.context();
                    if span_cx.span().span_context().is_valid() {
                        span_cx
                    } else {
                        cx.clone()
                    }
                }
                None => cx.clone(),
            };
            match &config.propagator {
                Some(p) => otel_core::propagation::inject_with(&**p, &inject_cx, headers),
                None => otel_core::propagation::inject(&inject_cx, headers),
            }
            if let Some(id) = RequestId::from_context(&cx) {
                config.request_id.forward(id, headers);
            }
        }

        if config.curl
            && let Some((span, url)) = &span
        {
            let command = CurlCommand::new(head.method, url)
                .headers(headers)
                .body(body, config.curl_body_limit)
                .to_string();
            span.add_event(
                attributes::HTTP_CURL_EVENT,
                vec![KeyValue::new(attributes::HTTP_CURL_COMMAND, command)],
            );
        }

        let mut metric_attributes = Vec::with_capacity(6);
        metric_attributes.push(KeyValue::new(sc::HTTP_REQUEST_METHOD, method));
        metric_attributes.push(KeyValue::new(sc::URL_SCHEME, scheme));
        if let Some(host) = head.host {
            metric_attributes.push(KeyValue::new(sc::SERVER_ADDRESS, host.to_owned()));
        }
        metric_attributes.push(KeyValue::new(sc::SERVER_PORT, i64::from(port)));
        // A retried attempt is the same logical call, not a repeat of the shape.
        let is_retry = extensions.get::<ResendCount>().is_some_and(|r| r.0 > 0);
        let repeated = (repeated_shape::is_enabled() && !is_retry).then(|| RepeatedCall {
            shape: crate::shape::shape_of(
                head.method.as_str(),
                head.host.unwrap_or(""),
                template,
                head.path,
            ),
            values_hash: repeated_shape::shape_fingerprint(&(head.path, head.query)),
            cx,
        });
        ClientCall {
            config: config.clone(),
            span: span.map(|(span, _)| span),
            start,
            metric_attributes,
            enabled: true,
            repeated,
        }
    }

    /// The CLIENT span, when one was built.
    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        self.span.as_ref()
    }

    /// Ends the call with a response status: error on 4xx and 5xx.
    pub(crate) fn finish_response(mut self, status: u16) {
        let error = (status >= 400).then(|| status.to_string());
        if let Some(span) = &self.span {
            span.record(sc::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
            if let Some(error) = &error {
                span.record(sc::ERROR_TYPE, error.as_str());
                span.record("otel.status_code", "error");
            }
        }
        self.metric_attributes.push(KeyValue::new(
            sc::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status),
        ));
        if let Some(error) = error {
            self.metric_attributes
                .push(KeyValue::new(sc::ERROR_TYPE, error));
        }
        self.record_duration();
    }

    /// Ends the call with a transport error of class `class`.
    pub(crate) fn finish_error(mut self, class: &'static str) {
        if let Some(span) = &self.span {
            span.record(sc::ERROR_TYPE, class);
            span.record("otel.status_code", "error");
        }
        self.metric_attributes
            .push(KeyValue::new(sc::ERROR_TYPE, class));
        self.record_duration();
    }

    fn record_duration(&self) {
        if self.enabled {
            self.config
                .metrics
                .duration
                .record(self.start.elapsed().as_secs_f64(), &self.metric_attributes);
        }
        if let Some(call) = &self.repeated {
            // Observed from inside the call's own span, so the repeats are grouped under the
            // span that issued them (the N+1 API call is the same mechanism as the N+1 query).
            let _entered = self.span.as_ref().map(tracing::Span::enter);
            repeated_shape::observe(
                &call.cx,
                &Observation {
                    shape: &call.shape,
                    fingerprint: repeated_shape::shape_fingerprint(&call.shape),
                    kind: ShapeKind::HttpCall,
                    values_hash: Some(call.values_hash),
                    started: self.start,
                    duration: self.start.elapsed(),
                    call_site: None,
                    suggestion: Some(HTTP_N_PLUS_ONE_FIX),
                },
            );
        }
    }
}

/// `HTTP` stands for unknown methods in span names.
fn span_method(method: &'static str) -> &'static str {
    if method == "_OTHER" { "HTTP" } else { method }
}
