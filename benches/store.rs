//! The store benchmark of the README: ingest to searchable, stored size, needle and aggregate query
//! latency against ripgrep over the same raw files, and peak memory.
//!
//! `cargo bench --bench store -- [--scale N] [--dir DIR] [--runs N] [--loghub]`
//!
//! With `--scale N` (default 128, about 5 GB) it writes the demo cluster's files to `DIR/raw` (kept
//! between runs), imports them into a fresh store in `DIR/store` with the WAL fsynced per batch, closes
//! it (waiting for background merges), measures its size, reopens it and times queries. With `--loghub`
//! it does the same on `../shared/data/node_logs/loghub` instead. Needs `rg` (Debian package ripgrep).

use quarry_import::{import_paths, ImportOptions, Target};
use quarry_query::{run, RunOptions};
use quarry_store::{Store, StoreConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;

use common::{cpu_seconds, dir_size, median, peak_rss_mib};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Times a query `runs` times; returns (median ms, rows (or the count of a `stats count(*) as n`),
/// candidates, events in range).
fn time_query(store: &Store, q: &str, runs: usize) -> (f64, usize, u64, u64) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let out = run(store, q, &RunOptions::default()).unwrap_or_else(|e| panic!("{q}: {e}"));
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        last = Some(out);
    }
    let out = last.expect("at least one run");
    // A `stats count(*) as n` answers with its count; anything else with its rows.
    let rows = match (out.table.columns.as_slice(), out.table.rows.as_slice()) {
        ([n], [row]) if n == "n" => match row[0] {
            quarry_model::Value::Int(c) => c as usize,
            _ => 0,
        },
        _ => out.table.rows.len(),
    };
    (
        median(times),
        rows,
        out.stats.candidates,
        out.stats.events_in_range,
    )
}

/// Times `rg -F -c needle dir` (all matching lines counted, every file read); returns (median ms, lines).
fn time_rg(needle: &str, dir: &Path, runs: usize) -> Option<(f64, u64)> {
    let mut times = Vec::new();
    let mut lines = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new("rg")
            .args(["-F", "-c", "--no-filename", needle])
            .arg(dir)
            .output()
            .ok()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .sum();
    }
    Some((median(times), lines))
}

struct Args {
    scale: u32,
    dir: PathBuf,
    runs: usize,
    loghub: bool,
}

