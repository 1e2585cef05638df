//! Cold commands load with reads that may lag the head (eventually consistent on DynamoDB): such a
//! state is treated like a cached one, so it never becomes the basis of a committed command, of a
//! rejection, of an answer that changes nothing, or of a failed expectation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_core::conformance::{CountingStore, Counts};
use strata_core::fixture::tally::{Tally, TallyCommand};
use strata_core::{
    CommandContext, CommandError, Error, ExpectedVersion, InMemoryStore, Repository, StreamId,
};

fn stream(id: &str) -> StreamId {
    StreamId::new("t1", "tally", id).unwrap()
}

fn bump(times: u32) -> TallyCommand {
    TallyCommand::Bump { times }
}

/// A stream of `n` one-event commits.
async fn seeded(store: &InMemoryStore, s: &StreamId, n: u64) {
    let repo = Repository::<Tally, _>::new(store.clone());
    for _ in 0..n {
        repo.execute(s, &bump(1), CommandContext::default()).await.unwrap();
    }
}

async fn seen(store: &InMemoryStore, s: &StreamId) -> Vec<u64> {
    Repository::<Tally, _>::new(store.clone()).load(s).await.unwrap().state.seen
}

#[tokio::test]
async fn a_command_on_a_lagging_load_folds_in_what_it_missed_and_commits_at_the_head() {
    let store = InMemoryStore::new();
    let s = stream("lagging");
    seeded(&store, &s, 3).await;
    // The replica read is one commit behind: the write at version 3 loses, returns the commit
    // that holds it, and the command is decided again on version 3.
    let repo = Repository::<Tally, _>::new(CountingStore::lagging(&store, 1));
    let outcome = repo.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    assert_eq!(outcome.version, 4);
    assert_eq!(repo.store().take(), Counts { loads: 1, recent_loads: 1, events_loaded: 2, reads: 0 });
    assert_eq!(seen(&store, &s).await, [1, 2, 3, 4], "every event decided on the state before it");
    // Two behind: the winner, then everything after it; the command still lands on the head.
    let repo = Repository::<Tally, _>::new(CountingStore::lagging(&store, 2));
    assert_eq!(repo.execute(&s, &bump(1), CommandContext::default()).await.unwrap().version, 5);
    assert_eq!(seen(&store, &s).await, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn rejections_no_ops_and_expectations_are_answered_from_a_strongly_consistent_load() {
    let store = InMemoryStore::new();
    let s = stream("answers");
    seeded(&store, &s, 2).await;
    let repo = Repository::<Tally, _>::new(CountingStore::lagging(&store, 1));
    let refused = repo.execute(&s, &TallyCommand::Refuse, CommandContext::default()).await;
    assert!(matches!(refused, Err(CommandError::Rejected(_))), "{refused:?}");
    let counts = repo.store().take();
    assert_eq!((counts.loads, counts.recent_loads), (2, 1), "decided again on a strong load");
    let nothing = repo.execute(&s, &bump(0), CommandContext::default()).await.unwrap();
    assert_eq!(nothing.version, 2, "the stored head, not the lagging one");
    // If-Match: 2 fails against the lagging version 1 and holds against the store.
    let context = CommandContext { expected_version: Some(ExpectedVersion::Exact(2)), ..Default::default() };
    assert_eq!(repo.execute(&s, &bump(1), context).await.unwrap().version, 3);
    // If-Match: 2 matches the lagging version 2 (head 3): the write's condition refuses it, and the
    // conflict names the head a strong load found.
    let context = CommandContext { expected_version: Some(ExpectedVersion::Exact(2)), ..Default::default() };
    let stale = repo.execute(&s, &bump(1), context).await;
    assert!(matches!(stale, Err(CommandError::Failed(Error::Conflict { actual: Some(3), .. }))), "{stale:?}");
    assert_eq!(seen(&store, &s).await, [1, 2, 3]);
}

#[tokio::test]
async fn a_command_that_must_not_be_decided_twice_loads_strongly() {
    let store = InMemoryStore::new();
    let s = stream("strict");
    seeded(&store, &s, 2).await;
    let repo = Repository::<Tally, _>::new(CountingStore::lagging(&store, 1));
    let outcome = repo.execute(&s, &TallyCommand::BumpStrict, CommandContext::default()).await.unwrap();
    assert_eq!(outcome.version, 3, "not refused for a replica's lag");
    let counts = repo.store().take();
    assert_eq!((counts.loads, counts.recent_loads), (1, 0));
}

#[tokio::test]
async fn after_a_rewind_the_stream_loads_strongly_for_a_while() {
    let store = InMemoryStore::new();
    let (rewound, written_around) = (stream("rewound"), stream("around"));
    seeded(&store, &rewound, 2).await;
    seeded(&store, &written_around, 2).await;
    let repo = Repository::<Tally, _>::new(CountingStore::lagging(&store, 1));
    // A replica may still show commits a restore removed: no lagging read for this stream.
    repo.evict_rewound(&rewound);
    repo.evict_cached(&written_around);
    assert_eq!(repo.execute(&rewound, &bump(1), CommandContext::default()).await.unwrap().version, 3);
    let counts = repo.store().take();
    assert_eq!((counts.loads, counts.recent_loads), (1, 0));
    assert_eq!(repo.execute(&written_around, &bump(1), CommandContext::default()).await.unwrap().version, 3);
    assert_eq!(repo.store().take().recent_loads, 1, "an eviction of appends made around it changes nothing");
}
