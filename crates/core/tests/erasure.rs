//! Erasure across processes in memory: each "process" has its own key cache over one shared key
//! table ([`CachedKeys`] over [`LocalKeys`], as `KmsKeys` caches over the key items). Data opened
//! under a forgotten key generation is never sealed again under a returning subject's new key; a
//! forgotten subject costs a bounded number of key reads; key caches evict what a read saw gone; a
//! transient key failure while opening a snapshot is an error, not a replay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use strata_core::crypto::{BoxFuture, CacheLimits, CachedKeys, DataKey, KeyCache, KeyRead};
use strata_core::fixture::profile::{Profile, ProfileCommand, ProfileEvent, ProfileProjection};
use strata_core::projection::{Delivered, Projector};
use strata_core::{
    CommandContext, Error, EventStore, FieldCipher, InMemoryStore, KeyProvider, LocalKeys, Personal,
    Repository, SnapshotPolicy, StreamId,
};

fn stream(id: &str) -> StreamId {
    StreamId::new("acme", "profile", id).unwrap()
}

fn rename(subject: &str, names: &[&str]) -> ProfileCommand {
    ProfileCommand::Rename { subject: subject.into(), names: names.iter().map(|n| (*n).to_owned()).collect() }
}

fn process(shared: &LocalKeys) -> FieldCipher {
    FieldCipher::new(CachedKeys::new(shared.clone(), CacheLimits::default()))
}

fn repo(store: &InMemoryStore, cipher: &FieldCipher) -> Repository<Profile, InMemoryStore> {
    Repository::new(store.clone()).with_cipher(cipher.clone())
}

#[tokio::test]
async fn an_event_copying_data_opened_under_a_forgotten_key_is_decided_again_on_redacted_state() {
    let (store, shared) = (InMemoryStore::new(), LocalKeys::new());
    let (a, b, fresh) = (process(&shared), process(&shared), process(&shared));
    let ctx = CommandContext::default;
    repo(&store, &a).execute(&stream("p-old"), &rename("s-1", &["Ada"]), ctx()).await.unwrap();
    // Another process forgets the subject, who comes back with a new key (K2).
    b.keys().forget("acme", "s-1").await.unwrap();
    repo(&store, &b).execute(&stream("p-new"), &rename("s-1", &["Grace"]), ctx()).await.unwrap();

    // Process A still caches K1: it opens the old name, and Echo copies it into a new event.
    let outcome = repo(&store, &a).execute(&stream("p-old"), &ProfileCommand::Echo, ctx()).await.unwrap();
    assert_eq!(outcome.version, 2);

    let events = repo(&store, &fresh).read(&stream("p-old"), 1, 10).await.unwrap().events;
    let decoded: Vec<ProfileEvent> = events.iter().map(|e| repo(&store, &fresh).decode(e).unwrap()).collect();
    assert_eq!(
        decoded,
        [
            ProfileEvent::Renamed { subject: "s-1".into(), name: Personal::Redacted },
            ProfileEvent::Echoed { subject: "s-1".into(), name: Personal::Redacted },
        ],
        "the echo was decided again on the reloaded, redacted state: the old name is not under K2"
    );
    let new = repo(&store, &fresh).load(&stream("p-new")).await.unwrap().state;
    assert_eq!(new.name, Some(Personal::Known("Grace".into())));
}

/// Counts every key lookup that reaches the key table (LocalKeys has no cache: each is one read).
#[derive(Clone, Default)]
struct CountingKeys {
    inner: LocalKeys,
    reads: Arc<AtomicU64>,
    fail_reads: Arc<AtomicBool>,
}

impl CountingKeys {
    fn reads(&self) -> u64 {
        self.reads.swap(0, Ordering::SeqCst)
    }

    fn read(&self) -> Result<(), Error> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.fail_reads.swap(false, Ordering::SeqCst) {
            return Err(Error::backend("the key store timed out", true));
        }
        Ok(())
    }
}

impl KeyProvider for CountingKeys {
    fn key_for_write<'a>(&'a self, t: &'a str, s: &'a str) -> BoxFuture<'a, Result<DataKey, Error>> {
        self.inner.key_for_write(t, s)
    }
    fn key_for_read<'a>(&'a self, t: &'a str, s: &'a str) -> BoxFuture<'a, Result<Option<DataKey>, Error>> {
        Box::pin(async move {
            self.read()?;
            self.inner.key_for_read(t, s).await
        })
    }
    fn read_key<'a>(&'a self, t: &'a str, s: &'a str) -> BoxFuture<'a, Result<KeyRead, Error>> {
        Box::pin(async move {
            self.read()?;
            self.inner.read_key(t, s).await
        })
    }
    fn refresh<'a>(&'a self, t: &'a str, s: &'a str) -> BoxFuture<'a, Result<Option<DataKey>, Error>> {
        Box::pin(async move {
            self.read()?;
            self.inner.refresh(t, s).await
        })
    }
    fn forget<'a>(&'a self, t: &'a str, s: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.forget(t, s)
    }
    fn remember_stream<'a>(
        &'a self,
        t: &'a str,
        s: &'a str,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remember_stream(t, s, stream)
    }
    fn streams_of<'a>(&'a self, t: &'a str, s: &'a str) -> BoxFuture<'a, Result<Vec<StreamId>, Error>> {
        self.inner.streams_of(t, s)
    }
}

