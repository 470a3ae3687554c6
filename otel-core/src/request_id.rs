//! Request ids: accept, validate, generate, forward, and carry in the OpenTelemetry [`Context`].
//!
//! A request id is the string a user quotes to support ("my order failed, request
//! `0193…`"). The server layers accept it from `x-request-id` (or the header names you
//! configure), replace an invalid one with a fresh id, record it as `request.id` on the server
//! span, put it on every log line of the request and forward it on every outgoing call.
//!
//! ```
//! use otel_core::request_id::{RequestIdConfig, RequestId, Outcome};
//! use http::HeaderMap;
//!
//! let config = RequestIdConfig::default();
//! let mut headers = HeaderMap::new();
//! headers.insert("x-request-id", "order-42".parse().unwrap());
//! let accepted = config.accept(&headers);
//! assert_eq!(accepted.id.as_str(), "order-42");
//! assert_eq!(accepted.outcome, Outcome::Accepted);
//!
//! // It travels in the OpenTelemetry context, so client layers can forward it.
//! let cx = opentelemetry::Context::new().with_value(accepted.id.clone());
//! assert_eq!(RequestId::from_context(&cx).unwrap().as_str(), "order-42");
//! ```
//!
//! # Per-service prefix
//!
//! A backend that receives the same id from several callers (or calls itself) can mark its
//! own hop: with `.forward_prefix("orders")` the id `order-42` is forwarded as
//! `orders.order-42`. A search for `order-42` still finds every hop, and the prefix tells which
//! service sent which call. The prefix is skipped when the result would exceed the 128-byte
//! limit.
//!
//! ```
//! use otel_core::request_id::{RequestIdConfig, RequestId};
//! use http::HeaderMap;
//!
//! let config = RequestIdConfig::default().forward_prefix("orders").unwrap();
//! let id = RequestId::parse(b"order-42").unwrap();
//! let mut outgoing = HeaderMap::new();
//! config.forward(&id, &mut outgoing);
//! assert_eq!(outgoing["x-request-id"], "orders.order-42");
//! ```

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The default request-id header.
pub const DEFAULT_HEADER: &str = "x-request-id";
/// The longest request id accepted, in bytes.
pub const MAX_LEN: usize = 128;

/// A validated request id: 1 to 128 bytes of visible ASCII without quotes or backslashes.
///
/// Cheap to clone (reference counted). Stored in the OpenTelemetry [`Context`] with
/// [`Context::with_value`]; read back with [`RequestId::from_context`] or
/// [`RequestId::current`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Repr);

/// Ids up to [`INLINE_CAP`] bytes (UUIDs, ULIDs, most caller ids) live inline, so generating
/// and cloning one never allocates; longer ones are shared.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE_CAP] },
    Shared(Arc<str>),
}

const INLINE_CAP: usize = 46;

impl Repr {
    fn new(s: &str) -> Self {
        Repr::inline(s.as_bytes()).unwrap_or_else(|| Repr::Shared(Arc::from(s)))
    }

    /// The inline form of `bytes` (validated ASCII), or `None` when they do not fit.
    fn inline(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > INLINE_CAP {
            return None;
        }
        let mut buf = [0u8; INLINE_CAP];
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(Repr::Inline {
            len: bytes.len() as u8,
            buf,
        })
    }

    fn as_str(&self) -> &str {
        match self {
            // SAFETY: `Repr::inline` is the only constructor of `Inline`, and its callers
            // hand it either validated visible ASCII (`RequestId::parse`) or the bytes of a
            // whole `&str` (`Repr::new`): the first `len` bytes are always valid UTF-8. The
            // checked conversion cost about 120 instructions per read, and the id is read on
            // every span, log line and forwarded header of a request.
            Repr::Inline { len, buf } => unsafe {
                std::str::from_utf8_unchecked(&buf[..usize::from(*len)])
            },
            Repr::Shared(s) => s,
        }
    }
}

/// Why a request id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequestId {
    /// The id was empty.
    #[error("request id is empty")]
    Empty,
    /// The id was longer than [`MAX_LEN`] bytes.
    #[error("request id is {0} bytes long; at most 128 are accepted")]
    TooLong(usize),
    /// The id held a byte outside visible ASCII, or a quote, backslash or space.
    #[error(
        "request id holds a forbidden byte at offset {0} (only visible ASCII without quotes, backslashes or spaces is accepted)"
    )]
    ForbiddenByte(usize),
}

