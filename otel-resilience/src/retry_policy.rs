//! The retry policy: which failures are retried, how long to wait, and when to stop. Pure
//! state-machine code (clock and randomness passed in), used by the tower and
//! reqwest-middleware adapters and usable on its own.
//!
//! Defaults: 3 attempts in all; exponential backoff 100 ms doubling, cap 5 s, full jitter;
//! only idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE), plus any method when the
//! request provably never reached the server (connect error); HTTP 429, 502, 503, 504 and
//! transport errors; gRPC `UNAVAILABLE` only (any method: gRPC calls are all POST, and the
//! retryable codes are gRPC's own statement of what is safe to retry); `Retry-After` (seconds or HTTP date) and
//! `grpc-retry-pushback-ms` honoured, capped at 5 s; a breaker rejection is never retried.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use http::{Method, StatusCode};
//! use otel_resilience::retry_policy::{Decision, Failure, RetryPolicy, RetryState};
//! use rand::SeedableRng;
//!
//! let policy = RetryPolicy::default();
//! let now = Instant::now();
//! let state = RetryState::new(now).after_attempts(1);
//! let failure = Failure::status(StatusCode::SERVICE_UNAVAILABLE);
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! assert!(matches!(policy.decide(&state, &Method::GET, &failure, now, &mut rng), Decision::Retry { .. }));
//! assert!(matches!(policy.decide(&state, &Method::POST, &failure, now, &mut rng), Decision::GiveUp(_)));
//! ```

use std::borrow::Cow;
use std::error::Error as StdError;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, Method, StatusCode};
use otel_core::attributes::error_type;
use rand::Rng;

use crate::backoff::Backoff;
use crate::circuit_breaker::CircuitOpen;
use crate::config_error::{ConfigError, Value, check, refuse};

/// gRPC status code `UNAVAILABLE`.
pub const GRPC_UNAVAILABLE: i32 = 14;
/// The gRPC pushback header (milliseconds; negative or malformed means "do not retry").
pub const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// The retry policy. Build with [`RetryPolicy::default`] and the builder methods.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
    deadline: Option<Duration>,
    methods: Vec<Method>,
    statuses: Vec<StatusCode>,
    grpc_codes: Vec<i32>,
    retry_transport_errors: bool,
    max_server_delay: Duration,
    max_replay_body: usize,
    invalid: Option<ConfigError>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::default(),
            deadline: None,
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::PUT,
                Method::DELETE,
                Method::TRACE,
            ],
            statuses: vec![
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ],
            grpc_codes: vec![GRPC_UNAVAILABLE],
            retry_transport_errors: true,
            max_server_delay: Duration::from_secs(5),
            max_replay_body: 64 * 1024,
            invalid: None,
        }
    }
}

/// What went wrong with one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The class of failure.
    pub kind: FailureKind,
    /// The delay the server asked for (`Retry-After` or gRPC pushback), if any.
    pub server_delay: Option<ServerDelay>,
}

/// The class of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// An HTTP response with this status.
    Status(StatusCode),
    /// A gRPC response with this `grpc-status` (non-zero).
    Grpc(i32),
    /// The connection could not be established: the request never reached the server.
    Connect,
    /// The attempt timed out (it may have reached the server).
    Timeout,
    /// The connection failed after it was established (reset, closed, protocol error).
    Transport,
    /// A circuit breaker rejected the call without sending it.
    CircuitOpen,
    /// Anything else (never retried).
    Other,
}

/// A delay asked for by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerDelay {
    /// `Retry-After`, converted to a delay.
    RetryAfter(Duration),
    /// `grpc-retry-pushback-ms` with a non-negative value.
    Pushback(Duration),
    /// `grpc-retry-pushback-ms` negative or malformed: the server says do not retry.
    DoNotRetry,
}

/// Where a retry delay came from (the `retry.delay_source` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelaySource {
    /// Exponential backoff with jitter.
    Backoff,
    /// The server's `Retry-After`.
    RetryAfter,
    /// The server's `grpc-retry-pushback-ms`.
    Pushback,
}

/// The policy's answer after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait `delay`, then send the next attempt.
    Retry {
        /// How long to wait.
        delay: Duration,
        /// Where the delay came from.
        source: DelaySource,
    },
    /// Return the failure to the caller.
    GiveUp(GiveUpReason),
}

