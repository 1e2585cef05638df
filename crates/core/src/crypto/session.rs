//! [`CipherSession`]: the keys one load, projection or export works with, and the key generation
//! each subject's opened plaintext came from.

use std::collections::{BTreeSet, HashMap};

use aes_gcm::AeadCore;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, OsRng, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::{
    CryptoError, DataKey, FORMAT_VERSION, FieldCipher, OpenedField, SEALED_KEY, Sealed, associated_data,
    check_pointers, crypto, find_sealed, open_one, parse_sealed,
};
use crate::Error;
use crate::personal::{PersonalData, is_redacted_marker, redacted_marker};

/// (tenant, subject).
type Subject = (String, String);

/// A subject's key as this session knows it.
struct Memo {
    key: Option<DataKey>,
    /// Read from the stored key in this session (past any cache): current when read, no second look
    /// needed. A session kept in a stream cache drops its memos (`forget_keys`).
    stored: bool,
}

/// The keys one load, projection or export works with, and where its plaintext came from.
///
/// Two guarantees that a single `open` or `seal` call cannot give:
/// - **Bounded key reads.** Each subject's key is read once per session, and looked up past the
///   cache at most once more (when a field names another generation than the cached key). A
///   forgotten subject's 1,000 events cost one key read, not one per event: "no key" and dead
///   generations are remembered for the session.
/// - **No re-sealing of erased data.** Plaintext opened under key generation G may only be sealed
///   again under G. A process can hold a subject's old key in its cache after the subject was
///   forgotten and came back with a new key elsewhere; sealing that old plaintext under the new key
///   would bring erased data back. So [`CipherSession::seal`] and [`CipherSession::seal_existing`]
///   refuse with [`CryptoError::StaleKey`] when the subject's current key is not the generation its
///   opened data came from: reload (with a new session), and the old fields read as redacted.
///
/// Use one session per unit of work (a load and the snapshot or events it leads to; one projection
/// batch and the view it writes), then drop it: it holds unwrapped keys. A repository's stream cache
/// keeps a session past its unit of work with its keys dropped: only the generations its plaintext
/// came from stay, so the rule above holds for the state it caches.
pub struct CipherSession {
    cipher: FieldCipher,
    /// Read each subject's key past the cache (see [`FieldCipher::verified_session`]).
    verified: bool,
    keys: HashMap<Subject, Memo>,
    /// Key generations whose plaintext this session opened, per subject.
    opened: HashMap<Subject, BTreeSet<String>>,
}

impl std::fmt::Debug for CipherSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CipherSession").field("subjects", &self.keys.len()).finish_non_exhaustive()
    }
}

impl CipherSession {
    pub(super) fn new(cipher: FieldCipher, verified: bool) -> Self {
        Self { cipher, verified, keys: HashMap::new(), opened: HashMap::new() }
    }

    /// Opens every sealed field in `payload`, in place, recording the generation each subject's
    /// plaintext came from. A field whose key generation is gone (forgotten) becomes the redaction
    /// marker; one that does not authenticate is [`CryptoError::Tampered`].
    pub async fn open(&mut self, tenant: &str, context: &str, payload: &mut Value) -> Result<(), Error> {
        for (pointer, parsed) in sealed_fields(payload)? {
            let opened = match self.key_that_sealed(tenant, &parsed).await? {
                Some(key) => {
                    let value = open_one(&key, tenant, context, &pointer, &parsed)?;
                    self.opened
                        .entry((tenant.to_owned(), parsed.subject.clone()))
                        .or_default()
                        .insert(parsed.key_id.clone());
                    value
                }
                // The key that sealed it was forgotten.
                None => redacted_marker(),
            };
            if let Some(field) = payload.pointer_mut(&pointer) {
                *field = opened;
            }
        }
        Ok(())
    }

    /// The opened personal fields of `subject` in `payload` (nothing once the subject is forgotten).
    pub async fn export(
        &mut self,
        tenant: &str,
        context: &str,
        payload: &Value,
        subject: &str,
    ) -> Result<Vec<OpenedField>, Error> {
        let mut opened = Vec::new();
        for (pointer, parsed) in sealed_fields(payload)? {
            if parsed.subject != subject {
                continue;
            }
            if let Some(key) = self.key_that_sealed(tenant, &parsed).await? {
                opened.push(OpenedField {
                    value: open_one(&key, tenant, context, &pointer, &parsed)?,
                    pointer,
                });
            }
        }
        Ok(opened)
    }

    /// Seals the fields `personal` names, creating the subject's key if it has none (new events).
    /// [`CryptoError::StaleKey`] when this session opened the subject's data under another key
    /// generation than the current one (the data may have been copied from it).
    pub async fn seal(
        &mut self,
        tenant: &str,
        context: &str,
        payload: &mut Value,
        personal: &PersonalData,
    ) -> Result<(), Error> {
        self.seal_with(tenant, context, payload, personal, true).await
    }

    /// Seals the fields `personal` names with the subject's existing key only, read past caches
    /// ([`CryptoError::KeyMissing`] when it has none): for snapshots and read models, which must never
    /// recreate a forgotten subject's key nor store its data in clear. [`CryptoError::StaleKey`] when
    /// this session opened the subject's data under another key generation than the current one.
    pub async fn seal_existing(
        &mut self,
        tenant: &str,
        context: &str,
        payload: &mut Value,
        personal: &PersonalData,
    ) -> Result<(), Error> {
        self.seal_with(tenant, context, payload, personal, false).await
    }

