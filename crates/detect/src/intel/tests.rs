//! Tests of loading, STIX patterns, matching and alerts.

use super::load::{infer, mask_v4, normalize, Want};
use super::stix::pattern;
use super::*;
use crate::alerts::Candidate;
use quarry_parse::{decode_all, DecoderOptions, Format};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// 2025-06-01T00:00:00Z: the fixtures' validity times are around it.
const NOW: i64 = 1_748_736_000_000_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/intel")
        .join(name)
}

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

fn fixtures() -> Intel {
    let mut b = IntelBuilder::at(NOW);
    b.load_path(&fixture("")).unwrap();
    b.build().unwrap()
}

fn from_csv(text: &str) -> Intel {
    let mut b = IntelBuilder::at(NOW);
    b.add_csv("inline.csv", text).unwrap();
    b.build().unwrap()
}

fn from_stix(text: &str) -> Intel {
    let mut b = IntelBuilder::at(NOW);
    b.add_stix("inline.json", text).unwrap();
    b.build().unwrap()
}

fn hits(intel: &Intel, kind: Kind, ev: &Event) -> Vec<IntelHit> {
    let mut out = Vec::new();
    intel.check(&Source::of_kind(kind), ev, &mut out);
    out
}

fn parse(format: Format, text: &str) -> Vec<Event> {
    let (evs, _) = decode_all(format, DecoderOptions::default(), text.as_bytes(), 0);
    assert!(
        evs.iter().all(|e| e.parse_error.is_none()),
        "{:?}",
        evs.iter().find_map(|e| e.parse_error.as_ref())
    );
    evs
}

