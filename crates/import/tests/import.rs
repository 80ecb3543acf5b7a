//! Imports of real files and folders into a store on a temporary data directory, and of batches to a
//! stand-in HTTP server that speaks the ingest API.
//!
//! Data (used in place, not copied): falcosecurity/falco traces (Apache-2.0), fluent/fluent-bit Kubernetes
//! test logs (Apache-2.0), logpai/loghub Linux syslog (Loghub terms), DataDog/stratus-red-team CloudTrail
//! detonation logs (Apache-2.0); see shared/data/SOURCES.md.

use quarry_demo::{generate, write_tree, DemoConfig};
use quarry_import::{import_paths, ImportError, ImportOptions, ImportSummary, Progress, Target};
use quarry_model::{Kind, Source};
use quarry_parse::{Format, MultilineMode};
use quarry_store::block::StoredEvent;
use quarry_store::read::{block_range, block_starts, read_block};
use quarry_store::{Store, StoreConfig};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

const FALCO: &str = "k8s_audit/falco_trace_files/test/trace_files/k8s_audit";
const FLUENT_BIT: &str = "container_logs/fluent-bit/tests/runtime/data/kubernetes/log";
const LINUX: &str = "node_logs/loghub/Linux/Linux_2k.log";
const STRATUS: &str =
    "aws/stratus_red_team/docs/detonation-logs/aws.credential-access.ec2-get-password-data.json";

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

fn open(dir: &Path) -> Store {
    Store::open(StoreConfig::new(dir)).unwrap()
}

fn import(paths: &[PathBuf], opts: &ImportOptions, store: &Store) -> ImportSummary {
    import_paths(paths, opts, Target::Store(store), &mut |_| {}).unwrap()
}

/// Every stored event with the source of its block.
fn stored(store: &Store) -> Vec<(Source, StoredEvent)> {
    let mut out = Vec::new();
    for v in store.views(None, i64::MIN, i64::MAX) {
        for (ord, seg) in v.searcher.segment_readers().iter().enumerate() {
            let ts = seg.fast_fields().i64("ts").unwrap();
            let starts = block_starts(seg, &v.fields).unwrap();
            for &start in starts.iter() {
                let (meta, evs) = read_block(&v.searcher, &v.fields, ord as u32, start).unwrap();
                let docs = block_range(&starts, start, seg.max_doc());
                // Stored blocks leave event times to the ts column.
                out.extend(evs.into_iter().zip(docs).map(|(mut e, doc)| {
                    e.ts = ts.first(doc);
                    (meta.source.clone(), e)
                }));
            }
        }
    }
    out
}

fn non_blank_lines(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count()
}

fn gzip(bytes: &[u8], members: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let step = bytes.len().div_ceil(members.max(1)).max(1);
    for part in bytes.chunks(step) {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(part).unwrap();
        out.extend(e.finish().unwrap());
    }
    out
}

