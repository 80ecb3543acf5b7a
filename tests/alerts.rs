//! Alerts end to end: a real server with live detection, an audit event posted to it, and the alert it
//! raises delivered to real receivers started here: an HTTP server (Python's http.server) standing in for
//! a webhook and a Slack incoming webhook, Prometheus Alertmanager (Debian package
//! prometheus-alertmanager) through its API v2, and rsyslog receiving syslog CEF over TCP. One webhook
//! fails twice before accepting (retries), one has nothing listening (dead letter). Then the alert's
//! lifecycle through `quarry alerts`, over the API and, after the server stops, from the data directory.

mod common;

use common::{free_port, post, quarry, Server};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXEC_TRACE: &str =
    "../shared/data/k8s_audit/falco_trace_files/test/trace_files/k8s_audit/exec_pod.json";
const SIGMA_K8S: &str = "../shared/data/rules/sigma/rules/application/kubernetes";

/// A child process killed when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP receiver: every POST body is written to DIR/<path>.<n>.json; `/flaky` answers 500 twice first.
const RECEIVER: &str = r#"
import http.server, os, sys, threading
out = sys.argv[2]
lock = threading.Lock()
counts = {}
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        name = self.path.strip('/') or 'root'
        with lock:
            counts[name] = counts.get(name, 0) + 1
            n = counts[name]
        if name == 'flaky' and n <= 2:
            self.send_response(500); self.end_headers(); self.wfile.write(b'try later'); return
        with open(os.path.join(out, '%s.%d.json' % (name, n)), 'wb') as f:
            f.write(body)
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#;

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn files_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

fn start_alertmanager(work: &Path, port: u16) -> Proc {
    let cfg = work.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", work.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager (apt-get install prometheus-alertmanager; .ci/run does)");
    let p = Proc(child);
    wait_for("alertmanager", 30, || port_open(port).then_some(()));
    p
}

fn start_rsyslog(work: &Path, port: u16) -> (Proc, PathBuf) {
    let out = work.join("cef.log");
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{w}\" processInternalMessages=\"on\")\n\
             module(load=\"imtcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             if $inputname == \"imtcp\" then action(type=\"omfile\" file=\"{o}\" template=\"raw\" flushOnTXEnd=\"on\")\n",
            w = work.display(),
            o = out.display()
        ),
    )
    .unwrap();
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(work.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd (apt-get install rsyslog; .ci/run does)");
    let p = Proc(child);
    wait_for("rsyslog", 30, || port_open(port).then_some(()));
    (p, out)
}