fn read_shared(rel: &str) -> String {
    let p = shared(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn intel_csv_feed_loads_every_type_with_its_metadata() {
    let mut b = IntelBuilder::at(NOW);
    b.load_path(&fixture("feed.csv")).unwrap();
    let intel = b.build().unwrap();
    let s = intel.stats();
    assert_eq!(
        (
            s.ipv4,
            s.ipv6,
            s.ipv4_cidr,
            s.ipv6_cidr,
            s.domain,
            s.md5,
            s.sha1,
            s.sha256
        ),
        (3, 1, 1, 1, 3, 1, 1, 1),
        "{s}\n{:#?}",
        intel.problems()
    );
    assert_eq!((s.expired, s.unsupported, s.invalid), (1, 1, 2), "{s}");
    assert_eq!(s.files, 1);
    let attacker = intel.lookup_ip(ip("203.0.113.66")).unwrap();
    assert_eq!(attacker.kind, IndicatorKind::Ipv4);
    assert_eq!(attacker.source, "feed.csv");
    assert_eq!(attacker.line, Some(2));
    assert_eq!(attacker.provider.as_deref(), Some("quarry-demo"));
    assert_eq!(
        attacker.description.as_deref(),
        Some("SSH brute force, then kubectl exec (Quarry demo attacker)")
    );
    assert_eq!(attacker.labels, ["scanner", "brute-force"]);
    assert_eq!(attacker.level(), Level::Critical);
    let c2 = intel.lookup_ip(ip("198.51.100.77")).unwrap();
    assert_eq!(c2.confidence, Some(90));
    assert_eq!(c2.level(), Level::High);
    // A defanged domain and a URL's host.
    assert_eq!(
        intel.lookup_domain("miner-pool.example").unwrap().value,
        "miner-pool.example"
    );
    let from_url = intel.lookup_domain("dl.payload.example").unwrap();
    assert_eq!(from_url.value, "dl.payload.example");
    assert_eq!(
        from_url.original.as_deref(),
        Some("hxxp://dl.payload[.]example:8080/x.sh")
    );
    // Problems name the file and line.
    let bad: Vec<String> = intel.problems().iter().map(|p| p.to_string()).collect();
    for (at, what) in [
        ("feed.csv:14: invalid:", "not-an-ip"),
        ("feed.csv:15: unsupported:", "email"),
        ("feed.csv:16: invalid:", "9 fields"),
        ("feed.csv:11: warning:", "host bits"),
    ] {
        assert!(
            bad.iter().any(|p| p.contains(at) && p.contains(what)),
            "{at} {what}: {bad:#?}"
        );
    }
}

#[test]
fn intel_headerless_list_infers_types() {
    let mut b = IntelBuilder::at(NOW);
    b.load_path(&fixture("blocklist.txt")).unwrap();
    let intel = b.build().unwrap();
    let s = intel.stats();
    assert_eq!(
        (s.ipv4, s.ipv6, s.ipv4_cidr, s.domain, s.md5, s.sha256),
        (1, 1, 1, 1, 1, 1),
        "{s} {:#?}",
        intel.problems()
    );
    assert_eq!(s.invalid, 1);
    let p = &intel.problems()[0];
    assert_eq!(
        (p.kind, p.line),
        (IntelProblemKind::Invalid, Some(9)),
        "{p}"
    );
    assert!(p.message.contains("cannot tell"), "{p}");
    let cidr = intel.lookup_ip(ip("192.0.2.200")).unwrap();
    assert_eq!(cidr.value, "192.0.2.128/25");
    assert_eq!(cidr.description.as_deref(), Some("bulletproof hosting"));
    assert!(intel.lookup_ip(ip("192.0.2.127")).is_none());
}

#[test]
fn intel_malformed_csv_lines_are_reported_with_their_line_number() {
    let mut b = IntelBuilder::at(NOW);
    b.add_csv(
        "feeds/bad.csv",
        "type,value,description\n\
         ip,198.51.100.1,ok\n\
         ip,\"198.51.100.2,unterminated\n\
         \n\
         # a comment\n\
         ip,198.51.100.300,bad octet\n\
         sha256,abcd,short\n\
         ip,,empty\n\
         ip,198.51.100.3,\"quoted, with comma\"\n",
    )
    .unwrap();
    let problems: Vec<(Option<usize>, IntelProblemKind)> =
        b.problems().iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(
        problems,
        [
            (Some(3), IntelProblemKind::Invalid),
            (Some(6), IntelProblemKind::Invalid),
            (Some(7), IntelProblemKind::Invalid),
            (Some(8), IntelProblemKind::Invalid),
        ],
        "{:#?}",
        b.problems()
    );
    assert!(b.problems()[0].message.contains("unterminated"));
    assert_eq!(b.problems()[0].file, "feeds/bad.csv");
    assert_eq!(b.stats().invalid, 4);
    let intel = b.build().unwrap();
    assert_eq!(
        intel
            .lookup_ip(ip("198.51.100.3"))
            .unwrap()
            .description
            .as_deref(),
        Some("quoted, with comma")
    );
    assert_eq!(intel.stats().ipv4, 2);
    // A first line that is neither a header nor an indicator: the file is refused, saying why.
    let mut b = IntelBuilder::at(NOW);
    let err = b
        .add_csv("x.csv", "first_seen,destination\n2024-01-01,1.2.3.4\n")
        .unwrap_err();
    assert!(err.to_string().contains("x.csv: line 1"), "{err}");
}

#[test]
fn intel_stix_bundle_loads_supported_patterns_and_reports_the_rest() {
    let mut b = IntelBuilder::at(NOW);
    b.load_path(&fixture("stix-bundle.json")).unwrap();
    let intel = b.build().unwrap();
    let s = intel.stats().clone();
    assert_eq!(s.stix_indicators, 17, "{s}");
    assert_eq!(
        (
            s.ipv4,
            s.ipv6,
            s.ipv4_cidr,
            s.ipv6_cidr,
            s.domain,
            s.md5,
            s.sha256
        ),
        (4, 1, 1, 1, 4, 1, 1),
        "{s}\n{:#?}",
        intel.problems()
    );
    assert_eq!(
        (
            s.expired,
            s.revoked,
            s.not_yet_valid,
            s.superseded,
            s.unsupported,
            s.partial
        ),
        (1, 1, 1, 1, 3, 1),
        "{s}\n{:#?}",
        intel.problems()
    );
    assert_eq!(s.invalid, 1, "{:#?}", intel.problems());
    let c2 = intel.lookup_ip(ip("198.51.100.77")).unwrap();
    assert_eq!(
        c2.stix_id.as_deref(),
        Some("indicator--7f0c3a32-5d71-4e0a-9d3e-0c6f6b0d5a01")
    );
    assert_eq!(c2.name.as_deref(), Some("Quarry demo C2 server"));
    assert_eq!(c2.labels, ["malicious-activity", "c2"]);
    assert_eq!(c2.confidence, Some(80));
    assert_eq!(c2.source, "stix-bundle.json");
    let relay = intel.lookup_domain("exfil-relay.example").unwrap();
    assert_eq!(
        relay.original.as_deref(),
        Some("https://exfil-relay.example/upload?id=1")
    );
    // OR'd observations and an IN set.
    for a in ["203.0.113.66", "198.51.100.80", "198.51.100.81"] {
        assert!(intel.lookup_ip(ip(a)).is_some(), "{a}");
    }
    // ISSUBSET and = with a CIDR.
    assert_eq!(
        intel.lookup_ip(ip("203.0.113.130")).unwrap().value,
        "203.0.113.128/26"
    );
    assert!(intel.lookup_ip(ip("2001:db8:bad::99")).is_some());
    assert!(intel.lookup_ip(ip("2001:db8:1234::5")).is_some());
    // The latest version of an indicator wins.
    assert!(intel.lookup_domain("old.superseded.example").is_none());
    assert!(intel.lookup_domain("new.superseded.example").is_some());
    // Skipped: expired, revoked, not yet valid.
    assert!(intel.lookup_ip(ip("198.51.100.99")).is_none());
    assert!(intel.lookup_domain("revoked.example").is_none());
    assert!(intel.lookup_domain("future.example").is_none());
    // Hashes.
    assert!(intel
        .lookup_hash("44D88612FEA8A8F36DE82E1278ABB02F")
        .is_some());
    // Every unsupported indicator is reported with its id.
    let by_id = |id: &str| {
        intel
            .problems()
            .iter()
            .find(|p| p.indicator.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no problem for {id}: {:#?}", intel.problems()))
    };
    let and = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000010");
    assert_eq!(and.kind, IntelProblemKind::Unsupported);
    assert!(and.message.contains("AND"), "{and}");
    let matches = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000011");
    assert!(matches.message.contains("MATCHES"), "{matches}");
    let snort = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000012");
    assert!(snort.message.contains("snort"), "{snort}");
    let partial = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000013");
    assert_eq!(partial.kind, IntelProblemKind::Warning);
    assert!(partial.message.contains("WITHIN"), "{partial}");
    assert!(intel.lookup_domain("partly.example").is_some());
    let broken = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000014");
    assert_eq!(broken.kind, IntelProblemKind::Invalid);
    assert!(broken.message.contains("unterminated"), "{broken}");
    assert!(
        broken.to_string().starts_with(&format!(
            "{}: indicator--b1d7e5a8-0000-4000-8000-000000000014: invalid:",
            fixture("stix-bundle.json").display()
        )),
        "{broken}"
    );
}

#[test]
fn intel_stix_patterns_parse_or_fail_without_panicking() {
    let ok = "[ipv4-addr:value = '198.51.100.1' OR ipv4-addr:value = '198.51.100.2'] OR \
              ([domain-name:value = 'it\\'s.example'] OR [file:hashes.'SHA-256' = \
              'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f'])";
    let node = pattern::parse(ok).unwrap();
    let mut tests = Vec::new();
    let mut unsupported = Vec::new();
    pattern::flatten(&node, ok, &mut tests, &mut unsupported);
    assert_eq!(tests.len(), 4);
    assert!(unsupported.is_empty());
    // Every prefix of a valid pattern, and every one-byte corruption, gives a result or an error.
    for cut in 0..ok.len() {
        if ok.is_char_boundary(cut) {
            let _ = pattern::parse(&ok[..cut]);
        }
    }
    for (i, c) in ok.char_indices() {
        for junk in ["]", "[", "'", "(", ")", "\\", "=", " AND ", "x:", ":"] {
            let mut p = ok.to_string();
            p.replace_range(i..i + c.len_utf8(), junk);
            let _ = pattern::parse(&p);
        }
    }
    for bad in [
        "",
        "[",
        "[]",
        "[ipv4-addr:value]",
        "[ipv4-addr:value = ]",
        "[ipv4-addr: = '1.2.3.4']",
        "ipv4-addr:value = '1.2.3.4'",
        "[ipv4-addr:value = '1.2.3.4'",
        "[ipv4-addr:value = '1.2.3.4'] OR",
        "[ipv4-addr:value = '1.2.3.4'] WITHIN SECONDS",
        "[ipv4-addr:value IN ('1.2.3.4',)]",
        "[a:b = '\\x']",
        "[a:b = 'é'] €",
    ] {
        assert!(pattern::parse(bad).is_err(), "{bad:?} parsed");
    }
    // Supported forms and their spellings.
    for (p, n) in [
        ("[ipv4-addr:value == '1.2.3.4']", 1),
        ("[ipv4-addr:value IN ('1.2.3.4', '5.6.7.8')]", 1),
        (
            "[ ( ipv4-addr:value = '1.2.3.4' OR ipv6-addr:value = '::1' ) ]",
            2,
        ),
        ("/* feed */ [url:value = 'http://x.example/a'] // end", 1),
        ("[network-traffic:dst_ref.value = '1.2.3.4']", 1),
        ("[file:hashes.MD5 = '44d88612fea8a8f36de82e1278abb02f']", 1),
    ] {
        let node = pattern::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let mut tests = Vec::new();
        let mut unsupported = Vec::new();
        pattern::flatten(&node, p, &mut tests, &mut unsupported);
        assert_eq!((tests.len(), unsupported.len()), (n, 0), "{p}");
        for t in tests {
            t.values(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }
    // Unsupported forms are recognised and named.
    for (p, says) in [
        ("[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [ipv4-addr:value = '5.6.7.8']", "FOLLOWEDBY"),
        ("[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'a.example']", "AND"),
        ("[ipv4-addr:value = '1.2.3.4'] REPEATS 5 TIMES", "REPEATS"),
        (
            "[ipv4-addr:value = '1.2.3.4'] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z'",
            "START/STOP",
        ),
        ("[ipv4-addr:value != '1.2.3.4']", "!="),
        ("[ipv4-addr:value NOT = '1.2.3.4']", "NOT"),
        ("[domain-name:value LIKE '%.example']", "LIKE"),
        ("[domain-name:value ISSUBSET 'a.example']", "ISSUBSET"),
        ("[network-traffic:dst_port = 4444]", "network-traffic:dst_port"),
        ("[file:hashes.'SHA-512' = 'ab']", "SHA-512"),
        ("[ipv4-addr:value = 16909060]", "not a string"),
        ("[email-addr:value = 'a@b.example']", "email-addr:value"),
    ] {
        let node = pattern::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let mut tests = Vec::new();
        let mut unsupported = Vec::new();
        pattern::flatten(&node, p, &mut tests, &mut unsupported);
        for t in tests {
            if let Err(e) = t.values(p) {
                unsupported.push(e);
            }
        }
        assert!(
            unsupported.iter().any(|u| u.contains(says)),
            "{p}: {unsupported:?}"
        );
    }
}

#[test]
fn intel_stix_20_indicators_without_pattern_type_load() {
    let intel = from_stix(
        r#"{"type":"bundle","spec_version":"2.0","objects":[{"type":"indicator",
                "id":"indicator--20","labels":["malicious-activity"],
                "pattern":"[ipv4-addr:value = '198.51.100.5']","valid_from":"2020-01-01T00:00:00Z"}]}"#,
    );
    let hit = intel.lookup_ip(ip("198.51.100.5")).unwrap();
    assert_eq!(hit.labels, ["malicious-activity"]);
    assert!(intel.problems().is_empty(), "{:#?}", intel.problems());
}

#[test]
fn intel_bad_stix_files_are_errors_naming_the_file() {
    let mut b = IntelBuilder::at(NOW);
    let e = b.add_stix("a.json", "{not json").unwrap_err();
    assert!(e.to_string().contains("a.json: not JSON"), "{e}");
    let e = b.add_stix("b.json", r#"{"type":"bundle"}"#).unwrap_err();
    assert!(e.to_string().contains("b.json"), "{e}");
    let e = b.add_stix("c.json", "42").unwrap_err();
    assert!(e.to_string().contains("c.json"), "{e}");
    // A lone indicator object is accepted.
    b.add_stix(
        "d.json",
        r#"{"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '198.51.100.5']","pattern_type":"stix","valid_from":"2020-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    // Indicators with broken fields are reported, not loaded.
    b.add_stix(
        "e.json",
        r#"{"type":"bundle","objects":[
                {"type":"indicator","id":"indicator--2","pattern":"[ipv4-addr:value = '198.51.100.6']","valid_until":"soon"},
                {"type":"indicator","id":"indicator--3","pattern":"[ipv4-addr:value = '198.51.100.7']","confidence":101},
                {"type":"indicator","id":"indicator--4"},
                {"type":"indicator","pattern":"[ipv4-addr:value = 'nope']"},
                {"type":"identity","id":"identity--1","name":"ignored"}
            ]}"#,
    )
    .unwrap();
    let ids: Vec<&str> = b
        .problems()
        .iter()
        .filter_map(|p| p.indicator.as_deref())
        .collect();
    assert_eq!(
        ids,
        [
            "indicator--2",
            "indicator--3",
            "indicator--4",
            "objects[3] (an indicator without an id)"
        ],
        "{:#?}",
        b.problems()
    );
    assert_eq!(b.stats().invalid, 4);
    let intel = b.build().unwrap();
    assert_eq!(intel.stats().ipv4, 1);
    assert!(intel.lookup_ip(ip("198.51.100.5")).is_some());
}

#[test]
fn intel_values_are_normalised_and_refused_when_too_broad() {
    let n = |s: &str| infer(s).map(|n| (n.kind, n.value));
    assert_eq!(
        n("198.51.100.1"),
        Ok((IndicatorKind::Ipv4, "198.51.100.1".into()))
    );
    assert_eq!(
        n("198.51.100[.]1"),
        Ok((IndicatorKind::Ipv4, "198.51.100.1".into()))
    );
    assert_eq!(
        n("::ffff:198.51.100.1"),
        Ok((IndicatorKind::Ipv4, "198.51.100.1".into()))
    );
    assert_eq!(
        n("2001:DB8::1"),
        Ok((IndicatorKind::Ipv6, "2001:db8::1".into()))
    );
    assert_eq!(
        n("198.51.100.7/32"),
        Ok((IndicatorKind::Ipv4, "198.51.100.7".into()))
    );
    assert_eq!(
        n("198.51.100.7/24"),
        Ok((IndicatorKind::Ipv4Cidr, "198.51.100.0/24".into()))
    );
    assert_eq!(
        n("2001:db8::/32"),
        Ok((IndicatorKind::Ipv6Cidr, "2001:db8::/32".into()))
    );
    assert_eq!(
        n("::ffff:198.51.100.0/120"),
        Ok((IndicatorKind::Ipv4Cidr, "198.51.100.0/24".into()))
    );
    assert_eq!(
        n("*.Evil.Example."),
        Ok((IndicatorKind::Domain, "evil.example".into()))
    );
    assert_eq!(
        n("https://user@[2001:db8::5]:443/x"),
        Ok((IndicatorKind::Ipv6, "2001:db8::5".into()))
    );
    assert_eq!(
        n("HXXPS://Evil.Example/x?y"),
        Ok((IndicatorKind::Domain, "evil.example".into()))
    );
    assert_eq!(
        n("sha256:AEC070645FE53EE3B3763059376134F058CC337247C978ADD178B6CCDFB0019F").map(|x| x.0),
        Ok(IndicatorKind::Sha256)
    );
    for bad in [
        "0.0.0.0/0",
        "10.0.0.0/7",
        "2000::/3",
        "198.51.100.1/33",
        "198.51.100.1/x",
        "localhost",
        "com",
        "1.2.3.999",
        "bücher.example",
        "a..example",
        "under score.example",
        "http:///path",
    ] {
        assert!(n(bad).is_err(), "{bad:?} accepted: {:?}", n(bad));
    }
    assert!(normalize(Want::Hash(Some(IndicatorKind::Md5)), &"a".repeat(64)).is_err());
    assert!(normalize(Want::Ipv4, "2001:db8::1").is_err());
    assert!(normalize(Want::Ipv6, "198.51.100.1").is_err());
    // Special ranges load with a warning.
    let w = infer("10.1.2.3").unwrap().warning.unwrap();
    assert!(w.contains("private"), "{w}");
    assert!(infer("203.0.113.1").unwrap().warning.is_none());
}

#[test]
fn intel_cidr_match_is_the_most_specific_block() {
    let intel = from_csv(
        "value,description\n\
         198.51.100.0/24,wide\n\
         198.51.100.128/25,narrow\n\
         198.51.100.200,exact\n\
         2001:db8:aa::/48,v6 wide\n\
         2001:db8:aa:bb::/64,v6 narrow\n\
         45.0.0.0/12,very wide\n",
    );
    let desc = |a: &str| {
        intel
            .lookup_ip(ip(a))
            .and_then(|i| i.description.clone())
            .unwrap_or_default()
    };
    assert_eq!(desc("198.51.100.1"), "wide");
    assert_eq!(desc("198.51.100.129"), "narrow");
    assert_eq!(desc("198.51.100.200"), "exact");
    assert_eq!(desc("198.51.101.1"), "");
    assert_eq!(desc("198.51.99.255"), "");
    assert_eq!(desc("45.0.0.0"), "very wide");
    assert_eq!(desc("45.15.255.255"), "very wide");
    assert_eq!(desc("45.16.0.0"), "");
    assert_eq!(desc("44.255.255.255"), "");
    assert_eq!(desc("2001:db8:aa:1::1"), "v6 wide");
    assert_eq!(desc("2001:db8:aa:bb::1"), "v6 narrow");
    assert_eq!(desc("2001:db8:ab::1"), "");
    // IPv4-mapped IPv6 is looked up as IPv4.
    assert_eq!(desc("::ffff:198.51.100.200"), "exact");
    assert_eq!(intel.v4.len(), 4, "one map per prefix length");
}

#[test]
fn intel_audit_source_ips_match_in_every_position() {
    let intel = fixtures();
    // A real audit event from Falco's traces, its client address swapped for the demo attacker's.
    let text = read_shared("k8s_audit/falco_trace_files/test/trace_files/k8s_audit/exec_pod.json");
    assert!(text.contains("\"sourceIPs\":[\"192.168.99.1\"]"));
    let clean = parse(Format::Audit, &text);
    assert!(!clean.is_empty());
    for ev in &clean {
        assert!(hits(&intel, Kind::Audit, ev).is_empty());
    }
    let swapped = parse(
        Format::Audit,
        &text.replace("192.168.99.1", "198.51.100.77"),
    );
    let h = hits(&intel, Kind::Audit, &swapped[0]);
    assert_eq!(h.len(), 1, "{h:#?}");
    assert_eq!(h[0].field, "sourceIPs.0");
    assert_eq!(h[0].value, "198.51.100.77");
    assert_eq!(h[0].indicator.value, "198.51.100.77");
    // The second of several addresses (a proxy chain), IPv6 and IPv4-mapped too.
    let json = serde_json::json!({
        "kind": "Event", "verb": "get", "user": {"username": "eve"},
        "sourceIPs": ["10.0.0.1", "::ffff:203.0.113.66", "2001:db8:bad::7"],
        "userAgent": "curl", "objectRef": {"namespace": "prod"}
    });
    let mut ev = Event::text(1, json.to_string());
    quarry_model::flatten_json("", &json, &mut ev.fields);
    let h = hits(&intel, Kind::Audit, &ev);
    let got: Vec<(&str, &str)> = h
        .iter()
        .map(|h| (h.field.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("sourceIPs.1", "::ffff:203.0.113.66"),
            ("sourceIPs.2", "2001:db8:bad::7")
        ]
    );
}

#[test]
fn intel_cloudtrail_source_address_matches_ips_and_service_domains() {
    let intel = fixtures();
    let text = read_shared(
        "aws/stratus_red_team/docs/detonation-logs/aws.defense-evasion.cloudtrail-stop.json",
    );
    let clean = parse(Format::CloudTrail, &text);
    assert_eq!(clean.len(), 1);
    assert!(hits(&intel, Kind::CloudTrail, &clean[0]).is_empty());
    let evs = parse(
        Format::CloudTrail,
        &text.replace("86.245.153.234", "198.51.100.77"),
    );
    let h = hits(&intel, Kind::CloudTrail, &evs[0]);
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].field.as_str(), h[0].value.as_str()),
        ("sourceIPAddress", "198.51.100.77")
    );
    let c = h[0].candidate(&Source::of_kind(Kind::CloudTrail), &evs[0]);
    assert_eq!(c.rule_id, RULE_IP);
    assert_eq!(
        c.dedup_key,
        "quarry-intel-ip|198.51.100.77|arn:aws:iam::143434273843:user/christophe"
    );
    assert_eq!(c.tags, ["attack.initial-access"]);
    assert_eq!(c.event["eventName"], "StopLogging");
    assert_eq!(c.event["@intel"]["feed"], "feed.csv");
    // A service name as the caller: matched as a domain, subdomains included.
    let evs = parse(
        Format::CloudTrail,
        &text.replace("86.245.153.234", "api.Exfil-Relay.example"),
    );
    let h = hits(&intel, Kind::CloudTrail, &evs[0]);
    assert_eq!(h.len(), 1, "{h:#?}");
    assert_eq!(h[0].indicator.value, "exfil-relay.example");
    assert_eq!(h[0].value, "api.Exfil-Relay.example");
}

