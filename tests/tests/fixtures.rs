//! Real-shaped AWS event JSON (tests/fixtures): what Lambda hands the publisher (a DynamoDB stream
//! batch) and the projector (an SQS batch of EventBridge events), and the EventBridge event itself.
//! Each round-trips through the `aws_lambda_events` types and decodes through Strata's decoders.
//!
//! The fixtures were captured from the emulator by the ignored test at the end (then given a real
//! account id where the emulator leaves it out); regenerate with
//! `cargo test -p strata-tests --test fixtures -- --ignored` against an emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strata_eventbridge::{Detail, decode_batch, decode_detail, decode_message};

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses, serializes and parses again: nothing the type models is lost or changed.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(json: &str) -> T {
    let parsed: T = serde_json::from_str(json).unwrap();
    let again: T = serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
    assert_eq!(parsed, again);
    parsed
}

#[test]
fn a_dynamodb_stream_batch_round_trips_and_decodes_to_the_committed_events() {
    let event: StreamEvent = round_trip(&fixture("dynamodb-stream-event.json"));
    let decoded = decode_batch(&event);
    let summary: Vec<(String, Vec<(String, u64)>)> = decoded
        .into_iter()
        .map(|(seq, events)| {
            (seq.unwrap(), events.unwrap().into_iter().map(|e| (e.event_type, e.version)).collect())
        })
        .collect();
    let events: Vec<&Vec<(String, u64)>> = summary.iter().map(|(_, e)| e).collect();
    assert_eq!(
        events,
        [
            &vec![],                              // the customer's data key item
            &vec![],                              // the customer's stream index item
            &vec![("OrderPlaced".to_owned(), 1)], // a single-event commit
            &vec![("ItemAdded".to_owned(), 2)],   // the next commit
            &vec![("Bumped".to_owned(), 1), ("Bumped".to_owned(), 2), ("Bumped".to_owned(), 3)], // one commit, three events
            &vec![], // an idempotency record
            &vec![], // its removal (TTL expiry)
        ]
    );
    // Personal fields travel sealed.
    let text = fixture("dynamodb-stream-event.json");
    assert!(text.contains("$enc") && !text.contains("Ada Lovelace"));
}

#[test]
fn an_eventbridge_event_round_trips_with_a_strata_detail() {
    let text = fixture("eventbridge-event.json");
    let event: EventBridgeEvent<Detail> = round_trip(&text);
    assert_eq!(event.detail_type, "OrderPlaced");
    assert_eq!(event.account.as_deref(), Some("123456789012"));
    assert_eq!(
        (event.detail.stream.to_string(), event.detail.version),
        ("acme/order-o-fixture".to_owned(), 1)
    );
    assert!(event.detail.payload.unwrap()["customer_name"]["$enc"].is_object(), "sealed on the bus");
    let untyped: EventBridgeEvent<Value> = round_trip(&text);
    assert_eq!(untyped.source, event.source);
    assert_eq!(decode_detail(&text).unwrap().detail.event_id, event.detail.event_id);
}

#[test]
fn an_sqs_batch_of_eventbridge_events_round_trips_and_decodes() {
    let event: SqsEvent = round_trip(&fixture("sqs-event.json"));
    let details: Vec<Detail> = event.records.iter().map(|m| decode_message(m).unwrap()).collect();
    let positions: Vec<(String, u64)> = details.iter().map(|d| (d.event_type.clone(), d.version)).collect();
    assert_eq!(positions, [("OrderPlaced".to_owned(), 1), ("ItemAdded".to_owned(), 2)]);
    assert_eq!(event.records[0].event_source.as_deref(), Some("aws:sqs"));
}