/// Why the policy does not retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The failure class is not retryable (e.g. a 500, a 404, gRPC `INTERNAL`).
    NotRetryable,
    /// The method is not idempotent and the request may have reached the server.
    NotIdempotent,
    /// All attempts are used.
    MaxAttempts,
    /// The next attempt would start after the overall deadline.
    Deadline,
    /// A circuit breaker rejected the call: retrying would only hammer it.
    CircuitOpen,
    /// The server said not to retry (negative gRPC pushback).
    ServerRefused,
    /// The request body cannot be replayed (streaming or larger than the buffer limit).
    BodyNotReplayable,
    /// The retry budget is exhausted.
    BudgetExhausted,
}

/// Progress of one logical call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryState {
    /// When the logical call started.
    pub started: Instant,
    /// Attempts made so far.
    pub attempts: u32,
    /// The delay waited before the latest attempt (zero before the first retry).
    pub previous_delay: Duration,
}

impl RetryPolicy {
    /// Maximum attempts in all, first included (default 3; at least 1: 0 is refused when the
    /// retry layer is built, see [`ConfigError`]).
    pub fn max_attempts(mut self, n: u32) -> Self {
        if n == 0 {
            refuse(
                &mut self.invalid,
                ConfigError::new(
                    "RetryPolicy::max_attempts",
                    Value::Int(0),
                    "use at least 1 (the first attempt counts; 1 = never retry, default 3)",
                ),
            );
        } else {
            self.max_attempts = n;
        }
        self
    }

