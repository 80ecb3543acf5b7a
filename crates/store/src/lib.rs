//! Quarry's embedded store: a write-ahead log with group commit in front of time-partitioned tantivy
//! indexes, with crash recovery, deduplication of retried batches, background merges and retention.
//!
//! Life of a batch: [`Store::ingest`] cuts the parsed events into blocks per partition (source kind and
//! UTC day), builds their tantivy documents, appends the blocks to the [`wal`] and returns once the WAL is
//! fsynced. The indexer thread then adds the documents to the partition writers in WAL order; the commit
//! thread commits every partition on a fixed interval (making the events searchable), records a
//! checkpoint and removes WAL files that are fully in segments. After a crash the WAL is replayed from the
//! checkpoint; partitions skip records they already committed, so nothing is stored twice.
//!
//! Layout of a data directory: `LOCK`, `checkpoint.json`, `wal/*.wal`,
//! `partitions/<kind>/<YYYY-MM-DD>/` (one tantivy index each; `<YYYY-MM-DD>@<namespace>/` for a namespace
//! with a retention rule of its own, see [`Retention::namespace_age_ns`]), and with encryption at rest
//! ([`StoreConfig::encryption`], see [`crypt`]) `keys/keyring.json` (the wrapped data keys).
//!
//! Tamper evidence ([`StoreConfig::integrity`], see [`integrity`]): a signed digest chain in
//! `integrity/digests/` (and its cache `integrity/state.json`, signing key `keys/signing.pk8` and public
//! key `keys/signing.pub` by default) covers every file of the data directory but `LOCK`; `quarry verify`
//! checks it ([`integrity::verify`]). Retention never deletes what a legal hold ([`hold`]) covers.
//!
//! Dependencies: tantivy (inverted index, columnar fast fields, compressed doc store), crc32fast (WAL
//! record checksums), crossbeam-channel (WAL group commit and the indexer queue), parking_lot (locks),
//! serde/serde_json (checkpoint and partition metadata), quarry-parse (reading stored records again),
//! rustc-hash (a fast hash set for the distinct words of a block), quarry-trust (master key and keyring)
//! and ring (AES-256-GCM) for encryption at rest, quarry-trust (the integrity chain's format) for tamper
//! evidence.

pub mod block;
pub mod crypt;
pub mod hold;
pub mod integrity;
pub mod partition;
pub mod read;
pub mod schema;
pub mod tokenizer;
pub mod wal;

use block::{BlockMeta, StoredEventRef, BLOCK_EVENTS};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use partition::{PartKey, PartMeta, PartView, Partition, WriterConfig, DAY_NS};
use quarry_model::{Event, Kind, Source};
use schema::Doc;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wal::{Appended, BatchKey, Dedup, Recovery, Wal, WalError};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Index error.
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// WAL error.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another Quarry process (a running server?); stop it or talk to it with --server")]
    Locked(PathBuf),
    /// Something on disk is not what the store wrote.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The store is open read-only.
    #[error("the store is open read-only")]
    ReadOnly,
    /// The [`Observer`] refused the batch (for example, the alert journal could not be written).
    #[error("{0}")]
    Observer(String),
    /// Encryption at rest: a missing or wrong master key, a keyring problem (see [`crypt`]).
    #[error("{0}")]
    Encryption(String),
    /// The integrity chain cannot be written or continued (see [`integrity`]).
    #[error("integrity chain: {0}")]
    Integrity(String),
}

/// Takes the exclusive lock of a data directory (its `LOCK` file), held until the file is dropped; a
/// second Quarry process on the same directory gets [`StoreError::Locked`].
pub fn lock_data_dir(data_dir: &Path) -> Result<File, StoreError> {
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join("LOCK"))?;
    if lock.try_lock().is_err() {
        return Err(StoreError::Locked(data_dir.to_path_buf()));
    }
    Ok(lock)
}

/// Something that sees every new batch before it is stored: detection, which raises alerts on it. A batch
/// is stored only once its observer has returned, so an acknowledged batch has been seen; a retried
/// batch that is a duplicate is not shown again.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// Sees one batch of `source`; an error fails the ingest (the client retries).
    fn observe(&self, source: &Source, events: &[Event]) -> Result<(), String>;
}

/// Durable batches waiting to be indexed, at most.
const WORK_QUEUE: usize = 8;

