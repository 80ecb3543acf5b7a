//! Timestamp shapes beyond RFC 3339: syslog and klog stamps without a year, epoch numbers, and the leading
//! stamps of common plain-text logs.

use quarry_model::time::{
    civil_from_days, from_civil, parse_rfc3339, parse_rfc3339_prefix, NANOS_PER_SEC,
};
use quarry_model::Value;

const DAY_NS: i64 = 86_400 * NANOS_PER_SEC;
/// A stamp without a year further than this in the future of "now" belongs to the previous year.
const FUTURE_SLACK_NS: i64 = 31 * DAY_NS;

/// The calendar year of a UTC nanosecond timestamp.
pub(crate) fn year_of(ns: i64) -> i64 {
    civil_from_days(ns.div_euclid(DAY_NS)).0
}

/// UTC nanoseconds of a month/day/time without a year, in the year that puts it closest before `now`
/// (at most ~31 days in the future).
pub(crate) fn infer_year(
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    nanos: u32,
    now: i64,
) -> Option<i64> {
    let y = year_of(now);
    for cand in [y, y - 1, y - 2, y - 3, y - 4] {
        if let Some(ns) = from_civil(cand, mo, d, h, mi, s, nanos) {
            if ns <= now.saturating_add(FUTURE_SLACK_NS) {
                return Some(ns);
            }
        }
    }
    None
}

/// Month number (1-12) of an English three-letter abbreviation, case-insensitive.
pub(crate) fn month_abbr(b: &[u8]) -> Option<u32> {
    if b.len() < 3 {
        return None;
    }
    let m = [
        b[0].to_ascii_lowercase(),
        b[1].to_ascii_lowercase(),
        b[2].to_ascii_lowercase(),
    ];
    Some(match &m {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// The number written by the `n` ASCII digits at `at` (at most 9 digits).
pub(crate) fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    if n > 9 {
        return None;
    }
    digits64(b, at, n).map(|v| v as u32)
}

/// The number written by the `n` ASCII digits at `at` (at most 18 digits).
pub(crate) fn digits64(b: &[u8], at: usize, n: usize) -> Option<u64> {
    if n > 18 {
        return None;
    }
    let s = b.get(at..at.checked_add(n)?)?;
    s.iter().try_fold(0u64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u64)
    })
}

/// Reads `hh:mm:ss` at `at`, then an optional fraction after `.` or `,` (or `:` when `colon_frac`).
/// Returns (h, m, s, nanos, bytes used).
pub(crate) fn clock(b: &[u8], at: usize, colon_frac: bool) -> Option<(u32, u32, u32, u32, usize)> {
    let h = digits(b, at, 2)?;
    let mi = digits(b, at + 3, 2)?;
    let s = digits(b, at + 6, 2)?;
    if b.get(at + 2) != Some(&b':') || b.get(at + 5) != Some(&b':') {
        return None;
    }
    let mut i = at + 8;
    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) || (colon_frac && b.get(i) == Some(&b':')) {
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j].is_ascii_digit() {
            if j - start < 9 {
                nanos = nanos * 10 + (b[j] - b'0') as u32;
            }
            j += 1;
        }
        if j > start {
            for _ in (j - start).min(9)..9 {
                nanos *= 10;
            }
            i = j;
        }
    }
    Some((h, mi, s, nanos, i - at))
}

/// Parses a BSD syslog stamp `Mmm dd hh:mm:ss[.frac]` (day space-padded or not), optionally followed by a
/// year (`Mmm dd yyyy hh:mm:ss`). Returns the time and the bytes used.
pub(crate) fn parse_bsd_stamp(b: &[u8], now: i64) -> Option<(i64, usize)> {
    let mo = month_abbr(b)?;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let mut i = 4;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let (d, dl) = match (digits(b, i, 2), digits(b, i, 1)) {
        (Some(d), _) => (d, 2),
        (None, Some(d)) => (d, 1),
        _ => return None,
    };
    i += dl;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    // optional year before the clock
    if let Some(y) = digits(b, i, 4) {
        if b.get(i + 4) == Some(&b' ') {
            let (h, mi, s, ns, used) = clock(b, i + 5, false)?;
            let ts = from_civil(y as i64, mo, d, h, mi, s, ns)?;
            return Some((ts, i + 5 + used));
        }
    }
    let (h, mi, s, ns, used) = clock(b, i, false)?;
    i += used;
    // optional year after the clock (`Jun 14 15:16:01 2005`)
    if b.get(i) == Some(&b' ') {
        if let Some(y) = digits(b, i + 1, 4) {
            if matches!(b.get(i + 5), None | Some(b' ' | b']')) {
                let ts = from_civil(y as i64, mo, d, h, mi, s, ns)?;
                return Some((ts, i + 5));
            }
        }
    }
    Some((infer_year(mo, d, h, mi, s, ns, now)?, i))
}

