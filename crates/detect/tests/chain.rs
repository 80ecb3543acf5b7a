//! The intrusion-chain correlations of the built-in pack (`rules/chains/`) over the demo generator's real
//! output: the Kubernetes API chain from one address (anonymous probing, secrets listing, exec, privileged
//! pod, cluster-admin binding) raises one high alert, and followed by the bulk upload in the VPC flow logs
//! one critical alert; the benign hour, the Falco traces, a chain with a step missing, out of order or
//! stretched past its window raise neither.
//!
//! Events go through [`Live`], as on a server, in event-time order across the audit log and the flow logs
//! (a live cluster's sources arrive interleaved). Only those two kinds are decoded: no rule of the chains
//! reads any other.

mod common;

use common::falco_traces;
use quarry_demo::{Attack, DemoConfig};
use quarry_detect::alerts::{Alert, AlertFilter, AlertStore};
use quarry_detect::{Detector, Level, Live, LiveOptions, RuleSet, Scratch};
use quarry_model::{Event, Kind, Source};
use quarry_parse::{Decoder, Format};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Kubernetes Intrusion Chain From One Address.
const CHAIN: &str = "74315a7f-7928-40ea-915a-68ecb217c222";
/// VPC Flow Bulk Upload To One Public Address.
const UPLOAD: &str = "92c7afa6-7196-496b-a7f9-d4d5f989ae13";
/// Kubernetes Intrusion Chain Followed By Bulk Exfiltration.
const CHAIN_EXFIL: &str = "6f7a73fb-fd6a-41b0-bb7d-ce9f7adda359";
/// The chain's steps, in order.
const STEPS: [(&str, &str); 5] = [
    ("anonymous request", "508225d7-1b1b-4a09-b311-8360db9c62b8"),
    ("secrets listed", "522f11b2-2df0-40cc-99fc-82fe88b8d46c"),
    ("pod exec", "9d1e95f6-c617-448c-97a4-7a3b92972bf6"),
    ("privileged pod", "45bba739-b190-421e-93dd-60ace6321055"),
    (
        "cluster-admin binding",
        "7164317f-8b11-4a90-90b0-28c6e2fa2b82",
    ),
];
const NS: i64 = 1_000_000_000;

/// The demo's hour (audit and flow logs), decoded once.
struct Demo {
    attack: Attack,
    /// `(source, event)` in event-time order (stable).
    events: Vec<(Source, Event)>,
}

fn demo() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(|| {
        // A fixed end of the hour, so every run sees the same data.
        let cfg = DemoConfig {
            end_ns: 1_795_435_200 * NS, // 2026-11-23T12:00:00Z
            ..DemoConfig::default()
        };
        let mut decoders: HashMap<String, (Source, Decoder)> = HashMap::new();
        let mut events = Vec::new();
        let mut out = Vec::new();
        for chunk in quarry_demo::generate(&cfg) {
            if !matches!(chunk.source.kind, Kind::Audit | Kind::VpcFlow) {
                continue;
            }
            let (source, d) = decoders.entry(chunk.path.clone()).or_insert_with(|| {
                let format: Format = chunk.format.parse().expect("a known format");
                (chunk.source.clone(), Decoder::new(format))
            });
            d.feed(&chunk.data, cfg.end_ns, &mut out);
            events.extend(out.drain(..).map(|e| (source.clone(), e)));
        }
        for (source, d) in decoders.values_mut() {
            d.finish(cfg.end_ns, &mut out);
            events.extend(out.drain(..).map(|e| (source.clone(), e)));
        }
        assert!(
            events.iter().all(|(_, e)| e.parse_error.is_none()),
            "the demo's audit and flow logs parse"
        );
        events.sort_by_key(|(_, e)| e.ts);
        Demo {
            attack: quarry_demo::attack(&cfg),
            events,
        }
    })
}

fn text<'a>(e: &'a Event, path: &str) -> Option<&'a str> {
    e.fields.get(path).and_then(|v| v.as_str())
}

/// Whether `e` is one of the attack's: an API request from the attacker's address, or a flow to or from
/// the attacker's or the exfiltration address.
fn is_attack(a: &Attack, s: &Source, e: &Event) -> bool {
    match s.kind {
        Kind::Audit => text(e, "sourceIPs.0") == Some(a.attacker_ip.as_str()),
        Kind::VpcFlow => ["srcAddr", "dstAddr"]
            .iter()
            .filter_map(|f| text(e, f))
            .any(|ip| ip == a.attacker_ip || ip == a.exfil_ip),
        _ => false,
    }
}

