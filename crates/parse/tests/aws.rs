//! AWS logs: Elastic's VPC flow log pipeline tests (with the three expected files), Stratus Red Team's
//! CloudTrail detonation logs and the EKS CloudTrail examples of the AWS docs.
//! Data (used in place, not copied): elastic/integrations (Elastic License 2.0), DataDog/stratus-red-team
//! (Apache-2.0), awsdocs (MIT-0); see shared/data/SOURCES.md.

mod common;

use common::*;
use quarry_model::{Event, Value};
use quarry_parse::{DecoderOptions, Format};
use serde_json::Value as J;

const VPC: &str = "aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline";

fn vpc(file: &str) -> Vec<Event> {
    let input = read(&format!("{VPC}/{file}"));
    let (evs, stats) = decode_bytewise(Format::VpcFlow, DecoderOptions::default(), &input, NOW);
    assert_eq!(stats.parse_errors, 0, "{file}");
    let (auto, _) = decode(Format::Auto, DecoderOptions::default(), &input, NOW);
    assert_eq!(auto, evs, "{file}: Auto should read it the same");
    evs
}

/// Elastic's `aws.vpcflow.*` name for ours.
fn ours_for(elastic: &str) -> String {
    let n = match elastic {
        "pkt_src_service" => "pkt_src_aws_service",
        "pkt_dst_service" => "pkt_dst_aws_service",
        n => n,
    };
    let mut out = String::new();
    for (i, seg) in n.split('_').enumerate() {
        let seg = match seg {
            "srcaddr" => "srcAddr",
            "dstaddr" => "dstAddr",
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

fn compare_with_elastic(file: &str) -> usize {
    let evs = vpc(file);
    let exp: J = serde_json::from_str(&read_str(&format!("{VPC}/{file}-expected.json"))).unwrap();
    let exp = exp["expected"].as_array().unwrap();
    assert_eq!(evs.len(), exp.len(), "{file}");
    let mut checked = 0;
    for (ev, e) in evs.iter().zip(exp) {
        assert_eq!(ev.raw, e["event"]["original"].as_str().unwrap());
        for (k, v) in e["aws"]["vpcflow"].as_object().unwrap() {
            if matches!(k.as_str(), "tcp_flags_array" | "sublocation") {
                continue;
            }
            let ours = ev
                .fields
                .get(&ours_for(k))
                .unwrap_or_else(|| panic!("{file}: no field for {k}"));
            // Elastic keeps every value a string; ours are numbers where AWS documents numbers
            assert_eq!(ours.to_string(), v.as_str().unwrap(), "{file} {k}");
            checked += 1;
        }
        let pairs = [
            ("source", "address", "srcAddr"),
            ("source", "port", "srcPort"),
            ("destination", "address", "dstAddr"),
            ("destination", "port", "dstPort"),
            ("network", "bytes", "bytes"),
            ("network", "packets", "packets"),
            ("network", "iana_number", "protocol"),
            ("network", "direction", "flowDirection"),
            ("cloud", "region", "region"),
            ("cloud", "availability_zone", "azId"),
        ];
        for (obj, key, ours) in pairs {
            if let Some(v) = e.get(obj).and_then(|o| o.get(key)) {
                let want = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                assert_eq!(
                    ev.fields.get(ours).map(Value::to_string),
                    Some(want),
                    "{file} {obj}.{key}"
                );
                checked += 1;
            }
        }
        // event.start is the flow's start: our timestamp; event.end our `end`
        assert_eq!(ev.ts, rfc(e["event"]["start"].as_str().unwrap()), "{file}");
        assert_eq!(
            Some(rfc(e["event"]["end"].as_str().unwrap()) / 1_000_000_000),
            int(&ev.fields, "end")
        );
    }
    checked
}

#[test]
fn elastic_expected_files() {
    let n = compare_with_elastic("test-extra-samples.log")
        + compare_with_elastic("test-tcp-flag-sequence.log")
        + compare_with_elastic("test-v5-all-fields.log");
    assert!(n > 100, "{n}");
}

#[test]
fn header_lines_define_the_layout_and_are_not_events() {
    let evs = vpc("test-tcp-flag-sequence.log");
    assert_eq!(evs.len(), 3);
    let h = "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status";
    for ev in &evs {
        assert_eq!(ev.hint.as_deref(), Some(h));
    }
    assert_eq!(int(&evs[0].fields, "tcpFlags"), Some(2));
    assert_eq!(
        s(&evs[0].fields, "pktSrcAddr").as_deref(),
        Some("52.213.180.42")
    );
    assert_eq!(s(&evs[1].fields, "logStatus").as_deref(), Some("SKIPDATA"));
    assert!(evs[1].fields.get("srcAddr").is_none());
}

#[test]
fn versions_7_8_transit_gateway_and_json_wrapped() {
    let ecs = vpc("test-ecs-samples.log");
    assert_eq!(ecs.len(), 10);
    assert_eq!(
        s(&ecs[0].fields, "ecsClusterName").as_deref(),
        Some("frontend-cluster")
    );
    assert_eq!(
        s(&ecs[0].fields, "ecsTaskId").as_deref(),
        Some("6adbd0d6-211")
    );
    assert_eq!(
        s(&ecs[0].fields, "flowDirection").as_deref(),
        Some("ingress")
    );
    assert_eq!(s(&ecs[0].fields, "dstAddr").as_deref(), Some("2a02:cf40::"));
    assert_eq!(
        s(&ecs[0].fields, "accountId").as_deref(),
        Some("000000000000")
    );
    assert_eq!(ecs[0].ts, 1_755_678_619_000_000_000);
    let v8 = vpc("test-v8-samples.log");
    assert_eq!(s(&v8[0].fields, "rejectReason").as_deref(), Some("BPA"));
    let tgw = vpc("test-tgw-samples.log");
    assert_eq!(tgw.len(), 10);
    assert_eq!(
        s(&tgw[0].fields, "tgwId").as_deref(),
        Some("tgw-0a12bc34de56f7890")
    );
    assert_eq!(
        s(&tgw[0].fields, "tgwAttachmentId").as_deref(),
        Some("tgw-attach-0789ijkl")
    );
    assert_eq!(s(&tgw[0].fields, "logStatus").as_deref(), Some("SKIPDATA"));
    assert_eq!(int(&tgw[0].fields, "dstPort"), Some(22));
    let wrapped = vpc("test-with-message-field.log");
    assert_eq!(wrapped.len(), 1);
    assert_eq!(
        s(&wrapped[0].fields, "interfaceId").as_deref(),
        Some("eni-0e0bf7be352692297")
    );
    assert_eq!(
        s(&wrapped[0].fields, "logStatus").as_deref(),
        Some("NODATA")
    );
    assert_eq!(wrapped[0].ts, 1_671_029_698_000_000_000);
    assert!(wrapped[0].raw.starts_with("{\"message\""));
}

#[test]
fn custom_format_option_and_bad_lines() {
    let opts = DecoderOptions {
        vpc_format: Some("${version} ${vpc-id} ${srcaddr} ${dstaddr} ${start} ${action}".into()),
        ..DecoderOptions::default()
    };
    opts.validate().unwrap();
    let input = b"5 vpc-1 10.0.0.1 10.0.0.2 1600000000 ACCEPT\ngarbage line\n5 vpc-2 - - 1600000001 REJECT\n";
    let (evs, stats) = decode_bytewise(Format::VpcFlow, opts, input, NOW);
    assert_eq!(evs.len(), 3);
    assert_eq!(stats.parse_errors, 1);
    assert!(evs[1].parse_error.as_deref().unwrap().contains("2 fields"));
    assert_eq!(evs[2].ts, 1_600_000_001_000_000_000);
    assert_eq!(
        evs[0].hint.as_deref(),
        Some("version vpc-id srcaddr dstaddr start action")
    );
    let bad = DecoderOptions {
        vpc_format: Some("${version} ${bad name!}".into()),
        ..DecoderOptions::default()
    };
    assert!(bad.validate().is_err());
    let (evs, _) = decode(Format::VpcFlow, bad, b"5 x\n", NOW);
    assert!(evs[0]
        .parse_error
        .as_deref()
        .unwrap()
        .starts_with("invalid vpc_format"));
}

#[test]
fn stratus_red_team_cloudtrail() {
    let dir = data("aws/stratus_red_team/docs/detonation-logs");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 35);
    let mut total = 0;
    for (i, p) in files.iter().enumerate() {
        let input = std::fs::read(p).unwrap();
        let items: Vec<J> = serde_json::from_slice(&input).unwrap();
        let (evs, stats) = if i % 7 == 0 {
            decode_bytewise(Format::CloudTrail, DecoderOptions::default(), &input, NOW)
        } else {
            decode(Format::CloudTrail, DecoderOptions::default(), &input, NOW)
        };
        assert_eq!(stats.parse_errors, 0, "{}", p.display());
        assert_eq!(evs.len(), items.len(), "{}", p.display());
        for (ev, item) in evs.iter().zip(&items) {
            assert_eq!(ev.raw, serde_json::to_string(item).unwrap());
            assert_eq!(ev.ts, rfc(item["eventTime"].as_str().unwrap()));
            assert_eq!(ev.format, "cloudtrail");
            assert!(same(
                ev.fields.get("eventName").unwrap(),
                &item["eventName"]
            ));
            if let Some(arn) = item["userIdentity"]["arn"].as_str() {
                assert_eq!(s(&ev.fields, "userIdentity.arn").as_deref(), Some(arn));
            }
        }
        let (auto, _) = decode(Format::Auto, DecoderOptions::default(), &input, NOW);
        assert_eq!(auto, evs);
        total += evs.len();
    }
    assert_eq!(total, 310);
}

#[test]
fn cloudtrail_records_document_and_eks_examples() {
    let lines = read_str("aws/awsdocs_eks_cloudtrail/eks_cloudtrail_examples.jsonl");
    let (evs, _) = decode_bytewise(
        Format::CloudTrail,
        DecoderOptions::default(),
        lines.as_bytes(),
        NOW,
    );
    assert_eq!(evs.len(), 2);
    assert_eq!(
        s(&evs[0].fields, "eventSource").as_deref(),
        Some("eks.amazonaws.com")
    );
    assert_eq!(evs[0].ts, rfc("2018-05-28T19:16:43Z"));
    assert_eq!(evs[0].raw, lines.lines().next().unwrap());
    // the S3 delivery shape: one {"Records":[...]} document
    let recs: Vec<J> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let doc = serde_json::json!({ "Records": recs }).to_string();
    let (evs2, _) = decode_bytewise(Format::Auto, DecoderOptions::default(), doc.as_bytes(), NOW);
    assert_eq!(evs2.len(), 2);
    assert_eq!(evs2[1].raw, serde_json::to_string(&recs[1]).unwrap());
    assert_eq!(evs2[1].fields, evs[1].fields);
}
