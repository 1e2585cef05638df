//! What a store has learned about its streams: how many items lie from a stream's head down to its
//! newest snapshot, so that the next load's first Query asks for about that many instead of a fixed
//! page (a Query pays for every item it returns, even those past the snapshot it stops at).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Streams remembered at most; past it the memory starts over (a load then uses the default page).
const MAX_STREAMS: usize = 10_000;

/// Items from each stream's known head down to and including its newest snapshot of a state schema,
/// by `pk`, then by schema (during a rolling deploy two schemas load the same stream).
#[derive(Default)]
pub(crate) struct SnapshotDistances {
    by_stream: Mutex<HashMap<String, Vec<(u32, u32)>>>,
}

impl std::fmt::Debug for SnapshotDistances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotDistances").finish_non_exhaustive()
    }
}

impl SnapshotDistances {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Vec<(u32, u32)>>) -> R) -> R {
        f(&mut self.by_stream.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The distance last learned for the stream's snapshots of `schema`.
    pub(crate) fn get(&self, pk: &str, schema: u32) -> Option<u32> {
        self.with(|m| m.get(pk)?.iter().find(|(s, _)| *s == schema).map(|(_, items)| *items))
    }

    /// A load of `schema` read `items` items down to its snapshot, or one was saved at the head (1).
    pub(crate) fn set(&self, pk: &str, schema: u32, items: u32) {
        self.with(|m| {
            if m.len() >= MAX_STREAMS && !m.contains_key(pk) {
                m.clear();
            }
            let known = m.entry(pk.to_owned()).or_default();
            known.retain(|(s, _)| *s != schema);
            known.push((schema, items));
        });
    }

    /// An item this store wrote lies above the snapshots of every schema but `except` now: a commit
    /// (`except` is `None`), or a snapshot of schema `except`.
    pub(crate) fn grow(&self, pk: &str, except: Option<u32>) {
        self.with(|m| {
            for (schema, items) in m.get_mut(pk).into_iter().flatten() {
                if Some(*schema) != except {
                    *items = items.saturating_add(1);
                }
            }
        });
    }

    /// Nothing is known of the stream's snapshots of `schema` (none was met), or of any (`None`: a
    /// snapshot was saved that may not be at the head).
    pub(crate) fn forget(&self, pk: &str, schema: Option<u32>) {
        self.with(|m| match schema {
            Some(schema) => {
                if let Some(known) = m.get_mut(pk) {
                    known.retain(|(s, _)| *s != schema);
                }
            }
            None => {
                m.remove(pk);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_grow_with_commits_and_stay_bounded() {
        let d = SnapshotDistances::default();
        d.grow("a", None);
        assert_eq!(d.get("a", 1), None, "nothing learned, nothing grown");
        d.set("a", 1, 1);
        d.set("a", 2, 5);
        d.grow("a", None);
        d.grow("a", Some(2));
        assert_eq!((d.get("a", 1), d.get("a", 2)), (Some(3), Some(6)));
        d.forget("a", Some(1));
        assert_eq!((d.get("a", 1), d.get("a", 2)), (None, Some(6)));
        d.forget("a", None);
        assert_eq!(d.get("a", 2), None);
        for i in 0..=MAX_STREAMS {
            d.set(&i.to_string(), 1, 1);
        }
        assert!(d.with(|m| m.len()) <= MAX_STREAMS);
    }
}