    /// `Err` with the first refused setting of the policy or its backoff, if any.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(&self.invalid)?;
        self.backoff.validate()
    }

    /// The backoff between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// An overall deadline covering all attempts: no retry starts after it (default none;
    /// put a `tower::timeout` layer above the retry layer to cut an attempt in flight).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        if deadline.is_zero() {
            refuse(
                &mut self.invalid,
                ConfigError::new(
                    "RetryPolicy::deadline",
                    Value::Duration(deadline),
                    "use a positive duration, or leave the deadline unset (default: none)",
                ),
            );
        } else {
            self.deadline = Some(deadline);
        }
        self
    }

    /// The methods retried on any retryable failure (default: the idempotent ones).
    pub fn retry_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// The HTTP statuses retried (default 429, 502, 503, 504).
    pub fn retry_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// The gRPC status codes retried (default `UNAVAILABLE` = 14 only).
    pub fn retry_grpc_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.grpc_codes = codes.into_iter().collect();
        self
    }

    /// Whether timeouts and broken connections are retried for retryable methods (default
    /// true). Connect errors are always retryable.
    pub fn retry_transport_errors(mut self, yes: bool) -> Self {
        self.retry_transport_errors = yes;
        self
    }

    /// The cap on a server-requested delay (`Retry-After`, pushback); longer requests are
    /// waited for this long (default 5 s).
    pub fn max_server_delay(mut self, cap: Duration) -> Self {
        self.max_server_delay = cap;
        self
    }

    /// The largest request body buffered so that it can be replayed (default 64 KiB);
    /// larger or streaming bodies are sent once and never retried.
    pub fn max_replay_body(mut self, bytes: usize) -> Self {
        self.max_replay_body = bytes;
        self
    }

    /// The configured maximum attempts.
    pub fn get_max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The configured body buffer limit.
    pub fn get_max_replay_body(&self) -> usize {
        self.max_replay_body
    }

    /// The configured overall deadline, if any.
    pub fn get_deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The configured backoff.
    pub fn get_backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// Whether `method` is retried on any retryable failure.
    pub fn is_retryable_method(&self, method: &Method) -> bool {
        self.methods.iter().any(|m| m == method)
    }

    /// Classifies a response: `None` when it is a success for retry purposes. Reads
    /// `grpc-status` (trailers-only responses) on gRPC responses (`content-type:
    /// application/grpc*`), the HTTP status on the others, then `Retry-After` and
    /// `grpc-retry-pushback-ms`; `now` converts an HTTP-date `Retry-After`.
    pub fn classify_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<Failure> {
        self.classify_response_with(status, headers, || now)
    }

    /// [`classify_response`](Self::classify_response) reading the wall clock only when an
    /// HTTP-date `Retry-After` needs it (never on a success: the healthy path reads no clock
    /// here).
    #[inline]
    pub(crate) fn classify_response_with(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        now: impl FnOnce() -> SystemTime,
    ) -> Option<Failure> {
        // The healthy path, inlined: a plain HTTP response below 400.
        if status.as_u16() < 400 && !is_grpc(headers) {
            return None;
        }
        self.classify_failed_response(status, headers, now)
    }

    /// [`classify_response_with`](Self::classify_response_with) past its healthy path.
    #[inline(never)]
    fn classify_failed_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        now: impl FnOnce() -> SystemTime,
    ) -> Option<Failure> {
        let grpc = if is_grpc(headers) {
            grpc_status(headers)
        } else {
            None
        };
        let kind = if let Some(code) = grpc {
            if code == 0 {
                return None;
            }
            FailureKind::Grpc(code)
        } else if status.is_success() || status.is_informational() || status.is_redirection() {
            return None;
        } else {
            FailureKind::Status(status)
        };
        Some(Failure {
            kind,
            server_delay: server_delay(headers, now),
        })
    }

    /// Whether the failure class is retryable at all (methods aside).
    pub fn is_retryable(&self, kind: &FailureKind) -> bool {
        match kind {
            FailureKind::Status(s) => self.statuses.contains(s),
            FailureKind::Grpc(c) => self.grpc_codes.contains(c),
            FailureKind::Connect => true,
            FailureKind::Timeout | FailureKind::Transport => self.retry_transport_errors,
            FailureKind::CircuitOpen | FailureKind::Other => false,
        }
    }

    /// Decides what to do after the failed attempt number `state.attempts`.
    pub fn decide<R: Rng + ?Sized>(
        &self,
        state: &RetryState,
        method: &Method,
        failure: &Failure,
        now: Instant,
        rng: &mut R,
    ) -> Decision {
        if failure.kind == FailureKind::CircuitOpen {
            return Decision::GiveUp(GiveUpReason::CircuitOpen);
        }
        if !self.is_retryable(&failure.kind) {
            return Decision::GiveUp(GiveUpReason::NotRetryable);
        }
        // A connect error never reached the server; a retryable gRPC code is the service's
        // own statement that the call may be retried (gRPC calls are all POST).
        let safe_anyway = matches!(failure.kind, FailureKind::Connect | FailureKind::Grpc(_));
        if !safe_anyway && !self.is_retryable_method(method) {
            return Decision::GiveUp(GiveUpReason::NotIdempotent);
        }
        if state.attempts >= self.max_attempts {
            return Decision::GiveUp(GiveUpReason::MaxAttempts);
        }
        let (delay, source) = match failure.server_delay {
            Some(ServerDelay::DoNotRetry) => return Decision::GiveUp(GiveUpReason::ServerRefused),
            Some(ServerDelay::RetryAfter(d)) => {
                (d.min(self.max_server_delay), DelaySource::RetryAfter)
            }
            Some(ServerDelay::Pushback(d)) => (d.min(self.max_server_delay), DelaySource::Pushback),
            None => (
                self.backoff
                    .delay(state.attempts, state.previous_delay, rng),
                DelaySource::Backoff,
            ),
        };
        if let Some(deadline) = self.deadline {
            let elapsed = now.saturating_duration_since(state.started);
            if elapsed.saturating_add(delay) >= deadline {
                return Decision::GiveUp(GiveUpReason::Deadline);
            }
        }
        Decision::Retry { delay, source }
    }
}

impl RetryState {
    /// A logical call started at `started`, before its first attempt.
    pub fn new(started: Instant) -> Self {
        RetryState {
            started,
            attempts: 0,
            previous_delay: Duration::ZERO,
        }
    }

    /// The same state with `attempts` attempts made.
    pub fn after_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }
}

impl Failure {
    /// An HTTP status failure without a server delay.
    pub fn status(status: StatusCode) -> Self {
        Failure {
            kind: FailureKind::Status(status),
            server_delay: None,
        }
    }

    /// A failure of `kind` without a server delay.
    pub fn new(kind: FailureKind) -> Self {
        Failure {
            kind,
            server_delay: None,
        }
    }

