//! Field encryption: personal fields are sealed with AES-256-GCM under a data key per (tenant,
//! subject) before anything is stored, and opened on read. Forgetting a subject deletes its key;
//! its fields then read as the redaction marker (crypto-shredding).
//!
//! A sealed field is replaced, in place, by
//! `{"$enc": {"v": 1, "k": key id, "sub": subject, "n": nonce, "c": ciphertext}}` (base64): format
//! version, the id of the data key generation that sealed it, subject, nonce, ciphertext. A subject
//! forgotten and later seen again gets a new key with a new id; fields sealed under the old one read
//! as redacted, never as a decryption failure. The associated data binds the ciphertext to all of those plus its tenant,
//! context (the event id, or the snapshot's stream and version) and JSON pointer, so a ciphertext
//! copied to another event or field fails to open.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::personal::PersonalData;
use crate::{Error, EventStore, StreamId};

mod keys;
mod session;

pub use keys::{CacheLimits, CachedKeys, KeyCache, LocalKeys};
pub use session::CipherSession;

/// The key of a sealed field's object.
pub const SEALED_KEY: &str = "$enc";
const FORMAT_VERSION: u64 = 1;

/// A boxed future, so key providers can be used behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A 256-bit data key in the clear, with the id of its generation. Its `Debug` never shows the key,
/// and its bytes are zeroed when it is dropped (every clone's too).
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
}

impl DataKey {
    /// A key from its generation id and bytes.
    pub fn from_bytes(id: impl Into<String>, bytes: [u8; 32]) -> Self {
        Self { id: id.into(), bytes: Zeroizing::new(bytes) }
    }

    /// A key from its generation id and a slice, which must be 32 bytes.
    pub fn from_slice(id: impl Into<String>, bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes = <[u8; 32]>::try_from(bytes).map_err(|_| CryptoError::BadKey { len: bytes.len() })?;
        Ok(Self::from_bytes(id, bytes))
    }

    /// A fresh random key with a fresh id.
    pub fn random() -> Self {
        Self::from_bytes(Self::new_id(), Aes256Gcm::generate_key(&mut OsRng).into())
    }

    /// A fresh key generation id (a ULID).
    pub fn new_id() -> String {
        ulid::Ulid::new().to_string()
    }

    /// The id of this key's generation, recorded in every field it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        // aes-gcm's `zeroize` feature wipes the expanded key when the cipher is dropped.
        Aes256Gcm::new((&*self.bytes).into())
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({}, ..)", self.id)
    }
}

/// Why a sealed field could not be opened. Never carries plaintext or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: the ciphertext was altered, or moved to another event, field, subject
    /// or tenant.
    #[error("sealed field {pointer} does not authenticate (tampered, or moved from elsewhere)")]
    Tampered {
        /// Where the field is.
        pointer: String,
    },
    /// The sealed object is not in the expected format.
    #[error("sealed field {pointer} is malformed: {reason}")]
    Malformed {
        /// Where the field is.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
    /// A format version this code does not know.
    #[error("sealed field {pointer} has unknown format version {version}")]
    UnknownFormat {
        /// Where the field is.
        pointer: String,
        /// The version found.
        version: u64,
    },
    /// The key service refused to unwrap the subject's data key: the wrapped key was made for
    /// another tenant or subject (encryption context), or under another master key.
    #[error("the data key of subject {subject} was refused by the key service")]
    KeyRejected {
        /// The subject.
        subject: String,
    },
    /// State of a subject without a key (forgotten) was to be sealed with an existing key: refused,
    /// so a snapshot can neither recreate a forgotten subject's key nor store it in clear.
    #[error("subject {subject} has no data key (forgotten); nothing sealed")]
    KeyMissing {
        /// The subject.
        subject: String,
    },
    /// Plaintext of the subject was opened under a key generation that is no longer the subject's
    /// (it was forgotten and came back with a new key, elsewhere, while this process still had the
    /// old key cached) and was about to be sealed again: refused, so erased data is never re-sealed
    /// under the new key. Reload: the old fields then read as redacted. Retried by the repository
    /// and the projector.
    #[error("data of subject {subject} was opened under a key generation that is no longer current; reload")]
    StaleKey {
        /// The subject.
        subject: String,
    },
    /// Declared personal-field pointers that cannot be sealed and opened reliably.
    #[error("personal field pointer {pointer} is invalid: {reason}")]
    BadPointer {
        /// The pointer.
        pointer: String,
        /// Why.
        reason: &'static str,
    },
    /// A data key of the wrong length.
    #[error("a data key must be 32 bytes, got {len}")]
    BadKey {
        /// The length found.
        len: usize,
    },
}

