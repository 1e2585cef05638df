//! OpenAPI 3.1 documents of the command and query APIs, generated from the routes here and the
//! command and problem types' JSON Schemas (`utoipa::ToSchema`), so the document cannot drift from
//! the code. A service's documents: `Service::command_document` and `Service::query_document`.

use serde_json::{Map, Value, json};
use strata_core::Aggregate;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

/// One aggregate's share of the command API: a path per command variant, and the schemas they name.
#[derive(Debug, Clone, Default)]
pub struct CommandPaths {
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
}

/// One `POST /{category}/{id}/commands/{name}` per command variant of `A`, with the command's fields
/// as the request body (from `A::Command`'s derived schema).
pub fn command_paths<A>() -> CommandPaths
where
    A: Aggregate,
    A::Command: ToSchema,
{
    let mut components = Vec::new();
    <A::Command as ToSchema>::schemas(&mut components);
    let mut paths = Map::new();
    let internal = <A::Command as strata_core::Command>::INTERNAL;
    for (name, mut body) in command_variants(&<A::Command as utoipa::PartialSchema>::schema()) {
        if internal.contains(&name.as_str()) {
            continue;
        }
        // The handler refuses unknown fields (400): say so.
        if let Some(object) = body.as_object_mut().filter(|o| o.contains_key("properties")) {
            object.insert("additionalProperties".into(), Value::Bool(false));
        }
        let operation = json!({
            "operationId": format!("{}_{name}", A::CATEGORY),
            "summary": format!("Run the {name} command of a {}", A::CATEGORY),
            "tags": [A::CATEGORY],
            "parameters": [
                id_parameter("id"),
                header_parameter("Idempotency-Key", "A repeat returns the first response and writes nothing.", json!({ "type": "string", "minLength": 1, "maxLength": 256 })),
                header_parameter("If-Match", "The version (ETag) the caller saw; 409 when the stream moved on.", json!({ "type": "string" })),
                header_parameter("X-Correlation-Id", "Carried into the events' metadata; generated when absent.", json!({ "type": "string", "maxLength": 128 })),
            ],
            "requestBody": { "required": true, "content": { "application/json": { "schema": body } } },
            "responses": with_problems(json!({
                "200": {
                    "description": "Done: the stream's new version and the ids of the events recorded.",
                    "headers": { "ETag": { "schema": { "type": "string" } } },
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CommandOutcome" } } }
                }
            }), &["400", "403", "404", "405", "409", "413", "422", "503"]),
        });
        paths.insert(format!("/{}/{{id}}/commands/{name}", A::CATEGORY), json!({ "post": operation }));
    }
    let schemas = components
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or(Value::Null)))
        .collect();
    CommandPaths { paths, schemas }
}

/// The command API of several aggregates (a service's: `Service::command_document`).
pub fn command_document(
    title: &str,
    version: &str,
    aggregates: impl IntoIterator<Item = CommandPaths>,
) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for aggregate in aggregates {
        paths.extend(aggregate.paths);
        schemas.extend(aggregate.schemas);
    }
    schemas.insert("CommandOutcome".into(), command_outcome_schema());
    schemas.insert("Problem".into(), problem_schema());
    json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": version },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// The query API of aggregate categories `categories` and read models `projections` (a service's:
