//! Projector behaviour on the in-memory store: exactly-once, in-order application under duplicates,
//! reordering, gaps and references; conflicts; schema rebuilds; bad deliveries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_core::fixture::tally::{Tally, TallyCommand, TallyEvent};
use strata_core::projection::{Delivered, Lookup, Projection, Projector, ViewStore};
use strata_core::{
    Aggregate, CommandContext, Error, EventEnvelope, EventStore, InMemoryStore, Repository, StreamId,
};

/// Folds a tally stream into the tally itself, so the view must equal the aggregate's own fold.
struct Seen<const SCHEMA: u32>;

impl<const SCHEMA: u32> Projection for Seen<SCHEMA> {
    type Event = TallyEvent;
    type View = Tally;
    const NAME: &'static str = "seen";
    const CATEGORY: &'static str = "tally";
    const SCHEMA_VERSION: u32 = SCHEMA;

    fn apply(&self, view: Option<Tally>, event: &TallyEvent, _: &EventEnvelope) -> Option<Tally> {
        let mut view = view.unwrap_or_default();
        view.evolve(event);
        Some(view)
    }

    fn lookup(&self, view: &Tally) -> Option<Lookup> {
        Some(Lookup { partition: format!("p{}", view.count % 2), sort: format!("{:06}", view.count) })
    }
}

fn stream(id: &str) -> StreamId {
    StreamId::new("t1", "tally", id).unwrap()
}

/// A stream of `n` events written by commands of 1 to 3 events, and its events.
async fn written(store: &InMemoryStore, id: &str, n: u32) -> (StreamId, Vec<EventEnvelope>) {
    let repo = Repository::<Tally, _>::new(store.clone());
    let s = stream(id);
    let mut left = n;
    while left > 0 {
        let times = left.min(1 + left % 3);
        repo.execute(&s, &TallyCommand::Bump { times }, CommandContext::default()).await.unwrap();
        left -= times;
    }
    let events = store.read(&s, 1, 10_000).await.unwrap().events;
    (s, events)
}

async fn fold(store: &InMemoryStore, s: &StreamId) -> Tally {
    Repository::<Tally, _>::new(store.clone()).load(s).await.unwrap().state
}

#[tokio::test]
async fn in_order_delivery_equals_the_fold() {
    let store = InMemoryStore::new();
    let (s, events) = written(&store, "a", 7).await;
    let projector = Projector::new(Seen::<1>, store.clone());
    let done = projector.project(&s, events.into_iter().map(Delivered::Event).collect()).await.unwrap();
    assert_eq!((done.applied, done.fetched, done.duplicates, done.version), (7, 0, 0, 7));
    let (view, version) = projector.view(&s).await.unwrap().unwrap();
    assert_eq!((view, version), (fold(&store, &s).await, 7));
}

#[tokio::test]
async fn shuffled_duplicated_batches_apply_each_event_exactly_once_in_order() {
    for seed in 0..40 {
        let store = InMemoryStore::new();
        let (s, events) = written(&store, "b", 25).await;
        let mut rng = fastrand::Rng::with_seed(seed);
        // Every event once or twice, shuffled, cut into batches of 1..6.
        let mut deliveries: Vec<EventEnvelope> =
            events.iter().flat_map(|e| std::iter::repeat_n(e.clone(), 1 + rng.usize(0..2))).collect();
        rng.shuffle(&mut deliveries);
        let projector = Projector::new(Seen::<1>, store.clone());
        let (mut applied, mut duplicates) = (0, 0);
        while !deliveries.is_empty() {
            let batch: Vec<Delivered> =
                deliveries.drain(..rng.usize(1..7).min(deliveries.len())).map(Delivered::Event).collect();
            let delivered = batch.len() as u64;
            let done = projector.project(&s, batch).await.unwrap();
            applied += done.applied;
            duplicates += done.duplicates;
            assert!(done.duplicates <= delivered);
        }
        let (view, version) = projector.view(&s).await.unwrap().unwrap();
        assert_eq!(applied, 25, "seed {seed}: each event applied exactly once");
        assert_eq!(version, 25);
        // `seen` lists every event's n in application order: strictly 1..=25 means in order, once.
        assert_eq!(view.seen, (1..=25).collect::<Vec<u64>>(), "seed {seed}");
        assert_eq!(view, fold(&store, &s).await);
        assert!(duplicates > 0 || seed > 0 || applied == 25);
    }
}

