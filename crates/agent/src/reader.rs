//! The reader thread: finds files, follows them through rotation, reads and decodes them, redacts, and
//! seals batches into the disk queue. It stops reading (never drops) while the queue is full.

use crate::checkpoint::{FileState, Registry};
use crate::config::AgentConfig;
use crate::discover::{self, Found, Owner};
use crate::enrich::Enricher;
use crate::journald::Follower;
use crate::metrics::{AgentMetrics, Loss};
use crate::queue::RecordMeta;
use crate::ship::SharedQueue;
use crate::tail::{self, Fingerprint, Growth, Handle, Tailer, CHUNK};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use notify::{EventKind, RecursiveMode, Watcher};
use quarry_model::Event;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often files without recent activity are looked at: inotify says when a file grows, so with it this
/// is only a safety net.
const COLD_POLL: Duration = Duration::from_millis(250);
const COLD_POLL_INOTIFY: Duration = Duration::from_secs(1);
/// How often batch ages and quiet streams are looked at.
const HOUSEKEEPING: Duration = Duration::from_millis(50);
/// Least time between two scans that inotify asked for (a new file is still found well within 1 s).
const SCAN_GAP: Duration = Duration::from_millis(200);
/// Directory scan interval without inotify.
const POLL_SCAN: Duration = Duration::from_millis(500);
/// A file that is gone and read to its end is closed after being quiet this long.
const CLOSE_QUIET: Duration = Duration::from_secs(5);
/// journald entries taken per pass of the reading loop.
const JOURNAL_POLL_MAX: usize = 2048;
/// Raw bytes held in unsealed batches across all files: past it, the batch just read is sealed early,
/// so memory stays flat however many files are busy at once.
const HELD_MAX: usize = 2 << 20;

type Ident = (u64, u64);

/// Where each stream stood when the agent started: from the checkpoint and the queued batches.
#[derive(Debug, Default)]
pub struct Restart {
    /// When the last checkpoint was written (`None` on a first start).
    pub checkpoint_ns: Option<i64>,
    /// The newest queued batch per source: `(seq, resume)`.
    pub queued: HashMap<String, (u64, u64)>,
    /// The journald stream, when units are configured.
    pub journal: Option<Follower>,
}

/// The reader's state.
pub struct Reader {
    cfg: Arc<AgentConfig>,
    registry: Arc<Registry>,
    queue: Arc<SharedQueue>,
    metrics: Arc<AgentMetrics>,
    enricher: Enricher,
    restart: Restart,
    tailers: Vec<Tailer>,
    /// Files finished or deliberately not read, with their fingerprint (inode reuse makes them new).
    settled: HashMap<Ident, Fingerprint>,
    events: Receiver<notify::Result<notify::Event>>,
    _watcher: Option<notify::RecommendedWatcher>,
    compressor: zstd::bulk::Compressor<'static>,
    buf: Vec<u8>,
    scratch: Vec<Event>,
    section: Vec<u8>,
    seen_stats: HashMap<String, quarry_parse::DecodeStats>,
    /// Generation of the metadata cache the tailers' descriptors were made from.
    meta_generation: u64,
    /// When this run started.
    started_ns: i64,
    /// Whether the first scan of this run is done (files found by it were there before the agent).
    scanned: bool,
    /// Streams whose file was found truncated, handled between reading passes.
    truncations: Vec<String>,
    /// A scan is due (a truncated file is to be opened as a new stream).
    rescan: bool,
    /// Bytes in all unsealed batches of files.
    held: usize,
}