#[test]
fn alerts_reach_webhook_slack_alertmanager_and_cef_and_keep_their_lifecycle() {
    let work = tempfile::tempdir().unwrap();
    let received = work.path().join("received");
    std::fs::create_dir(&received).unwrap();
    let (hp, ap, rp, dead) = (free_port(), free_port(), free_port(), free_port());
    std::fs::write(work.path().join("receiver.py"), RECEIVER).unwrap();
    let _http = Proc(
        Command::new("python3")
            .arg(work.path().join("receiver.py"))
            .arg(hp.to_string())
            .arg(&received)
            .spawn()
            .unwrap(),
    );
    wait_for("the HTTP receiver", 30, || port_open(hp).then_some(()));
    let _am = start_alertmanager(work.path(), ap);
    let (_rsyslog, cef_log) = start_rsyslog(work.path(), rp);

    let data = work.path().join("data");
    let sinks = [
        format!("webhook=http://127.0.0.1:{hp}/hook"),
        format!("slack=http://127.0.0.1:{hp}/slack"),
        format!("alertmanager=http://127.0.0.1:{ap}"),
        format!("cef=127.0.0.1:{rp}"),
        format!("webhook=http://127.0.0.1:{hp}/flaky"),
        format!("webhook=http://127.0.0.1:{dead}/nobody"),
    ];
    let mut args = vec![
        "--no-builtin-rules".to_string(),
        "--rules".into(),
        SIGMA_K8S.into(),
        "--alert-retry".into(),
        "200ms".into(),
    ];
    for s in &sinks {
        args.push("--alert-sink".into());
        args.push(s.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&data, &args);

    // Post the exec event; the answer does not wait for deliveries (one of them can only fail).
    let body = std::fs::read(EXEC_TRACE).unwrap();
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-H", &common::auth_header()])
        .args(["-sf", "-X", "POST", "--data-binary"])
        .arg(format!("@{EXEC_TRACE}"))
        .arg(format!("{}/api/v1/ingest?kind=audit", server.url))
        .output()
        .unwrap();
    let answered = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!body.is_empty());
    let deadletter = data.join("alerts/deadletter.jsonl");
    assert!(
        !deadletter.exists(),
        "ingest answered after {answered:?}, only once delivery had given up"
    );

    // The stored alert, with the interface's fields.
    let list = quarry()
        .args(["alerts", "--server", &server.url, "--format", "json"])
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let alert = &lines[0];
    let id = alert["id"].as_str().unwrap().to_string();
    assert_eq!(alert["rule_id"], "a1b0ca4e-7835-413e-8471-3ff2b8a66be6");
    assert_eq!(
        alert["title"],
        "Potential Remote Command Execution In Pod Container"
    );
    assert_eq!(alert["level"], "medium");
    assert!(alert["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "attack.t1609"));
    assert_eq!(alert["state"], "open");
    assert_eq!(alert["event"]["objectRef"]["subresource"], "exec");

    // Webhook: the alert as JSON.
    let hook = wait_for("the webhook", 30, || files_named(&received, "hook.").pop());
    let hook: serde_json::Value = serde_json::from_slice(&std::fs::read(hook).unwrap()).unwrap();
    assert_eq!(hook["id"], id.as_str());
    assert_eq!(hook["evidence"][0]["verb"], "create");
    // Slack: a text message.
    let slack = wait_for("slack", 30, || files_named(&received, "slack.").pop());
    let slack: serde_json::Value = serde_json::from_slice(&std::fs::read(slack).unwrap()).unwrap();
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains("Potential Remote Command Execution") && text.contains(&id),
        "{text}"
    );
    // Flaky: accepted on the third try.
    let flaky = wait_for("the flaky webhook", 30, || {
        files_named(&received, "flaky.").pop()
    });
    assert!(flaky.ends_with("flaky.3.json"), "{}", flaky.display());
    // Alertmanager holds it, labelled.
    let am = wait_for("alertmanager", 30, || {
        let out = Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{ap}/api/v2/alerts")])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v.as_array()?
            .iter()
            .find(|a| a["labels"]["quarry_alert"] == id.as_str())
            .cloned()
    });
    assert_eq!(am["labels"]["severity"], "medium");
    assert_eq!(
        am["labels"]["alertname"],
        "Potential Remote Command Execution In Pod Container"
    );
    assert_eq!(am["labels"]["namespace"], "default");
    // rsyslog received the CEF record.
    let cef = wait_for("the CEF record", 30, || {
        let t = std::fs::read_to_string(&cef_log).ok()?;
        t.lines()
            .find(|l| l.contains("CEF:0|Quarry|Quarry|"))
            .map(str::to_string)
    });
    assert!(cef.contains("|a1b0ca4e-7835-413e-8471-3ff2b8a66be6|Potential Remote Command Execution In Pod Container|5|"), "{cef}");
    assert!(cef.contains(&format!("cs1={id}")), "{cef}");
    // The receiver nobody runs: dead-lettered after its retries, and counted.
    let dl = wait_for("the dead letter", 30, || {
        std::fs::read_to_string(&deadletter).ok()
    });
    let dl: serde_json::Value = serde_json::from_str(dl.lines().next().unwrap()).unwrap();
    assert_eq!(dl["sink"], "webhook");
    assert_eq!(dl["alert"]["id"], id.as_str());
    let metrics = common::get(&format!("{}/metrics", server.url));
    assert!(
        metrics.contains("quarry_alert_dead_letters_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("quarry_alert_deliveries_total 5\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("quarry_alert_delivery_seconds_total "),
        "{metrics}"
    );
    let bad_filter = Command::new("curl")
        .args(["-H", &common::auth_header()])
        .args(["-s", "-w", "\n%{http_code}"])
        .arg(format!("{}/api/v1/alerts?min_level=severe", server.url))
        .output()
        .unwrap();
    let bad_filter = String::from_utf8_lossy(&bad_filter.stdout);
    assert!(
        bad_filter.ends_with("\n400") && bad_filter.contains("unknown variant"),
        "{bad_filter}"
    );
    let high = quarry()
        .args(["alerts", "--server", &server.url, "--min-level", "high"])
        .output()
        .unwrap();
    assert!(high.status.success());
    assert!(
        !String::from_utf8_lossy(&high.stdout).contains(&id),
        "a medium alert is below high"
    );

    // Lifecycle over the API.
    let ack = quarry()
        .args([
            "alerts",
            "--server",
            &server.url,
            "ack",
            &id,
            "--note",
            "on it",
            "--by",
            "alice",
        ])
        .output()
        .unwrap();
    assert!(
        ack.status.success(),
        "{}",
        String::from_utf8_lossy(&ack.stderr)
    );
    let (status, answer) = post(
        &format!("{}/api/v1/alerts/{id}", server.url),
        &[],
        b"{\"state\":\"sleeping\"}",
    );
    assert_eq!(status, 400, "{answer}");
    let missing = Command::new("curl")
        .args(["-H", &common::auth_header()])
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/api/v1/alerts/a-0000000000000000", server.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&missing.stdout), "404");
    server.stop();

    // From the data directory after the stop: the same alert, acknowledged by alice; then closed.
    let show = quarry()
        .args(["alerts", "--data-dir"])
        .arg(&data)
        .args(["show", &id])
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["state"], "acknowledged");
    // Who acted is the authenticated caller; the `--by` given is kept beside it.
    assert_eq!(shown["history"][0]["by"], "token:tests (as alice)");
    assert_eq!(shown["history"][0]["note"], "on it");
    let close = quarry()
        .args(["alerts", "--data-dir"])
        .arg(&data)
        .args(["close", &id])
        .output()
        .unwrap();
    assert!(
        close.status.success(),
        "{}",
        String::from_utf8_lossy(&close.stderr)
    );
    let closed = quarry()
        .args(["alerts", "--data-dir"])
        .arg(&data)
        .args(["--state", "closed", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&closed.stdout).lines().count(), 1);
}

/// Threat intelligence end to end: a server loading a CSV feed and a STIX 2.1 bundle raises an alert for
/// an audit request from a listed address and for a VPC flow to a listed network, and counts them.
#[test]
fn threat_intelligence_indicators_raise_alerts_on_ingest() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let feeds = Path::new("crates/detect/tests/data/intel");
    let server = Server::start(
        &data,
        &[
            "--intel",
            feeds.join("feed.csv").to_str().unwrap(),
            "--intel",
            feeds.join("stix-bundle.json").to_str().unwrap(),
        ],
    );
    let ingest = |kind: &str, body: String| {
        let url = format!("{}/api/v1/ingest?kind={kind}", server.url);
        let (status, answer) = post(&url, &[], body.as_bytes());
        assert_eq!(status, 200, "{kind}: {answer}");
    };
    // Falco's exec trace, as if the request had come from the listed address.
    let exec = std::fs::read_to_string(EXEC_TRACE).unwrap();
    let first = exec.lines().next().unwrap();
    ingest("audit", first.replace("192.168.99.1", "203.0.113.66"));
    // A node talking to an address inside a listed range, in a default-format VPC flow record.
    ingest(
        "vpcflow",
        "2 123456789010 eni-0a1b2c3d 10.0.34.242 203.0.113.90 49152 443 6 40 52000 1763870000 1763870060 ACCEPT OK\n"
            .into(),
    );
    let intel: Vec<serde_json::Value> = wait_for("intel alerts", 30, || {
        let out = quarry()
            .args(["alerts", "--server", &server.url, "--format", "json"])
            .output()
            .unwrap();
        let v: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|a: &serde_json::Value| a["rule_id"] == "quarry-intel-ip")
            .collect();
        (v.len() == 2).then_some(v)
    });
    let shown = |id: &serde_json::Value| {
        let out = quarry()
            .args([
                "alerts",
                "--server",
                &server.url,
                "--format",
                "json",
                "show",
            ])
            .arg(id.as_str().unwrap())
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let mut indicators: Vec<String> = intel
        .iter()
        .map(|a| shown(&a["id"])["evidence"][0]["@intel"]["indicator"].to_string())
        .collect();
    indicators.sort();
    assert_eq!(indicators, ["\"203.0.113.64/26\"", "\"203.0.113.66\""]);
    let metrics = common::get(&format!("{}/metrics", server.url));
    assert!(metrics.contains("quarry_intel_matches_total 2"));
}
