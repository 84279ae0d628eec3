//! `lighthubert-bench forms`: every kernel form this adapter can run, on the shapes of a
//! forward pass, timed side by side in one profiled stream (GPU timestamps where the device
//! has them): the GEMM's tile forms in f32, f16 and on matrix units, the attention forms, the
//! positional conv's forms. It answers which form should win where on a new GPU, in one short
//! run, without a checkpoint: weights and inputs are synthetic (timing does not depend on them).

use std::path::{Path, PathBuf};

use lighthubert::gpu::{AdapterChoice, Arithmetic, CommandStream, GpuContext, KernelFamily, Precision, WeightMatrix, WeightPrecision};
use lighthubert::kernels::attention::{Attention, AttentionForm, Qkv, FLASH_SUBGROUP, HEAD_DIM};
use lighthubert::kernels::linear::{tune, Activation, IndexMap, Linear, LinearForm, LinearInput, WeightSlice, MATRIX_SUBGROUP};
use lighthubert::kernels::pos_conv::{PosConvForm, PosConvResidual, PosConvShape};
use serde_json::json;

use crate::report::{self, Report};
use crate::Res;

#[derive(clap::Args, Debug)]
pub struct FormsArgs {
    /// Audio lengths in seconds (49 frames per second).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1.0, 4.0, 10.0, 30.0])]
    seconds: Vec<f64>,
    /// Timed runs of each form (the median counts), after one untimed round.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where results go (default bench/results).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

/// One timed dispatch: what it computes, in which form, and whether the engine would pick
/// that form for it on this device.
struct Case {
    op: String,
    shape: String,
    form: String,
    chosen: bool,
}

/// The GEMMs of a layer: (name, depth, cols) for base (768 wide) and small (384 wide).
const GEMMS: &[(&str, u32, u32)] = &[
    ("base q/k/v", 768, 2304),
    ("base ffn in", 768, 3072),
    ("base ffn out", 3072, 768),
    ("small q/k/v", 384, 1152),
    ("small ffn in", 384, 1536),
    ("small ffn out", 1536, 384),
];

fn frames(seconds: f64) -> u32 {
    // The conv extractor's output length for 16 kHz audio.
    let mut t = (seconds * 16000.0) as u32;
    for (k, s) in [(10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2)] {
        t = (t - k) / s + 1;
    }
    t
}

fn pattern(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32).map(|i| ((i ^ seed).wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32 - 0.5).collect()
}

/// The GEMM forms this adapter runs, each with the arithmetic it runs in.
fn gemm_forms(ctx: &GpuContext) -> Vec<(LinearForm, Arithmetic)> {
    let mut forms = vec![(LinearForm::Tile4, Arithmetic::F32), (LinearForm::Tile16Vec4, Arithmetic::F32)];
    if ctx.subgroup_size == Some(8) {
        forms.extend([(LinearForm::Subgroup32x4, Arithmetic::F32), (LinearForm::Subgroup32x4Scalar, Arithmetic::F32)]);
    }
    forms.extend([(LinearForm::Shared64, Arithmetic::F32), (LinearForm::Shared32, Arithmetic::F32)]);
    if ctx.shader_f16 {
        forms.extend([(LinearForm::Shared64, Arithmetic::F16), (LinearForm::Shared32, Arithmetic::F16)]);
    }
    if ctx.matrix_units && ctx.subgroup_size == Some(MATRIX_SUBGROUP) {
        forms.push((LinearForm::Matrix, Arithmetic::F16Matrix));
    }
    forms
}

fn attention_forms(ctx: &GpuContext) -> Vec<AttentionForm> {
    let mut forms = vec![AttentionForm::PerQuery, AttentionForm::Flash];
    if ctx.has_subgroups_for(&FLASH_SUBGROUP) {
        forms.push(AttentionForm::FlashSubgroup);
    }
    if ctx.subgroup_size == Some(8) {
        forms.push(AttentionForm::Subgroup16);
    }
    forms
}

pub fn run(args: &FormsArgs, repo: &Path) -> Res<()> {
    let ctx = GpuContext::new(&AdapterChoice::from_env())?;
    // The GEMM's tile line, as loading a model would place it, so the marks show the engine's
    // choice.
    let mut lines = Vec::new();
    if ctx.kernel_family == KernelFamily::Gpu && ctx.autotune {
        for math in [Arithmetic::F32, Arithmetic::F16].into_iter().filter(|&m| m == Arithmetic::F32 || ctx.shader_f16) {
            let precision = Precision { weights: if math == Arithmetic::F32 { WeightPrecision::F32 } else { WeightPrecision::F16 }, math };
            let t = tune::tune(&ctx, precision, tune::default_cache().as_deref())?;
            lines.push(format!("{} math: {} blocks of 64x64", math.name(), t.line));
        }
    }
    let max_frames = args.seconds.iter().map(|&s| frames(s)).max().unwrap_or(1) as usize;
    let max_depth = GEMMS.iter().map(|g| g.1).max().unwrap_or(1) as usize;
    let max_cols = GEMMS.iter().map(|g| g.2).max().unwrap_or(1) as usize;
    // Inputs and outputs big enough for every case; weights in f32 and in f16 storage.
    let x = ctx.activation_from("x", &pattern(max_frames * max_depth.max(3 * 768), 1))?;
    let y = ctx.activation("y", max_frames * max_cols)?;
    let w_values = pattern(max_cols * max_depth, 2);
    let w32 = ctx.upload_matrix("w f32", &w_values, WeightPrecision::F32)?;
    let w16 = |math| -> Res<WeightMatrix> {
        let mut w = ctx.upload_matrix("w f16", &w_values, WeightPrecision::F16)?;
        w.math = math;
        Ok(w)
    };
    let (w16_f16, w16_matrix) = (w16(Arithmetic::F16)?, w16(Arithmetic::F16Matrix)?);
    let lengths = ctx.u32_buffer("lengths", &[max_frames as u32])?;
    let (pos_e, pos_groups, pos_k) = (768u32, 16u32, 128u32);
    let pos_w = ctx.upload_matrix("pos w", &pattern((pos_e * pos_e / pos_groups * pos_k) as usize, 3), WeightPrecision::F32)?;
    let tap_scale = ctx.upload_weight("tap scale", &vec![1.0; pos_k as usize])?;
    let bias = ctx.upload_weight("bias", &pattern(max_cols, 4))?;

    let mut cases: Vec<Case> = Vec::new();
    let queue = |stream: &mut CommandStream, cases: &mut Vec<Case>| {
        cases.clear();
        for &s in &args.seconds {
            let t = frames(s);
            for &(name, depth, cols) in GEMMS {
                for (form, math) in gemm_forms(&ctx) {
                    let weight = match math {
                        Arithmetic::F32 => &w32,
                        Arithmetic::F16 => &w16_f16,
                        Arithmetic::F16Matrix => &w16_matrix,
                    };
                    let slice = WeightSlice { weight, bias: Some(&bias), row_stride: depth, first_row: 0, rows: IndexMap::PREFIX, cols: IndexMap::PREFIX };
                    let input = LinearInput::dense(&x, t, depth);
                    Linear { input, weight: slice, cols, act: Activation::None, y: &y }.record_as(stream, form);
                    let chosen = LinearForm::for_device(&ctx, &input, &slice, cols) == form;
                    cases.push(Case { op: format!("GEMM {name}"), shape: format!("{t}x{depth}x{cols}"), form: format!("{form:?} {}", math.name()), chosen });
                }
            }
            for heads in [12u32, 6] {
                for form in attention_forms(&ctx) {
                    Attention { qkv: Qkv::Fused(&x), lengths: &lengths, frames: t, batch: 1, heads, out: &y }.record_as(stream, form);
                    let chosen = AttentionForm::for_device(&ctx) == form;
                    cases.push(Case { op: "attention".into(), shape: format!("{t} frames x {heads} heads of {HEAD_DIM}"), form: format!("{form:?}"), chosen });
                }
            }
            for channels in [768u32, 384] {
                let shape = PosConvShape { embed_full: pos_e, groups: pos_groups, kernel: pos_k };
                let mut forms = vec![PosConvForm::Direct];
                forms.extend(PosConvForm::tiled_fits(shape, channels).then_some(PosConvForm::Tiled));
                forms.extend((ctx.subgroup_size == Some(8) && PosConvForm::subgroup_fits(shape, channels)).then_some(PosConvForm::Subgroup));
                forms.extend(PosConvForm::gemm_fits(shape, channels).then_some(PosConvForm::Gemm));
                for form in forms {
                    PosConvResidual { x: &x, weight: &pos_w, tap_scale: &tap_scale, bias: &bias, shape, lengths: &lengths, batch: 1, frames: t, channels, y: &y }
                        .record_as(stream, form);
                    let chosen = PosConvForm::for_device(&ctx, shape, channels) == form;
                    cases.push(Case { op: "pos conv".into(), shape: format!("{t} frames x {channels} channels, K={pos_k}, {pos_groups} groups"), form: format!("{form:?}"), chosen });
                }
            }
        }
    };
    // One untimed round (clocks up, pipelines compiled), then the timed ones in one stream.
    let mut warm = CommandStream::new(&ctx);
    queue(&mut warm, &mut cases);
    ctx.scoped(|| warm.submit().map(|_| ()))?;
    let mut stream = CommandStream::new(&ctx);
    for _ in 0..args.runs.max(1) {
        queue(&mut stream, &mut cases);
    }
    let profile = ctx.scoped(|| stream.submit_profiled())?;

    let info = &ctx.adapter_info;
    let (date, common) = report::provenance(&ctx, repo, &crate::command_line());
    let out_dir = args.out_dir.clone().unwrap_or_else(|| repo.join("bench/results"));
    let mut rep = Report::create_stem(&out_dir, &format!("{date}-{}-forms", report::slug(&info.name)), common)?;
    rep.line(format!("## Kernel forms on {}", ctx.describe()));
    rep.line(format!("Device: {}.", ctx.capabilities()));
    rep.line("");
    if !lines.is_empty() {
        rep.line(format!("- GEMM tile line (64x64 blocks from there, 32x32 below), tuned: {}", lines.join("; ")));
    }
    rep.line(format!("- command: `{}`", crate::command_line()));
    rep.line(format!(
        "- median of {} runs per form, timed by {}; synthetic weights and inputs; the engine's own choice on this device is marked *",
        args.runs.max(1),
        if profile.gpu_timestamps { "GPU timestamps" } else { "wall clock around a submit per dispatch" }
    ));
    rep.line("");
    rep.table(&["op", "shape", "form", "median us", "GFLOP/s"]);
    let per_run = cases.len();
    for (i, case) in cases.iter().enumerate() {
        let mut us: Vec<f64> = (0..args.runs.max(1)).map(|r| profile.timings[r * per_run + i].duration_ns / 1e3).collect();
        us.sort_by(f64::total_cmp);
        let median = us[us.len() / 2];
        let flops = profile.timings[i].flops;
        let gflops = flops / (median * 1e3);
        let mark = if case.chosen { " *" } else { "" };
        rep.row(&[case.op.clone(), case.shape.clone(), format!("{}{mark}", case.form), format!("{median:.1}"), format!("{gflops:.1}")]);
        rep.record("forms", json!({"op": case.op, "shape": case.shape, "form": case.form, "chosen": case.chosen, "median_us": median, "gflops": gflops, "runs_us": us}))?;
    }
    rep.finish()?;
    println!("{}", rep.md);
    println!("wrote {} and {}", rep.md_path.display(), rep.jsonl_path.display());
    Ok(())
}