/// Retention rules per source kind and Kubernetes namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Retention {
    /// Delete a kind's partitions whose day ended longer ago than this (nanoseconds).
    pub max_age_ns: BTreeMap<Kind, i64>,
    /// Delete a kind's oldest partitions while the kind uses more than this many bytes on disk.
    pub max_bytes: BTreeMap<Kind, u64>,
    /// Keep the events of a Kubernetes namespace this long (nanoseconds), whatever their kind's rules,
    /// longer or shorter.
    ///
    /// Batches from a source of such a namespace ([`Source::namespace`], as the agent sends container
    /// logs) go to the namespace's own partitions, `<YYYY-MM-DD>@<namespace>`, which are deleted once the
    /// namespace's age has passed, and only then. Events that name a namespace inside a shared partition
    /// (an audit event's `objectRef.namespace`, or data stored before the rule) cannot be deleted apart
    /// from the rest of their day: a shared day that holds events of the namespace is kept until the
    /// namespace's age has passed too, never deleted sooner than its kind.
    #[serde(default, alias = "namespace_min_age_ns")]
    pub namespace_age_ns: BTreeMap<String, i64>,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// How often pending events are committed (made searchable).
    pub commit_interval: Duration,
    /// fsync the WAL before acknowledging (turn off only to measure its cost).
    pub fsync: bool,
    /// Partition writer tuning.
    pub writer: WriterConfig,
    /// Writers kept open at once; the least recently used is closed beyond this.
    pub max_open_writers: usize,
    /// A writer idle this long is closed.
    pub writer_idle: Duration,
    /// Retention rules.
    pub retention: Retention,
    /// How often retention is applied.
    pub retention_interval: Duration,
    /// Sees every new batch before it is stored (see [`Observer`]).
    pub observer: Option<Arc<dyn Observer>>,
    /// Encryption at rest of the WAL and partitions; `None` stores plaintext (see [`crypt`] for the
    /// rule on existing data directories).
    pub encryption: Option<crypt::EncryptionConfig>,
    /// Tamper evidence: a signed digest chain over every file (see [`integrity`]); `None` writes none,
    /// unless the data directory has a chain already (it is always continued, with default settings).
    pub integrity: Option<integrity::IntegrityConfig>,
}

impl StoreConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            commit_interval: Duration::from_secs(2),
            fsync: true,
            writer: WriterConfig {
                threads: 1,
                memory: 32 << 20,
                zstd_level: 3,
            },
            max_open_writers: 8,
            writer_idle: Duration::from_secs(120),
            retention: Retention::default(),
            retention_interval: Duration::from_secs(60),
            observer: None,
            encryption: None,
            integrity: None,
        }
    }
}

/// Outcome of [`Store::ingest`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ingested {
    /// Events stored (0 for a duplicate batch).
    pub events: u64,
    /// Events stored with a parse-error flag.
    pub parse_errors: u64,
    /// True if this batch had been stored before and was not stored again.
    pub duplicate: bool,
    /// WAL position of the batch.
    pub lsn: Option<u64>,
}

/// Counters of the store, for metrics and `quarry` summaries.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Batches stored.
    pub batches: AtomicU64,
    /// Retried batches recognised and not stored again.
    pub duplicate_batches: AtomicU64,
    /// Events stored.
    pub events: AtomicU64,
    /// Raw bytes stored.
    pub raw_bytes: AtomicU64,
    /// Events stored with a parse error.
    pub parse_errors: AtomicU64,
    /// Bytes cut from a torn WAL tail at the last start.
    pub wal_torn_bytes: AtomicU64,
    /// WAL records replayed at the last start.
    pub wal_replayed_records: AtomicU64,
    /// Failures adding documents to a partition (the data stays in the WAL).
    pub index_errors: AtomicU64,
    /// Commits of partitions.
    pub commits: AtomicU64,
    /// Partitions deleted by retention.
    pub retention_partitions: AtomicU64,
    /// Events deleted by retention.
    pub retention_events: AtomicU64,
    /// Partitions retention would have deleted but a legal hold kept, at its last pass.
    pub retention_held: AtomicU64,
    /// Times a namespace's longer retention kept a partition its kind's rules would have deleted.
    pub retention_namespace_kept: AtomicU64,
    /// Partitions of a namespace's own deleted by its rule (also counted in `retention_partitions`).
    pub retention_namespace_partitions: AtomicU64,
}

