//! journald entries as `journalctl -o json` writes them: one JSON object per line whose values are
//! strings, arrays of byte numbers (a value that is not valid UTF-8), arrays of values (a field that
//! occurs several times in the entry) or `null` (a value over 4096 bytes when journalctl runs without
//! `--all`).
//!
//! The event's time is `__REALTIME_TIMESTAMP` (microseconds since the epoch), else
//! `_SOURCE_REALTIME_TIMESTAMP`, else the fallback time; `@message` is `MESSAGE` (byte arrays decoded
//! lossily, several values joined by newlines; a `null` MESSAGE leaves the whole entry as the message).
//! The raw text is the JSON line. Fields, in this order, each only when the entry has it:
//!
//! | field | from | notes |
//! |---|---|---|
//! | `hostname` | `_HOSTNAME` | the syslog parser's name |
//! | `systemd.unit` | `_SYSTEMD_UNIT` | |
//! | `appname` | `SYSLOG_IDENTIFIER` | the syslog parser's name (the tag, `kubelet` in `kubelet[812]:`) |
//! | `procid` | `_PID` | the syslog parser's name; a number |
//! | `process.command` | `_COMM` | |
//! | `process.executable` | `_EXE` | |
//! | `process.uid` | `_UID` | a number |
//! | `facility` | `SYSLOG_FACILITY` | a name as the syslog parser gives it (`daemon`, `authpriv`) |
//! | `severity` | `PRIORITY` | `emerg`, `alert`, `crit`, `err`, `warning`, `notice`, `info`, `debug` |
//! | `journald.transport` | `_TRANSPORT` | `stdout`, `journal`, `syslog`, `kernel`, `audit`, `driver` |
//! | `journald.boot_id` | `_BOOT_ID` | |
//! | `journald.cursor` | `__CURSOR` | where to resume reading after this entry |
//!
//! sshd's entries (`SYSLOG_IDENTIFIER` `sshd`, `sshd-session`, `sshd-auth`) also get the syslog parser's
//! `sshd.*` fields from MESSAGE: `sshd.event`, `sshd.user`, `sshd.src_ip` (or `sshd.src_host`),
//! `sshd.src_port`, `sshd.method`, `sshd.invalid_user` and a few more (the `sshd` module lists them).
//!
//! A MESSAGE that is a klog line (kubelet and other Kubernetes components: `I1123 10:00:00.000000 812
//! file.go:42] text`) also gets the klog parser's fields `level`, `id`, `file`, `line` and `message`;
//! the event keeps journald's time, which has a year and a zone.
//!
//! A line that is not a JSON object, or an entry without MESSAGE, becomes an error event; so does a line
//! cut at the record cap, which can no longer be read as JSON.

use crate::klog;
use crate::sshd;
use crate::syslog::{FACILITIES, SEVERITIES};
use crate::{error_event, trunc_hint};
use quarry_model::{Event, Fields};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// The format name.
const NAME: &str = "journald";

/// The journal fields read, in the order of [`Slot`].
const KEYS: [&str; 15] = [
    "__CURSOR",
    "__REALTIME_TIMESTAMP",
    "_SOURCE_REALTIME_TIMESTAMP",
    "MESSAGE",
    "_HOSTNAME",
    "_SYSTEMD_UNIT",
    "SYSLOG_IDENTIFIER",
    "_PID",
    "_COMM",
    "_EXE",
    "_UID",
    "SYSLOG_FACILITY",
    "PRIORITY",
    "_TRANSPORT",
    "_BOOT_ID",
];

/// Index of a journal field in [`KEYS`].
#[derive(Clone, Copy)]
enum Slot {
    Cursor,
    Realtime,
    SourceRealtime,
    Message,
    Hostname,
    Unit,
    Identifier,
    Pid,
    Comm,
    Exe,
    Uid,
    Facility,
    Priority,
    Transport,
    BootId,
}

