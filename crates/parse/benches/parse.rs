//! Decoding throughput per format on the shared test data, repeated to a few MB, fed in 64 KiB chunks.
//!
//! Run: `cargo bench -p quarry-parse` (set `QUARRY_BENCH_MB` for the input size per format, default 32).

use quarry_parse::{Decoder, DecoderOptions, Format};
use std::path::PathBuf;
use std::time::Instant;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

fn read(rel: &str) -> String {
    let p = data(rel);
    String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .into_owned()
}

/// Repeats the lines until about `mb` megabytes.
fn repeat(lines: &[String], mb: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(mb << 20);
    while out.len() < mb << 20 {
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

fn lines_of(rel: &str) -> Vec<String> {
    read(rel)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn falco_lines() -> Vec<String> {
    let dir = data("k8s_audit/falco_trace_files/test/trace_files/k8s_audit");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("falco traces")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains("\"Event\""))
        .collect()
}

fn stratus_lines() -> Vec<String> {
    let dir = data("aws/stratus_red_team/docs/detonation-logs");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("stratus")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for p in files {
        let items: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(p).unwrap_or_default()).unwrap_or_default();
        // CloudTrail's S3 delivery: one {"Records":[...]} document per file, on one line
        out.push(serde_json::json!({ "Records": items }).to_string());
    }
    out
}

fn run(name: &str, format: Format, opts: DecoderOptions, input: &[u8]) {
    let mut best = f64::MAX;
    let mut events = 0;
    let mut errors = 0;
    for _ in 0..3 {
        let mut d = Decoder::with_options(format, opts.clone());
        let mut out = Vec::with_capacity(4096);
        let t = Instant::now();
        for chunk in input.chunks(64 << 10) {
            d.feed(chunk, 1_700_000_000_000_000_000, &mut out);
            events += out.len();
            out.clear();
        }
        d.finish(1_700_000_000_000_000_000, &mut out);
        events += out.len();
        best = best.min(t.elapsed().as_secs_f64());
        errors = d.stats().parse_errors;
    }
    let mb = input.len() as f64 / (1 << 20) as f64;
    println!(
        "{name:<28} {:>8.1} MB/s  {:>10.0} events/s  ({mb:.0} MB, {} events, {errors} errors)",
        mb / best,
        (events / 3) as f64 / best,
        events / 3
    );
}

fn main() {
    let mb: usize = std::env::var("QUARRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let def = DecoderOptions::default;
    println!("quarry-parse decode throughput, one core, {mb} MB per input, best of 3");

    let falco = falco_lines();
    run(
        "audit (falco traces)",
        Format::Audit,
        def(),
        &repeat(&falco, mb),
    );
    run(
        "json (falco traces)",
        Format::Json,
        def(),
        &repeat(&falco, mb),
    );
    run(
        "auto (falco traces)",
        Format::Auto,
        def(),
        &repeat(&falco, mb),
    );

    let linux = lines_of("node_logs/loghub/Linux/Linux_2k.log");
    run(
        "syslog (loghub Linux)",
        Format::Syslog,
        def(),
        &repeat(&linux, mb),
    );
    let openssh = lines_of("node_logs/loghub/OpenSSH/OpenSSH_2k.log");
    run(
        "syslog (loghub OpenSSH)",
        Format::Syslog,
        def(),
        &repeat(&openssh, mb),
    );
    let hadoop = lines_of("node_logs/loghub/Hadoop/Hadoop_2k.log");
    run(
        "text (loghub Hadoop)",
        Format::Text,
        def(),
        &repeat(&hadoop, mb),
    );

    // docker json-file lines: fluent-bit's Kubernetes test logs plus loghub Linux lines as log content
    let mut docker: Vec<String> = lines_of(
        "container_logs/fluent-bit/tests/runtime/data/kubernetes/log/core/core_base_fluent-bit.log",
    );
    for l in &linux {
        docker.push(serde_json::json!({"log": format!("{l}\n"), "stream": "stdout", "time": "2019-04-01T17:58:33.598656444Z"}).to_string());
    }
    run(
        "docker (json-file)",
        Format::Docker,
        def(),
        &repeat(&docker, mb),
    );
    let cri: Vec<String> = linux
        .iter()
        .map(|l| format!("2019-05-07T18:57:50.904275087+00:00 stdout F {l}"))
        .collect();
    run("cri", Format::Cri, def(), &repeat(&cri, mb));
    run(
        "container (cri lines)",
        Format::Container,
        def(),
        &repeat(&cri, mb),
    );
    let cri_json: Vec<String> = falco
        .iter()
        .take(20)
        .map(|l| format!("2019-05-07T18:57:50.904275087Z stdout F {l}"))
        .collect();
    run(
        "cri (JSON content)",
        Format::Cri,
        def(),
        &repeat(&cri_json, mb),
    );

    let vpc_dir = "aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline";
    let v2 = lines_of(&format!("{vpc_dir}/test-extra-samples.log"));
    run("vpcflow (v2)", Format::VpcFlow, def(), &repeat(&v2, mb));
    let ecs = lines_of(&format!("{vpc_dir}/test-ecs-samples.log"));
    run(
        "vpcflow (v7, 39 fields)",
        Format::VpcFlow,
        def(),
        &repeat(&ecs, mb),
    );

    let trail = stratus_lines();
    run(
        "cloudtrail (Records docs)",
        Format::CloudTrail,
        def(),
        &repeat(&trail, mb),
    );

    let klog: Vec<String> = linux
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "I0505 17:59:40.{:06}   28133 controller.go:{}] {l}",
                i % 1_000_000,
                i % 900
            )
        })
        .collect();
    run("klog", Format::Klog, def(), &repeat(&klog, mb));
    let logfmt: Vec<String> = linux
        .iter()
        .map(|l| {
            format!(
                "ts=2024-05-01T12:00:00Z level=info caller=main.go:10 msg={:?}",
                l
            )
        })
        .collect();
    run("logfmt", Format::Logfmt, def(), &repeat(&logfmt, mb));
}
