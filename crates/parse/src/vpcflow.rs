//! AWS VPC (and Transit Gateway) flow log lines: the default version 2 layout, the all-fields layouts of
//! versions 3 to 8 recognised by their field count, and custom layouts given by a header line of field
//! names (as S3 delivery writes it) or by a `${version} ${vpc-id} ...` format string.
//!
//! Field names are the camelCase names CloudWatch Logs Insights shows (`srcAddr`, `dstPort`,
//! `logStatus`, `vpcId`, ...). Numeric fields become integers; `-` means the field is absent.

use quarry_model::time::NANOS_PER_SEC;
use quarry_model::{Fields, Value};
use std::sync::OnceLock;

const V2: &[&str] = &[
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];
const V3: &[&str] = &[
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
];
const V4: &[&str] = &["region", "az-id", "sublocation-type", "sublocation-id"];
const V5: &[&str] = &[
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
];
const V7: &[&str] = &[
    "ecs-cluster-arn",
    "ecs-cluster-name",
    "ecs-container-instance-arn",
    "ecs-container-instance-id",
    "ecs-container-id",
    "ecs-second-container-id",
    "ecs-service-name",
    "ecs-task-definition-arn",
    "ecs-task-arn",
    "ecs-task-id",
];
const V8: &[&str] = &["reject-reason"];
const TGW: &[&str] = &[
    "version",
    "resource-type",
    "account-id",
    "tgw-id",
    "tgw-attachment-id",
    "tgw-src-vpc-account-id",
    "tgw-dst-vpc-account-id",
    "tgw-src-vpc-id",
    "tgw-dst-vpc-id",
    "tgw-src-subnet-id",
    "tgw-dst-subnet-id",
    "tgw-src-eni",
    "tgw-dst-eni",
    "tgw-src-az-id",
    "tgw-dst-az-id",
    "tgw-pair-attachment-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "log-status",
    "type",
    "packets-lost-no-route",
    "packets-lost-blackhole",
    "packets-lost-mtu-exceeded",
    "packets-lost-ttl-expired",
    "tcp-flags",
    "region",
    "flow-direction",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
];
const EXTRA: &[&str] = &["resource-id", "encryption-status", "interface-type"];
const NUMERIC: &[&str] = &[
    "version",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "tcp-flags",
    "traffic-path",
    "encryption-status",
    "packets-lost-no-route",
    "packets-lost-blackhole",
    "packets-lost-mtu-exceeded",
    "packets-lost-ttl-expired",
];

/// One column of a layout.
#[derive(Debug, Clone)]
struct Col {
    out: String,
    numeric: bool,
    start: bool,
}

/// The order of fields in a flow log line.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    cols: Vec<Col>,
    /// Normalised field list for custom layouts (`version vpc-id ...`); `None` for the built-in ones.
    pub(crate) hint: Option<String>,
    status: Option<usize>,
}

impl Layout {
    fn from_names(names: &[String], custom: bool) -> Layout {
        let cols = names
            .iter()
            .map(|n| Col {
                out: camel(n),
                numeric: NUMERIC.contains(&n.as_str()),
                start: n == "start",
            })
            .collect();
        Layout {
            cols,
            hint: custom.then(|| names.join(" ")),
            status: names.iter().position(|n| n == "log-status"),
        }
    }
}

fn builtin(parts: &[&[&str]]) -> Layout {
    let names: Vec<String> = parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect();
    Layout::from_names(&names, false)
}

fn defaults() -> &'static [Layout; 7] {
    static D: OnceLock<[Layout; 7]> = OnceLock::new();
    D.get_or_init(|| {
        [
            builtin(&[V2]),
            builtin(&[V2, V3]),
            builtin(&[V2, V3, V4]),
            builtin(&[V2, V3, V4, V5]),
            builtin(&[V2, V3, V4, V5, V7]),
            builtin(&[V2, V3, V4, V5, V7, V8]),
            builtin(&[TGW]),
        ]
    })
}

fn is_known(name: &str) -> bool {
    [V2, V3, V4, V5, V7, V8, TGW, EXTRA]
        .iter()
        .any(|l| l.contains(&name))
}

