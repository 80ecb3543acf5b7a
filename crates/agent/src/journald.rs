//! Reading journald units through `journalctl -o json --follow`, resumable at a saved cursor.
//!
//! A [`JournalReader`] runs `journalctl` as a child process, reads its standard output on its own thread
//! into a small bounded channel (so [`JournalReader::read`] can wait with a time limit, and a slow
//! consumer stops journalctl instead of buffering), parses each line with
//! [`quarry_parse::Format::Journald`] and hands out [`JournalEntry`]s: the event and the entry's cursor.
//! The caller checkpoints the cursor of the last entry the server has acknowledged and, after a restart
//! or after journalctl has died, starts a new reader after it.
//!
//! The command is
//! `journalctl -o json --all --follow --merge --no-pager [--directory=D] --unit=U... POSITION`, where
//! POSITION is one of:
//! - with a saved cursor: `--no-tail --cursor=C`, and the first entry is dropped when it is the cursor's
//!   own entry. `--after-cursor` is not used: journalctl skips one entry after seeking whether or not
//!   the seek found the cursor, so a cursor whose entry has been vacuumed away (or one from another
//!   journal) would silently lose the entry after it. When the first entry is not the cursor's, reading
//!   goes on from the nearest later entry and [`JournalStats::cursor_not_found`] counts it;
//! - [`JournalStart::Head`]: `--no-tail` (everything the journal holds);
//! - [`JournalStart::Tail`]: `--lines=0` (only what is written from now on);
//! - [`JournalStart::Boot`] (the default): `--no-tail --cursor=B`, where B is the cursor of the current
//!   boot's first entry, asked of `journalctl -b -o json` first (with `--directory`, `-b` means the
//!   newest boot found there). When there is no such entry (an empty journal, or none of this boot yet),
//!   it starts as `Tail`. The running follower gets no boot filter, so a new boot showing up in the
//!   directory later is still read.
//!
//! Why the other options: `--no-tail` because `--follow` otherwise shows only the last 10 entries, even
//! after `--cursor` (the rest up to the end would be skipped); `--merge` because `--follow` otherwise
//! implies `-b` and would skip the rest of a previous boot when resuming after a reboot (with the system
//! journal it also takes in journals of other machines stored on this one, told apart by `hostname`);
//! `--all` because journalctl otherwise writes values over 4096 bytes as `null`.
//!
//! Lines longer than the record cap are cut (counted in [`JournalStats::truncated`]); the event is then
//! the cut text with a parse error, and its cursor is still found in the line's full text as it streams
//! past. An entry whose cursor cannot be read (a line that is not JSON) carries the cursor of the entry
//! before it (the resume cursor, or an empty string before any), so resuming from it reads that entry
//! again rather than skipping anything.
//!
//! journalctl that cannot be started (not installed, not executable) is a [`JournalError::Spawn`] from
//! [`JournalReader::start`]; one that exits (a bad directory, a bad cursor, inotify limits: journalctl
//! prints `Insufficient watch descriptors available. Reverting to -n.` and exits 0 after the entries it
//! has) is a [`JournalError::Stopped`] with its status and the end of its standard error, from
//! [`JournalReader::read`] once the entries it wrote have been returned, or from
//! [`JournalReader::check`]. Restart it from the last cursor, with a backoff. Dropping the reader kills
//! journalctl and reaps it.

use crate::config::{JournalStart, JournaldConfig};
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use quarry_model::{Event, Source, Value};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lines held between the output thread and [`JournalReader::read`]; at most this many times the
/// record cap of memory.
const LINE_QUEUE: usize = 64;

/// Bytes of journalctl's standard error kept for error messages (the end of it).
const STDERR_TAIL: usize = 4096;

/// Longest cursor accepted from a cut line (journald's are about 120 bytes).
const MAX_CURSOR: usize = 1024;

/// One journal entry.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// Where to resume after this entry (`__CURSOR`; see the module documentation for entries without).
    pub cursor: String,
    /// The entry parsed with `Format::Journald`; `raw` is journalctl's JSON line.
    pub event: Event,
}

