//! `lighthubert profile`: GPU time of every dispatch of one forward pass.

use std::time::Instant;

use lighthubert::model::min_samples;
use lighthubert::LightHubert;

use crate::cli::ProfileArgs;
use crate::setup::{load_checkpoint, open_gpu, resolve_subnet};
use crate::error::CliError;
use crate::output::write_atomic;
use crate::resample::{To16k, TARGET_RATE};

/// A deterministic test signal (a chirp under noise) when no audio file is given.
fn synthetic(seconds: f64) -> Vec<f32> {
    let n = (seconds * TARGET_RATE as f64).round() as usize;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let t = i as f64 / TARGET_RATE as f64;
            let noise = (seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            (0.3 * (2.0 * std::f64::consts::PI * (200.0 + 400.0 * t) * t).sin() + 0.05 * noise) as f32
        })
        .collect()
}

pub fn profile(args: ProfileArgs) -> Result<(), CliError> {
    if let Some(trace) = args.trace.as_ref().filter(|t| t.exists() && !args.force) {
        return Err(CliError::OutputExists(trace.clone()));
    }
    let src = load_checkpoint(args.checkpoint.as_deref())?;
    let ctx = open_gpu()?;
    let model = LightHubert::load_with(ctx.clone(), &src.ckpt, crate::cli::precision(args.weights, args.math)).map_err(|e| CliError::model(&src.label, e))?;
    let subnet = resolve_subnet(model.supernet(), &args.subnet)?;
    let (label, wave) = match &args.input {
        Some(path) => {
            let (_, wave) = crate::audio::read_16k(path, &mut To16k::new(), min_samples(&model.supernet().dims))?;
            (path.display().to_string(), wave)
        }
        None => {
            if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 3600.0) {
                return Err(CliError::Usage(format!("--seconds {}: expected a duration in (0, 3600]", args.seconds)));
            }
            (format!("{} s of synthetic audio", args.seconds), synthetic(args.seconds))
        }
    };
    let run_err = |e| CliError::Extract { label: label.clone(), source: e };
    let normalize = model.default_normalize();

    // Warm-up: builds every pipeline, so compilation stays out of the profile.
    let t0 = Instant::now();
    model.forward(&subnet, &wave, normalize).map_err(run_err)?;
    let warm_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut profiles = Vec::new();
    for _ in 0..args.runs.max(1) {
        profiles.push(model.profile(&subnet, &wave, normalize).map_err(run_err)?);
    }
    profiles.sort_by(|a, b| a.total_ms().total_cmp(&b.total_ms()));
    let median = &profiles[profiles.len() / 2];

    if src.bundled {
        println!("NOTE: bundled demo checkpoint (random weights): timings are real, features are not.");
    }
    println!("adapter    {}", ctx.describe());
    println!("kernels    {}", ctx.capabilities());
    println!("checkpoint {}", src.label);
    println!("precision  {} weights, {} arithmetic", model.weight_precision().name(), model.precision().math.name());
    println!("subnet     embed {}, {} layers ({} parameters)", subnet.embed_dim, subnet.layer_num, model.supernet().parameter_count(&subnet));
    println!("audio      {label} ({:.2} s)", wave.len() as f64 / TARGET_RATE as f64);
    println!(
        "clock      {}",
        if median.gpu_timestamps {
            "GPU timestamps around each dispatch (one compute pass per dispatch)"
        } else {
            "this adapter has no timestamp queries: wall clock around one submit per dispatch (includes submit latency)"
        }
    );
    println!("forward    {warm_ms:.1} ms first run (pipelines included); profiled run {:.1} ms wall", median.wall_ms);
    println!("median of {} profiled runs, {} dispatches:\n", profiles.len(), median.timings.len());
    print!("{}", median.table());
    if let Some(trace) = &args.trace {
        let json = median.chrome_trace();
        write_atomic(trace, args.force, |f| std::io::Write::write_all(f, json.as_bytes()))?;
        println!("\ntrace      {} (open in https://ui.perfetto.dev or chrome://tracing)", trace.display());
    }
    Ok(())
}
