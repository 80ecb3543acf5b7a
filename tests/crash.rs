//! Crash safety of the WAL: a server killed with SIGKILL in the middle of ingest, again and again,
//! loses no acknowledged event and never keeps part of a batch.

mod common;

use common::{query, Server};
use quarry_transport::IngestParams;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LINES: usize = 300;

fn batch(k: u64) -> Vec<u8> {
    (0..LINES)
        .map(|i| {
            format!(
                "2024-05-01T12:00:00Z crash-test batch={k} line={i} {}\n",
                "x".repeat(i % 97)
            )
        })
        .collect::<String>()
        .into_bytes()
}

#[test]
fn acknowledged_batches_survive_sigkill_and_none_is_partial() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut next = 0u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..6 {
        let server = Server::start(dir.path(), &["--commit-interval", "300ms"]);
        let mut writers = Vec::new();
        for w in 0..3u64 {
            let url = server.url.clone();
            let acked = acked.clone();
            let first = next + w * 100_000;
            writers.push(std::thread::spawn(move || {
                let client = common::client(&url);
                for k in first.. {
                    let params = IngestParams {
                        kind: Some(quarry_model::Kind::Text),
                        format: Some("text".into()),
                        batch_id: Some(format!("b{k}")),
                        ..IngestParams::default()
                    };
                    match client.ingest(&params, &batch(k)) {
                        Ok(r) => {
                            assert_eq!(r.events as usize, LINES);
                            acked.lock().unwrap().insert(k);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        next += 1_000_000;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(300 + rng % 900));
        server.kill();
        for w in writers {
            w.join().unwrap();
        }
        assert!(
            !acked.lock().unwrap().is_empty(),
            "round {round}: nothing was acknowledged"
        );
    }
    let server = Server::start(dir.path(), &[]);
    let rows = query(
        &server.url,
        r#"filter @message like "crash-test" | parse @message "batch=* line=" as b | stats count(*) as n by b"#,
    );
    let counts: BTreeMap<u64, i64> = rows
        .iter()
        .map(|r| {
            (
                r["b"].as_str().unwrap().parse().unwrap(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let acked = acked.lock().unwrap();
    for k in acked.iter() {
        assert_eq!(
            counts.get(k),
            Some(&(LINES as i64)),
            "acknowledged batch {k} is not complete"
        );
    }
    for (k, n) in &counts {
        assert_eq!(*n, LINES as i64, "batch {k} is partial or duplicated");
    }
    let metrics = common::get(&format!("{}/metrics", server.url));
    assert!(metrics.contains("quarry_wal_replayed_records"), "{metrics}");
    eprintln!("{} batches acknowledged, {} stored (the rest were written but not acknowledged before a kill)", acked.len(), counts.len());
    server.stop();
}
