//! Quarry's parsers: bytes of a log stream in, [`Event`]s out.
//!
//! A [`Decoder`] takes a stream in chunks of any size (a chunk may end in the middle of a line or of a JSON
//! document) and yields one event per record: container runtime lines (CRI with `P`/`F` partials, docker
//! json-file with 16 KB splits), Kubernetes audit events (v1 and v1beta1, `EventList` batches, and the EKS,
//! GKE and AKS wrappers), VPC flow logs (versions 2 to 8, Transit Gateway, custom layouts), CloudTrail,
//! syslog (RFC 3164 and 5424), journald entries (`journalctl -o json`), klog, JSON, logfmt and plain text,
//! and can guess the format itself
//! ([`Format::Auto`]). Stack traces can be joined into one record ([`Multiline`]). sshd's messages, in
//! syslog and journald alike, also get `sshd.*` fields: the event, user, client address and port, method
//! (see the `sshd` module).
//!
//! Nothing is dropped: a record that cannot be read becomes an event that keeps its raw text and says why
//! in `parse_error`. Every event remembers the format that read it and, in `hint`, anything else needed to
//! read it again, so [`reparse`] gives the same message and fields from the stored text alone.
//!
//! Dependencies and why they are here:
//! - `quarry-model`: the shared `Event`, `Fields`, `Value` and UTC-nanosecond time functions.
//! - `memchr`: fast line splitting and substring search on the hot path.
//! - `serde` / `serde_json`: JSON records are flattened into fields straight from the parser (a serde
//!   visitor, no intermediate tree), docker lines are read into a borrowed struct; batches (`EventList`,
//!   `Records`, wrappers) are read as `serde_json::Value` to split them.
//! - `regex`: only for the user-given start pattern of custom multi-line joining (never on other paths).
//! - `thiserror`: the error types of format names and options.

mod container;
mod detect;
mod docs;
mod journald;
mod jsonflat;
mod klog;
mod logfmt;
mod multiline;
mod sshd;
mod syslog;
mod timeutil;
mod vpcflow;

pub use multiline::{Multiline, MultilineError, MultilineMode};

use container::{Piece, Rec};
use docs::{Ctx, DocFormat, Outcome};
use quarry_model::{Event, Fields, Kind};
use std::fmt;
use std::str::FromStr;

/// The default cap on one record's size: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// A JSON document still open after this many times `max_record_bytes` is given up as broken.
const MAX_DOC_OVERRUN: usize = 8;

/// Extra room for a container line's timestamp, stream, tag or JSON escaping beyond the content cap.
const CONTAINER_FRAMING: usize = 128 << 10;

/// A log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Guess from the first record, then keep that format.
    #[default]
    Auto,
    /// CRI or docker json-file, detected per line.
    Container,
    /// CRI (containerd, CRI-O): `TIMESTAMP STREAM P|F CONTENT`.
    Cri,
    /// docker json-file: `{"log":"...","stream":"...","time":"..."}`.
    Docker,
    /// Kubernetes API audit events, plain or in EKS/GKE/AKS wrappers.
    Audit,
    /// AWS VPC flow logs.
    VpcFlow,
    /// AWS CloudTrail records.
    CloudTrail,
    /// Syslog, RFC 3164 or 5424.
    Syslog,
    /// journald entries as `journalctl -o json` writes them, one JSON object per line.
    Journald,
    /// klog lines of Kubernetes components.
    Klog,
    /// One JSON object per record.
    Json,
    /// `key=value` pairs.
    Logfmt,
    /// Plain text lines.
    Text,
}

impl Format {
    /// Every format, in a fixed order.
    pub const ALL: [Format; 13] = [
        Format::Auto,
        Format::Container,
        Format::Cri,
        Format::Docker,
        Format::Audit,
        Format::VpcFlow,
        Format::CloudTrail,
        Format::Syslog,
        Format::Journald,
        Format::Klog,
        Format::Json,
        Format::Logfmt,
        Format::Text,
    ];

