//! Reading the HTTP semantic-convention values off an incoming request.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Version};

/// The values of `http.request.method`, indexed by [`method_index`].
pub(crate) const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "_OTHER",
];

/// The position of `http.request.method` in [`METHODS`]: the known methods as is, `_OTHER`
/// for anything else.
pub(crate) fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::HEAD => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// `http.request.method`: the known methods as is, `_OTHER` for anything else.
pub(crate) fn method(method: &Method) -> &'static str {
    METHODS[method_index(method)]
}

/// `http.request.method_original`: the method as sent when it is not a known one (cut at 32
/// bytes: the method is client input).
pub(crate) fn method_original<'a>(known: &str, method: &'a Method) -> Option<&'a str> {
    (known == "_OTHER").then(|| crate::redact::truncate(method.as_str(), 32))
}

/// `{method} {route}`, `{method}` without a route, `HTTP` for unknown methods.
pub(crate) fn span_name(method: &'static str, route: Option<&str>) -> SpanName {
    let method = if method == "_OTHER" { "HTTP" } else { method };
    match route {
        Some(route) => {
            let mut name = String::with_capacity(method.len() + 1 + route.len());
            name.push_str(method);
            name.push(' ');
            name.push_str(route);
            SpanName::Owned(name)
        }
        None => SpanName::Static(method),
    }
}

/// A span name: static (method only), shared (from the layer's
/// [`RouteCache`](super::route_cache::RouteCache)) or built for this request.
pub(crate) enum SpanName {
    /// The method alone (no route).
    Static(&'static str),
    /// `{method} {route}` kept by the layer.
    Shared(Arc<str>),
    /// `{method} {route}` built for this request.
    Owned(String),
}

impl SpanName {
    /// The name as a string slice.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            SpanName::Static(s) => s,
            SpanName::Shared(s) => s,
            SpanName::Owned(s) => s,
        }
    }

    /// The name as an owned string (e.g. for an N+1 scope).
    pub(crate) fn to_owned_name(&self) -> Cow<'static, str> {
        match self {
            SpanName::Static(s) => Cow::Borrowed(s),
            _ => Cow::Owned(self.as_str().to_owned()),
        }
    }
}

/// `network.protocol.version`.
pub(crate) fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "_OTHER",
    }
}

/// `url.scheme`: from the request URI (HTTP/2), `X-Forwarded-Proto` when trusted, else `http`.
pub(crate) fn scheme<B>(req: &Request<B>, trust_forwarded: bool) -> &'static str {
    let from_uri = req.uri().scheme_str();
    let forwarded = trust_forwarded
        .then(|| {
            req.headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
        })
        .flatten();
    match forwarded.or(from_uri) {
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}

/// `server.address` and `server.port` from the URI authority (HTTP/2) or the `Host` header.
pub(crate) fn server_address<B>(req: &Request<B>) -> Option<(String, Option<u16>)> {
    if let Some(authority) = req.uri().authority() {
        return Some((authority.host().to_owned(), authority.port_u16()));
    }
    let host = req.headers().get(http::header::HOST)?.to_str().ok()?;
    let authority: http::uri::Authority = host.parse().ok()?;
    Some((authority.host().to_owned(), authority.port_u16()))
}

/// `client.address`: the first `Forwarded: for=` / `X-Forwarded-For` entry when the proxy is
/// trusted, else the socket peer (axum `ConnectInfo<SocketAddr>` or a `SocketAddr` extension).
pub(crate) fn client_address<B>(req: &Request<B>, trust_forwarded: bool) -> Option<String> {
    if trust_forwarded && let Some(addr) = forwarded_for(req.headers()) {
        return Some(addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0.ip().to_string());
    }
    req.extensions()
        .get::<SocketAddr>()
        .map(|addr| addr.ip().to_string())
}

fn forwarded_for(headers: &http::HeaderMap) -> Option<String> {
    let from_forwarded = headers
        .get(http::header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split([',', ';']).map(str::trim).find_map(|part| {
                let (k, v) = part.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
            })
        })
        .map(|v| v.trim_matches('"').to_owned());
    let candidate = from_forwarded.or_else(|| {
        headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
    })?;
    // Only an address-shaped value is recorded: never unbounded or arbitrary text.
    let trimmed = candidate.trim_start_matches('[');
    let host = trimmed.split(']').next().unwrap_or(trimmed);
    if host.parse::<std::net::IpAddr>().is_ok() {
        Some(host.to_owned())
    } else if let Ok(sock) = candidate.parse::<SocketAddr>() {
        Some(sock.ip().to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(
            span_name(method(&Method::GET), Some("/users/{id}")).as_str(),
            "GET /users/{id}"
        );
        let other = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method(&other), "_OTHER");
        assert_eq!(span_name(method(&other), None).as_str(), "HTTP");
        assert_eq!(span_name("GET", None).to_owned_name(), "GET");
        assert!(matches!(span_name("GET", None), SpanName::Static("GET")));
        assert_eq!(
            span_name("GET", Some("/a")).to_owned_name(),
            Cow::<str>::Owned("GET /a".into())
        );
        assert_eq!(SpanName::Shared(Arc::from("PUT /b")).as_str(), "PUT /b");

        let req = Request::get("/x")
            .header("host", "example.com:8443")
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .header("x-forwarded-proto", "https")
            .body(())
            .unwrap();
        assert_eq!(
            server_address(&req),
            Some(("example.com".to_owned(), Some(8443)))
        );
        assert_eq!(client_address(&req, false), None);
        assert_eq!(client_address(&req, true).as_deref(), Some("203.0.113.7"));
        assert_eq!(scheme(&req, false), "http");
        assert_eq!(scheme(&req, true), "https");

        let req = Request::get("/x")
            .header("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")
            .body(())
            .unwrap();
        assert_eq!(client_address(&req, true).as_deref(), Some("2001:db8::1"));
        let req = Request::get("/x")
            .header("x-forwarded-for", "<script>")
            .body(())
            .unwrap();
        assert_eq!(client_address(&req, true), None);
    }
}
