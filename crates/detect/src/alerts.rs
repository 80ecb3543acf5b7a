//! Alerts: what a rule match becomes, stored with its evidence and taken through its lifecycle.
//!
//! An alert is keyed by its **dedup key**: the rule and the entity that did it (the audit event's user, the
//! CloudTrail caller's ARN, the flow's source address, the node; a rule can name its own fields with the
//! custom attribute `dedup: [field, ...]`). A match whose key has an open alert seen within the rule's
//! **suppression window** (one hour unless the rule sets `suppress: 30m`) is folded into that alert: its
//! count grows and, up to [`MAX_EVIDENCE`] events, its evidence; nothing new is delivered. Otherwise a
//! new alert opens and is delivered.
//!
//! Lifecycle: `open` → `acknowledged` → `closed` (any state may go to any other; each change is kept with
//! who made it, when and why). A closed alert no longer absorbs matches: the next one opens a new alert.
//!
//! Durability: every change is appended to `alerts.jsonl` in the alert directory as one JSON line and
//! fsynced before the change is visible, so an acknowledged ingest never loses the alert it raised. The
//! journal is read back at start; a torn last line (a crash mid-write) is ignored and counted.

use crate::detector::Level;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Most events kept as one alert's evidence; later ones only count.
pub const MAX_EVIDENCE: usize = 20;

/// Most event hashes remembered per alert to recognise a retried batch; beyond it a retry counts again.
const MAX_REMEMBERED: usize = 4096;

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// New, nobody has looked at it.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Done (resolved or a false positive).
    Closed,
}

impl std::str::FromStr for AlertState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "open" | "reopen" => Ok(AlertState::Open),
            "acknowledged" | "ack" | "acknowledge" => Ok(AlertState::Acknowledged),
            "closed" | "close" => Ok(AlertState::Closed),
            other => Err(format!(
                "unknown alert state {other:?}: expected open, acknowledged or closed"
            )),
        }
    }
}

/// A change of state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The new state.
    pub state: AlertState,
    /// Who changed it.
    pub by: String,
    /// When (UTC ns).
    pub at: i64,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id (`a-` and 16 hex digits).
    pub id: String,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// Severity.
    pub level: Level,
    /// The rule's tags (ATT&CK techniques among them).
    pub tags: Vec<String>,
    /// Where it is in its lifecycle.
    pub state: AlertState,
    /// Rule and entity: matches with the same key fold into one alert within the suppression window.
    pub dedup_key: String,
    /// The Kubernetes namespace of the first event, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Every namespace its events name (sorted; empty for cluster-scoped events). Matches naming other
    /// namespaces never fold into it, so whoever may see these namespaces may see all of the alert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Event time of the first and last matching event (UTC ns).
    pub first_seen: i64,
    /// See `first_seen`.
    pub last_seen: i64,
    /// When the alert was raised (wall clock, UTC ns).
    pub raised_at: i64,
    /// Matching events folded into it.
    pub count: u64,
    /// The first [`MAX_EVIDENCE`] matching events (left out of listings, see [`alert_json`]).
    #[serde(default)]
    pub evidence: Vec<serde_json::Value>,
    /// Suppression window of its rule (ns).
    pub suppress_ns: i64,
    /// State changes, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Transition>,
}

impl Alert {
    /// Who or what the alert is about: the part of its dedup key after the rule (a user, an address, a
    /// node; empty when the rule has none).
    pub fn entity(&self) -> &str {
        self.dedup_key.split_once('|').map_or("", |(_, e)| e)
    }
}

/// What matches fold by: the rule's key and the namespaces the event names.
fn fold_key(dedup_key: &str, namespaces: &[String]) -> String {
    format!("{dedup_key}\u{0}{}", namespaces.join(","))
}

/// A match on its way to becoming (or joining) an alert.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Rule id.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Severity.
    pub level: Level,
    /// Tags.
    pub tags: Vec<String>,
    /// Dedup key.
    pub dedup_key: String,
    /// Namespace of the event.
    pub namespace: Option<String>,
    /// Every namespace the event names, sorted (see [`Alert::namespaces`]).
    pub namespaces: Vec<String>,
    /// Event time (UTC ns).
    pub ts: i64,
    /// The event, as evidence.
    pub event: serde_json::Value,
    /// A hash of the event, so that the same event seen twice (a retried batch) counts once.
    pub event_hash: u64,
    /// Suppression window (ns).
    pub suppress_ns: i64,
}

