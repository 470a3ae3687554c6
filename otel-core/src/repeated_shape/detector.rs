//! The counting behind one scope: observations grouped by (parent span call site, shape),
//! thresholds crossed at most once per (shape, kind), memory bounded by the configuration.
//!
//! Plain data, no locking and no reporting: [`Scope`](super::Scope) holds a [`ScopeState`]
//! behind a mutex and reports what [`ScopeState::record`] returns.
//!
//! ```
//! use otel_core::repeated_shape::{capture, observe, Observation, ShapeKind};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let ((), findings) = capture(async {
//!     for _ in 0..5 {
//!         let obs = Observation {
//!             shape: "SELECT * FROM t WHERE id = ?", fingerprint: 7, kind: ShapeKind::Read,
//!             values_hash: None, started: std::time::Instant::now(),
//!             duration: std::time::Duration::ZERO, call_site: None, suggestion: None,
//!         };
//!         observe(&otel_core::context::current(), &obs);
//!     }
//! }).await;
//! assert_eq!(findings[0].count, 5);
//! # });
//! ```

use std::collections::{HashMap, hash_map};
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Metadata;

use super::config::DetectorConfig;
use super::finding::{Finding, FindingKind};
use super::observation::{Observation, ShapeKind};

/// Distinct values hashes remembered per shape for `duplicate` detection; beyond it new
/// values are not tracked (their repeats are still counted for the other kinds).
pub const MAX_VALUES_PER_SHAPE: usize = 8;

/// The span that issued an observation: its static metadata (name and location), `None` for
/// the scope itself.
pub(crate) type ParentSpan = Option<&'static Metadata<'static>>;

/// The counters of one scope.
#[derive(Default)]
pub(crate) struct ScopeState {
    entries: HashMap<Key, Entry, foldhash::fast::RandomState>,
    /// The last shape observed (fingerprint, text): the "source" of the next new shape.
    last: Option<(u64, Arc<str>)>,
    fired: Vec<Fired>,
    /// Observations of new shapes not tracked because the scope was full.
    untracked: u64,
}

/// A finding together with the count it had when it was reported at its threshold.
pub(crate) struct Snapshot {
    pub(crate) finding: Finding,
    pub(crate) count_at_threshold: u64,
}

