//! The LightHuBERT model: the full supernet's weights on the GPU, and the forward pass of any
//! subnet, read top to bottom. Weights are uploaded once in `load`; a forward pass only
//! writes the waveform and a block of dispatch parameters, and reads back the hidden states.

use std::sync::Arc;

use crate::checkpoint::{exported, Checkpoint, CheckpointError, ExtractorMode, TensorData};
use crate::error::{Error, Result};
use crate::gpu::{host_vec, Arena, Arithmetic, CommandStream, GpuContext, Kernel, KernelFamily, Precision, Profile, WeightMatrix, WeightPrecision};
use crate::kernels::attention::{attention, HEAD_DIM};
use crate::kernels::linear::{conv_weight_frame_major, linear, Activation, IndexMap, LinearInput, WeightSlice};
use crate::kernels::norm::{group_norm_apply, group_norm_partial, group_norm_time, layer_norm, Affine, NormChunks};
use crate::kernels::pos_conv::{pos_conv_residual, weight_norm_scales, PosConvShape};
// The frame arithmetic lives with the supernet's dims; re-exported where callers look for it.
pub use crate::supernet::{frames_for, min_samples};
use crate::supernet::{Subnet, Supernet, SupernetDims};

struct Norm {
    gamma: wgpu::Buffer,
    beta: wgpu::Buffer,
}

impl Norm {
    fn affine(&self) -> Affine<'_> {
        Affine { gamma: &self.gamma, beta: &self.beta }
    }
}

struct Linear {
    weight: WeightMatrix,
    bias: Option<wgpu::Buffer>,
    /// Row length of the full weight.
    in_full: u32,
}

impl Linear {
    fn prefix(&self) -> WeightSlice<'_> {
        self.slice(IndexMap::PREFIX, IndexMap::PREFIX)
    }
    fn slice(&self, rows: IndexMap, cols: IndexMap) -> WeightSlice<'_> {
        WeightSlice { weight: &self.weight, bias: self.bias.as_ref(), row_stride: self.in_full, rows, cols }
    }
}

struct ConvBlock {
    /// The conv weight, laid out [out, kernel, in] so a frame's receptive field is one
    /// contiguous row of the frame-major input: the conv runs as an implicit GEMM.
    conv: Linear,
    norm: Option<Norm>,
    spec: crate::checkpoint::ConvLayerSpec,
    in_channels: usize,
}

struct EncoderLayer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    attn_norm: Norm,
    fc1: Linear,
    fc2: Linear,
    final_norm: Norm,
}

/// The full supernet on one GPU device.
pub struct LightHubert {
    ctx: Arc<GpuContext>,
    supernet: Supernet,
    task_normalize: Option<bool>,
    conv_blocks: Vec<ConvBlock>,
    feature_norm: Norm,
    post_extract_proj: Linear,
    pos_conv_weight: WeightMatrix,
    pos_conv_tap_scale: wgpu::Buffer,
    pos_conv_bias: wgpu::Buffer,
    encoder_norm: Norm,
    layers: Vec<EncoderLayer>,
    /// Caps activation buffers below the device's binding limit (tests use it to force splits).
    activation_limit: Option<u64>,
}

/// Per-layer features of one utterance: `states[i]` is [frames, embed] row-major. Slot 0 is the
/// post_extract_proj output, then one slot per kept layer, as the reference returns them.
#[derive(Debug, Clone)]
pub struct HiddenStates {
    pub frames: usize,
    pub embed: usize,
    pub states: Vec<Vec<f32>>,
}

/// A queued forward pass: where its hidden states will be.
struct Recorded {
    /// One [batch, padded_frames, embed] buffer per hidden state.
    states: Vec<wgpu::Buffer>,
    /// Each utterance's own frame count.
    frames: Vec<usize>,
    padded_frames: usize,
    embed: usize,
}

/// s3prl's per-utterance normalisation: (x - mean) / sqrt(var + 1e-5), biased variance, in f64.
pub fn normalize_waveform(wave: &[f32]) -> Vec<f32> {
    let mut out = wave.to_vec();
    normalize_in_place(&mut out);
    out
}

/// [`normalize_waveform`] without a second copy of the audio.
fn normalize_in_place(wave: &mut [f32]) {
    let n = wave.len().max(1) as f64;
    let mean = wave.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = wave.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + 1e-5).sqrt();
    for v in wave {
        *v = ((*v as f64 - mean) * inv) as f32;
    }
}