#[test]
fn intel_vpc_flow_matches_both_directions() {
    let intel = fixtures();
    // Real flow records (v5, all fields) with the external address swapped.
    let text = read_shared(
        "aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline/test-v5-all-fields.log",
    );
    let line = text.lines().next().unwrap();
    assert!(line.contains(" 89.160.20.156 10.200.0.0 "), "{line}");
    for ev in &parse(Format::VpcFlow, &text) {
        assert!(hits(&intel, Kind::VpcFlow, ev).is_empty());
    }
    // Inbound from the attacker: srcAddr (and pktSrcAddr, its own field).
    let inbound = parse(
        Format::VpcFlow,
        &line.replace("89.160.20.156", "203.0.113.66"),
    );
    let h = hits(&intel, Kind::VpcFlow, &inbound[0]);
    let fields: Vec<&str> = h.iter().map(|h| h.field.as_str()).collect();
    assert_eq!(fields, ["srcAddr", "pktSrcAddr"], "{h:#?}");
    let c = h[0].candidate(&Source::of_kind(Kind::VpcFlow), &inbound[0]);
    assert_eq!(c.dedup_key, "quarry-intel-ip|203.0.113.66|10.200.0.0");
    assert_eq!(c.tags, ["attack.initial-access"]);
    // Outbound to the C2 server: dstAddr.
    let outbound = line
        .replace(" 89.160.20.156 10.200.0.0 ", " 10.200.0.80 198.51.100.77 ")
        .replace(" 89.160.20.156 10.200.0.80 ", " 10.200.0.80 198.51.100.77 ");
    let outbound = parse(Format::VpcFlow, &outbound);
    let h = hits(&intel, Kind::VpcFlow, &outbound[0]);
    let fields: Vec<&str> = h.iter().map(|h| h.field.as_str()).collect();
    assert_eq!(fields, ["dstAddr", "pktDstAddr"], "{h:#?}");
    let c = h[0].candidate(&Source::of_kind(Kind::VpcFlow), &outbound[0]);
    assert_eq!(c.dedup_key, "quarry-intel-ip|198.51.100.77|10.200.0.80");
    assert_eq!(c.tags, ["attack.command-and-control"]);
    // IPv6 flows as recorded (no swap): the destination is inside a listed /64.
    let v6 = read_shared(
        "aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline/test-extra-samples.log",
    );
    let evs = parse(Format::VpcFlow, &v6);
    let h: Vec<IntelHit> = evs
        .iter()
        .flat_map(|e| hits(&intel, Kind::VpcFlow, e))
        .collect();
    assert_eq!(h.len(), 1, "{h:#?}");
    assert_eq!(h[0].field, "dstAddr");
    assert_eq!(h[0].value, "2001:db8:1234:a102:3304:8879:34cf:4071");
    assert_eq!(h[0].indicator.value, "2001:db8:1234:a102::/64");
}