impl ScopeState {
    /// Counts `obs` issued under `parent`; returns the findings whose threshold it crossed.
    pub(crate) fn record(
        &mut self,
        config: &DetectorConfig,
        parent: ParentSpan,
        obs: &Observation<'_>,
        scope_name: Option<&str>,
    ) -> Vec<Finding> {
        if obs.kind == ShapeKind::Ignored {
            return Vec::new();
        }
        let key: Key = (
            parent.map_or(0, |m| m as *const Metadata<'static> as usize),
            obs.fingerprint,
        );
        let end = obs.started.checked_add(obs.duration).unwrap_or(obs.started);
        let tracked = self.entries.len();
        let entry = match self.entries.entry(key) {
            hash_map::Entry::Occupied(entry) => entry.into_mut(),
            hash_map::Entry::Vacant(_) if tracked >= config.max_shapes_per_scope => {
                self.untracked = self.untracked.saturating_add(1);
                return Vec::new();
            }
            hash_map::Entry::Vacant(vacant) => {
                let source = match &self.last {
                    Some((fingerprint, shape)) if *fingerprint != obs.fingerprint => {
                        Some(shape.clone())
                    }
                    _ => None,
                };
                vacant.insert(Entry {
                    shape: Arc::from(truncate(obs.shape, config.max_shape_len)),
                    kind: obs.kind,
                    count: 0,
                    total: Duration::ZERO,
                    max_end: obs.started,
                    overlaps: 0,
                    call_site: obs.call_site,
                    parent,
                    source,
                    suggestion: None,
                    values: Vec::new(),
                    fired: 0,
                })
            }
        };
        entry.count = entry.count.saturating_add(1);
        entry.total = entry.total.saturating_add(obs.duration);
        if entry.count > 1 && obs.started < entry.max_end {
            entry.overlaps = entry.overlaps.saturating_add(1);
        }
        entry.max_end = entry.max_end.max(end);
        if entry.call_site.is_none() {
            entry.call_site = obs.call_site;
        }
        if entry.suggestion.is_none()
            && let Some(suggestion) = obs.suggestion
        {
            entry.suggestion = Some(Arc::from(truncate(suggestion, config.max_shape_len)));
        }
        let same_values = obs
            .values_hash
            .and_then(|hash| entry.count_values(hash, obs.duration));
        match &mut self.last {
            // The same shape again (the usual repeat): nothing to swap.
            Some((fingerprint, shape)) if *fingerprint == obs.fingerprint => {
                if !Arc::ptr_eq(shape, &entry.shape) {
                    *shape = entry.shape.clone();
                }
            }
            last => *last = Some((obs.fingerprint, entry.shape.clone())),
        }

        let mut crossed = Vec::new();
        let repeats = match entry.kind {
            ShapeKind::Read | ShapeKind::HttpCall => {
                (entry.count >= config.n_plus_one_threshold).then(|| {
                    // Decided once, at the threshold: mostly overlapping repeats are a fan-out.
                    if entry.overlaps.saturating_mul(2) >= entry.count - 1 {
                        FindingKind::FanOut
                    } else {
                        FindingKind::NPlusOne
                    }
                })
            }
            ShapeKind::Write => (entry.count >= config.unbatched_write_threshold)
                .then_some(FindingKind::UnbatchedWrite),
            ShapeKind::Ignored => None,
        };
        if let Some(kind) = repeats
            && !entry.has_fired_repeats()
        {
            entry.fired |= bit(kind);
            crossed.push((kind, None));
        }
        if let Some((hash, count)) = same_values
            && count >= config.duplicate_threshold
            && entry.fired & bit(FindingKind::Duplicate) == 0
        {
            entry.fired |= bit(FindingKind::Duplicate);
            crossed.push((FindingKind::Duplicate, Some(hash)));
        }

        let mut findings = Vec::with_capacity(crossed.len());
        for (kind, values_hash) in crossed {
            let finding = entry.finding(kind, values_hash, scope_name);
            self.fired.push(Fired {
                kind,
                key,
                values_hash,
                count_at_threshold: finding.count,
            });
            findings.push(finding);
        }
        findings
    }

    /// Every finding made so far, with the current counts, in the order they were made.
    pub(crate) fn snapshots(&self, scope_name: Option<&str>) -> Vec<Snapshot> {
        self.fired
            .iter()
            .filter_map(|fired| {
                let entry = self.entries.get(&fired.key)?;
                Some(Snapshot {
                    finding: entry.finding(fired.kind, fired.values_hash, scope_name),
                    count_at_threshold: fired.count_at_threshold,
                })
            })
            .collect()
    }

    /// Distinct (parent, shape) pairs tracked.
    pub(crate) fn tracked_shapes(&self) -> usize {
        self.entries.len()
    }

    /// Observations of new shapes dropped because the scope was full.
    pub(crate) fn untracked(&self) -> u64 {
        self.untracked
    }
}

// ---- helpers --------------------------------------------------------------------------------

/// (parent span metadata address or 0, shape fingerprint).
type Key = (usize, u64);

struct Entry {
    shape: Arc<str>,
    kind: ShapeKind,
    count: u64,
    total: Duration,
    /// The latest end of the observations so far: a repeat starting before it overlapped.
    max_end: Instant,
    overlaps: u64,
    call_site: Option<&'static Location<'static>>,
    parent: ParentSpan,
    source: Option<Arc<str>>,
    suggestion: Option<Arc<str>>,
    values: Vec<Values>,
    /// One bit per [`FindingKind`] already reported.
    fired: u8,
}

struct Values {
    hash: u64,
    count: u64,
    total: Duration,
}

struct Fired {
    kind: FindingKind,
    key: Key,
    values_hash: Option<u64>,
    count_at_threshold: u64,
}

impl Entry {
    /// Counts one run with values `hash`; returns (hash, runs with these values) when tracked.
    fn count_values(&mut self, hash: u64, duration: Duration) -> Option<(u64, u64)> {
        if let Some(values) = self.values.iter_mut().find(|v| v.hash == hash) {
            values.count = values.count.saturating_add(1);
            values.total = values.total.saturating_add(duration);
            return Some((hash, values.count));
        }
        if self.values.len() >= MAX_VALUES_PER_SHAPE {
            return None;
        }
        self.values.push(Values {
            hash,
            count: 1,
            total: duration,
        });
        Some((hash, 1))
    }

    fn has_fired_repeats(&self) -> bool {
        self.fired
            & (bit(FindingKind::NPlusOne)
                | bit(FindingKind::FanOut)
                | bit(FindingKind::UnbatchedWrite))
            != 0
    }

    fn finding(
        &self,
        kind: FindingKind,
        values_hash: Option<u64>,
        scope_name: Option<&str>,
    ) -> Finding {
        let (count, total_duration) =
            match values_hash.and_then(|hash| self.values.iter().find(|v| v.hash == hash)) {
                Some(values) => (values.count, values.total),
                None => (self.count, self.total),
            };
        Finding {
            kind,
            shape: self.shape.to_string(),
            count,
            total_duration,
            call_site: self.call_site_text(),
            source: self.source.as_deref().map(str::to_owned),
            suggestion: self.suggestion.as_deref().map(str::to_owned),
            scope_name: scope_name.map(str::to_owned),
        }
    }

