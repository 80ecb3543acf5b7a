//! Bulk import of log files and folders into a Quarry store or server: `quarry import PATH...`.
//!
//! Every file given, or found under a folder given (walked recursively in sorted order, hidden entries
//! skipped, symlinks followed but not round a loop, a file reached twice imported once), is streamed: it is
//! read in chunks, decompressed if it is gzip (every member) or zstd (every frame), and fed to one
//! [`quarry_parse::Decoder`]. The decoder's records are cut into batches of about
//! [`ImportOptions::batch_bytes`] of raw text and sent to the [`Target`]: stored directly with
//! [`quarry_store::Store::ingest`] (then committed, so everything is searchable when the import returns),
//! or posted to a server in the [native format](quarry_transport::NATIVE_FORMAT), so the server keeps
//! exactly the records read here. Decoding and sending overlap (the sender runs on its own thread).
//!
//! Each batch's id is a 128-bit hash of the file's canonical path, the batch's index in the file, its
//! source and its records, so importing the same file again stores nothing new (the batches are reported
//! as duplicates) while changed content at the same path is imported. Records without their own time get
//! the file's modification time, so a second import reads the same records.
//!
//! The source of a file comes from its path ([`source_for_path`]):
//! - `.../pods/<namespace>_<pod>_<uid>/<container>/<N>.log[.<rotation>]`: kubelet's pod log folders;
//!   a container log with its namespace, pod and container.
//! - `<pod>_<namespace>_<container>-<64 hex id>.log`: kubelet's `/var/log/containers` links; a container
//!   log.
//! - `<namespace>_<pod>_<container>.log` (no id; Fluent Bit's Kubernetes test data): the coordinates of a
//!   file whose records turn out to be container lines.
//! - `.../nodes/<node>/...` (the layout of the demo tree and of logs gathered per node): the node.
//! - `AWSLogs/<account>/vpcflowlogs/...` and `AWSLogs/[<org id>/]<account>/CloudTrail/...`: VPC flow logs and
//!   CloudTrail records (S3 object layouts).
//! - `kube-apiserver-audit*.log`: Kubernetes audit events.
//!
//! The kind is [`ImportOptions::kind`] if given, else the path's, else that of the detected format.
//! With [`Format::Auto`], a kind that has one format (container, audit, vpcflow, cloudtrail, text) picks
//! that parser; syslog and json kinds cover several formats and are still detected.
//! Compressed files are recognised by the `.gz` / `.zst` extension or by their magic bytes.
//!
//! Dependencies and why they are here:
//! - `quarry-model`, `quarry-parse`, `quarry-store`, `quarry-transport`: the event, the decoders, the
//!   embedded store and the server client this crate connects.
//! - `flate2`: gzip decompression (`MultiGzDecoder` reads concatenated members, as logrotate and S3
//!   writers produce them).
//! - `zstd`: streaming zstd decompression.
//! - `xxhash-rust` (xxh3): a fast 128-bit hash for batch ids; it runs over every byte imported.
//! - `walkdir`: recursive, sorted folder walks that follow symlinks and detect loops.
//! - `thiserror`: the error type; `tracing`: logs of skipped files.

mod input;
mod paths;

use quarry_model::{Event, Kind, Source};
use quarry_parse::{Decoder, DecoderOptions, Format, Multiline, MultilineMode};
use quarry_store::wal::BatchKey;
use quarry_store::{Store, StoreError};
use quarry_transport::{Client, ClientError, IngestParams, NATIVE_FORMAT};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, UNIX_EPOCH};
use xxhash_rust::xxh3::Xxh3;

/// Default raw bytes per batch: 4 MiB.
pub const DEFAULT_BATCH_BYTES: usize = 4 << 20;

/// The smallest record cap for CloudTrail files: an S3 object is one JSON document holding all its records.
pub const CLOUDTRAIL_MAX_RECORD_BYTES: usize = 64 << 20;

