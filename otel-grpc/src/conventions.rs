//! The attribute and metric names this crate records, from
//! `otel_core::attributes::semconv` (the current RPC conventions), and the
//! `OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup` switch that adds the legacy ones.
//!
//! ```
//! use otel_grpc::conventions::{self, SemconvMode};
//!
//! assert_eq!(conventions::RPC_SYSTEM_NAME, "rpc.system.name");
//! assert_eq!(SemconvMode::from_opt_in("http,rpc/dup"), SemconvMode::Duplicate);
//! assert_eq!(SemconvMode::from_opt_in("rpc"), SemconvMode::Current);
//! ```
#![allow(deprecated)] // the legacy names are deprecated on purpose: `rpc/dup` asks for them.

use std::sync::LazyLock;

use otel_core::attributes::semconv::{attribute, metric};

/// `rpc.system.name`: always `grpc`.
pub const RPC_SYSTEM_NAME: &str = attribute::RPC_SYSTEM_NAME;
/// `rpc.method`: the fully qualified method, `pkg.Service/Method`, or `_OTHER`.
pub const RPC_METHOD: &str = attribute::RPC_METHOD;
/// `rpc.method_original`: the path of a request whose method was not recognised.
pub const RPC_METHOD_ORIGINAL: &str = attribute::RPC_METHOD_ORIGINAL;
/// `rpc.response.status_code`: the status name, `OK`, `UNAVAILABLE`, ...
pub const RPC_RESPONSE_STATUS_CODE: &str = attribute::RPC_RESPONSE_STATUS_CODE;
/// `server.address`.
pub const SERVER_ADDRESS: &str = attribute::SERVER_ADDRESS;
/// `server.port`.
pub const SERVER_PORT: &str = attribute::SERVER_PORT;
/// `error.type`: the status name of a failed call, or a transport class (`timeout`, ...).
pub const ERROR_TYPE: &str = attribute::ERROR_TYPE;
/// `http.request.resend_count`: set by a retry layer through `ResendCount`, when above 0.
pub const RESEND_COUNT: &str = attribute::HTTP_REQUEST_RESEND_COUNT;

/// Legacy `rpc.system` (`grpc`), recorded with `rpc/dup` only.
pub const LEGACY_RPC_SYSTEM: &str = attribute::RPC_SYSTEM;
/// Legacy `rpc.service` (`pkg.Service`), recorded with `rpc/dup` only.
pub const LEGACY_RPC_SERVICE: &str = attribute::RPC_SERVICE;
/// Legacy `rpc.grpc.status_code` (integer), recorded with `rpc/dup` only.
pub const LEGACY_RPC_GRPC_STATUS_CODE: &str = attribute::RPC_GRPC_STATUS_CODE;

/// Histogram of server call durations, in seconds.
pub const RPC_SERVER_CALL_DURATION: &str = metric::RPC_SERVER_CALL_DURATION;
/// Histogram of client call durations, in seconds.
pub const RPC_CLIENT_CALL_DURATION: &str = metric::RPC_CLIENT_CALL_DURATION;

/// The `rpc.system.name` value of this crate.
pub const GRPC: &str = "grpc";

/// Which generation of RPC attribute names to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemconvMode {
    /// The current conventions only (the default).
    Current,
    /// The current conventions plus `rpc.system`, `rpc.service`, `rpc.grpc.status_code`.
    Duplicate,
}

impl SemconvMode {
    /// Reads a value of `OTEL_SEMCONV_STABILITY_OPT_IN` (comma-separated list).
    pub fn from_opt_in(value: &str) -> Self {
        if value.split(',').any(|v| v.trim() == "rpc/dup") {
            SemconvMode::Duplicate
        } else {
            SemconvMode::Current
        }
    }

    /// The mode from `OTEL_SEMCONV_STABILITY_OPT_IN`, read once per process.
    pub fn from_env() -> Self {
        static MODE: LazyLock<SemconvMode> = LazyLock::new(|| {
            SemconvMode::from_opt_in(
                &std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN").unwrap_or_default(),
            )
        });
        *MODE
    }
}
