//! The convolutional positional embedding and its residual (`shaders/pos_conv.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::{gelu_f64, CommandStream, PerWeights};
use crate::gpu::sources::{GELU, POS_CONV, POS_CONV_COMMON, POS_CONV_GEMM, POS_CONV_SUBGROUP, POS_CONV_TILED, WEIGHTS_F16, WEIGHTS_F32};
use crate::gpu::{Kernel, KernelFamily, ParamsLayout, WeightMatrix};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PosConvParams {
    frames: u32,
    channels: u32,
    group_size: u32,
    kernel: u32,
    w_out_stride: u32,
    pad: u32,
    w_tap_stride: u32,
    _pad: u32,
}

/// Shape of the full positional conv: weight [embed_full, embed_full / groups, kernel].
#[derive(Debug, Clone, Copy)]
pub struct PosConvShape {
    pub embed_full: u32,
    pub groups: u32,
    pub kernel: u32,
}

impl PosConvShape {
    fn full_group_size(&self) -> u32 {
        self.embed_full / self.groups
    }
}

/// How a positional-conv dispatch spreads its outputs over invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PosConvForm {
    /// One channel x 4 frames per invocation, scalar loads: any width, any device.
    Direct,
    /// 16 frames x 4 channels per invocation as 4 x 4 matrices, vec4 loads: group sizes that
    /// are multiples of 4, for CPU adapters (see `shaders/pos_conv_tiled.wgsl`).
    Tiled,
    /// 64 frames x 8 channels of a group per workgroup of 8 invocations, each owning 8 frames of
    /// all 8 channels, the weights loaded once per subgroup and broadcast: group sizes that are
    /// multiples of 8, on CPU adapters whose subgroups are exactly 8 wide (lavapipe; see
    /// `shaders/pos_conv_subgroup.wgsl`).
    Subgroup,
    /// A grouped implicit GEMM: 64 frames x 8 channels of a group per workgroup, the input rows
    /// of its windows staged once per 8 input channels in workgroup memory and read by every
    /// tap, the weights 16 taps at a time: GPUs, kernels up to 128 taps.
    Gemm,
}

impl PosConvForm {
    pub fn for_device(ctx: &crate::gpu::GpuContext, shape: PosConvShape, channels: u32) -> Self {
        match ctx.kernel_family {
            KernelFamily::Cpu if ctx.subgroup_size == Some(8) && Self::subgroup_fits(shape, channels) => PosConvForm::Subgroup,
            KernelFamily::Cpu if Self::tiled_fits(shape, channels) => PosConvForm::Tiled,
            KernelFamily::Gpu if Self::gemm_fits(shape, channels) => PosConvForm::Gemm,
            _ => PosConvForm::Direct,
        }
    }

    /// Whether the GEMM form's workgroup memory holds the taps' input rows: K <= 128, and the
    /// channels split evenly into groups.
    pub fn gemm_fits(shape: PosConvShape, channels: u32) -> bool {
        shape.kernel <= 128 && channels.is_multiple_of(shape.groups)
    }

    /// Whether the subnet's and the supernet's group sizes are multiples of 4.
    pub fn tiled_fits(shape: PosConvShape, channels: u32) -> bool {
        channels.is_multiple_of(shape.groups) && (channels / shape.groups).is_multiple_of(4) && shape.full_group_size().is_multiple_of(4)
    }

    /// Whether the subnet's group size is a multiple of 8 and the supernet's of 4.
    pub fn subgroup_fits(shape: PosConvShape, channels: u32) -> bool {
        Self::tiled_fits(shape, channels) && (channels / shape.groups).is_multiple_of(8)
    }
}

const PARAMS: ParamsLayout = crate::params_layout!(PosConvParams { frames, channels, group_size, kernel, w_out_stride, pad, w_tap_stride });
const PRELUDES: [&[crate::gpu::sources::Source]; 2] = [&[GELU, WEIGHTS_F32, POS_CONV_COMMON], &[GELU, WEIGHTS_F16, POS_CONV_COMMON]];

/// [`PosConvForm::Direct`].
pub static DIRECT: PerWeights = PerWeights::new(POS_CONV, PRELUDES, "pos_conv_residual", PARAMS);
/// [`PosConvForm::Tiled`].
pub static TILED: PerWeights = PerWeights::new(POS_CONV_TILED, PRELUDES, "pos_conv_tiled", PARAMS);
/// [`PosConvForm::Subgroup`].
pub static SUBGROUP: PerWeights = PerWeights::new(POS_CONV_SUBGROUP, PRELUDES, "pos_conv_subgroup", PARAMS).with_subgroup_size(8);
/// [`PosConvForm::Gemm`]: composed after `pos_conv.wgsl`, whose parameters and bindings it uses.
pub static GEMM: PerWeights = PerWeights::new(POS_CONV_GEMM, [&[GELU, WEIGHTS_F32, POS_CONV_COMMON, POS_CONV], &[GELU, WEIGHTS_F16, POS_CONV_COMMON, POS_CONV]], "pos_conv_gemm", PARAMS);

/// Every kernel of this module.
pub fn kernels() -> impl Iterator<Item = &'static Kernel> {
    [&DIRECT, &TILED, &SUBGROUP, &GEMM].into_iter().flat_map(PerWeights::both)
}

