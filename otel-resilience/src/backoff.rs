//! Exponential backoff with a cap and a choice of jitter (full, equal, decorrelated), as a
//! pure function of the retry number, the previous delay and an injected random generator.
//!
//! ```
//! use std::time::Duration;
//! use otel_resilience::backoff::{Backoff, Jitter};
//! use rand::SeedableRng;
//!
//! let backoff = Backoff::default(); // 100 ms doubling, cap 5 s, full jitter
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let d = backoff.delay(3, Duration::ZERO, &mut rng);
//! assert!(d <= Duration::from_millis(400));
//! assert_eq!(Backoff::default().jitter(Jitter::None).delay(3, Duration::ZERO, &mut rng), Duration::from_millis(400));
//! ```

use std::time::Duration;

use rand::Rng;

use crate::config_error::{ConfigError, Value, check, refuse};

/// How randomness spreads the delays of clients that failed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly the exponential ceiling (not recommended: synchronised retry storms).
    None,
    /// Uniform in `[0, ceiling]` (the default: spreads load best).
    #[default]
    Full,
    /// `ceiling / 2` plus uniform in `[0, ceiling / 2]`: never retries immediately.
    Equal,
    /// Uniform in `[initial, 3 × previous delay]`, capped: each delay depends on the last.
    Decorrelated,
}

/// Exponential backoff: the ceiling of retry `n` (1-based) is `initial × multiplier^(n-1)`,
/// at most `max`; [`Jitter`] then picks the actual delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    max: Duration,
    jitter: Jitter,
    invalid: Option<ConfigError>,
}

impl Default for Backoff {
    /// 100 ms doubling, cap 5 s, full jitter.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(5),
            jitter: Jitter::Full,
            invalid: None,
        }
    }
}

impl Backoff {
    /// Exponential backoff starting at `initial` (doubling, cap 5 s, full jitter).
    pub fn exponential(initial: Duration) -> Self {
        Backoff {
            initial,
            ..Backoff::default()
        }
    }

    /// No delay at all between attempts (for tests, or behind another pacing mechanism).
    pub fn none() -> Self {
        Backoff {
            initial: Duration::ZERO,
            multiplier: 1.0,
            max: Duration::ZERO,
            jitter: Jitter::None,
            invalid: None,
        }
    }

    /// The growth factor between retries (default 2; at least 1, finite). A value out of
    /// range is refused when the retry layer is built (see [`ConfigError`]).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        if multiplier.is_finite() && multiplier >= 1.0 {
            self.multiplier = multiplier;
        } else {
            refuse(
                &mut self.invalid,
                ConfigError::new(
                    "Backoff::multiplier",
                    Value::Float(multiplier),
                    "use a finite factor of at least 1.0 (1.0 = constant delay, default 2.0)",
                ),
            );
        }
        self
    }

    /// `Err` with the first refused setting, if any.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(&self.invalid)
    }

    /// The cap on any delay (default 5 s).
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// The jitter kind (default [`Jitter::Full`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The first ceiling.
    pub fn initial_delay(&self) -> Duration {
        self.initial
    }

    /// The cap.
    pub fn cap(&self) -> Duration {
        self.max
    }

    /// The jitter kind.
    pub fn jitter_kind(&self) -> Jitter {
        self.jitter
    }

    /// The exponential ceiling of retry `retry` (1-based), capped.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        capped(secs, self.max)
    }

    /// The delay before retry `retry` (1-based). `previous` is the delay used before the
    /// previous retry (only [`Jitter::Decorrelated`] reads it; pass `Duration::ZERO` first).
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, previous: Duration, rng: &mut R) -> Duration {
        match self.jitter {
            Jitter::None => self.ceiling(retry),
            Jitter::Full => self.ceiling(retry).mul_f64(rng.random::<f64>()),
            Jitter::Equal => {
                let half = self.ceiling(retry) / 2;
                half + half.mul_f64(rng.random::<f64>())
            }
            Jitter::Decorrelated => {
                let low = self.initial.min(self.max);
                let high = previous.max(self.initial).as_secs_f64() * 3.0;
                let high = capped(high, self.max).max(low);
                low + (high - low).mul_f64(rng.random::<f64>())
            }
        }
    }
}

fn capped(secs: f64, max: Duration) -> Duration {
    if !secs.is_finite() || secs >= max.as_secs_f64() {
        max
    } else {
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff::default();
        let ms: Vec<u128> = (1..=8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn every_jitter_kind_stays_within_its_bounds() {
        let mut rng = StdRng::seed_from_u64(42);
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            let b = Backoff::default().jitter(jitter);
            let mut previous = Duration::ZERO;
            let mut distinct = std::collections::BTreeSet::new();
            for round in 0..200 {
                for retry in 1..=10u32 {
                    let ceiling = b.ceiling(retry);
                    let d = b.delay(retry, previous, &mut rng);
                    match jitter {
                        Jitter::None => assert_eq!(d, ceiling),
                        Jitter::Full => assert!(d <= ceiling, "{d:?} > {ceiling:?}"),
                        Jitter::Equal => {
                            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}")
                        }
                        Jitter::Decorrelated => {
                            let high = (previous.max(Duration::from_millis(100)) * 3)
                                .min(Duration::from_secs(5));
                            assert!(d >= Duration::from_millis(100) && d <= high, "{d:?}");
                        }
                    }
                    assert!(d <= Duration::from_secs(5));
                    distinct.insert(d);
                    previous = d;
                }
                if round == 0 {
                    previous = Duration::ZERO;
                }
            }
            if jitter != Jitter::None {
                assert!(distinct.len() > 100, "{jitter:?} is not random");
            }
        }
    }

    #[test]
    fn seeded_delays_are_reproducible() {
        let b = Backoff::default();
        let a: Vec<_> = {
            let mut rng = StdRng::seed_from_u64(9);
            (1..5)
                .map(|n| b.delay(n, Duration::ZERO, &mut rng))
                .collect()
        };
        let mut rng = StdRng::seed_from_u64(9);
        let c: Vec<_> = (1..5)
            .map(|n| b.delay(n, Duration::ZERO, &mut rng))
            .collect();
        assert_eq!(a, c);
    }
}
