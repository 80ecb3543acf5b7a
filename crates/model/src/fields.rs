use serde::{Serialize, Serializer};
use std::fmt;

/// Most fields one event carries; the rest of a very wide record stays searchable in its text.
pub const MAX_FIELDS: usize = 1000;

/// A scalar field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number (also integers beyond the range of i64).
    Float(f64),
    /// A string.
    Str(String),
}

impl Value {
    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a number: numbers as they are, numeric strings parsed (as CloudWatch compares them).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    /// Converts a JSON scalar; `None` for objects and arrays.
    pub fn from_json_scalar(v: &serde_json::Value) -> Option<Value> {
        Some(match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            _ => return None,
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(x) if x.is_finite() => s.serialize_f64(*x),
            Value::Float(_) => s.serialize_unit(),
            Value::Str(v) => s.serialize_str(v),
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// The structured fields of an event: `(dotted path, scalar)` pairs in the order they were found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    entries: Vec<(String, Value)>,
}

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Fields::default()
    }

    /// Adds a field; returns false (and adds nothing) once [`MAX_FIELDS`] are held.
    pub fn push(&mut self, path: impl Into<String>, value: impl Into<Value>) -> bool {
        if self.entries.len() >= MAX_FIELDS {
            return false;
        }
        self.entries.push((path.into(), value.into()));
        true
    }

    /// Sets a field, replacing an existing one with the same path.
    pub fn set(&mut self, path: &str, value: impl Into<Value>) {
        match self.entries.iter_mut().find(|(p, _)| p == path) {
            Some(slot) => slot.1 = value.into(),
            None => {
                self.push(path, value);
            }
        }
    }

    /// The value at a path.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.entries.iter().find(|(p, _)| p == path).map(|(_, v)| v)
    }

    /// All fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(p, v)| (p.as_str(), v))
    }

    /// All fields as `(path, value)` pairs, in order (for index-based access).
    pub fn as_slice(&self) -> &[(String, Value)] {
        &self.entries
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the [`MAX_FIELDS`] limit was reached.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_FIELDS
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = &'a (String, Value);
    type IntoIter = std::slice::Iter<'a, (String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// Flattens a JSON tree into `fields` as CloudWatch Logs Insights does: object keys joined with `.`, array
/// elements by their index (`sourceIPs.0`); empty objects and arrays add nothing. `prefix` is prepended
/// (with a dot) unless empty. Returns false if the [`MAX_FIELDS`] limit cut the record short.
pub fn flatten_json(prefix: &str, value: &serde_json::Value, fields: &mut Fields) -> bool {
    let mut path = String::from(prefix);
    flatten_into(&mut path, value, fields)
}

fn flatten_into(path: &mut String, value: &serde_json::Value, fields: &mut Fields) -> bool {
    let child = |path: &mut String, key: &str, v: &serde_json::Value, fields: &mut Fields| {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        let ok = flatten_into(path, v, fields);
        path.truncate(len);
        ok
    };
    match value {
        serde_json::Value::Object(map) => map.iter().all(|(k, v)| child(path, k, v, fields)),
        serde_json::Value::Array(items) => {
            let mut buf = itoa_buf();
            items
                .iter()
                .enumerate()
                .all(|(i, v)| child(path, fmt_index(&mut buf, i), v, fields))
        }
        scalar => match Value::from_json_scalar(scalar) {
            Some(v) => fields.push(path.clone(), v),
            None => true,
        },
    }
}

fn itoa_buf() -> String {
    String::with_capacity(8)
}

fn fmt_index(buf: &mut String, i: usize) -> &str {
    use std::fmt::Write;
    buf.clear();
    let _ = write!(buf, "{i}");
    buf.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_like_logs_insights() {
        let v = json!({
            "user": {"username": "alice", "groups": ["a", "b"]},
            "sourceIPs": ["10.0.0.1"],
            "responseStatus": {"code": 403, "metadata": {}},
            "annotations": {"authorization.k8s.io/decision": "forbid"},
            "ok": true, "ratio": 0.5, "none": null, "empty": []
        });
        let mut f = Fields::new();
        assert!(flatten_json("", &v, &mut f));
        assert_eq!(f.get("user.username"), Some(&Value::from("alice")));
        assert_eq!(f.get("user.groups.1"), Some(&Value::from("b")));
        assert_eq!(f.get("sourceIPs.0"), Some(&Value::from("10.0.0.1")));
        assert_eq!(f.get("responseStatus.code"), Some(&Value::Int(403)));
        assert_eq!(
            f.get("annotations.authorization.k8s.io/decision"),
            Some(&Value::from("forbid"))
        );
        assert_eq!(f.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(f.get("none"), Some(&Value::Null));
        assert!(f.get("empty").is_none() && f.get("responseStatus.metadata").is_none());
        assert_eq!(f.len(), 9);
    }

    #[test]
    fn prefix_and_limit() {
        let mut f = Fields::new();
        flatten_json("log", &json!({"level": "info"}), &mut f);
        assert_eq!(f.get("log.level"), Some(&Value::from("info")));
        let wide: serde_json::Map<_, _> = (0..MAX_FIELDS + 5)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        let mut f = Fields::new();
        assert!(!flatten_json("", &serde_json::Value::Object(wide), &mut f));
        assert_eq!(f.len(), MAX_FIELDS);
        assert!(f.is_full());
    }

    #[test]
    fn numeric_strings_compare_as_numbers() {
        assert_eq!(Value::from("403").as_f64(), Some(403.0));
        assert_eq!(Value::Int(403).as_f64(), Some(403.0));
        assert_eq!(Value::from("abc").as_f64(), None);
        assert_eq!(Value::from("NaN").as_f64(), None);
    }
}
