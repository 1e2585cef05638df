//! Property tests over random order command sequences.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::json;
use strata_core::{
    AppendRequest, CommandContext, EventStore, ExpectedVersion, FieldCipher, InMemoryStore, Metadata,
    NewEvent, Repository, SnapshotPolicy, StreamId, encode_event,
};
use strata_orders::{Address, Order, OrderCommand, OrderEvent, upcasters};

fn address() -> Address {
    Address {
        line1: "1 Main St".into(),
        line2: None,
        city: "Springfield".into(),
        postal_code: "12345".into(),
        country: "US".into(),
    }
}

fn place() -> OrderCommand {
    OrderCommand::PlaceOrder {
        customer_id: "c-1".into(),
        customer_name: "Ada".into(),
        customer_email: "ada@example.com".into(),
        shipping_address: address(),
        currency: "USD".into(),
    }
}

/// Commands of every kind; some break rules, and the repository must reject those without writing.
fn command() -> impl Strategy<Value = OrderCommand> {
    let sku = prop::sample::select(vec!["A", "B", "C", "D"]).prop_map(str::to_owned);
    prop_oneof![
        1 => Just(place()),
        6 => (sku.clone(), 1u32..5, prop::sample::select(vec![100u64, 250, 999]))
            .prop_map(|(sku, quantity, unit_price_minor)| OrderCommand::AddItem { sku, quantity, unit_price_minor }),
        2 => sku.prop_map(|sku| OrderCommand::RemoveItem { sku }),
        1 => (0u64..3_000).prop_map(|amount_minor| OrderCommand::Pay { amount_minor, payment_reference: "p".into() }),
        1 => Just(OrderCommand::Ship { carrier: "DHL".into(), tracking_number: "T".into() }),
        1 => Just(OrderCommand::Cancel { reason: "r".into() }),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

fn raw(event_type: &str, schema_version: u32, payload: serde_json::Value) -> NewEvent {
    NewEvent::new(event_type, schema_version, payload, Metadata::new("c"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// State from snapshot + tail equals state from a full replay and from folding the events;
    /// versions are contiguous from 1.
    #[test]
    fn snapshot_plus_tail_equals_full_replay(
        commands in prop::collection::vec(command(), 1..60),
        every in 1u64..8,
        keep in 1usize..4,
    ) {
        runtime().block_on(async {
            let store = InMemoryStore::new();
            let cipher = FieldCipher::local();
            let snapshotting = Repository::<Order, _>::new(store.clone())
                .with_cipher(cipher.clone())
                .with_snapshot_policy(SnapshotPolicy::every(every).keep(keep));
            let plain = Repository::<Order, _>::new(store.clone()).with_cipher(cipher);
            let stream = StreamId::new("t", "order", "o-1").unwrap();
            let mut expected_version = 0;
            for command in std::iter::once(place()).chain(commands) {
                if let Ok(outcome) = snapshotting.execute(&stream, &command, CommandContext::default()).await {
                    expected_version += outcome.event_ids.len() as u64;
                    prop_assert_eq!(outcome.version, expected_version);
                }
            }
            prop_assert!(store.snapshot_versions(&stream).len() <= keep);
            let from_snapshot = snapshotting.load(&stream).await.unwrap();
            let replayed = plain.load_at_version(&stream, from_snapshot.version).await.unwrap();
            prop_assert_eq!(&from_snapshot, &replayed);

            let page = plain.read(&stream, 1, 10_000).await.unwrap();
            let versions: Vec<u64> = page.events.iter().map(|e| e.version).collect();
            prop_assert_eq!(versions, (1..=expected_version).collect::<Vec<_>>());
            let mut folded = Order::default();
            for envelope in &page.events {
                strata_core::Aggregate::evolve(&mut folded, &plain.decode(envelope).unwrap());
            }
            prop_assert_eq!(folded, from_snapshot.state);
            Ok(())
        })?;
    }

    /// Reading a v1 `ItemAdded` through the upcaster equals having written v2 directly.
    #[test]
    fn upcast_on_read_equals_writing_the_new_version(
        items in prop::collection::vec(("[A-Z]{1,3}", 1u32..1_000, 0u64..10_000_000_000), 1..10),
    ) {
        runtime().block_on(async {
            let store = InMemoryStore::new();
            let repo = Repository::<Order, _>::new(store.clone())
                .with_upcasters(upcasters())
                .with_cipher(FieldCipher::local());
            let old = StreamId::new("t", "order", "v1").unwrap();
            let new = StreamId::new("t", "order", "v2").unwrap();
            let placed = repo.execute(&old, &place(), CommandContext::default()).await.unwrap();
            prop_assert_eq!(placed.version, 1);
            repo.execute(&new, &place(), CommandContext::default()).await.unwrap();
            let (v1, v2): (Vec<NewEvent>, Vec<NewEvent>) = items
                .iter()
                .map(|(sku, quantity, minor)| {
                    let decimal = format!("{}.{:02}", minor / 100, minor % 100);
                    let old = raw("ItemAdded", 1, json!({"sku": sku, "quantity": quantity, "unit_price": decimal}));
                    let event = OrderEvent::ItemAdded { sku: sku.clone(), quantity: *quantity, unit_price_minor: *minor };
                    let encoded = encode_event(&event).unwrap();
                    (old, raw(&encoded.event_type, encoded.schema_version, encoded.payload))
                })
                .unzip();
            for (stream, events) in [(&old, v1), (&new, v2)] {
                let request = AppendRequest { stream: stream.clone(), expected: ExpectedVersion::Exact(1), events, idempotency: None };
                store.append(request).await.unwrap();
            }
            let (a, b) = (repo.load(&old).await.unwrap(), repo.load(&new).await.unwrap());
            prop_assert_eq!(a, b);
            let (pa, pb) = (repo.read(&old, 2, 100).await.unwrap(), repo.read(&new, 2, 100).await.unwrap());
            for (x, y) in pa.events.iter().zip(&pb.events) {
                prop_assert_eq!((&x.event_type, x.schema_version, &x.payload), (&y.event_type, y.schema_version, &y.payload));
            }
            Ok(())
        })?;
    }
}
