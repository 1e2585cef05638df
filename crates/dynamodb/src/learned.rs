//! What a store has learned about its streams: how many items lie from a stream's head down to its
//! newest snapshot, so that the next load's first Query asks for about that many instead of a fixed
//! page (a Query pays for every item it returns, even those past the snapshot it stops at).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Streams remembered at most; past it the memory starts over (a load then uses the default page).
const MAX_STREAMS: usize = 10_000;

/// Items from each stream's known head down to and including its newest snapshot, by `pk`.
#[derive(Default)]
pub(crate) struct SnapshotDistances {
    by_stream: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for SnapshotDistances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotDistances").finish_non_exhaustive()
    }
}

impl SnapshotDistances {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, u32>) -> R) -> R {
        f(&mut self.by_stream.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The distance last learned for the stream.
    pub(crate) fn get(&self, pk: &str) -> Option<u32> {
        self.with(|m| m.get(pk).copied())
    }

    /// A load read `items` items down to the snapshot, or a snapshot was saved at the head (1).
    pub(crate) fn set(&self, pk: &str, items: u32) {
        self.with(|m| {
            if m.len() >= MAX_STREAMS && !m.contains_key(pk) {
                m.clear();
            }
            m.insert(pk.to_owned(), items);
        });
    }

    /// A commit this store wrote lies above the snapshot now.
    pub(crate) fn grow(&self, pk: &str) {
        self.with(|m| {
            if let Some(items) = m.get_mut(pk) {
                *items = items.saturating_add(1);
            }
        });
    }

    /// Nothing is known (no snapshot was met, or one was saved elsewhere than the head).
    pub(crate) fn forget(&self, pk: &str) {
        self.with(|m| m.remove(pk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_grow_with_commits_and_stay_bounded() {
        let d = SnapshotDistances::default();
        d.grow("a");
        assert_eq!(d.get("a"), None, "nothing learned, nothing grown");
        d.set("a", 1);
        d.grow("a");
        d.grow("a");
        assert_eq!(d.get("a"), Some(3));
        d.forget("a");
        assert_eq!(d.get("a"), None);
        for i in 0..=MAX_STREAMS {
            d.set(&i.to_string(), 1);
        }
        assert!(d.with(|m| m.len()) <= MAX_STREAMS);
    }
}