/// `${vpc-id}`, `vpc-id`, `vpc_id`, `VPC-ID` -> `vpc-id`.
fn normalize(tok: &str) -> Option<String> {
    let t = tok
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(tok);
    if t.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' => out.push(c),
            'A'..='Z' => out.push(c.to_ascii_lowercase()),
            '_' => out.push('-'),
            _ => return None,
        }
    }
    out.as_bytes()[0].is_ascii_lowercase().then_some(out)
}

/// AWS name to the camelCase Logs Insights shows: `pkt-srcaddr` -> `pktSrcAddr`, `log-status` -> `logStatus`.
fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, seg) in name.split('-').enumerate() {
        let seg = match seg {
            "srcaddr" => "src-Addr",
            "dstaddr" => "dst-Addr",
            "srcport" => "src-Port",
            "dstport" => "dst-Port",
            s => s,
        };
        for (j, part) in seg.split('-').enumerate() {
            if i == 0 && j == 0 {
                out.push_str(part);
            } else {
                let mut cs = part.chars();
                if let Some(c) = cs.next() {
                    out.push(c.to_ascii_uppercase());
                    out.push_str(cs.as_str());
                }
            }
        }
    }
    out
}

/// Parses a custom format string (`${version} ${vpc-id} ...`, or plain names separated by spaces).
pub(crate) fn parse_format(s: &str) -> Result<Layout, String> {
    let names = s
        .split_ascii_whitespace()
        .map(|t| normalize(t).ok_or_else(|| format!("invalid VPC flow log field name {t:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    if names.is_empty() {
        return Err("empty VPC flow log format".into());
    }
    Ok(Layout::from_names(&names, true))
}

/// A header line of field names (`version account-id interface-id ...`), as S3 delivery writes first.
pub(crate) fn parse_header(line: &str) -> Option<Layout> {
    let first = *line.as_bytes().first()?;
    if !first.is_ascii_lowercase() && first != b'$' {
        return None;
    }
    let names: Vec<String> = line
        .split_ascii_whitespace()
        .map(normalize)
        .collect::<Option<_>>()?;
    let known = names.iter().filter(|n| is_known(n)).count();
    (known >= 2 && known * 2 > names.len()).then(|| Layout::from_names(&names, true))
}

fn pick_default(toks: &[&str]) -> Option<&'static Layout> {
    let d = defaults();
    let tgw = toks.get(3).is_some_and(|t| t.starts_with("tgw-"));
    let l = match toks.len() {
        14 => &d[0],
        21 => &d[1],
        25 => &d[2],
        29 => &d[3],
        39 => &d[4],
        40 => &d[5],
        36 if tgw => &d[6],
        _ => return None,
    };
    Some(l)
}

/// True when `line` is a flow log header or a data line in one of the built-in layouts.
pub(crate) fn looks_like(line: &str) -> bool {
    if parse_header(line).is_some() {
        return line.starts_with("version ") || line.starts_with("${version}");
    }
    let toks: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some(l) = pick_default(&toks) else {
        return false;
    };
    let version_ok = toks[0].parse::<u8>().is_ok_and(|v| (2..=20).contains(&v));
    let status_ok = l
        .status
        .and_then(|i| toks.get(i))
        .is_some_and(|s| matches!(*s, "OK" | "NODATA" | "SKIPDATA"));
    version_ok && status_ok
}

/// Parses one data line with `layout`, or with the built-in layout its field count selects. Returns the
/// flow's start time.
pub(crate) fn parse_line(
    line: &str,
    layout: Option<&Layout>,
    fields: &mut Fields,
) -> Result<Option<i64>, String> {
    let mut toks: [&str; 64] = [""; 64];
    let mut n = 0;
    for t in line.split_ascii_whitespace() {
        if n == toks.len() {
            return Err("not a VPC flow log line: more than 64 fields".into());
        }
        toks[n] = t;
        n += 1;
    }
    let toks = &toks[..n];
    let layout = match layout {
        Some(l) => l,
        None => pick_default(toks).ok_or_else(|| {
            format!(
                "not a VPC flow log line in a known layout ({n} fields; versions 2-8 have 14, 21, 25, 29, 39 or 40): give the format"
            )
        })?,
    };
    if toks.len() != layout.cols.len() {
        return Err(format!(
            "VPC flow log line has {} fields, the format has {}",
            toks.len(),
            layout.cols.len()
        ));
    }
    let mut ts = None;
    for (col, tok) in layout.cols.iter().zip(toks) {
        if *tok == "-" {
            continue;
        }
        let v = if col.numeric {
            tok.parse::<i64>()
                .map(Value::Int)
                .unwrap_or_else(|_| Value::from(*tok))
        } else {
            Value::from(*tok)
        };
        if col.start {
            if let Value::Int(s) = v {
                ts = s.checked_mul(NANOS_PER_SEC);
            }
        }
        fields.push(col.out.as_str(), v);
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(camel("pkt-srcaddr"), "pktSrcAddr");
        assert_eq!(camel("srcaddr"), "srcAddr");
        assert_eq!(camel("dstport"), "dstPort");
        assert_eq!(camel("log-status"), "logStatus");
        assert_eq!(camel("pkt-src-aws-service"), "pktSrcAwsService");
        assert_eq!(
            camel("ecs-container-instance-arn"),
            "ecsContainerInstanceArn"
        );
        assert_eq!(normalize("${vpc-id}").as_deref(), Some("vpc-id"));
        assert_eq!(normalize("pkt_srcaddr").as_deref(), Some("pkt-srcaddr"));
        assert_eq!(normalize("2"), None);
        assert_eq!(defaults()[3].cols.len(), 29);
        assert_eq!(defaults()[4].cols.len(), 39);
        assert_eq!(defaults()[6].cols.len(), 36);
    }

    #[test]
    fn default_v2_line() {
        let mut f = Fields::new();
        let ts = parse_line(
            "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
            None,
            &mut f,
        )
        .unwrap();
        assert_eq!(ts, Some(1_418_530_010 * NANOS_PER_SEC));
        assert_eq!(f.get("version"), Some(&Value::Int(2)));
        assert_eq!(f.get("accountId"), Some(&Value::from("123456789010")));
        assert_eq!(f.get("srcAddr"), Some(&Value::from("172.31.16.139")));
        assert_eq!(f.get("dstPort"), Some(&Value::Int(22)));
        assert_eq!(f.get("bytes"), Some(&Value::Int(4249)));
        assert_eq!(f.get("logStatus"), Some(&Value::from("OK")));
        let mut f = Fields::new();
        parse_line(
            "2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - NODATA",
            None,
            &mut f,
        )
        .unwrap();
        assert!(f.get("srcAddr").is_none() && f.get("action").is_none());
        assert_eq!(f.len(), 6);
        assert!(parse_line("2 1 2 3", None, &mut Fields::new()).is_err());
    }

    #[test]
    fn custom_formats() {
        let l = parse_format("${version} ${vpc-id} ${srcaddr} ${start}").unwrap();
        assert_eq!(l.hint.as_deref(), Some("version vpc-id srcaddr start"));
        let mut f = Fields::new();
        let ts = parse_line("5 vpc-1 10.0.0.1 1600000000", Some(&l), &mut f).unwrap();
        assert_eq!(ts, Some(1_600_000_000 * NANOS_PER_SEC));
        assert_eq!(f.get("vpcId"), Some(&Value::from("vpc-1")));
        assert!(parse_line("5 vpc-1 10.0.0.1", Some(&l), &mut Fields::new()).is_err());
        assert!(parse_format("${version} b@d").is_err());
        assert!(parse_header("version vpc-id subnet-id").is_some());
        assert!(parse_header("hello world foo").is_none());
        assert!(parse_header("2 123 eni").is_none());
        assert!(looks_like("version account-id interface-id srcaddr"));
        assert!(looks_like(
            "2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - NODATA"
        ));
        assert!(!looks_like(
            "2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - MAYBE"
        ));
    }
}
