//! The store with encryption at rest, end to end: round trip and reopen, WAL replay after a crash,
//! detection of altered files, the key rules, rotation, crypto-shredding by retention; and (ignored) a
//! comparison of ingest and query times with encryption on and off.

mod common;

use common::{copy_dir, decode, key};
use quarry_model::time::{parse_rfc3339, NANOS_PER_SEC};
use quarry_model::{Event, Kind, Source};
use quarry_parse::Format;
use quarry_store::crypt::{EncryptionConfig, KeyWrapper, MasterKey};
use quarry_store::partition::{PartView, DAY_NS};
use quarry_store::read::{block_range, block_starts, materialize, read_block};
use quarry_store::schema::field_term;
use quarry_store::{Retention, Store, StoreConfig, StoreError};
use quarry_trust::keys::{keyring_path, Keyring};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tantivy::collector::Count;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;

fn master(b: u8) -> Arc<dyn KeyWrapper> {
    Arc::new(MasterKey::from_bytes(&[b; 32]).unwrap())
}

fn enc(b: u8) -> Option<EncryptionConfig> {
    Some(EncryptionConfig::new(master(b)))
}

fn config(dir: &Path, key: Option<u8>) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.commit_interval = Duration::from_millis(200);
    cfg.encryption = key.and_then(enc);
    cfg
}

fn audit_lines(n: usize, first: usize, base: i64) -> String {
    (first..first + n)
        .map(|i| {
            let ts = quarry_model::time::format_rfc3339_nanos(base + i as i64 * NANOS_PER_SEC / 10);
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-{i}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns{}/secrets/db-password-{i}","verb":"{}","user":{{"username":"alice{}"}},"sourceIPs":["10.0.{}.{}"],"objectRef":{{"resource":"secrets","namespace":"ns{}"}},"responseStatus":{{"code":{}}},"requestReceivedTimestamp":"{ts}","stageTimestamp":"{ts}"}}"#,
                i % 3,
                if i % 2 == 0 { "get" } else { "list" },
                i % 5,
                i % 200,
                i % 250,
                i % 3,
                if i % 7 == 0 { 403 } else { 200 },
            ) + "\n"
        })
        .collect()
}

fn base() -> i64 {
    parse_rfc3339("2024-05-01T10:00:00Z").unwrap()
}

fn audit_src() -> Source {
    Source {
        kind: Kind::Audit,
        cluster: Some("prod-cluster".into()),
        ..Source::default()
    }
}

/// Ingests `batches` batches of `per` audit events.
fn fill(store: &Store, batches: usize, per: usize) -> Vec<Event> {
    let mut all = Vec::new();
    for b in 0..batches {
        let evs = decode(Format::Audit, &audit_lines(per, b * per, base()), base());
        all.extend(evs.iter().cloned());
        store
            .ingest(key(&format!("b{b}")), &audit_src(), evs)
            .unwrap();
    }
    all
}

fn count(v: &PartView, field: &str, value: &str) -> Result<usize, tantivy::TantivyError> {
    let term = field_term(&v.fields, field, &value.into()).unwrap();
    v.searcher
        .search(&TermQuery::new(term, IndexRecordOption::Basic), &Count)
}

