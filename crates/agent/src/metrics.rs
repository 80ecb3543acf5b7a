//! The agent's counters and their Prometheus text form.

use parking_lot::Mutex;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why records or bytes were given up on purpose; each is a `reason` label of `quarry_agent_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// A redaction rule with action `drop` refused the record.
    Redaction,
    /// A rotated or deleted file stopped growing before it was read to its end and the wait ran out
    /// (counted in bytes).
    RotatedUnreadBytes,
    /// A file was truncated (copytruncate) and no copy of its unread tail was found.
    TruncatedUnread,
    /// A damaged disk-queue record was skipped.
    QueueCorrupt,
    /// The server refused a batch as malformed (kept in `state_dir/rejected`).
    Rejected,
    /// A batch could not be compressed for the queue.
    Encode,
    /// journald no longer held the saved cursor (rotated or vacuumed while the agent was down): entries
    /// between it and the oldest one left may be lost (counted once per occurrence).
    JournalCursorLost,
}

const DROPS: [(Loss, &str); 7] = [
    (Loss::Redaction, "redaction"),
    (Loss::RotatedUnreadBytes, "rotated_unread_bytes"),
    (Loss::TruncatedUnread, "truncated_unread"),
    (Loss::QueueCorrupt, "queue_corrupt"),
    (Loss::Rejected, "rejected"),
    (Loss::Encode, "encode_failed"),
    (Loss::JournalCursorLost, "journal_cursor_lost"),
];

/// Upper bounds (seconds) of the acknowledgement latency histogram.
const ACK_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Counters shared by the reader, the shipper and the metrics endpoint.
#[derive(Debug, Default)]
pub struct AgentMetrics {
    /// Bytes read from files.
    pub bytes_read: AtomicU64,
    /// Physical lines read.
    pub lines_read: AtomicU64,
    /// Records decoded.
    pub records: AtomicU64,
    /// Records cut at the size cap.
    pub truncated: AtomicU64,
    /// Records that could not be parsed (kept as text).
    pub parse_errors: AtomicU64,
    /// Records changed by redaction.
    pub redacted: AtomicU64,
    drops: [AtomicU64; DROPS.len()],
    /// Batches queued.
    pub batches_queued: AtomicU64,
    /// Events acknowledged by the server.
    pub events_acked: AtomicU64,
    /// Requests sent to the server.
    pub requests: AtomicU64,
    /// Failed requests (retried).
    pub request_failures: AtomicU64,
    /// Unacknowledged bytes in the disk queue.
    pub queue_bytes: AtomicU64,
    /// 1 while reading is paused because the queue is full.
    pub backpressure: AtomicU64,
    /// 1 while the last request succeeded.
    pub server_up: AtomicU64,
    /// Files open.
    pub files_open: AtomicU64,
    /// Bytes in files not read yet.
    pub lag_bytes: AtomicU64,
    /// Pods in the metadata cache.
    pub metadata_pods: AtomicU64,
    /// 1 while the Kubernetes watch is connected.
    pub metadata_connected: AtomicU64,
    /// journald entries read.
    pub journal_entries: AtomicU64,
    /// 1 while journalctl runs (0 also when journald is not read).
    pub journal_up: AtomicU64,
    ack: Mutex<Histogram>,
    files: Mutex<Vec<(String, u64)>>,
    redactions: Mutex<Vec<(String, u64, u64)>>,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; ACK_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl AgentMetrics {
    /// Counts `n` dropped for `why`.
    pub fn lose(&self, why: Loss, n: u64) {
        let i = DROPS.iter().position(|(d, _)| *d == why).unwrap_or(0);
        self.drops[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Records one batch's time from sealing to acknowledgement.
    pub fn observe_ack(&self, seconds: f64) {
        let mut h = self.ack.lock();
        h.count += 1;
        h.sum += seconds;
        for (i, le) in ACK_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.buckets[i] += 1;
            }
        }
    }

    /// Replaces the per-file lag table (path, bytes not read).
    pub fn set_files(&self, files: Vec<(String, u64)>) {
        *self.files.lock() = files;
    }

    /// Replaces the redaction table (detector, redacted, dropped).
    pub fn set_redactions(&self, r: Vec<(String, u64, u64)>) {
        *self.redactions.lock() = r;
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let simple: [(&str, &str, &str, &AtomicU64); 19] = [
            (
                "quarry_agent_read_bytes_total",
                "counter",
                "Bytes read from log files.",
                &self.bytes_read,
            ),
            (
                "quarry_agent_read_lines_total",
                "counter",
                "Physical lines read.",
                &self.lines_read,
            ),
            (
                "quarry_agent_records_total",
                "counter",
                "Records decoded.",
                &self.records,
            ),
            (
                "quarry_agent_truncated_records_total",
                "counter",
                "Records cut at max_record_bytes.",
                &self.truncated,
            ),
            (
                "quarry_agent_parse_errors_total",
                "counter",
                "Records kept as raw text because they could not be parsed.",
                &self.parse_errors,
            ),
            (
                "quarry_agent_redacted_records_total",
                "counter",
                "Records changed by redaction.",
                &self.redacted,
            ),
            (
                "quarry_agent_batches_queued_total",
                "counter",
                "Batches written to the disk queue.",
                &self.batches_queued,
            ),
            (
                "quarry_agent_acked_events_total",
                "counter",
                "Events the server acknowledged as durable.",
                &self.events_acked,
            ),
            (
                "quarry_agent_requests_total",
                "counter",
                "Requests sent to the server.",
                &self.requests,
            ),
            (
                "quarry_agent_request_failures_total",
                "counter",
                "Requests that failed and were retried.",
                &self.request_failures,
            ),
            (
                "quarry_agent_queue_bytes",
                "gauge",
                "Unacknowledged bytes in the disk queue.",
                &self.queue_bytes,
            ),
            (
                "quarry_agent_backpressure",
                "gauge",
                "1 while reading is paused because the disk queue is full.",
                &self.backpressure,
            ),
            (
                "quarry_agent_server_up",
                "gauge",
                "1 while the server accepts batches.",
                &self.server_up,
            ),
            (
                "quarry_agent_files_open",
                "gauge",
                "Files being read.",
                &self.files_open,
            ),
            (
                "quarry_agent_lag_bytes",
                "gauge",
                "Bytes written to log files and not read yet.",
                &self.lag_bytes,
            ),
            (
                "quarry_agent_metadata_pods",
                "gauge",
                "Pods in the Kubernetes metadata cache.",
                &self.metadata_pods,
            ),
            (
                "quarry_agent_metadata_connected",
                "gauge",
                "1 while the Kubernetes API watch is connected.",
                &self.metadata_connected,
            ),
            (
                "quarry_agent_journal_entries_total",
                "counter",
                "journald entries read.",
                &self.journal_entries,
            ),
            (
                "quarry_agent_journal_up",
                "gauge",
                "1 while journalctl runs.",
                &self.journal_up,
            ),
        ];
        for (name, kind, help, v) in simple {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                g(v)
            );
        }
        let _ = writeln!(
            s,
            "# HELP quarry_agent_dropped_total Records (or bytes, where the reason says so) given up on purpose.\n# TYPE quarry_agent_dropped_total counter"
        );
        for (i, (_, reason)) in DROPS.iter().enumerate() {
            let _ = writeln!(
                s,
                "quarry_agent_dropped_total{{reason=\"{reason}\"}} {}",
                g(&self.drops[i])
            );
        }
        {
            let h = self.ack.lock();
            let name = "quarry_agent_ack_latency_seconds";
            let _ = writeln!(s, "# HELP {name} Time from sealing a batch to the server's acknowledgement.\n# TYPE {name} histogram");
            for (i, le) in ACK_BUCKETS.iter().enumerate() {
                let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {}", h.buckets[i]);
            }
            let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(s, "{name}_sum {}\n{name}_count {}", h.sum, h.count);
        }
        let _ = writeln!(s, "# HELP quarry_agent_file_lag_bytes Bytes of a file not read yet.\n# TYPE quarry_agent_file_lag_bytes gauge");
        for (path, lag) in self.files.lock().iter() {
            let _ = writeln!(
                s,
                "quarry_agent_file_lag_bytes{{path=\"{}\"}} {lag}",
                escape(path)
            );
        }
        let _ = writeln!(s, "# HELP quarry_agent_redactions_total Values redacted, per detector.\n# TYPE quarry_agent_redactions_total counter");
        let _ = writeln!(s, "# HELP quarry_agent_redaction_drops_total Records dropped by a redaction rule, per detector.\n# TYPE quarry_agent_redaction_drops_total counter");
        for (name, redacted, dropped) in self.redactions.lock().iter() {
            let name = escape(name);
            let _ = writeln!(
                s,
                "quarry_agent_redactions_total{{detector=\"{name}\"}} {redacted}\nquarry_agent_redaction_drops_total{{detector=\"{name}\"}} {dropped}"
            );
        }
        s
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