/// What a [`JournalReader`] has read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Entries returned.
    pub entries: u64,
    /// Bytes of journalctl output read (newlines included).
    pub bytes: u64,
    /// Entries longer than the record cap, cut.
    pub truncated: u64,
    /// Entries that could not be parsed (cut ones included).
    pub parse_errors: u64,
    /// 1 when the resume cursor's entry was not the first one read: it was vacuumed away, is in another
    /// journal, or no longer matches the units; reading went on from the nearest later entry.
    pub cursor_not_found: u64,
}

/// Why the journal cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// No unit is configured.
    #[error("journald.units is empty: there is no journal unit to read")]
    NoUnits,
    /// journalctl cannot be started.
    #[error("cannot start journalctl ({program}): {source}; install systemd's journalctl or set journald.journalctl")]
    Spawn {
        /// The program that was run.
        program: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// journalctl has stopped.
    #[error("journalctl {reason}{}; command: {command}", stderr_note(.stderr))]
    Stopped {
        /// The command line.
        command: String,
        /// `exited with status 1`, `was killed by signal 9`, or why its output could not be read.
        reason: String,
        /// The end of its standard error.
        stderr: String,
    },
}

fn stderr_note(stderr: &str) -> String {
    if stderr.is_empty() {
        ": it wrote nothing on standard error".into()
    } else {
        format!(": {stderr}")
    }
}

/// A line of journalctl output.
#[derive(Debug)]
struct RawLine {
    /// The line (without its newline), cut at the record cap.
    text: String,
    /// Its full length in bytes.
    len: usize,
    /// Cut at the cap.
    truncated: bool,
    /// The cursor found in a cut line's full text.
    cursor: Option<String>,
}

/// What the output thread sends.
#[derive(Debug)]
enum Msg {
    Line(RawLine),
    /// Standard output closed.
    End,
    /// Standard output could not be read.
    Failed(std::io::Error),
}

/// Finds the value of `"__CURSOR":"..."` in a stream of bytes, however they are split.
#[derive(Debug, Default)]
struct CursorScan {
    /// Bytes of the key matched so far.
    matched: usize,
    /// The value being read.
    value: Option<Vec<u8>>,
    found: Option<String>,
}

impl CursorScan {
    const KEY: &'static [u8] = b"\"__CURSOR\":\"";

    /// After `matched` bytes of the key and then `b` that does not continue it: the longest start of the
    /// key that ends the text seen.
    fn restart(matched: usize, b: u8) -> usize {
        let key = Self::KEY;
        (1..=matched)
            .rev()
            .find(|&k| key[k - 1] == b && key[..k - 1] == key[matched + 1 - k..matched])
            .unwrap_or(0)
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.found.is_some() {
                return;
            }
            if let Some(v) = &mut self.value {
                if b == b'"' {
                    self.found = String::from_utf8(std::mem::take(v)).ok();
                    self.value = None;
                } else if b == b'\\' || v.len() >= MAX_CURSOR {
                    // not how journalctl writes a cursor: look for another
                    self.value = None;
                } else {
                    v.push(b);
                }
                continue;
            }
            if b == Self::KEY[self.matched] {
                self.matched += 1;
                if self.matched == Self::KEY.len() {
                    self.matched = 0;
                    self.value = Some(Vec::with_capacity(128));
                }
            } else {
                self.matched = Self::restart(self.matched, b);
            }
        }
    }
}