/// The alerts live detection raises over `events`, fed in their order as consecutive batches of one
/// source, with every held correlation match released at the end.
fn alerts(events: &[(Source, Event)]) -> Vec<Alert> {
    let detector = Detector::new(&RuleSet::builtin());
    assert!(detector.problems().is_empty(), "{:#?}", detector.problems());
    let dir = tempfile::tempdir().unwrap();
    let live = Live::open(detector, dir.path(), LiveOptions::default()).unwrap();
    let mut batch: Vec<Event> = Vec::new();
    let mut current: Option<&Source> = None;
    for (source, ev) in events {
        if current.is_some_and(|c| c != source) {
            live.process(current.unwrap(), &std::mem::take(&mut batch))
                .unwrap();
        }
        current = Some(source);
        batch.push(ev.clone());
    }
    if let Some(source) = current {
        live.process(source, &batch).unwrap();
    }
    live.close();
    AlertStore::open(dir.path())
        .unwrap()
        .list(&AlertFilter::default())
}

fn of<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.rule_id == rule).collect()
}

/// The rules (by id) that `ev` matches.
fn matched(d: &Detector, s: &Source, ev: &Event) -> Vec<String> {
    let mut out = Vec::new();
    d.detect(s, ev, &mut Scratch::default(), &mut out);
    out.iter().map(|m| d.rules()[m.rule].id.clone()).collect()
}

/// The attack's events only (no background), in time order.
fn attack_only() -> Vec<(Source, Event)> {
    let d = demo();
    d.events
        .iter()
        .filter(|(s, e)| is_attack(&d.attack, s, e))
        .cloned()
        .collect()
}

/// `events` with the ones `pick` selects moved by `shift_ns`, in time order again.
fn shifted(
    mut events: Vec<(Source, Event)>,
    pick: impl Fn(&Source, &Event) -> bool,
    shift_ns: i64,
) -> Vec<(Source, Event)> {
    let mut moved = 0;
    for (s, e) in &mut events {
        if pick(s, e) {
            e.ts += shift_ns;
            moved += 1;
        }
    }
    assert!(moved > 0, "nothing to move");
    events.sort_by_key(|(_, e)| e.ts);
    events
}

#[test]
fn the_demo_attack_raises_one_chain_alert_and_one_exfiltration_alert() {
    let d = demo();
    let a = &d.attack;
    let all = alerts(&d.events);

    let chain = of(&all, CHAIN);
    assert_eq!(chain.len(), 1, "{chain:#?}");
    let chain = chain[0];
    assert_eq!(chain.level, Level::High);
    assert_eq!(chain.title, "Kubernetes Intrusion Chain From One Address");
    assert_eq!(chain.entity(), a.attacker_ip);
    assert_eq!(chain.count, 1, "the window is cleared when it fires");
    // It completes with the cluster-admin binding.
    let crb = a
        .steps
        .iter()
        .find(|s| s.name == "clusterrolebinding")
        .unwrap();
    // (The audit record's time has microseconds; the generator's has nanoseconds.)
    assert!(
        chain.first_seen.abs_diff(crb.start_ns) < 1_000_000,
        "{} vs {}",
        chain.first_seen,
        crb.start_ns
    );
    let evidence = &chain.evidence[0];
    assert_eq!(evidence["group"]["sourceIPs.0"], a.attacker_ip.as_str());
    assert_eq!(evidence["value"], 5.0);
    let events = evidence["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events
        .iter()
        .all(|e| e["sourceIPs.0"] == a.attacker_ip.as_str()));

    // The steps still raise their own alerts (`generate: true`): the chain adds to them.
    for (name, id) in STEPS {
        assert!(!of(&all, id).is_empty(), "no alert of the {name} step");
    }

    let upload = of(&all, UPLOAD);
    assert_eq!(upload.len(), 1, "{upload:#?}");
    assert_eq!(upload[0].level, Level::Medium);
    assert_eq!(upload[0].entity(), format!("{},{}", a.node_ip, a.exfil_ip));

    let full = of(&all, CHAIN_EXFIL);
    assert_eq!(full.len(), 1, "{full:#?}");
    let full = full[0];
    assert_eq!(full.level, Level::Critical);
    assert_eq!(full.count, 1);
    let exfil = a.steps.iter().find(|s| s.name == "exfiltration").unwrap();
    assert!(
        full.first_seen > chain.first_seen
            && (exfil.start_ns..=exfil.end_ns).contains(&full.first_seen),
        "fires on the upload, after the chain"
    );
    assert_eq!(full.first_seen, upload[0].first_seen);

    // Nothing in the pack is more severe, so the demo lists it first.
    assert!(all
        .iter()
        .all(|x| x.level < Level::Critical || x.rule_id == CHAIN_EXFIL));
}

#[test]
fn every_step_of_the_chain_comes_from_the_attack_and_from_a_general_rule() {
    // Each step rule matches some of the attacker's requests, and the steps' first matches come in the
    // chain's order: the chain does not hinge on one lucky event.
    let d = demo();
    let det = Detector::new(&RuleSet::builtin());
    let mut first = Vec::new();
    for (name, id) in STEPS {
        let t = d
            .events
            .iter()
            .filter(|(s, e)| is_attack(&d.attack, s, e))
            .find(|(s, e)| matched(&det, s, e).iter().any(|m| m == id))
            .map(|(_, e)| e.ts)
            .unwrap_or_else(|| panic!("no attack event matches the {name} step"));
        first.push(t);
    }
    assert!(first.windows(2).all(|w| w[0] <= w[1]), "{first:?}");
}

