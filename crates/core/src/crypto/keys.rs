//! Key providers and caches: [`LocalKeys`] (in memory) and [`KeyCache`] (bounded unwrapped keys).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{BoxFuture, DataKey, KeyProvider, KeyRead};
use crate::{Error, StreamId};

/// Data keys held in memory (tests, the in-memory path, the demo). Clones share keys.
#[derive(Debug, Clone, Default)]
pub struct LocalKeys {
    keys: Arc<Mutex<HashMap<Subject, DataKey>>>,
    streams: Arc<Mutex<HashMap<Subject, BTreeSet<StreamId>>>>,
}

/// (tenant, subject).
type Subject = (String, String);

impl LocalKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<Subject, DataKey>) -> R) -> R {
        f(&mut self.keys.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The stored key, if any.
    fn stored(&self, tenant: &str, subject: &str) -> Option<DataKey> {
        self.with(|keys| keys.get(&(tenant.to_owned(), subject.to_owned())).cloned())
    }

    /// The stored key, created (once) if the subject has none.
    fn stored_or_created(&self, tenant: &str, subject: &str) -> DataKey {
        self.with(|keys| {
            keys.entry((tenant.to_owned(), subject.to_owned())).or_insert_with(DataKey::random).clone()
        })
    }
}

impl KeyProvider for LocalKeys {
    fn key_for_write<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, Error>> {
        let key = self.stored_or_created(tenant, subject);
        Box::pin(async move { Ok(key) })
    }

    fn key_for_read<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<DataKey>, Error>> {
        let key = self.stored(tenant, subject);
        Box::pin(async move { Ok(key) })
    }

    fn read_key<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<KeyRead, Error>> {
        // No cache: every answer is the stored key.
        let key = self.stored(tenant, subject);
        Box::pin(async move { Ok(KeyRead { key, stored: true }) })
    }

    fn forget<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let id = (tenant.to_owned(), subject.to_owned());
        self.with(|keys| keys.remove(&id));
        self.streams.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        Box::pin(async move { Ok(()) })
    }

    fn remember_stream<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((tenant.to_owned(), subject.to_owned()))
            .or_default()
            .insert(stream.clone());
        Box::pin(async move { Ok(()) })
    }

    fn streams_of<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StreamId>, Error>> {
        let streams = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tenant.to_owned(), subject.to_owned()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        Box::pin(async move { Ok(streams) })
    }
}

/// Limits of a [`KeyCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// How long an unwrapped key may be reused.
    pub ttl: Duration,
    /// How many times an unwrapped key may be handed out before it is fetched again.
    pub max_uses: u32,
    /// How many keys are held at most (the oldest goes first).
    pub max_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(300), max_uses: 10_000, max_entries: 1_000 }
    }
}

struct Cached {
    key: DataKey,
    fetched: Instant,
    uses: u32,
}

/// Unwrapped data keys, bounded in time, uses and count, so a key unwrapped by KMS is not kept for
/// the life of a Lambda container.
pub struct KeyCache {
    limits: CacheLimits,
    entries: Mutex<HashMap<Subject, Cached>>,
    /// Bumped by every [`KeyCache::remove`], so a fetch that raced a forget does not cache its key.
    removals: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl KeyCache {
    /// An empty cache.
    pub fn new(limits: CacheLimits) -> Self {
        Self { limits, entries: Mutex::new(HashMap::new()), removals: AtomicU64::new(0) }
    }

    /// The cached key, counting a use, unless it expired or was used up.
    pub fn get(&self, tenant: &str, subject: &str) -> Option<DataKey> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let id = (tenant.to_owned(), subject.to_owned());
        let entry = entries.get_mut(&id)?;
        if entry.fetched.elapsed() >= self.limits.ttl || entry.uses >= self.limits.max_uses {
            entries.remove(&id);
            return None;
        }
        entry.uses += 1;
        Some(entry.key.clone())
    }

