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
//! - An event document has the event time in the fast field [`TS`] and its structured fields in two JSON
//!   fields: strings and booleans in [`F`], indexed as exact values (term lookups find needles) and kept as
//!   fast (columnar) values; numbers in [`N`], only as fast values (their comparisons scan the column;
//!   indexing every byte count and port would double the index and serve no needle query).
//!
//! Documents are [`Doc`]s: they hand tantivy borrowed views of the parsed event, so building one copies
//! no field.

use crate::tokenizer::{LogTokenizer, LOG_TOKENIZER, WORDS_TOKENIZER};
use quarry_model::{Event, Source, Value};
use std::sync::Arc;
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf};
use tantivy::schema::{
    Field, IndexRecordOption, JsonObjectOptions, NumericOptions, Schema, TextFieldIndexing,
    TextOptions, FAST, STORED,
};
use tantivy::{Index, Term};

/// Event time (i64 UTC ns), fast; on event documents only.
pub const TS: &str = "ts";
/// String and boolean fields (JSON, exact-value index + fast columns); on event documents only.
pub const F: &str = "f";
/// Numeric fields (JSON, fast columns only); on event documents only.
pub const N: &str = "n";
/// Message words of the block's events (each distinct word once, see
/// [`crate::tokenizer::block_words`]); on block documents only.
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
    /// See [`N`].
    pub n: Field,
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
    let n = b.add_json_field(N, JsonObjectOptions::default().set_fast("raw"));
    let msg = b.add_text_field(
        MSG,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WORDS_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        ),
    );
    let block = b.add_bytes_field(BLOCK, STORED);
    let is_block = b.add_u64_field(IS_BLOCK, NumericOptions::default().set_indexed());
    (
        b.build(),
        Fields {
            ts,
            f,
            n,
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
    index.tokenizers().register(
        WORDS_TOKENIZER,
        tantivy::tokenizer::WhitespaceTokenizer::default(),
    );
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

/// The column names of a field path in the fast fields of [`F`] and [`N`].
pub fn column_names(path: &str) -> [String; 2] {
    let p = escape_path(path);
    [format!("{F}.{p}"), format!("{N}.{p}")]
}

/// The term that finds events whose string or boolean field `path` equals `value` (numbers are not in
/// the index).
pub fn field_term(fields: &Fields, path: &str, value: &Value) -> Option<Term> {
    let mut term = Term::from_field_json_path(fields.f, &escape_path(path), false);
    match value {
        Value::Str(s) if s.len() <= MAX_FIELD_STR => term.append_type_and_str(s),
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
    /// Some values are not in the index or the columns (see [`indexed_str`]); queries on the path read
    /// the events themselves.
    pub partial: bool,
}

/// True for strings the index and columns keep as exact values: not longer than [`MAX_FIELD_STR`], not
/// free text (longer than [`MAX_FIELD_TEXT`] with spaces, such as a syslog message: its words are in the
/// word index already), and not timestamps (`requestReceivedTimestamp`, `eventTime`: unique per event,
/// they would fill the dictionaries, and `@timestamp` answers time questions).
pub fn indexed_str(s: &str) -> bool {
    s.len() <= MAX_FIELD_STR && !(s.len() > MAX_FIELD_TEXT && s.contains(' ')) && !is_timestamp(s)
}

/// Strings with spaces longer than this are free text, not exact values (see [`indexed_str`]).
pub const MAX_FIELD_TEXT: usize = 64;

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    b.len() >= 19
        && (0..4).all(d)
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b' ')
        && d(5)
        && d(8)
        && d(11)
        && b[13] == b':'
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
        partial: false,
    };
    let coords = source.coordinates().map(move |(p, _)| (p, text));
    let error = event.parse_error.as_ref().map(|_| ("@parseError", text));
    coords.chain(error).chain(event.fields.iter().map(|(p, v)| {
        let (types, partial) = match v {
            Value::Str(s) => (types::STR, !indexed_str(s)),
            Value::Int(_) => (types::INT, false),
            Value::Float(_) => (types::FLOAT, false),
            Value::Bool(_) => (types::BOOL, false),
            Value::Null => (types::NULL, false),
        };
        (p, PathInfo { types, partial })
    }))
}

/// A document of a partition; it owns what it indexes.
#[derive(Debug)]
pub enum Doc {
    /// A block: its payload and the distinct words of its events' messages.
    Block {
        /// The block payload.
        payload: Vec<u8>,
        /// The words, separated by spaces.
        words: String,
    },
    /// An event.
    Event {
        /// Event time, UTC ns.
        ts: i64,
        /// The source's coordinates (`kubernetes.*`), shared by the events of a batch.
        coords: Arc<Vec<(String, String)>>,
        /// Why parsing failed, cut to [`MAX_FIELD_STR`].
        parse_error: Option<String>,
        /// The parsed fields.
        fields: quarry_model::Fields,
    },
}

