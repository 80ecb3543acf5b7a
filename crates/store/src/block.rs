//! A *block*: up to [`BLOCK_EVENTS`] events of one source, kind and day, in one binary payload. One
//! shape serves both the WAL record and the stored value of the block's document in a segment; the
//! stored one leaves out the event times, which the segment's `ts` column already holds.
//!
//! Layout (integers are LEB128 varints, `ts` are zig-zag deltas from the previous event):
//! `version u8 | meta_len | meta JSON | n | [n × ts delta] | n × raw length | n × flags |`
//! `hints and errors for flagged events | raws concatenated`; version 1 has the times, version 2 not.
//! Lengths are grouped apart from the text so the text compresses as well as the plain log file would.

use quarry_model::{Event, Source};
use serde::{Deserialize, Serialize};

/// Most events in one block; the unit of full-text lookup and of decompression on read.
pub const BLOCK_EVENTS: usize = 256;

const WITH_TS: u8 = 1;
const WITHOUT_TS: u8 = 2;
const HAS_HINT: u8 = 1;
const HAS_ERROR: u8 = 2;

/// Data shared by all events of a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// The source descriptor the events arrived with.
    pub source: Source,
    /// Name of the parser that read the events (`Event::format`).
    pub format: String,
    /// The namespace whose own partitions hold the block (see [`PartKey`](crate::partition::PartKey)),
    /// decided once at ingest so that a WAL replay puts the block where it went the first time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_namespace: Option<String>,
}

/// One stored event: what is needed to read it again.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// UTC nanoseconds, when the payload holds times (WAL records do, stored blocks do not).
    pub ts: Option<i64>,
    /// Original text.
    pub raw: String,
    /// Parser context (`Event::hint`).
    pub hint: Option<String>,
    /// Why parsing failed, if it did.
    pub parse_error: Option<String>,
}