/// Every event read back from the blocks of a view, in order.
fn read_all(v: &PartView) -> Result<Vec<(i64, String)>, StoreError> {
    let mut out = Vec::new();
    for (ord, seg) in v.searcher.segment_readers().iter().enumerate() {
        let starts = block_starts(seg, &v.fields)?;
        let ts = seg.fast_fields().i64("ts")?;
        for &start in starts.iter() {
            let (meta, stored) = read_block(&v.searcher, &v.fields, ord as u32, start)?;
            for (doc, s) in block_range(&starts, start, seg.max_doc()).zip(&stored) {
                let t = ts
                    .first(doc)
                    .ok_or_else(|| StoreError::Corrupt("no ts".into()))?;
                out.push((t, materialize(&meta, s, t).raw.to_string()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn round_trip_reopen_and_nothing_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Some(1))).unwrap();
    let events = fill(&store, 4, 500);
    store.commit().unwrap();
    let want: Vec<(i64, String)> = {
        let mut w: Vec<_> = events.iter().map(|e| (e.ts, e.raw.to_string())).collect();
        w.sort();
        w
    };
    let check = |store: &Store| {
        let views = store.views(None, i64::MIN, i64::MAX);
        assert_eq!(views.len(), 1);
        let v = &views[0];
        assert_eq!(v.meta.events, 2000);
        assert_eq!(count(v, "verb", "list").unwrap(), 1000);
        assert_eq!(count(v, "user.username", "alice3").unwrap(), 400);
        assert_eq!(
            count(v, "kubernetes.cluster", "prod-cluster").unwrap(),
            2000
        );
        assert_eq!(read_all(v).unwrap(), want);
    };
    check(&store);
    store.close().unwrap();

    // No event text, field value or term is readable on disk: not in the WAL, not in any segment file.
    let all = files(dir.path());
    assert!(all
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "store")));
    for p in &all {
        let data = std::fs::read(p).unwrap();
        for needle in [&b"db-password"[..], b"alice3", b"prod-cluster", b"secrets"] {
            assert!(
                !contains(&data, needle),
                "{} holds {:?}",
                p.display(),
                std::str::from_utf8(needle)
            );
        }
    }

    let store = Store::open(config(dir.path(), Some(1))).unwrap();
    check(&store);
    store.close().unwrap();
    let ro = Store::open_read_only_with(dir.path(), enc(1)).unwrap();
    check(&ro);
    // Without the key: a clear refusal, writable or not.
    let e = Store::open_read_only(dir.path()).err().unwrap().to_string();
    assert!(
        e.contains("is encrypted") && e.contains("master key"),
        "{e}"
    );
    let e = Store::open(config(dir.path(), None))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is encrypted"), "{e}");
}

#[test]
fn wal_replay_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Some(1));
    cfg.commit_interval = Duration::from_secs(3600);
    let store = Store::open(cfg).unwrap();
    let events = fill(&store, 3, 300);
    // Acknowledged means in the WAL (fsynced): a copy of the directory now is what a crash leaves.
    copy_dir(dir.path(), crashed.path());
    store.close().unwrap();

    let store = Store::open(config(crashed.path(), Some(1))).unwrap();
    let s = store.stats();
    assert!(s.wal_replayed_records >= 3, "{s:?}");
    assert_eq!(s.events_stored, 900);
    let v = &store.views(None, i64::MIN, i64::MAX)[0];
    assert_eq!(read_all(v).unwrap().len(), events.len());
    // Replayed batches are known: a retry is a duplicate.
    assert!(
        store
            .ingest(key("b1"), &audit_src(), events[..1].to_vec())
            .unwrap()
            .duplicate
    );
    store.close().unwrap();
}

#[test]
fn an_altered_wal_record_refuses_the_start_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Some(1));
    cfg.commit_interval = Duration::from_secs(3600);
    let store = Store::open(cfg).unwrap();
    fill(&store, 3, 100);
    copy_dir(dir.path(), crashed.path());
    store.close().unwrap();
    // Flip a byte in the second record and fix its CRC, as someone editing the file would.
    let wal = files(&crashed.path().join("wal"))
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut data = std::fs::read(&wal).unwrap();
    let first = u32::from_le_bytes(data[0..4].try_into().unwrap()) as usize;
    let at = 8 + first;
    let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    data[at + 8 + len / 2] ^= 0x01;
    let crc = crc32fast::hash(&data[at + 8..at + 8 + len]);
    data[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&wal, &data).unwrap();

    // Its checksum is right, so it is no torn write: the store refuses to start, and cuts nothing.
    let err = Store::open(config(crashed.path(), Some(1)))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("fails authentication"), "{err}");
    assert_eq!(std::fs::read(&wal).unwrap(), data);
    // Moved aside, the loss is accepted: the store opens with what the other files hold.
    std::fs::rename(&wal, crashed.path().join("altered.wal.bak")).unwrap();
    let store = Store::open(config(crashed.path(), Some(1))).unwrap();
    store.close().unwrap();
}

