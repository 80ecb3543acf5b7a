//! Allocation-free writers for numbers and the timestamp shapes the generated logs use.

use quarry_model::time::{civil_from_days, NANOS_PER_SEC};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Appends the decimal digits of `v`.
pub fn num(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `v` zero-padded to `width` digits.
pub fn pad(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut v = v;
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = buf.len() - width.max(buf.len() - i);
    out.extend_from_slice(&buf[start..]);
}

/// Appends `v` in lowercase hex, zero-padded to `width`.
pub fn hex(out: &mut Vec<u8>, v: u64, width: usize) {
    const H: &[u8; 16] = b"0123456789abcdef";
    for i in (0..width).rev() {
        out.push(H[((v >> (i * 4)) & 15) as usize]);
    }
}

/// Appends an IPv4 address.
pub fn ip(out: &mut Vec<u8>, a: u32) {
    num(out, (a >> 24) as u64);
    out.push(b'.');
    num(out, ((a >> 16) & 255) as u64);
    out.push(b'.');
    num(out, ((a >> 8) & 255) as u64);
    out.push(b'.');
    num(out, (a & 255) as u64);
}

/// An IPv4 address as a string.
pub fn ip_string(a: u32) -> String {
    let mut v = Vec::with_capacity(15);
    ip(&mut v, a);
    String::from_utf8(v).unwrap_or_default()
}

/// Appends `s` escaped for a JSON string body.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                hex(out, b as u64, 2);
            }
            _ => out.push(b),
        }
    }
}

/// `s` escaped for a JSON string body.
pub fn json_escape(s: &str) -> String {
    let mut v = Vec::with_capacity(s.len() + 8);
    json_str(&mut v, s);
    String::from_utf8(v).unwrap_or_default()
}

/// Broken-down UTC time of one second, cached because consecutive lines share it.
#[derive(Clone, Copy, Default)]
pub struct Civil {
    sec: i64,
    pub y: u32,
    pub mo: u32,
    pub d: u32,
    pub h: u32,
    pub mi: u32,
    pub s: u32,
}

/// Converts nanosecond timestamps to civil time, remembering the last second.
#[derive(Clone, Default)]
pub struct Clock {
    last: Option<Civil>,
}

impl Clock {
    /// The civil time of `ns` and its sub-second nanoseconds.
    pub fn at(&mut self, ns: i64) -> (Civil, u32) {
        let sec = ns.div_euclid(NANOS_PER_SEC);
        let sub = ns.rem_euclid(NANOS_PER_SEC) as u32;
        if let Some(c) = self.last {
            if c.sec == sec {
                return (c, sub);
            }
        }
        let (days, rem) = (sec.div_euclid(86_400), sec.rem_euclid(86_400));
        let (y, mo, d) = civil_from_days(days);
        let c = Civil {
            sec,
            y: y as u32,
            mo,
            d,
            h: (rem / 3600) as u32,
            mi: (rem % 3600 / 60) as u32,
            s: (rem % 60) as u32,
        };
        self.last = Some(c);
        (c, sub)
    }

    fn date_time(out: &mut Vec<u8>, c: &Civil, date_sep: u8, mid: u8) {
        pad(out, c.y as u64, 4);
        out.push(date_sep);
        pad(out, c.mo as u64, 2);
        out.push(date_sep);
        pad(out, c.d as u64, 2);
        out.push(mid);
        Self::hms(out, c);
    }

    fn hms(out: &mut Vec<u8>, c: &Civil) {
        pad(out, c.h as u64, 2);
        out.push(b':');
        pad(out, c.mi as u64, 2);
        out.push(b':');
        pad(out, c.s as u64, 2);
    }

    /// RFC 3339 with nanoseconds, trailing zeros trimmed as Go's `RFC3339Nano` does (CRI, containerd).
    pub fn rfc3339_nano(&mut self, out: &mut Vec<u8>, ns: i64) {
        let (c, mut sub) = self.at(ns);
        Self::date_time(out, &c, b'-', b'T');
        if sub > 0 {
            let mut width = 9;
            while sub % 10 == 0 {
                sub /= 10;
                width -= 1;
            }
            out.push(b'.');
            pad(out, sub as u64, width);
        }
        out.push(b'Z');
    }

    /// RFC 3339 with `digits` fractional digits (3 or 6) and `Z`.
    pub fn rfc3339_frac(&mut self, out: &mut Vec<u8>, ns: i64, digits: u32) {
        let (c, sub) = self.at(ns);
        Self::date_time(out, &c, b'-', b'T');
        out.push(b'.');
        pad(out, (sub / 10u32.pow(9 - digits)) as u64, digits as usize);
        out.push(b'Z');
    }

