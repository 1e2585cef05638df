//! Event contracts: a JSON Schema (draft-04, as EventBridge's schema registry takes it) of the
//! `detail` of every event a service publishes, by detail-type: the envelope the publisher writes
//! (`strata_eventbridge::Detail`: id, stream, version, type, schema version, metadata, and the
//! `claim_check` flag of an event too large for EventBridge) around the event's payload, generated
//! from the domain's event types (`utoipa::ToSchema`). A field typed `Personal<T>` is described as it
//! travels: sealed (`{"$enc": {...}}`) or erased (`{"$redacted": true}`), marked `x-strata-personal`.
//! A service's document: `Service::event_document`.

use serde_json::{Map, Value, json};
use strata_core::{Aggregate, PERSONAL_SCHEMA_MARK};
use utoipa::ToSchema;

/// One aggregate's events: the payload schema of each event type, and the schemas they name.
#[derive(Debug, Clone, Default)]
pub struct EventPayloads {
    category: &'static str,
    payloads: Option<Vec<(String, Value)>>,
    definitions: Map<String, Value>,
}

/// The payload of each event type of `A` (from `A::Event`'s derived schema; a unit variant's
/// payload is `null`).
pub fn event_payloads<A>() -> EventPayloads
where
    A: Aggregate,
    A::Event: ToSchema,
{
    let mut components = Vec::new();
    <A::Event as ToSchema>::schemas(&mut components);
    let schema = serde_json::to_value(<A::Event as utoipa::PartialSchema>::schema()).unwrap_or(Value::Null);
    let converted: Map<String, Value> = components
        .into_iter()
        .map(|(name, schema)| (name, draft4(serde_json::to_value(schema).unwrap_or(Value::Null))))
        .collect();
    // Personal fields inline (`Personal_String` and the like are utoipa's names for them): a field's
    // schema says itself that it is sealed.
    let sealed: Vec<String> = converted
        .iter()
        .filter(|(_, schema)| schema.get(PERSONAL_SCHEMA_MARK) == Some(&Value::Bool(true)))
        .map(|(name, _)| format!("#/definitions/{name}"))
        .collect();
    let definitions = converted
        .into_iter()
        .filter(|(name, _)| !sealed.contains(&format!("#/definitions/{name}")))
        .map(|(name, schema)| (name, inline_sealed(schema, &sealed)))
        .collect();
    // Exactly the type names the event decodes (serde's variants), or the document is refused.
    let declared = <A::Event as strata_core::Event>::type_names();
    let payloads = variants(&schema)
        .filter(|found| {
            let mut names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
            names.sort_unstable();
            declared.as_ref().is_some_and(|declared| {
                let mut declared = declared.clone();
                declared.sort_unstable();
                declared == names
            })
        })
        .map(|found| {
            found.into_iter().map(|(name, payload)| (name, inline_sealed(payload, &sealed))).collect()
        });
    EventPayloads { category: A::CATEGORY, payloads, definitions }
}

/// `value` with every reference to a sealed definition replaced by the sealed schema itself (the
/// reference's siblings, a field's description, kept).
fn inline_sealed(value: Value, sealed: &[String]) -> Value {
    match value {
        Value::Object(mut map) => {
            let target = map.get("$ref").and_then(Value::as_str).map(str::to_owned);
            if target.is_some_and(|t| sealed.contains(&t)) {
                map.remove("$ref");
                let mut inlined = sealed_schema();
                if let Some(object) = inlined.as_object_mut() {
                    object.extend(map);
                }
                return inlined;
            }
            Value::Object(map.into_iter().map(|(key, inner)| (key, inline_sealed(inner, sealed))).collect())
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|item| inline_sealed(item, sealed)).collect())
        }
        other => other,
    }
}

/// The externally tagged variants of an enum's schema: `{"Name": {fields}}` objects, and unit
/// variants (a string enum). `None` when a variant has another shape (nothing is left out silently).
fn variants(schema: &Value) -> Option<Vec<(String, Value)>> {
    let all = schema.get("oneOf").and_then(Value::as_array).cloned().unwrap_or_else(|| vec![schema.clone()]);
    let mut found = Vec::new();
    for variant in &all {
        if let Some(names) = variant.get("enum").and_then(Value::as_array) {
            for name in names {
                found.push((name.as_str()?.to_owned(), json!({ "type": "null" })));
            }
        } else {
            let properties = variant.get("properties").and_then(Value::as_object)?;
            let [(name, fields)] = properties.iter().collect::<Vec<_>>()[..] else { return None };
            found.push((name.clone(), draft4(fields.clone())));
        }
    }
    Some(found)
}

/// Why a service's event document cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// An event type whose derived schema is not an externally tagged enum's.
    #[error("the events of {category} are not an externally tagged enum (derive ToSchema on the event enum)")]
    NotAnEnum {
        /// The aggregate's category.
        category: &'static str,
    },
    /// Two aggregates' events name different types alike (utoipa names a type by its Rust name).
    #[error("two types named {name} describe different shapes: rename one (#[schema(as = ...)])")]
    NameClash {
        /// The schema name both use.
        name: String,
    },
}