fn upload_norm(ctx: &GpuContext, ckpt: &Checkpoint, prefix: &str, width: usize) -> Result<Norm> {
    let g = ckpt.tensor(&format!("{prefix}.weight"), &[width])?;
    let b = ckpt.tensor(&format!("{prefix}.bias"), &[width])?;
    Ok(Norm {
        gamma: ctx.upload_weight(&format!("{prefix}.weight"), &g.values)?,
        beta: ctx.upload_weight(&format!("{prefix}.bias"), &b.values)?,
    })
}

/// A weight matrix that linear kernels read, computed with in `precision.math` where the
/// GEMM supports it.
fn upload_gemm_weight(ctx: &GpuContext, label: &str, values: &[f32], precision: Precision) -> Result<WeightMatrix> {
    let mut m = ctx.upload_matrix(label, values, precision.weights)?;
    m.math = precision.math;
    Ok(m)
}

fn upload_linear(ctx: &GpuContext, ckpt: &Checkpoint, prefix: &str, out: usize, inp: usize, precision: Precision) -> Result<Linear> {
    let w = ckpt.tensor(&format!("{prefix}.weight"), &[out, inp])?;
    let b = ckpt.tensor(&format!("{prefix}.bias"), &[out])?;
    Ok(Linear {
        weight: upload_gemm_weight(ctx, &format!("{prefix}.weight"), &w.values, precision)?,
        bias: Some(ctx.upload_weight(&format!("{prefix}.bias"), &b.values)?),
        in_full: inp as u32,
    })
}

impl LightHubert {
    /// Uploads every tensor inference uses, once, at its full supernet size, in f32.
    pub fn load(ctx: Arc<GpuContext>, ckpt: &Checkpoint) -> Result<Self> {
        Self::load_with(ctx, ckpt, WeightPrecision::F32)
    }

    /// [`LightHubert::load`] with the weight matrices stored, and the GEMMs computing, in
    /// `precision` (a [`WeightPrecision`] alone keeps f32 arithmetic).
    pub fn load_with(ctx: Arc<GpuContext>, ckpt: &Checkpoint, precision: impl Into<Precision>) -> Result<Self> {
        let precision = precision.into();
        if precision.math == Arithmetic::F16 && !(ctx.shader_f16 && ctx.kernel_family == KernelFamily::Gpu) {
            return Err(Error::Unsupported(format!(
                "f16 arithmetic runs in the GPU kernels on adapters with SHADER_F16; {} {}",
                ctx.adapter_info.name,
                if ctx.shader_f16 { "runs the CPU kernel family (LIGHTHUBERT_KERNELS=gpu overrides)" } else { "lacks SHADER_F16" }
            )));
        }
        let scope = ctx.clone();
        scope.scoped(|| Self::load_unscoped(ctx, ckpt, precision))
    }

    /// How the weight matrices are stored.
    pub fn weight_precision(&self) -> WeightPrecision {
        self.post_extract_proj.weight.precision
    }

    /// How the weight matrices are stored and the GEMMs compute.
    pub fn precision(&self) -> Precision {
        Precision { weights: self.post_extract_proj.weight.precision, math: self.post_extract_proj.weight.math }
    }

