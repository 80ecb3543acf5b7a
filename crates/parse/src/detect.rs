//! Guessing the format of a stream from its first record.

use crate::{container, klog, logfmt, syslog, vpcflow, Format};
use quarry_model::Fields;
use serde_json::Value as J;

fn s<'v>(v: &'v J, k: &str) -> Option<&'v str> {
    v.get(k).and_then(J::as_str)
}

/// The format of a JSON document.
pub(crate) fn detect_value(v: &J) -> Format {
    match v {
        J::Array(items) => match items.first().map(detect_value) {
            Some(f @ (Format::Audit | Format::CloudTrail)) => f,
            _ => Format::Json,
        },
        J::Object(o) => {
            let kind = s(v, "kind");
            if matches!(kind, Some("Event" | "EventList"))
                && (s(v, "apiVersion").is_some_and(|a| a.starts_with("audit.k8s.io"))
                    || o.contains_key("auditID")
                    || o.contains_key("items"))
            {
                return Format::Audit;
            }
            if o.contains_key("auditID") && o.contains_key("stage") {
                return Format::Audit;
            }
            if let Some(pp) = v.get("protoPayload") {
                if s(pp, "serviceName") == Some("k8s.io") {
                    return Format::Audit;
                }
            }
            if s(v, "category").is_some_and(|c| c.starts_with("kube-audit")) {
                return Format::Audit;
            }
            if let Some(J::Array(recs)) = v.get("records") {
                if recs
                    .first()
                    .is_some_and(|r| detect_value(r) == Format::Audit)
                {
                    return Format::Audit;
                }
            }
            if o.contains_key("Records")
                || (o.contains_key("eventVersion") && o.contains_key("eventSource"))
            {
                return Format::CloudTrail;
            }
            if s(v, "detail-type").is_some_and(|d| d.contains("CloudTrail")) {
                return Format::CloudTrail;
            }
            if let Some(J::Array(evs)) = v.get("logEvents") {
                if let Some(msg) = evs.first().and_then(|e| s(e, "message")) {
                    return detect_text(msg);
                }
            }
            if let Some(m) = v.get("@message") {
                match m {
                    J::String(t) => {
                        let f = detect_text(t);
                        if matches!(f, Format::Audit | Format::CloudTrail | Format::VpcFlow) {
                            return f;
                        }
                    }
                    J::Object(_) => {
                        let f = detect_value(m);
                        if matches!(f, Format::Audit | Format::CloudTrail) {
                            return f;
                        }
                    }
                    _ => {}
                }
            }
            if o.contains_key("MESSAGE")
                && (o.contains_key("__CURSOR") || o.contains_key("__REALTIME_TIMESTAMP"))
            {
                return Format::Journald;
            }
            if o.contains_key("log") && o.contains_key("stream") && o.contains_key("time") {
                return Format::Container;
            }
            if s(v, "message").is_some_and(vpcflow::looks_like) {
                return Format::VpcFlow;
            }
            Format::Json
        }
        _ => Format::Json,
    }
}

/// The format of a text that may be a JSON document or a line.
fn detect_text(t: &str) -> Format {
    match serde_json::from_str::<J>(t) {
        Ok(v) => detect_value(&v),
        Err(_) => detect_line(t, 0),
    }
}

/// The format of a non-JSON line.
pub(crate) fn detect_line(line: &str, now: i64) -> Format {
    let b = line.as_bytes();
    if b.first().is_some_and(u8::is_ascii_digit) && container::parse_cri(line).is_ok() {
        return Format::Container;
    }
    if vpcflow::looks_like(line) {
        return Format::VpcFlow;
    }
    if klog::looks_like(line) {
        return Format::Klog;
    }
    let mut f = Fields::new();
    if b.first() == Some(&b'<') && syslog::parse(line, now, &mut f).is_ok() {
        return Format::Syslog;
    }
    // BSD lines without PRI (`Jun 14 15:16:01 host app[1]: ...`) and RFC 3339 ones (`2024-...T... host app: ...`)
    let rfc3339_t = b.len() > 10 && b[0].is_ascii_digit() && b[10] == b'T';
    if b.first().is_some_and(u8::is_ascii_alphabetic) || rfc3339_t {
        let mut f = Fields::new();
        if syslog::parse(line, now, &mut f).is_ok()
            && f.get("appname").is_some()
            && f.get("hostname").is_some()
        {
            return Format::Syslog;
        }
    }
    if logfmt::looks_like(line) {
        return Format::Logfmt;
    }
    Format::Text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let cases = [
            ("2016-10-06T00:17:09.669794202Z stdout F hi", Format::Container),
            ("2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - NODATA", Format::VpcFlow),
            ("version account-id interface-id srcaddr dstaddr", Format::VpcFlow),
            ("I0505 17:59:40.692994   28133 klog.go:70] hello", Format::Klog),
            ("<13>1 2020-03-13T20:45:38.119Z host app 1 ID - msg", Format::Syslog),
            ("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure", Format::Syslog),
            ("2024-05-01T12:00:00.1+00:00 node-1 kubelet[812]: started", Format::Syslog),
            ("level=info msg=\"started\" port=80", Format::Logfmt),
            ("2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.Foo: Created", Format::Text),
            ("2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification", Format::Text),
            ("hello world", Format::Text),
        ];
        for (line, want) in cases {
            assert_eq!(detect_line(line, 0), want, "{line}");
        }
    }

    #[test]
    fn documents() {
        let j = |t: &str| detect_value(&serde_json::from_str(t).unwrap());
        assert_eq!(
            j(r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x"}"#),
            Format::Audit
        );
        assert_eq!(
            j(r#"{"kind":"Event","auditID":"x","stage":"ResponseComplete"}"#),
            Format::Audit
        );
        assert_eq!(j(r#"{"Records":[]}"#), Format::CloudTrail);
        assert_eq!(
            j(r#"[{"eventVersion":"1.08","eventSource":"s3.amazonaws.com"}]"#),
            Format::CloudTrail
        );
        assert_eq!(
            j(r#"{"log":"x\n","stream":"stdout","time":"2016-10-05T00:00:30Z"}"#),
            Format::Container
        );
        assert_eq!(
            j(r#"{"category":"kube-audit","properties":{"log":"{}"}}"#),
            Format::Audit
        );
        assert_eq!(
            j(r#"{"message":"2 1 eni-1 - - - - - - - 1431280876 1431280934 - NODATA"}"#),
            Format::VpcFlow
        );
        assert_eq!(
            j(
                r#"{"messageType":"DATA_MESSAGE","logEvents":[{"message":"{\"kind\":\"Event\",\"auditID\":\"a\",\"stage\":\"x\"}"}]}"#
            ),
            Format::Audit
        );
        assert_eq!(
            j(r#"{"__CURSOR":"s=1;i=2","MESSAGE":"x","__REALTIME_TIMESTAMP":"1"}"#),
            Format::Journald
        );
        assert_eq!(j(r#"{"MESSAGE":"x"}"#), Format::Json);
        assert_eq!(j(r#"{"level":"info","msg":"x"}"#), Format::Json);
    }
}
