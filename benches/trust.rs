//! The trust benchmark of the README: what encryption at rest and the integrity chain cost, measured in
//! the same run against the same store with both off.
//!
//! `cargo bench --bench trust -- [--scale N] [--dir DIR] [--runs N] [--rounds N]`
//!
//! It writes the demo cluster's files at `--scale` (default 8, about 320 MB) to `DIR/raw-scaleN` (kept
//! between runs), then, `--rounds` times (default 2) and reversing the order each round, imports them
//! into four fresh stores: everything off, AES-256-GCM encryption only (a generated master key), the
//! signed digest chain only (a digest every 2 s, so sealing runs alongside ingest as it does in a long
//! run), and both. Each ingest has the WAL fsynced per batch and ends with the close (final merges, and
//! with integrity the closing digest); then a query mix runs on the store reopened (median of `--runs`).
//! The best ingest of the rounds and the median query times are compared with everything off. Finally
//! `verify` runs over the store with both on, which must be intact.

use quarry_import::{import_paths, ImportOptions, Target};
use quarry_query::{run, RunOptions};
use quarry_store::crypt::{EncryptionConfig, MasterKey};
use quarry_store::integrity::IntegrityConfig;
use quarry_store::{Store, StoreConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{cpu_seconds, median};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    scale: u32,
    dir: PathBuf,
    runs: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        scale: 8,
        dir: std::env::temp_dir().join("quarry-bench"),
        runs: 5,
        rounds: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--scale" => a.scale = it.next().and_then(|v| v.parse().ok()).expect("--scale N"),
            "--dir" => a.dir = it.next().map(PathBuf::from).expect("--dir DIR"),
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// Which protections are on.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Off,
    Encryption,
    Integrity,
    On,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Off, Mode::Encryption, Mode::Integrity, Mode::On];

    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Encryption => "encryption",
            Mode::Integrity => "integrity",
            Mode::On => "encryption + integrity",
        }
    }

    fn encrypted(self) -> bool {
        matches!(self, Mode::Encryption | Mode::On)
    }

    fn chained(self) -> bool {
        matches!(self, Mode::Integrity | Mode::On)
    }
}

struct Protection {
    master: Arc<MasterKey>,
    keys: PathBuf,
}

impl Protection {
    fn encryption(&self) -> EncryptionConfig {
        EncryptionConfig::new(self.master.clone())
    }

    fn apply(&self, mode: Mode, cfg: &mut StoreConfig) {
        if mode.encrypted() {
            cfg.encryption = Some(self.encryption());
        }
        if mode.chained() {
            cfg.integrity = Some(IntegrityConfig {
                cadence: Duration::from_secs(2),
                signing_key: Some(self.keys.join("signing.pk8")),
                public_key: Some(self.keys.join("signing.pub")),
            });
        }
    }
}

/// One ingest: (raw MB, events, wall s, CPU s).
fn ingest(raw: &Path, dir: &Path, mode: Mode, p: &Protection) -> (f64, u64, f64, f64) {
    let _ = std::fs::remove_dir_all(dir);
    let mut cfg = StoreConfig::new(dir);
    p.apply(mode, &mut cfg);
    let store = Store::open(cfg).expect("open store");
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let summary = import_paths(
        &[raw.to_path_buf()],
        &ImportOptions::default(),
        Target::Store(&store),
        &mut |_| {},
    )
    .expect("import");
    store.close().expect("close");
    (
        summary.bytes as f64 / 1e6,
        summary.events,
        t0.elapsed().as_secs_f64(),
        cpu_seconds() - cpu0,
    )
}

