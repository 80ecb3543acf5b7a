//! Write-ahead log: every accepted batch is appended here and fsynced before it is acknowledged.
//!
//! Files `wal/<first lsn>.wal` hold records `len u32 | crc32 u32 | body`. Positions are byte offsets in
//! the concatenation of all WAL files, and a record is identified by its LSN: the position just past it
//! (where the next record starts), so "everything before LSN x" is exactly the records up to x. A single writer thread takes appends from many callers,
//! writes all that are waiting, fsyncs once and answers them all (group commit). The same thread owns the
//! deduplication state, so a batch retried while the first attempt is in flight is still stored once.
//!
//! On open, a record whose length or CRC does not check out ends the log: the file is cut there, later
//! files are removed, and the bytes are counted as torn (a crash mid-write). Nothing after it was ever
//! acknowledged, because acknowledgements wait for the fsync.

use crate::block::{get_varint, put_varint};
use crossbeam_channel::{bounded, Receiver, Sender};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A WAL file is closed and a new one started once it is this large.
pub const FILE_BYTES: u64 = 64 << 20;
/// Largest record body accepted.
pub const MAX_RECORD_BYTES: usize = 256 << 20;
/// How many recent batch ids are remembered for deduplication.
pub const RECENT_BATCH_IDS: usize = 100_000;

/// WAL failures.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The disk failed; the WAL refuses further writes until the process restarts.
    #[error("write-ahead log I/O error: {0}")]
    Io(#[from] io::Error),
    /// A previous fsync failed, so durability can no longer be promised.
    #[error("write-ahead log is failed after an earlier I/O error; restart the server")]
    Failed,
    /// A record is larger than [`MAX_RECORD_BYTES`].
    #[error("batch too large for one WAL record: {0} bytes (limit {MAX_RECORD_BYTES})")]
    TooLarge(usize),
    /// The writer thread is gone (shutting down).
    #[error("write-ahead log is closed")]
    Closed,
}

/// How a retried batch is recognised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchKey {
    /// Client-chosen unique id of the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Client-chosen id of the source (for example node + file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// Sequence number of the batch within its source; increases with every new batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// The deduplication state: highest sequence number per source and the most recent batch ids.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dedup {
    /// Highest stored sequence number per source id.
    pub high_water: HashMap<String, u64>,
    /// Recently stored batch ids, oldest first.
    pub recent: VecDeque<String>,
    #[serde(skip)]
    recent_set: HashSet<String>,
}

impl Dedup {
    /// Rebuilds the lookup set after deserialisation.
    pub fn reindex(&mut self) {
        self.recent_set = self.recent.iter().cloned().collect();
    }

    /// True if a batch with this key was stored already.
    pub fn is_duplicate(&self, key: &BatchKey) -> bool {
        if let Some(id) = &key.batch_id {
            if self.recent_set.contains(id) {
                return true;
            }
        }
        matches!((&key.source_id, key.seq), (Some(src), Some(seq)) if self.high_water.get(src).is_some_and(|hw| seq <= *hw))
    }

    /// Records a stored batch.
    pub fn record(&mut self, key: &BatchKey) {
        if let Some(id) = &key.batch_id {
            if self.recent_set.insert(id.clone()) {
                self.recent.push_back(id.clone());
                if self.recent.len() > RECENT_BATCH_IDS {
                    if let Some(old) = self.recent.pop_front() {
                        self.recent_set.remove(&old);
                    }
                }
            }
        }
        if let (Some(src), Some(seq)) = (&key.source_id, key.seq) {
            let hw = self.high_water.entry(src.clone()).or_insert(seq);
            *hw = (*hw).max(seq);
        }
    }
}

/// A record read back from the log.
#[derive(Debug)]
pub struct Record {
    /// The record's LSN (the position just past it).
    pub lsn: u64,
    /// Its deduplication key.
    pub key: BatchKey,
    /// Block payloads (see [`crate::block`]).
    pub blocks: Vec<Vec<u8>>,
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written and fsynced; the record's LSN.
    Stored(u64),
    /// Already stored earlier; nothing written.
    Duplicate,
}

/// What recovery found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Recovery {
    /// Records replayed.
    pub records: u64,
    /// Bytes cut off a torn tail.
    pub torn_bytes: u64,
    /// Where the torn tail was found.
    pub torn_at: Option<u64>,
}

