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
    /// An agent without Kubernetes API access.
    fn start(server: &str, state: &Path, pods: &Path, extra: &[&str]) -> Agent {
        let mut args = vec!["--node-name", "node-1", "--no-kubernetes"];
        args.extend(extra);
        Agent::start_with(server, state, pods, &args)
    }

    fn start_with(server: &str, state: &Path, pods: &Path, args: &[&str]) -> Agent {
        let port = free_port();
        let child = quarry()
            .args(["agent", "--server", server, "--state-dir"])
            .arg(state)
            .arg("--pods-root")
            .arg(pods)
            .arg("--log")
            // QUARRY_TEST_AGENT_LOG=debug shows what the agents did when a test fails
            .arg(std::env::var("QUARRY_TEST_AGENT_LOG").unwrap_or_else(|_| "warn".into()))
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
            .args(args)
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
    let client = common::client(url);
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

/// The Kubernetes API emulator of `crates/kube/tests/apiserver.py`: no real apiserver can run on the test
/// machines, so kmock 0.8 (`pip install 'kmock==0.8.*'`, done by `.ci/run`) serves the recorded real Pod
/// objects of fluent-bit's Kubernetes tests over the list and watch protocol. Killed on drop.
struct Apiserver {
    child: Child,
    url: String,
    manifest: serde_json::Value,
}

const NODE: &str = "ip-10-49-18-80.eu-west-1.compute.internal";

impl Apiserver {
    fn start() -> Apiserver {
        use std::io::BufRead;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = std::process::Command::new("python3")
            .arg(root.join("crates/kube/tests/apiserver.py"))
            .arg("--meta-dir")
            .arg(root.join(
                "../shared/data/container_logs/fluent-bit/tests/runtime/data/kubernetes/meta",
            ))
            .args([
                "--node",
                NODE,
                "--other-node",
                "ip-10-49-20-7.eu-west-1.compute.internal",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            !line.is_empty(),
            "the emulator did not start (pip install 'kmock==0.8.*'); see its stderr above"
        );
        let manifest: serde_json::Value = serde_json::from_str(&line).unwrap();
        Apiserver {
            url: format!("http://127.0.0.1:{}", manifest["port"]),
            child,
            manifest,
        }
    }

    /// Creates a pod on this node through the API, as the scheduler and kubelet would have.
    fn create_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        labels: serde_json::Value,
        annotations: serde_json::Value,
    ) {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid,
                         "labels": labels, "annotations": annotations},
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "registry.example/app:7"}]},
        });
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/namespaces/{namespace}/pods", self.url))
            .json(&pod)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "create pod: {}", r.status());
    }

    fn delete_pod(&self, namespace: &str, name: &str) {
        let r = reqwest::blocking::Client::new()
            .delete(format!(
                "{}/api/v1/namespaces/{namespace}/pods/{name}",
                self.url
            ))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "delete pod: {}", r.status());
    }
}

impl Drop for Apiserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    open_append(path).write_all(text.as_bytes()).unwrap();
}

fn cri(msg: &str) -> String {
    format!("2024-05-01T10:00:00.000000000Z stdout F {msg}\n")
}

