//! Detection on the live stream: [`Live`] sees every batch the store takes in (it is the store's
//! [`Observer`]), runs the compiled rules over it, turns matches into alerts in the [`AlertStore`] (durable
//! before the batch is acknowledged) and hands new alerts to the [`Notifier`] without waiting for them to be
//! delivered.

use crate::alerts::{Alert, AlertError, AlertStore, Candidate};
use crate::correlate::{Correlator, Fired, DEFAULT_LATENESS_NS};
use crate::deliver::{Notifier, Sink};
use crate::detector::{Detector, Level, RuleInfo};
use crate::event::Scratch;
use crate::evidence;
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
}

/// Live detection.
pub struct Live {
    detector: Detector,
    correlator: Option<Mutex<Correlator>>,
    alerts: AlertStore,
    notifier: Notifier,
    metrics: LiveMetrics,
    state_file: PathBuf,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("rules", &self.detector.rules().len())
            .finish()
    }
}

impl Live {
    /// Live detection with `detector`, keeping alerts in `alert_dir` and delivering them to `sinks`.
    pub fn open(
        detector: Detector,
        alert_dir: &Path,
        sinks: Vec<Sink>,
    ) -> Result<Live, AlertError> {
        Live::open_with_retry(detector, alert_dir, sinks, Duration::from_secs(1))
    }

    /// As [`Live::open`], with the first pause between delivery attempts given (tests shorten it).
    pub fn open_with_retry(
        detector: Detector,
        alert_dir: &Path,
        sinks: Vec<Sink>,
        retry_base: Duration,
    ) -> Result<Live, AlertError> {
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
        Ok(Live {
            detector,
            correlator: correlator.map(Mutex::new),
            alerts,
            notifier,
            metrics: LiveMetrics::default(),
            state_file,
        })
    }

    /// Releases correlation matches that waited long enough and raises what fired; saves the windows
    /// with `save`. The server calls it every second ([`Live::start_ticker`]).
    pub fn tick(&self, save: bool) -> Result<Vec<Alert>, AlertError> {
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

    /// Calls [`Live::tick`] every second (saving the windows every minute) for as long as `live` lives.
    pub fn start_ticker(live: &Arc<Live>) {
        if live.correlator.is_none() {
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

    /// Runs the rules over a batch and raises its alerts (durable on return); returns the new ones.
    pub fn process(&self, source: &Source, events: &[Event]) -> Result<Vec<Alert>, AlertError> {
        let started = Instant::now();
        let mut scratch = Scratch::default();
        let mut matches = Vec::new();
        let mut candidates = Vec::new();
        // Matching runs without the correlation lock (ingest threads match side by side); only the matches
        // of rules correlations use are handed over, under the lock.
        let mut for_correlation = Vec::new();
        for ev in events {
            matches.clear();
            self.detector.detect(source, ev, &mut scratch, &mut matches);
            let results: Vec<_> = matches.iter_mut().filter_map(|m| m.result.take()).collect();
            for m in &matches {
                candidates.push(candidate(&self.detector.rules()[m.rule], source, ev));
            }
            if !results.is_empty() {
                for_correlation.push((ev, results));
            }
        }
        let m = &self.metrics;
        m.matches
            .fetch_add(candidates.len() as u64, Ordering::Relaxed);
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
        m.detect_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        m.events.fetch_add(events.len() as u64, Ordering::Relaxed);
        self.raise(candidates)
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

    /// Releases every held correlation match, saves the windows, waits for queued deliveries, then stops.
    pub fn close(self) {
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
fn default_entity(source: &Source, ev: &Event) -> String {
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
        Kind::Json | Kind::Text => String::new(),
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
        .and_then(parse_window)
        .unwrap_or(DEFAULT_SUPPRESS_NS);
    let namespace = match source.kind {
        Kind::Audit => field(ev, "objectRef.namespace").map(str::to_string),
        _ => source.namespace.clone(),
    };
    Candidate {
        rule_id: rule.id.clone(),
        title: rule.title.clone(),
        level: rule.level,
        tags: rule.tags.clone(),
        dedup_key: format!("{}|{entity}", rule.id),
        namespace,
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
        "events": body.and_then(|b| b.events.clone()).unwrap_or_default(),
    });
    let event_hash = {
        use std::hash::{Hash, Hasher};
        let mut s = std::collections::hash_map::DefaultHasher::new();
        (&rule_id, &entity, f.ts).hash(&mut s);
        s.finish()
    };
    Candidate {
        rule_id: rule_id.clone(),
        title: h.rule_title.clone(),
        level: Level::from(h.level),
        tags: h.tags.clone(),
        dedup_key: format!("{rule_id}|{entity}"),
        namespace: f.source.namespace.clone(),
        ts: f.ts,
        event,
        event_hash,
        suppress_ns: DEFAULT_SUPPRESS_NS,
    }
}

/// A hash identifying an event (its time, source and text).
fn event_hash(source: &Source, ev: &Event) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (ev.ts, &ev.raw, source.kind, &source.node, &source.pod).hash(&mut h);
    h.finish()
}

/// A window such as `30s`, `15m`, `1h`, `2d` in nanoseconds.
pub fn parse_window(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(secs)?.checked_mul(1_000_000_000)
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
        let live = Live::open(d, dir.path(), Vec::new()).unwrap();
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
        assert_eq!(alerts[0].evidence[0]["events"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("30s"), Some(30_000_000_000));
        assert_eq!(parse_window("2h"), Some(7_200_000_000_000));
        assert_eq!(parse_window("h"), None);
        assert_eq!(parse_window("5y"), None);
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
        let live = Live::open(Detector::new(&set), dir.path(), Vec::new()).unwrap();
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
}
