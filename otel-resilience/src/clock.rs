//! Time as the policies see it: an injected [`Clock`], so that every state machine of this
//! crate runs under `tokio::time::pause()` ([`TokioClock`]) and in plain unit tests
//! ([`ManualClock`]) without a single real sleep.
//!
//! ```
//! use std::time::Duration;
//! use otel_resilience::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let start = clock.now();
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(clock.now() - start, Duration::from_secs(5));
//! ```

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A source of monotonic and wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock now, used only to turn an HTTP-date `Retry-After` into a delay.
    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock shared by policies and layers.
pub type SharedClock = Arc<dyn Clock>;

/// The default clock: `tokio::time::Instant::now()`, which stands still and jumps under
/// `tokio::time::pause()` (and outside a runtime is the real monotonic clock).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// A clock that moves only when told to, for unit tests of the state machines.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    system_origin: SystemTime,
    offset_nanos: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock at "now" (real monotonic and wall time taken once).
    pub fn new() -> Self {
        Self::with_system_time(SystemTime::now())
    }

    /// A clock whose wall-clock time starts at `system` (for HTTP-date tests).
    pub fn with_system_time(system: SystemTime) -> Self {
        ManualClock {
            origin: Instant::now(),
            system_origin: system,
            offset_nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_nanos
            .fetch_add(saturating_nanos(by), Ordering::SeqCst);
    }

    /// How far the clock was advanced since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + self.elapsed()
    }
    fn system_now(&self) -> SystemTime {
        self.system_origin + self.elapsed()
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn system_now(&self) -> SystemTime {
        (**self).system_now()
    }
}

pub(crate) fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Numbers the fixed-length periods of a sliding window (the budget's slots, the breaker's
/// buckets) from an origin: period 1 is `[origin, origin + length)`, period 2 the next one,
/// and an instant before the origin is in period 1.
///
/// Numbering an instant takes a subtraction of instants and a division, on the path of every
/// call (a budget deposit, a breaker success). Most calls fall in the period of the call before
/// them (periods last a second by default), so the bounds of the period last numbered are
/// cached per thread: a call in the same period compares two instants instead. Exact: the
/// cached bounds are computed from the period's number, and any instant inside them has that
/// number.
#[derive(Debug)]
pub(crate) struct Periods {
    origin: Instant,
    nanos: u64,
    /// Tells apart the [`Periods`] in the per-thread cache (never 0, never reused).
    id: u64,
}

impl Periods {
    /// Periods of `length` (at least 1 ns) from `origin`.
    pub(crate) fn new(origin: Instant, length: Duration) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Periods {
            origin,
            nanos: saturating_nanos(length).max(1),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The number of the period holding `now` (1-based).
    #[inline(always)]
    pub(crate) fn number(&self, now: Instant) -> u64 {
        CACHED_PERIODS.with(|slots| {
            let slot = &slots[(self.id % CACHED_PERIODS_LEN) as usize];
            if let Some(cached) = slot.get()
                && cached.id == self.id
                && cached.start <= now
                && now < cached.end
            {
                return cached.number;
            }
            self.number_uncached(now, slot)
        })
    }

    #[cold]
    #[inline(never)]
    fn number_uncached(&self, now: Instant, slot: &Cell<Option<CachedPeriod>>) -> u64 {
        let since = saturating_nanos(now.saturating_duration_since(self.origin));
        let number = since / self.nanos + 1;
        // Cache the bounds unless `now` is before the origin or past the nanosecond range.
        if now >= self.origin && since < u64::MAX {
            let start = self
                .origin
                .checked_add(Duration::from_nanos((number - 1) * self.nanos));
            let end = start.and_then(|s| s.checked_add(Duration::from_nanos(self.nanos)));
            if let (Some(start), Some(end)) = (start, end) {
                slot.set(Some(CachedPeriod {
                    id: self.id,
                    start,
                    end,
                    number,
                }));
            }
        }
        number
    }
}

/// A period numbered on this thread: its [`Periods`] id, bounds and number.
#[derive(Clone, Copy)]
struct CachedPeriod {
    id: u64,
    start: Instant,
    end: Instant,
    number: u64,
}

/// How many [`Periods`] keep their last period cached per thread (a thread that serves several
/// downstreams in turn keeps one entry per budget and breaker, up to this many).
const CACHED_PERIODS_LEN: u64 = 8;

thread_local! {
    /// The last period numbered on this thread, per [`Periods`] (by id, direct-mapped).
    static CACHED_PERIODS: [Cell<Option<CachedPeriod>>; CACHED_PERIODS_LEN as usize] =
        const { [const { Cell::new(None) }; CACHED_PERIODS_LEN as usize] };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number of `now` computed from scratch, as the budget and the breaker did before
    /// the cache.
    fn direct(periods: &Periods, now: Instant) -> u64 {
        saturating_nanos(now.saturating_duration_since(periods.origin)) / periods.nanos + 1
    }

    #[test]
    fn cached_period_numbers_are_the_computed_ones() {
        let origin = Instant::now();
        let length = Duration::from_millis(1000);
        let periods = Periods::new(origin, length);
        // Around every boundary of the first periods, in order, backwards and at random.
        let mut instants = Vec::new();
        for k in 0..6u32 {
            let boundary = origin + length * k;
            for offset_ns in [0u64, 1, 999_999_999] {
                instants.push(boundary + Duration::from_nanos(offset_ns));
            }
            if k > 0 {
                instants.push(boundary - Duration::from_nanos(1));
            }
        }
        let forward = instants.clone();
        instants.extend(forward.iter().rev().copied());
        let mut seed = 7u64;
        for _ in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            instants.push(origin + Duration::from_nanos(seed % 7_000_000_000));
        }
        // An instant before the origin is in period 1 (and is never cached).
        if let Some(before) = origin.checked_sub(Duration::from_millis(5)) {
            instants.push(before);
            instants.push(origin);
        }
        for now in instants {
            assert_eq!(periods.number(now), direct(&periods, now), "{now:?}");
        }
    }

    #[test]
    fn periods_sharing_a_cache_slot_keep_their_own_numbers() {
        // More periods than cache slots, several per slot, alternating on one thread.
        let origin = Instant::now();
        let all: Vec<Periods> = (0..3 * CACHED_PERIODS_LEN)
            .map(|i| Periods::new(origin, Duration::from_millis(100 + 37 * i)))
            .collect();
        for step in 0..50u32 {
            let now = origin + Duration::from_millis(u64::from(step) * 61);
            for periods in &all {
                assert_eq!(periods.number(now), direct(periods, now));
            }
        }
    }

    #[test]
    fn each_thread_keeps_its_own_cache() {
        let origin = Instant::now();
        let periods = Arc::new(Periods::new(origin, Duration::from_secs(1)));
        let late = origin + Duration::from_secs(90);
        assert_eq!(periods.number(late), 91);
        let other = periods.clone();
        let early = std::thread::spawn(move || other.number(origin + Duration::from_millis(10)))
            .join()
            .unwrap();
        assert_eq!(early, 1);
        assert_eq!(periods.number(origin + Duration::from_millis(500)), 1);
        assert_eq!(periods.number(late), 91);
    }
}
