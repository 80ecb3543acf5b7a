//! The trust benchmark of the README: what encryption at rest and the integrity chain cost, measured in
//! the same run against the same store with both off.
//!
//! `cargo bench --bench trust -- [--scale N] [--dir DIR] [--runs N] [--rounds N]`
//!
//! It writes the demo cluster's files at `--scale` (default 8, about 360 MB) to `DIR/raw-scaleN` (kept
//! between runs), then, `--rounds` times (default 2) and alternating the order, imports them into a fresh
//! store with everything off and into one with AES-256-GCM encryption (a generated master key) and the
//! signed digest chain on, each with the WAL fsynced per batch, closes it (final merges, and with
//! integrity the closing digest), and times a query mix on it reopened (median of `--runs`). The best
//! ingest of the rounds and the median query times are compared. Finally `verify` runs over the
//! protected store, which must be intact.

use quarry_import::{import_paths, ImportOptions, Target};
use quarry_query::{run, RunOptions};
use quarry_store::crypt::{EncryptionConfig, MasterKey};
use quarry_store::integrity::IntegrityConfig;
use quarry_store::{Store, StoreConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

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

/// Encryption and integrity on, or neither.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Off,
    On,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::On => "encryption + integrity",
        }
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
        if mode == Mode::On {
            cfg.encryption = Some(self.encryption());
            cfg.integrity = Some(IntegrityConfig {
                cadence: Duration::from_secs(10),
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
    let enc = (mode == Mode::On).then(|| p.encryption());
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

    let mut best: [Option<(f64, u64, f64, f64)>; 2] = [None, None];
    let mut times: [Vec<Vec<f64>>; 2] = [Vec::new(), Vec::new()];
    for round in 0..a.rounds {
        let order = if round % 2 == 0 {
            [Mode::Off, Mode::On]
        } else {
            [Mode::On, Mode::Off]
        };
        for mode in order {
            let i = mode as usize;
            let dir = a.dir.join(format!("trust-store-{}", mode as usize));
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
    let (off, on) = (best[0].expect("a round"), best[1].expect("a round"));
    let pct = |a: f64, b: f64| (b / a - 1.0) * 100.0;
    println!("\n| | off | encryption + integrity | overhead |");
    println!("|---|---|---|---|");
    println!(
        "| ingest, MB/s wall (best round) | {:.1} | {:.1} | {:+.1}% |",
        off.0 / off.2,
        on.0 / on.2,
        pct(on.0 / on.2, off.0 / off.2)
    );
    println!(
        "| ingest, MB/s per CPU second | {:.1} | {:.1} | {:+.1}% |",
        off.0 / off.3,
        on.0 / on.3,
        pct(on.0 / on.3, off.0 / off.3)
    );
    let mut total = [0.0, 0.0];
    for (qi, q) in mix.iter().enumerate() {
        let m = |i: usize| median(times[i].iter().map(|t| t[qi]).collect());
        let (a_ms, b_ms) = (m(0), m(1));
        total[0] += a_ms;
        total[1] += b_ms;
        println!(
            "| `{q}`, ms | {a_ms:.1} | {b_ms:.1} | {:+.1}% |",
            pct(a_ms, b_ms)
        );
    }
    println!(
        "| query mix, total ms | {:.1} | {:.1} | {:+.1}% |",
        total[0],
        total[1],
        pct(total[0], total[1])
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
