//! The SQS consumer on the in-memory store: grouping by stream, ignoring other categories, reporting
//! exactly the messages that failed, typed decoding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use strata_core::fixture::tally::{Tally, TallyCommand, TallyEvent, TallyProjection};
use strata_core::projection::Projector;
use strata_core::{
    BoxError, CommandContext, Error, EventEnvelope, EventStore, FieldCipher, InMemoryStore, Metadata,
    NewEvent, PersonalData, Repository, StreamId, UpcasterChain,
};
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
    let (response, outcome) = project_batch(&projector, event.clone()).await.unwrap();
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["bad"]);
    // "dup" repeats a's version 2 within the batch: applied once, counted as a duplicate.
    assert_eq!((outcome.applied, outcome.duplicates, outcome.ignored, outcome.failed), (6, 1, 1, 1));
    for s in [&a, &b] {
        assert_eq!(projector.view(s).await.unwrap().unwrap().0.seen, [1, 2, 3]);
    }
    // The same batch again (SQS redelivers): every event is already in the views, and "dup" is
    // still a duplicate within the batch: 6 + 1.
    let (_, again) = project_batch(&projector, event).await.unwrap();
    assert_eq!((again.applied, again.duplicates, again.ignored, again.failed), (0, 7, 1, 1));
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

#[tokio::test]
async fn typed_decoding_fails_on_an_opened_value_without_quoting_it() {
    let cipher = FieldCipher::local();
    let stream = StreamId::new("t", "tally", "d").unwrap();
    let mut event =
        NewEvent::new("Counted", 1, json!({ "value": 1, "name": "Ada Lovelace" }), Metadata::new("c"));
    let personal = PersonalData::new("cust-1", ["/name"]);
    cipher.seal("t", &event.event_id.to_string(), &mut event.payload, &personal).await.unwrap();
    let detail = Detail::full(&EventEnvelope::committed(stream, 1, event));
    // An upcaster whose message quotes the (opened) payload it was given.
    let upcasters = UpcasterChain::builder()
        .upcast("Counted", 1, "Bumped", 1, |payload: Value| -> Result<Value, BoxError> {
            Err(format!("cannot upcast {payload}").into())
        })
        .build()
        .unwrap();
    let error = decode_typed::<TallyEvent>(detail, Some(&cipher), &upcasters).await.unwrap_err();
    assert!(matches!(&error, Error::Upcast { event_type, version: 1, .. } if event_type == "Counted"));
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    assert!(!text.contains("Lovelace"), "plaintext in {text:?}");
}

#[tokio::test]
async fn typed_decoding_never_opens_under_a_key_forgotten_in_another_process() {
    use strata_core::crypto::{CacheLimits, CachedKeys};
    use strata_core::fixture::profile::{Profile, ProfileCommand, ProfileEvent};
    use strata_core::{KeyProvider, LocalKeys, Personal};
    // Two processes over one key table: the consumer's caches the key, another forgets the subject.
    let shared = LocalKeys::new();
    let consumer = FieldCipher::new(CachedKeys::new(shared.clone(), CacheLimits::default()));
    let admin = CachedKeys::new(shared.clone(), CacheLimits::default());
    let store = InMemoryStore::new();
    let stream = StreamId::new("t", "profile", "p-1").unwrap();
    let rename = ProfileCommand::Rename { subject: "s-1".into(), names: vec!["Ada".into()] };
    Repository::<Profile, _>::new(store.clone())
        .with_cipher(consumer.clone())
        .execute(&stream, &rename, CommandContext::default())
        .await
        .unwrap();
    let event = store.read(&stream, 1, 1).await.unwrap().events.remove(0);
    let decoded =
        decode_typed::<ProfileEvent>(Detail::full(&event), Some(&consumer), &UpcasterChain::empty())
            .await
            .unwrap();
    assert_eq!(decoded, ProfileEvent::Renamed { subject: "s-1".into(), name: Personal::Known("Ada".into()) });

    admin.forget("t", "s-1").await.unwrap();
    let decoded =
        decode_typed::<ProfileEvent>(Detail::full(&event), Some(&consumer), &UpcasterChain::empty())
            .await
            .unwrap();
    assert_eq!(
        decoded,
        ProfileEvent::Renamed { subject: "s-1".into(), name: Personal::Redacted },
        "a consumer that copied the name into a command would re-seal erased data"
    );
}