#[test]
fn falco_traces_give_51_audit_events_and_flag_the_malformed_one() {
    let dir = data(FALCO);
    let mut traces: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    traces.sort();
    assert_eq!(traces.len(), 47);

    // The traces read as audit logs: 51 real events and the malformed `{"kind": 0}`, flagged.
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let opts = ImportOptions {
        format: Format::Audit,
        ..ImportOptions::default()
    };
    let s = import(&traces, &opts, &store);
    assert_eq!((s.files, s.events, s.parse_errors), (47, 52, 1));
    assert_eq!(s.per_kind.len(), 1);
    assert_eq!(s.per_kind[&Kind::Audit].events, 52);
    assert_eq!(s.per_kind[&Kind::Audit].files, 47);
    assert!(s.skipped.is_empty());
    let st = store.stats();
    assert_eq!((st.events_stored, st.parse_errors), (52, 1));
    let events = stored(&store);
    let bad: Vec<_> = events
        .iter()
        .filter(|(_, e)| e.parse_error.is_some())
        .map(|(_, e)| e.raw.as_str())
        .collect();
    assert_eq!(bad, vec![r#"{"kind": 0}"#]);
    let good = events.iter().filter(|(_, e)| e.parse_error.is_none());
    assert_eq!(good.clone().count(), 51);
    assert!(good.into_iter().all(|(_, e)| e.raw.contains("\"auditID\"")));
    store.close().unwrap();

    // The folder as it is, guessing formats: the folder also holds CMakeLists.txt, and `{"kind": 0}` alone
    // is plain JSON to a decoder that guesses.
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let s = import(
        std::slice::from_ref(&dir),
        &ImportOptions::default(),
        &store,
    );
    let cmake = non_blank_lines(&std::fs::read(dir.join("CMakeLists.txt")).unwrap()) as u64;
    assert_eq!(s.files, 48);
    assert_eq!(s.per_kind[&Kind::Audit].events, 51);
    assert_eq!(s.per_kind[&Kind::Audit].files, 46);
    assert_eq!(s.per_kind[&Kind::Json].events, 1);
    assert_eq!(s.per_kind[&Kind::Text].events, cmake);
    assert_eq!(s.events, 52 + cmake);
    assert_eq!(s.parse_errors, 0);
    assert_eq!(
        s.bytes,
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>()
    );
    assert_eq!(s.disk_bytes, s.bytes);
    store.close().unwrap();
}

#[test]
fn fluent_bit_container_logs_get_coordinates_from_file_names() {
    let dir = data(FLUENT_BIT);
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let s = import(
        std::slice::from_ref(&dir),
        &ImportOptions::default(),
        &store,
    );
    // 59 docker json-file logs with 95 lines, each line a complete message
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    let lines: usize = files
        .iter()
        .map(|f| non_blank_lines(&std::fs::read(f).unwrap()))
        .sum();
    assert_eq!((files.len(), lines), (59, 95));
    assert_eq!(s.files, 59);
    assert_eq!(
        s.per_kind.keys().copied().collect::<Vec<_>>(),
        vec![Kind::Container]
    );
    assert_eq!(s.events, 95);
    assert_eq!(s.parse_errors, 0);

    let events = stored(&store);
    assert_eq!(events.len(), 95);
    let mut per_source: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (src, _) in &events {
        assert_eq!(src.kind, Kind::Container);
        let c = |v: &Option<String>| v.clone().expect("coordinates of a container log");
        *per_source
            .entry((c(&src.namespace), c(&src.pod), c(&src.container)))
            .or_default() += 1;
    }
    // as Fluent Bit's expected output (out/core/core_base_fluent-bit.out) names them
    assert_eq!(
        per_source.get(&("core".into(), "base".into(), "fluent-bit".into())),
        Some(&1)
    );
    assert!(per_source.contains_key(&(
        "annotations-parser-order".into(),
        "multiple-1".into(),
        "container-1".into()
    )));
    assert_eq!(per_source.len(), 59);
    let hello: Vec<_> = events
        .iter()
        .filter(|(s, _)| s.pod.as_deref() == Some("uat-myapp-12345"))
        .map(|(_, e)| e.raw.as_str())
        .collect();
    assert_eq!(
        hello,
        vec![
            r#"{"log":"hello from uat pod","stream":"stdout","time":"2019-04-01T17:58:33.598656444Z"}"#
        ]
    );
    store.close().unwrap();
}

#[test]
fn linux_syslog_gives_2000_events() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut reports: Vec<Progress> = Vec::new();
    let s = import_paths(
        &[data(LINUX)],
        &ImportOptions::default(),
        Target::Store(&store),
        &mut |p| reports.push(p.clone()),
    )
    .unwrap();
    let size = std::fs::metadata(data(LINUX)).unwrap().len();
    assert_eq!((s.files, s.events, s.parse_errors), (1, 2000, 0));
    assert_eq!(s.per_kind[&Kind::Syslog].events, 2000);
    assert_eq!((s.bytes, s.disk_bytes), (size, size));
    assert_eq!(s.batches, 1);
    assert_eq!(store.stats().events_stored, 2000);
    let last = reports.last().unwrap();
    assert_eq!(
        (
            last.files_done,
            last.files_total,
            last.bytes_read,
            last.bytes_total,
            last.events
        ),
        (1, 1, size, size, 2000)
    );
    assert_eq!(last.current, None);
    assert!(
        reports.len() <= 3,
        "{} reports for a small file",
        reports.len()
    );
    let ev = stored(&store);
    assert!(ev
        .iter()
        .all(|(src, _)| *src == Source::of_kind(Kind::Syslog)));
    assert!(ev[0]
        .1
        .raw
        .starts_with("Jun 14 15:16:01 combo sshd(pam_unix)[19939]"));
    store.close().unwrap();
}

#[test]
fn batches_are_cut_between_records_near_batch_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let text = std::fs::read(data(LINUX)).unwrap();
    let longest = text
        .split(|&b| b == b'\n')
        .map(|l| l.len() + 1)
        .max()
        .unwrap();
    let limit = 16 << 10;
    let opts = ImportOptions {
        batch_bytes: limit,
        ..ImportOptions::default()
    };
    let s = import(&[data(LINUX)], &opts, &store);
    assert_eq!(s.events, 2000);
    let total = text.len();
    let (lo, hi) = (total / (limit + longest), total.div_ceil(limit));
    assert!(
        (lo as u64..=hi as u64).contains(&s.batches),
        "{} batches, expected {lo}..={hi}",
        s.batches
    );
    assert_eq!(store.stats().batches, s.batches);
    // the stored records are the file's lines, in order, none split
    let raws: Vec<String> = stored(&store).into_iter().map(|(_, e)| e.raw).collect();
    let lines: Vec<String> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut sorted_raws = raws.clone();
    sorted_raws.sort();
    let mut sorted_lines = lines;
    sorted_lines.sort();
    assert_eq!(sorted_raws, sorted_lines);
    store.close().unwrap();
}