#[test]
fn intel_syslog_and_container_text_is_scanned() {
    let intel = fixtures();
    let text = read_shared("node_logs/loghub/OpenSSH/OpenSSH_2k.log");
    let line = text
        .lines()
        .find(|l| l.contains("Failed password") && l.contains("173.234.31.186"))
        .unwrap();
    let evs = parse(
        Format::Syslog,
        &line.replace("173.234.31.186", "203.0.113.66"),
    );
    let h = hits(&intel, Kind::Syslog, &evs[0]);
    assert_eq!(h.len(), 1, "{h:#?}");
    assert_eq!(
        (h[0].field.as_str(), h[0].value.as_str()),
        ("message", "203.0.113.66")
    );
    let mut src = Source::of_kind(Kind::Syslog);
    src.node = Some("node-1".into());
    let c = h[0].candidate(&src, &evs[0]);
    assert_eq!(c.dedup_key, "quarry-intel-ip|203.0.113.66|LabSZ");
    assert_eq!(c.level, Level::Critical, "the CSV feed's severity");
    assert_eq!(c.event["@intel"]["feed"], "feed.csv");
    assert_eq!(c.event["@intel"]["line"], 2);
    assert_eq!(c.suppress_ns, DEFAULT_SUPPRESS_NS);
    // Container output: a domain (as a subdomain, in a URL), a hash, an address with a port.
    let mut src = Source::of_kind(Kind::Container);
    src.namespace = Some("shop".into());
    src.pod = Some("web-7f9".into());
    let ev = Event::text(
        5,
        "fetching https://pool.MINER-POOL.example/job and 198.51.100.77:4444; \
         sha256=449E7C386CD2E2CB9C5176DFE746DB4A4873889F964F539673C12A1E2FAEBF3D done.",
    );
    let h = hits(&intel, Kind::Container, &ev);
    let got: Vec<(&str, IndicatorKind)> = h
        .iter()
        .map(|h| (h.value.as_str(), h.indicator.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("198.51.100.77", IndicatorKind::Ipv4),
            ("pool.MINER-POOL.example", IndicatorKind::Domain),
            (
                "449E7C386CD2E2CB9C5176DFE746DB4A4873889F964F539673C12A1E2FAEBF3D",
                IndicatorKind::Sha256
            ),
        ],
        "{h:#?}"
    );
    let cands: Vec<Candidate> = h.iter().map(|h| h.candidate(&src, &ev)).collect();
    assert_eq!(cands[1].rule_id, RULE_DOMAIN);
    assert_eq!(cands[1].title, "Threat intelligence match: domain");
    assert_eq!(
        cands[1].dedup_key,
        "quarry-intel-domain|miner-pool.example|shop/web-7f9"
    );
    assert_eq!(cands[1].tags, ["attack.command-and-control"]);
    assert_eq!(cands[1].event["@intel"]["value"], "pool.MINER-POOL.example");
    assert_eq!(cands[1].event["@message"], ev.raw);
    assert_eq!(cands[2].rule_id, RULE_HASH);
    assert_eq!(cands[2].tags, ["attack.execution"]);
    // Near misses: another domain ending the same way, a longer domain, a longer hex string,
    // an address inside a longer dotted number or a word.
    for text in [
        "notminer-pool.example is fine",
        "miner-pool.example.org is someone else",
        "x449e7c386cd2e2cb9c5176dfe746db4a4873889f964f539673c12a1e2faebf3d",
        "version 1.198.51.100.77 and v198.51.100.77 and 198.51.100.77.5",
        "2001:db8:bad::7x",
    ] {
        let h = hits(&intel, Kind::Text, &Event::text(0, text));
        assert!(h.is_empty(), "{text}: {h:#?}");
    }
    // The end of a sentence is not part of the domain.
    let h = hits(
        &intel,
        Kind::Text,
        &Event::text(0, "resolved miner-pool.example."),
    );
    assert_eq!(h.len(), 1);
    // The same indicator twice in one line is one hit per value.
    let h = hits(
        &intel,
        Kind::Json,
        &Event::text(
            0,
            r#"{"a":"198.51.100.77","b":"198.51.100.77","c":"[2001:db8:bad::1]:443"}"#,
        ),
    );
    let got: Vec<&str> = h.iter().map(|h| h.value.as_str()).collect();
    assert_eq!(got, ["198.51.100.77", "2001:db8:bad::1"]);
}

