//! Detection on the live stream: [`Live`] sees every batch the store takes in (it is the store's
//! [`Observer`]), runs the compiled rules over it, turns matches into alerts in the [`AlertStore`] (durable
//! before the batch is acknowledged) and hands new alerts to the [`Notifier`] without waiting for them to be
//! delivered. Audit batches also go through the behaviour [`Baselines`], whose new keys become alerts
//! the same way.

use crate::alerts::{Alert, AlertError, AlertStore, Candidate};
use crate::baseline::{BaselineConfig, BaselineStatus, Baselines, Pending, STATE_FILE};
use crate::correlate::{Correlator, Fired, DEFAULT_LATENESS_NS};
use crate::deliver::{Notifier, Sink};
use crate::detector::{Detector, Level, RuleInfo};
use crate::event::Scratch;
use crate::evidence;
use crate::intel::Intel;
use quarry_model::{Event, Kind, Source};
use quarry_store::Observer;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Suppression window of rules that do not set one: one hour.
pub const DEFAULT_SUPPRESS_NS: i64 = 3600 * 1_000_000_000;

/// Counters of live detection.
#[derive(Debug, Default)]
pub struct LiveMetrics {
    /// Events run through the rules.
    pub events: AtomicU64,
    /// Rule matches.
    pub matches: AtomicU64,
    /// Alerts opened.
    pub alerts_opened: AtomicU64,
    /// Time spent matching, in nanoseconds (detection's share of ingest CPU).
    pub detect_nanos: AtomicU64,
    /// Matches that arrived later than the allowed lateness and were left out of correlations.
    pub correlation_late: AtomicU64,
    /// Keys held by the behaviour baselines (current).
    pub baseline_keys: AtomicU64,
    /// New behaviour keys reported as alerts.
    pub baseline_new: AtomicU64,
    /// New behaviour keys neither learned nor reported because their baseline was full.
    pub baseline_full_drops: AtomicU64,
    /// Baseline files found unreadable at start (learning started again).
    pub baseline_state_corrupt: AtomicU64,
    /// Events that matched a threat-intelligence indicator.
    pub intel_matches: AtomicU64,
}

/// How [`Live`] runs, beyond its rules and alert directory.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Where alerts are delivered.
    pub sinks: Vec<Sink>,
    /// First pause between delivery attempts (doubles on each retry; tests shorten it).
    pub retry_base: Duration,
    /// Behaviour baselines.
    pub baseline: BaselineConfig,
    /// Threat-intelligence indicators matched on every event.
    pub intel: Option<Arc<Intel>>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            sinks: Vec::new(),
            retry_base: Duration::from_secs(1),
            baseline: BaselineConfig::default(),
            intel: None,
        }
    }
}

/// Live detection.
pub struct Live {
    detector: Detector,
    correlator: Option<Mutex<Correlator>>,
    alerts: AlertStore,
    notifier: Notifier,
    metrics: LiveMetrics,
    state_file: PathBuf,
    baselines: Option<Baselines>,
    intel: Option<Arc<Intel>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("rules", &self.detector.rules().len())
            .finish()
    }
}