/// Waits until `q` (a `stats count(*)` query) counts at least `n`.
fn wait_count(server: &Server, q: &str, n: u64, what: &str) {
    let started = Instant::now();
    loop {
        server.client().commit().unwrap();
        if count(&server.url, q) >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: {q} stayed below {n}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Metadata from the Kubernetes API through the agent: the recorded pods of this node get their uid,
/// image, labels, allow-listed annotations, namespace and node labels; a pod annotation switches multi-line
/// joining on; a deleted pod's last lines are still enriched; a pod whose metadata arrives after its file
/// was opened gets it on later lines.
#[test]
fn kubernetes_metadata_reaches_the_events() {
    let api = Apiserver::start();
    let tmp = tempfile::tempdir().unwrap();
    let pods = tmp.path().join("pods");
    fs::create_dir_all(&pods).unwrap();
    api.create_pod(
        "default",
        "java-app",
        "uid-java",
        serde_json::json!({"app": "java-app"}),
        serde_json::json!({"quarry.dev/multiline": "java"}),
    );
    let recorded: Vec<&serde_json::Value> = api.manifest["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["node"] == NODE && !p["images"].as_object().unwrap().is_empty())
        .collect();
    assert!(
        recorded.len() >= 3,
        "recorded pods on the node: {recorded:?}"
    );
    let log_of = |ns: &str, name: &str, uid: &str, container: &str| {
        pods.join(format!("{ns}_{name}_{uid}/{container}/0.log"))
    };
    for p in &recorded {
        let container = p["images"].as_object().unwrap().keys().next().unwrap();
        let path = log_of(
            p["namespace"].as_str().unwrap(),
            p["name"].as_str().unwrap(),
            p["uid"].as_str().unwrap(),
            container,
        );
        append(&path, &(cri("one") + &cri("two")));
    }
    let java = log_of("default", "java-app", "uid-java", "app");
    let trace = [
        "Exception in thread \"main\" java.lang.IllegalStateException: boom",
        "\tat com.example.App.run(App.java:42)",
        "\tat com.example.App.main(App.java:10)",
        "Caused by: java.io.IOException: disk full",
        "\t... 2 more",
    ];
    append(&java, &trace.iter().map(|l| cri(l)).collect::<String>());
    append(&java, &cri("after the trace"));
    let late = log_of("default", "late-pod", "uid-late", "app");
    append(&late, &cri("before the pod is known"));

    let config = tmp.path().join("quarry.toml");
    fs::write(
        &config,
        "[agent]\nannotation_allow = [\"prometheus.io/*\"]\n",
    )
    .unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--commit-interval", "300ms"]);
    let agent = Agent::start_with(
        &server.url,
        &tmp.path().join("state"),
        &pods,
        &[
            "--node-name",
            NODE,
            "--cluster",
            "test-cluster",
            "--kubernetes-api",
            &api.url,
            "--config",
            config.to_str().unwrap(),
        ],
    );
    wait_count(
        &server,
        "stats count(*)",
        2 * recorded.len() as u64 + 3,
        "first lines",
    );

    for p in &recorded {
        let (ns, name) = (
            p["namespace"].as_str().unwrap(),
            p["name"].as_str().unwrap(),
        );
        let (container, image) = p["images"].as_object().unwrap().iter().next().unwrap();
        let mut wanted: Vec<(String, Option<&str>)> = vec![
            ("kubernetes.pod_uid".into(), p["uid"].as_str()),
            ("kubernetes.cluster".into(), Some("test-cluster")),
            ("kubernetes.node".into(), Some(NODE)),
            ("kubernetes.container".into(), Some(container.as_str())),
            ("kubernetes.container_image".into(), image.as_str()),
            (
                "kubernetes.node_labels.topology.kubernetes.io/zone".into(),
                Some("eu-west-1a"),
            ),
        ];
        for (k, v) in p["labels"].as_object().unwrap() {
            wanted.push((format!("kubernetes.labels.{k}"), v.as_str()));
        }
        for (k, v) in p["annotations"].as_object().unwrap() {
            // only allow-listed annotations are copied
            let allowed = k.starts_with("prometheus.io/");
            wanted.push((
                format!("kubernetes.annotations.{k}"),
                v.as_str().filter(|_| allowed),
            ));
        }
        for (k, v) in api.manifest["namespaces"][ns].as_object().unwrap() {
            wanted.push((format!("kubernetes.namespace_labels.{k}"), v.as_str()));
        }
        let fields: Vec<String> = wanted.iter().map(|(k, _)| format!("`{k}`")).collect();
        let rows = query(
            &server.url,
            &format!(
                "filter kubernetes.namespace = \"{ns}\" and kubernetes.pod = \"{name}\" | fields {} | limit 5",
                fields.join(", ")
            ),
        );
        assert_eq!(rows.len(), 2, "{ns}/{name}");
        for (k, want) in &wanted {
            let got = rows[0].get(k).and_then(|v| v.as_str());
            assert_eq!(got, *want, "{ns}/{name}: {k} in {:?}", rows[0]);
        }
    }

    // the annotation joined the stack trace into one event
    let rows = query(
        &server.url,
        "filter kubernetes.pod = \"java-app\" | fields @message, `kubernetes.labels.app` | sort @message asc",
    );
    let messages: Vec<&str> = rows
        .iter()
        .map(|r| r["@message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [trace.join("\n").as_str(), "after the trace"],
        "{rows:?}"
    );
    assert_eq!(rows[0]["kubernetes.labels.app"], "java-app");

    // a deleted pod's last lines keep its metadata
    let gone = recorded[0];
    let (ns, name) = (
        gone["namespace"].as_str().unwrap(),
        gone["name"].as_str().unwrap(),
    );
    api.delete_pod(ns, name);
    std::thread::sleep(Duration::from_millis(1500));
    let container = gone["images"].as_object().unwrap().keys().next().unwrap();
    append(
        &log_of(ns, name, gone["uid"].as_str().unwrap(), container),
        &cri("last words"),
    );
    let q = format!(
        "filter kubernetes.pod = \"{name}\" and kubernetes.pod_uid = \"{}\" | stats count(*)",
        gone["uid"].as_str().unwrap()
    );
    wait_count(&server, &q, 3, "a deleted pod's last line");
    let rows = query(
        &server.url,
        "filter @message = \"last words\" | fields `kubernetes.container_image`",
    );
    assert_eq!(
        rows[0]["kubernetes.container_image"],
        gone["images"][container]
    );

    // metadata that arrives after the file was opened reaches the later lines
    api.create_pod(
        "default",
        "late-pod",
        "uid-late",
        serde_json::json!({"app": "late"}),
        serde_json::json!({}),
    );
    let started = Instant::now();
    loop {
        append(&late, &cri("after the pod is known"));
        server.client().commit().unwrap();
        if count(&server.url, "filter kubernetes.pod = \"late-pod\" and `kubernetes.labels.app` = \"late\" | stats count(*)") > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the late pod's labels never arrived"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        count(&server.url, "filter @message = \"before the pod is known\" and kubernetes.pod_uid = \"uid-late\" | stats count(*)"),
        1,
        "lines before the metadata arrived are enriched from the path"
    );
    assert_eq!(agent.metric("quarry_agent_metadata_connected"), Some(1.0));
}

/// fluent-bit's multi-line test vectors (CRI and docker partial lines, mixed formats, a custom start
/// pattern) written to container logs in small pieces, lines cut across writes: the agent stores the
/// records fluent-bit's tests expect, each once.
#[test]
fn partial_and_multiline_vectors_through_the_agent() {
    let doc: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../shared/data/container_logs/test_vectors/fluent-bit_multiline_c_vectors.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let sets = doc["sets"].as_object().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pods = tmp.path().join("pods");
    fs::create_dir_all(&pods).unwrap();
    let config = tmp.path().join("quarry.toml");
    fs::write(
        &config,
        "[[agent.multiline]]\npod_prefix = \"issue-3817\"\nmode = 'custom:^\\[DEBUG\\]'\n",
    )
    .unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--commit-interval", "300ms"]);
    let agent = Agent::start(
        &server.url,
        &tmp.path().join("state"),
        &pods,
        &["--config", config.to_str().unwrap()],
    );
    let mut expected_total = 0;
    let mut files = Vec::new();
    for (name, set) in sets {
        let pod = name.replace('_', "-");
        let path = pods.join(format!("vectors_{pod}_uid-{pod}/app/0.log"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // a raw newline inside a docker `log` string is written as docker writes it, `\n`
        let text: String = set["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().replace('\n', "\\n") + "\n")
            .collect();
        files.push((File::create(&path).unwrap(), text.into_bytes()));
        expected_total += set["expected_output"].as_array().unwrap().len() as u64;
    }
    // pieces of 1 to 37 bytes, interleaved across the files, with pauses so the agent reads between them
    let mut at = vec![0usize; files.len()];
    let mut step = 0;
    while at.iter().zip(&files).any(|(a, (_, t))| a < &t.len()) {
        for (i, (f, text)) in files.iter_mut().enumerate() {
            let n = (1 + (step * 7 + i * 13) % 37).min(text.len() - at[i]);
            f.write_all(&text[at[i]..at[i] + n]).unwrap();
            at[i] += n;
        }
        step += 1;
        if step % 8 == 0 {
            std::thread::sleep(Duration::from_millis(15));
        }
    }
    wait_count(&server, "stats count(*)", expected_total, "vector records");
    std::thread::sleep(Duration::from_millis(1500)); // nothing more arrives
    server.client().commit().unwrap();
    assert_eq!(count(&server.url, "stats count(*)"), expected_total);
    for (name, set) in sets {
        let pod = name.replace('_', "-");
        let mut want: Vec<String> = set["expected_output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().trim_end_matches('\n').to_string())
            .collect();
        let rows = query(
            &server.url,
            &format!("filter kubernetes.pod = \"{pod}\" | fields @message | limit 100"),
        );
        let mut got: Vec<String> = rows
            .iter()
            .map(|r| r["@message"].as_str().unwrap().to_string())
            .collect();
        // file order is checked by the decoder's own tests; here every record arrives once
        want.sort();
        got.sort();
        assert_eq!(got, want, "set {name}");
    }
    assert_eq!(agent.metric("quarry_agent_queue_bytes"), Some(0.0));
}

/// Appends journal entries (journal export format, through `systemd-journal-remote` from the Debian package
/// of that name, as `.ci/run` installs) to `dir/node.journal`: `(unit, message)` pairs, one second apart.
fn append_journal(dir: &Path, first_sec: u64, entries: &[(&str, String)]) {
    let tool = [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("install the Debian package systemd-journal-remote");
    let mut text = String::new();
    for (i, (unit, msg)) in entries.iter().enumerate() {
        let sec = first_sec + i as u64;
        text += &format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0f0e0d0c0b0a09080706050403020100\n\
             _HOSTNAME=node-1\n_SYSTEMD_UNIT={unit}\nSYSLOG_IDENTIFIER={}\nPRIORITY=6\nMESSAGE={msg}\n\n",
            1_763_856_000_000_000 + sec * 1_000_000,
            1_000_000 + sec * 1_000_000,
            unit.trim_end_matches(".service"),
        );
    }
    let mut child = std::process::Command::new(tool)
        .arg(format!("--output={}", dir.join("node.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// journald units through the agent (the real `journalctl` on a journal directory): the configured units
/// arrive, others do not, kubelet's klog lines are parsed, and across SIGKILLs while the journal grows
/// every entry is stored exactly once (the cursor of the newest queued batch is where reading resumes).
#[test]
fn journald_units_arrive_once_across_sigkills() {
    let tmp = tempfile::tempdir().unwrap();
    let (journal, pods) = (tmp.path().join("journal"), tmp.path().join("pods"));
    fs::create_dir_all(&journal).unwrap();
    fs::create_dir_all(&pods).unwrap();
    let mut next = 0u64;
    let mut wanted = 0u64;
    let mut write = |n: u64| {
        let entries: Vec<(&str, String)> = (next..next + n)
            .map(|i| match i % 4 {
                0 | 1 => (
                    "kubelet.service",
                    format!("I1123 10:00:00.000000     812 kubelet.go:{i}] seq={i}"),
                ),
                2 => ("containerd.service", format!("level=info msg=\"seq={i}\"")),
                _ => ("ssh.service", format!("not collected seq={i}")),
            })
            .collect();
        append_journal(&journal, next, &entries);
        wanted += entries.iter().filter(|(u, _)| *u != "ssh.service").count() as u64;
        next += n;
    };
    write(400);
    let config = tmp.path().join("quarry.toml");
    fs::write(
        &config,
        format!(
            "[agent.journald]\nunits = [\"kubelet.service\", \"containerd.service\"]\ndirectory = {:?}\nread_from = \"head\"\n",
            journal.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--commit-interval", "300ms"]);
    let state = tmp.path().join("state");
    let args = ["--config", config.to_str().unwrap()];
    for life in [400u64, 900, 250, 700, 500, 1100] {
        let agent = Agent::start(&server.url, &state, &pods, &args);
        std::thread::sleep(Duration::from_millis(life / 2));
        write(120);
        std::thread::sleep(Duration::from_millis(life / 2));
        agent.kill();
    }
    write(80);
    let agent = Agent::start(&server.url, &state, &pods, &args);
    wait_count(&server, "stats count(*)", wanted, "journal entries");
    std::thread::sleep(Duration::from_millis(1000));
    server.client().commit().unwrap();
    let rows = query(
        &server.url,
        "stats count(*) as n, count_distinct(@message) as distinct by `systemd.unit` | sort `systemd.unit`",
    );
    let mut per_unit: Vec<(String, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["systemd.unit"].as_str().unwrap_or("").to_string(),
                r["n"].as_u64().unwrap(),
                r["distinct"].as_u64().unwrap(),
            )
        })
        .collect();
    per_unit.sort();
    let kubelet = next.div_ceil(4) + (next + 2) / 4;
    let containerd = (next + 1) / 4;
    assert_eq!(
        per_unit,
        [
            ("containerd.service".to_string(), containerd, containerd),
            ("kubelet.service".to_string(), kubelet, kubelet)
        ],
        "every entry of the configured units once, no other unit"
    );
    assert_eq!(kubelet + containerd, wanted);
    // klog fields of kubelet's messages
    assert_eq!(
        count(&server.url, "filter `systemd.unit` = \"kubelet.service\" and file = \"kubelet.go\" | stats count(*)"),
        kubelet
    );
    assert_eq!(agent.metric("quarry_agent_journal_up"), Some(1.0));
}
