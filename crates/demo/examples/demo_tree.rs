//! Writes the demo data under a directory: `cargo run -p quarry-demo --example demo_tree -- DIR [SCALE] [SEED]`.

use quarry_demo::{attack, write_tree, DemoConfig};
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "demo-data".into()));
    let scale = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(42);
    let cfg = DemoConfig {
        seed,
        scale,
        end_ns: 1_714_564_800_000_000_000,
        ..DemoConfig::default()
    };
    let s = write_tree(&cfg, &dir)?;
    println!("{} files, {} lines, {} bytes", s.files, s.lines, s.bytes);
    for (k, v) in &s.per_kind {
        println!(
            "  {k}: {} files, {} lines, {} bytes",
            v.files, v.lines, v.bytes
        );
    }
    println!("{:#?}", attack(&cfg));
    Ok(())
}