/// `Service::query_document`).
pub fn query_document(
    title: &str,
    version: &str,
    categories: &[&str],
    projections: &[(&str, Vec<&str>)],
    admin: bool,
) -> Value {
    let object = json!({ "type": "object" });
    let ok = |description: &str, schema: Value| json!({ "200": { "description": description, "content": { "application/json": { "schema": schema } } } });
    let mut paths = Map::new();
    for category in categories {
        paths.insert(format!("/{category}/{{id}}"), json!({ "get": {
            "operationId": format!("get_{category}_state"),
            "summary": format!("A {category}'s state: now, after a version, or at a time"),
            "tags": [category],
            "parameters": [
                id_parameter("id"),
                query_parameter("version", "State right after this version (0: the initial state).", json!({ "type": "integer", "minimum": 0 })),
                query_parameter("at", "State at this time (RFC 3339).", json!({ "type": "string", "format": "date-time" })),
            ],
            "responses": with_problems(ok("The state and its version.", json!({
                "type": "object", "required": ["stream", "version", "state"],
                "properties": { "stream": { "$ref": "#/components/schemas/StreamId" }, "version": { "type": "integer" }, "state": object }
            })), &["400", "403", "404", "405", "503"]),
        }}));
        paths.insert(format!("/{category}/{{id}}/events"), json!({ "get": {
            "operationId": format!("get_{category}_events"),
            "summary": format!("A {category}'s events, oldest first, a page at a time"),
            "tags": [category],
            "parameters": [id_parameter("id"), cursor_parameter(), limit_parameter(1000)],
            "responses": with_problems(ok("A page of events.", json!({
                "type": "object", "required": ["events"],
                "properties": { "events": { "type": "array", "items": object }, "next_cursor": { "type": "string" } }
            })), &["400", "403", "404", "405", "503"]),
        }}));
    }
    for (projection, followed) in projections {
        // A read model over several aggregates names the stream's category (default the first).
        let mut parameters = vec![id_parameter("id")];
        if followed.len() > 1 {
            parameters.push(query_parameter(
                "category",
                "The stream's category (default the first).",
                json!({ "type": "string", "enum": followed }),
            ));
        }
        paths.insert(format!("/views/{projection}/{{id}}"), json!({ "get": {
            "operationId": format!("get_{projection}_view"),
            "summary": format!("The {projection} read model of one stream"),
            "tags": ["views"],
            "parameters": parameters,
            "responses": with_problems(ok("The view and the version it includes.", json!({
                "type": "object", "required": ["stream", "version", "view"],
                "properties": { "stream": { "$ref": "#/components/schemas/StreamId" }, "version": { "type": "integer" }, "view": object }
            })), &["400", "403", "404", "405", "503"]),
        }}));
        paths.insert(format!("/views/{projection}"), json!({ "get": {
            "operationId": format!("list_{projection}_views"),
            "summary": format!("The {projection} views listed under a lookup (e.g. a customer's orders)"),
            "tags": ["views"],
            "parameters": [
                { "name": "lookup", "in": "query", "required": true, "description": "The lookup partition, e.g. a customer id.", "schema": id_schema() },
                cursor_parameter(),
                limit_parameter(200),
            ],
            "responses": with_problems(ok("A page of views.", json!({
                "type": "object", "required": ["items"],
                "properties": { "items": { "type": "array", "items": object }, "next_cursor": { "type": ["string", "null"] } }
            })), &["400", "403", "405", "503"]),
        }}));
    }
    if admin {
        paths.insert("/admin/subjects/{subject}/export".into(), json!({ "get": {
            "operationId": "export_subject",
            "summary": "Every personal field of a data subject, decrypted, a page at a time (follow next_cursor)",
            "parameters": [id_parameter("subject"), cursor_parameter()],
            "responses": with_problems(ok("A page of the subject's fields.", json!({
                "type": "object", "required": ["subject", "fields"],
                "properties": { "subject": { "type": "string" }, "fields": { "type": "array", "items": object },
                                "next_cursor": { "type": ["string", "null"] } }
            })), &["400", "403", "405", "409", "503"]),
        }}));
        paths.insert("/admin/subjects/{subject}".into(), json!({ "delete": {
            "operationId": "forget_subject",
            "summary": "Forget a data subject: its personal fields read as redacted from now on",
            "parameters": [id_parameter("subject")],
            "responses": with_problems(json!({ "204": { "description": "Forgotten." } }), &["400", "403", "405", "503"]),
        }}));
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": version },
        "paths": paths,
        "components": { "schemas": {
            "Problem": problem_schema(),
            "StreamId": {
                "type": "object", "required": ["tenant", "category", "id"],
                "properties": { "tenant": { "type": "string" }, "category": { "type": "string" }, "id": { "type": "string" } }
            }
        } },
    })
}

/// `(name, fields schema)` per variant of an externally tagged enum's schema.
fn command_variants(schema: &RefOr<Schema>) -> Vec<(String, Value)> {
    let Ok(schema) = serde_json::to_value(schema) else { return Vec::new() };
    let variants =
        schema.get("oneOf").and_then(Value::as_array).cloned().unwrap_or_else(|| vec![schema.clone()]);
    variants
        .iter()
        .filter_map(|variant| {
            let properties = variant.get("properties")?.as_object()?;
            let (name, fields) = properties.iter().next()?;
            Some((name.clone(), fields.clone()))
        })
        .collect()
}

fn id_schema() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^#\\u0000-\\u001f\\u007f]+$" })
}

fn id_parameter(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": id_schema() })
}

fn header_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "header", "required": false, "description": description, "schema": schema })
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn cursor_parameter() -> Value {
    query_parameter("cursor", "Opaque: the next_cursor of the previous page.", json!({ "type": "string" }))
}

fn limit_parameter(max: u64) -> Value {
    query_parameter("limit", "Items per page.", json!({ "type": "integer", "minimum": 1, "maximum": max }))
}

/// Adds a problem+json response per status.
fn with_problems(mut responses: Value, statuses: &[&str]) -> Value {
    if let Some(map) = responses.as_object_mut() {
        for status in statuses {
            map.insert((*status).to_owned(), json!({
                "description": "A problem (RFC 9457).",
                "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
            }));
        }
    }
    responses
}

/// The problem body's schema, derived from [`crate::Problem`].
fn problem_schema() -> Value {
    serde_json::to_value(<crate::Problem as utoipa::PartialSchema>::schema()).unwrap_or(Value::Null)
}

fn command_outcome_schema() -> Value {
    json!({
        "type": "object", "required": ["stream", "version", "event_ids"],
        "properties": {
            "stream": { "type": "object", "required": ["tenant", "category", "id"],
                        "properties": { "tenant": { "type": "string" }, "category": { "type": "string" }, "id": { "type": "string" } } },
            "version": { "type": "integer", "minimum": 0 },
            "event_ids": { "type": "array", "items": { "type": "string" } }
        }
    })
}