/// What [`KeyProvider::read_key`] found.
#[derive(Debug, Clone)]
pub struct KeyRead {
    /// The subject's key, `None` when it has none.
    pub key: Option<DataKey>,
    /// Whether this was read from the stored key, past any cache (so it is current).
    pub stored: bool,
}

/// Where data keys come from: created on first write, looked up on read, deleted to forget.
pub trait KeyProvider: Send + Sync {
    /// The subject's data key, created (exactly once, even under races) if it has none.
    fn key_for_write<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, Error>>;

    /// The subject's data key, or `None` if it has none (never had, or was forgotten). Never creates.
    fn key_for_read<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<DataKey>, Error>>;

    /// Like [`KeyProvider::key_for_read`], also telling whether the answer was read from the stored
    /// key (past any cache): then a field of another generation needs no second look. Providers with
    /// a cache should say so; the default says `stored: false`.
    fn read_key<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<KeyRead, Error>> {
        Box::pin(async move { Ok(KeyRead { key: self.key_for_read(tenant, subject).await?, stored: false }) })
    }

    /// Like [`KeyProvider::key_for_read`], bypassing any cache: asked when a field names a key
    /// generation other than the cached one (another process forgot the subject and it came back).
    fn refresh<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Option<DataKey>, Error>> {
        self.key_for_read(tenant, subject)
    }

    /// Deletes the subject's key (and its stream index): its sealed fields can never be opened again.
    fn forget<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Records that `stream` holds sealed fields of the subject, for [`FieldCipher::export_subject`].
    /// Called before the events are written, so the index never misses a stream.
    fn remember_stream<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// The streams recorded for the subject.
    fn streams_of<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StreamId>, Error>>;
}

/// Seals and opens personal fields with data keys from a [`KeyProvider`]. Cheap to clone.
#[derive(Clone)]
pub struct FieldCipher {
    keys: Arc<dyn KeyProvider>,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldCipher")
    }
}

/// A personal field of a subject, found in an event by [`FieldCipher::export_subject`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedField {
    /// The stream.
    pub stream: StreamId,
    /// The event's version.
    pub version: u64,
    /// The event's type.
    pub event_type: String,
    /// The field and its decrypted value.
    pub field: OpenedField,
}

/// A personal field opened for export.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedField {
    /// JSON pointer of the field within its payload or state.
    pub pointer: String,
    /// The decrypted value.
    pub value: Value,
}

impl FieldCipher {
    /// A cipher over `keys`.
    pub fn new(keys: impl KeyProvider + 'static) -> Self {
        Self { keys: Arc::new(keys) }
    }

    /// A cipher with in-memory keys.
    pub fn local() -> Self {
        Self::new(LocalKeys::new())
    }

    /// The key provider.
    pub fn keys(&self) -> &dyn KeyProvider {
        &*self.keys
    }

    /// A session for one load, projection or export: it reads each subject's key at most once
    /// (plus one look past the cache), and remembers which key generation each subject's opened
    /// plaintext came from, so that plaintext is never sealed again under another generation. See
    /// [`CipherSession`].
    pub fn session(&self) -> CipherSession {
        CipherSession::new(self.clone(), false)
    }

    /// A session that reads each subject's key past the cache once (one key read per subject, no
    /// KMS call while the cached key is current), so it never opens fields under a key that was
    /// forgotten in another process: for code that hands opened data on to be sealed by another
    /// session (a consumer or process manager that turns an event into a command), where the
    /// generation the data came from would otherwise be lost.
    pub fn verified_session(&self) -> CipherSession {
        CipherSession::new(self.clone(), true)
    }

    /// Replaces each field `personal` names with its sealed form, creating the subject's key if it
    /// has none (for new events). `context` ties the ciphertexts to one event (its id) or one snapshot.
    /// To seal data that was opened from stored fields, use the [`CipherSession`] that opened it.
    pub async fn seal(
        &self,
        tenant: &str,
        context: &str,
        payload: &mut Value,
        personal: &PersonalData,
    ) -> Result<(), Error> {
        self.session().seal(tenant, context, payload, personal).await
    }

    /// Like [`FieldCipher::seal`], but only with the subject's existing key, refreshed past caches
    /// ([`CryptoError::KeyMissing`] if it has none): for snapshots and read models, which must never
    /// recreate the key of a forgotten subject, nor store its data in clear. To seal data that was
    /// opened from stored fields, use [`CipherSession::seal_existing`] on the session that opened it.
    pub async fn seal_existing(
        &self,
        tenant: &str,
        context: &str,
        payload: &mut Value,
        personal: &PersonalData,
    ) -> Result<(), Error> {
        self.session().seal_existing(tenant, context, payload, personal).await
    }

    /// Opens every sealed field in `payload`, in place. A field whose subject has no key (forgotten)
    /// becomes the redaction marker; one that does not authenticate is [`CryptoError::Tampered`].
    pub async fn open(&self, tenant: &str, context: &str, payload: &mut Value) -> Result<(), Error> {
        self.session().open(tenant, context, payload).await
    }