/// A point-in-time copy of [`Metrics`] plus sizes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    /// Batches stored.
    pub batches: u64,
    /// Duplicate batches skipped.
    pub duplicate_batches: u64,
    /// Events stored since start.
    pub events_ingested: u64,
    /// Raw bytes stored since start.
    pub raw_bytes_ingested: u64,
    /// Parse errors since start.
    pub parse_errors: u64,
    /// Bytes cut from a torn WAL tail at start.
    pub wal_torn_bytes: u64,
    /// WAL records replayed at start.
    pub wal_replayed_records: u64,
    /// Indexing failures.
    pub index_errors: u64,
    /// Partition commits.
    pub commits: u64,
    /// Partitions deleted by retention.
    pub retention_partitions: u64,
    /// Events deleted by retention.
    pub retention_events: u64,
    /// Partitions retention would have deleted but a legal hold kept, at its last pass.
    pub retention_held: u64,
    /// Times a namespace's longer retention kept a partition.
    pub retention_namespace_kept: u64,
    /// Partitions of a namespace's own deleted by its rule.
    pub retention_namespace_partitions: u64,
    /// Events committed in all partitions.
    pub events_stored: u64,
    /// Raw bytes committed in all partitions.
    pub raw_bytes_stored: u64,
    /// Bytes on disk in partitions.
    pub partition_bytes: u64,
    /// Bytes on disk in the WAL.
    pub wal_bytes: u64,
    /// Number of partitions.
    pub partitions: u64,
}

/// The documents of one partition prepared from a batch.
pub struct Prepared {
    key: PartKey,
    docs: Vec<Doc>,
    delta: PartMeta,
}

enum Work {
    Record(Vec<Prepared>),
    Barrier(Sender<()>),
}

#[derive(Serialize, Deserialize, Default)]
struct Checkpoint {
    replay_from: u64,
    dedup: Dedup,
}

struct Inner {
    cfg: StoreConfig,
    parts: RwLock<BTreeMap<PartKey, Arc<Partition>>>,
    wal: Option<Wal<Work>>,
    work_tx: Sender<(u64, Work)>,
    /// Replay must start here for nothing applied to be lost: the LSN of the last applied record.
    applied: AtomicU64,
    /// An indexing failure froze the checkpoint; the WAL keeps everything since.
    frozen: AtomicBool,
    stop: AtomicBool,
    commit_now: Mutex<()>,
    metrics: Metrics,
    crypt: Option<Arc<crypt::Crypt>>,
    integrity: Option<integrity::Writer>,
    _lock: Option<File>,
}

