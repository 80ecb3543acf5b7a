//! The store end to end on a temporary data directory: ingest, commit, read back, deduplicate, reopen,
//! retention.

mod common;

use common::{decode, key};
use quarry_model::time::{parse_rfc3339, NANOS_PER_SEC};
use quarry_model::{Kind, Source};
use quarry_parse::Format;
use quarry_store::partition::{PartKey, DAY_NS};
use quarry_store::read::{block_of, block_range, block_starts, materialize, read_block};
use quarry_store::schema::{column_names, field_term};
use quarry_store::wal::BatchKey;
use quarry_store::{Retention, Store, StoreConfig};
use std::time::Duration;
use tantivy::collector::Count;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.commit_interval = Duration::from_millis(200);
    cfg
}

fn audit_lines(n: usize, base: i64) -> String {
    (0..n)
        .map(|i| {
            let ts = quarry_model::time::format_rfc3339_nanos(base + i as i64 * NANOS_PER_SEC);
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-{i}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns{}/secrets","verb":"{}","user":{{"username":"user{}"}},"sourceIPs":["10.0.0.{}"],"objectRef":{{"resource":"secrets","namespace":"ns{}"}},"responseStatus":{{"code":{}}},"requestReceivedTimestamp":"{ts}","stageTimestamp":"{ts}"}}"#,
                i % 3,
                if i % 2 == 0 { "get" } else { "list" },
                i % 5,
                i % 250,
                i % 3,
                if i % 7 == 0 { 403 } else { 200 },
            ) + "\n"
        })
        .collect()
}

#[test]
fn ingest_commit_search_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let base = parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
    let events = decode(Format::Audit, &audit_lines(1000, base), base);
    assert_eq!(events.len(), 1000);
    let src = Source {
        kind: Kind::Audit,
        cluster: Some("c1".into()),
        ..Source::default()
    };
    let r = store.ingest(key("b1"), &src, events.clone()).unwrap();
    assert_eq!((r.events, r.duplicate), (1000, false));
    store.commit().unwrap();

    let views = store.views(None, i64::MIN, i64::MAX);
    assert_eq!(views.len(), 1);
    let v = &views[0];
    assert_eq!(v.meta.events, 1000);
    assert_eq!(v.meta.blocks, 4);
    assert_eq!(
        (v.meta.min_ts, v.meta.max_ts),
        (base, base + 999 * NANOS_PER_SEC)
    );
    assert!(v.meta.paths.contains_key("user.username"));

    // Exact string terms find event documents; numbers are not in the index.
    let term = field_term(&v.fields, "verb", &"list".into()).unwrap();
    let n = v
        .searcher
        .search(&TermQuery::new(term, IndexRecordOption::Basic), &Count)
        .unwrap();
    assert_eq!(n, 500);
    assert!(field_term(
        &v.fields,
        "responseStatus.code",
        &quarry_model::Value::Int(403)
    )
    .is_none());
    let term = field_term(&v.fields, "kubernetes.cluster", &"c1".into()).unwrap();
    let n = v
        .searcher
        .search(&TermQuery::new(term, IndexRecordOption::Basic), &Count)
        .unwrap();
    assert_eq!(n, 1000);

    // Fast columns hold the values.
    let seg = v.searcher.segment_reader(0);
    let col = seg
        .fast_fields()
        .column_opt::<i64>(&column_names("responseStatus.code")[1])
        .unwrap()
        .unwrap();
    let mut forbidden = 0;
    for doc in 0..seg.max_doc() {
        forbidden += (col.first(doc) == Some(403)) as usize;
    }
    assert_eq!(forbidden, (0..1000).filter(|i| i % 7 == 0).count());
    let ts = seg.fast_fields().i64("ts").unwrap();

    // Message words find blocks; every event reads back to its original text and fields.
    let starts = block_starts(seg, &v.fields).unwrap();
    assert_eq!(starts.len(), 4);
    let mut seen = 0;
    for (i, &start) in starts.iter().enumerate() {
        let (meta, stored) = read_block(&v.searcher, &v.fields, 0, start).unwrap();
        assert_eq!(meta.source, src);
        let range = block_range(&starts, start, seg.max_doc());
        assert_eq!(range.len(), stored.len());
        for (doc, s) in range.zip(&stored) {
            assert_eq!(
                block_of(&starts, doc),
                Some((start, (doc - start - 1) as usize))
            );
            assert!(s.ts.is_none(), "stored blocks leave times to the ts column");
            let e = materialize(&meta, s, ts.first(doc).unwrap());
            let orig = &events[seen];
            assert_eq!(
                (e.ts, &e.raw, &e.fields),
                (orig.ts, &orig.raw, &orig.fields)
            );
            seen += 1;
        }
        let _ = i;
    }
    assert_eq!(seen, 1000);
    store.close().unwrap();
}

