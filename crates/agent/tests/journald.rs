//! The journal reader against the real `journalctl`, on journals written by `systemd-journal-remote`
//! from journal export format: unit filters, resuming at a cursor, following new entries, previous boots,
//! undecodable and oversized messages, and the errors of a missing binary and a bad directory.
//!
//! Needs `journalctl` (Debian package `systemd`) and `/lib/systemd/systemd-journal-remote` (Debian
//! package `systemd-journal-remote`); a test fails, saying so, when one is missing.

use quarry_agent::config::{JournalStart, JournaldConfig};
use quarry_agent::journald::{JournalEntry, JournalError, JournalReader};
use quarry_model::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BOOT_A: &str = "0123456789abcdef0123456789abcdef";
const BOOT_B: &str = "fedcba9876543210fedcba9876543210";
/// 2023-11-23T10:00:00Z in microseconds.
const T0: u64 = 1_700_733_600_000_000;
const CAP: usize = 1 << 20;

fn journal_remote() -> PathBuf {
    for p in [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "these tests need systemd-journal-remote to write test journals: install the Debian package \
         systemd-journal-remote (apt-get install -y systemd-journal-remote), which provides \
         /lib/systemd/systemd-journal-remote"
    );
}

fn journalctl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("journalctl");
        if p.is_file() {
            return p;
        }
    }
    panic!("these tests need journalctl: install the Debian package systemd (apt-get install -y systemd)");
}

/// One journal entry to write: its fields in order.
struct Ent(Vec<(&'static str, Vec<u8>)>);

impl Ent {
    /// An entry of `unit` in `boot`, `secs` seconds after [`T0`].
    fn new(unit: &str, boot: &str, secs: u64, msg: impl AsRef<[u8]>) -> Ent {
        let ident = unit.trim_end_matches(".service").to_string();
        let mut f: Vec<(&'static str, Vec<u8>)> = vec![
            (
                "__REALTIME_TIMESTAMP",
                (T0 + secs * 1_000_000).to_string().into(),
            ),
            (
                "__MONOTONIC_TIMESTAMP",
                (1_000_000 + secs * 1_000_000).to_string().into(),
            ),
            ("_BOOT_ID", boot.into()),
            ("_HOSTNAME", "node-1".into()),
            ("_SYSTEMD_UNIT", unit.into()),
            ("SYSLOG_IDENTIFIER", ident.clone().into()),
            ("_PID", "812".into()),
            ("_UID", "0".into()),
            ("_COMM", ident.clone().into()),
            ("_EXE", format!("/usr/bin/{ident}").into()),
            ("SYSLOG_FACILITY", "3".into()),
            ("PRIORITY", "6".into()),
            ("_TRANSPORT", "stdout".into()),
        ];
        f.push(("MESSAGE", msg.as_ref().to_vec()));
        Ent(f)
    }

    fn set(mut self, name: &'static str, value: &str) -> Ent {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value.into(),
            None => self.0.push((name, value.into())),
        }
        self
    }
}

/// Journal export format: `NAME=value` lines, or `NAME`, a 64-bit little-endian length and the bytes for
/// values with newlines or invalid UTF-8; a blank line after each entry.
fn export(entries: &[Ent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        for (name, v) in &e.0 {
            if v.contains(&b'\n') || std::str::from_utf8(v).is_err() {
                out.extend_from_slice(name.as_bytes());
                out.push(b'\n');
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                out.extend_from_slice(v);
            } else {
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                out.extend_from_slice(v);
            }
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Writes `entries` into `dir/file` (a new journal file, or appended to an existing one).
fn write_journal(dir: &Path, file: &str, entries: &[Ent]) {
    let out = dir.join(file);
    let mut child = Command::new(journal_remote())
        .arg(format!("--output={}", out.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run systemd-journal-remote: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&export(entries))
        .unwrap();
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "systemd-journal-remote: {stderr}");
    assert!(
        stderr.contains(&format!("writing {} entries", entries.len())),
        "systemd-journal-remote: {stderr}"
    );
}

fn cfg(dir: &Path, units: &[&str], from: JournalStart) -> JournaldConfig {
    JournaldConfig {
        units: units.iter().map(|u| u.to_string()).collect(),
        directory: Some(dir.to_path_buf()),
        journalctl: Some(journalctl()),
        read_from: from,
    }
}

fn fail(e: JournalError) -> ! {
    let text = e.to_string();
    if text.contains("Insufficient watch descriptors") {
        panic!(
            "journalctl cannot --follow on this machine: no inotify instance left \
             (raise fs.inotify.max_user_instances): {text}"
        );
    }
    panic!("{text}");
}

/// Reads until `n` entries have come, failing after 20 s.
fn read_n(r: &mut JournalReader, n: usize) -> Vec<JournalEntry> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} entries came: {:?}",
            got.len(),
            messages(&got)
        );
        match r.read(n - got.len(), Duration::from_millis(200)) {
            Ok(v) => got.extend(v),
            Err(e) => fail(e),
        }
    }
    got
}

