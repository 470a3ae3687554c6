//! The retry budget: a bound on how much retries may add to the load on a dependency, shared
//! by every call through one layer, so that a dependency that is down does not receive a
//! retry storm.
//!
//! Two modes:
//! - **ratio** (the default): over a sliding window (10 s), retries may number at most 20% of
//!   the logical requests, with a floor of 10 retries per second of window so that quiet
//!   services still retry. Against a server that always fails, upstream attempts stay at or
//!   below 1.2× the requests once traffic exceeds the floor.
//! - **token bucket** (gRPC retry throttling): the bucket starts full at `max_tokens`; each
//!   failed attempt takes one token, each success gives back `token_ratio`; retries are allowed
//!   only while more than half the tokens remain.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use otel_resilience::budget::RetryBudget;
//! use otel_resilience::clock::ManualClock;
//!
//! let budget = RetryBudget::ratio(0.2, Duration::from_secs(10), 0).with_clock(Arc::new(ManualClock::new()));
//! for _ in 0..10 { budget.deposit(); }
//! assert!(budget.try_withdraw());
//! assert!(budget.try_withdraw());
//! assert!(!budget.try_withdraw()); // 2 retries for 10 requests: 20% spent
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::clock::{Periods, SharedClock, TokioClock};
use crate::config_error::{ConfigError, Value, check, refuse};

/// A retry budget shared by all calls through a layer (cheap to clone: an `Arc` inside).
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
    invalid: Option<ConfigError>,
}

/// Which accounting a [`RetryBudget`] uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetMode {
    /// At most `ratio` retries per request over `window`, floor `min_retries_per_sec`.
    Ratio {
        /// Retries allowed per logical request (0.2 = 20%).
        ratio: f64,
        /// The sliding window.
        window: Duration,
        /// Retries per second always allowed, whatever the request count.
        min_retries_per_sec: u32,
    },
    /// gRPC-style retry throttling.
    TokenBucket {
        /// Bucket size; retries stop when `tokens <= max_tokens / 2`.
        max_tokens: f64,
        /// Tokens given back per successful attempt.
        token_ratio: f64,
    },
}

impl Default for RetryBudget {
    /// 20% over 10 s with a floor of 10 retries/s.
    fn default() -> Self {
        RetryBudget::ratio(0.2, Duration::from_secs(10), 10)
    }
}

impl std::fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBudget")
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

impl RetryBudget {
    /// Ratio mode: retries add at most `ratio` (0.2 = 20%) to the requests seen in `window`,
    /// but `min_retries_per_sec × window` retries are always allowed. `ratio` must be in
    /// `[0, 1000]` and `window` at least 1 s: [`try_ratio`](Self::try_ratio) refuses other
    /// values; here they are remembered and refused when the retry layer is built.
    pub fn ratio(ratio: f64, window: Duration, min_retries_per_sec: u32) -> Self {
        let mut invalid = None;
        if !(ratio.is_finite() && (0.0..=1000.0).contains(&ratio)) {
            refuse(
                &mut invalid,
                ConfigError::new(
                    "RetryBudget::ratio(ratio)",
                    Value::Float(ratio),
                    "use a finite ratio in [0, 1000] (0.2 = retries add at most 20%; 0 = only the floor)",
                ),
            );
        }
        if window < Duration::from_secs(1) {
            refuse(
                &mut invalid,
                ConfigError::new(
                    "RetryBudget::ratio(window)",
                    Value::Duration(window),
                    "use a window of at least 1 s (default 10 s)",
                ),
            );
        }
        let mut budget = Self::build(BudgetMode::Ratio {
            ratio: if invalid.is_some() { 0.2 } else { ratio },
            window: window.max(Duration::from_secs(1)),
            min_retries_per_sec,
        });
        budget.invalid = invalid;
        budget
    }

    /// Like [`ratio`](Self::ratio), refusing out-of-range values with a [`ConfigError`].
    pub fn try_ratio(
        ratio: f64,
        window: Duration,
        min_retries_per_sec: u32,
    ) -> Result<Self, ConfigError> {
        let budget = Self::ratio(ratio, window, min_retries_per_sec);
        budget.validate().map(|()| budget)
    }