#[test]
fn retried_batches_are_stored_once_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let base = parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
    let src = Source::of_kind(Kind::Audit);
    let seq_key = |seq| BatchKey {
        batch_id: None,
        source_id: Some("node-1:/var/log/audit.log".into()),
        seq: Some(seq),
    };
    {
        let store = Store::open(config(dir.path())).unwrap();
        let evs = decode(Format::Audit, &audit_lines(10, base), base);
        assert!(!store.ingest(key("a"), &src, evs.clone()).unwrap().duplicate);
        assert!(store.ingest(key("a"), &src, evs.clone()).unwrap().duplicate);
        assert!(
            !store
                .ingest(seq_key(5), &src, evs.clone())
                .unwrap()
                .duplicate
        );
        assert!(
            store
                .ingest(seq_key(5), &src, evs.clone())
                .unwrap()
                .duplicate
        );
        assert!(
            store
                .ingest(seq_key(3), &src, evs.clone())
                .unwrap()
                .duplicate
        );
        store.close().unwrap();
    }
    let store = Store::open(config(dir.path())).unwrap();
    let evs = decode(Format::Audit, &audit_lines(10, base), base);
    assert!(store.ingest(key("a"), &src, evs.clone()).unwrap().duplicate);
    assert!(
        store
            .ingest(seq_key(5), &src, evs.clone())
            .unwrap()
            .duplicate
    );
    assert!(!store.ingest(seq_key(6), &src, evs).unwrap().duplicate);
    store.commit().unwrap();
    assert_eq!(store.stats().events_stored, 30);
    store.close().unwrap();
}

#[test]
fn concurrent_ingest_is_durable_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let base = parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = store.clone();
            s.spawn(move || {
                for b in 0..20 {
                    let lines: String = (0..50)
                        .map(|i| format!("thread {t} batch {b} line {i} user=u{t}\n"))
                        .collect();
                    let evs = decode(Format::Text, &lines, base + (t * 1000 + b) as i64);
                    let src = Source {
                        kind: Kind::Text,
                        node: Some(format!("n{t}")),
                        ..Source::default()
                    };
                    store.ingest(key(&format!("{t}-{b}")), &src, evs).unwrap();
                }
            });
        }
    });
    store.commit().unwrap();
    let s = store.stats();
    assert_eq!((s.events_stored, s.batches), (4 * 20 * 50, 80));
    store.close().unwrap();
    // Everything is in segments, so no WAL bytes remain.
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(wal_bytes, 0);
    // Everything is still there after reopening.
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(store.stats().events_stored, 4000);
    store.close().unwrap();
}

