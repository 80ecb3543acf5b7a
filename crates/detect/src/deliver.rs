//! Alert delivery: every newly opened alert goes to each configured sink on a delivery thread, so a slow
//! or dead receiver never holds up ingest.
//!
//! Sinks (`--alert-sink KIND=TARGET`, repeatable):
//! - `webhook=URL`: the alert as JSON (`POST`, `Content-Type: application/json`).
//! - `slack=URL`: a Slack-compatible incoming webhook: `{"text": ...}` with level, title, rule, entity and
//!   time (Mattermost and Rocket.Chat accept the same).
//! - `alertmanager=URL`: Prometheus Alertmanager's API v2, `POST URL/api/v2/alerts` with labels
//!   (`alertname`, `severity`, `rule_id`, `namespace`, `quarry_alert`) and annotations.
//! - `cef=HOST:PORT`: syslog over TCP (RFC 5424 header, newline-framed) carrying an ArcSight CEF record.
//!
//! A delivery that fails is retried [`ATTEMPTS`] times with doubling pauses (1 s, 2 s, 4 s, ...). One that
//! still fails, or an alert that finds the delivery queue full, is written to the dead-letter file
//! `deadletter.jsonl` beside the alert journal with the sink and the error, and counted; the alert itself
//! is stored either way.

use crate::alerts::Alert;
use crate::detector::Level;
use serde::Serialize;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Tries per alert and sink.
pub const ATTEMPTS: u32 = 4;
/// Alerts waiting for delivery, at most.
const QUEUE: usize = 10_000;

/// Where alerts go.
#[derive(Debug, Clone, PartialEq)]
pub enum Sink {
    /// JSON to a URL.
    Webhook(String),
    /// A Slack-compatible incoming webhook URL.
    Slack(String),
    /// Alertmanager's base URL.
    Alertmanager(String),
    /// A syslog receiver for CEF over TCP, `host:port`.
    Cef(String),
}

impl std::str::FromStr for Sink {
    type Err = String;
    fn from_str(s: &str) -> Result<Sink, String> {
        let (kind, target) = s.split_once('=').ok_or_else(|| {
            format!("{s:?}: expected KIND=TARGET, e.g. webhook=https://hooks.example/q")
        })?;
        let target = target.trim().to_string();
        if target.is_empty() {
            return Err(format!("{s:?}: the target is empty"));
        }
        let url = |t: String| {
            if t.starts_with("http://") || t.starts_with("https://") {
                Ok(t)
            } else {
                Err(format!("{s:?}: {t:?} is not an http(s) URL"))
            }
        };
        match kind.trim() {
            "webhook" => Ok(Sink::Webhook(url(target)?)),
            "slack" => Ok(Sink::Slack(url(target)?)),
            "alertmanager" => Ok(Sink::Alertmanager(
                url(target)?.trim_end_matches('/').to_string(),
            )),
            "cef" | "syslog" => Ok(Sink::Cef(target)),
            other => Err(format!(
                "unknown alert sink {other:?}: expected webhook, slack, alertmanager or cef"
            )),
        }
    }
}

impl Sink {
    fn name(&self) -> &'static str {
        match self {
            Sink::Webhook(_) => "webhook",
            Sink::Slack(_) => "slack",
            Sink::Alertmanager(_) => "alertmanager",
            Sink::Cef(_) => "cef",
        }
    }

    fn target(&self) -> &str {
        match self {
            Sink::Webhook(t) | Sink::Slack(t) | Sink::Alertmanager(t) | Sink::Cef(t) => t,
        }
    }
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    /// Deliveries that succeeded (alert × sink).
    pub delivered: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Deliveries given up and written to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Time from an alert's raising to its delivery, summed over successful deliveries (ms).
    pub latency_ms_sum: AtomicU64,
}

/// A dead-letter line.
#[derive(Serialize)]
struct DeadLetter<'a> {
    sink: &'a str,
    target: &'a str,
    error: &'a str,
    at: i64,
    alert: &'a Alert,
}

