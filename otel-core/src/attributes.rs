//! Every attribute and event name that no OpenTelemetry semantic convention covers.
//!
//! Where a convention exists we use it (from `opentelemetry-semantic-conventions`, re-exported
//! here as [`semconv`]): `http.request.resend_count` for retries, `error.type` for every failure
//! class. Where the conventions are silent — request ids, retry policy state, circuit breakers,
//! N+1 findings — the names are ours, chosen once, listed here and in the crate README.
//!
//! ```
//! use otel_core::attributes;
//!
//! let span = tracing::info_span!("GET /users/{id}", "request.id" = tracing::field::Empty);
//! span.record(attributes::REQUEST_ID, "01JD3Z...");
//! assert_eq!(attributes::CIRCUIT_BREAKER_STATE, "circuit_breaker.state");
//! ```

/// Re-export of the OpenTelemetry semantic-convention constants (stable and experimental),
/// so every crate of the workspace names conventional attributes the same way.
pub use opentelemetry_semantic_conventions as semconv;

// ---- request id -------------------------------------------------------------------------

/// The request id of the request this span serves or forwards (`x-request-id`).
pub const REQUEST_ID: &str = "request.id";
/// Set to `true` on a server span when the incoming request id was invalid and replaced.
pub const REQUEST_ID_REJECTED: &str = "request.id.rejected";

// ---- retry ------------------------------------------------------------------------------

/// Number of attempts the logical call made in all (1 = no retry). On the logical-call span.
pub const RETRY_ATTEMPTS: &str = "retry.attempts";
/// The configured maximum number of attempts, so "3 of 3" reads at a glance.
pub const RETRY_MAX_ATTEMPTS: &str = "retry.max_attempts";
/// `true` when the retry budget refused a retry the policy would otherwise have made.
pub const RETRY_BUDGET_EXHAUSTED: &str = "retry.budget_exhausted";
/// Delay in milliseconds waited before this attempt (on the `retry.attempt` event).
pub const RETRY_DELAY_MS: &str = "retry.delay_ms";
/// Why the previous attempt was retried: an `error.type` class such as `503` or `timeout`.
pub const RETRY_REASON: &str = "retry.reason";
/// The attempt number (1-based) on the `retry.attempt` event.
pub const RETRY_ATTEMPT: &str = "retry.attempt";
/// Where the delay came from: `backoff`, `retry_after` or `pushback`.
pub const RETRY_DELAY_SOURCE: &str = "retry.delay_source";
/// Event emitted on the logical-call span before each retry.
pub const RETRY_ATTEMPT_EVENT: &str = "retry.attempt";
/// Event emitted when the retry budget refused a retry.
pub const RETRY_BUDGET_EXHAUSTED_EVENT: &str = "retry.budget_exhausted";

// ---- circuit breaker --------------------------------------------------------------------

/// Breaker state seen by the call: `closed`, `open` or `half_open`.
pub const CIRCUIT_BREAKER_STATE: &str = "circuit_breaker.state";
/// Failures counted in the breaker's current window when the call was admitted or rejected.
pub const CIRCUIT_BREAKER_FAILURES: &str = "circuit_breaker.failures";
/// The breaker's key, by default the downstream authority (`host:port`).
pub const CIRCUIT_BREAKER_NAME: &str = "circuit_breaker.name";
/// On a rejected call: milliseconds until the breaker admits its next probe.
pub const CIRCUIT_BREAKER_NEXT_PROBE_MS: &str = "circuit_breaker.next_probe_ms";
/// Event: the breaker moved to `open`.
pub const CIRCUIT_BREAKER_OPENED_EVENT: &str = "circuit_breaker.opened";
/// Event: the breaker moved to `half_open`.
pub const CIRCUIT_BREAKER_HALF_OPENED_EVENT: &str = "circuit_breaker.half_opened";
/// Event: the breaker moved to `closed`.
pub const CIRCUIT_BREAKER_CLOSED_EVENT: &str = "circuit_breaker.closed";

// ---- repeated shapes (N+1) --------------------------------------------------------------

