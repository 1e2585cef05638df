//! Read-model views in the table: the projector's checkpointed writes, their cost, conflicts and
//! lookups through the `lookup` index.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use common::{fixture, stream};
use strata_core::fixture::tally::{Tally, TallyCommand, TallyProjection};
use strata_core::projection::{Delivered, Projector, ViewStore};
use strata_core::{CommandContext, Error, EventStore, Repository};

async fn bump(repo: &Repository<Tally, strata_dynamodb::DynamoStore>, id: &str, times: u32) {
    repo.execute(&stream(id), &TallyCommand::Bump { times }, CommandContext::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_delivered_events_is_one_get_and_one_put_and_duplicates_write_nothing() {
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone());
    bump(&repo, "v1", 3).await;
    let s = stream("v1");
    let events = f.store.read(&s, 1, 100).await.unwrap().events;
    let projector = Projector::new(TallyProjection, f.store.clone());
    f.counter.reset();

    let done = projector.project(&s, events.iter().cloned().map(Delivered::Event).collect()).await.unwrap();
    assert_eq!((done.applied, done.fetched, done.version), (3, 0, 3));
    let counts = f.counter.take();
    assert_eq!(
        (counts.calls("GetItem"), counts.calls("PutItem"), counts.total_calls()),
        (1, 1, 2),
        "{counts}"
    );

    let again = projector.project(&s, vec![Delivered::Event(events[1].clone())]).await.unwrap();
    assert_eq!((again.applied, again.duplicates), (0, 1));
    let counts = f.counter.take();
    assert_eq!((counts.calls("GetItem"), counts.write_calls()), (1, 0), "{counts}");
    assert_eq!((counts.inconsistent_reads, counts.scans), (0, 0));

    let (view, version) = projector.view(&s).await.unwrap().unwrap();
    assert_eq!((view, version), (repo.load(&s).await.unwrap().state, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_is_read_from_the_stream_with_one_query() {
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone());
    for _ in 0..4 {
        bump(&repo, "v2", 2).await;
    }
    let s = stream("v2");
    let last = f.store.read(&s, 8, 1).await.unwrap().events;
    let projector = Projector::new(TallyProjection, f.store.clone());
    f.counter.reset();
    let done = projector.project(&s, vec![Delivered::Event(last[0].clone())]).await.unwrap();
    assert_eq!((done.applied, done.fetched, done.version), (8, 7, 8));
    let counts = f.counter.take();
    assert_eq!((counts.calls("Query"), counts.calls("PutItem")), (1, 1), "{counts}");
    assert_eq!(projector.view(&s).await.unwrap().unwrap().0, repo.load(&s).await.unwrap().state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_checkpoint_is_a_conflict_naming_the_version_found() {
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone());
    bump(&repo, "v3", 2).await;
    let s = stream("v3");
    let projector = Projector::new(TallyProjection, f.store.clone());
    projector.project(&s, vec![Delivered::Reference { stream: s.clone(), version: 2 }]).await.unwrap();
    let stored = f.store.get_view("tally-view", &s).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    let absent = f.store.put_view(stored.clone(), None).await;
    assert!(matches!(absent, Err(Error::Conflict { actual: Some(2), .. })), "{absent:?}");
    let stale = f.store.put_view(stored.clone(), Some(1)).await;
    assert!(matches!(stale, Err(Error::Conflict { actual: Some(2), .. })), "{stale:?}");
    f.store.put_view(stored, Some(2)).await.unwrap();
    let bad = f.store.get_view("bad#name", &s).await;
    assert!(matches!(bad, Err(Error::InvalidKey(_))), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_list_views_across_streams_in_sort_order() {
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone());
    let projector = Projector::new(TallyProjection, f.store.clone());
    for (id, times) in [("l1", 3), ("l2", 2), ("l3", 1), ("l4", 4)] {
        bump(&repo, id, times).await;
        let s = stream(id);
        projector
            .project(&s, vec![Delivered::Reference { stream: s.clone(), version: u64::from(times) }])
            .await
            .unwrap();
    }
    // The lookup index is eventually consistent: wait until it lists all four views.
    let listed = |lookup: &'static str| {
        let projector = &projector;
        async move {
            let page = projector.lookup("acme", lookup, None, 100).await.unwrap();
            let views: Vec<(String, u64)> =
                page.views.into_iter().map(|(s, _, v)| (s.id().to_owned(), v.count)).collect();
            if views.len() == 2 { Ok(views) } else { Err(format!("{views:?}")) }
        }
    };
    // Two listed is all there is to wait for: each view is written once, so then the list is final.
    let odd = strata_testing::eventually("the odd lookup", || listed("odd")).await;
    assert_eq!(odd, [("l3".to_owned(), 1), ("l1".to_owned(), 3)]);
    let even = strata_testing::eventually("the even lookup", || listed("even")).await;
    assert_eq!(even, [("l2".to_owned(), 2), ("l4".to_owned(), 4)]);
    // Pages of one, each after the previous position.
    let first = projector.lookup("acme", "even", None, 1).await.unwrap();
    let second = projector.lookup("acme", "even", first.next.as_deref(), 1).await.unwrap();
    let third = projector.lookup("acme", "even", second.next.as_deref(), 1).await.unwrap();
    assert_eq!((first.views[0].0.id(), second.views[0].0.id(), third.views.len()), ("l2", "l4", 0));
    assert!(projector.lookup("other", "odd", None, 100).await.unwrap().views.is_empty());
}