/// Hands alerts to the delivery thread.
pub struct Notifier {
    tx: Option<SyncSender<Alert>>,
    metrics: Arc<DeliveryMetrics>,
    deadletter: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Notifier {
    /// A notifier delivering to `sinks`, writing failures to `deadletter`. With no sinks, alerts are only
    /// stored.
    pub fn new(sinks: Vec<Sink>, deadletter: PathBuf, retry_base: Duration) -> Notifier {
        let metrics = Arc::new(DeliveryMetrics::default());
        if sinks.is_empty() {
            return Notifier {
                tx: None,
                metrics,
                deadletter,
                thread: None,
            };
        }
        let (tx, rx) = sync_channel(QUEUE);
        let m = metrics.clone();
        let dl = deadletter.clone();
        let thread = std::thread::Builder::new()
            .name("quarry-alerts".into())
            .spawn(move || deliver_loop(rx, sinks, m, dl, retry_base))
            .expect("spawn the delivery thread");
        Notifier {
            tx: Some(tx),
            metrics,
            deadletter,
            thread: Some(thread),
        }
    }

    /// Queues an alert for delivery without waiting; a full queue dead-letters it.
    pub fn send(&self, alert: Alert) {
        let Some(tx) = &self.tx else { return };
        let (a, why) = match tx.try_send(alert) {
            Ok(()) => return,
            Err(TrySendError::Full(a)) => (a, "delivery queue full"),
            Err(TrySendError::Disconnected(a)) => (a, "the delivery thread has stopped"),
        };
        write_deadletter(&self.deadletter, &self.metrics, "queue", "", why, &a);
    }

    /// Delivery counters.
    pub fn metrics(&self) -> &DeliveryMetrics {
        &self.metrics
    }

    /// Waits until every queued alert has been delivered or dead-lettered.
    pub fn close(mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn deliver_loop(
    rx: Receiver<Alert>,
    sinks: Vec<Sink>,
    m: Arc<DeliveryMetrics>,
    deadletter: PathBuf,
    retry_base: Duration,
) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client builds");
    for alert in rx {
        for sink in &sinks {
            let mut pause = retry_base;
            let mut attempt = 1;
            loop {
                match deliver(&http, sink, &alert) {
                    Ok(()) => {
                        m.delivered.fetch_add(1, Ordering::Relaxed);
                        let ms =
                            (quarry_model::time::now_nanos() - alert.raised_at).max(0) / 1_000_000;
                        m.latency_ms_sum.fetch_add(ms as u64, Ordering::Relaxed);
                        break;
                    }
                    Err(e) if attempt >= ATTEMPTS => {
                        tracing::warn!(sink = sink.name(), target = sink.target(), alert = %alert.id, error = %e, "alert delivery failed; dead-lettered");
                        write_deadletter(&deadletter, &m, sink.name(), sink.target(), &e, &alert);
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(sink = sink.name(), attempt, error = %e, "alert delivery failed; retrying");
                        m.retries.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(pause);
                        pause *= 2;
                        attempt += 1;
                    }
                }
            }
        }
    }
}

fn write_deadletter(
    path: &PathBuf,
    m: &DeliveryMetrics,
    sink: &str,
    target: &str,
    error: &str,
    alert: &Alert,
) {
    m.dead_lettered.fetch_add(1, Ordering::Relaxed);
    let rec = DeadLetter {
        sink,
        target,
        error,
        at: quarry_model::time::now_nanos(),
        alert,
    };
    let mut line = serde_json::to_vec(&rec).expect("dead letters serialize");
    line.push(b'\n');
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&line).and_then(|_| f.sync_data()));
    if let Err(e) = written {
        tracing::error!(path = %path.display(), error = %e, alert = %alert.id, "cannot write the dead-letter record");
    }
}

fn deliver(http: &reqwest::blocking::Client, sink: &Sink, a: &Alert) -> Result<(), String> {
    let post = |url: &str, body: serde_json::Value| -> Result<(), String> {
        let r = http
            .post(url)
            .json(&body)
            .send()
            .map_err(|e| e.to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            let status = r.status();
            let text = r.text().unwrap_or_default();
            Err(format!(
                "{status}: {}",
                text.chars().take(200).collect::<String>()
            ))
        }
    };
    match sink {
        Sink::Webhook(url) => post(url, serde_json::to_value(a).map_err(|e| e.to_string())?),
        Sink::Slack(url) => post(url, serde_json::json!({ "text": slack_text(a) })),
        Sink::Alertmanager(base) => post(
            &format!("{base}/api/v2/alerts"),
            serde_json::json!([alertmanager_alert(a)]),
        ),
        Sink::Cef(addr) => {
            let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
            s.set_write_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            let mut line = syslog_cef(a);
            line.push('\n');
            s.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
            s.flush().map_err(|e| e.to_string())
        }
    }
}

