//! Turns fuzz input into an [`http::HeaderMap`], the carrier the server layers extract from.
//!
//! The input is read as lines `name: value` (split on `\n`), so corpus files stay readable
//! and the fuzzer can build any header set: repeated headers, any order, any bytes in values
//! (what hyper lets through: everything but NUL, CR and LF, including non-UTF-8 bytes).
//! A line whose name or value `http` refuses is skipped, as hyper would have refused it.
//!
//! ```
//! let h = otel_fuzz::headers::header_map(b"tracestate: a=1\ntracestate: b=2\nbad line");
//! assert_eq!(h.get_all("tracestate").iter().count(), 2);
//! assert_eq!(h.len(), 2);
//! ```

use http::{HeaderMap, HeaderName, HeaderValue};

/// Builds the header map described by `data` (see the module docs).
pub fn header_map(data: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        map.append(name, value);
    }
    map
}
