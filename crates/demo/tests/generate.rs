//! End-to-end checks of the demo generator: repeatable, well-formed, ordered, scaled, one attack.

use quarry_demo::{attack, generate, write_tree, Attack, Chunk, DemoConfig};
use quarry_model::time::{days_from_civil, parse_rfc3339, parse_rfc3339_prefix, NANOS_PER_SEC};
use quarry_model::Kind;
use serde_json::Value;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::Hasher;

const END: i64 = 1_714_564_800_000_000_000; // 2024-05-01T12:00:00Z

fn cfg(seed: u64, scale: u32, end_ns: i64) -> DemoConfig {
    DemoConfig {
        seed,
        scale,
        end_ns,
        cluster: "demo-eks".into(),
    }
}

/// What one full pass over the generated data found.
#[derive(Default, Debug)]
struct Found {
    hash: u64,
    bytes: u64,
    lines: u64,
    files: usize,
    attacker_lines: u64,
    exfil_lines: u64,
    per_kind: HashMap<Kind, u64>,
    anon_secrets_403: bool,
    unauthenticated_401: bool,
    stolen_list_secrets: u32,
    stolen_get_secrets_ok: u32,
    exec: bool,
    privileged_pod: bool,
    crb: bool,
    exfil_bytes: u64,
    exfil_src_ok: bool,
    ssh_failures: u32,
    pg_dump: bool,
    debugger_log: bool,
    partials: u32,
    stack_lines: u32,
}

fn month(m: &str) -> u32 {
    [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|x| *x == m)
    .expect("month") as u32
        + 1
}

/// Parses the RFC 3164 header `Mmm dd hh:mm:ss host prog[pid]: ` (pid optional, as for sudo) and
/// returns the time (in the window's year) and the host.
fn syslog_header(line: &str, year: i64) -> (i64, &str) {
    let b = line.as_bytes();
    assert!(
        b.len() > 16 && b[3] == b' ' && b[6] == b' ',
        "syslog stamp: {line}"
    );
    let mo = month(&line[..3]);
    let d: u32 = line[4..6].trim().parse().expect("day");
    let h: i64 = line[7..9].parse().expect("hour");
    let mi: i64 = line[10..12].parse().expect("minute");
    let s: i64 = line[13..15].parse().expect("second");
    assert_eq!(&line[9..10], ":");
    let rest = &line[16..];
    let (host, rest) = rest.split_once(' ').expect("host");
    let (tag, msg) = rest.split_once(": ").expect("tag");
    let prog = match tag.split_once('[') {
        Some((p, pid)) => {
            assert!(pid.ends_with(']'), "pid: {line}");
            pid[..pid.len() - 1].parse::<u32>().expect("numeric pid");
            p
        }
        None => tag,
    };
    assert!(
        !prog.is_empty() && prog.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'),
        "program: {line}"
    );
    assert!(!msg.is_empty(), "message: {line}");
    let days = days_from_civil(year, mo, d);
    (
        (days * 86_400 + h * 3600 + mi * 60 + s) * NANOS_PER_SEC,
        host,
    )
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(*p)?,
        };
    }
    cur.as_str()
}

