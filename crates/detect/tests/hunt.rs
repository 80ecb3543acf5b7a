//! Streaming detection and retro-hunts agree: the built-in pack runs on every batch as the store takes it
//! in (through the store's observer hook, as `quarry server` does), then `hunt` runs the same rules over
//! what was stored, through the index. Both must find exactly the same (rule, event) pairs, and the index
//! must have spared the hunt most of the events.

mod common;

use common::data;
use quarry_detect::hunt::{hunt, HuntOptions, RuleQuery};
use quarry_detect::{Detector, RuleSet, Scratch};
use quarry_model::{Event, Kind, Source};
use quarry_parse::{decode_all, DecoderOptions, Format};
use quarry_store::wal::BatchKey;
use quarry_store::{Observer, Store, StoreConfig};
use std::sync::{Arc, Mutex};

/// What streaming detection matched: `(rule id, event time)`.
struct Recorder {
    detector: Detector,
    seen: Mutex<Vec<(String, i64)>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Observer for Recorder {
    fn observe(&self, source: &Source, events: &[Event]) -> Result<(), String> {
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        let mut seen = self.seen.lock().unwrap();
        for ev in events {
            out.clear();
            self.detector.detect(source, ev, &mut scratch, &mut out);
            for m in &out {
                let id = self.detector.rules()[m.rule].id.clone();
                seen.push((id, ev.ts));
            }
        }
        Ok(())
    }
}

/// Real and generated logs of every kind the pack reads, parsed, with their sources.
fn inputs(now: i64) -> Vec<(Source, Vec<Event>)> {
    let parse = |format, bytes: &[u8]| decode_all(format, DecoderOptions::default(), bytes, now).0;
    let mut out: Vec<(Source, Vec<Event>)> = common::falco_traces()
        .into_iter()
        .map(|(_, events)| (Source::of_kind(Kind::Audit), events))
        .collect();
    out.push((
        Source::of_kind(Kind::CloudTrail),
        common::parse_file(
            &data("aws/awsdocs_eks_cloudtrail/eks_cloudtrail_examples.jsonl"),
            Format::CloudTrail,
        ),
    ));
    out.push((
        Source {
            node: Some("loghub-openssh".into()),
            ..Source::of_kind(Kind::Syslog)
        },
        parse(
            Format::Syslog,
            &std::fs::read(data("node_logs/loghub/OpenSSH/OpenSSH_2k.log")).unwrap(),
        ),
    ));
    // The demo cluster's hour, with its attack: audit, VPC flows and node logs.
    let demo = quarry_demo::DemoConfig {
        end_ns: now,
        ..quarry_demo::DemoConfig::default()
    };
    for chunk in quarry_demo::generate(&demo) {
        // Container logs: no rule of the pack reads them.
        if chunk.format != "cri" {
            let format = chunk
                .format
                .parse()
                .expect("the demo's formats are parsers' names");
            out.push((chunk.source, parse(format, &chunk.data)));
        }
    }
    out
}

#[test]
fn hunt_finds_what_streaming_found_through_the_index() {
    let now = quarry_model::time::now_nanos();
    let set = RuleSet::builtin();
    let recorder = Arc::new(Recorder {
        detector: Detector::new(&set),
        seen: Mutex::new(Vec::new()),
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig {
        observer: Some(recorder.clone()),
        ..StoreConfig::new(dir.path())
    })
    .unwrap();
    for (i, (source, events)) in inputs(now).into_iter().enumerate() {
        let key = BatchKey {
            batch_id: Some(format!("b{i}")),
            ..BatchKey::default()
        };
        store.ingest(key, &source, events).unwrap();
    }
    store.commit().unwrap();

    let detector = Detector::new(&set);
    let report = hunt(
        &store,
        &set,
        &detector,
        &HuntOptions {
            max_hits: usize::MAX,
            base_matches: true,
            ..HuntOptions::default()
        },
    )
    .unwrap();

    let mut streamed = recorder.seen.lock().unwrap().clone();
    let ids: std::collections::HashSet<&str> =
        detector.rules().iter().map(|r| r.id.as_str()).collect();
    let mut hunted: Vec<(String, i64)> = report
        .hits
        .iter()
        .filter(|h| ids.contains(h.rule_id.as_str()) && h.event.get("correlation").is_none())
        .map(|h| (h.rule_id.clone(), h.ts))
        .collect();
    streamed.sort();
    hunted.sort();
    assert!(
        streamed.len() > 100,
        "the data should trigger the pack: {}",
        streamed.len()
    );
    let (streamed_keys, hunted_keys) = (&streamed, &hunted);
    if streamed_keys != hunted_keys {
        let only_stream: Vec<_> = streamed_keys
            .iter()
            .filter(|k| !hunted_keys.contains(k))
            .take(10)
            .collect();
        let only_hunt: Vec<_> = hunted_keys
            .iter()
            .filter(|k| !streamed_keys.contains(k))
            .take(10)
            .collect();
        panic!(
            "streaming {} matches, hunt {}; only streaming: {only_stream:?}; only hunt: {only_hunt:?}",
            streamed_keys.len(),
            hunted_keys.len()
        );
    }

    // The index did the narrowing: most rules read a small part of the data, and the hunt as a whole
    // (one read of the union) far less than all of it. What is left are rules that match broadly
    // (every ACCEPT to a low port feeds a scan correlation) and keywords, whose words are looked up per
    // block.
    let s = &report.scan;
    assert!(
        s.candidates * 10 < s.events_in_range * 7,
        "read {} of {} events",
        s.candidates,
        s.events_in_range
    );
    let mut reads: Vec<u64> = report.rules.iter().map(|r| r.candidates).collect();
    reads.sort_unstable();
    let median = reads[reads.len() / 2];
    assert!(
        median * 100 <= s.events_in_range,
        "the median rule read {median} of {} events",
        s.events_in_range
    );
    let filtered = report
        .rules
        .iter()
        .filter(|r| matches!(r.query, RuleQuery::Filter(_) | RuleQuery::Nothing))
        .count();
    assert!(
        filtered * 10 >= report.rules.len() * 9,
        "{filtered} of {} rules through the index",
        report.rules.len()
    );
    // Correlations run over the hunted matches in event time: the demo's SSH brute force fires.
    assert!(
        report
            .hits
            .iter()
            .any(|h| h.event.get("correlation").is_some()),
        "no correlation fired"
    );
}