/// Reads one line of at most `cap` bytes into `buf`; the rest of a longer line is read and dropped, its
/// cursor kept. `None` at the end of the stream.
fn read_line<R: BufRead>(
    r: &mut R,
    cap: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<RawLine>> {
    buf.clear();
    let mut len = 0usize;
    let mut truncated = false;
    let mut scan = CursorScan::default();
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            if !any {
                return Ok(None);
            }
            break;
        }
        any = true;
        let (chunk, newline) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (&avail[..i], true),
            None => (avail, false),
        };
        if truncated {
            scan.feed(chunk);
        } else {
            let room = cap.saturating_sub(buf.len());
            if chunk.len() <= room {
                buf.extend_from_slice(chunk);
            } else {
                truncated = true;
                buf.extend_from_slice(&chunk[..room]);
                scan.feed(buf);
                scan.feed(&chunk[room..]);
            }
        }
        len += chunk.len();
        let used = chunk.len() + usize::from(newline);
        r.consume(used);
        if newline {
            break;
        }
    }
    let text = match std::str::from_utf8(buf) {
        Ok(s) => s.to_string(),
        // a character cut at the cap
        Err(e) if truncated && e.error_len().is_none() => {
            String::from_utf8_lossy(&buf[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(buf).into_owned(),
    };
    Ok(Some(RawLine {
        text,
        len,
        truncated,
        cursor: scan.found,
    }))
}

/// The end of a stream, kept as it is read.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
        if self.bytes.len() > STDERR_TAIL {
            let cut = self.bytes.len() - STDERR_TAIL;
            self.bytes.drain(..cut);
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes)
            .trim()
            .replace('\n', " | ")
    }
}

/// A running `journalctl --follow` and what it has written.
#[derive(Debug)]
pub struct JournalReader {
    child: Child,
    lines: Receiver<Msg>,
    stderr: Arc<parking_lot::Mutex<Tail>>,
    stderr_thread: Option<JoinHandle<()>>,
    command: String,
    cap: usize,
    /// The resume cursor, until the first entry has been compared with it.
    skip: Option<String>,
    last_cursor: Option<String>,
    exit: Option<ExitStatus>,
    /// Why it stopped, once the output has been read to its end.
    stopped: Option<String>,
    stats: JournalStats,
}

fn program(cfg: &JournaldConfig) -> PathBuf {
    cfg.journalctl
        .clone()
        .unwrap_or_else(|| PathBuf::from("journalctl"))
}

fn directory_arg(cfg: &JournaldConfig) -> Option<OsString> {
    cfg.directory.as_ref().map(|d| {
        let mut a = OsString::from("--directory=");
        a.push(d.as_os_str());
        a
    })
}

fn describe(program: &Path, args: &[OsString]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.contains([' ', ';', '"']) {
            s.push_str(&format!("{a:?}"));
        } else {
            s.push_str(&a);
        }
    }
    s
}

fn spawn_err(program: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Spawn {
        program: program.to_path_buf(),
        source,
    }
}

fn exit_reason(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => format!("stopped ({status})"),
    }
}