#[test]
fn gzip_and_zstd_copies_give_the_same_events_as_the_plain_file() {
    let plain = std::fs::read(data(LINUX)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("plain.log", plain.clone()),
        ("one.log.gz", gzip(&plain, 1)),
        ("members.log.gz", gzip(&plain, 3)),
        ("magic-gzip.log", gzip(&plain, 2)),
        ("frames.log.zst", {
            let half = plain.len() / 2;
            let mut z = zstd::bulk::compress(&plain[..half], 3).unwrap();
            z.extend(zstd::bulk::compress(&plain[half..], 3).unwrap());
            z
        }),
        (
            "magic-zstd.log",
            zstd::stream::encode_all(plain.as_slice(), 9).unwrap(),
        ),
    ];
    let mut expected: Option<Vec<(i64, String)>> = None;
    for (name, bytes) in &variants {
        let p = files.join(name);
        std::fs::write(&p, bytes).unwrap();
        let sd = tmp.path().join(format!("store-{name}"));
        let store = open(&sd);
        let s = import(&[p], &ImportOptions::default(), &store);
        assert_eq!((s.events, s.parse_errors), (2000, 0), "{name}");
        assert_eq!(s.bytes, plain.len() as u64, "{name}");
        assert_eq!(s.disk_bytes, bytes.len() as u64, "{name}");
        assert!(s.skipped.is_empty(), "{name}: {:?}", s.skipped);
        let mut evs: Vec<(i64, String)> = stored(&store)
            .into_iter()
            .map(|(_, e)| (e.ts.unwrap(), e.raw))
            .collect();
        evs.sort();
        match &expected {
            None => expected = Some(evs),
            Some(want) => assert!(*want == evs, "{name} differs from the plain file"),
        }
        store.close().unwrap();
    }
}

