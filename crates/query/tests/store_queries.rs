//! Queries over a real store must give exactly what the in-memory pipeline gives over the same events:
//! the index and the columns may only speed a query up, never change its answer.

use quarry_model::time::parse_rfc3339;
use quarry_model::{Event, Kind, Source, Value};
use quarry_parse::{Decoder, Format};
use quarry_query::{run, run_query, RunOptions, Table};
use quarry_store::wal::BatchKey;
use quarry_store::{Store, StoreConfig};
use std::path::Path;

const DATA: &str = "../../../shared/data";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    rows: Vec<Vec<(String, Value)>>,
}

fn row(source: &Source, e: &Event) -> Vec<(String, Value)> {
    let mut r = vec![
        ("@timestamp".to_string(), Value::Int(e.ts)),
        ("@message".to_string(), Value::Str(e.message().to_string())),
        (
            "@source".to_string(),
            Value::Str(source.kind.as_str().to_string()),
        ),
    ];
    r.extend(
        source
            .coordinates()
            .map(|(k, v)| (k.to_string(), Value::Str(v.to_string()))),
    );
    if let Some(err) = &e.parse_error {
        r.push(("@parseError".to_string(), Value::Str(err.clone())));
    }
    r.extend(e.fields.iter().map(|(k, v)| (k.to_string(), v.clone())));
    r
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // The container logs' namespace has a retention rule of its own, so they are in partitions of its
    // own, which queries read alongside the shared ones.
    let mut cfg = StoreConfig::new(dir.path());
    cfg.retention.namespace_age_ns = [("core".to_string(), i64::MAX)].into_iter().collect();
    let store = Store::open(cfg).unwrap();
    let now = parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
    let mut rows = Vec::new();
    let mut files: Vec<(String, Format, Source)> = Vec::new();
    let audit = format!("{DATA}/k8s_audit/falco_trace_files/test/trace_files/k8s_audit");
    for e in std::fs::read_dir(&audit).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            files.push((
                p.display().to_string(),
                Format::Audit,
                Source::of_kind(Kind::Audit),
            ));
        }
    }
    for f in ["test-audit.log", "test-kube-audit.log"] {
        files.push((
            format!("{DATA}/k8s_audit/elastic_integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/{f}"),
            Format::Audit,
            Source { kind: Kind::Audit, cluster: Some("aks".into()), ..Source::default() },
        ));
    }
    let vpc = format!(
        "{DATA}/aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline"
    );
    for f in [
        "test-extra-samples.log",
        "test-v5-all-fields.log",
        "test-tcp-flag-sequence.log",
        "test-v8-samples.log",
    ] {
        files.push((
            format!("{vpc}/{f}"),
            Format::VpcFlow,
            Source::of_kind(Kind::VpcFlow),
        ));
    }
    for (sys, node) in [("Linux", "combo"), ("OpenSSH", "LabSZ")] {
        files.push((
            format!("{DATA}/node_logs/loghub/{sys}/{sys}_2k.log"),
            Format::Syslog,
            Source {
                kind: Kind::Syslog,
                node: Some(node.into()),
                ..Source::default()
            },
        ));
    }
    let core = format!("{DATA}/container_logs/fluent-bit/tests/runtime/data/kubernetes/log/core");
    for e in std::fs::read_dir(&core).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        let parts: Vec<&str> = name.splitn(3, '_').collect();
        files.push((
            p.display().to_string(),
            Format::Container,
            Source {
                kind: Kind::Container,
                namespace: Some(parts[0].into()),
                pod: parts.get(1).map(|s| s.to_string()),
                container: parts.get(2).map(|s| s.to_string()),
                ..Source::default()
            },
        ));
    }
    let mut inputs: Vec<(Vec<u8>, Format, Source)> = files
        .into_iter()
        .map(|(path, format, source)| (std::fs::read(Path::new(&path)).unwrap(), format, source))
        .collect();
    // The demo cluster's audit log and VPC flows: EKS-shaped data with an attack in it.
    let demo = quarry_demo::DemoConfig {
        end_ns: now,
        ..quarry_demo::DemoConfig::default()
    };
    for chunk in quarry_demo::generate(&demo) {
        let format = match chunk.format {
            "audit" => Format::Audit,
            "vpcflow" => Format::VpcFlow,
            _ => continue,
        };
        inputs.push((chunk.data, format, chunk.source));
    }
    for (i, (data, format, source)) in inputs.iter().enumerate() {
        let mut d = Decoder::new(*format);
        let mut events = Vec::new();
        d.feed(data, now, &mut events);
        d.finish(now, &mut events);
        rows.extend(events.iter().map(|e| row(source, e)));
        let key = BatchKey {
            batch_id: Some(format!("f{i}")),
            ..BatchKey::default()
        };
        store.ingest(key, source, events).unwrap();
    }
    store.commit().unwrap();
    // The pipeline expects rows newest first.
    rows.sort_by_key(|r| match r[0].1 {
        Value::Int(t) => std::cmp::Reverse(t),
        _ => std::cmp::Reverse(0),
    });
    Fixture {
        _dir: dir,
        store,
        rows,
    }
}

