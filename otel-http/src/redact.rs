//! Redaction of secrets before anything reaches a span, a log line or a curl command.
//!
//! One module, used by the server layer, both clients and the curl event, so that a header
//! or query parameter redacted in one place is redacted everywhere:
//!
//! - [`is_sensitive_header`]: `authorization`, `cookie`, `set-cookie`, `proxy-authorization`,
//!   API-key style headers (`x-api-key`, `api-key`, `x-auth-token`) and any name containing
//!   `token`, `secret`, `password`, `api-key`/`apikey`/`api_key`. These are always
//!   [`REDACTED`] when captured.
//! - [`QueryRedactor`]: replaces the values of configured query keys (defaults in
//!   [`DEFAULT_QUERY_KEYS`]).
//! - [`url_full`]: `scheme://host[:port]/path[?query]` without userinfo, query redacted.
//!
//! ```
//! use otel_http::redact::{self, QueryRedactor};
//!
//! assert!(redact::is_sensitive_header("Authorization"));
//! assert!(redact::is_sensitive_header("x-github-token"));
//! let q = QueryRedactor::default();
//! assert_eq!(q.redact("page=2&token=abc"), "page=2&token=[REDACTED]");
//! let uri: http::Uri = "https://user:pw@api.example.com/v1?sig=xyz".parse().unwrap();
//! assert_eq!(redact::url_full(&uri, &q), "https://api.example.com/v1?sig=[REDACTED]");
//! ```

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Uri};

/// The text that replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Query keys whose values are redacted by default (compared case-insensitively).
pub const DEFAULT_QUERY_KEYS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "sig",
    "signature",
    "password",
    "passwd",
    "key",
    "api_key",
    "apikey",
    "code",
    "secret",
    "client_secret",
    "auth",
    "AWSAccessKeyId",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "X-Goog-Signature",
];

/// Whether a header's value must never be recorded in clear (name compared
/// case-insensitively).
pub fn is_sensitive_header(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
    ];
    const CONTAINS: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "api-key",
        "apikey",
        "api_key",
        "auth",
        "cookie",
        "session",
        "signature",
        "credential",
    ];
    let lower = name.to_ascii_lowercase();
    EXACT.contains(&lower.as_str()) || CONTAINS.iter().any(|part| lower.contains(part))
}

/// The value to record for header `name`: [`REDACTED`] for sensitive headers, otherwise the
/// value as text (non-UTF-8 bytes replaced), cut at 1024 bytes.
pub fn header_value(name: &HeaderName, value: &HeaderValue) -> String {
    if is_sensitive_header(name.as_str()) {
        return REDACTED.to_owned();
    }
    let text = String::from_utf8_lossy(value.as_bytes());
    truncate(&text, MAX_VALUE_LEN).to_owned()
}

/// Redacts the values of configured keys in a query string.
///
/// Cheap to clone (the key list is shared).
#[derive(Debug, Clone)]
pub struct QueryRedactor {
    keys: Arc<[String]>,
}

impl Default for QueryRedactor {
    fn default() -> Self {
        QueryRedactor::new(DEFAULT_QUERY_KEYS.iter().copied())
    }
}

impl QueryRedactor {
    /// Redacts exactly these keys (compared case-insensitively after percent-decoding).
    pub fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        QueryRedactor {
            keys: keys
                .into_iter()
                .map(|k| k.as_ref().to_ascii_lowercase())
                .collect(),
        }
    }

    /// The defaults plus `extra` keys.
    pub fn with_defaults_and<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys: Vec<String> = DEFAULT_QUERY_KEYS
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect();
        keys.extend(extra.into_iter().map(|k| k.as_ref().to_ascii_lowercase()));
        QueryRedactor { keys: keys.into() }
    }

    /// Whether the value of `key` is redacted.
    pub fn is_redacted_key(&self, key: &str) -> bool {
        let decoded = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
        let decoded = decoded.replace('+', " ");
        let lower = decoded.trim().to_ascii_lowercase();
        self.keys.contains(&lower)
    }

    /// `query` with the value of every configured key replaced by [`REDACTED`]; the result
    /// is cut at 2048 bytes.
    pub fn redact(&self, query: &str) -> String {
        let mut out = String::with_capacity(query.len().min(MAX_QUERY_LEN));
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) if self.is_redacted_key(key) => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                // A bare key such as `?token` carries no value to hide.
                _ => out.push_str(pair),
            }
            if out.len() > MAX_QUERY_LEN {
                let cut = truncate(&out, MAX_QUERY_LEN).len();
                out.truncate(cut);
                break;
            }
        }
        out
    }
}

