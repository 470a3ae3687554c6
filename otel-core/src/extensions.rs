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
//!
//! A layer on a hot path can also hand [`SpanAttributes`] to the client layer of the call it
//! makes without allocating anything per call ([`SpanAttributes::hand_off`]); the client
//! layers read both channels with [`SpanAttributes::take`].

use std::borrow::Cow;
use std::cell::Cell;

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
///
/// Two channels lead to the client layer:
/// - the request extension (this type, [`push`](Self::push)): travels with the request
///   wherever it goes, even to another task (a `tower::buffer` between the layers), at the
///   price of the extension map and a `Vec` allocated per request;
/// - [`hand_off`](Self::hand_off): the attributes wait in one reused per-thread buffer while
///   the layer calls the service below; the client layer takes them when it builds its span
///   in that same call. Nothing is allocated per call, so a layer that guards every call (the
///   circuit breaker) uses this one.
///
/// Client layers read both with [`take`](Self::take).
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

    /// Runs `call` (the `Service::call` of the layers below) with `attributes` waiting for the
    /// client layer that builds its span inside it, on this thread. What no client layer took
    /// is forgotten when `call` returns, so nothing leaks to a later call. A client span built
    /// elsewhere (another task, after `call` returned) does not see them: put the attributes in
    /// the request extension with [`push`](Self::push) in that case.
    ///
    /// ```
    /// use opentelemetry::KeyValue;
    /// use otel_core::extensions::SpanAttributes;
    ///
    /// let extensions = http::Extensions::new();
    /// let seen = SpanAttributes::hand_off(&[KeyValue::new("circuit_breaker.state", "closed")], || {
    ///     // What a client layer does when it builds its span:
    ///     let mut seen = Vec::new();
    ///     SpanAttributes::take(&extensions, |kv| seen.push(kv));
    ///     seen
    /// });
    /// assert_eq!(seen, [KeyValue::new("circuit_breaker.state", "closed")]);
    /// ```
    pub fn hand_off<R>(attributes: &[KeyValue], call: impl FnOnce() -> R) -> R {
        // Hand-written rather than a crate: what it takes is a pointer in a thread-local to a
        // list of frames on the stack of the callers, one per nested hand-off; no allocation,
        // no copy of the attributes, two thread-local writes.
        let frame = HandOff {
            attributes,
            outer: HANDED_OFF.get(),
        };
        HANDED_OFF.set(std::ptr::from_ref(&frame).cast());
        // Restores the outer frames (unless a client layer took them) even if `call` panics,
        // before `frame` goes out of scope.
        struct Restore<'f>(&'f HandOff<'f>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if std::ptr::eq(HANDED_OFF.get(), std::ptr::from_ref(self.0).cast()) {
                    HANDED_OFF.set(self.0.outer);
                }
            }
        }
        let _restore = Restore(&frame);
        call()
    }

    /// Gives `record` every attribute meant for the span being built: those handed off by
    /// the layers above (taken: a second client span in the same call does not get them
    /// again), then those of the request's `SpanAttributes` extension.
    pub fn take(extensions: &http::Extensions, mut record: impl FnMut(KeyValue)) {
        let mut frame = HANDED_OFF.replace(std::ptr::null());
        while !frame.is_null() {
            // SAFETY: a non-null pointer in `HANDED_OFF` points to the `HandOff` of a
            // `hand_off` call still running on this thread (each one restores the pointer
            // before its frame goes out of scope, panics included), and so do the `outer`
            // links; they are only read here.
            let current = unsafe { &*frame };
            current.attributes.iter().cloned().for_each(&mut record);
            frame = current.outer;
        }
        if let Some(attrs) = extensions.get::<SpanAttributes>() {
            attrs.0.iter().cloned().for_each(record);
        }
    }
}

/// One [`SpanAttributes::hand_off`] in progress: its attributes and the enclosing one's.
struct HandOff<'a> {
    attributes: &'a [KeyValue],
    outer: *const HandOff<'static>,
}

thread_local! {
    /// The innermost [`SpanAttributes::hand_off`] in progress on this thread (null: none).
    static HANDED_OFF: Cell<*const HandOff<'static>> = const { Cell::new(std::ptr::null()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(extensions: &http::Extensions) -> Vec<KeyValue> {
        let mut seen = Vec::new();
        SpanAttributes::take(extensions, |kv| seen.push(kv));
        seen
    }

    #[test]
    fn handed_off_attributes_are_taken_once_then_the_extension_ones() {
        let mut extensions = http::Extensions::new();
        SpanAttributes::push(&mut extensions, KeyValue::new("from.extension", 1));
        let (first, second) = SpanAttributes::hand_off(&[KeyValue::new("handed.off", 2)], || {
            (taken(&extensions), taken(&extensions))
        });
        assert_eq!(
            first,
            [
                KeyValue::new("handed.off", 2),
                KeyValue::new("from.extension", 1)
            ]
        );
        assert_eq!(second, [KeyValue::new("from.extension", 1)]);
    }

    #[test]
    fn what_no_client_layer_took_does_not_leak_to_the_next_call() {
        let extensions = http::Extensions::new();
        SpanAttributes::hand_off(&[KeyValue::new("untaken", true)], || ());
        assert!(taken(&extensions).is_empty());
        // Nested hand-offs (two layers) reach the same client span; the outer one's survive
        // the inner scope when nobody took them.
        let seen = SpanAttributes::hand_off(&[KeyValue::new("outer", 1)], || {
            SpanAttributes::hand_off(&[KeyValue::new("inner", 2)], || ());
            taken(&extensions)
        });
        assert_eq!(seen, [KeyValue::new("outer", 1)]);
        let seen = SpanAttributes::hand_off(&[KeyValue::new("outer", 1)], || {
            SpanAttributes::hand_off(&[KeyValue::new("inner", 2)], || taken(&extensions))
        });
        assert_eq!(
            seen,
            [KeyValue::new("inner", 2), KeyValue::new("outer", 1)],
            "two layers reach the same span"
        );
        assert!(taken(&extensions).is_empty());
    }

    #[test]
    fn a_panicking_call_does_not_leave_attributes_behind() {
        let result = std::panic::catch_unwind(|| {
            SpanAttributes::hand_off(&[KeyValue::new("lost", 1)], || panic!("inner service"))
        });
        assert!(result.is_err());
        assert!(taken(&http::Extensions::new()).is_empty());
    }
}