    /// The format's name (as in `Event::format`, the API and the CLI).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Container => "container",
            Format::Cri => "cri",
            Format::Docker => "docker",
            Format::Audit => "audit",
            Format::VpcFlow => "vpcflow",
            Format::CloudTrail => "cloudtrail",
            Format::Syslog => "syslog",
            Format::Journald => "journald",
            Format::Klog => "klog",
            Format::Json => "json",
            Format::Logfmt => "logfmt",
            Format::Text => "text",
        }
    }

    /// The source kind records of this format belong to.
    pub fn kind(self) -> Kind {
        match self {
            Format::Container | Format::Cri | Format::Docker => Kind::Container,
            Format::Audit => Kind::Audit,
            Format::VpcFlow => Kind::VpcFlow,
            Format::CloudTrail => Kind::CloudTrail,
            Format::Syslog | Format::Journald | Format::Klog => Kind::Syslog,
            Format::Json | Format::Logfmt => Kind::Json,
            Format::Text | Format::Auto => Kind::Text,
        }
    }

    /// The default format for a source kind.
    pub fn for_kind(kind: Kind) -> Format {
        match kind {
            Kind::Container => Format::Container,
            Kind::Audit => Format::Audit,
            Kind::VpcFlow => Format::VpcFlow,
            Kind::CloudTrail => Format::CloudTrail,
            Kind::Syslog => Format::Syslog,
            Kind::Json | Kind::Access => Format::Json,
            Kind::Text => Format::Text,
        }
    }

    fn doc(self) -> Option<DocFormat> {
        Some(match self {
            Format::Audit => DocFormat::Audit,
            Format::CloudTrail => DocFormat::CloudTrail,
            Format::Json => DocFormat::Json,
            Format::VpcFlow => DocFormat::VpcFlow,
            _ => return None,
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?}: expected one of auto, container, cri, docker, audit, vpcflow, cloudtrail, syslog, journald, klog, json, logfmt, text")]
pub struct ParseFormatError(pub String);

impl FromStr for Format {
    type Err = ParseFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseFormatError(s.to_string()))
    }
}

/// Settings of a [`Decoder`].
#[derive(Debug, Clone)]
pub struct DecoderOptions {
    /// Cap on one record (a line, a reassembled message, a JSON document); longer ones are cut and counted
    /// in [`DecodeStats::truncated`]. Default 1 MiB.
    pub max_record_bytes: usize,
    /// A custom VPC flow log format (`${version} ${vpc-id} ...`); a header line in the stream overrides it.
    pub vpc_format: Option<String>,
    /// Join stack traces of container messages and text lines.
    pub multiline: Option<Multiline>,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            vpc_format: None,
            multiline: None,
        }
    }
}

/// Options that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// `max_record_bytes` is zero.
    #[error("max_record_bytes must be at least 1")]
    ZeroMaxRecordBytes,
    /// `vpc_format` is not a list of field names.
    #[error("invalid vpc_format: {0}")]
    BadVpcFormat(String),
}

impl DecoderOptions {
    /// Checks the options; a [`Decoder`] built from invalid ones flags every affected record instead.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.max_record_bytes == 0 {
            return Err(OptionsError::ZeroMaxRecordBytes);
        }
        if let Some(f) = &self.vpc_format {
            vpcflow::parse_format(f).map_err(OptionsError::BadVpcFormat)?;
        }
        Ok(())
    }
}

/// Counters of what a [`Decoder`] has read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Events produced (including those with a parse error).
    pub records: u64,
    /// Events whose record could not be parsed.
    pub parse_errors: u64,
    /// Bytes fed.
    pub bytes: u64,
    /// Physical lines seen.
    pub lines: u64,
    /// Records cut at `max_record_bytes`.
    pub truncated: u64,
}

/// Joining state of one container stream (or of the text lines).
#[derive(Debug, Default)]
struct Slot {
    partial: Option<Rec>,
    held: Option<Rec>,
    state: multiline::State,
}

/// A JSON document spread over several lines.
#[derive(Debug)]
struct DocAccum {
    buf: String,
    depth: i64,
    in_str: bool,
    esc: bool,
    truncated: bool,
    /// Bytes seen since the document began (kept or not).
    seen: usize,
    /// `None` while the format is still to be detected (Auto).
    fmt: Option<DocFormat>,
    /// Offset in the input of the document's first line.
    start: u64,
}

impl DocAccum {
    fn scan(&mut self, s: &str) {
        self.seen += s.len() + 1;
        for &c in s.as_bytes() {
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if c == b'\\' {
                    self.esc = true;
                } else if c == b'"' {
                    self.in_str = false;
                }
            } else {
                match c {
                    b'"' => self.in_str = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => self.depth -= 1,
                    _ => {}
                }
            }
        }
    }

    fn complete(&self) -> bool {
        self.depth <= 0 && !self.in_str
    }
}

