//! What the APIs log when a request fails on an opened payload: the error and its sources, without
//! the personal values the payload held. The logs are captured from the tracing subscriber, as the
//! Lambda's JSON logs would carry them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use lambda_http::{Body, Response};
use serde_json::{Value, json};
use strata_core::projection::Projector;
use strata_core::{BoxError, FieldCipher, InMemoryStore, Repository, UpcasterChain};
use strata_lambda::{CommandApi, QueryApi, Tenancy};
use strata_orders::samples::address;
use strata_orders::{Order, OrderSummaries, upcasters};
use strata_testing::apigw_v2_event as apigw;
use tracing_subscriber::fmt::MakeWriter;

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn status(response: &Response<Body>) -> u16 {
    response.status().as_u16()
}

fn request(method: &str, path: &str, body: Option<&Value>) -> lambda_http::Request {
    let body = body.map(Value::to_string);
    let event = apigw(method, path, "", &[("content-type", "application/json")], body.as_deref());
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// Code deployed later than the order was placed: an upcaster of `OrderPlaced` v1 that fails with a
/// message quoting the (opened) payload it was given.
fn failing_upcasters() -> UpcasterChain {
    UpcasterChain::builder()
        .upcast("OrderPlaced", 1, "OrderPlaced", 2, |payload: Value| -> Result<Value, BoxError> {
            Err(format!("cannot upcast {payload}").into())
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_request_failing_on_an_opened_payload_logs_no_personal_value() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt().with_writer(logs.clone()).finish();
    // A current-thread runtime: everything below runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (store, cipher, tenancy) =
        (InMemoryStore::new(), FieldCipher::local(), Tenancy::Fixed("acme".into()));
    let placing = CommandApi::new(tenancy.clone())
        .with_aggregate(
            Repository::<Order, _>::new(store.clone())
                .with_cipher(cipher.clone())
                .with_upcasters(upcasters()),
        )
        .unwrap();
    let place = json!({ "customer_id": "c-1", "customer_name": "Ada Lovelace",
                        "customer_email": "ada@example.com", "shipping_address": address(), "currency": "GBP" });
    let placed = placing.handle(request("POST", "/order/o-1/commands/place_order", Some(&place))).await;
    assert_eq!(status(&placed), 200);

    let repo = || {
        Repository::<Order, _>::new(store.clone())
            .with_cipher(cipher.clone())
            .with_upcasters(failing_upcasters())
    };
    let commands = CommandApi::new(tenancy.clone()).with_aggregate(repo()).unwrap();
    let queries = QueryApi::new(tenancy)
        .with_aggregate(repo())
        .unwrap()
        .with_projection(Projector::new(OrderSummaries, store.clone()).with_cipher(cipher.clone()))
        .unwrap();
    let add = json!({ "sku": "BOOK", "quantity": 1, "unit_price_minor": 500 });
    let added = commands.handle(request("POST", "/order/o-1/commands/add_item", Some(&add))).await;
    let state = queries.handle(request("GET", "/order/o-1", None)).await;
    let events = queries.handle(request("GET", "/order/o-1/events", None)).await;
    assert_eq!((status(&added), status(&state), status(&events)), (500, 500, 500));

    let text = logs.text();
    assert_eq!(text.matches("upcasting OrderPlaced v1 failed").count(), 3, "{text}");
    for personal in ["Ada", "Lovelace", "ada@example.com", "St James", "SW1Y"] {
        assert!(!text.contains(personal), "{personal:?} in the logs: {text}");
    }
}

/// Publishes nothing: the batch below holds no new commit.
struct NoPutEvents;

impl strata_eventbridge::PutEvents for NoPutEvents {
    async fn put_events(
        &self,
        _: &str,
        entries: &[strata_eventbridge::Entry],
    ) -> Result<Vec<strata_eventbridge::EntryResult>, strata_core::Error> {
        assert!(entries.is_empty(), "a removed commit is never published");
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_removed_commit_is_logged_with_the_alert_the_alarm_counts_through_the_functions_own_logger() {
    let logs = Captured::default();
    // The subscriber every function installs (`init_logs`), here writing to memory.
    let _guard = tracing::subscriber::set_default(strata_lambda::json_logs("info", logs.clone()));
    let publisher = strata_eventbridge::EventBridgePublisher::new(NoPutEvents, "bus", "src").unwrap();
    let relay = strata_eventbridge::StreamRelay::new(publisher);
    // As a NEW_IMAGE stream records a REMOVE: keys only, and no userIdentity (DynamoDB names the
    // principal only for TTL deletions; CloudTrail data events name the caller).
    let batch: aws_lambda_events::event::dynamodb::Event = serde_json::from_value(json!({ "Records": [{
        "eventID": "1", "eventName": "REMOVE", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": { "Keys": { "pk": { "S": "acme#S#order-o-1" }, "sk": { "S": "00000000000000000001" } },
                      "SequenceNumber": "7", "SizeBytes": 40, "StreamViewType": "NEW_IMAGE" },
    }] }))
    .unwrap();
    let (response, relayed) = relay.handle_counted(batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(relayed.changed_commits.len(), 1);
    let lines: Vec<Value> = logs.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let alerts: Vec<&Value> = lines.iter().filter(|l| l["fields"]["alert"] == "commit_changed").collect();
    assert_eq!(alerts.len(), 1, "{}", logs.text());
    assert_eq!(
        (alerts[0]["level"].as_str(), alerts[0]["fields"]["sk"].as_str()),
        (Some("ERROR"), Some("00000000000000000001"))
    );
}