    fn load_unscoped(ctx: Arc<GpuContext>, ckpt: &Checkpoint, precision: Precision) -> Result<Self> {
        let (math, weights) = (precision.math, precision.weights);
        let supernet = Supernet::from_config(&ckpt.config)?;
        let d = supernet.dims.clone();
        let c = &*ctx;

        let mut conv_blocks = Vec::new();
        let mut in_ch = 1;
        for (i, spec) in d.conv_layers.iter().enumerate() {
            let p = format!("feature_extractor.conv_layers.{i}");
            let w = ckpt.tensor(&format!("{p}.0.weight"), &[spec.channels, in_ch, spec.kernel])?;
            let repacked = conv_weight_frame_major(&w.values, spec.channels, in_ch, spec.kernel);
            let bias = if d.conv_bias {
                let b = ckpt.tensor(&format!("{p}.0.bias"), &[spec.channels])?;
                Some(c.upload_weight(&format!("{p}.0.bias"), &b.values)?)
            } else {
                None
            };
            let norm = match (d.extractor_mode, i) {
                (ExtractorMode::Default, 0) => Some(upload_norm(c, ckpt, &format!("{p}.2"), spec.channels)?),
                (ExtractorMode::Default, _) => None,
                (ExtractorMode::LayerNorm, _) => Some(upload_norm(c, ckpt, &format!("{p}.2.1"), spec.channels)?),
            };
            conv_blocks.push(ConvBlock {
                conv: Linear {
                    weight: upload_gemm_weight(c, &format!("{p}.0.weight"), &repacked, precision)?,
                    bias,
                    in_full: (spec.kernel * in_ch) as u32,
                },
                norm,
                spec: *spec,
                in_channels: in_ch,
            });
            in_ch = spec.channels;
        }

        let (e, ch) = (d.embed, d.conv_channels);
        let feature_norm = upload_norm(c, ckpt, "layer_norm", ch)?;
        let post_extract_proj = upload_linear(c, ckpt, "post_extract_proj", e, ch, precision)?;

        let k = d.pos_conv_kernel;
        let gs = e / d.pos_conv_groups;
        let (v, tap_scale) = pos_conv_weight_norm(ckpt, e, gs, k)?;
        // v as stored (exact in f16 for an f16 checkpoint), the weight norm as one scale per tap.
        let tap_major = conv_weight_frame_major(&v.values, e, gs, k);
        let pos_conv_weight = c.upload_matrix("encoder.pos_conv.0.weight_v", &tap_major, weights)?;
        let pos_conv_tap_scale = c.upload_weight("encoder.pos_conv.0.weight_norm", &tap_scale)?;
        let pos_conv_bias = c.upload_weight(
            "encoder.pos_conv.0.bias",
            &ckpt.tensor("encoder.pos_conv.0.bias", &[e])?.values,
        )?;
        let encoder_norm = upload_norm(c, ckpt, "encoder.layer_norm", e)?;

        let mut layers = Vec::new();
        for (l, widths) in d.layer_widths.iter().enumerate() {
            let p = format!("encoder.layers.{l}");
            let (a, f) = (widths.attention, widths.ffn);
            layers.push(EncoderLayer {
                q: upload_linear(c, ckpt, &format!("{p}.self_attn.q_proj"), a, e, precision)?,
                k: upload_linear(c, ckpt, &format!("{p}.self_attn.k_proj"), a, e, precision)?,
                v: upload_linear(c, ckpt, &format!("{p}.self_attn.v_proj"), a, e, precision)?,
                out: upload_linear(c, ckpt, &format!("{p}.self_attn.out_proj"), e, a, precision)?,
                attn_norm: upload_norm(c, ckpt, &format!("{p}.self_attn_layer_norm"), e)?,
                fc1: upload_linear(c, ckpt, &format!("{p}.fc1"), f, e, precision)?,
                fc2: upload_linear(c, ckpt, &format!("{p}.fc2"), e, f, precision)?,
                final_norm: upload_norm(c, ckpt, &format!("{p}.final_layer_norm"), e)?,
            });
        }

        // Every kernel a forward of any subnet may pick, in this precision: which form a
        // dispatch takes depends on the subnet's widths, and a switch must not compile.
        ctx.build_pipelines(Kernel::ALL.into_iter().filter(|k| {
            k.weight_precision().is_none_or(|p| p == weights)
                && k.subgroup_size().is_none_or(|n| ctx.subgroup_size == Some(n))
                && (!k.uses_f16() || math == Arithmetic::F16)
                && !k.draws_pictures()
        }));

        Ok(LightHubert {
            ctx,
            supernet,
            task_normalize: ckpt.task_normalize,
            conv_blocks,
            feature_norm,
            post_extract_proj,
            pos_conv_weight,
            pos_conv_tap_scale,
            pos_conv_bias,
            encoder_norm,
            layers,
            activation_limit: None,
        })
    }

