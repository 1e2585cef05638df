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
    payloads: Vec<(String, Value)>,
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
    let payloads = variants(&schema)
        .into_iter()
        .map(|(name, payload)| (name, inline_sealed(payload, &sealed)))
        .collect();
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
/// variants (a string enum).
fn variants(schema: &Value) -> Vec<(String, Value)> {
    let all = schema.get("oneOf").and_then(Value::as_array).cloned().unwrap_or_else(|| vec![schema.clone()]);
    let mut found = Vec::new();
    for variant in &all {
        if let Some(names) = variant.get("enum").and_then(Value::as_array) {
            found.extend(
                names.iter().filter_map(Value::as_str).map(|n| (n.to_owned(), json!({ "type": "null" }))),
            );
        } else if let Some((name, fields)) =
            variant.get("properties").and_then(Value::as_object).and_then(|p| p.iter().next())
        {
            found.push((name.clone(), draft4(fields.clone())));
        }
    }
    found
}

/// The service's event document: `{"events": {detail-type: schema}}`, each schema whole (its own
/// `definitions`). Two aggregates with an event type of the same name share its entry: either
/// payload, either category.
pub fn event_document(title: &str, aggregates: impl IntoIterator<Item = EventPayloads>) -> Value {
    let mut by_type: std::collections::BTreeMap<String, Vec<(&'static str, Value)>> = Default::default();
    let mut definitions = Map::new();
    for aggregate in aggregates {
        definitions.extend(aggregate.definitions);
        for (event_type, payload) in aggregate.payloads {
            by_type.entry(event_type).or_default().push((aggregate.category, payload));
        }
    }
    let events: Map<String, Value> = by_type
        .into_iter()
        .map(|(event_type, shapes)| {
            let categories: Vec<&str> = shapes.iter().map(|(c, _)| *c).collect();
            let payload = match shapes.as_slice() {
                [(_, one)] => one.clone(),
                many => json!({ "oneOf": many.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>() }),
            };
            let schema = detail_schema(&event_type, &categories, payload, &definitions);
            (event_type, schema)
        })
        .collect();
    json!({
        "title": title,
        "description": "JSON Schemas (draft-04) of the detail of every event the service publishes, by detail-type. Generated from the domain's types; personal fields are sealed (x-strata-personal). A detail with claim_check true has no payload: read the event from the store.",
        "events": events,
    })
}

/// The `detail` of one event type: the publisher's envelope around its payload.
fn detail_schema(
    event_type: &str,
    categories: &[&str],
    payload: Value,
    definitions: &Map<String, Value>,
) -> Value {
    let payload_text = payload.to_string();
    // Only the definitions this payload names (directly or through another definition).
    let mut used = Map::new();
    let mut pending: Vec<String> = references(&payload_text);
    while let Some(name) = pending.pop() {
        if used.contains_key(&name) {
            continue;
        }
        if let Some(definition) = definitions.get(&name) {
            pending.extend(references(&definition.to_string()));
            used.insert(name, definition.clone());
        }
    }
    let mut schema = json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": event_type,
        "description": format!("The detail of a {event_type} event (detail-type {event_type})."),
        "type": "object",
        "required": ["event_id", "stream", "version", "event_type", "schema_version", "metadata"],
        "properties": {
            "event_id": { "type": "string", "description": "The event's id (a ULID): unique." },
            "stream": {
                "type": "object",
                "required": ["tenant", "category", "id"],
                "properties": {
                    "tenant": { "type": "string" },
                    "category": { "enum": categories },
                    "id": { "type": "string" }
                },
                "additionalProperties": false
            },
            "version": { "type": "integer", "minimum": 1, "description": "Its position in the stream: consumers deduplicate and order by (stream, version)." },
            "event_type": { "enum": [event_type] },
            "schema_version": { "type": "integer", "minimum": 1 },
            "payload": payload,
            "metadata": metadata_schema(),
            "claim_check": { "type": "boolean", "description": "true: the payload was left out for size; read the event from the store." }
        },
        "additionalProperties": false
    });
    if !used.is_empty() {
        schema["definitions"] = Value::Object(used);
    }
    schema
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
        },
        "additionalProperties": false
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
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, inner)| match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => {
                        let name = target.trim_start_matches("#/components/schemas/");
                        (key, Value::String(format!("#/definitions/{name}")))
                    }
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
