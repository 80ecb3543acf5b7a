//! Reading one file: identity, decoding, batching, and the positions that make restarts exact.
//!
//! A file is known by `(device, inode)` plus a fingerprint of its first bytes (up to [`FP_MAX`], so a first
//! line of a CRI log with its nanosecond timestamp): a renamed file keeps its stream, a reused inode or a
//! truncated-and-rewritten file does not.
//!
//! Every sealed batch carries `seq = 4 × E + phase`, where `E` is the file offset read so far and `phase` is
//! 0 for records emitted while reading, 1 for those emitted by the flush of a quiet stream and 2 for the
//! final flush of a finished file; and `resume`, the offset where the oldest record still being joined
//! begins ([`quarry_parse::Decoder::pending_offset`]). After a crash the agent reads again from `resume`
//! with a new decoder, drops what it emits up to `E` (and the flushes up to `phase`), and goes on: the
//! records that follow are exactly those that had not been queued, and the server drops a resent batch by
//! its `(source_id, seq)`.

use crate::checkpoint::FileState;
use quarry_model::{Event, Source};
use quarry_parse::{Decoder, DecoderOptions, Format};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

/// Bytes of the file's head covered by its fingerprint.
pub const FP_MAX: u32 = 256;
/// Most bytes read from one file in one go.
pub const CHUNK: usize = 256 << 10;

/// A batch this large (more than one read's worth, so only a stream that fills whole batches) is allocated
/// whole for the next one; smaller ones grow as needed, so that many files hold little.
const BIG_BATCH: usize = 512 << 10;

/// Batch positions per byte (see the module doc).
const PHASES: u64 = 4;
const PHASE_FLUSH: u64 = 1;
const PHASE_FINAL: u64 = 2;

/// The fingerprint of a file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// Bytes covered.
    pub len: u32,
    /// Their hash.
    pub hash: u64,
}

impl Fingerprint {
    /// Reads the fingerprint of `file`'s first `min(size, FP_MAX)` bytes.
    pub fn of(file: &File, size: u64) -> io::Result<Fingerprint> {
        Fingerprint::prefix(file, size.min(FP_MAX as u64) as u32)
    }

    /// The fingerprint of exactly the first `len` bytes (fewer if the file is shorter).
    pub fn prefix(file: &File, len: u32) -> io::Result<Fingerprint> {
        let mut buf = vec![0u8; len as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        Ok(Fingerprint {
            len: got as u32,
            hash: xxh3_64(&buf),
        })
    }

    /// True if `file` starts with the bytes this fingerprint covers.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        Ok(Fingerprint::prefix(file, self.len)? == *self)
    }
}

/// What a file holds and how to read it.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Whose log it is.
    pub owner: crate::discover::Owner,
    /// Its source descriptor with metadata (shared by its events).
    pub source: Arc<Source>,
    /// The parser.
    pub format: Format,
    /// Decoder settings (record cap, multi-line joining).
    pub options: DecoderOptions,
}

/// The open file of a tailer and its identity.
#[derive(Debug)]
pub struct Handle {
    /// The open descriptor (kept after a rename or delete so the file can be read to its end).
    pub file: File,
    /// Where it was last seen.
    pub path: PathBuf,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

impl Handle {
    /// Opens `path`.
    pub fn open(path: &Path) -> io::Result<Handle> {
        let file = File::open(path)?;
        let md = file.metadata()?;
        Ok(Handle {
            file,
            path: path.to_path_buf(),
            dev: md.dev(),
            ino: md.ino(),
        })
    }
}

/// A sealed batch, ready for the disk queue.
#[derive(Debug)]
pub struct Sealed {
    /// Its position (see the module doc).
    pub seq: u64,
    /// Offset to read again from after a restart.
    pub resume: u64,
    /// Events in the batch.
    pub events: usize,
    /// The events as native records (`quarry_transport::encode_native`), which is all the server takes:
    /// held encoded, a batch costs little more memory than its text.
    pub records: Vec<u8>,
}

/// Counters of one read step.
#[derive(Debug, Default, Clone, Copy)]
pub struct Step {
    /// Bytes read.
    pub bytes: u64,
    /// Events decoded (before redaction).
    pub events: u64,
}

/// How a file ended up after a read attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Growth {
    /// Nothing new.
    Idle,
    /// Bytes were read.
    Read,
    /// The file is shorter than what was read, or its head changed: it was truncated.
    Truncated,
}

