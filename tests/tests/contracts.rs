//! Event contracts: the committed JSON Schemas of every published event's detail
//! (`functions/stream-publisher/events.schema.json` for the orders example,
//! `examples/ledger/events.schema.json`) are exactly what the code generates, and real details as the
//! publisher writes them (personal fields sealed, claim checks) satisfy them; a plaintext personal
//! field does not. Regenerate with `STRATA_BLESS=1 cargo test -p strata-tests --test contracts`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use strata_core::{CommandContext, EventStore, FieldCipher, InMemoryStore, Repository, StreamId};
use strata_eventbridge::Detail;
use strata_orders::{Order, OrderCommand, samples};
use strata_testing::schema::check;

fn committed(relative: &str, generated: &Value) {
    let path = format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"));
    let text = serde_json::to_string_pretty(generated).unwrap() + "\n";
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "{path} is stale: regenerate with STRATA_BLESS=1 cargo test -p strata-tests --test contracts"
    );
}

#[tokio::test]
async fn the_orders_event_contracts_match_the_code_and_what_is_published() {
    let store = InMemoryStore::new();
    let document = strata_orders::service(store.clone()).event_document("Strata orders: events");
    let events = document["events"].as_object().unwrap();
    let mut types: Vec<&String> = events.keys().collect();
    types.sort();
    assert_eq!(
        types,
        ["ItemAdded", "ItemRemoved", "OrderCancelled", "OrderPaid", "OrderPlaced", "OrderShipped"],
        "one schema per event type"
    );
    committed("functions/stream-publisher/events.schema.json", &document);

    // Real events, sealed by the cipher as they are at rest and on the bus.
    let orders = Repository::<Order, _>::new(store.clone()).with_cipher(FieldCipher::local());
    let stream = StreamId::new("acme", "order", "o-1").unwrap();
    let commands = [
        samples::place_order("c-1"),
        OrderCommand::AddItem { sku: "sku-1".into(), quantity: 2, unit_price_minor: 150 },
        OrderCommand::RemoveItem { sku: "sku-1".into() },
    ];
    for command in &commands {
        orders.execute(&stream, command, CommandContext::default()).await.unwrap();
    }
    let published = store.read(&stream, 1, 10).await.unwrap().events;
    assert_eq!(published.len(), 3);
    for envelope in &published {
        let schema = &events[&envelope.event_type];
        let detail = serde_json::to_value(Detail::full(envelope)).unwrap();
        check(schema, &detail).unwrap_or_else(|e| panic!("{}: {e}\n{detail}", envelope.event_type));
        let reference = serde_json::to_value(Detail::claim_check(envelope)).unwrap();
        check(schema, &reference).unwrap_or_else(|e| panic!("claim check of {}: {e}", envelope.event_type));
    }

    // The schema says a personal field is sealed: the plaintext, or another event's payload, fails.
    let placed = serde_json::to_value(Detail::full(&published[0])).unwrap();
    assert_eq!(placed["payload"]["customer_name"]["$enc"]["sub"], "c-1", "{placed}");
    let schema = &events["OrderPlaced"];
    assert!(
        schema["properties"]["payload"]["properties"]["customer_name"]["x-strata-personal"] == json!(true)
    );
    let mut plaintext = placed.clone();
    plaintext["payload"]["customer_name"] = json!("Ada Lovelace");
    assert!(check(schema, &plaintext).unwrap_err().contains("/payload/customer_name"));
    let mut wrong = placed.clone();
    wrong["payload"] = serde_json::to_value(Detail::full(&published[1])).unwrap()["payload"].clone();
    assert!(check(schema, &wrong).is_err(), "an ItemAdded payload is no OrderPlaced");
    let mut other = placed;
    other["stream"]["category"] = json!("invoice");
    assert!(check(schema, &other).is_err(), "the category is the aggregate's");
}

#[tokio::test]
async fn the_ledger_event_contracts_match_the_code_and_both_aggregates_are_covered() {
    let document = strata_example_ledger::service(InMemoryStore::new()).event_document("Ledger: events");
    let events = document["events"].as_object().unwrap();
    for event_type in ["AccountOpened", "Credited", "Debited", "TransferRequested"] {
        assert!(events.contains_key(event_type), "{event_type}: {:?}", events.keys().collect::<Vec<_>>());
    }
    assert_eq!(
        events["AccountOpened"]["properties"]["stream"]["properties"]["category"],
        json!({ "enum": ["account"] })
    );
    assert_eq!(
        events["TransferRequested"]["properties"]["stream"]["properties"]["category"],
        json!({ "enum": ["transfer"] })
    );
    committed("examples/ledger/events.schema.json", &document);
}
