//! A corrupted key item is not a forgotten subject, against the emulator: a data key item with an
//! attribute missing or of the wrong type, and a subject's stream index item without its stream,
//! are a typed, non-retryable error; a sealed field never reads as redacted because of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use strata_core::{Error, FieldCipher, PersonalData, StreamId, is_redacted_marker};
use strata_dynamodb::keys_store::{KEY_SK, MalformedKeyItem, STREAM_SK_PREFIX, subject_pk};
use strata_dynamodb::{DynamoStore, TableSpec};
use strata_kms::KmsKeys;

struct Fixture {
    store: DynamoStore,
    kms: aws_sdk_kms::Client,
    key_id: String,
}

async fn fixture() -> Fixture {
    let sdk = strata_testing::sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = strata_testing::unique("strata-test");
    TableSpec::strata().create(&dynamodb, &table, Duration::from_secs(30)).await.unwrap();
    strata_testing::stream_enabled(&sdk, &table).await.unwrap();
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key_id = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    Fixture { store: DynamoStore::new(dynamodb, table), kms, key_id }
}

impl Fixture {
    /// A cipher with a cold cache: another Lambda, which must read the key item.
    fn cipher(&self) -> FieldCipher {
        FieldCipher::new(KmsKeys::new(self.kms.clone(), self.key_id.clone(), self.store.clone()))
    }

    async fn key_item(&self, subject: &str) -> std::collections::HashMap<String, AttributeValue> {
        let key = [
            ("pk".to_owned(), AttributeValue::S(subject_pk("acme", subject))),
            ("sk".to_owned(), AttributeValue::S(KEY_SK.into())),
        ];
        let out =
            self.store.client().get_item().table_name(self.store.table()).set_key(Some(key.into())).send();
        out.await.unwrap().item.unwrap()
    }

    async fn put(&self, item: std::collections::HashMap<String, AttributeValue>) {
        self.store
            .client()
            .put_item()
            .table_name(self.store.table())
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
}

/// A payload whose `name` is sealed for `subject` under the context `e1`.
async fn sealed(cipher: &FieldCipher, subject: &str) -> Value {
    let mut value = json!({ "name": "Ada Lovelace" });
    cipher.seal("acme", "e1", &mut value, &PersonalData::new(subject, ["/name"])).await.unwrap();
    value
}

fn malformed(result: Result<impl std::fmt::Debug, Error>, subject: &str, what: &str) {
    match result {
        Err(Error::Backend { ref source, retryable: false }) => {
            let item = source.downcast_ref::<MalformedKeyItem>().unwrap_or_else(|| panic!("{source}"));
            assert_eq!((item.what, item.subject.as_str()), (what, subject), "{item}");
        }
        other => panic!("expected a malformed {what} item, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_item_missing_or_mistyping_an_attribute_is_an_error_not_a_forgotten_subject() {
    let f = fixture().await;
    for (subject, corrupt) in
        [("cust-missing", None), ("cust-mistyped", Some(AttributeValue::S("bm90IGJ5dGVz".into())))]
    {
        let value = sealed(&f.cipher(), subject).await;
        let mut item = f.key_item(subject).await;
        match corrupt {
            None => item.remove("wrapped_key"),
            Some(wrong) => item.insert("wrapped_key".into(), wrong),
        };
        f.put(item).await;

        let cold = f.cipher();
        let mut opened = value.clone();
        let result = cold.open("acme", "e1", &mut opened).await;
        assert!(!is_redacted_marker(&opened["name"]), "{subject}: read as forgotten: {opened}");
        malformed(result, subject, "data key");
        malformed(cold.keys().key_for_read("acme", subject).await, subject, "data key");
        // Writing for the subject must not paper over it with a new key either.
        malformed(cold.keys().key_for_write("acme", subject).await, subject, "data key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_index_item_without_its_stream_is_an_error_not_an_empty_export() {
    let f = fixture().await;
    let cipher = f.cipher();
    let stream = StreamId::new("acme", "order", "o-1").unwrap();
    sealed(&cipher, "cust-index").await;
    cipher.keys().remember_stream("acme", "cust-index", &stream).await.unwrap();
    assert_eq!(cipher.keys().streams_of("acme", "cust-index").await.unwrap(), std::slice::from_ref(&stream));

    let sk = format!("{STREAM_SK_PREFIX}{stream}");
    let key = [
        ("pk".to_owned(), AttributeValue::S(subject_pk("acme", "cust-index"))),
        ("sk".to_owned(), AttributeValue::S(sk)),
    ];
    let out = f.store.client().get_item().table_name(f.store.table()).set_key(Some(key.into())).send();
    let mut item = out.await.unwrap().item.unwrap();
    item.remove("stream_id");
    f.put(item).await;
    malformed(f.cipher().keys().streams_of("acme", "cust-index").await, "cust-index", "subject stream");
    malformed(
        f.cipher().export_subject(&f.store, "acme", "cust-index").await,
        "cust-index",
        "subject stream",
    );
    // Forgetting still erases: the key item and the malformed index item go, by key.
    cipher.keys().forget("acme", "cust-index").await.unwrap();
    assert_eq!(f.cipher().keys().streams_of("acme", "cust-index").await.unwrap(), []);
}
