//! Personal data of orders in memory: sealed in every stored event and snapshot, redacted after
//! forget while loads and commands go on, refused without a cipher.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_core::{
    Aggregate, CommandContext, CommandError, Error, EventStore, FieldCipher, InMemoryStore, KeyProvider,
    LocalKeys, Personal, Repository, SnapshotPolicy, StreamId,
};
use strata_orders::samples::{PERSONAL_STRINGS, address, place_order};
use strata_orders::{Order, OrderCommand};

fn no_plaintext(text: &str) {
    for plain in PERSONAL_STRINGS {
        assert!(!text.contains(plain), "plaintext {plain:?} stored: {text}");
    }
}

async fn stored_text(store: &InMemoryStore, stream: &StreamId) -> String {
    let loaded = store.load(stream, Order::STATE_SCHEMA_VERSION).await.unwrap();
    let events = store.read(stream, 1, 1_000).await.unwrap();
    format!("{:?} {:?}", loaded.snapshot, events.events)
}

#[tokio::test]
async fn personal_fields_are_sealed_at_rest_and_redacted_after_forget() {
    let store = InMemoryStore::new();
    let keys = LocalKeys::new();
    let repo = Repository::<Order, _>::new(store.clone())
        .with_cipher(FieldCipher::new(keys.clone()))
        .with_snapshot_policy(SnapshotPolicy::every(2));
    let s = StreamId::new("acme", "order", "o-1").unwrap();
    repo.execute(&s, &place_order("cust-1"), CommandContext::default()).await.unwrap();
    let add = OrderCommand::AddItem { sku: "BOOK".into(), quantity: 1, unit_price_minor: 500 };
    repo.execute(&s, &add, CommandContext::default()).await.unwrap();

    assert!(
        store.load(&s, Order::STATE_SCHEMA_VERSION).await.unwrap().snapshot.is_some(),
        "a snapshot with the customer was taken"
    );
    no_plaintext(&stored_text(&store, &s).await);
    let customer = repo.load(&s).await.unwrap().state.customer.unwrap();
    assert_eq!(customer.name, Personal::Known("Ada Lovelace".into()));
    assert_eq!(customer.shipping_address, Personal::Known(address()));

    let cipher = repo.cipher().unwrap();
    let exported = cipher.export_subject(&store, "acme", "cust-1").await.unwrap();
    let pointers: Vec<_> = exported.iter().map(|e| (e.version, e.field.pointer.as_str())).collect();
    assert_eq!(pointers, [(1, "/customer_email"), (1, "/customer_name"), (1, "/shipping_address")]);
    assert_eq!(exported[1].field.value, serde_json::json!("Ada Lovelace"));
    assert!(cipher.export_subject(&store, "acme", "nobody").await.unwrap().is_empty());

    keys.forget("acme", "cust-1").await.unwrap();
    assert!(cipher.export_subject(&store, "acme", "cust-1").await.unwrap().is_empty());

    let loaded = repo.load(&s).await.unwrap();
    let customer = loaded.state.customer.clone().unwrap();
    assert_eq!(customer.id, "cust-1", "the subject id is a pseudonym and stays");
    assert!(
        customer.name.is_redacted()
            && customer.email.is_redacted()
            && customer.shipping_address.is_redacted()
    );
    assert_eq!(loaded.state.total_minor(), 500);
    // The stream lives on: commands and replays still work, and no key comes back.
    repo.execute(&s, &add, CommandContext::default()).await.unwrap();
    let replayed = repo.load_at_version(&s, 1).await.unwrap();
    assert!(replayed.state.customer.unwrap().name.is_redacted());
    repo.execute(&s, &add, CommandContext::default()).await.unwrap(); // v4: a snapshot of redacted state
    assert_eq!(
        store.load(&s, Order::STATE_SCHEMA_VERSION).await.unwrap().snapshot.map(|s| s.version),
        Some(4)
    );
    assert!(keys.key_for_read("acme", "cust-1").await.unwrap().is_none(), "forgotten stays forgotten");
    no_plaintext(&stored_text(&store, &s).await);
}

#[tokio::test]
async fn the_personal_data_life_cycle_holds_in_memory() {
    let store = InMemoryStore::new();
    strata_orders::conformance::personal_data_lifecycle(&store, &FieldCipher::local()).await.unwrap();
    let mut text = String::new();
    for id in ["o-1", "o-2", "o-3"] {
        text.push_str(&stored_text(&store, &StreamId::new("acme", "order", id).unwrap()).await);
    }
    no_plaintext(&text);
}

#[tokio::test]
async fn personal_data_without_a_cipher_is_refused_and_nothing_is_written() {
    let store = InMemoryStore::new();
    let repo = Repository::<Order, _>::new(store.clone());
    let s = StreamId::new("acme", "order", "o-2").unwrap();
    let result = repo.execute(&s, &place_order("cust-2"), CommandContext::default()).await;
    assert!(matches!(result, Err(CommandError::Failed(Error::NoCipher { .. }))));
    assert!(store.read(&s, 1, 10).await.unwrap().events.is_empty());
}

#[tokio::test]
async fn forgotten_data_is_never_resealed_under_a_returning_subjects_new_key_in_memory() {
    // Each "process" caches keys over one shared key table, as KmsKeys caches over the key items.
    let shared = LocalKeys::new();
    let process = || {
        FieldCipher::new(strata_core::crypto::CachedKeys::new(
            shared.clone(),
            strata_core::crypto::CacheLimits::default(),
        ))
    };
    let store = InMemoryStore::new();
    strata_orders::conformance::erasure_across_processes(&store, process).await.unwrap();
}
