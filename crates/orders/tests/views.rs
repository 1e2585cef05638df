//! The order read model in memory: equals the fold, lists per customer, sealed at rest, redacted
//! after forget; no cipher, no view of personal data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_core::projection::{Delivered, Projector};
use strata_core::{CommandContext, Error, EventStore, FieldCipher, InMemoryStore, Repository, StreamId};
use strata_orders::samples::place_order;
use strata_orders::{Order, OrderSummaries, conformance};

#[tokio::test]
async fn the_read_model_life_cycle_holds_in_memory() {
    conformance::read_model_lifecycle(&InMemoryStore::new(), &FieldCipher::local()).await.unwrap();
}

#[tokio::test]
async fn a_view_with_personal_data_is_refused_without_a_cipher_and_nothing_is_written() {
    let store = InMemoryStore::new();
    let cipher = FieldCipher::local();
    let repo = Repository::<Order, _>::new(store.clone()).with_cipher(cipher);
    let order = StreamId::new("acme", "order", "nc-1").unwrap();
    repo.execute(&order, &place_order("c-1"), CommandContext::default()).await.unwrap();
    let events = store.read(&order, 1, 10).await.unwrap().events;
    let projector = Projector::new(OrderSummaries, store.clone());
    // Without a cipher the sealed fields do not even decode as the event type.
    let refused = projector.project(&order, events.into_iter().map(Delivered::Event).collect()).await;
    assert!(matches!(refused, Err(Error::Decode { .. } | Error::NoCipher { .. })), "{refused:?}");
    assert_eq!(projector.view(&order).await.unwrap(), None);
}
