//! Fuzz target bodies for every parser of the workspace that reads network or user input.
//!
//! Each function in [`targets`] takes arbitrary bytes, must never panic, and checks the
//! invariants the parser promises (bounds, round trips). The libFuzzer binaries under
//! `fuzz_targets/` and the stable `replay` runner both call these functions, so a crash found
//! by one is reproduced by the other.
//!
//! ```
//! otel_fuzz::targets::request_id(b"order-42\nx-request-id: \x1b[31mred");
//! ```

pub mod headers;
pub mod targets;

/// Every target, by the name of its libFuzzer binary and of its corpus folder.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("w3c_tracecontext", targets::w3c_tracecontext),
    ("baggage", targets::baggage),
    ("b3", targets::b3),
    ("jaeger", targets::jaeger),
    ("xray", targets::xray),
    ("request_id", targets::request_id),
    ("sql_fingerprint", targets::sql_fingerprint),
    ("retry_after", targets::retry_after),
    ("grpc_timeout", targets::grpc_timeout),
];