/// A journal line.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    Open {
        alert: Alert,
        hash: u64,
    },
    Fold {
        id: String,
        ts: i64,
        hash: u64,
        #[serde(default)]
        event: Option<serde_json::Value>,
    },
    State {
        id: String,
        transition: Transition,
    },
}

/// Filter of [`AlertStore::list`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertFilter {
    /// Only alerts in this state.
    #[serde(default)]
    pub state: Option<AlertState>,
    /// Only alerts of this rule.
    #[serde(default)]
    pub rule_id: Option<String>,
    /// Only alerts at this level or above.
    #[serde(default)]
    pub min_level: Option<Level>,
    /// Only alerts raised at or after this time (UTC ns).
    #[serde(default)]
    pub since: Option<i64>,
}

/// Errors of the alert store.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Disk trouble.
    #[error("alert journal {path}: {source}")]
    Io {
        /// The journal.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// No alert has this id.
    #[error("no alert {0:?}")]
    NotFound(String),
}

struct Inner {
    file: File,
    alerts: Vec<Alert>,
    by_id: HashMap<String, usize>,
    /// Dedup key → the latest alert with it.
    by_key: HashMap<String, usize>,
    /// Hashes of the events folded into each alert (index-aligned with `alerts`).
    seen: Vec<std::collections::HashSet<u64>>,
}

/// The alerts of a server, durable in a journal.
pub struct AlertStore {
    path: PathBuf,
    inner: Mutex<Inner>,
    torn_lines: u64,
}

