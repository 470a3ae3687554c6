//! The B3 / Jaeger "debug" sampling flag, carried in the OpenTelemetry [`Context`].
//!
//! W3C trace flags have no debug bit, so the B3 (`b3: …-d`, `X-B3-Flags: 1`) and Jaeger (flag
//! bit 2) extractors store [`DebugFlag`] in the context next to the (sampled) span context,
//! and their injectors write the debug form back when it is present.
//!
//! ```
//! use opentelemetry::Context;
//! use otel_core::propagation::DebugFlag;
//!
//! let cx = Context::new().with_value(DebugFlag);
//! assert!(DebugFlag::is_set(&cx));
//! assert!(!DebugFlag::is_set(&Context::new()));
//! ```

use opentelemetry::Context;

/// Marks a trace as force-sampled for debugging (B3 `d` / `X-B3-Flags: 1`, Jaeger flag `0x2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DebugFlag;

impl DebugFlag {
    /// Whether `cx` carries the debug flag.
    pub fn is_set(cx: &Context) -> bool {
        cx.get::<DebugFlag>().is_some()
    }
}