    pub fn supernet(&self) -> &Supernet {
        &self.supernet
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Lowers the largest activation buffer a forward pass may create (never above the
    /// device's binding limit). `extract` splits batches to stay under it.
    pub fn set_activation_limit(&mut self, bytes: Option<u64>) {
        self.activation_limit = bytes;
    }

    /// The largest activation buffer this model may create, in bytes.
    pub fn activation_limit(&self) -> u64 {
        let device = self.ctx.max_binding_bytes();
        self.activation_limit.map_or(device, |l| l.min(device))
    }

    /// Whether a forward pass of `batch` utterances padded to `longest` samples stays within
    /// the buffer and dispatch limits: the sizes below mirror what `forward_batch` allocates.
    pub fn fits(&self, subnet: &Subnet, batch: usize, longest: usize) -> bool {
        let d = &self.supernet.dims;
        let (b, max_groups) = (batch as u64, self.ctx.limits.max_compute_workgroups_per_dimension as u64);
        // The linear kernels cover 16 (Tile16Vec4) or 32 (Tile4) rows per workgroup in y.
        let rows_fit = |rows: u64| rows.div_ceil(16) <= max_groups;
        let t = frames_for(d, longest) as u64;
        if t == 0 {
            // Too short for a frame: refused elsewhere as too short, not as too long.
            return true;
        }
        let mut largest = b * longest as u64;
        if b == 1 {
            // One utterance runs its conv extractor in chunks when it must.
            if self.conv_chunk_frames(longest).is_err() {
                return false;
            }
        } else {
            let mut frames = longest as u64;
            for l in &d.conv_layers {
                frames = l.out_len(frames as usize) as u64;
                largest = largest.max(b * frames * l.channels as u64);
                if !rows_fit(frames) {
                    return false;
                }
            }
        }
        // After the extractor: whole-length [frames, width] buffers; the FFN runs in row blocks.
        let a = self.supernet.layers(subnet).iter().map(|l| 64 * l.heads as u64).max().unwrap_or(64);
        let widths = [d.conv_channels as u64, subnet.embed_dim as u64, a];
        largest = largest.max(b * t * widths.iter().max().copied().unwrap_or(1));
        largest * 4 <= self.activation_limit() && rows_fit(b * t)
    }

    /// Whether the checkpoint's training normalised waveforms (`cfg.task.normalize`).
    pub fn task_normalize(&self) -> Option<bool> {
        self.task_normalize
    }

    /// Runs `subnet` on one waveform (16 kHz mono) and returns every hidden state.
    /// `normalize` applies s3prl's per-utterance normalisation first.
    pub fn forward(&self, subnet: &Subnet, waveform: &[f32], normalize: bool) -> Result<HiddenStates> {
        let mut out = self.forward_batch(subnet, &[waveform], normalize)?;
        Ok(out.remove(0))
    }

    /// Runs `subnet` on several waveforms as one zero-padded batch, in one command stream.
    /// Every utterance gets exactly the hidden states it gets alone: its own frame count, and
    /// no padding in its GroupNorm statistics, its positional conv or its attention keys.
    pub fn forward_batch(&self, subnet: &Subnet, waveforms: &[&[f32]], normalize: bool) -> Result<Vec<HiddenStates>> {
        self.ctx.scoped(|| self.forward_batch_unscoped(subnet, waveforms, normalize))
    }

    fn forward_batch_unscoped(&self, subnet: &Subnet, waveforms: &[&[f32]], normalize: bool) -> Result<Vec<HiddenStates>> {
        if waveforms.is_empty() {
            return Ok(Vec::new());
        }
        // The arena lends pooled activation buffers and takes them back once read.
        let arena = Arena::new(&self.ctx);
        let mut s = CommandStream::new(&self.ctx);
        let recorded = self.record(&mut s, &arena, subnet, waveforms, normalize)?;
        s.submit()?;
        self.read_states(&recorded)
    }

    /// Times every dispatch of one forward pass of `subnet` on `waveform` (see
    /// [`CommandStream::submit_profiled`]). Run a normal forward first so pipelines are built.
    pub fn profile(&self, subnet: &Subnet, waveform: &[f32], normalize: bool) -> Result<Profile> {
        self.ctx.scoped(|| {
            let arena = Arena::new(&self.ctx);
            let mut s = CommandStream::new(&self.ctx);
            self.record(&mut s, &arena, subnet, &[waveform], normalize)?;
            Ok(s.submit_profiled()?)
        })
    }

    /// Queues the whole forward pass of a batch on `s`, its activations taken from `arena`.
    fn record(&self, s: &mut CommandStream, arena: &Arena, subnet: &Subnet, waveforms: &[&[f32]], normalize: bool) -> Result<Recorded> {
        self.supernet.validate(subnet)?;
        let d = &self.supernet.dims;
        for w in waveforms {
            if let Some(index) = w.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFiniteAudio { index });
            }
            if frames_for(d, w.len()) == 0 {
                return Err(Error::AudioTooShort { samples: w.len(), min: min_samples(d) });
            }
        }
        let batch = waveforms.len() as u32;
        let e = subnet.embed_dim as u32;

        // The padded batch: utterance b starts at sample b * longest, zeros after its end.
        let longest = waveforms.iter().map(|w| w.len()).max().unwrap_or(0);
        let mut padded = host_vec("the padded waveform batch", waveforms.len() * longest)?;
        padded.resize(waveforms.len() * longest, 0f32);
        for (b, w) in waveforms.iter().enumerate() {
            let dst = &mut padded[b * longest..b * longest + w.len()];
            dst.copy_from_slice(w);
            if normalize {
                normalize_in_place(dst);
            }
        }
        let frames: Vec<usize> = waveforms.iter().map(|w| frames_for(d, w.len())).collect();

        // 1. Conv feature extractor, frame-major [batch, frames, channels] from the first block
        //    on. Rows past an utterance's own frames hold finite values that nothing valid reads.
        //    One utterance too long for whole-length buffers runs it in chunks of frames.
        let mut x = arena.activation_from(s, "waveform", &padded)?;
        let mut lengths_in: Vec<u32> = waveforms.iter().map(|w| w.len() as u32).collect();
        let mut t_in = longest as u32;
        let chunking = if batch == 1 { self.conv_chunk_frames(longest)? } else { None };
        if let Some(chunk_frames) = chunking {
            x = self.record_conv_chunked(s, arena, &x, longest, chunk_frames)?;
            t_in = frames_for(d, longest) as u32;
            lengths_in = vec![t_in];
        }
        // Whole-length buffers: the blocks run here unless the chunked path above ran them.
        let whole_length_blocks = if chunking.is_none() { &self.conv_blocks[..] } else { &[] };
        for (i, block) in whole_length_blocks.iter().enumerate() {
            s.scope(format!("conv {i}"));
            let spec = block.spec;
            let (ch, cin) = (spec.channels as u32, block.in_channels as u32);
            let (k, stride) = (spec.kernel as u32, spec.stride as u32);
            let t_out = spec.out_len(t_in as usize) as u32;
            let lengths_out: Vec<u32> = lengths_in.iter().map(|&l| spec.out_len(l as usize) as u32).collect();
            let conv_out = arena.activation(&format!("conv{i}"), (batch * t_out * ch) as usize)?;
            let windows = LinearInput::windows(&x, t_out, k * cin, stride * cin, batch, t_in * cin);
            let act = if block.norm.is_none() { Activation::Gelu } else { Activation::None };
            linear(s, windows, block.conv.prefix(), ch, act, &conv_out);
            x = match &block.norm {
                None => conv_out,
                Some(norm) => {
                    let normed = arena.activation(&format!("conv{i}.norm"), (batch * t_out * ch) as usize)?;
                    match d.extractor_mode {
                        ExtractorMode::Default => {
                            let lengths = arena.u32_buffer(s, &format!("conv{i}.lengths"), &lengths_out)?;
                            group_norm_time(s, &conv_out, norm.affine(), &lengths, batch, t_out, ch, true, &normed)
                        }
                        ExtractorMode::LayerNorm => {
                            layer_norm(s, &conv_out, None, norm.affine(), batch * t_out, ch, true, &normed)
                        }
                    }
                    normed
                }
            };
            t_in = t_out;
            lengths_in = lengths_out;
        }
        let t = t_in;
        let rows = batch * t;
        let lengths = arena.u32_buffer(s, "lengths", &lengths_in)?;

        // 2. Feature LayerNorm and the projection to the subnet's width: hidden state 0.
        s.scope("features");
        let ch = d.conv_channels as u32;
        let features = arena.activation("features", (rows * ch) as usize)?;
        layer_norm(s, &x, None, self.feature_norm.affine(), rows, ch, false, &features);
        let mut states = vec![arena.activation("hidden.0", (rows * e) as usize)?];
        let features_in = LinearInput::dense(&features, rows, ch);
        linear(s, features_in, self.post_extract_proj.prefix(), e, Activation::None, &states[0]);

        // 3. Positional conv with its residual, then the encoder LayerNorm.
        s.scope("pos_conv");
        let shape = PosConvShape { embed_full: d.embed as u32, groups: d.pos_conv_groups as u32, kernel: d.pos_conv_kernel as u32 };
        let with_pos = arena.activation("pos_conv", (rows * e) as usize)?;
        pos_conv_residual(s, &states[0], &self.pos_conv_weight, &self.pos_conv_tap_scale, &self.pos_conv_bias, shape, &lengths, batch, t, e, &with_pos);
        let mut hidden = arena.activation("encoder_in", (rows * e) as usize)?;
        layer_norm(s, &with_pos, None, self.encoder_norm.affine(), rows, e, false, &hidden);

        // 4. The kept layers. Scratch buffers are sized for the widest layer and reused.
        let layers = self.supernet.layers(subnet);
        let a_max = layers.iter().map(|l| l.heads as u32 * HEAD_DIM).max().unwrap_or(HEAD_DIM);
        let f_max = layers.iter().map(|l| l.ffn as u32).max().unwrap_or(1);
        let [q, k, v, heads_out] = ["q", "k", "v", "attention"].map(|n| arena.activation(n, (rows * a_max) as usize));
        let (q, k, v, heads_out) = (q?, k?, v?, heads_out?);
        let attn_proj = arena.activation("out_proj", (rows * e) as usize)?;
        let after_attn = arena.activation("after_attention", (rows * e) as usize)?;
        let ffn_out = arena.activation("fc2", (rows * e) as usize)?;
        // The FFN is row-wise: when its hidden layer is too large for one buffer, it runs in
        // blocks of rows through small buffers (copies in and out between dispatches).
        let ffn_rows = self.ffn_block_rows(rows, e, f_max);
        let ffn_hidden = arena.activation("fc1", (ffn_rows * f_max) as usize)?;
        let ffn_block = if ffn_rows < rows {
            Some((arena.activation("ffn block in", (ffn_rows * e) as usize)?, arena.activation("ffn block out", (ffn_rows * e) as usize)?))
        } else {
            None
        };
        for (n, choice) in layers.iter().enumerate() {
            s.scope(format!("layer {} attention", n + 1));
            let layer = &self.layers[choice.layer];
            let a = choice.heads as u32 * HEAD_DIM;
            let f = choice.ffn as u32;
            let x_in = LinearInput::dense(&hidden, rows, e);
            linear(s, x_in, layer.q.prefix(), a, Activation::None, &q);
            linear(s, x_in, layer.k.prefix(), a, Activation::None, &k);
            linear(s, x_in, layer.v.prefix(), a, Activation::None, &v);
            attention(s, &q, &k, &v, &lengths, t, batch, choice.heads as u32, &heads_out);
            linear(s, LinearInput::dense(&heads_out, rows, a), layer.out.prefix(), e, Activation::None, &attn_proj);
            layer_norm(s, &hidden, Some(&attn_proj), layer.attn_norm.affine(), rows, e, false, &after_attn);

            s.scope(format!("layer {} ffn", n + 1));
            let units = ffn_units(d, subnet.embed_dim, choice.ffn);
            let fc1 = layer.fc1.slice(units, IndexMap::PREFIX);
            let fc2 = layer.fc2.slice(IndexMap::PREFIX, units);
            match &ffn_block {
                None => {
                    linear(s, LinearInput::dense(&after_attn, rows, e), fc1, f, Activation::Gelu, &ffn_hidden);
                    linear(s, LinearInput::dense(&ffn_hidden, rows, f), fc2, e, Activation::None, &ffn_out);
                }
                Some((block_in, block_out)) => {
                    for r0 in (0..rows).step_by(ffn_rows as usize) {
                        let n = ffn_rows.min(rows - r0);
                        s.copy_values(&after_attn, (r0 * e) as u64, block_in, 0, (n * e) as u64);
                        linear(s, LinearInput::dense(block_in, n, e), fc1, f, Activation::Gelu, &ffn_hidden);
                        linear(s, LinearInput::dense(&ffn_hidden, n, f), fc2, e, Activation::None, block_out);
                        s.copy_values(block_out, 0, &ffn_out, (r0 * e) as u64, (n * e) as u64);
                    }
                }
            }
            let out = arena.activation(&format!("hidden.{}", n + 1), (rows * e) as usize)?;
            layer_norm(s, &after_attn, Some(&ffn_out), layer.final_norm.affine(), rows, e, false, &out);
            states.push(out.clone());
            hidden = out;
        }
        Ok(Recorded { states, frames, padded_frames: t as usize, embed: subnet.embed_dim })
    }