#[test]
fn a_flipped_byte_in_a_segment_is_an_error_never_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Some(1))).unwrap();
    let events = fill(&store, 10, 1000);
    store.close().unwrap();
    let want: Vec<(i64, String)> = {
        let mut w: Vec<_> = events.iter().map(|e| (e.ts, e.raw.to_string())).collect();
        w.sort();
        w
    };
    let part = dir.path().join("partitions/audit/2024-05-01");
    let mut segs: Vec<PathBuf> = files(&part)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() > 33 && !n.starts_with('.'))
        })
        .collect();
    segs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let (mut tried, mut errors) = (0, 0);
    for victim in segs.iter().rev() {
        let good = std::fs::read(victim).unwrap();
        // One flip in the middle and one near the end (the footer tantivy reads at open).
        for at in [good.len() / 2, good.len() - 20] {
            let mut bad = good.clone();
            bad[at] ^= 0x04;
            std::fs::write(victim, &bad).unwrap();
            tried += 1;
            let outcome = Store::open_read_only_with(dir.path(), enc(1)).and_then(|ro| {
                let views = ro.views(None, i64::MIN, i64::MAX);
                let Some(v) = views.first() else {
                    // The partition did not open: read-only skips it (with a warning).
                    return Err(StoreError::Corrupt("partition skipped".into()));
                };
                let got = read_all(v)?;
                let n = count(v, "verb", "get")? + count(v, "user.username", "alice1")?;
                let ts_col = v.searcher.segment_readers()[0].fast_fields().i64("ts")?;
                let _ = ts_col.first(0);
                Ok((got, n))
            });
            match outcome {
                Err(_) => errors += 1,
                Ok((got, n)) => {
                    // Only possible if the flipped block is never read by these; then data is intact.
                    assert_eq!(got, want, "wrong data from {}", victim.display());
                    assert_eq!(n, 5000 + 2000);
                }
            }
            // The writable open refuses the partition or reads it; it never panics.
            let _ = Store::open(config(dir.path(), Some(1))).map(|s| s.close());
        }
        std::fs::write(victim, &good).unwrap();
    }
    assert!(tried >= 8, "{tried} files tried");
    // The footers are read at open, the store files by read_all: most flips must be caught.
    assert!(errors * 2 >= tried, "{errors} of {tried} flips detected");
    // Restored, everything reads again.
    let ro = Store::open_read_only_with(dir.path(), enc(1)).unwrap();
    assert_eq!(
        read_all(&ro.views(None, i64::MIN, i64::MAX)[0]).unwrap(),
        want
    );
}

#[test]
fn key_rules_wrong_key_and_plaintext_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Some(1))).unwrap();
    fill(&store, 1, 10);
    store.close().unwrap();
    let e = Store::open(config(dir.path(), Some(2)))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("wrong master key"), "{e}");
    let e = Store::open_read_only_with(dir.path(), enc(2))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("wrong master key"), "{e}");

    let plain = tempfile::tempdir().unwrap();
    let store = Store::open(config(plain.path(), None)).unwrap();
    fill(&store, 1, 10);
    store.close().unwrap();
    let e = Store::open(config(plain.path(), Some(1)))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unencrypted data"), "{e}");
    assert!(!keyring_path(plain.path()).exists());
    let store = Store::open(config(plain.path(), None)).unwrap();
    assert_eq!(store.stats().events_stored, 10);
    store.close().unwrap();
}