/// Streaming decoder: bytes in arbitrary chunks in, events out.
#[derive(Debug)]
pub struct Decoder {
    format: Format,
    opts: DecoderOptions,
    cap: usize,
    vpc_opt: Option<Result<vpcflow::Layout, String>>,
    vpc_header: Option<vpcflow::Layout>,
    stats: DecodeStats,
    carry: Vec<u8>,
    carry_truncated: bool,
    doc: Option<DocAccum>,
    slots: [Slot; 6],
    text: Slot,
    order: u64,
    /// Input offset of the line being read.
    line_start: u64,
    /// Input offset of the first byte in `carry`.
    carry_start: u64,
}

/// The hint that marks a record cut at `n` bytes.
pub(crate) fn trunc_hint(n: usize) -> String {
    format!("max_record_bytes={n}")
}

fn parse_trunc_hint(h: &str) -> Option<usize> {
    h.strip_prefix("max_record_bytes=")?.parse().ok()
}

/// An event for a record that could not be read.
pub(crate) fn error_event(
    format: &'static str,
    raw: &str,
    reason: String,
    ts: i64,
    hint: Option<&str>,
) -> Event {
    Event {
        ts,
        raw: raw.to_string(),
        message: None,
        fields: Fields::new(),
        parse_error: Some(reason),
        hint: hint.map(str::to_string),
        format,
    }
}

fn fields_event(format: &'static str, raw: &str, fields: Fields, ts: i64) -> Event {
    Event {
        ts,
        raw: raw.to_string(),
        message: None,
        fields,
        parse_error: None,
        hint: None,
        format,
    }
}

impl Decoder {
    /// A decoder for `format` with default options.
    pub fn new(format: Format) -> Decoder {
        Decoder::with_options(format, DecoderOptions::default())
    }

    /// A decoder for `format` with the given options.
    pub fn with_options(format: Format, opts: DecoderOptions) -> Decoder {
        let vpc_opt = opts.vpc_format.as_deref().map(vpcflow::parse_format);
        Decoder {
            format,
            cap: opts.max_record_bytes.max(1),
            opts,
            vpc_opt,
            vpc_header: None,
            stats: DecodeStats::default(),
            carry: Vec::new(),
            carry_truncated: false,
            doc: None,
            slots: Default::default(),
            text: Slot::default(),
            order: 0,
            line_start: 0,
            carry_start: 0,
        }
    }

    /// The format in use: the one given, or the one detected once `Auto` has seen its first record.
    pub fn format(&self) -> Format {
        self.format
    }

    /// What has been read so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Reads a chunk; complete records are appended to `out`. `fallback_ts` (UTC ns) is the time of records
    /// without their own, and "now" for stamps without a year.
    pub fn feed(&mut self, chunk: &[u8], fallback_ts: i64, out: &mut Vec<Event>) {
        let before = out.len();
        let base = self.stats.bytes;
        self.stats.bytes += chunk.len() as u64;
        let mut rest = chunk;
        if self.carrying() {
            match memchr::memchr(b'\n', rest) {
                None => {
                    self.stash(rest);
                    return;
                }
                Some(i) => {
                    self.stash(&rest[..i]);
                    rest = &rest[i + 1..];
                    let line = std::mem::take(&mut self.carry);
                    let tr = std::mem::replace(&mut self.carry_truncated, false);
                    self.line_start = self.carry_start;
                    self.line(&line, tr, fallback_ts, out);
                    self.carry = line;
                    self.carry.clear();
                }
            }
        }
        let rest_base = base + (chunk.len() - rest.len()) as u64;
        let mut start = 0;
        for i in memchr::memchr_iter(b'\n', rest) {
            let line = &rest[start..i];
            let cap = self.line_cap();
            self.line_start = rest_base + start as u64;
            if line.len() > cap {
                self.line(&line[..cap], true, fallback_ts, out);
            } else {
                self.line(line, false, fallback_ts, out);
            }
            start = i + 1;
        }
        self.carry_start = rest_base + start as u64;
        self.stash(&rest[start..]);
        self.count(before, out);
    }

    fn carrying(&self) -> bool {
        !self.carry.is_empty() || self.carry_truncated
    }

