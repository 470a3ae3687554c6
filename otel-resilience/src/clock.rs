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
