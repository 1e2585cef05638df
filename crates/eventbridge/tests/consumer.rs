//! The SQS consumer on the in-memory store: grouping by stream, ignoring other categories, reporting
//! exactly the messages that failed, typed decoding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use strata_core::fixture::tally::{Tally, TallyCommand, TallyEvent, TallyProjection};
use strata_core::projection::Projector;
use strata_core::{CommandContext, EventStore, InMemoryStore, Repository, StreamId, UpcasterChain};
use strata_eventbridge::{Detail, decode_typed, project_batch};

fn message(id: &str, body: Value) -> Value {
    json!({ "messageId": id, "receiptHandle": "h", "body": body.to_string(), "eventSource": "aws:sqs" })
}

fn eventbridge(detail: &Detail) -> Value {
    json!({ "version": "0", "id": "x", "detail-type": detail.event_type, "source": "s", "account": "123456789012",
            "time": "2026-11-23T10:00:00Z", "region": "us-east-1", "resources": [], "detail": detail })
}

#[tokio::test]
async fn a_batch_applies_each_stream_once_ignores_other_categories_and_reports_only_bad_messages() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(store.clone());
    let (a, b) = (StreamId::new("t", "tally", "a").unwrap(), StreamId::new("t", "tally", "b").unwrap());
    for s in [&a, &b] {
        repo.execute(s, &TallyCommand::Bump { times: 3 }, CommandContext::default()).await.unwrap();
    }
    let mut details: Vec<Detail> = Vec::new();
    for s in [&a, &b] {
        details.extend(store.read(s, 1, 10).await.unwrap().events.iter().map(Detail::full));
    }
    let mut other = details[0].clone();
    other.stream = StreamId::new("t", "order", "o-1").unwrap();
    let mut records: Vec<Value> =
        details.iter().enumerate().map(|(i, d)| message(&format!("m{i}"), eventbridge(d))).collect();
    records.push(message("dup", eventbridge(&details[1])));
    records.push(message("other", eventbridge(&other)));
    records.push(message("bad", json!({ "detail-type": "x" })));
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();

    let projector = Projector::new(TallyProjection, store.clone());
    let (response, outcome) = project_batch(&projector, event).await.unwrap();
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["bad"]);
    assert_eq!((outcome.applied, outcome.duplicates, outcome.ignored, outcome.failed), (6, 0, 1, 1));
    for s in [&a, &b] {
        assert_eq!(projector.view(s).await.unwrap().unwrap().0.seen, [1, 2, 3]);
    }
}

#[tokio::test]
async fn typed_decoding_upcasts_and_refuses_claim_checks() {
    let store = InMemoryStore::new();
    let s = StreamId::new("t", "tally", "c").unwrap();
    Repository::<Tally, _>::new(store.clone())
        .execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default())
        .await
        .unwrap();
    let envelope = store.read(&s, 1, 1).await.unwrap().events.remove(0);
    let event: TallyEvent =
        decode_typed(Detail::full(&envelope), None, &UpcasterChain::empty()).await.unwrap();
    assert_eq!(event, TallyEvent::Bumped { n: 1 });
    let reference =
        decode_typed::<TallyEvent>(Detail::claim_check(&envelope), None, &UpcasterChain::empty()).await;
    assert!(reference.is_err());
}