#[tokio::test]
async fn a_gap_is_filled_from_the_store_and_a_reference_resolved() {
    let store = InMemoryStore::new();
    let (s, events) = written(&store, "c", 10).await;
    let projector = Projector::new(Seen::<1>, store.clone());
    let first = projector.project(&s, vec![Delivered::Event(events[1].clone())]).await.unwrap();
    assert_eq!((first.applied, first.fetched, first.version), (2, 1, 2));
    let by_reference =
        projector.project(&s, vec![Delivered::Reference { stream: s.clone(), version: 10 }]).await;
    assert_eq!(by_reference.unwrap().fetched, 8);
    let late = projector.project(&s, vec![Delivered::Event(events[0].clone())]).await.unwrap();
    assert_eq!((late.applied, late.duplicates, late.version), (0, 1, 10));
    assert_eq!(projector.view(&s).await.unwrap().unwrap().0, fold(&store, &s).await);
}

#[tokio::test]
async fn a_version_the_store_does_not_have_is_an_error_and_writes_nothing() {
    let store = InMemoryStore::new();
    let (s, _) = written(&store, "d", 3).await;
    let projector = Projector::new(Seen::<1>, store.clone());
    let beyond = projector.project(&s, vec![Delivered::Reference { stream: s.clone(), version: 9 }]).await;
    assert!(matches!(beyond, Err(Error::VersionNotFound { requested: 4, .. })), "{beyond:?}");
    assert_eq!(store.get_view("seen", &s).await.unwrap(), None);
}

#[tokio::test]
async fn deliveries_of_another_stream_or_category_are_refused() {
    let store = InMemoryStore::new();
    let (s, events) = written(&store, "e", 2).await;
    let projector = Projector::new(Seen::<1>, store.clone());
    let other = stream("other");
    let mixed = projector.project(&other, vec![Delivered::Event(events[0].clone())]).await;
    assert!(matches!(mixed, Err(Error::InvalidRequest(_))), "{mixed:?}");
    let order = StreamId::new("t1", "order", "o-1").unwrap();
    assert!(matches!(projector.project(&order, vec![]).await, Err(Error::WrongCategory { .. })));
    assert!(!projector.follows(&order) && projector.follows(&s));
}

#[tokio::test]
async fn a_stale_checkpoint_conflicts_and_the_projector_retries() {
    let store = InMemoryStore::new();
    let (s, events) = written(&store, "f", 4).await;
    let projector = Projector::new(Seen::<1>, store.clone());
    projector.project(&s, vec![Delivered::Event(events[1].clone())]).await.unwrap();
    let stored = store.get_view("seen", &s).await.unwrap().unwrap();
    // Another writer that read nothing, or an older checkpoint, loses.
    let lost = store.put_view(stored.clone(), None).await;
    assert!(matches!(lost, Err(Error::Conflict { actual: Some(2), .. })), "{lost:?}");
    assert!(store.put_view(stored.clone(), Some(1)).await.unwrap_err().is_conflict());
    store.put_view(stored, Some(2)).await.unwrap();
    // Racing projectors on one stream: both finish, and the view is still the fold.
    let (a, b) = tokio::join!(
        projector.project(&s, vec![Delivered::Event(events[3].clone())]),
        projector.project(&s, vec![Delivered::Event(events[2].clone())]),
    );
    assert_eq!(a.unwrap().applied + b.unwrap().applied, 2);
    assert_eq!(projector.view(&s).await.unwrap().unwrap(), (fold(&store, &s).await, 4));
}

#[tokio::test]
async fn a_view_of_an_older_schema_is_rebuilt_from_the_stream() {
    let store = InMemoryStore::new();
    let (s, events) = written(&store, "g", 5).await;
    Projector::new(Seen::<1>, store.clone())
        .project(&s, events.iter().cloned().map(Delivered::Event).collect())
        .await
        .unwrap();
    let v2 = Projector::new(Seen::<2>, store.clone());
    assert_eq!(v2.view(&s).await.unwrap(), None, "an old-schema view is not served");
    // Even a duplicate delivery rebuilds the whole view under the new schema.
    let rebuilt = v2.project(&s, vec![Delivered::Event(events[0].clone())]).await.unwrap();
    assert_eq!((rebuilt.applied, rebuilt.version), (5, 5));
    assert_eq!(v2.view(&s).await.unwrap().unwrap(), (fold(&store, &s).await, 5));
}

#[tokio::test]
async fn lookups_list_views_by_partition_in_sort_order() {
    let store = InMemoryStore::new();
    let projector = Projector::new(Seen::<1>, store.clone());
    for (id, n) in [("h1", 3), ("h2", 2), ("h3", 5)] {
        let (s, events) = written(&store, id, n).await;
        projector.project(&s, events.into_iter().map(Delivered::Event).collect()).await.unwrap();
    }
    let odd: Vec<(String, u64)> = projector
        .lookup("t1", "p1", None, 100)
        .await
        .unwrap()
        .views
        .into_iter()
        .map(|(s, _, view)| (s.id().to_owned(), view.count))
        .collect();
    assert_eq!(odd, [("h1".to_owned(), 3), ("h3".to_owned(), 5)]);
    assert!(projector.lookup("t2", "p1", None, 100).await.unwrap().views.is_empty());
    // Paging: one at a time, after the last position.
    let first = projector.lookup("t1", "p1", None, 1).await.unwrap();
    assert_eq!(first.views.len(), 1);
    let next = projector.lookup("t1", "p1", first.next.as_deref(), 1).await.unwrap();
    assert_eq!(next.views.iter().map(|(s, _, _)| s.id()).collect::<Vec<_>>(), ["h3"]);
    let end = projector.lookup("t1", "p1", next.next.as_deref(), 1).await.unwrap();
    assert!(end.views.is_empty() && end.next.is_none());
}

