//! An event of one of two aggregates: what a read model over the streams of both reads.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::{Event, PersonalData};

/// An event of either of two event types: `type Event = Either<AccountEvent, TransferEvent>` in a
/// [`Projection`](crate::projection::Projection) that follows both categories
/// (`Projection::OTHER_CATEGORIES`).
///
/// It decodes as the left type's when the event type is one of the left's variants, else as the
/// right's; a name both types use is the left's (name the variants apart). Encoded, it is the inner
/// event.
///
/// ```
/// use strata_core::{Either, decode_event, fixture::tally::TallyEvent};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # enum NoteEvent { Noted { text: String } }
/// # impl strata_core::Event for NoteEvent {
/// #     fn event_type(&self) -> &'static str { "Noted" }
/// # }
/// let event: Either<TallyEvent, NoteEvent> =
///     decode_event("Noted", 1, serde_json::json!({ "text": "hi" })).unwrap();
/// assert_eq!(event, Either::Right(NoteEvent::Noted { text: "hi".into() }));
/// assert!(decode_event::<Either<TallyEvent, NoteEvent>>("Nope", 1, serde_json::Value::Null).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Either<L, R> {
    /// An event of the left type.
    Left(L),
    /// An event of the right type.
    Right(R),
}

impl<L: Event, R: Event> Event for Either<L, R> {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Left(event) => event.event_type(),
            Self::Right(event) => event.event_type(),
        }
    }

    fn personal_data(&self) -> Option<PersonalData> {
        match self {
            Self::Left(event) => event.personal_data(),
            Self::Right(event) => event.personal_data(),
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            Self::Left(event) => event.schema_version(),
            Self::Right(event) => event.schema_version(),
        }
    }
}

impl<L: Serialize, R: Serialize> Serialize for Either<L, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Left(event) => event.serialize(serializer),
            Self::Right(event) => event.serialize(serializer),
        }
    }
}

impl<'de, L: DeserializeOwned, R: DeserializeOwned> Deserialize<'de> for Either<L, R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        // An externally tagged variant: `{"Name": fields}`, or `"Name"` for a unit variant.
        let tag = match &value {
            Value::Object(map) if map.len() == 1 => map.keys().next().cloned().unwrap_or_default(),
            Value::String(name) => name.clone(),
            _ => return Err(D::Error::custom("an event is one variant: {\"Type\": fields} or \"Type\"")),
        };
        // serde's own message for an unknown tag (see `decode_event`): the only way to tell it from a
        // payload that does not fit.
        let unknown =
            |error: &serde_json::Error| error.to_string().starts_with(&format!("unknown variant `{tag}`"));
        match serde_json::from_value::<L>(value.clone()) {
            Ok(event) => return Ok(Self::Left(event)),
            Err(error) if !unknown(&error) => return Err(D::Error::custom(error)),
            Err(_) => {}
        }
        match serde_json::from_value::<R>(value) {
            Ok(event) => Ok(Self::Right(event)),
            Err(error) if unknown(&error) => Err(D::Error::unknown_variant(&tag, &[])),
            Err(error) => Err(D::Error::custom(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixture::tally::TallyEvent;
    use crate::{Error, decode_event, encode_event};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum NoteEvent {
        Noted { text: String },
        Cleared,
    }

    impl Event for NoteEvent {
        fn event_type(&self) -> &'static str {
            match self {
                Self::Noted { .. } => "Noted",
                Self::Cleared => "Cleared",
            }
        }

        fn schema_version(&self) -> u32 {
            2
        }
    }

    type Both = Either<TallyEvent, NoteEvent>;

    #[test]
    fn decodes_each_side_and_encodes_the_inner_event() {
        let right: Both = decode_event("Cleared", 2, Value::Null).unwrap();
        assert_eq!(right, Either::Right(NoteEvent::Cleared));
        let noted = Either::<TallyEvent, _>::Right(NoteEvent::Noted { text: "x".into() });
        let encoded = encode_event(&noted).unwrap();
        assert_eq!((encoded.event_type.as_str(), encoded.schema_version), ("Noted", 2));
        assert_eq!(encoded.payload, json!({ "text": "x" }));
        let left = encode_event(&TallyEvent::Bumped { n: 3 }).unwrap();
        let decoded: Both = decode_event(&left.event_type, left.schema_version, left.payload).unwrap();
        assert_eq!(decoded, Either::Left(TallyEvent::Bumped { n: 3 }));
    }

    #[test]
    fn unknown_types_bad_payloads_and_versions_are_told_apart() {
        assert!(matches!(
            decode_event::<Both>("Nope", 1, Value::Null),
            Err(Error::UnknownEventType { event_type }) if event_type == "Nope"
        ));
        assert!(matches!(decode_event::<Both>("Noted", 2, json!({ "text": 5 })), Err(Error::Decode { .. })));
        assert!(matches!(
            decode_event::<Both>("Noted", 1, json!({ "text": "x" })),
            Err(Error::SchemaVersionMismatch { stored: 1, current: 2, .. })
        ));
    }
}
