//! `quarry demo`: the generated cluster is loaded, the guided hunt uncovers every step of the attack,
//! and the server then serves the data until it is stopped.

mod common;

use common::{free_port, quarry};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn demo_hunts_down_the_attack_then_serves_the_data() {
    let port = free_port();
    let mut child = quarry()
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log",
            "warn",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut out = String::new();
    let started = Instant::now();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.contains("The server is up") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "demo too slow:\n{out}"
        );
    }
    // The next line says how to reach the server: its CA and an admin token.
    let export = lines.next().unwrap().unwrap();
    let setting = |name: &str| -> String {
        export
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {export:?}"))
            .to_string()
    };
    let (url, ca, token) = (
        setting("QUARRY_SERVER"),
        setting("QUARRY_CA"),
        setting("QUARRY_TOKEN"),
    );
    assert_eq!(url, format!("https://127.0.0.1:{port}"));
    // Keep reading what the demo prints while it serves (a closed pipe would make its next print fail).
    std::thread::spawn(move || lines.for_each(drop));
    // The hunt found each step: the probing address, the stolen token's secrets, the exec, the
    // privileged pod, the cluster-admin binding and the exfiltration.
    for needle in [
        "203.0.113.66   system:anonymous",
        "system:serviceaccount:payments:payments-api",
        "stripe-api-key",
        "payments-api-tdrzhsg2hl-wsl54",
        "kube-node-debugger",
        "eks-node-debugger",
        "cluster-admin",
        "198.51.100.77",
    ] {
        assert!(
            out.contains(needle),
            "{needle:?} missing from the hunt:\n{out}"
        );
    }
    assert!(!out.contains("query failed"), "{out}");
    // Live detection linked the attack's API steps (anonymous probing, secrets listing, exec, privileged
    // pod, cluster-admin binding) from the attacker's address into one chain alert, listed among the most
    // severe: before any medium alert.
    let listed: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Meanwhile, detection ran"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    let chain: Vec<usize> = (0..listed.len())
        .filter(|&i| listed[i].contains("Kubernetes Intrusion Chain From One Address"))
        .collect();
    assert_eq!(chain.len(), 1, "one chain alert:\n{out}");
    assert!(
        listed[chain[0]].ends_with(
            " high     Kubernetes Intrusion Chain From One Address (1 event, 203.0.113.66)"
        ),
        "{out}"
    );
    assert!(
        listed[..chain[0]]
            .iter()
            .all(|l| l.contains(" critical ") || l.contains(" high ")),
        "the chain alert comes before every less severe one:\n{out}"
    );
    // With the exfiltration that follows (VPC flow logs, loaded after the audit log), the whole attack is
    // one critical alert, first in the list.
    assert!(
        listed[0].ends_with(
            " critical Kubernetes Intrusion Chain Followed By Bulk Exfiltration (1 event)"
        ),
        "{out}"
    );
    // The 42 SSH failures from the attacker on one node are the top row of step 3.
    assert!(
        out.lines()
            .any(|l| l.contains("203.0.113.66") && l.trim_end().ends_with(" 42")),
        "{out}"
    );

    // The data stays served, over TLS and only to callers with a token.
    let client = |token: Option<&str>| {
        quarry_transport::Client::with_options(
            &url,
            &quarry_transport::ClientOptions {
                tls: quarry_trust::tls::ClientTls {
                    ca: Some(ca.clone().into()),
                    ..Default::default()
                },
                token: token.map(str::to_string),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let q = quarry_transport::QueryRequest {
        query: r#"search "198.51.100.77" | stats count(*) as n"#.into(),
        ..Default::default()
    };
    let rows = client(Some(&token)).query(&q).unwrap().rows;
    assert_eq!(rows[0]["n"], 13);
    let refused = client(None).query(&q).unwrap_err().to_string();
    assert!(refused.contains("401"), "{refused}");
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