/// One journal field value as journalctl writes it.
#[derive(Debug, Default)]
enum Val<'a> {
    /// Absent, `null` (too large), or a JSON type journalctl never writes.
    #[default]
    None,
    Text(Cow<'a, str>),
    /// A number: not written by journalctl at the top level, an element of a byte array.
    Num(u64),
    /// An array of byte numbers: a value that is not valid UTF-8.
    Bytes(Vec<u8>),
    /// Several values of the same field.
    Many(Vec<Val<'a>>),
}

impl<'a> Val<'a> {
    /// The value as text: the first of several.
    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::None => None,
            Val::Text(s) => Some(Cow::Borrowed(s)),
            Val::Num(n) => Some(Cow::Owned(n.to_string())),
            Val::Bytes(b) => Some(String::from_utf8_lossy(b)),
            Val::Many(v) => v.iter().find_map(Val::text),
        }
    }

    /// The value as text, several values joined by newlines.
    fn joined(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Many(v) => {
                let parts: Vec<Cow<'_, str>> = v.iter().filter_map(Val::text).collect();
                match parts.len() {
                    0 => None,
                    1 => parts.into_iter().next(),
                    _ => Some(Cow::Owned(parts.join("\n"))),
                }
            }
            v => v.text(),
        }
    }

    /// The value as an integer.
    fn int(&self) -> Option<i64> {
        self.text()?.trim().parse::<i64>().ok()
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a journal field value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Text(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Text(Cow::Owned(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::Num(v))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Val<'de>, E> {
        Ok(Val::None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Val<'de>, E> {
        Ok(Val::None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Val<'de>, E> {
        Ok(Val::None)
    }

    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element::<Val<'de>>()? {
            items.push(v);
        }
        let bytes = !items.is_empty() && items.iter().all(|v| matches!(v, Val::Num(n) if *n < 256));
        Ok(if bytes {
            Val::Bytes(
                items
                    .iter()
                    .map(|v| match v {
                        Val::Num(n) => *n as u8,
                        _ => 0,
                    })
                    .collect(),
            )
        } else {
            Val::Many(items)
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::None)
    }
}

/// The journal fields of one entry that Quarry reads.
struct Entry<'a> {
    vals: [Val<'a>; KEYS.len()],
    /// Which fields the entry has (with any value, `null` included).
    seen: [bool; KEYS.len()],
    /// The JSON text was an object.
    object: bool,
}

impl Entry<'_> {
    fn not_object() -> Self {
        Entry {
            vals: Default::default(),
            seen: [false; KEYS.len()],
            object: false,
        }
    }
}

impl<'a> Entry<'a> {
    fn get(&self, s: Slot) -> &Val<'a> {
        &self.vals[s as usize]
    }
}

impl<'de> Deserialize<'de> for Entry<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a journald entry (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry<'de>, A::Error> {
        let mut e = Entry::not_object();
        e.object = true;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match KEYS.iter().position(|k| *k == key) {
                Some(i) => {
                    e.vals[i] = map.next_value()?;
                    e.seen[i] = true;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(e)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Entry::not_object())
    }

    fn visit_str<E>(self, _: &str) -> Result<Entry<'de>, E> {
        Ok(Entry::not_object())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Entry<'de>, E> {
        Ok(Entry::not_object())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Entry<'de>, E> {
        Ok(Entry::not_object())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Entry<'de>, E> {
        Ok(Entry::not_object())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Entry<'de>, E> {
        Ok(Entry::not_object())
    }

    fn visit_unit<E>(self) -> Result<Entry<'de>, E> {
        Ok(Entry::not_object())
    }
}

/// Microseconds since the epoch, as a decimal string, to nanoseconds.
fn usec_to_ns(v: &Val<'_>) -> Option<i64> {
    let t = v.text()?;
    let t = t.trim();
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse::<i64>().ok()?.checked_mul(1000)
}