    /// The id of the cached key generation, without counting a use.
    pub fn peek_id(&self, tenant: &str, subject: &str) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(&(tenant.to_owned(), subject.to_owned())).map(|c| c.key.id().to_owned())
    }

    /// A token to pass to [`KeyCache::put_since`]: take it before fetching a key.
    pub fn token(&self) -> u64 {
        self.removals.load(Ordering::SeqCst)
    }

    /// Records what a read past the cache, begun after `token` was taken, found as the subject's
    /// stored key: caches it, or with `None` (no key: forgotten) evicts the subject. When a key was
    /// removed since the token (a forget may have deleted the very key that was read), nothing is
    /// cached and the subject is evicted: a stale or doomed key is never left in place.
    pub fn put_since(&self, token: u64, tenant: &str, subject: &str, key: Option<DataKey>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match key {
            Some(key) if self.removals.load(Ordering::SeqCst) == token => {
                Self::insert(&mut entries, self.limits, tenant, subject, key);
            }
            _ => {
                entries.remove(&(tenant.to_owned(), subject.to_owned()));
            }
        }
    }

    /// Caches a key, evicting the oldest when full.
    pub fn put(&self, tenant: &str, subject: &str, key: DataKey) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Self::insert(&mut entries, self.limits, tenant, subject, key);
    }

    fn insert(
        entries: &mut HashMap<Subject, Cached>,
        limits: CacheLimits,
        tenant: &str,
        subject: &str,
        key: DataKey,
    ) {
        let id = (tenant.to_owned(), subject.to_owned());
        if !entries.contains_key(&id) && entries.len() >= limits.max_entries.max(1) {
            let oldest = entries.iter().min_by_key(|(_, c)| c.fetched).map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(id, Cached { key, fetched: Instant::now(), uses: 0 });
    }

    /// Drops a subject's key after its stored key was deleted (forget): call it after the delete,
    /// so a read that raced the delete cannot cache the doomed key (see [`KeyCache::put_since`]).
    pub fn remove(&self, tenant: &str, subject: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.removals.fetch_add(1, Ordering::SeqCst);
        entries.remove(&(tenant.to_owned(), subject.to_owned()));
    }
}

/// A [`KeyCache`] in front of a shared [`LocalKeys`] table, reading it exactly as
/// `strata_kms::KmsKeys` reads its key items: what one process (one Lambda instance) sees when other
/// processes forget subjects and create new key generations in the shared table. For tests of
/// erasure across processes: give each "process" its own `CachedKeys` over clones of one `LocalKeys`.
#[derive(Debug)]
pub struct CachedKeys {
    table: LocalKeys,
    cache: KeyCache,
}

impl CachedKeys {
    /// A cache with `limits` over `table` (clones of a `LocalKeys` share their keys).
    pub fn new(table: LocalKeys, limits: CacheLimits) -> Self {
        Self { table, cache: KeyCache::new(limits) }
    }

    /// Reads the stored key past the cache and records what was found (a miss evicts).
    fn stored(&self, tenant: &str, subject: &str) -> Option<DataKey> {
        let token = self.cache.token();
        let key = self.table.stored(tenant, subject);
        self.cache.put_since(token, tenant, subject, key.clone());
        key
    }
}

impl KeyProvider for CachedKeys {
    fn key_for_write<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, Error>> {
        // Like KmsKeys: a cached key serves a write; without one the stored key is read first.
        let key = match self.cache.get(tenant, subject).or_else(|| self.stored(tenant, subject)) {
            Some(key) => key,
            None => {
                let token = self.cache.token();
                let key = self.table.stored_or_created(tenant, subject);
                self.cache.put_since(token, tenant, subject, Some(key.clone()));
                key
            }
        };
        Box::pin(async move { Ok(key) })
    }

    fn key_for_read<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<DataKey>, Error>> {
        let key = self.cache.get(tenant, subject).or_else(|| self.stored(tenant, subject));
        Box::pin(async move { Ok(key) })
    }

    fn read_key<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<KeyRead, Error>> {
        let read = match self.cache.get(tenant, subject) {
            Some(key) => KeyRead { key: Some(key), stored: false },
            None => KeyRead { key: self.stored(tenant, subject), stored: true },
        };
        Box::pin(async move { Ok(read) })
    }

    fn refresh<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<DataKey>, Error>> {
        let key = self.stored(tenant, subject);
        Box::pin(async move { Ok(key) })
    }

    fn forget<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // Delete, then evict: see KeyCache::remove.
            self.table.forget(tenant, subject).await?;
            self.cache.remove(tenant, subject);
            Ok(())
        })
    }

    fn remember_stream<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.table.remember_stream(tenant, subject, stream)
    }

    fn streams_of<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StreamId>, Error>> {
        self.table.streams_of(tenant, subject)
    }
}