/// The cursor of the current boot's first entry, asked of `journalctl -b`; `None` when there is none.
fn boot_start(cfg: &JournaldConfig) -> Result<Option<String>, JournalError> {
    let program = program(cfg);
    let mut args: Vec<OsString> = Vec::new();
    args.extend(directory_arg(cfg));
    for a in ["-b", "-o", "json", "--output-fields=__CURSOR", "--no-pager"] {
        args.push(a.into());
    }
    let mut child = Command::new(&program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(spawn_err(&program))?;
    let mut first = Vec::new();
    let read = match child.stdout.take() {
        Some(out) => {
            let mut r = BufReader::new(out.take(64 << 10));
            r.read_until(b'\n', &mut first)
        }
        None => Ok(0),
    };
    let _ = child.kill();
    let _ = child.wait();
    if read.is_err() {
        return Ok(None);
    }
    let mut scan = CursorScan::default();
    scan.feed(&first);
    Ok(scan.found)
}

impl JournalReader {
    /// Starts `journalctl -o json --all --follow --merge --no-pager [--directory=D] --unit=U...` after
    /// `after_cursor`, or where `cfg.read_from` says when there is none (see the module documentation).
    /// Lines longer than `max_record_bytes` are cut.
    pub fn start(
        cfg: &JournaldConfig,
        after_cursor: Option<&str>,
        max_record_bytes: usize,
    ) -> Result<JournalReader, JournalError> {
        if cfg.units.is_empty() {
            return Err(JournalError::NoUnits);
        }
        let program = program(cfg);
        let mut args: Vec<OsString> = ["-o", "json", "--all", "--follow", "--merge", "--no-pager"]
            .into_iter()
            .map(OsString::from)
            .collect();
        args.extend(directory_arg(cfg));
        for u in &cfg.units {
            args.push(format!("--unit={u}").into());
        }
        let mut skip = None;
        match after_cursor {
            Some(c) => {
                args.push("--no-tail".into());
                args.push(format!("--cursor={c}").into());
                skip = Some(c.to_string());
            }
            None => match cfg.read_from {
                JournalStart::Head => args.push("--no-tail".into()),
                JournalStart::Tail => args.push("--lines=0".into()),
                JournalStart::Boot => match boot_start(cfg)? {
                    Some(c) => {
                        args.push("--no-tail".into());
                        args.push(format!("--cursor={c}").into());
                    }
                    None => {
                        tracing::info!(
                            "the journal has no entry of the current boot yet: reading from its end"
                        );
                        args.push("--lines=0".into());
                    }
                },
            },
        }
        let command = describe(&program, &args);
        let mut child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err(&program))?;
        let (stdout, stderr_pipe) = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(JournalError::Spawn {
                    program,
                    source: std::io::Error::other("no pipe to the child process"),
                });
            }
        };
        let cap = max_record_bytes.max(1);
        let (tx, rx) = crossbeam_channel::bounded(LINE_QUEUE);
        let stderr = Arc::new(parking_lot::Mutex::new(Tail::default()));
        let spawned = std::thread::Builder::new()
            .name("quarry-journal-out".into())
            .spawn(move || read_output(stdout, cap, tx))
            .and_then(|_| {
                let tail = Arc::clone(&stderr);
                std::thread::Builder::new()
                    .name("quarry-journal-err".into())
                    .spawn(move || read_stderr(stderr_pipe, &tail))
            });
        let stderr_thread = match spawned {
            Ok(h) => h,
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(JournalError::Spawn { program, source });
            }
        };
        tracing::debug!(%command, "journalctl started");
        Ok(JournalReader {
            child,
            lines: rx,
            stderr,
            stderr_thread: Some(stderr_thread),
            command,
            cap,
            last_cursor: skip.clone(),
            skip,
            exit: None,
            stopped: None,
            stats: JournalStats::default(),
        })
    }

    /// The entries available now, waiting at most `wait` for the first one; at most `max`. Once
    /// journalctl has stopped and everything it wrote has been returned, a [`JournalError::Stopped`].
    pub fn read(&mut self, max: usize, wait: Duration) -> Result<Vec<JournalEntry>, JournalError> {
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        while out.len() < max && self.stopped.is_none() {
            let msg = if out.is_empty() {
                match self.lines.recv_deadline(deadline) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => Msg::End,
                }
            } else {
                match self.lines.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => Msg::End,
                }
            };
            match msg {
                Msg::Line(l) => out.extend(self.entry(l)),
                Msg::End => self.stop(None),
                Msg::Failed(e) => self.stop(Some(format!("output could not be read: {e}"))),
            }
        }
        if out.is_empty() {
            if let Some(reason) = &self.stopped {
                return Err(self.stopped_error(reason.clone()));
            }
        }
        Ok(out)
    }

    /// `Ok` while journalctl runs; its exit status and the end of its standard error once it has
    /// stopped ([`read`](Self::read) still returns what it wrote before).
    pub fn check(&mut self) -> Result<(), JournalError> {
        if let Some(reason) = &self.stopped {
            return Err(self.stopped_error(reason.clone()));
        }
        if self.exit.is_none() {
            match self.child.try_wait() {
                Ok(None) => return Ok(()),
                Ok(Some(st)) => self.exit = Some(st),
                Err(e) => {
                    return Err(self.stopped_error(format!("cannot be waited for: {e}")));
                }
            }
        }
        let reason = self.exit.map(exit_reason).unwrap_or_default();
        Err(self.stopped_error(reason))
    }

    /// The cursor of the last entry returned (the resume cursor before any).
    pub fn cursor(&self) -> Option<&str> {
        self.last_cursor.as_deref()
    }

    /// What has been read so far.
    pub fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// The journalctl command line, for logs.
    pub fn command(&self) -> &str {
        &self.command
    }

    fn entry(&mut self, l: RawLine) -> Option<JournalEntry> {
        self.stats.bytes += l.len as u64 + 1;
        if l.text.trim_ascii().is_empty() && !l.truncated {
            return None;
        }
        let cut = l.truncated.then_some(self.cap);
        let event = quarry_parse::parse_journald(&l.text, quarry_model::time::now_nanos(), cut);
        let cursor = event
            .fields
            .get("journald.cursor")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(l.cursor);
        if let Some(resume) = self.skip.take() {
            if cursor.as_deref() == Some(resume.as_str()) {
                return None;
            }
            self.stats.cursor_not_found += 1;
            tracing::warn!(
                cursor = %resume,
                "the journal no longer holds the resume cursor's entry (vacuumed, another journal, or other units): reading on from the next entry"
            );
        }
        self.stats.entries += 1;
        if l.truncated {
            self.stats.truncated += 1;
        }
        if event.parse_error.is_some() {
            self.stats.parse_errors += 1;
        }
        let cursor = match cursor {
            Some(c) => {
                self.last_cursor = Some(c.clone());
                c
            }
            None => self.last_cursor.clone().unwrap_or_default(),
        };
        Some(JournalEntry { cursor, event })
    }

    /// Records that the output has ended: waits briefly for the exit status and the rest of stderr.
    fn stop(&mut self, failure: Option<String>) {
        let deadline = Instant::now() + Duration::from_secs(2);
        if failure.is_some() {
            let _ = self.child.kill();
        }
        while self.exit.is_none() {
            match self.child.try_wait() {
                Ok(Some(st)) => self.exit = Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) | Err(_) => {
                    // it closed its output but goes on: it is of no use any more
                    let _ = self.child.kill();
                    if let Ok(st) = self.child.wait() {
                        self.exit = Some(st);
                    }
                    break;
                }
            }
        }
        if let Some(h) = &self.stderr_thread {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let reason = failure.unwrap_or_else(|| match self.exit {
            Some(st) => exit_reason(st),
            None => "closed its output".into(),
        });
        self.stopped = Some(reason);
    }

    fn stopped_error(&self, reason: String) -> JournalError {
        JournalError::Stopped {
            command: self.command.clone(),
            reason,
            stderr: self.stderr.lock().text(),
        }
    }
}