/// Reads one `journalctl -o json` line. `fallback` is the time of an entry without one; `cut` is the
/// record cap when the line was cut at it.
pub(crate) fn parse(line: &str, fallback: i64, cut: Option<usize>) -> Event {
    if let Some(cap) = cut {
        let reason = format!(
            "journald entry longer than max_record_bytes ({cap}) was cut and cannot be read as JSON"
        );
        return error_event(NAME, line, reason, fallback, Some(&trunc_hint(cap)));
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let entry = match Entry::deserialize(&mut de).and_then(|e| de.end().map(|_| e)) {
        Ok(e) => e,
        Err(e) => {
            let reason = format!("not a journald JSON entry: {e}");
            return error_event(NAME, line, reason, fallback, None);
        }
    };
    if !entry.object {
        let reason = "not a journald JSON entry: expected a JSON object".to_string();
        return error_event(NAME, line, reason, fallback, None);
    }
    let ts = usec_to_ns(entry.get(Slot::Realtime))
        .or_else(|| usec_to_ns(entry.get(Slot::SourceRealtime)))
        .unwrap_or(fallback);
    if !entry.seen[Slot::Message as usize] {
        let reason = "journald entry without MESSAGE".to_string();
        return error_event(NAME, line, reason, ts, None);
    }
    let message = entry.get(Slot::Message).joined().map(Cow::into_owned);
    let mut f = Fields::new();
    let text = |f: &mut Fields, name: &str, s: Slot| {
        if let Some(v) = entry.get(s).text() {
            f.push(name, v.into_owned());
        }
    };
    let int = |f: &mut Fields, name: &str, s: Slot| match entry.get(s).int() {
        Some(n) => {
            f.push(name, n);
        }
        None => text(f, name, s),
    };
    text(&mut f, "hostname", Slot::Hostname);
    text(&mut f, "systemd.unit", Slot::Unit);
    text(&mut f, "appname", Slot::Identifier);
    int(&mut f, "procid", Slot::Pid);
    text(&mut f, "process.command", Slot::Comm);
    text(&mut f, "process.executable", Slot::Exe);
    int(&mut f, "process.uid", Slot::Uid);
    let named = |s: Slot, names: &'static [&'static str]| {
        let n = usize::try_from(entry.get(s).int()?).ok()?;
        names.get(n).copied()
    };
    if let Some(name) = named(Slot::Facility, &FACILITIES) {
        f.push("facility", name);
    }
    if let Some(name) = named(Slot::Priority, &SEVERITIES) {
        f.push("severity", name);
    }
    text(&mut f, "journald.transport", Slot::Transport);
    text(&mut f, "journald.boot_id", Slot::BootId);
    text(&mut f, "journald.cursor", Slot::Cursor);
    if let (Some(app), Some(m)) = (entry.get(Slot::Identifier).text(), &message) {
        sshd::extract(&app, m, &mut f);
    }
    if let Some(m) = &message {
        if klog::looks_like(m) {
            let mut k = Fields::new();
            if klog::parse(m, ts, &mut k).is_ok() {
                for (p, v) in k.iter() {
                    f.push(p, v.clone());
                }
            }
        }
    }
    Event {
        ts,
        raw: line.to_string(),
        message,
        fields: f,
        parse_error: None,
        hint: None,
        format: NAME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_model::Value;

    /// Entries written by `journalctl -o json --all` (systemd 252) from a journal built with
    /// `systemd-journal-remote`; field order is journalctl's own.
    const KUBELET: &str = r#"{"_HOSTNAME":"node-1","MESSAGE":"I1123 10:00:00.000000     812 kubelet.go:2345] \"SyncLoop ADD\" source=\"api\" pods=[\"kube-system/coredns-1\"]","_EXE":"/usr/bin/kubelet","PRIORITY":"6","SYSLOG_IDENTIFIER":"kubelet","_BOOT_ID":"0123456789abcdef0123456789abcdef","_UID":"0","_COMM":"kubelet","__REALTIME_TIMESTAMP":"1700733600000000","__MONOTONIC_TIMESTAMP":"1000000","_TRANSPORT":"stdout","__CURSOR":"s=03b5a0ef70ce4d7e84574350a140216e;i=1;b=0123456789abcdef0123456789abcdef;m=f4240;t=60acee615e800;x=118de8318e47f081","_SYSTEMD_UNIT":"kubelet.service","SYSLOG_FACILITY":"3","_PID":"812"}"#;
    const BINARY: &str = r#"{"__REALTIME_TIMESTAMP":"1700733602000000","__MONOTONIC_TIMESTAMP":"3000000","_TRANSPORT":"stdout","MESSAGE":[98,97,100,32,98,121,116,101,115,32,255,254,32,104,101,114,101,32,195,169],"_PID":"700","_BOOT_ID":"0123456789abcdef0123456789abcdef","FOO":["one","two"],"_HOSTNAME":"node-1","__CURSOR":"s=c02f75892c034f17a18d432099132f1e;i=1;b=0123456789abcdef0123456789abcdef;m=2dc6c0;t=60acee6346c80;x=db2f00f3e5eab2e7","_SYSTEMD_UNIT":"containerd.service","PRIORITY":"3"}"#;
    /// Without `--all`, a value over 4096 bytes is written as null.
    const TOO_LARGE: &str = r#"{"MESSAGE":null,"__CURSOR":"s=c02f75892c034f17a18d432099132f1e;i=2;b=0123456789abcdef0123456789abcdef;m=3d0900;t=60acee643aec0;x=994490cd43efee9b","__REALTIME_TIMESTAMP":"1700733603000000","__MONOTONIC_TIMESTAMP":"4000000","_BOOT_ID":"0123456789abcdef0123456789abcdef","_SYSTEMD_UNIT":"kubelet.service"}"#;
    const FALLBACK: i64 = 1_800_000_000_000_000_000;

    fn s(f: &Fields, k: &str) -> Option<String> {
        f.get(k).map(|v| v.to_string())
    }

    #[test]
    fn kubelet_entry_with_klog_fields() {
        let ev = parse(KUBELET, FALLBACK, None);
        assert_eq!(ev.parse_error, None);
        assert_eq!(ev.format, "journald");
        assert_eq!(ev.raw, KUBELET);
        assert_eq!(ev.ts, 1_700_733_600_000_000_000);
        assert!(ev
            .message()
            .starts_with("I1123 10:00:00.000000     812 kubelet.go:2345]"));
        let names: Vec<&str> = ev.fields.iter().map(|(p, _)| p).collect();
        assert_eq!(
            names,
            [
                "hostname",
                "systemd.unit",
                "appname",
                "procid",
                "process.command",
                "process.executable",
                "process.uid",
                "facility",
                "severity",
                "journald.transport",
                "journald.boot_id",
                "journald.cursor",
                "level",
                "id",
                "file",
                "line",
                "message",
            ]
        );
        let f = &ev.fields;
        assert_eq!(s(f, "hostname").as_deref(), Some("node-1"));
        assert_eq!(s(f, "systemd.unit").as_deref(), Some("kubelet.service"));
        assert_eq!(s(f, "appname").as_deref(), Some("kubelet"));
        assert_eq!(f.get("procid"), Some(&Value::Int(812)));
        assert_eq!(f.get("process.uid"), Some(&Value::Int(0)));
        assert_eq!(
            s(f, "process.executable").as_deref(),
            Some("/usr/bin/kubelet")
        );
        assert_eq!(s(f, "facility").as_deref(), Some("daemon"));
        assert_eq!(s(f, "severity").as_deref(), Some("info"));
        assert_eq!(s(f, "journald.transport").as_deref(), Some("stdout"));
        assert!(s(f, "journald.cursor").unwrap().starts_with("s=03b5a0ef"));
        assert_eq!(s(f, "level").as_deref(), Some("info"));
        assert_eq!(s(f, "file").as_deref(), Some("kubelet.go"));
        assert_eq!(f.get("line"), Some(&Value::Int(2345)));
        assert_eq!(
            s(f, "message").as_deref(),
            Some(r#""SyncLoop ADD" source="api" pods=["kube-system/coredns-1"]"#)
        );
    }

    #[test]
    fn byte_arrays_multiple_values_and_null() {
        let ev = parse(BINARY, FALLBACK, None);
        assert_eq!(ev.parse_error, None);
        assert_eq!(ev.message(), "bad bytes \u{fffd}\u{fffd} here é");
        assert_eq!(s(&ev.fields, "severity").as_deref(), Some("err"));
        assert!(ev.fields.get("level").is_none());
        let ev = parse(TOO_LARGE, FALLBACK, None);
        assert_eq!(ev.parse_error, None);
        assert_eq!(ev.message, None);
        assert_eq!(ev.message(), TOO_LARGE);
        assert_eq!(ev.ts, 1_700_733_603_000_000_000);
        // several values of MESSAGE; a byte array among them; other fields take the first value
        let ev = parse(
            r#"{"MESSAGE":["a",[104,105,255],"c"],"_PID":["7","8"],"PRIORITY":"9","SYSLOG_FACILITY":"x"}"#,
            FALLBACK,
            None,
        );
        assert_eq!(ev.message(), "a\nhi\u{fffd}\nc");
        assert_eq!(ev.fields.get("procid"), Some(&Value::Int(7)));
        assert!(ev.fields.get("severity").is_none() && ev.fields.get("facility").is_none());
        assert_eq!(ev.ts, FALLBACK);
        // bytes that are not bytes: kept as several values, never an error
        let ev = parse(r#"{"MESSAGE":[300,1.5,true,{"a":1}]}"#, FALLBACK, None);
        assert_eq!(ev.parse_error, None);
        assert_eq!(ev.message(), "300");
    }

    #[test]
    fn time_falls_back_in_order() {
        let ev = parse(
            r#"{"_SOURCE_REALTIME_TIMESTAMP":"1700733600123456","__REALTIME_TIMESTAMP":"bad","MESSAGE":"m"}"#,
            FALLBACK,
            None,
        );
        assert_eq!(ev.ts, 1_700_733_600_123_456_000);
        let ev = parse(
            r#"{"__REALTIME_TIMESTAMP":"-5","MESSAGE":"m"}"#,
            FALLBACK,
            None,
        );
        assert_eq!(ev.ts, FALLBACK);
        let ev = parse(
            r#"{"__REALTIME_TIMESTAMP":"99999999999999999999","MESSAGE":"m"}"#,
            FALLBACK,
            None,
        );
        assert_eq!(ev.ts, FALLBACK);
    }

    #[test]
    fn klog_inside_any_unit_and_bad_klog_ignored() {
        let ev = parse(
            r#"{"_SYSTEMD_UNIT":"kube-proxy.service","MESSAGE":"W0102 03:04:05.000006 1 proxier.go:9] slow"}"#,
            FALLBACK,
            None,
        );
        assert_eq!(s(&ev.fields, "level").as_deref(), Some("warning"));
        let ev = parse(
            r#"{"_SYSTEMD_UNIT":"kubelet.service","MESSAGE":"I1123 10:00:00.000000 nope"}"#,
            FALLBACK,
            None,
        );
        assert_eq!(ev.parse_error, None);
        assert!(ev.fields.get("level").is_none());
        assert_eq!(
            s(&ev.fields, "systemd.unit").as_deref(),
            Some("kubelet.service")
        );
    }

    #[test]
    fn sshd_entries_get_sshd_fields() {
        // OpenSSH 9.8's per-connection process, as journalctl writes it
        let ev = parse(
            r#"{"_HOSTNAME":"node-1","SYSLOG_IDENTIFIER":"sshd-session","_PID":"4242","MESSAGE":"Failed password for invalid user oracle from 198.51.100.23 port 40002 ssh2","__REALTIME_TIMESTAMP":"1700733600000000","_SYSTEMD_UNIT":"ssh.service","SYSLOG_FACILITY":"10","PRIORITY":"6"}"#,
            FALLBACK,
            None,
        );
        assert_eq!(ev.parse_error, None);
        let sshd: Vec<String> = ev
            .fields
            .iter()
            .filter(|(k, _)| k.starts_with("sshd."))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            sshd,
            [
                "sshd.event=failed",
                "sshd.user=oracle",
                "sshd.src_ip=198.51.100.23",
                "sshd.src_port=40002",
                "sshd.method=password",
                "sshd.invalid_user=true"
            ]
        );
        assert_eq!(ev.fields.get("sshd.src_port"), Some(&Value::Int(40002)));
        assert_eq!(
            ev.message(),
            "Failed password for invalid user oracle from 198.51.100.23 port 40002 ssh2"
        );
        // the same text from another program, or an sshd entry of another shape: no sshd fields
        for line in [
            r#"{"SYSLOG_IDENTIFIER":"sudo","MESSAGE":"Failed password for root from 10.0.0.1 port 22 ssh2"}"#,
            r#"{"SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Server listening on :: port 22."}"#,
            r#"{"MESSAGE":"Failed password for root from 10.0.0.1 port 22 ssh2"}"#,
        ] {
            let ev = parse(line, FALLBACK, None);
            assert_eq!(ev.parse_error, None);
            assert!(
                ev.fields.iter().all(|(k, _)| !k.starts_with("sshd.")),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_input_is_an_error_event() {
        for (line, why) in [
            ("not json", "not a journald JSON entry"),
            ("{\"MESSAGE\":\"a\"", "not a journald JSON entry"),
            ("{\"MESSAGE\":\"a\"} trailing", "not a journald JSON entry"),
            ("[1,2]", "expected a JSON object"),
            ("\"MESSAGE\"", "expected a JSON object"),
            ("null", "expected a JSON object"),
            ("{\"__CURSOR\":\"s=1\"}", "without MESSAGE"),
            (
                "{\"__CURSOR\":\"s=1\",\"m\":\"MESSAGE\"}",
                "without MESSAGE",
            ),
        ] {
            let ev = parse(line, FALLBACK, None);
            let err = ev.parse_error.as_deref().unwrap_or_default();
            assert!(err.contains(why), "{line}: {err}");
            assert_eq!(ev.raw, line);
            assert_eq!(ev.format, "journald");
        }
        let ev = parse(&KUBELET[..100], FALLBACK, Some(100));
        assert!(ev.parse_error.unwrap().contains("max_record_bytes (100)"));
        assert_eq!(ev.hint.as_deref(), Some("max_record_bytes=100"));
    }
}