/// Epoch number to nanoseconds, guessing the unit from the magnitude (seconds, ms, us, ns).
pub(crate) fn epoch_to_ns(x: f64) -> Option<i64> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let ns = if x < 1e11 {
        x * 1e9
    } else if x < 1e14 {
        x * 1e6
    } else if x < 1e17 {
        x * 1e3
    } else {
        x
    };
    (ns < 9.2e18).then_some(ns as i64)
}

/// Integer epoch to nanoseconds by magnitude, exactly.
pub(crate) fn epoch_int_to_ns(x: i64) -> Option<i64> {
    if x < 0 {
        return None;
    }
    if x < 100_000_000_000 {
        x.checked_mul(NANOS_PER_SEC)
    } else if x < 100_000_000_000_000 {
        x.checked_mul(1_000_000)
    } else if x < 100_000_000_000_000_000 {
        x.checked_mul(1_000)
    } else {
        Some(x)
    }
}

/// A JSON field value used as a timestamp: RFC 3339 and the text shapes for strings, epoch for numbers.
pub(crate) fn value_to_ns(v: &Value, now: i64) -> Option<i64> {
    match v {
        Value::Int(i) => epoch_int_to_ns(*i),
        Value::Float(f) => epoch_to_ns(*f),
        Value::Str(s) => str_to_ns(s, now),
        _ => None,
    }
}

/// A whole string as a timestamp: RFC 3339, a leading text stamp, or an epoch number.
pub(crate) fn str_to_ns(s: &str, now: i64) -> Option<i64> {
    if let Ok(ns) = parse_rfc3339(s) {
        return Some(ns);
    }
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        if let Ok(i) = t.parse::<i64>() {
            return epoch_int_to_ns(i);
        }
        return t.parse::<f64>().ok().and_then(epoch_to_ns);
    }
    sniff_leading(t, now)
}

fn iso_prefix(b: &str) -> Option<i64> {
    if let Some((ns, _)) = parse_rfc3339_prefix(b) {
        return Some(ns);
    }
    // `2016-09-28 04:30:30, Info` (a comma right after the seconds) and similar
    b.get(..19).and_then(parse_rfc3339_prefix).map(|(ns, _)| ns)
}

/// The timestamp at the start of a plain-text line, in the shapes common in logs: ISO 8601 / RFC 3339
/// (`2015-10-18 18:01:47,978`), syslog (`Jun 14 15:16:01`), ctime in brackets (`[Sun Dec 04 04:47:44 2005]`),
/// `- 1117838570 ...` epochs, `081109 203615`, `20171223-22:15:29:606`, `17/06/09 20:10:40`,
/// `03-17 16:13:38.811`, `[10.30 16:49:06]`, klog-style `I1102 15:04:05.123`, an Apache/nginx access log
/// stamp `[10/Oct/2000:13:55:36 -0700]`, or an ISO stamp as the second word.
pub(crate) fn sniff_leading(line: &str, now: i64) -> Option<i64> {
    let b = line.as_bytes();
    let first = *b.first()?;
    if first.is_ascii_digit() {
        if let Some(ns) = iso_prefix(line) {
            return Some(ns);
        }
        if let Some(ns) = compact_digits(b, now) {
            return Some(ns);
        }
    } else if first == b'[' {
        if let Some(ns) = bracketed(b, now) {
            return Some(ns);
        }
    } else if first.is_ascii_alphabetic() {
        if let Some((ns, _)) = parse_bsd_stamp(b, now) {
            return Some(ns);
        }
        if let Some(ns) = ctime(b) {
            return Some(ns);
        }
        if matches!(first, b'I' | b'W' | b'E' | b'F') {
            if let (Some(mo), Some(d)) = (digits(b, 1, 2), digits(b, 3, 2)) {
                if b.get(5) == Some(&b' ') {
                    if let Some((h, mi, s, ns, _)) = clock(b, 6, false) {
                        return infer_year(mo, d, h, mi, s, ns, now);
                    }
                }
            }
        }
    }
    if let Some(ns) = alert_epoch(b) {
        return Some(ns);
    }
    // an access-log stamp or an ISO stamp early in the line
    let head = &b[..b.len().min(160)];
    if let Some(p) = memchr::memmem::find(head, b" [") {
        if let Some(ns) = clf_stamp(&b[p + 2..]) {
            return Some(ns);
        }
    }
    let sp = memchr::memchr(b' ', &b[..b.len().min(80)])?;
    let rest = &line[sp + 1..];
    if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return iso_prefix(rest);
    }
    None
}

