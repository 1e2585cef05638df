//! Field sealing: round trips, typed failures for tampering and moved ciphertexts, forgetting,
//! export, and the key cache's limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use strata_core::crypto::{CacheLimits, CryptoError, DataKey, KeyCache, SEALED_KEY};
use strata_core::{Error, FieldCipher, KeyProvider, LocalKeys, PersonalData, redacted_marker};

fn personal() -> PersonalData {
    PersonalData::new("cust-1", ["/name", "/address", "/missing"])
}

fn payload() -> Value {
    json!({"name": "Ada Lovelace", "address": {"city": "London", "line1": "12 St James's Square"}, "total": 5})
}

async fn sealed(cipher: &FieldCipher, context: &str) -> Value {
    let mut value = payload();
    cipher.seal("acme", context, &mut value, &personal()).await.unwrap();
    value
}

#[tokio::test]
async fn sealed_fields_hold_no_plaintext_and_open_back_exactly() {
    let cipher = FieldCipher::local();
    let mut value = sealed(&cipher, "evt-1").await;
    let text = value.to_string();
    for plain in ["Ada", "Lovelace", "London", "James"] {
        assert!(!text.contains(plain), "{plain} in {text}");
    }
    assert!(value["name"].get(SEALED_KEY).is_some());
    assert_eq!(value["total"], 5, "fields not named stay as they are");
    assert!(value.get("missing").is_none(), "an absent field is skipped, not created");
    cipher.open("acme", "evt-1", &mut value).await.unwrap();
    assert_eq!(value, payload());
}

#[tokio::test]
async fn a_tampered_moved_or_misattributed_ciphertext_is_a_typed_error() {
    let cipher = FieldCipher::local();
    let tampered = |error: Error| matches!(error, Error::Crypto(CryptoError::Tampered { .. }));

    // One flipped ciphertext byte.
    let mut value = sealed(&cipher, "evt-1").await;
    let c = value["name"][SEALED_KEY]["c"].as_str().unwrap().to_owned();
    let mut bytes: Vec<char> = c.chars().collect();
    bytes[3] = if bytes[3] == 'A' { 'B' } else { 'A' };
    value["name"][SEALED_KEY]["c"] = Value::String(bytes.into_iter().collect());
    assert!(tampered(cipher.open("acme", "evt-1", &mut value).await.unwrap_err()));

    // The same ciphertext read as another event's.
    let mut value = sealed(&cipher, "evt-1").await;
    assert!(tampered(cipher.open("acme", "evt-2", &mut value).await.unwrap_err()));

    // Swapped between two fields of one event.
    let mut value = sealed(&cipher, "evt-1").await;
    let name = value["name"].clone();
    value["name"] = value["address"].clone();
    value["address"] = name;
    assert!(tampered(cipher.open("acme", "evt-1", &mut value).await.unwrap_err()));

    // Moved to another event's payload.
    let mut other = sealed(&cipher, "evt-2").await;
    other["name"] = sealed(&cipher, "evt-1").await["name"].clone();
    assert!(tampered(cipher.open("acme", "evt-2", &mut other).await.unwrap_err()));

    // Another tenant with the same subject id: its key is another generation, so the field reads as
    // redacted (never as plaintext); relabelled with that tenant's key id, it fails to authenticate.
    let mut value = sealed(&cipher, "evt-1").await;
    let globex = cipher.keys().key_for_write("globex", "cust-1").await.unwrap();
    let mut moved = value.clone();
    cipher.open("globex", "evt-1", &mut moved).await.unwrap();
    assert_eq!(moved["name"], redacted_marker());
    value["name"][SEALED_KEY]["k"] = json!(globex.id());
    assert!(tampered(cipher.open("globex", "evt-1", &mut value).await.unwrap_err()));

    // Malformed and unknown formats.
    let mut value = json!({"name": {SEALED_KEY: {"v": 1, "k": "k1", "sub": "cust-1", "n": "!!", "c": ""}}});
    assert!(matches!(
        cipher.open("acme", "e", &mut value).await,
        Err(Error::Crypto(CryptoError::Malformed { .. }))
    ));
    let mut value = json!({"name": {SEALED_KEY: {"v": 9, "k": "k1", "sub": "cust-1", "n": "", "c": ""}}});
    assert!(matches!(
        cipher.open("acme", "e", &mut value).await,
        Err(Error::Crypto(CryptoError::UnknownFormat { version: 9, .. }))
    ));
    // Claiming another key generation does not help: unknown generations read as redacted, and the
    // current key with a forged id fails to authenticate (the id is in the associated data).
    let mut value = sealed(&cipher, "evt-1").await;
    value["name"][SEALED_KEY]["k"] = json!("forged");
    cipher.open("acme", "evt-1", &mut value).await.unwrap();
    assert_eq!(value["name"], redacted_marker());
}