#[test]
fn retention_deletes_old_partitions_by_age_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let now = parse_rfc3339("2024-05-10T12:00:00Z").unwrap();
    let mut cfg = config(dir.path());
    cfg.retention = Retention {
        max_age_ns: [(Kind::Text, 3 * DAY_NS)].into_iter().collect(),
        max_bytes: [(Kind::Audit, 1)].into_iter().collect(),
        ..Retention::default()
    };
    let store = Store::open(cfg).unwrap();
    for day in 0..6i64 {
        let ts = now - day * DAY_NS;
        let evs = decode(Format::Text, "a line\nanother line\n", ts);
        store
            .ingest(key(&format!("t{day}")), &Source::of_kind(Kind::Text), evs)
            .unwrap();
        let evs = decode(Format::Audit, &audit_lines(3, ts), ts);
        store
            .ingest(key(&format!("a{day}")), &Source::of_kind(Kind::Audit), evs)
            .unwrap();
    }
    store.commit().unwrap();
    assert_eq!(store.stats().partitions, 12);
    let deleted = store.apply_retention(now).unwrap();
    // Text: days older than 3 days (day index 4 and 5 end before now - 3d; day 3 ends after it).
    // Audit: only the newest partition survives a 1-byte limit.
    assert_eq!(deleted, 2 + 5);
    let s = store.stats();
    assert_eq!(
        (s.partitions, s.retention_partitions, s.retention_events),
        (5, 7, 2 * 2 + 5 * 3)
    );
    let kinds: Vec<_> = store
        .views(None, i64::MIN, i64::MAX)
        .iter()
        .map(|v| (v.key.kind, v.key.day))
        .collect();
    assert!(kinds.contains(&(Kind::Audit, now.div_euclid(DAY_NS))));
    assert!(!kinds
        .iter()
        .any(|(k, d)| *k == Kind::Text && *d < now.div_euclid(DAY_NS) - 3));
    store.close().unwrap();
    assert!(Store::open(config(dir.path())).unwrap().stats().partitions == 5);
}

#[test]
fn legal_holds_keep_partitions_past_retention_until_released() {
    use quarry_store::hold::{holds_path, Hold, Holds};
    let dir = tempfile::tempdir().unwrap();
    let now = parse_rfc3339("2024-05-10T12:00:00Z").unwrap();
    let mut cfg = config(dir.path());
    cfg.retention = Retention {
        max_age_ns: [(Kind::Audit, DAY_NS)].into_iter().collect(),
        ..Retention::default()
    };
    let store = Store::open(cfg).unwrap();
    for day in 0..5i64 {
        let ts = now - day * DAY_NS;
        let evs = decode(Format::Audit, &audit_lines(3, ts), ts);
        store
            .ingest(key(&format!("a{day}")), &Source::of_kind(Kind::Audit), evs)
            .unwrap();
    }
    store.commit().unwrap();
    // Days 2 and 3 ago are under a hold (of audit logs); day 4 is not.
    let hold = |name: &str, kinds: Vec<Kind>| Hold {
        name: name.into(),
        kinds,
        from_ns: now - 3 * DAY_NS,
        to_ns: now - 2 * DAY_NS + 1,
        reason: "case 42".into(),
        created_ns: now,
    };
    Holds::add(dir.path(), hold("case-42", vec![Kind::Audit])).unwrap();
    Holds::add(dir.path(), hold("other-kind", vec![Kind::VpcFlow])).unwrap();
    let days = |store: &Store| -> Vec<i64> {
        let mut d: Vec<i64> = store
            .views(None, i64::MIN, i64::MAX)
            .iter()
            .map(|v| now.div_euclid(DAY_NS) - v.key.day)
            .collect();
        d.sort();
        d
    };
    assert_eq!(store.apply_retention(now).unwrap(), 1, "only day 4 goes");
    assert_eq!(days(&store), [0, 1, 2, 3]);
    assert_eq!(store.stats().retention_held, 2);
    // An unreadable hold file stops retention rather than losing a hold.
    let good = std::fs::read(holds_path(dir.path())).unwrap();
    std::fs::write(holds_path(dir.path()), b"{").unwrap();
    assert_eq!(store.apply_retention(now + 10 * DAY_NS).unwrap(), 0);
    assert_eq!(days(&store), [0, 1, 2, 3]);
    std::fs::write(holds_path(dir.path()), good).unwrap();
    // Released, the held days go at the next pass.
    Holds::release(dir.path(), "case-42").unwrap();
    assert_eq!(store.apply_retention(now).unwrap(), 2);
    assert_eq!(days(&store), [0, 1]);
    assert_eq!(store.stats().retention_held, 0);
    store.close().unwrap();
}

