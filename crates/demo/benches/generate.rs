//! Throughput of the demo generator: `cargo bench -p quarry-demo` (QUARRY_DEMO_SCALE sets the scale).

use quarry_demo::{generate, DemoConfig};
use std::time::Instant;

fn main() {
    let scale: u32 = std::env::var("QUARRY_DEMO_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let cfg = DemoConfig {
        seed: 42,
        scale,
        end_ns: 1_714_564_800_000_000_000,
        cluster: "demo-eks".into(),
    };
    for run in 0..3 {
        let start = Instant::now();
        let (mut bytes, mut chunks) = (0u64, 0u64);
        for c in generate(&cfg) {
            bytes += c.data.len() as u64;
            chunks += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "run {run}: scale {scale}: {:.1} MB in {chunks} chunks, {secs:.2} s, {:.0} MB/s",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / secs
        );
    }
}
