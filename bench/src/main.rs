//! End-to-end latency of the forward pass: median and spread of N runs after warm-up.
//!
//! `cargo run --release -p lighthubert-bench -- [CHECKPOINT.pt] [RUNS]` (defaults: the bundled
//! test checkpoint, 5 runs). Prints one line per (subnet, audio length). The full harness
//! (JSON lines, PyTorch side by side, profiles) is issue #4's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::{AdapterChoice, GpuContext};
use lighthubert::{LightHubert, Preset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels-tests/fixtures/tiny-default.pt")
    });
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5).max(1);
    let ckpt = Checkpoint::open(&path)?;
    let ctx = Arc::new(GpuContext::new(&AdapterChoice::from_env())?);
    let model = LightHubert::load(ctx.clone(), &ckpt)?;
    println!("# {} | {} | {} runs after 1 warm-up", ctx.describe(), path.display(), runs);
    println!("| subnet | audio s | frames | median ms | min ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for preset in [Preset::Min, Preset::Default, Preset::Max] {
        let subnet = model.supernet().preset(&preset);
        for seconds in [1usize, 4, 10] {
            let wave: Vec<f32> = (0..seconds * 16_000).map(|i| ((i as f32) * 0.013).sin() * 0.3).collect();
            let out = model.forward(&subnet, &wave, true)?;
            let mut times: Vec<f64> = (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    model.forward(&subnet, &wave, true).map(|_| t.elapsed().as_secs_f64() * 1e3)
                })
                .collect::<Result<_, _>>()?;
            times.sort_by(f64::total_cmp);
            println!(
                "| {preset:?} | {seconds} | {} | {:.1} | {:.1} | {:.1} |",
                out.frames,
                times[times.len() / 2],
                times[0],
                times[times.len() - 1]
            );
        }
    }
    Ok(())
}