impl Live {
    /// Live detection with `detector`, keeping alerts (and the correlation windows and behaviour
    /// baselines) in `alert_dir`.
    pub fn open(
        detector: Detector,
        alert_dir: &Path,
        options: LiveOptions,
    ) -> Result<Live, AlertError> {
        let LiveOptions {
            sinks,
            retry_base,
            baseline,
            intel,
        } = options;
        let alerts = AlertStore::open(alert_dir)?;
        if alerts.torn_lines() > 0 {
            tracing::warn!(
                lines = alerts.torn_lines(),
                dir = %alert_dir.display(),
                "alert journal lines that could not be read were skipped (a crash while writing?)"
            );
        }
        let notifier = Notifier::new(sinks, alert_dir.join("deadletter.jsonl"), retry_base);
        let state_file = alert_dir.join("correlation-state.json");
        let mut correlator = detector.correlator(DEFAULT_LATENESS_NS);
        if let (Some(c), Ok(text)) = (&mut correlator, std::fs::read(&state_file)) {
            let restored = serde_json::from_slice(&text).is_ok_and(|state| c.import(state));
            if !restored {
                tracing::warn!(file = %state_file.display(), "correlation windows not restored (rules changed?); starting empty");
            }
        }
        let metrics = LiveMetrics::default();
        let baselines = baseline
            .enabled
            .then(|| Baselines::open(baseline, &alert_dir.join(STATE_FILE)));
        if let Some(b) = &baselines {
            let s = b.status();
            metrics.baseline_keys.store(s.keys, Ordering::Relaxed);
            metrics
                .baseline_state_corrupt
                .store(s.corrupt_state, Ordering::Relaxed);
            tracing::info!(
                keys = s.keys,
                learning = s.learning,
                learning_until = s
                    .learning_until_ns
                    .map(quarry_model::time::format_rfc3339_nanos)
                    .as_deref()
                    .unwrap_or("(the window starts with the first audit event)"),
                learning_days = b.config().learn_ns as f64 / 86_400e9,
                "behaviour baselines"
            );
        }
        Ok(Live {
            detector,
            correlator: correlator.map(Mutex::new),
            alerts,
            notifier,
            metrics,
            state_file,
            baselines,
            intel,
        })
    }

    /// Releases correlation matches that waited long enough and raises what fired; saves the windows
    /// and the behaviour baselines with `save`. The server calls it every second
    /// ([`Live::start_ticker`]).
    pub fn tick(&self, save: bool) -> Result<Vec<Alert>, AlertError> {
        if save {
            self.save_baselines();
        }
        let Some(c) = &self.correlator else {
            return Ok(Vec::new());
        };
        let now = quarry_model::time::now_nanos();
        let (fired, state) = {
            let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
            let fired = c.release(self.detector.field_table(), now, false);
            self.metrics
                .correlation_late
                .store(c.late(), Ordering::Relaxed);
            (fired, save.then(|| c.export()))
        };
        if let Some(state) = state {
            if let Err(e) =
                quarry_store::write_atomic(&self.state_file, state.to_string().as_bytes())
            {
                tracing::warn!(file = %self.state_file.display(), error = %e, "cannot save correlation windows");
            }
        }
        self.raise(fired.iter().map(correlation_candidate).collect())
    }

