//! The bridge between Quarry's events and rsigma: [`SigmaEvent`] answers rsigma's field lookups from an
//! event's flattened [`Fields`](quarry_model::Fields) without building a JSON tree.
//!
//! Field paths in rules are the event's dotted paths with the array indices left out:
//! `requestObject.spec.containers.securityContext.privileged` reads every
//! `requestObject.spec.containers.<i>.securityContext.privileged` and matches when any of them does. The
//! exact flattened key is tried first, so keys that contain dots (`annotations.authorization.k8s.io/decision`)
//! and explicit indices (`sourceIPs.0`) work too. `kubernetes.*` paths fall back to the source's coordinates
//! (namespace, pod, labels the agent added) when the record itself does not carry them.

use quarry_model::{Event, Source, Value};
use rsigma_eval::event::{Event as RsEvent, EventValue};
use rustc_hash::FxHashMap;
use std::borrow::Cow;

/// The field paths the loaded rules name, each given a slot, so that one pass over an event's fields sorts
/// the ones a rule can ask for. Lookups of other paths still work, by a scan.
#[derive(Debug, Default)]
pub struct FieldTable {
    slots: FxHashMap<Box<str>, u32>,
}

impl FieldTable {
    /// A table over `paths` (duplicates are fine).
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> FieldTable {
        let mut slots = FxHashMap::default();
        for p in paths {
            let n = slots.len() as u32;
            slots.entry(p.into()).or_insert(n);
        }
        FieldTable { slots }
    }
}

/// Reusable buffers for [`SigmaEvent::new`], so that reading an event allocates nothing in the steady state.
#[derive(Debug, Default)]
pub struct Scratch {
    hits: Vec<(u32, u32)>,
    norm: String,
}

/// One event as rsigma sees it.
pub struct SigmaEvent<'a> {
    ev: &'a Event,
    source: &'a Source,
    table: &'a FieldTable,
    /// `(slot, field index)` for every field whose path (indices removed, or exact) a rule names.
    hits: &'a [(u32, u32)],
}

impl<'a> SigmaEvent<'a> {
    /// Sorts `ev`'s fields into the table's slots (one pass, one hash lookup per field).
    pub fn new(
        table: &'a FieldTable,
        source: &'a Source,
        ev: &'a Event,
        scratch: &'a mut Scratch,
    ) -> SigmaEvent<'a> {
        scratch.hits.clear();
        for (i, (path, _)) in ev.fields.iter().enumerate() {
            if let Some(&slot) = table.slots.get(path) {
                scratch.hits.push((slot, i as u32));
            } else if strip_indices(path, &mut scratch.norm) {
                if let Some(&slot) = table.slots.get(scratch.norm.as_str()) {
                    scratch.hits.push((slot, i as u32));
                }
            }
        }
        SigmaEvent {
            ev,
            source,
            table,
            hits: &scratch.hits,
        }
    }

    fn field(&self, i: u32) -> &'a Value {
        &self.ev.fields.as_slice()[i as usize].1
    }

    /// Values at `path`: the exact key if present, else every field whose path with indices removed is
    /// `path`.
    fn lookup(&self, path: &str) -> Option<EventValue<'a>> {
        if let Some(&slot) = self.table.slots.get(path) {
            let mut it = self.hits.iter().filter(|(s, _)| *s == slot);
            let first = it.next();
            return match first {
                None => self.coordinate(path),
                Some(&(_, i)) => {
                    let exact = self.ev.fields.as_slice()[i as usize].0 == path;
                    let rest: Vec<_> = if exact { Vec::new() } else { it.collect() };
                    if rest.is_empty() {
                        Some(to_value(self.field(i)))
                    } else {
                        let mut all = vec![to_value(self.field(i))];
                        all.extend(rest.iter().map(|&&(_, j)| to_value(self.field(j))));
                        Some(EventValue::Array(all))
                    }
                }
            };
        }
        self.scan(path)
    }

    /// The slow path for paths no rule named at load time (correlation aliases, ad-hoc lookups).
    fn scan(&self, path: &str) -> Option<EventValue<'a>> {
        let fields = self.ev.fields.as_slice();
        if let Some((_, v)) = fields.iter().find(|(p, _)| p == path) {
            return Some(to_value(v));
        }
        let mut norm = String::new();
        let mut found: Vec<EventValue<'a>> = fields
            .iter()
            .filter(|(p, _)| strip_indices(p, &mut norm) && norm == path)
            .map(|(_, v)| to_value(v))
            .collect();
        match found.len() {
            0 => self.coordinate(path),
            1 => found.pop(),
            _ => Some(EventValue::Array(found)),
        }
    }

    /// Fields an event has even when its record does not carry them: `message` / `@message` (the
    /// message text, e.g. of a journald entry) and the source's `kubernetes.*` coordinates.
    fn coordinate(&self, path: &str) -> Option<EventValue<'a>> {
        if path == "message" || path == "@message" {
            return Some(EventValue::Str(Cow::Borrowed(self.ev.message())));
        }
        if !path.starts_with("kubernetes.") {
            return None;
        }
        self.source
            .coordinates()
            .find(|(k, _)| *k == path)
            .map(|(_, v)| EventValue::Str(Cow::Borrowed(v)))
    }

    /// The free text keyword rules search besides string fields: the message when it differs from the raw
    /// record, or the raw record when nothing was parsed out of it.
    fn text(&self) -> Option<&'a str> {
        match &self.ev.message {
            Some(m) => Some(m),
            None if self.ev.fields.is_empty() => Some(&self.ev.raw),
            None => None,
        }
    }
}