#[tokio::test]
async fn a_view_of_a_newer_schema_is_left_alone_and_one_that_does_not_decode_is_rebuilt() {
    let store = InMemoryStore::new();
    let (s, events) = written(&store, "n", 4).await;
    let v2 = Projector::new(Seen::<2>, store.clone());
    v2.project(&s, vec![Delivered::Event(events[3].clone())]).await.unwrap();
    // Older code meeting the newer view: a retryable error, no overwrite, nothing served.
    let v1 = Projector::new(Seen::<1>, store.clone());
    let refused = v1.project(&s, vec![Delivered::Event(events[0].clone())]).await;
    assert!(matches!(refused, Err(Error::Backend { retryable: true, .. })), "{refused:?}");
    assert!(v1.view(&s).await.is_err());
    assert_eq!(store.get_view("seen", &s).await.unwrap().unwrap().schema_version, 2);

    // A stored view that no longer decodes is a cache miss: rebuilt from the stream.
    let mut stored = store.get_view("seen", &s).await.unwrap().unwrap();
    stored.state = Some(serde_json::json!({ "not": "a tally" }));
    store.put_view(stored, Some(4)).await.unwrap();
    let rebuilt = v2.project(&s, vec![Delivered::Event(events[0].clone())]).await.unwrap();
    assert_eq!((rebuilt.applied, rebuilt.version), (4, 4));
    assert_eq!(v2.view(&s).await.unwrap().unwrap(), (fold(&store, &s).await, 4));
}

/// A projection whose lookup sort key is empty: refused before anything is written.
struct EmptySort;

impl Projection for EmptySort {
    type Event = TallyEvent;
    type View = u64;
    const NAME: &'static str = "empty-sort";
    const CATEGORY: &'static str = "tally";

    fn apply(&self, view: Option<u64>, _: &TallyEvent, _: &EventEnvelope) -> Option<u64> {
        Some(view.unwrap_or(0) + 1)
    }

    fn lookup(&self, _: &u64) -> Option<Lookup> {
        Some(Lookup { partition: "p".into(), sort: String::new() })
    }
}

#[tokio::test]
async fn a_bad_lookup_key_is_refused_and_nothing_is_written() {
    let store = InMemoryStore::new();
    let (s, events) = written(&store, "k", 1).await;
    let refused =
        Projector::new(EmptySort, store.clone()).project(&s, vec![Delivered::Event(events[0].clone())]).await;
    assert!(matches!(refused, Err(Error::InvalidRequest(_))), "{refused:?}");
    assert_eq!(store.get_view("empty-sort", &s).await.unwrap(), None);
}

#[tokio::test]
async fn a_rebuild_folds_the_whole_stream_again_whatever_the_view_recorded() {
    let store = InMemoryStore::new();
    let (s, events) = written(&store, "r", 1_203).await; // more than one read page (500)
    let projector = Projector::new(Seen::<1>, store.clone());
    projector.project(&s, events.into_iter().take(10).map(Delivered::Event).collect()).await.unwrap();
    // A wrong view at the head's version: the projector would see nothing left to apply.
    let stored = store.get_view("seen", &s).await.unwrap().unwrap();
    let wrong = strata_core::projection::StoredView {
        version: 1_203,
        state: Some(serde_json::to_value(Tally::default()).unwrap()),
        ..stored.clone()
    };
    store.put_view(wrong, Some(stored.version)).await.unwrap();
    let idle = projector
        .project(&s, vec![Delivered::Reference { stream: s.clone(), version: 1_203 }])
        .await
        .unwrap();
    assert_eq!(idle.applied, 0);

    let rebuilt = projector.rebuild(&s).await.unwrap();
    assert_eq!((rebuilt.applied, rebuilt.fetched, rebuilt.version), (1_203, 1_203, 1_203));
    assert_eq!(projector.view(&s).await.unwrap(), Some((fold(&store, &s).await, 1_203)));

    let other = StreamId::new("t1", "order", "o-1").unwrap();
    assert!(matches!(projector.rebuild(&other).await, Err(Error::WrongCategory { .. })));
    // A stream without events: the view is removed (no state), at version 0.
    let empty = projector.rebuild(&stream("never")).await.unwrap();
    assert_eq!((empty.applied, empty.version), (0, 0));
    assert_eq!(projector.view(&stream("never")).await.unwrap(), None);
}