/// Goes through every chunk, checking every line, and collects what it saw.
fn check(cfg: &DemoConfig, a: &Attack) -> Found {
    let (ws, we) = (cfg.end_ns - 3600 * NANOS_PER_SEC, cfg.end_ns);
    let ws_floor = ws - ws.rem_euclid(NANOS_PER_SEC);
    let year = 2024;
    let mut f = Found::default();
    let mut h = DefaultHasher::new();
    let mut done_paths: HashSet<String> = HashSet::new();
    let mut cur_path = String::new();
    let mut last_ts: i64 = i64::MIN;
    let mut last_stage: i64 = i64::MIN;
    let mut pending_partial = false;
    for chunk in generate(cfg) {
        let Chunk {
            source,
            format,
            path,
            data,
        } = &chunk;
        h.write(path.as_bytes());
        h.write(data);
        f.bytes += data.len() as u64;
        assert!(data.len() < 4 << 20, "chunk too large: {}", data.len());
        assert!(data.ends_with(b"\n"), "chunk ends mid-line: {path}");
        if *path != cur_path {
            assert!(
                !pending_partial,
                "file ends with a partial line: {cur_path}"
            );
            assert!(
                done_paths.insert(path.clone()),
                "path's chunks not contiguous: {path}"
            );
            cur_path = path.clone();
            last_ts = i64::MIN;
            last_stage = i64::MIN;
            f.files += 1;
        }
        *f.per_kind.entry(source.kind).or_default() += data.len() as u64;
        match source.kind {
            Kind::Container => {
                assert_eq!(*format, "cri");
                let (ns, pod, ctr) = (
                    source.namespace.as_deref().unwrap(),
                    source.pod.as_deref().unwrap(),
                    source.container.as_deref().unwrap(),
                );
                assert!(source.node.is_some() && source.cluster.as_deref() == Some("demo-eks"));
                assert!(
                    path.starts_with(&format!("var/log/pods/{ns}_{pod}_")),
                    "{path}"
                );
                assert!(path.ends_with(&format!("/{ctr}/0.log")), "{path}");
            }
            Kind::Audit => {
                assert_eq!(*format, "audit");
                assert_eq!(path, "var/log/audit/kube-apiserver-audit.log");
                assert_eq!(source.cluster.as_deref(), Some("demo-eks"));
            }
            Kind::Syslog => {
                assert_eq!(*format, "syslog");
                let node = source.node.as_deref().unwrap();
                assert!(
                    path == &format!("nodes/{node}/var/log/messages")
                        || path == &format!("nodes/{node}/var/log/secure")
                );
            }
            Kind::VpcFlow => {
                assert_eq!(*format, "vpcflow");
                assert!(
                    path.starts_with("vpcflow/AWSLogs/111122223333/vpcflowlogs/us-east-1/")
                        && path.ends_with(".log")
                );
            }
            k => panic!("unexpected kind {k}"),
        }
        let text = std::str::from_utf8(data).expect("utf-8");
        for line in text.split_terminator('\n') {
            f.lines += 1;
            let has_attacker = line.contains(&a.attacker_ip);
            let has_exfil = line.contains(&a.exfil_ip);
            f.attacker_lines += has_attacker as u64;
            f.exfil_lines += has_exfil as u64;
            let ts = match source.kind {
                Kind::Container => {
                    let (ts, used) = parse_rfc3339_prefix(line).expect("CRI timestamp");
                    let rest = &line[used..];
                    let (stream, rest) = rest[1..].split_once(' ').expect("stream");
                    assert!(stream == "stdout" || stream == "stderr", "stream: {line}");
                    let (tag, msg) = match rest.split_once(' ') {
                        Some(x) => x,
                        None => panic!("tag: {line}"),
                    };
                    assert!(tag == "P" || tag == "F", "tag: {line}");
                    pending_partial = tag == "P";
                    if tag == "P" {
                        assert_eq!(msg.len(), 16 * 1024, "partials are 16 KiB");
                        f.partials += 1;
                    }
                    if msg.starts_with("\tat ") {
                        f.stack_lines += 1;
                    }
                    if msg.contains("application_name=pg_dump") {
                        assert!(path.contains(&format!("payments_{}_", a.db_pod)));
                        f.pg_dump = true;
                    }
                    if path.contains(&format!("kube-system_{}_", a.privileged_pod)) {
                        f.debugger_log = true;
                    }
                    ts
                }
                Kind::Syslog => {
                    let (ts, host) = syslog_header(line, year);
                    assert_eq!(
                        host,
                        source
                            .node
                            .as_deref()
                            .unwrap()
                            .trim_end_matches(".ec2.internal")
                    );
                    if has_attacker && line.contains("Failed password") {
                        assert_eq!(source.node.as_deref(), Some(a.node.as_str()));
                        f.ssh_failures += 1;
                    }
                    ts
                }
                Kind::Audit => {
                    let v: Value = serde_json::from_str(line).expect("audit JSON");
                    for k in [
                        "auditID",
                        "stage",
                        "requestURI",
                        "verb",
                        "requestReceivedTimestamp",
                        "stageTimestamp",
                        "level",
                    ] {
                        assert!(v[k].is_string(), "{k} missing: {line}");
                    }
                    assert_eq!(v["kind"], "Event");
                    assert_eq!(v["apiVersion"], "audit.k8s.io/v1");
                    assert!(v["user"].is_object() && v["sourceIPs"][0].is_string());
                    assert!(v["responseStatus"]["code"].is_u64());
                    let code = v["responseStatus"]["code"].as_u64().unwrap();
                    let recv =
                        parse_rfc3339(v["requestReceivedTimestamp"].as_str().unwrap()).unwrap();
                    let stage = parse_rfc3339(v["stageTimestamp"].as_str().unwrap()).unwrap();
                    assert!(
                        stage >= recv && stage >= last_stage,
                        "stageTimestamp order: {line}"
                    );
                    assert!(stage < we);
                    last_stage = stage;
                    let user = str_at(&v, &["user", "username"]).unwrap_or("");
                    let ip = v["sourceIPs"][0].as_str().unwrap();
                    let res = str_at(&v, &["objectRef", "resource"]).unwrap_or("");
                    let verb = v["verb"].as_str().unwrap();
                    if ip == a.attacker_ip {
                        if user == "system:anonymous" && res == "secrets" && code == 403 {
                            f.anon_secrets_403 = true;
                        }
                        if code == 401 && v["user"].as_object().unwrap().is_empty() {
                            f.unauthenticated_401 = true;
                        }
                        if user == a.stolen_user && res == "secrets" {
                            if verb == "list" {
                                f.stolen_list_secrets += 1;
                            }
                            if verb == "get" && code == 200 {
                                f.stolen_get_secrets_ok += 1;
                            }
                        }
                        if verb == "create"
                            && str_at(&v, &["objectRef", "subresource"]) == Some("exec")
                            && str_at(&v, &["objectRef", "name"]) == Some(a.exec_pod.as_str())
                            && str_at(&v, &["objectRef", "namespace"])
                                == Some(a.exec_namespace.as_str())
                        {
                            assert_eq!(code, 101);
                            assert_eq!(
                                str_at(
                                    &v,
                                    &[
                                        "user",
                                        "extra",
                                        "authentication.kubernetes.io/pod-name",
                                        "0"
                                    ]
                                ),
                                Some(a.token_pod.as_str())
                            );
                            f.exec = true;
                        }
                        if verb == "create"
                            && res == "pods"
                            && str_at(&v, &["objectRef", "subresource"]).is_none()
                        {
                            let spec = &v["requestObject"]["spec"];
                            assert_eq!(
                                str_at(&v, &["objectRef", "namespace"]),
                                Some(a.privileged_namespace.as_str())
                            );
                            assert_eq!(
                                str_at(&v, &["objectRef", "name"]),
                                Some(a.privileged_pod.as_str())
                            );
                            assert_eq!(
                                spec["containers"][0]["securityContext"]["privileged"],
                                true
                            );
                            assert_eq!(spec["volumes"][0]["hostPath"]["path"], "/");
                            assert_eq!(v["level"], "RequestResponse");
                            f.privileged_pod = true;
                        }
                        if verb == "create" && res == "clusterrolebindings" {
                            assert_eq!(
                                str_at(&v, &["objectRef", "name"]),
                                Some(a.clusterrolebinding.as_str())
                            );
                            assert_eq!(
                                str_at(&v, &["requestObject", "roleRef", "name"]),
                                Some("cluster-admin")
                            );
                            assert_eq!(
                                str_at(&v, &["requestObject", "subjects", "0", "name"]),
                                Some("payments-api")
                            );
                            f.crb = true;
                        }
                    } else {
                        assert!(
                            !(verb == "create" && res == "clusterrolebindings"),
                            "benign CRB: {line}"
                        );
                    }
                    recv
                }
                Kind::VpcFlow => {
                    let fields: Vec<&str> = line.split(' ').collect();
                    assert_eq!(fields.len(), 14, "VPC fields: {line}");
                    if fields[0] == "version" {
                        assert_eq!(last_ts, i64::MIN, "header first");
                        continue;
                    }
                    assert_eq!(fields[0], "2");
                    assert_eq!(fields[1], "111122223333");
                    assert!(fields[2].starts_with("eni-"));
                    let start: i64 = fields[10].parse().expect("start");
                    let end: i64 = fields[11].parse().expect("end");
                    assert!(end >= start && end - start <= 60, "{line}");
                    assert!(
                        end * NANOS_PER_SEC <= we,
                        "flow end past the window: {line}"
                    );
                    if fields[13] == "NODATA" {
                        assert_eq!(&fields[3..10], &["-"; 7]);
                    } else {
                        assert_eq!(fields[13], "OK");
                        assert!(fields[12] == "ACCEPT" || fields[12] == "REJECT");
                        for n in &fields[5..10] {
                            n.parse::<u64>().expect("numeric");
                        }
                        let bytes: u64 = fields[9].parse().unwrap();
                        if fields[4] == a.exfil_ip {
                            f.exfil_bytes += bytes;
                            f.exfil_src_ok = fields[3] == a.node_ip;
                        } else if !has_attacker && !has_exfil {
                            assert!(
                                bytes < 50_000_000,
                                "benign flow as large as the exfiltration: {line}"
                            );
                        }
                    }
                    start * NANOS_PER_SEC
                }
                _ => unreachable!(),
            };
            assert!(
                ts >= ws_floor && ts < we,
                "timestamp outside the window in {path}: {line}"
            );
            assert!(ts >= last_ts, "timestamps go back in {path}: {line}");
            last_ts = ts;
        }
    }
    assert!(!pending_partial, "last file ends with a partial line");
    f.hash = h.finish();
    f
}

