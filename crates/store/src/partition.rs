//! A partition: the tantivy index of one source kind and one UTC day, in `partitions/<kind>/<YYYY-MM-DD>`,
//! or of one Kubernetes namespace's events of a kind and day, in `partitions/<kind>/<YYYY-MM-DD>@<namespace>`.
//! A namespace gets partitions of its own when it has a retention rule of its own
//! ([`Retention::namespace_age_ns`](crate::Retention::namespace_age_ns)), so that it can be deleted sooner
//! (or later) than the rest of its kind by deleting whole partitions.
//!
//! Retention deletes whole partitions. Each commit stores the partition's [`PartMeta`] (counts, time span,
//! field catalog and the last WAL position it holds) as the tantivy commit payload, so the metadata and the
//! data it describes are always committed together; WAL replay skips what a partition already holds.
//!
//! With encryption at rest the index lives in an [`EncryptedDirectory`](crate::crypt::EncryptedDirectory)
//! over the folder instead of the plain memory-mapped one; everything else is the same.

use crate::crypt::Crypt;
use crate::schema::{self, Doc, Fields, PathInfo};
use crate::StoreError;
use parking_lot::{Mutex, RwLock};
use quarry_model::time::{civil_from_days, NANOS_PER_SEC};
use quarry_model::Kind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tantivy::directory::{Directory, MmapDirectory};
use tantivy::indexer::UserOperation;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{
    Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, TantivyError,
};

/// Nanoseconds in a day: the partition width.
pub const DAY_NS: i64 = 86_400 * NANOS_PER_SEC;

/// Identifies a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartKey {
    /// Source kind of its events.
    pub kind: Kind,
    /// UTC day number since 1970-01-01.
    pub day: i64,
    /// The namespace whose own partition this is; `None` for the partition every other source of the
    /// kind shares.
    pub namespace: Option<Arc<str>>,
}

impl PartKey {
    /// The shared partition an event of this kind and time belongs to.
    pub fn of(kind: Kind, ts: i64) -> PartKey {
        PartKey {
            kind,
            day: ts.div_euclid(DAY_NS),
            namespace: None,
        }
    }

    /// The same day and kind in `namespace`'s own partitions (`None`: the shared one).
    pub fn in_namespace(self, namespace: Option<Arc<str>>) -> PartKey {
        PartKey { namespace, ..self }
    }

    /// The key of a partition folder `name` (`<YYYY-MM-DD>` or `<YYYY-MM-DD>@<namespace>`) of `kind`.
    pub fn parse(kind: Kind, name: &str) -> Option<PartKey> {
        let (date, namespace) = match name.split_once('@') {
            Some((date, ns)) if quarry_model::is_namespace_name(ns) => (date, Some(Arc::from(ns))),
            Some(_) => return None,
            None => (name, None),
        };
        let ts = quarry_model::time::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
        Some(PartKey::of(kind, ts).in_namespace(namespace))
    }

    /// Name of the partition's folder: `<YYYY-MM-DD>` or `<YYYY-MM-DD>@<namespace>`.
    pub fn name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}@{ns}", self.date()),
            None => self.date(),
        }
    }

    /// `YYYY-MM-DD` of the day.
    pub fn date(&self) -> String {
        let (y, m, d) = civil_from_days(self.day);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Directory of the partition under the data directory.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        data_dir
            .join("partitions")
            .join(self.kind.as_str())
            .join(self.name())
    }

    /// First nanosecond of the day.
    pub fn start_ns(&self) -> i64 {
        self.day.saturating_mul(DAY_NS)
    }

    /// First nanosecond after the day.
    pub fn end_ns(&self) -> i64 {
        self.day.saturating_add(1).saturating_mul(DAY_NS)
    }
}

/// What a partition knows about itself; committed atomically with its data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartMeta {
    /// Events stored.
    pub events: u64,
    /// Blocks stored.
    pub blocks: u64,
    /// Bytes of raw text stored.
    pub raw_bytes: u64,
    /// Events flagged with a parse error.
    pub parse_errors: u64,
    /// Earliest event time (ns), or `i64::MAX` when empty.
    pub min_ts: i64,
    /// Latest event time (ns), or `i64::MIN` when empty.
    pub max_ts: i64,
    /// LSN of the last WAL record applied.
    pub lsn: Option<u64>,
    /// Every field path seen, with its value types.
    pub paths: BTreeMap<String, PathInfo>,
}