#[test]
fn intel_ip_scanner_finds_addresses_and_only_addresses() {
    let found = |t: &str| {
        let mut v = Vec::new();
        scan_ips(t, |ip, s| v.push((ip.to_string(), s.to_string())));
        v
    };
    assert_eq!(
        found("Failed password for root from 203.0.113.66 port 22 ssh2"),
        [("203.0.113.66".to_string(), "203.0.113.66".to_string())]
    );
    assert_eq!(found("to 10.0.0.1:8080.").len(), 1);
    assert_eq!(found("(2001:db8::1) and [fe80::1%eth0]").len(), 2);
    assert_eq!(found("peer ::ffff:10.1.2.3 up")[0].0, "10.1.2.3");
    assert_eq!(found("at 2001:db8::1.")[0].0, "2001:db8::1");
    for none in [
        "12:30:45.123 took 1.5s",
        "v1.2.3.4",
        "1.2.3.4.5",
        "1.2.3",
        "256.1.1.1",
        "01.02.03.04",
        "dead:beef",
        "aa:bb:cc:dd:ee:ff",
        "cafe.1.2.3",
        "",
    ] {
        assert!(found(none).is_empty(), "{none}: {:?}", found(none));
    }
}

#[test]
fn intel_clean_real_events_do_not_match() {
    let intel = fixtures();
    let mut checked = 0;
    let mut run = |kind: Kind, evs: &[Event]| {
        for ev in evs {
            let h = hits(&intel, kind, ev);
            assert!(h.is_empty(), "{kind:?} {}: {h:#?}", ev.raw);
            checked += 1;
        }
    };
    let dir = shared("k8s_audit/falco_trace_files/test/trace_files/k8s_audit");
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&p).unwrap();
            run(
                Kind::Audit,
                &decode_all(Format::Audit, DecoderOptions::default(), &bytes, 0).0,
            );
        }
    }
    let dir = shared("aws/stratus_red_team/docs/detonation-logs");
    for f in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        run(
            Kind::CloudTrail,
            &decode_all(Format::CloudTrail, DecoderOptions::default(), &bytes, 0).0,
        );
    }
    for f in [
        "test-v5-all-fields.log",
        "test-v8-samples.log",
        "test-tgw-samples.log",
    ] {
        let text = read_shared(&format!(
            "aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline/{f}"
        ));
        run(Kind::VpcFlow, &parse(Format::VpcFlow, &text));
    }
    for f in ["OpenSSH/OpenSSH_2k.log", "Linux/Linux_2k.log"] {
        let bytes = std::fs::read(shared(&format!("node_logs/loghub/{f}"))).unwrap();
        run(
            Kind::Syslog,
            &decode_all(Format::Syslog, DecoderOptions::default(), &bytes, 0).0,
        );
    }
    let bytes = std::fs::read(shared("node_logs/loghub/Apache/Apache_2k.log")).unwrap();
    run(
        Kind::Text,
        &decode_all(Format::Text, DecoderOptions::default(), &bytes, 0).0,
    );
    assert!(checked > 4000, "{checked}");
}

