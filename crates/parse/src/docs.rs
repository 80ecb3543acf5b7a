//! JSON documents: Kubernetes audit events (plain, `EventList`, and the EKS, GKE and AKS wrappers),
//! CloudTrail records (`{"Records":[...]}`, arrays, EventBridge, single records), JSON-wrapped VPC flow log
//! lines and arbitrary JSON objects.
//!
//! A document that holds one record keeps its text as `raw`; records exploded out of a batch get their own
//! text (the item as compact JSON, or the inner event text of a wrapper).

use crate::jsonflat::{flatten_str, get_str};
use crate::timeutil::value_to_ns;
use crate::vpcflow;
use quarry_model::time::parse_rfc3339;
use quarry_model::{flatten_json, Event, Fields, Value};
use serde_json::Value as J;

/// Whether a document was complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    /// The text ended inside the document; nothing was emitted.
    Incomplete,
}

/// Which reader a document goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocFormat {
    Audit,
    CloudTrail,
    Json,
    VpcFlow,
}

impl DocFormat {
    fn name(self) -> &'static str {
        match self {
            DocFormat::Audit => "audit",
            DocFormat::CloudTrail => "cloudtrail",
            DocFormat::Json => "json",
            DocFormat::VpcFlow => "vpcflow",
        }
    }
}

/// Where a document's events go and how it was read.
pub(crate) struct Ctx<'a> {
    pub(crate) fallback: i64,
    pub(crate) out: &'a mut Vec<Event>,
    /// A document cut short may still be waiting for more lines.
    pub(crate) allow_incomplete: bool,
    /// The record was cut at this many bytes.
    pub(crate) truncated: Option<usize>,
    pub(crate) vpc: Option<&'a vpcflow::Layout>,
    /// `now` for timestamps without a year.
    pub(crate) now: i64,
}

impl Ctx<'_> {
    fn hint(&self) -> Option<String> {
        self.truncated.map(crate::trunc_hint)
    }

    fn emit(&mut self, fmt: DocFormat, raw: &str, fields: Fields, ts: Option<i64>) {
        self.emit_with(fmt, raw, fields, ts, None);
    }

    fn emit_with(
        &mut self,
        fmt: DocFormat,
        raw: &str,
        fields: Fields,
        ts: Option<i64>,
        hint: Option<String>,
    ) {
        let hint = hint.or_else(|| self.hint());
        self.out.push(Event {
            ts: ts.unwrap_or(self.fallback),
            raw: raw.to_string(),
            message: None,
            fields,
            parse_error: None,
            hint,
            format: fmt.name(),
        });
    }

    fn fail(&mut self, fmt: DocFormat, raw: &str, reason: String) {
        let reason = match self.truncated {
            Some(n) => format!("record truncated at {n} bytes: {reason}"),
            None => reason,
        };
        let hint = self.hint();
        self.out.push(Event {
            ts: self.fallback,
            raw: raw.to_string(),
            message: None,
            fields: Fields::new(),
            parse_error: Some(reason),
            hint,
            format: fmt.name(),
        });
    }

    /// A JSON syntax error: incomplete, or an error event.
    fn json_error(&mut self, fmt: DocFormat, raw: &str, e: serde_json::Error) -> Outcome {
        if e.is_eof() && self.allow_incomplete {
            return Outcome::Incomplete;
        }
        self.fail(fmt, raw, format!("invalid JSON: {e}"));
        Outcome::Done
    }
}

/// Reads one document of the given format.
pub(crate) fn read(fmt: DocFormat, text: &str, ctx: &mut Ctx<'_>) -> Outcome {
    match fmt {
        DocFormat::Audit => audit_text(text, None, None, ctx),
        DocFormat::CloudTrail => trail_text(text, None, None, ctx),
        DocFormat::Json => json_text(text, ctx),
        DocFormat::VpcFlow => vpc_text(text, ctx),
    }
}

fn head(text: &str, n: usize) -> &[u8] {
    let b = text.as_bytes();
    &b[..b.len().min(n)]
}

fn contains(hay: &[u8], needle: &str) -> bool {
    memchr::memmem::find(hay, needle.as_bytes()).is_some()
}