fn container(ns: &str) -> Source {
    Source {
        kind: Kind::Container,
        namespace: Some(ns.into()),
        ..Source::default()
    }
}

/// `(kind, folder name)` of every partition on disk.
fn partition_dirs(data_dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for kind in std::fs::read_dir(data_dir.join("partitions"))
        .unwrap()
        .flatten()
    {
        for part in std::fs::read_dir(kind.path()).unwrap().flatten() {
            let name = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().into_owned();
            out.push((name(&kind), name(&part)));
        }
    }
    out.sort();
    out
}

#[test]
fn a_namespace_rule_deletes_its_own_partitions_sooner_or_later_than_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let now = parse_rfc3339("2024-05-10T12:00:00Z").unwrap();
    let mut cfg = config(dir.path());
    cfg.retention = Retention {
        max_age_ns: [(Kind::Container, 10 * DAY_NS), (Kind::Audit, DAY_NS)]
            .into_iter()
            .collect(),
        namespace_age_ns: [
            ("payments".to_string(), 30 * DAY_NS),
            ("dev".to_string(), DAY_NS),
        ]
        .into_iter()
        .collect(),
        ..Retention::default()
    };
    let store = Store::open(cfg).unwrap();
    for day in 0..5i64 {
        let ts = now - day * DAY_NS;
        for ns in ["web", "payments", "dev"] {
            let evs = decode(Format::Text, "a line\n", ts);
            store
                .ingest(key(&format!("{ns}{day}")), &container(ns), evs)
                .unwrap();
        }
        // Audit events name their namespace inside: they stay in the kind's shared partitions.
        let line = audit_lines(1, ts)
            .replace("\"ns0\"", if day == 3 { "\"payments\"" } else { "\"dev\"" });
        let evs = decode(Format::Audit, &line, ts);
        store
            .ingest(
                key(&format!("audit{day}")),
                &Source::of_kind(Kind::Audit),
                evs,
            )
            .unwrap();
    }
    store.commit().unwrap();
    let date = |day: i64| PartKey::of(Kind::Text, now - day * DAY_NS).date();
    let dirs = partition_dirs(dir.path());
    for day in 0..5 {
        for name in [
            date(day),
            format!("{}@payments", date(day)),
            format!("{}@dev", date(day)),
        ] {
            assert!(
                dirs.contains(&("container".into(), name.clone())),
                "{name}: {dirs:?}"
            );
        }
    }
    assert_eq!(dirs.len(), 5 * 4);
    // Every namespace's events are found as before.
    for ns in ["web", "payments", "dev"] {
        assert_eq!(count(&store, "kubernetes.namespace", ns), 5, "{ns}");
    }

    // dev (1 day) loses days 2..4 sooner than its kind (10 days); payments (30 days) keeps all; the
    // audit rule (1 day) dooms days 2..4, but day 3 names payments and stays.
    assert_eq!(store.apply_retention(now).unwrap(), 3 + 2);
    let dirs = partition_dirs(dir.path());
    for day in 2..5 {
        assert!(!dirs.contains(&("container".into(), format!("{}@dev", date(day)))));
        assert!(dirs.contains(&("container".into(), format!("{}@payments", date(day)))));
        assert!(dirs.contains(&("container".into(), date(day))));
        assert_eq!(dirs.contains(&("audit".into(), date(day))), day == 3);
    }
    let s = store.stats();
    assert_eq!(
        (
            s.retention_namespace_partitions,
            s.retention_namespace_kept,
            s.retention_events
        ),
        (3, 1, 3 + 2)
    );
    assert_eq!(count(&store, "kubernetes.namespace", "dev"), 2);
    assert_eq!(count(&store, "kubernetes.namespace", "web"), 5);
    // Past 11 days the kind's rule takes web; payments stays until its 30 days have passed.
    assert_eq!(store.apply_retention(now + 11 * DAY_NS).unwrap(), 5 + 2 + 2);
    assert_eq!(count(&store, "kubernetes.namespace", "payments"), 5);
    assert_eq!(store.apply_retention(now + 31 * DAY_NS).unwrap(), 5 + 1);
    assert_eq!(store.stats().partitions, 0);
    store.close().unwrap();
}