impl AlertStore {
    /// Opens (creating) the journal `alerts.jsonl` in `dir` and reads it back.
    pub fn open(dir: &Path) -> Result<AlertStore, AlertError> {
        let path = dir.join("alerts.jsonl");
        let io = |source| AlertError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut inner = Inner {
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)
                .map_err(io)?,
            alerts: Vec::new(),
            by_id: HashMap::new(),
            by_key: HashMap::new(),
            seen: Vec::new(),
        };
        let mut torn_lines = 0;
        let reader = BufReader::new(File::open(&path).map_err(io)?);
        for line in reader.split(b'\n') {
            let line = line.map_err(io)?;
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Record>(&line) {
                Ok(r) => inner.apply(r),
                Err(_) => torn_lines += 1,
            }
        }
        Ok(AlertStore {
            path,
            inner: Mutex::new(inner),
            torn_lines,
        })
    }

    /// Journal lines that could not be read at start (a torn last line after a crash).
    pub fn torn_lines(&self) -> u64 {
        self.torn_lines
    }

    /// Turns matches into alerts: folds each into the open alert of its key when within the suppression
    /// window, else opens a new one. Durable when it returns. Returns the newly opened alerts (to deliver).
    pub fn raise(&self, candidates: Vec<Candidate>, now: i64) -> Result<Vec<Alert>, AlertError> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines = Vec::new();
        let mut opened = Vec::new();
        for c in candidates {
            let open = inner
                .by_key
                .get(&fold_key(&c.dedup_key, &c.namespaces))
                .map(|&i| (i, &inner.alerts[i]));
            let record = match open {
                Some((i, a))
                    if a.state != AlertState::Closed
                        && c.ts.abs_diff(a.last_seen) <= c.suppress_ns.max(0) as u64 =>
                {
                    if inner.seen[i].contains(&c.event_hash) {
                        continue;
                    }
                    Record::Fold {
                        id: a.id.clone(),
                        ts: c.ts,
                        hash: c.event_hash,
                        event: (a.evidence.len() < MAX_EVIDENCE).then_some(c.event),
                    }
                }
                _ => {
                    let alert = Alert {
                        id: alert_id(&c.dedup_key, c.ts, c.event_hash),
                        rule_id: c.rule_id,
                        title: c.title,
                        level: c.level,
                        tags: c.tags,
                        state: AlertState::Open,
                        dedup_key: c.dedup_key,
                        namespace: c.namespace,
                        namespaces: c.namespaces,
                        first_seen: c.ts,
                        last_seen: c.ts,
                        raised_at: now,
                        count: 1,
                        evidence: vec![c.event],
                        suppress_ns: c.suppress_ns,
                        history: Vec::new(),
                    };
                    if inner.by_id.contains_key(&alert.id) {
                        continue; // the same first event again (a retried batch)
                    }
                    opened.push(alert.clone());
                    Record::Open {
                        alert,
                        hash: c.event_hash,
                    }
                }
            };
            lines.push(serde_json::to_vec(&record).expect("records serialize"));
            inner.apply(record);
        }
        self.append(&mut inner, &lines)?;
        Ok(opened)
    }

    /// Moves an alert to `state`.
    pub fn transition(
        &self,
        id: &str,
        state: AlertState,
        by: &str,
        note: Option<String>,
        now: i64,
    ) -> Result<Alert, AlertError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.by_id.contains_key(id) {
            return Err(AlertError::NotFound(id.to_string()));
        }
        let record = Record::State {
            id: id.to_string(),
            transition: Transition {
                state,
                by: by.to_string(),
                at: now,
                note,
            },
        };
        let line = serde_json::to_vec(&record).expect("records serialize");
        self.append(&mut inner, &[line])?;
        inner.apply(record);
        Ok(inner.alerts[inner.by_id[id]].clone())
    }

    /// The alert with this id.
    pub fn get(&self, id: &str) -> Option<Alert> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_id.get(id).map(|&i| inner.alerts[i].clone())
    }

    /// How many alerts there are.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .alerts
            .len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Alerts passing `filter`, newest first.
    pub fn list(&self, filter: &AlertFilter) -> Vec<Alert> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .alerts
            .iter()
            .rev()
            .filter(|a| filter.state.is_none_or(|s| a.state == s))
            .filter(|a| filter.rule_id.as_ref().is_none_or(|r| &a.rule_id == r))
            .filter(|a| filter.min_level.is_none_or(|min| a.level >= min))
            .filter(|a| filter.since.is_none_or(|t| a.raised_at >= t))
            .cloned()
            .collect()
    }

    fn append(&self, inner: &mut Inner, lines: &[Vec<u8>]) -> Result<(), AlertError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            buf.extend_from_slice(l);
            buf.push(b'\n');
        }
        let io = |source| AlertError::Io {
            path: self.path.clone(),
            source,
        };
        inner.file.write_all(&buf).map_err(io)?;
        inner.file.sync_data().map_err(io)
    }
}

impl Inner {
    fn apply(&mut self, r: Record) {
        match r {
            Record::Open { alert, hash } => {
                let i = self.alerts.len();
                self.by_id.insert(alert.id.clone(), i);
                self.by_key
                    .insert(fold_key(&alert.dedup_key, &alert.namespaces), i);
                self.seen.push([hash].into_iter().collect());
                self.alerts.push(alert);
            }
            Record::Fold {
                id,
                ts,
                hash,
                event,
            } => {
                let Some(&i) = self.by_id.get(&id) else {
                    return;
                };
                let a = &mut self.alerts[i];
                a.count += 1;
                a.first_seen = a.first_seen.min(ts);
                a.last_seen = a.last_seen.max(ts);
                if let Some(e) = event {
                    a.evidence.push(e);
                }
                if self.seen[i].len() < MAX_REMEMBERED {
                    self.seen[i].insert(hash);
                }
            }
            Record::State { id, transition } => {
                let Some(&i) = self.by_id.get(&id) else {
                    return;
                };
                let a = &mut self.alerts[i];
                a.state = transition.state;
                a.history.push(transition);
            }
        }
    }
}

/// An alert as the API and `quarry alerts` show it: its fields plus `event`, the first matching event (the
/// same shape as `quarry rules test` prints); with `full`, all evidence and the history, else without them.
pub fn alert_json(a: &Alert, full: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(a).expect("alerts serialize");
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "event".into(),
            a.evidence.first().cloned().unwrap_or_default(),
        );
        if !full {
            obj.remove("evidence");
            obj.remove("history");
        }
    }
    v
}

