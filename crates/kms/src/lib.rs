#![doc = include_str!("../README.md")]

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use aws_sdk_kms::Client;
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use strata_core::crypto::{BoxFuture, CacheLimits, CryptoError, DataKey, KeyCache, KeyRead};
use strata_core::{Error, KeyProvider, MAX_ID_LEN, StreamId, validate_key_part};
use strata_dynamodb::DynamoStore;
use strata_dynamodb::keys_store::WrappedKey;
use zeroize::Zeroizing;

/// How many (tenant, subject, stream) index entries a process remembers having written.
const REMEMBERED_MAX: usize = 10_000;

/// Data keys from KMS: one per (tenant, subject), made by `GenerateDataKey` with the encryption
/// context `{tenant, subject}`, stored wrapped in the event table, unwrapped by `Decrypt` and cached
/// within [`CacheLimits`].
pub struct KmsKeys {
    kms: Client,
    key_id: String,
    store: DynamoStore,
    cache: KeyCache,
    remembered: Mutex<HashSet<(String, String, String, StreamId)>>,
}

impl std::fmt::Debug for KmsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKeys").field("key_id", &self.key_id).field("table", &self.store.table()).finish()
    }
}

impl KmsKeys {
    /// Keys wrapped under the KMS key `key_id` (id, ARN or alias), stored in `store`'s table.
    pub fn new(kms: Client, key_id: impl Into<String>, store: DynamoStore) -> Self {
        Self {
            kms,
            key_id: key_id.into(),
            store,
            cache: KeyCache::new(CacheLimits::default()),
            remembered: Mutex::new(HashSet::new()),
        }
    }

    /// Other cache limits (default: 5 minutes, 10,000 uses, 1,000 keys).
    pub fn with_cache_limits(mut self, limits: CacheLimits) -> Self {
        self.cache = KeyCache::new(limits);
        self
    }

    fn context(tenant: &str, subject: &str) -> HashMap<String, String> {
        HashMap::from([("tenant".to_owned(), tenant.to_owned()), ("subject".to_owned(), subject.to_owned())])
    }

    async fn unwrap_key(&self, tenant: &str, subject: &str, stored: WrappedKey) -> Result<DataKey, Error> {
        let out = self
            .kms
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(stored.wrapped))
            .set_encryption_context(Some(Self::context(tenant, subject)))
            .send()
            .await
            .map_err(|error| match error.as_service_error() {
                Some(
                    DecryptError::InvalidCiphertextException(_) | DecryptError::IncorrectKeyException(_),
                ) => Error::Crypto(CryptoError::KeyRejected { subject: subject.to_owned() }),
                _ => Error::backend(error, true),
            })?;
        let plaintext = Zeroizing::new(
            out.plaintext
                .ok_or_else(|| Error::backend("KMS Decrypt returned no plaintext", true))?
                .into_inner(),
        );
        Ok(DataKey::from_slice(stored.id, &plaintext)?)
    }

    /// The subject's key: cached, or read from the table and unwrapped by KMS.
    async fn fetch(&self, tenant: &str, subject: &str) -> Result<KeyRead, Error> {
        validate_key_part("subject", subject, MAX_ID_LEN)?;
        if let Some(key) = self.cache.get(tenant, subject) {
            return Ok(KeyRead { key: Some(key), stored: false });
        }
        Ok(KeyRead { key: self.fetch_stored(tenant, subject).await?, stored: true })
    }

    /// Reads the stored key (past the cache) and unwraps it, reusing the cached key when it is the
    /// same generation. What it finds replaces the cache entry: no key (forgotten) or another
    /// generation evicts the cached one, so a stale key does not outlive the read that saw it gone.
    async fn fetch_stored(&self, tenant: &str, subject: &str) -> Result<Option<DataKey>, Error> {
        let token = self.cache.token();
        let Some(stored) = self.store.wrapped_key(tenant, subject).await? else {
            self.cache.put_since(token, tenant, subject, None);
            return Ok(None);
        };
        if let Some(cached) = self.cache.get(tenant, subject)
            && cached.id() == stored.id
        {
            return Ok(Some(cached));
        }
        let key = match self.unwrap_key(tenant, subject, stored).await {
            Ok(key) => key,
            Err(error) => {
                // The cached key, if any, is of another generation: it must not outlive this read.
                self.cache.put_since(token, tenant, subject, None);
                return Err(error);
            }
        };
        self.cache.put_since(token, tenant, subject, Some(key.clone()));
        Ok(Some(key))
    }

    /// A cached key serves the write (no request). Only without one is the stored key read, and
    /// created if there is none. A key cached here may have been forgotten (and the subject come
    /// back) in another process: data sealed under it then reads as forgotten, for up to the cache's
    /// TTL; no data is ever sealed under a generation other than the one it was opened under.
    async fn fetch_or_create(&self, tenant: &str, subject: &str) -> Result<DataKey, Error> {
        validate_key_part("subject", subject, MAX_ID_LEN)?;
        // A cached key serves writes too, so a command for a known subject costs no read. If the
        // subject was forgotten by another process within the cache's TTL, what is sealed under the
        // cached (now deleted) key can never be opened: nothing erased comes back, and the new
        // fields read as forgotten. Only a subject without a cached key is read past the cache.
        if let Some(key) = self.cache.get(tenant, subject) {
            return Ok(key);
        }
        if let Some(key) = self.fetch_stored(tenant, subject).await? {
            return Ok(key);
        }
        let token = self.cache.token();
        let out = self
            .kms
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(Self::context(tenant, subject)))
            .send()
            .await
            .map_err(|error| Error::backend(error, true))?;
        let (Some(plaintext), Some(wrapped)) = (out.plaintext, out.ciphertext_blob) else {
            return Err(Error::backend("KMS GenerateDataKey returned no key", true));
        };
        let plaintext = Zeroizing::new(plaintext.into_inner());
        let key = DataKey::from_slice(DataKey::new_id(), &plaintext)?;
        let stored = WrappedKey { id: key.id().to_owned(), wrapped: wrapped.into_inner() };
        if self.store.put_wrapped_key_if_absent(tenant, subject, stored, &self.key_id).await? {
            self.cache.put_since(token, tenant, subject, Some(key.clone()));
            return Ok(key);
        }
        // Another writer created the subject's key first: use theirs, so the subject has one key.
        self.fetch_stored(tenant, subject).await?.ok_or_else(|| {
            Error::backend(format!("the data key of {subject} vanished while being created"), true)
        })
    }
}