    /// Calls [`Live::tick`] every second (saving the windows and baselines every minute) for as long as
    /// `live` lives.
    pub fn start_ticker(live: &Arc<Live>) {
        if live.correlator.is_none() && live.baselines.is_none() {
            return;
        }
        let weak = Arc::downgrade(live);
        let _ = std::thread::Builder::new()
            .name("quarry-correlate".into())
            .spawn(move || {
                let mut n = 0u64;
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let Some(live) = weak.upgrade() else { return };
                    n += 1;
                    if let Err(e) = live.tick(n.is_multiple_of(60)) {
                        tracing::error!(error = %e, "cannot record correlation alerts");
                    }
                }
            });
    }

    /// The rules.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The alerts.
    pub fn alerts(&self) -> &AlertStore {
        &self.alerts
    }

    /// Detection counters.
    pub fn metrics(&self) -> &LiveMetrics {
        &self.metrics
    }

    /// Delivery counters.
    pub fn delivery(&self) -> &crate::deliver::DeliveryMetrics {
        self.notifier.metrics()
    }

    /// Where the behaviour baselines stand: learning or not, until when, how many keys.
    pub fn baseline_status(&self) -> BaselineStatus {
        match &self.baselines {
            Some(b) => b.status(),
            None => BaselineStatus::disabled(),
        }
    }

    /// Writes the behaviour baselines if they changed (a failure is logged; the next save retries).
    fn save_baselines(&self) {
        if let Some(b) = &self.baselines {
            if let Err(e) = b.save() {
                tracing::warn!(error = %e, "cannot save the behaviour baselines");
            }
        }
    }

    /// Runs the rules over a batch and raises its alerts (durable on return); returns the new ones.
    pub fn process(&self, source: &Source, events: &[Event]) -> Result<Vec<Alert>, AlertError> {
        let started = Instant::now();
        let mut scratch = Scratch::default();
        let mut matches = Vec::new();
        let mut candidates = Vec::new();
        // Matching runs without the correlation lock (ingest threads match side by side); only the matches
        // of rules correlations use are handed over, under the lock.
        let mut for_correlation = Vec::new();
        let mut pending = Pending::default();
        let (mut n_matches, mut n_intel, mut hits) = (0u64, 0u64, Vec::new());
        for (i, ev) in events.iter().enumerate() {
            if let Some(b) = &self.baselines {
                b.scan(source, i, ev, &mut pending);
            }
            matches.clear();
            self.detector.detect(source, ev, &mut scratch, &mut matches);
            n_matches += matches.len() as u64;
            let results: Vec<_> = matches.iter_mut().filter_map(|m| m.result.take()).collect();
            for m in &matches {
                // Rules that only feed correlations raise nothing of their own (Sigma's `generate`).
                let rule = &self.detector.rules()[m.rule];
                if rule.generate {
                    candidates.push(candidate(rule, source, ev));
                }
            }
            if !results.is_empty() {
                for_correlation.push((ev, results));
            }
            if let Some(intel) = &self.intel {
                intel.check(source, ev, &mut hits);
                for h in hits.drain(..) {
                    // An indicator past its validity says nothing about later events.
                    if h.indicator.valid_until.is_none_or(|t| ev.ts < t) {
                        n_intel += 1;
                        candidates.push(h.candidate(source, ev));
                    }
                }
            }
        }
        let m = &self.metrics;
        m.matches.fetch_add(n_matches, Ordering::Relaxed);
        m.intel_matches.fetch_add(n_intel, Ordering::Relaxed);
        if let (Some(c), false) = (&self.correlator, for_correlation.is_empty()) {
            let now = quarry_model::time::now_nanos();
            let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
            for (ev, results) in for_correlation {
                c.push(source, ev, results, now);
            }
            m.correlation_late.store(c.late(), Ordering::Relaxed);
            let fired = c.release(self.detector.field_table(), now, false);
            candidates.extend(fired.iter().map(correlation_candidate));
        }
        let baseline = self
            .baselines
            .as_ref()
            .map(|b| b.commit(source, events, pending, &mut candidates));
        m.detect_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        m.events.fetch_add(events.len() as u64, Ordering::Relaxed);
        let raised = self.raise(candidates);
        if let (Some(b), Some(t)) = (&self.baselines, baseline) {
            if raised.is_err() {
                // Not recorded: unlearn the reported keys so that the retried batch reports them again.
                b.forget(&t.reported);
            } else {
                m.baseline_new
                    .fetch_add(t.reported.len() as u64, Ordering::Relaxed);
            }
            if t.keys > 0 {
                m.baseline_keys.store(t.keys, Ordering::Relaxed);
                m.baseline_full_drops.store(t.full_drops, Ordering::Relaxed);
            }
        }
        raised
    }

    /// Stores candidates as alerts and hands the new ones to delivery.
    fn raise(&self, candidates: Vec<Candidate>) -> Result<Vec<Alert>, AlertError> {
        let opened = self
            .alerts
            .raise(candidates, quarry_model::time::now_nanos())?;
        self.metrics
            .alerts_opened
            .fetch_add(opened.len() as u64, Ordering::Relaxed);
        for a in &opened {
            tracing::info!(alert = %a.id, rule = %a.rule_id, level = %a.level, title = %a.title, "alert");
            self.notifier.send(a.clone());
        }
        Ok(opened)
    }

    /// Releases every held correlation match, saves the windows and baselines, waits for queued
    /// deliveries, then stops.
    pub fn close(self) {
        self.save_baselines();
        if let Some(c) = &self.correlator {
            let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
            let fired = c.release(self.detector.field_table(), i64::MAX, true);
            let state = c.export();
            drop(c);
            if let Err(e) = self.raise(fired.iter().map(correlation_candidate).collect()) {
                tracing::error!(error = %e, "cannot record correlation alerts");
            }
            let _ = quarry_store::write_atomic(&self.state_file, state.to_string().as_bytes());
        }
        self.notifier.close();
    }
}

