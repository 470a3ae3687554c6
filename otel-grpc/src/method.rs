//! The RPC method of a request, read from its HTTP/2 path (`/pkg.Service/Method`).
//!
//! The path is client input, so it is validated before it becomes a span name or a metric
//! attribute: a path that is not `/service/method` made of protobuf identifier characters,
//! or longer than [`MAX_METHOD_LEN`], becomes `_OTHER` (the conventions' value for an
//! unrecognised method) and the span is named `grpc`; the original (truncated) is kept in
//! `rpc.method_original` on the span only, never in metrics.
//!
//! ```
//! use otel_grpc::method::RpcMethod;
//!
//! let m = RpcMethod::from_path("/grpc.health.v1.Health/Check");
//! assert_eq!(m.full_name(), "grpc.health.v1.Health/Check");
//! assert_eq!(m.service(), Some("grpc.health.v1.Health"));
//! assert_eq!(m.span_name(), "grpc.health.v1.Health/Check");
//!
//! let bad = RpcMethod::from_path("/not a method");
//! assert_eq!(bad.full_name(), "_OTHER");
//! assert_eq!(bad.span_name(), "grpc");
//! assert_eq!(bad.original(), Some("/not a method"));
//! ```

use std::sync::Arc;

/// Longest `service/method` accepted as a method name, in bytes.
pub const MAX_METHOD_LEN: usize = 256;

/// Longest `server.address` recorded from a request's authority, in bytes.
pub(crate) const MAX_HOST_LEN: usize = 255;

/// `rpc.method` value for a method that could not be recognised.
pub const OTHER: &str = "_OTHER";

/// The span name used when the method is not recognised: the `rpc.system.name`.
pub const FALLBACK_SPAN_NAME: &str = "grpc";

/// A validated RPC method name. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcMethod {
    inner: Arc<Inner>,
}

#[derive(Debug, PartialEq, Eq)]
enum Inner {
    Known { full: Box<str>, slash: usize },
    Other { original: Box<str> },
}

impl RpcMethod {
    /// Parses the request path `/pkg.Service/Method`.
    pub fn from_path(path: &str) -> Self {
        let inner = match parse(path) {
            Some(slash) => Inner::Known {
                full: path[1..].into(),
                slash: slash - 1,
            },
            None => Inner::Other {
                original: truncate(path, MAX_METHOD_LEN).into(),
            },
        };
        RpcMethod {
            inner: Arc::new(inner),
        }
    }

    /// The fully qualified method (`pkg.Service/Method`), or `_OTHER`: the `rpc.method` value.
    pub fn full_name(&self) -> &str {
        match &*self.inner {
            Inner::Known { full, .. } => full,
            Inner::Other { .. } => OTHER,
        }
    }

    /// The span name: the fully qualified method, or `grpc` when it is not recognised.
    pub fn span_name(&self) -> &str {
        match &*self.inner {
            Inner::Known { full, .. } => full,
            Inner::Other { .. } => FALLBACK_SPAN_NAME,
        }
    }

    /// The fully qualified service (`pkg.Service`), the legacy `rpc.service` value.
    pub fn service(&self) -> Option<&str> {
        match &*self.inner {
            Inner::Known { full, slash } => Some(&full[..*slash]),
            Inner::Other { .. } => None,
        }
    }

    /// The path as received when it was not recognised (at most [`MAX_METHOD_LEN`] bytes).
    pub fn original(&self) -> Option<&str> {
        match &*self.inner {
            Inner::Known { .. } => None,
            Inner::Other { original } => Some(original),
        }
    }
}

/// Returns the index of the second `/` when `path` is `/service/method` with identifier
/// characters only.
fn parse(path: &str) -> Option<usize> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() || rest.len() > MAX_METHOD_LEN {
        return None;
    }
    let slash = rest.find('/')?;
    let (service, method) = (&rest[..slash], &rest[slash + 1..]);
    let service_ok = !service.is_empty()
        && !service.starts_with('.')
        && !service.ends_with('.')
        && service.bytes().all(|b| is_ident(b) || b == b'.');
    let method_ok = !method.is_empty() && method.bytes().all(is_ident);
    (service_ok && method_ok).then_some(slash + 1)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let long = format!("/a.B/{}", "m".repeat(300));
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (
                "/grpc.health.v1.Health/Check",
                Some("grpc.health.v1.Health/Check"),
                Some("grpc.health.v1.Health"),
            ),
            ("/Echo/Echo", Some("Echo/Echo"), Some("Echo")),
            ("/a.B/c_d9", Some("a.B/c_d9"), Some("a.B")),
            ("/", None, None),
            ("", None, None),
            ("/a.B", None, None),
            ("/a.B/", None, None),
            ("//m", None, None),
            ("/a.B/c/d", None, None),
            ("/.a/c", None, None),
            ("/a./c", None, None),
            ("/a b/c", None, None),
            ("/a.B/c%20", None, None),
            (long.as_str(), None, None),
        ];
        for (path, full, service) in cases {
            let m = RpcMethod::from_path(path);
            assert_eq!(m.full_name(), full.unwrap_or(OTHER), "{path}");
            assert_eq!(m.service(), *service, "{path}");
            if full.is_none() {
                assert_eq!(m.span_name(), FALLBACK_SPAN_NAME);
                assert!(m.original().unwrap().len() <= MAX_METHOD_LEN);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_path_gives_a_bounded_name(path in "\\PC{0,400}") {
            let m = RpcMethod::from_path(&path);
            proptest::prop_assert!(m.full_name().len() <= MAX_METHOD_LEN);
            proptest::prop_assert!(m.original().is_none_or(|o| o.len() <= MAX_METHOD_LEN));
            proptest::prop_assert!(m.span_name().bytes().all(|b| b.is_ascii_graphic()));
        }
    }
}