impl KeyProvider for KmsKeys {
    fn key_for_write<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, Error>> {
        Box::pin(self.fetch_or_create(tenant, subject))
    }

    fn key_for_read<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<DataKey>, Error>> {
        Box::pin(async move { Ok(self.fetch(tenant, subject).await?.key) })
    }

    fn read_key<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<KeyRead, Error>> {
        Box::pin(self.fetch(tenant, subject))
    }

    fn refresh<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<DataKey>, Error>> {
        Box::pin(async move {
            validate_key_part("subject", subject, MAX_ID_LEN)?;
            self.fetch_stored(tenant, subject).await
        })
    }

    fn forget<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            validate_key_part("subject", subject, MAX_ID_LEN)?;
            // Delete, then evict: evicting first would let a read between the two cache the doomed
            // key for its whole TTL. A read that began before the eviction is not cached either
            // (KeyCache::put_since).
            let deleted = self.store.delete_subject(tenant, subject).await;
            self.cache.remove(tenant, subject);
            // The index goes with the key: a later event of the subject must index its stream again.
            self.remembered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|(t, s, _, _)| !(t == tenant && s == subject));
            deleted
        })
    }

    fn remember_stream<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // Keyed by key generation too: after a forget elsewhere and the subject's return, the new
            // generation indexes its streams again.
            let Some(generation) = self.cache.peek_id(tenant, subject) else {
                return self.store.remember_subject_stream(tenant, subject, stream).await;
            };
            let entry = (tenant.to_owned(), subject.to_owned(), generation, stream.clone());
            if self.remembered.lock().unwrap_or_else(PoisonError::into_inner).contains(&entry) {
                return Ok(());
            }
            self.store.remember_subject_stream(tenant, subject, stream).await?;
            let mut remembered = self.remembered.lock().unwrap_or_else(PoisonError::into_inner);
            if remembered.len() >= REMEMBERED_MAX {
                remembered.clear();
            }
            remembered.insert(entry);
            Ok(())
        })
    }

    fn streams_of<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StreamId>, Error>> {
        Box::pin(self.store.subject_streams(tenant, subject))
    }
}