#[test]
fn the_benign_hour_raises_no_chain_alert() {
    let d = demo();
    let benign: Vec<_> = d
        .events
        .iter()
        .filter(|(s, e)| !is_attack(&d.attack, s, e))
        .cloned()
        .collect();
    assert!(benign.len() > 10_000, "{}", benign.len());
    let all = alerts(&benign);
    for rule in [CHAIN, UPLOAD, CHAIN_EXFIL] {
        assert!(of(&all, rule).is_empty(), "{rule}: {:#?}", of(&all, rule));
    }
    // The background does have steps of the chain on their own (so the chain is what keeps it quiet).
    let det = Detector::new(&RuleSet::builtin());
    let steps = benign
        .iter()
        .filter(|(s, e)| {
            let m = matched(&det, s, e);
            STEPS.iter().any(|(_, id)| m.iter().any(|x| x == id))
        })
        .count();
    assert!(steps > 0, "no benign event matches a step rule");
}

#[test]
fn the_chain_needs_every_step() {
    let det = Detector::new(&RuleSet::builtin());
    let attack = attack_only();
    // The attack alone raises the chain (the background plays no part in it).
    assert_eq!(of(&alerts(&attack), CHAIN).len(), 1);
    for (name, id) in STEPS {
        let without: Vec<_> = attack
            .iter()
            .filter(|(s, e)| !matched(&det, s, e).iter().any(|m| m == id))
            .cloned()
            .collect();
        assert!(without.len() < attack.len(), "{name}: nothing removed");
        let all = alerts(&without);
        assert!(
            of(&all, CHAIN).is_empty() && of(&all, CHAIN_EXFIL).is_empty(),
            "chain raised without the {name} step"
        );
    }
}

#[test]
fn the_chain_needs_its_order_and_its_window() {
    let det = Detector::new(&RuleSet::builtin());
    let a = &demo().attack;
    let attack = attack_only();
    let start = attack[0].1.ts;
    let is_step = |i: usize| {
        let det = &det;
        move |s: &Source, e: &Event| matched(det, s, e).iter().any(|m| m == STEPS[i].1)
    };

    // The cluster-admin binding before the anonymous probing.
    let first_ts = |events: &[(Source, Event)], i: usize| {
        events
            .iter()
            .find(|(s, e)| is_step(i)(s, e))
            .map(|(_, e)| e.ts)
            .unwrap()
    };
    let crb_early = shifted(
        attack.clone(),
        is_step(4),
        start - first_ts(&attack, 4) - 60 * NS,
    );
    let all = alerts(&crb_early);
    assert!(of(&all, CHAIN).is_empty(), "binding first: {all:#?}");

    // The privileged pod before the exec.
    let priv_early = shifted(
        attack.clone(),
        is_step(3),
        first_ts(&attack, 2) - first_ts(&attack, 3) - 60 * NS,
    );
    assert!(
        of(&alerts(&priv_early), CHAIN).is_empty(),
        "privileged pod before the exec"
    );

    // The binding seven hours later: out of the six-hour window.
    let late = shifted(attack.clone(), is_step(4), 7 * 3600 * NS);
    assert!(
        of(&alerts(&late), CHAIN).is_empty(),
        "binding after the window"
    );
    // ... but five hours later is still the same intrusion.
    let slow = shifted(attack.clone(), is_step(4), 5 * 3600 * NS);
    assert_eq!(of(&alerts(&slow), CHAIN).len(), 1, "binding five hours on");

    // The upload before the chain completes: both parts alert, the critical chain does not.
    let exfil_first = shifted(
        attack.clone(),
        |s, e| s.kind == Kind::VpcFlow && text(e, "dstAddr") == Some(a.exfil_ip.as_str()),
        start - first_ts(&attack, 4) - 3600 * NS,
    );
    let all = alerts(&exfil_first);
    assert_eq!(of(&all, CHAIN).len(), 1);
    assert_eq!(of(&all, UPLOAD).len(), 1);
    assert!(
        of(&all, CHAIN_EXFIL).is_empty(),
        "upload before the chain: {all:#?}"
    );
}

#[test]
fn falco_traces_raise_no_chain_alert() {
    // Every Falco k8s audit test trace, as one stream in time order.
    let mut events: Vec<(Source, Event)> = falco_traces()
        .into_iter()
        .flat_map(|(_, evs)| evs)
        .map(|e| (Source::of_kind(Kind::Audit), e))
        .collect();
    assert!(events.len() > 40, "{}", events.len());
    events.sort_by_key(|(_, e)| e.ts);
    let all = alerts(&events);
    assert!(!all.is_empty(), "the traces raise the pack's own alerts");
    for rule in [CHAIN, UPLOAD, CHAIN_EXFIL] {
        assert!(of(&all, rule).is_empty(), "{rule}: {:#?}", of(&all, rule));
    }
}