#[tokio::test]
async fn user_data_that_looks_sealed_is_left_alone_and_bad_pointers_are_refused() {
    let cipher = FieldCipher::local();
    // A map keyed by user input may hold a "$enc" key: it is data, not a sealed field.
    let mut value = json!({"lines": {SEALED_KEY: {"quantity": 1}}});
    cipher.open("acme", "e", &mut value).await.unwrap();
    assert_eq!(value, json!({"lines": {SEALED_KEY: {"quantity": 1}}}));

    let bad = |fields: Vec<&'static str>| async move {
        let mut value = payload();
        FieldCipher::local().seal("acme", "e", &mut value, &PersonalData::new("s", fields)).await
    };
    for fields in [vec!["name"], vec!["/a~b"], vec!["/address", "/address/city"], vec!["/name", "/name"]] {
        let result = bad(fields.clone()).await;
        assert!(
            matches!(result, Err(Error::Crypto(CryptoError::BadPointer { .. }))),
            "{fields:?}: {result:?}"
        );
    }
    // Null and redacted values hold nothing personal: no key is made for them.
    let keys = LocalKeys::new();
    let cipher = FieldCipher::new(keys.clone());
    let mut value = json!({"name": null, "address": redacted_marker()});
    cipher.seal("acme", "e", &mut value, &personal()).await.unwrap();
    assert!(keys.key_for_read("acme", "cust-1").await.unwrap().is_none());
    // Sealing with an existing key only refuses a subject without one.
    let mut value = payload();
    let result = cipher.seal_existing("acme", "e", &mut value, &personal()).await;
    assert!(matches!(result, Err(Error::Crypto(CryptoError::KeyMissing { .. }))));
    assert_eq!(value, payload(), "nothing was changed");
}

#[tokio::test]
async fn after_forget_fields_read_redacted_export_is_empty_and_no_key_is_recreated() {
    let keys = LocalKeys::new();
    let cipher = FieldCipher::new(keys.clone());
    let value = sealed(&cipher, "evt-1").await;
    let exported = cipher.export("acme", "evt-1", &value, "cust-1").await.unwrap();
    assert_eq!(exported.iter().map(|f| f.pointer.as_str()).collect::<Vec<_>>(), ["/address", "/name"]);
    assert_eq!(exported[1].value, json!("Ada Lovelace"));
    assert!(cipher.export("acme", "evt-1", &value, "someone-else").await.unwrap().is_empty());

    keys.forget("acme", "cust-1").await.unwrap();

    let mut opened = value.clone();
    cipher.open("acme", "evt-1", &mut opened).await.unwrap();
    assert_eq!(opened, json!({"name": redacted_marker(), "address": redacted_marker(), "total": 5}));
    assert!(cipher.export("acme", "evt-1", &value, "cust-1").await.unwrap().is_empty());
    assert!(keys.key_for_read("acme", "cust-1").await.unwrap().is_none(), "reads never create a key");

    // The subject comes back: a new key generation. Old fields stay redacted, new ones open.
    let fresh = sealed(&cipher, "evt-2").await;
    let mut old = value.clone();
    cipher.open("acme", "evt-1", &mut old).await.unwrap();
    assert_eq!(old["name"], redacted_marker());
    let mut new = fresh.clone();
    cipher.open("acme", "evt-2", &mut new).await.unwrap();
    assert_eq!(new, payload());
    assert!(cipher.export("acme", "evt-1", &value, "cust-1").await.unwrap().is_empty());
    assert_eq!(cipher.export("acme", "evt-2", &fresh, "cust-1").await.unwrap().len(), 2);
}

#[test]
fn the_key_cache_honours_ttl_uses_and_size() {
    let key = DataKey::random();
    let cache = KeyCache::new(CacheLimits { ttl: Duration::from_secs(60), max_uses: 2, max_entries: 2 });
    cache.put("t", "a", key.clone());
    assert_eq!(cache.get("t", "a"), Some(key.clone()));
    assert_eq!(cache.get("t", "a"), Some(key.clone()));
    assert_eq!(cache.get("t", "a"), None, "used up");
    cache.put("t", "a", key.clone());
    cache.put("t", "b", key.clone());
    cache.put("t", "c", key.clone());
    assert_eq!(cache.get("t", "a"), None, "the oldest entry was evicted");
    assert!(cache.get("t", "c").is_some());
    cache.remove("t", "c");
    assert!(cache.get("t", "c").is_none());

    let expired = KeyCache::new(CacheLimits { ttl: Duration::ZERO, ..CacheLimits::default() });
    expired.put("t", "a", key);
    assert!(expired.get("t", "a").is_none());
    let shown = format!("{:?}", DataKey::from_bytes("k-1", [7; 32]));
    assert_eq!(shown, "DataKey(k-1, ..)");
}