    /// Classifies an error returned by a service or client: breaker rejections, connect
    /// errors (hyper-util, reqwest, `io::ErrorKind::ConnectionRefused`), timeouts
    /// (`tower::timeout`, `io::ErrorKind::TimedOut`) and other transport errors.
    pub fn from_error(error: &(dyn StdError + 'static)) -> Self {
        Failure::new(classify_error(error))
    }

    /// The low-cardinality `error.type` of this failure (`503`, `UNAVAILABLE`, `timeout`,
    /// `connection_refused`, `circuit_open`, ...).
    pub fn error_type(&self) -> Cow<'static, str> {
        self.kind.error_type()
    }
}

impl FailureKind {
    /// The `error.type` value of this class.
    pub fn error_type(&self) -> Cow<'static, str> {
        match self {
            FailureKind::Status(s) => match s.as_u16() {
                429 => Cow::Borrowed("429"),
                500 => Cow::Borrowed("500"),
                502 => Cow::Borrowed("502"),
                503 => Cow::Borrowed("503"),
                504 => Cow::Borrowed("504"),
                other => Cow::Owned(other.to_string()),
            },
            FailureKind::Grpc(code) => Cow::Borrowed(grpc_code_name(*code)),
            FailureKind::Connect => Cow::Borrowed(error_type::CONNECTION_REFUSED),
            FailureKind::Timeout => Cow::Borrowed(error_type::TIMEOUT),
            FailureKind::Transport => Cow::Borrowed(error_type::CONNECTION_RESET),
            FailureKind::CircuitOpen => Cow::Borrowed(error_type::CIRCUIT_OPEN),
            FailureKind::Other => Cow::Borrowed(error_type::OTHER),
        }
    }
}

impl DelaySource {
    /// The `retry.delay_source` value: `backoff`, `retry_after` or `pushback`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DelaySource::Backoff => otel_core::attributes::delay_source::BACKOFF,
            DelaySource::RetryAfter => otel_core::attributes::delay_source::RETRY_AFTER,
            DelaySource::Pushback => otel_core::attributes::delay_source::PUSHBACK,
        }
    }
}

/// Parses a `Retry-After` value (delta-seconds or HTTP date) into a delay from `now`. A date
/// in the past is a zero delay; anything unparseable is `None`.
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // delay-seconds is `1*DIGIT`: leading zeros are valid at any length; a value past
        // u64 is refused (None) without being scanned twice.
        let digits = text.trim_start_matches('0');
        if digits.is_empty() {
            return Some(Duration::ZERO);
        }
        if digits.len() > 20 {
            return None;
        }
        return digits.parse::<u64>().ok().map(Duration::from_secs);
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The gRPC status of a trailers-only response (`grpc-status` header), if present and valid.
pub fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    let value = headers.get(&GRPC_STATUS)?;
    std::str::from_utf8(value.as_bytes())
        .ok()?
        .trim()
        .parse::<i32>()
        .ok()
}

/// Whether the response is gRPC: its `content-type` is `application/grpc` or
/// `application/grpc+{subtype}` (the gRPC over HTTP/2 protocol requires it, trailers-only
/// responses included). A plain HTTP response is classified by its status, whatever headers
/// it carries; the check costs nothing on a response without headers.
#[inline]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    // `HeaderMap::get` hashes the name before it looks at the map.
    !headers.is_empty()
        && headers.get(http::header::CONTENT_TYPE).is_some_and(|v| {
            let v = v.as_bytes();
            v.len() >= GRPC_CONTENT_TYPE.len()
                && v[..GRPC_CONTENT_TYPE.len()].eq_ignore_ascii_case(GRPC_CONTENT_TYPE)
                && matches!(v.get(GRPC_CONTENT_TYPE.len()), None | Some(b'+' | b';'))
        })
}

// ---- helpers ----------------------------------------------------------------------------

const GRPC_CONTENT_TYPE: &[u8] = b"application/grpc";
/// Parsed once: a `&str` key would be parsed into a header name on every lookup.
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_RETRY_PUSHBACK: HeaderName = HeaderName::from_static(GRPC_RETRY_PUSHBACK_MS);

fn server_delay(headers: &HeaderMap, now: impl FnOnce() -> SystemTime) -> Option<ServerDelay> {
    if let Some(v) = headers.get(&GRPC_RETRY_PUSHBACK) {
        let parsed = std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok());
        return Some(match parsed {
            Some(ms) if ms >= 0 => ServerDelay::Pushback(Duration::from_millis(ms as u64)),
            _ => ServerDelay::DoNotRetry,
        });
    }
    let v = headers.get(http::header::RETRY_AFTER)?;
    parse_retry_after(v.as_bytes(), now()).map(ServerDelay::RetryAfter)
}

