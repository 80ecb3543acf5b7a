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
//!
//! With encryption at rest (a [`Crypt`]) each file has its own data key (owner `wal/<file name>`) and a
//! record's body is `nonce | AES-256-GCM ciphertext | tag`, bound to the file name and the record's
//! position (see [`crate::crypt`]); the CRC covers those bytes. A record whose CRC is right but which fails
//! authentication cannot be a torn write: it was altered after it was written (or the disk is damaged),
//! and the log refuses to open, naming the file, rather than drop it and every acknowledged record after
//! it. Removing a file shreds its key.

use crate::block::{get_varint, put_varint};
use crate::crypt::{Crypt, RecordCipher, RECORD_OVERHEAD};
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
    /// Encryption at rest: a WAL file's data key is missing, or the keyring failed.
    #[error("write-ahead log encryption: {0}")]
    Encryption(String),
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
    crypt: Option<Arc<Crypt>>,
}

struct Writer<T> {
    dir: PathBuf,
    file: File,
    /// Seals the records of the current file (encryption at rest).
    cipher: Option<RecordCipher>,
    crypt: Option<Arc<Crypt>>,
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
    /// in LSN order. `sync` false skips fsync (only for benchmarks that measure without it). With `crypt`
    /// the records are encrypted (a log is either all encrypted or all plaintext: [`Crypt::open`] decides).
    pub fn open(
        dir: &Path,
        from_lsn: u64,
        mut dedup: Dedup,
        durable: Sender<(u64, T)>,
        sync: bool,
        crypt: Option<Arc<Crypt>>,
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
                remove_file(path, crypt.as_deref())?;
                continue;
            }
            if i > 0 && *start != end {
                // A gap between files: everything from here on cannot be trusted.
                broken = true;
                recovery.torn_at.get_or_insert(end);
                recovery.torn_bytes += fs::metadata(path)?.len();
                remove_file(path, crypt.as_deref())?;
                continue;
            }
            let cipher = match &crypt {
                Some(c) => {
                    let name = file_name_of(path);
                    let cipher = c
                        .wal_cipher(&name, false)
                        .map_err(|e| WalError::Encryption(format!("{name}: {e}")))?;
                    if cipher.is_none() && fs::metadata(path)?.len() > 0 {
                        // Refuse rather than cut: the records may be fine and the keyring the problem.
                        return Err(WalError::Encryption(format!(
                            "no data key for {} in the keyring (a keyring restored from an older backup?)",
                            path.display()
                        )));
                    }
                    cipher
                }
                None => None,
            };
            let scan = scan_file(
                path,
                *start,
                from_lsn,
                &mut records,
                &mut dedup,
                cipher.as_ref(),
            )?;
            let (good, len) = (scan.good, scan.len);
            if scan.auth_failed {
                // Its checksum is right, so it is no torn write: the record was altered after it was
                // written. Cutting the log there would drop it and every acknowledged record after it.
                return Err(WalError::Encryption(format!(
                    "{} holds a record at byte {good} that fails authentication: it was altered after it was written (or the disk is damaged). Refusing to start rather than drop it and everything after it: restore the file from a backup, or move it aside to accept the loss",
                    path.display()
                )));
            }
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
        let (file, file_start, cipher) = match list_files(dir)?.last() {
            Some((start, path)) if *start <= end => {
                let cipher = file_cipher(crypt.as_ref(), &file_name_of(path))?;
                let mut f = OpenOptions::new().append(true).open(path)?;
                f.seek(SeekFrom::End(0))?;
                (f, *start, cipher)
            }
            _ => {
                let cipher = file_cipher(crypt.as_ref(), &file_name(end))?;
                (create_file(dir, end)?, end, cipher)
            }
        };
        let dedup = Arc::new(parking_lot::Mutex::new(dedup));
        let end_lsn = Arc::new(AtomicU64::new(end));
        let failed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = bounded::<Msg<T>>(1024);
        let writer = Writer {
            dir: dir.to_path_buf(),
            file,
            cipher,
            crypt: crypt.clone(),
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
                crypt,
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
                remove_file(path, self.crypt.as_deref())?;
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

/// The name of a WAL file's path.
fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The record cipher of WAL file `name` (its key made if needed), with encryption at rest.
fn file_cipher(crypt: Option<&Arc<Crypt>>, name: &str) -> io::Result<Option<RecordCipher>> {
    match crypt {
        Some(c) => c
            .wal_cipher(name, true)
            .map_err(|e| io::Error::other(format!("WAL file {name}: {e}"))),
        None => Ok(None),
    }
}

/// Removes a WAL file and then crypto-shreds its key (a key left by a crash here is shredded at the next
/// open).
fn remove_file(path: &Path, crypt: Option<&Crypt>) -> io::Result<()> {
    fs::remove_file(path)?;
    if let Some(c) = crypt {
        if let Err(e) = c.shred_wal(&file_name_of(path)) {
            tracing::warn!(file = %path.display(), error = %e, "could not shred the key of a removed WAL file");
        }
    }
    Ok(())
}

fn create_file(dir: &Path, lsn: u64) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(file_name(lsn)))?;
    sync_dir(dir)?;
    Ok(f)
}

