//! A JSON Schema check of the draft-04 subset Strata's event contracts use (`type`, `enum`,
//! `required`, `properties`, `additionalProperties`, `items`, `oneOf`, `minimum`, `#/definitions/`
//! references), so a test can hold a real published detail against its committed schema.

use serde_json::Value;

/// Checks `value` against `schema` (whose `definitions` resolve references); the first violation,
/// with its JSON pointer, as the error.
pub fn check(schema: &Value, value: &Value) -> Result<(), String> {
    check_at(schema, schema, value, "")
}

fn check_at(root: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
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
    if let (Some(minimum), Some(number)) = (schema.get("minimum").and_then(Value::as_f64), value.as_f64())
        && number < minimum
    {
        return Err(format!("{at}: {number} is below {minimum}"));
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options.iter().filter(|o| check_at(root, o, value, at).is_ok()).count();
        if matching != 1 {
            return Err(format!(
                "{at}: {value} matches {matching} of oneOf's {} schemas, not one",
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
                (None, Some(Value::Bool(false))) => return Err(format!("{here}: not allowed")),
                (None, Some(extra)) if extra.is_object() => check_at(root, extra, inner, &here)?,
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            check_at(root, items, item, &format!("{at}/{index}"))?;
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