    /// Rows per FFN block: all of them when the hidden layer fits one buffer.
    fn ffn_block_rows(&self, rows: u32, e: u32, f_max: u32) -> u32 {
        let limit_values = self.activation_limit() / 4;
        if rows as u64 * f_max as u64 <= limit_values {
            return rows;
        }
        (limit_values / f_max.max(e) as u64).clamp(1, rows as u64) as u32
    }

    /// Final frames per chunk of the conv extractor for one utterance of `samples`, or `None`
    /// when every whole-length buffer fits.
    fn conv_chunk_frames(&self, samples: usize) -> Result<Option<u32>> {
        let d = &self.supernet.dims;
        let limit_values = self.activation_limit() / 4;
        // A dispatch covers at least 16 rows per workgroup along y (see `fits`).
        let max_rows = 16 * self.ctx.limits.max_compute_workgroups_per_dimension as u64;
        let mut t = samples as u64;
        let mut fits = true;
        for l in &d.conv_layers {
            t = l.out_len(t as usize) as u64;
            fits &= t * l.channels as u64 <= limit_values && t <= max_rows;
        }
        if fits {
            return Ok(None);
        }
        // A chunk of C final frames reads C*S + R samples (the last one up to S - 1 more), so
        // block l holds at most (C*S + R + S) / P_l + 1 frames, P_l the total stride through l.
        let hop: u64 = d.conv_layers.iter().map(|l| l.stride as u64).product();
        let field = min_samples(d) as u64;
        let mut best = u64::MAX;
        let mut stride_so_far = 1u64;
        for l in &d.conv_layers {
            stride_so_far *= l.stride as u64;
            let frames = (limit_values / l.channels as u64).min(max_rows).saturating_sub(1);
            best = best.min((frames * stride_so_far).saturating_sub(field + hop) / hop);
        }
        best = best.min((limit_values.saturating_sub(field + hop)) / hop);
        if best == 0 {
            return Err(Error::TooLongForDevice { index: 0, samples, limit_bytes: self.activation_limit() });
        }
        Ok(Some(best.min(u32::MAX as u64) as u32))
    }