/// The store. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Store {
    /// Opens a data directory for reading and writing: takes its lock, repairs and replays the WAL,
    /// and starts the indexer, commit and retention threads.
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        fs::create_dir_all(&cfg.data_dir)?;
        let lock = lock_data_dir(&cfg.data_dir)?;
        let checkpoint: Checkpoint = match fs::read(cfg.data_dir.join("checkpoint.json")) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::Corrupt(format!("checkpoint.json: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Checkpoint::default(),
            Err(e) => return Err(e.into()),
        };
        let crypt = crypt::Crypt::open(&cfg.data_dir, cfg.encryption.as_ref(), true)?;
        // The chain's start digest, before the store changes anything.
        let integrity = integrity::Writer::open_for(&cfg, crypt.as_ref())?;
        let parts = open_partitions(&cfg, true, crypt.as_ref())?;
        // Bounded: when indexing falls behind, the WAL writer waits, and so do new batches (backpressure
        // instead of an ever-growing queue of documents in memory).
        let (work_tx, work_rx) = bounded(WORK_QUEUE);
        let (wal, replay, recovery) = Wal::open(
            &cfg.data_dir.join("wal"),
            checkpoint.replay_from,
            checkpoint.dedup,
            work_tx.clone(),
            cfg.fsync,
            crypt.clone(),
        )?;
        if let Some(w) = &integrity {
            w.note_recovery(&recovery);
        }
        let inner = Arc::new(Inner {
            parts: RwLock::new(parts),
            wal: Some(wal),
            work_tx,
            applied: AtomicU64::new(checkpoint.replay_from),
            frozen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            commit_now: Mutex::new(()),
            metrics: Metrics::default(),
            cfg,
            crypt,
            integrity,
            _lock: Some(lock),
        });
        inner.replay(replay, &recovery)?;
        let store = Store {
            inner: inner.clone(),
            threads: Arc::new(Mutex::new(Vec::new())),
        };
        store.commit()?;
        let mut threads = store.threads.lock();
        let i = inner.clone();
        threads.push(spawn("quarry-indexer", move || i.index_loop(work_rx))?);
        let i = inner.clone();
        threads.push(spawn("quarry-commit", move || i.commit_loop())?);
        let i = inner.clone();
        threads.push(spawn("quarry-integrity", move || i.integrity_loop())?);
        drop(threads);
        Ok(store)
    }

    /// Opens a data directory only to read what is committed, without its lock (a server may be writing
    /// it). Events still only in the WAL are not visible.
    pub fn open_read_only(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_read_only_with(data_dir, None)
    }

    /// [`Store::open_read_only`] of a data directory that may be encrypted (`encryption` holds its
    /// master key).
    pub fn open_read_only_with(
        data_dir: &Path,
        encryption: Option<crypt::EncryptionConfig>,
    ) -> Result<Store, StoreError> {
        let mut cfg = StoreConfig::new(data_dir);
        cfg.encryption = encryption;
        let crypt = crypt::Crypt::open(data_dir, cfg.encryption.as_ref(), false)?;
        let parts = open_partitions(&cfg, false, crypt.as_ref())?;
        let (work_tx, _) = unbounded();
        Ok(Store {
            inner: Arc::new(Inner {
                parts: RwLock::new(parts),
                wal: None,
                work_tx,
                applied: AtomicU64::new(0),
                frozen: AtomicBool::new(true),
                stop: AtomicBool::new(true),
                commit_now: Mutex::new(()),
                metrics: Metrics::default(),
                cfg,
                crypt,
                integrity: None,
                _lock: None,
            }),
            threads: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.cfg.data_dir
    }

    /// Stores a batch of parsed events from one source; returns once they are durable (WAL fsynced).
    /// `key` identifies the batch so that a retry is stored once.
    pub fn ingest(
        &self,
        key: BatchKey,
        source: &Source,
        events: Vec<Event>,
    ) -> Result<Ingested, StoreError> {
        let wal = self.inner.wal.as_ref().ok_or(StoreError::ReadOnly)?;
        if wal.is_duplicate(&key) {
            self.inner
                .metrics
                .duplicate_batches
                .fetch_add(1, Ordering::Relaxed);
            return Ok(Ingested {
                duplicate: true,
                ..Ingested::default()
            });
        }
        if let Some(o) = &self.inner.cfg.observer {
            o.observe(source, &events).map_err(StoreError::Observer)?;
        }
        let n = events.len() as u64;
        let raw_bytes: u64 = events.iter().map(|e| e.raw.len() as u64).sum();
        let parse_errors = events.iter().filter(|e| e.parse_error.is_some()).count() as u64;
        // A namespace with a retention rule of its own keeps its sources' events in partitions of its own.
        let own = source
            .namespace
            .as_deref()
            .filter(|ns| self.inner.cfg.retention.namespace_age_ns.contains_key(*ns));
        let (payloads, prepared) = prepare(source, own, events);
        match wal.append(key, &payloads, Work::Record(prepared))? {
            Appended::Duplicate => {
                self.inner
                    .metrics
                    .duplicate_batches
                    .fetch_add(1, Ordering::Relaxed);
                Ok(Ingested {
                    duplicate: true,
                    ..Ingested::default()
                })
            }
            Appended::Stored(lsn) => {
                let m = &self.inner.metrics;
                m.batches.fetch_add(1, Ordering::Relaxed);
                m.events.fetch_add(n, Ordering::Relaxed);
                m.raw_bytes.fetch_add(raw_bytes, Ordering::Relaxed);
                m.parse_errors.fetch_add(parse_errors, Ordering::Relaxed);
                Ok(Ingested {
                    events: n,
                    parse_errors,
                    duplicate: false,
                    lsn: Some(lsn),
                })
            }
        }
    }

    /// Waits until every acknowledged batch is indexed, then commits all partitions (makes everything
    /// searchable) and writes a checkpoint.
    pub fn commit(&self) -> Result<(), StoreError> {
        if self.inner.wal.is_none() {
            return Ok(());
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        if !self.threads.lock().is_empty() {
            let _ = self.inner.work_tx.send((0, Work::Barrier(tx)));
            let _ = rx.recv();
        }
        self.inner.commit_all()
    }

    /// Read views of the partitions that may hold events of `kinds` (all when `None`) in `[from, to)`.
    pub fn views(&self, kinds: Option<&[Kind]>, from: i64, to: i64) -> Vec<PartView> {
        let parts: Vec<Arc<Partition>> = self.inner.parts.read().values().cloned().collect();
        parts
            .into_iter()
            .filter(|p| kinds.is_none_or(|ks| ks.contains(&p.key.kind)))
            .filter(|p| p.key.start_ns() < to && p.key.end_ns() > from)
            .map(|p| p.view())
            .filter(|v| v.meta.events > 0 && v.meta.min_ts < to && v.meta.max_ts >= from)
            .collect()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> StoreStats {
        let m = &self.inner.metrics;
        let parts: Vec<Arc<Partition>> = self.inner.parts.read().values().cloned().collect();
        let mut s = StoreStats {
            batches: m.batches.load(Ordering::Relaxed),
            duplicate_batches: m.duplicate_batches.load(Ordering::Relaxed),
            events_ingested: m.events.load(Ordering::Relaxed),
            raw_bytes_ingested: m.raw_bytes.load(Ordering::Relaxed),
            parse_errors: m.parse_errors.load(Ordering::Relaxed),
            wal_torn_bytes: m.wal_torn_bytes.load(Ordering::Relaxed),
            wal_replayed_records: m.wal_replayed_records.load(Ordering::Relaxed),
            index_errors: m.index_errors.load(Ordering::Relaxed),
            commits: m.commits.load(Ordering::Relaxed),
            retention_partitions: m.retention_partitions.load(Ordering::Relaxed),
            retention_events: m.retention_events.load(Ordering::Relaxed),
            retention_held: m.retention_held.load(Ordering::Relaxed),
            retention_namespace_kept: m.retention_namespace_kept.load(Ordering::Relaxed),
            retention_namespace_partitions: m
                .retention_namespace_partitions
                .load(Ordering::Relaxed),
            wal_bytes: self.inner.wal.as_ref().map(|w| w.disk_bytes()).unwrap_or(0),
            partitions: parts.len() as u64,
            ..StoreStats::default()
        };
        for p in parts {
            let meta = p.meta();
            s.events_stored += meta.events;
            s.raw_bytes_stored += meta.raw_bytes;
            s.partition_bytes += p.disk_bytes();
        }
        s
    }

    /// True while ingest works (no WAL or indexing failure).
    pub fn healthy(&self) -> bool {
        !self.inner.frozen.load(Ordering::Relaxed) || self.inner.wal.is_none()
    }

    /// Applies the retention rules now; returns the number of partitions deleted.
    pub fn apply_retention(&self, now_ns: i64) -> Result<u64, StoreError> {
        self.inner.apply_retention(now_ns)
    }

    /// Commits everything, waits for merges and stops the background threads.
    pub fn close(self) -> Result<(), StoreError> {
        self.commit()?;
        self.inner.stop.store(true, Ordering::Release);
        let _ = self
            .inner
            .work_tx
            .send((0, Work::Barrier(crossbeam_channel::bounded(1).0)));
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
        let parts: Vec<Arc<Partition>> = self.inner.parts.read().values().cloned().collect();
        for p in parts {
            p.close_writer(true)?;
        }
        self.inner.commit_all()?;
        self.inner.seal_final()
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(f)
}

fn open_partitions(
    cfg: &StoreConfig,
    writable: bool,
    crypt: Option<&Arc<crypt::Crypt>>,
) -> Result<BTreeMap<PartKey, Arc<Partition>>, StoreError> {
    let mut parts = BTreeMap::new();
    for (key, dir) in partition::discover(&cfg.data_dir) {
        match Partition::open(key, dir.clone(), cfg.writer, writable, crypt) {
            Ok(p) => {
                parts.insert(p.key.clone(), Arc::new(p));
            }
            Err(e) if !writable => {
                tracing::warn!(partition = %dir.display(), error = %e, "skipping unreadable partition");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(parts)
}

/// Cuts a batch into blocks per partition and format (in the partitions of namespace `own` when given);
/// returns the blocks' WAL payloads (with event times) and the documents (whose stored payloads leave
/// the times to the `ts` column).
fn prepare(
    source: &Source,
    own: Option<&str>,
    events: Vec<Event>,
) -> (Vec<Vec<u8>>, Vec<Prepared>) {
    let mut by_day: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    for e in events {
        by_day.entry(e.ts.div_euclid(DAY_NS)).or_default().push(e);
    }
    let own_key: Option<Arc<str>> = own.map(Arc::from);
    let coords: Arc<Vec<(String, String)>> = Arc::new(
        source
            .coordinates()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let mut payloads = Vec::new();
    let mut prepared = Vec::with_capacity(by_day.len());
    for (day, mut evs) in by_day {
        let mut p = Prepared {
            key: PartKey {
                kind: source.kind,
                day,
                namespace: own_key.clone(),
            },
            docs: Vec::with_capacity(evs.len() + evs.len() / BLOCK_EVENTS + 1),
            delta: PartMeta::empty(),
        };
        let mut start = 0;
        while start < evs.len() {
            let format = evs[start].format;
            let mut end = start + 1;
            while end < evs.len() && end - start < BLOCK_EVENTS && evs[end].format == format {
                end += 1;
            }
            let block = &mut evs[start..end];
            let meta = BlockMeta {
                source: source.clone(),
                format: format.to_string(),
                partition_namespace: own.map(str::to_string),
            };
            let refs: Vec<StoredEventRef<'_>> = block.iter().map(StoredEventRef::of).collect();
            let mut wal_payload = Vec::new();
            block::encode(&meta, &refs, true, &mut wal_payload);
            let mut stored_payload = Vec::new();
            block::encode(&meta, &refs, false, &mut stored_payload);
            drop(refs);
            for e in block.iter() {
                p.delta.min_ts = p.delta.min_ts.min(e.ts);
                p.delta.max_ts = p.delta.max_ts.max(e.ts);
                p.delta.raw_bytes += e.raw.len() as u64;
                p.delta.parse_errors += e.parse_error.is_some() as u64;
                for (path, info) in schema::path_infos(source, e) {
                    p.delta.add_path(path, info);
                }
            }
            let words = tokenizer::block_words(block.iter().map(|e| e.message()));
            p.docs.push(Doc::block(stored_payload, words));
            for e in block.iter_mut() {
                p.docs.push(Doc::event(coords.clone(), e));
            }
            p.delta.events += block.len() as u64;
            p.delta.blocks += 1;
            payloads.push(wal_payload);
            start = end;
        }
        prepared.push(p);
    }
    (payloads, prepared)
}

impl Inner {
    fn partition(&self, key: PartKey) -> Result<Arc<Partition>, StoreError> {
        if let Some(p) = self.parts.read().get(&key) {
            return Ok(p.clone());
        }
        let mut parts = self.parts.write();
        if let Some(p) = parts.get(&key) {
            return Ok(p.clone());
        }
        let dir = key.dir(&self.cfg.data_dir);
        let p = Arc::new(Partition::open(
            key.clone(),
            dir,
            self.cfg.writer,
            true,
            self.crypt.as_ref(),
        )?);
        parts.insert(key, p.clone());
        Ok(p)
    }

    /// Adds one WAL record's documents. All documents of a partition go in one call: a partition takes
    /// a record once, so a record split over several calls would lose all but the first.
    fn apply(&self, lsn: u64, prepared: Vec<Prepared>) -> Result<(), StoreError> {
        let mut by_part: BTreeMap<PartKey, (Vec<Doc>, PartMeta)> = BTreeMap::new();
        for p in prepared {
            let (docs, delta) = by_part
                .entry(p.key)
                .or_insert_with(|| (Vec::new(), PartMeta::empty()));
            docs.extend(p.docs);
            delta.merge(&p.delta);
        }
        for (key, (docs, delta)) in by_part {
            self.partition(key)?.apply(lsn, docs, &delta)?;
            // A batch may span many days: keep the open writers (and their memory) bounded as it goes.
            self.limit_writers()?;
        }
        Ok(())
    }

    /// Closes least recently used writers beyond the configured number.
    fn limit_writers(&self) -> Result<(), StoreError> {
        let mut open: Vec<(Instant, Arc<Partition>)> = self
            .parts
            .read()
            .values()
            .filter(|p| p.has_writer())
            .map(|p| (p.last_used(), p.clone()))
            .collect();
        if open.len() <= self.cfg.max_open_writers {
            return Ok(());
        }
        open.sort_by_key(|(t, _)| *t);
        let excess = open.len() - self.cfg.max_open_writers;
        for (_, p) in open.into_iter().take(excess) {
            p.close_writer(false)?;
            self.metrics.commits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn replay(&self, records: Vec<wal::Record>, recovery: &Recovery) -> Result<(), StoreError> {
        self.metrics
            .wal_torn_bytes
            .store(recovery.torn_bytes, Ordering::Relaxed);
        self.metrics
            .wal_replayed_records
            .store(records.len() as u64, Ordering::Relaxed);
        if recovery.torn_bytes > 0 {
            tracing::warn!(
                torn_bytes = recovery.torn_bytes,
                at = recovery.torn_at,
                "cut a torn tail off the write-ahead log (a crash during a write; it was never acknowledged)"
            );
        }
        if !records.is_empty() {
            tracing::info!(records = records.len(), "replaying write-ahead log");
        }
        for rec in records {
            let mut prepared = Vec::new();
            for payload in &rec.blocks {
                let (meta, stored) = block::decode(payload)
                    .map_err(|e| StoreError::Corrupt(format!("WAL record at {}: {e}", rec.lsn)))?;
                let events = stored
                    .iter()
                    .map(|s| {
                        let ts = s.ts.ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "WAL record at {} has no event times",
                                rec.lsn
                            ))
                        })?;
                        Ok(read::materialize(&meta, s, ts))
                    })
                    .collect::<Result<Vec<Event>, StoreError>>()?;
                let own = meta.partition_namespace.as_deref();
                let (_, mut p) = prepare(&meta.source, own, events);
                prepared.append(&mut p);
            }
            self.apply(rec.lsn, prepared)?;
            self.applied.store(rec.lsn, Ordering::Release);
        }
        Ok(())
    }

    fn index_loop(&self, rx: Receiver<(u64, Work)>) {
        for (lsn, work) in rx {
            match work {
                Work::Barrier(done) => {
                    let _ = done.send(());
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                }
                Work::Record(prepared) if self.frozen.load(Ordering::Acquire) => drop(prepared),
                Work::Record(prepared) => match self.apply(lsn, prepared) {
                    Ok(()) => self.applied.store(lsn, Ordering::Release),
                    Err(e) => {
                        self.metrics.index_errors.fetch_add(1, Ordering::Relaxed);
                        self.frozen.store(true, Ordering::Release);
                        tracing::error!(lsn, error = %e, "indexing failed; the data stays in the write-ahead log and is replayed at the next start");
                    }
                },
            }
        }
    }

    fn commit_all(&self) -> Result<(), StoreError> {
        let _guard = self.commit_now.lock();
        let replay_from = self.applied.load(Ordering::Acquire);
        let parts: Vec<Arc<Partition>> = self.parts.read().values().cloned().collect();
        for p in &parts {
            if p.commit()? {
                self.metrics.commits.fetch_add(1, Ordering::Relaxed);
            }
        }
        let Some(wal) = &self.wal else { return Ok(()) };
        if self.frozen.load(Ordering::Acquire) {
            return Ok(());
        }
        let cp = Checkpoint {
            replay_from,
            dedup: wal.dedup_snapshot(),
        };
        write_atomic(
            &self.cfg.data_dir.join("checkpoint.json"),
            &serde_json::to_vec(&cp).unwrap_or_default(),
        )?;
        // Everything is in segments: start a new WAL file so the drained ones can go.
        if replay_from >= wal.end_lsn() {
            wal.rotate()?;
        }
        wal.truncate_before(replay_from)?;
        Ok(())
    }

    fn commit_loop(&self) {
        let mut last_retention = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let t0 = Instant::now();
            while t0.elapsed() < self.cfg.commit_interval && !self.stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20).min(self.cfg.commit_interval));
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = self.commit_all() {
                tracing::error!(error = %e, "commit failed");
            }
            let idle: Vec<Arc<Partition>> = self
                .parts
                .read()
                .values()
                .filter(|p| p.has_writer() && p.last_used().elapsed() > self.cfg.writer_idle)
                .cloned()
                .collect();
            for p in idle {
                if let Err(e) = p.close_writer(false) {
                    tracing::error!(error = %e, "closing idle writer failed");
                }
            }
            if last_retention.elapsed() >= self.cfg.retention_interval {
                last_retention = Instant::now();
                if let Err(e) = self.apply_retention(quarry_model::time::now_nanos()) {
                    tracing::error!(error = %e, "retention failed");
                }
            }
        }
    }

    fn apply_retention(&self, now_ns: i64) -> Result<u64, StoreError> {
        let r = &self.cfg.retention;
        let parts: Vec<Arc<Partition>> = self.parts.read().values().cloned().collect();
        // A namespace's own partitions follow its rule alone; the others, their kind's.
        let own_age = |p: &Partition| {
            let ns = p.key.namespace.as_deref()?;
            r.namespace_age_ns.get(ns).copied()
        };
        let mut doomed: Vec<(Arc<Partition>, &'static str)> = Vec::new();
        for p in &parts {
            let (age, why) = match own_age(p) {
                Some(age) => (Some(age), "namespace"),
                None => (r.max_age_ns.get(&p.key.kind).copied(), "age"),
            };
            if age.is_some_and(|age| p.key.end_ns() <= now_ns.saturating_sub(age)) {
                doomed.push((p.clone(), why));
            }
        }
        let mut per_kind: HashMap<Kind, Vec<&Arc<Partition>>> = HashMap::new();
        for p in &parts {
            per_kind.entry(p.key.kind).or_default().push(p);
        }
        for (kind, mut ps) in per_kind {
            let Some(limit) = r.max_bytes.get(&kind) else {
                continue;
            };
            ps.sort_by_key(|p| p.key.day);
            let newest = ps.last().map_or(i64::MIN, |p| p.key.day);
            let mut total: u64 = ps.iter().map(|p| p.disk_bytes()).sum();
            // The newest day is kept even above the limit: it is still being written.
            for p in ps
                .iter()
                .filter(|p| p.key.day < newest && own_age(p).is_none())
            {
                if total <= *limit {
                    break;
                }
                total = total.saturating_sub(p.disk_bytes());
                if !doomed.iter().any(|(d, _)| d.key == p.key) {
                    doomed.push(((*p).clone(), "size"));
                }
            }
        }
        // A namespace kept longer keeps every shared day that holds it.
        doomed.retain(|(p, why)| {
            if *why == "namespace" {
                return true;
            }
            match namespace_keeping(p, &r.namespace_age_ns, now_ns) {
                Some(ns) => {
                    tracing::debug!(kind = %p.key.kind, partition = %p.key.name(), namespace = %ns, rule = why, "a namespace's retention keeps a partition");
                    self.metrics.retention_namespace_kept.fetch_add(1, Ordering::Relaxed);
                    false
                }
                None => true,
            }
        });
        // Legal holds win over every rule; an unreadable hold file stops retention altogether.
        let holds = match hold::Holds::load(&self.cfg.data_dir) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "retention deletes nothing while the legal holds cannot be read");
                self.metrics
                    .retention_held
                    .store(doomed.len() as u64, Ordering::Relaxed);
                return Ok(0);
            }
        };
        let before = doomed.len();
        doomed.retain(|(p, why)| match holds.covering(&p.key) {
            Some(h) => {
                tracing::debug!(kind = %p.key.kind, partition = %p.key.name(), hold = %h.name, rule = why, "legal hold keeps a partition past retention");
                false
            }
            None => true,
        });
        self.metrics
            .retention_held
            .store((before - doomed.len()) as u64, Ordering::Relaxed);
        let n = doomed.len() as u64;
        for (p, why) in doomed {
            self.parts.write().remove(&p.key);
            let events = p.meta().events;
            p.close_writer(false)?;
            self.note_retention(&p.key, &p.dir, why);
            fs::remove_dir_all(&p.dir)?;
            p.shred_keys()?;
            self.metrics
                .retention_partitions
                .fetch_add(1, Ordering::Relaxed);
            self.metrics
                .retention_events
                .fetch_add(events, Ordering::Relaxed);
            if why == "namespace" {
                self.metrics
                    .retention_namespace_partitions
                    .fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!(kind = %p.key.kind, partition = %p.key.name(), events, reason = why, "retention deleted a partition");
        }
        Ok(n)
    }
}

/// The namespace whose retention keeps partition `p` at `now_ns`, if any: one whose age has not passed
/// since the partition's day ended and whose events the partition holds.
fn namespace_keeping<'a>(
    p: &Partition,
    rules: &'a BTreeMap<String, i64>,
    now_ns: i64,
) -> Option<&'a str> {
    if rules.is_empty() {
        return None;
    }
    let view = p.view();
    rules
        .iter()
        .filter(|(_, age)| p.key.end_ns() > now_ns.saturating_sub(**age))
        .find(|(ns, _)| {
            quarry_model::NAMESPACE_FIELDS.iter().any(|f| {
                schema::field_term(&view.fields, f, &quarry_model::Value::Str((*ns).clone()))
                    .and_then(|t| view.searcher.doc_freq(&t).ok())
                    .is_some_and(|n| n > 0)
            })
        })
        .map(|(ns, _)| ns.as_str())
}

/// Writes a file so that readers see either the old or the new content: temp file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
