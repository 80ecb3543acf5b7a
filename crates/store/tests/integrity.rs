//! Tamper evidence end to end: a store with its integrity chain ingests real logs (the Falco k8s audit
//! trace files, Apache-2.0, and loghub's OpenSSH_2k.log, research use, cite Zhu et al., ISSRE 2023; see
//! shared/data/SOURCES.md), stops, and verifies clean; then each tamper, in a fresh copy of the data
//! directory, must be reported with the right category.

mod common;

use common::{copy_dir, decode, key};
use quarry_model::time::parse_rfc3339;
use quarry_model::{Event, Kind, Source};
use quarry_parse::Format;
use quarry_store::crypt::EncryptionConfig;
use quarry_store::integrity::{self, IntegrityConfig, Recorded, VerifyOptions};
use quarry_store::{Retention, Store, StoreConfig};
use quarry_trust::chain::{self, Category, Digest, DigestKind, Note, Reason, Report, SigningKey};
use quarry_trust::keys::MasterKey;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data");

fn audit_events() -> Vec<Event> {
    let dir = format!("{DATA}/k8s_audit/falco_trace_files/test/trace_files/k8s_audit");
    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut text = String::new();
    for p in names {
        text.push_str(fs::read_to_string(p).unwrap().trim_end());
        text.push('\n');
    }
    decode(
        Format::Audit,
        &text,
        parse_rfc3339("2021-01-01T00:00:00Z").unwrap(),
    )
}

fn ssh_lines() -> Vec<String> {
    fs::read_to_string(format!("{DATA}/node_logs/loghub/OpenSSH/OpenSSH_2k.log"))
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

fn syslog(lines: &[String]) -> Vec<Event> {
    decode(
        Format::Syslog,
        &lines.concat(),
        parse_rfc3339("2024-12-31T00:00:00Z").unwrap(),
    )
}

fn ssh_source() -> Source {
    Source {
        kind: Kind::Syslog,
        node: Some("LabSZ".into()),
        ..Source::default()
    }
}

fn config(dir: &Path, cadence: Duration) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.commit_interval = Duration::from_secs(3600);
    cfg.integrity = Some(IntegrityConfig {
        cadence,
        ..IntegrityConfig::default()
    });
    cfg
}

/// The data directories every test starts from (copies of them).
struct Base {
    _root: tempfile::TempDir,
    /// A stopped, cleanly closed data directory.
    clean: PathBuf,
    /// A copy taken while the server ran (as a crash leaves it), after a digest that sealed two
    /// non-empty WAL files.
    crash: PathBuf,
    /// The public key, held outside the data directories.
    public: PathBuf,
    /// Events ingested into `clean`.
    events: u64,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let root = tempfile::tempdir().unwrap();
        let clean = root.path().join("clean");
        let store = Store::open(config(&clean, Duration::from_secs(3600))).unwrap();
        let mut events = 0;
        let audit = audit_events();
        assert!(audit.len() >= 40, "{} audit events", audit.len());
        events += store
            .ingest(key("audit"), &Source::of_kind(Kind::Audit), audit)
            .unwrap()
            .events;
        store.commit().unwrap();
        store.seal_now().unwrap();
        // Twelve commits into one partition: segments sealed every third commit, then merged.
        let lines = ssh_lines();
        for (i, chunk) in lines[..1800].chunks(150).enumerate() {
            events += store
                .ingest(key(&format!("ssh{i}")), &ssh_source(), syslog(chunk))
                .unwrap()
                .events;
            store.commit().unwrap();
            if i % 3 == 2 {
                store.seal_now().unwrap();
            }
        }
        // Files other parts of Quarry write in a data directory.
        fs::create_dir_all(clean.join("alerts")).unwrap();
        fs::create_dir_all(clean.join("auth")).unwrap();
        fs::write(
            clean.join("alerts/alerts.jsonl"),
            "{\"open\":{\"id\":\"a1\"}}\n",
        )
        .unwrap();
        fs::write(clean.join("auth/tokens.json"), "{\"tokens\":[]}\n").unwrap();
        store.seal_now().unwrap();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(clean.join("alerts/alerts.jsonl"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"ack\":{\"id\":\"a1\"}}\n").unwrap();
        drop(f);
        // Records only in the WAL until the close commits them (the WAL range is sealed, then the file
        // is removed once indexed).
        events += store
            .ingest(key("ssh-tail"), &ssh_source(), syslog(&lines[1800..]))
            .unwrap()
            .events;
        store.seal_now().unwrap();
        store.close().unwrap();
        let crash = crash_image(root.path());
        let public = root.path().join("trusted.pub");
        fs::copy(clean.join("keys/signing.pub"), &public).unwrap();
        Base {
            _root: root,
            clean,
            crash,
            public,
            events,
        }
    })
}

