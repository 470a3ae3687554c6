//! A `curl` command that reproduces an outgoing request, recorded as the span event
//! `http.request.curl` (attribute `http.request.curl.command`).
//!
//! On by default in debug builds, off in release builds; switch it with the client builders'
//! `.curl_event(bool)`. Secrets never appear: sensitive headers are `[REDACTED]` (see
//! [`crate::redact`]), configured query values are redacted, userinfo is dropped.
//! A body is shown only when it is known up front (reqwest's buffered bodies), textual, and
//! at most the configured limit (1024 bytes by default); otherwise a comment says why.
//!
//! ```
//! use otel_http::curl::CurlCommand;
//! use otel_http::redact::QueryRedactor;
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("authorization", "Bearer s3cret".parse().unwrap());
//! let cmd = CurlCommand::new(&http::Method::POST, "https://api.example.com/v1?x=1")
//!     .headers(&headers)
//!     .body(Some(b"{\"a\":1}"), 1024)
//!     .to_string();
//! assert_eq!(cmd, "curl -X POST 'https://api.example.com/v1?x=1' -H 'authorization: [REDACTED]' --data-raw '{\"a\":1}'");
//! ```

use std::fmt;

use http::{HeaderMap, Method};

use crate::redact;

/// Default largest body shown in the curl command, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 1024;

/// Builder of a curl command line. `url` must already be redacted ([`redact::url_full`]).
#[derive(Debug, Clone)]
pub struct CurlCommand {
    line: String,
}

impl CurlCommand {
    /// `curl -X METHOD 'url'`.
    pub fn new(method: &Method, url: &str) -> Self {
        let mut line = String::with_capacity(64 + url.len());
        line.push_str("curl -X ");
        line.push_str(method.as_str());
        line.push(' ');
        push_quoted(&mut line, url);
        CurlCommand { line }
    }

    /// Adds every header, sensitive ones as `[REDACTED]`.
    pub fn headers(mut self, headers: &HeaderMap) -> Self {
        for (name, value) in headers {
            self.line.push_str(" -H ");
            let value = redact::header_value(name, value);
            push_quoted(&mut self.line, &format!("{}: {}", name.as_str(), value));
        }
        self
    }

    /// Adds the body when it is textual and at most `limit` bytes; otherwise notes it.
    pub fn body(mut self, body: Option<&[u8]>, limit: usize) -> Self {
        match body {
            None => {}
            Some([]) => {}
            Some(bytes) if bytes.len() > limit => {
                self.line
                    .push_str(&format!(" # body of {} bytes not shown", bytes.len()));
            }
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text)
                    if text
                        .chars()
                        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')) =>
                {
                    self.line.push_str(" --data-raw ");
                    push_quoted(&mut self.line, text);
                }
                _ => self.line.push_str(&format!(
                    " # binary body of {} bytes not shown",
                    bytes.len()
                )),
            },
        }
        self
    }
}

impl fmt::Display for CurlCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// POSIX shell single quoting: `'` becomes `'\''`.
fn push_quoted(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_redaction_and_body_limits() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "session=abc".parse().unwrap());
        headers.insert("x-note", "it's".parse().unwrap());
        let cmd = CurlCommand::new(&Method::GET, "http://h/p")
            .headers(&headers)
            .to_string();
        assert_eq!(
            cmd,
            "curl -X GET 'http://h/p' -H 'cookie: [REDACTED]' -H 'x-note: it'\\''s'"
        );
        let big = vec![b'a'; 2000];
        let cmd = CurlCommand::new(&Method::POST, "http://h/")
            .body(Some(&big), DEFAULT_BODY_LIMIT)
            .to_string();
        assert!(cmd.ends_with("# body of 2000 bytes not shown"), "{cmd}");
        let cmd = CurlCommand::new(&Method::POST, "http://h/")
            .body(Some(&[0, 159, 146, 150]), DEFAULT_BODY_LIMIT)
            .to_string();
        assert!(cmd.ends_with("# binary body of 4 bytes not shown"), "{cmd}");
    }
}