#[test]
fn a_namespace_partition_stays_where_it_was_written_when_the_rule_changes() {
    let dir = tempfile::tempdir().unwrap();
    let now = parse_rfc3339("2024-05-10T12:00:00Z").unwrap();
    let with_rule = |dir: &std::path::Path| {
        let mut cfg = config(dir);
        cfg.commit_interval = Duration::from_secs(3600);
        cfg.retention.namespace_age_ns = [("dev".to_string(), 2 * DAY_NS)].into_iter().collect();
        cfg
    };
    let store = Store::open(with_rule(dir.path())).unwrap();
    let evs = decode(Format::Text, "one\ntwo\n", now);
    store.ingest(key("a"), &container("dev"), evs).unwrap();
    // A crash before the commit: only the WAL holds the batch.
    let image = tempfile::tempdir().unwrap();
    common::copy_dir(dir.path(), image.path());
    store.close().unwrap();
    // Both the crash image and the cleanly closed store are reopened without the rule: replay puts the
    // batch where it went first, once; new batches of dev go to the shared partition.
    for d in [image.path(), dir.path()] {
        let store = Store::open(config(d)).unwrap();
        let evs = decode(Format::Text, "three\n", now);
        store.ingest(key("b"), &container("dev"), evs).unwrap();
        store.commit().unwrap();
        let date = PartKey::of(Kind::Container, now).date();
        assert_eq!(
            partition_dirs(d),
            [
                ("container".to_string(), date.clone()),
                ("container".to_string(), format!("{date}@dev")),
            ]
        );
        let views = store.views(None, i64::MIN, i64::MAX);
        let events: Vec<(Option<&str>, u64)> = views
            .iter()
            .map(|v| (v.key.namespace.as_deref(), v.meta.events))
            .collect();
        assert_eq!(events, [(None, 1), (Some("dev"), 2)], "{}", d.display());
        // Without a rule of its own the namespace's partition follows its kind's.
        assert_eq!(store.apply_retention(now + 3 * DAY_NS).unwrap(), 0);
        store.close().unwrap();
    }
}

/// Events whose `field` has the string `value`, through the index.
fn count(store: &Store, field: &str, value: &str) -> usize {
    store
        .views(None, i64::MIN, i64::MAX)
        .iter()
        .map(|v| {
            let term =
                field_term(&v.fields, field, &quarry_model::Value::Str(value.into())).unwrap();
            let q = TermQuery::new(term, IndexRecordOption::Basic);
            v.searcher.search(&q, &Count).unwrap()
        })
        .sum()
}

#[test]
fn a_second_writer_is_refused_and_readers_see_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let err = Store::open(config(dir.path())).err().unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
    let base = parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
    store
        .ingest(
            key("x"),
            &Source::of_kind(Kind::Text),
            decode(Format::Text, "hello\n", base),
        )
        .unwrap();
    store.commit().unwrap();
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.views(None, i64::MIN, i64::MAX)[0].meta.events, 1);
    assert!(ro
        .ingest(key("y"), &Source::of_kind(Kind::Text), Vec::new())
        .is_err());
    store.close().unwrap();
}
