//! The disk queue: sealed batches wait here, on disk, until the server has acknowledged them.
//!
//! Segment files `queue/NNNNNNNNNNNN.q` hold records `magic | len u32 | crc32 u32 | meta_len u32 | meta JSON |
//! payload` (little-endian). The reader thread appends; the shipper fsyncs on its cadence and sends only
//! what is fsynced, so a batch the server has seen can always be sent again, byte for byte, after a crash.
//! At start a torn tail is cut and a damaged record in the middle is skipped and counted (the scan finds
//! the next record by its magic), so one bad sector never wedges the queue.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"QRQ1";
const HEADER: usize = 16;
/// A segment is closed once it holds this much.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Largest record accepted (a sealed batch is far smaller).
const MAX_RECORD: usize = 256 << 20;

/// What the agent needs to know about a queued batch without opening it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The stream (file identity) the batch belongs to.
    pub source_id: String,
    /// Its position in the stream (see `tail`): `2 * bytes read + idle-flush flag`.
    pub seq: u64,
    /// File offset to read again from after a restart (the start of the oldest record still being joined).
    pub resume: u64,
    /// Events in the batch.
    pub events: u64,
    /// When it was sealed, UTC ns (for acknowledgement latency).
    pub sealed_ns: i64,
    /// The file's identity, so a stream first seen after the last checkpoint is known again after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<crate::checkpoint::FileState>,
    /// For a journald batch: the cursor of its last entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A record read back.
#[derive(Debug, Clone)]
pub struct QueuedRecord {
    /// Where it is: segment number and the offset just past it.
    pub end: Position,
    /// Its description.
    pub meta: RecordMeta,
    /// The zstd-compressed stream section.
    pub payload: Vec<u8>,
}

/// A place in the queue: segment number and byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// Segment number.
    pub segment: u64,
    /// Offset within the segment.
    pub offset: u64,
}

/// What the start-up scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Intact records after the acknowledged position, in order.
    pub records: Vec<QueuedRecord>,
    /// Damaged records skipped.
    pub corrupt: u64,
    /// Bytes of a torn tail cut off.
    pub torn_bytes: u64,
}

/// The writing end of the queue, with its size bookkeeping.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    file: File,
    head: Position,
    /// Segments present with their lengths, oldest first.
    segments: VecDeque<(u64, u64)>,
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:012}.q"))
}

fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".q").and_then(|s| s.parse::<u64>().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Fsyncs a directory so that files created or removed in it stay so.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Queue {
    /// Opens (or creates) the queue in `dir`, cutting a torn tail and reading every record after `acked`.
    pub fn open(dir: &Path, acked: Position) -> io::Result<(Queue, Scan)> {
        fs::create_dir_all(dir)?;
        let mut scan = Scan::default();
        let mut segments = VecDeque::new();
        let list = list_segments(dir)?;
        for (i, &n) in list.iter().enumerate() {
            let path = seg_path(dir, n);
            if n < acked.segment {
                // acknowledged and checkpointed; removal was interrupted
                fs::remove_file(&path)?;
                continue;
            }
            let last = i + 1 == list.len();
            let from = if n == acked.segment { acked.offset } else { 0 };
            let len = scan_segment(&path, n, from, last, &mut scan)?;
            segments.push_back((n, len));
        }
        let head = match segments.back() {
            Some(&(n, len)) => Position {
                segment: n,
                offset: len,
            },
            None => Position {
                segment: acked.segment.max(1),
                offset: 0,
            },
        };
        if segments.is_empty() {
            segments.push_back((head.segment, 0));
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(dir, head.segment))?;
        sync_dir(dir)?;
        Ok((
            Queue {
                dir: dir.to_path_buf(),
                file,
                head,
                segments,
            },
            scan,
        ))
    }

    /// Appends a record (not yet fsynced); returns the position just past it.
    pub fn append(&mut self, meta: &RecordMeta, payload: &[u8]) -> io::Result<Position> {
        if self.head.offset >= SEGMENT_BYTES {
            self.roll()?;
        }
        let meta_json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        let body_len = 4 + meta_json.len() + payload.len();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&(meta_json.len() as u32).to_le_bytes());
        crc.update(&meta_json);
        crc.update(payload);
        let mut head = Vec::with_capacity(HEADER + meta_json.len());
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&(body_len as u32).to_le_bytes());
        head.extend_from_slice(&crc.finalize().to_le_bytes());
        head.extend_from_slice(&(meta_json.len() as u32).to_le_bytes());
        head.extend_from_slice(&meta_json);
        self.file.write_all(&head)?;
        self.file.write_all(payload)?;
        self.head.offset += (head.len() + payload.len()) as u64;
        if let Some(last) = self.segments.back_mut() {
            last.1 = self.head.offset;
        }
        Ok(self.head)
    }

    fn roll(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.head = Position {
            segment: self.head.segment + 1,
            offset: 0,
        };
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(&self.dir, self.head.segment))?;
        sync_dir(&self.dir)?;
        self.segments.push_back((self.head.segment, 0));
        Ok(())
    }

    /// The position just past the last record written.
    pub fn head(&self) -> Position {
        self.head
    }

    /// Path of segment `n`.
    pub fn segment_path(&self, n: u64) -> PathBuf {
        seg_path(&self.dir, n)
    }

    /// Bytes from `from` to the head.
    pub fn bytes_after(&self, from: Position) -> u64 {
        self.segments
            .iter()
            .filter(|(n, _)| *n >= from.segment)
            .map(|&(n, len)| {
                if n == from.segment {
                    len.saturating_sub(from.offset)
                } else {
                    len
                }
            })
            .sum()
    }

    /// Removes the segments wholly before `acked` (call once a checkpoint holding `acked` is durable).
    pub fn remove_before(&mut self, acked: Position) -> io::Result<()> {
        let mut removed = false;
        while let Some(&(n, _)) = self.segments.front() {
            if n >= acked.segment || n == self.head.segment {
                break;
            }
            fs::remove_file(seg_path(&self.dir, n))?;
            self.segments.pop_front();
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Reads the records of one segment from `from`, appending them to `scan`; returns the segment's length
/// after cutting a torn tail (only in the `last` segment).
fn scan_segment(path: &Path, n: u64, from: u64, last: bool, scan: &mut Scan) -> io::Result<u64> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let len = bytes.len() as u64;
    let mut pos = from.min(len) as usize;
    let mut valid_end = pos;
    while pos < bytes.len() {
        match parse_record(&bytes[pos..]) {
            Parsed::Ok(total, meta, payload) => {
                pos += total;
                valid_end = pos;
                scan.records.push(QueuedRecord {
                    end: Position {
                        segment: n,
                        offset: pos as u64,
                    },
                    meta: *meta,
                    payload: payload.to_vec(),
                });
            }
            Parsed::Short => break,
            Parsed::Bad => {
                // find the next record; if none follows, what remains is a torn or damaged tail
                match find_magic(&bytes[pos + 1..]) {
                    Some(skip) => {
                        scan.corrupt += 1;
                        pos += 1 + skip;
                        valid_end = pos;
                    }
                    None => break,
                }
            }
        }
    }
    if valid_end < bytes.len() {
        if last {
            scan.torn_bytes += (bytes.len() - valid_end) as u64;
            let f = OpenOptions::new().write(true).open(path)?;
            f.set_len(valid_end as u64)?;
            f.sync_all()?;
            return Ok(valid_end as u64);
        }
        scan.corrupt += 1;
    }
    Ok(len)
}

enum Parsed<'a> {
    Ok(usize, Box<RecordMeta>, &'a [u8]),
    Short,
    Bad,
}

fn parse_record(b: &[u8]) -> Parsed<'_> {
    if b.len() < HEADER {
        return if MAGIC.starts_with(&b[..b.len().min(4)]) {
            Parsed::Short
        } else {
            Parsed::Bad
        };
    }
    if b[..4] != MAGIC {
        return Parsed::Bad;
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
    let body_len = u32_at(4);
    let crc = u32_at(8) as u32;
    if !(4..=MAX_RECORD).contains(&body_len) {
        return Parsed::Bad;
    }
    if b.len() < 12 + body_len {
        return Parsed::Short;
    }
    let body = &b[12..12 + body_len];
    if crc32fast::hash(body) != crc {
        return Parsed::Bad;
    }
    let meta_len = u32_at(12);
    if meta_len > body_len - 4 {
        return Parsed::Bad;
    }
    let Ok(meta) = serde_json::from_slice::<RecordMeta>(&body[4..4 + meta_len]) else {
        return Parsed::Bad;
    };
    Parsed::Ok(12 + body_len, Box::new(meta), &body[4 + meta_len..])
}

fn find_magic(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == MAGIC)
}

/// Reads records from `from` up to `until` (exclusive end position), for the shipper.
pub struct Reader {
    dir: PathBuf,
    pos: Position,
    file: Option<(u64, File)>,
}

impl Reader {
    /// A reader that starts at `from`.
    pub fn new(dir: &Path, from: Position) -> Reader {
        Reader {
            dir: dir.to_path_buf(),
            pos: from,
            file: None,
        }
    }