impl PartMeta {
    /// Metadata of nothing (also what a batch starts adding from).
    pub fn empty() -> Self {
        PartMeta {
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            ..PartMeta::default()
        }
    }

    /// Adds what another batch of the same partition holds (its `lsn` is not taken).
    pub fn merge(&mut self, o: &PartMeta) {
        self.events += o.events;
        self.blocks += o.blocks;
        self.raw_bytes += o.raw_bytes;
        self.parse_errors += o.parse_errors;
        self.min_ts = self.min_ts.min(o.min_ts);
        self.max_ts = self.max_ts.max(o.max_ts);
        for (p, info) in &o.paths {
            self.add_path(p, *info);
        }
    }

    /// Folds one field path's types into the catalogue.
    pub fn add_path(&mut self, path: &str, info: PathInfo) {
        match self.paths.get_mut(path) {
            Some(p) => {
                p.types |= info.types;
                p.partial |= info.partial;
            }
            None => {
                self.paths.insert(path.to_string(), info);
            }
        }
    }
}

/// Tuning of partition writers.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Indexing threads per partition writer.
    pub threads: usize,
    /// Memory budget per partition writer, bytes.
    pub memory: usize,
    /// zstd level of stored blocks.
    pub zstd_level: i32,
}

struct State {
    writer: Option<IndexWriter<Doc>>,
    meta: PartMeta,
    dirty: bool,
    last_used: Instant,
}

/// An open partition.
pub struct Partition {
    /// Its key.
    pub key: PartKey,
    /// Its directory.
    pub dir: PathBuf,
    index: Index,
    fields: Fields,
    reader: IndexReader,
    state: Mutex<State>,
    committed: RwLock<Arc<PartMeta>>,
    config: WriterConfig,
    crypt: Option<Arc<Crypt>>,
}

/// A consistent read view of a partition: a searcher and the metadata committed with it.
#[derive(Clone)]
pub struct PartView {
    /// Which partition.
    pub key: PartKey,
    /// Searcher over its committed segments.
    pub searcher: Searcher,
    /// Metadata of that commit.
    pub meta: Arc<PartMeta>,
    /// Field handles.
    pub fields: Fields,
}

impl Partition {
    /// Opens the partition in `dir`, creating it if `create`; encrypted if `crypt` is given.
    pub fn open(
        key: PartKey,
        dir: PathBuf,
        config: WriterConfig,
        create: bool,
        crypt: Option<&Arc<Crypt>>,
    ) -> Result<Partition, StoreError> {
        let (schema, fields) = schema::schema();
        let directory = |dir: &Path| -> Result<Box<dyn Directory>, StoreError> {
            let mmap = MmapDirectory::open(dir).map_err(TantivyError::from)?;
            Ok(match crypt {
                Some(c) => Box::new(c.directory(dir, mmap)),
                None => Box::new(mmap),
            })
        };
        let index = if dir.join("meta.json").exists() {
            Index::open(directory(&dir)?)?
        } else if create {
            std::fs::create_dir_all(&dir)?;
            let settings = IndexSettings {
                docstore_compression: Compressor::Zstd(ZstdCompressor {
                    compression_level: Some(config.zstd_level),
                }),
                docstore_blocksize: 128 << 10,
                ..IndexSettings::default()
            };
            Index::create(directory(&dir)?, schema, settings)?
        } else {
            return Err(StoreError::Corrupt(format!(
                "{} is not a partition",
                dir.display()
            )));
        };
        schema::register_tokenizers(&index);
        let meta = match index.load_metas()?.payload {
            Some(p) => serde_json::from_str(&p).map_err(|e| {
                StoreError::Corrupt(format!("{}: bad commit payload: {e}", dir.display()))
            })?,
            None => PartMeta::empty(),
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(16)
            .try_into()?;
        Ok(Partition {
            key,
            dir,
            index,
            fields,
            reader,
            committed: RwLock::new(Arc::new(meta.clone())),
            state: Mutex::new(State {
                writer: None,
                meta,
                dirty: false,
                last_used: Instant::now(),
            }),
            config,
            crypt: crypt.cloned(),
        })
    }

    /// LSN of the last WAL record this partition holds (committed or not).
    pub fn lsn(&self) -> Option<u64> {
        self.state.lock().meta.lsn
    }

    /// Adds the documents of one WAL record. Returns false (adding nothing) if the record is already held.
    pub fn apply(&self, lsn: u64, docs: Vec<Doc>, delta: &PartMeta) -> Result<bool, StoreError> {
        let mut st = self.state.lock();
        if st.meta.lsn.is_some_and(|held| lsn <= held) {
            return Ok(false);
        }
        if st.writer.is_none() {
            let w = self
                .index
                .writer_with_num_threads(self.config.threads, self.config.memory)?;
            st.writer = Some(w);
        }
        if let Some(w) = &st.writer {
            let ops: Vec<_> = docs.into_iter().map(UserOperation::Add).collect();
            w.run(ops)?;
        }
        st.meta.merge(delta);
        st.meta.lsn = Some(lsn);
        st.dirty = true;
        st.last_used = Instant::now();
        Ok(true)
    }

    /// Commits pending documents (making them searchable). Returns true if there was anything to commit.
    pub fn commit(&self) -> Result<bool, StoreError> {
        let mut st = self.state.lock();
        self.commit_locked(&mut st)
    }

    fn commit_locked(&self, st: &mut State) -> Result<bool, StoreError> {
        if !st.dirty {
            return Ok(false);
        }
        let payload = serde_json::to_string(&st.meta).unwrap_or_default();
        if let Some(w) = st.writer.as_mut() {
            let mut prepared = w.prepare_commit()?;
            prepared.set_payload(&payload);
            prepared.commit()?;
        }
        st.dirty = false;
        self.reader.reload()?;
        *self.committed.write() = Arc::new(st.meta.clone());
        Ok(true)
    }

    /// Commits and closes the writer (frees its memory and threads); a later `apply` reopens it.
    pub fn close_writer(&self, wait_merges: bool) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        self.commit_locked(&mut st)?;
        if let Some(w) = st.writer.take() {
            if wait_merges {
                w.wait_merging_threads()?;
            }
        }
        Ok(())
    }

