//! Redaction throughput on the loghub samples of the shared test data: lines without secrets (the hot path),
//! the same lines with a secret planted in each, and each detector on its own.
//!
//! Run: `cargo bench -p quarry-redact` (set `QUARRY_BENCH_SECS` for the time per measurement, default 1).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{loghub_lines, planted_corpus, SYSTEMS};
use quarry_redact::{Action, CustomRule, RedactConfig, Redactor, Verdict};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn secs() -> Duration {
    let s = std::env::var("QUARRY_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(1.0);
    Duration::from_secs_f64(s)
}

/// Redacts copies of `records` (copied outside the timed part) until `secs()` passed; returns MiB/s.
fn per_record(r: &Redactor, records: &[String]) -> (f64, u64) {
    let bytes: usize = records.iter().map(String::len).sum();
    let mut total = Duration::ZERO;
    let mut passes = 0u64;
    let mut changed = 0u64;
    while total < secs() || passes < 3 {
        let mut batch = records.to_vec();
        let t = Instant::now();
        for rec in &mut batch {
            if r.redact(black_box(rec)) != Verdict::Keep {
                changed += 1;
            }
        }
        total += t.elapsed();
        black_box(&batch);
        passes += 1;
    }
    (
        (bytes as f64 * passes as f64) / (1 << 20) as f64 / total.as_secs_f64(),
        changed / passes,
    )
}

/// Redacts `text` in 64 KiB chunks cut at newlines, as one record each; returns MiB/s.
fn chunked(r: &Redactor, text: &str) -> f64 {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + (64 << 10)).min(text.len());
        while end < text.len() && !text.is_char_boundary(end) {
            end += 1;
        }
        if let Some(nl) = text[end..].find('\n') {
            end += nl + 1;
        } else {
            end = text.len();
        }
        chunks.push(text[start..end].to_string());
        start = end;
    }
    per_record(r, &chunks).0
}

fn main() {
    let default = Redactor::new(&RedactConfig::default()).expect("default config");
    let mut lines = Vec::new();
    for sys in SYSTEMS {
        lines.extend(loghub_lines(sys));
    }
    let clean: Vec<String> = lines
        .iter()
        .filter(|l| default.redact(&mut (*l).clone()) == Verdict::Keep)
        .cloned()
        .collect();
    let clean_bytes: usize = clean.iter().map(String::len).sum();
    let planted: Vec<String> = planted_corpus(20_231_005)
        .iter()
        .map(|p| p.text())
        .collect();
    let planted_bytes: usize = planted.iter().map(String::len).sum();
    println!(
        "loghub: {} clean lines ({:.1} MiB, mean {} B); planted: {} lines ({:.1} MiB), one secret each",
        clean.len(),
        clean_bytes as f64 / (1 << 20) as f64,
        clean_bytes / clean.len().max(1),
        planted.len(),
        planted_bytes as f64 / (1 << 20) as f64
    );

    let (mibs, _) = per_record(&default, &clean);
    println!(
        "{:<48} {:>9.0} MiB/s",
        "all detectors, clean lines, one call per line", mibs
    );
    let joined = clean.join("\n");
    println!(
        "{:<48} {:>9.0} MiB/s",
        "all detectors, clean lines, 64 KiB records",
        chunked(&default, &joined)
    );
    let (mibs, changed) = per_record(&default, &planted);
    println!(
        "{:<48} {:>9.0} MiB/s ({changed} of {} lines changed)",
        "all detectors, planted lines, one call per line",
        mibs,
        planted.len()
    );

    let custom = Redactor::new(&RedactConfig {
        custom: vec![
            CustomRule {
                name: "emp".into(),
                pattern: r"\bEMP-\d{6}\b".into(),
                action: Action::Mask,
            },
            CustomRule {
                name: "ticket".into(),
                pattern: r"TCK-[A-Z]{3}\d+".into(),
                action: Action::Mask,
            },
        ],
        ..RedactConfig::default()
    })
    .expect("custom config");
    let (mibs, _) = per_record(&custom, &clean);
    println!(
        "{:<48} {:>9.0} MiB/s",
        "all detectors + 2 custom rules, clean lines", mibs
    );

    let names: Vec<&str> = quarry_redact::builtin_detectors().collect();
    for &only in &names {
        let cfg = RedactConfig {
            builtin: names
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        if *n == only {
                            Action::Mask
                        } else {
                            Action::Off
                        },
                    )
                })
                .collect(),
            ..RedactConfig::default()
        };
        let r = Redactor::new(&cfg).expect("single-detector config");
        let (mibs, _) = per_record(&r, &clean);
        println!(
            "{:<48} {:>9.0} MiB/s",
            format!("only {only}, clean lines"),
            mibs
        );
    }
}