#[test]
fn importing_again_stores_nothing_new_but_changed_content_is_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    std::fs::create_dir_all(input.join("node")).unwrap();
    let linux = input.join("node/Linux_2k.log");
    std::fs::copy(data(LINUX), &linux).unwrap();
    std::fs::copy(
        data(&format!("{FALCO}/create_nginx_pod_privileged.json")),
        input.join("audit.json"),
    )
    .unwrap();
    let sd = tmp.path().join("store");
    let opts = ImportOptions {
        batch_bytes: 32 << 10,
        ..ImportOptions::default()
    };
    let store = open(&sd);
    let first = import(std::slice::from_ref(&input), &opts, &store);
    assert_eq!(first.events, 2001);
    assert_eq!(first.duplicate_batches, 0);
    assert!(first.batches >= 7, "{}", first.batches);
    let after_first = store.stats();

    let again = import(std::slice::from_ref(&input), &opts, &store);
    assert_eq!(again.batches, first.batches);
    assert_eq!(again.duplicate_batches, first.batches);
    assert_eq!((again.events, again.duplicate_events), (0, 2001));
    let st = store.stats();
    assert_eq!(st.events_ingested, after_first.events_ingested);
    assert_eq!(st.batches, after_first.batches);
    assert_eq!(st.duplicate_batches, first.batches);
    assert_eq!(st.events_stored, 2001);
    store.close().unwrap();

    // after a restart, and with lines added at the end: only the changed last batch is new (the file
    // has no newline at its end)
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&linux)
        .unwrap();
    writeln!(f).unwrap();
    for i in 0..10 {
        writeln!(f, "Jul 27 14:42:{i:02} combo sshd[1]: appended line {i}").unwrap();
    }
    drop(f);
    let store = open(&sd);
    let third = import(&[input], &opts, &store);
    assert_eq!(third.duplicate_batches, third.batches - 1);
    assert!(
        third.events > 10 && third.events < 2000,
        "{} new events",
        third.events
    );
    assert_eq!(third.events + third.duplicate_events, 2011);
    store.commit().unwrap();
    assert_eq!(store.stats().events_stored, 2001 + third.events);
    store.close().unwrap();
}

