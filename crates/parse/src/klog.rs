//! klog lines of Kubernetes components (`I1102 15:04:05.123456   12345 file.go:123] msg`), with the field
//! names of Vector's `parse_klog`: `level`, `id`, `file`, `line`, `message`.

use crate::timeutil::{clock, digits, infer_year};
use quarry_model::Fields;

/// True when `line` starts like a klog header.
pub(crate) fn looks_like(line: &str) -> bool {
    let b = line.as_bytes();
    matches!(b.first(), Some(b'I' | b'W' | b'E' | b'F'))
        && digits(b, 1, 4).is_some()
        && b.get(5) == Some(&b' ')
        && clock(b, 6, false).is_some()
}

/// Parses one klog line into `fields` and returns its time (the year inferred from `now`).
pub(crate) fn parse(line: &str, now: i64, fields: &mut Fields) -> Result<i64, String> {
    let bad = |what: &str| format!("not a klog line: {what}");
    let b = line.as_bytes();
    let level = match b.first() {
        Some(b'I') => "info",
        Some(b'W') => "warning",
        Some(b'E') => "error",
        Some(b'F') => "fatal",
        _ => return Err(bad("expected a level letter I, W, E or F")),
    };
    let (mo, d) = match (digits(b, 1, 2), digits(b, 3, 2)) {
        (Some(mo), Some(d)) if b.get(5) == Some(&b' ') => (mo, d),
        _ => return Err(bad("expected mmdd after the level")),
    };
    let (h, mi, s, ns, used) = clock(b, 6, false).ok_or_else(|| bad("expected hh:mm:ss.uuuuuu"))?;
    let ts = infer_year(mo, d, h, mi, s, ns, now).ok_or_else(|| bad("invalid date"))?;
    let mut i = 6 + used;
    let sp = b[i..].iter().take_while(|c| **c == b' ').count();
    if sp == 0 {
        return Err(bad("expected a space after the time"));
    }
    i += sp;
    let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || b.get(i + n) != Some(&b' ') {
        return Err(bad("expected a thread id"));
    }
    let id: i64 = line[i..i + n]
        .parse()
        .map_err(|_| bad("thread id out of range"))?;
    i += n + 1;
    let close = i + memchr::memchr(b']', &b[i..]).ok_or_else(|| bad("expected file:line]"))?;
    let loc = &line[i..close];
    let colon = loc.rfind(':').ok_or_else(|| bad("expected file:line]"))?;
    let file_line: i64 = loc[colon + 1..]
        .parse()
        .map_err(|_| bad("line is not a number"))?;
    fields.push("level", level);
    fields.push("id", id);
    fields.push("file", &loc[..colon]);
    fields.push("line", file_line);
    let msg = &line[close + 1..];
    fields.push("message", msg.strip_prefix(' ').unwrap_or(msg));
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_model::time::parse_rfc3339;
    use quarry_model::Value;

    #[test]
    fn vrl_example_and_errors() {
        let now = parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
        let mut f = Fields::new();
        let ts = parse(
            "I0505 17:59:40.692994   28133 klog.go:70] hello from klog",
            now,
            &mut f,
        )
        .unwrap();
        assert_eq!(ts, parse_rfc3339("2026-05-05T17:59:40.692994Z").unwrap());
        assert_eq!(f.get("level"), Some(&Value::from("info")));
        assert_eq!(f.get("id"), Some(&Value::Int(28133)));
        assert_eq!(f.get("file"), Some(&Value::from("klog.go")));
        assert_eq!(f.get("line"), Some(&Value::Int(70)));
        assert_eq!(f.get("message"), Some(&Value::from("hello from klog")));
        let mut f = Fields::new();
        parse(
            "E1231 23:59:59.000001 1 reflector.go:138] watch failed",
            now,
            &mut f,
        )
        .unwrap();
        assert_eq!(f.get("level"), Some(&Value::from("error")));
        for bad in [
            "X0505 17:59:40.692994 1 a.go:1] m",
            "I0505 17:59:40.692994 x a.go:1] m",
            "I0505 17:59:40.692994 1 a.go] m",
            "I0505 17:59:40.692994 1 a.go:1 m",
            "I1305 17:59:40.692994 1 a.go:1] m",
            "I05",
        ] {
            assert!(parse(bad, now, &mut Fields::new()).is_err(), "{bad}");
        }
    }
}
