//! The example queries of the AWS documentation (Logs Insights sample queries, query syntax pages, the
//! EKS best-practices guide's audit-log queries, VPC flow log queries) parse and run unchanged.

mod common;

use common::*;
use quarry_model::{flatten_json, Fields, Value};
use quarry_query::{parse_query, Pipeline};
use serde_json::json;

/// A flattened JSON record as a row.
fn json_row(secs: i64, stream: &str, v: serde_json::Value) -> R {
    let mut fields = Fields::new();
    flatten_json("", &v, &mut fields);
    let mut r: R = vec![
        ("@timestamp".into(), Value::Int(T0 + secs * 1_000_000_000)),
        ("@message".into(), Value::from(v.to_string().as_str())),
        ("@logStream".into(), Value::from(stream)),
    ];
    r.extend(fields.iter().map(|(k, v)| (k.to_string(), v.clone())));
    r
}

fn audit(secs: i64, verb: &str, resource: &str, user: &str, code: i64, ips: &[&str]) -> R {
    json_row(
        secs,
        "kube-apiserver-audit-0123",
        json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete",
            "verb": verb,
            "user": {"username": user, "groups": ["system:authenticated"]},
            "sourceIPs": ips,
            "objectRef": {"resource": resource, "namespace": "kube-system", "name": if resource == "configmaps" { "aws-auth" } else { "x" }},
            "responseStatus": {"code": code},
            "annotations": {"authorization.k8s.io/decision": if code < 300 { "allow" } else { "forbid" }}
        }),
    )
}

/// EKS audit events, newest first.
fn audit_rows() -> Vec<R> {
    vec![
        audit(
            100,
            "create",
            "clusterrolebindings",
            "admin",
            201,
            &["10.0.0.5"],
        ),
        audit(
            90,
            "get",
            "namespaces",
            "system:anonymous",
            403,
            &["203.0.113.9", "10.1.1.1"],
        ),
        audit(80, "get", "secrets", "bob", 401, &["10.0.0.6"]),
        audit(70, "update", "configmaps", "admin", 200, &["10.0.0.5"]),
        audit(
            60,
            "get",
            "version",
            "system:anonymous",
            200,
            &["203.0.113.10"],
        ),
        audit(50, "delete", "roles", "admin", 200, &["10.0.0.5"]),
        audit(
            40,
            "create",
            "validatingwebhookconfigurations",
            "admin",
            201,
            &["10.0.0.5"],
        ),
        audit(
            30,
            "list",
            "pods",
            "system:anonymous",
            401,
            &["198.51.100.7"],
        ),
        audit(20, "list", "pods", "alice", 200, &["10.0.0.7"]),
        audit(10, "list", "secrets", "eve", 401, &["10.0.0.8"]),
    ]
}

