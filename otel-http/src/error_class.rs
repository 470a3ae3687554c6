//! `error.type` classes for failed outgoing calls.
//!
//! A transport error is classified by walking its [`std::error::Error::source`] chain:
//! [`std::io::ErrorKind`] first (refused, reset, timed out), then known timeout types
//! (`tokio::time::error::Elapsed`), then, for errors that carry no kind (hyper-util's DNS
//! resolver and TLS connectors wrap theirs in opaque types), the error's message. The result is
//! always one of the low-cardinality constants of [`otel_core::attributes::error_type`].
//!
//! ```
//! use otel_http::error_class::classify;
//!
//! let err = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
//! assert_eq!(classify(&err), "connection_refused");
//! ```

use std::error::Error;
use std::io;

use otel_core::attributes::error_type;

/// The `error.type` class of a transport error.
pub fn classify(err: &(dyn Error + 'static)) -> &'static str {
    let mut current: Option<&(dyn Error + 'static)> = Some(err);
    let mut by_message = None;
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(class) = classify_io_kind(io.kind())
        {
            return class;
        }
        if e.is::<tokio::time::error::Elapsed>() {
            return error_type::TIMEOUT;
        }
        if by_message.is_none() {
            by_message = classify_message(&e.to_string());
        }
        current = e.source();
    }
    by_message.unwrap_or(error_type::OTHER)
}

/// The `error.type` class of an [`io::ErrorKind`], if it is one we name.
pub fn classify_io_kind(kind: io::ErrorKind) -> Option<&'static str> {
    match kind {
        io::ErrorKind::TimedOut => Some(error_type::TIMEOUT),
        io::ErrorKind::ConnectionRefused => Some(error_type::CONNECTION_REFUSED),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected => Some(error_type::CONNECTION_RESET),
        _ => None,
    }
}

/// Hand-written because hyper-util's resolver and connector errors are private types whose
/// only public trace is their message; these are the messages of getaddrinfo, hyper-util,
/// rustls and native-tls.
fn classify_message(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    if m.contains("dns error")
        || m.contains("failed to lookup address")
        || m.contains("name or service not known")
        || m.contains("nodename nor servname")
        || m.contains("no such host")
        || m.contains("temporary failure in name resolution")
    {
        Some(error_type::DNS)
    } else if m.contains("certificate") || m.contains("tls") || m.contains("ssl") {
        Some(error_type::TLS)
    } else if m.contains("timed out") || m.contains("timeout") || m.contains("deadline") {
        Some(error_type::TIMEOUT)
    } else if m.contains("connection refused") {
        Some(error_type::CONNECTION_REFUSED)
    } else if m.contains("connection reset")
        || m.contains("connection closed")
        || m.contains("incomplete message")
        || m.contains("broken pipe")
    {
        Some(error_type::CONNECTION_RESET)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(&'static str, Option<io::Error>);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_ref().map(|e| e as _)
        }
    }

    #[test]
    fn classes() {
        let refused = Wrapper(
            "client error (Connect)",
            Some(io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        assert_eq!(classify(&refused), "connection_refused");
        let timed_out = Wrapper("x", Some(io::Error::from(io::ErrorKind::TimedOut)));
        assert_eq!(classify(&timed_out), "timeout");
        let dns = Wrapper(
            "client error (Connect)",
            Some(io::Error::other(
                "dns error: failed to lookup address information",
            )),
        );
        assert_eq!(classify(&dns), "dns");
        let tls = Wrapper("invalid peer certificate: UnknownIssuer", None);
        assert_eq!(classify(&tls), "tls");
        assert_eq!(classify(&Wrapper("weird", None)), "_OTHER");
    }
}