fn sorted(t: &Table) -> Vec<String> {
    let mut rows: Vec<String> = t.rows.iter().map(|r| format!("{r:?}")).collect();
    rows.sort();
    rows
}

const QUERIES: &[&str] = &[
    r#"filter objectRef.resource="clusterrolebindings" and verb in ["create","update","patch","delete"]"#,
    r#"fields @timestamp, @message, sourceIPs.0 | filter user.username="system:anonymous" and responseStatus.code in ["401","403"]"#,
    r#"stats sum(packets) as packetsTransferred by srcAddr, dstAddr | sort packetsTransferred desc, srcAddr asc, dstAddr asc | limit 15"#,
    r#"filter action="REJECT" | stats count(*) as numRejections by srcAddr | sort numRejections desc, srcAddr asc | limit 20"#,
    r#"stats count(*) by bin(1d)"#,
    r#"stats count(*) as n by @source | sort n desc"#,
    r#"filter @message like "Failed password" | stats count(*) as n by hostname"#,
    r#"search "authentication failure" | stats count(*) as n"#,
    r#"search "203.0.113.66" | fields @timestamp, @message"#,
    r#"fields @timestamp, @message | sort @timestamp desc, @message asc | limit 25"#,
    r#"filter not ispresent(verb) | stats count(*) as n by @source"#,
    r#"filter srcPort > 1024 and protocol = 6 | stats count(*) as n, max(bytes) as most"#,
    r#"filter protocol = "6" or action = "ACCEPT" | stats count(*) as n"#,
    r#"filter ispresent(@parseError) | fields @message"#,
    r#"filter user.username like /system:serviceaccount/ | stats count_distinct(user.username) as users"#,
    r#"filter kubernetes.namespace = "core" | stats count(*) as n by kubernetes.pod, stream"#,
    r#"filter responseStatus.code >= 400 | stats count(*) as n by responseStatus.code | sort n desc"#,
    r#"filter not (verb = "get") and ispresent(verb) | stats count(*) as n by verb | sort verb asc"#,
    r#"filter isIpInSubnet(srcAddr, "10.0.0.0/8") | stats sum(bytes) as b by dstAddr | sort b desc, dstAddr asc | limit 5"#,
    r#"filter appname = "sshd" and procid > 24000 | stats count(*) as n"#,
    r#"filter @timestamp > "2023-01-01T00:00:00Z" and @source = "audit" | stats count(*) as n"#,
    r#"parse @message "Failed password for * from * port *" as user, ip, port | filter ispresent(ip) | stats count(*) as n by ip | sort n desc, ip asc | limit 5"#,
    r#"fields sourceIPs.0 as ip | filter ispresent(ip) | dedup ip | sort ip asc"#,
    r#"filter @message like "COMMAND" or verb = "create" | stats count(*) as n"#,
];