/// VPC flow log records as Logs Insights discovers them, newest first.
fn vpc_rows() -> Vec<R> {
    let rec = |secs: i64,
               src: &str,
               dst: &str,
               sport: i64,
               dport: i64,
               proto: i64,
               packets: i64,
               bytes: i64,
               action: &str,
               status: &str| {
        let msg = format!(
            "2 123456789010 eni-0123456789abcdef0 {src} {dst} {sport} {dport} {proto} {packets} {bytes} 1620140761 1620140821 {action} {status}"
        );
        let mut r = row(secs, &msg, &[]);
        for (k, v) in [
            ("version", i(2)),
            ("accountId", s("123456789010")),
            ("interfaceId", s("eni-0123456789abcdef0")),
            ("srcAddr", s(src)),
            ("dstAddr", s(dst)),
            ("srcPort", i(sport)),
            ("dstPort", i(dport)),
            ("protocol", i(proto)),
            ("packets", i(packets)),
            ("bytes", i(bytes)),
            ("action", s(action)),
            ("logStatus", s(status)),
            ("logStream", s("vpc-flow-logs")),
        ] {
            r.push((k.to_string(), v));
        }
        r
    };
    vec![
        rec(
            3700,
            "192.0.2.1",
            "10.0.0.1",
            443,
            49152,
            6,
            10,
            840,
            "ACCEPT",
            "OK",
        ),
        rec(
            3650,
            "192.0.2.1",
            "10.0.0.1",
            443,
            49153,
            6,
            5,
            420,
            "ACCEPT",
            "OK",
        ),
        rec(
            3600,
            "198.51.100.2",
            "10.0.0.1",
            22,
            22,
            6,
            1,
            40,
            "REJECT",
            "OK",
        ),
        rec(
            1200,
            "198.51.100.2",
            "10.0.0.2",
            3389,
            3389,
            6,
            1,
            40,
            "REJECT",
            "OK",
        ),
        rec(
            1100,
            "192.0.2.7",
            "10.0.0.2",
            53,
            53,
            17,
            2,
            120,
            "ACCEPT",
            "OK",
        ),
        rec(
            1000,
            "203.0.113.5",
            "10.0.0.1",
            80,
            80,
            6,
            1,
            40,
            "REJECT",
            "OK",
        ),
        rec(900, "-", "-", 0, 0, 0, 0, 0, "-", "SKIPDATA"),
        rec(
            800,
            "192.0.2.1",
            "10.0.0.1",
            443,
            49152,
            6,
            20,
            1680,
            "ACCEPT",
            "OK",
        ),
    ]
}

fn misc_rows() -> Vec<R> {
    vec![
        row(
            7300,
            "java.lang.NullPointerException at Foo",
            &[
                ("server", s("a")),
                ("severity", s("hi")),
                ("message", s("npe")),
            ],
        ),
        row(
            7200,
            "user=bob, action=login",
            &[
                ("server", s("b")),
                ("severity", s("lo")),
                ("message", s("ok")),
            ],
        ),
        row(
            3700,
            "IllegalStateException: boom",
            &[
                ("server", s("a")),
                ("severity", s("lo")),
                ("message", s("ise")),
            ],
        ),
        row(3500, "user=bob, action=logout", &[]),
        row(
            100,
            "user=eve, action=login",
            &[
                ("@type", s("REPORT")),
                ("@duration", f(1500.5)),
                ("@requestId", s("r1")),
                ("@memorySize", i(128_000_000)),
                ("@maxMemoryUsed", i(64_000_000)),
            ],
        ),
        row(
            90,
            "REPORT RequestId: r1",
            &[
                ("@type", s("REPORT")),
                ("@duration", f(1200.0)),
                ("@requestId", s("r1")),
                ("@memorySize", i(128_000_000)),
                ("@maxMemoryUsed", i(96_000_000)),
            ],
        ),
        row(
            80,
            "user=ann, method:GET, latency := 30",
            &[("type", s("REPORT"))],
        ),
        row(70, "user=ann, method:GET, latency := 50", &[]),
        row(60, "2024-05-01 [ERROR] disk full", &[]),
        row(50, "2024-05-01 [INFO] started", &[]),
        row(40, "1620140761.123 GET TCP_MISS/200 example.com:443", &[]),
    ]
}