/// Writes `path` without its all-digit segments (`a.0.b` → `a.b`) into `out`; false (and `out` untouched)
/// when there are none.
pub(crate) fn strip_indices(path: &str, out: &mut String) -> bool {
    let b = path.as_bytes();
    let has_index = path
        .split('.')
        .any(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()));
    if !has_index || b.is_empty() {
        return false;
    }
    out.clear();
    for seg in path.split('.') {
        if !seg.is_empty() && seg.bytes().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(seg);
    }
    true
}

fn to_value(v: &Value) -> EventValue<'_> {
    match v {
        Value::Null => EventValue::Null,
        Value::Bool(b) => EventValue::Bool(*b),
        Value::Int(i) => EventValue::Int(*i),
        Value::Float(f) => EventValue::Float(*f),
        Value::Str(s) => EventValue::Str(Cow::Borrowed(s)),
    }
}

impl RsEvent for SigmaEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.lookup(path)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.text().is_some_and(pred)
            || self
                .ev
                .fields
                .iter()
                .any(|(_, v)| v.as_str().is_some_and(pred))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out: Vec<Cow<'_, str>> = self.text().map(Cow::Borrowed).into_iter().collect();
        out.extend(
            self.ev
                .fields
                .iter()
                .filter_map(|(_, v)| v.as_str().map(Cow::Borrowed)),
        );
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        if let Some(t) = self.text() {
            visit(t);
        }
        for (_, v) in self.ev.fields.iter() {
            if let Some(s) = v.as_str() {
                visit(s);
            }
        }
    }

    fn to_json(&self) -> serde_json::Value {
        event_json(self.source, self.ev)
    }
}

/// An event as a flat JSON object: `@timestamp` (RFC 3339), `@message`, the source's coordinates, then
/// every field by its dotted path. This is the form alerts keep as evidence and `quarry rules test` prints.
pub fn event_json(source: &Source, ev: &Event) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "@timestamp".into(),
        quarry_model::time::format_rfc3339_nanos(ev.ts).into(),
    );
    m.insert("@source".into(), source.kind.as_str().into());
    m.insert("@message".into(), ev.message().into());
    for (k, v) in source.coordinates() {
        m.insert(k.into(), v.into());
    }
    for (k, v) in ev.fields.iter() {
        m.insert(k.into(), serde_json::to_value(v).unwrap_or_default());
    }
    serde_json::Value::Object(m)
}

/// A matched event as shown to people: the record itself when it is a JSON object (audit, CloudTrail), else
/// Quarry's flat form ([`event_json`]).
pub fn evidence(source: &Source, ev: &Event) -> serde_json::Value {
    if ev.raw.starts_with('{') {
        if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(&ev.raw) {
            return v;
        }
    }
    event_json(source, ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_model::Kind;

    fn audit() -> Event {
        let mut ev = Event::text(0, "{}");
        let json = serde_json::json!({
            "verb": "create",
            "responseStatus": {"code": 201},
            "annotations": {"authorization.k8s.io/decision": "allow"},
            "requestObject": {"spec": {"containers": [
                {"name": "a", "securityContext": {"privileged": false}},
                {"name": "b", "securityContext": {"privileged": true}}
            ]}}
        });
        quarry_model::flatten_json("", &json, &mut ev.fields);
        ev
    }

    #[test]
    fn arrays_exact_keys_and_coordinates() {
        let ev = audit();
        let mut src = Source::of_kind(Kind::Audit);
        src.namespace = Some("prod".into());
        let table = FieldTable::new([
            "verb",
            "requestObject.spec.containers.securityContext.privileged",
            "annotations.authorization.k8s.io/decision",
        ]);
        let mut scratch = Scratch::default();
        let se = SigmaEvent::new(&table, &src, &ev, &mut scratch);
        assert_eq!(se.get_field("verb"), Some(EventValue::Str("create".into())));
        assert_eq!(
            se.get_field("requestObject.spec.containers.securityContext.privileged"),
            Some(EventValue::Array(vec![
                EventValue::Bool(false),
                EventValue::Bool(true)
            ]))
        );
        assert_eq!(
            se.get_field("annotations.authorization.k8s.io/decision"),
            Some(EventValue::Str("allow".into()))
        );
        // Not in the table: found by a scan, indices stripped or exact.
        assert_eq!(
            se.get_field("requestObject.spec.containers.name"),
            Some(EventValue::Array(vec![
                EventValue::Str("a".into()),
                EventValue::Str("b".into())
            ]))
        );
        assert_eq!(
            se.get_field("requestObject.spec.containers.1.name"),
            Some(EventValue::Str("b".into()))
        );
        assert_eq!(
            se.get_field("responseStatus.code"),
            Some(EventValue::Int(201))
        );
        assert_eq!(
            se.get_field("kubernetes.namespace"),
            Some(EventValue::Str("prod".into()))
        );
        assert_eq!(se.get_field("nope"), None);
        assert_eq!(se.get_field("message"), Some(EventValue::Str("{}".into())));
        assert!(
            !se.any_string_value(&|s| s == "{}"),
            "raw JSON is not free text"
        );
        assert!(se.any_string_value(&|s| s == "allow"));
    }

    #[test]
    fn strip_indices_only_drops_whole_numeric_segments() {
        let mut s = String::new();
        assert!(strip_indices("a.0.b.12.c", &mut s));
        assert_eq!(s, "a.b.c");
        assert!(!strip_indices("a.b0.c", &mut s));
        assert!(!strip_indices("verb", &mut s));
        assert!(strip_indices("sourceIPs.0", &mut s));
        assert_eq!(s, "sourceIPs");
    }
}