/// A data directory as a crash leaves it: a running server (never closed: its threads idle with long
/// intervals) whose last digest sealed two non-empty WAL files, copied. The second WAL file stands for the
/// one the WAL starts once a file passes 64 MiB; it is made here from the second record of the first file
/// and sealed by the running server like any new WAL file.
fn crash_image(root: &Path) -> PathBuf {
    let live = root.join("live");
    let store = Store::open(config(&live, Duration::from_secs(3600))).unwrap();
    // A first batch committed (its partition exists and is sealed), a second only in the WAL.
    let lines = ssh_lines();
    store
        .ingest(key("seg"), &ssh_source(), syslog(&lines[..100]))
        .unwrap();
    store.commit().unwrap();
    store.seal_now().unwrap();
    for (i, chunk) in lines[100..300].chunks(100).enumerate() {
        store
            .ingest(key(&format!("wal{i}")), &ssh_source(), syslog(chunk))
            .unwrap();
    }
    let wal = wal_files(&live);
    assert_eq!(wal.len(), 1);
    let bytes = fs::read(&wal[0]).unwrap();
    let first = 8 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    fs::write(
        live.join(format!("wal/{:020}.wal", 1u64 << 40)),
        &bytes[first..],
    )
    .unwrap();
    store.seal_now().unwrap();
    let crash = root.join("crash");
    copy_dir(&live, &crash);
    std::mem::forget(store);
    fs::copy(
        crash.join("keys/signing.pub"),
        root.join("crash-trusted.pub"),
    )
    .unwrap();
    crash
}

fn verify_crash(dir: &Path) -> Report {
    let key = base().crash.parent().unwrap().join("crash-trusted.pub");
    integrity::verify(dir, Some(&key), None).unwrap()
}

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .collect();
    v.sort();
    v
}

fn copy_of(src: &Path) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    copy_dir(src, &d);
    (t, d)
}

fn verify(dir: &Path) -> Report {
    integrity::verify(dir, Some(&base().public), None).unwrap()
}

