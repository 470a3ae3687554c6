//! Randomness as the policies see it: a seedable [`RandomSource`] shared by a layer, so that
//! jitter is reproducible in tests (`RandomSource::seeded(42)`) and unpredictable in
//! production (`RandomSource::from_os()`, the default).
//!
//! ```
//! use otel_resilience::random::RandomSource;
//!
//! let a = RandomSource::seeded(7);
//! let b = RandomSource::seeded(7);
//! assert_eq!(a.unit(), b.unit());
//! ```

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A thread-safe random number generator. The lock is held only for one draw (never across
/// an await) and only on the retry/trip paths, never on the healthy path.
#[derive(Debug)]
pub struct RandomSource(Mutex<StdRng>);

impl Default for RandomSource {
    fn default() -> Self {
        Self::from_os()
    }
}

impl RandomSource {
    /// A generator seeded from the operating system.
    pub fn from_os() -> Self {
        RandomSource(Mutex::new(StdRng::from_os_rng()))
    }

    /// A reproducible generator.
    pub fn seeded(seed: u64) -> Self {
        RandomSource(Mutex::new(StdRng::seed_from_u64(seed)))
    }

    /// A uniform draw in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        self.0.lock().random::<f64>()
    }

    /// Runs `f` with exclusive access to the generator.
    pub fn with<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.0.lock())
    }
}