/// Every example query, as published (only `x.x.x.x`-style placeholders left as they are).
const EXAMPLES: &[&str] = &[
    // Query syntax page.
    "fields `foo-bar`, action, abs(f3-f4)",
    "fields f1, f2, f3 | filter (duration>2000)",
    "filter (duration>2000)",
    "fields f1, f2 | filter (f1=10 or f3>25)",
    r"fields f1 | filter statusCode like /2\d\d/",
    "stats avg (f1) by f2",
    "fields f1, f2, f3 | sort f1 desc",
    "fields f1, f2 | sort @timestamp desc | limit 25",
    "parse @message \"user=*, method:*, latency := *\" as @user,\n    @method, @latency | stats avg(@latency) by @method,\n    @user",
    r"parse @message /(?<time>[0-9]{10}\.[0-9]{1,3}) .* (?<code>[A-Z_]+\/[0-9]{3}) (?<url>[a-zA-Z.]+:[0-9]{1,5})/",
    "fields f1, f2, f3 | filter f1 like /Exception/",
    "fields f1, f2, f3 | filter f1 =~ /Exception/",
    "fields f1, f2, f3 | filter f1 like \"Exception\"",
    "fields f1, f2, f3 | filter f1 like /(?i)Exception/ ",
    "fields f1, f2, f3 | filter f1 =~ /^(?i)Exception$/",
    "fields abs(myField) as AbsoluteValuemyField, myField2",
    "stats avg(f1) as myAvgF1 | sort myAvgF1 desc",
    // General sample queries.
    "fields @timestamp, @message | sort @timestamp desc | limit 25",
    "filter @message like /Exception/ \n    | stats count(*) as exceptionCount by bin(1h)\n    | sort exceptionCount desc",
    "fields @message | filter @message not like /Exception/",
    "fields @timestamp, server, severity, message\n| sort @timestamp asc\n| dedup server",
    "fields @timestamp, server, severity, message\n| sort @timestamp desc\n| dedup server, severity",
    // Lambda.
    "filter @type = \"REPORT\"\n    | stats max(@memorySize / 1000 / 1000) as provisonedMemoryMB,\n        min(@maxMemoryUsed / 1000 / 1000) as smallestMemoryRequestMB,\n        avg(@maxMemoryUsed / 1000 / 1000) as avgMemoryUsedMB,\n        max(@maxMemoryUsed / 1000 / 1000) as maxMemoryUsedMB,\n        provisonedMemoryMB - maxMemoryUsedMB as overProvisionedMB",
    "filter @type = \"REPORT\" |\n    stats avg(@duration), max(@duration), min(@duration) by bin(5m)",
    "filter type = \"REPORT\" |\nstats avg(@duration), max(@duration), min(@duration) by bin(5m)",
    "fields @timestamp, @requestId, @message, @logStream\n| filter @type = \"REPORT\" and @duration > 1000\n| sort @timestamp desc\n| dedup @requestId\n| limit 20",
    // VPC flow logs.
    "stats sum(packets) as packetsTransferred by srcAddr, dstAddr\n    | sort packetsTransferred  desc\n    | limit 15",
    "filter srcAddr= \"192.0.2.0/24\"\n| stats sum(bytes) as bytesTransferred by dstAddr\n| sort bytesTransferred  desc\n| limit 15",
    "filter isIpv4InSubnet(srcAddr, \"192.0.2.0/24\")\n    | stats sum(bytes) as bytesTransferred by dstAddr\n    | sort bytesTransferred desc\n    | limit 15",
    "filter isIpInSubnet(srcAddr, \"192.0.2.0/24\") | stats sum(bytes) by dstAddr",
    "filter protocol=17 | stats count(*) by srcAddr",
    "filter logStatus=\"SKIPDATA\"\n    | stats count(*) by bin(1h) as t\n    | sort t",
    "fields @timestamp, srcAddr, dstAddr, srcPort, dstPort, protocol, bytes\n| filter logStream = 'vpc-flow-logs' and interfaceId = 'eni-0123456789abcdef0'\n| sort @timestamp desc\n| dedup srcAddr, dstAddr, srcPort, dstPort, protocol\n| limit 20",
    "filter action=\"REJECT\" | stats count(*) as numRejections by srcAddr | sort numRejections desc | limit 20",
    "stats count(*) by bin(5m)",
    "parse @message \"* * * * * * * * * * * * * * * * * * * * * * * * * * *\" as account_id, vpc_id, subnet_id, interface_id,instance_id, srcaddr, srcport, dstaddr, dstport, protocol, packets, bytes, action, log_status, start, end, flow_direction, traffic_path, tcp_flags, pkt_srcaddr, pkt_src_aws_service, pkt_dstaddr, pkt_dst_aws_service, region, az_id, sublocation_type, sublocation_id\n| sort start desc\n| limit 2",
    // NAT gateway.
    "filter (dstAddr like 'x.x.x.x' and srcAddr like 'y.y.')\n| stats sum(bytes) as bytesTransferred by srcAddr, dstAddr\n| sort bytesTransferred desc\n| limit 10",
    "filter (dstAddr like 'x.x.x.x' and srcAddr like 'y.y.') or (srcAddr like 'xxx.xx.xx.xx' and dstAddr like 'y.y.')\n| stats sum(bytes) as bytesTransferred by srcAddr, dstAddr\n| sort bytesTransferred desc\n| limit 10",
    "filter (srcAddr like 'x.x.x.x' and dstAddr not like 'y.y.')\n| stats sum(bytes) as bytesTransferred by srcAddr, dstAddr\n| sort bytesTransferred desc\n| limit 10",
    "filter (dstAddr like 'x.x.x.x' and srcAddr not like 'y.y.')\n| stats sum(bytes) as bytesTransferred by srcAddr, dstAddr\n| sort bytesTransferred desc\n| limit 10",
    // Route 53.
    "stats count(*) by queryType, bin(1h)",
    "stats count(*) as numRequests by resolverIp\n    | sort numRequests desc\n    | limit 10",
    "filter responseCode=\"SERVFAIL\" | stats count(*) by queryName",
    // CloudTrail.
    "stats count(*) by eventSource, eventName, awsRegion",
    "filter (eventName=\"StartInstances\" or eventName=\"StopInstances\") and awsRegion=\"us-east-2\"",
    "filter eventName=\"CreateUser\"\n    | fields awsRegion, requestParameters.userName, responseElements.user.arn",
    "filter eventName=\"UpdateTrail\" and ispresent(errorCode)\n    | stats count(*) by errorCode, errorMessage",
    "filter tlsDetails.tlsVersion in [ \"TLSv1\", \"TLSv1.1\" ]\n| stats count(*) as numOutdatedTlsCalls by userIdentity.accountId, recipientAccountId, eventSource, eventName, awsRegion, tlsDetails.tlsVersion, tlsDetails.cipherSuite, userAgent\n| sort eventSource, eventName, awsRegion, tlsDetails.tlsVersion",
    "filter tlsDetails.tlsVersion in [ \"TLSv1\", \"TLSv1.1\" ]\n| stats count(*) as numOutdatedTlsCalls by eventSource\n| sort numOutdatedTlsCalls desc",
    // API Gateway.
    "fields @timestamp, status, ip, path, httpMethod\n| filter status>=400 and status<=499\n| sort @timestamp desc\n| limit 10",
    "fields @timestamp, status, ip, path, httpMethod, responseLatency\n| sort responseLatency desc\n| limit 10",
    "stats count(*) as requestCount by path\n| sort requestCount desc\n| limit 10",
    "filter status=200\n| stats avg(integrationLatency), max(integrationLatency),\nmin(integrationLatency) by bin(1m)",
    // Apache.
    "fields @timestamp, remoteIP, request, status, filename| sort @timestamp desc\n| filter filename=\"/var/www/html/admin\"\n| limit 20",
    "fields @timestamp, function, process, message\n| filter message like \"resuming normal operations\"\n| sort @timestamp desc\n| limit 20",
    // EventBridge.
    "fields @timestamp, @message\n| stats count(*) as numberOfEvents by `detail-type`\n| sort numberOfEvents desc",
    // Parse examples.
    "parse @message /user=(?<user2>.*?), method:(?<method2>.*?),\n    latency := (?<latency2>.*?)/ | stats avg(latency2) by @method2,\n    @user2",
    "FIELDS @message\n    | PARSE @message \"* [*] *\" as loggingTime, loggingType, loggingMessage\n    | FILTER loggingType IN [\"ERROR\", \"INFO\"]\n    | DISPLAY loggingMessage, loggingType = \"ERROR\" as isError",
    "parse @message \"user=*, action=*\" as user, action | stats count(*) by user, action",
    // EKS audit logs (EKS best-practices guide, detective controls).
    "filter objectRef.resource=\"clusterrolebindings\" and verb in [\"create\",\"update\",\"patch\",\"delete\"]",
    "fields @timestamp, @message, sourceIPs.0 | filter user.username=\"system:anonymous\" and responseStatus.code in [\"401\",\"403\"]",
    "fields @timestamp, @message\n| filter @logStream like \"kube-apiserver-audit\"\n| filter verb in [\"update\", \"patch\"]\n| filter objectRef.resource = \"configmaps\" and objectRef.name = \"aws-auth\" and objectRef.namespace = \"kube-system\"\n| sort @timestamp desc",
    "fields @timestamp, @message\n| filter @logStream like \"kube-apiserver-audit\"\n| filter verb in [\"create\", \"update\", \"patch\"] and responseStatus.code = 201\n| filter objectRef.resource = \"validatingwebhookconfigurations\"\n| sort @timestamp desc",
    "fields @timestamp, @message\n| sort @timestamp desc\n| limit 100\n| filter objectRef.resource=\"roles\" and verb in [\"create\", \"update\", \"patch\", \"delete\"]",
    "fields @timestamp, @message\n| sort @timestamp desc\n| limit 100\n| filter objectRef.resource=\"rolebindings\" and verb in [\"create\", \"update\", \"patch\", \"delete\"]",
    "fields @timestamp, @message\n| sort @timestamp desc\n| limit 100\n| filter objectRef.resource=\"clusterroles\" and verb in [\"create\", \"update\", \"patch\", \"delete\"]",
    "fields @timestamp, @message\n| sort @timestamp desc\n| limit 100\n| filter objectRef.resource=\"clusterrolebindings\" and verb in [\"create\", \"update\", \"patch\", \"delete\"]",
    "fields @timestamp, @message\n| sort @timestamp desc\n| limit 100\n| filter objectRef.resource=\"secrets\" and verb in [\"get\", \"watch\", \"list\"] and responseStatus.code=\"401\"\n| stats count() by bin(1m)",
    "fields @timestamp, @message, sourceIPs.0\n| sort @timestamp desc\n| limit 100\n| filter user.username=\"system:anonymous\" and responseStatus.code in [\"401\", \"403\"]",
    "fields @timestamp, @message\n| sort @timestamp desc\n| limit 100\n| filter objectRef.resource=\"secrets\"\n| stats count() by bin(1m)",
    "fields @timestamp, @message | filter @logStream like /audit/ | sort @timestamp desc | limit 200",
    "filter `annotations.authorization.k8s.io/decision` = \"forbid\" | stats count(*) by user.username",
];