/// Whatever comes within `d`.
fn read_for(r: &mut JournalReader, d: Duration) -> Vec<JournalEntry> {
    let deadline = Instant::now() + d;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        match r.read(1000, Duration::from_millis(100)) {
            Ok(v) => got.extend(v),
            Err(e) => fail(e),
        }
    }
    got
}

fn messages(es: &[JournalEntry]) -> Vec<String> {
    es.iter().map(|e| e.event.message().to_string()).collect()
}

fn field(e: &JournalEntry, k: &str) -> Option<String> {
    e.event.fields.get(k).map(Value::to_string)
}

fn cursors(es: &[JournalEntry]) -> Vec<String> {
    es.iter().map(|e| e.cursor.clone()).collect()
}

const KLOG_START: &str =
    r#"I1123 10:00:01.000000     812 server.go:487] "Kubelet version" kubeletVersion="v1.29.0""#;
const KLOG_ERROR: &str = r#"E1123 10:00:04.500000     812 pod_workers.go:1298] "Error syncing pod, skipping" err="failed to \"StartContainer\"" pod="default/web-0""#;
const CONTAINERD: &str = r#"time="2023-11-23T10:00:02.000000000Z" level=info msg="StartContainer for \"4f1c\" returns successfully""#;

#[test]
fn units_are_filtered_and_kubelet_klog_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(
        dir.path(),
        "node.journal",
        &[
            Ent::new("kubelet.service", BOOT_A, 1, KLOG_START),
            Ent::new("containerd.service", BOOT_A, 2, CONTAINERD),
            Ent::new(
                "ssh.service",
                BOOT_A,
                3,
                "Accepted publickey for root from 10.0.0.9 port 52200 ssh2",
            ),
            Ent::new("kubelet.service", BOOT_A, 4, KLOG_ERROR).set("PRIORITY", "3"),
            Ent::new(
                "systemd-logind.service",
                BOOT_A,
                5,
                "New session 3 of user root.",
            ),
            // systemd's own message about the unit: `-u` includes it
            Ent::new(
                "init.scope",
                BOOT_A,
                6,
                "kubelet.service: Consumed 1.2s CPU time.",
            )
            .set("_PID", "1")
            .set("SYSLOG_IDENTIFIER", "systemd")
            .set("UNIT", "kubelet.service"),
            Ent::new(
                "containerd.service",
                BOOT_A,
                7,
                "containerd successfully booted",
            ),
        ],
    );
    let c = cfg(
        dir.path(),
        &["kubelet.service", "containerd.service"],
        JournalStart::Head,
    );
    let mut r = JournalReader::start(&c, None, CAP).unwrap();
    assert!(
        r.command().contains("--unit=kubelet.service"),
        "{}",
        r.command()
    );
    let got = read_n(&mut r, 5);
    assert_eq!(
        messages(&got),
        [
            KLOG_START,
            CONTAINERD,
            KLOG_ERROR,
            "kubelet.service: Consumed 1.2s CPU time.",
            "containerd successfully booted"
        ]
    );
    assert!(read_for(&mut r, Duration::from_millis(700)).is_empty());
    let units: Vec<_> = got.iter().map(|e| field(e, "systemd.unit")).collect();
    assert_eq!(
        units,
        [
            Some("kubelet.service".to_string()),
            Some("containerd.service".into()),
            Some("kubelet.service".into()),
            Some("init.scope".into()),
            Some("containerd.service".into()),
        ]
    );
    let k = &got[0];
    assert_eq!(k.event.format, "journald");
    assert_eq!(k.event.parse_error, None);
    assert_eq!(k.event.ts, (T0 as i64 + 1_000_000) * 1000);
    assert_eq!(field(k, "level").as_deref(), Some("info"));
    assert_eq!(field(k, "file").as_deref(), Some("server.go"));
    assert_eq!(field(k, "line").as_deref(), Some("487"));
    assert_eq!(field(k, "appname").as_deref(), Some("kubelet"));
    assert_eq!(field(k, "hostname").as_deref(), Some("node-1"));
    assert_eq!(field(k, "severity").as_deref(), Some("info"));
    assert_eq!(field(k, "journald.boot_id").as_deref(), Some(BOOT_A));
    assert_eq!(field(&got[2], "level").as_deref(), Some("error"));
    assert_eq!(field(&got[2], "severity").as_deref(), Some("err"));
    assert_eq!(field(&got[1], "level"), None);
    // the cursor is the entry's __CURSOR, and raw is journalctl's JSON line
    for e in &got {
        let raw: serde_json::Value = serde_json::from_str(&e.event.raw).unwrap();
        assert_eq!(raw["__CURSOR"].as_str(), Some(e.cursor.as_str()));
        assert_eq!(
            field(e, "journald.cursor").as_deref(),
            Some(e.cursor.as_str())
        );
    }
    let mut cs = cursors(&got);
    cs.dedup();
    assert_eq!(cs.len(), 5);
    assert_eq!(r.cursor(), Some(got[4].cursor.as_str()));
    assert_eq!(r.stats().entries, 5);
    assert_eq!(r.stats().parse_errors, 0);
    assert!(r.check().is_ok());
}