    /// True if a writer is open.
    pub fn has_writer(&self) -> bool {
        self.state.lock().writer.is_some()
    }

    /// When the partition last took documents.
    pub fn last_used(&self) -> Instant {
        self.state.lock().last_used
    }

    /// A read view of what is committed.
    pub fn view(&self) -> PartView {
        PartView {
            key: self.key.clone(),
            searcher: self.reader.searcher(),
            meta: self.committed.read().clone(),
            fields: self.fields,
        }
    }

    /// Committed metadata.
    pub fn meta(&self) -> Arc<PartMeta> {
        self.committed.read().clone()
    }

    /// Crypto-shreds the partition's data keys (its own and its segments'): called once retention has
    /// deleted its folder. Nothing to do without encryption.
    pub fn shred_keys(&self) -> Result<usize, StoreError> {
        match &self.crypt {
            Some(c) => c.shred_partition(&self.dir),
            None => Ok(0),
        }
    }

    /// Bytes the partition occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }
}

/// Total size of the files in a directory (not recursive: partitions are flat).
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Finds the partitions present under a data directory.
pub fn discover(data_dir: &Path) -> Vec<(PartKey, PathBuf)> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let Ok(rd) = std::fs::read_dir(data_dir.join("partitions").join(kind.as_str())) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(key) = name.to_str().and_then(|n| PartKey::parse(kind, n)) else {
                continue;
            };
            if e.path().join("meta.json").exists() {
                out.push((key, e.path()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_round_trip_and_refuse_what_is_not_a_partition() {
        let day = PartKey::parse(Kind::Container, "2024-05-01").unwrap();
        assert_eq!(
            (day.name(), day.namespace.is_none()),
            ("2024-05-01".into(), true)
        );
        let own = PartKey::parse(Kind::Container, "2024-05-01@payments-eu").unwrap();
        assert_eq!(own.name(), "2024-05-01@payments-eu");
        assert_eq!(
            (own.day, own.namespace.as_deref()),
            (day.day, Some("payments-eu"))
        );
        assert!(
            day < own,
            "the shared partition sorts before a namespace's own"
        );
        for bad in [
            "2024-05-01@",
            "2024-05-01@Payments",
            "2024-05-01@a/b",
            "2024-05-01@-a",
            "x@dev",
            "2024-13-01",
        ] {
            assert!(PartKey::parse(Kind::Container, bad).is_none(), "{bad}");
        }
    }
}
