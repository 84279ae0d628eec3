//! The LightHuBERT model: the full supernet's weights on the GPU, and the forward pass of any
//! subnet, read top to bottom. Weights are uploaded once in `load`; a forward pass only
//! writes the waveform and a block of dispatch parameters, and reads back the hidden states.

mod encoder;
mod extractor;
mod plan;
mod weights;

use std::sync::Arc;

pub use encoder::ffn_units;
pub(crate) use encoder::pos_conv_weight_norm;
use encoder::{EncoderLayer, EncoderPass, PosConv};
use extractor::ConvExtractor;
use plan::{ForwardPlan, Limits};
use weights::{Dense, Norm};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::gpu::{host_vec, Arena, Arithmetic, CommandStream, GpuContext, KernelFamily, Precision, Profile, WeightPrecision};
use crate::kernels::linear::{Activation, Linear, LinearInput, MATRIX_SUBGROUP};
use crate::kernels::norm::LayerNorm;
// The frame arithmetic lives with the supernet's dims; re-exported where callers look for it.
pub use crate::supernet::{frames_for, min_samples};
use crate::supernet::{Subnet, Supernet};

/// The full supernet on one GPU device.
pub struct LightHubert {
    ctx: Arc<GpuContext>,
    supernet: Supernet,
    task_normalize: Option<bool>,
    extractor: ConvExtractor,
    feature_norm: Norm,
    post_extract_proj: Dense,
    pos_conv: PosConv,
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
        if precision.math == Arithmetic::F16Matrix && !(ctx.matrix_units && ctx.subgroup_size == Some(MATRIX_SUBGROUP)) {
            return Err(Error::Unsupported(format!(
                "f16-matrix arithmetic needs matrix units (wgpu's 16x16 f16 cooperative matrices with f32 accumulators) and subgroups of {MATRIX_SUBGROUP}; {} {} (--math f16 runs on SHADER_F16 alone)",
                ctx.adapter_info.name,
                if !ctx.matrix_units {
                    "offers no such matrix units".to_string()
                } else {
                    format!("has subgroups of {}-{}", ctx.adapter_info.subgroup_min_size, ctx.adapter_info.subgroup_max_size)
                }
            )));
        }
        let scope = ctx.clone();
        let model = scope.scoped(|| Self::load_unscoped(ctx, ckpt, precision))?;
        let ctx = &model.ctx;
        // The GPU GEMM's tile line, measured once per adapter, driver and precision. A failed
        // measurement leaves the default line: it changes speed, never results.
        if ctx.kernel_family == KernelFamily::Gpu && ctx.autotune && precision.math != Arithmetic::F16Matrix && ctx.tile_line(precision).is_none() {
            let _ = crate::kernels::linear::tune::tune(ctx, precision, crate::kernels::linear::tune::default_cache().as_deref());
        }
        Ok(model)
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
        let supernet = Supernet::from_config(&ckpt.config)?;
        let d = &supernet.dims;
        let c = &*ctx;
        let extractor = ConvExtractor::load(c, ckpt, d, precision)?;
        let feature_norm = Norm::load(c, ckpt, "layer_norm", d.conv_channels)?;
        let post_extract_proj = Dense::load(c, ckpt, "post_extract_proj", d.embed, d.conv_channels, precision)?;
        let pos_conv = PosConv::load(c, ckpt, d, precision)?;
        let layers = (0..d.layer_widths.len()).map(|l| EncoderLayer::load(c, ckpt, d, l, precision)).collect::<Result<Vec<_>>>()?;

        // Every kernel a forward of any subnet may pick, in this precision: which form a
        // dispatch takes depends on the subnet's widths, and a switch must not compile.
        ctx.build_pipelines(crate::kernels::all().filter(|k| {
            k.weights.is_none_or(|p| p == precision.weights)
                && ctx.has_subgroups_for(k)
                && (!k.f16_arithmetic || precision.math == Arithmetic::F16)
                && (!k.matrix_units || precision.math == Arithmetic::F16Matrix)
        }));

        Ok(LightHubert {
            ctx,
            task_normalize: ckpt.task_normalize,
            supernet,
            extractor,
            feature_norm,
            post_extract_proj,
            pos_conv,
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
    /// the buffer and dispatch limits: the very plan `forward_batch` allocates by.
    pub fn fits(&self, subnet: &Subnet, batch: usize, longest: usize) -> bool {
        match self.plan(subnet, batch, longest) {
            Ok(plan) => plan.fits(&self.supernet.dims, self.limits()),
            Err(_) => false,
        }
    }

    fn limits(&self) -> Limits {
        Limits { bytes: self.activation_limit(), max_groups: self.ctx.limits.max_compute_workgroups_per_dimension as u64 }
    }

    fn plan(&self, subnet: &Subnet, batch: usize, longest: usize) -> Result<ForwardPlan> {
        ForwardPlan::new(&self.supernet.dims, subnet.embed_dim, &self.supernet.layers(subnet), batch, longest, self.limits())
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
        let longest = waveforms.iter().map(|w| w.len()).max().unwrap_or(0);
        let plan = self.plan(subnet, waveforms.len(), longest)?;

        // The padded batch: utterance b starts at sample b * longest, zeros after its end.
        let mut padded = host_vec("the padded waveform batch", waveforms.len() * longest)?;
        padded.resize(waveforms.len() * longest, 0f32);
        for (b, w) in waveforms.iter().enumerate() {
            let dst = &mut padded[b * longest..b * longest + w.len()];
            dst.copy_from_slice(w);
            if normalize {
                normalize_in_place(dst);
            }
        }
        let samples: Vec<u32> = waveforms.iter().map(|w| w.len() as u32).collect();
        let frames: Vec<u32> = waveforms.iter().map(|w| frames_for(d, w.len()) as u32).collect();

        // 1. The conv feature extractor, frame-major [batch, frames, channels].
        let wave = arena.activation_from(s, "waveform", &padded)?;
        let conv_features = self.extractor.record(s, arena, &plan, &wave, &samples)?;
        let lengths = arena.u32_buffer(s, "lengths", &frames)?;

        // 2. Feature LayerNorm and the projection to the subnet's width: hidden state 0.
        s.scope("features");
        let (rows, ch, e) = (plan.rows(), plan.conv_channels, plan.embed);
        let features = arena.activation("features", (rows * ch) as usize)?;
        LayerNorm { x: &conv_features, residual: None, affine: self.feature_norm.affine(), rows, width: ch, gelu: false, y: &features }.record(s);
        let mut states = vec![arena.activation("hidden.0", (rows * e) as usize)?];
        let input = LinearInput::dense(&features, rows, ch);
        Linear { input, weight: self.post_extract_proj.prefix(), cols: e, act: Activation::None, y: &states[0] }.record(s);

        // 3. Positional conv with its residual, then the encoder LayerNorm.
        let mut hidden = self.pos_conv.record(s, arena, &plan, &states[0], &lengths)?;

        // 4. The kept layers.
        let pass = EncoderPass::new(arena, &plan, d, &lengths)?;
        for (n, choice) in self.supernet.layers(subnet).iter().enumerate() {
            let out = arena.activation(&format!("hidden.{}", n + 1), (rows * e) as usize)?;
            self.layers[choice.layer].record(s, &pass, &hidden, choice, n + 1, &out);
            states.push(out.clone());
            hidden = out;
        }
        Ok(Recorded { states, frames: frames.iter().map(|&f| f as usize).collect(), padded_frames: plan.frames as usize, embed: subnet.embed_dim })
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