/// One file being read.
#[derive(Debug)]
pub struct Tailer {
    /// Stream id (node, device, inode and when the agent first saw the file).
    pub source_id: String,
    /// The open file.
    pub handle: Handle,
    /// Fingerprint of its head.
    pub fp: Fingerprint,
    /// What it holds.
    pub spec: FileSpec,
    /// File offset read so far.
    pub offset: u64,
    /// File offset at which the decoder began.
    base: u64,
    decoder: Decoder,
    /// Events decoded and not yet sealed.
    batch: Vec<u8>,
    /// Events in `batch`.
    batch_events: usize,
    /// Size of the last sealed batch (the next one is allocated at about that size).
    last_batch_bytes: usize,
    /// When the oldest event of `batch` arrived.
    pub batch_since: Option<Instant>,
    /// While replaying after a restart: events are dropped until the offset reaches this.
    skip_until: u64,
    /// ... and the flushes up to this phase.
    skip_phase: u64,
    /// Phase of the events emitted at the current offset.
    phase: u64,
    /// Position of the last sealed batch.
    pub last_seq: u64,
    /// Last time the file grew.
    pub last_growth: Instant,
    /// Since when the file is no longer at a path the agent reads (renamed away or deleted).
    pub gone_since: Option<Instant>,
    /// File size at the last look.
    pub size: u64,
    /// Read data at the last attempt.
    pub hot: bool,
    decoded: u64,
}

impl Tailer {
    /// A tailer that starts at `offset` (0 or the end of the file) of a new stream.
    pub fn new(
        source_id: String,
        handle: Handle,
        spec: FileSpec,
        offset: u64,
    ) -> io::Result<Tailer> {
        let size = handle.file.metadata()?.len();
        let fp = Fingerprint::of(&handle.file, size)?;
        let mut t = Tailer::resumed(source_id, handle, spec, offset, 0, fp)?;
        t.size = size;
        Ok(t)
    }

    /// A tailer that continues a stream from a checkpoint or queued batch: reads again from `resume` and
    /// drops what was emitted up to `seq`.
    pub fn resumed(
        source_id: String,
        mut handle: Handle,
        spec: FileSpec,
        resume: u64,
        seq: u64,
        fp: Fingerprint,
    ) -> io::Result<Tailer> {
        handle.file.seek(SeekFrom::Start(resume))?;
        let decoder = Decoder::with_options(spec.format, spec.options.clone());
        let size = handle.file.metadata()?.len();
        Ok(Tailer {
            source_id,
            handle,
            fp,
            spec,
            offset: resume,
            base: resume,
            decoder,
            batch: Vec::new(),
            batch_events: 0,
            last_batch_bytes: 0,
            batch_since: None,
            skip_until: seq / PHASES,
            skip_phase: if seq == 0 { 0 } else { seq % PHASES },
            phase: 0,
            last_seq: seq,
            last_growth: Instant::now(),
            gone_since: None,
            size,
            hot: true,
            decoded: 0,
        })
    }

    /// The state to checkpoint for this file (progress fields are the registry's).
    pub fn state(&self) -> FileState {
        FileState {
            source_id: self.source_id.clone(),
            path: self.handle.path.clone(),
            dev: self.handle.dev,
            ino: self.handle.ino,
            fp_len: self.fp.len,
            fp_hash: self.fp.hash,
            acked_seq: 0,
            acked_resume: 0,
            final_seq: None,
        }
    }

    /// True while events are still dropped after a restart.
    fn replaying(&self) -> bool {
        self.offset < self.skip_until
    }

    /// Reads at most `limit` bytes into the decoder; events go to the batch through `keep` (which redacts
    /// and may refuse an event). `buf` and `scratch` are scratch space shared by all tailers.
    pub fn read(
        &mut self,
        buf: &mut Vec<u8>,
        scratch: &mut Vec<Event>,
        limit: usize,
        now_ns: i64,
        keep: &mut dyn FnMut(&mut Event) -> bool,
    ) -> io::Result<(Growth, Step)> {
        let size = self.handle.file.metadata()?.len();
        self.size = size;
        if size < self.offset {
            return Ok((Growth::Truncated, Step::default()));
        }
        if size == self.offset {
            self.hot = false;
            return Ok((Growth::Idle, Step::default()));
        }
        if self.fp.len < FP_MAX && size > self.fp.len as u64 {
            // the identity grows with the file's head, so that it is known again after a restart; a head
            // that changed means the file was truncated and written again before it was looked at
            if !self.fp.matches(&self.handle.file)? {
                return Ok((Growth::Truncated, Step::default()));
            }
            self.fp = Fingerprint::of(&self.handle.file, size)?;
        }
        let mut want = ((size - self.offset) as usize).min(limit);
        if self.replaying() {
            want = want.min((self.skip_until - self.offset) as usize);
        }
        buf.resize(want, 0);
        let n = self.handle.file.read(&mut buf[..want])?;
        if n == 0 {
            self.hot = false;
            return Ok((Growth::Idle, Step::default()));
        }
        let replay = self.replaying();
        let out = scratch;
        out.clear();
        self.decoder.feed(&buf[..n], now_ns, out);
        self.offset += n as u64;
        self.phase = 0;
        self.last_growth = Instant::now();
        self.hot = true;
        let step = Step {
            bytes: n as u64,
            events: out.len() as u64,
        };
        if replay {
            out.clear();
            if !self.replaying() {
                // caught up: replay the flushes that had been queued at this offset
                if self.skip_phase >= PHASE_FLUSH {
                    self.decoder.flush_records(now_ns, &mut Vec::new());
                    self.phase = PHASE_FLUSH;
                }
                if self.skip_phase >= PHASE_FINAL {
                    self.decoder.finish(now_ns, &mut Vec::new());
                    self.phase = PHASE_FINAL;
                }
            }
        }
        self.accept(out, keep);
        Ok((Growth::Read, step))
    }