/// `081109 203615` (yymmdd hhmmss), `20171223-22:15:29:606`, `17/06/09 20:10:40`, `03-17 16:13:38.811`.
fn compact_digits(b: &[u8], now: i64) -> Option<i64> {
    // yymmdd hhmmss
    if let (Some(ymd), Some(hms)) = (digits(b, 0, 6), digits(b, 7, 6)) {
        if b.get(6) == Some(&b' ') && !b.get(13).is_some_and(u8::is_ascii_digit) {
            let (y, mo, d) = (2000 + ymd / 10000, ymd / 100 % 100, ymd % 100);
            let (h, mi, s) = (hms / 10000, hms / 100 % 100, hms % 100);
            return from_civil(y as i64, mo, d, h, mi, s, 0);
        }
    }
    // yyyymmdd-hh:mm:ss:mmm (HealthApp writes `22:16:0:119`, unpadded)
    if let Some(ymd) = digits(b, 0, 8) {
        if b.get(8) == Some(&b'-') {
            let (h, mi, s, ns) = loose_clock(&b[9..])?;
            return from_civil(
                (ymd / 10000) as i64,
                ymd / 100 % 100,
                ymd % 100,
                h,
                mi,
                s,
                ns,
            );
        }
    }
    // yy/mm/dd hh:mm:ss
    if b.get(2) == Some(&b'/') && b.get(5) == Some(&b'/') && b.get(8) == Some(&b' ') {
        let (y, mo, d) = (digits(b, 0, 2)?, digits(b, 3, 2)?, digits(b, 6, 2)?);
        let (h, mi, s, ns, _) = clock(b, 9, false)?;
        return from_civil(2000 + y as i64, mo, d, h, mi, s, ns);
    }
    // mm-dd hh:mm:ss.mmm
    if b.get(2) == Some(&b'-') && b.get(5) == Some(&b' ') {
        let (mo, d) = (digits(b, 0, 2)?, digits(b, 3, 2)?);
        let (h, mi, s, ns, _) = clock(b, 6, false)?;
        return infer_year(mo, d, h, mi, s, ns, now);
    }
    // a 10-digit epoch (years 2001-2100) followed by a space or a fraction
    if let Some(secs) = digits64(b, 0, 10) {
        if matches!(b.get(10), None | Some(b' ' | b'.'))
            && (978_307_200..4_102_444_800).contains(&(secs as i64))
        {
            return Some(secs as i64 * NANOS_PER_SEC);
        }
    }
    None
}

/// `h:m:s[:frac]` with one- or two-digit parts.
fn loose_clock(b: &[u8]) -> Option<(u32, u32, u32, u32)> {
    let mut parts = [0u32; 3];
    let mut i = 0;
    for (n, p) in parts.iter_mut().enumerate() {
        let d = b[i..]
            .iter()
            .take(2)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if d == 0 {
            return None;
        }
        *p = digits(b, i, d)?;
        i += d;
        if n < 2 {
            if b.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
        }
    }
    let mut nanos = 0;
    if matches!(b.get(i), Some(b':' | b'.' | b',')) {
        let d = b[i + 1..]
            .iter()
            .take(9)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if let Some(v) = digits(b, i + 1, d).filter(|_| d > 0) {
            nanos = v * 10u32.pow(9 - d as u32);
        }
    }
    Some((parts[0], parts[1], parts[2], nanos))
}