/// What [`scan_file`] found.
struct Scan {
    /// Bytes that checked out.
    good: u64,
    /// File length.
    len: u64,
    /// The scan stopped at a record that failed authentication.
    auth_failed: bool,
}

/// Reads the records of one file (decrypting them with `cipher` if given).
fn scan_file(
    path: &Path,
    start: u64,
    from_lsn: u64,
    records: &mut Vec<Record>,
    dedup: &mut Dedup,
    cipher: Option<&RecordCipher>,
) -> io::Result<Scan> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let max_len = MAX_RECORD_BYTES + cipher.map_or(0, |_| RECORD_OVERHEAD);
    let mut pos = 0usize;
    let mut auth_failed = false;
    while pos + 8 <= data.len() {
        let len =
            u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let crc = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let Some(body) = data.get_mut(pos + 8..pos + 8 + len) else {
            break;
        };
        if len > max_len || crc32fast::hash(body) != crc {
            break;
        }
        let body: &[u8] = match cipher {
            Some(c) => match c.open(start + pos as u64, body) {
                Some(plain) => plain,
                None => {
                    auth_failed = true;
                    break;
                }
            },
            None => body,
        };
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
    Ok(Scan {
        good: pos as u64,
        len: data.len() as u64,
        auth_failed,
    })
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
        self.next_file()
    }

    /// Closes the current file and starts one at the current end (with its own data key).
    fn next_file(&mut self) -> io::Result<()> {
        if self.sync {
            self.file.sync_all()?;
        }
        // The key first: a file never exists without its key (a key without a file is swept).
        let cipher = file_cipher(self.crypt.as_ref(), &file_name(self.end))?;
        self.file = create_file(&self.dir, self.end)?;
        self.cipher = cipher;
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
            self.next_file()?;
        }
        let overhead = 8 + self.cipher.as_ref().map_or(0, |_| RECORD_OVERHEAD);
        let mut buf = Vec::with_capacity(group.iter().map(|a| a.body.len() + overhead).sum());
        let mut lsns = Vec::with_capacity(group.len());
        for a in group {
            let at = buf.len();
            buf.extend_from_slice(&[0; 8]);
            match &self.cipher {
                Some(c) => c.seal_append(self.end + at as u64, &a.body, &mut buf)?,
                None => buf.extend_from_slice(&a.body),
            }
            let body = &buf[at + 8..];
            let (len, crc) = (body.len() as u32, crc32fast::hash(body));
            buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
            buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
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
        let (wal, replay, _) =
            Wal::<u32>::open(dir.path(), 0, Dedup::default(), tx, true, None).unwrap();
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
            Wal::<u32>::open(dir.path(), 0, Dedup::default(), tx, true, None).unwrap();
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
            Wal::<u32>::open(dir.path(), replay[0].lsn, Dedup::default(), tx, true, None).unwrap();
        assert_eq!(replay.len(), 1);
    }

    #[test]
    fn torn_tail_is_cut_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = unbounded();
        let (wal, _, _) = Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true, None).unwrap();
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
            Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true, None).unwrap();
        assert_eq!(replay.len(), 2);
        assert_eq!(rec.torn_bytes, full - 30 - replay[1].lsn);
        assert!(rec.torn_at.is_some());
        // Appending after repair continues cleanly.
        wal.append(key("b9", "s", 9), &[b"after".to_vec()], ())
            .unwrap();
        drop(wal);
        let (tx, _rx) = unbounded();
        let (_, replay, rec) =
            Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true, None).unwrap();
        assert_eq!((replay.len(), rec.torn_bytes), (3, 0));
        assert_eq!(replay[2].blocks[0], b"after");
    }

    #[test]
    fn flipped_byte_ends_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = unbounded();
        let (wal, _, _) = Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true, None).unwrap();
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
        let (_, replay, rec) =
            Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, true, None).unwrap();
        assert_eq!(replay.len(), 2);
        assert!(rec.torn_bytes > 100);
    }

    #[test]
    fn rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = unbounded();
        let (wal, _, _) =
            Wal::<()>::open(dir.path(), 0, Dedup::default(), tx, false, None).unwrap();
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
            Wal::<()>::open(dir.path(), lsns[3], Dedup::default(), tx, false, None).unwrap();
        assert_eq!((replay.len(), rec.torn_bytes), (1, 0));
        assert_eq!(replay[0].lsn, lsns[4]);
    }

    fn crypt(data_dir: &Path, key: u8) -> Result<Arc<Crypt>, crate::StoreError> {
        let cfg = crate::crypt::EncryptionConfig::new(Arc::new(
            crate::crypt::MasterKey::from_bytes(&[key; 32]).unwrap(),
        ));
        Ok(Crypt::open(data_dir, Some(&cfg), true)?.unwrap())
    }

    fn open_enc(data_dir: &Path, from: u64) -> (Wal<()>, Vec<Record>, Recovery) {
        let (tx, _rx) = unbounded();
        let c = crypt(data_dir, 5).unwrap();
        Wal::<()>::open(
            &data_dir.join("wal"),
            from,
            Dedup::default(),
            tx,
            true,
            Some(c),
        )
        .unwrap()
    }

    /// The error opening the encrypted log of `data_dir` gives.
    fn open_enc_err(data_dir: &Path) -> String {
        let (tx, _rx) = unbounded();
        let c = crypt(data_dir, 5).unwrap();
        match Wal::<()>::open(
            &data_dir.join("wal"),
            0,
            Dedup::default(),
            tx,
            true,
            Some(c),
        ) {
            Ok(_) => panic!("the log opened"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn encrypted_records_replay_and_hide_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, replay, _) = open_enc(dir.path(), 0);
        assert!(replay.is_empty());
        for i in 0..3 {
            wal.append(
                key(&format!("b{i}"), "s", i),
                &[format!("secret payload {i}").into_bytes()],
                (),
            )
            .unwrap();
        }
        drop(wal);
        let path = list_files(&dir.path().join("wal")).unwrap()[0].1.clone();
        let data = fs::read(&path).unwrap();
        assert!(!data.windows(6).any(|w| w == b"secret"));
        assert!(
            !data.windows(2).any(|w| w == b"b1"),
            "batch ids are encrypted too"
        );
        let (wal, replay, rec) = open_enc(dir.path(), 0);
        assert_eq!((replay.len(), rec.torn_bytes), (3, 0));
        assert_eq!(replay[2].blocks[0], b"secret payload 2");
        assert!(wal.is_duplicate(&key("b1", "s", 1)));
        // Appending to the reopened file continues with the same key.
        wal.append(key("b3", "s", 3), &[b"more".to_vec()], ())
            .unwrap();
        drop(wal);
        let (_, replay, _) = open_enc(dir.path(), 0);
        assert_eq!(replay.len(), 4);
        // The wrong master key does not even get to the log.
        assert!(crypt(dir.path(), 6).is_err());
    }

    #[test]
    fn an_altered_encrypted_record_ends_the_log_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open_enc(dir.path(), 0);
        let mut lsns = Vec::new();
        for i in 0..3 {
            if let Appended::Stored(l) = wal
                .append(key(&format!("b{i}"), "s", i), &[vec![b'x'; 100]], ())
                .unwrap()
            {
                lsns.push(l);
            }
        }
        drop(wal);
        let path = list_files(&dir.path().join("wal")).unwrap()[0].1.clone();
        let good = fs::read(&path).unwrap();
        // A flipped ciphertext byte with the CRC recomputed (what an attacker would do): authentication
        // catches it.
        let mut data = good.clone();
        let rec = lsns[0] as usize;
        data[rec + 8 + 20] ^= 1;
        let len = u32::from_le_bytes(data[rec..rec + 4].try_into().unwrap()) as usize;
        let crc = crc32fast::hash(&data[rec + 8..rec + 8 + len]);
        data[rec + 4..rec + 8].copy_from_slice(&crc.to_le_bytes());
        fs::write(&path, &data).unwrap();
        let err = open_enc_err(dir.path());
        assert!(err.contains("fails authentication"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), data, "nothing was cut");
        // Records cannot be moved either: the second record copied over the first fails.
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open_enc(dir.path(), 0);
        for i in 0..2 {
            wal.append(key(&format!("b{i}"), "s", i), &[vec![b'y'; 50]], ())
                .unwrap();
        }
        drop(wal);
        let path = list_files(&dir.path().join("wal")).unwrap()[0].1.clone();
        let data = fs::read(&path).unwrap();
        let half = data.len() / 2;
        fs::write(&path, [&data[half..], &data[half..]].concat()).unwrap();
        assert!(open_enc_err(dir.path()).contains("fails authentication"));
    }

    #[test]
    fn encrypted_files_lose_their_key_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open_enc(dir.path(), 0);
        let mut last = 0;
        for i in 0..3 {
            if let Appended::Stored(l) = wal
                .append(key(&format!("b{i}"), "s", i), &[vec![1u8; 10]], ())
                .unwrap()
            {
                last = l;
            }
            wal.rotate().unwrap();
        }
        assert_eq!(crypt(dir.path(), 5).unwrap().keyring().len(), 4);
        wal.truncate_before(last).unwrap();
        // (Read back from disk: the WAL's own keyring wrote it.)
        let c = crypt(dir.path(), 5).unwrap();
        let owners: Vec<String> = c.keyring().entries().into_iter().map(|e| e.owner).collect();
        assert_eq!(owners, vec![format!("wal/{}", file_name(last))]);
        drop(wal);
        // A file whose key is gone is refused, not cut.
        let (wal, _, _) = open_enc(dir.path(), last);
        wal.append(key("b9", "s", 9), &[vec![2u8; 10]], ()).unwrap();
        drop(wal);
        let c = crypt(dir.path(), 5).unwrap();
        c.shred_wal(&file_name(last)).unwrap();
        let size = fs::metadata(dir.path().join("wal").join(file_name(last)))
            .unwrap()
            .len();
        let (tx, _rx) = unbounded();
        let e = Wal::<()>::open(
            &dir.path().join("wal"),
            last,
            Dedup::default(),
            tx,
            true,
            Some(c),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("no data key"), "{e}");
        assert_eq!(
            fs::metadata(dir.path().join("wal").join(file_name(last)))
                .unwrap()
                .len(),
            size
        );
    }
}