    /// Input offset (counting every byte fed) where the oldest record not yet emitted begins: a line still
    /// without its newline, pending partial lines, a held multi-line record or an open JSON document.
    /// Everything before it has been emitted; when nothing is pending it is the number of bytes fed. A
    /// reader that restarts from here with a new decoder reads the pending records again whole.
    pub fn pending_offset(&self) -> u64 {
        let recs = self.slots.iter().chain(std::iter::once(&self.text));
        recs.flat_map(|s| [s.partial.as_ref(), s.held.as_ref()])
            .flatten()
            .map(|r| r.start)
            .chain(self.doc.as_ref().map(|d| d.start))
            .chain(self.carrying().then_some(self.carry_start))
            .min()
            .unwrap_or(self.stats.bytes)
    }

    /// Emits records held for joining (partial lines, multi-line records, an open JSON document) but keeps a
    /// last line that has no newline yet: the flush of a stream that has gone quiet.
    pub fn flush_records(&mut self, fallback_ts: i64, out: &mut Vec<Event>) {
        let before = out.len();
        if let Some(acc) = self.doc.take() {
            self.finish_doc(acc, fallback_ts, out);
        }
        self.flush_container(out);
        self.flush_text(out);
        self.count(before, out);
    }

    /// Flushes everything still buffered: a last line without newline, pending partial lines, a held
    /// multi-line record, an unfinished JSON document. The decoder can be fed again afterwards (this also
    /// serves as an idle-time flush).
    pub fn finish(&mut self, fallback_ts: i64, out: &mut Vec<Event>) {
        let before = out.len();
        if self.carrying() {
            let line = std::mem::take(&mut self.carry);
            let tr = std::mem::replace(&mut self.carry_truncated, false);
            self.line_start = self.carry_start;
            self.line(&line, tr, fallback_ts, out);
            self.carry = line;
            self.carry.clear();
        }
        self.count(before, out);
        self.flush_records(fallback_ts, out);
    }

    fn count(&mut self, before: usize, out: &[Event]) {
        for ev in &out[before..] {
            self.stats.records += 1;
            if ev.parse_error.is_some() {
                self.stats.parse_errors += 1;
            }
        }
    }

    /// Longest physical line kept: the record cap, plus room for the framing of container lines (their
    /// content is capped separately).
    fn line_cap(&self) -> usize {
        match self.format {
            Format::Container | Format::Cri | Format::Docker => {
                self.cap.saturating_add(CONTAINER_FRAMING)
            }
            _ => self.cap,
        }
    }

    fn stash(&mut self, bytes: &[u8]) {
        if self.carry_truncated {
            return;
        }
        let cap = self.line_cap();
        let room = cap - self.carry.len().min(cap);
        if bytes.len() > room {
            self.carry.extend_from_slice(&bytes[..room]);
            self.carry_truncated = true;
        } else {
            self.carry.extend_from_slice(bytes);
        }
    }

    fn next_order(&mut self) -> u64 {
        self.order += 1;
        self.order
    }

    fn line(&mut self, bytes: &[u8], truncated: bool, fb: i64, out: &mut Vec<Event>) {
        self.stats.lines += 1;
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        // std's validation has an ASCII fast path that the lossy conversion lacks
        let text = match std::str::from_utf8(bytes) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        self.dispatch(&text, truncated, fb, out);
    }

    fn dispatch(&mut self, text: &str, truncated: bool, fb: i64, out: &mut Vec<Event>) {
        if self.doc.is_some() {
            self.continue_doc(text, truncated, fb, out);
            return;
        }
        let blank = text.trim_ascii().is_empty();
        match self.format {
            Format::Text => return self.text_line(text, blank, truncated, fb, out),
            Format::Container | Format::Cri | Format::Docker if !blank => {
                return self.container_line(text, truncated, fb, out)
            }
            _ => {}
        }
        if blank {
            return;
        }
        let single_line = matches!(
            self.format,
            Format::Syslog | Format::Journald | Format::Klog | Format::Logfmt
        ) || (self.format == Format::VpcFlow
            && !text.trim_ascii_start().starts_with('{'));
        if truncated && single_line {
            self.stats.truncated += 1;
        }
        match self.format {
            Format::Auto => self.detect(text, truncated, fb, out),
            Format::Audit | Format::CloudTrail | Format::Json => {
                let fmt = self.format.doc().unwrap_or(DocFormat::Json);
                self.start_doc(Some(fmt), text, truncated, fb, out)
            }
            Format::VpcFlow => self.vpc_line(text, truncated, fb, out),
            Format::Syslog => {
                let mut f = Fields::new();
                out.push(match syslog::parse(text, fb, &mut f) {
                    Ok(ts) => fields_event("syslog", text, f, ts.unwrap_or(fb)),
                    Err(e) => error_event("syslog", text, e, fb, None),
                });
            }
            Format::Klog => {
                let mut f = Fields::new();
                out.push(match klog::parse(text, fb, &mut f) {
                    Ok(ts) => fields_event("klog", text, f, ts),
                    Err(e) => error_event("klog", text, e, fb, None),
                });
            }
            Format::Journald => out.push(journald::parse(text, fb, truncated.then_some(self.cap))),
            Format::Logfmt => out.push(logfmt_event(text, fb)),
            Format::Container | Format::Cri | Format::Docker | Format::Text => {}
        }
    }