/// Bytes read from a file at a time.
const READ_CHUNK: usize = 1 << 20;

/// Least time between two progress reports.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Batches decoded ahead of the one being sent.
const QUEUE: usize = 2;

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Parser to use; `Auto` detects it per file from the first record.
    pub format: Format,
    /// Store every file as this kind instead of the kind its path or format implies.
    pub kind: Option<Kind>,
    /// Cluster name of every source.
    pub cluster: Option<String>,
    /// Raw bytes per batch (about; batches are cut between records). Default 4 MiB.
    pub batch_bytes: usize,
    /// Join stack traces of container messages and text lines.
    pub multiline: Option<MultilineMode>,
    /// Cap on one record; longer ones are cut and flagged. Default 1 MiB (at least
    /// [`CLOUDTRAIL_MAX_RECORD_BYTES`] for CloudTrail files).
    pub max_record_bytes: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: Format::Auto,
            kind: None,
            cluster: None,
            batch_bytes: DEFAULT_BATCH_BYTES,
            multiline: None,
            max_record_bytes: quarry_parse::DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// Where imported events go.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// Straight into an open store.
    Store(&'a Store),
    /// To a running server.
    Server(&'a Client),
}

/// How far an import has come.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Files finished (imported or skipped).
    pub files_done: usize,
    /// Files to import.
    pub files_total: usize,
    /// Bytes of the files read so far, as on disk (compressed if they are).
    pub bytes_read: u64,
    /// Size on disk of all files.
    pub bytes_total: u64,
    /// Events stored so far.
    pub events: u64,
    /// The file being read.
    pub current: Option<PathBuf>,
}

/// Counts of one kind of source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCount {
    /// Files.
    pub files: usize,
    /// Events stored.
    pub events: u64,
    /// Raw bytes read (uncompressed).
    pub bytes: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportSummary {
    /// Files imported.
    pub files: usize,
    /// Events stored (not counting those of duplicate batches).
    pub events: u64,
    /// Raw bytes read (uncompressed).
    pub bytes: u64,
    /// Bytes read from disk.
    pub disk_bytes: u64,
    /// Events stored with a parse-error flag.
    pub parse_errors: u64,
    /// Batches already stored before (by an earlier import of the same content), not stored again.
    pub duplicate_batches: u64,
    /// Events in those duplicate batches.
    pub duplicate_events: u64,
    /// Batches sent.
    pub batches: u64,
    /// Wall time.
    pub seconds: f64,
    /// Files, events and bytes per kind of source.
    pub per_kind: BTreeMap<Kind, KindCount>,
    /// Files that could not be read (in part or at all), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files reached a second time through another path (a symlink) and imported once.
    pub aliases: usize,
    /// Records cut at the record cap.
    pub truncated: u64,
}

/// Import failures; files that cannot be read inside a folder are not failures but
/// [`ImportSummary::skipped`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A path given does not exist.
    #[error("{}: no such file or directory", .0.display())]
    NotFound(PathBuf),
    /// A path given cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The server did not take a batch.
    #[error("batch {batch} of {} was not accepted: {source}", path.display())]
    Server {
        /// File of the batch.
        path: PathBuf,
        /// Index of the batch in the file.
        batch: u64,
        /// The server's answer.
        source: ClientError,
    },
    /// The store did not take a batch.
    #[error("storing batch {batch} of {} failed: {source}", path.display())]
    Store {
        /// File of the batch.
        path: PathBuf,
        /// Index of the batch in the file.
        batch: u64,
        /// Cause.
        source: StoreError,
    },
    /// The final commit failed.
    #[error("committing the imported events failed: {0}")]
    Commit(StoreError),
}

