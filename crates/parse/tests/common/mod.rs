//! Helpers shared by the oracle tests: data paths, decoding in one chunk and byte by byte, and the
//! reparse check.
#![allow(dead_code)]

pub mod csv;

use quarry_model::{Event, Fields, Value};
use quarry_parse::{reparse, DecodeStats, Decoder, DecoderOptions, Format};
use std::path::PathBuf;

/// A fixed "now" for tests: 2024-06-01T00:00:00Z.
pub const NOW: i64 = 1_717_200_000_000_000_000;

/// Path of a file under the shared third-party data folder.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

pub fn read(rel: &str) -> Vec<u8> {
    let p = data(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn read_str(rel: &str) -> String {
    String::from_utf8(read(rel)).expect("utf-8 test data")
}

/// Decodes `input` fed in chunks of `chunk` bytes (0: one chunk).
pub fn decode_chunked(
    format: Format,
    opts: DecoderOptions,
    input: &[u8],
    fb: i64,
    chunk: usize,
) -> (Vec<Event>, DecodeStats, Format) {
    let mut d = Decoder::with_options(format, opts);
    let mut out = Vec::new();
    if chunk == 0 {
        d.feed(input, fb, &mut out);
    } else {
        for c in input.chunks(chunk) {
            d.feed(c, fb, &mut out);
        }
    }
    d.finish(fb, &mut out);
    (out, d.stats().clone(), d.format())
}

/// Decodes in one chunk, checks that every event reads back the same with `reparse`, and returns them.
pub fn decode(
    format: Format,
    opts: DecoderOptions,
    input: &[u8],
    fb: i64,
) -> (Vec<Event>, DecodeStats) {
    let (evs, stats, _) = decode_chunked(format, opts, input, fb, 0);
    check_reparse(&evs);
    (evs, stats)
}

/// Same as [`decode`], and also checks that 1-byte chunks give exactly the same events and stats.
pub fn decode_bytewise(
    format: Format,
    opts: DecoderOptions,
    input: &[u8],
    fb: i64,
) -> (Vec<Event>, DecodeStats) {
    let (evs, stats) = decode(format, opts.clone(), input, fb);
    let (evs1, stats1, _) = decode_chunked(format, opts, input, fb, 1);
    assert_eq!(
        evs.len(),
        evs1.len(),
        "event count differs with 1-byte chunks"
    );
    for (a, b) in evs.iter().zip(&evs1) {
        assert_eq!(a, b, "event differs with 1-byte chunks");
    }
    assert_eq!(stats, stats1);
    (evs, stats)
}

/// Every event read again from its raw text, format and hint gives the same message, fields and error.
pub fn check_reparse(evs: &[Event]) {
    for ev in evs {
        let r = reparse(ev.format, &ev.raw, ev.hint.as_deref(), ev.ts);
        assert_eq!(r.message, ev.message, "reparse message of {:?}", ev.raw);
        assert_eq!(r.fields, ev.fields, "reparse fields of {:?}", ev.raw);
        assert_eq!(
            r.parse_error, ev.parse_error,
            "reparse error of {:?}",
            ev.raw
        );
        assert_eq!(r.format, ev.format, "reparse format of {:?}", ev.raw);
        assert_eq!(r.ts, ev.ts);
    }
}

pub fn s(f: &Fields, k: &str) -> Option<String> {
    f.get(k).map(|v| v.to_string())
}

pub fn int(f: &Fields, k: &str) -> Option<i64> {
    match f.get(k) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

pub fn rfc(s: &str) -> i64 {
    quarry_model::time::parse_rfc3339(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Compares a JSON scalar from an oracle with one of our values (numbers by value, strings exactly).
pub fn same(ours: &Value, theirs: &serde_json::Value) -> bool {
    match (ours, theirs) {
        (Value::Int(a), serde_json::Value::Number(n)) => n.as_i64() == Some(*a),
        (Value::Float(a), serde_json::Value::Number(n)) => n.as_f64() == Some(*a),
        (Value::Str(a), serde_json::Value::String(b)) => a == b,
        (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
        (Value::Null, serde_json::Value::Null) => true,
        _ => false,
    }
}
