//! Helpers shared by the store's integration tests.

#![allow(dead_code)]

use quarry_model::Event;
use quarry_parse::{Decoder, Format};
use quarry_store::wal::BatchKey;
use std::path::Path;

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

/// Copies a running store's directory, as a crash would leave it: files its threads remove meanwhile
/// (temporary files, merged segments) are left out, as they would be gone.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else if e.file_name() != "LOCK" {
            match std::fs::copy(&src, &dst) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => panic!("{}: {err}", src.display()),
            }
        }
    }
}