fn show(r: &Report) -> String {
    r.findings
        .iter()
        .map(|f| format!("  {} {}: {}", f.category, f.path, f.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn expect(r: &Report, category: Category, path: &str) {
    assert!(
        r.has(category, path),
        "expected {category} for {path}, found:\n{}",
        show(r)
    );
}

fn files_of(dir: &Path) -> Vec<String> {
    chain::walk_files(dir, &[])
        .unwrap()
        .into_iter()
        .map(|f| f.rel)
        .collect()
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x20;
    fs::write(path, b).unwrap();
}

fn digests(dir: &Path) -> Vec<Digest> {
    chain::list_digests(dir)
        .unwrap()
        .0
        .iter()
        .map(|(_, p)| chain::read_digest(p).unwrap())
        .collect()
}

#[test]
fn a_cleanly_stopped_data_dir_verifies_clean() {
    let b = base();
    let r = verify(&b.clean);
    assert!(r.is_clean(), "findings:\n{}", show(&r));
    assert!(r.pending.is_empty() && !r.server_running);
    let head = r.head.as_ref().unwrap();
    assert_eq!(head.kind, DigestKind::Final);
    assert_eq!(r.digests, head.seq + 1);
    // Every event was recomputed from the segments, and the chain recorded merges whose events were
    // found again in the merged segments.
    assert_eq!(r.events, b.events);
    let ds = digests(&b.clean);
    let merged = ds
        .iter()
        .flat_map(|d| &d.body.changes.segments_removed)
        .filter(|s| matches!(s.reason, Reason::Merged { .. }))
        .count();
    assert!(merged > 0, "no merge was recorded");
    assert!(ds.iter().all(|d| d.body.anomalies.is_empty()));
    // WAL ranges were sealed and the WAL files removed once indexed were recorded as such.
    assert!(ds
        .iter()
        .flat_map(|d| &d.body.changes.appended)
        .any(|a| a.path.starts_with("wal/") && a.to > a.from));
    assert!(ds
        .iter()
        .flat_map(|d| &d.body.changes.files_removed)
        .any(|f| f.path.starts_with("wal/") && matches!(f.reason, Reason::Indexed { .. })));
    // With the data directory's own key: consistent, and said to prove only that.
    let own = integrity::verify(&b.clean, None, None).unwrap();
    assert!(own.is_clean() && own.key_from_data_dir);
}

#[test]
fn a_flipped_byte_in_every_file_type_is_found() {
    let b = base();
    let mut seen_ext = std::collections::BTreeSet::new();
    let mut cases = Vec::new();
    for rel in files_of(&b.clean) {
        let len = fs::metadata(b.clean.join(&rel)).unwrap().len();
        let class = chain::classify(&rel);
        if len == 0
            || matches!(
                class,
                chain::FileClass::Lock | chain::FileClass::TantivyLock
            )
        {
            continue;
        }
        let ty = match &class {
            chain::FileClass::SegmentFile { .. } => {
                format!("segment .{}", rel.rsplit('.').next().unwrap())
            }
            chain::FileClass::Digest => "digest".into(),
            _ => rel.rsplit('/').next().unwrap().to_string(),
        };
        if seen_ext.insert(ty.clone()) {
            cases.push((ty, rel, len));
        }
    }
    let types: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    for want in [
        "segment .store",
        "segment .idx",
        "segment .term",
        "segment .fast",
        "meta.json",
        ".managed.json",
        "checkpoint.json",
        "signing.pk8",
        "signing.pub",
        "tokens.json",
        "alerts.jsonl",
        "digest",
        "state.json",
    ] {
        assert!(types.contains(&want), "no {want} file in {types:?}");
    }
    for (ty, rel, len) in cases {
        let (_t, d) = copy_of(&b.clean);
        flip(&d.join(&rel), len as usize / 2);
        let r = verify(&d);
        let found = match ty.as_str() {
            // A digest is JSON: a flipped byte breaks it or changes a signed value.
            "digest" => r.has(Category::Modified, &rel) || r.has(Category::BadSignature, &rel),
            _ => r.has(Category::Modified, &rel),
        };
        assert!(found, "flipped {ty} ({rel}) not found:\n{}", show(&r));
    }
}

#[test]
fn deleted_swapped_and_inserted_segment_files_are_found() {
    let b = base();
    let files = files_of(&b.clean);
    let segs: Vec<&String> = files
        .iter()
        .filter(|f| f.ends_with(".store") && f.contains("/syslog/"))
        .collect();
    assert!(segs.len() >= 2, "{segs:?}");

    let (_t, d) = copy_of(&b.clean);
    fs::remove_file(d.join(segs[0])).unwrap();
    expect(&verify(&d), Category::Missing, segs[0]);

    let (_t, d) = copy_of(&b.clean);
    let (a, c) = (d.join(segs[0]), d.join(segs[1]));
    let tmp = d.join("swap.tmp");
    fs::rename(&a, &tmp).unwrap();
    fs::rename(&c, &a).unwrap();
    fs::rename(&tmp, &c).unwrap();
    let r = verify(&d);
    expect(&r, Category::Reordered, segs[0]);
    expect(&r, Category::Reordered, segs[1]);

    let (_t, d) = copy_of(&b.clean);
    let part = chain::partition_of(segs[0]).unwrap().to_string();
    fs::write(d.join(&part).join("extra.bin"), b"x").unwrap();
    let extra_seg = segs[0].replace(".store", ".9.del");
    fs::write(d.join(&extra_seg), b"deletes").unwrap();
    fs::write(d.join("notes.txt"), b"hello").unwrap();
    let r = verify(&d);
    expect(&r, Category::Unexpected, &format!("{part}/extra.bin"));
    expect(&r, Category::Unexpected, &extra_seg);
    expect(&r, Category::Unexpected, "notes.txt");

    let (_t, d) = copy_of(&b.clean);
    fs::remove_dir_all(d.join(&part)).unwrap();
    expect(&verify(&d), Category::Missing, &part);

    let (_t, d) = copy_of(&b.clean);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(d.join(segs[1]))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len / 2).unwrap();
    expect(&verify(&d), Category::Truncated, segs[1]);
}

#[test]
fn wal_tampering_is_found() {
    let b = base();
    // The crash image: the chain does not end with a final digest, and what the server wrote after its
    // last digest (tantivy's files of a segment in progress) is not covered; its WAL is.
    let r = verify_crash(&b.crash);
    expect(&r, Category::Truncated, chain::DIGEST_DIR);
    assert!(
        r.findings.iter().all(|f| !f.path.starts_with("wal/")),
        "{}",
        show(&r)
    );
    let wal = wal_files(&b.crash);
    assert_eq!(wal.len(), 2);
    let rel = |p: &Path| {
        p.strip_prefix(&b.crash)
            .unwrap()
            .to_string_lossy()
            .to_string()
    };
    let (w0, w1) = (rel(&wal[0]), rel(&wal[1]));

    let (_t, d) = copy_of(&b.crash);
    flip(&d.join(&w0), 100);
    expect(&verify_crash(&d), Category::Modified, &w0);

    let (_t, d) = copy_of(&b.crash);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(d.join(&w0))
        .unwrap();
    f.set_len(f.metadata().unwrap().len() - 7).unwrap();
    expect(&verify_crash(&d), Category::Truncated, &w0);

    let (_t, d) = copy_of(&b.crash);
    fs::remove_file(d.join(&w1)).unwrap();
    expect(&verify_crash(&d), Category::Missing, &w1);

    let (_t, d) = copy_of(&b.crash);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(d.join(&w1))
        .unwrap();
    std::io::Write::write_all(&mut f, b"forged record").unwrap();
    expect(&verify_crash(&d), Category::Unexpected, &w1);

    let (_t, d) = copy_of(&b.crash);
    let tmp = d.join("wal/swap");
    fs::rename(d.join(&w0), &tmp).unwrap();
    fs::rename(d.join(&w1), d.join(&w0)).unwrap();
    fs::rename(&tmp, d.join(&w1)).unwrap();
    let r = verify_crash(&d);
    expect(&r, Category::Reordered, &w0);
    expect(&r, Category::Reordered, &w1);
}

#[test]
fn digest_tampering_is_found() {
    let b = base();
    let (list, _) = chain::list_digests(&b.clean).unwrap();
    assert!(list.len() >= 8, "{} digests", list.len());
    let rel = |seq: u64| chain::digest_rel(seq);
    let last = list.len() as u64 - 1;

    // A digest deleted from the middle.
    let (_t, d) = copy_of(&b.clean);
    fs::remove_file(chain::digest_path(&d, 3)).unwrap();
    expect(&verify(&d), Category::Missing, &rel(3));

    // The last digests deleted: the chain no longer ends with a final digest, and what only they
    // sealed is not covered.
    for cut in [1, 3] {
        let (_t, d) = copy_of(&b.clean);
        for s in last + 1 - cut..=last {
            fs::remove_file(chain::digest_path(&d, s)).unwrap();
        }
        let r = verify(&d);
        expect(&r, Category::Truncated, &rel(last + 1 - cut));
    }

    // Two digests swapped.
    let (_t, d) = copy_of(&b.clean);
    let (p2, p4) = (chain::digest_path(&d, 2), chain::digest_path(&d, 4));
    let (c2, c4) = (fs::read(&p2).unwrap(), fs::read(&p4).unwrap());
    fs::write(&p2, c4).unwrap();
    fs::write(&p4, c2).unwrap();
    let r = verify(&d);
    expect(&r, Category::Reordered, &rel(2));
    expect(&r, Category::Reordered, &rel(4));

    // Edited without signing again.
    let (_t, d) = copy_of(&b.clean);
    let mut dg = chain::read_digest(&chain::digest_path(&d, 2)).unwrap();
    dg.body.events += 1;
    fs::write(
        chain::digest_path(&d, 2),
        serde_json::to_vec_pretty(&dg).unwrap(),
    )
    .unwrap();
    expect(&verify(&d), Category::BadSignature, &rel(2));

    // Forged: edited and signed with another key.
    let (other, _) = SigningKey::generate_in_memory().unwrap();
    let (_t, d) = copy_of(&b.clean);
    let mut dg = chain::read_digest(&chain::digest_path(&d, 2)).unwrap();
    dg.body.changes.segments_added.clear();
    dg.body.key_id = other.public().key_id();
    let forged = Digest::sign(dg.body, &other);
    fs::write(
        chain::digest_path(&d, 2),
        serde_json::to_vec_pretty(&forged).unwrap(),
    )
    .unwrap();
    expect(&verify(&d), Category::Forged, &rel(2));

    // A digest inserted after the head.
    let (_t, d) = copy_of(&b.clean);
    let head = chain::read_digest(&chain::digest_path(&d, last)).unwrap();
    let mut body = head.body.clone();
    body.seq = last + 1;
    body.prev_signature = head.signature.clone();
    body.key_id = other.public().key_id();
    chain::write_digest(&d, &Digest::sign(body, &other)).unwrap();
    expect(&verify(&d), Category::Forged, &rel(last + 1));

    // The whole chain rewritten with another key, and the data directory's public key replaced: the
    // data directory's own key cannot tell; the key held elsewhere can.
    let (_t, d) = copy_of(&b.clean);
    let mut prev = String::new();
    for s in 0..=last {
        let mut dg = chain::read_digest(&chain::digest_path(&d, s)).unwrap();
        dg.body.key_id = other.public().key_id();
        dg.body.prev_signature = prev.clone();
        let re = Digest::sign(dg.body, &other);
        prev = re.signature.clone();
        fs::write(
            chain::digest_path(&d, s),
            serde_json::to_vec_pretty(&re).unwrap(),
        )
        .unwrap();
    }
    let pub_path = d.join("keys/signing.pub");
    fs::write(&pub_path, other.public().to_text()).unwrap();
    let r = verify(&d);
    expect(&r, Category::Forged, &rel(0));
    expect(&r, Category::Forged, &rel(last));
    expect(&r, Category::Modified, "keys/signing.pub");
    let own = integrity::verify(&d, None, None).unwrap();
    assert!(
        own.findings
            .iter()
            .all(|f| f.path == "keys/signing.pub" || f.path == "integrity/state.json"),
        "{}",
        show(&own)
    );

    // The state cache edited: a segment dropped from the cached state (what a writer starting from it
    // would then no longer expect).
    let (_t, d) = copy_of(&b.clean);
    let p = d.join(chain::STATE_CACHE);
    let mut cache: chain::StateCache = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    let part = cache.state.segments.values_mut().next().unwrap();
    let first = part.keys().next().unwrap().clone();
    part.remove(&first);
    fs::write(&p, serde_json::to_vec(&cache).unwrap()).unwrap();
    expect(&verify(&d), Category::Modified, chain::STATE_CACHE);
}

#[test]
fn retention_deletions_verify_clean_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Duration::from_secs(3600));
    cfg.retention = Retention::default();
    let days = 86_400 * 1_000_000_000;
    cfg.retention.max_age_ns.insert(Kind::Audit, 30 * days);
    // A namespace with a rule of its own has partitions of its own, deleted by that rule.
    cfg.retention
        .namespace_age_ns
        .insert("dev".into(), 7 * days);
    let store = Store::open(cfg).unwrap();
    store
        .ingest(key("a"), &Source::of_kind(Kind::Audit), audit_events())
        .unwrap();
    let dev = Source {
        kind: Kind::Container,
        namespace: Some("dev".into()),
        ..Source::default()
    };
    let ts = parse_rfc3339("2024-11-01T10:00:00Z").unwrap();
    store
        .ingest(key("d"), &dev, decode(Format::Text, "dev line\n", ts))
        .unwrap();
    store
        .ingest(key("s"), &ssh_source(), syslog(&ssh_lines()[..300]))
        .unwrap();
    store.commit().unwrap();
    store.seal_now().unwrap();
    let deleted = store
        .apply_retention(parse_rfc3339("2024-12-20T00:00:00Z").unwrap())
        .unwrap();
    assert!(deleted > 0);
    store.close().unwrap();
    let r = integrity::verify(dir.path(), None, None).unwrap();
    assert!(r.is_clean(), "{}", show(&r));
    let removals: Vec<_> = digests(dir.path())
        .into_iter()
        .flat_map(|d| d.body.changes.partitions_removed)
        .collect();
    assert_eq!(removals.len() as u64, deleted);
    let policy = |p: &chain::PartitionRemoval| match &p.reason {
        Reason::Retention { policy } => policy.clone(),
        other => panic!("{other:?}"),
    };
    let (own, by_age): (Vec<_>, Vec<_>) = removals
        .iter()
        .partition(|p| p.partition == "partitions/container/2024-11-01@dev");
    assert_eq!(own.len(), 1, "{removals:?}");
    assert_eq!(
        policy(own[0]),
        "namespace: dev container partitions older than 604800s"
    );
    assert!(by_age.iter().all(|p| policy(p).starts_with("age: audit")));
    assert!(removals.iter().all(|p| p.events > 0));
}