/// More than the 10 entries `--follow` shows without `--no-tail`.
fn fifteen_entries() -> Vec<Ent> {
    (0..15)
        .map(|i| {
            let unit = if i % 2 == 0 {
                "kubelet.service"
            } else {
                "containerd.service"
            };
            Ent::new(unit, BOOT_A, 10 + i, format!("entry {i}"))
        })
        .collect()
}

#[test]
fn resuming_after_a_cursor_repeats_nothing_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), "a.journal", &fifteen_entries());
    let c = cfg(
        dir.path(),
        &["kubelet.service", "containerd.service"],
        JournalStart::Head,
    );
    let all = read_n(&mut JournalReader::start(&c, None, CAP).unwrap(), 15);
    for k in [0, 6, 13] {
        let mut r = JournalReader::start(&c, Some(&all[k].cursor), CAP).unwrap();
        let rest = read_n(&mut r, 14 - k);
        assert_eq!(cursors(&rest), cursors(&all[k + 1..]), "after entry {k}");
        assert!(read_for(&mut r, Duration::from_millis(500)).is_empty());
        assert_eq!(r.stats().cursor_not_found, 0);
    }
    // after the last entry: nothing until more is written, then exactly that
    let mut r = JournalReader::start(&c, Some(&all[14].cursor), CAP).unwrap();
    assert_eq!(r.cursor(), Some(all[14].cursor.as_str()));
    assert!(read_for(&mut r, Duration::from_millis(700)).is_empty());
    write_journal(
        dir.path(),
        "a.journal",
        &[
            Ent::new("kubelet.service", BOOT_A, 30, "entry 15"),
            Ent::new("ssh.service", BOOT_A, 31, "not read"),
            Ent::new("containerd.service", BOOT_A, 32, "entry 16"),
        ],
    );
    assert_eq!(messages(&read_n(&mut r, 2)), ["entry 15", "entry 16"]);
    assert!(read_for(&mut r, Duration::from_millis(500)).is_empty());
}