/// One fixture (building it is the slow part) for both checks.
#[test]
fn store_answers_equal_the_pipeline_over_all_events() {
    let fx = fixture();
    let mut empty = Vec::new();
    for q in QUERIES {
        let got = run(&fx.store, q, &RunOptions::default()).unwrap_or_else(|e| panic!("{q}: {e}"));
        let want = run_query(q, fx.rows.iter()).unwrap();
        assert_eq!(got.table.columns, want.columns, "{q}");
        assert_eq!(
            sorted(&got.table),
            sorted(&want),
            "{q}\nstats: {:?}",
            got.stats
        );
        if want.rows.is_empty() {
            empty.push(*q);
        }
    }
    assert!(
        empty.is_empty(),
        "queries that find nothing make weak tests: {empty:#?}"
    );
    index_narrows_and_columns_answer_aggregates(&fx);
    scopes_skip_the_partitions_of_namespaces_outside_them(&fx);
    fx.store.close().unwrap();
}

fn scopes_skip_the_partitions_of_namespaces_outside_them(fx: &Fixture) {
    let q = "filter @source = \"container\" | stats count(*) as n by kubernetes.namespace";
    let scoped = |ns: &str| RunOptions {
        scope: Some(quarry_model::Scope {
            namespaces: Some(vec![ns.to_string()]),
            cluster: false,
            kinds: None,
        }),
        ..RunOptions::default()
    };
    let all = run(&fx.store, q, &RunOptions::default()).unwrap();
    let core = run(&fx.store, q, &scoped("core")).unwrap();
    let other = run(&fx.store, q, &scoped("payments")).unwrap();
    let want = run_query(q, fx.rows.iter()).unwrap();
    assert_eq!(sorted(&all.table), sorted(&want));
    assert_eq!(
        sorted(&core.table),
        sorted(&want),
        "core sees all of its own"
    );
    assert!(other.table.rows.is_empty());
    let own = fx
        .store
        .views(None, i64::MIN, i64::MAX)
        .iter()
        .filter(|v| v.key.namespace.as_deref() == Some("core"))
        .count();
    assert!(own > 0);
    assert_eq!(other.stats.partitions + own, core.stats.partitions);
}

fn index_narrows_and_columns_answer_aggregates(fx: &Fixture) {
    let opts = RunOptions::default();
    let r = run(
        &fx.store,
        r#"filter action="REJECT" | stats count(*) as n by srcAddr"#,
        &opts,
    )
    .unwrap();
    assert_eq!(r.stats.mode, "columnar counts");
    assert!(
        r.stats.candidates < r.stats.events_in_range / 10,
        "{:?}",
        r.stats
    );
    assert_eq!(r.stats.blocks_read, 0);

    let r = run(&fx.store, r#"search "LabSZ" | limit 3"#, &opts).unwrap();
    assert_eq!(r.stats.mode, "events");
    assert_eq!(r.table.rows.len(), 3);

    let needle = run(
        &fx.store,
        r#"filter user.username = "system:anonymous""#,
        &opts,
    )
    .unwrap();
    assert!(
        needle.stats.candidates > 0 && needle.stats.candidates < 20,
        "{:?}",
        needle.stats
    );

    // Failed password lines in loghub OpenSSH, counted by grep: 139 (see the data).
    let r = run(
        &fx.store,
        r#"filter @message like "Failed password for invalid user" | stats count(*) as n"#,
        &opts,
    )
    .unwrap();
    let text = std::fs::read_to_string(format!("{DATA}/node_logs/loghub/OpenSSH/OpenSSH_2k.log"))
        .unwrap()
        + &std::fs::read_to_string(format!("{DATA}/node_logs/loghub/Linux/Linux_2k.log")).unwrap();
    let expected = text
        .lines()
        .filter(|l| l.contains("Failed password for invalid user"))
        .count();
    assert_eq!(r.table.rows[0][0], Value::Int(expected as i64));

    // The time range is honoured.
    let all = run(&fx.store, "stats count(*) as n", &opts).unwrap();
    let since = run(
        &fx.store,
        "stats count(*) as n",
        &RunOptions {
            from: parse_rfc3339("2019-01-01T00:00:00Z").unwrap(),
            ..opts.clone()
        },
    )
    .unwrap();
    assert!(since.table.rows[0][0] != all.table.rows[0][0]);

    // Errors carry line and column.
    let e = run(&fx.store, "filter verb = \n| stats count(*)", &opts)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("line 2, column 1"), "{e}");
}