impl RequestId {
    /// Generates a fresh, time-ordered id: a UUID version 7 (48-bit Unix milliseconds, then
    /// 74 random bits from a thread-local generator seeded once from the OS, so no system call
    /// per id; the clock is read through the vDSO).
    pub fn generate() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let random: [u8; 10] = ID_RNG.with(|rng| rng.borrow_mut().random());
        let uuid = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        RequestId(Repr::new(uuid.hyphenated().encode_lower(&mut buf)))
    }

    /// Validates raw header bytes as a request id.
    pub fn parse(bytes: &[u8]) -> Result<Self, InvalidRequestId> {
        validate(bytes)?;
        // Short ids are copied as they are (validated ASCII, read back through `as_str`);
        // validation guarantees ASCII, hence UTF-8, for the shared form.
        if let Some(inline) = Repr::inline(bytes) {
            return Ok(RequestId(inline));
        }
        let s = std::str::from_utf8(bytes).map_err(|_| InvalidRequestId::ForbiddenByte(0))?;
        Ok(RequestId(Repr::Shared(Arc::from(s))))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The id as a header value (always valid: the id is visible ASCII).
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::from_str(self.as_str())
            .expect("a validated request id is a valid header value")
    }

    /// The request id stored in `cx`, if any.
    pub fn from_context(cx: &Context) -> Option<&RequestId> {
        // A value of its own first (the innermost), else the one a server layer stored with
        // its sampling decision (`sampling::decide_for_request`).
        cx.get::<RequestId>()
            .or_else(|| crate::sampling::request_id_of(cx))
    }

    /// The request id of the current OpenTelemetry context (the request being served).
    ///
    /// Inside a sampled request this is the context of the current `tracing` span; inside an
    /// unsampled one it is the context the server layer attached.
    pub fn current() -> Option<RequestId> {
        let cx = crate::context::current();
        RequestId::from_context(&cx).cloned()
    }

    /// This id with `prefix.` in front, unless that would exceed [`MAX_LEN`].
    pub fn with_prefix(&self, prefix: &str) -> RequestId {
        let id = self.as_str();
        if prefix.is_empty() || prefix.len() + 1 + id.len() > MAX_LEN {
            return self.clone();
        }
        RequestId(Repr::new(&format!("{prefix}.{id}")))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({:?})", self.as_str())
    }
}

impl std::str::FromStr for RequestId {
    type Err = InvalidRequestId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestId::parse(s.as_bytes())
    }
}

/// What [`RequestIdConfig::accept`] did with the incoming headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A valid id arrived and was kept.
    Accepted,
    /// No id arrived; a fresh one was generated.
    Generated,
    /// An id arrived but was invalid; a fresh one replaced it (and the rejection was counted).
    Rejected,
}

/// The result of accepting a request id from incoming headers.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The id the request is served under.
    pub id: RequestId,
    /// Whether it was accepted, generated or replaced.
    pub outcome: Outcome,
    /// The header value the id was read from, when it was accepted.
    incoming: Option<HeaderValue>,
}

impl Accepted {
    /// The id as a header value, to echo it on the response: the incoming value itself when
    /// the id was accepted (its bytes are shared with the request, not copied), a new value
    /// for a generated id.
    ///
    /// ```
    /// use http::HeaderMap;
    /// use otel_core::request_id::RequestIdConfig;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-request-id", "order-42".parse().unwrap());
    /// let accepted = RequestIdConfig::default().accept(&headers);
    /// assert_eq!(accepted.header_value(), "order-42");
    /// ```
    pub fn header_value(&self) -> HeaderValue {
        match &self.incoming {
            Some(value) => value.clone(),
            None => self.id.to_header_value(),
        }
    }
}

/// Which headers carry the request id, and how it is forwarded.
#[derive(Debug, Clone)]
pub struct RequestIdConfig {
    headers: Vec<HeaderName>,
    prefix: Option<Arc<str>>,
    generate: bool,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        RequestIdConfig {
            headers: vec![HeaderName::from_static(DEFAULT_HEADER)],
            prefix: None,
            generate: true,
        }
    }
}

/// A configuration value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestIdConfigError {
    /// The header name is not a valid HTTP header name.
    #[error("request id header name {0:?} is not a valid header name; use e.g. \"x-request-id\"")]
    InvalidHeader(String),
    /// The prefix is not valid request-id text or is too long.
    #[error(
        "request id prefix {0:?} is invalid: use 1 to 32 visible ASCII characters without quotes, spaces or '.'"
    )]
    InvalidPrefix(String),
}