/// The source descriptor of the file at `path`, given the kind its records were detected as.
pub fn source_for_path(path: &Path, detected: Kind, opts: &ImportOptions) -> Source {
    let facts = paths::path_facts(path);
    let kind = opts.kind.or(facts.kind).unwrap_or(detected);
    let mut source = Source {
        kind,
        cluster: opts.cluster.clone(),
        node: facts.node,
        ..Source::default()
    };
    if let Some(p) = facts.pod {
        if p.certain || kind == Kind::Container {
            source.namespace = Some(p.namespace);
            source.pod = Some(p.pod);
            source.container = Some(p.container);
        }
    }
    source
}

/// The parser for a file: the one asked for, else the one format of the kind forced or implied by the path.
fn decoder_format(path: &Path, opts: &ImportOptions) -> Format {
    if opts.format != Format::Auto {
        return opts.format;
    }
    match opts.kind.or(paths::path_facts(path).kind) {
        Some(
            k @ (Kind::Container | Kind::Audit | Kind::VpcFlow | Kind::CloudTrail | Kind::Text),
        ) => Format::for_kind(k),
        _ => Format::Auto,
    }
}

/// Imports files and folders into `target`; `progress` is called at most about ten times a second and once
/// at the end.
pub fn import_paths(
    paths: &[PathBuf],
    opts: &ImportOptions,
    target: Target<'_>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let listing = paths::list(paths)?;
    for (p, why) in &listing.skipped {
        tracing::warn!(path = %p.display(), reason = %why, "skipping");
    }
    let mut run = Run {
        opts,
        summary: ImportSummary {
            skipped: listing.skipped,
            aliases: listing.aliases,
            ..ImportSummary::default()
        },
        progress: Progress {
            files_total: listing.files.len(),
            bytes_total: listing.files.iter().map(|f| f.size).sum(),
            ..Progress::default()
        },
        done_disk: 0,
        last_report: None,
        callback: progress,
        failure: None,
    };

    std::thread::scope(|scope| {
        let (batch_tx, batch_rx) = mpsc::sync_channel::<Batch>(QUEUE);
        let (done_tx, done_rx) = mpsc::channel::<Result<Sent, ImportError>>();
        scope.spawn(move || sender(target, batch_rx, done_tx));
        let mut link = Link {
            tx: Some(batch_tx),
            rx: done_rx,
        };
        for file in &listing.files {
            if run.failure.is_some() {
                break;
            }
            run.import_file(file, &mut link);
            run.progress.files_done += 1;
            run.report(0);
        }
        link.tx = None;
        while let Ok(r) = link.rx.recv() {
            run.account(r);
        }
    });

    if let Some(e) = run.failure.take() {
        return Err(e);
    }
    if let Target::Store(store) = target {
        store.commit().map_err(ImportError::Commit)?;
    }
    run.progress.current = None;
    (run.callback)(&run.progress);
    let mut summary = run.summary;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// A batch on its way to the target.
struct Batch {
    path: PathBuf,
    index: u64,
    key: BatchKey,
    source: Source,
    events: Vec<Event>,
}

/// What the target made of a batch.
struct Sent {
    kind: Kind,
    events: u64,
    parse_errors: u64,
    duplicate: bool,
    duplicate_events: u64,
}

impl Sent {
    /// What the store or server answered for a batch of `n` events.
    fn new(kind: Kind, n: u64, events: u64, parse_errors: u64, duplicate: bool) -> Sent {
        Sent {
            kind,
            events,
            parse_errors,
            duplicate,
            duplicate_events: if duplicate { n } else { 0 },
        }
    }
}

/// The decoding side's ends of the channels to the sender thread.
struct Link {
    tx: Option<mpsc::SyncSender<Batch>>,
    rx: mpsc::Receiver<Result<Sent, ImportError>>,
}

/// Sends batches to the target until the channel closes or the target fails.
fn sender(
    target: Target<'_>,
    rx: mpsc::Receiver<Batch>,
    done: mpsc::Sender<Result<Sent, ImportError>>,
) {
    let mut body = Vec::new();
    for b in rx {
        let n = b.events.len() as u64;
        let kind = b.source.kind;
        let r = match target {
            Target::Store(store) => store
                .ingest(b.key, &b.source, b.events)
                .map(|r| Sent::new(kind, n, r.events, r.parse_errors, r.duplicate))
                .map_err(|source| ImportError::Store {
                    path: b.path,
                    batch: b.index,
                    source,
                }),
            Target::Server(client) => {
                let mut params = IngestParams::for_source(&b.source);
                params.format = Some(NATIVE_FORMAT.to_string());
                params.batch_id = b.key.batch_id;
                body.clear();
                quarry_transport::encode_native(&b.events, &mut body);
                client
                    .ingest(&params, &body)
                    .map(|r| Sent::new(kind, n, r.events, r.parse_errors, r.duplicate))
                    .map_err(|source| ImportError::Server {
                        path: b.path,
                        batch: b.index,
                        source,
                    })
            }
        };
        let failed = r.is_err();
        if done.send(r).is_err() || failed {
            return;
        }
    }
}

/// The state of one import.
struct Run<'o, 'c> {
    opts: &'o ImportOptions,
    summary: ImportSummary,
    progress: Progress,
    /// Disk bytes of the files finished.
    done_disk: u64,
    last_report: Option<Instant>,
    callback: &'c mut dyn FnMut(&Progress),
    failure: Option<ImportError>,
}

/// The batching state of the file being read.
struct FileState {
    path: PathBuf,
    canonical: PathBuf,
    source: Option<Source>,
    pending: Vec<Event>,
    scanned: usize,
    pending_bytes: usize,
    next_batch: u64,
}

impl Run<'_, '_> {
    fn account(&mut self, r: Result<Sent, ImportError>) {
        match r {
            Ok(s) => {
                let s_ = &mut self.summary;
                s_.batches += 1;
                s_.events += s.events;
                s_.parse_errors += s.parse_errors;
                s_.duplicate_batches += s.duplicate as u64;
                s_.duplicate_events += s.duplicate_events;
                s_.per_kind.entry(s.kind).or_default().events += s.events;
                self.progress.events += s.events;
            }
            Err(e) => {
                if self.failure.is_none() {
                    self.failure = Some(e);
                }
            }
        }
    }

    /// Takes in what the sender has finished, without waiting.
    fn drain(&mut self, link: &Link) {
        while let Ok(r) = link.rx.try_recv() {
            self.account(r);
        }
    }

    fn report(&mut self, current_disk: u64) {
        self.progress.bytes_read = self.done_disk + current_disk;
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY)
        {
            return;
        }
        self.last_report = Some(now);
        (self.callback)(&self.progress);
    }

    fn skip(&mut self, path: &Path, reason: String) {
        tracing::warn!(path = %path.display(), %reason, "skipping");
        self.summary.skipped.push((path.to_path_buf(), reason));
    }

    fn import_file(&mut self, file: &paths::FileEntry, link: &mut Link) {
        let path = &file.path;
        self.progress.current = Some(path.clone());
        let mut input = match input::open(path) {
            Ok(i) => i,
            Err(e) => {
                self.skip(path, e.to_string());
                self.done_disk += file.size;
                return;
            }
        };
        let fallback = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or_else(quarry_model::time::now_nanos);
        let format = decoder_format(path, self.opts);
        let mut max_record_bytes = self.opts.max_record_bytes.max(1);
        if format == Format::CloudTrail {
            max_record_bytes = max_record_bytes.max(CLOUDTRAIL_MAX_RECORD_BYTES);
        }
        let mut decoder = Decoder::with_options(
            format,
            DecoderOptions {
                max_record_bytes,
                vpc_format: None,
                multiline: self.opts.multiline.clone().map(Multiline::new),
            },
        );
        let mut st = FileState {
            path: path.clone(),
            canonical: std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()),
            source: None,
            pending: Vec::new(),
            scanned: 0,
            pending_bytes: 0,
            next_batch: 0,
        };
        tracing::debug!(path = %path.display(), compression = ?input.compression, "importing");
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match input.reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let at = decoder.stats().bytes;
                    self.skip(
                        path,
                        format!(
                            "read error after {at} bytes ({} on disk): {e}; the records before it were imported",
                            input.disk_read.get()
                        ),
                    );
                    break;
                }
            };
            decoder.feed(&buf[..n], fallback, &mut st.pending);
            if !self.cut(&mut st, &decoder, link, false) {
                break;
            }
            self.drain(link);
            self.report(input.disk_read.get());
        }
        decoder.finish(fallback, &mut st.pending);
        self.cut(&mut st, &decoder, link, true);
        self.drain(link);

        let stats = decoder.stats();
        let source = st
            .source
            .unwrap_or_else(|| source_for_path(path, decoder.format().kind(), self.opts));
        let disk = input.disk_read.get();
        self.done_disk += disk;
        let s = &mut self.summary;
        s.files += 1;
        s.bytes += stats.bytes;
        s.disk_bytes += disk;
        s.truncated += stats.truncated;
        let k = s.per_kind.entry(source.kind).or_default();
        k.files += 1;
        k.bytes += stats.bytes;
    }

    /// Sends the pending events in batches of about `batch_bytes` (all of them when `last`); false when the
    /// target has failed.
    fn cut(&mut self, st: &mut FileState, decoder: &Decoder, link: &mut Link, last: bool) -> bool {
        let limit = self.opts.batch_bytes.max(1);
        let mut i = st.scanned;
        while i < st.pending.len() {
            st.pending_bytes += st.pending[i].raw.len() + 1;
            i += 1;
            if st.pending_bytes >= limit {
                let rest = st.pending.split_off(i);
                let events = std::mem::replace(&mut st.pending, rest);
                st.pending_bytes = 0;
                i = 0;
                if !self.send(st, decoder, events, link) {
                    return false;
                }
            }
        }
        st.scanned = i;
        if last && !st.pending.is_empty() {
            let events = std::mem::take(&mut st.pending);
            st.scanned = 0;
            st.pending_bytes = 0;
            return self.send(st, decoder, events, link);
        }
        true
    }

    fn send(
        &mut self,
        st: &mut FileState,
        decoder: &Decoder,
        events: Vec<Event>,
        link: &mut Link,
    ) -> bool {
        let opts = self.opts;
        let source = st
            .source
            .get_or_insert_with(|| source_for_path(&st.path, decoder.format().kind(), opts))
            .clone();
        let index = st.next_batch;
        st.next_batch += 1;
        let key = BatchKey {
            batch_id: Some(batch_id(&st.canonical, index, &source, &events)),
            source_id: None,
            seq: None,
        };
        let batch = Batch {
            path: st.path.clone(),
            index,
            key,
            source,
            events,
        };
        let sent = link.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if !sent {
            // the sender stopped: it failed, and its error is waiting
            link.tx = None;
            while let Ok(r) = link.rx.recv() {
                self.account(r);
            }
            if self.failure.is_none() {
                self.failure = Some(ImportError::Io {
                    path: st.path.clone(),
                    source: std::io::Error::other("the batch sender stopped"),
                });
            }
        }
        sent
    }
}