    /// The conv extractor on one utterance (`wave`, `samples` long) in chunks of
    /// `chunk_frames` final frames, each run through buffers sized for a chunk and copied into
    /// the whole-length output [frames, channels]. A chunk reads the samples its frames need
    /// (their receptive fields overlap the next chunk's), so its frames equal the unchunked
    /// ones. The `default` mode's GroupNorm needs the whole utterance's statistics: a first
    /// pass takes each chunk's, a second combines them and runs the chunks through.
    fn record_conv_chunked(&self, s: &mut CommandStream, arena: &Arena, wave: &wgpu::Buffer, samples: usize, chunk_frames: u32) -> Result<wgpu::Buffer> {
        let d = &self.supernet.dims;
        let total = frames_for(d, samples) as u32;
        let hop: u32 = d.conv_layers.iter().map(|l| l.stride as u32).product();
        let field = min_samples(d) as u32;
        let chunks: Vec<(u32, u32, u32)> = (0..total.div_ceil(chunk_frames))
            .map(|c| {
                let (f0, f1) = (c * chunk_frames, ((c + 1) * chunk_frames).min(total));
                let len = if f1 == total { samples as u32 - f0 * hop } else { (f1 - 1) * hop + field - f0 * hop };
                (f0, f1, len)
            })
            .collect();
        // Buffers sized for the largest chunk, block by block.
        let longest = chunks.iter().map(|c| c.2).max().unwrap_or(0);
        let chunk_wave = arena.activation("waveform chunk", longest as usize)?;
        let mut outs = Vec::new();
        let mut t = longest;
        for (i, block) in self.conv_blocks.iter().enumerate() {
            t = block.spec.out_len(t as usize) as u32;
            let n = (t * block.spec.channels as u32) as usize;
            let normed = if block.norm.is_some() { Some(arena.activation(&format!("conv{i}.norm chunk"), n)?) } else { None };
            outs.push((arena.activation(&format!("conv{i} chunk"), n)?, normed));
        }
        let ch_last = d.conv_channels as u32;
        let features = arena.activation("conv features", (total * ch_last) as usize)?;

        let first = &self.conv_blocks[0];
        let ch0 = first.spec.channels as u32;
        let frames0 = |len: u32| first.spec.out_len(len as usize) as u32;
        let per_frame0 = hop / first.spec.stride as u32;
        let default_mode = d.extractor_mode == ExtractorMode::Default;
        let split = NormChunks {
            chunks: chunks.len() as u32,
            count_full: chunk_frames * per_frame0,
            count_last: chunks.last().map_or(0, |c| frames0(c.2)),
        };
        let stats = if default_mode { Some(arena.activation("group norm stats", (chunks.len() as u32 * ch0 * 2) as usize)?) } else { None };
        let run_block = |s: &mut CommandStream, i: usize, x: &wgpu::Buffer, t_in: u32| -> u32 {
            let block = &self.conv_blocks[i];
            let (ch, cin) = (block.spec.channels as u32, block.in_channels as u32);
            let (k, stride) = (block.spec.kernel as u32, block.spec.stride as u32);
            let t_out = block.spec.out_len(t_in as usize) as u32;
            let act = if block.norm.is_none() { Activation::Gelu } else { Activation::None };
            linear(s, LinearInput::windows(x, t_out, k * cin, stride * cin, 1, t_in * cin), block.conv.prefix(), ch, act, &outs[i].0);
            t_out
        };
        if let Some(stats) = &stats {
            for (c, &(f0, f1, len)) in chunks.iter().enumerate() {
                s.scope(format!("conv 0 stats, chunk {c}"));
                s.copy_values(wave, (f0 * hop) as u64, &chunk_wave, 0, len as u64);
                let t0 = run_block(s, 0, &chunk_wave, len);
                let owned = if f1 == total { t0 } else { (f1 - f0) * per_frame0 };
                group_norm_partial(s, &outs[0].0, stats, c as u32, owned, t0, ch0);
            }
        }
        for (c, &(f0, f1, len)) in chunks.iter().enumerate() {
            s.scope(format!("conv, chunk {c}"));
            s.copy_values(wave, (f0 * hop) as u64, &chunk_wave, 0, len as u64);
            let mut t_in = len;
            let mut x = chunk_wave.clone();
            for (i, block) in self.conv_blocks.iter().enumerate() {
                let t_out = run_block(s, i, &x, t_in);
                let ch = block.spec.channels as u32;
                x = match (&block.norm, &outs[i].1) {
                    (Some(norm), Some(normed)) => {
                        match (&stats, d.extractor_mode) {
                            (Some(stats), ExtractorMode::Default) => {
                                group_norm_apply(s, &outs[i].0, norm.affine(), stats, split, t_out, ch, true, normed)
                            }
                            _ => layer_norm(s, &outs[i].0, None, norm.affine(), t_out, ch, true, normed),
                        }
                        normed.clone()
                    }
                    _ => outs[i].0.clone(),
                };
                t_in = t_out;
            }
            debug_assert_eq!(t_in, f1 - f0);
            s.copy_values(&x, 0, &features, (f0 * ch_last) as u64, ((f1 - f0) * ch_last) as u64);
        }
        Ok(features)
    }