impl Drop for JournalReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // the output threads end by themselves: the pipes are closed and the channel's receiver goes
    }
}

fn read_output(out: ChildStdout, cap: usize, tx: crossbeam_channel::Sender<Msg>) {
    let mut r = BufReader::with_capacity(64 << 10, out);
    let mut buf = Vec::new();
    loop {
        let msg = match read_line(&mut r, cap, &mut buf) {
            Ok(Some(l)) => Msg::Line(l),
            Ok(None) => Msg::End,
            Err(e) => Msg::Failed(e),
        };
        let last = !matches!(msg, Msg::Line(_));
        if tx.send(msg).is_err() || last {
            return;
        }
    }
}

fn read_stderr(mut err: ChildStderr, tail: &parking_lot::Mutex<Tail>) {
    let mut chunk = [0u8; 4096];
    loop {
        match err.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => tail.lock().push(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The journald stream of the agent: a [`JournalReader`] restarted from its last cursor with backoff when
/// journalctl stops, and the batch of redacted entries being filled. The reader thread polls it without
/// waiting, so journald and files share one thread and one queue.
#[derive(Debug)]
pub struct Follower {
    cfg: JournaldConfig,
    max_record_bytes: usize,
    reader: Option<JournalReader>,
    /// The source descriptor of its events (node logs).
    pub source: Arc<Source>,
    /// Its stream id.
    pub source_id: String,
    seq: u64,
    cursor: Option<String>,
    batch: Vec<u8>,
    events: usize,
    since: Option<Instant>,
    retry_at: Instant,
    backoff: Duration,
    counted: JournalStats,
}

/// A sealed journald batch.
#[derive(Debug)]
pub struct JournalBatch {
    /// Its position in the stream.
    pub seq: u64,
    /// The cursor of its last entry.
    pub cursor: String,
    /// Events in it.
    pub events: usize,
    /// The events as native records.
    pub records: Vec<u8>,
}

const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);

impl Follower {
    /// A follower resuming after batch `seq` of `source_id`, whose last entry was `cursor`; `None` when no
    /// unit is configured.
    pub fn new(
        cfg: &crate::AgentConfig,
        source_id: String,
        seq: u64,
        cursor: Option<String>,
    ) -> Option<Follower> {
        if cfg.journald.units.is_empty() {
            return None;
        }
        Some(Follower {
            cfg: cfg.journald.clone(),
            max_record_bytes: cfg.max_record_bytes,
            reader: None,
            source: Arc::new(Source {
                kind: quarry_model::Kind::Syslog,
                cluster: cfg.cluster.clone(),
                node: Some(cfg.node_name.clone()),
                ..Source::default()
            }),
            source_id,
            seq,
            cursor,
            batch: Vec::new(),
            events: 0,
            since: None,
            retry_at: Instant::now(),
            backoff: RESTART_MIN,
            counted: JournalStats::default(),
        })
    }

    /// Takes up to `max` entries that are ready (never waits), through `keep` (redaction); starts or
    /// restarts journalctl when due. True if entries were read.
    pub fn poll(
        &mut self,
        max: usize,
        keep: &mut dyn FnMut(&mut Event) -> bool,
        metrics: &crate::metrics::AgentMetrics,
    ) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.reader.is_none() {
            if Instant::now() < self.retry_at {
                return false;
            }
            match JournalReader::start(&self.cfg, self.cursor.as_deref(), self.max_record_bytes) {
                Ok(r) => {
                    tracing::info!(command = r.command(), "reading journald");
                    self.reader = Some(r);
                    self.counted = JournalStats::default();
                    metrics.journal_up.store(1, Relaxed);
                }
                Err(e) => {
                    self.retry_later(&e.to_string(), metrics);
                    return false;
                }
            }
        }
        let Some(reader) = self.reader.as_mut() else {
            return false;
        };
        let read = reader.read(max, Duration::ZERO);
        // the reader's counters since it started, published as increments
        let st = reader.stats().clone();
        let was = std::mem::replace(&mut self.counted, st.clone());
        metrics
            .journal_entries
            .fetch_add(st.entries - was.entries, Relaxed);
        metrics
            .truncated
            .fetch_add(st.truncated - was.truncated, Relaxed);
        metrics
            .parse_errors
            .fetch_add(st.parse_errors - was.parse_errors, Relaxed);
        if st.cursor_not_found > was.cursor_not_found {
            metrics.lose(
                crate::metrics::Loss::JournalCursorLost,
                st.cursor_not_found - was.cursor_not_found,
            );
        }
        match read {
            Ok(entries) => {
                let got = !entries.is_empty();
                for mut e in entries {
                    if keep(&mut e.event) {
                        quarry_transport::encode_native(
                            std::slice::from_ref(&e.event),
                            &mut self.batch,
                        );
                        self.events += 1;
                        self.since.get_or_insert_with(Instant::now);
                    }
                    if !e.cursor.is_empty() {
                        self.cursor = Some(e.cursor);
                    }
                }
                if got {
                    self.backoff = RESTART_MIN;
                }
                got
            }
            Err(e) => {
                self.reader = None;
                self.retry_later(&e.to_string(), metrics);
                false
            }
        }
    }

    fn retry_later(&mut self, why: &str, metrics: &crate::metrics::AgentMetrics) {
        metrics
            .journal_up
            .store(0, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(error = why, retry_in = ?self.backoff, "journald cannot be read; retrying from the last cursor");
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(RESTART_MAX);
    }

    /// Raw bytes in the unsealed batch.
    pub fn batch_bytes(&self) -> usize {
        self.batch.len()
    }

    /// True when the batch is due: `max_bytes` reached, or its oldest entry is `max_wait` old.
    pub fn due(&self, max_bytes: usize, max_wait: Duration) -> bool {
        self.batch.len() >= max_bytes || self.since.is_some_and(|t| t.elapsed() >= max_wait)
    }

    /// Takes the batch, if any.
    pub fn seal(&mut self) -> Option<JournalBatch> {
        if self.events == 0 {
            return None;
        }
        self.seq += 1;
        self.since = None;
        Some(JournalBatch {
            seq: self.seq,
            cursor: self.cursor.clone().unwrap_or_default(),
            events: std::mem::take(&mut self.events),
            records: std::mem::take(&mut self.batch),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize, chunk: usize) -> Vec<RawLine> {
        // a reader that hands out at most `chunk` bytes at a time
        struct Slow<'a>(&'a [u8], usize);
        impl Read for Slow<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(self.1).min(b.len());
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = BufReader::with_capacity(chunk.max(1), Slow(input, chunk));
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(l) = read_line(&mut r, cap, &mut buf).unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn lines_are_capped_and_keep_their_cursor() {
        let long = format!(
            "{{\"MESSAGE\":\"{}\",\"__CURSOR\":\"s=abc;i=9\",\"X\":\"\\\"__CURSOR\\\":\\\"no\"}}",
            "é".repeat(100)
        );
        let input = format!("{{\"a\":1}}\n{long}\n\nlast without newline");
        for chunk in [1, 3, 7, 64, 4096] {
            let got = lines(input.as_bytes(), 51, chunk);
            assert_eq!(got.len(), 4, "chunk {chunk}");
            assert_eq!(got[0].text, "{\"a\":1}");
            assert!(!got[0].truncated && got[0].cursor.is_none());
            assert!(got[1].truncated);
            assert_eq!(got[1].len, long.len());
            // cut inside a two-byte character: the partial character is dropped
            assert_eq!(got[1].text.len(), 50);
            assert_eq!(got[1].cursor.as_deref(), Some("s=abc;i=9"));
            assert_eq!(got[2].text, "");
            assert_eq!(got[3].text, "last without newline");
        }
        // the key straddles the cap
        let line = r#"{"__CURSOR":"s=1;i=2","MESSAGE":"x"}"#;
        for cap in 1..line.len() {
            let got = lines(line.as_bytes(), cap, 5);
            assert_eq!(got[0].cursor.as_deref(), Some("s=1;i=2"), "cap {cap}");
        }
        assert!(lines(b"", 10, 1).is_empty());
    }

    #[test]
    fn cursor_scan_ignores_escaped_and_broken_keys() {
        let mut s = CursorScan::default();
        s.feed(br#"{"A":"\"__CURSOR\":\"x","__CURSOR"__CURSOR":"#);
        assert_eq!(s.found, None);
        s.feed(br#""s=ok"}"#);
        assert_eq!(s.found.as_deref(), Some("s=ok"));
        let mut s = CursorScan::default();
        s.feed(br#""__CURSOR":"a\"b","__CURSOR":"c"#);
        assert_eq!(s.found, None);
        s.feed(b"\"");
        assert_eq!(s.found.as_deref(), Some("c"));
    }

    #[test]
    fn the_reader_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<JournalReader>();
        send::<JournalEntry>();
    }

    #[test]
    fn config_defaults_and_names() {
        let cfg: JournaldConfig = serde_json::from_str(r#"{"units":["kubelet.service"]}"#).unwrap();
        assert_eq!(cfg.read_from, JournalStart::Boot);
        let cfg: JournaldConfig =
            serde_json::from_str(r#"{"units":[],"read_from":"tail"}"#).unwrap();
        assert_eq!(cfg.read_from, JournalStart::Tail);
        assert!(serde_json::from_str::<JournaldConfig>(r#"{"read_from":"now"}"#).is_err());
        assert!(serde_json::from_str::<JournaldConfig>(r#"{"unit":["x"]}"#).is_err());
        assert!(matches!(
            JournalReader::start(&JournaldConfig::default(), None, 10),
            Err(JournalError::NoUnits)
        ));
        let cmd = describe(
            Path::new("journalctl"),
            &["--unit=a".into(), "--cursor=s=1;i=2".into()],
        );
        assert_eq!(cmd, "journalctl --unit=a \"--cursor=s=1;i=2\"");
    }
}