/// An alert id from its key and first event.
fn alert_id(key: &str, ts: i64, hash: u64) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (key, ts, hash).hash(&mut h);
    format!("a-{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(key: &str, ts: i64, hash: u64) -> Candidate {
        Candidate {
            rule_id: "r1".into(),
            title: "Rule".into(),
            level: Level::High,
            tags: vec!["attack.t1609".into()],
            dedup_key: key.into(),
            namespace: Some("prod".into()),
            namespaces: vec!["prod".into()],
            ts,
            event: serde_json::json!({"n": hash}),
            event_hash: hash,
            suppress_ns: 100,
        }
    }

    #[test]
    fn matches_of_other_namespaces_never_fold_into_an_alert() {
        let dir = tempfile::tempdir().unwrap();
        let s = AlertStore::open(dir.path()).unwrap();
        let in_ns = |ns: &[&str], hash| Candidate {
            namespaces: ns.iter().map(|n| n.to_string()).collect(),
            ..cand("k", 1000 + hash as i64, hash)
        };
        let opened = s
            .raise(
                vec![
                    in_ns(&["a"], 1),
                    in_ns(&["b"], 2),
                    in_ns(&["a"], 3),
                    in_ns(&[], 4),
                ],
                7,
            )
            .unwrap();
        let mut scopes: Vec<(Vec<String>, u64)> = opened
            .iter()
            .map(|a| (a.namespaces.clone(), s.get(&a.id).unwrap().count))
            .collect();
        scopes.sort();
        assert_eq!(
            scopes,
            [(vec![], 1), (vec!["a".into()], 2), (vec!["b".into()], 1)]
        );
        drop(s);
        // The namespaces survive a restart, and so does the folding by them.
        let s = AlertStore::open(dir.path()).unwrap();
        assert!(s.raise(vec![in_ns(&["b"], 5)], 8).unwrap().is_empty());
    }

    #[test]
    fn dedup_suppression_lifecycle_and_durability() {
        let dir = tempfile::tempdir().unwrap();
        let s = AlertStore::open(dir.path()).unwrap();
        let opened = s
            .raise(
                vec![cand("k", 1000, 1), cand("k", 1050, 2), cand("k", 1050, 2)],
                7,
            )
            .unwrap();
        assert_eq!(
            opened.len(),
            1,
            "the second folds in, the third is the same event"
        );
        let id = opened[0].id.clone();
        assert_eq!(s.get(&id).unwrap().count, 2);
        // Outside the window: a new alert.
        assert_eq!(s.raise(vec![cand("k", 5000, 3)], 8).unwrap().len(), 1);
        // A retried batch with the first event again opens nothing.
        assert!(s.raise(vec![cand("k", 1000, 1)], 9).unwrap().is_empty());
        s.transition(&id, AlertState::Closed, "alice", Some("fp".into()), 10)
            .unwrap();
        assert!(matches!(
            s.transition("a-nope", AlertState::Open, "x", None, 0),
            Err(AlertError::NotFound(_))
        ));
        drop(s);
        // A torn line at the end is skipped.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("alerts.jsonl"))
            .unwrap();
        f.write_all(b"{\"op\":\"open\",\"al").unwrap();
        let s = AlertStore::open(dir.path()).unwrap();
        assert_eq!(s.torn_lines(), 1);
        let all = s.list(&AlertFilter::default());
        assert_eq!(all.len(), 2);
        let first = s.get(&id).unwrap();
        assert_eq!(first.state, AlertState::Closed);
        assert_eq!(first.history[0].by, "alice");
        assert_eq!(
            (first.first_seen, first.last_seen, first.count),
            (1000, 1050, 2)
        );
        let open = s.list(&AlertFilter {
            state: Some(AlertState::Open),
            ..AlertFilter::default()
        });
        assert_eq!(open.len(), 1);
        assert_ne!(open[0].id, id);
    }
}
