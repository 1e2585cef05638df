//! Event contracts: the committed JSON Schemas of every published event's detail
//! (`functions/stream-publisher/events.schema.json` for the orders example,
//! `examples/ledger/events.schema.json`) are exactly what the code generates, and every event type
//! of both services, as the publisher writes it (personal fields sealed, every metadata member,
//! claim checks), satisfies them strictly; the members the schema marks personal are exactly the
//! ones the sealer sealed. Regenerate with `STRATA_BLESS=1 cargo test -p strata-tests --test contracts`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use strata_core::{
    Aggregate, CommandContext, EventEnvelope, EventStore, FieldCipher, InMemoryStore, Repository, StreamId,
};
use strata_eventbridge::Detail;
use strata_example_ledger::{Account, AccountCommand, Transfer, TransferCommand};
use strata_orders::{Order, OrderCommand, samples};
use strata_testing::schema::{check, personal_pointers};

fn committed(relative: &str, generated: &Value) {
    strata_tests::assert_committed(relative, generated, "cargo test -p strata-tests --test contracts");
}

/// Every metadata member the publisher can write.
fn context(stream: &StreamId, n: usize) -> CommandContext {
    CommandContext {
        correlation_id: Some(format!("corr-{n}")),
        causation_id: Some(format!("cause-{n}")),
        actor: Some("arn:aws:iam::123456789012:user/ada".into()),
        trace_id: Some("Root=1-5759e988-bd862e3fe1be46a994272793".into()),
        // Keys are the tenant's: one per command of this test.
        idempotency_key: Some(format!("key-{}-{}-{n}", stream.category(), stream.id())),
        user: BTreeMap::from([("channel".to_owned(), "web".to_owned())]),
        ..CommandContext::default()
    }
}

async fn run<A: Aggregate>(store: &InMemoryStore, stream: &StreamId, commands: &[A::Command]) {
    let repository = Repository::<A, _>::new(store.clone()).with_cipher(FieldCipher::local());
    for (n, command) in commands.iter().enumerate() {
        repository.execute(stream, command, context(stream, n)).await.unwrap();
    }
}

/// Every event of the streams, as the publisher writes it, against its schema: the whole detail,
/// its claim check, and the personal members (marked in the schema, sealed in the detail).
async fn check_published(store: &InMemoryStore, events: &Value, streams: &[StreamId]) -> Vec<String> {
    let mut seen = Vec::new();
    for stream in streams {
        for envelope in store.read(stream, 1, 100).await.unwrap().events {
            let schema = &events[&envelope.event_type];
            assert!(schema.is_object(), "no schema for {}", envelope.event_type);
            let detail = serde_json::to_value(Detail::full(&envelope)).unwrap();
            check(schema, &detail).unwrap_or_else(|e| panic!("{}: {e}\n{detail}", envelope.event_type));
            let reference = serde_json::to_value(Detail::claim_check(&envelope)).unwrap();
            check(schema, &reference)
                .unwrap_or_else(|e| panic!("claim check of {}: {e}", envelope.event_type));
            let payload_schema = &schema["properties"]["payload"];
            assert_eq!(
                personal_pointers(schema, payload_schema),
                sealed_pointers(&envelope),
                "{}: the schema's personal members are the sealed ones",
                envelope.event_type
            );
            seen.push(envelope.event_type.clone());
        }
    }
    seen.sort();
    seen.dedup();
    seen
}

/// The pointers of the payload's sealed members (`{"$enc": ...}`).
fn sealed_pointers(envelope: &EventEnvelope) -> Vec<String> {
    fn walk(value: &Value, at: &str, found: &mut Vec<String>) {
        if let Some(object) = value.as_object() {
            if object.contains_key("$enc") {
                found.push(at.to_owned());
                return;
            }
            for (name, inner) in object {
                walk(inner, &format!("{at}/{}", name.replace('~', "~0").replace('/', "~1")), found);
            }
        }
    }
    let mut found = Vec::new();
    walk(&envelope.payload, "", &mut found);
    found.sort();
    found
}

