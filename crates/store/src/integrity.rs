//! Tamper evidence of the store: the writer of the integrity chain and the entry point of `quarry verify`.
//! The format, the trust model and exactly what verification proves are in [`quarry_trust::chain`]; this
//! module decides what each digest says.
//!
//! # Writing
//!
//! With [`StoreConfig::integrity`](crate::StoreConfig::integrity) set, or on a data directory that has a
//! chain already (a chain is always continued, with default settings if none are given, so that no run of
//! the store goes unsealed), [`Store::open`](crate::Store::open) loads the chain (from `integrity/state.json` when it matches the chain, else by folding every digest),
//! checks the signing key is the chain's, and writes a `start` digest before the store changes anything. A
//! thread (`quarry-integrity`) then writes a `periodic` digest every [`IntegrityConfig::cadence`] (default
//! 60 s), also when nothing changed, and [`Store::close`](crate::Store::close) writes a `final` digest
//! once everything is committed and merged, covering every file, so a stopped data directory verifies
//! exactly. Each digest seals only what changed since the previous one, never everything again:
//!
//! - **Segments**: for each partition whose `meta.json` changed, the segments it lists that are not sealed
//!   get a manifest: the SHA-256 of each of their files as on disk, opened while holding tantivy's meta
//!   lock (so garbage collection cannot remove them half-way), and the Merkle root of their events, read
//!   back from the segment ([`LeafReader::leaf`]: each block document's stored bytes, which hold its
//!   source and every event's record as written, and the events' times from the `ts` column). Sealed segments that `meta.json` no longer lists
//!   are recorded as merged into the segments sealed in the same digest. A merge's result is not read
//!   again where it holds whole sealed segments: their blocks are recognised (event counts per block, and
//!   the leaf of the first block, read once) and their block leaves reused, so each event is hashed about
//!   once however often merges rewrite it; if a sealed segment was changed before the merge, the reused
//!   leaves are what was sealed and verification finds the merged segment differs. Partitions that
//!   retention deleted are recorded with the rule that deleted them.
//! - **Append-only files** (`wal/*.wal`, `*.jsonl` journals): only the bytes appended since the last digest
//!   are hashed, as a range. A WAL file removed once its records are in segments (before the checkpoint's
//!   replay position) is recorded as indexed; one cut or removed by crash recovery, as such.
//! - **Other files** (checkpoint, `meta.json`, keys, tokens, legal holds, detection state): rehashed whole when their
//!   length or modification time changed.
//! - **Anomalies**: anything that changed in a way the store does not change things — a sealed segment file
//!   gone or resized, an append-only file that shrank, a covered file removed, a partition gone without a
//!   retention decision, a file the store never writes — is recorded in the digest (and sealed as found, so
//!   the evidence stays in the chain and is reported by every later verification). After a `final` or
//!   `external` digest nothing may change until the next start: every change the `start` digest finds is
//!   an anomaly.
//!
//! Files written after the last digest are not covered yet; see [`quarry_trust::chain`] for how
//! verification reports them while a server runs (pending) and when none does (findings).
//!
//! # Changes from outside the store
//!
//! Commands that change the data directory without a server (`quarry token create`, `quarry keys rotate`,
//! changing an alert) call [`record_change`] afterwards: it takes the data directory's lock and appends an
//! `external` digest that seals the change with a [`Note`] of what was done; the files the note names are
//! allowed to have changed, any other change since the last final digest is an anomaly. While a server
//! holds the lock, only one writer may append, so `record_change` leaves the note in `integrity/notes/`
//! instead and the server's next digest includes it (and the server seals the changed files anyway, as it
//! seals every change it sees while running).
//!
//! # Verifying
//!
//! [`verify`] takes the data directory's lock if it is free (holding it while it works, so no server
//! starts meanwhile) or notes that a server runs, reads the public key (from
//! [`VerifyOptions::public_key`], or the data directory's own, which proves consistency only), walks the
//! chain, and compares every file, recomputing segment file hashes, Merkle roots (reopening the segments
//! read-only; for an encrypted data directory only when its master key is given) and WAL range hashes.

use crate::crypt::{Crypt, EncryptionConfig};
use crate::partition::{PartKey, PartView, Partition, WriterConfig};
use crate::wal::Recovery;
use crate::{read, schema, Inner, Store, StoreError};
use parking_lot::Mutex;
use quarry_model::Kind;
use quarry_trust::chain::{
    self, classify, AppendRange, Category, ChainError, ChainState, Changes, Digest, DigestBody,
    DigestKind, DiskFile, FileClass, FileDigest, FileRemoval, Hash, Head, LeafSummary, Note,
    PartitionRemoval, PublicKey, Reason, Report, SegmentManifest, SegmentRemoval, SegmentSource,
    SigningKey, StateCache, Tracked, Truncation, WholeFile,
};
pub use quarry_trust::chain::{Anchor, Anomaly};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tantivy::directory::{Directory, MmapDirectory};
use tantivy::DocId;

/// The state cache is rewritten after every quiescent digest and at least every this many digests (it
/// bounds what a start after a crash must fold).
const CACHE_EVERY: u64 = 100;
/// Attempts to read a partition's segments consistently while merges change them.
const SEAL_ATTEMPTS: usize = 3;

/// Failures of the integrity chain.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    /// Keys, digests, files.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store could not read something.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain cannot be continued or checked as asked.
    #[error("{0}")]
    Refused(String),
}

impl From<IntegrityError> for StoreError {
    fn from(e: IntegrityError) -> StoreError {
        match e {
            IntegrityError::Store(s) => s,
            other => StoreError::Integrity(other.to_string()),
        }
    }
}

/// How the store writes its integrity chain.
#[derive(Debug, Clone)]
pub struct IntegrityConfig {
    /// A digest is written this often, also when nothing changed (the verifier reports a silence longer
    /// than twice this as a time gap).
    pub cadence: Duration,
    /// The signing key (PKCS#8). Default `<data_dir>/keys/signing.pk8`; created with the chain if missing.
    pub signing_key: Option<PathBuf>,
    /// Where the public key is written when the key is created. Default `<data_dir>/keys/signing.pub`.
    pub public_key: Option<PathBuf>,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        IntegrityConfig {
            cadence: Duration::from_secs(60),
            signing_key: None,
            public_key: None,
        }
    }
}

impl IntegrityConfig {
    fn key_path(&self, data_dir: &Path) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| data_dir.join(chain::SIGNING_KEY_FILE))
    }

    fn public_path(&self, data_dir: &Path) -> PathBuf {
        self.public_key
            .clone()
            .unwrap_or_else(|| data_dir.join(chain::PUBLIC_KEY_FILE))
    }
}

/// The writer of a data directory's chain (one per open store; the data directory's lock makes it the
/// only one).
pub(crate) struct Writer {
    data_dir: PathBuf,
    cadence: Duration,
    key: SigningKey,
    st: Mutex<WriterState>,
    /// Partitions retention is deleting (relative path → the rule), until a digest records them.
    retention: Mutex<BTreeMap<String, String>>,
    /// What WAL recovery did at open, until a digest records it.
    recovery: Mutex<Option<Recovery>>,
}

