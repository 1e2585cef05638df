//! The TransactWriteItems paths: commands with an idempotency key, and atomic multi-stream appends.
//!
//! The emulator's transactions are unreliable under concurrent calls (see the design's Emulator
//! section), so every test here holds one lock and they run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use common::{append, bumps, fixture, stream};
use strata_core::fixture::tally::{Tally, TallyCommand};
use strata_core::{
    CommandContext, Error, EventStore, ExpectedVersion, IdempotencyRecord, IdempotencyStore, Repository,
};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn keyed(key: &str) -> CommandContext {
    CommandContext { idempotency_key: Some(key.into()), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_returns_the_first_outcome_and_writes_nothing() {
    let _serial = SERIAL.lock().await;
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone());
    let s = stream("idem");
    repo.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await.unwrap();
    f.counter.reset();

    let first = repo.execute(&s, &TallyCommand::Bump { times: 2 }, keyed("k-1")).await.unwrap();
    let counts = f.counter.take();
    assert_eq!(
        (counts.calls("Query"), counts.calls("TransactWriteItems"), counts.total_calls()),
        (1, 1, 2),
        "no key lookup first: load, commit + record in one transaction: {counts}"
    );

    // The repeat is decided again, its transaction fails on the key's record, and the record read
    // then answers it; nothing is written.
    let again = repo.execute(&s, &TallyCommand::Bump { times: 2 }, keyed("k-1")).await.unwrap();
    assert_eq!(again, first);
    let counts = f.counter.take();
    assert_eq!(
        (
            counts.calls("Query"),
            counts.calls("TransactWriteItems"),
            counts.calls("GetItem"),
            counts.items_written()
        ),
        (1, 1, 1, 0),
        "{counts}"
    );
    assert_eq!(f.store.head(&s).await.unwrap(), 3);

    let reused = repo.execute(&s, &TallyCommand::Bump { times: 5 }, keyed("k-1")).await;
    assert!(matches!(reused, Err(e) if matches!(e.as_error(), Some(Error::IdempotencyKeyReused { .. }))));
    assert_eq!(f.store.head(&s).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_record_is_taken_once_until_it_expires() {
    let _serial = SERIAL.lock().await;
    let f = fixture().await;
    let record = |expires_in: chrono::Duration| IdempotencyRecord {
        tenant: "acme".into(),
        key: "k#with#hashes".into(),
        request_hash: "h".into(),
        outcome: serde_json::json!({"version": 1}),
        expires_at: chrono::Utc::now() + expires_in,
    };
    f.store.put_record(record(chrono::Duration::hours(1))).await.unwrap();
    let taken = f.store.put_record(record(chrono::Duration::hours(1))).await;
    assert!(matches!(taken, Err(Error::IdempotencyKeyExists { .. })));
    let found = f.store.get_record("acme", "k#with#hashes").await.unwrap().unwrap();
    assert_eq!(found.outcome, serde_json::json!({"version": 1}));
    assert!(f.store.get_record("other", "k#with#hashes").await.unwrap().is_none(), "keys are per tenant");

    // An expired record (TTL deletes late) is no record, and its key can be taken again.
    let other_key = IdempotencyRecord { key: "old".into(), ..record(chrono::Duration::seconds(-5)) };
    f.store.put_record(other_key.clone()).await.unwrap();
    assert!(f.store.get_record("acme", "old").await.unwrap().is_none());
    f.store
        .put_record(IdempotencyRecord { key: "old".into(), ..record(chrono::Duration::hours(1)) })
        .await
        .unwrap();
    assert!(f.store.get_record("acme", "old").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_stream_append_is_atomic_and_a_failed_condition_names_the_stream() {
    let _serial = SERIAL.lock().await;
    let f = fixture().await;
    let (a, b, c) = (stream("tx-a"), stream("tx-b"), stream("tx-c"));
    f.store.append(append(&b, ExpectedVersion::NoStream, bumps(1, 2))).await.unwrap();

    let commits = f
        .store
        .append_all(vec![
            append(&a, ExpectedVersion::NoStream, bumps(1, 1)),
            append(&b, ExpectedVersion::Exact(2), bumps(3, 2)),
        ])
        .await
        .unwrap();
    assert_eq!(
        commits.iter().map(|c| (c.first_version, c.last_version)).collect::<Vec<_>>(),
        [(1, 1), (3, 4)]
    );

    // c is new, but a is not: the whole transaction fails, naming a, and c stays empty.
    f.counter.reset();
    let result = f
        .store
        .append_all(vec![
            append(&c, ExpectedVersion::NoStream, bumps(1, 1)),
            append(&a, ExpectedVersion::NoStream, bumps(1, 1)),
        ])
        .await;
    match result {
        Err(Error::Conflict { stream, .. }) => assert_eq!(stream, a),
        other => panic!("expected a conflict on {a}, got {other:?}"),
    }
    assert_eq!(f.counter.take().calls("TransactWriteItems"), 1);
    assert_eq!(f.store.head(&c).await.unwrap(), 0);
    assert_eq!(f.store.head(&a).await.unwrap(), 1);
    assert_eq!(f.store.head(&b).await.unwrap(), 4);

    // A stale expectation is caught by the head check (one Query), before the transaction.
    let stale = f.store.append_all(vec![append(&b, ExpectedVersion::Exact(2), bumps(5, 1))]).await;
    assert!(matches!(stale, Err(Error::Conflict { actual: Some(4), .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_uses_up_to_100_actions_and_refuses_more_before_any_call() {
    let _serial = SERIAL.lock().await;
    let f = fixture().await;
    let hundred: Vec<_> = (0..100)
        .map(|i| append(&stream(&format!("many-{i}")), ExpectedVersion::NoStream, bumps(1, 1)))
        .collect();
    let commits = f.store.append_all(hundred).await.unwrap();
    assert_eq!(commits.len(), 100);
    assert_eq!(f.store.head(&stream("many-99")).await.unwrap(), 1);

    f.counter.reset();
    let too_many: Vec<_> = (0..101)
        .map(|i| append(&stream(&format!("more-{i}")), ExpectedVersion::NoStream, bumps(1, 1)))
        .collect();
    assert!(matches!(f.store.append_all(too_many).await, Err(Error::InvalidRequest(_))));
    let twice = vec![
        append(&stream("same"), ExpectedVersion::NoStream, bumps(1, 1)),
        append(&stream("same"), ExpectedVersion::NoStream, bumps(1, 1)),
    ];
    assert!(matches!(f.store.append_all(twice).await, Err(Error::InvalidRequest(_))));
    assert!(matches!(f.store.append_all(vec![]).await, Err(Error::InvalidRequest(_))));
    assert_eq!(f.counter.take().total_calls(), 0);
}