/// `[Sun Dec 04 04:47:44 2005]`, `[10.30 16:49:06]`, `[2024-05-01 12:00:00]`, `[10/Oct/2000:13:55:36 -0700]`.
fn bracketed(b: &[u8], now: i64) -> Option<i64> {
    let inner = &b[1..];
    if let Some(ns) = ctime(inner) {
        return Some(ns);
    }
    if let Some(ns) = std::str::from_utf8(&inner[..inner.len().min(40)])
        .ok()
        .and_then(iso_prefix_bytes)
    {
        return Some(ns);
    }
    if let Some(ns) = clf_stamp(inner) {
        return Some(ns);
    }
    if inner.get(2) == Some(&b'.') && inner.get(5) == Some(&b' ') {
        let (mo, d) = (digits(inner, 0, 2)?, digits(inner, 3, 2)?);
        let (h, mi, s, ns, _) = clock(inner, 6, false)?;
        return infer_year(mo, d, h, mi, s, ns, now);
    }
    None
}

fn iso_prefix_bytes(s: &str) -> Option<i64> {
    if s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        iso_prefix(s)
    } else {
        None
    }
}

/// `Sun Dec 04 04:47:44 2005` (ctime / asctime).
fn ctime(b: &[u8]) -> Option<i64> {
    if b.len() < 24 || b.get(3) != Some(&b' ') || !b[..3].iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let rest = &b[4..];
    let mo = month_abbr(rest)?;
    if rest.get(3) != Some(&b' ') {
        return None;
    }
    let mut i = 4;
    if rest.get(i) == Some(&b' ') {
        i += 1;
    }
    let (d, dl) = match (digits(rest, i, 2), digits(rest, i, 1)) {
        (Some(d), _) => (d, 2),
        (None, Some(d)) => (d, 1),
        _ => return None,
    };
    i += dl + 1;
    let (h, mi, s, ns, used) = clock(rest, i, false)?;
    i += used;
    if rest.get(i) != Some(&b' ') {
        return None;
    }
    let y = digits(rest, i + 1, 4)?;
    from_civil(y as i64, mo, d, h, mi, s, ns)
}

/// `10/Oct/2000:13:55:36 -0700` (Common Log Format).
pub(crate) fn clf_stamp(b: &[u8]) -> Option<i64> {
    let d = digits(b, 0, 2)?;
    if b.get(2) != Some(&b'/') || b.get(6) != Some(&b'/') || b.get(11) != Some(&b':') {
        return None;
    }
    let mo = month_abbr(&b[3..])?;
    let y = digits(b, 7, 4)?;
    let (h, mi, s, ns, used) = clock(b, 12, false)?;
    let mut ts = from_civil(y as i64, mo, d, h, mi, s, ns)?;
    let z = 12 + used;
    if b.get(z) == Some(&b' ') && matches!(b.get(z + 1), Some(b'+' | b'-')) {
        let oh = digits(b, z + 2, 2)? as i64;
        let om = digits(b, z + 4, 2)? as i64;
        let off = (oh * 3600 + om * 60) * NANOS_PER_SEC;
        ts = if b[z + 1] == b'-' { ts + off } else { ts - off };
    }
    Some(ts)
}

