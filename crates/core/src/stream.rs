//! Stream identity and optimistic-concurrency expectations.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest tenant accepted, in bytes.
pub const MAX_TENANT_LEN: usize = 64;
/// Longest category accepted, in bytes.
pub const MAX_CATEGORY_LEN: usize = 64;
/// Longest stream id (and other key parts such as subjects) accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// Why a key part (tenant, category, id, subject, idempotency key) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The part is empty.
    #[error("{part} must not be empty")]
    Empty {
        /// Which part: `tenant`, `category`, `id`, ...
        part: &'static str,
    },
    /// The part is longer than its bound.
    #[error("{part} is {len} bytes, longer than the limit of {max}")]
    TooLong {
        /// Which part.
        part: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The part holds a character that would make table keys ambiguous.
    #[error("{part} contains the forbidden character {ch:?}")]
    ForbiddenChar {
        /// Which part.
        part: &'static str,
        /// The offending character.
        ch: char,
    },
}

/// Validates one part of a table key.
///
/// Keys are built as `{tenant}#S#{category}-{id}`, so `#` and control characters are rejected
/// everywhere rather than escaped silently: an escaped key would no longer sort and prefix-match the
/// way IAM `dynamodb:LeadingKeys` conditions expect.
pub fn validate_key_part(part: &'static str, value: &str, max: usize) -> Result<(), KeyError> {
    if value.is_empty() {
        return Err(KeyError::Empty { part });
    }
    if value.len() > max {
        return Err(KeyError::TooLong { part, len: value.len(), max });
    }
    if let Some(ch) = value.chars().find(|c| *c == '#' || c.is_control()) {
        return Err(KeyError::ForbiddenChar { part, ch });
    }
    Ok(())
}

/// The identity of one event stream: a tenant, a category (the aggregate kind) and an id.
///
/// Every part is validated on construction (and on deserialization), so a `StreamId` in hand is
/// always safe to turn into a table key.
///
/// ```
/// use strata_core::StreamId;
/// let stream = StreamId::new("acme", "order", "o-42").unwrap();
/// assert_eq!(stream.to_string(), "acme/order-o-42");
/// assert!(StreamId::new("acme", "order", "a#b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawStreamId")]
pub struct StreamId {
    tenant: String,
    category: String,
    id: String,
}

#[derive(Deserialize)]
struct RawStreamId {
    tenant: String,
    category: String,
    id: String,
}

impl TryFrom<RawStreamId> for StreamId {
    type Error = KeyError;
    fn try_from(raw: RawStreamId) -> Result<Self, KeyError> {
        StreamId::new(raw.tenant, raw.category, raw.id)
    }
}

impl StreamId {
    /// Builds a validated stream id.
    ///
    /// The category may not contain `-` either: the partition key joins category and id with `-`,
    /// and `order-a` + `b` must not collide with `order` + `a-b`.
    pub fn new(
        tenant: impl Into<String>,
        category: impl Into<String>,
        id: impl Into<String>,
    ) -> Result<Self, KeyError> {
        let (tenant, category, id) = (tenant.into(), category.into(), id.into());
        validate_key_part("tenant", &tenant, MAX_TENANT_LEN)?;
        validate_key_part("category", &category, MAX_CATEGORY_LEN)?;
        if category.contains('-') {
            return Err(KeyError::ForbiddenChar { part: "category", ch: '-' });
        }
        validate_key_part("id", &id, MAX_ID_LEN)?;
        Ok(Self { tenant, category, id })
    }

    /// The tenant that owns the stream.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The category (aggregate kind), e.g. `order`.
    pub fn category(&self) -> &str {
        &self.category
    }

    /// The id of the aggregate instance within its category.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}-{}", self.tenant, self.category, self.id)
    }
}

/// What a writer expects the stream's version to be, with KurrentDB semantics.
///
/// Versions count events from 1; a stream with no events has version 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "version", rename_all = "snake_case")]
pub enum ExpectedVersion {
    /// Append whatever the current version is.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last version must be exactly this (`Exact(0)` means the same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream currently at `current` satisfies this expectation.
    pub fn matches(self, current: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::StreamExists => current > 0,
            Self::Exact(v) => current == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("stream exists"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_parts_with_typed_errors() {
        assert_eq!(StreamId::new("", "order", "1"), Err(KeyError::Empty { part: "tenant" }));
        assert_eq!(
            StreamId::new("t#1", "order", "1"),
            Err(KeyError::ForbiddenChar { part: "tenant", ch: '#' })
        );
        assert_eq!(
            StreamId::new("t", "order-x", "1"),
            Err(KeyError::ForbiddenChar { part: "category", ch: '-' })
        );
        assert_eq!(
            StreamId::new("t", "order", "a\nb"),
            Err(KeyError::ForbiddenChar { part: "id", ch: '\n' })
        );
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(
            StreamId::new("t", "order", long),
            Err(KeyError::TooLong { part: "id", len: MAX_ID_LEN + 1, max: MAX_ID_LEN })
        );
        // Ids may contain '-': only the category is split on it.
        assert!(StreamId::new("t", "order", "a-b-c").is_ok());
    }

    #[test]
    fn deserialization_validates() {
        let bad = r#"{"tenant":"t","category":"order","id":"a#b"}"#;
        assert!(serde_json::from_str::<StreamId>(bad).is_err());
        let good = r#"{"tenant":"t","category":"order","id":"a"}"#;
        assert_eq!(serde_json::from_str::<StreamId>(good).unwrap().id(), "a");
    }

    #[test]
    fn expected_version_semantics() {
        use ExpectedVersion::*;
        assert!(Any.matches(0) && Any.matches(7));
        assert!(NoStream.matches(0) && !NoStream.matches(1));
        assert!(!StreamExists.matches(0) && StreamExists.matches(1));
        assert!(Exact(0).matches(0) && Exact(3).matches(3) && !Exact(3).matches(4));
    }
}
