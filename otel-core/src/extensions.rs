//! Request extensions through which layers of different crates talk to each other without
//! depending on each other: the retry layer (otel-resilience) tells the HTTP/gRPC client
//! layers which attempt this is; a caller sets a URL template or opts out of propagation.
//!
//! ```
//! use otel_core::extensions::{ResendCount, UrlTemplate, NoPropagation, SpanAttributes};
//!
//! let mut req = http::Request::new(());
//! req.extensions_mut().insert(UrlTemplate::new("/users/{id}"));
//! req.extensions_mut().insert(ResendCount(2));
//! req.extensions_mut().insert(NoPropagation);
//! SpanAttributes::push(req.extensions_mut(), opentelemetry::KeyValue::new("circuit_breaker.state", "closed"));
//! assert_eq!(req.extensions().get::<ResendCount>(), Some(&ResendCount(2)));
//! ```

use std::borrow::Cow;

use opentelemetry::KeyValue;

/// How many times this request was sent before (0 on the first attempt). Set by the retry
/// layer; the client layers record it as `http.request.resend_count` when it is above 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResendCount(pub u32);

/// The URL template of an outgoing request (`/users/{id}`). The client span is then named
/// `{method} {template}` and the N+1 shape uses it instead of guessing ids in the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(pub Cow<'static, str>);

impl UrlTemplate {
    /// A template such as `/users/{id}`.
    pub fn new(template: impl Into<Cow<'static, str>>) -> Self {
        UrlTemplate(template.into())
    }
}

/// Marker: do not inject trace context or request id into this outgoing request (for calls
/// to third parties). The client span is still recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoPropagation;

/// Extra attributes a layer above the client span (breaker, retry) asks the client layer to
/// record on the span of this attempt, such as `circuit_breaker.state`.
#[derive(Debug, Clone, Default)]
pub struct SpanAttributes(pub Vec<KeyValue>);

impl SpanAttributes {
    /// Appends `kv` to the request's `SpanAttributes`, creating it if needed.
    pub fn push(extensions: &mut http::Extensions, kv: KeyValue) {
        match extensions.get_mut::<SpanAttributes>() {
            Some(attrs) => attrs.0.push(kv),
            None => {
                extensions.insert(SpanAttributes(vec![kv]));
            }
        }
    }
}