/// `- 1117838570 2005.06.03 ...` and `KERNDTLB 1117838570 ...` (an alert tag, then epoch seconds).
fn alert_epoch(b: &[u8]) -> Option<i64> {
    let sp = memchr::memchr(b' ', &b[..b.len().min(24)])?;
    let tag = &b[..sp];
    if !(tag == b"-"
        || (!tag.is_empty() && tag.iter().all(|c| c.is_ascii_uppercase() || *c == b'_')))
    {
        return None;
    }
    let secs = digits64(b, sp + 1, 10)?;
    if !matches!(b.get(sp + 11), None | Some(b' ')) {
        return None;
    }
    (secs as i64).checked_mul(NANOS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn year_inference() {
        let now = at("2024-01-05T00:00:00Z");
        assert_eq!(
            infer_year(12, 31, 23, 0, 0, 0, now),
            Some(at("2023-12-31T23:00:00Z"))
        );
        assert_eq!(
            infer_year(1, 4, 0, 0, 0, 0, now),
            Some(at("2024-01-04T00:00:00Z"))
        );
        // a few days ahead (clock skew) stays in this year
        assert_eq!(
            infer_year(1, 20, 0, 0, 0, 0, now),
            Some(at("2024-01-20T00:00:00Z"))
        );
        // Feb 29 in a non-leap year goes back to the last leap year
        let now = at("2023-03-01T00:00:00Z");
        assert_eq!(
            infer_year(2, 29, 0, 0, 0, 0, now),
            Some(at("2020-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn text_shapes() {
        let now = at("2024-06-01T00:00:00Z");
        let cases = [
            (
                "2015-10-18 18:01:47,978 INFO [main] x",
                "2015-10-18T18:01:47.978Z",
            ),
            ("2016-09-28 04:30:30, Info CBS x", "2016-09-28T04:30:30Z"),
            ("Jun 14 15:16:01 combo sshd[1]: x", "2024-06-14T15:16:01Z"),
            ("Jul  9 09:00:55 host kernel[0]: x", "2023-07-09T09:00:55Z"),
            (
                "[Sun Dec 04 04:47:44 2005] [notice] x",
                "2005-12-04T04:47:44Z",
            ),
            ("- 1117838570 2005.06.03 R02", "2005-06-03T22:42:50Z"),
            ("081109 203615 148 INFO dfs", "2008-11-09T20:36:15Z"),
            (
                "20171223-22:15:29:606|Step_LSC|30002312|x",
                "2017-12-23T22:15:29.606Z",
            ),
            (
                "20171223-22:16:0:119|Step_LSC|30002312|x",
                "2017-12-23T22:16:00.119Z",
            ),
            ("17/06/09 20:10:40 INFO executor", "2017-06-09T20:10:40Z"),
            (
                "03-17 16:13:38.811  1702  2395 D x",
                "2024-03-17T16:13:38.811Z",
            ),
            ("[10.30 16:49:06] chrome.exe", "2023-10-30T16:49:06Z"),
            (
                "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO",
                "2017-05-16T00:00:00.008Z",
            ),
            (
                "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326",
                "2000-10-10T20:55:36Z",
            ),
            (
                "I0505 17:59:40.692994   28133 klog.go:70] hello",
                "2024-05-05T17:59:40.692994Z",
            ),
            ("2024-05-01T12:00:00.5+02:00 x", "2024-05-01T10:00:00.5Z"),
        ];
        for (line, want) in cases {
            assert_eq!(sniff_leading(line, now), Some(at(want)), "{line}");
        }
        for line in [
            "hello world",
            "134681 node-246 unix.hw",
            "",
            "12345",
            "[INFO] started",
            "Error: x",
        ] {
            assert_eq!(sniff_leading(line, now), None, "{line}");
        }
    }

    #[test]
    fn random_stamps_never_panic() {
        let alphabet = b"0123456789999-:./ []TZz+,IEJunDecSat";
        let mut seed: u64 = 0x2545f4914f6cdd1d;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let mut x = seed;
            let s: String = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    alphabet[(x >> 33) as usize % alphabet.len()] as char
                })
                .collect();
            let _ = sniff_leading(&s, i64::MAX);
            let _ = sniff_leading(&s, i64::MIN);
            let _ = str_to_ns(&s, 0);
            let _ = parse_bsd_stamp(s.as_bytes(), 0);
        }
        assert_eq!(epoch_int_to_ns(i64::MAX), Some(i64::MAX));
        assert_eq!(epoch_to_ns(1e300), None);
    }

    #[test]
    fn epochs() {
        assert_eq!(
            epoch_int_to_ns(1_600_110_569),
            Some(1_600_110_569 * NANOS_PER_SEC)
        );
        assert_eq!(
            epoch_int_to_ns(1_600_110_569_039),
            Some(1_600_110_569_039_000_000)
        );
        assert_eq!(
            epoch_int_to_ns(1_600_110_569_039_123),
            Some(1_600_110_569_039_123_000)
        );
        assert_eq!(
            epoch_int_to_ns(1_600_110_569_039_123_456),
            Some(1_600_110_569_039_123_456)
        );
        assert_eq!(
            epoch_to_ns(1_600_110_569.5),
            Some(1_600_110_569_500_000_000)
        );
        assert_eq!(epoch_int_to_ns(-1), None);
        assert_eq!(
            str_to_ns("1600110569", 0),
            Some(1_600_110_569 * NANOS_PER_SEC)
        );
    }
}
