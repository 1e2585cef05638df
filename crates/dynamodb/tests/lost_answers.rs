//! A caller's retry of an append whose answer was lost: the same request (same event ids) again,
//! after other writers' commits and snapshots have landed on top. It must get the first commit back
//! and never store an event id twice, whatever the expectation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::collections::HashSet;

use chrono::{Duration, Utc};
use common::{Fixture, append, bumps, fixture, stream};
use serde_json::json;
use strata_core::{
    AppendRequest, EventStore, ExpectedVersion, IdempotencyRecord, Metadata, NewEvent, Snapshot,
    SnapshotStore, StreamId,
};

fn snapshot(stream: &StreamId, version: u64) -> Snapshot {
    Snapshot {
        stream: stream.clone(),
        version,
        state_schema_version: 1,
        state: json!({}),
        taken_at: Utc::now(),
    }
}

/// Every stored event's (version, id), read forward across pages.
async fn stored(f: &Fixture, s: &StreamId) -> Vec<(u64, String)> {
    let page = f.store.read(s, 1, 1000).await.unwrap();
    assert_eq!(page.next_version, None);
    page.events.iter().map(|e| (e.version, e.event_id.to_string())).collect()
}

/// Versions 1..=n, each id once.
fn assert_each_event_once(events: &[(u64, String)], n: u64) {
    assert_eq!(events.iter().map(|(v, _)| *v).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    assert_eq!(
        events.iter().map(|(_, id)| id).collect::<HashSet<_>>().len() as u64,
        n,
        "an event id stored twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_under_later_commits_and_a_snapshot_returns_the_first_commit_for_every_expectation() {
    let f = fixture().await;
    let s = stream("lost-under");
    let no_stream = append(&s, ExpectedVersion::NoStream, bumps(1, 1));
    let any = append(&s, ExpectedVersion::Any, bumps(2, 2));
    let exists = append(&s, ExpectedVersion::StreamExists, bumps(4, 1));
    let exact = append(&s, ExpectedVersion::Exact(4), bumps(5, 1));
    let mut first = Vec::new();
    for request in [&no_stream, &any, &exists, &exact] {
        first.push(f.store.append(request.clone()).await.unwrap());
    }
    assert_eq!(
        first.iter().map(|c| (c.first_version, c.last_version)).collect::<Vec<_>>(),
        [(1, 1), (2, 3), (4, 4), (5, 5)]
    );
    // Before the callers retry, another writer commits and a snapshot is taken on top.
    f.store.append(append(&s, ExpectedVersion::Exact(5), bumps(6, 1))).await.unwrap();
    f.store.save_snapshot(snapshot(&s, 6)).await.unwrap();
    f.counter.reset();

    // The same requests again, as a caller sends them when the answer never arrived.
    for (request, first) in
        [&any, &exists, &exact, &no_stream].into_iter().zip([&first[1], &first[2], &first[3], &first[0]])
    {
        assert_eq!(&f.store.append(request.clone()).await.unwrap(), first, "{}", request.expected);
    }
    let counts = f.counter.take();
    // Any: the look-back's pages of 4 items (snapshot, commits 6, 5, 4) and 8 (commit 2: ours);
    // StreamExists: its first page; Exact(4): the head, then the commit at 5 (GetItem); NoStream:
    // the put at 1, refused by our own commit.
    assert_eq!(
        (
            counts.calls("Query"),
            counts.calls("GetItem"),
            counts.calls("PutItem"),
            counts.calls("TransactWriteItems")
        ),
        (4, 1, 1, 0),
        "{counts}"
    );
    assert_eq!(counts.items_written(), 0, "nothing written: {counts}");
    assert_each_event_once(&stored(&f, &s).await, 6);
}

/// Sets the send time (`w`) of the commit starting at `version`, as if it had been sent at `at`.
async fn set_written_at(f: &Fixture, s: &StreamId, version: u64, at: chrono::DateTime<Utc>) {
    use aws_sdk_dynamodb::types::AttributeValue;
    f.store
        .client()
        .update_item()
        .table_name(f.store.table())
        .key("pk", AttributeValue::S(strata_dynamodb::keys::stream_pk(s)))
        .key("sk", AttributeValue::S(format!("{version:020}")))
        .update_expression(format!("SET {} = :at", strata_dynamodb::item::names::WRITTEN_AT))
        .expression_attribute_values(":at", AttributeValue::N(at.timestamp_millis().to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_retry_of_an_old_request_on_top_does_not_end_the_look_back_early() {
    let f = fixture().await;
    let s = stream("late-retry");
    f.store.append(append(&s, ExpectedVersion::NoStream, bumps(1, 1))).await.unwrap();
    let ours = append(&s, ExpectedVersion::Any, bumps(2, 1));
    let first = f.store.append(ours.clone()).await.unwrap();
    // Another writer's request, built ten minutes ago, is retried now and lands on top of ours.
    let old = Metadata { committed_at: Utc::now() - Duration::minutes(10), ..Metadata::new("late") };
    let late = NewEvent::new("Bumped", 1, json!({ "n": 3 }), old);
    f.store.append(append(&s, ExpectedVersion::Any, vec![late])).await.unwrap();

    assert_eq!(f.store.append(ours).await.unwrap(), first, "our retry finds our commit under theirs");
    assert_each_event_once(&stored(&f, &s).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_look_back_pages_through_recent_commits_and_stops_at_ones_built_before_the_request() {
    let f = fixture().await;
    let s = stream("look-back");
    // Twelve commits built and sent ten minutes ago: older than any request of now. (Their sending
    // time is set back by hand, as the store stamps it when it sends.)
    let old = Metadata { committed_at: Utc::now() - Duration::minutes(10), ..Metadata::new("import") };
    for version in 1..=12u64 {
        let event = NewEvent::new("Bumped", 1, json!({ "n": version }), old.clone());
        f.store.append(append(&s, ExpectedVersion::Exact(version - 1), vec![event])).await.unwrap();
        set_written_at(&f, &s, version, old.committed_at).await;
    }
    f.counter.reset();

    let request = append(&s, ExpectedVersion::Any, bumps(13, 1));
    let first = f.store.append(request.clone()).await.unwrap();
    assert_eq!(first.first_version, 13);
    let counts = f.counter.take();
    // The head is older than the request by more than the margin: the look-back ends at once.
    assert_eq!((counts.calls("Query"), counts.calls("PutItem"), counts.total_calls()), (1, 1, 2), "{counts}");

    // Nine commits and a snapshot land on top of ours: the look-back's pages of 4, then 8 items
    // reach it in the second.
    for version in 14..=22u64 {
        f.store.append(append(&s, ExpectedVersion::Exact(version - 1), bumps(version, 1))).await.unwrap();
    }
    f.store.save_snapshot(snapshot(&s, 22)).await.unwrap();
    f.counter.reset();
    assert_eq!(f.store.append(request).await.unwrap(), first);
    let counts = f.counter.take();
    assert_eq!((counts.calls("Query"), counts.write_calls()), (2, 0), "{counts}");
    assert_each_event_once(&stored(&f, &s).await, 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_any_append_with_an_idempotency_record_returns_its_commit_instead_of_a_taken_key() {
    let f = fixture().await;
    let s = stream("lost-keyed");
    f.store.append(append(&s, ExpectedVersion::NoStream, bumps(1, 1))).await.unwrap();
    let record = IdempotencyRecord {
        tenant: "acme".into(),
        key: "k-lost".into(),
        request_hash: "h".into(),
        outcome: json!({ "version": 2 }),
        expires_at: Utc::now() + Duration::hours(1),
    };
    let request =
        AppendRequest { idempotency: Some(record), ..append(&s, ExpectedVersion::Any, bumps(2, 1)) };
    let first = f.store.append(request.clone()).await.unwrap();
    f.store.append(append(&s, ExpectedVersion::Any, bumps(3, 1))).await.unwrap();
    f.counter.reset();

    assert_eq!(f.store.append(request).await.unwrap(), first);
    assert_eq!(f.counter.take().write_calls(), 0);
    assert_each_event_once(&stored(&f, &s).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_carrying_old_commit_times_costs_one_look_back_query() {
    let f = fixture().await;
    let s = stream("import");
    // Twelve commits sent ten minutes ago, and now an import of events decided even earlier.
    let long_ago = Utc::now() - Duration::minutes(10);
    for version in 1..=12u64 {
        f.store.append(append(&s, ExpectedVersion::Exact(version - 1), bumps(version, 1))).await.unwrap();
        set_written_at(&f, &s, version, long_ago).await;
    }
    let imported = Metadata { committed_at: long_ago - Duration::days(30), ..Metadata::new("import") };
    let event = NewEvent::new("Bumped", 1, json!({ "n": 13 }), imported);
    f.counter.reset();
    let commit = f.store.append(append(&s, ExpectedVersion::Any, vec![event])).await.unwrap();
    assert_eq!(commit.first_version, 13);
    let counts = f.counter.take();
    // Built now (its event id says so): the head, sent long before, ends the look-back at once.
    assert_eq!((counts.calls("Query"), counts.calls("PutItem")), (1, 1), "{counts}");
}

/// A commit PutItem that landed, but whose answer (an SDK retry's, say) is DynamoDB's
/// `TransactionConflictException`: the exception carries no item, so the store must look before
/// calling it a conflict, or the repository would decide and commit the command a second time.
mod landed_then_contended {

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::config::interceptors::{
        BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    };
    use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
    use aws_sdk_dynamodb::error::BoxError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::config_bag::{Storable, StoreReplace};
    use serde_json::{Value, json};
    use strata_core::fixture::tally::{Tally, TallyCommand};
    use strata_core::{CommandContext, EventStore, Repository, StreamId};
    use strata_dynamodb::{DynamoStore, TableSpec};

    /// Lets the first commit PutItem reach the table, then answers it with a TransactionConflictException.
    #[derive(Debug, Clone, Default)]
    struct LandedThenContended {
        done: Arc<AtomicBool>,
    }

    #[derive(Debug)]
    struct Replace;

    impl Storable for Replace {
        type Storer = StoreReplace<Self>;
    }

    impl Intercept for LandedThenContended {
        fn name(&self) -> &'static str {
            "strata-tests::LandedThenContended"
        }

        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _components: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let request = context.request();
            let put = request.headers().get("x-amz-target") == Some("DynamoDB_20120810.PutItem");
            let body: Value =
                request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
            if put && body["Item"]["kind"]["S"] == "commit" && !self.done.swap(true, Ordering::SeqCst) {
                cfg.interceptor_state().store_put(Replace);
            }
            Ok(())
        }

        fn modify_before_deserialization(
            &self,
            context: &mut BeforeDeserializationInterceptorContextMut<'_>,
            _components: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            if cfg.load::<Replace>().is_some() {
                let body = json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                    "message": "Transaction is ongoing for the item",
                });
                let mut response = HttpResponse::new(400u16.try_into()?, SdkBody::from(body.to_string()));
                response.headers_mut().insert("content-type", "application/x-amz-json-1.0");
                *context.response_mut() = response;
            }
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_landed_commit_answered_with_a_transaction_conflict_is_not_committed_twice() {
        let sdk = strata_testing::sdk().await;
        let faults = LandedThenContended::default();
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(faults.clone()).build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let table = strata_testing::unique("strata-test");
        TableSpec::strata().create(&client, &table, Duration::from_secs(30)).await.unwrap();
        strata_testing::stream_enabled(&sdk, &table).await.unwrap();
        let store = DynamoStore::new(client, table);
        let repo = Repository::<Tally, _>::new(store.clone());
        let s = StreamId::new("acme", "tally", "landed").unwrap();

        let outcome =
            repo.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await.unwrap();
        assert!(faults.done.load(Ordering::SeqCst), "the fault was injected");
        assert_eq!(outcome.version, 1, "answered with the commit that landed");
        let events = store.read(&s, 1, 10).await.unwrap().events;
        assert_eq!(events.len(), 1, "the command was committed once, not decided again");
        assert_eq!(events[0].event_id, outcome.event_ids[0]);
    }
}