#[test]
fn a_cursor_the_journal_does_not_hold_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), "a.journal", &fifteen_entries());
    // a cursor of another journal, older than every entry here (as after the journal was vacuumed)
    let other = tempfile::tempdir().unwrap();
    write_journal(
        other.path(),
        "o.journal",
        &[Ent::new("kubelet.service", BOOT_B, 0, "elsewhere")],
    );
    let units = ["kubelet.service", "containerd.service"];
    let gone = read_n(
        &mut JournalReader::start(&cfg(other.path(), &units, JournalStart::Head), None, CAP)
            .unwrap(),
        1,
    );
    let c = cfg(dir.path(), &units, JournalStart::Head);
    let mut r = JournalReader::start(&c, Some(&gone[0].cursor), CAP).unwrap();
    let got = read_n(&mut r, 15);
    assert_eq!(messages(&got)[0], "entry 0");
    assert_eq!(messages(&got)[14], "entry 14");
    assert_eq!(r.stats().cursor_not_found, 1);
    // a cursor that is not one at all: journalctl refuses it
    let mut r = JournalReader::start(&c, Some("garbage"), CAP).unwrap();
    let err = loop {
        match r.read(10, Duration::from_secs(5)) {
            Ok(v) => assert!(v.is_empty(), "{:?}", messages(&v)),
            Err(e) => break e.to_string(),
        }
    };
    assert!(err.contains("exited with status 1"), "{err}");
    assert!(err.contains("cursor"), "{err}");
}

#[test]
fn follow_sees_new_files_and_entries_appended_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<Ent> = (0..3)
        .map(|i| Ent::new("kubelet.service", BOOT_A, i, format!("first {i}")))
        .collect();
    write_journal(dir.path(), "a.journal", &first);
    let c = cfg(dir.path(), &["kubelet.service"], JournalStart::Head);
    let mut r = JournalReader::start(&c, None, CAP).unwrap();
    assert_eq!(read_n(&mut r, 3).len(), 3);
    write_journal(
        dir.path(),
        "b.journal",
        &[
            Ent::new("kubelet.service", BOOT_A, 10, "new file 0"),
            Ent::new("kubelet.service", BOOT_A, 11, "new file 1"),
        ],
    );
    assert_eq!(messages(&read_n(&mut r, 2)), ["new file 0", "new file 1"]);
    write_journal(
        dir.path(),
        "a.journal",
        &[Ent::new("kubelet.service", BOOT_A, 20, "appended")],
    );
    assert_eq!(messages(&read_n(&mut r, 1)), ["appended"]);
    assert!(r.check().is_ok());
    assert_eq!(r.stats().entries, 6);
}

fn two_boots(dir: &Path) {
    let mut es: Vec<Ent> = (0..4)
        .map(|i| Ent::new("kubelet.service", BOOT_A, i, format!("boot A {i}")))
        .collect();
    es.extend((0..3).map(|i| Ent::new("kubelet.service", BOOT_B, 100 + i, format!("boot B {i}"))));
    // the new boot begins with other units' entries
    es.insert(
        4,
        Ent::new("systemd-journald.service", BOOT_B, 99, "Journal started"),
    );
    write_journal(dir, "boots.journal", &es);
}

#[test]
fn previous_boots_are_read_when_resuming_and_boot_start_reads_only_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    two_boots(dir.path());
    let units = ["kubelet.service"];
    // --follow alone would only show the newest boot
    let head = cfg(dir.path(), &units, JournalStart::Head);
    let all = read_n(&mut JournalReader::start(&head, None, CAP).unwrap(), 7);
    assert_eq!(messages(&all)[0], "boot A 0");
    let mut r = JournalReader::start(&head, Some(&all[1].cursor), CAP).unwrap();
    assert_eq!(
        messages(&read_n(&mut r, 5)),
        ["boot A 2", "boot A 3", "boot B 0", "boot B 1", "boot B 2"]
    );
    // first start, default: the newest boot from its start
    let boot = cfg(dir.path(), &units, JournalStart::Boot);
    let mut r = JournalReader::start(&boot, None, CAP).unwrap();
    assert!(r.command().contains("--cursor="), "{}", r.command());
    assert_eq!(
        messages(&read_n(&mut r, 3)),
        ["boot B 0", "boot B 1", "boot B 2"]
    );
    assert!(read_for(&mut r, Duration::from_millis(500)).is_empty());
    // first start from the end: only what comes next
    let tail = cfg(dir.path(), &units, JournalStart::Tail);
    let mut r = JournalReader::start(&tail, None, CAP).unwrap();
    assert!(read_for(&mut r, Duration::from_millis(700)).is_empty());
    write_journal(
        dir.path(),
        "more.journal",
        &[Ent::new("kubelet.service", BOOT_B, 200, "later")],
    );
    assert_eq!(messages(&read_n(&mut r, 1)), ["later"]);
}