/// The Slack message text.
pub fn slack_text(a: &Alert) -> String {
    format!(
        "*[{}] {}*\nrule `{}` · {} · {} event(s) · first {}\nalert `{}`",
        a.level.as_str().to_uppercase(),
        a.title,
        a.rule_id,
        if a.entity().is_empty() {
            "-"
        } else {
            a.entity()
        },
        a.count,
        quarry_model::time::format_rfc3339_millis(a.first_seen),
        a.id
    )
}

/// One alert in Alertmanager's API v2 form (`postableAlert`).
pub fn alertmanager_alert(a: &Alert) -> serde_json::Value {
    let mut labels = serde_json::json!({
        "alertname": a.title,
        "severity": a.level,
        "rule_id": a.rule_id,
        "quarry_alert": a.id,
        "source": "quarry",
    });
    if let Some(ns) = &a.namespace {
        labels["namespace"] = ns.clone().into();
    }
    let techniques: Vec<&str> = a
        .tags
        .iter()
        .filter(|t| t.starts_with("attack.t"))
        .map(|t| &t["attack.".len()..])
        .collect();
    serde_json::json!({
        "labels": labels,
        "annotations": {
            "summary": a.title,
            "entity": a.entity(),
            "attack": techniques.join(","),
            "count": a.count.to_string(),
        },
        "startsAt": quarry_model::time::format_rfc3339_millis(a.first_seen),
    })
}

/// CEF severity (0-10) of a Sigma level.
fn cef_severity(level: Level) -> u8 {
    match level {
        Level::Informational => 1,
        Level::Low => 3,
        Level::Medium => 5,
        Level::High => 8,
        Level::Critical => 10,
    }
}

/// Escapes a CEF header field (`|` and `\`).
fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Escapes a CEF extension value (`=` and `\`, newlines).
fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// One syslog line (RFC 5424, facility security/authorization, severity by level) carrying a CEF record.
pub fn syslog_cef(a: &Alert) -> String {
    let sev = cef_severity(a.level);
    // Facility 4 (security/authorization messages); syslog severity from the CEF one.
    let syslog_sev = match sev {
        9.. => 2,
        7..=8 => 3,
        4..=6 => 4,
        _ => 5,
    };
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "-".into());
    let mut ext = format!(
        "rt={} cnt={} cs1Label=alertId cs1={} cs2Label=tags cs2={} cs3Label=entity cs3={}",
        a.first_seen / 1_000_000,
        a.count,
        cef_value(&a.id),
        cef_value(&a.tags.join(",")),
        cef_value(a.entity()),
    );
    if let Some(ns) = &a.namespace {
        ext.push_str(&format!(" cs4Label=namespace cs4={}", cef_value(ns)));
    }
    format!(
        "<{}>1 {} {} quarry - alert - CEF:0|Quarry|Quarry|{}|{}|{}|{}|{}",
        4 * 8 + syslog_sev,
        quarry_model::time::format_rfc3339_millis(a.raised_at),
        if host.is_empty() { "-" } else { &host },
        env!("CARGO_PKG_VERSION"),
        cef_header(&a.rule_id),
        cef_header(&a.title),
        sev,
        ext
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_parse_with_clear_errors() {
        assert_eq!(
            "webhook=http://h/x".parse::<Sink>(),
            Ok(Sink::Webhook("http://h/x".into()))
        );
        assert_eq!(
            "alertmanager=http://am:9093/".parse::<Sink>(),
            Ok(Sink::Alertmanager("http://am:9093".into()))
        );
        assert_eq!(
            "cef=siem:514".parse::<Sink>(),
            Ok(Sink::Cef("siem:514".into()))
        );
        assert!("slack=hooks.slack.com"
            .parse::<Sink>()
            .unwrap_err()
            .contains("not an http"));
        assert!("pagerduty=x"
            .parse::<Sink>()
            .unwrap_err()
            .contains("unknown alert sink"));
        assert!("webhook"
            .parse::<Sink>()
            .unwrap_err()
            .contains("KIND=TARGET"));
    }

    #[test]
    fn cef_escapes_header_and_extension() {
        assert_eq!(cef_header("a|b\\c"), "a\\|b\\\\c");
        assert_eq!(cef_value("x=y\nz"), "x\\=y\\nz");
    }
}
