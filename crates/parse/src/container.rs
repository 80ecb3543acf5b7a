//! Container runtime log lines: CRI (`TIMESTAMP STREAM P|F CONTENT`, containerd and CRI-O) and docker's
//! json-file driver (`{"log":"...\n","stream":"stdout","time":"..."}`), and the reassembly of partial lines.

use crate::jsonflat;
use quarry_model::time::parse_rfc3339_prefix;
use quarry_model::{Event, Fields};
use serde::Deserialize;
use std::borrow::Cow;

/// Which runtime format a line is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    Cri,
    Docker,
}

impl Runtime {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Runtime::Cri => "cri",
            Runtime::Docker => "docker",
        }
    }
}

/// One physical container log line, parsed.
#[derive(Debug)]
pub(crate) struct Piece<'a> {
    pub(crate) runtime: Runtime,
    pub(crate) ts: i64,
    pub(crate) stream: Cow<'a, str>,
    /// CRI log tag (`F`, `P`, possibly with more `:`-separated tags); empty for docker.
    pub(crate) tag: &'a str,
    pub(crate) content: Cow<'a, str>,
    /// The line ends a message (CRI `F`, docker `log` ending with a newline).
    pub(crate) complete: bool,
}

impl Piece<'_> {
    /// Index of the reassembly slot for this line's runtime and stream.
    pub(crate) fn slot(&self) -> usize {
        let s = match &*self.stream {
            "stdout" => 0,
            "stderr" => 1,
            _ => 2,
        };
        s + if self.runtime == Runtime::Docker {
            3
        } else {
            0
        }
    }
}

/// Parses a CRI line.
pub(crate) fn parse_cri(line: &str) -> Result<Piece<'_>, String> {
    let (ts, used) = parse_rfc3339_prefix(line)
        .ok_or("not a CRI line: expected an RFC 3339 timestamp at the start")?;
    let rest = line[used..]
        .strip_prefix(' ')
        .ok_or("not a CRI line: expected a space after the timestamp")?;
    let sp = rest
        .find(' ')
        .ok_or("not a CRI line: expected a stream and a tag")?;
    let stream = &rest[..sp];
    if stream != "stdout" && stream != "stderr" {
        return Err(format!(
            "not a CRI line: stream {stream:?} is not stdout or stderr"
        ));
    }
    let rest = &rest[sp + 1..];
    let (tag, content) = match rest.find(' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let first = tag.split(':').next().unwrap_or("");
    let complete = match first {
        "F" => true,
        "P" => false,
        _ => return Err(format!("not a CRI line: tag {tag:?} is not P or F")),
    };
    Ok(Piece {
        runtime: Runtime::Cri,
        ts,
        stream: Cow::Borrowed(stream),
        tag,
        content: Cow::Borrowed(content),
        complete,
    })
}

#[derive(Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// Parses a docker json-file line.
pub(crate) fn parse_docker(line: &str) -> Result<Piece<'_>, String> {
    let d: DockerLine =
        serde_json::from_str(line).map_err(|e| format!("not a docker json-file line: {e}"))?;
    let ts = quarry_model::time::parse_rfc3339(&d.time)
        .map_err(|e| format!("docker json-file line: {e}"))?;
    let complete = d.log.ends_with('\n');
    Ok(Piece {
        runtime: Runtime::Docker,
        ts,
        stream: d.stream,
        tag: "",
        content: d.log,
        complete,
    })
}

/// Parses a line as CRI or docker, whichever it looks like.
pub(crate) fn parse_any(line: &str) -> Result<Piece<'_>, String> {
    match line.as_bytes().first() {
        Some(b'{') => parse_docker(line),
        Some(c) if c.is_ascii_digit() => parse_cri(line),
        _ => Err("not a CRI or docker json-file line".into()),
    }
}

/// A record being reassembled from physical lines: partial lines of one message and, with multi-line
/// joining, several messages.
#[derive(Debug)]
pub(crate) struct Rec {
    pub(crate) raw: String,
    /// The content so far; CRI `F` lines add a newline, docker lines keep theirs, so joined messages are
    /// separated by `\n` and one trailing newline is removed at the end.
    pub(crate) msg: String,
    pub(crate) ts: i64,
    pub(crate) tag: String,
    pub(crate) lines: u32,
    pub(crate) truncated: bool,
    pub(crate) order: u64,
    pub(crate) rt: Runtime,
    pub(crate) stream: String,
    /// Offset in the decoder's input of the record's first physical line.
    pub(crate) start: u64,
}

impl Rec {
    pub(crate) fn new(ts: i64, order: u64, rt: Runtime, stream: &str) -> Rec {
        Rec {
            raw: String::new(),
            msg: String::new(),
            ts,
            tag: String::new(),
            lines: 0,
            truncated: false,
            order,
            rt,
            stream: stream.to_string(),
            start: 0,
        }
    }

    /// Adds a physical line unless the record already holds `cap` bytes of content.
    pub(crate) fn add(&mut self, raw_line: &str, p: &Piece<'_>, cap: usize) {
        if self.lines > 0 && self.msg.len() >= cap {
            self.truncated = true;
            return;
        }
        if self.lines > 0 {
            self.raw.push('\n');
        }
        self.raw.push_str(raw_line);
        self.msg.push_str(&p.content);
        if p.runtime == Runtime::Cri && p.complete {
            self.msg.push('\n');
        }
        self.tag.clear();
        self.tag.push_str(p.tag);
        self.lines += 1;
        if self.msg.len() > cap {
            self.truncated = true;
        }
    }