fn all_rows() -> Vec<R> {
    let mut rows: Vec<R> = audit_rows()
        .into_iter()
        .chain(vpc_rows())
        .chain(misc_rows())
        .collect();
    // Newest first overall.
    rows.sort_by_key(|r| match r[0].1 {
        Value::Int(t) => -t,
        _ => 0,
    });
    rows
}

#[test]
fn every_example_parses_and_runs() {
    let rows = all_rows();
    for text in EXAMPLES {
        let q = parse_query(text).unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"));
        let mut p = Pipeline::with_options(&q, opts()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        for r in &rows {
            p.push(r).unwrap();
        }
        let t = p.finish().unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(!t.columns.is_empty(), "{text:?}");
    }
    assert!(EXAMPLES.len() >= 60);
}

#[test]
fn eks_clusterrolebinding_changes() {
    let t = run(
        "filter objectRef.resource=\"clusterrolebindings\" and verb in [\"create\",\"update\",\"patch\",\"delete\"]",
        &audit_rows(),
    );
    assert_eq!(col(&t, "@timestamp"), [s("2024-05-01 12:01:40.000")]);
}

#[test]
fn eks_failed_anonymous_requests() {
    for text in [
        "fields @timestamp, @message, sourceIPs.0 | filter user.username=\"system:anonymous\" and responseStatus.code in [\"401\",\"403\"]",
        "fields @timestamp, @message, sourceIPs.0\n| sort @timestamp desc\n| limit 100\n| filter user.username=\"system:anonymous\" and responseStatus.code in [\"401\", \"403\"]",
    ] {
        let t = run(text, &audit_rows());
        assert_eq!(t.columns, ["@timestamp", "@message", "sourceIPs.0"]);
        assert_eq!(col(&t, "sourceIPs.0"), [s("203.0.113.9"), s("198.51.100.7")], "{text}");
    }
    // `limit` before `filter` applies to the matches: the newest one anonymous failure.
    let t = run(
        "sort @timestamp desc | limit 1 | filter user.username=\"system:anonymous\" and responseStatus.code in [\"401\", \"403\"]",
        &audit_rows(),
    );
    assert_eq!(col(&t, "@timestamp"), [s("2024-05-01 12:01:30.000")]);
}

#[test]
fn eks_other_audit_queries() {
    let rows = audit_rows();
    let count = |i: usize| {
        run(
            EXAMPLES
                .iter()
                .filter(|q| q.contains("objectRef"))
                .nth(i)
                .unwrap(),
            &rows,
        )
    };
    // aws-auth updates, webhook creations, role changes.
    assert_eq!(count(1).rows.len(), 1);
    assert_eq!(count(2).rows.len(), 1);
    assert_eq!(count(3).rows.len(), 1);
    let t = run(
        "fields @timestamp, @message\n| sort @timestamp desc\n| limit 100\n| filter objectRef.resource=\"secrets\" and verb in [\"get\", \"watch\", \"list\"] and responseStatus.code=\"401\"\n| stats count() by bin(1m)",
        &rows,
    );
    assert_eq!(t.columns, ["bin(1m)", "count()"]);
    assert_eq!(
        t.rows,
        [
            vec![s("2024-05-01 12:01:00.000"), i(1)],
            vec![s("2024-05-01 12:00:00.000"), i(1)]
        ]
    );
    let t = run(
        "filter `annotations.authorization.k8s.io/decision` = \"forbid\" | stats count(*) as n by user.username | sort n desc",
        &rows,
    );
    assert_eq!(
        col(&t, "user.username"),
        [s("system:anonymous"), s("bob"), s("eve")]
    );
    assert_eq!(col(&t, "n"), [i(2), i(1), i(1)]);
    let t = run("unnest sourceIPs into ip | filter not isIpInSubnet(ip, '10.0.0.0/8') | stats count_distinct(ip) as external", &rows);
    assert_eq!(t.rows, [vec![i(3)]]);
}

#[test]
fn vpc_top_talkers() {
    let t = run(
        "stats sum(packets) as packetsTransferred by srcAddr, dstAddr | sort packetsTransferred desc | limit 15",
        &vpc_rows(),
    );
    assert_eq!(t.columns, ["srcAddr", "dstAddr", "packetsTransferred"]);
    assert_eq!(t.rows[0], vec![s("192.0.2.1"), s("10.0.0.1"), i(35)]);
    assert_eq!(t.rows.len(), 6);
    let t = run(
        "filter action=\"REJECT\" | stats count(*) as numRejections by srcAddr | sort numRejections desc | limit 20",
        &vpc_rows(),
    );
    assert_eq!(
        t.rows,
        [vec![s("198.51.100.2"), i(2)], vec![s("203.0.113.5"), i(1)]]
    );
    let t = run(
        "filter isIpInSubnet(srcAddr, \"192.0.2.0/24\") | stats sum(bytes) by dstAddr",
        &vpc_rows(),
    );
    assert_eq!(t.columns, ["dstAddr", "sum(bytes)"]);
    assert_eq!(
        t.rows,
        [vec![s("10.0.0.1"), i(2940)], vec![s("10.0.0.2"), i(120)]]
    );
    let t = run(
        "filter protocol=17 | stats count(*) by srcAddr",
        &vpc_rows(),
    );
    assert_eq!(t.rows, [vec![s("192.0.2.7"), i(1)]]);
    let t = run(
        "filter logStatus=\"SKIPDATA\"\n | stats count(*) by bin(1h) as t\n | sort t",
        &vpc_rows(),
    );
    assert_eq!(t.rows, [vec![s("2024-05-01 12:00:00.000"), i(1)]]);
    let t = run(
        EXAMPLES
            .iter()
            .find(|q| q.contains("dedup srcAddr"))
            .unwrap(),
        &vpc_rows(),
    );
    assert_eq!(
        t.rows.len(),
        7,
        "the two identical 192.0.2.1:443 -> 49152 flows collapse"
    );
    let t = run("stats count(*) by bin(5m)", &vpc_rows());
    assert_eq!(t.rows.len(), 4);
    assert_eq!(t.rows[0], vec![s("2024-05-01 13:00:00.000"), i(3)]);
    assert_eq!(t.rows[2], vec![s("2024-05-01 12:15:00.000"), i(3)]);
}

#[test]
fn general_examples_give_the_documented_answers() {
    let rows = misc_rows();
    let t = run(
        "fields @timestamp, @message | sort @timestamp desc | limit 25",
        &rows,
    );
    assert_eq!(t.rows.len(), rows.len());
    assert_eq!(t.rows[0][0], s("2024-05-01 14:01:40.000"));
    let t = run(
        "filter @message like /Exception/ | stats count(*) as exceptionCount by bin(1h) | sort exceptionCount desc",
        &rows,
    );
    assert_eq!(
        t.rows,
        [
            vec![s("2024-05-01 14:00:00.000"), i(1)],
            vec![s("2024-05-01 13:00:00.000"), i(1)]
        ]
    );
    let t = run(
        "parse @message \"user=*, action=*\" as user, action | stats count(*) by user, action",
        &rows,
    );
    assert_eq!(
        t.rows,
        [
            vec![Value::Null, Value::Null, i(8)],
            vec![s("bob"), s("login"), i(1)],
            vec![s("bob"), s("logout"), i(1)],
            vec![s("eve"), s("login"), i(1)],
        ]
    );
    let t = run(
        EXAMPLES
            .iter()
            .find(|q| q.contains("provisonedMemoryMB"))
            .unwrap(),
        &rows,
    );
    assert_eq!(
        t.columns,
        [
            "provisonedMemoryMB",
            "smallestMemoryRequestMB",
            "avgMemoryUsedMB",
            "maxMemoryUsedMB",
            "overProvisionedMB"
        ]
    );
    assert_eq!(t.rows, [vec![i(128), i(64), f(80.0), i(96), i(32)]]);
    let t = run(
        EXAMPLES
            .iter()
            .find(|q| q.contains("dedup @requestId"))
            .unwrap(),
        &rows,
    );
    assert_eq!(col(&t, "@requestId"), [s("r1")]);
    let t = run(
        EXAMPLES.iter().find(|q| q.contains("DISPLAY")).unwrap(),
        &rows,
    );
    assert_eq!(t.columns, ["loggingMessage", "isError"]);
    assert_eq!(
        t.rows,
        [
            vec![s("disk full"), Value::Bool(true)],
            vec![s("started"), Value::Bool(false)]
        ]
    );
    let t = run(
        EXAMPLES
            .iter()
            .find(|q| q.contains("TCP_MISS") || q.contains("(?<time>"))
            .unwrap(),
        &rows,
    );
    let hit = t
        .rows
        .iter()
        .find(|r| r.contains(&s("TCP_MISS/200")))
        .expect("squid line parsed");
    assert!(hit.contains(&s("example.com:443")) && hit.contains(&s("1620140761.123")));
    let t = run(
        "parse @message \"user=*, method:*, latency := *\" as @user, @method, @latency | stats avg(@latency) by @method, @user",
        &rows,
    );
    let get = t.rows.iter().find(|r| r[0] == s("GET")).expect("GET group");
    assert_eq!(get, &vec![s("GET"), s("ann"), f(40.0)]);
}
