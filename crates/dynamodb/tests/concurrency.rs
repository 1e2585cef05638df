//! Racing writers on one stream: conditional puts let exactly one writer win each version.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{append, bumps, fixture, stream};
use strata_core::fixture::tally::{Tally, TallyCommand};
use strata_core::{
    CommandContext, Error, EventId, EventStore, ExpectedVersion, Repository, RetryPolicy, SnapshotPolicy,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_of_fifty_commands_end_at_800_contiguous_and_unique() {
    let f = fixture().await;
    // The emulator spends ~1 ms per item a Query returns, so snapshots come often and loads ask for
    // few items: each load is one short Query, as it would be in production with a tuned page size.
    let store = f.store.clone().with_load_page_size(6);
    let repo = Arc::new(
        Repository::<Tally, _>::new(store)
            .with_snapshot_policy(SnapshotPolicy::every(5).keep(2))
            .with_retry_policy(RetryPolicy {
                max_attempts: 500,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_secs(1),
                max_elapsed: Duration::from_secs(600),
            }),
    );
    let s = stream("race");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (repo, s) = (Arc::clone(&repo), s.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    repo.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await?;
                }
                Ok::<_, strata_core::CommandError<_>>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let loaded = repo.load(&s).await.unwrap();
    assert_eq!(loaded.version, 800);
    assert_eq!(loaded.state.seen, (1..=800).collect::<Vec<_>>());
    let mut ids: Vec<EventId> = Vec::new();
    let mut versions = Vec::new();
    let mut next = Some(1);
    while let Some(from) = next {
        let page = f.store.read(&s, from, 128).await.unwrap();
        ids.extend(page.events.iter().map(|e| e.event_id));
        versions.extend(page.events.iter().map(|e| e.version));
        next = page.next_version;
    }
    assert_eq!(versions, (1..=800).collect::<Vec<_>>());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 800, "no duplicate event ids");
    let counts = f.counter.counts();
    // Each command's load reads eventually consistent (a page or two); catching up reads strongly.
    assert_eq!(counts.scans, 0, "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_writers_at_one_version_exactly_one_wins() {
    let f = fixture().await;
    let s = stream("duel");
    for round in 0..20u64 {
        let (a, b) = (f.store.clone(), f.store.clone());
        let (ra, rb) = (
            append(&s, ExpectedVersion::Exact(round), bumps(round + 1, 1)),
            append(&s, ExpectedVersion::Exact(round), bumps(round + 1, 1)),
        );
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { a.append_after_load(ra).await }),
            tokio::spawn(async move { b.append_after_load(rb).await }),
        );
        let results = [ra.unwrap(), rb.unwrap()];
        let wins = results.iter().filter(|r| r.is_ok()).count();
        let conflicts = results.iter().filter(|r| matches!(r, Err(Error::Conflict { .. }))).count();
        assert_eq!((wins, conflicts), (1, 1), "round {round}: {results:?}");
    }
    assert_eq!(f.store.head(&s).await.unwrap(), 20);

    // Without retry, the repository surfaces the conflict as is.
    let repo = Repository::<Tally, _>::new(f.store.clone());
    let context = CommandContext { expected_version: Some(ExpectedVersion::Exact(19)), ..Default::default() };
    let err = repo.execute(&s, &TallyCommand::BumpStrict, context).await.unwrap_err();
    assert!(err.as_error().is_some_and(Error::is_conflict), "{err:?}");
}