#[test]
fn intel_candidates_take_level_from_feed_and_stay_stable() {
    let intel = from_csv(
        "type,value,confidence,severity\n\
         ip,198.51.100.1,,\n\
         ip,198.51.100.2,20,\n\
         ip,198.51.100.3,50,\n\
         ip,198.51.100.4,high,low\n\
         domain,evil.example,,\n",
    );
    let level = |a: &str| intel.lookup_ip(ip(a)).unwrap().level();
    assert_eq!(level("198.51.100.1"), Level::High);
    assert_eq!(level("198.51.100.2"), Level::Low);
    assert_eq!(level("198.51.100.3"), Level::Medium);
    assert_eq!(level("198.51.100.4"), Level::Low);
    let json = serde_json::json!({"user": {"username": "alice"}, "sourceIPs": ["198.51.100.1"],
        "objectRef": {"namespace": "prod"}});
    let mut ev = Event::text(7, json.to_string());
    quarry_model::flatten_json("", &json, &mut ev.fields);
    let src = Source::of_kind(Kind::Audit);
    let h = hits(&intel, Kind::Audit, &ev);
    let c = h[0].candidate(&src, &ev);
    assert_eq!(c.title, "Threat intelligence match: IP address");
    assert_eq!(c.dedup_key, "quarry-intel-ip|198.51.100.1|alice");
    assert_eq!(c.namespace.as_deref(), Some("prod"));
    assert_eq!(c.ts, 7);
    assert_eq!(c.event["user"]["username"], "alice");
    assert_eq!(c.event["@intel"]["indicator"], "198.51.100.1");
    assert_eq!(c.event["@intel"]["type"], "ipv4");
    assert_eq!(c.event["@intel"]["field"], "sourceIPs.0");
    assert_eq!(c.event["@intel"]["feed"], "inline.csv");
    assert_eq!(c.event_hash, h[0].candidate(&src, &ev).event_hash);
}

