//! Bounded, jittered retry after optimistic-concurrency conflicts.

use std::time::Duration;

/// How often and how patiently a command is retried after a conflict.
///
/// Delays use "full jitter" (a random wait between zero and an exponentially growing cap), which
/// spreads racing writers apart instead of letting them collide again in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Cap of the first retry's delay; doubles with each retry.
    pub base_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 10, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(200) }
    }
}

impl RetryPolicy {
    /// Never retry: a conflict is returned at once.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// The delay before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        let cap = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let cap_micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=cap_micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_bounded_by_the_growing_cap() {
        let policy = RetryPolicy::default();
        for retry in 1..40 {
            let cap = (policy.base_delay * 2u32.saturating_pow(retry - 1)).min(policy.max_delay);
            assert!(policy.delay(retry) <= cap);
        }
    }
}
