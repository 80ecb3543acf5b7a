//! The shipper: fsyncs the disk queue on its cadence, sends what is durable to the server in order, and on
//! the server's acknowledgement advances the checkpoints and frees the queue.

use crate::checkpoint::{self, Registry};
use crate::metrics::{AgentMetrics, Loss};
use crate::queue::{self, Position, Queue, RecordMeta};
use parking_lot::{Condvar, Mutex};
use quarry_transport::{Client, ClientError};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The queue shared by the reader (appends) and the shipper (acknowledges).
#[derive(Debug)]
pub struct SharedQueue {
    /// The queue and its acknowledged position.
    pub inner: Mutex<QueueState>,
    /// Signalled on every append.
    pub appended: Condvar,
    /// Its directory.
    pub dir: PathBuf,
}

/// The queue with the position up to which the server has acknowledged it.
#[derive(Debug)]
pub struct QueueState {
    /// The queue.
    pub queue: Queue,
    /// Acknowledged up to here.
    pub acked: Position,
}

impl SharedQueue {
    /// Unacknowledged bytes.
    pub fn backlog(&self) -> u64 {
        let g = self.inner.lock();
        g.queue.bytes_after(g.acked)
    }
}

/// Shipper settings.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// Fsync cadence.
    pub fsync_every: Duration,
    /// Largest request body.
    pub request_max_bytes: usize,
    /// Where the checkpoint is written.
    pub checkpoint_path: PathBuf,
    /// Where refused batches are kept.
    pub rejected_dir: PathBuf,
}

const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs until `stop` is set: then sends nothing more, writes a last checkpoint and returns.
pub fn run(
    cfg: ShipConfig,
    client: Client,
    registry: Arc<Registry>,
    shared: Arc<SharedQueue>,
    metrics: Arc<AgentMetrics>,
    stop: Arc<AtomicBool>,
) {
    let start = shared.inner.lock().acked;
    let mut reader = queue::Reader::new(&shared.dir, start);
    let mut last_sync = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let head = {
            let mut g = shared.inner.lock();
            if g.queue.head() <= reader.position() {
                shared.appended.wait_for(&mut g, cfg.fsync_every);
                drop(g);
                checkpoint_now(&cfg, &registry, &shared, &mut last_checkpoint, false);
                continue;
            }
            g.queue.head()
        };
        if let Some(rest) = cfg.fsync_every.checked_sub(last_sync.elapsed()) {
            std::thread::sleep(rest);
        }
        if let Err(e) = reader.sync_until(head) {
            tracing::error!(error = %e, "cannot fsync the disk queue; retrying");
            std::thread::sleep(BACKOFF_MAX);
            continue;
        }
        last_sync = Instant::now();
        let (body, records, end) = collect(&mut reader, head, cfg.request_max_bytes, &metrics);
        if !records.is_empty() {
            // one buffer, shared by the retries
            let body = bytes::Bytes::from(body);
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                metrics.requests.fetch_add(1, Ordering::Relaxed);
                match client.ingest_streams(body.clone()) {
                    Ok(_) => {
                        metrics.server_up.store(1, Ordering::Relaxed);
                        backoff = Duration::from_millis(100);
                        break;
                    }
                    Err(ClientError::Api { status, error })
                        if (400..500).contains(&status) && status != 408 && status != 429 =>
                    {
                        let events: u64 = records.iter().map(|m| m.events).sum();
                        let kept = keep_rejected(&cfg, &body);
                        tracing::error!(status, error = %error.error, events, kept = %kept, "the server refused a batch; it is kept aside and counted as dropped");
                        metrics.lose(Loss::Rejected, events);
                        break;
                    }
                    Err(e) => {
                        metrics.request_failures.fetch_add(1, Ordering::Relaxed);
                        if metrics.server_up.swap(0, Ordering::Relaxed) == 1 {
                            tracing::warn!(error = %e, "server unreachable; batches wait in the disk queue");
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let now = quarry_model::time::now_nanos();
            for m in &records {
                match &m.cursor {
                    Some(c) => registry.ack_journal(&m.source_id, m.seq, c),
                    None => registry.ack(&m.source_id, m.seq, m.resume),
                }
                metrics.events_acked.fetch_add(m.events, Ordering::Relaxed);
                metrics.observe_ack((now - m.sealed_ns).max(0) as f64 / 1e9);
            }
        }
        registry.ack_queue(end);
        let backlog = {
            let mut g = shared.inner.lock();
            g.acked = g.acked.max(end);
            g.queue.bytes_after(g.acked)
        };
        metrics.queue_bytes.store(backlog, Ordering::Relaxed);
        checkpoint_now(&cfg, &registry, &shared, &mut last_checkpoint, false);
    }
    checkpoint_now(&cfg, &registry, &shared, &mut last_checkpoint, true);
}

/// Reads records up to `head` until the request is full; returns the request body (the records' zstd
/// frames one after another), their headers, and the position after the last one read (damaged records
/// are skipped and counted).
fn collect(
    reader: &mut queue::Reader,
    head: Position,
    max: usize,
    metrics: &AgentMetrics,
) -> (Vec<u8>, Vec<RecordMeta>, Position) {
    let mut body = Vec::new();
    let mut out = Vec::new();
    while body.len() < max {
        match reader.next(head) {
            Ok(Some(r)) => {
                body.extend_from_slice(&r.payload);
                out.push(r.meta);
            }
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::error!("a damaged disk-queue record was skipped");
                metrics.lose(Loss::QueueCorrupt, 1);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the disk queue");
                break;
            }
        }
    }
    (body, out, reader.position())
}

fn keep_rejected(cfg: &ShipConfig, body: &[u8]) -> String {
    let path = cfg
        .rejected_dir
        .join(format!("{}.zst", quarry_model::time::now_nanos()));
    match std::fs::create_dir_all(&cfg.rejected_dir).and_then(|_| std::fs::write(&path, body)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("not kept: {e}"),
    }
}

/// Writes the checkpoint if it changed and is due (or `force`), then frees the acknowledged segments.
fn checkpoint_now(
    cfg: &ShipConfig,
    registry: &Registry,
    shared: &SharedQueue,
    last: &mut Instant,
    force: bool,
) {
    if !force && last.elapsed() < CHECKPOINT_EVERY {
        return;
    }
    *last = Instant::now();
    let Some(cp) = registry.snapshot_if_dirty(quarry_model::time::now_nanos()) else {
        return;
    };
    if let Err(e) = checkpoint::save(&cfg.checkpoint_path, &cp) {
        tracing::error!(error = %e, "cannot write the checkpoint; will retry");
        registry.mark_dirty();
        return;
    }
    let mut g = shared.inner.lock();
    if let Err(e) = g.queue.remove_before(cp.queue_acked) {
        tracing::warn!(error = %e, "cannot remove acknowledged queue segments");
    }
}
