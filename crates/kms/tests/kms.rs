//! Field encryption with KMS data keys, against the emulator: no plaintext at rest or in the table's
//! stream, erasure by forgetting, export, KMS call counts, one key per subject under races.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use strata_core::crypto::CryptoError;
use strata_core::{
    CommandContext, Error, EventStore, FieldCipher, KeyProvider, Repository, SnapshotPolicy, StreamId,
};
use strata_dynamodb::keys_store::{KEY_SK, subject_pk};
use strata_dynamodb::{DynamoStore, RequestCounter, TableSpec};
use strata_kms::KmsKeys;
use strata_orders::samples::{PERSONAL_STRINGS, place_order};
use strata_orders::{Order, OrderCommand};

struct Fixture {
    sdk: strata_testing::SdkConfig,
    store: DynamoStore,
    kms: aws_sdk_kms::Client,
    kms_counter: RequestCounter,
    key_id: String,
}

async fn fixture() -> Fixture {
    let sdk = strata_testing::sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = strata_testing::unique("strata-test");
    TableSpec::strata().create(&dynamodb, &table, Duration::from_secs(30)).await.unwrap();
    strata_testing::stream_enabled(&sdk, &table).await.unwrap();
    let kms_counter = RequestCounter::new();
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&sdk).interceptor(kms_counter.clone()).build(),
    );
    let key_id = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    kms_counter.reset();
    Fixture { store: DynamoStore::new(dynamodb, table), sdk, kms, kms_counter, key_id }
}

impl Fixture {
    fn keys(&self) -> KmsKeys {
        KmsKeys::new(self.kms.clone(), self.key_id.clone(), self.store.clone())
    }

    fn repo(&self, keys: KmsKeys) -> Repository<Order, DynamoStore> {
        Repository::new(self.store.clone())
            .with_cipher(FieldCipher::new(keys))
            .with_snapshot_policy(SnapshotPolicy::every(2))
    }

    /// Every item of the table, as the plain SDK returns them (a Scan: test-only).
    async fn table_text(&self) -> String {
        strata_testing::table_text(self.store.client(), self.store.table()).await
    }

    /// Every record of the table's DynamoDB stream, as Lambda would hand them to the publisher.
    async fn stream_text(&self) -> (usize, String) {
        let records =
            strata_testing::stream_records(&self.sdk, self.store.client(), self.store.table()).await;
        (records.len(), serde_json::to_string(&records).unwrap())
    }
}

fn no_plaintext(what: &str, text: &str) {
    for plain in PERSONAL_STRINGS {
        assert!(!text.contains(plain), "plaintext {plain:?} in {what}");
    }
}

