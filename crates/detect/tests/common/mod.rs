//! Shared helpers of the detect tests: the shared test data and running a detector over parsed events.
#![allow(dead_code)]

use quarry_detect::{Detector, Match, Scratch};
use quarry_model::{Event, Kind, Source};
use quarry_parse::{decode_all, DecoderOptions, Format};
use std::path::{Path, PathBuf};

/// A path under `shared/data`.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

/// Parses a file with `format`.
pub fn parse_file(path: &Path, format: Format) -> Vec<Event> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode_all(format, DecoderOptions::default(), &bytes, 0).0
}

/// Falco's k8s audit test traces: `(trace name, events)`, sorted by name.
pub fn falco_traces() -> Vec<(String, Vec<Event>)> {
    let dir = data("k8s_audit/falco_trace_files/test/trace_files/k8s_audit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, parse_file(&p, Format::Audit))
        })
        .collect()
}

/// Every `(event, match)` of `events` as `kind`.
pub fn run<'a>(d: &Detector, kind: Kind, events: &'a [Event]) -> Vec<(&'a Event, Match)> {
    let source = Source::of_kind(kind);
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let mut all = Vec::new();
    for ev in events {
        out.clear();
        d.detect(&source, ev, &mut scratch, &mut out);
        all.extend(out.drain(..).map(|m| (ev, m)));
    }
    all
}