    /// The opened personal fields of `subject` in `payload` (nothing once the subject is forgotten).
    pub async fn export(
        &self,
        tenant: &str,
        context: &str,
        payload: &Value,
        subject: &str,
    ) -> Result<Vec<OpenedField>, Error> {
        self.session().export(tenant, context, payload, subject).await
    }
}

/// Where a paged subject export continues: a stream (its key text, `tenant/category-id`) and the
/// version in it to start from. Streams are visited in the order of their key text, so a stream the
/// subject gains between pages is exported when it sorts after the cursor, and never twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCursor {
    /// The stream, as [`StreamId`]'s text.
    pub stream: String,
    /// The first version not yet exported.
    pub version: u64,
}

/// One page of a subject's export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPage {
    /// The fields, in stream (key text) and version order; empty when the page read only events
    /// without the subject's fields (follow `next` until it is `None`).
    pub fields: Vec<ExportedField>,
    /// Where the next page starts, or `None` when this was the last.
    pub next: Option<ExportCursor>,
    /// The subject has no key (forgotten, or never had personal data): nothing to export. For a
    /// page asked from a cursor, the subject was forgotten during the export, which is incomplete.
    pub forgotten: bool,
}

/// Events a page of [`FieldCipher::export_subject_page`] reads at most: a subject named in few
/// events of long streams still gets pages (of fewer fields) within a request's time.
pub const EXPORT_EVENTS_PER_PAGE: usize = 2_000;

impl FieldCipher {
    /// A page of [`FieldCipher::export_subject`], from `from` (the start when `None`): whole events
    /// until the page's entries pass `max_bytes` of JSON (each field as `{stream, version,
    /// event_type, pointer, value}`; always at least one event with fields) or
    /// [`EXPORT_EVENTS_PER_PAGE`] events are read, so a subject with more personal data than one
    /// response carries, or in more events than one request reads, is exported across requests.
    pub async fn export_subject_page<S: EventStore>(
        &self,
        store: &S,
        tenant: &str,
        subject: &str,
        from: Option<&ExportCursor>,
        max_bytes: usize,
    ) -> Result<ExportPage, Error> {
        let mut fields = Vec::new();
        if self.keys.key_for_read(tenant, subject).await?.is_none() {
            return Ok(ExportPage { fields, next: None, forgotten: true });
        }
        let mut streams = self.keys.streams_of(tenant, subject).await?;
        streams.sort_by_key(ToString::to_string);
        let mut session = self.session();
        let (mut bytes, mut read) = (0usize, 0usize);
        for stream in streams {
            let key = stream.to_string();
            let mut next = match from {
                Some(cursor) if key < cursor.stream => continue,
                Some(cursor) if key == cursor.stream => Some(cursor.version.max(1)),
                _ => Some(1),
            };
            while let Some(start) = next {
                let page = store.read(&stream, start, 100).await?;
                for event in &page.events {
                    if (bytes >= max_bytes && !fields.is_empty()) || read >= EXPORT_EVENTS_PER_PAGE {
                        let next = ExportCursor { stream: key, version: event.version };
                        return Ok(ExportPage { fields, next: Some(next), forgotten: false });
                    }
                    read += 1;
                    let context = event.event_id.to_string();
                    for field in session.export(tenant, &context, &event.payload, subject).await? {
                        let entry = ExportedField {
                            stream: stream.clone(),
                            version: event.version,
                            event_type: event.event_type.clone(),
                            field,
                        };
                        bytes += entry_bytes(&entry);
                        fields.push(entry);
                    }
                }
                next = page.next_version;
            }
        }
        Ok(ExportPage { fields, next: None, forgotten: false })
    }