    /// Each utterance's own frames of every state, in one readback.
    fn read_states(&self, r: &Recorded) -> Result<Vec<HiddenStates>> {
        let ranges: Vec<(&wgpu::Buffer, usize, usize)> = r
            .frames
            .iter()
            .enumerate()
            .flat_map(|(b, &n)| r.states.iter().map(move |st| (st, b * r.padded_frames * r.embed, n * r.embed)))
            .collect();
        let mut values = self.ctx.read_back(&ranges)?.into_iter();
        Ok(r.frames
            .iter()
            .map(|&n| HiddenStates { frames: n, embed: r.embed, states: values.by_ref().take(r.states.len()).collect() })
            .collect())
    }
}

/// The positional conv's `v` and its weight norm as one scale per tap. A checkpoint stores
/// `g` and the full `v`; an exported subnet stores its cut of `v` and the scales computed from
/// the full one, so that both upload the same values.
pub(crate) fn pos_conv_weight_norm(ckpt: &Checkpoint, e: usize, gs: usize, k: usize) -> std::result::Result<(&TensorData, Vec<f32>), CheckpointError> {
    if ckpt.config.exported_subnet.is_some() {
        let v = ckpt.tensor(exported::POS_CONV_V, &[e, gs, k])?;
        return Ok((v, ckpt.tensor(exported::TAP_SCALE, &[k])?.values.clone()));
    }
    let (g, v) = match ckpt.optional_tensor("encoder.pos_conv.0.weight_g", &[1, 1, k])? {
        Some(g) => (g, ckpt.tensor("encoder.pos_conv.0.weight_v", &[e, gs, k])?),
        // torch's newer parametrize-based weight_norm names the same tensors differently.
        None => (
            ckpt.tensor("encoder.pos_conv.0.parametrizations.weight.original0", &[1, 1, k])?,
            ckpt.tensor("encoder.pos_conv.0.parametrizations.weight.original1", &[e, gs, k])?,
        ),
    };
    Ok((v, weight_norm_scales(&v.values, &g.values, k)))
}

/// Which supernet FFN units a layer of `ffn` units in a subnet of width `embed` uses: the whole
/// tensor at full width, else the first `size_split` units of each supernet chunk, where
/// `size_split` is computed as the reference does, int(F / (F / E)).
pub fn ffn_units(dims: &SupernetDims, embed: usize, ffn: usize) -> IndexMap {
    // The reference slices a prefix at full width, and when the supernet has a single chunk.
    if ffn == dims.ffn || dims.ffn_chunks == 1 {
        return IndexMap::PREFIX;
    }
    let ratio = ffn as f64 / embed as f64;
    let split = (ffn as f64 / ratio) as u32;
    IndexMap::chunked(split, dims.ffn_chunk as u32)
}
