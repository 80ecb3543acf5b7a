//! Container logs against upstream oracles: the hand-transcribed CRI/docker vectors (Vector, Loki,
//! fluent-plugin-parser-cri), fluent-bit's multiline.c vectors and fluent-bit's Kubernetes filter test logs
//! with their expected records.
//! Data (used in place, not copied): Vector (MPL-2.0), Loki, fluent-plugin-parser-cri and fluent-bit
//! (Apache-2.0); see shared/data/SOURCES.md.

mod common;

use common::*;
use quarry_model::Value;
use quarry_parse::{Decoder, DecoderOptions, Format, Multiline};
use serde_json::Value as J;

const VECTORS: &str = "container_logs/test_vectors/hand_transcribed_cri_docker_vectors.json";
const FB_ML: &str = "container_logs/test_vectors/fluent-bit_multiline_c_vectors.json";
const FB_K8S: &str = "container_logs/fluent-bit/tests/runtime/data/kubernetes";

fn source<'a>(doc: &'a J, repo: &str, path_part: &str) -> &'a J {
    doc["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["repo"] == repo && s["path"].as_str().unwrap().contains(path_part))
        .unwrap_or_else(|| panic!("no source {repo} {path_part}"))
}

fn one(format: Format, line: &[u8]) -> quarry_model::Event {
    let mut input = line.to_vec();
    input.push(b'\n');
    let (evs, _) = decode_bytewise(format, DecoderOptions::default(), &input, NOW);
    assert_eq!(evs.len(), 1, "{:?}", String::from_utf8_lossy(line));
    evs.into_iter().next().unwrap()
}

