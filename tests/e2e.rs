//! End to end: a real server, the shared data imported through the CLI, queries over HTTP and the CLI,
//! and the API's answers to bad requests.

mod common;

use common::{post, quarry, query, run_ok, Server};
use quarry_transport::IngestParams;
use std::io::Write;

const DATA: &str = "../shared/data";

#[test]
fn import_shared_data_and_hunt_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--commit-interval", "200ms"]);
    let url = server.url.clone();

    // Import everything in the shared data folder through the CLI.
    let out = quarry()
        .args(["import", "--server", &url, "--cluster", "shared"])
        .arg(DATA)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported") && stdout.contains("audit"),
        "{stdout}"
    );
    // Importing again stores nothing new.
    let again = quarry()
        .args(["import", "--server", &url, "--cluster", "shared"])
        .arg(DATA)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already stored"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    std::thread::sleep(std::time::Duration::from_millis(600));

    // The AWS documentation's example queries, unchanged.
    let rows = query(
        &url,
        r#"filter objectRef.resource="clusterrolebindings" and verb in ["create","update","patch","delete"]"#,
    );
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["@message"]
        .as_str()
        .unwrap()
        .contains("clusterrolebindings")));
    let rows = query(
        &url,
        r#"fields @timestamp, @message, sourceIPs.0 | filter user.username="system:anonymous" and responseStatus.code in ["401","403"]"#,
    );
    for r in &rows {
        assert!(r["@message"].as_str().unwrap().contains("system:anonymous"));
    }
    let rows = query(&url, "stats sum(packets) as packetsTransferred by srcAddr, dstAddr | sort packetsTransferred desc | limit 15");
    assert!(!rows.is_empty() && rows.len() <= 15);
    let p: Vec<i64> = rows
        .iter()
        .map(|r| r["packetsTransferred"].as_i64().unwrap())
        .collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]), "{p:?}");
    let rows = query(
        &url,
        r#"filter action="REJECT" | stats count(*) as numRejections by srcAddr | sort numRejections desc | limit 20"#,
    );
    assert!(!rows.is_empty());

    // Every loghub line is there.
    let rows = query(
        &url,
        r#"filter kubernetes.cluster = "shared" | stats count(*) as n"#,
    );
    assert!(rows[0]["n"].as_i64().unwrap() > 32_000, "{rows:?}");
    let rows = query(
        &url,
        r#"search "LabSZ" | filter @source = "syslog" | stats count(*) as n"#,
    );
    assert_eq!(rows[0]["n"].as_i64().unwrap(), 2000);

    // The CLI prints one JSON array of row objects.
    let out = quarry()
        .args([
            "query",
            "--server",
            &url,
            "--format",
            "json",
            "stats count(*) as n by @source | sort n desc",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert!(
        arr.iter().any(|r| r["@source"] == "audit")
            && arr.iter().any(|r| r["@source"] == "vpcflow")
    );

    // The CLI can read the data directory while the server runs (what is committed).
    let out = run_ok(
        quarry()
            .args(["query", "--data-dir"])
            .arg(dir.path())
            .args([
                "--format",
                "csv",
                r#"filter @source = "cloudtrail" | stats count(*) as n"#,
            ]),
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.lines().next() == Some("n")
            && csv.lines().nth(1).unwrap().parse::<u64>().unwrap() >= 300,
        "{csv}"
    );

    // A query error names line and column, over HTTP and in the CLI.
    let (code, body) = post(
        &format!("{url}/api/v1/query"),
        &[],
        br#"{"query": "filter verb =\n| limit 5"}"#,
    );
    assert_eq!(code, 400);
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(2), Some(1)),
        "{body}"
    );
    let out = quarry()
        .args(["query", "--data-dir"])
        .arg(dir.path().join("typo"))
        .arg("stats count(*)")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Quarry data directory"));
    assert!(
        !dir.path().join("typo").exists(),
        "a mistyped data directory must not be created"
    );
    let out = quarry()
        .args(["query", "--server", &url, "stats count(*) by"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1, column"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop();
}

#[test]
fn ingest_api_answers_and_refuses_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--commit-interval", "100ms"]);
    let url = server.url.clone();
    let ingest = format!("{url}/api/v1/ingest");
    let lines = b"2024-05-01T12:00:00Z one\n2024-05-01T12:00:01Z two\nthree\n";

    // Plain, gzip and zstd bodies.
    let (code, body) = post(&format!("{ingest}?kind=text&namespace=ns1"), &[], lines);
    assert_eq!(code, 200, "{body}");
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["events"], 3);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(lines).unwrap();
    let (code, body) = post(
        &format!("{ingest}?kind=text"),
        &["Content-Encoding: gzip"],
        &gz.finish().unwrap(),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(
        &format!("{ingest}?kind=text"),
        &["Content-Encoding: zstd"],
        &zstd::bulk::compress(lines, 3).unwrap(),
    );
    assert_eq!(code, 200, "{body}");

    // Malformed JSON lines are kept as raw text with a parse-error flag and counted.
    let (code, body) = post(
        &format!("{ingest}?kind=json&format=json"),
        &[],
        b"{\"a\": 1}\n{not json\n{\"a\": 2}\n",
    );
    assert_eq!(code, 200, "{body}");
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (r["events"].as_u64(), r["parse_errors"].as_u64()),
        (Some(3), Some(1))
    );

    // A retried batch is stored once (by batch id, and by source sequence).
    let client = server.client();
    let params = IngestParams {
        kind: Some(quarry_model::Kind::Text),
        batch_id: Some("retry-1".into()),
        ..IngestParams::default()
    };
    assert!(!client.ingest(&params, b"retried line\n").unwrap().duplicate);
    assert!(client.ingest(&params, b"retried line\n").unwrap().duplicate);
    let seq = |n| IngestParams {
        kind: Some(quarry_model::Kind::Text),
        source_id: Some("node-1:/var/log/x".into()),
        seq: Some(n),
        ..IngestParams::default()
    };
    assert!(
        !client
            .ingest(&seq(7), b"sequenced line\n")
            .unwrap()
            .duplicate
    );
    assert!(
        client
            .ingest(&seq(7), b"sequenced line\n")
            .unwrap()
            .duplicate
    );
    assert!(
        !client
            .ingest(&seq(8), b"sequenced line\n")
            .unwrap()
            .duplicate
    );

    // Bad requests get a 4xx with a message.
    for (q, headers, body, want, says) in [
        (
            "?kind=nginx",
            vec![],
            &b"x\n"[..],
            400,
            "unknown variant `nginx`",
        ),
        ("?format=apache", vec![], &b"x\n"[..], 400, "format"),
        (
            "?seq=minus-one",
            vec![],
            &b"x\n"[..],
            400,
            "bad ingest parameters",
        ),
        (
            "",
            vec!["Content-Encoding: br"],
            &b"x\n"[..],
            415,
            "Content-Encoding",
        ),
        (
            "",
            vec!["Content-Encoding: zstd"],
            &b"definitely not zstd"[..],
            400,
            "decompress",
        ),
        (
            "?format=quarry",
            vec![],
            &b"{\"ts\": 1}\n"[..],
            400,
            "line 1",
        ),
    ] {
        let (code, body) = post(&format!("{ingest}{q}"), &headers, body);
        assert_eq!(code, want, "{q} {headers:?}: {body}");
        assert!(body.contains(says), "{q}: {body}");
    }
    let (code, body) = post(&format!("{url}/api/v1/query"), &[], b"not json");
    assert_eq!(code, 400);
    assert!(body.contains("expected JSON"), "{body}");
    let (code, _) = post(&format!("{url}/api/v1/nothing"), &[], b"");
    assert_eq!(code, 404);

    std::thread::sleep(std::time::Duration::from_millis(400));
    let rows = query(&url, "stats count(*) as n");
    assert_eq!(rows[0]["n"], 3 + 3 + 3 + 3 + 1 + 2);
    let rows = query(
        &url,
        r#"filter kubernetes.namespace = "ns1" | fields @message | sort @message asc"#,
    );
    let msgs: Vec<&str> = rows
        .iter()
        .map(|r| r["@message"].as_str().unwrap())
        .collect();
    assert_eq!(
        msgs,
        [
            "2024-05-01T12:00:00Z one",
            "2024-05-01T12:00:01Z two",
            "three"
        ]
    );
    let rows = query(
        &url,
        "filter ispresent(@parseError) | fields @message, @parseError",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["@message"], "{not json");

    let metrics = common::get(&format!("{url}/metrics"));
    assert!(
        metrics.contains("quarry_ingest_duplicate_batches_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("quarry_ingest_parse_errors_total 1"),
        "{metrics}"
    );
    server.stop();
}