    /// Appends a whole record (multi-line joining) unless this one is already full.
    pub(crate) fn join(&mut self, other: Rec, cap: usize) {
        self.truncated |= other.truncated;
        if self.msg.len() >= cap {
            self.truncated = true;
            return;
        }
        self.raw.push('\n');
        self.raw.push_str(&other.raw);
        self.msg.push_str(&other.msg);
        self.tag = other.tag;
        self.lines += other.lines;
        if self.msg.len() > cap {
            self.truncated = true;
        }
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub(crate) fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut i = max;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
}

/// The event of a finished record. `cap` is the message limit in force (`None`: no limit).
pub(crate) fn to_event(rec: Rec, cap: Option<usize>, hint: Option<String>) -> Event {
    let rt = rec.rt;
    let mut msg = rec.msg;
    if msg.ends_with('\n') {
        msg.pop();
    }
    if let Some(cap) = cap {
        cut(&mut msg, cap);
    }
    let fields = fields_for(rt, &rec.stream, &rec.tag, &msg);
    Event {
        ts: rec.ts,
        raw: rec.raw,
        message: Some(msg),
        fields,
        parse_error: None,
        hint,
        format: rt.name(),
    }
}

fn fields_for(rt: Runtime, stream: &str, tag: &str, msg: &str) -> Fields {
    let base = || {
        let mut f = Fields::new();
        f.push("stream", stream);
        if rt == Runtime::Cri {
            f.push("logtag", tag);
        }
        f
    };
    let mut f = base();
    if jsonflat::looks_like_object(msg) {
        let skip: &[&str] = match rt {
            Runtime::Cri => &["stream", "logtag"],
            Runtime::Docker => &["stream"],
        };
        if jsonflat::flatten_str(msg, &mut f, skip).is_err() {
            f = base();
            // loggers sometimes put raw newlines or tabs inside JSON strings
            if let Some(fixed) = jsonflat::escape_controls_in_strings(msg) {
                if jsonflat::flatten_str(&fixed, &mut f, skip).is_err() {
                    f = base();
                }
            }
        }
    }
    f
}

/// Reads a stored container record again: its physical lines joined by `\n`.
pub(crate) fn reparse(
    fmt: &'static str,
    raw: &str,
    cap: Option<usize>,
    hint: Option<&str>,
    ts: i64,
) -> Event {
    let mut rec: Option<Rec> = None;
    for line in raw.split('\n') {
        let p = match fmt {
            "cri" => parse_cri(line),
            "docker" => parse_docker(line),
            _ => parse_any(line),
        };
        let p = match p {
            Ok(p) => p,
            Err(e) => return crate::error_event(fmt, raw, e, ts, hint),
        };
        let r = rec.get_or_insert_with(|| Rec::new(ts, 0, p.runtime, &p.stream));
        r.add(line, &p, usize::MAX);
    }
    match rec {
        Some(r) => to_event(r, cap, hint.map(str::to_string)),
        None => crate::error_event(fmt, raw, "empty record".into(), ts, hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_shapes() {
        let p = parse_cri("2016-10-06T00:17:09.669794202Z stdout F The content").unwrap();
        assert_eq!(
            (&*p.stream, p.tag, &*p.content, p.complete),
            ("stdout", "F", "The content", true)
        );
        let p = parse_cri("2019-05-07T18:57:50.904275087+00:00 stderr P ").unwrap();
        assert_eq!((&*p.stream, &*p.content, p.complete), ("stderr", "", false));
        let p = parse_cri("2019-05-07T18:57:50.904275087+00:00 stdout F").unwrap();
        assert_eq!(&*p.content, "");
        let p = parse_cri("2020-10-10T00:10:00.333333333Z stdout F    lead").unwrap();
        assert_eq!(&*p.content, "   lead");
        let p = parse_cri("2020-10-10T00:10:00Z stdout P:x rest").unwrap();
        assert!(!p.complete);
        for bad in [
            "",
            "hello world",
            "2016-10-06T00:17:09Z",
            "2016-10-06T00:17:09Z stdin F x",
            "2016-10-06T00:17:09Z stdout X x",
            "2016-10-06T00:17:09Zstdout F x",
            "2016-13-06T00:17:09Z stdout F x",
        ] {
            assert!(parse_cri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_shapes() {
        let p = parse_docker(
            r#"{"log":"a\"b\n","stream":"stderr","time":"2016-10-05T00:00:30.082640485Z"}"#,
        )
        .unwrap();
        assert_eq!(
            (&*p.stream, &*p.content, p.complete),
            ("stderr", "a\"b\n", true)
        );
        assert!(parse_docker(
            r#"{"log":"x","stream":"stdout","time":"2016-10-05T00:00:30Z","attrs":{"a":"b"}}"#
        )
        .is_ok());
    }

    #[test]
    fn record_cap_keeps_whole_lines_until_full() {
        let a = parse_cri("2019-05-07T18:57:50Z stdout P partial line 1 ").unwrap();
        let b = parse_cri("2019-05-07T18:57:55Z stdout F log finished").unwrap();
        let mut r = Rec::new(0, 0, Runtime::Cri, "stdout");
        r.add("A", &a, 11);
        r.add("B", &b, 11);
        assert!(r.truncated);
        assert_eq!(r.raw, "A");
        let ev = to_event(r, Some(11), None);
        assert_eq!(ev.message.as_deref(), Some("partial lin"));
        let mut s = "héllo".to_string();
        cut(&mut s, 2);
        assert_eq!(s, "h");
    }
}