fn classify_error(error: &(dyn StdError + 'static)) -> FailureKind {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    let mut depth = 0;
    let mut kind = FailureKind::Other;
    while let Some(err) = current {
        if err.downcast_ref::<CircuitOpen>().is_some() {
            return FailureKind::CircuitOpen;
        }
        if let Some(e) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
            if e.is_connect() {
                return FailureKind::Connect;
            }
            kind = FailureKind::Transport;
        }
        if err
            .downcast_ref::<tower::timeout::error::Elapsed>()
            .is_some()
            || err.downcast_ref::<tokio::time::error::Elapsed>().is_some()
        {
            return FailureKind::Timeout;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused | K::AddrNotAvailable => {
                    return FailureKind::Connect;
                }
                K::TimedOut => return FailureKind::Timeout,
                K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::UnexpectedEof
                | K::NotConnected => kind = FailureKind::Transport,
                _ => {}
            }
        }
        #[cfg(feature = "reqwest")]
        if let Some(e) = err.downcast_ref::<reqwest::Error>() {
            if e.is_connect() {
                return FailureKind::Connect;
            }
            if e.is_timeout() {
                return FailureKind::Timeout;
            }
            if e.is_request() || e.is_body() {
                kind = FailureKind::Transport;
            }
        }
        if let Some(e) = err.downcast_ref::<hyper::Error>() {
            if e.is_timeout() {
                return FailureKind::Timeout;
            }
            if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
                kind = FailureKind::Transport;
            }
        }
        depth += 1;
        if depth > 16 {
            break;
        }
        current = err.source();
    }
    kind
}

