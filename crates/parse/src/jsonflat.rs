//! Flattening JSON text straight into [`Fields`] while serde_json parses it, without building a tree.
//!
//! The result equals `quarry_model::flatten_json` applied to the parsed `serde_json::Value` (dotted paths,
//! arrays by index, empty containers add nothing, integers beyond i64 become floats).

use quarry_model::{Fields, Value};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Flattens the JSON object in `text` into `fields`. Top-level keys named in `skip` are left out.
/// The caller checks that `text` starts with `{` when only objects are wanted.
pub(crate) fn flatten_str(
    text: &str,
    fields: &mut Fields,
    skip: &[&str],
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut st = State {
        fields,
        path: String::with_capacity(64),
        skip,
        depth: 0,
    };
    Seed { st: &mut st }.deserialize(&mut de)?;
    de.end()
}

/// True when `text` (ignoring leading and trailing whitespace) looks like one JSON object.
pub(crate) fn looks_like_object(text: &str) -> bool {
    let t = text.trim_ascii();
    t.len() >= 2 && t.as_bytes()[0] == b'{' && t.as_bytes()[t.len() - 1] == b'}'
}

/// A copy of `text` with raw control characters inside JSON strings escaped (`\n`, `\t`, `\u00XX`), or
/// `None` when there are none. Loggers sometimes write such strings; strict JSON forbids them.
pub(crate) fn escape_controls_in_strings(text: &str) -> Option<String> {
    let mut out: Option<String> = None;
    let (mut in_str, mut esc) = (false, false);
    for (i, c) in text.char_indices() {
        let mut replaced = false;
        if in_str {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            } else if (c as u32) < 0x20 {
                let o = out.get_or_insert_with(|| text[..i].to_string());
                match c {
                    '\n' => o.push_str("\\n"),
                    '\t' => o.push_str("\\t"),
                    '\r' => o.push_str("\\r"),
                    _ => o.push_str(&format!("\\u{:04x}", c as u32)),
                }
                replaced = true;
            }
        } else if c == '"' {
            in_str = true;
        }
        if !replaced {
            if let Some(o) = out.as_mut() {
                o.push(c);
            }
        }
    }
    out
}

struct State<'a, 'f> {
    fields: &'f mut Fields,
    path: String,
    skip: &'a [&'a str],
    depth: usize,
}

impl State<'_, '_> {
    fn leaf(&mut self, v: Value) {
        self.fields.push(self.path.clone(), v);
    }
}

struct Seed<'s, 'a, 'f> {
    st: &'s mut State<'a, 'f>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.st.leaf(Value::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.st.leaf(Value::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        let v = i64::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64));
        self.st.leaf(v);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.st.leaf(Value::Float(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.st.leaf(Value::Str(v.to_owned()));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.st.leaf(Value::Str(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.st.leaf(Value::Null);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.st.leaf(Value::Null);
        Ok(())
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let st = self.st;
        st.depth += 1;
        loop {
            let len = st.path.len();
            if !st.path.is_empty() {
                st.path.push('.');
            }
            let key_start = st.path.len();
            if map.next_key_seed(KeySeed { path: &mut st.path })?.is_none() {
                st.path.truncate(len);
                break;
            }
            let skipped = st.depth == 1 && st.skip.contains(&&st.path[key_start..]);
            if skipped {
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(Seed { st: &mut *st })?;
            }
            st.path.truncate(len);
        }
        st.depth -= 1;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let st = self.st;
        st.depth += 1;
        let mut i = 0usize;
        loop {
            let len = st.path.len();
            if !st.path.is_empty() {
                st.path.push('.');
            }
            push_index(&mut st.path, i);
            let got = seq.next_element_seed(Seed { st: &mut *st })?;
            st.path.truncate(len);
            if got.is_none() {
                break;
            }
            i += 1;
        }
        st.depth -= 1;
        Ok(())
    }
}

fn push_index(path: &mut String, mut i: usize) {
    let mut buf = [0u8; 20];
    let mut n = buf.len();
    loop {
        n -= 1;
        buf[n] = b'0' + (i % 10) as u8;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    for &b in &buf[n..] {
        path.push(b as char);
    }
}

struct KeySeed<'p> {
    path: &'p mut String,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.path.push_str(v);
        Ok(())
    }
}

/// The string at `path`, if the field is a string.
pub(crate) fn get_str<'f>(fields: &'f Fields, path: &str) -> Option<&'f str> {
    fields.get(path).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(text: &str) {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut a = Fields::new();
        quarry_model::flatten_json("", &v, &mut a);
        let mut b = Fields::new();
        flatten_str(text, &mut b, &[]).unwrap();
        assert_eq!(a, b, "{text}");
    }

    #[test]
    fn equals_model_flatten() {
        both(
            r#"{"a":{"b":[1,2,{"c":"x"}],"e":{},"f":[]},"n":null,"t":true,"big":18446744073709551615,"neg":-5,"fl":1.5,"z":-0,"s":"q\"\u00e9"}"#,
        );
        both(
            r#"{"annotations":{"authorization.k8s.io/decision":"allow"},"sourceIPs":["1.2.3.4"]}"#,
        );
        both(r#"{"x":[[1,[2]],[]],"y":{"z":{"w":1e300}}}"#);
    }

    #[test]
    fn skips_top_level_keys_only() {
        let mut f = Fields::new();
        flatten_str(
            r#"{"stream":"x","a":{"stream":1},"b":2}"#,
            &mut f,
            &["stream"],
        )
        .unwrap();
        assert_eq!(f.get("stream"), None);
        assert_eq!(f.get("a.stream"), Some(&Value::Int(1)));
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn control_characters_in_strings() {
        assert_eq!(
            escape_controls_in_strings("{\"a\":\"x\ny\u{1}\"}\n").as_deref(),
            Some("{\"a\":\"x\\ny\\u0001\"}\n")
        );
        assert_eq!(escape_controls_in_strings("{\"a\":\"x\"}\n"), None);
    }

    #[test]
    fn errors_and_eof() {
        let mut f = Fields::new();
        assert!(flatten_str(r#"{"a":1"#, &mut f, &[]).unwrap_err().is_eof());
        assert!(!flatten_str(r#"{"a":1}x"#, &mut f, &[])
            .unwrap_err()
            .is_eof());
        assert!(!flatten_str(r#"{"a":]"#, &mut f, &[]).unwrap_err().is_eof());
    }
}