    fn detect(&mut self, text: &str, truncated: bool, fb: i64, out: &mut Vec<Event>) {
        let t = text.trim_ascii_start();
        if t.starts_with('{') || t.starts_with('[') {
            return self.start_doc(None, text, truncated, fb, out);
        }
        self.format = detect::detect_line(text, fb);
        self.dispatch(text, truncated, fb, out);
    }

    /// Starts reading a JSON document at `text`; `fmt` is `None` while Auto has not decided yet.
    fn start_doc(
        &mut self,
        fmt: Option<DocFormat>,
        text: &str,
        truncated: bool,
        fb: i64,
        out: &mut Vec<Event>,
    ) {
        let t = text.trim_ascii_start();
        let jsonish = t.starts_with('{') || t.starts_with('[');
        let fmt = match fmt {
            Some(f) => f,
            None => match serde_json::from_str::<serde_json::Value>(t) {
                Ok(v) => {
                    self.format = detect::detect_value(&v);
                    return self.dispatch(text, truncated, fb, out);
                }
                Err(e) if e.is_eof() && !truncated => {
                    self.begin_accum(None, text, false);
                    return;
                }
                Err(_) => {
                    // `[Sun Dec 04 ...] text` and the like: not JSON after all
                    self.format = match detect::detect_line(text, fb) {
                        Format::Text if t.starts_with('{') => Format::Json,
                        f => f,
                    };
                    return self.dispatch(text, truncated, fb, out);
                }
            },
        };
        let layout = self.layout().cloned();
        let mut ctx = Ctx {
            fallback: fb,
            out,
            allow_incomplete: jsonish && !truncated,
            truncated: truncated.then_some(self.cap),
            vpc: layout.as_ref(),
            now: fb,
        };
        if docs::read(fmt, text, &mut ctx) == Outcome::Incomplete {
            self.begin_accum(Some(fmt), text, truncated);
        } else if truncated {
            self.stats.truncated += 1;
        }
    }

    fn begin_accum(&mut self, fmt: Option<DocFormat>, text: &str, truncated: bool) {
        let mut acc = DocAccum {
            buf: text.to_string(),
            depth: 0,
            in_str: false,
            esc: false,
            truncated,
            seen: 0,
            fmt,
            start: self.line_start,
        };
        acc.scan(text);
        self.doc = Some(acc);
    }

