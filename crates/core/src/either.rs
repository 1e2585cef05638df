//! An event of one of two aggregates: what a read model over the streams of both reads.

use std::cell::Cell;

use serde::de::{DeserializeOwned, Error as _, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::{Event, PersonalData};

/// An event of either of two event types: `type Event = Either<AccountEvent, TransferEvent>` in a
/// [`Projection`](crate::projection::Projection) that follows both categories
/// (`Projection::OTHER_CATEGORIES`).
///
/// It decodes by the event type's name: the left type's when it is one of the left enum's variants,
/// else the right's. A name both types use cannot be told apart: [`Event::ambiguous_types`] lists
/// it, and a service refuses a read model over such events when it starts (name the variants
/// apart). Encoded, it is the inner event. Three categories nest: `Either<A, Either<B, C>>`.
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

    fn type_names() -> Option<Vec<&'static str>> {
        let mut names = L::type_names()?;
        names.extend(R::type_names()?);
        Some(names)
    }

    fn ambiguous_types() -> Vec<&'static str> {
        match (L::type_names(), R::type_names()) {
            (Some(left), Some(right)) => {
                let mut shared: Vec<&'static str> =
                    left.iter().copied().filter(|name| right.contains(name)).collect();
                shared.extend(L::ambiguous_types());
                shared.extend(R::ambiguous_types());
                shared
            }
            // A side whose names cannot be listed cannot be told apart from the other by name.
            _ => vec![UNLISTED],
        }
    }
}

/// What [`Event::ambiguous_types`] reports for an `Either` with a side whose type names cannot be
/// listed (not a serde-derived, externally tagged enum).
pub const UNLISTED: &str = "(the type names of a side that is not a serde-derived enum)";

/// The variant names serde's derive declares for an enum (`None` for any other type, an `Either`
/// included).
pub fn variant_names<E: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let found = Cell::new(None);
    let _ = E::deserialize(VariantProbe(&found));
    found.get()
}

/// A deserializer that only records the variants an enum asks for.
struct VariantProbe<'a>(&'a Cell<Option<&'static [&'static str]>>);

impl<'de> Deserializer<'de> for VariantProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(Self::Error::custom("not an enum"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(Some(variants));
        Err(Self::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
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

impl<'de, L: Event, R: Event> Deserialize<'de> for Either<L, R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        // An externally tagged variant: `{"Name": fields}`, or `"Name"` for a unit variant.
        let tag = match &value {
            Value::Object(map) if map.len() == 1 => map.keys().next().cloned().unwrap_or_default(),
            Value::String(name) => name.clone(),
            _ => return Err(D::Error::custom("an event is one variant: {\"Type\": fields} or \"Type\"")),
        };
        // By name: the left's when it declares the tag (its variants, or both sides' of a nested
        // `Either`). A side whose names cannot be listed is refused by the registry; here the left
        // is then tried first, an unknown tag told by serde's own message (see `decode_event`).
        if let Some(names) = L::type_names() {
            if names.contains(&tag.as_str()) {
                return serde_json::from_value::<L>(value).map(Self::Left).map_err(D::Error::custom);
            }
            return match serde_json::from_value::<R>(value) {
                Ok(event) => Ok(Self::Right(event)),
                Err(error) if unknown(&error, &tag) => Err(D::Error::unknown_variant(&tag, &[])),
                Err(error) => Err(D::Error::custom(error)),
            };
        }
        match serde_json::from_value::<L>(value.clone()) {
            Ok(event) => return Ok(Self::Left(event)),
            Err(error) if !unknown(&error, &tag) => return Err(D::Error::custom(error)),
            Err(_) => {}
        }
        match serde_json::from_value::<R>(value) {
            Ok(event) => Ok(Self::Right(event)),
            Err(error) if unknown(&error, &tag) => Err(D::Error::unknown_variant(&tag, &[])),
            Err(error) => Err(D::Error::custom(error)),
        }
    }
}

/// serde's message for an unknown enum tag (`de::Error::unknown_variant`).
fn unknown(error: &serde_json::Error, tag: &str) -> bool {
    error.to_string().starts_with(&format!("unknown variant `{tag}`"))
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

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum OtherNoteEvent {
        Noted { text: String },
    }

    impl Event for OtherNoteEvent {
        fn event_type(&self) -> &'static str {
            "Noted"
        }
    }

    #[test]
    fn names_both_sides_use_are_listed_and_three_categories_nest() {
        assert_eq!(variant_names::<NoteEvent>(), Some(&["Noted", "Cleared"][..]));
        assert_eq!(variant_names::<Both>(), None);
        assert_eq!(Both::type_names().map(|n| n.len()), Some(3));
        assert!(Both::ambiguous_types().is_empty());
        assert_eq!(Either::<NoteEvent, OtherNoteEvent>::ambiguous_types(), ["Noted"]);
        type Three = Either<TallyEvent, Either<OtherNoteEvent, NoteEvent>>;
        assert_eq!(Three::ambiguous_types(), ["Noted"], "found inside the nested pair too");
        type Across = Either<NoteEvent, Either<TallyEvent, OtherNoteEvent>>;
        assert_eq!(Across::ambiguous_types(), ["Noted"], "found across levels");
        type Outer = Either<Either<TallyEvent, OtherNoteEvent>, NoteEvent>;
        assert_eq!(Outer::ambiguous_types(), ["Noted"], "found across levels, nested on the left");
        assert_eq!(Outer::type_names().map(|n| n.len()), Some(4));
        let bumped: Outer = decode_event("Bumped", 1, json!({ "n": 1 })).unwrap();
        assert_eq!(bumped, Either::Left(Either::Left(TallyEvent::Bumped { n: 1 })));
        let cleared: Three = decode_event("Cleared", 2, Value::Null).unwrap();
        assert_eq!(cleared, Either::Right(Either::Right(NoteEvent::Cleared)));
        assert!(matches!(decode_event::<Three>("Nope", 1, Value::Null), Err(Error::UnknownEventType { .. })));
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