fn grpc_code_name(code: i32) -> &'static str {
    match code {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => error_type::OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(3)
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(b"7", now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(3));
        assert_eq!(
            parse_retry_after(date.as_bytes(), now),
            Some(Duration::from_secs(3))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(past.as_bytes(), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(b"soon", now), None);
        assert_eq!(parse_retry_after(b"-1", now), None);
        assert_eq!(parse_retry_after(&[0xff, 0xfe], now), None);
        assert_eq!(parse_retry_after(b"99999999999999999999999", now), None);
    }

    #[test]
    fn server_delay_is_honoured_and_capped() {
        let p = RetryPolicy::default();
        let now = Instant::now();
        let state = RetryState::new(now).after_attempts(1);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        let f = p
            .classify_response(StatusCode::TOO_MANY_REQUESTS, &headers, SystemTime::now())
            .unwrap();
        assert_eq!(
            p.decide(&state, &Method::GET, &f, now, &mut rng()),
            Decision::Retry {
                delay: Duration::from_secs(2),
                source: DelaySource::RetryAfter
            }
        );
        headers.insert("retry-after", "120".parse().unwrap());
        let f = p
            .classify_response(StatusCode::SERVICE_UNAVAILABLE, &headers, SystemTime::now())
            .unwrap();
        assert_eq!(
            p.decide(&state, &Method::GET, &f, now, &mut rng()),
            Decision::Retry {
                delay: Duration::from_secs(5),
                source: DelaySource::RetryAfter
            }
        );
        let p = p.deadline(Duration::from_secs(4));
        assert_eq!(
            p.decide(&state, &Method::GET, &f, now, &mut rng()),
            Decision::GiveUp(GiveUpReason::Deadline)
        );
    }

    #[test]
    fn grpc_status_is_read_on_grpc_responses_only() {
        let p = RetryPolicy::default();
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", "14".parse().unwrap());
        // A plain HTTP response is judged by its status, whatever headers it carries.
        assert_eq!(
            p.classify_response(StatusCode::OK, &headers, SystemTime::now()),
            None
        );
        for (content_type, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC+json", true),
            ("application/grpc;charset=utf-8", true),
            ("application/grpc-web", false),
            ("application/grpcx", false),
            ("application/json", false),
            ("application/grp", false),
        ] {
            headers.insert("content-type", content_type.parse().unwrap());
            assert_eq!(is_grpc(&headers), grpc, "{content_type}");
            assert_eq!(
                p.classify_response(StatusCode::OK, &headers, SystemTime::now())
                    .is_some(),
                grpc,
                "{content_type}"
            );
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn grpc_only_unavailable_and_pushback() {
        let p = RetryPolicy::default();
        let now = Instant::now();
        let state = RetryState::new(now).after_attempts(1);
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/grpc".parse().unwrap());
        headers.insert("grpc-status", "14".parse().unwrap());
        headers.insert(GRPC_RETRY_PUSHBACK_MS, "250".parse().unwrap());
        let f = p
            .classify_response(StatusCode::OK, &headers, SystemTime::now())
            .unwrap();
        assert_eq!(f.error_type(), "UNAVAILABLE");
        // gRPC is always POST; UNAVAILABLE is retried anyway.
        assert_eq!(
            p.decide(&state, &Method::POST, &f, now, &mut rng()),
            Decision::Retry {
                delay: Duration::from_millis(250),
                source: DelaySource::Pushback
            }
        );
        headers.insert(GRPC_RETRY_PUSHBACK_MS, "-1".parse().unwrap());
        let f = p
            .classify_response(StatusCode::OK, &headers, SystemTime::now())
            .unwrap();
        assert_eq!(
            p.decide(&state, &Method::POST, &f, now, &mut rng()),
            Decision::GiveUp(GiveUpReason::ServerRefused)
        );
        headers.insert("grpc-status", "13".parse().unwrap());
        let f = p
            .classify_response(StatusCode::OK, &headers, SystemTime::now())
            .unwrap();
        assert_eq!(
            p.decide(&state, &Method::POST, &f, now, &mut rng()),
            Decision::GiveUp(GiveUpReason::NotRetryable)
        );
        headers.insert("grpc-status", "0".parse().unwrap());
        assert!(
            p.classify_response(StatusCode::OK, &headers, SystemTime::now())
                .is_none()
        );
    }

    #[test]
    fn methods_statuses_attempts_and_breaker() {
        let p = RetryPolicy::default();
        let now = Instant::now();
        let one = RetryState::new(now).after_attempts(1);
        let three = RetryState::new(now).after_attempts(3);
        let s503 = Failure::status(StatusCode::SERVICE_UNAVAILABLE);
        let mut r = rng();
        for m in [Method::GET, Method::PUT, Method::DELETE, Method::HEAD] {
            assert!(matches!(
                p.decide(&one, &m, &s503, now, &mut r),
                Decision::Retry { .. }
            ));
        }
        assert_eq!(
            p.decide(&one, &Method::POST, &s503, now, &mut r),
            Decision::GiveUp(GiveUpReason::NotIdempotent)
        );
        assert_eq!(
            p.decide(
                &one,
                &Method::PATCH,
                &Failure::new(FailureKind::Timeout),
                now,
                &mut r
            ),
            Decision::GiveUp(GiveUpReason::NotIdempotent)
        );
        assert!(matches!(
            p.decide(
                &one,
                &Method::POST,
                &Failure::new(FailureKind::Connect),
                now,
                &mut r
            ),
            Decision::Retry { .. }
        ));
        assert_eq!(
            p.decide(&three, &Method::GET, &s503, now, &mut r),
            Decision::GiveUp(GiveUpReason::MaxAttempts)
        );
        assert_eq!(
            p.decide(
                &one,
                &Method::GET,
                &Failure::status(StatusCode::INTERNAL_SERVER_ERROR),
                now,
                &mut r
            ),
            Decision::GiveUp(GiveUpReason::NotRetryable)
        );
        assert_eq!(
            p.decide(
                &one,
                &Method::GET,
                &Failure::new(FailureKind::CircuitOpen),
                now,
                &mut r
            ),
            Decision::GiveUp(GiveUpReason::CircuitOpen)
        );
    }

    #[test]
    fn errors_are_classified_through_their_source_chain() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(Failure::from_error(&refused).kind, FailureKind::Connect);
        let wrapped: Box<dyn StdError + Send + Sync> = Box::new(Wrapper(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(Failure::from_error(&*wrapped).kind, FailureKind::Transport);
        let elapsed = tower::timeout::error::Elapsed::new();
        assert_eq!(Failure::from_error(&elapsed).kind, FailureKind::Timeout);
        assert_eq!(Failure::from_error(&elapsed).error_type(), "timeout");
    }

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
}
