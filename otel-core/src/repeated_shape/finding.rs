//! What the detector reports: a [`Finding`] of a [`FindingKind`].
//!
//! ```
//! use otel_core::repeated_shape::FindingKind;
//!
//! assert_eq!(FindingKind::NPlusOne.as_str(), "n_plus_one");
//! assert_eq!(FindingKind::UnbatchedWrite.to_string(), "unbatched_write");
//! ```

use std::fmt;
use std::time::Duration;

/// The kind of a finding; [`as_str`](FindingKind::as_str) is the value of the
/// `n_plus_one.kind` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// The same read shape ran at least `n_plus_one_threshold` times, one after the other.
    NPlusOne,
    /// The same shape ran with the same values at least `duplicate_threshold` times.
    Duplicate,
    /// The same read shape ran at least `n_plus_one_threshold` times, mostly concurrently:
    /// decided when the threshold is crossed, a repeat that started before an earlier one
    /// ended overlapped, and when at least half of the repeats overlapped the finding is
    /// `fan_out` instead of `n_plus_one` (one of the two per shape).
    FanOut,
    /// The same write shape ran at least `unbatched_write_threshold` times.
    UnbatchedWrite,
}

impl FindingKind {
    /// `n_plus_one`, `duplicate`, `fan_out` or `unbatched_write`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FindingKind::NPlusOne => "n_plus_one",
            FindingKind::Duplicate => "duplicate",
            FindingKind::FanOut => "fan_out",
            FindingKind::UnbatchedWrite => "unbatched_write",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding in one scope. Made at most once per (scope, shape, kind); its `count` and
/// `total_duration` are the values when it was read ([`Scope::findings`](super::Scope::findings)
/// and scope end give the final ones, a `Panic`/`Callback` sees the values at the threshold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// The repeated shape (sanitised, possibly truncated).
    pub shape: String,
    /// How many times the shape (for `duplicate`: the shape with the same values) ran.
    pub count: u64,
    /// The time spent in those repeats.
    pub total_duration: Duration,
    /// `file:line:column` of the query call, or the name and location of the span that
    /// issued the repeats.
    pub call_site: Option<String>,
    /// The different shape observed just before the first repeat (the "1" of "1 + N").
    pub source: Option<String>,
    /// A concrete fix, as computed by the caller.
    pub suggestion: Option<String>,
    /// The name of the scope span (e.g. `GET /dashboard`), when the scope has one.
    pub scope_name: Option<String>,
}

impl fmt::Display for Finding {
    /// One line for humans: what, how often, where, after what, and how to fix it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FindingKind::NPlusOne => "N+1",
            FindingKind::Duplicate => "duplicate calls",
            FindingKind::FanOut => "N+1 fan-out",
            FindingKind::UnbatchedWrite => "unbatched writes",
        };
        write!(
            f,
            "{what} ({}): `{}` ran {} times ({:.1?} in total)",
            self.kind, self.shape, self.count, self.total_duration
        )?;
        if let Some(scope) = &self.scope_name {
            write!(f, " in `{scope}`")?;
        }
        if let Some(call_site) = &self.call_site {
            write!(f, " at {call_site}")?;
        }
        if let Some(source) = &self.source {
            write!(f, " after `{source}`")?;
        }
        if let Some(suggestion) = &self.suggestion {
            write!(f, "; fix: {suggestion}")?;
        }
        Ok(())
    }
}