#[test]
fn boot_start_on_an_empty_journal_reads_what_comes() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &["kubelet.service"], JournalStart::Boot);
    let mut r = JournalReader::start(&c, None, CAP).unwrap();
    assert!(r.command().contains("--lines=0"), "{}", r.command());
    assert!(read_for(&mut r, Duration::from_millis(700)).is_empty());
    write_journal(
        dir.path(),
        "first.journal",
        &[Ent::new("kubelet.service", BOOT_A, 0, "hello")],
    );
    assert_eq!(messages(&read_n(&mut r, 1)), ["hello"]);
}

#[test]
fn undecodable_multi_line_and_large_messages() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!(
        "I1123 10:00:03.000000 812 kubelet.go:1] {}",
        "x".repeat(6000)
    );
    write_journal(
        dir.path(),
        "a.journal",
        &[
            Ent::new(
                "containerd.service",
                BOOT_A,
                1,
                b"pull \xff\xfe image \xc3\xa9",
            ),
            Ent::new("kubelet.service", BOOT_A, 2, "line one\nline two"),
            Ent::new("kubelet.service", BOOT_A, 3, &big),
            Ent::new("kubelet.service", BOOT_A, 4, "after"),
        ],
    );
    let units = ["kubelet.service", "containerd.service"];
    let c = cfg(dir.path(), &units, JournalStart::Head);
    let got = read_n(&mut JournalReader::start(&c, None, CAP).unwrap(), 4);
    assert_eq!(got[0].event.message(), "pull \u{fffd}\u{fffd} image é");
    assert!(got[0].event.raw.contains("\"MESSAGE\":[112,117,108,108"));
    assert_eq!(got[1].event.message(), "line one\nline two");
    // over 4096 bytes: whole, not null
    assert_eq!(got[2].event.message(), big);
    assert_eq!(field(&got[2], "level").as_deref(), Some("info"));
    assert!(got.iter().all(|e| e.event.parse_error.is_none()));
    // a cap below the big entry: cut, flagged, and its cursor still found
    let mut r = JournalReader::start(&c, None, 1000).unwrap();
    let cut = read_n(&mut r, 4);
    assert_eq!(cursors(&cut), cursors(&got));
    assert!(cut[2].event.raw.len() <= 1000);
    let why = cut[2].event.parse_error.as_deref().unwrap();
    assert!(why.contains("max_record_bytes (1000)"), "{why}");
    assert_eq!(cut[3].event.message(), "after");
    assert_eq!(r.stats().truncated, 1);
    assert_eq!(r.stats().parse_errors, 1);
}

#[test]
fn a_missing_journalctl_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for from in [JournalStart::Head, JournalStart::Boot] {
        let mut c = cfg(dir.path(), &["kubelet.service"], from);
        c.journalctl = Some("/nonexistent/bin/journalctl".into());
        let err = JournalReader::start(&c, None, CAP).unwrap_err();
        assert!(matches!(err, JournalError::Spawn { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("cannot start journalctl (/nonexistent/bin/journalctl)")
                && text.contains("No such file or directory")
                && text.contains("journald.journalctl"),
            "{text}"
        );
    }
}

#[test]
fn a_bad_directory_is_reported_with_journalctl_s_stderr() {
    let missing = Path::new("/nonexistent/journal");
    let c = cfg(missing, &["kubelet.service"], JournalStart::Head);
    let mut r = JournalReader::start(&c, None, CAP).unwrap();
    let err = match r.read(10, Duration::from_secs(10)) {
        Ok(v) => panic!("expected an error, got {:?}", messages(&v)),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.contains("journalctl exited with status 1")
            && text.contains("Failed to open /nonexistent/journal")
            && text.contains("--directory=/nonexistent/journal"),
        "{text}"
    );
    assert!(matches!(r.check(), Err(JournalError::Stopped { .. })));
    assert!(r.read(10, Duration::ZERO).is_err());
}
