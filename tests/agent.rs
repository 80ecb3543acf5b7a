//! `quarry agent` end to end: real files in a temporary pods tree, written and rotated by the test, the real
//! agent and server binaries, SIGKILL and a server outage.

mod common;

use common::{free_port, quarry, query, Server};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running agent.
struct Agent {
    child: Child,
    metrics: String,
}

impl Agent {
    fn start(server: &str, state: &Path, pods: &Path, extra: &[&str]) -> Agent {
        let port = free_port();
        let child = quarry()
            .args(["agent", "--server", server, "--state-dir"])
            .arg(state)
            .arg("--pods-root")
            .arg(pods)
            .args(["--node-name", "node-1", "--no-kubernetes", "--log"])
            // QUARRY_TEST_AGENT_LOG=debug shows what the agents did when a test fails
            .arg(std::env::var("QUARRY_TEST_AGENT_LOG").unwrap_or_else(|_| "warn".into()))
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start quarry agent");
        Agent {
            child,
            metrics: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    /// The value of an unlabelled metric, once the endpoint answers.
    fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::blocking::get(&self.metrics).ok()?.text().ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CRI line of pod `p` with sequence number `n`; its timestamp grows with `n`.
fn cri_line(p: usize, n: u64) -> String {
    let ns = 1_000_000 + n * 1000;
    format!(
        "2024-05-01T10:{:02}:{:02}.{:09}Z stdout F pod={p} seq={n}\n",
        ns / 60_000_000_000 % 60,
        ns / 1_000_000_000 % 60,
        ns % 1_000_000_000
    )
}

/// One container log being written and rotated like the kubelet (rename) or logrotate (copytruncate).
struct Writer {
    dir: PathBuf,
    file: File,
    written_since_rotation: u64,
    rotations: u64,
    copytruncate: bool,
}

impl Writer {
    fn new(pods: &Path, p: usize, copytruncate: bool) -> Writer {
        let dir = pods.join(format!("shop_web-{p}_uid-{p}/app"));
        fs::create_dir_all(&dir).unwrap();
        Writer {
            file: open_append(&dir.join("0.log")),
            dir,
            written_since_rotation: 0,
            rotations: 0,
            copytruncate,
        }
    }

    fn write(&mut self, text: &str) {
        self.file.write_all(text.as_bytes()).unwrap();
        self.written_since_rotation += 1;
    }

    fn rotate(&mut self) {
        self.rotations += 1;
        let current = self.dir.join("0.log");
        let rotated = self.dir.join(format!("0.log.{:08}", self.rotations));
        if self.copytruncate {
            fs::copy(&current, &rotated).unwrap();
            self.file.set_len(0).unwrap();
        } else {
            fs::rename(&current, &rotated).unwrap();
            self.file = open_append(&current);
        }
        self.written_since_rotation = 0;
        // keep the newest five rotated files, as the kubelet does
        if self.rotations > 5 {
            let _ = fs::remove_file(self.dir.join(format!("0.log.{:08}", self.rotations - 5)));
        }
    }
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn count(url: &str, q: &str) -> u64 {
    query(url, q)
        .first()
        .and_then(|r| r.values().next_back().and_then(|v| v.as_u64()))
        .unwrap_or(0)
}

const PODS: usize = 4;
const LINES: u64 = 3000;

/// Writes `LINES` sequence-numbered lines to each of `PODS` pods, about 10 s in all, rotating every few
/// hundred lines; returns the number of rotations.
fn write_pods(
    pods: &Path,
    copytruncate: bool,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let pods = pods.to_path_buf();
    std::thread::spawn(move || {
        let mut writers: Vec<Writer> = (0..PODS)
            .map(|p| Writer::new(&pods, p, copytruncate))
            .collect();
        for n in 0..LINES {
            for (p, w) in writers.iter_mut().enumerate() {
                w.write(&cri_line(p, n));
                if w.written_since_rotation >= 250 + 40 * p as u64 {
                    w.rotate();
                }
            }
            if n % 2 == 0 {
                std::thread::sleep(Duration::from_millis(8));
            }
        }
        done.store(true, Ordering::SeqCst);
        writers.iter().map(|w| w.rotations).sum::<u64>()
    })
}

/// Waits until `agent` has shipped everything, then checks that every line of every pod is stored once, in
/// its file's order, and that the agent gave nothing up.
fn check_each_line_once(url: &str, agent: &Agent) {
    let expected = PODS as u64 * LINES;
    let client = quarry_transport::Client::new(url).unwrap();
    let started = Instant::now();
    loop {
        client.commit().unwrap();
        let stored = count(url, "stats count(*)");
        if stored >= expected && agent.metric("quarry_agent_queue_bytes") == Some(0.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "only {stored} of {expected} lines arrived"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let text = reqwest::blocking::get(&agent.metrics)
        .unwrap()
        .text()
        .unwrap();
    for what in ["truncated_unread", "rotated_unread_bytes", "queue_corrupt"] {
        let line = format!("quarry_agent_dropped_total{{reason=\"{what}\"}} 0");
        assert!(text.contains(&line), "{what} is not 0:\n{text}");
    }
    client.commit().unwrap();
    assert_eq!(
        count(url, "stats count(*)"),
        expected,
        "duplicates stored: {:?}\nfor example {:?}",
        query(
            url,
            "stats count(*), count_distinct(@message) by kubernetes.pod"
        ),
        query(
            url,
            "stats count(*) as c by @message | filter c > 1 | sort @message | limit 40"
        )
        .iter()
        .map(|r| r["@message"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
    );
    for p in 0..PODS {
        let rows = query(
            url,
            &format!(
                "filter kubernetes.pod = \"web-{p}\" and kubernetes.namespace = \"shop\" and stream = \"stdout\" \
                 | fields @message | sort @timestamp asc | limit 10000"
            ),
        );
        let seqs: Vec<u64> = rows
            .iter()
            .map(|r| {
                let m = r["@message"].as_str().unwrap();
                m.rsplit("seq=").next().unwrap().parse().unwrap()
            })
            .collect();
        let want: Vec<u64> = (0..LINES).collect();
        assert_eq!(seqs.len(), want.len(), "pod {p}: wrong number of lines");
        assert_eq!(
            seqs, want,
            "pod {p}: lines missing, repeated or out of order"
        );
    }
}

/// A writer appends sequence-numbered lines to several pods, rotating them as the kubelet does (rename),
/// while the agent is killed with SIGKILL and restarted many times and the server is down for a while. In
/// the end every line is stored exactly once, and in each file's order.
#[test]
fn no_line_lost_or_repeated_across_sigkill_rotation_and_outage() {
    kill_and_restart_while_writing(false);
}

/// The same with copytruncate rotation: truncations and copies also happen while the agent is down or
/// being started, so streams must be found again in copies, and copies still being written must not be
/// taken for new files.
#[test]
fn no_line_lost_or_repeated_across_sigkill_and_copytruncate() {
    kill_and_restart_while_writing(true);
}

fn kill_and_restart_while_writing(copytruncate: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let (pods, state, data) = (
        tmp.path().join("pods"),
        tmp.path().join("state"),
        tmp.path().join("data"),
    );
    fs::create_dir_all(&pods).unwrap();
    let port = free_port();
    let start_server = || Server::start_on(&data, port, &["--commit-interval", "500ms"]);
    let mut server = Some(start_server());
    let url = format!("http://127.0.0.1:{port}");
    let done = Arc::new(AtomicBool::new(false));
    let writer = write_pods(&pods, copytruncate, Arc::clone(&done));

    // a fixed, varied schedule of agent lifetimes (ms); the server is down during rounds 3 to 5
    let lifetimes = [
        700u64, 300, 1200, 450, 900, 250, 1500, 600, 350, 1000, 800, 400,
    ];
    for (round, life) in lifetimes.iter().enumerate() {
        if round == 3 {
            server.take().unwrap().kill();
        }
        if round == 6 {
            server = Some(start_server());
        }
        let agent = Agent::start(&url, &state, &pods, &[]);
        std::thread::sleep(Duration::from_millis(*life));
        agent.kill();
        // the agent is down for a moment, while the writer goes on rotating
        std::thread::sleep(Duration::from_millis(50 + 37 * (round as u64 % 4)));
    }
    assert!(
        !done.load(Ordering::SeqCst),
        "the writer finished before the agent was done being killed"
    );
    let rotations = writer.join().unwrap();
    assert!(rotations >= 20, "the writer rotated only {rotations} times");
    assert!(server.is_some());
    // the last agent runs until everything is stored
    let agent = Agent::start(&url, &state, &pods, &[]);
    check_each_line_once(&url, &agent);
}

/// copytruncate rotation (copy, then truncate in place) with the agent running: each stream continues in the
/// copy of its file, so nothing written before the truncation is lost or read twice.
#[test]
fn copytruncate_rotation_loses_and_repeats_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pods = tmp.path().join("pods");
    fs::create_dir_all(&pods).unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--commit-interval", "500ms"]);
    let agent = Agent::start(&server.url, &tmp.path().join("state"), &pods, &[]);
    let rotations = write_pods(&pods, true, Arc::new(AtomicBool::new(false)))
        .join()
        .unwrap();
    assert!(rotations >= 20, "the writer rotated only {rotations} times");
    check_each_line_once(&server.url, &agent);
}

/// A file that appears is read within about a second, even a short-lived one that is deleted right away.
#[test]
fn a_short_lived_file_is_read_before_it_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let pods = tmp.path().join("pods");
    fs::create_dir_all(&pods).unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--commit-interval", "300ms"]);
    let agent = Agent::start(&server.url, &tmp.path().join("state"), &pods, &[]);
    while agent.metric("quarry_agent_files_open").is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = pods.join("jobs_once-abc_uid-9/task");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("0.log");
    let mut f = File::create(&path).unwrap();
    for n in 0..50 {
        f.write_all(cri_line(9, n).as_bytes()).unwrap();
    }
    drop(f);
    let created = Instant::now();
    // the pod is removed almost at once; the agent keeps the descriptor it opened
    std::thread::sleep(Duration::from_millis(1000));
    fs::remove_dir_all(pods.join("jobs_once-abc_uid-9")).unwrap();
    loop {
        server.client().commit().unwrap();
        if count(
            &server.url,
            "filter kubernetes.pod = \"once-abc\" | stats count(*)",
        ) == 50
        {
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(20),
            "the short-lived file was not read"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(agent);
}