/// y = x + GELU(conv(x) + bias) for x [batch, frames, channels]. The full weight is v laid out
/// tap-major ([`conv_weight_frame_major`] of [E_full, E_full / groups, K]) with its per-tap
/// weight-norm scales ([`weight_norm_scales`]). Utterance b has `lengths[b]` real frames; the
/// rest count as zero padding.
///
/// [`conv_weight_frame_major`]: super::linear::conv_weight_frame_major
#[derive(Debug, Clone, Copy)]
pub struct PosConvResidual<'a> {
    pub x: &'a wgpu::Buffer,
    pub weight: &'a WeightMatrix,
    pub tap_scale: &'a wgpu::Buffer,
    pub bias: &'a wgpu::Buffer,
    pub shape: PosConvShape,
    pub lengths: &'a wgpu::Buffer,
    pub batch: u32,
    pub frames: u32,
    pub channels: u32,
    pub y: &'a wgpu::Buffer,
}

impl PosConvResidual<'_> {
    /// Queues the dispatch in the form that suits the device.
    pub fn record(&self, stream: &mut CommandStream) {
        self.record_as(stream, PosConvForm::for_device(stream.context(), self.shape, self.channels));
    }

    /// Queues the dispatch in a given form.
    ///
    /// # Panics
    /// If `form` is [`PosConvForm::Tiled`] and the shape does not [`PosConvForm::tiled_fits`],
    /// [`PosConvForm::Subgroup`] and it does not [`PosConvForm::subgroup_fits`], or
    /// [`PosConvForm::Gemm`] and it does not [`PosConvForm::gemm_fits`].
    pub fn record_as(&self, stream: &mut CommandStream, form: PosConvForm) {
        let PosConvResidual { x, weight, tap_scale, bias, shape, lengths, batch, frames, channels, y } = *self;
        assert!(form != PosConvForm::Tiled || PosConvForm::tiled_fits(shape, channels), "pos_conv_tiled needs group sizes divisible by 4");
        assert!(form != PosConvForm::Subgroup || PosConvForm::subgroup_fits(shape, channels), "pos_conv_subgroup needs group sizes divisible by 8");
        assert!(form != PosConvForm::Gemm || PosConvForm::gemm_fits(shape, channels), "pos_conv_gemm needs K <= 128");
        let params = PosConvParams {
            frames,
            channels,
            group_size: channels / shape.groups,
            kernel: shape.kernel,
            w_out_stride: shape.full_group_size() * shape.kernel,
            pad: shape.kernel / 2,
            w_tap_stride: shape.full_group_size(),
            _pad: 0,
        };
        let (kernel, groups) = match form {
            PosConvForm::Direct => (DIRECT.get(weight.precision), [channels.div_ceil(64), frames.div_ceil(4), batch]),
            PosConvForm::Tiled => (TILED.get(weight.precision), [channels.div_ceil(4 * 8), frames.div_ceil(16), batch]),
            // 8 channels of one group per workgroup: group sizes are multiples of 8.
            PosConvForm::Subgroup => (SUBGROUP.get(weight.precision), [channels / 8, frames.div_ceil(64), batch]),
            // Whole 8-output tiles per group: a tile never straddles two groups.
            PosConvForm::Gemm => (GEMM.get(weight.precision), [shape.groups * params.group_size.div_ceil(8), frames.div_ceil(64), batch]),
        };
        stream.dispatch(kernel, &params, &[x, &weight.buffer, bias, lengths, y, tap_scale], groups);
        let (rows, c, taps) = (batch as f64 * frames as f64, channels as f64, (params.group_size * shape.kernel) as f64);
        let wb = weight.precision.bytes_per_value() as f64;
        stream.cost(2.0 * rows * c * taps, wb * c * taps + 4.0 * 2.0 * rows * c);
    }
}

fn tap_norms(v: &[f32], kernel: usize) -> Vec<f64> {
    let mut norms = vec![0f64; kernel];
    for (i, &x) in v.iter().enumerate() {
        norms[i % kernel] += x as f64 * x as f64;
    }
    norms.iter().map(|n| n.sqrt()).collect()
}

/// The weight norm's scale g / ||v|| for each of the `kernel` taps, the norm over all but the
/// kernel axis (dim=2) of the full tensor. Computed once, in f64.
pub fn weight_norm_scales(v: &[f32], g: &[f32], kernel: usize) -> Vec<f32> {
    tap_norms(v, kernel).iter().zip(g).map(|(n, &g)| (g as f64 / n) as f32).collect()
}

/// The weight-normed weight g * v / ||v|| itself, in f64 then rounded (for CPU references).
pub fn weight_norm_dim2(v: &[f32], g: &[f32], kernel: usize) -> Vec<f32> {
    let norms = tap_norms(v, kernel);
    v.iter().enumerate().map(|(i, &x)| (g[i % kernel] as f64 * x as f64 / norms[i % kernel]) as f32).collect()
}

/// CPU reference of [`PosConvResidual`] for one utterance.
pub fn pos_conv_residual_cpu(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    shape: PosConvShape,
    frames: usize,
    channels: usize,
) -> Vec<f32> {
    let gs = channels / shape.groups as usize;
    let k_len = shape.kernel as usize;
    let w_stride = shape.full_group_size() as usize * k_len;
    let pad = k_len / 2;
    let mut y = vec![0f32; frames * channels];
    for t in 0..frames {
        for o in 0..channels {
            let base = (o / gs) * gs;
            let mut acc = bias[o] as f64;
            for k in 0..k_len {
                let src = t as isize + k as isize - pad as isize;
                if src < 0 || src >= frames as isize {
                    continue;
                }
                for i in 0..gs {
                    acc += weight[o * w_stride + i * k_len + k] as f64
                        * x[src as usize * channels + base + i] as f64;
                }
            }
            y[t * channels + o] = (x[t * channels + o] as f64 + gelu_f64(acc)) as f32;
        }
    }
    y
}
