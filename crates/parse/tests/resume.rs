//! `Decoder::pending_offset`: a reader that stops anywhere and restarts from the pending offset with a
//! new decoder, skipping what it had already emitted, gets exactly the events of one uninterrupted read.
//! This is how the node agent resumes a file after a crash without losing or repeating a record.

use quarry_parse::{Decoder, DecoderOptions, Format, Multiline, MultilineMode};

fn opts(multiline: Option<Multiline>) -> DecoderOptions {
    DecoderOptions {
        multiline,
        ..DecoderOptions::default()
    }
}

fn summary(events: &[quarry_model::Event]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (e.raw.clone(), e.message().to_string()))
        .collect()
}

/// Every cut position: read `[0, cut)`, restart at the pending offset, feed `[pending, cut)` and drop what it
/// emits, then read on to the end. The two halves must add up to the whole.
fn check_every_cut(format: Format, ml: Option<Multiline>, input: &str) {
    let bytes = input.as_bytes();
    let mut whole = Vec::new();
    let mut d = Decoder::with_options(format, opts(ml.clone()));
    d.feed(bytes, 0, &mut whole);
    d.finish(0, &mut whole);
    assert!(whole.len() > 3, "test input too small");
    for cut in 0..=bytes.len() {
        let mut first = Vec::new();
        let mut a = Decoder::with_options(format, opts(ml.clone()));
        // feed in two pieces so a carry line exists at some cuts
        let mid = cut / 2;
        a.feed(&bytes[..mid], 0, &mut first);
        a.feed(&bytes[mid..cut], 0, &mut first);
        let resume = a.pending_offset() as usize;
        assert!(resume <= cut, "pending offset {resume} past the cut {cut}");
        let mut b = Decoder::with_options(format, opts(ml.clone()));
        let mut replayed = Vec::new();
        b.feed(&bytes[resume..cut], 0, &mut replayed);
        let mut second = Vec::new();
        b.feed(&bytes[cut..], 0, &mut second);
        b.finish(0, &mut second);
        first.extend(second);
        assert_eq!(
            summary(&first),
            summary(&whole),
            "cut at byte {cut}, resumed at {resume}"
        );
    }
}

#[test]
fn cri_partials_on_two_streams() {
    let input = "2024-05-01T10:00:00.000000001Z stdout P part one \n\
                 2024-05-01T10:00:00.000000002Z stderr F error line\n\
                 2024-05-01T10:00:00.000000003Z stdout P part two \n\
                 2024-05-01T10:00:00.000000004Z stdout F end\n\
                 2024-05-01T10:00:00.000000005Z stdout F single\n\
                 2024-05-01T10:00:00.000000006Z stderr P half \n\
                 2024-05-01T10:00:00.000000007Z stderr F done\n\
                 2024-05-01T10:00:00.000000008Z stdout F last";
    check_every_cut(Format::Cri, None, input);
}

#[test]
fn java_stack_traces_in_cri_lines() {
    let input = "2024-05-01T10:00:00.000000001Z stdout F 2024-05-01 10:00:00 INFO start\n\
                 2024-05-01T10:00:00.000000002Z stdout F Exception in thread \"main\" java.lang.IllegalStateException: boom\n\
                 2024-05-01T10:00:00.000000003Z stdout F \tat com.example.App.run(App.java:10)\n\
                 2024-05-01T10:00:00.000000004Z stdout F \tat com.example.App.main(App.java:5)\n\
                 2024-05-01T10:00:00.000000005Z stdout F 2024-05-01 10:00:01 INFO next\n\
                 2024-05-01T10:00:00.000000006Z stdout F 2024-05-01 10:00:02 INFO last\n";
    check_every_cut(
        Format::Cri,
        Some(Multiline::new(MultilineMode::Java)),
        input,
    );
}

#[test]
fn custom_start_pattern_on_text() {
    let input = "[INFO] one\n  continued\n  more\n[WARN] two\n[INFO] three\n  tail\n[INFO] four\n";
    check_every_cut(
        Format::Text,
        Some(Multiline::custom(r"^\[").unwrap()),
        input,
    );
}

#[test]
fn json_documents_over_several_lines() {
    let input = "{\"a\": 1}\n{\n  \"b\": 2,\n  \"c\": [1,\n 2]\n}\n{\"d\": \"x\"}\n{\"e\": 5}\n";
    check_every_cut(Format::Json, None, input);
}

#[test]
fn nothing_pending_is_the_bytes_fed() {
    let mut d = Decoder::new(Format::Text);
    let mut out = Vec::new();
    d.feed(b"one\ntwo\nthr", 0, &mut out);
    assert_eq!(d.pending_offset(), 8);
    d.feed(b"ee\n", 0, &mut out);
    assert_eq!(d.pending_offset(), 14);
    assert_eq!(out.len(), 3);
}

#[test]
fn flush_records_keeps_the_unfinished_line() {
    let mut d = Decoder::with_options(Format::Text, opts(Some(Multiline::custom(r"^\[").unwrap())));
    let mut out = Vec::new();
    d.feed(b"[a] x\n  y\n[b] par", 0, &mut out);
    assert!(out.is_empty());
    d.flush_records(0, &mut out);
    assert_eq!(summary(&out)[0].0, "[a] x\n  y");
    assert_eq!(
        d.pending_offset(),
        10,
        "the unfinished line is still pending"
    );
    d.feed(b"tial\n", 0, &mut out);
    d.finish(0, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].raw, "[b] partial");
}
