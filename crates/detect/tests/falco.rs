//! The built-in pack against Falco's own Kubernetes audit tests (falcosecurity/falco test traces and their
//! expected detections, `shared/data/k8s_audit/falco_trace_files`, Apache-2.0).
//!
//! Each built-in rule that stands for Falco rules names them in its `falco` attribute. On the 41 tests
//! that run Falco's default rules without overrides ("the clean subset"), every detection Falco expects
//! must come from a built-in rule naming that Falco rule, on the same number of events; and on the traces
//! Falco passes, no Falco-equivalent rule may fire. The figure is written in `rules/README.md`, which this
//! test keeps honest.

mod common;

use common::{data, falco_traces, run};
use quarry_detect::{Detector, RuleSet};
use std::collections::{BTreeMap, BTreeSet};

const CLEAN: [&str; 2] = ["falco_rules.yaml", "k8s_audit_rules.yaml"];

struct Row {
    test: String,
    trace: String,
    expect: BTreeMap<String, usize>,
}

fn clean_rows() -> Vec<Row> {
    let text = std::fs::read_to_string(data(
        "k8s_audit/falco_trace_files/falco_k8s_audit_tests.index.jsonl",
    ))
    .unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| {
            let files: Vec<&str> = r["rules_file"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().rsplit('/').next().unwrap())
                .collect();
            files == CLEAN
        })
        .map(|r| Row {
            test: r["test"].as_str().unwrap().to_string(),
            trace: r["trace_file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".json")
                .to_string(),
            expect: r["detect_counts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .flat_map(|m| m.as_object().unwrap().iter())
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap() as usize))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

#[test]
fn builtin_pack_detects_what_falco_detects_on_its_own_tests() {
    let d = Detector::new(&RuleSet::builtin());
    assert!(d.problems().is_empty(), "{:#?}", d.problems());
    let traces: BTreeMap<String, Vec<quarry_model::Event>> = falco_traces().into_iter().collect();
    let rows = clean_rows();
    assert_eq!(rows.len(), 41);

    let (mut detected, mut should_detect, mut silent, mut should_be_silent) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for row in &rows {
        let events = &traces[&row.trace];
        // Falco rule name -> events of this trace on which a built-in rule standing for it fired.
        let mut fired: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (ev, m) in run(&d, quarry_model::Kind::Audit, events) {
            let i = events.iter().position(|e| std::ptr::eq(e, ev)).unwrap();
            for f in d.rules()[m.rule].attribute_list("falco") {
                fired.entry(f.to_string()).or_default().insert(i);
            }
        }
        if row.expect.is_empty() {
            should_be_silent += 1;
            if fired.is_empty() {
                silent += 1;
            } else {
                failures.push(format!(
                    "{} ({}): Falco passes it, but {fired:?} fired",
                    row.test, row.trace
                ));
            }
        } else {
            should_detect += 1;
            let ok = row
                .expect
                .iter()
                .all(|(rule, n)| fired.get(rule).map_or(0, BTreeSet::len) == *n);
            if ok {
                detected += 1;
            } else {
                failures.push(format!(
                    "{} ({}): Falco expects {:?}, built-in Falco-equivalent rules fired on {fired:?}",
                    row.test, row.trace, row.expect
                ));
            }
        }
    }
    let figure = format!(
        "{detected} of {should_detect} detections and {silent} of {should_be_silent} silent traces"
    );
    eprintln!("Falco clean subset: {figure}");
    assert!(failures.is_empty(), "{figure}\n{}", failures.join("\n"));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/README.md")).unwrap();
    assert!(
        readme.contains(&figure),
        "rules/README.md should state: {figure}"
    );
}
