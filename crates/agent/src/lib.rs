//! Quarry's node agent (`quarry agent`): the DaemonSet that collects every log line of a Kubernetes node
//! and forgets a line only once the server has it on disk.
//!
//! The parts, each in its module:
//! - [`discover`]: finds container logs under `/var/log/pods` (and docker logs behind `/var/log/containers`
//!   links) and the configured node files, with inotify and a polling fallback.
//! - [`tail`]: reads one file: identity by (device, inode) and a fingerprint of its head, decoding with
//!   `quarry-parse` (CRI and docker partial lines, multi-line joining, a size cap), and batch positions that
//!   make a restart exact.
//! - [`reader`]: the reading thread: follows rename and copytruncate rotation, reads rotated and deleted
//!   files to their end while their descriptor is held, seals batches, stops reading when the queue is full.
//! - [`enrich`]: source descriptors with Kubernetes metadata (`quarry-kube`, looked up per file, never per
//!   line), multi-line rules by pod annotation or configuration, redaction (`quarry-redact`).
//! - [`journald`]: reads journald units (kubelet, containerd) through `journalctl -o json --follow`,
//!   resumable at a saved cursor.
//! - [`queue`]: the disk queue of sealed batches (CRC per record, fsync cadence, survives restarts, skips
//!   a damaged record instead of wedging).
//! - [`ship`]: sends fsynced batches in order to `POST /api/v1/ingest/streams` and, on acknowledgement,
//!   advances the [`checkpoint`]s and frees the queue.
//! - [`metrics`]: Prometheus counters served with `/healthz` on `metrics_listen`.
//!
//! Dependencies and why: `notify` (inotify), `zstd` (batches are compressed once, when queued, and sent as
//! they are), `crc32fast` (queue records), `xxhash-rust` (file fingerprints), `parking_lot` and
//! `crossbeam-channel` (the reader, shipper and watcher threads), `tokio` + `axum` (the metrics endpoint
//! and the Kubernetes watches), `serde`/`serde_json` (configuration, checkpoints, queue record headers),
//! `bytes` (a request body shared by its retries).

pub mod checkpoint;
pub mod config;
pub mod discover;
pub mod enrich;
pub mod journald;
pub mod metrics;
pub mod queue;
pub mod reader;
pub mod ship;
pub mod tail;

pub use config::AgentConfig;

