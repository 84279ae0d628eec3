//! `lighthubert-bench export`: each subnet exported (`lighthubert export`) against the supernet
//! it was cut from, in one run: file size, load time (read the file, build the model on the GPU;
//! loads interleaved, median), the GPU memory the weights take, and the two models' hidden
//! states on the same probe audio compared bit for bit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lighthubert::checkpoint::{Checkpoint, Origin};
use lighthubert::export::{subnet_file, FileWeights};
use lighthubert::gpu::{AdapterChoice, GpuContext, WeightPrecision};
use lighthubert::search::probe_audio;
use lighthubert::{LightHubert, Subnet, Supernet};
use serde_json::json;

use crate::report::{self, Report};
use crate::stats::time_interleaved;
use crate::Res;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The supernet checkpoint (.pt).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Subnets: presets (default, min, max, random:N) or JSON files, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["default".to_string()])]
    subnets: Vec<String>,
    /// Timed loads of each side, interleaved, after one warm-up each.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds of probe audio for the equality check.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// How both sides store weight matrices (the exported file too): f32 or f16.
    #[arg(long, default_value = "f32")]
    weights: WeightPrecision,
    /// Where results go (default bench/results).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

/// One load: the checkpoint read from disk and the model built on the GPU; returns the bytes of
/// weights it uploaded and the milliseconds the read alone took.
fn load(ctx: &Arc<GpuContext>, path: &Path, weights: WeightPrecision) -> Res<(LightHubert, u64, f64)> {
    let before = ctx.counters().weight_bytes_uploaded();
    let t = std::time::Instant::now();
    let ckpt = Checkpoint::open(path)?;
    let read_ms = t.elapsed().as_secs_f64() * 1e3;
    let model = LightHubert::load_with(ctx.clone(), &ckpt, weights)?;
    Ok((model, ctx.counters().weight_bytes_uploaded() - before, read_ms))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn run(args: &ExportArgs, repo: &Path) -> Res<()> {
    let ctx = Arc::new(GpuContext::new(&AdapterChoice::from_env())?);
    let ckpt = Checkpoint::open(&args.checkpoint)?;
    let supernet = Supernet::from_config(&ckpt.config)?;
    let file_weights = match args.weights {
        WeightPrecision::F32 => FileWeights::F32,
        WeightPrecision::F16 => FileWeights::F16,
    };
    let supernet_bytes = std::fs::metadata(&args.checkpoint)?.len();
    let name = args.checkpoint.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
    let origin = Origin { checkpoint: name.clone(), size: supernet_bytes, sha256: "(not computed by the benchmark)".into() };

    let info = &ctx.adapter_info;
    let (date, mut common) = report::provenance(&ctx, repo, &crate::command_line());
    common.insert("checkpoint".into(), name.clone().into());
    common.insert("weights".into(), args.weights.name().into());
    let out_dir = args.out_dir.clone().unwrap_or_else(|| repo.join("bench/results"));
    let mut rep = Report::create_stem(&out_dir, &format!("{date}-{}-export", report::slug(&info.name)), common)?;
    rep.line(format!("## Exported subnets of {name} on {}", ctx.describe()));
    rep.line("");
    rep.line(format!("- command: `{}`", crate::command_line()));
    rep.line(format!(
        "- date {}, commit {}; loads interleaved, {} timed per side after a warm-up, median (file in the page cache); weights {}",
        rep.common["date"],
        rep.common["git_commit"],
        args.runs,
        args.weights.name()
    ));
    rep.line("- load = read the file (`Checkpoint::open`, shown apart) and build the model on the GPU (weights uploaded, pipelines cached); GPU memory = the weight buffers");
    rep.line(format!("- equality: every hidden state of {} s of probe audio, exported against supernet", args.seconds));
    rep.line("");
    rep.table(&["subnet", "parameters", "file MB (supernet / exported)", "exported / (params x bytes)", "load ms (supernet / exported)", "load ratio", "GPU weights MB (supernet / exported)", "equality"]);

    let wave = probe_audio(args.seconds);
    for spec in &args.subnets {
        let text = if spec.ends_with(".json") { std::fs::read_to_string(spec)? } else { spec.clone() };
        let subnet: Subnet = supernet.subnet(&text)?;
        let params = supernet.parameter_count(&subnet);
        let bytes = subnet_file(&ckpt, &supernet, &subnet, &origin, file_weights)?;
        let exported = std::env::temp_dir().join(format!("lighthubert-bench-export-{}.safetensors", std::process::id()));
        std::fs::write(&exported, &bytes)?;

        let (mut super_gpu, mut export_gpu) = (0, 0);
        let (mut super_read, mut export_read) = (Vec::new(), Vec::new());
        let mut load_super = || -> Res<()> {
            let (_, bytes, read_ms) = load(&ctx, &args.checkpoint, args.weights)?;
            (super_gpu, _) = (bytes, super_read.push(read_ms));
            Ok(())
        };
        let mut load_export = || -> Res<()> {
            let (_, bytes, read_ms) = load(&ctx, &exported, args.weights)?;
            (export_gpu, _) = (bytes, export_read.push(read_ms));
            Ok(())
        };
        let stats = time_interleaved(1, args.runs, &mut [&mut load_super, &mut load_export])?;
        let (super_ms, export_ms) = (stats[0].median(), stats[1].median());
        let (super_read_ms, export_read_ms) = (median(&mut super_read), median(&mut export_read));

        let (a, _, _) = load(&ctx, &args.checkpoint, args.weights)?;
        let (b, _, _) = load(&ctx, &exported, args.weights)?;
        let only = b.supernet().preset(&lighthubert::Preset::Default);
        let (sa, sb) = (a.forward(&subnet, &wave, false)?, b.forward(&only, &wave, false)?);
        let (mut same, mut max_abs, mut diff2, mut norm2) = (true, 0f64, 0f64, 0f64);
        for (x, y) in sa.states.iter().zip(&sb.states) {
            same &= x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            for (p, q) in x.iter().zip(y) {
                let d = (*p as f64 - *q as f64).abs();
                max_abs = max_abs.max(d);
                diff2 += d * d;
                norm2 += (*p as f64).powi(2);
            }
        }
        std::fs::remove_file(&exported)?;
        let rel_l2 = (diff2 / norm2.max(1e-300)).sqrt();
        let equality = if same && sa.states.len() == sb.states.len() {
            format!("bit for bit ({} states x {} frames)", sa.states.len(), sa.frames)
        } else {
            format!("rel L2 {rel_l2:.2e}, max abs {max_abs:.2e}")
        };
        let width = args.weights.bytes_per_value() as f64;
        rep.record("export", json!({
            "subnet": spec, "subnet_config": serde_json::from_str::<serde_json::Value>(&subnet.to_json())?, "parameters": params,
            "supernet_bytes": supernet_bytes, "exported_bytes": bytes.len(), "load_ms_supernet": super_ms, "load_ms_exported": export_ms,
            "load_ms_supernet_all": stats[0].ms, "load_ms_exported_all": stats[1].ms,
            "read_ms_supernet": super_read_ms, "read_ms_exported": export_read_ms,
            "gpu_weight_bytes_supernet": super_gpu, "gpu_weight_bytes_exported": export_gpu,
            "bit_identical": same, "rel_l2": rel_l2, "max_abs": max_abs, "probe_seconds": args.seconds,
        }))?;
        rep.row(&[
            format!("{spec}: {}", describe(&subnet)),
            format!("{:.2} M", params as f64 / 1e6),
            format!("{:.1} / {:.1}", supernet_bytes as f64 / 1e6, bytes.len() as f64 / 1e6),
            format!("{:.4}", bytes.len() as f64 / (params as f64 * width)),
            format!("{super_ms:.0} / {export_ms:.0} (read {super_read_ms:.0} / {export_read_ms:.0})"),
            format!("{:.2}", export_ms / super_ms),
            format!("{:.1} / {:.1}", super_gpu as f64 / 1e6, export_gpu as f64 / 1e6),
            equality,
        ]);
        eprintln!("{}", rep.md.lines().last().unwrap_or_default());
    }
    rep.line("");
    rep.finish()?;
    eprintln!("wrote {} and {}", rep.md_path.display(), rep.jsonl_path.display());
    Ok(())
}

/// `embed 384, 12 layers, heads 6, ffn 1536`, or the per-layer lists when they differ.
fn describe(s: &Subnet) -> String {
    let one = |v: &[usize]| if v.iter().all(|&x| x == v[0]) { v[0].to_string() } else { format!("{v:?}") };
    format!("embed {}, {} layers, heads {}, ffn {}", s.embed_dim, s.layer_num, one(&s.heads_num), one(&s.ffn_embed))
}
