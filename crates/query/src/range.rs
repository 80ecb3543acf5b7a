//! The time range of a query: `--since 1h`, or `--from` / `--to` as RFC 3339, a date, epoch seconds or
//! milliseconds, `now`, or a duration ago (`2h`).

use quarry_model::time::{parse_rfc3339, NANOS_PER_SEC};

/// A time range option that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeRangeError(pub String);

/// A duration such as `90s`, `15m`, `1h`, `7d`, `2w`, in nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ns = match unit {
        "s" | "sec" | "secs" => NANOS_PER_SEC,
        "m" | "min" | "mins" => 60 * NANOS_PER_SEC,
        "h" | "hr" | "hrs" => 3600 * NANOS_PER_SEC,
        "d" | "day" | "days" => 86_400 * NANOS_PER_SEC,
        "w" | "wk" | "weeks" => 7 * 86_400 * NANOS_PER_SEC,
        _ => return None,
    };
    n.checked_mul(unit_ns)
}

/// A point in time: RFC 3339, `YYYY-MM-DD`, epoch seconds or milliseconds, `now`, or a duration ago.
pub fn parse_instant(s: &str, now: i64) -> Option<i64> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Some(now);
    }
    if let Ok(ns) = parse_rfc3339(s) {
        return Some(ns);
    }
    if s.len() == 10 {
        if let Ok(ns) = parse_rfc3339(&format!("{s}T00:00:00Z")) {
            return Some(ns);
        }
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        return if n >= 100_000_000_000 {
            n.checked_mul(1_000_000)
        } else {
            n.checked_mul(NANOS_PER_SEC)
        };
    }
    parse_duration(s).map(|d| now.saturating_sub(d))
}

/// The `[from, to)` range in UTC nanoseconds for the `--since`, `--from` and `--to` options. With none
/// given the range is all time; `--since` alone includes events stamped later than now (clock skew).
pub fn parse_time_range(
    since: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    now: i64,
) -> Result<(i64, i64), TimeRangeError> {
    let bad = |what: &str, v: &str| {
        TimeRangeError(format!(
            "cannot read {what} {v:?}: use RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01), epoch seconds or milliseconds, `now`, or a duration ago such as 15m, 2h, 7d"
        ))
    };
    if since.is_some() && from.is_some() {
        return Err(TimeRangeError(
            "give either --since or --from, not both".into(),
        ));
    }
    let start = match (since, from) {
        (Some(s), _) => {
            let d = parse_duration(s).ok_or_else(|| {
                TimeRangeError(format!(
                    "cannot read --since {s:?}: expected a duration such as 15m, 1h, 7d or 2w"
                ))
            })?;
            now.saturating_sub(d)
        }
        (None, Some(f)) => parse_instant(f, now).ok_or_else(|| bad("--from", f))?,
        (None, None) => i64::MIN,
    };
    let end = match to {
        Some(t) => parse_instant(t, now)
            .ok_or_else(|| bad("--to", t))?
            .saturating_add(1),
        None => i64::MAX,
    };
    if end <= start {
        return Err(TimeRangeError(
            "the time range is empty: --to is before the start".into(),
        ));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let now = parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
        let h = 3600 * NANOS_PER_SEC;
        assert_eq!(
            parse_time_range(None, None, None, now).unwrap(),
            (i64::MIN, i64::MAX)
        );
        assert_eq!(
            parse_time_range(Some("1h"), None, None, now).unwrap(),
            (now - h, i64::MAX)
        );
        assert_eq!(
            parse_time_range(None, Some("2024-05-01"), Some("2024-05-01T12:00:00Z"), now).unwrap(),
            (now - 12 * h, now + 1)
        );
        assert_eq!(
            parse_time_range(None, Some("1714564800"), Some("now"), now).unwrap(),
            (now, now + 1)
        );
        assert_eq!(
            parse_time_range(None, Some("1714564800000"), None, now)
                .unwrap()
                .0,
            now
        );
        assert_eq!(
            parse_time_range(None, Some("2h"), Some("1h"), now).unwrap(),
            (now - 2 * h, now - h + 1)
        );
        for (s, f, t) in [
            (Some("1x"), None, None),
            (Some("1h"), Some("now"), None),
            (None, Some("yesterday"), None),
            (None, Some("1h"), Some("2h")),
        ] {
            assert!(parse_time_range(s, f, t, now).is_err(), "{s:?} {f:?} {t:?}");
        }
    }
}