#[test]
fn vector_cri_cases() {
    let doc: J = serde_json::from_str(&read_str(VECTORS)).unwrap();
    let cases = source(&doc, "vectordotdev/vector", "cri.rs")["cases"]
        .as_array()
        .unwrap();
    assert_eq!(cases.len(), 6);
    for c in cases {
        let exp = &c["expected"];
        let (line, want_msg): (Vec<u8>, String) = if let Some(i) = c["input"].as_str() {
            (
                i.as_bytes().to_vec(),
                exp["message"].as_str().unwrap().to_string(),
            )
        } else if c.get("input_generated").is_some() {
            let payload: String = "very long message "
                .repeat(1000)
                .chars()
                .take(16384)
                .collect();
            let line = format!("2016-10-06T00:17:10.113242941Z stdout P {payload}");
            (line.into_bytes(), payload)
        } else {
            let hex = |s: &str| {
                (0..s.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                    .collect::<Vec<u8>>()
            };
            let mut line = hex(c["input_bytes_hex"].as_str().unwrap());
            assert_eq!(line.pop(), Some(b'\n'));
            let msg = hex(exp["message_bytes_hex"].as_str().unwrap());
            (line, String::from_utf8_lossy(&msg).into_owned())
        };
        for fmt in [Format::Cri, Format::Container, Format::Auto] {
            let ev = one(fmt, &line);
            assert_eq!(ev.message.as_deref(), Some(want_msg.as_str()));
            assert_eq!(ev.ts, rfc(exp["timestamp"].as_str().unwrap()));
            assert_eq!(s(&ev.fields, "stream").as_deref(), exp["stream"].as_str());
            let partial = exp["partial"].as_bool().unwrap();
            assert_eq!(
                s(&ev.fields, "logtag").as_deref(),
                Some(if partial { "P" } else { "F" })
            );
            assert_eq!(ev.format, "cri");
            assert!(ev.parse_error.is_none());
        }
    }
}

#[test]
fn vector_docker_cases_and_invalid_inputs() {
    let doc: J = serde_json::from_str(&read_str(VECTORS)).unwrap();
    let src = source(&doc, "vectordotdev/vector", "docker.rs");
    for c in src["cases"].as_array().unwrap() {
        let exp = &c["expected"];
        for fmt in [Format::Docker, Format::Container, Format::Auto] {
            let ev = one(fmt, c["input"].as_str().unwrap().as_bytes());
            assert_eq!(ev.message.as_deref(), exp["message"].as_str());
            assert_eq!(ev.ts, rfc(exp["timestamp"].as_str().unwrap()));
            assert_eq!(s(&ev.fields, "stream").as_deref(), exp["stream"].as_str());
            assert_eq!(ev.format, "docker");
            assert_eq!(ev.raw, c["input"].as_str().unwrap());
        }
    }
    let invalid = src["invalid_inputs"].as_array().unwrap();
    assert_eq!(invalid.len(), 11);
    for bad in invalid {
        let bad = bad.as_str().unwrap();
        for fmt in [Format::Docker, Format::Container] {
            let (evs, stats) = decode_bytewise(
                fmt,
                DecoderOptions::default(),
                format!("{bad}\n").as_bytes(),
                NOW,
            );
            if bad.is_empty() {
                assert!(evs.is_empty());
                continue;
            }
            assert_eq!(evs.len(), 1, "{bad}");
            assert!(evs[0].parse_error.is_some(), "{bad} should fail");
            assert_eq!(evs[0].raw, bad);
            assert_eq!(evs[0].ts, NOW);
            assert_eq!(stats.parse_errors, 1);
        }
    }
}

/// Loki's CRI stage reassembles partials per label set; one decoder per label set is the same thing.
fn loki_run(entries: &J, opts: DecoderOptions) -> Vec<String> {
    let mut decoders: Vec<(String, Decoder)> = Vec::new();
    let mut out = Vec::new();
    for e in entries.as_array().unwrap() {
        let line = e[0].as_str().unwrap();
        let labels = e[1].to_string();
        let idx = match decoders.iter().position(|(l, _)| *l == labels) {
            Some(i) => i,
            None => {
                decoders.push((labels, Decoder::with_options(Format::Cri, opts.clone())));
                decoders.len() - 1
            }
        };
        decoders[idx]
            .1
            .feed(format!("{line}\n").as_bytes(), NOW, &mut out);
    }
    for (_, d) in decoders.iter_mut() {
        d.finish(NOW, &mut out);
    }
    check_reparse(&out);
    out.iter().map(|e| e.message().to_string()).collect()
}

#[test]
fn loki_cri_tags() {
    let doc: J = serde_json::from_str(&read_str(VECTORS)).unwrap();
    let src = source(&doc, "grafana/loki", "TestCRI_tags");
    let cases = src["cases"].as_array().unwrap();
    let mut checked = 0;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let want: Vec<String> = c["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let opts = if name.contains("truncation") {
            // Loki's max_partial_line_size=11 with truncate is our max_record_bytes
            DecoderOptions {
                max_record_bytes: 11,
                ..DecoderOptions::default()
            }
        } else if name.contains("maxPartialLines exceeded") {
            // Loki flushes when more than 3 label sets hold partials; we keep partials per stream
            // until F (bounded by bytes instead), so that upstream expectation does not apply.
            continue;
        } else {
            DecoderOptions::default()
        };
        assert_eq!(loki_run(&c["entries"], opts), want, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn fluentd_parser_cri_cases() {
    let doc: J = serde_json::from_str(&read_str(VECTORS)).unwrap();
    let src = source(&doc, "fluent/fluent-plugin-parser-cri", "test_parser_cri");
    for c in src["cases"].as_array().unwrap() {
        let exp = &c["expected"];
        let ev = one(Format::Cri, c["input"].as_str().unwrap().as_bytes());
        assert_eq!(s(&ev.fields, "stream").as_deref(), exp["stream"].as_str());
        assert_eq!(s(&ev.fields, "logtag").as_deref(), exp["logtag"].as_str());
        if let Some(m) = exp.get("message") {
            assert_eq!(ev.message.as_deref(), m.as_str());
            assert_eq!(ev.ts, rfc(exp["time"].as_str().unwrap()));
        } else {
            // JSON content: its keys become fields next to stream/logtag. The record time stays the
            // runtime's; the inner "time" is a field (fluentd's merge would make it the event time).
            assert_eq!(ev.fields.get("foo"), Some(&Value::from("bar")));
            assert_eq!(ev.fields.get("num"), Some(&Value::Int(100)));
            assert_eq!(s(&ev.fields, "time").as_deref(), exp["event_time"].as_str());
            assert_eq!(ev.ts, rfc("2020-10-10T00:10:00.333333333Z"));
        }
    }
}

/// fluent-bit's C test passes records, not file lines; a raw newline inside a docker `log` string is what
/// docker writes as `\n`, so it is written that way here.
fn fb_input(set: &J) -> Vec<u8> {
    let mut s = String::new();
    for l in set["input"].as_array().unwrap() {
        s.push_str(&l.as_str().unwrap().replace('\n', "\\n"));
        s.push('\n');
    }
    s.into_bytes()
}

fn fb_expected(set: &J) -> Vec<String> {
    set["expected_output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let s = v.as_str().unwrap();
            s.strip_suffix('\n').unwrap_or(s).to_string()
        })
        .collect()
}

#[test]
fn fluent_bit_multiline_vectors() {
    let doc: J = serde_json::from_str(&read_str(FB_ML)).unwrap();
    let sets = doc["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 5);
    let mut messages = 0;
    for (name, set) in sets {
        let opts = if name == "issue_3817_1" {
            DecoderOptions {
                multiline: Some(Multiline::custom(r"^\[DEBUG\]").unwrap()),
                ..DecoderOptions::default()
            }
        } else {
            DecoderOptions::default()
        };
        let (evs, _) = decode_bytewise(Format::Container, opts, &fb_input(set), NOW);
        let got: Vec<String> = evs.iter().map(|e| e.message().to_string()).collect();
        let want = fb_expected(set);
        assert_eq!(got, want, "set {name}");
        messages += want.len();
    }
    assert_eq!(messages, 28);
}

#[test]
fn fluent_bit_multiline_partial_flush_on_bad_line() {
    let doc: J = serde_json::from_str(&read_str(FB_ML)).unwrap();
    let set = &doc["sets"]["docker"];
    let (evs, stats) = decode(
        Format::Docker,
        DecoderOptions::default(),
        &fb_input(set),
        NOW,
    );
    // the non-docker line is kept, flagged, after the pending "dd" it flushed
    assert_eq!(evs[3].message(), "dd");
    assert_eq!(evs[3].fields.get("stream"), Some(&Value::from("stderr")));
    assert!(evs[4].parse_error.is_some());
    assert_eq!(stats.parse_errors, 1);
    assert_eq!(stats.records, 6);
}

#[test]
fn fluent_bit_kubernetes_logs_match_expected_records() {
    let root = data(FB_K8S);
    let mut outs = Vec::new();
    for dir in [
        "annotations",
        "annotations-exclude",
        "annotations-parser",
        "core",
        "options",
    ] {
        for e in std::fs::read_dir(root.join("out").join(dir)).unwrap() {
            outs.push((dir, e.unwrap().path()));
        }
    }
    assert!(outs.len() >= 70);
    let mut compared = 0;
    for (dir, out) in outs {
        let name = out.file_stem().unwrap().to_str().unwrap().to_string();
        let (base, stream) = match name.rsplit_once('_') {
            Some((b, s @ ("stdout" | "stderr"))) => (b.to_string(), Some(s)),
            _ => (name.clone(), None),
        };
        let log = root.join("log").join(dir).join(format!("{base}.log"));
        let input = std::fs::read(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let (evs, stats) =
            decode_bytewise(Format::Container, DecoderOptions::default(), &input, NOW);
        assert_eq!(stats.parse_errors, 0, "{}", log.display());
        let evs: Vec<_> = evs
            .iter()
            .filter(|e| stream.is_none_or(|s| s == s_of(e)))
            .collect();
        let want: Vec<J> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(evs.len(), want.len(), "{}", out.display());
        for (ev, w) in evs.iter().zip(&want) {
            let (t, rec) = (&w[0], &w[1]);
            assert_eq!(Some(s_of(ev)), rec["stream"].as_str());
            if let Some(log) = rec["log"].as_str() {
                assert_eq!(
                    ev.message(),
                    log.strip_suffix('\n').unwrap_or(log),
                    "{}",
                    out.display()
                );
            }
            // annotation parsers rewrite the time from the content; elsewhere it is the runtime's
            if rec.get("log").is_some() || dir != "annotations-parser" {
                // fluent-bit prints a double: within a microsecond
                let want_us = (t.as_f64().unwrap() * 1e6).round() as i64;
                assert!(
                    ((ev.ts + 500) / 1000 - want_us).abs() <= 1,
                    "{}",
                    out.display()
                );
            }
            // keys merged from JSON content (fluent-bit's Merge_Log); Trim removes the trailing newline
            let mut extra = quarry_model::Fields::new();
            let mut rest = rec.clone();
            for k in ["log", "stream", "kubernetes", "kubernetes_namespace"] {
                rest.as_object_mut().unwrap().remove(k);
            }
            if dir != "annotations-parser" {
                quarry_model::flatten_json("", &rest, &mut extra);
                for (k, v) in extra.iter() {
                    let k = k.strip_prefix("merge-log-key.").unwrap_or(k);
                    let ours = ev.fields.get(k).map(|x| x.to_string());
                    assert_eq!(
                        ours.as_deref().map(str::trim),
                        Some(v.to_string().trim()),
                        "{} {k}",
                        out.display()
                    );
                }
            }
            compared += 1;
        }
    }
    assert!(compared >= 70, "{compared}");
}

fn s_of(e: &quarry_model::Event) -> &str {
    e.fields.get("stream").and_then(Value::as_str).unwrap_or("")
}

#[test]
fn cri_multiline_java_across_partials_and_streams() {
    let lines = [
        "2024-05-01T12:00:00.000000001Z stdout F INFO request ok",
        "2024-05-01T12:00:00.000000002Z stdout F java.lang.IllegalStateException: bo",
        "2024-05-01T12:00:00.000000003Z stderr F unrelated stderr line",
        "2024-05-01T12:00:00.000000004Z stdout P \tat com.example.App.run(App",
        "2024-05-01T12:00:00.000000005Z stdout F .java:10)",
        "2024-05-01T12:00:00.000000006Z stdout F Caused by: java.io.IOException: disk",
        "2024-05-01T12:00:00.000000007Z stdout F \t... 3 more",
        "2024-05-01T12:00:00.000000008Z stdout F INFO next",
    ];
    let input = lines.join("\n") + "\n";
    let opts = DecoderOptions {
        multiline: Some("java".parse().unwrap()),
        ..DecoderOptions::default()
    };
    let (evs, _) = decode_bytewise(Format::Cri, opts, input.as_bytes(), NOW);
    let msgs: Vec<&str> = evs.iter().map(|e| e.message()).collect();
    assert_eq!(
        msgs,
        vec![
            "INFO request ok",
            "unrelated stderr line",
            "java.lang.IllegalStateException: bo\n\tat com.example.App.run(App.java:10)\nCaused by: java.io.IOException: disk\n\t... 3 more",
            "INFO next",
        ]
    );
    let trace = &evs[2];
    assert_eq!(
        trace.raw,
        [lines[1], lines[3], lines[4], lines[5], lines[6]].join("\n")
    );
    assert_eq!(trace.ts, rfc("2024-05-01T12:00:00.000000002Z"));
    assert_eq!(trace.fields.get("logtag"), Some(&Value::from("F")));
    // without multiline, every message stands alone
    let (evs, _) = decode(
        Format::Cri,
        DecoderOptions::default(),
        input.as_bytes(),
        NOW,
    );
    assert_eq!(evs.len(), 7);
}

#[test]
fn container_truncation_at_cap_is_counted_and_rereadable() {
    let mut input = String::new();
    for i in 0..10 {
        input.push_str(&format!("2024-05-01T12:00:00Z stdout P chunk{i:02}-"));
        input.push('\n');
    }
    input.push_str("2024-05-01T12:00:01Z stdout F end\n");
    input.push_str("2024-05-01T12:00:02Z stdout F after\n");
    let opts = DecoderOptions {
        max_record_bytes: 20,
        ..DecoderOptions::default()
    };
    let (evs, stats) = decode_bytewise(Format::Cri, opts, input.as_bytes(), NOW);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].message(), "chunk00-chunk01-chun");
    assert_eq!(evs[0].hint.as_deref(), Some("max_record_bytes=20"));
    assert_eq!(evs[0].raw.lines().count(), 3);
    assert_eq!(evs[1].message(), "after");
    assert_eq!(stats.truncated, 1);
    // one line with more content than the cap: the message is cut, the line is kept
    let long = format!("2024-05-01T12:00:00Z stdout F {}\n", "x".repeat(100));
    let (evs, stats) = decode_bytewise(
        Format::Cri,
        DecoderOptions {
            max_record_bytes: 50,
            ..DecoderOptions::default()
        },
        long.as_bytes(),
        NOW,
    );
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].raw.len(), 130);
    assert_eq!(evs[0].message().len(), 50);
    assert_eq!(stats.truncated, 1);
}
