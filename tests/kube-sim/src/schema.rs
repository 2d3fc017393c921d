//! A small JSON-Schema checker for the keywords of the strict Pod schema: `type` (one or a list,
//! `null` included), `properties`, `additionalProperties` (false or a schema), `items`, `enum`,
//! `required`, `oneOf` (taken as "any of"), `maxLength` and the integer formats.

use serde_json::Value;

/// One schema violation, with the field path in Kubernetes form (`spec.containers[0].name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A field the schema does not know.
    Unknown { field: String },
    /// A value of the wrong JSON type.
    WrongType {
        field: String,
        expected: String,
        found: &'static str,
    },
    /// A value outside an enumeration.
    NotSupported {
        field: String,
        value: String,
        supported: Vec<String>,
    },
    /// A required field is absent.
    Required { field: String },
    /// A string longer than `maxLength`.
    TooLong { field: String, max: u64 },
}

/// Checks `value` against `schema`, collecting every violation found.
pub fn check(schema: &Value, value: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    walk(schema, value, "", &mut out);
    out
}

fn walk(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        check_one_of(branches, value, path, out);
    }
    if !type_matches(schema.get("type"), value) {
        out.push(Violation::WrongType {
            field: path.to_string(),
            expected: expected_types(schema.get("type")),
            found: json_type(value),
        });
        return;
    }
    check_enum(schema, value, path, out);
    check_max_length(schema, value, path, out);
    match value {
        Value::Object(map) => check_object(schema, map, path, out),
        Value::Array(items) => check_items(schema, items, path, out),
        _ => {}
    }
}

fn check_one_of(branches: &[Value], value: &Value, path: &str, out: &mut Vec<Violation>) {
    let fits = branches.iter().any(|b| check_at(b, value, path).is_empty());
    if !fits {
        let expected: Vec<String> = branches
            .iter()
            .map(|b| expected_types(b.get("type")))
            .collect();
        out.push(Violation::WrongType {
            field: path.to_string(),
            expected: expected.join(" or "),
            found: json_type(value),
        });
    }
}

fn check_at(schema: &Value, value: &Value, path: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    walk(schema, value, path, &mut out);
    out
}

fn check_enum(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if value.is_null() || allowed.contains(value) {
        return;
    }
    out.push(Violation::NotSupported {
        field: path.to_string(),
        value: value
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string()),
        supported: allowed
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect(),
    });
}

fn check_max_length(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let (Some(max), Some(text)) = (
        schema.get("maxLength").and_then(Value::as_u64),
        value.as_str(),
    ) else {
        return;
    };
    if text.len() as u64 > max {
        out.push(Violation::TooLong {
            field: path.to_string(),
            max,
        });
    }
}

fn check_object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = name.as_str().unwrap_or("");
        if !map.contains_key(name) {
            out.push(Violation::Required {
                field: join(path, name),
            });
        }
    }
    for (key, child) in map {
        if let Some(sub) = properties.and_then(|p| p.get(key)) {
            walk(sub, child, &join(path, key), out);
            continue;
        }
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => out.push(Violation::Unknown {
                field: join(path, key),
            }),
            Some(sub @ Value::Object(_)) => walk(sub, child, &format!("{path}[{key}]"), out),
            // A schema with properties but no word on extra keys takes none.
            _ if properties.is_some() => out.push(Violation::Unknown {
                field: join(path, key),
            }),
            _ => {}
        }
    }
}

fn check_items(schema: &Value, items: &[Value], path: &str, out: &mut Vec<Violation>) {
    let Some(item_schema) = schema.get("items") else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        walk(item_schema, item, &format!("{path}[{i}]"), out);
    }
}

fn join(path: &str, key: &str) -> String {
    match path.is_empty() {
        true => key.to_string(),
        false => format!("{path}.{key}"),
    }
}

fn type_matches(types: Option<&Value>, value: &Value) -> bool {
    match types {
        None => true,
        Some(Value::String(t)) => is_type(t, value),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|t| is_type(t, value)),
        Some(_) => true,
    }
}

fn is_type(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => true,
    }
}

fn expected_types(types: Option<&Value>) -> String {
    match types {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(list)) => {
            let names: Vec<&str> = list
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            names.join(" or ")
        }
        _ => "any".to_string(),
    }
}

/// The JSON type name of a value, as error messages say it.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 5},
                "count": {"type": ["integer", "null"], "format": "int32"},
                "policy": {"type": ["string", "null"], "enum": ["A", "B"]},
                "items": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"x": {"type": "boolean"}}
                }},
                "limits": {"type": "object", "additionalProperties":
                           {"oneOf": [{"type": ["string", "null"]}, {"type": ["number", "null"]}]}}
            }
        })
    }

    #[test]
    fn reports_unknown_fields_with_their_index_path() {
        let v = check(
            &schema(),
            &json!({"name": "a", "items": [{"x": true}, {"y": 1}]}),
        );
        assert_eq!(
            v,
            vec![Violation::Unknown {
                field: "items[1].y".into()
            }]
        );
    }

    #[test]
    fn null_is_accepted_only_where_the_type_list_has_it() {
        assert!(check(&schema(), &json!({"name": "a", "count": null})).is_empty());
        let v = check(&schema(), &json!({"name": null}));
        assert_eq!(
            v,
            vec![Violation::WrongType {
                field: "name".into(),
                expected: "string".into(),
                found: "null"
            }]
        );
    }

    #[test]
    fn reports_required_enum_length_and_one_of() {
        let v = check(&schema(), &json!({"policy": "C", "limits": {"cpu": true}}));
        assert!(v.contains(&Violation::Required {
            field: "name".into()
        }));
        assert!(v
            .iter()
            .any(|x| matches!(x, Violation::NotSupported { field, .. } if field == "policy")));
        assert!(v
            .iter()
            .any(|x| matches!(x, Violation::WrongType { field, .. } if field == "limits[cpu]")));
        let long = check(&schema(), &json!({"name": "abcdef"}));
        assert_eq!(
            long,
            vec![Violation::TooLong {
                field: "name".into(),
                max: 5
            }]
        );
    }

    #[test]
    fn a_float_is_not_an_integer() {
        let v = check(&schema(), &json!({"name": "a", "count": 1.5}));
        assert_eq!(v.len(), 1);
    }
}