fn hash_only(cfg: &DemoConfig) -> (u64, u64) {
    let mut h = DefaultHasher::new();
    let mut bytes = 0;
    for c in generate(cfg) {
        h.write(c.path.as_bytes());
        h.write(&c.data);
        bytes += c.data.len() as u64;
    }
    (h.finish(), bytes)
}

fn assert_attack(f: &Found, a: &Attack) {
    assert!(f.unauthenticated_401, "401 probe");
    assert!(f.anon_secrets_403, "anonymous secrets probe");
    assert!(
        f.stolen_list_secrets >= 3 && f.stolen_get_secrets_ok >= 3,
        "{f:?}"
    );
    assert!(
        f.exec && f.privileged_pod && f.crb && f.pg_dump && f.debugger_log,
        "{f:?}"
    );
    assert!(f.exfil_src_ok);
    assert_eq!(f.exfil_bytes, a.exfil_bytes);
    assert!(a.exfil_bytes > 1_000_000_000);
    assert_eq!(f.ssh_failures, a.ssh_attempts);
    assert_eq!(
        f.attacker_lines, a.attacker_ip_lines,
        "attacker address in a benign line"
    );
    assert_eq!(
        f.exfil_lines, a.exfil_ip_lines,
        "exfiltration address in a benign line"
    );
    assert!(f.partials > 0 && f.stack_lines > 100, "{f:?}");
    let mut prev = i64::MIN;
    for s in &a.steps {
        assert!(
            s.start_ns <= s.end_ns && s.start_ns >= prev,
            "step order: {s:?}"
        );
        prev = s.start_ns;
    }
}