    /// Token-bucket mode (gRPC retry throttling, e.g. `token_bucket(10.0, 0.1)`).
    /// `max_tokens` must be in `[1, 1000]` and `token_ratio` in `[0, 1]`: out-of-range values
    /// are remembered and refused when the retry layer is built.
    pub fn token_bucket(max_tokens: f64, token_ratio: f64) -> Self {
        let mut invalid = None;
        if !(max_tokens.is_finite() && (1.0..=1000.0).contains(&max_tokens)) {
            refuse(
                &mut invalid,
                ConfigError::new(
                    "RetryBudget::token_bucket(max_tokens)",
                    Value::Float(max_tokens),
                    "use a finite bucket size in [1, 1000] (gRPC's example: 10)",
                ),
            );
        }
        if !(token_ratio.is_finite() && (0.0..=1.0).contains(&token_ratio)) {
            refuse(
                &mut invalid,
                ConfigError::new(
                    "RetryBudget::token_bucket(token_ratio)",
                    Value::Float(token_ratio),
                    "use a finite ratio in [0, 1] (gRPC's example: 0.1)",
                ),
            );
        }
        let mut budget = Self::build(BudgetMode::TokenBucket {
            max_tokens: if invalid.is_some() { 10.0 } else { max_tokens },
            token_ratio: if invalid.is_some() { 0.1 } else { token_ratio },
        });
        budget.invalid = invalid;
        budget
    }

    /// Like [`token_bucket`](Self::token_bucket), refusing out-of-range values with a
    /// [`ConfigError`].
    pub fn try_token_bucket(max_tokens: f64, token_ratio: f64) -> Result<Self, ConfigError> {
        let budget = Self::token_bucket(max_tokens, token_ratio);
        budget.validate().map(|()| budget)
    }

    /// `Err` with the first refused value this budget was made with, if any.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(&self.invalid)
    }

    /// Uses `clock` instead of [`TokioClock`].
    pub fn with_clock(self, clock: SharedClock) -> Self {
        let inner = Inner::new(self.inner.mode, clock);
        RetryBudget {
            inner: Arc::new(inner),
            invalid: self.invalid,
        }
    }

    /// The accounting mode.
    pub fn mode(&self) -> BudgetMode {
        self.inner.mode
    }

    /// Records a logical request (call once per call, before its first attempt). Lock-free:
    /// one clock read and one atomic update, as it runs on every call.
    pub fn deposit(&self) {
        if let BudgetMode::Ratio { .. } = self.inner.mode {
            let epoch = self.inner.epoch(self.inner.clock.now());
            let slot = &self.inner.requests[(epoch % SLOTS as u64) as usize];
            let tag = epoch as u32;
            let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
                Some(if unpack_epoch(packed) == tag {
                    pack(tag, unpack_count(packed).saturating_add(1))
                } else {
                    pack(tag, 1)
                })
            });
        }
    }

    /// Records the outcome of one attempt (only the token bucket reads it). Lock-free: it
    /// runs on every successful call.
    pub fn record_attempt(&self, success: bool) {
        if let BudgetMode::TokenBucket {
            max_tokens,
            token_ratio,
        } = self.inner.mode
        {
            let _ = self
                .inner
                .tokens
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                    let tokens = f64::from_bits(bits);
                    let next = if success {
                        (tokens + token_ratio).min(max_tokens)
                    } else {
                        (tokens - 1.0).max(0.0)
                    };
                    (next != tokens).then_some(next.to_bits())
                });
        }
    }

    /// Asks for one retry: `true` (and the retry is counted) when the budget allows it.
    /// Withdrawals take a short lock among themselves (never held across an await), so that
    /// concurrent retries never overdraw the budget; deposits do not wait for it.
    pub fn try_withdraw(&self) -> bool {
        match self.inner.mode {
            BudgetMode::Ratio {
                ratio,
                window,
                min_retries_per_sec,
            } => {
                let now = self.inner.clock.now();
                let epoch = self.inner.epoch(now);
                let mut retries = self.inner.retries.lock();
                let requests = self.inner.requests_in_window(epoch);
                let spent: u64 = retries
                    .iter()
                    .filter(|s| in_window(s.epoch, epoch))
                    .map(|s| s.retries)
                    .sum();
                let floor = f64::from(min_retries_per_sec) * window.as_secs_f64();
                let allowed = (ratio * requests as f64).max(floor);
                if (spent as f64) < allowed {
                    let slot = &mut retries[(epoch % SLOTS as u64) as usize];
                    if slot.epoch != epoch {
                        *slot = RetrySlot { epoch, retries: 0 };
                    }
                    slot.retries = slot.retries.saturating_add(1);
                    true
                } else {
                    false
                }
            }
            BudgetMode::TokenBucket { max_tokens, .. } => {
                f64::from_bits(self.inner.tokens.load(Ordering::Acquire)) > max_tokens / 2.0
            }
        }
    }
}

