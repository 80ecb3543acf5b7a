//! The store end to end on a temporary data directory: ingest, commit, read back, deduplicate, reopen,
//! retention.

mod common;

use common::{decode, key};
use quarry_model::time::{parse_rfc3339, NANOS_PER_SEC};
use quarry_model::{Kind, Source};
use quarry_parse::Format;
use quarry_store::partition::DAY_NS;
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

#[test]
fn a_namespace_kept_longer_keeps_the_days_that_hold_it() {
    let dir = tempfile::tempdir().unwrap();
    let now = parse_rfc3339("2024-05-10T12:00:00Z").unwrap();
    let mut cfg = config(dir.path());
    cfg.retention = Retention {
        max_age_ns: [(Kind::Container, DAY_NS)].into_iter().collect(),
        namespace_min_age_ns: [("payments".to_string(), 30 * DAY_NS)]
            .into_iter()
            .collect(),
        ..Retention::default()
    };
    let store = Store::open(cfg).unwrap();
    let source = |ns: &str| Source {
        kind: Kind::Container,
        namespace: Some(ns.into()),
        ..Source::default()
    };
    for day in 0..5i64 {
        let ts = now - day * DAY_NS;
        let mut namespaces = vec!["web"];
        if day == 2 || day == 3 {
            namespaces.push("payments");
        }
        for ns in namespaces {
            let evs = decode(Format::Text, "a line\n", ts);
            store
                .ingest(key(&format!("{ns}{day}")), &source(ns), evs)
                .unwrap();
        }
    }
    store.commit().unwrap();
    // The container rule dooms days 2, 3 and 4; days 2 and 3 hold payments, kept 30 days.
    assert_eq!(store.apply_retention(now).unwrap(), 1);
    let mut days: Vec<i64> = store
        .views(None, i64::MIN, i64::MAX)
        .iter()
        .map(|v| now.div_euclid(DAY_NS) - v.key.day)
        .collect();
    days.sort();
    assert_eq!(days, [0, 1, 2, 3]);
    assert_eq!(store.stats().retention_namespace_kept, 2);
    // Past the namespace's 30 days they go too.
    assert_eq!(store.apply_retention(now + 40 * DAY_NS).unwrap(), 4);
    store.close().unwrap();
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