#[tokio::test]
async fn a_forgotten_subjects_thousand_event_stream_costs_one_key_read_per_load_and_projection() {
    let store = InMemoryStore::new();
    let keys = CountingKeys::default();
    let cipher = FieldCipher::new(keys.clone());
    let repo = repo(&store, &cipher);
    let names: Vec<String> = (0..1_000).map(|i| format!("name-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let s = stream("p-long");
    repo.execute(&s, &rename("s-1", &names), CommandContext::default()).await.unwrap();
    cipher.keys().forget("acme", "s-1").await.unwrap();
    keys.reads();

    let loaded = repo.load(&s).await.unwrap();
    assert_eq!((loaded.version, loaded.state.name), (1_000, Some(Personal::Redacted)));
    assert_eq!(keys.reads(), 1, "one key read for the forgotten subject, not one per event");
    repo.read(&s, 1, 1_000).await.unwrap();
    assert_eq!(keys.reads(), 1, "a page of events: one key read");
    repo.load_at_version(&s, 1_000).await.unwrap();
    assert_eq!(keys.reads(), 1, "a replay: one key read");

    let projector = Projector::new(ProfileProjection, store.clone()).with_cipher(cipher.clone());
    let events = store.read(&s, 1, 1_000).await.unwrap().events;
    let projected = projector.project(&s, events.into_iter().map(Delivered::Event).collect()).await.unwrap();
    assert_eq!(projected.version, 1_000);
    assert_eq!(keys.reads(), 1, "a projection of the stream: one key read");

    // The subject returns: a new key generation exists, and the old fields are of a dead one.
    repo.execute(&stream("p-back"), &rename("s-1", &["Back"]), CommandContext::default()).await.unwrap();
    keys.reads();
    let loaded = repo.load(&s).await.unwrap();
    assert_eq!(loaded.state.name, Some(Personal::Redacted));
    assert_eq!(keys.reads(), 1, "a dead generation costs one read too");
}

#[tokio::test]
async fn a_transient_key_failure_while_opening_a_snapshot_is_an_error_not_a_replay() {
    let store = InMemoryStore::new();
    let keys = CountingKeys::default();
    let repo = repo(&store, &FieldCipher::new(keys.clone())).with_snapshot_policy(SnapshotPolicy::every(1));
    let s = stream("p-snap");
    repo.execute(&s, &rename("s-1", &["Ada"]), CommandContext::default()).await.unwrap();
    assert_eq!(store.snapshot_versions(&s), [1]);

    keys.fail_reads.store(true, Ordering::SeqCst);
    let error = repo.load(&s).await.unwrap_err();
    assert!(matches!(error, Error::Backend { retryable: true, .. }), "{error:?}");
    // Once the key store answers, the snapshot is used as before.
    let loaded = repo.load(&s).await.unwrap();
    assert_eq!(loaded.state.name, Some(Personal::Known("Ada".into())));
}

#[test]
fn a_key_read_past_the_cache_that_finds_no_key_or_races_a_removal_leaves_no_stale_key() {
    let cache = KeyCache::new(CacheLimits::default());
    let old = DataKey::random();
    // A miss evicts.
    cache.put("acme", "s-1", old.clone());
    let token = cache.token();
    cache.put_since(token, "acme", "s-1", None);
    assert!(cache.get("acme", "s-1").is_none(), "a read that found no key evicts the cached one");
    // A read that raced a removal (of any subject) caches nothing and leaves no stale key behind.
    cache.put("acme", "s-1", old.clone());
    let token = cache.token();
    cache.remove("acme", "someone-else");
    cache.put_since(token, "acme", "s-1", Some(DataKey::random()));
    assert!(cache.get("acme", "s-1").is_none(), "the old generation is not left in place");
    // Otherwise the new generation replaces the old.
    cache.put("acme", "s-1", old.clone());
    let new = DataKey::random();
    cache.put_since(cache.token(), "acme", "s-1", Some(new.clone()));
    assert_eq!(cache.get("acme", "s-1").map(|k| k.id().to_owned()), Some(new.id().to_owned()));
}

#[tokio::test]
async fn another_process_forgetting_and_recreating_a_key_is_seen_after_one_read_past_the_cache() {
    let shared = LocalKeys::new();
    let a = CachedKeys::new(shared.clone(), CacheLimits::default());
    let b = CachedKeys::new(shared.clone(), CacheLimits::default());
    let k1 = a.key_for_write("acme", "s-1").await.unwrap();
    b.forget("acme", "s-1").await.unwrap();
    assert!(a.refresh("acme", "s-1").await.unwrap().is_none());
    let k2 = b.key_for_write("acme", "s-1").await.unwrap();
    assert_ne!(k1.id(), k2.id());
    let read = a.key_for_read("acme", "s-1").await.unwrap().unwrap();
    assert_eq!(read.id(), k2.id(), "the miss evicted K1, so the next read finds K2");
}

#[tokio::test]
async fn copying_data_of_a_forgotten_subject_recreates_no_key() {
    let (store, shared) = (InMemoryStore::new(), LocalKeys::new());
    let (a, b) = (process(&shared), process(&shared));
    let ctx = CommandContext::default;
    repo(&store, &a).execute(&stream("p-gone"), &rename("s-1", &["Ada"]), ctx()).await.unwrap();
    b.keys().forget("acme", "s-1").await.unwrap(); // and the subject does not come back
    // Process A still caches K1: Echo copies the old name; it is decided again on redacted state.
    repo(&store, &a).execute(&stream("p-gone"), &ProfileCommand::Echo, ctx()).await.unwrap();
    assert!(shared.key_for_read("acme", "s-1").await.unwrap().is_none(), "no key was created for the copy");
    let events = repo(&store, &b).read(&stream("p-gone"), 2, 1).await.unwrap().events;
    assert_eq!(
        repo(&store, &b).decode(&events[0]).unwrap(),
        ProfileEvent::Echoed { subject: "s-1".into(), name: Personal::Redacted }
    );
}