    /// Where the next record starts.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Fsyncs every segment from the reader's position to `until`, making those records durable.
    pub fn sync_until(&self, until: Position) -> io::Result<()> {
        for n in self.pos.segment..=until.segment {
            match File::open(seg_path(&self.dir, n)) {
                Ok(f) => f.sync_data()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next record before `until`, or `None` when there is none. A damaged record (only possible if
    /// the disk changed it after writing) is skipped and reported as `Err(InvalidData)` once.
    pub fn next(&mut self, until: Position) -> io::Result<Option<QueuedRecord>> {
        loop {
            if self.pos >= until {
                return Ok(None);
            }
            if self.pos.segment < until.segment {
                let len = fs::metadata(seg_path(&self.dir, self.pos.segment))
                    .map(|m| m.len())
                    .unwrap_or(0);
                if self.pos.offset >= len {
                    self.pos = Position {
                        segment: self.pos.segment + 1,
                        offset: 0,
                    };
                    continue;
                }
            }
            let seg = self.pos.segment;
            if self.file.as_ref().map(|(n, _)| *n) != Some(seg) {
                self.file = Some((seg, File::open(seg_path(&self.dir, seg))?));
            }
            let Some((_, f)) = self.file.as_mut() else {
                return Ok(None);
            };
            f.seek(SeekFrom::Start(self.pos.offset))?;
            let mut head = [0u8; 12];
            f.read_exact(&mut head)?;
            let body_len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            if head[..4] != MAGIC || !(4..=MAX_RECORD).contains(&body_len) {
                return self.skip_bad();
            }
            let mut rec = head.to_vec();
            rec.resize(12 + body_len, 0);
            f.read_exact(&mut rec[12..])?;
            match parse_record(&rec) {
                Parsed::Ok(total, meta, payload) => {
                    self.pos.offset += total as u64;
                    return Ok(Some(QueuedRecord {
                        end: self.pos,
                        meta: *meta,
                        payload: payload.to_vec(),
                    }));
                }
                _ => return self.skip_bad(),
            }
        }
    }

    fn skip_bad(&mut self) -> io::Result<Option<QueuedRecord>> {
        let mut bytes = Vec::new();
        if let Some((_, f)) = self.file.as_mut() {
            f.seek(SeekFrom::Start(self.pos.offset + 1))?;
            f.read_to_end(&mut bytes)?;
        }
        match find_magic(&bytes) {
            Some(skip) => self.pos.offset += 1 + skip as u64,
            None => self.pos.offset += 1 + bytes.len() as u64,
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "damaged queue record skipped",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64) -> RecordMeta {
        RecordMeta {
            source_id: "n/1-2-3".into(),
            seq,
            resume: seq / 2,
            events: 1,
            sealed_ns: 0,
            file: None,
            cursor: None,
        }
    }

    #[test]
    fn records_survive_reopen_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, scan) = Queue::open(dir.path(), Position::default()).unwrap();
        assert!(scan.records.is_empty());
        let p1 = q.append(&meta(10), b"one").unwrap();
        q.append(&meta(20), b"two").unwrap();
        let path = q.segment_path(q.head().segment);
        drop(q);
        // a torn third record
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"QRQ1\x40\x00\x00\x00garbage").unwrap();
        drop(f);
        let (q, scan) = Queue::open(dir.path(), Position::default()).unwrap();
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.records[1].payload, b"two");
        assert_eq!(scan.torn_bytes, 15);
        assert_eq!(scan.corrupt, 0);
        // only what follows the acknowledged position is returned
        let (_, scan) = Queue::open(dir.path(), p1).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.records[0].meta.seq, 20);
        drop(q);
    }

    #[test]
    fn damaged_record_in_the_middle_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = Queue::open(dir.path(), Position::default()).unwrap();
        for i in 0..3 {
            q.append(&meta(i * 10), format!("payload {i}").as_bytes())
                .unwrap();
        }
        let path = q.segment_path(1);
        drop(q);
        let mut bytes = fs::read(&path).unwrap();
        let second = bytes.len() / 2;
        bytes[second] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (mut q, scan) = Queue::open(dir.path(), Position::default()).unwrap();
        assert_eq!(scan.corrupt, 1);
        let seqs: Vec<u64> = scan.records.iter().map(|r| r.meta.seq).collect();
        assert_eq!(seqs, vec![0, 20]);
        // the queue keeps working after it
        let end = q.append(&meta(30), b"more").unwrap();
        let mut r = Reader::new(dir.path(), Position::default());
        let mut got = Vec::new();
        let mut bad = 0;
        loop {
            match r.next(end) {
                Ok(Some(rec)) => got.push(rec.meta.seq),
                Ok(None) => break,
                Err(_) => bad += 1,
            }
        }
        assert_eq!((got, bad), (vec![0, 20, 30], 1));
    }

    #[test]
    fn reader_crosses_segments_and_removal_follows_acks() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = Queue::open(dir.path(), Position::default()).unwrap();
        q.append(&meta(1), b"a").unwrap();
        q.roll().unwrap();
        q.append(&meta(2), b"b").unwrap();
        q.roll().unwrap();
        let end = q.append(&meta(3), b"c").unwrap();
        let mut r = Reader::new(dir.path(), Position::default());
        r.sync_until(end).unwrap();
        let mut ends = Vec::new();
        while let Some(rec) = r.next(end).unwrap() {
            ends.push(rec.end);
        }
        assert_eq!(ends.len(), 3);
        assert_eq!(
            q.bytes_after(ends[0]),
            q.bytes_after(Position::default()) - ends[0].offset
        );
        q.remove_before(ends[1]).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![2, 3]);
        let (_, scan) = Queue::open(dir.path(), ends[1]).unwrap();
        assert_eq!(scan.records.len(), 1);
    }
}
