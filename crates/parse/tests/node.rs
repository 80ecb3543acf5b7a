//! Node logs: Vector's VRL parser examples (klog, syslog, Linux auth, VPC flow default and custom) and
//! loghub's 16 systems (every line an event; Linux, OpenSSH and Mac compared with the structured CSVs).
//! Data (used in place, not copied): vectordotdev/vrl (MPL-2.0), logpai/loghub (research use, cite Zhu et
//! al., ISSRE 2023); see shared/data/SOURCES.md.

mod common;

use common::*;
use quarry_model::{flatten_json, Event, Fields};
use quarry_parse::{DecoderOptions, Format};
use serde_json::Value as J;

const VRL: &str = "node_logs/vrl_parser_examples/docs/generated";

/// VRL examples call the function with a string literal; the first argument's text.
fn first_arg(source: &str) -> String {
    let start = source.find(['"', '\'']).unwrap();
    let q = source.as_bytes()[start] as char;
    let rest = &source[start + 1..];
    let mut out = String::new();
    let mut it = rest.chars();
    while let Some(c) = it.next() {
        if c == q {
            break;
        }
        if c == '\\' && q == '"' {
            if let Some(n) = it.next() {
                out.push(n);
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn second_arg(source: &str) -> Option<String> {
    let first = first_arg(source);
    let at = source.find(&first)? + first.len() + 1;
    let rest = &source[at..];
    let i = rest.find('"')?;
    Some(first_arg(&rest[i..]))
}

fn examples(name: &str) -> Vec<J> {
    let doc: J = serde_json::from_str(&read_str(&format!("{VRL}/{name}.json"))).unwrap();
    doc["examples"].as_array().unwrap().clone()
}

/// Every expected key must agree with ours (`timestamp` with our ts, null with an absent field).
fn agree(ev: &Event, expected: &J, rename: impl Fn(&str) -> String) -> usize {
    let mut flat = Fields::new();
    flatten_json("", expected, &mut flat);
    let mut n = 0;
    for (k, v) in expected.as_object().unwrap() {
        if v.is_null() {
            assert!(ev.fields.get(&rename(k)).is_none(), "{k} should be absent");
            n += 1;
        }
    }
    for (k, v) in flat.iter() {
        if k == "timestamp" {
            assert_eq!(ev.ts, rfc(&v.to_string()));
        } else if *v != quarry_model::Value::Null {
            assert_eq!(ev.fields.get(&rename(k)), Some(v), "{k}");
        }
        n += 1;
    }
    n
}

fn one(format: Format, opts: DecoderOptions, line: &str, now: i64) -> Event {
    let (evs, _) = decode_bytewise(format, opts, format!("{line}\n").as_bytes(), now);
    assert_eq!(evs.len(), 1);
    assert!(
        evs[0].parse_error.is_none(),
        "{line}: {:?}",
        evs[0].parse_error
    );
    evs.into_iter().next().unwrap()
}

fn snake_to_vpc(k: &str) -> String {
    let mut out = String::new();
    for (i, seg) in k.split('_').enumerate() {
        let seg = match seg {
            "srcaddr" => "srcAddr",
            "dstaddr" => "dstAddr",
            "srcport" => "srcPort",
            "dstport" => "dstPort",
            s => s,
        };
        if i == 0 {
            out.push_str(seg);
        } else {
            let mut c = seg.chars();
            if let Some(f) = c.next() {
                out.push(f.to_ascii_uppercase());
                out.push_str(c.as_str());
            }
        }
    }
    out
}

#[test]
fn vrl_examples_agree() {
    // VRL's documentation was generated in 2026; stamps without a year resolve against that
    let now = rfc("2026-06-01T00:00:00Z");
    let mut n = 0;
    for ex in examples("parse_klog") {
        let line = first_arg(ex["source"].as_str().unwrap());
        for fmt in [Format::Klog, Format::Auto] {
            let ev = one(fmt, DecoderOptions::default(), &line, now);
            n += agree(&ev, &ex["return"], str::to_string);
        }
    }
    for name in ["parse_syslog", "parse_linux_authorization"] {
        for ex in examples(name) {
            let line = first_arg(ex["source"].as_str().unwrap());
            for fmt in [Format::Syslog, Format::Auto] {
                let ev = one(fmt, DecoderOptions::default(), &line, now);
                assert_eq!(ev.format, "syslog");
                n += agree(&ev, &ex["return"], str::to_string);
            }
        }
    }
    for ex in examples("parse_aws_vpc_flow_log") {
        let src = ex["source"].as_str().unwrap();
        let line = first_arg(src);
        let opts = DecoderOptions {
            vpc_format: second_arg(src),
            ..DecoderOptions::default()
        };
        let ev = one(Format::VpcFlow, opts, &line, now);
        n += agree(&ev, &ex["return"], snake_to_vpc);
    }
    assert!(n >= 80, "{n}");
}

#[test]
fn vrl_cloudwatch_subscription_message_as_json() {
    let ex = &examples("parse_aws_cloudwatch_log_subscription_message")[0];
    let text = first_arg(ex["source"].as_str().unwrap());
    let (evs, _) = decode_bytewise(
        Format::Json,
        DecoderOptions::default(),
        text.as_bytes(),
        NOW,
    );
    assert_eq!(evs.len(), 1);
    assert_eq!(
        s(&evs[0].fields, "logEvents.0.message").as_deref(),
        ex["return"]["log_events"][0]["message"].as_str()
    );
    assert_eq!(evs[0].raw.lines().count(), text.lines().count());
}

fn csv_rows(rel: &str) -> Vec<Vec<String>> {
    read_str(rel)
        .lines()
        .skip(1)
        .map(common::csv::csv_line)
        .collect()
}

fn loghub(system: &str, format: Format) -> Vec<Event> {
    let rel = format!("node_logs/loghub/{system}/{system}_2k.log");
    let input = read(&rel);
    let lines = input
        .split(|c| *c == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count();
    let (evs, stats) = decode(format, DecoderOptions::default(), &input, NOW);
    assert_eq!(evs.len(), lines, "{system}: every line is an event");
    assert_eq!(stats.parse_errors, 0, "{system}");
    evs
}

#[test]
fn loghub_syslog_systems_match_structured_csv() {
    // (system, hostname column, program column, pid column)
    for (system, host_c, prog_c, pid_c) in
        [("Linux", 4, 5, 6), ("OpenSSH", 4, 4, 5), ("Mac", 4, 5, 6)]
    {
        let evs = loghub(system, Format::Syslog);
        let auto = loghub(system, Format::Auto);
        assert_eq!(auto, evs, "{system}: Auto should pick syslog");
        let rows = csv_rows(&format!(
            "node_logs/loghub/{system}/{system}_2k.log_structured.csv"
        ));
        assert_eq!(rows.len(), evs.len());
        let mut mismatches = Vec::new();
        for (ev, row) in evs.iter().zip(&rows) {
            let f = &ev.fields;
            let (host, prog, pid) = if system == "OpenSSH" {
                // OpenSSH's CSV names the host "Component"; the program is always sshd
                (row[host_c].as_str(), "sshd", row[pid_c].as_str())
            } else {
                (
                    row[host_c].as_str(),
                    row[prog_c].as_str(),
                    row[pid_c].as_str(),
                )
            };
            let ok = s(f, "hostname").as_deref() == Some(host)
                && s(f, "appname").as_deref() == Some(prog)
                && s(f, "procid").unwrap_or_default() == pid;
            if !ok {
                mismatches.push(format!(
                    "{} | {:?} {:?} {:?}",
                    ev.raw,
                    s(f, "hostname"),
                    s(f, "appname"),
                    s(f, "procid")
                ));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{system}: {} mismatches, first: {:#?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(5)]
        );
    }
}

#[test]
fn loghub_text_systems_get_their_timestamps() {
    let systems = [
        "Android",
        "Apache",
        "BGL",
        "HDFS",
        "HPC",
        "Hadoop",
        "HealthApp",
        "OpenStack",
        "Proxifier",
        "Spark",
        "Thunderbird",
        "Windows",
        "Zookeeper",
    ];
    for system in systems {
        let evs = loghub(system, Format::Text);
        let (_, _, detected) = decode_chunked(
            Format::Auto,
            DecoderOptions::default(),
            &read(&format!("node_logs/loghub/{system}/{system}_2k.log")),
            NOW,
            0,
        );
        assert_eq!(detected, Format::Text, "{system}");
        let with_ts = evs.iter().filter(|e| e.ts != NOW).count();
        if system == "HPC" {
            assert_eq!(with_ts, 0, "HPC lines carry no leading stamp");
        } else {
            assert_eq!(
                with_ts,
                evs.len(),
                "{system}: lines without a timestamp: {:?}",
                evs.iter().find(|e| e.ts == NOW).map(|e| &e.raw)
            );
        }
    }
    // a few exact values
    let hadoop = loghub("Hadoop", Format::Text);
    assert_eq!(hadoop[0].ts, rfc("2015-10-18T18:01:47.978Z"));
    let apache = loghub("Apache", Format::Text);
    assert_eq!(apache[0].ts, rfc("2005-12-04T04:47:44Z"));
}