    /// Every decrypted personal field of `subject` in the events of the streams recorded for it
    /// (see [`KeyProvider::remember_stream`]). Empty once the subject is forgotten.
    pub async fn export_subject<S: EventStore>(
        &self,
        store: &S,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<ExportedField>, Error> {
        let mut exported = Vec::new();
        if self.keys.key_for_read(tenant, subject).await?.is_none() {
            return Ok(exported);
        }
        let mut session = self.session();
        for stream in self.keys.streams_of(tenant, subject).await? {
            let mut next = Some(1);
            while let Some(from) = next {
                let page = store.read(&stream, from, 500).await?;
                for event in &page.events {
                    let context = event.event_id.to_string();
                    for field in session.export(tenant, &context, &event.payload, subject).await? {
                        exported.push(ExportedField {
                            stream: stream.clone(),
                            version: event.version,
                            event_type: event.event_type.clone(),
                            field,
                        });
                    }
                }
                next = page.next_version;
            }
        }
        Ok(exported)
    }
}

/// The JSON bytes of an exported field as an API answers it (`{stream, version, event_type, pointer,
/// value}`), before any escaping of the body.
fn entry_bytes(entry: &ExportedField) -> usize {
    let value = serde_json::json!({
        "stream": entry.stream, "version": entry.version, "event_type": entry.event_type,
        "pointer": entry.field.pointer, "value": entry.field.value,
    });
    serde_json::to_vec(&value).map_or(0, |v| v.len())
}

struct Sealed {
    subject: String,
    key_id: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn associated_data(tenant: &str, subject: &str, key_id: &str, context: &str, pointer: &str) -> Vec<u8> {
    // Unit separators: no part can run into the next (tenants and subjects hold no control chars).
    format!(
        "strata/v{FORMAT_VERSION}\u{1f}{tenant}\u{1f}{subject}\u{1f}{key_id}\u{1f}{context}\u{1f}{pointer}"
    )
    .into_bytes()
}

fn crypto(error: CryptoError) -> Error {
    Error::Crypto(error)
}

fn parse_sealed(field: &Value, pointer: &str) -> Result<Sealed, Error> {
    let malformed =
        |reason: &str| crypto(CryptoError::Malformed { pointer: pointer.into(), reason: reason.into() });
    let body = field.get(SEALED_KEY).and_then(Value::as_object).ok_or_else(|| malformed("not an object"))?;
    let version = body.get("v").and_then(Value::as_u64).ok_or_else(|| malformed("no version"))?;
    if version != FORMAT_VERSION {
        return Err(crypto(CryptoError::UnknownFormat { pointer: pointer.into(), version }));
    }
    let text = |name: &str| body.get(name).and_then(Value::as_str).ok_or_else(|| malformed(name));
    let bytes = |name: &str| B64.decode(text(name)?).map_err(|_| malformed(name));
    let nonce = bytes("n")?;
    if nonce.len() != 12 {
        return Err(malformed("nonce length"));
    }
    Ok(Sealed {
        subject: text("sub")?.to_owned(),
        key_id: text("k")?.to_owned(),
        nonce,
        ciphertext: bytes("c")?,
    })
}

fn open_one(
    key: &DataKey,
    tenant: &str,
    context: &str,
    pointer: &str,
    sealed: &Sealed,
) -> Result<Value, Error> {
    let aad = associated_data(tenant, &sealed.subject, &sealed.key_id, context, pointer);
    let plaintext = Zeroizing::new(
        key.cipher()
            .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
            .map_err(|_| crypto(CryptoError::Tampered { pointer: pointer.into() }))?,
    );
    serde_json::from_slice(&plaintext).map_err(|_| {
        crypto(CryptoError::Malformed { pointer: pointer.into(), reason: "plaintext is not JSON".into() })
    })
}

/// Collects the JSON pointers of sealed fields, outermost first.
fn find_sealed(value: &Value, path: &mut String, found: &mut Vec<String>) {
    match value {
        Value::Object(map) if is_sealed(map) => found.push(path.clone()),
        Value::Object(map) => {
            for (name, child) in map {
                let len = path.len();
                path.push('/');
                path.push_str(&name.replace('~', "~0").replace('/', "~1"));
                find_sealed(child, path, found);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&index.to_string());
                find_sealed(child, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// A sealed field: `{"$enc": {...}}` whose body has exactly the format's members. User data that
/// merely has a `$enc` key (a map keyed by user input, say) is not taken for one.
fn is_sealed(map: &Map<String, Value>) -> bool {
    map.len() == 1
        && map.get(SEALED_KEY).and_then(Value::as_object).is_some_and(|body| {
            body.len() == 5
                && body.get("v").is_some_and(Value::is_u64)
                && ["k", "sub", "n", "c"].iter().all(|m| body.get(*m).is_some_and(Value::is_string))
        })
}

/// Pointers must be canonical (so the one sealed with is the one found on open) and disjoint (a
/// field inside another sealed field could never be reached).
fn check_pointers(pointers: &[&'static str]) -> Result<(), Error> {
    let bad = |pointer: &str, reason| crypto(CryptoError::BadPointer { pointer: pointer.into(), reason });
    for (i, pointer) in pointers.iter().enumerate() {
        if !pointer.starts_with('/') {
            return Err(bad(pointer, "must start with /"));
        }
        let mut chars = pointer.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.peek(), Some('0' | '1')) {
                return Err(bad(pointer, "~ must be escaped as ~0"));
            }
        }
        for other in &pointers[i + 1..] {
            let nested =
                |a: &str, b: &str| a == b || b.strip_prefix(a).is_some_and(|rest| rest.starts_with('/'));
            if nested(pointer, other) || nested(other, pointer) {
                return Err(bad(pointer, "overlaps another personal field"));
            }
        }
    }
    Ok(())
}