struct Append<T> {
    key: BatchKey,
    body: Vec<u8>,
    attachment: T,
    reply: Sender<Result<Appended, WalError>>,
}

/// What the writer thread is asked to do.
enum Msg<T> {
    Append(Append<T>),
    /// Start a new file if the current one holds anything (so fully indexed files can be removed).
    Rotate(Sender<io::Result<()>>),
}

/// The write-ahead log. `T` travels with each append and is handed, in LSN order, to the durable
/// channel once the record is on disk.
pub struct Wal<T: Send + 'static> {
    tx: Option<Sender<Msg<T>>>,
    thread: Option<JoinHandle<()>>,
    dedup: Arc<parking_lot::Mutex<Dedup>>,
    end_lsn: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    dir: PathBuf,
}

struct Writer<T> {
    dir: PathBuf,
    file: File,
    file_start: u64,
    end: u64,
    dedup: Arc<parking_lot::Mutex<Dedup>>,
    end_lsn: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    durable: Sender<(u64, T)>,
    sync: bool,
}

fn file_name(lsn: u64) -> String {
    format!("{lsn:020}.wal")
}

/// WAL files in `dir` as (first lsn, path), oldest first.
fn list_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let lsn = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(lsn) = lsn {
            files.push((lsn, path));
        }
    }
    files.sort();
    Ok(files)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn encode_body(key: &BatchKey, blocks: &[Vec<u8>]) -> Vec<u8> {
    let key_json = serde_json::to_vec(key).unwrap_or_default();
    let mut body =
        Vec::with_capacity(16 + key_json.len() + blocks.iter().map(|b| b.len() + 5).sum::<usize>());
    put_varint(&mut body, key_json.len() as u64);
    body.extend_from_slice(&key_json);
    put_varint(&mut body, blocks.len() as u64);
    for b in blocks {
        put_varint(&mut body, b.len() as u64);
        body.extend_from_slice(b);
    }
    body
}

fn decode_body(mut body: &[u8]) -> Option<(BatchKey, Vec<Vec<u8>>)> {
    let b = &mut body;
    let klen = usize::try_from(get_varint(b).ok()?).ok()?;
    let key = serde_json::from_slice(b.get(..klen)?).ok()?;
    *b = &b[klen..];
    let n = usize::try_from(get_varint(b).ok()?).ok()?;
    let mut blocks = Vec::with_capacity(n.min(b.len()));
    for _ in 0..n {
        let len = usize::try_from(get_varint(b).ok()?).ok()?;
        blocks.push(b.get(..len)?.to_vec());
        *b = &b[len..];
    }
    b.is_empty().then_some((key, blocks))
}