impl Doc {
    /// The block document of a payload and its events' words.
    pub fn block(payload: Vec<u8>, words: String) -> Doc {
        Doc::Block { payload, words }
    }

    /// The event document of a parsed event (its fields are moved in).
    pub fn event(coords: Arc<Vec<(String, String)>>, event: &mut Event) -> Doc {
        Doc::Event {
            ts: event.ts,
            coords,
            parse_error: event
                .parse_error
                .as_deref()
                .map(|e| truncate(e, MAX_FIELD_STR).to_string()),
            fields: std::mem::take(&mut event.fields),
        }
    }

    /// The object of the JSON field [`F`] (`numbers` false) or [`N`] (`numbers` true).
    fn object(&self, numbers: bool) -> std::vec::IntoIter<(&str, DocValue<'_>)> {
        let Doc::Event {
            coords,
            parse_error,
            fields,
            ..
        } = self
        else {
            return Vec::new().into_iter();
        };
        let mut out = Vec::with_capacity(fields.len() + coords.len() + 1);
        if !numbers {
            out.extend(
                coords
                    .iter()
                    .map(|(k, v)| (k.as_str(), DocValue::Str(v.as_str()))),
            );
            if let Some(e) = parse_error {
                out.push(("@parseError", DocValue::Str(e.as_str())));
            }
        }
        for (k, v) in fields.iter() {
            let v = match (v, numbers) {
                (Value::Str(s), false) if indexed_str(s) => DocValue::Str(s.as_str()),
                (Value::Bool(b), false) => DocValue::Bool(*b),
                (Value::Int(i), true) => DocValue::I64(*i),
                (Value::Float(x), true) if x.is_finite() => DocValue::F64(*x),
                _ => continue,
            };
            out.push((k, v));
        }
        out.into_iter()
    }
}

/// A value of a [`Doc`] as tantivy reads it.
#[derive(Debug, Clone)]
pub enum DocValue<'a> {
    /// A string.
    Str(&'a str),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// Bytes.
    Bytes(&'a [u8]),
    /// The string and boolean fields of an event (`false`) or its numbers (`true`).
    Object(&'a Doc, bool),
}

impl<'a> tantivy::schema::Value<'a> for DocValue<'a> {
    type ArrayIter = std::iter::Empty<DocValue<'a>>;
    type ObjectIter = std::vec::IntoIter<(&'a str, DocValue<'a>)>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        match self {
            DocValue::Str(s) => ReferenceValue::Leaf(ReferenceValueLeaf::Str(s)),
            DocValue::I64(v) => ReferenceValue::Leaf(ReferenceValueLeaf::I64(*v)),
            DocValue::U64(v) => ReferenceValue::Leaf(ReferenceValueLeaf::U64(*v)),
            DocValue::F64(v) => ReferenceValue::Leaf(ReferenceValueLeaf::F64(*v)),
            DocValue::Bool(v) => ReferenceValue::Leaf(ReferenceValueLeaf::Bool(*v)),
            DocValue::Bytes(b) => ReferenceValue::Leaf(ReferenceValueLeaf::Bytes(b)),
            DocValue::Object(doc, numbers) => ReferenceValue::Object(doc.object(*numbers)),
        }
    }
}

/// The fields of [`Doc`]s; every partition has the same schema, so the handles are fixed.
static FIELDS: std::sync::OnceLock<Fields> = std::sync::OnceLock::new();

/// The field handles of the partition schema.
pub fn fields() -> Fields {
    *FIELDS.get_or_init(|| schema().1)
}

impl tantivy::Document for Doc {
    type Value<'a> = DocValue<'a>;
    type FieldsValuesIter<'a> = std::vec::IntoIter<(Field, DocValue<'a>)>;

    fn iter_fields_and_values(&self) -> Self::FieldsValuesIter<'_> {
        let f = fields();
        match self {
            Doc::Block { payload, words } => vec![
                (f.is_block, DocValue::U64(1)),
                (f.block, DocValue::Bytes(payload)),
                (f.msg, DocValue::Str(words)),
            ]
            .into_iter(),
            Doc::Event { ts, .. } => vec![
                (f.ts, DocValue::I64(*ts)),
                (f.f, DocValue::Object(self, false)),
                (f.n, DocValue::Object(self, true)),
            ]
            .into_iter(),
        }
    }
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