#[test]
fn a_configuration_file_sets_defaults_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let data = dir.path().join("data");
    let cfg = dir.path().join("quarry.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\ncommit_interval = \"500ms\"\n[retention]\naudit = \"2190d\"\ncontainer = \"30d\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let mut child = quarry()
        .args(["server", "--insecure", "--log", "warn", "--config"])
        .arg(&cfg)
        .spawn()
        .unwrap();
    let client = quarry_transport::Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let started = std::time::Instant::now();
    while !client.healthy() {
        assert!(
            started.elapsed().as_secs() < 60,
            "server from the configuration file did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(data.join("wal").is_dir());
    let _ = child.kill();
    let _ = child.wait();

    std::fs::write(&cfg, "data_dir = \"/tmp/x\"\nretention_days = 3\n").unwrap();
    let out = quarry()
        .args(["server", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown setting \"retention_days\"") && err.contains("retention_size"),
        "{err}"
    );
}

/// Retention through the server: a kind's age, a namespace kept longer and one deleted sooner, applied
/// on the server's own cadence, counted in /metrics and recorded in the digest chain.
#[test]
fn the_server_applies_retention_per_kind_and_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--commit-interval",
            "100ms",
            "--retention",
            "container=30d",
            "--retention-namespace",
            "dev=7d,payments=3650d",
            "--retention-interval",
            "200ms",
        ],
    );
    let day = 86_400 * 1_000_000_000i64;
    let now = quarry_model::time::now_nanos();
    for ns in ["web", "dev", "payments"] {
        let lines: String = [1, 10, 40]
            .iter()
            .map(|age| {
                let ts = quarry_model::time::format_rfc3339_nanos(now - age * day);
                format!("{ts} stdout F {ns} line from {age} days ago\n")
            })
            .collect();
        let url = format!(
            "{}/api/v1/ingest?kind=container&namespace={ns}&pod=p&container=c",
            server.url
        );
        let (code, body) = post(&url, &[], lines.as_bytes());
        assert_eq!(code, 200, "{body}");
    }
    // dev keeps 1 day of 3 (7 days), web 2 (its kind's 30 days), payments all 3 (ten years).
    let expected = [("dev", 1), ("payments", 3), ("web", 2)];
    let counts = || -> Vec<(String, u64)> {
        let mut c: Vec<(String, u64)> =
            query(&server.url, "stats count(*) as n by kubernetes.namespace")
                .iter()
                .map(|r| {
                    (
                        r["kubernetes.namespace"].as_str().unwrap().to_string(),
                        r["n"].as_u64().unwrap(),
                    )
                })
                .collect();
        c.sort();
        c
    };
    let started = std::time::Instant::now();
    let want: Vec<(String, u64)> = expected.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    while counts() != want {
        assert!(
            started.elapsed().as_secs() < 30,
            "retention did not run: {:?}",
            counts()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let metrics = common::get(&format!("{}/metrics", server.url));
    for line in [
        "quarry_retention_deleted_partitions_total 3",
        "quarry_retention_namespace_deleted_partitions_total 2",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    server.stop();
    run_ok(quarry().args(["verify", "--data-dir"]).arg(dir.path()));
}