struct WriterState {
    chain: ChainState,
    head: Option<Head>,
    /// Length and modification time of files sealed whole, when last hashed.
    seen: HashMap<String, (u64, Option<SystemTime>)>,
    /// Standing anomalies already recorded (recorded once, not at every digest).
    recorded: HashSet<(Category, String)>,
    /// Anomalies found while loading the chain, for the next digest.
    loading: Vec<Anomaly>,
    since_cache: u64,
    /// Block leaves of the live sealed segments this process sealed, by partition and segment.
    blocks: HashMap<(String, String), Arc<BlockList>>,
}

#[derive(Default)]
struct ScanOut {
    changes: Changes,
    anomalies: Vec<Anomaly>,
    notes: Vec<Note>,
    /// Note files to remove once the digest is written.
    spool: Vec<PathBuf>,
    /// Partitions whose removal this digest records.
    retention_done: Vec<String>,
    /// Whole-file stats to remember once the digest is written.
    seen: Vec<(String, (u64, Option<SystemTime>))>,
    /// Block leaves of the segments sealed.
    blocks: Vec<((String, String), Arc<BlockList>)>,
}

impl ScanOut {
    fn anomaly(&mut self, category: Category, path: &str, detail: impl Into<String>) {
        self.anomalies.push(Anomaly {
            category,
            path: path.to_string(),
            detail: detail.into(),
        });
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> IntegrityError + '_ {
    move |source| {
        IntegrityError::Chain(ChainError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Loads the expected state and head of a chain: from the state cache when it matches, then folding the
/// digests after it. Problems of the chain itself become anomalies for the next digest.
fn load_chain(
    data_dir: &Path,
    key: &PublicKey,
) -> Result<(ChainState, Option<Head>, Vec<Anomaly>), IntegrityError> {
    let (digests, _) = chain::list_digests(data_dir)?;
    let (mut state, from) = match chain::load_state_cache(data_dir) {
        Some(c) => (c.state, c.seq + 1),
        None => (ChainState::default(), 0),
    };
    let mut head: Option<Head> = None;
    let mut anomalies = Vec::new();
    let mut expected = from;
    if from > 0 {
        if let Ok(d) = chain::read_digest(&chain::digest_path(data_dir, from - 1)) {
            head = Some(head_of(&d));
        }
    }
    for (seq, path) in digests.into_iter().filter(|(s, _)| *s >= from) {
        let rel = chain::digest_rel(seq);
        if seq != expected {
            anomalies.push(Anomaly {
                category: Category::Missing,
                path: chain::digest_rel(expected),
                detail: format!("digests {expected} to {} were missing at start", seq - 1),
            });
        }
        expected = seq + 1;
        let d = match chain::read_digest(&path) {
            Ok(d) => d,
            Err(e) => {
                anomalies.push(Anomaly {
                    category: Category::Modified,
                    path: rel,
                    detail: format!("unreadable at start: {e}"),
                });
                continue;
            }
        };
        let check = d.check(key);
        if check != chain::SignatureCheck::Valid {
            anomalies.push(Anomaly {
                category: if check == chain::SignatureCheck::OtherKey {
                    Category::Forged
                } else {
                    Category::BadSignature
                },
                path: rel.clone(),
                detail: "found at start with a signature that does not check".into(),
            });
        }
        if let Some(h) = &head {
            if d.body.prev_signature != h.signature && h.seq + 1 == seq {
                anomalies.push(Anomaly {
                    category: Category::BrokenChain,
                    path: rel.clone(),
                    detail: format!("found at start not following digest {}", h.seq),
                });
            }
        }
        for bad in state.apply(d.body.seq, &d.body.changes) {
            anomalies.push(Anomaly {
                category: Category::BrokenChain,
                path: rel.clone(),
                detail: format!("found at start: {bad}"),
            });
        }
        head = Some(head_of(&d));
    }
    Ok((state, head, anomalies))
}

fn head_of(d: &Digest) -> Head {
    Head {
        seq: d.body.seq,
        time_ns: d.body.time_ns,
        kind: d.body.kind,
        signature: d.signature.clone(),
        cadence_ms: d.body.cadence_ms,
    }
}

impl Writer {
    /// The writer of a store being opened: with [`StoreConfig::integrity`](crate::StoreConfig::integrity)
    /// set, or when the data directory has a chain already (a chain is always continued, with the default
    /// settings if none are given, so no run of the store goes unsealed). `None` otherwise.
    pub(crate) fn open_for(
        cfg: &crate::StoreConfig,
        crypt: Option<&Arc<Crypt>>,
    ) -> Result<Option<Writer>, IntegrityError> {
        let ic = match &cfg.integrity {
            Some(ic) => ic.clone(),
            None if chain::list_digests(&cfg.data_dir)?.0.is_empty() => return Ok(None),
            None => IntegrityConfig::default(),
        };
        Writer::open(&cfg.data_dir, &ic, crypt).map(Some)
    }

    /// Loads (or starts) the chain of `data_dir` and writes a `start` digest. The caller holds the data
    /// directory's lock.
    pub(crate) fn open(
        data_dir: &Path,
        cfg: &IntegrityConfig,
        crypt: Option<&Arc<Crypt>>,
    ) -> Result<Writer, IntegrityError> {
        let w = Writer::load(data_dir, cfg, true)?;
        w.digest(DigestKind::Start, crypt, Vec::new())?;
        Ok(w)
    }

    fn load(
        data_dir: &Path,
        cfg: &IntegrityConfig,
        may_create: bool,
    ) -> Result<Writer, IntegrityError> {
        let key_path = cfg.key_path(data_dir);
        let (digests, other) = chain::list_digests(data_dir)?;
        // Temporary files of a digest or of the state cache that a crash left (the caller holds the lock,
        // so no other writer has them open).
        for p in other
            .iter()
            .chain([&data_dir.join(chain::STATE_CACHE).with_extension("tmp")])
        {
            if p.extension().is_some_and(|e| e == "tmp") && p.is_file() {
                let _ = fs::remove_file(p);
            }
        }
        let key = if key_path.exists() {
            SigningKey::load(&key_path)?
        } else if digests.is_empty() && may_create {
            SigningKey::generate(&key_path, &cfg.public_path(data_dir))?
        } else {
            return Err(IntegrityError::Refused(format!(
                "the integrity chain of {} exists but its signing key {} is missing: the chain can only be continued with the key that signed it",
                data_dir.display(),
                key_path.display()
            )));
        };
        let (chain, head, loading) = load_chain(data_dir, key.public())?;
        if let Some((_, last)) = digests.last() {
            if let Ok(d) = chain::read_digest(last) {
                if d.body.key_id != key.public().key_id() {
                    return Err(IntegrityError::Refused(format!(
                        "the signing key {} (id {}) is not the key of the integrity chain (id {}); the chain can only be continued with its own key",
                        key_path.display(),
                        key.public().key_id(),
                        d.body.key_id
                    )));
                }
            }
        }
        Ok(Writer {
            data_dir: data_dir.to_path_buf(),
            cadence: cfg.cadence,
            key,
            st: Mutex::new(WriterState {
                chain,
                head,
                seen: HashMap::new(),
                recorded: HashSet::new(),
                loading,
                since_cache: 0,
                blocks: HashMap::new(),
            }),
            retention: Mutex::new(BTreeMap::new()),
            recovery: Mutex::new(None),
        })
    }

    /// The last digest written.
    pub(crate) fn head(&self) -> Option<Head> {
        self.st.lock().head.clone()
    }

    /// Remembers what WAL recovery did, for the next digest.
    pub(crate) fn note_recovery(&self, r: &Recovery) {
        if r.torn_at.is_some() || r.torn_bytes > 0 {
            *self.recovery.lock() = Some(r.clone());
        }
    }

    /// Remembers that retention is deleting a partition, and why.
    pub(crate) fn note_retention(&self, partition_dir: &Path, policy: String) {
        let rel = rel_path(&self.data_dir, partition_dir);
        self.retention.lock().insert(rel, policy);
    }

    /// Writes the next digest: seals every change since the previous one. Returns its sequence number.
    pub(crate) fn digest(
        &self,
        kind: DigestKind,
        crypt: Option<&Arc<Crypt>>,
        mut notes: Vec<Note>,
    ) -> Result<u64, IntegrityError> {
        let mut st = self.st.lock();
        let quiet = st.head.as_ref().is_some_and(|h| h.kind.quiescent())
            && matches!(kind, DigestKind::Start | DigestKind::External);
        let allowed: BTreeSet<String> = notes.iter().flat_map(|n| n.files.clone()).collect();
        let mut out = self.scan(&mut st, kind != DigestKind::Periodic, crypt)?;
        notes.append(&mut out.notes);
        let mut anomalies = std::mem::take(&mut st.loading);
        if quiet {
            let since = st.head.as_ref().map(|h| h.seq).unwrap_or(0);
            anomalies.extend(quiet_anomalies(&out.changes, &st.chain, &allowed, since));
        }
        for a in out.anomalies.drain(..) {
            if st.recorded.insert((a.category, a.path.clone())) {
                anomalies.push(a);
            }
        }
        let seq = st.head.as_ref().map(|h| h.seq + 1).unwrap_or(0);
        let mut next = st.chain.clone();
        let bad = next.apply(seq, &out.changes);
        if !bad.is_empty() {
            return Err(IntegrityError::Refused(format!(
                "internal error: digest {seq} would contradict the chain: {}",
                bad.join("; ")
            )));
        }
        let now = chain::now_ns();
        let time_ns = match &st.head {
            Some(h) if h.time_ns >= now => h.time_ns + 1,
            _ => now,
        };
        let body = DigestBody {
            version: chain::FORMAT_VERSION,
            seq,
            kind,
            time_ns,
            prev_time_ns: st.head.as_ref().map(|h| h.time_ns),
            cadence_ms: self.cadence.as_millis() as u64,
            key_id: self.key.public().key_id(),
            prev_signature: st
                .head
                .as_ref()
                .map(|h| h.signature.clone())
                .unwrap_or_default(),
            changes: out.changes,
            anomalies,
            notes,
            events: next.events(),
            state_hash: next.hash(),
        };
        for a in &body.anomalies {
            tracing::warn!(category = %a.category, path = %a.path, detail = %a.detail, seq, "integrity: the data directory changed in a way the store does not change it");
        }
        let d = Digest::sign(body, &self.key);
        chain::write_digest(&self.data_dir, &d)?;
        st.head = Some(head_of(&d));
        st.chain = next;
        for (path, stat) in out.seen {
            st.seen.insert(path, stat);
        }
        let mut blocks = std::mem::take(&mut st.blocks);
        blocks.extend(out.blocks);
        let live = &st.chain.segments;
        blocks.retain(|(p, id), _| live.get(p).is_some_and(|m| m.contains_key(id)));
        st.blocks = blocks;
        for p in out.spool {
            let _ = fs::remove_file(p);
        }
        {
            let mut r = self.retention.lock();
            for p in &out.retention_done {
                r.remove(p);
            }
        }
        if kind != DigestKind::Start {
            self.recovery.lock().take();
        }
        st.since_cache += 1;
        if kind.quiescent() || st.since_cache >= CACHE_EVERY {
            let cache = StateCache {
                seq,
                state: st.chain.clone(),
            };
            match chain::write_state_cache(&self.data_dir, &cache) {
                Ok(()) => st.since_cache = 0,
                Err(e) => tracing::warn!(error = %e, "cannot write the integrity state cache"),
            }
        }
        Ok(seq)
    }

    /// Compares the data directory with the chain's state and returns what changed. `quiescent`: no
    /// writer is active (start, final, external), so unreferenced segment files are sealed too.
    fn scan(
        &self,
        st: &mut WriterState,
        quiescent: bool,
        crypt: Option<&Arc<Crypt>>,
    ) -> Result<ScanOut, IntegrityError> {
        let files = chain::walk_files(&self.data_dir, &[chain::DIGEST_DIR])?;
        let disk: BTreeMap<&str, &DiskFile> = files.iter().map(|f| (f.rel.as_str(), f)).collect();
        let mut out = ScanOut::default();
        let mut handled: HashSet<String> = HashSet::new();
        let retention = self.retention.lock().clone();
        let recovery = self.recovery.lock().clone();

        // Partitions gone.
        let parts_on_disk: BTreeSet<String> = files
            .iter()
            .filter_map(|f| chain::partition_of(&f.rel).map(str::to_string))
            .collect();
        let mut removed_parts: BTreeSet<String> = BTreeSet::new();
        for p in st.chain.partitions() {
            if parts_on_disk.contains(&p) {
                continue;
            }
            let (segments, events) = st
                .chain
                .segments
                .get(&p)
                .map(|m| (m.len() as u64, m.values().map(|s| s.events).sum()))
                .unwrap_or((0, 0));
            let reason = match retention.get(&p) {
                Some(policy) => Reason::Retention {
                    policy: policy.clone(),
                },
                None => {
                    out.anomaly(
                        Category::Missing,
                        &p,
                        format!("the partition ({segments} sealed segments, {events} events) was deleted without a retention decision"),
                    );
                    Reason::Unexplained
                }
            };
            out.changes.partitions_removed.push(PartitionRemoval {
                partition: p.clone(),
                segments,
                events,
                reason,
            });
            out.retention_done.push(p.clone());
            removed_parts.insert(p);
        }
        // Partitions present.
        for p in &parts_on_disk {
            let local: Vec<&DiskFile> = files
                .iter()
                .filter(|f| chain::partition_of(&f.rel) == Some(p.as_str()))
                .collect();
            if retention.contains_key(p) {
                // Being deleted: recorded once it is gone.
                handled.extend(local.iter().map(|f| f.rel.clone()));
                continue;
            }
            self.scan_partition(
                st,
                p,
                &local,
                &disk,
                quiescent,
                crypt,
                &mut out,
                &mut handled,
            );
        }
        // Other files.
        for f in &files {
            if handled.contains(&f.rel) {
                continue;
            }
            let class = classify(&f.rel);
            match class {
                FileClass::Lock
                | FileClass::TantivyLock
                | FileClass::Digest
                | FileClass::StateCache => {}
                FileClass::Note => self.take_note(f, &mut out),
                // Files being written while the store runs are sealed only when it is quiet (a crash
                // leaves temporary files; they are sealed as found and may go later).
                FileClass::SegmentFile { .. } | FileClass::Transient if !quiescent => {}
                FileClass::Wal { .. } | FileClass::Journal => {
                    self.append_file(st, f, &class, recovery.as_ref(), &mut out)?
                }
                _ if !f.regular => out.anomaly(
                    Category::Unexpected,
                    &f.rel,
                    "not a regular file (a symbolic link?)",
                ),
                _ => self.whole_file(st, f, &class, &mut out)?,
            }
        }
        // Covered files gone.
        let replay_from = chain::checkpoint_replay_from(&self.data_dir);
        for (path, t) in &st.chain.files {
            if disk.contains_key(path.as_str())
                || handled.contains(path)
                || chain::partition_of(path).is_some_and(|p| removed_parts.contains(p))
            {
                continue;
            }
            let class = classify(path);
            let reason = match (&class, t) {
                (FileClass::SegmentFile { .. } | FileClass::Transient, Tracked::Whole { .. }) => {
                    Reason::GarbageCollected
                }
                (FileClass::Wal { start }, Tracked::Append { len, .. })
                    if replay_from.is_some_and(|r| start + len <= r) =>
                {
                    Reason::Indexed {
                        replay_from: replay_from.unwrap_or(0),
                    }
                }
                (FileClass::Wal { start }, _)
                    if recovery
                        .as_ref()
                        .and_then(|r| r.torn_at)
                        .is_some_and(|t| *start >= t) =>
                {
                    Reason::CrashRecovery {
                        detail: "removed after a torn record".into(),
                    }
                }
                _ => {
                    out.anomaly(Category::Missing, path, "a covered file was removed");
                    Reason::Unexplained
                }
            };
            out.changes.files_removed.push(FileRemoval {
                path: path.clone(),
                reason,
            });
        }
        Ok(out)
    }

    fn take_note(&self, f: &DiskFile, out: &mut ScanOut) {
        let path = self.data_dir.join(&f.rel);
        match fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Note>(&b).ok())
        {
            Some(n) => out.notes.push(n),
            None => out.anomaly(
                Category::Unexpected,
                &f.rel,
                "an unreadable note file (removed)",
            ),
        }
        out.spool.push(path);
    }

    fn append_file(
        &self,
        st: &WriterState,
        f: &DiskFile,
        class: &FileClass,
        recovery: Option<&Recovery>,
        out: &mut ScanOut,
    ) -> Result<(), IntegrityError> {
        let (covered, ranges) = match st.chain.files.get(&f.rel) {
            Some(Tracked::Append { len, ranges }) => (*len, ranges.as_slice()),
            Some(Tracked::Whole { .. }) => return self.whole_file(st, f, class, out),
            None => (0, &[][..]),
        };
        let path = self.data_dir.join(&f.rel);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let len = file.metadata().map_err(io_err(&path))?.len();
        let mut from = covered;
        if len < covered {
            let boundary = ranges
                .iter()
                .rev()
                .find(|r| r.to <= len)
                .map(|r| r.to)
                .unwrap_or(0);
            let explained = match (class, recovery) {
                (FileClass::Wal { start }, Some(r)) => {
                    r.torn_at.is_some_and(|t| t >= *start && t - start == len)
                }
                _ => false,
            };
            let reason = if explained {
                Reason::CrashRecovery {
                    detail: format!("a torn record cut at {len}"),
                }
            } else {
                out.anomaly(
                    Category::Truncated,
                    &f.rel,
                    format!("cut from {covered} sealed bytes to {len}"),
                );
                Reason::Unexplained
            };
            out.changes.truncated.push(Truncation {
                path: f.rel.clone(),
                len: boundary,
                reason,
            });
            from = boundary;
        }
        if len > from || !st.chain.files.contains_key(&f.rel) {
            let h = chain::hash_range(&mut file, from, len - from).map_err(io_err(&path))?;
            out.changes.appended.push(AppendRange {
                path: f.rel.clone(),
                from,
                to: len,
                sha256: chain::to_hex(&h),
            });
        }
        Ok(())
    }

    fn whole_file(
        &self,
        st: &WriterState,
        f: &DiskFile,
        class: &FileClass,
        out: &mut ScanOut,
    ) -> Result<(), IntegrityError> {
        let tracked = st.chain.files.get(&f.rel);
        let stat = (f.len, f.modified);
        if tracked.is_some() && st.seen.get(&f.rel) == Some(&stat) {
            return Ok(());
        }
        let path = self.data_dir.join(&f.rel);
        let (len, h) = match chain::hash_file(&path) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let sha = chain::to_hex(&h);
        out.seen.push((f.rel.clone(), stat));
        if let Some(Tracked::Whole { len: l, sha256 }) = tracked {
            if *l == len && *sha256 == sha {
                return Ok(());
            }
        }
        if tracked.is_none() && *class == FileClass::Unknown {
            out.anomaly(
                Category::Unexpected,
                &f.rel,
                "a file the store never writes appeared",
            );
        }
        out.changes.files.push(WholeFile {
            path: f.rel.clone(),
            len,
            sha256: sha,
        });
        Ok(())
    }

    /// Seals what changed in one partition: new segments, segments merged away, `meta.json` and
    /// `.managed.json`; checks the sealed segments' files are still there with their lengths.
    #[allow(clippy::too_many_arguments)]
    fn scan_partition(
        &self,
        st: &WriterState,
        p: &str,
        local: &[&DiskFile],
        disk: &BTreeMap<&str, &DiskFile>,
        quiescent: bool,
        crypt: Option<&Arc<Crypt>>,
        out: &mut ScanOut,
        handled: &mut HashSet<String>,
    ) {
        let empty = BTreeMap::new();
        let sealed = st.chain.segments.get(p).unwrap_or(&empty);
        for m in sealed.values() {
            for fd in &m.files {
                handled.insert(format!("{p}/{}", fd.name));
            }
        }
        // The files of sealed segments meta.json still lists must be there, as long as they were.
        let check_sealed = |out: &mut ScanOut, removed: &[String]| {
            for (id, m) in sealed.iter().filter(|(id, _)| !removed.contains(id)) {
                for fd in &m.files {
                    let path = format!("{p}/{}", fd.name);
                    match disk.get(path.as_str()) {
                        None => out.anomaly(
                            Category::Missing,
                            &path,
                            format!("a file of sealed segment {id} is gone"),
                        ),
                        Some(d) if d.len != fd.len => out.anomaly(
                            if d.len < fd.len {
                                Category::Truncated
                            } else {
                                Category::Modified
                            },
                            &path,
                            format!(
                                "a file of sealed segment {id} is {} bytes, sealed with {}",
                                d.len, fd.len
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
        };
        let meta_rel = format!("{p}/meta.json");
        let managed_rel = format!("{p}/.managed.json");
        let Some(meta_stat) = disk.get(meta_rel.as_str()) else {
            return;
        };
        let managed_stat = disk.get(managed_rel.as_str());
        let stat_of = |f: &DiskFile| (f.len, f.modified);
        let unchanged = st.chain.files.contains_key(&meta_rel)
            && st.seen.get(&meta_rel) == Some(&stat_of(meta_stat))
            && match managed_stat {
                Some(m) => {
                    st.chain.files.contains_key(&managed_rel)
                        && st.seen.get(&managed_rel) == Some(&stat_of(m))
                }
                None => !st.chain.files.contains_key(&managed_rel),
            };
        let skip_rest = |handled: &mut HashSet<String>| {
            handled.insert(meta_rel.clone());
            handled.insert(managed_rel.clone());
            if !quiescent {
                for f in local {
                    if matches!(classify(&f.rel), FileClass::SegmentFile { .. }) {
                        handled.insert(f.rel.clone());
                    }
                }
            }
        };
        if unchanged {
            check_sealed(out, &[]);
            skip_rest(handled);
            return;
        }
        let known: HashMap<String, Arc<BlockList>> = st
            .blocks
            .iter()
            .filter(|((q, _), _)| q == p)
            .map(|((_, id), b)| (id.clone(), b.clone()))
            .collect();
        let sealed_now = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.seal_partition(p, sealed, &known, crypt)
        }));
        let sealed_now = match sealed_now {
            Ok(r) => r,
            Err(_) => Err(IntegrityError::Refused(
                "reading its segments panicked".into(),
            )),
        };
        match sealed_now {
            Ok(Some(s)) => {
                check_sealed(out, &s.removed);
                let mut into: Vec<String> =
                    s.added.iter().map(|(m, _)| m.segment.clone()).collect();
                into.sort();
                for id in &s.removed {
                    let reason = if into.is_empty() {
                        out.anomaly(
                            Category::Missing,
                            &format!("{p}/{id}"),
                            "a sealed segment left meta.json without a merge",
                        );
                        Reason::Unexplained
                    } else {
                        Reason::Merged { into: into.clone() }
                    };
                    out.changes.segments_removed.push(SegmentRemoval {
                        partition: p.to_string(),
                        segment: id.clone(),
                        reason,
                    });
                }
                for (m, list) in s.added {
                    for f in &m.files {
                        handled.insert(format!("{p}/{}", f.name));
                    }
                    out.blocks.push(((p.to_string(), m.segment.clone()), list));
                    out.changes.segments_added.push(m);
                }
                for (rel, stat, bytes) in [
                    (&meta_rel, Some(stat_of(meta_stat)), s.meta),
                    (&managed_rel, managed_stat.map(|m| stat_of(m)), s.managed),
                ] {
                    handled.insert(rel.clone());
                    let (Some(stat), Some(bytes)) = (stat, bytes) else {
                        continue;
                    };
                    let sha = chain::to_hex(&chain::sha256(&bytes));
                    out.seen.push((rel.clone(), stat));
                    let same = matches!(st.chain.files.get(rel), Some(Tracked::Whole { len, sha256 }) if *len == bytes.len() as u64 && *sha256 == sha);
                    if !same {
                        out.changes.files.push(WholeFile {
                            path: rel.clone(),
                            len: bytes.len() as u64,
                            sha256: sha,
                        });
                    }
                }
                if !quiescent {
                    for f in local {
                        if matches!(classify(&f.rel), FileClass::SegmentFile { .. }) {
                            handled.insert(f.rel.clone());
                        }
                    }
                }
            }
            Ok(None) => skip_rest(handled),
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "integrity: cannot seal the partition's segments now; retrying at the next digest");
                skip_rest(handled);
            }
        }
    }

    /// Reads a partition's current segments consistently: `None` when merges kept changing them.
    fn seal_partition(
        &self,
        p: &str,
        sealed: &BTreeMap<String, SegmentManifest>,
        known: &HashMap<String, Arc<BlockList>>,
        crypt: Option<&Arc<Crypt>>,
    ) -> Result<Option<Sealed>, IntegrityError> {
        let dir = self.data_dir.join(p);
        let key = part_key(p).ok_or_else(|| {
            IntegrityError::Refused(format!("{p} is not a partition directory name"))
        })?;
        for _ in 0..SEAL_ATTEMPTS {
            let part = Partition::open(key.clone(), dir.clone(), reader_config(), false, crypt)?;
            let view = part.view();
            let ords: HashMap<String, u32> = view
                .searcher
                .segment_readers()
                .iter()
                .enumerate()
                .map(|(i, r)| (r.segment_id().uuid_string(), i as u32))
                .collect();
            // Under tantivy's meta lock, garbage collection cannot remove the files of the segments
            // meta.json lists: read meta.json and open those files, then let go.
            let lock = MetaLock::acquire(&dir)?;
            // Hashed as on disk; read through the store's directory (which decrypts) for its list.
            let meta = fs::read(dir.join("meta.json")).map_err(io_err(&dir))?;
            let plain = match crypt {
                None => meta.clone(),
                Some(c) => {
                    let mmap = MmapDirectory::open(&dir)
                        .map_err(|e| IntegrityError::Refused(format!("{p}: {e}")))?;
                    c.directory(&dir, mmap)
                        .atomic_read(Path::new("meta.json"))
                        .map_err(|e| IntegrityError::Refused(format!("{p}/meta.json: {e}")))?
                }
            };
            let managed = match fs::read(dir.join(".managed.json")) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(&dir)(e)),
            };
            let ids = segment_ids(&plain).ok_or_else(|| {
                IntegrityError::Refused(format!("{p}/meta.json lists no segments"))
            })?;
            if ids.iter().any(|id| !ords.contains_key(id)) {
                drop(lock);
                continue;
            }
            let new: Vec<&String> = ids.iter().filter(|id| !sealed.contains_key(*id)).collect();
            let mut handles: BTreeMap<String, Vec<(String, File)>> = BTreeMap::new();
            if !new.is_empty() {
                let mut names: Vec<String> = fs::read_dir(&dir)
                    .map_err(io_err(&dir))?
                    .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_string))
                    .collect();
                names.sort();
                for id in &new {
                    let prefix = format!("{id}.");
                    let mut files = Vec::new();
                    for n in names.iter().filter(|n| n.starts_with(&prefix)) {
                        let path = dir.join(n);
                        files.push((n.clone(), File::open(&path).map_err(io_err(&path))?));
                    }
                    handles.insert((*id).clone(), files);
                }
            }
            drop(lock);

            let removed: Vec<String> = sealed
                .keys()
                .filter(|id| !ids.contains(id))
                .cloned()
                .collect();
            let inputs: Vec<Arc<BlockList>> = removed
                .iter()
                .filter_map(|id| known.get(id).cloned())
                .collect();
            let mut used = vec![false; inputs.len()];
            let mut added = Vec::new();
            for (id, files) in handles {
                let mut digests = Vec::new();
                for (name, mut f) in files {
                    let (len, h) =
                        chain::hash_open_file(&mut f).map_err(io_err(&dir.join(&name)))?;
                    digests.push(FileDigest {
                        name,
                        len,
                        sha256: chain::to_hex(&h),
                    });
                }
                let ord = ords[&id];
                let blocks = SegmentBlocks::of(&view, ord)?;
                let roots = compose_blocks(&view, ord, &blocks, &inputs, &mut used)?;
                let events = blocks.events();
                let (min_ts, max_ts) = time_span(&view, ord, events)?;
                let list = BlockList {
                    roots,
                    counts: blocks.counts.clone(),
                };
                added.push((
                    SegmentManifest {
                        partition: p.to_string(),
                        segment: id,
                        files: digests,
                        docs: blocks.docs as u64,
                        blocks: list.roots.len() as u64,
                        events,
                        merkle_root: chain::to_hex(&chain::merkle_root(&list.roots)),
                        first_leaf: list
                            .roots
                            .first()
                            .map(|f| chain::to_hex(f))
                            .unwrap_or_default(),
                        min_ts,
                        max_ts,
                    },
                    Arc::new(list),
                ));
            }
            return Ok(Some(Sealed {
                added,
                removed,
                meta: Some(meta),
                managed,
            }));
        }
        Ok(None)
    }
}

