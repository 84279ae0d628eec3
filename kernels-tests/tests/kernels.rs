//! Every kernel against the reference fixtures (`fixtures/kernels.safetensors`, made by
//! `tools/fixtures/gen_fixtures.py` from the authors' modules, float64 truth), using the real
//! weights of the test checkpoints read in place from their full supernet tensors. Each kernel
//! is also checked against its CPU reference on shapes the fixtures do not cover.

use std::sync::OnceLock;

use kernels_tests::{assert_close, fixture_path, fixtures_dir, gpu, random_values, Fixture};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::{stored_values, Arithmetic, CommandStream, GpuContext, WeightMatrix, WeightPrecision};
use lighthubert::kernels::attention::{attention_cpu, qkv_rows, Attention, AttentionForm, Qkv, FLASH_SUBGROUP};
use lighthubert::kernels::linear::{conv_weight_frame_major, linear_cpu, Activation, IndexMap, Linear, LinearCpu, LinearForm, LinearInput, WeightSlice, MATRIX_SUBGROUP};
use lighthubert::kernels::norm::{group_norm_time_cpu, layer_norm_cpu, Affine, GroupNormTime, LayerNorm, LayerNormForm};
use lighthubert::kernels::pointwise::{gelu_cpu, gelu_inplace};
use lighthubert::kernels::pos_conv::{pos_conv_residual_cpu, PosConvResidual, weight_norm_dim2, weight_norm_scales, PosConvForm, PosConvShape};
use lighthubert::model::ffn_units;
use lighthubert::supernet::SupernetDims;

// Random-shape checks against the CPU references (f64) use rel L2 1e-6 and max abs 5e-5:
// their outputs reach magnitudes of 10-30, where f32 accumulation over the depth costs a few
// ulps.
// Tolerances for single kernels against the float64 truth. The reference's own float32 error
// on these fixtures is 7e-8 to 8e-7 relative L2 and up to 3e-6 max abs.
const REL_L2: f64 = 2e-6;
const MAX_ABS: f64 = 2e-5;

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture::load(fixtures_dir().join("kernels.safetensors")))
}