    fn continue_doc(&mut self, text: &str, truncated: bool, fb: i64, out: &mut Vec<Event>) {
        let Some(mut acc) = self.doc.take() else {
            return;
        };
        // Inside an open object, a line at column 0 that is a whole JSON object by itself means the open
        // document was cut off.
        if acc.buf.starts_with('{') && text.starts_with("{\"") && text.ends_with('}') {
            let mut probe = DocAccum {
                buf: String::new(),
                depth: 0,
                in_str: false,
                esc: false,
                truncated: false,
                seen: 0,
                fmt: None,
                start: 0,
            };
            probe.scan(text);
            if probe.complete() && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
                self.finish_doc(acc, fb, out);
                return self.dispatch(text, truncated, fb, out);
            }
        }
        if acc.buf.len() + 1 + text.len() > self.cap || truncated {
            if !acc.truncated {
                let room = self.cap.saturating_sub(acc.buf.len() + 1);
                if room > 0 {
                    acc.buf.push('\n');
                    let mut cut = room.min(text.len());
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    acc.buf.push_str(&text[..cut]);
                }
            }
            acc.truncated = true;
        } else {
            acc.buf.push('\n');
            acc.buf.push_str(text);
        }
        acc.scan(text);
        // a document that never closes must not swallow the rest of the stream
        if acc.complete() || acc.seen > self.cap.saturating_mul(MAX_DOC_OVERRUN) {
            self.finish_doc(acc, fb, out);
        } else {
            self.doc = Some(acc);
        }
    }

    fn finish_doc(&mut self, acc: DocAccum, fb: i64, out: &mut Vec<Event>) {
        if acc.truncated {
            self.stats.truncated += 1;
        }
        let fmt = match acc.fmt {
            Some(f) => f,
            None => {
                self.format = match serde_json::from_str::<serde_json::Value>(&acc.buf) {
                    // journalctl writes an entry on one line; spread over lines (`-o json-pretty`) it
                    // is read as JSON
                    Ok(v) => match detect::detect_value(&v) {
                        Format::Journald => Format::Json,
                        f => f,
                    },
                    Err(_) => Format::Json,
                };
                match self.format.doc() {
                    Some(f) => f,
                    None => {
                        // a docker line spread over lines (never written so by docker, but keep it)
                        return self.container_line(&acc.buf, acc.truncated, fb, out);
                    }
                }
            }
        };
        let layout = self.layout().cloned();
        let mut ctx = Ctx {
            fallback: fb,
            out,
            allow_incomplete: false,
            truncated: acc.truncated.then_some(self.cap),
            vpc: layout.as_ref(),
            now: fb,
        };
        docs::read(fmt, &acc.buf, &mut ctx);
    }

    fn layout(&self) -> Option<&vpcflow::Layout> {
        self.vpc_header
            .as_ref()
            .or_else(|| self.vpc_opt.as_ref().and_then(|r| r.as_ref().ok()))
    }

    fn vpc_line(&mut self, text: &str, truncated: bool, fb: i64, out: &mut Vec<Event>) {
        let t = text.trim_ascii_start();
        if t.starts_with('{') {
            return self.start_doc(Some(DocFormat::VpcFlow), text, truncated, fb, out);
        }
        if let Some(l) = vpcflow::parse_header(t) {
            self.vpc_header = Some(l);
            return;
        }
        if let (None, Some(Err(e))) = (&self.vpc_header, &self.vpc_opt) {
            let hint = self.opts.vpc_format.as_deref();
            out.push(error_event(
                "vpcflow",
                text,
                format!("invalid vpc_format: {e}"),
                fb,
                hint,
            ));
            return;
        }
        let layout = self.layout().cloned();
        let mut ctx = Ctx {
            fallback: fb,
            out,
            allow_incomplete: false,
            truncated: None,
            vpc: layout.as_ref(),
            now: fb,
        };
        docs::vpc_line(text, text, &mut ctx);
    }

    // ------------------------------------------------------------------------------------------------
    // container lines

    fn container_line(&mut self, text: &str, truncated: bool, fb: i64, out: &mut Vec<Event>) {
        let parsed = match self.format {
            Format::Cri => container::parse_cri(text),
            Format::Docker => container::parse_docker(text),
            _ => container::parse_any(text),
        };
        let p: Piece<'_> = match parsed {
            Ok(p) => p,
            Err(reason) => {
                self.flush_container(out);
                let name = match self.format {
                    Format::Cri => "cri",
                    Format::Docker => "docker",
                    _ => "container",
                };
                out.push(error_event(name, text, reason, fb, None));
                return;
            }
        };
        let slot = p.slot();
        if self.slots[slot].partial.is_none() {
            let order = self.next_order();
            let mut rec = Rec::new(p.ts, order, p.runtime, &p.stream);
            rec.start = self.line_start;
            self.slots[slot].partial = Some(rec);
        }
        let cap = self.cap;
        if let Some(rec) = self.slots[slot].partial.as_mut() {
            rec.add(text, &p, cap);
            rec.truncated |= truncated;
        }
        if p.complete {
            if let Some(unit) = self.slots[slot].partial.take() {
                self.deliver(slot, unit, out);
            }
        }
    }

    /// Passes a complete container message to multi-line joining (or straight out).
    fn deliver(&mut self, slot: usize, unit: Rec, out: &mut Vec<Event>) {
        let Some(ml) = &self.opts.multiline else {
            return self.emit_rec(unit, out);
        };
        let content = unit.msg.strip_suffix('\n').unwrap_or(&unit.msg);
        let (d, st) = multiline::decide(&ml.mode, self.slots[slot].state, content);
        self.slots[slot].state = st;
        match d {
            multiline::Decision::Join => match self.slots[slot].held.as_mut() {
                Some(h) => h.join(unit, self.cap),
                None => self.emit_rec(unit, out),
            },
            multiline::Decision::Start => {
                if let Some(h) = self.slots[slot].held.replace(unit) {
                    self.emit_rec(h, out);
                }
            }
            multiline::Decision::Single => {
                if let Some(h) = self.slots[slot].held.take() {
                    self.emit_rec(h, out);
                }
                self.emit_rec(unit, out);
            }
        }
    }

    fn emit_rec(&mut self, rec: Rec, out: &mut Vec<Event>) {
        let (cap, hint) = if rec.truncated {
            self.stats.truncated += 1;
            (Some(self.cap), Some(trunc_hint(self.cap)))
        } else {
            (None, None)
        };
        out.push(container::to_event(rec, cap, hint));
    }

    /// Emits every pending partial and held record, oldest first.
    fn flush_container(&mut self, out: &mut Vec<Event>) {
        let mut pending: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let o = [s.partial.as_ref(), s.held.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(|r| r.order)
                    .min()?;
                Some((o, i))
            })
            .collect();
        pending.sort_unstable();
        for (_, i) in pending {
            if let Some(p) = self.slots[i].partial.take() {
                self.deliver(i, p, out);
            }
            if let Some(h) = self.slots[i].held.take() {
                self.emit_rec(h, out);
            }
            self.slots[i].state = multiline::State::Idle;
        }
    }

    // ------------------------------------------------------------------------------------------------
    // text lines

    fn text_event(&self, text: String, fb: i64) -> Event {
        let ts = timeutil::sniff_leading(&text, fb).unwrap_or(fb);
        Event {
            ts,
            raw: text,
            message: None,
            fields: Fields::new(),
            parse_error: None,
            hint: None,
            format: "text",
        }
    }

    fn text_line(
        &mut self,
        text: &str,
        blank: bool,
        truncated: bool,
        fb: i64,
        out: &mut Vec<Event>,
    ) {
        let Some(ml) = &self.opts.multiline else {
            if !blank {
                if truncated {
                    self.stats.truncated += 1;
                }
                out.push(self.text_event(text.to_string(), fb));
            }
            return;
        };
        if blank && self.text.held.is_none() {
            return;
        }
        let (d, st) = multiline::decide(&ml.mode, self.text.state, text);
        self.text.state = st;
        match d {
            multiline::Decision::Join => {
                let cap = self.cap;
                match self.text.held.as_mut() {
                    Some(h) if h.raw.len() >= cap => h.truncated = true,
                    Some(h) => {
                        h.raw.push('\n');
                        h.raw.push_str(text);
                        h.truncated |= truncated;
                    }
                    None => {
                        if truncated {
                            self.stats.truncated += 1;
                        }
                        out.push(self.text_event(text.to_string(), fb))
                    }
                }
            }
            multiline::Decision::Start => {
                self.flush_text(out);
                self.text.state = st;
                let order = self.next_order();
                let mut r = Rec::new(fb, order, container::Runtime::Cri, "");
                r.start = self.line_start;
                r.raw.push_str(text);
                r.truncated = truncated;
                self.text.held = Some(r);
            }
            multiline::Decision::Single => {
                self.flush_text(out);
                if !blank {
                    if truncated {
                        self.stats.truncated += 1;
                    }
                    out.push(self.text_event(text.to_string(), fb));
                }
            }
        }
    }

    fn flush_text(&mut self, out: &mut Vec<Event>) {
        self.text.state = multiline::State::Idle;
        if let Some(h) = self.text.held.take() {
            let mut ev = self.text_event(h.raw, h.ts);
            if h.truncated {
                self.stats.truncated += 1;
                ev.hint = Some(trunc_hint(self.cap));
            }
            out.push(ev);
        }
    }
}