/// A block's payload is malformed (a damaged WAL record or segment).
#[derive(Debug, thiserror::Error)]
#[error("malformed block: {0}")]
pub struct BlockError(pub &'static str);

/// Serialises events (all of `meta.source.kind`) into a block payload, with or without their times.
pub fn encode(meta: &BlockMeta, events: &[StoredEventRef<'_>], with_ts: bool, out: &mut Vec<u8>) {
    out.push(if with_ts { WITH_TS } else { WITHOUT_TS });
    let meta_json = serde_json::to_vec(meta).unwrap_or_default();
    put_varint(out, meta_json.len() as u64);
    out.extend_from_slice(&meta_json);
    put_varint(out, events.len() as u64);
    if with_ts {
        let mut prev = 0i64;
        for e in events {
            put_varint(out, zigzag(e.ts.wrapping_sub(prev)));
            prev = e.ts;
        }
    }
    for e in events {
        put_varint(out, e.raw.len() as u64);
    }
    for e in events {
        out.push((e.hint.is_some() as u8 * HAS_HINT) | (e.parse_error.is_some() as u8 * HAS_ERROR));
    }
    for e in events {
        for s in [e.hint, e.parse_error].into_iter().flatten() {
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
    for e in events {
        out.extend_from_slice(e.raw.as_bytes());
    }
}

/// A borrowed view of an event for [`encode`].
#[derive(Debug, Clone, Copy)]
pub struct StoredEventRef<'a> {
    /// UTC nanoseconds.
    pub ts: i64,
    /// Original text.
    pub raw: &'a str,
    /// Parser context.
    pub hint: Option<&'a str>,
    /// Parse failure reason.
    pub parse_error: Option<&'a str>,
}

impl<'a> StoredEventRef<'a> {
    /// The stored view of a parsed event.
    pub fn of(e: &'a Event) -> Self {
        StoredEventRef {
            ts: e.ts,
            raw: &e.raw,
            hint: e.hint.as_deref(),
            parse_error: e.parse_error.as_deref(),
        }
    }
}

/// Reads a block payload back.
pub fn decode(mut buf: &[u8]) -> Result<(BlockMeta, Vec<StoredEvent>), BlockError> {
    let b = &mut buf;
    let with_ts = match take(b, 1)?[0] {
        WITH_TS => true,
        WITHOUT_TS => false,
        _ => return Err(BlockError("unknown version")),
    };
    let meta_len = get_len(b)?;
    let meta: BlockMeta =
        serde_json::from_slice(take(b, meta_len)?).map_err(|_| BlockError("bad metadata"))?;
    let n = get_len(b)?;
    if n > b.len() {
        return Err(BlockError("event count beyond payload"));
    }
    let mut ts = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        if with_ts {
            prev = prev.wrapping_add(unzigzag(get_varint(b)?));
            ts.push(Some(prev));
        } else {
            ts.push(None);
        }
    }
    let lens = (0..n).map(|_| get_len(b)).collect::<Result<Vec<_>, _>>()?;
    let flags = take(b, n)?.to_vec();
    let mut extras = Vec::with_capacity(n);
    for f in &flags {
        let mut get = |bit: u8| -> Result<Option<String>, BlockError> {
            if f & bit == 0 {
                return Ok(None);
            }
            let len = get_len(b)?;
            Ok(Some(String::from_utf8_lossy(take(b, len)?).into_owned()))
        };
        extras.push((get(HAS_HINT)?, get(HAS_ERROR)?));
    }
    let mut events = Vec::with_capacity(n);
    for ((ts, len), (hint, parse_error)) in ts.into_iter().zip(lens).zip(extras) {
        let raw = String::from_utf8_lossy(take(b, len)?).into_owned();
        events.push(StoredEvent {
            ts,
            raw,
            hint,
            parse_error,
        });
    }
    if !b.is_empty() {
        return Err(BlockError("trailing bytes"));
    }
    Ok((meta, events))
}

/// Reads only the metadata and event count of a block payload.
pub fn peek(mut buf: &[u8]) -> Result<(BlockMeta, usize), BlockError> {
    let b = &mut buf;
    if !matches!(take(b, 1)?[0], WITH_TS | WITHOUT_TS) {
        return Err(BlockError("unknown version"));
    }
    let meta_len = get_len(b)?;
    let meta: BlockMeta =
        serde_json::from_slice(take(b, meta_len)?).map_err(|_| BlockError("bad metadata"))?;
    Ok((meta, get_len(b)?))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 varint from the front of `b`.
pub fn get_varint(b: &mut &[u8]) -> Result<u64, BlockError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or(BlockError("truncated varint"))?;
        *b = rest;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(BlockError("varint too long"))
}

fn get_len(b: &mut &[u8]) -> Result<usize, BlockError> {
    usize::try_from(get_varint(b)?).map_err(|_| BlockError("length overflow"))
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], BlockError> {
    if b.len() < n {
        return Err(BlockError("truncated"));
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_model::Kind;

    fn meta() -> BlockMeta {
        BlockMeta {
            source: Source {
                kind: Kind::Container,
                namespace: Some("default".into()),
                pod: Some("web-1".into()),
                ..Source::default()
            },
            format: "cri".into(),
            partition_namespace: None,
        }
    }

    #[test]
    fn round_trips() {
        let evs = [
            StoredEventRef {
                ts: 1_700_000_000_000_000_000,
                raw: "line one",
                hint: None,
                parse_error: None,
            },
            StoredEventRef {
                ts: 1_699_999_999_000_000_000,
                raw: "ünïcode\nsecond",
                hint: Some("h"),
                parse_error: Some("bad"),
            },
            StoredEventRef {
                ts: -5,
                raw: "",
                hint: None,
                parse_error: None,
            },
        ];
        for with_ts in [true, false] {
            let mut buf = Vec::new();
            encode(&meta(), &evs, with_ts, &mut buf);
            let (m, got) = decode(&buf).unwrap();
            assert_eq!(m, meta());
            assert_eq!(got.len(), 3);
            for (a, b) in evs.iter().zip(&got) {
                assert_eq!(
                    (with_ts.then_some(a.ts), a.raw, a.hint, a.parse_error),
                    (
                        b.ts,
                        b.raw.as_str(),
                        b.hint.as_deref(),
                        b.parse_error.as_deref()
                    )
                );
            }
            assert_eq!(peek(&buf).unwrap().1, 3);
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let evs = [StoredEventRef {
            ts: 1,
            raw: "hello world",
            hint: None,
            parse_error: None,
        }];
        let mut buf = Vec::new();
        encode(&meta(), &evs, true, &mut buf);
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "truncated at {cut}");
        }
        let mut extra = buf.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
    }
}