#[test]
fn intel_folder_loads_and_stats_print() {
    let intel = fixtures();
    let s = intel.stats();
    assert_eq!(s.files, 3);
    let line = s.to_string();
    assert!(
        line.starts_with(&format!("{} indicators from 3 files (ipv4 ", s.loaded())),
        "{line}"
    );
    assert!(line.contains("skipped: 2 expired"), "{line}");
    assert!(!intel.is_empty());
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["revoked"], 1);
    // Nothing loaded: nothing matched, nothing scanned.
    let empty = IntelBuilder::at(NOW).build().unwrap();
    assert!(empty.is_empty());
    assert!(hits(
        &empty,
        Kind::Text,
        &Event::text(0, "198.51.100.77 evil.example")
    )
    .is_empty());
    // A missing path is an error naming it.
    let e = Intel::load(&[fixture("missing.csv")]).unwrap_err();
    assert!(e.to_string().contains("missing.csv"), "{e}");
}

#[test]
fn intel_is_shared_across_ingest_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    shared(&fixtures());
}

#[test]
fn intel_many_problems_are_capped_and_counted() {
    let mut text = String::from("value\n");
    for i in 0..(MAX_PROBLEMS + 50) {
        text.push_str(&format!("bad value {i}\n"));
    }
    let mut b = IntelBuilder::at(NOW);
    b.add_csv("junk.csv", &text).unwrap();
    assert_eq!(b.problems().len(), MAX_PROBLEMS);
    assert_eq!(b.stats().problems_dropped, 50);
    assert_eq!(b.stats().invalid, (MAX_PROBLEMS + 50) as u64);
}