impl RequestIdConfig {
    /// Reads the id from these headers, first match wins (e.g. `["x-request-id",
    /// "x-correlation-id"]`). The first name is also the one echoed and forwarded.
    pub fn headers<I, S>(mut self, names: I) -> Result<Self, RequestIdConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for name in names {
            let name = name.as_ref();
            let header = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| RequestIdConfigError::InvalidHeader(name.to_owned()))?;
            parsed.push(header);
        }
        if parsed.is_empty() {
            return Err(RequestIdConfigError::InvalidHeader(String::new()));
        }
        self.headers = parsed;
        Ok(self)
    }

    /// Prefix this service puts in front of the ids it forwards (see the module docs).
    pub fn forward_prefix(mut self, prefix: &str) -> Result<Self, RequestIdConfigError> {
        if prefix.is_empty()
            || prefix.len() > 32
            || prefix.contains('.')
            || validate(prefix.as_bytes()).is_err()
        {
            return Err(RequestIdConfigError::InvalidPrefix(prefix.to_owned()));
        }
        self.prefix = Some(Arc::from(prefix));
        Ok(self)
    }

    /// Whether to generate an id when none (or an invalid one) arrives. Default `true`.
    pub fn generate_missing(mut self, generate: bool) -> Self {
        self.generate = generate;
        self
    }

    /// The header names read, the first of which is echoed and forwarded.
    pub fn header_names(&self) -> &[HeaderName] {
        &self.headers
    }

    /// The header name the id is echoed in and forwarded under.
    pub fn primary_header(&self) -> &HeaderName {
        &self.headers[0]
    }

    /// Accepts the id from `headers`, or generates one. An invalid id is never kept: it is
    /// replaced and counted in [`rejected_count`].
    pub fn accept(&self, headers: &HeaderMap) -> Accepted {
        let mut rejected = false;
        for name in &self.headers {
            // Only the first value of each header is considered; a second value is ignored.
            if let Some(value) = headers.get(name) {
                match RequestId::parse(value.as_bytes()) {
                    Ok(id) => {
                        return Accepted {
                            id,
                            outcome: Outcome::Accepted,
                            incoming: Some(value.clone()),
                        };
                    }
                    Err(_) => rejected = true,
                }
            }
        }
        if rejected {
            REJECTED.fetch_add(1, Ordering::Relaxed);
        }
        Accepted {
            id: RequestId::generate(),
            outcome: if rejected {
                Outcome::Rejected
            } else {
                Outcome::Generated
            },
            incoming: None,
        }
    }

    /// Like [`accept`](Self::accept) but returns `None` instead of generating when
    /// generation is switched off and no valid id arrived.
    pub fn accept_optional(&self, headers: &HeaderMap) -> Option<Accepted> {
        let accepted = self.accept(headers);
        if accepted.outcome != Outcome::Accepted && !self.generate {
            return None;
        }
        Some(accepted)
    }

    /// Sets the id on outgoing `headers` under the primary header name, with this service's
    /// prefix if one is configured. Replaces any value already there.
    pub fn forward(&self, id: &RequestId, headers: &mut HeaderMap) {
        let id = match &self.prefix {
            Some(prefix) => id.with_prefix(prefix),
            None => id.clone(),
        };
        headers.insert(self.primary_header().clone(), id.to_header_value());
    }

    /// Sets the id on a response under the primary header name (never prefixed).
    pub fn echo(&self, id: &RequestId, headers: &mut HeaderMap) {
        self.echo_value(id.to_header_value(), headers);
    }

    /// Like [`echo`](Self::echo), with the value already made, e.g. by
    /// [`Accepted::header_value`] (which shares the incoming bytes instead of copying them).
    pub fn echo_value(&self, value: HeaderValue, headers: &mut HeaderMap) {
        headers.insert(self.primary_header().clone(), value);
    }
}

/// How many invalid incoming request ids were replaced since the process started.
pub fn rejected_count() -> u64 {
    REJECTED.load(Ordering::Relaxed)
}

static REJECTED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Request ids need uniqueness, not unpredictability: a small fast generator per thread,
    // seeded once from the OS-backed thread RNG, keeps generation well under 100 ns.
    static ID_RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

