//! When to take snapshots and how many to keep.

use chrono::{DateTime, Utc};

/// When the repository writes a snapshot after a command, and how many it keeps.
///
/// Snapshots are a cache: a failed snapshot write never fails the command, and because the rule
/// counts events since the newest snapshot (not multiples of N), a missed snapshot is taken by the
/// next command instead of waiting for the next multiple.
///
/// ```
/// use strata_core::SnapshotPolicy;
/// let policy = SnapshotPolicy::every(100).keep(3);
/// assert!(!policy.is_due(99, 0, None));
/// assert!(policy.is_due(100, 0, None));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    every: Option<u64>,
    max_age: Option<chrono::Duration>,
    keep: usize,
    prune_on_write: bool,
    read_only: bool,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self::never()
    }
}

impl SnapshotPolicy {
    /// How many snapshots are kept when not set otherwise.
    pub const DEFAULT_KEEP: usize = 2;

    /// Never snapshot.
    pub fn never() -> Self {
        Self { every: None, max_age: None, keep: Self::DEFAULT_KEEP, prune_on_write: true, read_only: false }
    }

    /// Snapshot once `n` events have been written since the newest snapshot (`n` of 0 disables).
    pub fn every(n: u64) -> Self {
        Self::never().and_every(n)
    }

    /// Also snapshot once `n` events have been written since the newest snapshot.
    pub fn and_every(mut self, n: u64) -> Self {
        self.every = (n > 0).then_some(n);
        self
    }

    /// Also snapshot when the newest snapshot (or, without one, the stream's first event) is older
    /// than `age` and events were written since.
    pub fn and_max_age(mut self, age: chrono::Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Keep the newest `k` snapshots (at least 1).
    pub fn keep(mut self, k: usize) -> Self {
        self.keep = k.max(1);
        self
    }

    /// How many snapshots to keep.
    pub fn keep_count(&self) -> usize {
        self.keep
    }

    /// The command that writes a snapshot leaves the older ones alone: something off the command
    /// path prunes them to the keep count (on DynamoDB, the stream publisher's
    /// `SnapshotPruner`, from the snapshot's insert record). Saves the command the pruning's index
    /// Query and deletes.
    pub fn pruned_elsewhere(mut self) -> Self {
        self.prune_on_write = false;
        self
    }

    /// Whether the repository prunes right after writing a snapshot (the default) rather than
    /// leaving it to [`SnapshotPolicy::pruned_elsewhere`]'s pruner.
    pub fn prunes_on_write(&self) -> bool {
        self.prune_on_write
    }

    /// Loads start from the newest snapshot, but none is taken or pruned after a command or a load
    /// (whatever `and_every`/`and_max_age` add): for a reader (a query function) of streams whose
    /// writers take snapshots. Without it such a reader reads each stream forward from version 1.
    /// [`crate::Repository::take_snapshot`], an explicit request, still writes one.
    ///
    /// ```
    /// use strata_core::SnapshotPolicy;
    /// let policy = SnapshotPolicy::read_only();
    /// assert!(!policy.is_enabled());
    /// assert!(policy.loads_from_snapshots());
    /// ```
    pub fn read_only() -> Self {
        Self { read_only: true, ..Self::never() }
    }

    /// Whether snapshots are taken at all.
    pub fn is_enabled(&self) -> bool {
        !self.read_only && (self.every.is_some() || self.max_age.is_some())
    }

    /// Whether loads start from the newest snapshot (snapshots are taken, or
    /// [`SnapshotPolicy::read_only`]) rather than reading forward from version 1.
    pub fn loads_from_snapshots(&self) -> bool {
        self.is_enabled() || self.read_only
    }

    /// Whether a stream now at `version`, whose newest snapshot is at `snapshot_version` (0 for none)
    /// and dates from `since`, is due for a snapshot.
    pub fn is_due(&self, version: u64, snapshot_version: u64, since: Option<DateTime<Utc>>) -> bool {
        let behind = version.saturating_sub(snapshot_version);
        if behind == 0 || self.read_only {
            return false;
        }
        let by_count = self.every.is_some_and(|n| behind >= n);
        let by_age = match (self.max_age, since) {
            (Some(age), Some(since)) => Utc::now() - since >= age,
            _ => false,
        };
        by_count || by_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_rule_counts_since_the_newest_snapshot() {
        let p = SnapshotPolicy::every(10);
        assert!(!p.is_due(9, 0, None));
        assert!(p.is_due(10, 0, None));
        assert!(!p.is_due(19, 10, None));
        assert!(p.is_due(23, 10, None), "a missed snapshot is caught up");
        assert!(!SnapshotPolicy::never().is_due(1_000, 0, None));
    }

    #[test]
    fn age_rule_needs_new_events() {
        let p = SnapshotPolicy::never().and_max_age(chrono::Duration::minutes(5));
        let old = Utc::now() - chrono::Duration::minutes(10);
        assert!(p.is_due(3, 2, Some(old)));
        assert!(!p.is_due(2, 2, Some(old)));
        assert!(!p.is_due(3, 2, Some(Utc::now())));
        assert_eq!(SnapshotPolicy::every(5).keep(0).keep_count(), 1);
    }

    #[test]
    fn a_read_only_policy_takes_none_whatever_is_added() {
        let p = SnapshotPolicy::read_only().and_every(2).and_max_age(chrono::Duration::zero());
        assert!(!p.is_enabled() && p.loads_from_snapshots());
        assert!(!p.is_due(10, 0, Some(Utc::now() - chrono::Duration::days(1))));
        assert!(!SnapshotPolicy::never().loads_from_snapshots());
    }
}