#[test]
fn rotation_then_reopen_with_the_new_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Some(1))).unwrap();
    let events = fill(&store, 2, 200);
    store.close().unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = files(&dir.path().join("partitions"))
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();

    let ring = Keyring::open(&keyring_path(dir.path()), master(1)).unwrap();
    let n = ring.rotate(&*master(1), master(2), &mut |_, _| {}).unwrap();
    assert!(n >= 2, "{n}");
    drop(ring);
    // No data file was rewritten.
    for (p, bytes) in &before {
        assert_eq!(&std::fs::read(p).unwrap(), bytes, "{}", p.display());
    }
    let e = Store::open(config(dir.path(), Some(1)))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("wrong master key"), "{e}");
    let store = Store::open(config(dir.path(), Some(2))).unwrap();
    let v = &store.views(None, i64::MIN, i64::MAX)[0];
    assert_eq!(read_all(v).unwrap().len(), events.len());
    // And it keeps working: new data under the new key.
    store
        .ingest(
            key("after"),
            &audit_src(),
            decode(Format::Audit, &audit_lines(5, 9000, base()), base()),
        )
        .unwrap();
    store.close().unwrap();
    let store = Store::open(config(dir.path(), Some(2))).unwrap();
    assert_eq!(store.stats().events_stored, 405);
    store.close().unwrap();
}

#[test]
fn retention_crypto_shreds_expired_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let now = parse_rfc3339("2024-05-10T12:00:00Z").unwrap();
    let mut cfg = config(dir.path(), Some(1));
    cfg.retention = Retention {
        max_age_ns: [(Kind::Text, 3 * DAY_NS)].into_iter().collect(),
        namespace_age_ns: [("dev".to_string(), DAY_NS)].into_iter().collect(),
        ..Retention::default()
    };
    let store = Store::open(cfg.clone()).unwrap();
    for day in 0..6i64 {
        let ts = now - day * DAY_NS;
        let evs = decode(Format::Text, "a confidential line\nanother line\n", ts);
        store
            .ingest(key(&format!("t{day}")), &Source::of_kind(Kind::Text), evs)
            .unwrap();
    }
    // A namespace's own partitions are shredded by its rule too.
    let dev = Source {
        kind: Kind::Container,
        namespace: Some("dev".into()),
        ..Source::default()
    };
    for day in [0, 2] {
        let evs = decode(Format::Text, "a dev line\n", now - day * DAY_NS);
        store.ingest(key(&format!("dev{day}")), &dev, evs).unwrap();
    }
    store.commit().unwrap();
    let ring_owners = || -> Vec<String> {
        Keyring::open(&keyring_path(dir.path()), master(1))
            .unwrap()
            .entries()
            .into_iter()
            .map(|e| e.owner)
            .collect()
    };
    let old_day = quarry_store::partition::PartKey::of(Kind::Text, now - 5 * DAY_NS);
    let old_dir = old_day.dir(dir.path());
    let old_owner = format!("partitions/text/{}", old_day.date());
    assert!(ring_owners().iter().any(|o| o.starts_with(&old_owner)));
    // A snapshot of the doomed partition taken before retention (a backup, a cloud snapshot).
    copy_dir(&old_dir, backup.path());

    assert_eq!(store.apply_retention(now).unwrap(), 2 + 1);
    assert!(!old_dir.exists());
    let owners = ring_owners();
    assert!(
        !owners.iter().any(|o| o.starts_with(&old_owner)),
        "{owners:?}"
    );
    assert!(owners.iter().any(|o| o.starts_with("partitions/text/")));
    let dev_owner = |day: i64| {
        let date = quarry_store::partition::PartKey::of(Kind::Container, now - day * DAY_NS).date();
        format!("partitions/container/{date}@dev")
    };
    assert!(
        owners.iter().any(|o| o.starts_with(&dev_owner(0))),
        "{owners:?}"
    );
    assert!(
        !owners.iter().any(|o| o.starts_with(&dev_owner(2))),
        "{owners:?}"
    );
    store.close().unwrap();

    // Restoring the snapshot does not bring the data back: its keys are gone.
    copy_dir(backup.path(), &old_dir);
    let ro = Store::open_read_only_with(dir.path(), enc(1)).unwrap();
    assert_eq!(
        ro.stats().partitions,
        4 + 1,
        "the restored partition cannot be opened"
    );
    let e = Store::open(cfg).err().unwrap().to_string();
    assert!(
        e.contains("no data key") || e.contains("crypto-shredded"),
        "{e}"
    );
}