    /// RFC 3164 syslog stamp: `May  1 12:00:00`.
    pub fn syslog(&mut self, out: &mut Vec<u8>, ns: i64) {
        let (c, _) = self.at(ns);
        out.extend_from_slice(MONTHS[c.mo as usize - 1].as_bytes());
        out.push(b' ');
        if c.d < 10 {
            out.push(b' ');
        }
        num(out, c.d as u64);
        out.push(b' ');
        Self::hms(out, &c);
    }

    /// klog header stamp: `I0501 12:00:00.123456` with the given severity letter.
    pub fn klog(&mut self, out: &mut Vec<u8>, ns: i64, severity: u8) {
        let (c, sub) = self.at(ns);
        out.push(severity);
        pad(out, c.mo as u64, 2);
        pad(out, c.d as u64, 2);
        out.push(b' ');
        Self::hms(out, &c);
        out.push(b'.');
        pad(out, (sub / 1000) as u64, 6);
    }

    /// nginx `$time_local` for a UTC host: `01/May/2024:12:00:00 +0000`.
    pub fn nginx_local(&mut self, out: &mut Vec<u8>, ns: i64) {
        let (c, _) = self.at(ns);
        pad(out, c.d as u64, 2);
        out.push(b'/');
        out.extend_from_slice(MONTHS[c.mo as usize - 1].as_bytes());
        out.push(b'/');
        pad(out, c.y as u64, 4);
        out.push(b':');
        Self::hms(out, &c);
        out.extend_from_slice(b" +0000");
    }

    /// nginx error-log stamp: `2024/05/01 12:00:00`.
    pub fn nginx_error(&mut self, out: &mut Vec<u8>, ns: i64) {
        let (c, _) = self.at(ns);
        Self::date_time(out, &c, b'/', b' ');
    }

    /// PostgreSQL `%m` stamp: `2024-05-01 12:00:00.123 UTC`.
    pub fn postgres(&mut self, out: &mut Vec<u8>, ns: i64) {
        let (c, sub) = self.at(ns);
        Self::date_time(out, &c, b'-', b' ');
        out.push(b'.');
        pad(out, (sub / 1_000_000) as u64, 3);
        out.extend_from_slice(b" UTC");
    }

    /// `20240501T1205Z`, as in VPC flow log object names.
    pub fn compact_minute(&mut self, out: &mut Vec<u8>, ns: i64) {
        let (c, _) = self.at(ns);
        pad(out, c.y as u64, 4);
        pad(out, c.mo as u64, 2);
        pad(out, c.d as u64, 2);
        out.push(b'T');
        pad(out, c.h as u64, 2);
        pad(out, c.mi as u64, 2);
        out.push(b'Z');
    }

    /// `2024/05/01`, as in S3 key prefixes.
    pub fn slash_date(&mut self, out: &mut Vec<u8>, ns: i64) {
        let (c, _) = self.at(ns);
        pad(out, c.y as u64, 4);
        out.push(b'/');
        pad(out, c.mo as u64, 2);
        out.push(b'/');
        pad(out, c.d as u64, 2);
    }
}

/// Formats with a closure into a fresh `String`.
pub fn string(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut v = Vec::with_capacity(64);
    f(&mut v);
    String::from_utf8(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_model::time::parse_rfc3339;

    #[test]
    fn numbers() {
        let s = string(|o| {
            num(o, 0);
            o.push(b' ');
            num(o, 18_446_744_073_709_551_615);
            o.push(b' ');
            pad(o, 7, 3);
            o.push(b' ');
            pad(o, 12345, 2);
            o.push(b' ');
            hex(o, 0xbeef, 6);
            o.push(b' ');
            ip(o, 0x0a00_0117);
        });
        assert_eq!(s, "0 18446744073709551615 007 12345 00beef 10.0.1.23");
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }

    #[test]
    fn stamps() {
        let ns = parse_rfc3339("2024-05-01T02:03:04.120000000Z").unwrap();
        let mut c = Clock::default();
        let s = string(|o| {
            c.rfc3339_nano(o, ns);
            o.push(b'|');
            c.rfc3339_nano(o, ns - 120_000_000);
            o.push(b'|');
            c.rfc3339_frac(o, ns, 6);
            o.push(b'|');
            c.syslog(o, ns);
            o.push(b'|');
            c.klog(o, ns, b'I');
            o.push(b'|');
            c.nginx_local(o, ns);
            o.push(b'|');
            c.postgres(o, ns);
            o.push(b'|');
            c.compact_minute(o, ns);
        });
        assert_eq!(
            s,
            "2024-05-01T02:03:04.12Z|2024-05-01T02:03:04Z|2024-05-01T02:03:04.120000Z|May  1 02:03:04|\
             I0501 02:03:04.120000|01/May/2024:02:03:04 +0000|2024-05-01 02:03:04.120 UTC|20240501T0203Z"
        );
    }
}