impl Reader {
    /// A reader; `restart` says where streams stood.
    pub fn new(
        cfg: Arc<AgentConfig>,
        registry: Arc<Registry>,
        queue: Arc<SharedQueue>,
        metrics: Arc<AgentMetrics>,
        enricher: Enricher,
        restart: Restart,
    ) -> std::io::Result<Reader> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let watcher = watch(&cfg, tx);
        Ok(Reader {
            cfg,
            registry,
            queue,
            metrics,
            enricher,
            restart,
            tailers: Vec::new(),
            settled: HashMap::new(),
            events: rx,
            _watcher: watcher,
            compressor: zstd::bulk::Compressor::new(1)?,
            buf: Vec::with_capacity(CHUNK),
            scratch: Vec::new(),
            section: Vec::new(),
            seen_stats: HashMap::new(),
            meta_generation: 0,
            started_ns: quarry_model::time::now_nanos(),
            scanned: false,
            truncations: Vec::new(),
            rescan: false,
            held: 0,
        })
    }

    /// Runs until `stop` is set; batches in progress are sealed on the way out.
    pub fn run(&mut self, stop: &AtomicBool) {
        let scan_every = if self._watcher.is_some() {
            Duration::from_millis(self.cfg.scan_interval_ms.max(100))
        } else {
            POLL_SCAN
        };
        let cold_poll = if self._watcher.is_some() {
            COLD_POLL_INOTIFY
        } else {
            COLD_POLL
        };
        let mut last_scan: Option<Instant> = None;
        let mut last_cold = Instant::now();
        let mut last_report = Instant::now();
        let mut last_housekeeping = Instant::now();
        let pods_root = self.cfg.pods_root.clone();
        let mut noticed = Noticed {
            full: true,
            ..Noticed::default()
        };
        while !stop.load(Ordering::Relaxed) {
            while let Ok(ev) = self.events.try_recv() {
                noticed.note(ev, &pods_root);
            }
            let since_scan = last_scan.map_or(Duration::MAX, |t| t.elapsed());
            // a whole scan at most every SCAN_GAP; between them, only the pods where files came or went
            if (noticed.full && since_scan >= SCAN_GAP) || since_scan >= scan_every {
                self.scan();
                last_scan = Some(Instant::now());
                noticed.full = false;
                noticed.pods.clear();
            } else if !noticed.pods.is_empty() {
                let pods = std::mem::take(&mut noticed.pods);
                self.scan_pods(&pods);
            }
            let backlog = self.queue.backlog();
            let full = backlog >= self.cfg.queue_max_bytes;
            self.metrics.queue_bytes.store(backlog, Ordering::Relaxed);
            if self
                .metrics
                .backpressure
                .swap(full as u64, Ordering::Relaxed)
                != full as u64
            {
                if full {
                    tracing::warn!(
                        backlog,
                        "disk queue full: reading paused until the server catches up"
                    );
                } else {
                    tracing::info!("disk queue drained below its limit: reading again");
                }
            }
            let cold = last_cold.elapsed() >= cold_poll;
            if cold {
                last_cold = Instant::now();
            }
            if !noticed.hot.is_empty() {
                // one lookup per file that grew, not one per file open
                let by_path: HashMap<&Path, usize> = self
                    .tailers
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.handle.path.as_path(), i))
                    .collect();
                let grown: Vec<usize> = noticed
                    .hot
                    .iter()
                    .filter_map(|p| by_path.get(p.as_path()).copied())
                    .collect();
                for i in grown {
                    self.tailers[i].hot = true;
                }
                noticed.hot.clear();
            }
            let mut progressed = false;
            if !full {
                progressed |= self.poll_journal();
                for i in 0..self.tailers.len() {
                    let t = &self.tailers[i];
                    if t.hot || cold {
                        progressed |= self.read_one(i);
                    }
                }
            }
            self.handle_truncations();
            if self.rescan {
                self.rescan = false;
                noticed.full = true;
            }
            // batch ages are looked at every HOUSEKEEPING, not on every pass over the files
            if cold || last_housekeeping.elapsed() >= HOUSEKEEPING {
                last_housekeeping = Instant::now();
                self.housekeeping(cold);
            }
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                self.report();
            }
            if !progressed {
                match self.events.recv_timeout(COLD_POLL / 2) {
                    Ok(ev) => noticed.note(ev, &pods_root),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(COLD_POLL / 2),
                }
            }
        }
        for i in 0..self.tailers.len() {
            self.seal(i);
        }
        self.seal_journal();
        self.report();
    }

    /// Takes the journald entries that are ready; true if there were any.
    fn poll_journal(&mut self) -> bool {
        let Some(j) = self.restart.journal.as_mut() else {
            return false;
        };
        let (enricher, metrics) = (&self.enricher, &self.metrics);
        let got = j.poll(
            JOURNAL_POLL_MAX,
            &mut |e| enricher.redact(e, metrics),
            metrics,
        );
        if j.batch_bytes() >= self.cfg.batch_bytes {
            self.seal_journal();
        }
        got
    }

    /// Seals the journald batch into the queue.
    fn seal_journal(&mut self) {
        let Some(j) = self.restart.journal.as_mut() else {
            return;
        };
        let Some(b) = j.seal() else {
            return;
        };
        let source = Arc::clone(&j.source);
        let meta = RecordMeta {
            source_id: j.source_id.clone(),
            seq: b.seq,
            resume: 0,
            events: b.events as u64,
            sealed_ns: 0,
            file: None,
            cursor: Some(b.cursor),
        };
        self.enqueue(&source, meta, &b.records);
    }

    /// Reads one chunk of tailer `i`; true if bytes were read.
    fn read_one(&mut self, i: usize) -> bool {
        let now = quarry_model::time::now_nanos();
        let (enricher, metrics) = (&self.enricher, &self.metrics);
        let mut keep = |e: &mut Event| enricher.redact(e, metrics);
        let t = &mut self.tailers[i];
        let fp = t.fp;
        let before = t.batch_bytes();
        let result = t.read(&mut self.buf, &mut self.scratch, CHUNK, now, &mut keep);
        self.held += t.batch_bytes() - before;
        match result {
            Ok((Growth::Read, step)) => {
                if t.fp != fp {
                    self.registry.upsert(t.state());
                }
                self.metrics
                    .bytes_read
                    .fetch_add(step.bytes, Ordering::Relaxed);
                let full = t.batch_bytes() >= self.cfg.batch_bytes;
                if full || self.held >= HELD_MAX.max(self.cfg.batch_bytes) {
                    self.seal(i);
                }
                true
            }
            Ok((Growth::Idle, _)) => false,
            Ok((Growth::Truncated, _)) => {
                // handled after the reading pass, which must not see tailers come and go
                self.truncations.push(t.source_id.clone());
                true
            }
            Err(e) => {
                tracing::warn!(path = %t.handle.path.display(), error = %e, "read failed; will retry");
                false
            }
        }
    }

    /// Seals tailer `i`'s batch into the queue.
    fn seal(&mut self, i: usize) {
        let t = &mut self.tailers[i];
        self.held -= t.batch_bytes();
        let Some(sealed) = t.seal() else {
            return;
        };
        let source = Arc::clone(&t.spec.source);
        let file = t.state();
        let meta = RecordMeta {
            source_id: file.source_id.clone(),
            seq: sealed.seq,
            resume: sealed.resume,
            events: sealed.events as u64,
            sealed_ns: 0,
            file: Some(file),
            cursor: None,
        };
        self.enqueue(&source, meta, &sealed.records);
    }

    /// Writes a batch of native records to the disk queue as one compressed section.
    fn enqueue(&mut self, source: &quarry_model::Source, mut meta: RecordMeta, records: &[u8]) {
        self.section.clear();
        quarry_transport::encode_stream_header(
            source,
            &meta.source_id,
            meta.seq,
            meta.events as usize,
            &mut self.section,
        );
        self.section.extend_from_slice(records);
        let payload = match self.compressor.compress(&self.section) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, events = meta.events, "cannot compress a batch; its events are lost");
                self.metrics.lose(Loss::Encode, meta.events);
                return;
            }
        };
        meta.sealed_ns = quarry_model::time::now_nanos();
        loop {
            let res = self.queue.inner.lock().queue.append(&meta, &payload);
            match res {
                Ok(_) => break,
                Err(e) => {
                    // never drop: wait for the disk (full or failing) and try again
                    tracing::error!(error = %e, "cannot write the disk queue; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        self.queue.appended.notify_all();
        self.metrics.batches_queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Age-based sealing, quiet-stream flushes, closing finished files.
    fn housekeeping(&mut self, cold: bool) {
        let wait = self.cfg.batch_wait();
        let quiet = self.cfg.flush_quiet();
        let mut close = Vec::new();
        for i in 0..self.tailers.len() {
            let t = &self.tailers[i];
            if t.holds_records() && t.last_growth.elapsed() >= quiet {
                self.emit_held(i, false);
                self.seal(i);
            }
            let t = &self.tailers[i];
            if t.batch_since.is_some_and(|s| s.elapsed() >= wait) {
                self.seal(i);
            }
            let t = &self.tailers[i];
            if cold {
                if let Some(gone) = t.gone_since {
                    let drained = t.lag() == 0 && t.last_growth.elapsed() >= CLOSE_QUIET;
                    let given_up = gone.elapsed() >= self.cfg.rotated_wait() && t.lag() > 0;
                    if drained || given_up {
                        close.push((i, given_up));
                    }
                }
            }
        }
        if self
            .restart
            .journal
            .as_ref()
            .is_some_and(|j| j.due(self.cfg.batch_bytes, wait))
        {
            self.seal_journal();
        }
        for (i, given_up) in close.into_iter().rev() {
            if given_up {
                let t = &self.tailers[i];
                tracing::warn!(path = %t.handle.path.display(), unread = t.lag(), "gave up on a rotated file before its end");
                self.metrics.lose(Loss::RotatedUnreadBytes, t.lag());
            }
            self.close(i);
        }
    }

    /// Emits the records tailer `i` holds for joining (its stream went quiet) or, when `finished`, all of
    /// them including a last line without newline; redacted, and counted in `held`.
    fn emit_held(&mut self, i: usize, finished: bool) {
        let now = quarry_model::time::now_nanos();
        let (enricher, metrics) = (&self.enricher, &self.metrics);
        let mut keep = |e: &mut Event| enricher.redact(e, metrics);
        let t = &mut self.tailers[i];
        let before = t.batch_bytes();
        if finished {
            t.finish(now, &mut keep);
        } else {
            t.flush_quiet(now, &mut keep);
        }
        self.held += t.batch_bytes() - before;
    }

    /// Finishes tailer `i` (its last records are emitted and sealed) and forgets it.
    fn close(&mut self, i: usize) {
        self.emit_held(i, true);
        self.seal(i);
        let t = self.tailers.swap_remove(i);
        let mut st = t.state();
        st.final_seq = Some(t.last_seq);
        self.registry.upsert(st);
        self.settled.insert((t.handle.dev, t.handle.ino), t.fp);
        self.seen_stats.remove(&t.source_id);
        tracing::debug!(path = %t.handle.path.display(), "file finished");
    }

    /// Tailer `i`'s file was truncated in place (copytruncate): its stream continues in the copy if one
    /// is found, otherwise what was unread is lost and counted. The truncated file is a new stream.
    fn truncated(&mut self, i: usize) {
        let t = &self.tailers[i];
        let dir = t.handle.path.parent().map(PathBuf::from);
        let tracked: HashSet<Ident> = self
            .tailers
            .iter()
            .map(|t| (t.handle.dev, t.handle.ino))
            .collect();
        let copy = dir.and_then(|d| fs::read_dir(d).ok()).and_then(|rd| {
            rd.filter_map(Result::ok).find_map(|e| {
                let h = Handle::open(&e.path()).ok()?;
                let size = h.file.metadata().ok()?.len();
                let same = !tracked.contains(&(h.dev, h.ino))
                    && size >= t.offset
                    && t.fp.matches(&h.file).ok()?;
                same.then_some(h)
            })
        });
        let (dev, ino) = (t.handle.dev, t.handle.ino);
        match copy {
            Some(h) => {
                tracing::info!(from = %t.handle.path.display(), to = %h.path.display(), "file truncated; reading on in its copy");
                let t = &mut self.tailers[i];
                if let Err(e) = t.move_to(h) {
                    tracing::warn!(error = %e, "cannot read the copy");
                }
                t.gone_since = Some(Instant::now());
                self.registry.upsert(t.state());
            }
            None => {
                tracing::warn!(path = %t.handle.path.display(), "file truncated and no copy found: its unread end is lost");
                self.metrics.lose(Loss::TruncatedUnread, 1);
                self.close(i);
                // the same inode is a new stream from now on
                self.settled.remove(&(dev, ino));
            }
        }
        // the truncated file is a new stream: the next scan opens it
        self.rescan = true;
    }

    /// Handles the truncations noticed while reading or scanning.
    fn handle_truncations(&mut self) {
        for id in std::mem::take(&mut self.truncations) {
            // noticed twice, or already followed into its copy
            let i = self
                .tailers
                .iter()
                .position(|t| t.source_id == id && t.truncated().unwrap_or(false));
            if let Some(i) = i {
                self.truncated(i);
            }
        }
    }

    /// Finds new, renamed and vanished files.
    fn scan(&mut self) {
        let mut found = Vec::new();
        discover::scan_pods(&self.cfg.pods_root, &mut found);
        if let Some(root) = &self.cfg.containers_root {
            discover::scan_container_links(root, &self.cfg.pods_root, &mut found);
        }
        for (i, f) in self.cfg.files.iter().enumerate() {
            discover::scan_node_file(i, &f.path, &mut found);
        }
        self.take_found(found, None);
    }

    /// Looks again at the pod directories where inotify saw files come, go or be renamed (a whole scan
    /// for every rotation would cost more than the reading on a node with many pods).
    fn scan_pods(&mut self, pod_dirs: &HashSet<PathBuf>) {
        let mut found = Vec::new();
        for d in pod_dirs {
            discover::scan_pod_dir(d, &mut found);
        }
        self.take_found(found, Some(pod_dirs));
    }

    /// Opens new files among `found` and notes where known ones are; files of `scope` (every file when
    /// `None`) not found are gone.
    fn take_found(&mut self, found: Vec<Found>, scope: Option<&HashSet<PathBuf>>) {
        // tailers of the scope only: a scan of one pod must not cost as much as a scan of all
        let in_scope =
            |t: &Tailer| scope.is_none_or(|dirs| dirs.iter().any(|d| t.handle.path.starts_with(d)));
        let index: HashMap<Ident, usize> = self
            .tailers
            .iter()
            .enumerate()
            .filter(|(_, t)| in_scope(t))
            .map(|(i, t)| ((t.handle.dev, t.handle.ino), i))
            .collect();
        let mut seen: HashSet<Ident> = HashSet::new();
        for f in found {
            let Ok(md) = fs::metadata(&f.path) else {
                continue;
            };
            if !md.is_file() {
                continue;
            }
            let id = (md.dev(), md.ino());
            if !seen.insert(id) {
                continue;
            }
            if let Some(&i) = index.get(&id) {
                let t = &mut self.tailers[i];
                if t.handle.path != f.path {
                    t.handle.path = f.path.clone();
                    self.registry.upsert(t.state());
                }
                if f.current {
                    t.gone_since = None;
                } else {
                    t.gone_since.get_or_insert_with(Instant::now);
                }
                continue;
            }
            if let Err(e) = self.open(f, &md) {
                tracing::debug!(error = %e, "cannot open a found file");
            }
        }
        for &i in index.values() {
            let t = &mut self.tailers[i];
            if !seen.contains(&(t.handle.dev, t.handle.ino)) {
                t.gone_since.get_or_insert_with(Instant::now);
            } else if scope.is_none() && t.gone_since.is_none() && t.truncated().unwrap_or(false) {
                self.truncations.push(t.source_id.clone());
            }
        }
        if scope.is_none() {
            self.settled.retain(|id, _| seen.contains(id));
            self.scanned = true;
        }
        let generation = self.enricher.generation();
        if generation != self.meta_generation {
            // pods changed (or their metadata arrived after their files): later batches carry the news
            self.meta_generation = generation;
            for t in &mut self.tailers {
                t.spec.source = self.enricher.spec(&t.spec.owner).source;
            }
        }
        self.handle_truncations();
        self.metrics
            .files_open
            .store(self.tailers.len() as u64, Ordering::Relaxed);
    }

    /// Starts reading a file found for the first time in this run.
    fn open(&mut self, f: Found, md: &fs::Metadata) -> std::io::Result<()> {
        let id = (md.dev(), md.ino());
        let handle = Handle::open(&f.path)?;
        if let Some(fp) = self.settled.get(&id) {
            if fp.matches(&handle.file)? {
                return Ok(());
            }
            self.settled.remove(&id);
        }
        let spec = self.enricher.spec(&f.owner);
        // a stream the agent followed before: the same inode with the same head
        let known = self.registry.find(|s| {
            (s.dev, s.ino) == id && {
                let fp = Fingerprint {
                    len: s.fp_len,
                    hash: s.fp_hash,
                };
                fp.matches(&handle.file).unwrap_or(false)
            }
        });
        // or the copy of a stream whose file was truncated while the agent was down
        let known = known.or_else(|| {
            (!f.current)
                .then(|| {
                    // cheapest test first: this runs over every known stream
                    self.registry.find(|s| {
                        s.path.parent() == f.path.parent()
                            && s.fp_len > 0
                            && !self.tailers.iter().any(|t| t.source_id == s.source_id)
                            && Fingerprint {
                                len: s.fp_len,
                                hash: s.fp_hash,
                            }
                            .matches(&handle.file)
                            .unwrap_or(false)
                    })
                })
                .flatten()
        });
        if known.is_none() && !f.current && self.copy_of_live(&f, &handle) {
            // a copytruncate copy of a file being read: its stream moves there once the truncation shows
            return Ok(());
        }
        let tailer = match known {
            Some(s) if s.final_seq.is_some() => {
                // a stream read to its end before a restart
                let fp = Fingerprint::of(&handle.file, md.len())?;
                self.settled.insert(id, fp);
                return Ok(());
            }
            Some(s) => {
                let (seq, resume) = self.resume_point(&s);
                if seq / 4 > md.len() {
                    // shorter than what was read: truncated while the agent was down
                    self.metrics.lose(Loss::TruncatedUnread, 1);
                    self.registry.remove(&s.source_id);
                    self.new_tailer(handle, spec, 0, md)?
                } else {
                    let fp = Fingerprint {
                        len: s.fp_len,
                        hash: s.fp_hash,
                    };
                    let mut t = Tailer::resumed(s.source_id, handle, spec, resume, seq, fp)?;
                    t.last_seq = seq;
                    t
                }
            }
            None => {
                let start = self.start_offset(&f, md);
                match start {
                    Some(offset) => self.new_tailer(handle, spec, offset, md)?,
                    None => {
                        let fp = Fingerprint::of(&handle.file, md.len())?;
                        self.settled.insert(id, fp);
                        return Ok(());
                    }
                }
            }
        };
        let mut tailer = tailer;
        if !f.current {
            tailer.gone_since = Some(Instant::now());
        }
        self.registry.upsert(tailer.state());
        tracing::debug!(path = %f.path.display(), offset = tailer.offset, "reading file");
        self.tailers.push(tailer);
        Ok(())
    }

    /// True if `handle` starts like a file of the same directory that is being read: a copytruncate copy,
    /// complete or still being written.
    fn copy_of_live(&self, f: &Found, handle: &Handle) -> bool {
        let Ok(size) = handle.file.metadata().map(|m| m.len()) else {
            return false;
        };
        self.tailers.iter().any(|t| {
            let same_head = if size >= t.fp.len as u64 {
                t.fp.matches(&handle.file).unwrap_or(false)
            } else {
                // still being copied: what is there so far is the start of the live file
                let n = size as u32;
                Fingerprint::prefix(&handle.file, n).ok()
                    == Fingerprint::prefix(&t.handle.file, n).ok()
            };
            t.gone_since.is_none()
                && t.fp.len > 0
                && t.handle.path.parent() == f.path.parent()
                && same_head
        })
    }

    fn new_tailer(
        &self,
        handle: Handle,
        spec: crate::tail::FileSpec,
        offset: u64,
        md: &fs::Metadata,
    ) -> std::io::Result<Tailer> {
        let id = tail::source_id(
            &self.cfg.node_name,
            md.dev(),
            md.ino(),
            quarry_model::time::now_nanos(),
        );
        Tailer::new(id, handle, spec, offset)
    }

    /// Where a file without a stream starts: `None` to leave it alone.
    fn start_offset(&self, f: &Found, md: &fs::Metadata) -> Option<u64> {
        let first_look = self.restart.checkpoint_ns.is_none() && !self.scanned;
        if f.current {
            if !first_look {
                // new, or appeared while the agent was down: all of it
                return Some(0);
            }
            let from_head = match &f.owner {
                Owner::Container { .. } => self.cfg.read_from_head,
                Owner::NodeFile(i) => self.cfg.files[*i].from_head,
            };
            return Some(if from_head { 0 } else { md.len() });
        }
        // a rotated file nobody read: it predates the agent's first start, or it was rotated away since
        // the last checkpoint (or since this first start) and is read
        let mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
        let since = self.restart.checkpoint_ns.unwrap_or(self.started_ns);
        (!first_look && mtime_ns >= since).then_some(0)
    }

    /// The newest of a stream's acknowledged and queued positions: `(seq, resume)`.
    fn resume_point(&self, s: &FileState) -> (u64, u64) {
        let acked = (s.acked_seq, s.acked_resume);
        match self.restart.queued.get(&s.source_id) {
            Some(&q) if q.0 > acked.0 => q,
            _ => acked,
        }
    }

    /// Publishes per-file lag and decoder counters.
    fn report(&mut self) {
        let mut lag_total = 0;
        let mut files = Vec::with_capacity(self.tailers.len());
        for t in &self.tailers {
            lag_total += t.lag();
            files.push((t.handle.path.display().to_string(), t.lag()));
            let st = t.decode_stats().clone();
            let prev = self
                .seen_stats
                .insert(t.source_id.clone(), st.clone())
                .unwrap_or_default();
            let m = &self.metrics;
            m.lines_read
                .fetch_add(st.lines - prev.lines, Ordering::Relaxed);
            m.records
                .fetch_add(st.records - prev.records, Ordering::Relaxed);
            m.truncated
                .fetch_add(st.truncated - prev.truncated, Ordering::Relaxed);
            m.parse_errors
                .fetch_add(st.parse_errors - prev.parse_errors, Ordering::Relaxed);
        }
        self.metrics.lag_bytes.store(lag_total, Ordering::Relaxed);
        self.metrics.set_files(files);
        self.enricher.report(&self.metrics);
    }
}

/// Folds one inotify event into "scan needed" and "these paths have data".
/// What inotify told since the reader last looked.
#[derive(Debug, Default)]
struct Noticed {
    /// A whole scan is needed (links or node files changed, or events were lost).
    full: bool,
    /// Pod directories where files came, went or were renamed.
    pods: HashSet<PathBuf>,
    /// Files with new data.
    hot: HashSet<PathBuf>,
}

impl Noticed {
    fn note(&mut self, ev: notify::Result<notify::Event>, pods_root: &Path) {
        let Ok(ev) = ev else {
            self.full = true;
            return;
        };
        match ev.kind {
            EventKind::Modify(notify::event::ModifyKind::Data(_)) => self.hot.extend(ev.paths),
            EventKind::Access(_) => {}
            _ if ev.need_rescan() || ev.paths.is_empty() => self.full = true,
            _ => {
                for p in &ev.paths {
                    match discover::pod_dir_of(pods_root, p) {
                        Some(d) => {
                            self.pods.insert(d);
                        }
                        None => self.full = true,
                    }
                }
            }
        }
    }
}

/// Watches the pods root, the links directory and the node files' directories; `None` if inotify is not
/// available (the reader then polls).
fn watch(
    cfg: &AgentConfig,
    tx: crossbeam_channel::Sender<notify::Result<notify::Event>>,
) -> Option<notify::RecommendedWatcher> {
    let mut w = match notify::recommended_watcher(move |ev| {
        let _ = tx.send(ev);
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "inotify unavailable: polling for files every 500 ms");
            return None;
        }
    };
    let mut dirs: Vec<(PathBuf, RecursiveMode)> =
        vec![(cfg.pods_root.clone(), RecursiveMode::Recursive)];
    if let Some(c) = &cfg.containers_root {
        dirs.push((c.clone(), RecursiveMode::NonRecursive));
    }
    for f in &cfg.files {
        if let Some(d) = f.path.parent() {
            dirs.push((d.to_path_buf(), RecursiveMode::NonRecursive));
        }
    }
    for (d, mode) in dirs {
        if d.exists() {
            if let Err(e) = w.watch(&d, mode) {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch; polling for files every 500 ms");
                return None;
            }
        }
    }
    Some(w)
}