impl<T: Send + 'static> Wal<T> {
    /// Opens (or creates) the log in `dir`, repairs a torn tail, and returns the log, the records at or
    /// after `from_lsn` for replay, and what recovery found. Durable appends are announced on `durable`
    /// in LSN order. `sync` false skips fsync (only for benchmarks that measure without it).
    pub fn open(
        dir: &Path,
        from_lsn: u64,
        mut dedup: Dedup,
        durable: Sender<(u64, T)>,
        sync: bool,
    ) -> Result<(Self, Vec<Record>, Recovery), WalError> {
        fs::create_dir_all(dir)?;
        dedup.reindex();
        let mut recovery = Recovery::default();
        let mut records = Vec::new();
        let files = list_files(dir)?;
        let mut end = files.first().map(|f| f.0).unwrap_or(from_lsn);
        let mut broken = false;
        for (i, (start, path)) in files.iter().enumerate() {
            if broken {
                recovery.torn_bytes += fs::metadata(path)?.len();
                fs::remove_file(path)?;
                continue;
            }
            if i > 0 && *start != end {
                // A gap between files: everything from here on cannot be trusted.
                broken = true;
                recovery.torn_at.get_or_insert(end);
                recovery.torn_bytes += fs::metadata(path)?.len();
                fs::remove_file(path)?;
                continue;
            }
            let (good, len) = scan_file(path, *start, from_lsn, &mut records, &mut dedup)?;
            end = start + good;
            if good < len {
                broken = true;
                recovery.torn_at = Some(end);
                recovery.torn_bytes += len - good;
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(good)?;
                f.sync_all()?;
            }
        }
        recovery.records = records.len() as u64;
        if end < from_lsn {
            // The checkpoint is ahead of the files (they were all consumed and removed).
            end = from_lsn;
        }
        let (file, file_start) = match list_files(dir)?.last() {
            Some((start, path)) if *start <= end => {
                let mut f = OpenOptions::new().append(true).open(path)?;
                f.seek(SeekFrom::End(0))?;
                (f, *start)
            }
            _ => (create_file(dir, end)?, end),
        };
        let dedup = Arc::new(parking_lot::Mutex::new(dedup));
        let end_lsn = Arc::new(AtomicU64::new(end));
        let failed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = bounded::<Msg<T>>(1024);
        let writer = Writer {
            dir: dir.to_path_buf(),
            file,
            file_start,
            end,
            dedup: dedup.clone(),
            end_lsn: end_lsn.clone(),
            failed: failed.clone(),
            durable,
            sync,
        };
        let thread = std::thread::Builder::new()
            .name("quarry-wal".into())
            .spawn(move || writer.run(rx))?;
        Ok((
            Wal {
                tx: Some(tx),
                thread: Some(thread),
                dedup,
                end_lsn,
                failed,
                dir: dir.to_path_buf(),
            },
            records,
            recovery,
        ))
    }

    /// Appends one batch (its block payloads) and waits until it is durable.
    pub fn append(
        &self,
        key: BatchKey,
        blocks: &[Vec<u8>],
        attachment: T,
    ) -> Result<Appended, WalError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(WalError::Failed);
        }
        let body = encode_body(&key, blocks);
        if body.len() > MAX_RECORD_BYTES {
            return Err(WalError::TooLarge(body.len()));
        }
        let (reply, answer) = bounded(1);
        self.tx
            .as_ref()
            .ok_or(WalError::Closed)?
            .send(Msg::Append(Append {
                key,
                body,
                attachment,
                reply,
            }))
            .map_err(|_| WalError::Closed)?;
        answer.recv().map_err(|_| WalError::Closed)?
    }

    /// True if this batch was stored already (a cheap pre-check; [`Wal::append`] decides for sure).
    pub fn is_duplicate(&self, key: &BatchKey) -> bool {
        self.dedup.lock().is_duplicate(key)
    }

    /// A copy of the deduplication state, for a checkpoint.
    pub fn dedup_snapshot(&self) -> Dedup {
        self.dedup.lock().clone()
    }

    /// LSN just past the last durable record.
    pub fn end_lsn(&self) -> u64 {
        self.end_lsn.load(Ordering::Acquire)
    }

    /// Starts a new WAL file if the current one holds records, so that once they are all in segments
    /// [`Wal::truncate_before`] can remove it.
    pub fn rotate(&self) -> Result<(), WalError> {
        let (reply, answer) = bounded(1);
        self.tx
            .as_ref()
            .ok_or(WalError::Closed)?
            .send(Msg::Rotate(reply))
            .map_err(|_| WalError::Closed)?;
        Ok(answer.recv().map_err(|_| WalError::Closed)??)
    }

    /// Removes files that hold only records before `lsn` (already in segments).
    pub fn truncate_before(&self, lsn: u64) -> io::Result<u64> {
        let files = list_files(&self.dir)?;
        let mut removed = 0;
        for pair in files.windows(2) {
            let ((_, path), (next_start, _)) = (&pair[0], &pair[1]);
            if *next_start <= lsn {
                removed += fs::metadata(path)?.len();
                fs::remove_file(path)?;
            }
        }
        Ok(removed)
    }

    /// Total bytes of WAL files on disk.
    pub fn disk_bytes(&self) -> u64 {
        list_files(&self.dir)
            .map(|fs| {
                fs.iter()
                    .filter_map(|(_, p)| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl<T: Send + 'static> Drop for Wal<T> {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn create_file(dir: &Path, lsn: u64) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(file_name(lsn)))?;
    sync_dir(dir)?;
    Ok(f)
}

/// Reads the records of one file; returns (bytes that checked out, file length).
fn scan_file(
    path: &Path,
    start: u64,
    from_lsn: u64,
    records: &mut Vec<Record>,
    dedup: &mut Dedup,
) -> io::Result<(u64, u64)> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let len =
            u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let crc = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let Some(body) = data.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if len > MAX_RECORD_BYTES || crc32fast::hash(body) != crc {
            break;
        }
        let Some((key, blocks)) = decode_body(body) else {
            break;
        };
        dedup.record(&key);
        if start + pos as u64 >= from_lsn {
            let lsn = start + (pos + 8 + len) as u64;
            records.push(Record { lsn, key, blocks });
        }
        pos += 8 + len;
    }
    Ok((pos as u64, data.len() as u64))
}

impl<T> Writer<T> {
    fn run(mut self, rx: Receiver<Msg<T>>) {
        let mut pending = None;
        loop {
            let first = match pending.take() {
                Some(m) => m,
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => return,
                },
            };
            let first = match first {
                Msg::Append(a) => a,
                Msg::Rotate(reply) => {
                    let _ = reply.send(self.rotate());
                    continue;
                }
            };
            let mut group = vec![first];
            let mut bytes = group[0].body.len();
            while bytes < 64 << 20 {
                match rx.try_recv() {
                    Ok(Msg::Append(a)) => {
                        bytes += a.body.len();
                        group.push(a);
                    }
                    Ok(rotate) => {
                        pending = Some(rotate);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.end == self.file_start || self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.sync {
            self.file.sync_all()?;
        }
        self.file = create_file(&self.dir, self.end)?;
        self.file_start = self.end;
        Ok(())
    }

    fn commit_group(&mut self, group: Vec<Append<T>>) {
        if self.failed.load(Ordering::Acquire) {
            for a in group {
                let _ = a.reply.send(Err(WalError::Failed));
            }
            return;
        }
        // Decide duplicates first, including repeats inside this group.
        let mut fresh = Vec::with_capacity(group.len());
        let mut seen = Dedup::default();
        {
            let dedup = self.dedup.lock();
            for a in group {
                if dedup.is_duplicate(&a.key) || seen.is_duplicate(&a.key) {
                    let _ = a.reply.send(Ok(Appended::Duplicate));
                } else {
                    seen.record(&a.key);
                    fresh.push(a);
                }
            }
        }
        if fresh.is_empty() {
            return;
        }
        match self.write_group(&fresh) {
            Ok(lsns) => {
                {
                    let mut dedup = self.dedup.lock();
                    for a in &fresh {
                        dedup.record(&a.key);
                    }
                }
                self.end_lsn.store(self.end, Ordering::Release);
                for (a, lsn) in fresh.into_iter().zip(lsns) {
                    let _ = self.durable.send((lsn, a.attachment));
                    let _ = a.reply.send(Ok(Appended::Stored(lsn)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "write-ahead log write failed; refusing further ingest until restart");
                self.failed.store(true, Ordering::Release);
                for a in fresh {
                    let _ = a
                        .reply
                        .send(Err(WalError::Io(io::Error::new(e.kind(), e.to_string()))));
                }
            }
        }
    }

    fn write_group(&mut self, group: &[Append<T>]) -> io::Result<Vec<u64>> {
        if self.end - self.file_start >= FILE_BYTES {
            if self.sync {
                self.file.sync_all()?;
            }
            self.file = create_file(&self.dir, self.end)?;
            self.file_start = self.end;
        }
        let mut buf = Vec::with_capacity(group.iter().map(|a| a.body.len() + 8).sum());
        let mut lsns = Vec::with_capacity(group.len());
        for a in group {
            buf.extend_from_slice(&(a.body.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&a.body).to_le_bytes());
            buf.extend_from_slice(&a.body);
            lsns.push(self.end + buf.len() as u64);
        }
        self.file.write_all(&buf)?;
        if self.sync {
            self.file.sync_data()?;
        }
        self.end += buf.len() as u64;
        Ok(lsns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    fn key(id: &str, src: &str, seq: u64) -> BatchKey {
        BatchKey {
            batch_id: Some(id.into()),
            source_id: Some(src.into()),
            seq: Some(seq),
        }
    }

    #[test]
    fn appends_replays_and_deduplicates() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = unbounded();
        let (wal, replay, _) = Wal::<u32>::open(dir.path(), 0, Dedup::default(), tx, true).unwrap();
        assert!(replay.is_empty());
        let a = wal
            .append(key("b1", "s", 1), &[b"one".to_vec()], 1)
            .unwrap();
        assert!(matches!(a, Appended::Stored(l) if l > 8));
        assert_eq!(
            wal.append(key("b1", "s", 1), &[b"one".to_vec()], 1)
                .unwrap(),
            Appended::Duplicate
        );
        assert_eq!(
            wal.append(key("b0", "s", 1), &[b"old".to_vec()], 9)
                .unwrap(),
            Appended::Duplicate
        );
        let b = wal
            .append(key("b2", "s", 2), &[b"two".to_vec(), b"2".to_vec()], 2)
            .unwrap();
        assert!(matches!(b, Appended::Stored(l) if l > 0));
        assert_eq!(
            rx.try_iter().map(|(_, t)| t).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let end = wal.end_lsn();
        drop(wal);

        let (tx, _rx) = unbounded();
        let (wal, replay, rec) =
            Wal::<u32>::open(dir.path(), 0, Dedup::default(), tx, true).unwrap();
        assert_eq!(rec.torn_bytes, 0);
        assert_eq!(replay.len(), 2);
        assert_eq!(replay[1].blocks, vec![b"two".to_vec(), b"2".to_vec()]);
        assert_eq!(wal.end_lsn(), end);
        assert!(wal.is_duplicate(&key("b2", "s", 2)));
        assert!(wal.is_duplicate(&BatchKey {
            batch_id: None,
            source_id: Some("s".into()),
            seq: Some(2)
        }));
        assert!(!wal.is_duplicate(&key("b3", "s", 3)));
        // Replay from a checkpoint skips earlier records but keeps their dedup knowledge.
        drop(wal);
        let (tx, _rx) = unbounded();
        let (_wal, replay, _) =
            Wal::<u32>::open(dir.path(), replay[0].lsn, Dedup::default(), tx, true).unwrap();
        assert_eq!(replay.len(), 1);
    }

    #[test]
    fn torn_tail_is_cut_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = unbounded();
        let (wal, _, _) = Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true).unwrap();
        for i in 0..3 {
            wal.append(key(&format!("b{i}"), "s", i), &[vec![b'x'; 100]], ())
                .unwrap();
        }
        drop(wal);
        let path = list_files(dir.path()).unwrap()[0].1.clone();
        let full = fs::metadata(&path).unwrap().len();
        // Simulate a crash in the middle of writing the last record.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 30).unwrap();
        let (tx, _rx) = unbounded();
        let (wal, replay, rec) =
            Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true).unwrap();
        assert_eq!(replay.len(), 2);
        assert_eq!(rec.torn_bytes, full - 30 - replay[1].lsn);
        assert!(rec.torn_at.is_some());
        // Appending after repair continues cleanly.
        wal.append(key("b9", "s", 9), &[b"after".to_vec()], ())
            .unwrap();
        drop(wal);
        let (tx, _rx) = unbounded();
        let (_, replay, rec) = Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true).unwrap();
        assert_eq!((replay.len(), rec.torn_bytes), (3, 0));
        assert_eq!(replay[2].blocks[0], b"after");
    }

    #[test]
    fn flipped_byte_ends_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = unbounded();
        let (wal, _, _) = Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true).unwrap();
        for i in 0..3 {
            wal.append(key(&format!("b{i}"), "s", i), &[vec![b'x'; 100]], ())
                .unwrap();
        }
        drop(wal);
        let path = list_files(dir.path()).unwrap()[0].1.clone();
        let mut data = fs::read(&path).unwrap();
        let at = data.len() - 10;
        data[at] ^= 1;
        fs::write(&path, &data).unwrap();
        let (tx, _rx) = unbounded();
        let (_, replay, rec) = Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true).unwrap();
        assert_eq!(replay.len(), 2);
        assert!(rec.torn_bytes > 100);
    }

    #[test]
    fn rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = unbounded();
        let (wal, _, _) = Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, false).unwrap();
        let big = vec![0u8; (FILE_BYTES / 2) as usize + 1];
        let mut lsns = Vec::new();
        for i in 0..5 {
            if let Appended::Stored(l) = wal
                .append(
                    key(&format!("b{i}"), "s", i),
                    std::slice::from_ref(&big),
                    (),
                )
                .unwrap()
            {
                lsns.push(l);
            }
        }
        assert!(list_files(dir.path()).unwrap().len() >= 2);
        let before = wal.disk_bytes();
        let removed = wal.truncate_before(lsns[3]).unwrap();
        assert!(removed > 0 && wal.disk_bytes() == before - removed);
        drop(wal);
        let (tx, _rx) = unbounded();
        let (_, replay, rec) =
            Wal::<()>::open(dir.path(), lsns[3], Dedup::default(), tx, false).unwrap();
        assert_eq!((replay.len(), rec.torn_bytes), (1, 0));
        assert_eq!(replay[0].lsn, lsns[4]);
    }
}
