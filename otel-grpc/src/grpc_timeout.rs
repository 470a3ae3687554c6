//! Reads the `grpc-timeout` request header, so a call that outlives its deadline is recorded
//! as `DEADLINE_EXCEEDED` even when the peer (tonic's server answers `CANCELLED`) or the
//! transport says otherwise.
//!
//! ```
//! use std::time::Duration;
//! use otel_grpc::grpc_timeout::parse;
//!
//! assert_eq!(parse(b"250m"), Some(Duration::from_millis(250)));
//! assert_eq!(parse(b"1H"), Some(Duration::from_secs(3600)));
//! assert_eq!(parse(b"soon"), None);
//! ```

use std::time::Duration;

/// The header that carries a call's deadline.
pub const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`), per the gRPC over HTTP/2 specification.
pub fn parse(value: &[u8]) -> Option<Duration> {
    // tonic parses this header only in a crate-private module, so it is read here too.
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The deadline of a request carrying `headers`, if it has a valid `grpc-timeout`.
pub fn from_headers(headers: &http::HeaderMap) -> Option<Duration> {
    parse(headers.get(GRPC_TIMEOUT_HEADER)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(parse(b"99999999S"), Some(Duration::from_secs(99_999_999)));
        assert_eq!(parse(b"5n"), Some(Duration::from_nanos(5)));
        assert_eq!(parse(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse(b"2M"), Some(Duration::from_secs(120)));
        for bad in [
            &b""[..],
            b"S",
            b"123456789S",
            b"1x",
            b"-1S",
            b"1.5S",
            b"\xffS",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