/// Event on the scope span for each finding.
pub const N_PLUS_ONE_EVENT: &str = "n_plus_one.detected";
/// Finding kind: `n_plus_one`, `duplicate`, `fan_out` or `unbatched_write`.
pub const N_PLUS_ONE_KIND: &str = "n_plus_one.kind";
/// The repeated shape (sanitised SQL or `GET host/path/{id}`).
pub const N_PLUS_ONE_SHAPE: &str = "n_plus_one.shape";
/// How many times the shape ran in the scope when the finding was made (or at scope end).
pub const N_PLUS_ONE_COUNT: &str = "n_plus_one.count";
/// Total time spent in the repeats, in milliseconds.
pub const N_PLUS_ONE_TOTAL_DURATION_MS: &str = "n_plus_one.total_duration_ms";
/// Source location (`file:line`) or span name of the loop that issued the repeats.
pub const N_PLUS_ONE_CALL_SITE: &str = "n_plus_one.call_site";
/// The query/call that preceded the loop (the "1" of "1 + N"), when there is one.
pub const N_PLUS_ONE_SOURCE: &str = "n_plus_one.source";
/// A concrete fix, e.g. `WHERE post_id = ANY($1)` or `QueryBuilder::push_values`.
pub const N_PLUS_ONE_SUGGESTION: &str = "n_plus_one.suggestion";
/// Number of findings recorded on the scope span.
pub const N_PLUS_ONE_FINDINGS: &str = "n_plus_one.findings";

// ---- diagnostics ------------------------------------------------------------------------

/// Span event with a `curl` command that reproduces an outgoing request (secrets redacted).
pub const HTTP_CURL_EVENT: &str = "http.request.curl";
/// Attribute of [`HTTP_CURL_EVENT`] holding the command line.
pub const HTTP_CURL_COMMAND: &str = "http.request.curl.command";
/// `true` on a server span whose response body was dropped before it was sent to the end.
pub const HTTP_RESPONSE_BODY_INCOMPLETE: &str = "http.response.body.incomplete";

/// Values of `retry.delay_source`.
pub mod delay_source {
    /// The delay came from the exponential backoff.
    pub const BACKOFF: &str = "backoff";
    /// The server asked for it with `Retry-After`.
    pub const RETRY_AFTER: &str = "retry_after";
    /// The server asked for it with gRPC pushback (`grpc-retry-pushback-ms`).
    pub const PUSHBACK: &str = "pushback";
}

/// Names of the metrics no semantic convention covers.
pub mod metrics {
    /// Counter of attempts made by retry layers (attribute `retry.attempt`).
    pub const RETRY_ATTEMPTS: &str = "retry.attempts";
    /// Counter of retries the retry budget refused.
    pub const RETRY_BUDGET_REJECTIONS: &str = "retry.budget.rejections";
    /// Gauge of a breaker's state (0 closed, 1 open, 2 half_open; attribute `circuit_breaker.name`).
    pub const CIRCUIT_BREAKER_STATE: &str = "circuit_breaker.state";
    /// Counter of breaker transitions (attribute `circuit_breaker.state`: the new state).
    pub const CIRCUIT_BREAKER_TRANSITIONS: &str = "circuit_breaker.transitions";
    /// Counter of calls a breaker rejected.
    pub const CIRCUIT_BREAKER_REJECTIONS: &str = "circuit_breaker.rejections";
    /// Counter of N+1 findings (attribute `n_plus_one.kind`).
    pub const N_PLUS_ONE_FINDINGS: &str = "n_plus_one.findings";
}

/// Low-cardinality values of `error.type` that are ours (status codes are the other values).
pub mod error_type {
    /// The call timed out (per attempt or overall deadline).
    pub const TIMEOUT: &str = "timeout";
    /// The peer refused the connection.
    pub const CONNECTION_REFUSED: &str = "connection_refused";
    /// The connection was reset or closed before a response arrived.
    pub const CONNECTION_RESET: &str = "connection_reset";
    /// The host name did not resolve.
    pub const DNS: &str = "dns";
    /// The TLS handshake failed.
    pub const TLS: &str = "tls";
    /// A circuit breaker rejected the call without sending it.
    pub const CIRCUIT_OPEN: &str = "circuit_open";
    /// The retry budget refused a retry and the last failure was returned.
    pub const RETRY_BUDGET_EXHAUSTED: &str = "retry_budget_exhausted";
    /// The database connection pool was closed.
    pub const POOL_CLOSED: &str = "pool_closed";
    /// A query expected a row and found none.
    pub const ROW_NOT_FOUND: &str = "row_not_found";
    /// The peer broke its wire protocol.
    pub const PROTOCOL: &str = "protocol";
    /// A value could not be encoded for sending.
    pub const ENCODE: &str = "encode";
    /// A received value could not be decoded.
    pub const DECODE: &str = "decode";
    /// The handler panicked.
    pub const PANIC: &str = "panic";
    /// Any other failure; the OpenTelemetry fallback value.
    pub const OTHER: &str = "_OTHER";
}
