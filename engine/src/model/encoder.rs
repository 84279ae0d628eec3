//! The transformer side: the convolutional positional embedding, then encoder layers of
//! post-norm self-attention and FFN. A subnet runs a prefix of each layer's heads and, per
//! [`ffn_units`], a slice of its FFN units.

use super::plan::ForwardPlan;
use super::weights::{Dense, Norm};
use crate::checkpoint::{exported, Checkpoint, CheckpointError, TensorData};
use crate::error::Result;
use crate::gpu::{Arena, CommandStream, GpuContext, Precision, WeightMatrix};
use crate::kernels::attention::{Attention, Qkv, HEAD_DIM};
use crate::kernels::linear::{conv_weight_frame_major, Activation, IndexMap, Linear, LinearInput, WeightSlice};
use crate::kernels::norm::LayerNorm;
use crate::kernels::pos_conv::{weight_norm_scales, PosConvResidual, PosConvShape};
use crate::supernet::{LayerChoice, SupernetDims};

/// x + GELU(conv(x)) over time, grouped, with weight norm; then the encoder's LayerNorm.
pub(super) struct PosConv {
    weight: WeightMatrix,
    tap_scale: wgpu::Buffer,
    bias: wgpu::Buffer,
    shape: PosConvShape,
    encoder_norm: Norm,
}

impl PosConv {
    pub fn load(ctx: &GpuContext, ckpt: &Checkpoint, dims: &SupernetDims, precision: Precision) -> Result<PosConv> {
        let (e, k) = (dims.embed, dims.pos_conv_kernel);
        let gs = e / dims.pos_conv_groups;
        let (v, tap_scale) = pos_conv_weight_norm(ckpt, e, gs, k)?;
        // v as stored (exact in f16 for an f16 checkpoint), the weight norm as one scale per tap.
        let tap_major = conv_weight_frame_major(&v.values, e, gs, k);
        Ok(PosConv {
            weight: ctx.upload_matrix("encoder.pos_conv.0.weight_v", &tap_major, precision.weights)?,
            tap_scale: ctx.upload_weight("encoder.pos_conv.0.weight_norm", &tap_scale)?,
            bias: ctx.upload_weight("encoder.pos_conv.0.bias", &ckpt.tensor("encoder.pos_conv.0.bias", &[e])?.values)?,
            shape: PosConvShape { embed_full: e as u32, groups: dims.pos_conv_groups as u32, kernel: k as u32 },
            encoder_norm: Norm::load(ctx, ckpt, "encoder.layer_norm", e)?,
        })
    }

    /// The encoder's input from hidden state 0 `x` [rows, embed]; `lengths` holds each
    /// utterance's frames, past which the conv reads zeros.
    pub fn record(&self, s: &mut CommandStream, arena: &Arena, plan: &ForwardPlan, x: &wgpu::Buffer, lengths: &wgpu::Buffer) -> Result<wgpu::Buffer> {
        s.scope("pos_conv");
        let (rows, e) = (plan.rows(), plan.embed);
        let with_pos = arena.activation("pos_conv", (rows * e) as usize)?;
        PosConvResidual {
            x,
            weight: &self.weight,
            tap_scale: &self.tap_scale,
            bias: &self.bias,
            shape: self.shape,
            lengths,
            batch: plan.batch,
            frames: plan.frames,
            channels: e,
            y: &with_pos,
        }
        .record(s);
        let hidden = arena.activation("encoder_in", (rows * e) as usize)?;
        LayerNorm { x: &with_pos, residual: None, affine: self.encoder_norm.affine(), rows, width: e, gelu: false, y: &hidden }.record(s);
        Ok(hidden)
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

/// What every layer of one forward pass shares: the plan, each utterance's frame count (its
/// attention keys past that are padding), and scratch buffers that each layer overwrites,
/// sized by the plan for the widest kept layer.
pub(super) struct EncoderPass<'a> {
    plan: &'a ForwardPlan,
    dims: &'a SupernetDims,
    lengths: &'a wgpu::Buffer,
    qkv: QkvBuffers,
    heads_out: wgpu::Buffer,
    attn_proj: wgpu::Buffer,
    after_attn: wgpu::Buffer,
    ffn_hidden: wgpu::Buffer,
    ffn_out: wgpu::Buffer,
    /// When the FFN's hidden layer is too large for one buffer, the FFN (row-wise) runs in
    /// blocks of `plan.ffn_rows` rows through these, copied in and out between dispatches.
    ffn_block: Option<(wgpu::Buffer, wgpu::Buffer)>,
}

impl<'a> EncoderPass<'a> {
    pub fn new(arena: &Arena, plan: &'a ForwardPlan, dims: &'a SupernetDims, lengths: &'a wgpu::Buffer) -> Result<EncoderPass<'a>> {
        let (rows, e, a) = (plan.rows() as usize, plan.embed as usize, plan.attention_width as usize);
        let block_rows = plan.ffn_rows as usize;
        Ok(EncoderPass {
            plan,
            dims,
            lengths,
            qkv: if plan.fused_qkv {
                QkvBuffers::Fused(arena.activation("qkv", rows * 3 * a)?)
            } else {
                QkvBuffers::Separate(["q", "k", "v"].map(|n| arena.activation(n, rows * a)).into_iter().collect::<std::result::Result<Vec<_>, _>>()?)
            },
            heads_out: arena.activation("attention", rows * a)?,
            attn_proj: arena.activation("out_proj", rows * e)?,
            after_attn: arena.activation("after_attention", rows * e)?,
            ffn_hidden: arena.activation("fc1", block_rows * plan.ffn_width as usize)?,
            ffn_out: arena.activation("fc2", rows * e)?,
            ffn_block: if plan.ffn_rows < plan.rows() {
                Some((arena.activation("ffn block in", block_rows * e)?, arena.activation("ffn block out", block_rows * e)?))
            } else {
                None
            },
        })
    }
}

/// Where a layer's projections put q, k and v for attention.
enum QkvBuffers {
    /// One buffer, each row a query, its key and its value: one dispatch writes them all.
    Fused(wgpu::Buffer),
    /// q, k and v apart, when one buffer of all three would be over the limit.
    Separate(Vec<wgpu::Buffer>),
}

pub(super) struct EncoderLayer {
    /// q, k and v: three supernet tensors stored back to back, projected by one dispatch.
    qkv: Dense,
    /// Rows of each of the three in the supernet (its widest attention).
    attention_full: u32,
    out: Dense,
    attn_norm: Norm,
    fc1: Dense,
    fc2: Dense,
    final_norm: Norm,
}

impl EncoderLayer {
    pub fn load(ctx: &GpuContext, ckpt: &Checkpoint, dims: &SupernetDims, l: usize, precision: Precision) -> Result<EncoderLayer> {
        let p = format!("encoder.layers.{l}");
        let (e, a, f) = (dims.embed, dims.layer_widths[l].attention, dims.layer_widths[l].ffn);
        let dense = |name: &str, out, inp| Dense::load(ctx, ckpt, &format!("{p}.{name}"), out, inp, precision);
        Ok(EncoderLayer {
            qkv: Dense::load_stacked(ctx, ckpt, &["q_proj", "k_proj", "v_proj"].map(|n| format!("{p}.self_attn.{n}")), a, e, precision)?,
            attention_full: a as u32,
            out: dense("self_attn.out_proj", e, a)?,
            attn_norm: Norm::load(ctx, ckpt, &format!("{p}.self_attn_layer_norm"), e)?,
            fc1: dense("fc1", f, e)?,
            fc2: dense("fc2", e, f)?,
            final_norm: Norm::load(ctx, ckpt, &format!("{p}.final_layer_norm"), e)?,
        })
    }