/// `url.full` for `uri`: scheme, host, port, path and redacted query, never userinfo.
/// A relative URI (no authority) yields just path and query.
pub fn url_full(uri: &Uri, query: &QueryRedactor) -> String {
    url_from_parts(
        uri.scheme_str(),
        uri.host(),
        uri.port_u16(),
        uri.path(),
        uri.query(),
        query,
    )
}

/// Builds a URL string from its parts, without userinfo, with the query redacted.
pub fn url_from_parts(
    scheme: Option<&str>,
    host: Option<&str>,
    port: Option<u16>,
    path: &str,
    raw_query: Option<&str>,
    query: &QueryRedactor,
) -> String {
    let mut out = String::with_capacity(64 + path.len());
    if let Some(host) = host {
        out.push_str(scheme.unwrap_or("http"));
        out.push_str("://");
        out.push_str(host);
        if let Some(port) = port {
            out.push(':');
            out.push_str(&port.to_string());
        }
    }
    out.push_str(if path.is_empty() && host.is_some() {
        "/"
    } else {
        path
    });
    if let Some(q) = raw_query {
        out.push('?');
        out.push_str(&query.redact(q));
    }
    out
}

const MAX_VALUE_LEN: usize = 1024;
const MAX_QUERY_LEN: usize = 2048;

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_headers() {
        for name in [
            "Authorization",
            "cookie",
            "Set-Cookie",
            "proxy-authorization",
            "x-api-key",
            "api-key",
            "X-Auth-Token",
            "x-github-token",
            "x-client-secret",
            "x-db-password",
            "x-apikey",
            "my_api_key",
        ] {
            assert!(is_sensitive_header(name), "{name}");
        }
        for name in ["user-agent", "accept", "x-request-id", "content-type"] {
            assert!(!is_sensitive_header(name), "{name}");
        }
        let v = HeaderValue::from_static("Bearer abc");
        assert_eq!(
            header_value(&HeaderName::from_static("authorization"), &v),
            REDACTED
        );
        assert_eq!(
            header_value(&HeaderName::from_static("accept"), &v),
            "Bearer abc"
        );
    }

    #[test]
    fn query_redaction() {
        let q = QueryRedactor::default();
        assert_eq!(
            q.redact("a=1&TOKEN=x&X-Amz-Signature=s&b&code=c&c=3"),
            "a=1&TOKEN=[REDACTED]&X-Amz-Signature=[REDACTED]&b&code=[REDACTED]&c=3"
        );
        assert_eq!(q.redact("to%6Ben=x"), "to%6Ben=[REDACTED]");
        let custom = QueryRedactor::with_defaults_and(["session"]);
        assert_eq!(
            custom.redact("session=1&token=2"),
            "session=[REDACTED]&token=[REDACTED]"
        );
        let long = "a=".to_owned() + &"x".repeat(10_000);
        assert!(q.redact(&long).len() <= MAX_QUERY_LEN);
    }

    #[test]
    fn url_without_userinfo() {
        let q = QueryRedactor::default();
        let uri: Uri = "http://alice:s3cret@example.com:8080/a/b?token=t&x=1"
            .parse()
            .unwrap();
        let full = url_full(&uri, &q);
        assert_eq!(full, "http://example.com:8080/a/b?token=[REDACTED]&x=1");
        assert!(!full.contains("alice") && !full.contains("s3cret"));
        let rel: Uri = "/p?sig=1".parse().unwrap();
        assert_eq!(url_full(&rel, &q), "/p?sig=[REDACTED]");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    proptest::proptest! {
        #[test]
        fn redaction_never_panics_and_hides_token_values(
            query in "[a-zA-Z0-9_=&%+.-]{0,300}",
            secret in "[a-z0-9]{12}",
        ) {
            let q = QueryRedactor::default();
            let out = q.redact(&query);
            proptest::prop_assert!(out.len() <= MAX_QUERY_LEN + REDACTED.len());
            let with_secret = format!("{query}&token={secret}");
            proptest::prop_assert!(!q.redact(&with_secret).contains(&secret));
        }

        #[test]
        fn header_values_are_bounded(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let recorded = header_value(&HeaderName::from_static("x-data"), &value);
                proptest::prop_assert!(recorded.len() <= MAX_VALUE_LEN);
            }
        }
    }
}
