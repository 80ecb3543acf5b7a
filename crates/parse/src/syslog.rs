//! Syslog lines: RFC 5424 (with structured data) and RFC 3164 / BSD style, with or without `<PRI>`, as
//! written to /var/log/messages and /var/log/auth.log. Field names follow Vector's `parse_syslog`:
//! `facility`, `severity`, `version`, `hostname`, `appname`, `procid`, `msgid`, `message`, and
//! structured data as `<sd-id>.<param>`.
//!
//! Messages of sshd (`appname` `sshd`, `sshd-session`, `sshd-auth` or `sshd(pam_unix)`) also get
//! `sshd.*` fields after `message`: `sshd.event`, `sshd.user`, `sshd.src_ip` (or `sshd.src_host`),
//! `sshd.src_port`, `sshd.method`, `sshd.invalid_user` and a few more; the `sshd` module lists them
//! and the message shapes they come from.

use crate::sshd;
use crate::timeutil::parse_bsd_stamp;
use quarry_model::time::{parse_rfc3339, parse_rfc3339_prefix};
use quarry_model::{Fields, Value};

pub(crate) const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
pub(crate) const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Parses one syslog line into `fields`; returns the record's time if it has one. `now` resolves the year
/// of BSD stamps.
pub(crate) fn parse(line: &str, now: i64, fields: &mut Fields) -> Result<Option<i64>, String> {
    let b = line.as_bytes();
    let mut i = 0;
    // RFC 6587 octet counting: `123 <34>1 ...`
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n > 0 && n < 8 && b.get(n) == Some(&b' ') && b.get(n + 1) == Some(&b'<') {
        i = n + 1;
    }
    let mut pri = None;
    if b.get(i) == Some(&b'<') {
        let n = b[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .take(4)
            .count();
        if n == 0 || n > 3 || b.get(i + 1 + n) != Some(&b'>') {
            return Err("invalid syslog priority".into());
        }
        let v: u32 = line[i + 1..i + 1 + n]
            .parse()
            .map_err(|_| "invalid syslog priority")?;
        if v > 191 {
            return Err(format!("syslog priority {v} out of range"));
        }
        pri = Some(v);
        i += n + 2;
    }
    if let Some(v) = pri {
        fields.push("facility", FACILITIES[(v / 8) as usize]);
        fields.push("severity", SEVERITIES[(v % 8) as usize]);
        // RFC 5424: a version number right after PRI
        if b.get(i).is_some_and(|c| (b'1'..=b'9').contains(c)) {
            let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n <= 2 && b.get(i + n) == Some(&b' ') {
                return parse_5424(line, i, n, fields);
            }
        }
    }
    parse_3164(line, i, now, fields)
}

fn token(line: &str, i: usize) -> (&str, usize) {
    let rest = &line[i..];
    let end = memchr::memchr(b' ', rest.as_bytes()).unwrap_or(rest.len());
    (&rest[..end], i + end)
}

fn push_nil(fields: &mut Fields, name: &str, v: &str) {
    if v != "-" && !v.is_empty() {
        fields.push(name, v);
    }
}

fn push_procid(fields: &mut Fields, v: &str) {
    match v.parse::<i64>() {
        Ok(n) if !v.starts_with('+') => fields.push("procid", n),
        _ => fields.push("procid", v),
    };
}

fn parse_5424(line: &str, at: usize, n: usize, fields: &mut Fields) -> Result<Option<i64>, String> {
    let b = line.as_bytes();
    let version: i64 = line[at..at + n]
        .parse()
        .map_err(|_| "invalid syslog version")?;
    fields.push("version", version);
    let mut i = at + n + 1;
    let (ts_tok, e) = token(line, i);
    let ts = if ts_tok == "-" {
        None
    } else {
        Some(parse_rfc3339(ts_tok).map_err(|e| format!("RFC 5424 {e}"))?)
    };
    i = e + 1;
    let mut parts = [""; 4];
    for p in parts.iter_mut() {
        if i > line.len() {
            return Err("RFC 5424 header is incomplete".into());
        }
        let (t, e) = token(line, i);
        *p = t;
        i = e + 1;
    }
    if i > line.len() {
        return Err("RFC 5424 header is incomplete: no structured data".into());
    }
    push_nil(fields, "hostname", parts[0]);
    push_nil(fields, "appname", parts[1]);
    if parts[2] != "-" && !parts[2].is_empty() {
        push_procid(fields, parts[2]);
    }
    push_nil(fields, "msgid", parts[3]);
    match b.get(i) {
        Some(b'-') => i += 1,
        Some(b'[') => i = structured_data(line, i, fields)?,
        _ => return Err("RFC 5424 structured data must be '-' or start with '['".into()),
    }
    match b.get(i) {
        None => {}
        Some(b' ') => {
            let msg = &line[i + 1..];
            let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
            fields.push("message", msg);
            if parts[1] != "-" {
                sshd::extract(parts[1], msg, fields);
            }
        }
        Some(_) => return Err("RFC 5424 structured data is not followed by a space".into()),
    }
    Ok(ts)
}

/// Parses `[id k="v" ...][id2 ...]` at `i`; returns the index after it.
fn structured_data(line: &str, mut i: usize, fields: &mut Fields) -> Result<usize, String> {
    let b = line.as_bytes();
    let bad = || "malformed RFC 5424 structured data".to_string();
    while b.get(i) == Some(&b'[') {
        i += 1;
        let id_end = i + b[i..]
            .iter()
            .position(|c| *c == b' ' || *c == b']')
            .ok_or_else(bad)?;
        let id = &line[i..id_end];
        if id.is_empty() {
            return Err(bad());
        }
        i = id_end;
        loop {
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
            match b.get(i) {
                Some(b']') => {
                    i += 1;
                    break;
                }
                None => return Err(bad()),
                _ => {}
            }
            let eq = i + b[i..]
                .iter()
                .position(|c| *c == b'=' || *c == b']')
                .ok_or_else(bad)?;
            if b[eq] != b'=' {
                return Err(bad());
            }
            let name = line[i..eq].trim();
            i = eq + 1;
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
            if b.get(i) != Some(&b'"') {
                return Err(bad());
            }
            i += 1;
            let mut val = String::new();
            let mut start = i;
            loop {
                match b.get(i) {
                    None => return Err(bad()),
                    Some(b'\\') if matches!(b.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                        val.push_str(&line[start..i]);
                        start = i + 1;
                        i += 2;
                    }
                    Some(b'"') => {
                        val.push_str(&line[start..i]);
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            let mut path = String::with_capacity(id.len() + name.len() + 1);
            path.push_str(id);
            path.push('.');
            path.push_str(name);
            fields.push(path, Value::Str(val));
        }
    }
    Ok(i)
}

fn parse_3164(
    line: &str,
    mut i: usize,
    now: i64,
    fields: &mut Fields,
) -> Result<Option<i64>, String> {
    let b = line.as_bytes();
    let (ts, used) = if let Some(x) = parse_bsd_stamp(&b[i..], now) {
        x
    } else if let Some(x) = b
        .get(i)
        .filter(|c| c.is_ascii_digit())
        .and_then(|_| parse_rfc3339_prefix(&line[i..]))
    {
        x
    } else {
        return Err("not a syslog line: no timestamp such as 'Jun 14 15:16:01' or RFC 3339".into());
    };
    i += used;
    if i < b.len() && b[i] != b' ' {
        return Err("not a syslog line: timestamp is not followed by a space".into());
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let (tok, e) = token(line, i);
    if !tok.is_empty() && !tok.ends_with(':') && !tok.contains('[') {
        fields.push("hostname", tok);
        i = e;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    let rest = &line[i..];
    match tag(rest) {
        Some((app, pid, msg_at)) => {
            fields.push("appname", app);
            if let Some(pid) = pid {
                push_procid(fields, pid);
            }
            fields.push("message", &rest[msg_at..]);
            sshd::extract(app, &rest[msg_at..], fields);
        }
        None => {
            fields.push("message", rest);
        }
    }
    Ok(Some(ts))
}

/// The syslog tag at the start of `s`: `app[pid]: `, `app: `; a tag may hold up to two spaces
/// (`syslogd 1.4.1:`, `-- root[2421]:`). Returns (app, pid, start of the message).
pub(crate) fn tag(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let b = s.as_bytes();
    let mut spaces = 0;
    let lim = b.len().min(64);
    let k = b[..lim].iter().position(|c| {
        if *c == b' ' {
            spaces += 1;
        }
        *c == b'[' || *c == b':' || spaces > 2
    })?;
    if b[k] == b' ' {
        return None;
    }
    let app = s[..k].trim_end();
    if app.is_empty() || app.contains('=') || app.contains('"') {
        return None;
    }
    let mut i = k;
    let mut pid = None;
    if b[k] == b'[' {
        let close = k
            + 1
            + b[k + 1..b.len().min(k + 26)]
                .iter()
                .position(|c| *c == b']')?;
        let p = &s[k + 1..close];
        if p.is_empty() || p.contains(' ') || p.contains('[') {
            return None;
        }
        pid = Some(p);
        i = close + 1;
        if b.get(i) == Some(&b':') {
            i += 1;
        }
    } else {
        i += 1;
    }
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    Some((app, pid, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str, now: &str) -> (Option<i64>, Fields) {
        let mut f = Fields::new();
        let ts = parse(line, parse_rfc3339(now).unwrap(), &mut f).unwrap();
        (ts, f)
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let (ts, f) = p(
            r#"<13>1 2020-03-13T20:45:38.119Z dynamicwireless.name non 2426 ID931 [exampleSDID@32473 iut="3" eventSource= "Application" eventID="1011"] Try to override the THX port, maybe it will reboot the neural interface!"#,
            "2024-01-01T00:00:00Z",
        );
        assert_eq!(ts, Some(parse_rfc3339("2020-03-13T20:45:38.119Z").unwrap()));
        assert_eq!(f.get("facility"), Some(&Value::from("user")));
        assert_eq!(f.get("severity"), Some(&Value::from("notice")));
        assert_eq!(f.get("version"), Some(&Value::Int(1)));
        assert_eq!(
            f.get("hostname"),
            Some(&Value::from("dynamicwireless.name"))
        );
        assert_eq!(f.get("appname"), Some(&Value::from("non")));
        assert_eq!(f.get("procid"), Some(&Value::Int(2426)));
        assert_eq!(f.get("msgid"), Some(&Value::from("ID931")));
        assert_eq!(
            f.get("exampleSDID@32473.eventSource"),
            Some(&Value::from("Application"))
        );
        assert_eq!(f.get("exampleSDID@32473.iut"), Some(&Value::from("3")));
        assert_eq!(
            f.get("message"),
            Some(&Value::from(
                "Try to override the THX port, maybe it will reboot the neural interface!"
            ))
        );
    }

    #[test]
    fn rfc5424_nil_values_and_escapes() {
        let (ts, f) = p(
            r#"<165>1 - - - - - [a@1 k="x\"y\]z"][b@2 n="1"]"#,
            "2024-01-01T00:00:00Z",
        );
        assert_eq!(ts, None);
        assert_eq!(f.get("a@1.k"), Some(&Value::from("x\"y]z")));
        assert_eq!(f.get("b@2.n"), Some(&Value::from("1")));
        assert!(f.get("hostname").is_none() && f.get("message").is_none());
        let mut f = Fields::new();
        assert!(parse(r#"<13>1 2020-03-13T20:45:38Z h a p m [broken"#, 0, &mut f).is_err());
        assert!(parse("<999>1 x", 0, &mut Fields::new()).is_err());
    }

    #[test]
    fn bsd_lines() {
        let (ts, f) = p(
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname=",
            "2005-07-01T00:00:00Z",
        );
        assert_eq!(ts, Some(parse_rfc3339("2005-06-14T15:16:01Z").unwrap()));
        assert_eq!(f.get("hostname"), Some(&Value::from("combo")));
        assert_eq!(f.get("appname"), Some(&Value::from("sshd(pam_unix)")));
        assert_eq!(f.get("procid"), Some(&Value::Int(19939)));
        assert_eq!(
            f.get("message"),
            Some(&Value::from("authentication failure; logname="))
        );
        let (_, f) = p(
            "Jun 19 04:09:11 combo syslogd 1.4.1: restart.",
            "2005-07-01T00:00:00Z",
        );
        assert_eq!(f.get("appname"), Some(&Value::from("syslogd 1.4.1")));
        assert_eq!(f.get("message"), Some(&Value::from("restart.")));
        let (_, f) = p(
            "Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2",
            "2005-07-10T00:00:00Z",
        );
        assert_eq!(f.get("appname"), Some(&Value::from("-- root")));
        assert_eq!(f.get("procid"), Some(&Value::Int(2421)));
        let (_, f) = p(
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            "2024-10-12T00:00:00Z",
        );
        assert_eq!(f.get("facility"), Some(&Value::from("auth")));
        assert_eq!(f.get("severity"), Some(&Value::from("crit")));
        assert_eq!(f.get("appname"), Some(&Value::from("su")));
        assert!(f.get("procid").is_none());
        // no hostname (local socket style)
        let (_, f) = p("<13>Oct 11 22:14:15 kernel: boot", "2024-10-12T00:00:00Z");
        assert!(f.get("hostname").is_none());
        assert_eq!(f.get("appname"), Some(&Value::from("kernel")));
        // rsyslog high-precision stamps
        let (ts, f) = p(
            "2024-05-01T12:00:00.123456+02:00 node-1 kubelet[812]: started",
            "2024-05-02T00:00:00Z",
        );
        assert_eq!(
            ts,
            Some(parse_rfc3339("2024-05-01T10:00:00.123456Z").unwrap())
        );
        assert_eq!(f.get("appname"), Some(&Value::from("kubelet")));
        // no tag at all
        let (_, f) = p(
            "Jun 14 15:16:01 combo hello there world again",
            "2005-07-01T00:00:00Z",
        );
        assert!(f.get("appname").is_none());
        assert_eq!(
            f.get("message"),
            Some(&Value::from("hello there world again"))
        );
        assert!(parse("hello world", 0, &mut Fields::new()).is_err());
        assert!(parse("Jun 14 15:16:01x", 0, &mut Fields::new()).is_err());
    }
}
