//! Bounded, jittered retry after optimistic-concurrency conflicts.

use std::time::Duration;

/// How often and how patiently a command is retried after a conflict.
///
/// Delays use "full jitter" (a random wait between zero and an exponentially growing cap), which
/// spreads racing writers apart instead of letting them collide again in lockstep.
///
/// A retry costs one conditional write (the lost write returned the commit that won, which is
/// folded in), so the default allows many attempts, bounded by time. Measured on the emulator with
/// 16 writers of 50 commands on one stream (one cached repository, snapshots every 100; a throwaway
/// harness, two or three runs each): delays up to 800 ms within 8 s, 97.8-98.8% of commands
/// succeeded; up to 1.6 s within 8 s, 98.0-98.3% with fewer requests (1.8 per command, from 2.3);
/// within 12 s, 98.5-99.1%; within 16 s (the default), 99.5-99.9%. Longer waits collide less, and
/// the tail that fails is the commands that lost every race until the budget ran out: a longer
/// budget is what turns them into successes (`docs/benchmarks.md` has the report's run). It bounds
/// the wait, it does not promise success under any contention. `max_elapsed` keeps a command inside
/// the function's timeout (20 s for the command function in the CDK construct; API Gateway allows
/// 30 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Cap of the first retry's delay; doubles with each retry.
    pub base_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
    /// No retry starts (its delay included) later than this after the command began.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 50,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(1_600),
            max_elapsed: Duration::from_secs(16),
        }
    }
}

impl RetryPolicy {
    /// Never retry: a conflict is returned at once.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// The delay before retry number `retry` (1 for the first retry), or `None` when the policy
    /// allows no such retry: past `max_attempts`, or `max_elapsed` already spent by a command that
    /// began `elapsed` ago (a delay is cut to what is left of it).
    pub fn next_delay(&self, retry: u32, elapsed: Duration) -> Option<Duration> {
        if retry >= self.max_attempts || elapsed >= self.max_elapsed {
            return None;
        }
        // Clamped to what is left: a wait that would end past the budget waits only until it.
        Some(self.delay(retry).min(self.max_elapsed - elapsed))
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
    fn retries_stop_at_the_attempt_or_time_budget() {
        let policy =
            RetryPolicy { max_attempts: 3, max_elapsed: Duration::from_secs(1), ..RetryPolicy::default() };
        assert!(policy.next_delay(1, Duration::ZERO).is_some());
        assert!(policy.next_delay(3, Duration::ZERO).is_none(), "the third attempt was the last");
        assert!(policy.next_delay(1, Duration::from_secs(1)).is_none(), "the time budget is spent");
        let late = policy.next_delay(1, Duration::from_millis(999));
        assert!(late.is_some_and(|d| d <= Duration::from_millis(1)), "cut to what is left: {late:?}");
        assert!(RetryPolicy::none().next_delay(1, Duration::ZERO).is_none());
    }

    #[test]
    fn delays_are_bounded_by_the_growing_cap() {
        let policy = RetryPolicy::default();
        for retry in 1..40 {
            let cap = (policy.base_delay * 2u32.saturating_pow(retry - 1)).min(policy.max_delay);
            assert!(policy.delay(retry) <= cap);
        }
    }
}
