//! Import speed: the demo tree (`QUARRY_BENCH_SCALE`, default 1) written to a temporary folder, then
//! imported into a fresh store, with the WAL fsynced per batch (the default) and without.
//! Run: `cargo bench -p quarry-import --bench import`.

use quarry_demo::{write_tree, DemoConfig};
use quarry_import::{import_paths, ImportOptions, Target};
use quarry_store::{Store, StoreConfig};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scale = std::env::var("QUARRY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let tmp = tempfile::tempdir()?;
    let tree = tmp.path().join("tree");
    let cfg = DemoConfig {
        scale,
        end_ns: 1_714_564_800_000_000_000,
        ..DemoConfig::default()
    };
    let demo = write_tree(&cfg, &tree)?;
    println!(
        "demo tree, scale {scale}: {} files, {} lines, {:.1} MB",
        demo.files,
        demo.lines,
        demo.bytes as f64 / 1e6
    );
    // the parsers alone, for comparison
    let mut files = vec![tree.clone()];
    let mut i = 0;
    while i < files.len() {
        if files[i].is_dir() {
            let d = files.swap_remove(i);
            files.extend(
                std::fs::read_dir(d)?
                    .map(|e| e.map(|e| e.path()))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        } else {
            i += 1;
        }
    }
    let t = Instant::now();
    let mut events = 0;
    for f in &files {
        let bytes = std::fs::read(f)?;
        let (evs, _) =
            quarry_parse::decode_all(quarry_parse::Format::Auto, Default::default(), &bytes, 0);
        events += evs.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "decoding only (files read whole, no store): {events} events in {secs:.2} s: {:.0} events/s, {:.1} MB/s",
        events as f64 / secs,
        demo.bytes as f64 / 1e6 / secs
    );
    for fsync in [true, false] {
        let dir = tmp.path().join(format!("store-{fsync}"));
        let mut sc = StoreConfig::new(&dir);
        sc.fsync = fsync;
        let store = Store::open(sc)?;
        let opts = ImportOptions {
            cluster: Some(cfg.cluster.clone()),
            ..ImportOptions::default()
        };
        let t = Instant::now();
        let s = import_paths(
            std::slice::from_ref(&tree),
            &opts,
            Target::Store(&store),
            &mut |_| {},
        )?;
        let secs = t.elapsed().as_secs_f64();
        store.close()?;
        println!(
            "fsync={fsync}: {} events, {} batches in {secs:.2} s: {:.0} events/s, {:.1} MB/s (committed, searchable)",
            s.events,
            s.batches,
            s.events as f64 / secs,
            s.bytes as f64 / 1e6 / secs
        );
        for (k, c) in &s.per_kind {
            println!(
                "  {k}: {} files, {} events, {:.1} MB",
                c.files,
                c.events,
                c.bytes as f64 / 1e6
            );
        }
    }
    Ok(())
}