#[test]
fn demo_tree_per_kind_counts_and_sources() {
    let cfg = DemoConfig {
        seed: 7,
        scale: 1,
        end_ns: 1_714_564_800_000_000_000,
        ..DemoConfig::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let demo = write_tree(&cfg, &tree).unwrap();

    // what the tree holds: the records each file should give, and each file's source
    let mut want_events: BTreeMap<Kind, u64> = BTreeMap::new();
    let mut want_sources: HashSet<Source> = HashSet::new();
    let mut last_path = String::new();
    for chunk in generate(&cfg) {
        let text = String::from_utf8(chunk.data).unwrap();
        let records = text
            .lines()
            .filter(|l| match chunk.format {
                // a CRI line with the P tag continues in the next line
                "cri" => l.split(' ').nth(2) != Some("P"),
                // the header line of each object
                "vpcflow" => !l.starts_with("version "),
                _ => true,
            })
            .count() as u64;
        *want_events.entry(chunk.source.kind).or_default() += records;
        if chunk.path != last_path {
            last_path.clone_from(&chunk.path);
            let mut s = chunk.source.clone();
            if s.kind == Kind::Container {
                s.node = None; // kubelet's pod folders do not name the node
            }
            s.cluster = Some(cfg.cluster.clone()); // the demo leaves it off VPC flow logs
            want_sources.insert(s);
        }
    }

    let sd = tmp.path().join("store");
    let store = open(&sd);
    let opts = ImportOptions {
        cluster: Some(cfg.cluster.clone()),
        ..ImportOptions::default()
    };
    let mut reports: Vec<Progress> = Vec::new();
    let s = import_paths(
        std::slice::from_ref(&tree),
        &opts,
        Target::Store(&store),
        &mut |p| reports.push(p.clone()),
    )
    .unwrap();
    assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    // progress: about ten reports a second, moving forward, complete at the end
    assert!(
        reports.len() as f64 <= s.seconds * 10.0 + 3.0,
        "{} reports in {:.1} s",
        reports.len(),
        s.seconds
    );
    assert!(reports
        .windows(2)
        .all(|w| w[0].files_done <= w[1].files_done && w[0].bytes_read <= w[1].bytes_read));
    let last = reports.last().unwrap();
    assert_eq!(
        (
            last.files_done,
            last.files_total,
            last.bytes_read,
            last.events
        ),
        (demo.files, demo.files, demo.bytes, s.events)
    );
    assert_eq!(last.bytes_total, demo.bytes);
    assert_eq!(s.files, demo.files);
    assert_eq!(s.bytes, demo.bytes);
    assert_eq!(s.parse_errors, 0);
    let got_files: BTreeMap<Kind, usize> = s.per_kind.iter().map(|(k, c)| (*k, c.files)).collect();
    let want_files: BTreeMap<Kind, usize> =
        demo.per_kind.iter().map(|(k, c)| (*k, c.files)).collect();
    assert_eq!(got_files, want_files);
    let got_events: BTreeMap<Kind, u64> = s.per_kind.iter().map(|(k, c)| (*k, c.events)).collect();
    assert_eq!(got_events, want_events);
    for (k, c) in &demo.per_kind {
        assert_eq!(s.per_kind[k].bytes, c.bytes, "{k}");
    }

    let events = stored(&store);
    assert_eq!(events.len() as u64, s.events);
    let got_sources: HashSet<Source> = events.into_iter().map(|(src, _)| src).collect();
    let missing: Vec<_> = want_sources.difference(&got_sources).collect();
    let extra: Vec<_> = got_sources.difference(&want_sources).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    assert!(got_sources
        .iter()
        .any(|s| s.kind == Kind::Syslog && s.node.is_some()));
    assert!(got_sources
        .iter()
        .any(|s| s.kind == Kind::Container && s.namespace.as_deref() == Some("kube-system")));
    store.close().unwrap();
}

#[test]
fn cloudtrail_objects_and_multiline_containers() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bucket");

    // a CloudTrail object as S3 holds it: one gzipped JSON document with all records
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data(STRATUS)).unwrap()).unwrap();
    let n = records.as_array().unwrap().len() as u64;
    let doc = serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap();
    let trail = root.join("AWSLogs/751353041310/CloudTrail/us-east-1/2024/07/30");
    std::fs::create_dir_all(&trail).unwrap();
    std::fs::write(
        trail.join("751353041310_CloudTrail_us-east-1_20240730T2135Z_abc.json.gz"),
        gzip(&doc, 1),
    )
    .unwrap();

    // a Java stack trace in a kubelet pod log
    let pod = root.join("var/log/pods/shop_orders-7d9f_0b1c2d3e/orders");
    std::fs::create_dir_all(&pod).unwrap();
    std::fs::write(
        pod.join("0.log"),
        "2024-05-01T10:00:00.000000001Z stdout F started\n\
         2024-05-01T10:00:01.000000001Z stderr F java.lang.IllegalStateException: boom\n\
         2024-05-01T10:00:01.000000002Z stderr F \tat com.shop.Orders.place(Orders.java:42)\n\
         2024-05-01T10:00:01.000000003Z stderr F \tat com.shop.Api.handle(Api.java:7)\n\
         2024-05-01T10:00:02.000000001Z stdout F done\n",
    )
    .unwrap();

    let plain = {
        let store = open(&tmp.path().join("s1"));
        let s = import(
            std::slice::from_ref(&root),
            &ImportOptions::default(),
            &store,
        );
        store.close().unwrap();
        s
    };
    assert_eq!(plain.per_kind[&Kind::CloudTrail].events, n);
    assert_eq!(plain.per_kind[&Kind::Container].events, 5);
    assert_eq!(plain.parse_errors, 0);

    let store = open(&tmp.path().join("s2"));
    let opts = ImportOptions {
        multiline: Some(MultilineMode::Java),
        ..ImportOptions::default()
    };
    let joined = import(&[root], &opts, &store);
    assert_eq!(joined.per_kind[&Kind::CloudTrail].events, n);
    assert_eq!(joined.per_kind[&Kind::Container].events, 3);
    let trace: Vec<_> = stored(&store)
        .into_iter()
        .filter(|(s, e)| s.kind == Kind::Container && e.raw.contains("boom"))
        .collect();
    assert_eq!(trace.len(), 1);
    let (src, ev) = &trace[0];
    assert_eq!(ev.raw.lines().count(), 3);
    assert_eq!(
        (
            src.namespace.as_deref(),
            src.pod.as_deref(),
            src.container.as_deref()
        ),
        (Some("shop"), Some("orders-7d9f"), Some("orders"))
    );
    store.close().unwrap();
}

