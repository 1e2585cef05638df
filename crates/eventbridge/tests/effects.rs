//! Effects run once per event: duplicates acknowledged, a claim held elsewhere left to retry, a
//! failed effect released for the next delivery, a stream's later events held behind a failed one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use chrono::Utc;
use strata_core::fixture::tally::{Tally, TallyCommand, TallyEvent};
use strata_core::{
    BoxError, CommandContext, EventEnvelope, EventStore, IdempotencyRecord, IdempotencyStore, InMemoryStore,
    RESERVED_KEY_PREFIX, Repository, StreamId,
};
use strata_eventbridge::effects::{Consumer, Delivery, Effects};
use strata_eventbridge::{sqs_event, sqs_message};

/// Records each effect; fails the versions listed in `failing` (once each).
#[derive(Default)]
struct Recorder {
    done: Mutex<Vec<u64>>,
    failing: Mutex<Vec<u64>>,
}

impl Consumer for Recorder {
    type Event = TallyEvent;
    const NAME: &'static str = "recorder";
    const CATEGORY: &'static str = "tally";

    async fn handle(&self, _: TallyEvent, delivery: &Delivery) -> Result<(), BoxError> {
        let mut failing = self.failing.lock().unwrap();
        if let Some(at) = failing.iter().position(|v| *v == delivery.version) {
            failing.remove(at);
            return Err("the mail server is down".into());
        }
        self.done.lock().unwrap().push(delivery.version);
        Ok(())
    }
}

async fn events(store: &InMemoryStore, times: u32) -> Vec<EventEnvelope> {
    let s = StreamId::new("acme", "tally", "t-1").unwrap();
    let repo = Repository::<Tally, _>::new(store.clone());
    repo.execute(&s, &TallyCommand::Bump { times }, CommandContext::default()).await.unwrap();
    store.read(&s, 1, 100).await.unwrap().events
}

fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

#[tokio::test]
async fn a_failed_effect_is_released_and_holds_back_its_streams_later_events() {
    let store = InMemoryStore::new();
    let events = events(&store, 3).await;
    let effects = Effects::new(Recorder::default(), store.clone());
    effects.consumer().failing.lock().unwrap().push(2);
    let batch = || sqs_event(events.iter().map(|e| sqs_message(e, &format!("m-{}", e.version))).collect());

    let (response, outcome) = effects.handle_batch(batch()).await.unwrap();
    assert_eq!(failed_ids(&response), ["m-2", "m-3"], "3 waits behind 2");
    assert_eq!((outcome.done, outcome.failed), (1, 2));
    // The failed claim was released: the redelivery runs 2 and 3 at once, 1 is a duplicate.
    let (response, outcome) = effects.handle_batch(batch()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((outcome.done, outcome.duplicates), (2, 1));
    assert_eq!(*effects.consumer().done.lock().unwrap(), [1, 2, 3]);
}

#[tokio::test]
async fn a_claim_held_by_another_delivery_is_left_to_retry() {
    let store = InMemoryStore::new();
    let events = events(&store, 1).await;
    let claim = IdempotencyRecord {
        tenant: "acme".into(),
        key: format!("{RESERVED_KEY_PREFIX}effect/recorder/claim/tally-t-1/1"),
        request_hash: "another delivery".into(),
        outcome: serde_json::json!({}),
        expires_at: Utc::now() + chrono::Duration::minutes(2),
    };
    store.put_record(claim).await.unwrap();
    let effects = Effects::new(Recorder::default(), store.clone());

    let (response, outcome) =
        effects.handle_batch(sqs_event(vec![sqs_message(&events[0], "m-1")])).await.unwrap();

    assert_eq!(failed_ids(&response), ["m-1"]);
    assert_eq!((outcome.done, outcome.failed), (0, 1));
    assert!(effects.consumer().done.lock().unwrap().is_empty(), "never run alongside the holder");
    // Its release is the holder's alone: another hash leaves it.
    let key = format!("{RESERVED_KEY_PREFIX}effect/recorder/claim/tally-t-1/1");
    store.delete_record("acme", &key, "not the holder").await.unwrap();
    assert!(store.get_record("acme", &key).await.unwrap().is_some());
}