/// The service's event document: `{"events": {detail-type: schema}}`, each schema whole (its own
/// `definitions`). An event type two aggregates share is one of two details, each with its own
/// category and payload.
pub fn event_document(
    title: &str,
    aggregates: impl IntoIterator<Item = EventPayloads>,
) -> Result<Value, ContractError> {
    let mut by_type: std::collections::BTreeMap<String, Vec<(&'static str, Value)>> = Default::default();
    let mut definitions = Map::new();
    for aggregate in aggregates {
        let Some(payloads) = aggregate.payloads else {
            return Err(ContractError::NotAnEnum { category: aggregate.category });
        };
        for (name, schema) in aggregate.definitions {
            match definitions.get(&name) {
                Some(existing) if *existing != schema => return Err(ContractError::NameClash { name }),
                _ => {
                    definitions.insert(name, schema);
                }
            }
        }
        for (event_type, payload) in payloads {
            by_type.entry(event_type).or_default().push((aggregate.category, payload));
        }
    }
    let events: Map<String, Value> = by_type
        .into_iter()
        .map(|(event_type, shapes)| {
            let mut details: Vec<Value> = shapes
                .iter()
                .map(|(category, payload)| detail(&event_type, category, payload.clone()))
                .collect();
            let mut schema = if details.len() == 1 { details.remove(0) } else { json!({ "oneOf": details }) };
            let used = used_definitions(&schema, &definitions);
            if let Some(object) = schema.as_object_mut() {
                let mut head = Map::new();
                head.insert("$schema".into(), json!("http://json-schema.org/draft-04/schema#"));
                head.insert("title".into(), json!(event_type));
                head.insert(
                    "description".into(),
                    json!(format!("The detail of a {event_type} event (detail-type {event_type}).")),
                );
                head.append(object);
                if !used.is_empty() {
                    head.insert("definitions".into(), Value::Object(used));
                }
                *object = head;
            }
            (event_type, schema)
        })
        .collect();
    Ok(json!({
        "title": title,
        "description": "JSON Schemas (draft-04) of the detail of every event the service publishes, by detail-type. Generated from the domain's types; personal fields are sealed (x-strata-personal). A detail with claim_check true has no payload: read the event from the store. The payload is the event type's current schema version; a replay of older stored events carries their own version and shape. New members may be added to the envelope and metadata.",
        "events": events,
    }))
}

/// The definitions a schema names, directly or through another definition.
fn used_definitions(schema: &Value, definitions: &Map<String, Value>) -> Map<String, Value> {
    let mut used = Map::new();
    let mut pending: Vec<String> = references(&schema.to_string());
    while let Some(name) = pending.pop() {
        if used.contains_key(&name) {
            continue;
        }
        if let Some(definition) = definitions.get(&name) {
            pending.extend(references(&definition.to_string()));
            used.insert(name, definition.clone());
        }
    }
    used
}

/// The `detail` of one event type of one category: the publisher's envelope around its payload.
/// The envelope and metadata stay open to new members (a later release may add one).
fn detail(event_type: &str, category: &str, payload: Value) -> Value {
    json!({
        "type": "object",
        "required": ["event_id", "stream", "version", "event_type", "schema_version", "metadata"],
        "properties": {
            "event_id": { "type": "string", "description": "The event's id (a ULID): unique." },
            "stream": {
                "type": "object",
                "required": ["tenant", "category", "id"],
                "properties": {
                    "tenant": { "type": "string" },
                    "category": { "enum": [category] },
                    "id": { "type": "string" }
                }
            },
            "version": { "type": "integer", "minimum": 1, "description": "Its position in the stream: consumers deduplicate and order by (stream, version)." },
            "event_type": { "enum": [event_type] },
            "schema_version": { "type": "integer", "minimum": 1, "description": "The payload's schema version: the payload here is the current one's." },
            "payload": payload,
            "metadata": metadata_schema(),
            "claim_check": { "type": "boolean", "description": "true: the payload was left out for size; read the event from the store." }
        }
    })
}

/// `strata_core::Metadata` as the publisher writes it (a claim check's has no `user`).
fn metadata_schema() -> Value {
    let text = |description: &str| json!({ "type": "string", "description": description });
    json!({
        "type": "object",
        "required": ["correlation_id", "committed_at"],
        "properties": {
            "correlation_id": text("Ties together everything done on behalf of one original request."),
            "causation_id": text("The command or event that directly caused this one."),
            "actor": text("The user or service that issued the command."),
            "idempotency_key": text("The idempotency key the command was sent with."),
            "trace_id": text("The distributed trace id."),
            "committed_at": { "type": "string", "format": "date-time" },
            "user": { "type": "object", "additionalProperties": { "type": "string" } }
        }
    })
}

/// A field as it travels when its type is `Personal<T>`: sealed, or erased by a forget.
fn sealed_schema() -> Value {
    json!({
        PERSONAL_SCHEMA_MARK: true,
        "description": "Personal data of the event's subject, sealed (AES-256-GCM under the subject's data key: open it with strata's FieldCipher) or erased.",
        "oneOf": [
            {
                "type": "object",
                "required": ["$enc"],
                "properties": { "$enc": {
                    "type": "object",
                    "required": ["v", "k", "sub", "n", "c"],
                    "properties": {
                        "v": { "type": "integer" },
                        "k": { "type": "string" },
                        "sub": { "type": "string", "description": "The data subject." },
                        "n": { "type": "string" },
                        "c": { "type": "string" }
                    },
                    "additionalProperties": false
                } },
                "additionalProperties": false
            },
            {
                "type": "object",
                "required": ["$redacted"],
                "properties": { "$redacted": { "enum": [true] } },
                "additionalProperties": false
            }
        ]
    })
}

/// An OpenAPI 3.1 schema (utoipa's) as draft-04: references to `#/definitions/`, personal fields
/// sealed.
fn draft4(value: Value) -> Value {
    match value {
        Value::Object(map) if map.get(PERSONAL_SCHEMA_MARK) == Some(&Value::Bool(true)) => sealed_schema(),
        // OpenAPI 3.1 (2020-12) tuples: `prefixItems` with `items: false`; draft-04 says `items: [...]`
        // with `additionalItems: false`.
        Value::Object(mut map) if map.contains_key("prefixItems") => {
            if let Some(prefix) = map.remove("prefixItems") {
                map.insert("items".into(), draft4(prefix));
                map.insert("additionalItems".into(), Value::Bool(false));
            }
            draft4(Value::Object(map))
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, inner)| match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => match target.strip_prefix("#/components/schemas/") {
                        Some(name) => (key, Value::String(format!("#/definitions/{name}"))),
                        None => (key, Value::String(target)),
                    },
                    (_, inner) => (key, draft4(inner)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(draft4).collect()),
        other => other,
    }
}

/// The definitions a schema's text names.
fn references(text: &str) -> Vec<String> {
    text.split("\"#/definitions/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn payloads(
        category: &'static str,
        payloads: Vec<(&str, Value)>,
        definitions: Map<String, Value>,
    ) -> EventPayloads {
        EventPayloads {
            category,
            payloads: Some(payloads.into_iter().map(|(n, p)| (n.to_owned(), p)).collect()),
            definitions,
        }
    }

    fn detail(category: &str, payload: Value) -> Value {
        json!({
            "event_id": "01J", "stream": { "tenant": "acme", "category": category, "id": "x-1" },
            "version": 1, "event_type": "Archived", "schema_version": 1, "payload": payload,
            "metadata": { "correlation_id": "c", "committed_at": "2026-12-01T00:00:00Z" }
        })
    }

    #[test]
    fn a_type_two_aggregates_share_is_one_of_two_details_each_with_its_category() {
        let account = payloads("account", vec![("Archived", json!({ "type": "null" }))], Map::new());
        let reason = json!({ "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string" } } });
        let transfer = payloads("transfer", vec![("Archived", reason)], Map::new());
        let document = event_document("t", [account, transfer]).unwrap();
        let schema = &document["events"]["Archived"];
        assert_eq!(schema["oneOf"].as_array().map(Vec::len), Some(2), "{schema}");
        // Unit payloads of both would be indistinguishable but for the category each branch pins.
        strata_testing::schema::check(schema, &detail("account", Value::Null)).unwrap();
        strata_testing::schema::check(schema, &detail("transfer", json!({ "reason": "done" }))).unwrap();
        assert!(strata_testing::schema::check(schema, &detail("transfer", Value::Null)).is_err());
        assert!(strata_testing::schema::check(schema, &detail("order", Value::Null)).is_err());
    }

    #[test]
    fn two_shapes_of_one_name_and_events_that_are_no_enum_are_refused() {
        let one = |shape: Value| {
            let definitions = Map::from_iter([("Address".to_owned(), shape)]);
            payloads("a", vec![("Moved", json!({ "$ref": "#/definitions/Address" }))], definitions)
        };
        let clash = event_document("t", [one(json!({ "type": "string" })), one(json!({ "type": "object" }))]);
        assert_eq!(clash.unwrap_err(), ContractError::NameClash { name: "Address".into() });
        let same = event_document("t", [one(json!({ "type": "string" })), one(json!({ "type": "string" }))]);
        assert!(same.is_ok(), "one type used by two aggregates");
        let no_enum = EventPayloads { category: "a", payloads: None, definitions: Map::new() };
        assert_eq!(event_document("t", [no_enum]).unwrap_err(), ContractError::NotAnEnum { category: "a" });
    }

    #[test]
    fn tuples_and_references_become_draft_04() {
        let tuple = json!({ "type": "array", "items": false, "prefixItems": [{ "type": "integer" }, { "$ref": "#/components/schemas/Sku" }] });
        assert_eq!(
            draft4(tuple),
            json!({ "type": "array", "items": [{ "type": "integer" }, { "$ref": "#/definitions/Sku" }], "additionalItems": false })
        );
    }
}