#[test]
fn an_idle_store_writes_digests_on_its_cadence() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Duration::from_millis(100))).unwrap();
    std::thread::sleep(Duration::from_millis(900));
    let n = chain::list_digests(dir.path()).unwrap().0.len();
    assert!(n >= 5, "{n} digests in 900 ms at a 100 ms cadence");
    // While it runs, verify takes it into account (the lock is held) and finds nothing wrong.
    let r = integrity::verify(dir.path(), None, None).unwrap();
    assert!(r.server_running && r.is_clean(), "{}", show(&r));
    store.close().unwrap();
    let ds = digests(dir.path());
    assert_eq!(ds.first().unwrap().body.kind, DigestKind::Start);
    assert_eq!(ds.last().unwrap().body.kind, DigestKind::Final);
    assert!(
        ds.iter()
            .filter(|d| d.body.kind == DigestKind::Periodic)
            .count()
            >= 4
    );
    let r = integrity::verify(dir.path(), None, None).unwrap();
    assert!(r.is_clean(), "{}", show(&r));
}

#[test]
fn a_silence_after_a_crash_is_a_time_gap_and_since_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Duration::from_millis(50))).unwrap();
    store
        .ingest(key("x"), &ssh_source(), syslog(&ssh_lines()[..20]))
        .unwrap();
    store.commit().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // A copy of the running server's directory is what a crash leaves.
    let (_t, image) = copy_of(dir.path());
    store.close().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let restarted = Store::open(config(&image, Duration::from_millis(50))).unwrap();
    restarted.close().unwrap();
    let opts = |since| VerifyOptions {
        gap_slack: Some(Duration::ZERO),
        since,
        ..VerifyOptions::default()
    };
    let r = integrity::verify_with(&image, &opts(None)).unwrap();
    expect(&r, Category::TimeGap, chain::DIGEST_DIR);
    assert!(
        r.findings.iter().all(|f| f.category == Category::TimeGap),
        "{}",
        show(&r)
    );
    let later = integrity::verify_with(&image, &opts(Some(chain::now_ns()))).unwrap();
    assert!(later.is_clean(), "{}", show(&later));
    // The clean stop of the first server, then its restart: downtime, not a gap.
    let (_t2, d2) = copy_of(dir.path());
    std::thread::sleep(Duration::from_millis(300));
    Store::open(config(&d2, Duration::from_millis(50)))
        .unwrap()
        .close()
        .unwrap();
    let r = integrity::verify_with(&d2, &opts(None)).unwrap();
    assert!(r.is_clean(), "{}", show(&r));
    assert!(
        r.info.iter().any(|i| i.starts_with("down from")),
        "{:?}",
        r.info
    );
}