    /// `file:line:column` of the query call, else `span_name (file:line)` of the issuing span.
    fn call_site_text(&self) -> Option<String> {
        if let Some(location) = self.call_site {
            return Some(location.to_string());
        }
        let parent = self.parent?;
        Some(match (parent.file(), parent.line()) {
            (Some(file), Some(line)) => format!("{} ({file}:{line})", parent.name()),
            _ => parent.name().to_owned(),
        })
    }
}

fn bit(kind: FindingKind) -> u8 {
    match kind {
        FindingKind::NPlusOne => 1,
        FindingKind::Duplicate => 2,
        FindingKind::FanOut => 4,
        FindingKind::UnbatchedWrite => 8,
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DetectorConfig {
        DetectorConfig::builder()
            .mode(super::super::Mode::Warn)
            .build()
            .unwrap()
    }

    fn obs(
        shape: &str,
        fingerprint: u64,
        kind: ShapeKind,
        started: Instant,
        ms: u64,
    ) -> Observation<'_> {
        Observation {
            shape,
            fingerprint,
            kind,
            values_hash: None,
            started,
            duration: Duration::from_millis(ms),
            call_site: None,
            suggestion: None,
        }
    }

    #[test]
    fn sequential_repeats_cross_n_plus_one_once() {
        let config = config();
        let mut state = ScopeState::default();
        let t0 = Instant::now();
        let mut fired = Vec::new();
        for i in 0..50 {
            let started = t0 + Duration::from_millis(10 * i);
            fired.extend(state.record(
                &config,
                None,
                &obs("SELECT ?", 1, ShapeKind::Read, started, 2),
                None,
            ));
        }
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].kind, FindingKind::NPlusOne);
        assert_eq!(fired[0].count, 5);
        let snapshots = state.snapshots(Some("GET /"));
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].finding.count, 50);
        assert_eq!(
            snapshots[0].finding.total_duration,
            Duration::from_millis(100)
        );
        assert_eq!(snapshots[0].count_at_threshold, 5);
    }

    #[test]
    fn overlapping_repeats_are_fan_out() {
        let config = config();
        let mut state = ScopeState::default();
        let t0 = Instant::now();
        let mut fired = Vec::new();
        for i in 0..5 {
            // all start within 1 ms, each lasts 10 ms
            let started = t0 + Duration::from_micros(200 * i);
            fired.extend(state.record(
                &config,
                None,
                &obs("SELECT ?", 1, ShapeKind::HttpCall, started, 10),
                None,
            ));
        }
        assert_eq!(
            fired.iter().map(|f| f.kind).collect::<Vec<_>>(),
            [FindingKind::FanOut]
        );
    }

    #[test]
    fn huge_duration_does_not_overflow() {
        let config = config();
        let mut state = ScopeState::default();
        let mut o = obs("SELECT ?", 1, ShapeKind::Read, Instant::now(), 0);
        o.duration = Duration::MAX;
        for _ in 0..10 {
            state.record(&config, None, &o, None);
        }
        assert_eq!(
            state.snapshots(None)[0].finding.total_duration,
            Duration::MAX
        );
    }

    #[test]
    fn truncates_at_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    proptest::proptest! {
        /// Any sequence of observations: no panic, the caps hold, and each (shape, kind) is
        /// reported at most once.
        #[test]
        fn any_input_is_counted_within_bounds(
            ops in proptest::collection::vec(
                (".{0,80}", 0u64..20, 0u8..4, proptest::option::of(0u64..4), 0u64..1_000_000, proptest::num::u64::ANY, 0usize..4),
                0..200,
            )
        ) {
            let config = DetectorConfig::builder()
                .mode(super::super::Mode::Warn)
                .max_shapes_per_scope(8)
                .max_shape_len(16)
                .build()
                .unwrap();
            let parents = [None, Some(tracing::Span::current().metadata()).flatten()];
            let mut state = ScopeState::default();
            let t0 = Instant::now();
            let mut reported = std::collections::HashSet::new();
            for (shape, fingerprint, kind, values, start_us, duration_ns, parent) in &ops {
                let kind = [ShapeKind::Read, ShapeKind::Write, ShapeKind::HttpCall, ShapeKind::Ignored][*kind as usize];
                let obs = Observation {
                    shape,
                    fingerprint: *fingerprint,
                    kind,
                    values_hash: *values,
                    started: t0 + Duration::from_micros(*start_us),
                    duration: Duration::from_nanos(*duration_ns),
                    call_site: None,
                    suggestion: Some(shape),
                };
                for finding in state.record(&config, parents[parent % 2], &obs, None) {
                    proptest::prop_assert!(reported.insert((finding.shape.clone(), *fingerprint, finding.kind)));
                    proptest::prop_assert!(finding.shape.len() <= 16);
                }
            }
            proptest::prop_assert!(state.tracked_shapes() <= 8);
            for snapshot in state.snapshots(None) {
                proptest::prop_assert!(snapshot.finding.count >= snapshot.count_at_threshold);
            }
        }
    }
}