/// What sealing a partition found.
struct Sealed {
    added: Vec<(SegmentManifest, Arc<BlockList>)>,
    removed: Vec<String>,
    meta: Option<Vec<u8>>,
    managed: Option<Vec<u8>>,
}

/// Every change in a quiet period (after a final or external digest) is an anomaly, except the files a
/// note says a command changed.
fn quiet_anomalies(
    c: &Changes,
    state: &ChainState,
    allowed: &BTreeSet<String>,
    since: u64,
) -> Vec<Anomaly> {
    let when = format!("changed while no Quarry process held the data directory (after digest {since}, which left it quiet)");
    let mut out = Vec::new();
    let mut add = |category, path: &str, what: String| {
        if !allowed.contains(path) {
            out.push(Anomaly {
                category,
                path: path.to_string(),
                detail: format!("{what}: {when}"),
            });
        }
    };
    for p in &c.partitions_removed {
        add(Category::Missing, &p.partition, "partition removed".into());
    }
    for s in &c.segments_removed {
        add(
            Category::Missing,
            &format!("{}/{}", s.partition, s.segment),
            "segment removed".into(),
        );
    }
    for m in &c.segments_added {
        add(
            Category::Unexpected,
            &format!("{}/{}", m.partition, m.segment),
            format!("segment with {} events appeared", m.events),
        );
    }
    for f in &c.files_removed {
        add(Category::Missing, &f.path, "file removed".into());
    }
    for t in &c.truncated {
        add(Category::Truncated, &t.path, "file cut".into());
    }
    for a in &c.appended {
        add(
            Category::Unexpected,
            &a.path,
            format!("{} bytes appended", a.to - a.from),
        );
    }
    for f in &c.files {
        if state.files.contains_key(&f.path) {
            add(Category::Modified, &f.path, "file changed".into());
        } else {
            add(Category::Unexpected, &f.path, "file appeared".into());
        }
    }
    out
}