#[test]
fn unreadable_entries_are_listed_and_the_rest_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::create_dir_all(dir.join(".hidden-dir")).unwrap();
    std::fs::write(dir.join("a.log"), "one\ntwo\n").unwrap();
    std::fs::write(dir.join(".hidden.log"), "secret\n").unwrap();
    std::fs::write(dir.join(".hidden-dir/x.log"), "secret\n").unwrap();
    std::fs::write(dir.join("sub/b.log"), "three\n").unwrap();
    // the first member is whole, then garbage
    let mut bad = gzip(b"four\nfive\n", 1);
    bad.extend_from_slice(b"\x1f\x8b\x08\x00garbage that is not deflate");
    std::fs::write(dir.join("sub/c.log.gz"), &bad).unwrap();
    std::os::unix::fs::symlink(dir.join("missing.log"), dir.join("dangling.log")).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("sub/loop")).unwrap();
    std::os::unix::fs::symlink(dir.join("a.log"), dir.join("z-alias.log")).unwrap();

    let store = open(&tmp.path().join("store"));
    let s = import(
        std::slice::from_ref(&dir),
        &ImportOptions::default(),
        &store,
    );
    let skipped: BTreeMap<PathBuf, String> = s.skipped.iter().cloned().collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(
        skipped.contains_key(&dir.join("dangling.log")),
        "{skipped:?}"
    );
    assert!(
        skipped[&dir.join("sub/loop")].contains("loop"),
        "{skipped:?}"
    );
    assert!(
        skipped[&dir.join("sub/c.log.gz")].contains("read error"),
        "{skipped:?}"
    );
    assert_eq!(s.aliases, 1);
    assert_eq!(s.files, 3);
    // a.log, b.log, and c.log.gz up to the damage
    assert_eq!(s.events, 5);
    let raws: BTreeSet<String> = stored(&store).into_iter().map(|(_, e)| e.raw).collect();
    assert!(!raws.contains("secret"));
    assert!(raws.contains("five"));
    store.close().unwrap();
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(&tmp.path().join("store"));
    let missing = tmp.path().join("no-such-dir/x.log");
    let err = import_paths(
        &[data(LINUX), missing.clone()],
        &ImportOptions::default(),
        Target::Store(&store),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(&err, ImportError::NotFound(p) if *p == missing));
    let msg = err.to_string();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains("no such file"), "{msg}");
    // nothing was imported, not even the path before it
    assert_eq!(store.stats().events_ingested, 0);
    store.close().unwrap();
}

/// A stand-in for the server's ingest route: reads each request (zstd body of native records), keeps batch
/// ids to answer retries as duplicates, and refuses batches of a cluster named "refuse".
mod fake_server {
    use quarry_transport::{decode_native, IngestParams, IngestResponse, NativeRecord};
    use std::collections::HashSet;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    pub struct Seen {
        pub batches: Vec<(IngestParams, Vec<NativeRecord>)>,
        pub ids: HashSet<String>,
    }

    pub fn start() -> (String, Arc<Mutex<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        (url, seen)
    }

