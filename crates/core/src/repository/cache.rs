//! The stream cache: the state of recently written streams, kept by a warm process so that a command
//! on one of them is decided without reading the stream.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Folded;
use crate::StreamId;

/// How many streams a [`crate::Repository`] keeps warm, and for how long.
///
/// A cached state is only ever the basis of a write that is conditional on the next version, so a
/// stale entry (another process wrote the stream since) costs one lost write and a catch-up, never a
/// wrong commit. Memory is bounded by `entries` states of the aggregate (least recently used go
/// first); `max_age` bounds how long a state (and the personal data opened into it) stays in memory
/// after its stream was read, however often it is used (the default is the key cache's five
/// minutes). Expired entries go at the next put. A cached state holds no data keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Streams kept at most (0 turns the cache off).
    pub entries: usize,
    /// An entry older than this is dropped instead of used.
    pub max_age: Duration,
}

impl CachePolicy {
    /// No cache: every command loads its stream.
    pub fn off() -> Self {
        Self { entries: 0, max_age: Duration::ZERO }
    }

    /// Up to `entries` streams, each for at most five minutes.
    pub fn entries(entries: usize) -> Self {
        Self { entries, max_age: Duration::from_secs(300) }
    }

    /// The same, with entries dropped after `max_age`.
    pub fn max_age(self, max_age: Duration) -> Self {
        Self { max_age, ..self }
    }

    /// Whether anything is cached.
    pub fn is_enabled(&self) -> bool {
        self.entries > 0 && !self.max_age.is_zero()
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self::off()
    }
}

struct Entry<A> {
    folded: Folded<A>,
    used: u64,
}

struct Entries<A> {
    by_stream: HashMap<StreamId, Entry<A>>,
    /// Streams by last use, oldest first.
    by_use: BTreeMap<u64, StreamId>,
    clock: u64,
    /// Streams evicted as rewound lately, with when: their commands load strongly consistent for a
    /// while.
    evicted: HashMap<StreamId, Instant>,
}

/// How long after an eviction a stream's commands load with strongly consistent reads: a replica
/// may still show what a restore or repair removed (DynamoDB's replicas catch up in well under a
/// second; this is a wide margin).
pub(super) const STRONG_AFTER_EVICTION: Duration = Duration::from_secs(60);

/// The cache itself: entries are taken out for a command and put back after it, so two commands
/// on one stream in one process never share a state (the second loads).
pub(super) struct StreamCache<A> {
    policy: CachePolicy,
    entries: Mutex<Entries<A>>,
    /// Bumped by every eviction: states read before it are not cached again.
    epoch: AtomicU64,
}

impl<A> StreamCache<A> {
    pub(super) fn new(policy: CachePolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(Entries {
                by_stream: HashMap::new(),
                by_use: BTreeMap::new(),
                clock: 0,
                evicted: HashMap::new(),
            }),
            epoch: AtomicU64::new(0),
        }
    }

    pub(super) fn policy(&self) -> CachePolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<A>> {
        // A panic elsewhere cannot leave an entry half-written: take and put move whole entries.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream's cached state, removed from the cache; `None` when absent or too old.
    pub(super) fn take(&self, stream: &StreamId) -> Option<Folded<A>> {
        if !self.policy.is_enabled() {
            return None;
        }
        let mut entries = self.lock();
        let entry = entries.by_stream.remove(stream)?;
        entries.by_use.remove(&entry.used);
        (entry.folded.loaded_at.elapsed() <= self.policy.max_age).then_some(entry.folded)
    }

    /// The epoch to record on a state read now.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Drops the stream's state and makes every state read before now uncacheable; when `rewound`,
    /// the stream's commands load strongly consistent for [`STRONG_AFTER_EVICTION`].
    pub(super) fn evict(&self, stream: &StreamId, rewound: bool) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(entry) = entries.by_stream.remove(stream) {
            entries.by_use.remove(&entry.used);
        }
        if rewound {
            entries.evicted.retain(|_, at| at.elapsed() < STRONG_AFTER_EVICTION);
            entries.evicted.insert(stream.clone(), Instant::now());
        }
    }

    /// Whether the stream was evicted as rewound lately: then a command loads it strongly consistent.
    pub(super) fn evicted_lately(&self, stream: &StreamId) -> bool {
        let mut entries = self.lock();
        if entries.evicted.is_empty() {
            return false;
        }
        entries.evicted.retain(|_, at| at.elapsed() < STRONG_AFTER_EVICTION);
        entries.evicted.contains_key(stream)
    }

    /// Keeps the stream's state, dropping expired entries and the least recently used streams beyond
    /// the bound. The session it holds keeps no keys (see [`crate::crypto::CipherSession`]): the next
    /// command reads them through the key cache, whose TTL and local forgets apply.
    pub(super) fn put(&self, stream: &StreamId, mut folded: Folded<A>) {
        if !self.policy.is_enabled() || folded.loaded_at.elapsed() > self.policy.max_age {
            return;
        }
        if let Some(session) = &mut folded.session {
            session.forget_keys();
        }
        let mut entries = self.lock();
        // Under the lock, so an eviction either happened before (then this state is dropped) or
        // after (then it removes this entry).
        if folded.cache_epoch != self.epoch.load(Ordering::SeqCst) {
            return;
        }
        // A concurrent command on the stream may have cached a newer state: keep that one.
        if entries.by_stream.get(stream).is_some_and(|held| held.folded.version > folded.version) {
            return;
        }
        let max_age = self.policy.max_age;
        let Entries { by_stream, by_use, .. } = &mut *entries;
        by_stream.retain(|_, entry| {
            let live = entry.folded.loaded_at.elapsed() <= max_age;
            if !live {
                by_use.remove(&entry.used);
            }
            live
        });
        entries.clock += 1;
        let used = entries.clock;
        if let Some(old) = entries.by_stream.insert(stream.clone(), Entry { folded, used }) {
            entries.by_use.remove(&old.used);
        }
        entries.by_use.insert(used, stream.clone());
        while entries.by_stream.len() > self.policy.entries {
            let Some((_, oldest)) = entries.by_use.pop_first() else { break };
            entries.by_stream.remove(&oldest);
        }
    }

    /// How many streams are cached.
    pub(super) fn len(&self) -> usize {
        self.lock().by_stream.len()
    }
}
