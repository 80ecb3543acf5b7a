//! Kubernetes audit events: Falco's trace files (v1 and v1beta1, one malformed) and Elastic's pipeline
//! test lines with GKE and AKS wrappers.
//! Data (used in place, not copied): falcosecurity/falco (Apache-2.0), elastic/integrations (Elastic
//! License 2.0); see shared/data/SOURCES.md.

mod common;

use common::*;
use quarry_model::Value;
use quarry_parse::{DecoderOptions, Format};

const FALCO: &str = "k8s_audit/falco_trace_files/test/trace_files/k8s_audit";
const ELASTIC: &str =
    "k8s_audit/elastic_integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline";

#[test]
fn falco_traces_all_parse_and_the_malformed_one_is_flagged() {
    let dir = data(FALCO);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 47);
    let (mut good, mut bad) = (0, 0);
    for p in &files {
        let input = std::fs::read(p).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        // `{"kind": 0}` alone is just JSON to a decoder that guesses
        let formats: &[Format] = if name == "fal_01_003.json" {
            &[Format::Audit]
        } else {
            &[Format::Audit, Format::Auto]
        };
        for &fmt in formats {
            let (evs, stats) = decode_bytewise(fmt, DecoderOptions::default(), &input, NOW);
            let expected_lines = input
                .split(|c| *c == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .count();
            assert_eq!(evs.len(), expected_lines, "{name}");
            assert_eq!(stats.records as usize, evs.len());
            for ev in &evs {
                assert_eq!(ev.format, "audit", "{name}");
                if name == "fal_01_003.json" {
                    assert_eq!(ev.raw, r#"{"kind": 0}"#);
                    assert!(ev
                        .parse_error
                        .as_deref()
                        .unwrap()
                        .contains("not a Kubernetes audit event"));
                    assert_eq!(ev.ts, NOW);
                    if fmt == Format::Audit {
                        bad += 1;
                    }
                    continue;
                }
                assert!(ev.parse_error.is_none(), "{name}: {:?}", ev.parse_error);
                let f = &ev.fields;
                let rrt = s(f, "requestReceivedTimestamp").unwrap();
                assert_eq!(ev.ts, rfc(&rrt), "{name}");
                assert!(
                    f.get("verb").is_some() && f.get("user.username").is_some(),
                    "{name}"
                );
                assert!(
                    matches!(f.get("responseStatus.code"), Some(Value::Int(_)) | None),
                    "{name}"
                );
                assert_eq!(ev.message, None);
                assert_eq!(ev.raw.lines().count(), 1);
                if fmt == Format::Audit {
                    good += 1;
                }
            }
        }
    }
    assert_eq!((good, bad), (51, 1));
}

#[test]
fn falco_trace_fields_used_by_rules() {
    let input = read(&format!("{FALCO}/create_nginx_pod_privileged.json"));
    let (evs, _) = decode(Format::Audit, DecoderOptions::default(), &input, NOW);
    let f = &evs[0].fields;
    assert_eq!(s(f, "objectRef.resource").as_deref(), Some("pods"));
    assert_eq!(s(f, "verb").as_deref(), Some("create"));
    assert_eq!(s(f, "apiVersion").as_deref(), Some("audit.k8s.io/v1beta1"));
    assert_eq!(
        f.get("requestObject.spec.containers.0.securityContext.privileged"),
        Some(&Value::Bool(true))
    );
    assert_eq!(int(f, "responseStatus.code"), Some(201));
}

#[test]
fn elastic_plain_gke_and_aks() {
    let input = read(&format!("{ELASTIC}/test-audit.log"));
    for fmt in [Format::Audit, Format::Auto] {
        let (evs, stats) = decode_bytewise(fmt, DecoderOptions::default(), &input, NOW);
        assert_eq!(evs.len(), 5);
        assert_eq!(stats.parse_errors, 0);
        for ev in &evs[..3] {
            assert_eq!(s(&ev.fields, "kind").as_deref(), Some("Event"));
            assert_eq!(int(&ev.fields, "responseStatus.code"), Some(200));
            assert_eq!(s(&ev.fields, "sourceIPs.0").as_deref(), Some("67.43.156.1"));
        }
        assert_eq!(evs[0].ts, rfc("2025-03-04T06:22:18.819232Z"));
        assert_eq!(
            s(&evs[1].fields, "objectRef.resource").as_deref(),
            Some("leases")
        );
        // GKE: the LogEntry's own fields plus audit.k8s.io names
        let g = &evs[3].fields;
        assert_eq!(
            s(g, "protoPayload.methodName").as_deref(),
            Some("io.k8s.get")
        );
        assert_eq!(
            s(g, "resource.labels.cluster_name").as_deref(),
            Some("test-cluster")
        );
        assert_eq!(s(g, "verb").as_deref(), Some("get"));
        assert_eq!(
            s(g, "user.username").as_deref(),
            Some("system:gke-master-healthcheck")
        );
        assert_eq!(s(g, "sourceIPs.0").as_deref(), Some("67.43.156.1"));
        assert_eq!(int(g, "responseStatus.code"), Some(200));
        assert_eq!(
            s(g, "annotations.authorization.k8s.io/decision").as_deref(),
            Some("allow")
        );
        assert_eq!(evs[3].ts, rfc("2025-07-13T08:38:39.127266Z"));
        // AKS with the audit event as an object under properties.log
        let a = &evs[4];
        assert_eq!(s(&a.fields, "user.username").as_deref(), Some("aksService"));
        assert_eq!(s(&a.fields, "verb").as_deref(), Some("update"));
        assert_eq!(
            s(&a.fields, "objectRef.namespace").as_deref(),
            Some("kube-system")
        );
        assert!(
            a.fields.get("category").is_none(),
            "fields are the inner event's"
        );
        assert_eq!(a.ts, rfc("2025-09-30T06:23:35.091134Z"));
        assert!(a.raw.starts_with(r#"{"category":"kube-audit-admin""#));
    }
}

#[test]
fn elastic_aks_string_log_and_records_array() {
    let line = read_str(&format!("{ELASTIC}/test-kube-audit.log"));
    let (evs, _) = decode_bytewise(
        Format::Audit,
        DecoderOptions::default(),
        line.as_bytes(),
        NOW,
    );
    assert_eq!(evs.len(), 1);
    let f = &evs[0].fields;
    assert_eq!(s(f, "objectRef.resource").as_deref(), Some("leases"));
    assert_eq!(s(f, "user.username").as_deref(), Some("aksService"));
    assert_eq!(int(f, "responseStatus.code"), Some(200));
    assert_eq!(
        s(f, "annotations.authorization.k8s.io/decision").as_deref(),
        Some("allow")
    );
    assert_eq!(evs[0].ts, rfc("2025-10-07T16:19:19.643609Z"));
    assert_eq!(evs[0].raw, line.trim_end());
    // the Azure diagnostic settings envelope: {"records":[...]} holding several; each keeps its inner text
    let rec: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
    let inner = rec["properties"]["log"].as_str().unwrap().to_string();
    let doc = serde_json::json!({"records": [rec.clone(), rec]}).to_string();
    let (evs, _) = decode_bytewise(Format::Auto, DecoderOptions::default(), doc.as_bytes(), NOW);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1].raw, inner);
    assert_eq!(s(&evs[1].fields, "verb").as_deref(), Some("update"));
}

#[test]
fn pretty_printed_event_list_over_many_lines() {
    let items: Vec<serde_json::Value> = std::fs::read_dir(data(FALCO))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|v| v["kind"] == "Event")
        .collect();
    assert_eq!(items.len(), 51);
    let doc = serde_json::json!({"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items": items});
    let pretty = serde_json::to_string_pretty(&doc).unwrap();
    let mut input = String::from(
        "{\"kind\":\"Event\",\"auditID\":\"before\",\"stage\":\"ResponseComplete\"}\n",
    );
    input.push_str(&pretty);
    input.push_str("\n{\"kind\":\"Event\",\"auditID\":\"after\",\"stage\":\"ResponseComplete\"}\n");
    for fmt in [Format::Audit, Format::Auto] {
        let (evs, stats) = decode_bytewise(fmt, DecoderOptions::default(), input.as_bytes(), NOW);
        assert_eq!(evs.len(), 53);
        assert_eq!(stats.parse_errors, 0);
        assert_eq!(s(&evs[0].fields, "auditID").as_deref(), Some("before"));
        assert_eq!(s(&evs[52].fields, "auditID").as_deref(), Some("after"));
        for (ev, item) in evs[1..52].iter().zip(&items) {
            assert_eq!(ev.raw, serde_json::to_string(item).unwrap());
        }
    }
}

#[test]
fn bad_line_in_the_middle_keeps_the_others() {
    let good = read_str(&format!("{FALCO}/create_configmap.json"));
    let good = good.trim_end();
    let input = format!("{good}\nnot json at all\n{{\"kind\":\"Event\",\"auditID\":\n{good}\n");
    let (evs, stats) = decode_bytewise(
        Format::Audit,
        DecoderOptions::default(),
        input.as_bytes(),
        NOW,
    );
    // the cut-off document is flagged when the next whole event starts at column 0
    assert_eq!(
        evs.len(),
        4,
        "{:#?}",
        evs.iter().map(|e| &e.parse_error).collect::<Vec<_>>()
    );
    assert!(evs[0].parse_error.is_none() && evs[3].parse_error.is_none());
    assert!(evs[1].parse_error.as_deref().unwrap().contains("not JSON"));
    assert!(evs[2]
        .parse_error
        .as_deref()
        .unwrap()
        .starts_with("invalid JSON: EOF"));
    assert_eq!(evs[2].raw, "{\"kind\":\"Event\",\"auditID\":");
    assert_eq!(stats.parse_errors, 2);
}
