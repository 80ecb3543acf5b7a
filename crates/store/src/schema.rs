//! The tantivy schema of a partition and how events become documents.
//!
//! A segment holds two kinds of documents, always in this order: a *block document* followed by the
//! *event documents* of its events (tantivy keeps one `run` batch contiguous in one segment, and merges
//! keep segments' documents in order).
//!
//! - A block document stores the block payload (the events' raw text, see [`crate::block`]) and indexes
//!   the words of their messages in [`MSG`]. Full-text lookups therefore find blocks, and the events of a
//!   matched block are checked one by one: the word index stays a fraction of the size of per-event
//!   postings, and the payload compresses like the log file itself.
//! - An event document has the event time in the fast field [`TS`] and every structured field in the JSON
//!   field [`F`], indexed as exact values and kept as fast (columnar) values for filters and aggregations.

use crate::tokenizer::{LogTokenizer, LOG_TOKENIZER};
use quarry_model::{Event, Source, Value};
use std::collections::BTreeMap;
use tantivy::schema::{
    Field, IndexRecordOption, JsonObjectOptions, NumericOptions, OwnedValue, Schema,
    TextFieldIndexing, TextOptions, FAST, INDEXED, STORED,
};
use tantivy::{Index, TantivyDocument, Term};

/// Event time (i64 UTC ns), fast; on event documents only.
pub const TS: &str = "ts";
/// Structured fields (JSON, exact-value index + fast columns); on event documents only.
pub const F: &str = "f";
/// Message words of the block's events; on block documents only.
pub const MSG: &str = "msg";
/// The stored block payload; on block documents only.
pub const BLOCK: &str = "block";
/// Marker (value 1) that finds block documents.
pub const IS_BLOCK: &str = "is_block";

/// Strings longer than this are not indexed or kept as fast values (they stay searchable by their words).
pub const MAX_FIELD_STR: usize = 256;

/// Field handles of the partition schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// See [`TS`].
    pub ts: Field,
    /// See [`F`].
    pub f: Field,
    /// See [`MSG`].
    pub msg: Field,
    /// See [`BLOCK`].
    pub block: Field,
    /// See [`IS_BLOCK`].
    pub is_block: Field,
}

/// Builds the schema.
pub fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let ts = b.add_i64_field(TS, FAST);
    let f = b.add_json_field(
        F,
        JsonObjectOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("raw")
                    .set_index_option(IndexRecordOption::Basic)
                    .set_fieldnorms(false),
            )
            .set_fast("raw"),
    );
    let msg = b.add_text_field(
        MSG,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(LOG_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        ),
    );
    let block = b.add_bytes_field(BLOCK, STORED);
    let is_block = b.add_u64_field(IS_BLOCK, NumericOptions::default() | INDEXED);
    (
        b.build(),
        Fields {
            ts,
            f,
            msg,
            block,
            is_block,
        },
    )
}

/// Registers the tokenizers the schema names.
pub fn register_tokenizers(index: &Index) {
    index
        .tokenizers()
        .register(LOG_TOKENIZER, LogTokenizer::default());
}

/// Escapes a flat field path for tantivy's JSON path syntax (dots inside a key are not separators).
pub fn escape_path(path: &str) -> String {
    let mut s = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if matches!(c, '.' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// The column name of a field path in the fast fields of [`F`].
pub fn column_name(path: &str) -> String {
    format!("{F}.{}", escape_path(path))
}

/// The term that finds events whose field `path` equals `value`.
pub fn field_term(fields: &Fields, path: &str, value: &Value) -> Option<Term> {
    let mut term = Term::from_field_json_path(fields.f, &escape_path(path), false);
    match value {
        Value::Str(s) if s.len() <= MAX_FIELD_STR => term.append_type_and_str(s),
        Value::Int(i) => term.append_type_and_fast_value(*i),
        Value::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => {
            term.append_type_and_fast_value(*x as i64)
        }
        Value::Float(x) if x.is_finite() => term.append_type_and_fast_value(*x),
        Value::Bool(b) => term.append_type_and_fast_value(*b),
        _ => return None,
    }
    Some(term)
}

/// What a partition learns about a field path from the events it stores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathInfo {
    /// Bit set of value types seen: 1 string, 2 integer, 4 float, 8 bool, 16 null.
    pub types: u8,
    /// Some string values were longer than [`MAX_FIELD_STR`] and are not in the index or columns.
    pub long: bool,
}

/// Type bits of [`PathInfo::types`].
pub mod types {
    /// String values.
    pub const STR: u8 = 1;
    /// Integer values.
    pub const INT: u8 = 2;
    /// Float values.
    pub const FLOAT: u8 = 4;
    /// Boolean values.
    pub const BOOL: u8 = 8;
    /// Nulls.
    pub const NULL: u8 = 16;
}

/// The field paths of one event (its fields, the source coordinates and `@parseError`) with their
/// [`PathInfo`], as the catalog records them.
pub fn path_infos<'a>(
    source: &'a Source,
    event: &'a Event,
) -> impl Iterator<Item = (&'a str, PathInfo)> {
    let text = PathInfo {
        types: types::STR,
        long: false,
    };
    let coords = source.coordinates().map(move |(p, _)| (p, text));
    let error = event.parse_error.as_ref().map(|_| ("@parseError", text));
    coords.chain(error).chain(event.fields.iter().map(|(p, v)| {
        let (types, long) = match v {
            Value::Str(s) => (types::STR, s.len() > MAX_FIELD_STR),
            Value::Int(_) => (types::INT, false),
            Value::Float(_) => (types::FLOAT, false),
            Value::Bool(_) => (types::BOOL, false),
            Value::Null => (types::NULL, false),
        };
        (p, PathInfo { types, long })
    }))
}

/// The block document of a block payload and the words of its events' messages.
pub fn block_doc(fields: &Fields, payload: &[u8], events: &[&Event]) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_u64(fields.is_block, 1);
    doc.add_bytes(fields.block, payload);
    for e in events {
        doc.add_text(fields.msg, e.message());
    }
    doc
}

/// The event document of an event.
pub fn event_doc(fields: &Fields, source: &Source, event: &Event) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_i64(fields.ts, event.ts);
    let mut obj: BTreeMap<String, OwnedValue> = BTreeMap::new();
    for (k, v) in source.coordinates() {
        obj.insert(k.to_string(), OwnedValue::Str(v.to_string()));
    }
    if let Some(err) = &event.parse_error {
        obj.insert(
            "@parseError".into(),
            OwnedValue::Str(truncate(err, MAX_FIELD_STR).to_string()),
        );
    }
    for (k, v) in event.fields.iter() {
        let v = match v {
            Value::Str(s) if s.len() <= MAX_FIELD_STR => OwnedValue::Str(s.clone()),
            Value::Int(i) => OwnedValue::I64(*i),
            Value::Float(x) if x.is_finite() => OwnedValue::F64(*x),
            Value::Bool(b) => OwnedValue::Bool(*b),
            _ => continue,
        };
        obj.entry(k.to_string()).or_insert(v);
    }
    if !obj.is_empty() {
        doc.add_object(fields.f, obj);
    }
    doc
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