/// Cost per event of the checks on real audit events when nothing matches, with a feed of 10,000
/// addresses and 1,000 blocks of 8 prefix lengths. Run with
/// `cargo test --release -p quarry-detect intel_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn intel_cost_per_event() {
    let mut csv = String::from("value\n");
    for i in 0..10_000u32 {
        csv.push_str(&format!(
            "{}\n",
            Ipv4Addr::from(0xC633_6400u32.wrapping_add(i * 7919))
        ));
    }
    for i in 0..1_000u32 {
        let len = 16 + (i % 8) * 2;
        let net = (0x2D00_0000u32 + i * 65_536) & mask_v4(len as u8);
        csv.push_str(&format!("{}/{len}\n", Ipv4Addr::from(net)));
    }
    csv.push_str("miner-pool.example\n");
    let intel = from_csv(&csv);
    let mut evs = Vec::new();
    let dir = shared("k8s_audit/falco_trace_files/test/trace_files/k8s_audit");
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&p).unwrap();
            evs.extend(decode_all(Format::Audit, DecoderOptions::default(), &bytes, 0).0);
        }
    }
    let ssh = std::fs::read(shared("node_logs/loghub/OpenSSH/OpenSSH_2k.log")).unwrap();
    let ssh = decode_all(Format::Syslog, DecoderOptions::default(), &ssh, 0).0;
    let ct = std::fs::read(shared(
        "aws/stratus_red_team/docs/detonation-logs/aws.defense-evasion.cloudtrail-stop.json",
    ))
    .unwrap();
    let ct = decode_all(Format::CloudTrail, DecoderOptions::default(), &ct, 0).0;
    let one = from_csv("value\n198.51.100.77\n");
    // Elastic's samples keep the API server's field order (sourceIPs about tenth); Falco's traces have
    // sorted keys (sourceIPs after requestObject and its many fields).
    let mut ordered = Vec::new();
    for f in ["test-audit.log", "test-kube-audit.log"] {
        let bytes = std::fs::read(shared(&format!(
            "k8s_audit/elastic_integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/{f}"
        )))
        .unwrap();
        ordered.extend(decode_all(Format::Audit, DecoderOptions::default(), &bytes, 0).0);
    }
    // Misses inside /16s that hold indicators: every prefix length is probed.
    let near = from_csv(&format!(
        "value\n{}",
        evs.iter()
            .filter_map(|e| e.fields.get("sourceIPs.0").and_then(|v| v.as_str()))
            .filter_map(|s| s.parse::<Ipv4Addr>().ok())
            .map(|a| format!("{}/30\n", Ipv4Addr::from(u32::from(a) ^ 0x80)))
            .collect::<String>()
            + &csv[6..]
    ));
    for (name, intel, kind, evs) in [
        ("audit (sorted keys)", &intel, Kind::Audit, &evs),
        (
            "audit (sorted keys), one indicator",
            &one,
            Kind::Audit,
            &evs,
        ),
        (
            "audit (sorted keys), same /16 as indicators",
            &near,
            Kind::Audit,
            &evs,
        ),
        ("audit (API server order)", &intel, Kind::Audit, &ordered),
        ("cloudtrail", &intel, Kind::CloudTrail, &ct),
        ("syslog (sshd)", &intel, Kind::Syslog, &ssh),
    ] {
        let src = Source::of_kind(kind);
        let mut out = Vec::new();
        let rounds = 200_000 / evs.len().max(1) + 1;
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            for ev in evs.iter() {
                intel.check(&src, ev, &mut out);
            }
        }
        let per = t.elapsed().as_nanos() as f64 / (rounds * evs.len()) as f64;
        println!("{name}: {per:.0} ns per event ({} hits)", out.len());
    }
}
