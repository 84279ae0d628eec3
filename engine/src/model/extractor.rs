//! The conv feature extractor: seven strided convs, each an implicit GEMM over the
//! frame-major input, with the first block's GroupNorm (`default` mode) or every block's
//! LayerNorm (`layer_norm` mode). One utterance too long for whole-length buffers runs the
//! same blocks chunk by chunk.

use super::plan::{ChunkPlan, ExtractorPlan, ForwardPlan};
use super::weights::{gemm_weight, Dense, Norm};
use crate::checkpoint::{Checkpoint, ConvLayerSpec, ExtractorMode};
use crate::error::Result;
use crate::gpu::{Arena, CommandStream, GpuContext, Precision};
use crate::kernels::linear::{conv_weight_frame_major, Activation, Linear, LinearInput};
use crate::kernels::norm::{GroupNormApply, GroupNormPartial, GroupNormTime, LayerNorm, NormChunks};
use crate::supernet::SupernetDims;

/// A block's norm; GELU follows it, or follows the conv when there is none.
enum BlockNorm {
    /// Over time, per channel: statistics of a whole utterance.
    Group(Norm),
    /// Over channels, per frame.
    Layer(Norm),
}

/// Where a GroupNorm takes its statistics from.
#[derive(Clone, Copy)]
enum GroupStats<'a> {
    /// Each utterance's own frames, whole-length: one u32 length per utterance.
    Utterances(&'a wgpu::Buffer),
    /// Every chunk's partial statistics of the one utterance.
    Chunks(&'a wgpu::Buffer, NormChunks),
}

struct ConvBlock {
    /// The conv weight, laid out [out, kernel, in] so a frame's receptive field is one
    /// contiguous row of the frame-major input: the conv runs as an implicit GEMM.
    conv: Dense,
    norm: Option<BlockNorm>,
    spec: ConvLayerSpec,
    in_channels: u32,
}

/// The output buffers of one block: the conv's, and the norm's when it has one.
struct BlockBuffers {
    conv: wgpu::Buffer,
    normed: Option<wgpu::Buffer>,
}

impl BlockBuffers {
    fn new(arena: &Arena, block: &ConvBlock, label: &str, values: usize) -> Result<BlockBuffers> {
        let conv = arena.activation(label, values)?;
        let normed = match block.norm {
            Some(_) => Some(arena.activation(&format!("{label} norm"), values)?),
            None => None,
        };
        Ok(BlockBuffers { conv, normed })
    }

    /// The block's output.
    fn output(&self) -> &wgpu::Buffer {
        self.normed.as_ref().unwrap_or(&self.conv)
    }
}

impl ConvBlock {
    fn load(ctx: &GpuContext, ckpt: &Checkpoint, dims: &SupernetDims, i: usize, in_channels: usize, precision: Precision) -> Result<ConvBlock> {
        let spec = dims.conv_layers[i];
        let p = format!("feature_extractor.conv_layers.{i}");
        let w = ckpt.tensor(&format!("{p}.0.weight"), &[spec.channels, in_channels, spec.kernel])?;
        let repacked = conv_weight_frame_major(&w.values, spec.channels, in_channels, spec.kernel);
        let bias = if dims.conv_bias {
            let b = ckpt.tensor(&format!("{p}.0.bias"), &[spec.channels])?;
            Some(ctx.upload_weight(&format!("{p}.0.bias"), &b.values)?)
        } else {
            None
        };
        let norm = match (dims.extractor_mode, i) {
            (ExtractorMode::Default, 0) => Some(BlockNorm::Group(Norm::load(ctx, ckpt, &format!("{p}.2"), spec.channels)?)),
            (ExtractorMode::Default, _) => None,
            (ExtractorMode::LayerNorm, _) => Some(BlockNorm::Layer(Norm::load(ctx, ckpt, &format!("{p}.2.1"), spec.channels)?)),
        };
        let conv = Dense {
            weight: gemm_weight(ctx, &format!("{p}.0.weight"), &repacked, precision)?,
            bias,
            in_full: (spec.kernel * in_channels) as u32,
        };
        Ok(ConvBlock { conv, norm, spec, in_channels: in_channels as u32 })
    }

    /// The conv alone over `batch` inputs of `t_in` frames each, into `out`; returns the
    /// output frames.
    fn record_conv(&self, s: &mut CommandStream, x: &wgpu::Buffer, t_in: u32, batch: u32, out: &wgpu::Buffer) -> u32 {
        let (ch, cin) = (self.spec.channels as u32, self.in_channels);
        let (k, stride) = (self.spec.kernel as u32, self.spec.stride as u32);
        let t_out = self.spec.out_len(t_in as usize) as u32;
        let act = if self.norm.is_none() { Activation::Gelu } else { Activation::None };
        let input = LinearInput::windows(x, t_out, k * cin, stride * cin, batch, t_in * cin);
        Linear { input, weight: self.conv.prefix(), cols: ch, act, y: out }.record(s);
        t_out
    }

    /// The whole block: conv, then its norm and GELU, into `out`; returns the output frames.
    /// Both the whole-length and the chunked extractor run every block through here.
    fn record(&self, s: &mut CommandStream, x: &wgpu::Buffer, t_in: u32, batch: u32, out: &BlockBuffers, stats: Option<GroupStats>) -> u32 {
        let t_out = self.record_conv(s, x, t_in, batch, &out.conv);
        let ch = self.spec.channels as u32;
        match (&self.norm, &out.normed) {
            (Some(BlockNorm::Layer(norm)), Some(y)) => {
                LayerNorm { x: &out.conv, residual: None, affine: norm.affine(), rows: batch * t_out, width: ch, gelu: true, y }.record(s)
            }
            (Some(BlockNorm::Group(norm)), Some(y)) => match stats.expect("a GroupNorm block is given its statistics") {
                GroupStats::Utterances(lengths) => {
                    GroupNormTime { x: &out.conv, affine: norm.affine(), lengths, batch, frames: t_out, channels: ch, gelu: true, y }.record(s)
                }
                GroupStats::Chunks(stats, split) => {
                    GroupNormApply { x: &out.conv, affine: norm.affine(), stats, split, frames: t_out, channels: ch, gelu: true, y }.record(s)
                }
            },
            _ => {}
        }
        t_out
    }
}

pub(super) struct ConvExtractor {
    blocks: Vec<ConvBlock>,
}

impl ConvExtractor {
    pub fn load(ctx: &GpuContext, ckpt: &Checkpoint, dims: &SupernetDims, precision: Precision) -> Result<ConvExtractor> {
        let mut blocks = Vec::new();
        let mut in_channels = 1;
        for (i, spec) in dims.conv_layers.iter().enumerate() {
            blocks.push(ConvBlock::load(ctx, ckpt, dims, i, in_channels, precision)?);
            in_channels = spec.channels;
        }
        Ok(ConvExtractor { blocks })
    }

    /// Conv features [batch, frames, channels] of the padded waveforms in `wave`, whose own
    /// lengths are `samples`. Rows past an utterance's own frames hold finite values that
    /// nothing valid reads.
    pub fn record(&self, s: &mut CommandStream, arena: &Arena, plan: &ForwardPlan, wave: &wgpu::Buffer, samples: &[u32]) -> Result<wgpu::Buffer> {
        match &plan.extractor {
            ExtractorPlan::Whole { .. } => self.record_whole(s, arena, plan, wave, samples),
            ExtractorPlan::Chunked(chunks) => self.record_chunked(s, arena, wave, chunks),
        }
    }

    fn record_whole(&self, s: &mut CommandStream, arena: &Arena, plan: &ForwardPlan, wave: &wgpu::Buffer, samples: &[u32]) -> Result<wgpu::Buffer> {
        let mut x = wave.clone();
        let (mut t_in, mut lengths_in) = (plan.longest, samples.to_vec());
        for (i, block) in self.blocks.iter().enumerate() {
            s.scope(format!("conv {i}"));
            let t_out = block.spec.out_len(t_in as usize) as u32;
            let lengths_out: Vec<u32> = lengths_in.iter().map(|&l| block.spec.out_len(l as usize) as u32).collect();
            let out = BlockBuffers::new(arena, block, &format!("conv{i}"), (plan.batch * t_out * block.spec.channels as u32) as usize)?;
            let lengths = match block.norm {
                Some(BlockNorm::Group(_)) => Some(arena.u32_buffer(s, &format!("conv{i}.lengths"), &lengths_out)?),
                _ => None,
            };
            block.record(s, &x, t_in, plan.batch, &out, lengths.as_ref().map(GroupStats::Utterances));
            x = out.output().clone();
            (t_in, lengths_in) = (t_out, lengths_out);
        }
        Ok(x)
    }

    /// The extractor on one utterance in chunks of final frames, each run through buffers
    /// sized for a chunk and copied into the whole-length output [frames, channels]. A chunk
    /// reads the samples its frames need (their receptive fields overlap the next chunk's), so
    /// its frames equal the unchunked ones. The `default` mode's GroupNorm needs the whole
    /// utterance's statistics: a first pass takes each chunk's, a second combines them and
    /// runs the chunks through.
    fn record_chunked(&self, s: &mut CommandStream, arena: &Arena, wave: &wgpu::Buffer, plan: &ChunkPlan) -> Result<wgpu::Buffer> {
        let hop: u32 = self.blocks.iter().map(|b| b.spec.stride as u32).product();
        let total = plan.chunks.last().map_or(0, |c| c.f1);
        let chunk_wave = arena.activation("waveform chunk", plan.longest_chunk as usize)?;
        let outs = self
            .blocks
            .iter()
            .zip(&plan.block_frames)
            .enumerate()
            .map(|(i, (block, &t))| BlockBuffers::new(arena, block, &format!("conv{i} chunk"), (t * block.spec.channels as u32) as usize))
            .collect::<Result<Vec<_>>>()?;
        let ch_last = self.blocks.last().map_or(1, |b| b.spec.channels as u32);
        let features = arena.activation("conv features", (total * ch_last) as usize)?;

        let first = &self.blocks[0];
        let ch0 = first.spec.channels as u32;
        let per_frame0 = hop / first.spec.stride as u32;
        let group_norm = matches!(first.norm, Some(BlockNorm::Group(_)));
        let split = NormChunks {
            chunks: plan.chunks.len() as u32,
            count_full: plan.chunk_frames * per_frame0,
            count_last: plan.chunks.last().map_or(0, |c| first.spec.out_len(c.samples as usize) as u32),
        };
        let stats = if group_norm { Some(arena.activation("group norm stats", (plan.chunks.len() as u32 * ch0 * 2) as usize)?) } else { None };
        if let Some(stats) = &stats {
            for (c, chunk) in plan.chunks.iter().enumerate() {
                s.scope(format!("conv 0 stats, chunk {c}"));
                s.copy_values(wave, (chunk.f0 * hop) as u64, &chunk_wave, 0, chunk.samples as u64);
                let t0 = first.record_conv(s, &chunk_wave, chunk.samples, 1, &outs[0].conv);
                let owned = if chunk.f1 == total { t0 } else { (chunk.f1 - chunk.f0) * per_frame0 };
                GroupNormPartial { x: &outs[0].conv, stats, chunk: c as u32, count: owned, frames: t0, channels: ch0 }.record(s);
            }
        }
        for (c, chunk) in plan.chunks.iter().enumerate() {
            s.scope(format!("conv, chunk {c}"));
            s.copy_values(wave, (chunk.f0 * hop) as u64, &chunk_wave, 0, chunk.samples as u64);
            let (mut x, mut t_in) = (&chunk_wave, chunk.samples);
            for (block, out) in self.blocks.iter().zip(&outs) {
                t_in = block.record(s, x, t_in, 1, out, stats.as_ref().map(|st| GroupStats::Chunks(st, split)));
                x = out.output();
            }
            debug_assert_eq!(t_in, chunk.f1 - chunk.f0);
            s.copy_values(x, 0, &features, (chunk.f0 * ch_last) as u64, ((chunk.f1 - chunk.f0) * ch_last) as u64);
        }
        Ok(features)
    }
}