#[test]
fn scale_one_is_well_formed_repeatable_and_holds_the_attack() {
    let c = cfg(42, 1, END);
    let a = attack(&c);
    let f = check(&c, &a);
    assert_attack(&f, &a);
    assert!(
        (25_000_000..80_000_000).contains(&f.bytes),
        "scale 1 size {}",
        f.bytes
    );
    for k in [Kind::Container, Kind::Audit, Kind::Syslog, Kind::VpcFlow] {
        assert!(f.per_kind[&k] > 1_000_000, "{k}: {}", f.per_kind[&k]);
    }
    let (h2, b2) = hash_only(&c);
    assert_eq!((f.hash, f.bytes), (h2, b2), "same config, different bytes");
}

#[test]
fn different_seed_gives_different_data_and_same_story() {
    let c = cfg(7, 1, END);
    let first = |c: &DemoConfig| generate(c).next().unwrap().data;
    assert_ne!(first(&c), first(&cfg(42, 1, END)));
    let (a7, a42) = (attack(&c), attack(&cfg(42, 1, END)));
    assert_eq!(a7.attacker_ip, a42.attacker_ip);
    assert_ne!(a7.exec_pod, a42.exec_pod);
    assert_eq!(a7.attacker_ip_lines, a42.attacker_ip_lines);
}

#[test]
fn scale_two_doubles_the_background_and_keeps_one_attack() {
    // An end that is not on a second or minute boundary, to exercise partial files and rounding.
    let end = END + 17 * NANOS_PER_SEC + 123_456_789;
    let c1 = cfg(42, 1, end);
    let c2 = cfg(42, 2, end);
    let a2 = attack(&c2);
    let f2 = check(&c2, &a2);
    assert_attack(&f2, &a2);
    let (_, b1) = hash_only(&c1);
    let ratio = f2.bytes as f64 / b1 as f64;
    assert!((1.8..2.2).contains(&ratio), "scale 2 / scale 1 = {ratio}");
    assert_eq!(a2.attacker_ip_lines, attack(&c1).attacker_ip_lines);
}

#[test]
fn write_tree_matches_the_stream() {
    let dir = std::env::temp_dir().join(format!("quarry-demo-test-{}", std::process::id()));
    let c = cfg(3, 1, END);
    let s = write_tree(&c, &dir).unwrap();
    let again = write_tree(&c, &dir).unwrap();
    assert_eq!(s, again);
    let mut on_disk = 0u64;
    let mut files = 0usize;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                on_disk += e.metadata().unwrap().len();
            }
        }
    }
    assert_eq!(
        (files, on_disk),
        (s.files, s.bytes),
        "rewriting replaces, not appends"
    );
    assert_eq!(s.per_kind.values().map(|k| k.files).sum::<usize>(), s.files);
    assert_eq!(s.per_kind[&Kind::Audit].files, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn other_seeds_and_ends_are_well_formed_too() {
    for (seed, end) in [
        (1, END + 59 * NANOS_PER_SEC),
        (2, END + 999_999_999),
        (3, END - 1),
    ] {
        let c = cfg(seed, 1, end);
        let a = attack(&c);
        assert_attack(&check(&c, &a), &a);
    }
}
