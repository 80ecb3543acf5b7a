//! Retro-hunts through the product's interfaces: Falco's audit traces go into a running server (live
//! detection on), then `quarry hunt` runs SigmaHQ's Kubernetes rules over them through the server and
//! straight from the data directory. Both must find exactly the (rule, event) pairs `quarry rules test`
//! finds in the same events, and the built-in pack's hunt must find the rules live detection raised
//! alerts for. `quarry import --data-dir` must raise the alerts the server raised.

mod common;

use common::{post, quarry, run_ok, Server};
use std::collections::BTreeSet;
use std::path::Path;

const TRACES: &str = "../shared/data/k8s_audit/falco_trace_files/test/trace_files/k8s_audit";
const SIGMA_K8S: &str = "../shared/data/rules/sigma/rules/application/kubernetes";

/// `(rule_id, auditID, stage)` of each JSON match line.
fn keys(stdout: &[u8]) -> BTreeSet<(String, String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let s = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();
            (
                s(&v["rule_id"]),
                s(&v["event"]["auditID"]),
                s(&v["event"]["stage"]),
            )
        })
        .collect()
}

#[test]
fn hunts_over_the_server_and_the_data_dir_agree_with_rules_test_and_live_alerts() {
    let work = tempfile::tempdir().unwrap();
    // One file of every trace's events.
    let all = work.path().join("traces.json");
    let mut text = String::new();
    let mut files: Vec<_> = std::fs::read_dir(TRACES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for f in files {
        text.push_str(&std::fs::read_to_string(f).unwrap());
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    std::fs::write(&all, text).unwrap();

    let expected = keys(
        &run_ok(
            quarry()
                .args(["rules", "test", SIGMA_K8S])
                .arg(&all)
                .args(["--parser", "audit", "--format", "json"]),
        )
        .stdout,
    );
    assert!(expected.len() >= 15, "{expected:?}");

    let data = work.path().join("data");
    let server = Server::start(&data, &[]);
    run_ok(
        quarry()
            .args(["import", "--server", &server.url, "--format", "audit"])
            .arg(&all),
    );
    let hunt = |on: &[&str], rules: &[&str]| {
        let out = run_ok(quarry().arg("hunt").args(on).args(rules).args([
            "--format",
            "json",
            "--explain",
        ]));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (keys(&out.stdout), err)
    };
    let (over_server, err) = hunt(&["--server", &server.url], &["--rules", SIGMA_K8S]);
    assert_eq!(over_server, expected, "{err}");
    assert!(err.contains("through the index"), "{err}");
    let dir = data.to_str().unwrap();
    let (from_dir, _) = hunt(&["--data-dir", dir], &["--rules", SIGMA_K8S]);
    assert_eq!(from_dir, expected);

    // The built-in pack: every rule live detection raised an alert for is found again by the hunt
    // (baselines and threat intelligence, `quarry-*`, are live-only).
    let alerts = run_ok(quarry().args(["alerts", "--server", &server.url, "--format", "json"]));
    let alerted: BTreeSet<String> = String::from_utf8_lossy(&alerts.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["rule_id"].as_str().unwrap_or_default().to_string()
        })
        .filter(|r| !r.starts_with("quarry-"))
        .collect();
    assert!(alerted.len() > 10, "{alerted:?}");
    let (builtin, _) = hunt(&["--server", &server.url], &[]);
    let hunted: BTreeSet<String> = builtin.into_iter().map(|(r, _, _)| r).collect();
    assert!(
        alerted.is_subset(&hunted),
        "alerted but not hunted: {:?}",
        alerted.difference(&hunted).collect::<Vec<_>>()
    );

    // `quarry import --data-dir` detects as the server does: the same rules raise alerts.
    let offline = work.path().join("offline");
    let out = run_ok(
        quarry()
            .args(["import", "--format", "audit", "--data-dir"])
            .arg(&offline)
            .arg(&all),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("new alerts"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rules_alerted = |args: &[&str]| -> BTreeSet<String> {
        let out = run_ok(quarry().arg("alerts").args(args).args(["--format", "json"]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["rule_id"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    };
    assert_eq!(
        rules_alerted(&["--data-dir", offline.to_str().unwrap()]),
        rules_alerted(&["--server", &server.url])
    );

    // A malformed request is a 400 with a message; a rule file that does not parse is reported.
    let (status, answer) = post(
        &format!("{}/api/v1/hunt", server.url),
        &[],
        b"{\"rules\": 5}",
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("bad hunt request"), "{answer}");
    let broken = work.path().join("broken.yml");
    std::fs::write(&broken, "title: [unclosed\n").unwrap();
    let out = quarry()
        .args(["hunt", "--server", &server.url, "--rules"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.yml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Path::new(dir).join("wal").is_dir());
}