    /// One post-norm layer on `hidden` [rows, embed] with `choice`'s heads and FFN units, into
    /// `out`. `n` numbers the layer among the kept ones, for profiles.
    pub fn record(&self, s: &mut CommandStream, pass: &EncoderPass, hidden: &wgpu::Buffer, choice: &LayerChoice, n: usize, out: &wgpu::Buffer) {
        let plan = pass.plan;
        let (rows, e) = (plan.rows(), plan.embed);
        let (a, f) = (choice.heads as u32 * HEAD_DIM, choice.ffn as u32);

        s.scope(format!("layer {n} attention"));
        let input = LinearInput::dense(hidden, rows, e);
        let qkv = match &pass.qkv {
            QkvBuffers::Fused(y) => {
                // The first `a` rows of each of q, k and v: row n of the stacked weight's slice
                // is row n % a of tensor n / a.
                let weight = self.qkv.slice(IndexMap::chunked(a, self.attention_full), IndexMap::PREFIX);
                Linear { input, weight, cols: 3 * a, act: Activation::None, y }.record(s);
                Qkv::Fused(y)
            }
            QkvBuffers::Separate(buffers) => {
                for (i, y) in buffers.iter().enumerate() {
                    let weight = WeightSlice { first_row: i as u32 * self.attention_full, ..self.qkv.prefix() };
                    Linear { input, weight, cols: a, act: Activation::None, y }.record(s);
                }
                Qkv::Separate { q: &buffers[0], k: &buffers[1], v: &buffers[2] }
            }
        };
        Attention { qkv, lengths: pass.lengths, frames: plan.frames, batch: plan.batch, heads: choice.heads as u32, out: &pass.heads_out }.record(s);
        let heads = LinearInput::dense(&pass.heads_out, rows, a);
        Linear { input: heads, weight: self.out.prefix(), cols: e, act: Activation::None, y: &pass.attn_proj }.record(s);
        LayerNorm { x: hidden, residual: Some(&pass.attn_proj), affine: self.attn_norm.affine(), rows, width: e, gelu: false, y: &pass.after_attn }.record(s);

        s.scope(format!("layer {n} ffn"));
        let units = ffn_units(pass.dims, plan.embed as usize, choice.ffn);
        let fc1 = self.fc1.slice(units, IndexMap::PREFIX);
        let fc2 = self.fc2.slice(IndexMap::PREFIX, units);
        let ffn = |s: &mut CommandStream, x: &wgpu::Buffer, rows: u32, y: &wgpu::Buffer| {
            Linear { input: LinearInput::dense(x, rows, e), weight: fc1, cols: f, act: Activation::Gelu, y: &pass.ffn_hidden }.record(s);
            Linear { input: LinearInput::dense(&pass.ffn_hidden, rows, f), weight: fc2, cols: e, act: Activation::None, y }.record(s);
        };
        match &pass.ffn_block {
            None => ffn(s, &pass.after_attn, rows, &pass.ffn_out),
            Some((block_in, block_out)) => {
                for r0 in (0..rows).step_by(plan.ffn_rows as usize) {
                    let n = plan.ffn_rows.min(rows - r0);
                    s.copy_values(&pass.after_attn, (r0 * e) as u64, block_in, 0, (n * e) as u64);
                    ffn(s, block_in, n, block_out);
                    s.copy_values(block_out, 0, &pass.ffn_out, (r0 * e) as u64, (n * e) as u64);
                }
            }
        }
        LayerNorm { x: &pass.after_attn, residual: Some(&pass.ffn_out), affine: self.final_norm.affine(), rows, width: e, gelu: false, y: out }.record(s);
    }
}