fn add_item() -> OrderCommand {
    OrderCommand::AddItem { sku: "BOOK".into(), quantity: 1, unit_price_minor: 500 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_personal_data_life_cycle_holds_on_kms_and_dynamodb() {
    // The same scenario the in-memory path runs (strata_orders::conformance).
    let f = fixture().await;
    let cipher = FieldCipher::new(f.keys());
    strata_orders::conformance::personal_data_lifecycle(&f.store, &cipher).await.unwrap();

    let table = f.table_text().await;
    assert!(table.contains("snapshot") && table.contains("data_key"), "snapshots and keys are there");
    no_plaintext("the table", &table);
    let (records, stream) = f.stream_text().await;
    assert!(records >= 10, "the stream saw every write ({records})");
    no_plaintext("the table's stream", &stream);
    // A cold reader (another Lambda) reads the forgotten order redacted too.
    let cold = f.repo(f.keys());
    let o1 = StreamId::new("acme", "order", "o-1").unwrap();
    assert!(cold.load(&o1).await.unwrap().state.customer.unwrap().email.is_redacted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_is_called_once_per_new_subject_and_once_per_subject_per_cold_cache() {
    let f = fixture().await;
    let repo = f.repo(f.keys());
    let s = StreamId::new("acme", "order", "o-kms").unwrap();

    repo.execute(&s, &place_order("cust-k"), CommandContext::default()).await.unwrap();
    let counts = f.kms_counter.take();
    assert_eq!((counts.calls("GenerateDataKey"), counts.total_calls()), (1, 1), "{counts}");

    for _ in 0..3 {
        repo.execute(&s, &add_item(), CommandContext::default()).await.unwrap();
    }
    repo.load(&s).await.unwrap();
    assert_eq!(f.kms_counter.take().total_calls(), 0, "a warm cache calls KMS for nothing");

    let cold = f.repo(f.keys());
    cold.load(&s).await.unwrap();
    cold.load(&s).await.unwrap();
    cold.execute(&s, &add_item(), CommandContext::default()).await.unwrap();
    let counts = f.kms_counter.take();
    assert_eq!((counts.calls("Decrypt"), counts.total_calls()), (1, 1), "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_writes_of_a_subject_end_with_one_key() {
    let f = fixture().await;
    let (a, b) = (Arc::new(f.keys()), Arc::new(f.keys()));
    let (ka, kb) = tokio::join!(
        tokio::spawn({
            let a = Arc::clone(&a);
            async move { a.key_for_write("acme", "cust-race").await }
        }),
        tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.key_for_write("acme", "cust-race").await }
        }),
    );
    let (ka, kb) = (ka.unwrap().unwrap(), kb.unwrap().unwrap());
    assert_eq!(ka, kb, "the loser uses the winner's key");
    let fresh = f.keys();
    assert_eq!(fresh.key_for_read("acme", "cust-race").await.unwrap(), Some(ka));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_key_moved_to_another_subject_is_rejected() {
    let f = fixture().await;
    let keys = f.keys();
    keys.key_for_write("acme", "alice").await.unwrap();
    let wrapped = f.store.wrapped_key("acme", "alice").await.unwrap().unwrap();
    // Plant alice's wrapped key as mallory's: KMS refuses it under mallory's encryption context.
    f.store
        .client()
        .put_item()
        .table_name(f.store.table())
        .item("pk", AttributeValue::S(subject_pk("acme", "mallory")))
        .item("sk", AttributeValue::S(KEY_SK.into()))
        .item("kind", AttributeValue::S("data_key".into()))
        .item("data_key_id", AttributeValue::S(wrapped.id))
        .item("wrapped_key", AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(wrapped.wrapped)))
        .send()
        .await
        .unwrap();
    let result = f.keys().key_for_read("acme", "mallory").await;
    assert!(
        matches!(result, Err(Error::Crypto(CryptoError::KeyRejected { ref subject })) if subject == "mallory"),
        "{result:?}"
    );
    let bad_subject = f.keys().key_for_write("acme", "has#hash").await;
    assert!(matches!(bad_subject, Err(Error::InvalidKey(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_with_a_stale_cached_key_writes_only_unreadable_fields_and_never_misreads_newer_ones() {
    let f = fixture().await;
    let (a, b) = (FieldCipher::new(f.keys()), FieldCipher::new(f.keys()));
    let personal = strata_core::PersonalData::new("cust-s", ["/name"]);
    let sealed_by = |cipher: &FieldCipher, context: &'static str| {
        let cipher = cipher.clone();
        let personal = personal.clone();
        async move {
            let mut value = serde_json::json!({"name": "Ada Lovelace"});
            cipher.seal("acme", context, &mut value, &personal).await.unwrap();
            value
        }
    };
    sealed_by(&a, "e1").await; // A caches generation 1
    let c = FieldCipher::new(f.keys());
    sealed_by(&c, "e0").await; // and so does C
    b.keys().forget("acme", "cust-s").await.unwrap(); // B forgets...
    let from_b = sealed_by(&b, "e2").await; // ...and the customer returns: generation 2

    // A writes again within its cache's TTL: a write of a subject whose key is cached reads no key,
    // so A seals under the generation it holds, which B deleted. Nobody can open that field (it
    // reads as forgotten) and nothing is sealed under generation 2 by A: the window of a cached key
    // (`CacheLimits::ttl`) loses the new field, it never brings erased data back.
    let from_a = sealed_by(&a, "e3").await;
    assert_ne!(from_a["name"]["$enc"]["k"], from_b["name"]["$enc"]["k"], "A used the key it cached");
    let mut opened = from_a.clone();
    FieldCipher::new(f.keys()).open("acme", "e3", &mut opened).await.unwrap();
    assert_eq!(opened["name"], serde_json::json!({"$redacted": true}), "sealed under the deleted key");
    // C, still caching generation 1, exports B's generation-2 field: refreshed, not skipped.
    let exported = c.export("acme", "e2", &from_b, "cust-s").await.unwrap();
    assert_eq!(exported.len(), 1, "{exported:?}");
    // A reads B's generation-2 field (its cache said generation 1): refreshed, not redacted.
    let mut opened = from_b.clone();
    a.open("acme", "e2", &mut opened).await.unwrap();
    assert_eq!(opened["name"], "Ada Lovelace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_data_is_never_resealed_under_a_returning_subjects_new_key_on_kms_and_dynamodb() {
    // The in-memory scenario (strata_orders::conformance), each process a KmsKeys with its own cache.
    let f = fixture().await;
    strata_orders::conformance::erasure_across_processes(&f.store, || FieldCipher::new(f.keys()))
        .await
        .unwrap();
    no_plaintext("the table", &f.table_text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_read_that_finds_the_key_gone_evicts_the_cached_one() {
    let f = fixture().await;
    let (a, b) = (f.keys(), f.keys());
    let k1 = a.key_for_write("acme", "cust-gone").await.unwrap(); // cached in A
    b.forget("acme", "cust-gone").await.unwrap();
    assert_eq!(a.refresh("acme", "cust-gone").await.unwrap(), None, "A looks past its cache: gone");
    let k2 = b.key_for_write("acme", "cust-gone").await.unwrap(); // the customer returns
    assert_ne!(k1.id(), k2.id());
    let read = a.key_for_read("acme", "cust-gone").await.unwrap().map(|k| k.id().to_owned());
    assert_eq!(read.as_deref(), Some(k2.id()), "the miss evicted K1 from A's cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_racing_forget_in_the_same_process_never_caches_the_forgotten_key() {
    let f = fixture().await;
    let keys = Arc::new(f.keys());
    for round in 0..10 {
        let subject = format!("cust-race-forget-{round}");
        keys.key_for_write("acme", &subject).await.unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // A reader keeps reading the key (cache misses go to the table) while forget runs.
        let reader = tokio::spawn({
            let (keys, subject, stop) = (Arc::clone(&keys), subject.clone(), Arc::clone(&stop));
            async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    keys.key_for_read("acme", &subject).await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        keys.forget("acme", &subject).await.unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.await.unwrap();
        assert_eq!(
            keys.key_for_read("acme", &subject).await.unwrap(),
            None,
            "round {round}: a key read during forget was cached past it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_subjects_thousand_event_stream_costs_one_key_read_per_load_and_projection() {
    use strata_core::fixture::profile::{Profile, ProfileCommand, ProfileProjection};
    use strata_core::projection::{Delivered, Projector};
    let f = fixture().await;
    let counter = RequestCounter::new();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&f.sdk).interceptor(counter.clone()).build(),
    );
    let store = DynamoStore::new(client, f.store.table());
    let cipher = FieldCipher::new(KmsKeys::new(f.kms.clone(), f.key_id.clone(), store.clone()));
    let repo = Repository::<Profile, _>::new(store.clone()).with_cipher(cipher.clone());
    let s = StreamId::new("acme", "profile", "p-long").unwrap();
    for batch in 0..10 {
        let names = (0..100).map(|i| format!("name-{batch}-{i}")).collect();
        let rename = ProfileCommand::Rename { subject: "s-long".into(), names };
        repo.execute(&s, &rename, CommandContext::default()).await.unwrap();
    }
    cipher.keys().forget("acme", "s-long").await.unwrap();
    counter.reset();
    f.kms_counter.reset();

    let loaded = repo.load(&s).await.unwrap();
    assert_eq!((loaded.version, loaded.state.name), (1_000, Some(strata_core::Personal::Redacted)));
    let counts = counter.take();
    assert_eq!(counts.calls("GetItem"), 1, "one key read, not one per event: {counts}");

    let projector = Projector::new(ProfileProjection, store.clone()).with_cipher(cipher.clone());
    let events = store.read(&s, 1, 1_000).await.unwrap().events;
    counter.reset();
    let projected = projector.project(&s, events.into_iter().map(Delivered::Event).collect()).await.unwrap();
    assert_eq!(projected.version, 1_000);
    let counts = counter.take();
    assert_eq!(counts.calls("GetItem"), 2, "the view and one key read: {counts}");
    assert_eq!(f.kms_counter.take().total_calls(), 0, "nothing to unwrap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_generation_that_fails_to_unwrap_evicts_the_cached_key() {
    let f = fixture().await;
    let (a, b) = (f.keys(), f.keys());
    a.key_for_write("acme", "cust-swap").await.unwrap(); // A caches K1
    b.forget("acme", "cust-swap").await.unwrap();
    // A new key item that KMS refuses to unwrap for this subject (made for another one).
    b.key_for_write("acme", "cust-other").await.unwrap();
    let planted = f.store.wrapped_key("acme", "cust-other").await.unwrap().unwrap();
    f.store.put_wrapped_key_if_absent("acme", "cust-swap", planted, &f.key_id).await.unwrap();

    let refreshed = a.refresh("acme", "cust-swap").await;
    assert!(matches!(refreshed, Err(Error::Crypto(CryptoError::KeyRejected { .. }))), "{refreshed:?}");
    let read = a.key_for_read("acme", "cust-swap").await;
    assert!(
        matches!(read, Err(Error::Crypto(CryptoError::KeyRejected { .. }))),
        "the forgotten K1 must not be served from the cache after a read saw another generation: {read:?}"
    );
}