    /// Runs `keep` over `events`, encoding the ones it keeps into the batch; empties `events`.
    fn accept(&mut self, events: &mut Vec<Event>, keep: &mut dyn FnMut(&mut Event) -> bool) {
        let mut kept = 0;
        if self.batch.capacity() == 0 && self.last_batch_bytes >= BIG_BATCH {
            // a busy stream: about as much as its last batch took, in one allocation
            self.batch.reserve(self.last_batch_bytes);
        }
        for e in events.iter_mut() {
            if keep(e) {
                quarry_transport::encode_native(std::slice::from_ref(e), &mut self.batch);
                kept += 1;
            }
        }
        events.clear();
        if kept > 0 {
            self.batch_events += kept;
            self.decoded += kept as u64;
            self.batch_since.get_or_insert_with(Instant::now);
        }
    }

    /// Bytes held in the unsealed batch.
    pub fn batch_bytes(&self) -> usize {
        self.batch.len()
    }

    /// True if records are held for joining (a quiet stream's flush would emit them).
    pub fn holds_records(&self) -> bool {
        !self.replaying()
            && self.phase == 0
            && self.base + self.decoder.pending_offset() < self.offset
    }

    /// Emits the records held for joining (the stream has gone quiet).
    pub fn flush_quiet(&mut self, now_ns: i64, keep: &mut dyn FnMut(&mut Event) -> bool) {
        let mut out = Vec::new();
        self.decoder.flush_records(now_ns, &mut out);
        if !out.is_empty() {
            self.phase = PHASE_FLUSH;
        }
        self.accept(&mut out, keep);
    }

    /// Emits everything, including a last line without newline (the file is finished).
    pub fn finish(&mut self, now_ns: i64, keep: &mut dyn FnMut(&mut Event) -> bool) {
        if self.replaying() {
            return;
        }
        let mut out = Vec::new();
        self.decoder.finish(now_ns, &mut out);
        self.phase = PHASE_FINAL;
        self.accept(&mut out, keep);
    }

    /// Takes the batch, if any, with its position.
    pub fn seal(&mut self) -> Option<Sealed> {
        if self.batch_events == 0 {
            return None;
        }
        let seq = self.offset * PHASES + self.phase;
        debug_assert!(seq > self.last_seq || self.last_seq == 0);
        self.last_seq = seq;
        self.batch_since = None;
        self.last_batch_bytes = self.batch.len();
        Some(Sealed {
            seq,
            resume: self.base + self.decoder.pending_offset(),
            events: std::mem::take(&mut self.batch_events),
            records: std::mem::take(&mut self.batch),
        })
    }

    /// Decoder counters (lines, truncations, parse errors) since the tailer opened.
    pub fn decode_stats(&self) -> &quarry_parse::DecodeStats {
        self.decoder.stats()
    }

    /// Bytes not read yet.
    pub fn lag(&self) -> u64 {
        self.size.saturating_sub(self.offset)
    }

    /// True if the file was truncated: it is shorter than what was read, or its head changed (truncated
    /// and written again past the read position).
    pub fn truncated(&self) -> io::Result<bool> {
        Ok(self.handle.file.metadata()?.len() < self.offset
            || !self.fp.matches(&self.handle.file)?)
    }

    /// Continues this stream in another file that starts with the same bytes (the copy a copytruncate
    /// rotation made): the reading position and the decoder carry over.
    pub fn move_to(&mut self, mut handle: Handle) -> io::Result<()> {
        handle.file.seek(SeekFrom::Start(self.offset))?;
        self.size = handle.file.metadata()?.len();
        self.handle = handle;
        Ok(())
    }
}

