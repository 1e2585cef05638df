//! A JSON Schema check of the draft-04 subset Strata's event contracts use, strict on purpose, so a
//! test can hold a real published detail against its committed schema:
//!
//! - every keyword of the schema must be one it checks (`type`, `enum`, `required`, `properties`,
//!   `additionalProperties`, `items` (a schema or a tuple), `additionalItems`, `oneOf`, `minimum`,
//!   `maximum`, `minLength`, `maxLength`, `#/definitions/` references) or an annotation
//!   (`$schema`, `title`, `description`, `format`, `definitions`, `default`, `x-*`): a schema that
//!   needs another keyword fails the check instead of passing unchecked;
//! - a member of an object the schema does not declare is an error unless `additionalProperties`
//!   allows it with a schema or `true`: what is published must be declared.

use serde_json::Value;

const CHECKED: &[&str] = &[
    "type",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "additionalItems",
    "oneOf",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "$ref",
];
const ANNOTATIONS: &[&str] = &["$schema", "title", "description", "format", "definitions", "default"];

/// Checks `value` against `schema` (whose `definitions` resolve references); the first violation,
/// with its JSON pointer, as the error.
pub fn check(schema: &Value, value: &Value) -> Result<(), String> {
    check_at(schema, schema, value, "")
}

fn check_at(root: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(keywords) = schema.as_object() else {
        return Err(format!("{at}: the schema {schema} is not an object"));
    };
    for keyword in keywords.keys() {
        let known = CHECKED.contains(&keyword.as_str())
            || ANNOTATIONS.contains(&keyword.as_str())
            || keyword.starts_with("x-");
        if !known {
            return Err(format!("{at}: the schema uses {keyword}, which this check does not check"));
        }
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let name =
            target.strip_prefix("#/definitions/").ok_or_else(|| format!("{at}: reference {target}"))?;
        let resolved = root
            .get("definitions")
            .and_then(|d| d.get(name))
            .ok_or_else(|| format!("{at}: no definition {name}"))?;
        return check_at(root, resolved, value, at);
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.iter().any(|t| is_type(value, t)) {
            return Err(format!("{at}: {value} is not of type {types}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            return Err(format!("{at}: {number} is below {minimum}"));
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            return Err(format!("{at}: {number} is above {maximum}"));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if schema.get("minLength").and_then(Value::as_u64).is_some_and(|min| length < min)
            || schema.get("maxLength").and_then(Value::as_u64).is_some_and(|max| length > max)
        {
            return Err(format!("{at}: {length} characters is outside the schema's length"));
        }
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options.iter().filter(|o| check_at(root, o, value, at).is_ok()).count();
        if matching != 1 {
            let first = options.iter().find_map(|o| check_at(root, o, value, at).err()).unwrap_or_default();
            return Err(format!(
                "{at}: {value} matches {matching} of oneOf's {} schemas, not one (first refusal: {first})",
                options.len()
            ));
        }
    }
    if let Some(object) = value.as_object() {
        for name in
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                return Err(format!("{at}: {name} is required"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, inner) in object {
            let here = format!("{at}/{name}");
            match (properties.and_then(|p| p.get(name)), schema.get("additionalProperties")) {
                (Some(declared), _) => check_at(root, declared, inner, &here)?,
                (None, Some(extra)) if extra.is_object() => check_at(root, extra, inner, &here)?,
                (None, Some(Value::Bool(true))) => {}
                // A schema that says nothing of objects (a `oneOf` wrapper whose branches check).
                (None, None) if schema.get("type").is_none() && properties.is_none() => {}
                (None, _) => return Err(format!("{here}: not declared by the schema")),
            }
        }
    }
    if let Some(array) = value.as_array() {
        match schema.get("items") {
            Some(Value::Array(tuple)) => {
                if array.len() > tuple.len() && schema.get("additionalItems") == Some(&Value::Bool(false)) {
                    return Err(format!("{at}: {} items, the tuple has {}", array.len(), tuple.len()));
                }
                for (index, (item, item_schema)) in array.iter().zip(tuple).enumerate() {
                    check_at(root, item_schema, item, &format!("{at}/{index}"))?;
                }
            }
            Some(items) => {
                for (index, item) in array.iter().enumerate() {
                    check_at(root, items, item, &format!("{at}/{index}"))?;
                }
            }
            None => {}
        }
    }
    Ok(())
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

/// JSON pointers of the members a schema marks `x-strata-personal` under `payload`, following
/// `properties` (and references), as `/customer_name`: what a sealer must have sealed.
pub fn personal_pointers(root: &Value, schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_personal(root, schema, "", &mut found);
    found.sort();
    found
}

fn collect_personal(root: &Value, schema: &Value, at: &str, found: &mut Vec<String>) {
    let schema =
        match schema.get("$ref").and_then(Value::as_str).and_then(|t| t.strip_prefix("#/definitions/")) {
            Some(name) => match root.get("definitions").and_then(|d| d.get(name)) {
                Some(resolved) => resolved,
                None => return,
            },
            None => schema,
        };
    if schema.get("x-strata-personal") == Some(&Value::Bool(true)) {
        found.push(at.to_owned());
        return;
    }
    for (name, inner) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        let escaped = name.replace('~', "~0").replace('/', "~1");
        collect_personal(root, inner, &format!("{at}/{escaped}"), found);
    }
}