fn checkpoint(name: &str) -> Checkpoint {
    Checkpoint::open(fixture_path(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn default_ckpt() -> &'static Checkpoint {
    static C: OnceLock<Checkpoint> = OnceLock::new();
    C.get_or_init(|| checkpoint("tiny-default.pt"))
}

fn weight(ctx: &GpuContext, ckpt: &Checkpoint, key: &str) -> wgpu::Buffer {
    let t = ckpt.get(key).unwrap_or_else(|| panic!("no tensor {key}"));
    ctx.upload_weight(key, &t.values).expect("upload")
}

/// A weight matrix of the checkpoint, stored in f32 like the engine's default.
fn matrix(ctx: &GpuContext, ckpt: &Checkpoint, key: &str) -> WeightMatrix {
    let t = ckpt.get(key).unwrap_or_else(|| panic!("no tensor {key}"));
    ctx.upload_matrix(key, &t.values, WeightPrecision::F32).expect("upload")
}

fn values(ckpt: &Checkpoint, key: &str) -> Vec<f32> {
    ckpt.get(key).unwrap_or_else(|| panic!("no tensor {key}")).values.clone()
}

/// Every linear form that can run this slice: each must match the reference, whatever form
/// this machine's adapter would pick.
fn linear_forms(ctx: &GpuContext, input: &LinearInput, w: &WeightSlice) -> Vec<LinearForm> {
    let mut forms = vec![LinearForm::Tile4];
    if ctx.subgroup_size == Some(8) {
        forms.push(LinearForm::Subgroup32x4Scalar);
    }
    if LinearForm::vec4_aligned(input, w) {
        forms.extend([LinearForm::Tile16Vec4, LinearForm::Shared64, LinearForm::Shared32]);
        if ctx.subgroup_size == Some(8) {
            forms.push(LinearForm::Subgroup32x4);
        }
    }
    forms
}

/// Every attention form this adapter can run: each must match the reference, whatever form
/// the adapter would pick.
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

/// Runs what `record` queues and reads `len` values of `out` back. `out` is filled with NaN
/// first and the device's validation errors fail the run, so a dispatch that does not run (a
/// shader that does not compile, say) cannot pass on a previous form's results.
fn run(ctx: &GpuContext, out: &wgpu::Buffer, len: usize, record: impl FnOnce(&mut CommandStream)) -> Vec<f32> {
    run_on(ctx, out, len, true, record)
}

/// [`run`] for a kernel that works in place: `out` keeps its input.
fn run_in_place(ctx: &GpuContext, out: &wgpu::Buffer, len: usize, record: impl FnOnce(&mut CommandStream)) -> Vec<f32> {
    run_on(ctx, out, len, false, record)
}

fn run_on(ctx: &GpuContext, out: &wgpu::Buffer, len: usize, poison: bool, record: impl FnOnce(&mut CommandStream)) -> Vec<f32> {
    ctx.scoped(|| {
        let mut s = CommandStream::new(ctx);
        if poison {
            s.upload(out, bytemuck::cast_slice(&vec![f32::NAN; len]))?;
        }
        record(&mut s);
        s.submit()
    })
    .unwrap_or_else(|e| panic!("the dispatch failed: {e}"));
    ctx.read_back(&[(out, 0, len)]).expect("read back").remove(0)
}

#[test]
fn gelu_matches_reference() {
    let ctx = gpu();
    let f = fixture();
    let x = f.get("gelu.x");
    let buf = ctx.activation_from("x", x).unwrap();
    let got = run_in_place(&ctx, &buf, x.len(), |s| gelu_inplace(s, &buf, x.len() as u32));
    assert_close("gelu", &got, f.get("gelu.y"), 1e-6, 4e-6);
    assert_close("gelu cpu reference", &gelu_cpu(x), f.get("gelu.y"), 1e-7, 1e-6);
}

fn check_extractor(mode: &str, ckpt: &Checkpoint) {
    let ctx = gpu();
    let f = fixture();
    let dims = SupernetDims::from_config(&ckpt.config).unwrap();
    let mut input = f.get(&format!("extractor.{mode}.wave")).to_vec();
    let mut cin = 1usize;
    for (i, spec) in dims.conv_layers.iter().enumerate() {
        let want = f.get(&format!("extractor.{mode}.block{i}"));
        let (c, k, st) = (spec.channels, spec.kernel, spec.stride);
        let t_in = input.len() / cin;
        let t_out = (t_in - k) / st + 1;
        assert_eq!(want.len(), t_out * c, "block {i} frames");
        let p = format!("feature_extractor.conv_layers.{i}");
        let w = conv_weight_frame_major(&values(ckpt, &format!("{p}.0.weight")), c, cin, k);
        let w = ctx.upload_matrix("conv", &w, WeightPrecision::F32).unwrap();
        let bias = dims.conv_bias.then(|| weight(&ctx, ckpt, &format!("{p}.0.bias")));
        let norm_key = match (mode, i) {
            ("default", 0) => Some(format!("{p}.2")),
            ("layer_norm", _) => Some(format!("{p}.2.1")),
            _ => None,
        };
        let x = ctx.activation_from("x", &input).unwrap();
        let conv_out = ctx.activation("conv", t_out * c).unwrap();
        let normed = ctx.activation("normed", t_out * c).unwrap();
        let norm = norm_key.as_ref().map(|n| (weight(&ctx, ckpt, &format!("{n}.weight")), weight(&ctx, ckpt, &format!("{n}.bias"))));
        let out = if norm.is_some() { &normed } else { &conv_out };
        let lengths = ctx.u32_buffer("lengths", &[t_out as u32]).unwrap();
        let slice = WeightSlice { weight: &w, bias: bias.as_ref(), row_stride: (k * cin) as u32, first_row: 0, rows: IndexMap::PREFIX, cols: IndexMap::PREFIX };
        let window = LinearInput::windows(&x, t_out as u32, (k * cin) as u32, (st * cin) as u32, 1, 0);
        for form in linear_forms(&ctx, &window, &slice) {
            let got = run(&ctx, out, t_out * c, |s| {
                let act = if norm.is_some() { Activation::None } else { Activation::Gelu };
                Linear { input: window, weight: slice, cols: c as u32, act, y: &conv_out }.record_as(s, form);
                if let Some((g, b)) = &norm {
                    let affine = Affine { gamma: g, beta: b };
                    if mode == "default" {
                        GroupNormTime { x: &conv_out, affine, lengths: &lengths, batch: 1, frames: t_out as u32, channels: c as u32, gelu: true, y: &normed }.record(s);
                    } else {
                        LayerNorm { x: &conv_out, residual: None, affine, rows: t_out as u32, width: c as u32, gelu: true, y: &normed }.record(s);
                    }
                }
            });
            assert_close(&format!("extractor {mode} block {i} ({form:?})"), &got, want, REL_L2, MAX_ABS);
        }
        input = want.to_vec();
        cin = c;
    }
}

#[test]
fn conv_extractor_default_mode_matches_reference() {
    check_extractor("default", default_ckpt());
}

#[test]
fn conv_extractor_layer_norm_mode_matches_reference() {
    check_extractor("layer_norm", &checkpoint("tiny-layernorm-f16.pt"));
}

fn run_layer_norm(prefix: &str, key: &str, width: usize, residual: bool) {
    let ctx = gpu();
    let f = fixture();
    let ckpt = default_ckpt();
    let x = f.get(&format!("{key}.x"));
    let rows = x.len() / width;
    let xb = ctx.activation_from("x", x).unwrap();
    let rb = residual.then(|| ctx.activation_from("r", f.get(&format!("{key}.residual"))).unwrap());
    let (g, b) = (weight(&ctx, ckpt, &format!("{prefix}.weight")), weight(&ctx, ckpt, &format!("{prefix}.bias")));
    // Both forms, whichever the adapter would pick.
    for form in [LayerNormForm::Cooperative, LayerNormForm::Rowwise] {
        let y = ctx.activation("y", x.len()).unwrap();
        let got = run(&ctx, &y, x.len(), |s| {
            LayerNorm { x: &xb, residual: rb.as_ref(), affine: Affine { gamma: &g, beta: &b }, rows: rows as u32, width: width as u32, gelu: false, y: &y }.record_as(s, form)
        });
        assert_close(&format!("{key} {form:?}"), &got, f.get(&format!("{key}.y")), REL_L2, MAX_ABS);
    }
}

#[test]
fn feature_layer_norm_matches_reference() {
    run_layer_norm("layer_norm", "feature_layer_norm", 64, false);
}

#[test]
fn encoder_layer_norm_uses_a_prefix_of_the_affine_params() {
    run_layer_norm("encoder.layer_norm", "encoder_layer_norm.e96", 96, false);
}

#[test]
fn residual_layer_norm_matches_reference() {
    run_layer_norm("encoder.layers.3.self_attn_layer_norm", "residual_layer_norm.e96", 96, true);
}

/// Runs a sliced linear of the test checkpoint against a fixture.
fn run_linear(prefix: &str, key: &str, depth: usize, cols: usize, rows_map: IndexMap, cols_map: IndexMap) {
    let ctx = gpu();
    let f = fixture();
    let ckpt = default_ckpt();
    let x = f.get(&format!("{key}.x"));
    let rows = x.len() / depth;
    let w = ckpt.get(&format!("{prefix}.weight")).unwrap();
    let in_full = w.shape[1];
    let wb = matrix(&ctx, ckpt, &format!("{prefix}.weight"));
    let bb = weight(&ctx, ckpt, &format!("{prefix}.bias"));
    let xb = ctx.activation_from("x", x).unwrap();
    let y = ctx.activation("y", rows * cols).unwrap();
    let slice = WeightSlice { weight: &wb, bias: Some(&bb), row_stride: in_full as u32, first_row: 0, rows: rows_map, cols: cols_map };
    let input = LinearInput::dense(&xb, rows as u32, depth as u32);
    for form in linear_forms(&ctx, &input, &slice) {
        let got = run(&ctx, &y, rows * cols, |s| Linear { input, weight: slice, cols: cols as u32, act: Activation::None, y: &y }.record_as(s, form));
        assert_close(&format!("{key} ({form:?})"), &got, f.get(&format!("{key}.y")), REL_L2, MAX_ABS);
    }
    // The CPU reference reads the same slice: it must agree with the authors' slicing too.
    let b = &ckpt.get(&format!("{prefix}.bias")).unwrap().values;
    let cpu = linear_cpu(&LinearCpu { x, rows, depth, x_row_stride: depth, weight: &w.values, bias: Some(b), w_row_stride: in_full, row_map: rows_map, col_map: cols_map, cols, act: Activation::None });
    assert_close(&format!("{key} cpu reference"), &cpu, f.get(&format!("{key}.y")), 1e-7, 1e-6);
}

#[test]
fn post_extract_proj_reads_a_row_prefix() {
    run_linear("post_extract_proj", "post_extract_proj.e96", 64, 96, IndexMap::PREFIX, IndexMap::PREFIX);
}

#[test]
fn ffn_linears_read_the_chunked_slices() {
    let dims = SupernetDims::from_config(&default_ckpt().config).unwrap();
    for (e, ffn) in [(96, 336), (64, 192), (128, 512), (128, 448), (96, 288)] {
        let units = ffn_units(&dims, e, ffn);
        let p = "encoder.layers.3";
        run_linear(&format!("{p}.fc1"), &format!("fc1.e{e}.f{ffn}"), e, ffn, units, IndexMap::PREFIX);
        run_linear(&format!("{p}.fc2"), &format!("fc2.e{e}.f{ffn}"), ffn, e, IndexMap::PREFIX, units);
    }
}

#[test]
fn positional_conv_regroups_for_each_width() {
    let ctx = gpu();
    let f = fixture();
    let ckpt = default_ckpt();
    let dims = SupernetDims::from_config(&ckpt.config).unwrap();
    let k = dims.pos_conv_kernel;
    let (v, g) = (values(ckpt, "encoder.pos_conv.0.weight_v"), values(ckpt, "encoder.pos_conv.0.weight_g"));
    let w = weight_norm_dim2(&v, &g, k);
    let scales = weight_norm_scales(&v, &g, k);
    let sb = ctx.upload_weight("pos_conv.scale", &scales).unwrap();
    let (e_full, gs_full) = (dims.embed, dims.embed / dims.pos_conv_groups);
    let tap_major = conv_weight_frame_major(&v, e_full, gs_full, k);
    let wb = ctx.upload_matrix("pos_conv.v", &tap_major, WeightPrecision::F32).unwrap();
    let w16 = ctx.upload_matrix("pos_conv.v.f16", &tap_major, WeightPrecision::F16).unwrap();
    let w16_values: Vec<f32> = stored_values(&v, WeightPrecision::F16).iter().enumerate().map(|(i, &x)| x * scales[i % k]).collect();
    let bias = values(ckpt, "encoder.pos_conv.0.bias");
    let bb = ctx.upload_weight("pos_conv.bias", &bias).unwrap();
    let shape = PosConvShape { embed_full: dims.embed as u32, groups: dims.pos_conv_groups as u32, kernel: k as u32 };
    let (mut tiled_runs, mut subgroup_runs) = (0, 0);
    for e in [64usize, 96, 128] {
        let key = format!("pos_conv.e{e}");
        let x = f.get(&format!("{key}.x"));
        let frames = x.len() / e;
        let xb = ctx.activation_from("x", x).unwrap();
        let y = ctx.activation("y", x.len()).unwrap();
        let lengths = ctx.u32_buffer("lengths", &[frames as u32]).unwrap();
        let cpu = pos_conv_residual_cpu(x, &w, &bias, shape, frames, e);
        assert_close(&format!("{key} cpu reference"), &cpu, f.get(&format!("{key}.y")), 1e-7, 2e-6);
        let want16 = pos_conv_residual_cpu(x, &w16_values, &bias, shape, frames, e);
        let mut forms = vec![PosConvForm::Direct];
        if PosConvForm::tiled_fits(shape, e as u32) {
            forms.push(PosConvForm::Tiled);
            tiled_runs += 1;
        }
        if ctx.subgroup_size == Some(8) && PosConvForm::subgroup_fits(shape, e as u32) {
            forms.push(PosConvForm::Subgroup);
            subgroup_runs += 1;
        }
        assert!(PosConvForm::gemm_fits(shape, e as u32));
        forms.push(PosConvForm::Gemm);
        for form in forms {
            let conv = |s: &mut CommandStream, w: &WeightMatrix| {
                PosConvResidual { x: &xb, weight: w, tap_scale: &sb, bias: &bb, shape, lengths: &lengths, batch: 1, frames: frames as u32, channels: e as u32, y: &y }.record_as(s, form)
            };
            let got = run(&ctx, &y, x.len(), |s| conv(s, &wb));
            assert_close(&format!("{key} ({form:?})"), &got, f.get(&format!("{key}.y")), REL_L2, MAX_ABS);
            // f16 storage computes exactly with the rounded weights.
            let got = run(&ctx, &y, x.len(), |s| conv(s, &w16));
            assert_close(&format!("{key} ({form:?}) f16 weights vs cpu"), &got, &want16, 1e-6, 5e-5);
        }
    }
    assert_eq!(tiled_runs, 2, "E=64 and E=128 have group sizes divisible by 4");
    if ctx.subgroup_size == Some(8) {
        assert_eq!(subgroup_runs, 1, "E=128 has group sizes divisible by 8");
    }
}

#[test]
fn positional_conv_forms_match_cpu_reference_on_a_padded_batch() {
    let ctx = gpu();
    // Two utterances padded to the same frames (one of them shorter), subnet groups that are
    // part of each supernet group. The second case has the real kernel of 128 taps, 3 frame
    // tiles of the GEMM form and groups of 12 channels (a partial chunk of 8); the third, 3
    // frame tiles of the subgroup form (the last one partial) over groups of 16 channels.
    struct Case {
        shape: PosConvShape,
        e: usize,
        frames: usize,
        lengths: [u32; 2],
    }
    let cases = [
        Case { shape: PosConvShape { embed_full: 48, groups: 4, kernel: 16 }, e: 32, frames: 45, lengths: [45, 23] },
        Case { shape: PosConvShape { embed_full: 80, groups: 5, kernel: 128 }, e: 60, frames: 150, lengths: [150, 70] },
        Case { shape: PosConvShape { embed_full: 96, groups: 4, kernel: 128 }, e: 64, frames: 150, lengths: [150, 70] },
    ];
    for (n, Case { shape, e, frames, lengths }) in cases.into_iter().enumerate() {
        let (full, k) = (shape.embed_full as usize, shape.kernel as usize);
        let gs_full = full / shape.groups as usize;
        let seed = 11 + 10 * n as u64;
        let v = random_values(seed, full * gs_full * k);
        let g = random_values(seed + 1, k);
        let bias = random_values(seed + 2, full);
        let x = random_values(seed + 3, 2 * frames * e);
        let scales = weight_norm_scales(&v, &g, k);
        let w = weight_norm_dim2(&v, &g, k);
        let tap_major = conv_weight_frame_major(&v, full, gs_full, k);
        let (sb, bb) = (ctx.upload_weight("scale", &scales).unwrap(), ctx.upload_weight("bias", &bias).unwrap());
        let (xb, y) = (ctx.activation_from("x", &x).unwrap(), ctx.activation("y", x.len()).unwrap());
        let lb = ctx.u32_buffer("lengths", &lengths).unwrap();
        // A lone utterance sees zeros past its end; padded rows copy x.
        let mut want = Vec::new();
        for (u, &len) in lengths.iter().enumerate() {
            let len = len as usize;
            let xu = &x[u * frames * e..(u + 1) * frames * e];
            want.extend(pos_conv_residual_cpu(&xu[..len * e], &w, &bias, shape, len, e));
            want.extend_from_slice(&xu[len * e..]);
        }
        assert!(PosConvForm::tiled_fits(shape, e as u32) && PosConvForm::gemm_fits(shape, e as u32));
        let mut forms = vec![PosConvForm::Direct, PosConvForm::Tiled, PosConvForm::Gemm];
        if ctx.subgroup_size == Some(8) && PosConvForm::subgroup_fits(shape, e as u32) {
            forms.push(PosConvForm::Subgroup);
        }
        for form in forms {
            let wb = ctx.upload_matrix("v", &tap_major, WeightPrecision::F32).unwrap();
            let got = run(&ctx, &y, x.len(), |s| PosConvResidual { x: &xb, weight: &wb, tap_scale: &sb, bias: &bb, shape, lengths: &lb, batch: 2, frames: frames as u32, channels: e as u32, y: &y }.record_as(s, form));
            assert_close(&format!("pos_conv case {n} {form:?} batch vs cpu"), &got, &want, 1e-6, 5e-5);
        }
    }
}

/// The whole attention block of layer 3: q/k/v projections, attention (in every form the
/// adapter runs), out_proj.
#[test]
fn attention_matches_reference_with_and_without_padding() {
    let ctx = gpu();
    let f = fixture();
    let ckpt = default_ckpt();
    let p = "encoder.layers.3.self_attn";
    let proj = |name: &str| {
        let w = ckpt.get(&format!("{p}.{name}.weight")).unwrap();
        (matrix(&ctx, ckpt, &format!("{p}.{name}.weight")), weight(&ctx, ckpt, &format!("{p}.{name}.bias")), w.shape[1] as u32)
    };
    let out = proj("out_proj");
    // q, k and v stored back to back and projected by one dispatch, as the model does.
    let tensors = ["q_proj", "k_proj", "v_proj"].map(|n| ckpt.get(&format!("{p}.{n}.weight")).unwrap());
    let (a_full, in_full) = (tensors[0].shape[0], tensors[0].shape[1]);
    let stacked: Vec<f32> = tensors.iter().flat_map(|t| t.values.iter().copied()).collect();
    let stacked_bias: Vec<f32> = ["q_proj", "k_proj", "v_proj"].iter().flat_map(|n| values(ckpt, &format!("{p}.{n}.bias"))).collect();
    let qkv_w = ctx.upload_matrix("qkv", &stacked, WeightPrecision::F32).unwrap();
    let qkv_b = ctx.upload_weight("qkv bias", &stacked_bias).unwrap();
    for (e, heads) in [(96usize, 1usize), (96, 2), (64, 2), (128, 2)] {
        let key = format!("attention.e{e}.h{heads}");
        let x = f.get(&format!("{key}.x"));
        let shape = f.shape(&format!("{key}.x"));
        let (batch, frames) = (shape[0], shape[1]);
        let mask_key = format!("{key}.key_padding_mask");
        let lengths: Vec<u32> = (0..batch)
            .map(|b| match f.tensors.get(&mask_key) {
                Some((_, m)) => m[b * frames..(b + 1) * frames].iter().filter(|&&v| v == 0.0).count() as u32,
                None => frames as u32,
            })
            .collect();
        let a = heads * 64;
        let rows = (batch * frames) as u32;
        let xb = ctx.activation_from("x", x).unwrap();
        let (qkv, ab) = (ctx.activation("qkv", 3 * batch * frames * a).unwrap(), ctx.activation("a", batch * frames * a).unwrap());
        let lb = ctx.u32_buffer("lengths", &lengths).unwrap();
        let y = ctx.activation("y", batch * frames * e).unwrap();
        for form in attention_forms(&ctx) {
            let got = run(&ctx, &y, batch * frames * e, |s| {
                let input = LinearInput::dense(&xb, rows, e as u32);
                let rows_map = IndexMap::chunked(a as u32, a_full as u32);
                let slice = WeightSlice { weight: &qkv_w, bias: Some(&qkv_b), row_stride: in_full as u32, first_row: 0, rows: rows_map, cols: IndexMap::PREFIX };
                Linear { input, weight: slice, cols: 3 * a as u32, act: Activation::None, y: &qkv }.record(s);
                Attention { qkv: Qkv::Fused(&qkv), lengths: &lb, frames: frames as u32, batch: batch as u32, heads: heads as u32, out: &ab }.record_as(s, form);
                let slice = WeightSlice { weight: &out.0, bias: Some(&out.1), row_stride: out.2, first_row: 0, rows: IndexMap::PREFIX, cols: IndexMap::PREFIX };
                let heads_in = LinearInput::dense(&ab, rows, a as u32);
                Linear { input: heads_in, weight: slice, cols: e as u32, act: Activation::None, y: &y }.record(s);
            });
            assert_close(&format!("{key} {form:?}"), &got, f.get(&format!("{key}.y")), REL_L2, MAX_ABS);
        }
    }
}

#[test]
fn attention_kernel_matches_cpu_reference_on_odd_lengths() {
    let ctx = gpu();
    let (batch, frames, heads) = (3usize, 71usize, 3usize);
    let n = batch * frames * heads * 64;
    let (q, k, v) = (random_values(1, n), random_values(2, n), random_values(3, n));
    let lengths = [71u32, 40, 1];
    let qkv = ctx.activation_from("qkv", &qkv_rows(&q, &k, &v, heads * 64)).unwrap();
    let [qb, kb, vb] = [&q, &k, &v].map(|d| ctx.activation_from("in", d).unwrap());
    let lb = ctx.u32_buffer("lengths", &lengths).unwrap();
    let out = ctx.activation("out", n).unwrap();
    let want = attention_cpu(&q, &k, &v, &lengths, frames, heads);
    for form in attention_forms(&ctx) {
        for source in [Qkv::Fused(&qkv), Qkv::Separate { q: &qb, k: &kb, v: &vb }] {
            let got = run(&ctx, &out, n, |s| Attention { qkv: source, lengths: &lb, frames: frames as u32, batch: batch as u32, heads: heads as u32, out: &out }.record_as(s, form));
            assert_close(&format!("attention {form:?} from {source:?} vs cpu"), &got, &want, 1e-6, 5e-5);
        }
    }
}

#[test]
fn linear_kernel_matches_cpu_reference_on_ragged_shapes() {
    let ctx = gpu();
    // Shapes that are not multiples of the 32 x 32 tile, with chunked rows and columns,
    // overlapping input rows, and GELU.
    let (rows, depth, cols, in_full, out_full) = (37usize, 45usize, 29usize, 64usize, 70usize);
    let x = random_values(4, rows * 3 + depth);
    let w = random_values(5, out_full * in_full);
    let b = random_values(6, out_full);
    let rows_map = IndexMap::chunked(10, 17);
    let cols_map = IndexMap::chunked(15, 20);
    let (xb, wb, bb) = (ctx.activation_from("x", &x).unwrap(), ctx.upload_matrix("w", &w, WeightPrecision::F32).unwrap(), ctx.upload_weight("b", &b).unwrap());
    let y = ctx.activation("y", rows * cols).unwrap();
    let slice = WeightSlice { weight: &wb, bias: Some(&bb), row_stride: in_full as u32, first_row: 0, rows: rows_map, cols: cols_map };
    let input = LinearInput::windows(&xb, rows as u32, depth as u32, 3, 1, 0);
    let want = linear_cpu(&LinearCpu { x: &x, rows, depth, x_row_stride: 3, weight: &w, bias: Some(&b), w_row_stride: in_full, row_map: rows_map, col_map: cols_map, cols, act: Activation::Gelu });
    for form in linear_forms(&ctx, &input, &slice) {
        let got = run(&ctx, &y, rows * cols, |s| Linear { input, weight: slice, cols: cols as u32, act: Activation::Gelu, y: &y }.record_as(s, form));
        assert_close(&format!("linear {form:?} vs cpu"), &got, &want, 1e-6, 5e-5);
    }
}

#[test]
fn both_linear_forms_match_cpu_reference_on_ragged_aligned_shapes() {
    let ctx = gpu();
    // vec4-aligned offsets but edges that cut through the 16 x 16 tiles, chunked rows and
    // columns, overlapping windows, and a batch of two padded utterances.
    let (rows, depth, cols, in_full, out_full, row_stride) = (37usize, 44usize, 29usize, 64usize, 70usize, 12usize);
    let (batch, batch_stride) = (2usize, 480usize);
    let x = random_values(7, batch_stride * batch);
    let w = random_values(8, out_full * in_full);
    let b = random_values(9, out_full);
    let rows_map = IndexMap::chunked(10, 17);
    let cols_map = IndexMap::chunked(12, 16);
    let (xb, bb) = (ctx.activation_from("x", &x).unwrap(), ctx.upload_weight("b", &b).unwrap());
    let y = ctx.activation("y", batch * rows * cols).unwrap();
    let input = LinearInput::windows(&xb, rows as u32, depth as u32, row_stride as u32, batch as u32, batch_stride as u32);
    // Each storage precision against the reference on the values it stores.
    for precision in [WeightPrecision::F32, WeightPrecision::F16] {
        let wb = ctx.upload_matrix("w", &w, precision).unwrap();
        let stored = stored_values(&w, precision);
        let slice = WeightSlice { weight: &wb, bias: Some(&bb), row_stride: in_full as u32, first_row: 0, rows: rows_map, cols: cols_map };
        let want: Vec<f32> = (0..batch)
            .flat_map(|u| linear_cpu(&LinearCpu { x: &x[u * batch_stride..], rows, depth, x_row_stride: row_stride, weight: &stored, bias: Some(&b), w_row_stride: in_full, row_map: rows_map, col_map: cols_map, cols, act: Activation::Gelu }))
            .collect();
        let forms = linear_forms(&ctx, &input, &slice);
        assert!(forms.len() >= 3, "this slice is vec4-aligned");
        for form in forms {
            let got = run(&ctx, &y, batch * rows * cols, |s| Linear { input, weight: slice, cols: cols as u32, act: Activation::Gelu, y: &y }.record_as(s, form));
            assert_close(&format!("linear {form:?} {precision:?} vs cpu"), &got, &want, 1e-6, 5e-5);
        }
        // f16 arithmetic (the GPU GEMM on SHADER_F16 adapters): x rounds to f16 and each
        // 4-deep block product runs in f16: 2e-4 relative L2 measured, up to 0.04 absolute on
        // outputs that reach 30. Slicing errors would be O(1) relative. Matrix units (where
        // the adapter has them: no lavapipe does) round x and the weights to f16 and
        // accumulate in f32, within the same bounds.
        if ctx.shader_f16 {
            let mut half = ctx.upload_matrix("w", &w, precision).unwrap();
            half.math = Arithmetic::F16;
            let slice = WeightSlice { weight: &half, ..slice };
            let mut forms = vec![LinearForm::Shared64, LinearForm::Shared32];
            if ctx.matrix_units && ctx.subgroup_size == Some(MATRIX_SUBGROUP) {
                forms.push(LinearForm::Matrix);
            }
            for form in forms {
                let got = run(&ctx, &y, batch * rows * cols, |s| Linear { input, weight: slice, cols: cols as u32, act: Activation::Gelu, y: &y }.record_as(s, form));
                assert_close(&format!("linear {form:?} {precision:?}, f16 arithmetic vs cpu"), &got, &want, 1e-3, 0.1);
            }
        }
    }
}

#[test]
fn norm_kernels_match_cpu_reference_on_wide_rows() {
    let ctx = gpu();
    // Wider than the 64 lanes of a row, and a row count that leaves a workgroup part-empty.
    let (rows, width) = (7usize, 700usize);
    let x = random_values(7, rows * width).iter().map(|v| v * 3.0 + 1.5).collect::<Vec<_>>();
    let r = random_values(8, rows * width);
    let g = random_values(9, 768);
    let b = random_values(10, 768);
    let (xb, rb) = (ctx.activation_from("x", &x).unwrap(), ctx.activation_from("r", &r).unwrap());
    let (gb, bb) = (ctx.upload_weight("g", &g).unwrap(), ctx.upload_weight("b", &b).unwrap());
    let want = layer_norm_cpu(&x, Some(&r), &g, &b, rows, width, true);
    for form in [LayerNormForm::Cooperative, LayerNormForm::Rowwise] {
        let y = ctx.activation("y", rows * width).unwrap();
        let got = run(&ctx, &y, rows * width, |s| {
            LayerNorm { x: &xb, residual: Some(&rb), affine: Affine { gamma: &gb, beta: &bb }, rows: rows as u32, width: width as u32, gelu: true, y: &y }.record_as(s, form)
        });
        assert_close(&format!("layer norm vs cpu, {form:?}"), &got, &want, 1e-6, 5e-5);
    }

    let (frames, channels) = (600usize, 7usize);
    let x = random_values(11, frames * channels).iter().map(|v| v * 2.0 - 0.7).collect::<Vec<_>>();
    let xb = ctx.activation_from("x", &x).unwrap();
    let y = ctx.activation("y", frames * channels).unwrap();
    let lengths = ctx.u32_buffer("lengths", &[frames as u32]).unwrap();
    let got = run(&ctx, &y, frames * channels, |s| {
        GroupNormTime { x: &xb, affine: Affine { gamma: &gb, beta: &bb }, lengths: &lengths, batch: 1, frames: frames as u32, channels: channels as u32, gelu: true, y: &y }.record(s)
    });
    let want = group_norm_time_cpu(&x, &g, &b, frames, channels, true);
    assert_close("group norm vs cpu", &got, &want, 1e-6, 5e-5);
}