use metrics::{AgentMetrics, Loss};
use quarry_kube::{MetaConfig, Metadata};
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why the agent cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The checkpoint cannot be read.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// The state directory is unusable.
    #[error("state directory {path}: {source}")]
    State {
        /// The directory or file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Another agent uses the state directory.
    #[error("another agent is running with state directory {0}")]
    Locked(PathBuf),
    /// Redaction settings are wrong.
    #[error("redaction: {0}")]
    Redact(#[from] quarry_redact::RedactError),
    /// The server URL is unusable.
    #[error("server: {0}")]
    Client(#[from] quarry_transport::ClientError),
    /// The metrics endpoint cannot listen.
    #[error("metrics endpoint {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

fn state_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AgentError {
    let path = path.into();
    move |source| AgentError::State { path, source }
}

/// Checks everything the agent checks before it touches the state directory or the network: the
/// settings ([`AgentConfig::validate`]) and, when redaction is on, its rules and HMAC key.
pub fn validate(cfg: &AgentConfig) -> Result<(), AgentError> {
    cfg.validate()?;
    if cfg.redact.enabled {
        quarry_redact::Redactor::new(&cfg.redact)?;
    }
    Ok(())
}

/// Runs the agent until `stop` is set (SIGTERM): batches in progress are queued, and what the server has
/// acknowledged is checkpointed. `on_ready` receives the metrics endpoint's address once listening.
pub fn run(
    cfg: AgentConfig,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(Option<std::net::SocketAddr>),
) -> Result<(), AgentError> {
    validate(&cfg)?;
    let cfg = Arc::new(cfg);
    std::fs::create_dir_all(&cfg.state_dir).map_err(state_err(&cfg.state_dir))?;
    let lock_path = cfg.state_dir.join("agent.lock");
    let lock = File::create(&lock_path).map_err(state_err(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(AgentError::Locked(cfg.state_dir.clone()));
    }
    let redactor = if cfg.redact.enabled {
        Some(quarry_redact::Redactor::new(&cfg.redact)?)
    } else {
        None
    };
    let identity = match (&cfg.cert, &cfg.key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => {
            return Err(AgentError::Config(config::ConfigError::Invalid {
                key: "cert/key".into(),
                reason: "give both the node's certificate and its key, or neither".into(),
            }))
        }
    };
    let client = quarry_transport::Client::with_options(
        &cfg.server,
        &quarry_transport::ClientOptions {
            timeout: Duration::from_secs(120),
            tls: quarry_trust::tls::ClientTls {
                ca: cfg.ca.clone(),
                identity,
                tls12: false,
            },
            token: cfg.token.clone(),
        },
    )?;
    let checkpoint_path = cfg.state_dir.join("checkpoint.json");
    let cp = checkpoint::load(&checkpoint_path)?;
    let registry = Arc::new(
        cp.as_ref()
            .map(checkpoint::Registry::from_checkpoint)
            .unwrap_or_default(),
    );
    let metrics = Arc::new(AgentMetrics::default());
    let queue_dir = cfg.state_dir.join("queue");
    let acked = cp.as_ref().map(|c| c.queue_acked).unwrap_or_default();
    let (queue, scan) = queue::Queue::open(&queue_dir, acked).map_err(state_err(&queue_dir))?;
    if scan.corrupt > 0 {
        tracing::error!(records = scan.corrupt, "damaged disk-queue records skipped");
        metrics.lose(Loss::QueueCorrupt, scan.corrupt);
    }
    if scan.torn_bytes > 0 {
        tracing::warn!(
            bytes = scan.torn_bytes,
            "cut a torn record at the end of the disk queue (written before a crash, never sent)"
        );
    }
    let mut queued: HashMap<String, (u64, u64)> = HashMap::new();
    // the journald stream resumes after its newest queued batch, else after the acknowledged one
    let mut journal = registry
        .journal()
        .map(|j| (j.source_id, j.seq, Some(j.cursor)));
    for r in &scan.records {
        if let Some(c) = &r.meta.cursor {
            journal = Some((r.meta.source_id.clone(), r.meta.seq, Some(c.clone())));
        }
        let e = queued.entry(r.meta.source_id.clone()).or_default();
        if r.meta.seq > e.0 {
            *e = (r.meta.seq, r.meta.resume);
        }
        if let Some(f) = &r.meta.file {
            registry.adopt(f);
        }
    }
    tracing::info!(
        node = %cfg.node_name,
        server = %cfg.server,
        files_known = registry.all().len(),
        queued_batches = scan.records.len(),
        "agent starting"
    );
    let shared = Arc::new(ship::SharedQueue {
        inner: parking_lot::Mutex::new(ship::QueueState { queue, acked }),
        appended: parking_lot::Condvar::new(),
        dir: queue_dir,
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("quarry-agent-io")
        .build()
        .map_err(state_err(&cfg.state_dir))?;
    let meta = if cfg.kubernetes {
        let mut mc = MetaConfig::new(cfg.node_name.clone());
        mc.api_url = cfg.kubernetes_api.clone();
        mc.label_allow = cfg.label_allow.clone();
        mc.annotation_allow = cfg.annotation_allow.clone();
        mc.grace = Duration::from_secs(cfg.pod_grace_secs);
        let m = Metadata::start(mc, rt.handle());
        if !m.wait_ready(Duration::from_secs(5)) {
            tracing::info!(
                "pod metadata not loaded yet; files opened meanwhile are enriched from their paths"
            );
        }
        m
    } else {
        tracing::info!("--no-kubernetes: metadata comes from log paths only");
        Metadata::disabled()
    };
    let addr = if cfg.metrics_listen.is_empty() {
        None
    } else {
        Some(serve_metrics(
            &rt,
            &cfg.metrics_listen,
            Arc::clone(&metrics),
        )?)
    };
    on_ready(addr);

    let shipper = {
        let cfg_ship = ship::ShipConfig {
            fsync_every: Duration::from_millis(cfg.queue_fsync_ms),
            request_max_bytes: cfg.request_max_bytes,
            checkpoint_path,
            rejected_dir: cfg.state_dir.join("rejected"),
        };
        let (registry, shared, metrics) = (
            Arc::clone(&registry),
            Arc::clone(&shared),
            Arc::clone(&metrics),
        );
        let stop_ship = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop_ship);
        let h = std::thread::Builder::new()
            .name("quarry-shipper".into())
            .spawn(move || ship::run(cfg_ship, client, registry, shared, metrics, stop2))
            .map_err(state_err(&cfg.state_dir))?;
        (h, stop_ship)
    };
    let enricher = enrich::Enricher::new(Arc::clone(&cfg), meta, redactor);
    let (journal_id, journal_seq, journal_cursor) = journal.unwrap_or_else(|| {
        let first = quarry_model::time::now_nanos();
        (format!("{}/journald-{first:x}", cfg.node_name), 0, None)
    });
    let restart = reader::Restart {
        checkpoint_ns: cp.as_ref().map(|c| c.written_ns),
        queued,
        journal: journald::Follower::new(&cfg, journal_id, journal_seq, journal_cursor),
    };
    let mut reader = reader::Reader::new(
        Arc::clone(&cfg),
        Arc::clone(&registry),
        Arc::clone(&shared),
        Arc::clone(&metrics),
        enricher,
        restart,
    )
    .map_err(state_err(&cfg.state_dir))?;
    reader.run(&stop);
    // give the shipper a moment to send what was just sealed, then stop it
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while shared.backlog() > 0
        && metrics.server_up.load(Ordering::Relaxed) == 1
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    shipper.1.store(true, Ordering::Relaxed);
    shared.appended.notify_all();
    let _ = shipper.0.join();
    tracing::info!(queued_bytes = shared.backlog(), "agent stopped");
    drop(lock);
    Ok(())
}

fn serve_metrics(
    rt: &tokio::runtime::Runtime,
    listen: &str,
    metrics: Arc<AgentMetrics>,
) -> Result<std::net::SocketAddr, AgentError> {
    use axum::routing::get;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(|source| AgentError::Listen {
            addr: listen.into(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AgentError::Listen {
        addr: listen.into(),
        source,
    })?;
    let m2 = Arc::clone(&metrics);
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = Arc::clone(&metrics);
                async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let m = Arc::clone(&m2);
                async move {
                    axum::Json(serde_json::json!({
                        "status": "ok",
                        "server_up": m.server_up.load(Ordering::Relaxed) == 1,
                        "queue_bytes": m.queue_bytes.load(Ordering::Relaxed),
                        "backpressure": m.backpressure.load(Ordering::Relaxed) == 1,
                        "files_open": m.files_open.load(Ordering::Relaxed),
                    }))
                }
            }),
        );
    rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(addr)
}