fn validate(bytes: &[u8]) -> Result<(), InvalidRequestId> {
    if bytes.is_empty() {
        return Err(InvalidRequestId::Empty);
    }
    if bytes.len() > MAX_LEN {
        return Err(InvalidRequestId::TooLong(bytes.len()));
    }
    match bytes
        .iter()
        .position(|&b| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b'\'' || b == b'\\')
    {
        Some(at) => Err(InvalidRequestId::ForbiddenByte(at)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validation_table() {
        let long = "a".repeat(128);
        let too_long = "a".repeat(129);
        let cases: &[(&[u8], bool)] = &[
            (b"abc-123", true),
            (b"0193a5b2-7c1e-7d3f-8a9b-0c1d2e3f4a5b", true),
            (long.as_bytes(), true),
            (too_long.as_bytes(), false),
            (b"", false),
            (b"has space", false),
            (b"quote\"d", false),
            (b"single'q", false),
            (b"back\\slash", false),
            (b"new\nline", false),
            (b"\x1b[31mred", false),
            (b"tab\t", false),
            (b"caf\xc3\xa9", false),
            (b"del\x7f", false),
        ];
        for (input, ok) in cases {
            assert_eq!(
                RequestId::parse(input).is_ok(),
                *ok,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn generated_ids_are_uuid_v7_and_time_ordered() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        for id in [&a, &b] {
            let uuid = uuid::Uuid::parse_str(id.as_str()).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
            assert!(RequestId::parse(id.as_str().as_bytes()).is_ok());
        }
        assert_ne!(a, b);
        // The first 48 bits are milliseconds: b was made no earlier than a.
        assert!(b.as_str()[..13] >= a.as_str()[..13]);
    }

    #[test]
    fn accept_generate_reject() {
        let config = RequestIdConfig::default()
            .headers(["x-request-id", "X-Correlation-Id"])
            .unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-correlation-id", "corr-1".parse().unwrap());
        let a = config.accept(&h);
        assert_eq!((a.id.as_str(), a.outcome), ("corr-1", Outcome::Accepted));

        let a = config.accept(&HeaderMap::new());
        assert_eq!(a.outcome, Outcome::Generated);
        assert_eq!(a.id.as_str().len(), 36);

        let before = rejected_count();
        let mut h = HeaderMap::new();
        h.insert(
            "x-request-id",
            HeaderValue::from_bytes(b"evil\"id").unwrap(),
        );
        let a = config.accept(&h);
        assert_eq!(a.outcome, Outcome::Rejected);
        assert!(!a.id.as_str().contains("evil"));
        assert!(rejected_count() > before);
    }

    #[test]
    fn forward_with_prefix_and_echo_without() {
        let config = RequestIdConfig::default().forward_prefix("gw").unwrap();
        let id = RequestId::parse(b"abc").unwrap();
        let mut h = HeaderMap::new();
        config.forward(&id, &mut h);
        assert_eq!(h["x-request-id"], "gw.abc");
        let mut h = HeaderMap::new();
        config.echo(&id, &mut h);
        assert_eq!(h["x-request-id"], "abc");
        // A prefix that would push the id over the limit is skipped.
        let long = RequestId::parse("a".repeat(127).as_bytes()).unwrap();
        assert_eq!(long.with_prefix("gw"), long);
        assert!(
            RequestIdConfig::default()
                .forward_prefix("bad prefix")
                .is_err()
        );
        assert!(RequestIdConfig::default().forward_prefix("a.b").is_err());
        assert!(RequestIdConfig::default().headers(["bad header"]).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_safe_text(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(id) = RequestId::parse(&bytes) {
                // Read back exactly as it arrived (inline or shared).
                prop_assert_eq!(id.as_str().as_bytes(), &bytes[..]);
                prop_assert!(id.as_str().len() <= MAX_LEN);
                prop_assert!(id.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
                // Always a valid header value.
                let _ = id.to_header_value();
            }
        }

        #[test]
        fn a_valid_id_reads_back_as_it_arrived(text in "[!-~]{1,128}") {
            match RequestId::parse(text.as_bytes()) {
                Ok(id) => {
                    prop_assert_eq!(id.as_str(), text.as_str());
                    let copy = id.clone();
                    prop_assert_eq!(copy.as_str(), text.as_str());
                    let header = id.to_header_value();
                    prop_assert_eq!(header.as_bytes(), text.as_bytes());
                }
                // Quotes and backslashes are refused, nothing else of visible ASCII.
                Err(_) => prop_assert!(text.bytes().any(|b| matches!(b, b'"' | b'\'' | b'\\'))),
            }
        }
    }
}
