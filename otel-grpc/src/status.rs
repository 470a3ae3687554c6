//! gRPC status codes as the span sees them: the name recorded in `rpc.response.status_code`,
//! and whether a code makes the span an error on the client or on the server side.
//!
//! The OpenTelemetry gRPC conventions say: on the client every code but `OK` is an error; on
//! the server only `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`
//! and `DATA_LOSS` are (the others describe the caller's mistake, not the server's failure).
//!
//! ```
//! use otel_grpc::status::{code_name, is_error, Side};
//! use tonic::Code;
//!
//! assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
//! assert!(is_error(Code::NotFound, Side::Client));
//! assert!(!is_error(Code::NotFound, Side::Server));
//! ```

use http::HeaderMap;
use tonic::Code;

/// Which end of the call a span describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The span of the caller (`SpanKind::Client`).
    Client,
    /// The span of the callee (`SpanKind::Server`).
    Server,
}

/// The canonical upper-case name of `code` (`OK`, `CANCELLED`, ... `UNAUTHENTICATED`), the
/// value of `rpc.response.status_code`.
pub fn code_name(code: Code) -> &'static str {
    // tonic only offers a human description and a CamelCase `Debug`; the conventions want the
    // names of the gRPC status code table, so they are spelled out here.
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether a call that ended with `code` is an error on `side`.
pub fn is_error(code: Code, side: Side) -> bool {
    match side {
        Side::Client => code != Code::Ok,
        Side::Server => matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ),
    }
}

/// The status code in the `grpc-status` entry of `headers` (a trailers-only response, or the
/// trailers at the end of the stream). A value that is not a status code reads as `UNKNOWN`.
pub fn code_from_headers(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get(GRPC_STATUS)?;
    Some(parse_code(value.as_bytes()))
}

/// The status of a response that carries no `grpc-status` although its HTTP status says it
/// failed (a proxy or load balancer answered instead of the gRPC server), mapped as the gRPC
/// specification ("HTTP to gRPC status code mapping") says. `None` for `200 OK`.
pub fn code_from_http_status(status: http::StatusCode) -> Option<Code> {
    Some(match status.as_u16() {
        200 => return None,
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    })
}

/// All 17 status codes, in numeric order.
pub const ALL_CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

const GRPC_STATUS: &str = "grpc-status";

/// Like `tonic::Code::from_bytes`, without its trace-level log on every bad value (a peer could
/// use it to flood the logs).
fn parse_code(bytes: &[u8]) -> Code {
    let n = match bytes {
        [d] if d.is_ascii_digit() => usize::from(d - b'0'),
        [b'1', d] if d.is_ascii_digit() => 10 + usize::from(d - b'0'),
        _ => return Code::Unknown,
    };
    ALL_CODES.get(n).copied().unwrap_or(Code::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_status_code_table_in_numeric_order() {
        for (n, code) in ALL_CODES.iter().enumerate() {
            assert_eq!(*code as usize, n);
            assert_eq!(Code::from_i32(n as i32), *code);
            assert_eq!(parse_code(n.to_string().as_bytes()), *code);
        }
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }

    #[test]
    fn http_status_mapping() {
        let table = [
            (200, None),
            (400, Some(Code::Internal)),
            (401, Some(Code::Unauthenticated)),
            (403, Some(Code::PermissionDenied)),
            (404, Some(Code::Unimplemented)),
            (429, Some(Code::Unavailable)),
            (502, Some(Code::Unavailable)),
            (503, Some(Code::Unavailable)),
            (504, Some(Code::Unavailable)),
            (500, Some(Code::Unknown)),
            (302, Some(Code::Unknown)),
        ];
        for (status, code) in table {
            let status = http::StatusCode::from_u16(status).unwrap();
            assert_eq!(code_from_http_status(status), code, "{status}");
        }
    }

    #[test]
    fn garbage_status_reads_as_unknown() {
        for bad in [
            &b""[..],
            b"17",
            b"-1",
            b"+1",
            b"007",
            b"abc",
            b"\xff",
            b"99999999999",
        ] {
            assert_eq!(parse_code(bad), Code::Unknown, "{bad:?}");
        }
    }
}