/// The stream id of a file first seen at `first_seen_ns`.
pub fn source_id(node: &str, dev: u64, ino: u64, first_seen_ns: i64) -> String {
    format!("{node}/{dev:x}-{ino:x}-{first_seen_ns:x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_model::Kind;
    use std::io::Write;

    fn spec() -> FileSpec {
        FileSpec {
            owner: crate::discover::Owner::NodeFile(0),
            source: Arc::new(Source::of_kind(Kind::Container)),
            format: Format::Cri,
            options: DecoderOptions {
                multiline: Some(quarry_parse::Multiline::custom(r"^\S").unwrap()),
                ..DecoderOptions::default()
            },
        }
    }

    fn drain(t: &mut Tailer, limit: usize, out: &mut Vec<Sealed>) {
        let (mut buf, mut scratch) = (Vec::new(), Vec::new());
        loop {
            let (g, _) = t
                .read(&mut buf, &mut scratch, limit, 0, &mut |_| true)
                .unwrap();
            if g != Growth::Read {
                break;
            }
            out.extend(t.seal());
        }
    }

    fn messages(sealed: &[Sealed]) -> Vec<String> {
        sealed
            .iter()
            .flat_map(|s| quarry_transport::decode_native(&s.records).unwrap())
            .map(|r| {
                let e = quarry_parse::reparse(&r.format, &r.raw, r.hint.as_deref(), r.ts);
                e.message().to_string()
            })
            .collect()
    }

    /// Lines written, a crash after any sealed batch, a resume from that batch's position: the messages
    /// of the batches before the crash and after the resume are the messages of one whole read.
    #[test]
    fn resuming_from_any_sealed_batch_neither_loses_nor_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut f = File::create(&path).unwrap();
        let mut expected = Vec::new();
        for i in 0..40 {
            writeln!(f, "2024-05-01T10:00:00.{i:09}Z stdout F line {i}").unwrap();
            if i % 7 == 0 {
                writeln!(f, "2024-05-01T10:00:00.{i:09}Z stdout F   continued {i}").unwrap();
            }
            expected.push(if i % 7 == 0 {
                format!("line {i}\n  continued {i}")
            } else {
                format!("line {i}")
            });
        }
        writeln!(
            f,
            "2024-05-01T10:00:01.000000000Z stdout P tail without end"
        )
        .unwrap();
        drop(f);
        // whole read with a small chunk: batches at many offsets
        let mut t = Tailer::new("s".into(), Handle::open(&path).unwrap(), spec(), 0).unwrap();
        let mut sealed = Vec::new();
        drain(&mut t, 97, &mut sealed);
        t.flush_quiet(0, &mut |_| true);
        sealed.extend(t.seal());
        t.finish(0, &mut |_| true);
        sealed.extend(t.seal());
        let mut all = expected.clone();
        all.push("tail without end".into());
        assert_eq!(messages(&sealed), all);
        let seqs: Vec<u64> = sealed.iter().map(|s| s.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        for crash_after in 0..sealed.len() {
            let last = &sealed[crash_after];
            let fp = Fingerprint::of(&File::open(&path).unwrap(), 1 << 20).unwrap();
            let mut r = Tailer::resumed(
                "s".into(),
                Handle::open(&path).unwrap(),
                spec(),
                last.resume,
                last.seq,
                fp,
            )
            .unwrap();
            let mut after = Vec::new();
            drain(&mut r, CHUNK, &mut after);
            r.flush_quiet(0, &mut |_| true);
            after.extend(r.seal());
            r.finish(0, &mut |_| true);
            after.extend(r.seal());
            let mut got = messages(&sealed[..=crash_after]);
            got.extend(messages(&after));
            assert_eq!(
                got, all,
                "crash after batch {crash_after} (seq {})",
                last.seq
            );
            if let Some(first) = after.first() {
                assert!(first.seq > last.seq);
            }
        }
    }

    #[test]
    fn fingerprint_grows_with_the_head_and_tells_a_rewritten_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "first line\n").unwrap();
        let mut t = Tailer::new("s".into(), Handle::open(&path).unwrap(), spec(), 0).unwrap();
        assert_eq!(t.fp.len, 11);
        let (mut buf, mut scratch) = (Vec::new(), Vec::new());
        let mut read = |t: &mut Tailer| {
            t.read(&mut buf, &mut scratch, CHUNK, 0, &mut |_| true)
                .unwrap()
                .0
        };
        assert!(matches!(read(&mut t), Growth::Read));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&[b'x'; 400]).unwrap();
        assert!(matches!(read(&mut t), Growth::Read));
        assert_eq!(t.fp.len, FP_MAX, "the identity covers the grown head");
        assert!(!t.truncated().unwrap());
        // copytruncate, then written again past the read position before the tailer looks
        f.set_len(0).unwrap();
        f.write_all(&[b'y'; 600]).unwrap();
        assert!(t.truncated().unwrap());

        // a short head is checked before it is extended
        std::fs::write(&path, "short\n").unwrap();
        let mut t = Tailer::new("s".into(), Handle::open(&path).unwrap(), spec(), 0).unwrap();
        assert!(matches!(read(&mut t), Growth::Read));
        std::fs::write(&path, "rewritten with a longer head\n").unwrap();
        assert!(matches!(read(&mut t), Growth::Truncated));
    }
}