#[tokio::test]
async fn the_orders_event_contracts_match_the_code_and_what_is_published() {
    let store = InMemoryStore::new();
    let document = strata_orders::service(store.clone()).event_document("Strata orders: events").unwrap();
    let events = &document["events"];
    let types: Vec<&String> = events.as_object().unwrap().keys().collect();
    let all = ["ItemAdded", "ItemRemoved", "OrderCancelled", "OrderPaid", "OrderPlaced", "OrderShipped"];
    assert_eq!(types, all, "one schema per event type");
    committed("functions/stream-publisher/events.schema.json", &document);

    let shipped = StreamId::new("acme", "order", "o-1").unwrap();
    let add = |sku: &str| OrderCommand::AddItem { sku: sku.into(), quantity: 2, unit_price_minor: 150 };
    run::<Order>(
        &store,
        &shipped,
        &[
            samples::place_order("c-1"),
            add("sku-1"),
            add("sku-2"),
            OrderCommand::RemoveItem { sku: "sku-2".into() },
            OrderCommand::Pay { amount_minor: 300, payment_reference: "pay-1".into() },
            OrderCommand::Ship { carrier: "DHL".into(), tracking_number: "T-1".into() },
        ],
    )
    .await;
    let cancelled = StreamId::new("acme", "order", "o-2").unwrap();
    run::<Order>(
        &store,
        &cancelled,
        &[samples::place_order("c-2"), OrderCommand::Cancel { reason: "late".into() }],
    )
    .await;
    assert_eq!(
        check_published(&store, events, &[shipped.clone(), cancelled]).await,
        all,
        "every type checked"
    );

    // The schema says a personal field is sealed: the plaintext, another event's payload, another
    // category or an unknown member fails.
    let published = store.read(&shipped, 1, 10).await.unwrap().events;
    let placed = serde_json::to_value(Detail::full(&published[0])).unwrap();
    let schema = &events["OrderPlaced"];
    assert_eq!(
        schema["properties"]["payload"]["properties"]["customer_name"]["x-strata-personal"],
        json!(true)
    );
    let mut plaintext = placed.clone();
    plaintext["payload"]["customer_name"] = json!("Ada Lovelace");
    assert!(check(schema, &plaintext).unwrap_err().contains("/payload/customer_name"));
    let mut wrong = placed.clone();
    wrong["payload"] = serde_json::to_value(Detail::full(&published[1])).unwrap()["payload"].clone();
    assert!(check(schema, &wrong).is_err(), "an ItemAdded payload is no OrderPlaced");
    let mut other = placed.clone();
    other["stream"]["category"] = json!("invoice");
    assert!(check(schema, &other).is_err(), "the category is the aggregate's");
    let mut extra = placed;
    extra["payload"]["loyalty_tier"] = json!("gold");
    assert!(check(schema, &extra).unwrap_err().contains("not declared"), "the payload is declared whole");
}

#[tokio::test]
async fn the_ledger_event_contracts_match_the_code_and_what_is_published() {
    let store = InMemoryStore::new();
    let document = strata_example_ledger::service(store.clone()).event_document("Ledger: events").unwrap();
    let events = &document["events"];
    committed("examples/ledger/events.schema.json", &document);
    assert_eq!(
        events["AccountOpened"]["properties"]["stream"]["properties"]["category"],
        json!({ "enum": ["account"] })
    );
    assert_eq!(
        events["TransferDebited"]["properties"]["payload"],
        json!({ "type": "null" }),
        "a unit variant"
    );

    let account = |id: &str| StreamId::new("acme", <Account as Aggregate>::CATEGORY, id).unwrap();
    run::<Account>(
        &store,
        &account("a-1"),
        &[
            AccountCommand::Open { holder_id: "h-1".into(), holder_name: "Ada".into() },
            AccountCommand::Credit { amount_minor: 100, reference: "cash".into() },
            AccountCommand::Debit { amount_minor: 30, reference: "t-1".into() },
        ],
    )
    .await;
    let transfer = |id: &str| StreamId::new("acme", <Transfer as Aggregate>::CATEGORY, id).unwrap();
    let request = || TransferCommand::Request { from: "a-1".into(), to: "a-2".into(), amount_minor: 30 };
    run::<Transfer>(
        &store,
        &transfer("t-1"),
        &[request(), TransferCommand::RecordDebit, TransferCommand::RecordCredit],
    )
    .await;
    run::<Transfer>(
        &store,
        &transfer("t-2"),
        &[request(), TransferCommand::RecordDebit, TransferCommand::RefuseCredit { reason: "closed".into() }],
    )
    .await;
    run::<Transfer>(&store, &transfer("t-3"), &[request(), TransferCommand::Fail { reason: "funds".into() }])
        .await;
    let streams = [account("a-1"), transfer("t-1"), transfer("t-2"), transfer("t-3")];
    let seen = check_published(&store, events, &streams).await;
    let all: Vec<&String> = events.as_object().unwrap().keys().collect();
    assert_eq!(seen.iter().collect::<Vec<_>>(), all, "every type checked");
}

#[test]
fn a_read_model_over_events_of_one_name_is_refused_at_start() {
    use serde::{Deserialize, Serialize};
    use strata_core::projection::Projection;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Closing {
        TransferCompleted,
    }
    impl strata_core::Event for Closing {
        fn event_type(&self) -> &'static str {
            "TransferCompleted"
        }
    }
    #[derive(Clone)]
    struct Confused;
    impl Projection for Confused {
        type Event = strata_core::Either<Closing, strata_example_ledger::TransferEvent>;
        type View = u64;
        const NAME: &'static str = "confused";
        const CATEGORY: &'static str = "closing";
        const OTHER_CATEGORIES: &'static [&'static str] = &["transfer"];
        fn apply(&self, view: Option<u64>, _: &Self::Event, _: &EventEnvelope) -> Option<u64> {
            view
        }
    }
    let service = strata_example_ledger::service(InMemoryStore::new()).projection(Confused);
    let refused = service.projectors().err().unwrap().to_string();
    assert!(refused.contains("\"confused\"") && refused.contains("TransferCompleted"), "{refused}");
    // The operator's rebuild of it too.
    assert!(service.projector("confused").is_err());
    assert!(service.projector("balance").unwrap().is_some());
}