/// Captures the fixtures from the emulator (run with `-- --ignored`; needs AWS_ENDPOINT_URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regenerates tests/fixtures from the emulator"]
async fn capture_fixtures() {
    use strata_core::fixture::tally::{Tally, TallyCommand};
    use strata_core::{CommandContext, Repository, StreamId};
    use strata_eventbridge::{EventBridgePublisher, StreamRelay};
    use strata_orders::{Order, OrderCommand, samples::place_order};
    use strata_tests::{Pipeline, stream_event};

    let p = Pipeline::new().await;
    let orders = Repository::<Order, _>::new(p.store.clone()).with_cipher(p.cipher());
    let order = StreamId::new("acme", "order", "o-fixture").unwrap();
    orders.execute(&order, &place_order("cust-fixture"), CommandContext::default()).await.unwrap();
    let add = OrderCommand::AddItem { sku: "BOOK".into(), quantity: 2, unit_price_minor: 1250 };
    orders.execute(&order, &add, CommandContext::default()).await.unwrap();
    let tally = Repository::<Tally, _>::new(p.store.clone());
    let bumps = StreamId::new("acme", "tally", "t-fixture").unwrap();
    tally.execute(&bumps, &TallyCommand::Bump { times: 3 }, CommandContext::default()).await.unwrap();
    // An item that goes away, as TTL expiry removes idempotency records.
    let key = |s: &str| aws_sdk_dynamodb::types::AttributeValue::S(s.into());
    p.store
        .client()
        .put_item()
        .table_name(p.store.table())
        .item("pk", key("acme#I#k1"))
        .item("sk", key("IDEM"))
        .item("kind", key("idempotency"))
        .send()
        .await
        .unwrap();
    p.store
        .client()
        .delete_item()
        .table_name(p.store.table())
        .key("pk", key("acme#I#k1"))
        .key("sk", key("IDEM"))
        .send()
        .await
        .unwrap();

    // stream_records waits for what the table holds; the removal is waited for here.
    let mut records = strata_testing::eventually("the REMOVE record", || async {
        let records = p.stream_records().await;
        if records.iter().any(|r| r["eventName"] == "REMOVE") { Ok(records) } else { Err("absent".into()) }
    })
    .await;
    // As Lambda delivers them on AWS: record format 1.1, TTL removals by the DynamoDB service.
    for record in &mut records {
        record["eventVersion"] = Value::from("1.1");
        if record["eventName"] == "REMOVE" {
            record["userIdentity"] =
                serde_json::json!({ "type": "Service", "principalId": "dynamodb.amazonaws.com" });
        }
    }
    let write = |name: &str, value: &Value| {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(path, serde_json::to_string_pretty(value).unwrap() + "\n").unwrap();
    };
    write("dynamodb-stream-event.json", &serde_json::json!({ "Records": records }));
    let relay =
        StreamRelay::new(EventBridgePublisher::new(p.eventbridge.clone(), &p.bus, &p.source).unwrap());
    relay.handle(stream_event(&records)).await.unwrap();
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while messages.len() < 5 {
        assert!(std::time::Instant::now() < deadline, "{} of 5 messages in 60 s", messages.len());
        messages.extend(p.receive().await);
    }
    // moto leaves out the account EventBridge stamps on every event (LocalStack stamps its own
    // 000000000000): the fixture carries an AWS-shaped one.
    let with_account = |body: &str| {
        let mut event: Value = serde_json::from_str(body).unwrap();
        event["account"] = Value::from("123456789012");
        event
    };
    // SQS bodies stay as delivered (their MD5 must match); `account` is optional to the decoders.
    // One message per event (delivery is at-least-once), in stream order (a standard queue has none).
    let mut orders_only: Vec<Value> =
        messages.into_iter().filter(|m| m["body"].as_str().unwrap().contains("\"order\"")).collect();
    let event_of = |m: &Value| {
        let body: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
        (body["detail"]["stream"].to_string(), body["detail"]["version"].as_u64())
    };
    orders_only.sort_by_key(event_of);
    orders_only.dedup_by_key(|m| event_of(m));
    write("eventbridge-event.json", &with_account(orders_only[0]["body"].as_str().unwrap()));
    write("sqs-event.json", &serde_json::json!({ "Records": orders_only }));
}
