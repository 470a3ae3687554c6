//! What a caller tells the detector about one operation: [`Observation`] and its
//! [`ShapeKind`].
//!
//! ```
//! use otel_core::repeated_shape::{Observation, ShapeKind};
//! use std::time::{Duration, Instant};
//!
//! let obs = Observation {
//!     shape: "SELECT * FROM comments WHERE post_id = ?",
//!     fingerprint: 0x5eed,
//!     kind: ShapeKind::Read,
//!     values_hash: Some(42),
//!     started: Instant::now(),
//!     duration: Duration::from_millis(2),
//!     call_site: Some(std::panic::Location::caller()),
//!     suggestion: Some("WHERE post_id = ANY($1)"),
//! };
//! assert_eq!(obs.kind, ShapeKind::Read);
//! ```

use std::panic::Location;
use std::time::{Duration, Instant};

/// What kind of operation a shape is; decides which findings it can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShapeKind {
    /// A read (`SELECT`, a lookup): can be `n_plus_one`, `fan_out` or `duplicate`.
    Read,
    /// A write (`INSERT`/`UPDATE`/`DELETE`): can be `unbatched_write` or `duplicate`.
    Write,
    /// An outgoing HTTP call: can be `n_plus_one`, `fan_out` or `duplicate`.
    HttpCall,
    /// Never counted: pings, `BEGIN`/`COMMIT`, migrations.
    Ignored,
}

/// One finished operation, as reported by a caller (the SQL executor wrapper, the HTTP client
/// layer) to [`observe`](super::observe). Borrowed: observing allocates only the first time
/// a shape is seen in a scope.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The shape: sanitised SQL (`SELECT * FROM t WHERE id = ?`) or
    /// `GET api.example.com/users/{id}`. Never raw values: it ends up in spans and logs.
    pub shape: &'a str,
    /// A stable hash of the shape: the key the repeats are grouped by.
    pub fingerprint: u64,
    /// What kind of operation this is.
    pub kind: ShapeKind,
    /// A hash of the bound values / literals: same shape and same values is a `duplicate`.
    pub values_hash: Option<u64>,
    /// When the operation started (used to see whether repeats overlapped: `fan_out`).
    pub started: Instant,
    /// How long the operation took.
    pub duration: Duration,
    /// Where the operation was called from (`#[track_caller]` of the query call).
    pub call_site: Option<&'static Location<'static>>,
    /// A concrete fix computed by the caller (e.g. `WHERE post_id = ANY($1)`).
    pub suggestion: Option<&'a str>,
}