/// The id of a batch: hex of xxh3-128 over the file's canonical path, the batch's index, its source and
/// its records.
fn batch_id(canonical: &Path, index: u64, source: &Source, events: &[Event]) -> String {
    fn field(h: &mut Xxh3, bytes: &[u8]) {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    let mut h = Xxh3::new();
    field(&mut h, b"quarry-import/1");
    field(&mut h, canonical.as_os_str().as_encoded_bytes());
    h.update(&index.to_le_bytes());
    field(&mut h, source.kind.as_str().as_bytes());
    for (k, v) in source.coordinates() {
        field(&mut h, k.as_bytes());
        field(&mut h, v.as_bytes());
    }
    h.update(&(events.len() as u64).to_le_bytes());
    for ev in events {
        field(&mut h, ev.raw.as_bytes());
        field(&mut h, ev.format.as_bytes());
        field(&mut h, ev.hint.as_deref().unwrap_or("").as_bytes());
    }
    format!("{:032x}", h.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(raw: &str) -> Event {
        Event::text(0, raw)
    }

    #[test]
    fn batch_ids_depend_on_path_index_source_and_content() {
        let src = Source::of_kind(Kind::Text);
        let p = Path::new("/data/a.log");
        let a = batch_id(p, 0, &src, &[ev("x"), ev("y")]);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, batch_id(p, 0, &src, &[ev("x"), ev("y")]));
        assert_ne!(a, batch_id(p, 1, &src, &[ev("x"), ev("y")]));
        assert_ne!(
            a,
            batch_id(Path::new("/data/b.log"), 0, &src, &[ev("x"), ev("y")])
        );
        assert_ne!(a, batch_id(p, 0, &src, &[ev("xy")]));
        assert_ne!(a, batch_id(p, 0, &src, &[ev("x"), ev("y"), ev("")]));
        let other = Source {
            cluster: Some("c".into()),
            ..src.clone()
        };
        assert_ne!(a, batch_id(p, 0, &other, &[ev("x"), ev("y")]));
    }

    #[test]
    fn sources_from_paths() {
        let opts = ImportOptions {
            cluster: Some("prod".into()),
            ..ImportOptions::default()
        };
        let s = source_for_path(
            Path::new("nodes/n1/var/log/pods/shop_web-1_uid/nginx/0.log"),
            Kind::Text,
            &opts,
        );
        assert_eq!(
            s,
            Source {
                kind: Kind::Container,
                cluster: Some("prod".into()),
                node: Some("n1".into()),
                namespace: Some("shop".into()),
                pod: Some("web-1".into()),
                container: Some("nginx".into()),
                ..Source::default()
            }
        );
        // id-less names only when the records are container lines
        let p = Path::new("log/core/core_base_fluent-bit.log");
        assert_eq!(
            source_for_path(p, Kind::Container, &opts).pod.as_deref(),
            Some("base")
        );
        assert_eq!(source_for_path(p, Kind::Json, &opts).pod, None);
        // a forced kind wins over the path's
        let forced = ImportOptions {
            kind: Some(Kind::Json),
            ..ImportOptions::default()
        };
        let s = source_for_path(
            Path::new("/var/log/pods/shop_web-1_uid/nginx/0.log"),
            Kind::Container,
            &forced,
        );
        assert_eq!((s.kind, s.pod.as_deref()), (Kind::Json, Some("web-1")));
        assert_eq!(
            source_for_path(Path::new("x.log"), Kind::Syslog, &opts).kind,
            Kind::Syslog
        );
    }

    #[test]
    fn parser_choice() {
        let auto = ImportOptions::default();
        let f = |p: &str, o: &ImportOptions| decoder_format(Path::new(p), o);
        assert_eq!(f("pods/a_b_c/d/0.log", &auto), Format::Container);
        assert_eq!(
            f("AWSLogs/1/CloudTrail/r/x.json.gz", &auto),
            Format::CloudTrail
        );
        assert_eq!(f("messages", &auto), Format::Auto);
        let syslog = ImportOptions {
            kind: Some(Kind::Syslog),
            ..ImportOptions::default()
        };
        assert_eq!(f("messages", &syslog), Format::Auto);
        let audit = ImportOptions {
            kind: Some(Kind::Audit),
            ..ImportOptions::default()
        };
        assert_eq!(f("pods/a_b_c/d/0.log", &audit), Format::Audit);
        let klog = ImportOptions {
            format: Format::Klog,
            ..ImportOptions::default()
        };
        assert_eq!(f("pods/a_b_c/d/0.log", &klog), Format::Klog);
    }
}
