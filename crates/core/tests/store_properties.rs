//! Property tests of the in-memory store's append contract, the one every backend must keep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use proptest::prelude::*;
use serde_json::json;
use strata_core::{
    AppendRequest, Error, EventId, EventStore, ExpectedVersion, InMemoryStore, Metadata, NewEvent, StreamId,
};

fn event(i: usize) -> NewEvent {
    NewEvent::new("Happened", 1, json!({ "i": i }), Metadata::new("c"))
}

#[derive(Debug, Clone)]
enum Expect {
    Any,
    NoStream,
    StreamExists,
    /// Exact(current - back) when back <= current, else a version ahead of the stream.
    Behind(u64),
    Ahead(u64),
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        Just(Expect::Any),
        Just(Expect::NoStream),
        Just(Expect::StreamExists),
        (0u64..4).prop_map(Expect::Behind),
        (1u64..3).prop_map(Expect::Ahead),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

proptest! {
    /// Appends succeed exactly when the expectation matches the model's version; a stale one is
    /// always `Conflict` and writes nothing; versions end contiguous from 1 with unique event ids.
    #[test]
    fn appends_follow_the_expected_version_contract(ops in prop::collection::vec((expect(), 1usize..4), 1..40)) {
        let store = InMemoryStore::new();
        let stream = StreamId::new("t", "thing", "1").unwrap();
        let mut current = 0u64;
        runtime().block_on(async {
            for (i, (expect, count)) in ops.into_iter().enumerate() {
                let expected = match expect {
                    Expect::Any => ExpectedVersion::Any,
                    Expect::NoStream => ExpectedVersion::NoStream,
                    Expect::StreamExists => ExpectedVersion::StreamExists,
                    Expect::Behind(back) => ExpectedVersion::Exact(current.saturating_sub(back)),
                    Expect::Ahead(ahead) => ExpectedVersion::Exact(current + ahead),
                };
                let events = (0..count).map(|j| event(i * 10 + j)).collect();
                let request = AppendRequest { stream: stream.clone(), expected, events, idempotency: None };
                match store.append(request).await {
                    Ok(commit) => {
                        prop_assert!(expected.matches(current));
                        prop_assert_eq!(commit.first_version, current + 1);
                        prop_assert_eq!(commit.last_version, current + count as u64);
                        current = commit.last_version;
                    }
                    Err(Error::Conflict { actual, .. }) => {
                        prop_assert!(!expected.matches(current));
                        prop_assert_eq!(actual, Some(current));
                    }
                    Err(other) => prop_assert!(false, "unexpected error {other}"),
                }
            }
            let page = store.read(&stream, 1, 10_000).await.unwrap();
            let versions: Vec<u64> = page.events.iter().map(|e| e.version).collect();
            prop_assert_eq!(versions, (1..=current).collect::<Vec<_>>());
            let ids: HashSet<EventId> = page.events.iter().map(|e| e.event_id).collect();
            prop_assert_eq!(ids.len() as u64, current);
            Ok(())
        })?;
    }

    /// Reading in pages of any size returns every event once, in order.
    #[test]
    fn paged_reads_cover_the_stream(total in 0usize..60, page in 1usize..17, from in 1u64..5) {
        let store = InMemoryStore::new();
        let stream = StreamId::new("t", "thing", "p").unwrap();
        runtime().block_on(async {
            if total > 0 {
                let events = (0..total).map(event).collect();
                let request = AppendRequest { stream: stream.clone(), expected: ExpectedVersion::NoStream, events, idempotency: None };
                store.append(request).await.unwrap();
            }
            let mut seen = Vec::new();
            let mut next = Some(from);
            while let Some(at) = next {
                let result = store.read(&stream, at, page).await.unwrap();
                prop_assert!(result.events.len() <= page);
                seen.extend(result.events.iter().map(|e| e.version));
                next = result.next_version;
            }
            prop_assert_eq!(seen, (from..=total as u64).collect::<Vec<_>>());
            Ok(())
        })?;
    }
}