/// Median ms of each query.
fn queries(dir: &Path, mode: Mode, p: &Protection, mix: &[String], runs: usize) -> Vec<f64> {
    let enc = mode.encrypted().then(|| p.encryption());
    let store = Store::open_read_only_with(dir, enc).expect("reopen");
    mix.iter()
        .map(|q| {
            let mut times = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                run(&store, q, &RunOptions::default()).unwrap_or_else(|e| panic!("{q}: {e}"));
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            median(times)
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args();
    std::fs::create_dir_all(&a.dir)?;
    println!(
        "machine: {} cores; quarry trust benchmark (scale {}, {} rounds, {} runs per query)",
        std::thread::available_parallelism()?.get(),
        a.scale,
        a.rounds,
        a.runs
    );
    let raw = a.dir.join(format!("raw-scale{}", a.scale));
    let cfg = quarry_demo::DemoConfig {
        scale: a.scale,
        end_ns: 1_714_564_800_000_000_000,
        ..quarry_demo::DemoConfig::default()
    };
    if !raw.join(".complete").exists() {
        let s = quarry_demo::write_tree(&cfg, &raw)?;
        std::fs::write(raw.join(".complete"), b"")?;
        println!(
            "generated {} files, {:.2} GB",
            s.files,
            s.bytes as f64 / 1e9
        );
    }
    let attack = quarry_demo::attack(&cfg);
    let mix = vec![
        format!("search \"{}\" | stats count(*) as n", attack.exfil_ip),
        format!(
            "filter user.username = \"{}\" | fields @timestamp, verb, objectRef.resource | limit 100",
            attack.stolen_user
        ),
        "stats count(*) by bin(5m)".to_string(),
        "filter action = \"REJECT\" | stats count(*) as n by srcAddr | sort n desc | limit 10"
            .to_string(),
        "fields @timestamp, @message | sort @timestamp desc | limit 200".to_string(),
    ];

    let keys = a.dir.join("trust-keys");
    let _ = std::fs::remove_dir_all(&keys);
    std::fs::create_dir_all(&keys)?;
    MasterKey::generate_file(&keys.join("master.key"))?;
    let p = Protection {
        master: Arc::new(MasterKey::from_file(&keys.join("master.key"))?),
        keys: keys.clone(),
    };

    let mut best: [Option<(f64, u64, f64, f64)>; 4] = [None; 4];
    let mut times: [Vec<Vec<f64>>; 4] = Default::default();
    for round in 0..a.rounds {
        let mut order = Mode::ALL;
        if round % 2 == 1 {
            order.reverse();
        }
        for mode in order {
            let i = mode as usize;
            let dir = a.dir.join(format!("trust-store-{i}"));
            let r = ingest(&raw, &dir, mode, &p);
            println!(
                "round {} {:<24} ingest {:.1} MB, {} events in {:.1} s wall, {:.1} s CPU",
                round + 1,
                mode.name(),
                r.0,
                r.1,
                r.2,
                r.3
            );
            if best[i].is_none_or(|b| r.2 < b.2) {
                best[i] = Some(r);
            }
            times[i].push(queries(&dir, mode, &p, &mix, a.runs));
        }
    }
    let best: Vec<(f64, u64, f64, f64)> = best.iter().map(|b| b.expect("a round")).collect();
    // Overhead: how much longer (or more CPU) than with everything off.
    let pct = |off: f64, x: f64| (x / off - 1.0) * 100.0;
    println!("\n| | off | encryption | integrity | both |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, v: &dyn Fn(usize) -> f64, fmt: &dyn Fn(f64) -> String| {
        let mut line = format!("| {what} | {}", fmt(v(0)));
        for i in 1..4 {
            line.push_str(&format!(" | {} ({:+.1}%)", fmt(v(i)), pct(v(0), v(i))));
        }
        println!("{line} |");
    };
    let mb = |x: f64| format!("{x:.1}");
    row("ingest wall s (best round)", &|i| best[i].2, &mb);
    row("ingest CPU s", &|i| best[i].3, &mb);
    println!(
        "(ingest: {:.1} MB, {} events; MB/s with everything off: {:.1} wall, {:.1} per CPU second)",
        best[0].0,
        best[0].1,
        best[0].0 / best[0].2,
        best[0].0 / best[0].3
    );
    let ms = |x: f64| format!("{x:.1} ms");
    for (qi, q) in mix.iter().enumerate() {
        row(
            &format!("`{q}`"),
            &|i| median(times[i].iter().map(|t| t[qi]).collect()),
            &ms,
        );
    }
    row(
        "query mix, total",
        &|i| {
            (0..mix.len())
                .map(|qi| median(times[i].iter().map(|t| t[qi]).collect()))
                .sum()
        },
        &ms,
    );

    let t = Instant::now();
    let dir = a.dir.join(format!("trust-store-{}", Mode::On as usize));
    let report = quarry_store::integrity::verify_with(
        &dir,
        &quarry_store::integrity::VerifyOptions {
            public_key: Some(keys.join("signing.pub")),
            encryption: Some(p.encryption()),
            ..Default::default()
        },
    )?;
    println!(
        "\nverify of the protected store: {} findings in {:.1} s",
        report.findings.len(),
        t.elapsed().as_secs_f64()
    );
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    Ok(())
}