    async fn seal_with(
        &mut self,
        tenant: &str,
        context: &str,
        payload: &mut Value,
        personal: &PersonalData,
        create: bool,
    ) -> Result<(), Error> {
        check_pointers(&personal.fields)?;
        // Absent, null and redacted fields are skipped: there is nothing personal in them.
        let fields: Vec<&str> = personal
            .fields
            .iter()
            .copied()
            .filter(|p| payload.pointer(p).is_some_and(|v| !v.is_null() && !is_redacted_marker(v)))
            .collect();
        if fields.is_empty() {
            return Ok(());
        }
        let keys = self.cipher.keys();
        let id = (tenant.to_owned(), personal.subject.clone());
        let opened_before = self.opened.contains_key(&id);
        // Data of a subject this session opened may only be sealed under the generation it came
        // from, and never under a key created for it (the data may have been copied from fields of
        // a forgotten key, whose subject has no key now). New events read the key through the cache
        // (no request once it is known): a cached generation the subject lost elsewhere within the
        // cache's lifetime seals under a deleted key, which nobody can open, so no erased data comes
        // back (the new fields of such an event are unreadable too: the window is the key cache's
        // TTL, 5 minutes by default). Snapshots and read models read past the cache.
        let (key, stored) = match (create, opened_before) {
            (true, false) => (Some(keys.key_for_write(tenant, &personal.subject).await?), false),
            (true, true) => {
                let read = keys.read_key(tenant, &personal.subject).await?;
                (read.key, read.stored)
            }
            (false, _) => (keys.refresh(tenant, &personal.subject).await?, true),
        };
        let stale = |key: &DataKey| {
            self.opened.get(&id).is_some_and(|generations| generations.iter().any(|g| g != key.id()))
        };
        let key = match key {
            Some(key) if !stale(&key) => key,
            Some(key) => {
                // Remember the current key, so the reload this asks for finds the old fields redacted.
                self.keys.insert(id, Memo { key: Some(key), stored: true });
                return Err(crypto(CryptoError::StaleKey { subject: personal.subject.clone() }));
            }
            None if opened_before => {
                self.keys.insert(id, Memo { key: None, stored: true });
                return Err(crypto(CryptoError::StaleKey { subject: personal.subject.clone() }));
            }
            None => return Err(crypto(CryptoError::KeyMissing { subject: personal.subject.clone() })),
        };
        let cipher = key.cipher();
        for pointer in fields {
            let Some(field) = payload.pointer_mut(pointer) else { continue };
            let plaintext = zeroize::Zeroizing::new(
                serde_json::to_vec(field)
                    .map_err(|source| Error::Serialize { what: "personal field", source })?,
            );
            let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
            let aad = associated_data(tenant, &personal.subject, key.id(), context, pointer);
            let sealed = cipher
                .encrypt(&nonce, Payload { msg: &plaintext, aad: &aad })
                .map_err(|_| Error::backend("AES-GCM encryption failed", false))?;
            *field = json!({ SEALED_KEY: {
                "v": FORMAT_VERSION,
                "k": key.id(),
                "sub": personal.subject,
                "n": B64.encode(nonce),
                "c": B64.encode(sealed),
            }});
        }
        // What was sealed here came from this generation; data that evolves from it may be sealed
        // again under it.
        self.opened.entry(id.clone()).or_default().insert(key.id().to_owned());
        self.keys.insert(id, Memo { key: Some(key), stored });
        Ok(())
    }

    /// Drops the keys this session holds, keeping the generations its plaintext came from: for a
    /// session kept past its unit of work (a repository's stream cache), whose next opens and seals
    /// must read keys through the key cache again (its TTL and a local forget apply), while what it
    /// opened still may only be sealed under the generation it came from.
    pub(crate) fn forget_keys(&mut self) {
        self.keys.clear();
    }

    /// The key generation that sealed a field, if it still exists. A generation other than the one
    /// this session holds means the subject may have been forgotten and come back in another process:
    /// look past the cache once (unless the session's key was read past it already) before answering
    /// `None`.
    async fn key_that_sealed(&mut self, tenant: &str, sealed: &Sealed) -> Result<Option<DataKey>, Error> {
        let id = (tenant.to_owned(), sealed.subject.clone());
        let keys = self.cipher.keys();
        let memo = match self.keys.remove(&id) {
            Some(memo) => memo,
            None if self.verified => Memo { key: keys.refresh(tenant, &sealed.subject).await?, stored: true },
            None => {
                let read = keys.read_key(tenant, &sealed.subject).await?;
                Memo { key: read.key, stored: read.stored }
            }
        };
        let memo = if !memo.stored && memo.key.as_ref().is_none_or(|k| k.id() != sealed.key_id) {
            Memo { key: keys.refresh(tenant, &sealed.subject).await?, stored: true }
        } else {
            memo
        };
        let key = memo.key.as_ref().filter(|k| k.id() == sealed.key_id).cloned();
        self.keys.insert(id, memo);
        Ok(key)
    }
}

/// Every sealed field of `payload` with its JSON pointer, outermost first.
fn sealed_fields(payload: &Value) -> Result<Vec<(String, Sealed)>, Error> {
    let mut pointers = Vec::new();
    find_sealed(payload, &mut String::new(), &mut pointers);
    pointers
        .into_iter()
        .filter_map(|pointer| {
            let field = payload.pointer(&pointer)?;
            Some(parse_sealed(field, &pointer).map(|parsed| (pointer, parsed)))
        })
        .collect()
}