fn compact(v: &J) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Why a text that does not start a JSON object or array is no record: a JSON scalar, or not JSON.
fn not_json_reason(what: &str, text: &str) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        format!("{what}: expected a JSON object")
    } else {
        format!("{what}: not JSON")
    }
}

fn parse_value(text: &str) -> Result<J, serde_json::Error> {
    serde_json::from_str(text)
}

fn scalar<'v>(obj: &'v serde_json::Map<String, J>, key: &str) -> Option<&'v J> {
    obj.get(key).filter(|v| !v.is_object() && !v.is_array())
}

/// The events of a CloudWatch Logs subscription record: (timestamp, message) per log event.
fn cloudwatch_events(obj: &serde_json::Map<String, J>) -> Option<Vec<(Option<i64>, &str)>> {
    obj.get("messageType")?;
    let events = obj.get("logEvents").and_then(J::as_array)?;
    Some(
        events
            .iter()
            .filter_map(|e| {
                let msg = e.get("message")?.as_str()?;
                let ts = e
                    .get("timestamp")
                    .and_then(J::as_i64)
                    .and_then(|ms| ms.checked_mul(1_000_000));
                Some((ts, msg))
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------------
// Kubernetes audit

fn audit_plain_fields(f: &Fields) -> bool {
    match f.get("kind") {
        Some(k) => k.as_str() == Some("Event"),
        None => f.get("auditID").is_some(),
    }
}

fn audit_plain_value(obj: &serde_json::Map<String, J>) -> bool {
    match scalar(obj, "kind") {
        Some(k) => k.as_str() == Some("Event"),
        None => scalar(obj, "auditID").is_some(),
    }
}

fn gke_fields(f: &Fields) -> bool {
    get_str(f, "protoPayload.serviceName") == Some("k8s.io")
        || get_str(f, "protoPayload.@type")
            .is_some_and(|t| t.ends_with("google.cloud.audit.AuditLog"))
}

fn audit_ts(f: &Fields) -> Option<i64> {
    ["requestReceivedTimestamp", "stageTimestamp"]
        .iter()
        .find_map(|k| get_str(f, k).and_then(|s| parse_rfc3339(s).ok()))
}

/// HTTP status of a google.rpc.Code, as the apiserver would have answered.
fn grpc_to_http(code: i64) -> i64 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// Adds the audit.k8s.io names (`verb`, `user.username`, `objectRef.*`, `sourceIPs.0`,
/// `responseStatus.code`, `annotations.*`) to a flattened GKE Cloud Audit Logs entry.
fn gke_aliases(f: &mut Fields) {
    let mut add: Vec<(String, Value)> = Vec::new();
    let is_k8s = get_str(f, "protoPayload.serviceName") == Some("k8s.io");
    if let Some(m) = get_str(f, "protoPayload.methodName") {
        if is_k8s || m.starts_with("io.k8s.") {
            if let Some(verb) = m.rsplit('.').next().filter(|v| !v.is_empty()) {
                add.push(("verb".into(), verb.into()));
            }
        }
    }
    if let Some(u) = get_str(f, "protoPayload.authenticationInfo.principalEmail") {
        add.push(("user.username".into(), u.into()));
    }
    if let Some(ip) = get_str(f, "protoPayload.requestMetadata.callerIp") {
        add.push(("sourceIPs.0".into(), ip.into()));
    }
    if let Some(ua) = get_str(f, "protoPayload.requestMetadata.callerSuppliedUserAgent") {
        add.push(("userAgent".into(), ua.into()));
    }
    if is_k8s {
        if let Some(r) = get_str(f, "protoPayload.resourceName") {
            let segs: Vec<&str> = r.split('/').collect();
            let versioned = segs.len() >= 3
                && segs[1].len() >= 2
                && segs[1].starts_with('v')
                && segs[1].as_bytes()[1].is_ascii_digit();
            if versioned {
                let group = if segs[0] == "core" { "" } else { segs[0] };
                add.push(("objectRef.apiGroup".into(), group.into()));
                add.push(("objectRef.apiVersion".into(), segs[1].into()));
                let mut rest = &segs[2..];
                if rest.len() >= 3 && rest[0] == "namespaces" {
                    add.push(("objectRef.namespace".into(), rest[1].into()));
                    rest = &rest[2..];
                }
                let names = [
                    "objectRef.resource",
                    "objectRef.name",
                    "objectRef.subresource",
                ];
                for (k, v) in names.iter().zip(rest) {
                    add.push(((*k).into(), (*v).into()));
                }
            }
        }
    }
    match f.get("protoPayload.status.code") {
        Some(Value::Int(c)) => {
            add.push(("responseStatus.code".into(), Value::Int(grpc_to_http(*c))))
        }
        None if is_k8s => add.push(("responseStatus.code".into(), Value::Int(200))),
        _ => {}
    }
    for (k, v) in f.iter() {
        if let Some(rest) = k.strip_prefix("labels.authorization.k8s.io/") {
            add.push((
                format!("annotations.authorization.k8s.io/{rest}"),
                v.clone(),
            ));
        }
    }
    for (k, v) in add {
        if f.get(&k).is_none() {
            f.push(k, v);
        }
    }
}

fn audit_sniff_batch(text: &str) -> bool {
    let h = head(text, 64);
    contains(h, "\"records\"")
        || contains(h, "\"messageType\"")
        || contains(h, "\"category\"")
        || contains(head(text, 512), "EventList\"")
}

/// One audit document. `raw` is the text to keep for a single event (default: `text`).
fn audit_text(
    text: &str,
    raw: Option<&str>,
    wrapper_ts: Option<i64>,
    ctx: &mut Ctx<'_>,
) -> Outcome {
    let fmt = DocFormat::Audit;
    let keep = raw.unwrap_or(text);
    let t = text.trim_ascii_start();
    match t.as_bytes().first() {
        Some(b'{') | Some(b'[') => {}
        Some(c) if c.is_ascii_digit() => {
            // CloudWatch Logs export lines: `2024-05-01T12:00:00.000Z {...}`
            if let Some((_, used)) = quarry_model::time::parse_rfc3339_prefix(t) {
                let rest = t[used..].trim_ascii_start();
                if rest.starts_with('{') {
                    return audit_text(rest, Some(keep), wrapper_ts, ctx);
                }
            }
            ctx.fail(
                fmt,
                keep,
                not_json_reason("not a Kubernetes audit event", t),
            );
            return Outcome::Done;
        }
        _ => {
            ctx.fail(
                fmt,
                keep,
                not_json_reason("not a Kubernetes audit event", t),
            );
            return Outcome::Done;
        }
    }
    if t.starts_with('{') && !audit_sniff_batch(t) {
        let mut f = Fields::new();
        if let Err(e) = flatten_str(t, &mut f, &[]) {
            return ctx.json_error(fmt, keep, e);
        }
        if audit_plain_fields(&f) {
            let ts = audit_ts(&f).or(wrapper_ts);
            ctx.emit(fmt, keep, f, ts);
            return Outcome::Done;
        }
        if gke_fields(&f) {
            gke_aliases(&mut f);
            let ts = get_str(&f, "timestamp")
                .and_then(|s| parse_rfc3339(s).ok())
                .or(wrapper_ts);
            ctx.emit(fmt, keep, f, ts);
            return Outcome::Done;
        }
    }
    match parse_value(t) {
        Ok(v) => {
            audit_value(&v, Some(keep), wrapper_ts, ctx);
            Outcome::Done
        }
        Err(e) => ctx.json_error(fmt, keep, e),
    }
}

fn audit_value(v: &J, raw: Option<&str>, wrapper_ts: Option<i64>, ctx: &mut Ctx<'_>) {
    let fmt = DocFormat::Audit;
    // the document itself was complete; nested texts are whole records
    ctx.allow_incomplete = false;
    let keep = |v: &J| raw.map(str::to_string).unwrap_or_else(|| compact(v));
    let obj = match v {
        J::Object(o) => o,
        J::Array(items) => {
            for it in items {
                audit_value(it, None, wrapper_ts, ctx);
            }
            return;
        }
        _ => {
            ctx.fail(
                fmt,
                &keep(v),
                "not a Kubernetes audit event: expected a JSON object".into(),
            );
            return;
        }
    };
    if audit_plain_value(obj) {
        let mut f = Fields::new();
        flatten_json("", v, &mut f);
        let ts = audit_ts(&f).or(wrapper_ts);
        ctx.emit(fmt, &keep(v), f, ts);
        return;
    }
    if scalar(obj, "kind").and_then(J::as_str) == Some("EventList") {
        for it in obj.get("items").and_then(J::as_array).into_iter().flatten() {
            audit_value(it, None, None, ctx);
        }
        return;
    }
    if let Some(evs) = cloudwatch_events(obj) {
        for (ts, msg) in evs {
            audit_text(msg, None, ts, ctx);
        }
        return;
    }
    if let Some(recs) = obj.get("records").and_then(J::as_array) {
        for r in recs {
            audit_value(r, None, None, ctx);
        }
        return;
    }
    let wrapper_time = |k: &str| {
        scalar(obj, k)
            .and_then(J::as_str)
            .and_then(|s| parse_rfc3339(s).ok())
    };
    if scalar(obj, "category")
        .and_then(J::as_str)
        .is_some_and(|c| c.starts_with("kube-audit"))
    {
        let ts = wrapper_time("time");
        match obj.get("properties").and_then(|p| p.get("log")) {
            Some(J::String(s)) => {
                audit_text(s, raw, ts, ctx);
            }
            Some(inner @ J::Object(_)) => audit_value(inner, raw, ts, ctx),
            _ => ctx.fail(
                fmt,
                &keep(v),
                "AKS kube-audit record without properties.log".into(),
            ),
        }
        return;
    }
    if let Some(m) = obj.get("@message") {
        let ts = wrapper_time("@timestamp");
        match m {
            J::String(s) => {
                audit_text(s, raw, ts, ctx);
            }
            J::Object(_) => audit_value(m, raw, ts, ctx),
            _ => ctx.fail(
                fmt,
                &keep(v),
                "not a Kubernetes audit event: @message is not an event".into(),
            ),
        }
        return;
    }
    let mut f = Fields::new();
    flatten_json("", v, &mut f);
    if gke_fields(&f) {
        gke_aliases(&mut f);
        let ts = get_str(&f, "timestamp")
            .and_then(|s| parse_rfc3339(s).ok())
            .or(wrapper_ts);
        ctx.emit(fmt, &keep(v), f, ts);
        return;
    }
    let why = match scalar(obj, "kind") {
        Some(k) => format!("not a Kubernetes audit event: kind is {k}"),
        None => "not a Kubernetes audit event: no kind Event and no auditID".into(),
    };
    ctx.fail(fmt, &keep(v), why);
}

// ---------------------------------------------------------------------------------------------------
// CloudTrail

fn trail_record_fields(f: &Fields) -> bool {
    f.get("eventName").is_some()
        || f.get("eventSource").is_some()
        || f.get("eventVersion").is_some()
}

fn trail_record_value(obj: &serde_json::Map<String, J>) -> bool {
    ["eventName", "eventSource", "eventVersion"]
        .iter()
        .any(|k| scalar(obj, k).is_some())
}

fn trail_ts(f: &Fields) -> Option<i64> {
    get_str(f, "eventTime").and_then(|s| parse_rfc3339(s).ok())
}

fn trail_sniff_batch(text: &str) -> bool {
    let h = head(text, 64);
    contains(h, "\"Records\"") || contains(h, "\"messageType\"") || contains(h, "\"detail-type\"")
}

fn trail_text(
    text: &str,
    raw: Option<&str>,
    wrapper_ts: Option<i64>,
    ctx: &mut Ctx<'_>,
) -> Outcome {
    let fmt = DocFormat::CloudTrail;
    let keep = raw.unwrap_or(text);
    let t = text.trim_ascii_start();
    if !matches!(t.as_bytes().first(), Some(b'{' | b'[')) {
        ctx.fail(fmt, keep, not_json_reason("not a CloudTrail record", t));
        return Outcome::Done;
    }
    if t.starts_with('{') && !trail_sniff_batch(t) {
        let mut f = Fields::new();
        if let Err(e) = flatten_str(t, &mut f, &[]) {
            return ctx.json_error(fmt, keep, e);
        }
        if trail_record_fields(&f) {
            let ts = trail_ts(&f).or(wrapper_ts);
            ctx.emit(fmt, keep, f, ts);
            return Outcome::Done;
        }
    }
    match parse_value(t) {
        Ok(v) => {
            trail_value(&v, Some(keep), wrapper_ts, ctx);
            Outcome::Done
        }
        Err(e) => ctx.json_error(fmt, keep, e),
    }
}

fn trail_value(v: &J, raw: Option<&str>, wrapper_ts: Option<i64>, ctx: &mut Ctx<'_>) {
    let fmt = DocFormat::CloudTrail;
    ctx.allow_incomplete = false;
    let keep = |v: &J| raw.map(str::to_string).unwrap_or_else(|| compact(v));
    let obj = match v {
        J::Object(o) => o,
        J::Array(items) => {
            for it in items {
                trail_value(it, None, wrapper_ts, ctx);
            }
            return;
        }
        _ => {
            ctx.fail(
                fmt,
                &keep(v),
                "not a CloudTrail record: expected a JSON object".into(),
            );
            return;
        }
    };
    if trail_record_value(obj) {
        let mut f = Fields::new();
        flatten_json("", v, &mut f);
        let ts = trail_ts(&f).or(wrapper_ts);
        ctx.emit(fmt, &keep(v), f, ts);
        return;
    }
    if let Some(items) = obj.get("Records").and_then(J::as_array) {
        for it in items {
            trail_value(it, None, None, ctx);
        }
        return;
    }
    if let Some(evs) = cloudwatch_events(obj) {
        for (ts, msg) in evs {
            trail_text(msg, None, ts, ctx);
        }
        return;
    }
    if let (Some(J::Object(_)), Some(dt)) = (
        obj.get("detail"),
        scalar(obj, "detail-type").and_then(J::as_str),
    ) {
        if dt.contains("CloudTrail") {
            let mut f = Fields::new();
            flatten_json("", &obj["detail"], &mut f);
            let ts = trail_ts(&f).or_else(|| {
                scalar(obj, "time")
                    .and_then(J::as_str)
                    .and_then(|s| parse_rfc3339(s).ok())
            });
            ctx.emit(fmt, &keep(v), f, ts);
            return;
        }
    }
    ctx.fail(
        fmt,
        &keep(v),
        "not a CloudTrail record: no eventName, eventSource or eventVersion".into(),
    );
}

// ---------------------------------------------------------------------------------------------------
// Any JSON

/// Top-level keys holding a record's time, in order of preference.
pub(crate) const TIME_KEYS: [&str; 6] = ["@timestamp", "timestamp", "time", "ts", "eventTime", "t"];

pub(crate) fn json_ts(f: &Fields, now: i64) -> Option<i64> {
    TIME_KEYS
        .iter()
        .find_map(|k| f.get(k).and_then(|v| value_to_ns(v, now)))
}

fn json_text(text: &str, ctx: &mut Ctx<'_>) -> Outcome {
    let fmt = DocFormat::Json;
    let t = text.trim_ascii_start();
    match t.as_bytes().first() {
        Some(b'{') => {
            let mut f = Fields::new();
            if let Err(e) = flatten_str(t, &mut f, &[]) {
                return ctx.json_error(fmt, text, e);
            }
            let ts = json_ts(&f, ctx.now);
            ctx.emit(fmt, text, f, ts);
        }
        Some(b'[') => match parse_value(t) {
            Ok(J::Array(items)) => {
                for it in &items {
                    if it.is_object() {
                        let mut f = Fields::new();
                        flatten_json("", it, &mut f);
                        let ts = json_ts(&f, ctx.now);
                        ctx.emit(fmt, &compact(it), f, ts);
                    } else {
                        ctx.fail(fmt, &compact(it), "not a JSON object".into());
                    }
                }
            }
            Ok(_) => ctx.fail(fmt, text, "not a JSON object".into()),
            Err(e) => return ctx.json_error(fmt, text, e),
        },
        _ => ctx.fail(fmt, text, "not a JSON object".into()),
    }
    Outcome::Done
}

// ---------------------------------------------------------------------------------------------------
// VPC flow logs wrapped in JSON

/// Reads one VPC flow log data line into an event.
pub(crate) fn vpc_line(line: &str, raw: &str, ctx: &mut Ctx<'_>) {
    let mut f = Fields::new();
    let layout = ctx.vpc;
    match vpcflow::parse_line(line, layout, &mut f) {
        Ok(ts) => {
            let hint = layout.and_then(|l| l.hint.clone());
            ctx.emit_with(DocFormat::VpcFlow, raw, f, ts, hint);
        }
        Err(e) => {
            let before = ctx.out.len();
            ctx.fail(DocFormat::VpcFlow, raw, e);
            if let (Some(ev), Some(l)) = (ctx.out.get_mut(before), layout) {
                if ev.hint.is_none() {
                    ev.hint = l.hint.clone();
                }
            }
        }
    }
}

fn vpc_text(text: &str, ctx: &mut Ctx<'_>) -> Outcome {
    let fmt = DocFormat::VpcFlow;
    let v = match parse_value(text) {
        Ok(v) => v,
        Err(e) => return ctx.json_error(fmt, text, e),
    };
    let Some(obj) = v.as_object() else {
        ctx.fail(
            fmt,
            text,
            "not a VPC flow log record: expected a JSON object".into(),
        );
        return Outcome::Done;
    };
    if let Some(evs) = cloudwatch_events(obj) {
        for (_, msg) in evs {
            if vpcflow::parse_header(msg).is_none() {
                vpc_line(msg, msg, ctx);
            }
        }
        return Outcome::Done;
    }
    match ["message", "@message"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(J::as_str))
    {
        Some(line) => vpc_line(line, text, ctx),
        None => ctx.fail(fmt, text, "not a VPC flow log record: no message".into()),
    }
    Outcome::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(fmt: DocFormat, text: &str) -> Vec<Event> {
        let mut out = Vec::new();
        let mut ctx = Ctx {
            fallback: 7,
            out: &mut out,
            allow_incomplete: false,
            truncated: None,
            vpc: None,
            now: 0,
        };
        read(fmt, text, &mut ctx);
        out
    }

    #[test]
    fn event_list_is_exploded_items_without_kind_accepted() {
        let doc = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[
            {"level":"Metadata","auditID":"a1","stage":"ResponseComplete","verb":"get","requestReceivedTimestamp":"2024-05-01T12:00:00Z"},
            {"kind":0}]}"#;
        let evs = read_all(DocFormat::Audit, doc);
        assert_eq!(evs.len(), 2);
        assert_eq!(
            evs[0].raw,
            r#"{"level":"Metadata","auditID":"a1","stage":"ResponseComplete","verb":"get","requestReceivedTimestamp":"2024-05-01T12:00:00Z"}"#
        );
        assert_eq!(evs[0].ts, parse_rfc3339("2024-05-01T12:00:00Z").unwrap());
        assert!(evs[0].parse_error.is_none());
        assert_eq!(evs[1].raw, r#"{"kind":0}"#);
        assert_eq!(
            evs[1].parse_error.as_deref(),
            Some("not a Kubernetes audit event: kind is 0")
        );
        assert_eq!(evs[1].ts, 7);
    }

    #[test]
    fn eks_cloudwatch_subscription() {
        let inner = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","verb":"list","user":{"username":"eks:node"}}"#;
        let doc = serde_json::json!({"messageType":"DATA_MESSAGE","owner":"1","logGroup":"/aws/eks/c/cluster",
            "logStream":"kube-apiserver-audit-1","subscriptionFilters":["f"],
            "logEvents":[{"id":"1","timestamp":1600110569039i64,"message":inner},{"id":"2","timestamp":1600110569040i64,"message":inner}]})
        .to_string();
        let evs = read_all(DocFormat::Audit, &doc);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].raw, inner);
        assert_eq!(evs[0].ts, 1_600_110_569_039_000_000);
        assert_eq!(
            evs[1].fields.get("user.username"),
            Some(&Value::from("eks:node"))
        );
        let ctl = r#"{"messageType":"CONTROL_MESSAGE","logEvents":[]}"#;
        assert!(read_all(DocFormat::Audit, ctl).is_empty());
    }

    #[test]
    fn logs_insights_export_and_cloudwatch_export_lines() {
        let inner = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","verb":"delete","requestReceivedTimestamp":"2024-05-01T12:00:00Z"}"#;
        let line = serde_json::json!({"@timestamp":"2024-05-01 12:00:01.000","@message":inner,"@logStream":"kube-apiserver-audit-1"}).to_string();
        let evs = read_all(DocFormat::Audit, &line);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].raw, line);
        assert_eq!(evs[0].fields.get("verb"), Some(&Value::from("delete")));
        assert!(evs[0].fields.get("@logStream").is_none());
        assert_eq!(evs[0].ts, parse_rfc3339("2024-05-01T12:00:00Z").unwrap());
        let export = format!("2024-05-01T12:00:00.000Z {inner}");
        let evs = read_all(DocFormat::Audit, &export);
        assert_eq!(evs[0].raw, export);
        assert_eq!(evs[0].fields.get("auditID"), Some(&Value::from("x")));
        let evs = read_all(DocFormat::Audit, "2024-05-01T12:00:00.000Z no json here");
        assert!(evs[0].parse_error.is_some());
    }

    #[test]
    fn gke_resource_names() {
        let doc = r#"{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","authenticationInfo":{"principalEmail":"alice@example.com"},"methodName":"io.k8s.core.v1.pods.exec.create","requestMetadata":{"callerIp":"10.0.0.1"},"resourceName":"core/v1/namespaces/prod/pods/web-1/exec","serviceName":"k8s.io","status":{"code":7}},"timestamp":"2024-05-01T12:00:00Z","labels":{"authorization.k8s.io/decision":"forbid"}}"#;
        let evs = read_all(DocFormat::Audit, doc);
        let f = &evs[0].fields;
        assert_eq!(f.get("verb"), Some(&Value::from("create")));
        assert_eq!(f.get("objectRef.resource"), Some(&Value::from("pods")));
        assert_eq!(f.get("objectRef.namespace"), Some(&Value::from("prod")));
        assert_eq!(f.get("objectRef.name"), Some(&Value::from("web-1")));
        assert_eq!(f.get("objectRef.subresource"), Some(&Value::from("exec")));
        assert_eq!(f.get("objectRef.apiGroup"), Some(&Value::from("")));
        assert_eq!(f.get("responseStatus.code"), Some(&Value::Int(403)));
        assert_eq!(f.get("sourceIPs.0"), Some(&Value::from("10.0.0.1")));
        assert_eq!(
            f.get("annotations.authorization.k8s.io/decision"),
            Some(&Value::from("forbid"))
        );
        assert_eq!(
            f.get("protoPayload.methodName"),
            Some(&Value::from("io.k8s.core.v1.pods.exec.create"))
        );
        assert_eq!(evs[0].ts, parse_rfc3339("2024-05-01T12:00:00Z").unwrap());
    }

    #[test]
    fn cloudtrail_shapes() {
        let rec = r#"{"eventVersion":"1.08","eventTime":"2024-05-01T12:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser"}"#;
        let evs = read_all(
            DocFormat::CloudTrail,
            &format!(r#"{{"Records":[{rec},{rec}]}}"#),
        );
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].raw, rec);
        assert_eq!(evs[0].ts, parse_rfc3339("2024-05-01T12:00:00Z").unwrap());
        let eb = format!(
            r#"{{"version":"0","detail-type":"AWS API Call via CloudTrail","source":"aws.iam","time":"2024-05-01T12:00:01Z","detail":{rec}}}"#
        );
        let evs = read_all(DocFormat::CloudTrail, &eb);
        assert_eq!(
            evs[0].fields.get("eventName"),
            Some(&Value::from("CreateUser"))
        );
        assert_eq!(evs[0].raw, eb);
        let evs = read_all(DocFormat::CloudTrail, r#"{"hello":1}"#);
        assert!(evs[0].parse_error.is_some());
    }

    #[test]
    fn json_arrays_and_time_keys() {
        let evs = read_all(DocFormat::Json, r#"[{"ts":1600000000.5,"a":1}, 3]"#);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].ts, 1_600_000_000_500_000_000);
        assert_eq!(evs[0].raw, r#"{"ts":1600000000.5,"a":1}"#);
        assert!(evs[1].parse_error.is_some());
        let evs = read_all(
            DocFormat::Json,
            r#"{"@timestamp":"2024-05-01T12:00:00Z","time":1}"#,
        );
        assert_eq!(evs[0].ts, parse_rfc3339("2024-05-01T12:00:00Z").unwrap());
        let evs = read_all(DocFormat::Json, r#"{"a":"#);
        assert!(evs[0]
            .parse_error
            .as_deref()
            .unwrap()
            .starts_with("invalid JSON: EOF"));
    }
}