/// tantivy's meta lock of a partition (`.tantivy-meta.lock`), held while reading `meta.json` and opening
/// segment files: tantivy takes it before garbage collection.
struct MetaLock(File);

impl MetaLock {
    fn acquire(dir: &Path) -> Result<MetaLock, IntegrityError> {
        let path = dir.join(".tantivy-meta.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.lock().map_err(io_err(&path))?;
        Ok(MetaLock(f))
    }
}

impl Drop for MetaLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Segment ids (32 hex digits) listed by a `meta.json`.
fn segment_ids(meta: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(meta).ok()?;
    v.get("segments")?
        .as_array()?
        .iter()
        .map(|s| {
            s.get("segment_id")
                .and_then(|i| i.as_str())
                .map(|i| i.replace('-', "").to_ascii_lowercase())
        })
        .collect()
}

fn reader_config() -> WriterConfig {
    WriterConfig {
        threads: 1,
        memory: 15 << 20,
        zstd_level: 3,
    }
}

/// The partition key of `partitions/<kind>/<name>` (see [`PartKey::parse`]).
fn part_key(p: &str) -> Option<PartKey> {
    let mut it = p.strip_prefix("partitions/")?.split('/');
    let kind: Kind = it.next()?.parse().ok()?;
    let key = PartKey::parse(kind, it.next()?)?;
    it.next().is_none().then_some(key)
}

fn rel_path(data_dir: &Path, p: &Path) -> String {
    p.strip_prefix(data_dir)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The stored blocks of a segment: the doc ids of its block documents and each block's event count.
pub struct SegmentBlocks {
    starts: Arc<Vec<DocId>>,
    counts: Vec<u32>,
    docs: u32,
}

impl SegmentBlocks {
    /// Reads where the blocks of segment `ord` are (from the `is_block` postings, no stored data).
    pub fn of(view: &PartView, ord: u32) -> Result<SegmentBlocks, StoreError> {
        let seg = view.searcher.segment_reader(ord);
        let docs = seg.max_doc();
        let starts = read::block_starts(seg, &view.fields)?;
        if docs > 0 && starts.first() != Some(&0) {
            return Err(StoreError::Corrupt(format!(
                "segment {} has documents before its first block",
                seg.segment_id().uuid_string()
            )));
        }
        let counts = starts
            .iter()
            .map(|&s| read::block_range(&starts, s, docs).len() as u32)
            .collect();
        Ok(SegmentBlocks {
            starts,
            counts,
            docs,
        })
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True for a segment without blocks.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Events in all blocks.
    pub fn events(&self) -> u64 {
        self.counts.iter().map(|&c| c as u64).sum()
    }
}

/// Reads the Merkle leaves of one segment's blocks: its document store and time column, opened once.
pub struct LeafReader {
    store: tantivy::store::StoreReader,
    ts: tantivy::columnar::Column<i64>,
    buf: Vec<u8>,
}

impl LeafReader {
    /// The leaf reader of segment `ord`.
    pub fn of(view: &PartView, ord: u32) -> Result<LeafReader, StoreError> {
        let seg = view.searcher.segment_reader(ord);
        Ok(LeafReader {
            store: seg.get_store_reader(4)?,
            ts: seg.fast_fields().i64(schema::TS)?,
            buf: Vec::new(),
        })
    }

    /// The Merkle leaf of block `i` (see [`quarry_trust::chain`]): `SHA-256(0x00 || "qbl2" || the block
    /// document's stored bytes, length-prefixed || the event count || each event's time)`. The stored
    /// bytes hold the block's source, formats and every event's raw text, hint and parse error exactly
    /// as written (merges copy them unchanged); the times come from the `ts` column.
    pub fn leaf(&mut self, blocks: &SegmentBlocks, i: usize) -> Result<Hash, StoreError> {
        let start = blocks.starts[i];
        let count = blocks.counts[i];
        let doc = self.store.get_document_bytes(start)?;
        let b = &mut self.buf;
        b.clear();
        b.push(0);
        b.extend_from_slice(b"qbl2");
        b.extend_from_slice(&(doc.len() as u64).to_be_bytes());
        b.extend_from_slice(doc.as_slice());
        b.extend_from_slice(&u64::from(count).to_be_bytes());
        for k in 0..count {
            let d = start + 1 + k as DocId;
            let t = self
                .ts
                .first(d)
                .ok_or_else(|| StoreError::Corrupt(format!("event document {d} has no time")))?;
            b.extend_from_slice(&t.to_be_bytes());
        }
        Ok(chain::sha256(b))
    }
}

/// Feeds the leaf and event count of every block of segment `ord`, in document order (reads every
/// block). Returns the segment's document count.
pub fn segment_blocks(
    view: &PartView,
    ord: u32,
    sink: &mut dyn FnMut(Hash, u64),
) -> Result<LeafSummary, StoreError> {
    let blocks = SegmentBlocks::of(view, ord)?;
    let mut leaves = LeafReader::of(view, ord)?;
    for i in 0..blocks.len() {
        sink(leaves.leaf(&blocks, i)?, blocks.counts[i] as u64);
    }
    Ok(LeafSummary {
        docs: blocks.docs as u64,
    })
}

/// Earliest and latest event time of a segment, from its `ts` column's statistics.
fn time_span(view: &PartView, ord: u32, events: u64) -> Result<(i64, i64), StoreError> {
    if events == 0 {
        return Ok((i64::MAX, i64::MIN));
    }
    let ts = view
        .searcher
        .segment_reader(ord)
        .fast_fields()
        .i64(schema::TS)?;
    Ok((ts.min_value(), ts.max_value()))
}

/// The block leaves and event counts of a sealed segment, kept in memory while it lives so that a merge's
/// result can be sealed from its inputs' blocks without reading them again.
#[derive(Debug)]
pub(crate) struct BlockList {
    roots: Vec<Hash>,
    counts: Vec<u32>,
}

/// The block leaves of a new segment: the runs of blocks that come whole from sealed segments a merge
/// replaced (`inputs`, recognised by their blocks' event counts and the leaf of their first block, read
/// once) are taken from them; every other block is read. `used` marks the inputs taken. If an input was
/// changed before the merge, the leaves taken are what was sealed, not what the merge copied:
/// verification then finds the merged segment's events differ.
fn compose_blocks(
    view: &PartView,
    ord: u32,
    blocks: &SegmentBlocks,
    inputs: &[Arc<BlockList>],
    used: &mut [bool],
) -> Result<Vec<Hash>, StoreError> {
    let n = blocks.len();
    let mut roots = Vec::with_capacity(n);
    let mut leaves = LeafReader::of(view, ord)?;
    let mut p = 0;
    while p < n {
        let mut here: Option<Hash> = None;
        let mut took = false;
        for (ci, c) in inputs.iter().enumerate() {
            let k = c.counts.len();
            if used[ci] || k == 0 || p + k > n || blocks.counts[p..p + k] != c.counts[..] {
                continue;
            }
            let first = match here {
                Some(h) => h,
                None => *here.insert(leaves.leaf(blocks, p)?),
            };
            if first == c.roots[0] {
                roots.extend_from_slice(&c.roots);
                used[ci] = true;
                p += k;
                took = true;
                break;
            }
        }
        if !took {
            roots.push(match here {
                Some(h) => h,
                None => leaves.leaf(blocks, p)?,
            });
            p += 1;
        }
    }
    Ok(roots)
}

// ---------------------------------------------------------------------------------------------------
// Store wiring (called from lib.rs)

impl Inner {
    /// The `quarry-integrity` thread: a periodic digest every cadence until the store stops.
    pub(crate) fn integrity_loop(&self) {
        let Some(w) = &self.integrity else { return };
        let mut next = Instant::now() + w.cadence;
        loop {
            while Instant::now() < next {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(
                    next.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                );
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = w.digest(DigestKind::Periodic, self.crypt.as_ref(), Vec::new()) {
                tracing::error!(error = %e, "integrity: cannot write a digest");
            }
            next += w.cadence;
            let now = Instant::now();
            if next < now {
                next = now;
            }
        }
    }

    /// The `final` digest of a clean close (everything committed and merged).
    pub(crate) fn seal_final(&self) -> Result<(), StoreError> {
        if let Some(w) = &self.integrity {
            w.digest(DigestKind::Final, self.crypt.as_ref(), Vec::new())?;
        }
        Ok(())
    }

    /// Records that retention deletes a partition (`why`: `age`, `size` or `namespace`), before it does.
    pub(crate) fn note_retention(&self, key: &PartKey, dir: &Path, why: &str) {
        let Some(w) = &self.integrity else { return };
        let r = &self.cfg.retention;
        let policy = match why {
            "age" => format!(
                "age: {} partitions older than {}s",
                key.kind,
                r.max_age_ns.get(&key.kind).copied().unwrap_or(0) / 1_000_000_000
            ),
            "size" => format!(
                "size: {} partitions beyond {} bytes",
                key.kind,
                r.max_bytes.get(&key.kind).copied().unwrap_or(0)
            ),
            "namespace" => {
                let ns = key.namespace.as_deref().unwrap_or_default();
                format!(
                    "namespace: {ns} {} partitions older than {}s",
                    key.kind,
                    r.namespace_age_ns.get(ns).copied().unwrap_or(0) / 1_000_000_000
                )
            }
            other => other.to_string(),
        };
        w.note_retention(dir, policy);
    }
}

impl Store {
    /// Writes a digest now (as the cadence would), returning its sequence number; `None` when integrity
    /// is off.
    pub fn seal_now(&self) -> Result<Option<u64>, StoreError> {
        match &self.inner.integrity {
            Some(w) => Ok(Some(w.digest(
                DigestKind::Periodic,
                self.inner.crypt.as_ref(),
                Vec::new(),
            )?)),
            None => Ok(None),
        }
    }

    /// The last digest of the integrity chain (`None` when integrity is off).
    pub fn integrity_head(&self) -> Option<Head> {
        self.inner.integrity.as_ref().and_then(|w| w.head())
    }
}

// ---------------------------------------------------------------------------------------------------
// Changes made by commands

/// What [`record_change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Sealed by a new `external` digest with this sequence number.
    Sealed(u64),
    /// A server holds the data directory: the note was left in `integrity/notes/` for its next digest.
    Deferred(PathBuf),
    /// The data directory has no integrity chain; nothing recorded.
    NoChain,
}

/// Records a change a command made to the data directory (call it after the change). Without a server,
/// takes the data directory's lock and appends an `external` digest sealing everything that changed, with
/// `note`; the files `note.files` names (relative to the data directory) may have changed, any other
/// change since a final digest is recorded as an anomaly. New segments of an encrypted data directory
/// cannot be read here (no master key); they stay unsealed, and are anomalies anyway. With a server
/// running (the lock is held), writes the note to `integrity/notes/` for the server's next digest
/// ([`Recorded::Deferred`]).
pub fn record_change(
    data_dir: &Path,
    cfg: &IntegrityConfig,
    mut note: Note,
) -> Result<Recorded, IntegrityError> {
    if note.time_ns == 0 {
        note.time_ns = chain::now_ns();
    }
    if chain::list_digests(data_dir)?.0.is_empty() {
        return Ok(Recorded::NoChain);
    }
    match crate::lock_data_dir(data_dir) {
        Ok(_lock) => {
            let w = Writer::load(data_dir, cfg, false)?;
            let seq = w.digest(DigestKind::External, None, vec![note])?;
            Ok(Recorded::Sealed(seq))
        }
        Err(StoreError::Locked(_)) => {
            let dir = data_dir.join(chain::NOTES_DIR);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            let path = dir.join(format!("{}-{}.json", note.time_ns, std::process::id()));
            let bytes = serde_json::to_vec(&note)
                .map_err(|e| IntegrityError::Refused(format!("cannot write the note: {e}")))?;
            chain::write_file_atomic(&path, &bytes)?;
            Ok(Recorded::Deferred(path))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------------
// Verification

/// How to verify a data directory.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The public key to trust; default the data directory's own `keys/signing.pub` (which proves only
    /// that the chain is consistent, not who wrote it).
    pub public_key: Option<PathBuf>,
    /// Report time gaps and recorded anomalies only from this time (UTC ns) on.
    pub since: Option<i64>,
    /// A digest recorded elsewhere that the chain must contain.
    pub anchor: Option<Anchor>,
    /// The master key of an encrypted data directory: needed to recompute its events' Merkle roots (file
    /// hashes are checked without it).
    pub encryption: Option<EncryptionConfig>,
    /// Added to twice the cadence before a silence between digests is a time gap (default 10 s).
    pub gap_slack: Option<Duration>,
}

/// Verifies a data directory against its chain (see the module documentation); `public_key` is the key to
/// trust (default the data directory's own), `since` limits the time-gap report.
pub fn verify(
    data_dir: &Path,
    public_key: Option<&Path>,
    since: Option<i64>,
) -> Result<Report, IntegrityError> {
    verify_with(
        data_dir,
        &VerifyOptions {
            public_key: public_key.map(Path::to_path_buf),
            since,
            ..VerifyOptions::default()
        },
    )
}

/// [`verify`] with every option.
pub fn verify_with(data_dir: &Path, opts: &VerifyOptions) -> Result<Report, IntegrityError> {
    if !data_dir.is_dir() {
        return Err(IntegrityError::Refused(format!(
            "{} is not a directory",
            data_dir.display()
        )));
    }
    let (key_path, from_dir) = match &opts.public_key {
        Some(p) => (p.clone(), false),
        None => (data_dir.join(chain::PUBLIC_KEY_FILE), true),
    };
    if from_dir && !key_path.exists() {
        return Err(IntegrityError::Refused(format!(
            "no public key: {} does not exist; give the public key with --public-key",
            key_path.display()
        )));
    }
    let key = PublicKey::load(&key_path)?;
    // Hold the lock while verifying when no server has it, so none starts meanwhile.
    let lock_path = data_dir.join("LOCK");
    let mut _held = None;
    let mut running = false;
    if let Ok(f) = File::open(&lock_path) {
        match f.try_lock() {
            Ok(()) => _held = Some(f),
            Err(std::fs::TryLockError::WouldBlock) => running = true,
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
    }
    let encrypted = data_dir.join(quarry_trust::keys::KEYRING_FILE).exists();
    let mut keyring_problem = None;
    let crypt = match (&opts.encryption, encrypted) {
        (Some(e), true) => match Crypt::open(data_dir, Some(e), false) {
            Ok(c) => c,
            Err(e) => {
                keyring_problem = Some(e.to_string());
                None
            }
        },
        _ => None,
    };
    let mut source = StoreSegments {
        data_dir: data_dir.to_path_buf(),
        readable: !encrypted || crypt.is_some(),
        crypt,
        open: None,
    };
    let vopts = chain::VerifyOptions {
        since: opts.since,
        anchor: opts.anchor.clone(),
        server_running: running,
        ..chain::VerifyOptions::default()
    };
    let vopts = match opts.gap_slack {
        Some(g) => chain::VerifyOptions {
            gap_slack_ns: g.as_nanos().min(i64::MAX as u128) as i64,
            ..vopts
        },
        None => vopts,
    };
    let mut report = chain::verify_data_dir(data_dir, &key, &vopts, &mut source)?;
    report.key_from_data_dir = from_dir;
    if let Some(e) = keyring_problem {
        report.info.push(format!(
            "the keyring cannot be opened with the master key given ({e}): events were not recomputed"
        ));
    } else if !source.readable {
        report.info.push(
            "the data directory is encrypted and no master key was given: segment files were checked by their hashes, events (Merkle roots, merged segments) were not recomputed".into(),
        );
    }
    Ok(report)
}

/// Reads segments for the verifier through the store's own code.
struct StoreSegments {
    data_dir: PathBuf,
    crypt: Option<Arc<Crypt>>,
    readable: bool,
    /// The partition read last (one at a time, to bound memory).
    open: Option<(String, Partition)>,
}

impl StoreSegments {
    fn view(&mut self, p: &str) -> Result<PartView, String> {
        if self.open.as_ref().is_none_or(|(q, _)| q != p) {
            self.open = None;
            let key =
                part_key(p).ok_or_else(|| format!("{p} is not a partition directory name"))?;
            let part = guarded(|| {
                Partition::open(
                    key,
                    self.data_dir.join(p),
                    reader_config(),
                    false,
                    self.crypt.as_ref(),
                )
                .map_err(|e| e.to_string())
            })?;
            self.open = Some((p.to_string(), part));
        }
        self.open
            .as_ref()
            .map(|(_, part)| part.view())
            .ok_or_else(|| format!("{p}: not open"))
    }
}

fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err("reading it panicked (damaged data)".into()),
    }
}

impl SegmentSource for StoreSegments {
    fn readable(&self) -> bool {
        self.readable
    }

    fn segments(&mut self, partition: &str) -> Result<Vec<String>, String> {
        let view = self.view(partition)?;
        Ok(view
            .searcher
            .segment_readers()
            .iter()
            .map(|r| r.segment_id().uuid_string())
            .collect())
    }

    fn blocks(
        &mut self,
        partition: &str,
        segment: &str,
        sink: &mut dyn FnMut(Hash, u64),
    ) -> Result<LeafSummary, String> {
        let view = self.view(partition)?;
        let ord = view
            .searcher
            .segment_readers()
            .iter()
            .position(|r| r.segment_id().uuid_string() == segment)
            .ok_or_else(|| format!("segment {segment} is not in the partition"))?;
        guarded(|| segment_blocks(&view, ord as u32, sink).map_err(|e| e.to_string()))
    }
}