fn args() -> Args {
    let mut a = Args {
        scale: 128,
        dir: std::env::temp_dir().join("quarry-bench"),
        runs: 5,
        loghub: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--scale" => a.scale = it.next().and_then(|v| v.parse().ok()).expect("--scale N"),
            "--dir" => a.dir = it.next().map(PathBuf::from).expect("--dir DIR"),
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--loghub" => a.loghub = true,
            _ => {} // cargo passes --bench
        }
    }
    a
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args();
    std::fs::create_dir_all(&a.dir)?;
    println!(
        "machine: {} cores; quarry store benchmark",
        std::thread::available_parallelism()?.get()
    );

    // The raw input.
    let (raw, needles): (PathBuf, Vec<(&str, String)>) = if a.loghub {
        // The sixteen raw logs (the folder also holds parsed CSVs and templates, which are not logs).
        let p = a.dir.join("loghub");
        std::fs::create_dir_all(&p)?;
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/node_logs/loghub");
        for system in std::fs::read_dir(&src)? {
            let system = system?.path();
            let name = system
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let log = system.join(format!("{name}_2k.log"));
            if log.exists() {
                std::fs::copy(&log, p.join(format!("{name}_2k.log")))?;
            }
        }
        let needles = vec![
            (
                "IP",
                r#"search "173.234.31.186" | stats count(*) as n"#.to_string(),
            ),
            (
                "user name",
                r#"search "webmaster" | stats count(*) as n"#.to_string(),
            ),
        ];
        (p, needles)
    } else {
        let raw = a.dir.join(format!("raw-scale{}", a.scale));
        let cfg = quarry_demo::DemoConfig {
            scale: a.scale,
            end_ns: 1_714_564_800_000_000_000,
            ..quarry_demo::DemoConfig::default()
        };
        if !raw.join(".complete").exists() {
            let t = Instant::now();
            let s = quarry_demo::write_tree(&cfg, &raw)?;
            std::fs::write(raw.join(".complete"), b"")?;
            println!(
                "generated scale {}: {} files, {} lines, {:.2} GB in {:.0} s",
                a.scale,
                s.files,
                s.lines,
                s.bytes as f64 / 1e9,
                t.elapsed().as_secs_f64()
            );
        }
        let attack = quarry_demo::attack(&cfg);
        let needles = vec![
            (
                "IP",
                format!("search \"{}\" | stats count(*) as n", attack.exfil_ip),
            ),
            (
                "user name",
                format!(
                    "filter user.username = \"{}\" | stats count(*) as n",
                    attack.stolen_user
                ),
            ),
        ];
        (raw, needles)
    };
    let raw_bytes = dir_size(&raw);
    println!(
        "raw input: {} ({:.3} GB)",
        raw.display(),
        raw_bytes as f64 / 1e9
    );

    // Ingest to searchable.
    let store_dir = a.dir.join(if a.loghub {
        "store-loghub".to_string()
    } else {
        format!("store-scale{}", a.scale)
    });
    let _ = std::fs::remove_dir_all(&store_dir);
    let store = Store::open(StoreConfig::new(&store_dir))?;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let summary = import_paths(
        std::slice::from_ref(&raw),
        &ImportOptions::default(),
        Target::Store(&store),
        &mut |_| {},
    )?;
    let ingest_s = t0.elapsed().as_secs_f64();
    let ingest_cpu = cpu_seconds() - cpu0;
    let rss_ingest = peak_rss_mib();
    let t = Instant::now();
    store.close()?;
    let close_s = t.elapsed().as_secs_f64();
    let mb = summary.bytes as f64 / 1e6;
    println!("\n## ingest to searchable (fsync per batch)");
    println!(
        "events {} | raw {:.1} MB | wall {:.1} s | CPU {:.1} s",
        summary.events, mb, ingest_s, ingest_cpu
    );
    println!(
        "{:.1} MB/s wall, {:.1} MB/s per core (raw MB / CPU s), {:.0} events/s wall",
        mb / ingest_s,
        mb / ingest_cpu,
        summary.events as f64 / ingest_s
    );
    println!(
        "closing (final merges) took {close_s:.1} s; peak RSS during ingest {rss_ingest:.0} MiB"
    );

    // Stored size.
    let stored = dir_size(&store_dir);
    let parts = dir_size(&store_dir.join("partitions"));
    println!("\n## stored size");
    println!(
        "{:.1} MB on disk ({:.1} MB partitions), raw {:.1} MB: stored/raw = 1/{:.2}",
        stored as f64 / 1e6,
        parts as f64 / 1e6,
        summary.bytes as f64 / 1e6,
        summary.bytes as f64 / stored as f64
    );

    // Queries against ripgrep.
    let store = Store::open_read_only(&store_dir)?;
    println!(
        "\n## queries (median of {} runs) vs rg over the raw files",
        a.runs
    );
    let rg_needle = |q: &str| q.split('"').nth(1).unwrap_or("").to_string();
    for (what, q) in &needles {
        let (ms, rows, cand, total) = time_query(&store, q, a.runs);
        let rg = time_rg(&rg_needle(q), &raw, 3);
        match rg {
            Some((rg_ms, lines)) => println!(
                "needle ({what}) `{q}`: {ms:.1} ms, {rows} events ({cand} candidates of {total}) | rg {rg_ms:.0} ms, {lines} lines | {:.0}x faster",
                rg_ms / ms
            ),
            None => println!("needle ({what}): {ms:.1} ms, {rows} rows | rg not installed (apt-get install ripgrep)"),
        }
    }
    for q in [
        "stats count(*) by bin(5m)",
        "stats count(*) as n by @source",
        "filter action = \"REJECT\" | stats count(*) as n by srcAddr | sort n desc | limit 10",
    ] {
        let (ms, rows, _, total) = time_query(&store, q, a.runs);
        println!("{q}: {ms:.1} ms over {total} events ({rows} rows)");
    }
    println!(
        "\npeak RSS of the process (ingest and queries): {:.0} MiB",
        peak_rss_mib()
    );
    Ok(())
}
