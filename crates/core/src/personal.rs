//! Personal data: which fields of an event (or of aggregate state) hold whose data, and the typed
//! value a field reads as once its subject has been forgotten.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Whose personal data a payload carries and where: the subject (a data subject id, such as a
/// customer id) and the JSON pointers (RFC 6901, relative to the encoded payload or state) of the
/// fields holding it. A pointer that matches nothing (an absent optional field) is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalData {
    /// The data subject.
    pub subject: String,
    /// JSON pointers of the personal fields, such as `/customer_email`.
    pub fields: Vec<&'static str>,
}

impl PersonalData {
    /// Personal `fields` of `subject`.
    pub fn new(subject: impl Into<String>, fields: impl IntoIterator<Item = &'static str>) -> Self {
        Self { subject: subject.into(), fields: fields.into_iter().collect() }
    }
}

/// The key of the marker a forgotten field reads as: `{"$redacted": true}`.
pub const REDACTED_KEY: &str = "$redacted";

/// A personal value, or the marker left once its subject was forgotten. Use it for every field a
/// [`PersonalData`] names, so events and states still decode after `forget`.
///
/// Serializes as the plain value (or `{"$redacted": true}`), so payloads keep their shape.
///
/// Its `Debug` never shows the value (`Known(..)`), so a logged event, state or view leaks nothing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Personal<T> {
    /// The value.
    Known(T),
    /// Erased: the subject's key was deleted.
    Redacted,
}

impl<T> std::fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known(_) => f.write_str("Known(..)"),
            Self::Redacted => f.write_str("Redacted"),
        }
    }
}

impl<T> Personal<T> {
    /// The value, unless redacted.
    pub fn known(&self) -> Option<&T> {
        match self {
            Self::Known(value) => Some(value),
            Self::Redacted => None,
        }
    }

    /// Whether the value was erased.
    pub fn is_redacted(&self) -> bool {
        matches!(self, Self::Redacted)
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Self::Known(value)
    }
}

impl From<&str> for Personal<String> {
    fn from(value: &str) -> Self {
        Self::Known(value.to_owned())
    }
}

/// The marker value a forgotten field is replaced with.
pub fn redacted_marker() -> Value {
    serde_json::json!({ REDACTED_KEY: true })
}

/// Whether a value is the redaction marker.
pub fn is_redacted_marker(value: &Value) -> bool {
    value.as_object().is_some_and(|o| o.len() == 1 && o.get(REDACTED_KEY) == Some(&Value::Bool(true)))
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Known(value) => value.serialize(serializer),
            Self::Redacted => redacted_marker().serialize(serializer),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if is_redacted_marker(&value) {
            return Ok(Self::Redacted);
        }
        serde_json::from_value(value).map(Self::Known).map_err(D::Error::custom)
    }
}

/// `Personal<T>` in a JSON Schema, whatever `T`: marked `x-strata-personal` (the event contracts of
/// `strata_lambda::contracts` describe such a field as it travels and rests: sealed, or erased). This
/// is how utoipa's derive composes a generic field's schema (`Personal<String>` in an event), and
/// gives `Personal<T>` its `PartialSchema`.
#[cfg(feature = "schema")]
impl<T> utoipa::__dev::ComposeSchema for Personal<T> {
    fn compose(
        _generics: Vec<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>,
    ) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::extensions::ExtensionsBuilder;
        use utoipa::openapi::schema::ObjectBuilder;
        ObjectBuilder::new()
            .description(Some(
                "Personal data of the event's subject: sealed under the subject's data key, or erased",
            ))
            .extensions(Some(ExtensionsBuilder::new().add(PERSONAL_SCHEMA_MARK, true).build()))
            .into()
    }
}

#[cfg(feature = "schema")]
impl<T> utoipa::ToSchema for Personal<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Personal")
    }
}

/// The extension that marks a personal field in a JSON Schema.
pub const PERSONAL_SCHEMA_MARK: &str = "x-strata-personal";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_personal_value_serializes_as_itself_and_reads_back_redacted() {
        let known: Personal<String> = "Ada".into();
        assert_eq!(serde_json::to_value(&known).unwrap(), Value::String("Ada".into()));
        let back: Personal<String> = serde_json::from_value(redacted_marker()).unwrap();
        assert!(back.is_redacted());
        let back: Personal<u32> = serde_json::from_value(serde_json::json!(7)).unwrap();
        assert_eq!(back.known(), Some(&7));
        assert!(serde_json::from_value::<Personal<u32>>(serde_json::json!("x")).is_err());
    }
}
