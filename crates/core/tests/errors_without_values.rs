//! Errors raised on opened (decrypted) payloads carry no personal value: an upcaster whose message
//! quotes the opened payload, or serde's messages quoting a field, reach callers and logs with the
//! event type, the schema version and the kind of failure only, through every path that opens and
//! decodes events (repository loads, reads and commands; the projector).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use strata_core::fixture::tally::{Tally, TallyCommand, TallyProjection};
use strata_core::projection::{Delivered, Projector};
use strata_core::{
    AppendRequest, BoxError, CommandContext, CommandError, Error, EventStore, ExpectedVersion, FieldCipher,
    InMemoryStore, Metadata, NewEvent, PersonalData, Repository, StreamId, UpcasterChain,
};

const NAME: &str = "Ada Lovelace";

/// An error and all its sources, as a log line shows them.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Asserts an upcast failure of `Counted` v1 that says nothing of the name.
fn withheld(error: &Error) -> String {
    assert!(
        matches!(error, Error::Upcast { event_type, version: 1, .. } if event_type == "Counted"),
        "{error:?}"
    );
    let text = chain(error);
    assert!(!text.contains(NAME) && !text.contains("Lovelace"), "plaintext in {text:?}");
    assert!(!format!("{error:?}").contains("Lovelace"), "plaintext in {error:?}");
    text
}

/// A stream whose first event is an old `Counted` v1 with a sealed personal `name`.
async fn old_event_with_a_sealed_name(store: &InMemoryStore, cipher: &FieldCipher, id: &str) -> StreamId {
    let stream = StreamId::new("t1", "tally", id).unwrap();
    let mut event = NewEvent::new("Counted", 1, json!({ "value": 1, "name": NAME }), Metadata::new("c"));
    let personal = PersonalData::new("cust-1", ["/name"]);
    cipher.seal("t1", &event.event_id.to_string(), &mut event.payload, &personal).await.unwrap();
    assert!(!event.payload.to_string().contains(NAME), "sealed at rest");
    let request = AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::Any,
        events: vec![event],
        idempotency: None,
    };
    store.append(request).await.unwrap();
    stream
}

/// An upcaster that fails with a message quoting the payload it was given, and records that it saw
/// the name opened (so the test shows the value was there to leak).
fn quoting_upcaster(saw_name: Arc<AtomicBool>) -> UpcasterChain {
    UpcasterChain::builder()
        .upcast("Counted", 1, "Bumped", 1, move |payload: Value| -> Result<Value, BoxError> {
            saw_name.store(payload["name"] == NAME, Ordering::SeqCst);
            Err(format!("cannot upcast {payload}").into())
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_upcaster_quoting_an_opened_value_fails_loads_reads_and_commands_without_it() {
    let (store, cipher) = (InMemoryStore::new(), FieldCipher::local());
    let s = old_event_with_a_sealed_name(&store, &cipher, "up").await;
    let saw_name = Arc::new(AtomicBool::new(false));
    let repo = Repository::<Tally, _>::new(store.clone())
        .with_cipher(cipher.clone())
        .with_upcasters(quoting_upcaster(Arc::clone(&saw_name)));

    let text = withheld(&repo.load(&s).await.unwrap_err());
    assert!(saw_name.load(Ordering::SeqCst), "the upcaster had the opened name");
    assert!(text.starts_with("upcasting Counted v1 failed: "), "{text}");
    withheld(&repo.read(&s, 1, 10).await.unwrap_err());
    withheld(&repo.load_at_version(&s, 1).await.unwrap_err());
    match repo.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await {
        Err(CommandError::Failed(error)) => {
            withheld(&error);
        }
        other => panic!("{other:?}"),
    }

    // Without a cipher nothing is opened, and the upcaster's own message stays for the operator.
    let plain_store = InMemoryStore::new();
    let plain = StreamId::new("t1", "tally", "plain").unwrap();
    let request = AppendRequest {
        stream: plain.clone(),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent::new("Counted", 1, json!({ "value": 1 }), Metadata::new("c"))],
        idempotency: None,
    };
    plain_store.append(request).await.unwrap();
    let no_cipher = Repository::<Tally, _>::new(plain_store)
        .with_upcasters(quoting_upcaster(Arc::new(AtomicBool::new(false))));
    assert!(chain(&no_cipher.load(&plain).await.unwrap_err()).contains("cannot upcast {\"value\":1}"));
}

#[tokio::test]
async fn an_upcasters_serde_error_keeps_its_kind_and_position_not_the_value() {
    let (store, cipher) = (InMemoryStore::new(), FieldCipher::local());
    let s = old_event_with_a_sealed_name(&store, &cipher, "serde").await;
    // serde's own message quotes the value: `invalid type: string "Ada Lovelace", expected u64`.
    let chain_of_serde = UpcasterChain::builder()
        .upcast("Counted", 1, "Bumped", 1, |payload: Value| -> Result<Value, BoxError> {
            let n: u64 = serde_json::from_value(payload["name"].clone())?;
            Ok(json!({ "n": n }))
        })
        .build()
        .unwrap();
    let repo = Repository::<Tally, _>::new(store).with_cipher(cipher).with_upcasters(chain_of_serde);
    let text = withheld(&repo.load(&s).await.unwrap_err());
    assert!(text.contains("Data error") && text.contains("value withheld"), "{text}");
}

#[tokio::test]
async fn the_projector_fails_on_an_opened_value_without_quoting_it() {
    let (store, cipher) = (InMemoryStore::new(), FieldCipher::local());
    let s = old_event_with_a_sealed_name(&store, &cipher, "proj").await;
    let saw_name = Arc::new(AtomicBool::new(false));
    let projector = Projector::new(TallyProjection, store.clone())
        .with_cipher(cipher)
        .with_upcasters(quoting_upcaster(Arc::clone(&saw_name)));
    let delivered: Vec<Delivered> =
        store.read(&s, 1, 10).await.unwrap().events.into_iter().map(Delivered::Event).collect();
    withheld(&projector.project(&s, delivered).await.unwrap_err());
    assert!(saw_name.load(Ordering::SeqCst), "the upcaster had the opened name");
    withheld(
        &projector
            .project(&s, vec![Delivered::Reference { stream: s.clone(), version: 1 }])
            .await
            .unwrap_err(),
    );
    withheld(&projector.rebuild(&s).await.unwrap_err());
}