impl Observer for Live {
    fn observe(&self, source: &Source, events: &[Event]) -> Result<(), String> {
        // Quarry's own access audit is not detection input: alerts on it would show analysts who
        // searched what, which only auditors may read.
        if source.kind == quarry_model::Kind::Access {
            return Ok(());
        }
        self.process(source, events)
            .map(|_| ())
            .map_err(|e| format!("cannot record alerts: {e}"))
    }
}

/// A string field of `ev`.
fn field<'a>(ev: &'a Event, path: &str) -> Option<&'a str> {
    ev.fields.get(path).and_then(|v| v.as_str())
}

/// Who or what did it, by source kind: the audit event's user, the CloudTrail caller, the flow's source
/// address, the node, the pod.
pub(crate) fn default_entity(source: &Source, ev: &Event) -> String {
    let first = |paths: &[&str]| {
        paths
            .iter()
            .find_map(|p| field(ev, p))
            .unwrap_or("")
            .to_string()
    };
    match source.kind {
        Kind::Audit => first(&["user.username"]),
        Kind::CloudTrail => first(&[
            "userIdentity.arn",
            "userIdentity.principalId",
            "sourceIPAddress",
        ]),
        Kind::VpcFlow => ev
            .fields
            .get("srcAddr")
            .map(|v| v.to_string())
            .unwrap_or_default(),
        Kind::Syslog => field(ev, "hostname")
            .or(source.node.as_deref())
            .unwrap_or("")
            .to_string(),
        Kind::Container => match (&source.namespace, &source.pod) {
            (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
            _ => String::new(),
        },
        Kind::Access => first(&["actor"]),
        Kind::Json | Kind::Text => String::new(),
    }
}

/// The Kubernetes namespace an event is about: the audit target's, else the source's.
pub(crate) fn namespace_of(source: &Source, ev: &Event) -> Option<String> {
    match source.kind {
        Kind::Audit => field(ev, "objectRef.namespace").map(str::to_string),
        _ => source.namespace.clone(),
    }
}

/// Every namespace an event names, sorted and without repeats: its source's and those of
/// [`quarry_model::NAMESPACE_FIELDS`] (what a caller's scope is checked against).
pub(crate) fn namespaces_of(source: &Source, ev: &Event) -> Vec<String> {
    let mut out: Vec<String> = source.namespace.iter().cloned().collect();
    for f in quarry_model::NAMESPACE_FIELDS {
        match ev.fields.get(f) {
            None | Some(quarry_model::Value::Null) => {}
            Some(v) => out.push(v.to_string()),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Namespaces named in evidence JSON: raw audit events (`objectRef.namespace`), Quarry's flat form
/// (`kubernetes.namespace`), Fluent Bit's (`kubernetes.namespace_name`), and the events of correlations.
pub fn json_namespaces(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| json_namespaces(i, out)),
        serde_json::Value::Object(m) => {
            for path in quarry_model::NAMESPACE_FIELDS {
                let direct = m.get(path);
                let nested = path
                    .split_once('.')
                    .and_then(|(a, b)| m.get(a).and_then(|o| o.get(b)));
                for x in [direct, nested].into_iter().flatten() {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                }
            }
            if let Some(events) = m.get("events") {
                json_namespaces(events, out);
            }
        }
        _ => {}
    }
}

/// A match as an alert candidate.
fn candidate(rule: &RuleInfo, source: &Source, ev: &Event) -> Candidate {
    let dedup_fields = rule.attribute_list("dedup");
    let entity = if dedup_fields.is_empty() {
        default_entity(source, ev)
    } else {
        dedup_fields
            .iter()
            .map(|f| ev.fields.get(f).map(|v| v.to_string()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(",")
    };
    let suppress_ns = rule
        .attributes
        .get("suppress")
        .and_then(|v| v.as_str())
        .and_then(quarry_query::parse_duration)
        .unwrap_or(DEFAULT_SUPPRESS_NS);
    Candidate {
        rule_id: rule.id.clone(),
        title: rule.title.clone(),
        level: rule.level,
        tags: rule.tags.clone(),
        dedup_key: format!("{}|{entity}", rule.id),
        namespace: namespace_of(source, ev),
        namespaces: namespaces_of(source, ev),
        ts: ev.ts,
        event: evidence(source, ev),
        event_hash: event_hash(source, ev),
        suppress_ns,
    }
}

/// A fired correlation as an alert candidate: keyed by the correlation and its group, with the
/// correlation's figures and contributing events as evidence.
fn correlation_candidate(f: &Fired) -> Candidate {
    let h = &f.result.header;
    let rule_id = h.rule_id.clone().unwrap_or_else(|| h.rule_title.clone());
    let body = f.result.as_correlation();
    let group: serde_json::Map<String, serde_json::Value> = body
        .map(|b| {
            b.group_key
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect()
        })
        .unwrap_or_default();
    let entity = group
        .values()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let event = serde_json::json!({
        "correlation": body.map(|b| serde_json::to_value(b.correlation_type).unwrap_or_default()),
        "group": group,
        "value": body.map(|b| b.aggregated_value),
        "timespan_secs": body.map(|b| b.timespan_secs),
        "events": contributing_events(f),
    });
    let event_hash = {
        use std::hash::{Hash, Hasher};
        let mut s = std::collections::hash_map::DefaultHasher::new();
        (&rule_id, &entity, f.ts).hash(&mut s);
        s.finish()
    };
    let mut namespaces: Vec<String> = f.source.namespace.iter().cloned().collect();
    json_namespaces(&event, &mut namespaces);
    namespaces.sort();
    namespaces.dedup();
    Candidate {
        rule_id: rule_id.clone(),
        title: h.rule_title.clone(),
        level: Level::from(h.level),
        tags: h.tags.clone(),
        dedup_key: format!("{rule_id}|{entity}"),
        namespace: f.source.namespace.clone(),
        namespaces,
        ts: f.ts,
        event,
        event_hash,
        suppress_ns: DEFAULT_SUPPRESS_NS,
    }
}

/// The events behind a fired correlation: those its window kept (chains keep theirs), else the one that
/// completed it.
pub(crate) fn contributing_events(f: &Fired) -> serde_json::Value {
    match f.result.as_correlation().and_then(|b| b.events.clone()) {
        Some(events) if !events.is_empty() => events.into(),
        _ => serde_json::Value::Array(vec![f.event.clone()]),
    }
}

/// A hash identifying an event (its time, source and text).
pub(crate) fn event_hash(source: &Source, ev: &Event) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (ev.ts, &ev.raw, source.kind, &source.node, &source.pod).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertFilter;
    use crate::rules::RuleSet;

    fn audit_event(user: &str, ts_s: i64, subresource: &str) -> Event {
        let json = serde_json::json!({"user": {"username": user},
            "objectRef": {"subresource": subresource, "namespace": "prod"}});
        let mut e = Event::text(ts_s * 1_000_000_000, json.to_string());
        quarry_model::flatten_json("", &json, &mut e.fields);
        e
    }

    #[test]
    fn correlations_count_in_event_time_and_leave_late_matches_out() {
        let mut set = RuleSet::new();
        set.add_yaml(
            "c.yml",
            "title: Exec\nid: exec\nname: exec\nlogsource: {product: kubernetes, service: audit}\n\
             detection: {sel: {objectRef.subresource: exec}, condition: sel}\n\
             ---\n\
             title: Many execs\nid: many-execs\nlevel: high\n\
             correlation: {type: event_count, rules: [exec], group-by: [user.username], timespan: 60s, \
             condition: {gte: 3}}\n",
        );
        let dir = tempfile::tempdir().unwrap();
        let d = Detector::new(&set);
        assert!(d.problems().is_empty(), "{:?}", d.problems());
        let live = Live::open(d, dir.path(), LiveOptions::default()).unwrap();
        let src = Source::of_kind(Kind::Audit);
        let t0 = 1_700_000_000;
        // Out of order within the lateness; the third (in event time) is t0+50: a burst within 60 s.
        live.process(
            &src,
            &[
                audit_event("eve", t0 + 50, "exec"),
                audit_event("eve", t0, "exec"),
            ],
        )
        .unwrap();
        live.process(&src, &[audit_event("eve", t0 + 20, "exec")])
            .unwrap();
        // Alice's three execs are spread over 200 s: no burst.
        live.process(
            &src,
            &[
                audit_event("alice", t0 + 100, "exec"),
                audit_event("alice", t0 + 200, "exec"),
                audit_event("alice", t0 + 300, "exec"),
            ],
        )
        .unwrap();
        // Far behind what was released by now: too late for the windows.
        live.process(&src, &[audit_event("eve", t0 + 10, "exec")])
            .unwrap();
        assert_eq!(live.metrics().correlation_late.load(Ordering::Relaxed), 1);
        live.tick(false).unwrap();
        let alerts = live.alerts().list(&AlertFilter {
            rule_id: Some("many-execs".into()),
            ..AlertFilter::default()
        });
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].dedup_key, "many-execs|eve");
        assert_eq!(alerts[0].level, Level::High);
        assert_eq!(alerts[0].evidence[0]["value"], 3.0);
        // A count keeps no copies of its events; the one that completed it is the evidence.
        let events = alerts[0].evidence[0]["events"].as_array().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["user"]["username"], "eve");
    }

    #[test]
    fn a_batch_raises_one_alert_per_rule_and_user_with_its_evidence() {
        let mut set = RuleSet::new();
        set.add_yaml(
            "r.yml",
            "title: Exec\nid: exec\nlogsource: {product: kubernetes, service: audit}\nlevel: high\n\
             detection: {sel: {objectRef.subresource: exec}, condition: sel}\n",
        );
        let dir = tempfile::tempdir().unwrap();
        let live = Live::open(Detector::new(&set), dir.path(), LiveOptions::default()).unwrap();
        let ev = |user: &str, ts: i64| {
            let json = serde_json::json!({"user": {"username": user},
                "objectRef": {"subresource": "exec", "namespace": "prod"}});
            let mut e = Event::text(ts, json.to_string());
            quarry_model::flatten_json("", &json, &mut e.fields);
            e
        };
        let src = Source::of_kind(Kind::Audit);
        let opened = live
            .process(&src, &[ev("alice", 1), ev("alice", 2), ev("bob", 3)])
            .unwrap();
        assert_eq!(opened.len(), 2);
        let alice = opened.iter().find(|a| a.dedup_key == "exec|alice").unwrap();
        assert_eq!(alice.namespace.as_deref(), Some("prod"));
        assert_eq!(alice.evidence[0]["user"]["username"], "alice");
        assert_eq!(live.alerts().get(&alice.id).unwrap().count, 2);
        assert_eq!(live.metrics().matches.load(Ordering::Relaxed), 3);
    }

    /// An allowed audit request of `user` from `ip`: `verb` on `resource` (`pods/exec` for a
    /// subresource) in `ns`, at `ts_s` seconds.
    fn request(ts_s: i64, user: &str, ip: &str, verb: &str, resource: &str, ns: &str) -> Event {
        let (res, sub) = resource.split_once('/').unwrap_or((resource, ""));
        let json = serde_json::json!({"kind": "Event", "stage": "ResponseComplete", "verb": verb,
            "user": {"username": user}, "sourceIPs": [ip],
            "objectRef": {"resource": res, "subresource": sub, "namespace": ns},
            "responseStatus": {"code": 200}});
        let mut e = Event::text(ts_s * 1_000_000_000, json.to_string());
        quarry_model::flatten_json("", &json, &mut e.fields);
        e
    }

    #[test]
    fn baselines_alert_after_learning_and_a_restart_neither_relearns_nor_rereports() {
        let dir = tempfile::tempdir().unwrap();
        let options = || LiveOptions {
            baseline: BaselineConfig {
                learn_ns: 86_400 * 1_000_000_000,
                ..BaselineConfig::default()
            },
            ..LiveOptions::default()
        };
        let src = Source::of_kind(Kind::Audit);
        let t0 = 1_700_000_000;
        let day = 86_400;
        let live = Live::open(Detector::new(&RuleSet::new()), dir.path(), options()).unwrap();
        assert!(live.baseline_status().learning);
        let learned = request(t0, "alice", "203.0.113.7", "create", "pods/exec", "shop");
        assert!(live.process(&src, &[learned]).unwrap().is_empty());
        let s = live.baseline_status();
        assert!(s.learning);
        assert_eq!(s.learning_until_ns, Some((t0 + day) * 1_000_000_000));
        // After the window: alice's first exec into `db`.
        let new = request(
            t0 + 2 * day,
            "alice",
            "203.0.113.7",
            "create",
            "pods/exec",
            "db",
        );
        let opened = live.process(&src, std::slice::from_ref(&new)).unwrap();
        assert_eq!(opened.len(), 1, "{opened:#?}");
        let a = &opened[0];
        assert_eq!(a.rule_id, "quarry-baseline-first-exec-in-namespace");
        assert_eq!(
            a.dedup_key,
            "quarry-baseline-first-exec-in-namespace|alice,db"
        );
        assert_eq!(a.entity(), "alice,db");
        assert_eq!(a.level, Level::Medium);
        assert!(a.tags.contains(&"attack.t1609".to_string()));
        assert_eq!(a.namespace.as_deref(), Some("db"));
        assert_eq!(a.evidence[0]["objectRef"]["namespace"], "db");
        let m = live.metrics();
        assert_eq!(m.baseline_new.load(Ordering::Relaxed), 1);
        assert_eq!(m.baseline_keys.load(Ordering::Relaxed), 4);
        assert_eq!(m.baseline_full_drops.load(Ordering::Relaxed), 0);
        // Saved by the ticker's save, then at close.
        live.tick(true).unwrap();
        let file = dir.path().join(STATE_FILE);
        assert!(file.exists());
        let later = request(t0 + 3 * day, "alice", "203.0.113.7", "get", "secrets", "db");
        live.process(&src, std::slice::from_ref(&later)).unwrap();
        live.close();

        let live = Live::open(Detector::new(&RuleSet::new()), dir.path(), options()).unwrap();
        let s = live.baseline_status();
        assert!(!s.learning);
        assert_eq!(s.keys, 6, "{s:#?}");
        assert_eq!(live.metrics().baseline_keys.load(Ordering::Relaxed), 6);
        // Everything seen before the restart is known; something new still alerts.
        assert!(live.process(&src, &[new, later]).unwrap().is_empty());
        let opened = live
            .process(
                &src,
                &[request(
                    t0 + 4 * day,
                    "alice",
                    "198.51.100.1",
                    "get",
                    "secrets",
                    "db",
                )],
            )
            .unwrap();
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].rule_id, "quarry-baseline-new-source-ip");
        assert_eq!(opened[0].level, Level::Low);
    }

    #[test]
    fn baselines_can_be_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = LiveOptions::default();
        options.baseline.enabled = false;
        options.baseline.learn_ns = 0;
        let live = Live::open(Detector::new(&RuleSet::new()), dir.path(), options).unwrap();
        let src = Source::of_kind(Kind::Audit);
        let ev = request(1_700_000_000, "bob", "192.0.2.1", "get", "secrets", "x");
        assert!(live.process(&src, &[ev]).unwrap().is_empty());
        let s = live.baseline_status();
        assert!(!s.enabled && !s.learning);
        live.tick(true).unwrap();
        live.close();
        assert!(!dir.path().join(STATE_FILE).exists());
    }
}
