//! The repeated-call shape of an outgoing request, for N+1 detection.
//!
//! Two calls have the same shape when they differ only in ids: `GET api.example.com/users/{id}`.
//! The shape is `{method} {server.address}{url.template}` when the caller set a
//! [`otel_core::extensions::UrlTemplate`], otherwise the path with id-like
//! segments (numbers, UUIDs, long hex or mixed alphanumeric tokens) replaced by `{id}`.
//!
//! ```
//! let req = http::Request::get("http://api.example.com/users/42/orders").body(()).unwrap();
//! assert_eq!(otel_http::call_shape(&req), "GET api.example.com/users/{id}/orders");
//! ```

use otel_core::extensions::UrlTemplate;

/// The shape of `req`: `{method} {server.address}{template or path with ids replaced}`.
pub fn call_shape<B>(req: &http::Request<B>) -> String {
    let host = req
        .uri()
        .host()
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host))
        })
        .unwrap_or("");
    let template = req.extensions().get::<UrlTemplate>().map(|t| &*t.0);
    shape_of(req.method().as_str(), host, template, req.uri().path())
}

/// [`call_shape`] from the parts of a request.
pub(crate) fn shape_of(method: &str, host: &str, template: Option<&str>, path: &str) -> String {
    let mut out = String::with_capacity(method.len() + host.len() + path.len() + 8);
    out.push_str(method);
    out.push(' ');
    out.push_str(host);
    match template {
        Some(t) => out.push_str(t),
        None => {
            let path = crate::redact::truncate(path, 512);
            for (i, segment) in path.split('/').enumerate() {
                if i > 0 {
                    out.push('/');
                }
                if is_id_like(segment) {
                    out.push_str("{id}");
                } else {
                    out.push_str(segment);
                }
            }
        }
    }
    out
}

/// Whether a path segment looks like an identifier rather than a resource name.
fn is_id_like(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let bytes = segment.as_bytes();
    if bytes.iter().all(u8::is_ascii_digit) {
        return true;
    }
    // UUID: 8-4-4-4-12 hex digits.
    if bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
    {
        return true;
    }
    // Long hex (hashes, object ids) or long tokens mixing letters and digits (ULIDs, slugs
    // with ids).
    let has_digit = bytes.iter().any(u8::is_ascii_digit);
    if bytes.len() >= 16 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    bytes.len() >= 20
        && has_digit
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let req = http::Request::get(
            "http://api.example.com:8080/users/550e8400-e29b-41d4-a716-446655440000/posts/7?x=1",
        )
        .body(())
        .unwrap();
        assert_eq!(
            call_shape(&req),
            "GET api.example.com/users/{id}/posts/{id}"
        );

        let mut req = http::Request::post("http://api.example.com/users/42")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(UrlTemplate::new("/users/{user_id}"));
        assert_eq!(call_shape(&req), "POST api.example.com/users/{user_id}");

        let req = http::Request::get("/v2/items/01J9ZQ3V8C6W4X2Y7B5N1M0KTA/deadbeefdeadbeef")
            .header("host", "svc:80")
            .body(())
            .unwrap();
        assert_eq!(call_shape(&req), "GET svc/v2/items/{id}/{id}");

        let req = http::Request::get("http://h/health").body(()).unwrap();
        assert_eq!(call_shape(&req), "GET h/health");
    }

    proptest::proptest! {
        #[test]
        fn shapes_never_panic_and_hide_numeric_ids(path in "(/[a-z0-9%._-]{0,12}){0,8}", id in 0u64..u64::MAX) {
            let shape = shape_of("GET", "h", None, &format!("{path}/{id}"));
            proptest::prop_assert!(shape.ends_with("/{id}"), "{}", shape);
        }
    }
}