#[test]
fn commands_record_their_changes() {
    let b = base();
    // Without a server: an external digest seals the change, with its note.
    let (_t, d) = copy_of(&b.clean);
    fs::write(
        d.join("auth/tokens.json"),
        "{\"tokens\":[{\"name\":\"ci\"}]}\n",
    )
    .unwrap();
    let note = Note {
        what: "token created".into(),
        detail: "ci".into(),
        files: vec!["auth/tokens.json".into()],
        time_ns: 0,
    };
    let done = integrity::record_change(&d, &IntegrityConfig::default(), note.clone()).unwrap();
    assert!(matches!(done, Recorded::Sealed(_)));
    let r = verify(&d);
    assert!(r.is_clean(), "{}", show(&r));
    assert!(r.notes.iter().any(|n| n.note.what == "token created"));

    // The same change without recording it is found.
    let (_t, d) = copy_of(&b.clean);
    fs::write(
        d.join("auth/tokens.json"),
        "{\"tokens\":[{\"name\":\"ci\"}]}\n",
    )
    .unwrap();
    expect(&verify(&d), Category::Modified, "auth/tokens.json");

    // A change the note does not name is recorded as an anomaly.
    let (_t, d) = copy_of(&b.clean);
    fs::write(d.join("auth/tokens.json"), "{}\n").unwrap();
    fs::write(d.join("checkpoint.json"), "{}").unwrap();
    integrity::record_change(&d, &IntegrityConfig::default(), note.clone()).unwrap();
    let r = verify(&d);
    expect(&r, Category::Modified, "checkpoint.json");
    assert!(
        !r.has(Category::Modified, "auth/tokens.json"),
        "{}",
        show(&r)
    );

    // With a server running: the note waits for its next digest.
    let (_t, d) = copy_of(&b.clean);
    let store = Store::open(config(&d, Duration::from_secs(3600))).unwrap();
    fs::write(
        d.join("auth/tokens.json"),
        "{\"tokens\":[{\"name\":\"ops\"}]}\n",
    )
    .unwrap();
    let done = integrity::record_change(&d, &IntegrityConfig::default(), note).unwrap();
    assert!(matches!(done, Recorded::Deferred(_)));
    let r = verify(&d);
    assert!(r.is_clean() && !r.pending.is_empty(), "{}", show(&r));
    store.close().unwrap();
    let r = verify(&d);
    assert!(r.is_clean(), "{}", show(&r));
    assert!(r.notes.iter().any(|n| n.note.what == "token created"));
}

