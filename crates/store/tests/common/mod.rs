//! Helpers shared by the store's integration tests.

#![allow(dead_code)]

use quarry_model::Event;
use quarry_parse::{Decoder, Format};
use quarry_store::wal::BatchKey;

/// The events a decoder reads from `text`, with `now` for records without a time.
pub fn decode(format: Format, text: &str, now: i64) -> Vec<Event> {
    let mut d = Decoder::new(format);
    let mut out = Vec::new();
    d.feed(text.as_bytes(), now, &mut out);
    d.finish(now, &mut out);
    out
}

/// A batch key with only a batch id.
pub fn key(id: &str) -> BatchKey {
    BatchKey {
        batch_id: Some(id.into()),
        ..BatchKey::default()
    }
}