// ---- helpers ----------------------------------------------------------------------------

const SLOTS: usize = 10;

struct Inner {
    mode: BudgetMode,
    clock: SharedClock,
    /// The slots' numbers (epochs).
    slots: Periods,
    /// Logical requests per slot, packed as (low 32 bits of the slot's epoch, count): a
    /// deposit is one atomic update, with no lock on the path of every call.
    requests: [AtomicU64; SLOTS],
    /// Retries per slot, behind the lock that serialises withdrawals.
    retries: Mutex<[RetrySlot; SLOTS]>,
    /// Token-bucket tokens (`f64` bits).
    tokens: AtomicU64,
}

#[derive(Default, Clone, Copy)]
struct RetrySlot {
    epoch: u64,
    retries: u64,
}

impl Inner {
    fn new(mode: BudgetMode, clock: SharedClock) -> Self {
        let (slot_len, tokens) = match mode {
            BudgetMode::Ratio { window, .. } => (window / SLOTS as u32, 0.0),
            BudgetMode::TokenBucket { max_tokens, .. } => (Duration::from_secs(1), max_tokens),
        };
        Inner {
            mode,
            slots: Periods::new(clock.now(), slot_len),
            clock,
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            retries: Mutex::new([RetrySlot::default(); SLOTS]),
            tokens: AtomicU64::new(f64::to_bits(tokens)),
        }
    }

    /// The slot number of `now` (1-based; 0 marks a slot never used).
    fn epoch(&self, now: Instant) -> u64 {
        self.slots.number(now)
    }

    /// Logical requests deposited in the window that ends with slot `epoch`.
    fn requests_in_window(&self, epoch: u64) -> u64 {
        let tag = epoch as u32;
        self.requests
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|&packed| {
                let age = tag.wrapping_sub(unpack_epoch(packed));
                packed != 0 && (age as usize) < SLOTS
            })
            .map(|packed| u64::from(unpack_count(packed)))
            .sum()
    }
}

fn in_window(slot_epoch: u64, epoch: u64) -> bool {
    slot_epoch <= epoch && slot_epoch + SLOTS as u64 > epoch
}

fn pack(epoch: u32, count: u32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(count)
}

fn unpack_epoch(packed: u64) -> u32 {
    (packed >> 32) as u32
}

fn unpack_count(packed: u64) -> u32 {
    packed as u32
}

impl RetryBudget {
    fn build(mode: BudgetMode) -> Self {
        RetryBudget {
            inner: Arc::new(Inner::new(mode, Arc::new(TokioClock))),
            invalid: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn ratio_allows_twenty_percent_above_the_floor() {
        let clock = Arc::new(ManualClock::new());
        let budget = RetryBudget::default().with_clock(clock.clone());
        for _ in 0..1000 {
            budget.deposit();
        }
        let granted = (0..2000).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 200);
    }

    #[test]
    fn floor_allows_retries_for_quiet_services() {
        let clock = Arc::new(ManualClock::new());
        let budget = RetryBudget::default().with_clock(clock.clone());
        budget.deposit();
        let granted = (0..500).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 100, "10 retries/s over a 10 s window");
    }

    #[test]
    fn window_slides() {
        let clock = Arc::new(ManualClock::new());
        let budget = RetryBudget::ratio(0.5, Duration::from_secs(10), 0).with_clock(clock.clone());
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!((0..10).filter(|_| budget.try_withdraw()).count(), 5);
        clock.advance(Duration::from_secs(11));
        assert!(!budget.try_withdraw(), "old requests left the window");
        for _ in 0..2 {
            budget.deposit();
        }
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn token_bucket_throttles_below_half() {
        let budget = RetryBudget::token_bucket(10.0, 0.5);
        assert!(budget.try_withdraw());
        for _ in 0..5 {
            budget.record_attempt(false);
        }
        assert!(!budget.try_withdraw(), "5 of 10 tokens left");
        budget.record_attempt(true);
        assert!(budget.try_withdraw(), "5.5 tokens");
    }
}