    fn serve(conn: std::net::TcpStream, seen: &Mutex<Seen>) {
        let mut out = conn.try_clone().unwrap();
        let mut r = BufReader::new(conn);
        loop {
            let mut request = String::new();
            if r.read_line(&mut request).unwrap_or(0) == 0 {
                return;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let target = request.split(' ').nth(1).unwrap().to_string();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            assert_eq!(path, "/api/v1/ingest");
            let params: IngestParams = serde_urlencoded(query);
            let body = zstd::stream::decode_all(body.as_slice()).unwrap();
            let (status, answer) = if params.cluster.as_deref() == Some("refuse") {
                (
                    400,
                    r#"{"error":"cluster refuse is not allowed"}"#.to_string(),
                )
            } else {
                let recs = decode_native(&body).unwrap();
                let mut seen = seen.lock().unwrap();
                let dup = !seen.ids.insert(params.batch_id.clone().unwrap());
                let resp = IngestResponse {
                    events: if dup { 0 } else { recs.len() as u64 },
                    parse_errors: if dup {
                        0
                    } else {
                        recs.iter().filter(|r| r.parse_error.is_some()).count() as u64
                    },
                    duplicate: dup,
                    format: "quarry".into(),
                    kind: params.kind.unwrap_or_default(),
                };
                if !dup {
                    seen.batches.push((params, recs));
                }
                (200, serde_json::to_string(&resp).unwrap())
            };
            write!(
                out,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            )
            .unwrap();
        }
    }

    /// Query strings of the few parameters the importer sends.
    fn serde_urlencoded(q: &str) -> IngestParams {
        let mut m = serde_json::Map::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            let mut bytes = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'%' => {
                        bytes.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    }
                    b'+' => {
                        bytes.push(b' ');
                        i += 1;
                    }
                    c => {
                        bytes.push(c);
                        i += 1;
                    }
                }
            }
            m.insert(k.to_string(), String::from_utf8(bytes).unwrap().into());
        }
        serde_json::from_value(serde_json::Value::Object(m)).unwrap()
    }
}

#[test]
fn server_target_sends_native_batches_and_reports_refusals() {
    let (url, seen) = fake_server::start();
    let client = quarry_transport::Client::new(&url).unwrap();
    let opts = ImportOptions {
        format: Format::Audit,
        cluster: Some("lab".into()),
        ..ImportOptions::default()
    };
    let traces = [
        data(&format!("{FALCO}/create_nginx_pod_privileged.json")),
        data(&format!("{FALCO}/fal_01_003.json")),
    ];
    let s = import_paths(&traces, &opts, Target::Server(&client), &mut |_| {}).unwrap();
    assert_eq!((s.files, s.batches, s.events, s.parse_errors), (2, 2, 2, 1));
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.batches.len(), 2);
        let (params, recs) = &seen.batches[0];
        assert_eq!(params.format.as_deref(), Some("quarry"));
        assert_eq!(params.kind, Some(Kind::Audit));
        assert_eq!(params.cluster.as_deref(), Some("lab"));
        assert_eq!(params.batch_id.as_ref().map(String::len), Some(32));
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].format, "audit");
        let want = std::fs::read_to_string(&traces[0]).unwrap();
        assert_eq!(recs[0].raw, want.trim_end());
        assert!(seen.batches[1].1[0].parse_error.is_some());
    }
    // again: the server answers both as duplicates
    let again = import_paths(&traces, &opts, Target::Server(&client), &mut |_| {}).unwrap();
    assert_eq!((again.events, again.duplicate_batches), (0, 2));

    let refuse = ImportOptions {
        cluster: Some("refuse".into()),
        ..opts
    };
    let err = import_paths(&traces, &refuse, Target::Server(&client), &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::Server { .. }), "{msg}");
    assert!(msg.contains("cluster refuse is not allowed"), "{msg}");
    assert!(msg.contains("create_nginx_pod_privileged.json"), "{msg}");
}
