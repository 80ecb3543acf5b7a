//! UTC timestamps as nanoseconds since the Unix epoch: RFC 3339 parsing and formatting without allocation
//! on the parse path.

/// Nanoseconds per second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A timestamp that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {0:?}: expected RFC 3339 such as 2024-05-01T12:00:00Z")]
pub struct TimeError(pub String);

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Nanoseconds of a civil UTC date and time; `None` when a part is out of range.
pub fn from_civil(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    let secs = days_from_civil(y, mo, d)
        .checked_mul(86_400)?
        .checked_add(h as i64 * 3600 + mi as i64 * 60 + s.min(59) as i64)?;
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos as i64)
}

/// Number of days in a month of a year.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
    })
}

/// Parses RFC 3339 / ISO 8601 (`2024-05-01T12:00:00.123456789Z`, `+02:00` offsets, a space instead of `T`,
/// no zone meaning UTC) to UTC nanoseconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, TimeError> {
    parse_rfc3339_prefix(s)
        .filter(|(_, used)| *used == s.len())
        .map(|(ns, _)| ns)
        .ok_or_else(|| TimeError(s.to_string()))
}

/// Parses an RFC 3339 timestamp at the start of `s`, returning it and the number of bytes it used.
pub fn parse_rfc3339_prefix(s: &str) -> Option<(i64, usize)> {
    let b = s.as_bytes();
    let y = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (mo, d) = (digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (h, mi) = (digits(b, 11, 2)?, digits(b, 14, 2)?);
    if b.get(13) != Some(&b':') {
        return None;
    }
    let (sec, mut i) = if b.get(16) == Some(&b':') {
        (digits(b, 17, 2)?, 19)
    } else {
        (0, 16)
    };
    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + (b[i] - b'0') as u32;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let mut offset_secs = 0i64;
    match b.get(i) {
        Some(b'Z' | b'z') => i += 1,
        Some(sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)? as i64;
            let (om, used) = if b.get(i + 3) == Some(&b':') {
                (digits(b, i + 4, 2)? as i64, 6)
            } else {
                (
                    digits(b, i + 3, 2).map(|m| m as i64).unwrap_or(0),
                    if digits(b, i + 3, 2).is_some() { 5 } else { 3 },
                )
            };
            offset_secs = (oh * 3600 + om * 60) * if *sign == b'-' { -1 } else { 1 };
            i += used;
        }
        _ => {}
    }
    let ns = from_civil(y as i64, mo, d, h, mi, sec, nanos)?;
    Some((ns.checked_sub(offset_secs * NANOS_PER_SEC)?, i))
}

/// Formats UTC nanoseconds as RFC 3339 with millisecond precision (`2024-05-01T12:00:00.123Z`).
pub fn format_rfc3339_millis(ns: i64) -> String {
    let (secs, sub) = (ns.div_euclid(NANOS_PER_SEC), ns.rem_euclid(NANOS_PER_SEC));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        sub / 1_000_000
    )
}

/// Formats UTC nanoseconds as RFC 3339 with nanosecond precision.
pub fn format_rfc3339_nanos(ns: i64) -> String {
    let (secs, sub) = (ns.div_euclid(NANOS_PER_SEC), ns.rem_euclid(NANOS_PER_SEC));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{sub:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The current time in UTC nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_shapes() {
        let base = parse_rfc3339("2016-10-06T00:17:09Z").unwrap();
        assert_eq!(base, 1_475_713_029 * NANOS_PER_SEC);
        assert_eq!(
            parse_rfc3339("2016-10-06T00:17:09.669794202Z").unwrap(),
            base + 669_794_202
        );
        assert_eq!(
            parse_rfc3339("2016-10-06T00:17:09.5Z").unwrap(),
            base + 500_000_000
        );
        assert_eq!(parse_rfc3339("2016-10-06T02:17:09+02:00").unwrap(), base);
        assert_eq!(parse_rfc3339("2016-10-05T22:17:09-0200").unwrap(), base);
        assert_eq!(parse_rfc3339("2016-10-06 00:17:09").unwrap(), base);
        assert_eq!(
            parse_rfc3339("2016-10-06T00:17:09.669794202123Z").unwrap(),
            base + 669_794_202
        );
        for bad in [
            "",
            "2016-13-06T00:17:09Z",
            "2016-02-30T00:00:00Z",
            "2016-10-06T00:17:09Zjunk",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_and_round_trips() {
        let ns = parse_rfc3339("2024-02-29T23:59:58.123456789Z").unwrap();
        assert_eq!(format_rfc3339_nanos(ns), "2024-02-29T23:59:58.123456789Z");
        assert_eq!(format_rfc3339_millis(ns), "2024-02-29T23:59:58.123Z");
        assert_eq!(format_rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        for days in [-800_000, -1, 0, 1, 19_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
