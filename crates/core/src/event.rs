//! Domain events and their JSON encoding.

use std::fmt::Debug;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::Error;

/// A domain event: a fact that happened, named in the past tense.
///
/// Events are serde enums in serde's default (externally tagged) form. The variant name, or its
/// `#[serde(rename)]`, is the stable type name stored with each event; [`Event::event_type`] must
/// return exactly that name (encoding checks it). Renaming a Rust variant therefore never changes
/// stored data as long as the serde name stays.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use strata_core::Event;
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// enum CounterEvent {
///     Incremented { by: u32 },
///     Reset,
/// }
///
/// impl Event for CounterEvent {
///     fn event_type(&self) -> &'static str {
///         match self {
///             Self::Incremented { .. } => "Incremented",
///             Self::Reset => "Reset",
///         }
///     }
/// }
///
/// let encoded = strata_core::encode_event(&CounterEvent::Incremented { by: 2 }).unwrap();
/// assert_eq!(encoded.event_type, "Incremented");
/// assert_eq!(encoded.payload, serde_json::json!({ "by": 2 }));
/// ```
pub trait Event: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The stable type name of this event (its serde variant name).
    fn event_type(&self) -> &'static str;

    /// Whose personal data this event carries, and in which fields of its encoded payload. Those
    /// fields are sealed before the event is stored and read as [`crate::Personal::Redacted`] once the
    /// subject is forgotten. Declare them as [`crate::Personal`] so the event still decodes then.
    fn personal_data(&self) -> Option<crate::PersonalData> {
        None
    }

    /// The schema version of this event type's current shape. Raise it when the payload changes
    /// incompatibly and register an upcaster from the old version.
    fn schema_version(&self) -> u32 {
        1
    }

    /// The event type names it decodes: an enum's variant names as serde declares them, `None` when
    /// they cannot be listed (a type that is not a serde-derived, externally tagged enum).
    fn type_names() -> Option<Vec<&'static str>>
    where
        Self: Sized,
    {
        crate::either::variant_names::<Self>().map(<[&str]>::to_vec)
    }

    /// Event type names this type cannot tell apart when it decodes (an [`crate::Either`] of two
    /// enums with a variant of the same name, at any depth): a service refuses a read model over
    /// such events when it starts. None for an enum.
    fn ambiguous_types() -> Vec<&'static str>
    where
        Self: Sized,
    {
        Vec::new()
    }
}

/// An event turned into what the store keeps: type, schema version, JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent {
    /// Stable type name.
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u32,
    /// The variant's fields (no type tag).
    pub payload: Value,
}

/// Encodes an event into type name, schema version and payload.
pub fn encode_event<E: Event>(event: &E) -> Result<EncodedEvent, Error> {
    let event_type = event.event_type();
    let value = serde_json::to_value(event)
        .map_err(|source| Error::Encode { event_type: event_type.to_owned(), source })?;
    let payload = match value {
        Value::Object(mut map) if map.len() == 1 && map.contains_key(event_type) => {
            map.remove(event_type).unwrap_or(Value::Null)
        }
        Value::String(tag) if tag == event_type => Value::Null,
        _ => return Err(Error::EventShape { event_type: event_type.to_owned() }),
    };
    Ok(EncodedEvent { event_type: event_type.to_owned(), schema_version: event.schema_version(), payload })
}

/// Decodes a stored payload (already upcast to the current schema) into an event.
///
/// Errors: [`Error::UnknownEventType`] when no variant has that name, [`Error::Decode`] when the
/// payload does not fit it, [`Error::SchemaVersionMismatch`] when the stored schema version is not
/// the one the type declares (an upcaster is missing).
pub fn decode_event<E: Event>(event_type: &str, schema_version: u32, payload: Value) -> Result<E, Error> {
    let mut tagged = serde_json::Map::with_capacity(1);
    tagged.insert(event_type.to_owned(), payload);
    let event: E = serde_json::from_value(Value::Object(tagged)).map_err(|source| {
        // serde reports an unknown enum tag through `de::Error::unknown_variant`, whose message is
        // fixed by serde itself; that is the only way to tell it apart from a bad payload.
        if source.to_string().starts_with(&format!("unknown variant `{event_type}`")) {
            Error::UnknownEventType { event_type: event_type.to_owned() }
        } else {
            Error::Decode { event_type: event_type.to_owned(), source }
        }
    })?;
    if event.schema_version() != schema_version {
        return Err(Error::SchemaVersionMismatch {
            event_type: event_type.to_owned(),
            stored: schema_version,
            current: event.schema_version(),
        });
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Ev {
        Opened {
            name: String,
        },
        #[serde(rename = "Closed")]
        ClosedNow,
        Tuple(u32),
    }

    impl Event for Ev {
        fn event_type(&self) -> &'static str {
            match self {
                Ev::Opened { .. } => "Opened",
                Ev::ClosedNow => "Closed",
                Ev::Tuple(_) => "Tuple",
            }
        }
    }

    #[test]
    fn round_trips_every_variant_shape() {
        for ev in [Ev::Opened { name: "a".into() }, Ev::ClosedNow, Ev::Tuple(3)] {
            let enc = encode_event(&ev).unwrap();
            assert_eq!(decode_event::<Ev>(&enc.event_type, 1, enc.payload).unwrap(), ev);
        }
    }

    #[test]
    fn unknown_type_and_bad_payload_are_typed() {
        assert!(matches!(
            decode_event::<Ev>("Nope", 1, json!({})),
            Err(Error::UnknownEventType { event_type }) if event_type == "Nope"
        ));
        assert!(matches!(decode_event::<Ev>("Opened", 1, json!({"name": 5})), Err(Error::Decode { .. })));
        assert!(matches!(
            decode_event::<Ev>("Opened", 2, json!({"name": "x"})),
            Err(Error::SchemaVersionMismatch { stored: 2, current: 1, .. })
        ));
    }

    #[test]
    fn a_wrong_event_type_name_is_caught_on_encode() {
        #[derive(Debug, Clone, Serialize, Deserialize)]
        enum Lying {
            A,
        }
        impl Event for Lying {
            fn event_type(&self) -> &'static str {
                "B"
            }
        }
        assert!(matches!(encode_event(&Lying::A), Err(Error::EventShape { .. })));
    }
}