#[test]
fn a_running_server_has_pending_changes_not_findings() {
    let b = base();
    let (_t, d) = copy_of(&b.clean);
    let store = Store::open(config(&d, Duration::from_secs(3600))).unwrap();
    store
        .ingest(key("late"), &ssh_source(), syslog(&ssh_lines()[1900..]))
        .unwrap();
    store.commit().unwrap();
    let r = verify(&d);
    assert!(r.server_running && r.is_clean(), "{}", show(&r));
    assert!(!r.pending.is_empty());
    // Sealed data changed while it runs is a finding all the same.
    let seg = files_of(&d)
        .into_iter()
        .find(|f| f.ends_with(".store") && f.contains("/audit/"))
        .unwrap();
    flip(&d.join(&seg), 10);
    expect(&verify(&d), Category::Modified, &seg);
    flip(&d.join(&seg), 10);
    store.close().unwrap();
    let r = verify(&d);
    assert!(r.is_clean(), "{}", show(&r));
}

#[test]
fn changes_while_stopped_are_recorded_at_the_next_start() {
    let b = base();
    let (_t, d) = copy_of(&b.clean);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(d.join("alerts/alerts.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"close\":{\"id\":\"a1\"}}\n").unwrap();
    drop(f);
    let store = Store::open(config(&d, Duration::from_secs(3600))).unwrap();
    store.close().unwrap();
    // The file is sealed again, but the chain keeps what happened.
    let r = verify(&d);
    assert_eq!(r.findings.len(), 1, "{}", show(&r));
    expect(&r, Category::Unexpected, "alerts/alerts.jsonl");
    assert!(r.findings[0].detail.contains("recorded by digest"));
}

#[test]
fn encrypted_data_dirs_compose_with_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let master = Arc::new(MasterKey::from_bytes(&[7u8; 32]).unwrap());
    let mut cfg = config(dir.path(), Duration::from_secs(3600));
    cfg.encryption = Some(EncryptionConfig::new(master.clone()));
    let store = Store::open(cfg).unwrap();
    let n = store
        .ingest(key("a"), &Source::of_kind(Kind::Audit), audit_events())
        .unwrap()
        .events;
    store.commit().unwrap();
    store.close().unwrap();
    // Without the master key: file hashes (of the ciphertext) only.
    let r = integrity::verify(dir.path(), None, None).unwrap();
    assert!(r.is_clean(), "{}", show(&r));
    assert_eq!(r.events, 0);
    assert!(!r.info.is_empty());
    // With it: the events' Merkle roots (of the plaintext) too.
    let opts = VerifyOptions {
        encryption: Some(EncryptionConfig::new(master)),
        ..VerifyOptions::default()
    };
    let r = integrity::verify_with(dir.path(), &opts).unwrap();
    assert!(r.is_clean(), "{}", show(&r));
    assert_eq!(r.events, n);
    flip(&dir.path().join("keys/keyring.json"), 40);
    expect(
        &integrity::verify_with(dir.path(), &opts).unwrap(),
        Category::Modified,
        "keys/keyring.json",
    );
}

#[test]
fn a_store_opened_without_integrity_settings_continues_an_existing_chain() {
    let b = base();
    let (_t, d) = copy_of(&b.clean);
    let mut cfg = StoreConfig::new(&d);
    cfg.commit_interval = Duration::from_secs(3600);
    assert!(cfg.integrity.is_none());
    let store = Store::open(cfg).unwrap();
    assert!(store.integrity_head().is_some());
    store
        .ingest(key("import"), &ssh_source(), syslog(&ssh_lines()[..50]))
        .unwrap();
    store.close().unwrap();
    let r = verify(&d);
    assert!(r.is_clean(), "{}", show(&r));
    assert_eq!(r.head.unwrap().kind, DigestKind::Final);
    // A data directory without a chain stays without one.
    let fresh = tempfile::tempdir().unwrap();
    Store::open(StoreConfig::new(fresh.path()))
        .unwrap()
        .close()
        .unwrap();
    assert!(!fresh.path().join(chain::DIGEST_DIR).exists());
}
