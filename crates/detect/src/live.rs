//! Detection on the live stream: [`Live`] sees every batch the store takes in (it is the store's
//! [`Observer`]), runs the compiled rules over it, turns matches into alerts in the [`AlertStore`] (durable
//! before the batch is acknowledged) and hands new alerts to the [`Notifier`] without waiting for them to be
//! delivered.

use crate::alerts::{Alert, AlertError, AlertStore, Candidate};
use crate::deliver::{Notifier, Sink};
use crate::detector::{Detector, RuleInfo};
use crate::event::Scratch;
use crate::evidence;
use quarry_model::{Event, Kind, Source};
use quarry_store::Observer;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

/// Live detection.
pub struct Live {
    detector: Detector,
    alerts: AlertStore,
    notifier: Notifier,
    metrics: LiveMetrics,
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
        let notifier = Notifier::new(sinks, alert_dir.join("deadletter.jsonl"), retry_base);
        Ok(Live {
            detector,
            alerts,
            notifier,
            metrics: LiveMetrics::default(),
        })
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
        for ev in events {
            matches.clear();
            self.detector.detect(source, ev, &mut scratch, &mut matches);
            for m in &matches {
                candidates.push(candidate(&self.detector.rules()[m.rule], source, ev));
            }
        }
        let m = &self.metrics;
        m.detect_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        m.events.fetch_add(events.len() as u64, Ordering::Relaxed);
        m.matches
            .fetch_add(candidates.len() as u64, Ordering::Relaxed);
        let opened = self
            .alerts
            .raise(candidates, quarry_model::time::now_nanos())?;
        m.alerts_opened
            .fetch_add(opened.len() as u64, Ordering::Relaxed);
        for a in &opened {
            tracing::info!(alert = %a.id, rule = %a.rule_id, level = %a.level, title = %a.title, "alert");
            self.notifier.send(a.clone());
        }
        Ok(opened)
    }

    /// Waits for queued deliveries, then stops.
    pub fn close(self) {
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
            .get("srcaddr")
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
        level: rule.level.as_str().to_string(),
        tags: rule.tags.clone(),
        dedup_key: format!("{}|{entity}", rule.id),
        namespace,
        ts: ev.ts,
        event: evidence(source, ev),
        event_hash: event_hash(source, ev),
        suppress_ns,
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
    use crate::rules::RuleSet;

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
