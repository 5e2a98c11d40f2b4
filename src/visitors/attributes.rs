//! Custom attributes: a small map the site sets on its visitor (plan,
//! account id, cart value …) and agents read in the visitor panel. Values
//! are strings, numbers or booleans; the map stays small so it never
//! weighs on the visitor record.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{AppError, AppResult};

/// Most keys one visitor may carry.
pub const MAX_KEYS: usize = 20;
/// Longest key, in characters of `[A-Za-z0-9_.-]`.
pub const MAX_KEY: usize = 40;
/// Longest string value, in characters.
pub const MAX_VALUE: usize = 200;
/// Largest map, as JSON bytes.
pub const MAX_JSON_BYTES: usize = 2048;

pub type Attributes = BTreeMap<String, Value>;

/// A change to the attributes, checked key by key: `Some` sets a key,
/// `None` (JSON `null`) removes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttributesPatch(pub BTreeMap<String, Option<Value>>);

impl AttributesPatch {
    /// Checks each key and value of a JSON object.
    pub fn parse(raw: &serde_json::Map<String, Value>) -> AppResult<AttributesPatch> {
        if raw.len() > MAX_KEYS {
            return Err(AppError::validation(format!(
                "attributes may have at most {MAX_KEYS} keys"
            )));
        }
        let mut out = BTreeMap::new();
        for (key, value) in raw {
            let key_ok = !key.is_empty()
                && key.len() <= MAX_KEY
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !key_ok {
                return Err(AppError::validation(format!(
                    "attribute keys must be 1 to {MAX_KEY} characters of A-Z, a-z, 0-9, '_', '.', '-'"
                )));
            }
            let value = match value {
                Value::Null => None,
                Value::Bool(_) | Value::Number(_) => Some(value.clone()),
                Value::String(s) if s.chars().count() <= MAX_VALUE => Some(value.clone()),
                Value::String(_) => {
                    return Err(AppError::validation(format!(
                        "attribute {key}: text values may have at most {MAX_VALUE} characters"
                    )));
                }
                Value::Array(_) | Value::Object(_) => {
                    return Err(AppError::validation(format!(
                        "attribute {key}: values must be text, a number or true/false"
                    )));
                }
            };
            out.insert(key.clone(), value);
        }
        Ok(AttributesPatch(out))
    }

    /// The attributes after this change, if they still fit.
    pub fn apply(&self, current: &Attributes) -> AppResult<Attributes> {
        let mut next = current.clone();
        for (key, value) in &self.0 {
            match value {
                Some(v) => next.insert(key.clone(), v.clone()),
                None => next.remove(key),
            };
        }
        if next.len() > MAX_KEYS {
            return Err(AppError::validation(format!(
                "a visitor may have at most {MAX_KEYS} attributes"
            )));
        }
        let size = serde_json::to_vec(&next).map_or(usize::MAX, |b| b.len());
        if size > MAX_JSON_BYTES {
            return Err(AppError::validation(format!(
                "attributes may take at most {MAX_JSON_BYTES} bytes of JSON"
            )));
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> AppResult<AttributesPatch> {
        AttributesPatch::parse(v.as_object().unwrap())
    }

    #[test]
    fn keys_values_and_sizes_are_bounded() {
        assert!(parse(json!({"plan": "pro", "seats": 3, "trial": false})).is_ok());
        assert!(parse(json!({"bad key": 1})).is_err());
        assert!(parse(json!({"": 1})).is_err());
        assert!(parse(json!({"k".repeat(41): 1})).is_err());
        assert!(parse(json!({"k": "v".repeat(201)})).is_err());
        assert!(parse(json!({"k": [1]})).is_err());
        assert!(parse(json!({"k": {"a": 1}})).is_err());
        let many: serde_json::Map<_, _> = (0..21).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(AttributesPatch::parse(&many).is_err());
        let big: serde_json::Map<_, _> = (0..15)
            .map(|i| (format!("k{i}"), json!("v".repeat(190))))
            .collect();
        let patch = AttributesPatch::parse(&big).unwrap();
        assert!(patch.apply(&Attributes::new()).is_err());
    }

    #[test]
    fn null_removes_a_key() {
        let current = parse(json!({"a": 1, "b": "x"}))
            .unwrap()
            .apply(&Attributes::new())
            .unwrap();
        let next = parse(json!({"a": null})).unwrap().apply(&current).unwrap();
        assert_eq!(serde_json::to_value(next).unwrap(), json!({"b": "x"}));
    }
}