fn logfmt_event(text: &str, fb: i64) -> Event {
    let mut f = Fields::new();
    match logfmt::parse(text, &mut f) {
        Ok(_) => {
            let ts = docs::json_ts(&f, fb).unwrap_or(fb);
            fields_event("logfmt", text, f, ts)
        }
        Err(e) => error_event("logfmt", text, e, fb, None),
    }
}

/// Reads one stored record again from its raw text, the `format` name and the `hint` a [`Decoder`] gave
/// it: the message, fields and parse error are those the decoder produced; `ts` is the caller's.
pub fn reparse(format: &str, raw: &str, hint: Option<&str>, ts: i64) -> Event {
    let fmt = match format.parse::<Format>() {
        Ok(f) => f,
        Err(e) => return error_event("text", raw, e.to_string(), ts, hint),
    };
    let cap = hint.and_then(parse_trunc_hint);
    let mut ev = match fmt {
        Format::Auto => {
            let first = raw.split('\n').next().unwrap_or("");
            let t = raw.trim_ascii_start();
            let f = if t.starts_with('{') || t.starts_with('[') {
                serde_json::from_str::<serde_json::Value>(t)
                    .map(|v| detect::detect_value(&v))
                    .unwrap_or(Format::Json)
            } else {
                detect::detect_line(first, ts)
            };
            return reparse(f.as_str(), raw, hint, ts);
        }
        Format::Container | Format::Cri | Format::Docker => {
            container::reparse(fmt.as_str(), raw, cap, hint, ts)
        }
        Format::Text => Event {
            ts,
            raw: raw.to_string(),
            message: None,
            fields: Fields::new(),
            parse_error: None,
            hint: None,
            format: "text",
        },
        Format::Syslog => {
            let mut f = Fields::new();
            match syslog::parse(raw, ts, &mut f) {
                Ok(_) => fields_event("syslog", raw, f, ts),
                Err(e) => error_event("syslog", raw, e, ts, None),
            }
        }
        Format::Klog => {
            let mut f = Fields::new();
            match klog::parse(raw, ts, &mut f) {
                Ok(_) => fields_event("klog", raw, f, ts),
                Err(e) => error_event("klog", raw, e, ts, None),
            }
        }
        Format::Logfmt => logfmt_event(raw, ts),
        Format::Journald => journald::parse(raw, ts, cap),
        Format::Audit | Format::CloudTrail | Format::Json | Format::VpcFlow => {
            let layout = match (fmt, hint) {
                (Format::VpcFlow, Some(h)) if cap.is_none() => match vpcflow::parse_format(h) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        return error_event(
                            "vpcflow",
                            raw,
                            format!("invalid vpc_format: {e}"),
                            ts,
                            Some(h),
                        )
                    }
                },
                _ => None,
            };
            let mut out = Vec::with_capacity(1);
            let mut ctx = Ctx {
                fallback: ts,
                out: &mut out,
                allow_incomplete: false,
                truncated: cap,
                vpc: layout.as_ref(),
                now: ts,
            };
            let t = raw.trim_ascii_start();
            if fmt == Format::VpcFlow && !t.starts_with('{') {
                docs::vpc_line(raw, raw, &mut ctx);
            } else if let Some(d) = fmt.doc() {
                docs::read(d, raw, &mut ctx);
            }
            match out.into_iter().next() {
                Some(ev) => ev,
                None => error_event(fmt.as_str(), raw, "no record in the text".into(), ts, hint),
            }
        }
    };
    ev.ts = ts;
    ev.hint = hint.map(str::to_string);
    ev
}

/// Reads one line of `journalctl -o json` ([`Format::Journald`]) into an event, as a [`Decoder`] would;
/// `cut_at` is the record cap when the line was cut at it (the event is then its raw text with a parse
/// error). `fallback_ts` (UTC ns) is the time of an entry without one.
pub fn parse_journald(line: &str, fallback_ts: i64, cut_at: Option<usize>) -> Event {
    journald::parse(line, fallback_ts, cut_at)
}

/// Decodes a whole buffer at once (a convenience for tests and importers).
pub fn decode_all(
    format: Format,
    opts: DecoderOptions,
    data: &[u8],
    fallback_ts: i64,
) -> (Vec<Event>, DecodeStats) {
    let mut d = Decoder::with_options(format, opts);
    let mut out = Vec::new();
    d.feed(data, fallback_ts, &mut out);
    d.finish(fallback_ts, &mut out);
    (out, d.stats().clone())
}
