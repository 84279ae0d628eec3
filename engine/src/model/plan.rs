//! The sizes of every activation buffer one forward pass allocates, worked out once. `fits`
//! holds them to the device's limits and `record` allocates exactly them, so the two cannot
//! disagree.

use crate::error::{Error, Result};
use crate::kernels::attention::HEAD_DIM;
use crate::supernet::{frames_for, min_samples, LayerChoice, SupernetDims};

/// Rows one linear dispatch covers per workgroup along y, at the least (the Tile16 forms; Tile4
/// covers 32): a dispatch of `rows` needs `rows / 16` workgroups in y.
const ROWS_PER_GROUP: u64 = 16;

/// The device limits a plan is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// The largest activation buffer, in bytes.
    pub bytes: u64,
    pub max_groups: u64,
}

impl Limits {
    /// The largest activation buffer, in f32 values.
    fn values(&self) -> u64 {
        self.bytes / 4
    }

    fn max_rows(&self) -> u64 {
        ROWS_PER_GROUP * self.max_groups
    }
}

/// One forward pass of `batch` utterances zero-padded to `longest` samples.
#[derive(Debug, Clone)]
pub(super) struct ForwardPlan {
    pub batch: u32,
    pub longest: u32,
    /// Final frames of the longest utterance (every utterance's states are this long, padded).
    pub frames: u32,
    pub extractor: ExtractorPlan,
    pub embed: u32,
    pub conv_channels: u32,
    /// Attention width of the widest kept layer (heads * 64; q, k and v together are 3 times).
    pub attention_width: u32,
    /// FFN width of the widest kept layer.
    pub ffn_width: u32,
    /// Rows per FFN block: all of them when the FFN's hidden layer fits one buffer.
    pub ffn_rows: u32,
    /// q, k and v come from one dispatch into one buffer, unless that buffer would be over the
    /// limit (very long audio); then from three into three.
    pub fused_qkv: bool,
}

#[derive(Debug, Clone)]
pub(super) enum ExtractorPlan {
    /// Whole-length buffers; each block's output frames.
    Whole { block_frames: Vec<u32> },
    /// One utterance too long for whole-length buffers, in chunks of final frames.
    Chunked(ChunkPlan),
}

#[derive(Debug, Clone)]
pub(super) struct ChunkPlan {
    pub chunk_frames: u32,
    /// Each chunk's final frames `f0..f1` and the samples it reads from `f0 * hop`.
    pub chunks: Vec<Chunk>,
    /// Samples in the longest chunk, and each block's output frames for it: the chunk buffers.
    pub longest_chunk: u32,
    pub block_frames: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chunk {
    pub f0: u32,
    pub f1: u32,
    pub samples: u32,
}

impl ForwardPlan {
    /// The plan, or [`Error::TooLongForDevice`] when one utterance cannot run even in chunks.
    /// Audio too short for a frame plans zero frames; `record` refuses it by name.
    pub fn new(dims: &SupernetDims, embed: usize, layers: &[LayerChoice], batch: usize, longest: usize, limits: Limits) -> Result<ForwardPlan> {
        let frames = frames_for(dims, longest) as u32;
        let whole = dims.conv_layers.iter().scan(longest, |t, l| {
            *t = l.out_len(*t);
            Some(*t as u32)
        });
        let block_frames: Vec<u32> = whole.collect();
        let whole_fits = dims.conv_layers.iter().zip(&block_frames).all(|(l, &t)| t as u64 * l.channels as u64 <= limits.values() && t as u64 <= limits.max_rows());
        // A batch always runs whole-length (`fits` refuses one that does not fit; `extract`
        // splits it); one utterance is chunked when it must be.
        let extractor = if batch > 1 || whole_fits || frames == 0 {
            ExtractorPlan::Whole { block_frames }
        } else {
            ExtractorPlan::Chunked(ChunkPlan::new(dims, longest, limits)?)
        };
        let attention_width = layers.iter().map(|l| l.heads as u32 * HEAD_DIM).max().unwrap_or(HEAD_DIM);
        let ffn_width = layers.iter().map(|l| l.ffn as u32).max().unwrap_or(1);
        let (e, rows) = (embed as u32, batch as u32 * frames);
        let ffn_rows = if rows as u64 * ffn_width as u64 <= limits.values() {
            rows
        } else {
            (limits.values() / ffn_width.max(e) as u64).clamp(1, rows.max(1) as u64) as u32
        };
        let fused_qkv = rows as u64 * 3 * attention_width as u64 <= limits.values();
        Ok(ForwardPlan {
            fused_qkv,
            batch: batch as u32,
            longest: longest as u32,
            frames,
            extractor,
            embed: e,
            conv_channels: dims.conv_channels as u32,
            attention_width,
            ffn_width,
            ffn_rows,
        })
    }

    /// Rows of every [frames, width] buffer after the extractor.
    pub fn rows(&self) -> u32 {
        self.batch * self.frames
    }

    /// The values of every activation buffer the pass allocates.
    fn buffers(&self, dims: &SupernetDims) -> Vec<u64> {
        let (b, rows) = (self.batch as u64, self.rows() as u64);
        let mut sizes = vec![b * self.longest as u64];
        match &self.extractor {
            ExtractorPlan::Whole { block_frames } => {
                sizes.extend(dims.conv_layers.iter().zip(block_frames).map(|(l, &t)| b * t as u64 * l.channels as u64));
            }
            ExtractorPlan::Chunked(c) => {
                sizes.push(c.longest_chunk as u64);
                sizes.extend(dims.conv_layers.iter().zip(&c.block_frames).map(|(l, &t)| t as u64 * l.channels as u64));
                sizes.push(c.chunks.len() as u64 * dims.conv_layers[0].channels as u64 * 2);
            }
        }
        let widest = [self.conv_channels, self.embed, self.attention_width].into_iter().max().unwrap_or(1) as u64;
        sizes.push(rows * widest);
        if self.fused_qkv {
            sizes.push(rows * 3 * self.attention_width as u64);
        }
        sizes.push(self.ffn_rows as u64 * self.ffn_width.max(self.embed) as u64);
        sizes
    }

    /// Whether every buffer is within the limit and every dispatch within the workgroup grid.
    pub fn fits(&self, dims: &SupernetDims, limits: Limits) -> bool {
        let rows_fit = |rows: u64| rows <= limits.max_rows();
        let conv_rows_fit = match &self.extractor {
            ExtractorPlan::Whole { block_frames } => block_frames.iter().all(|&t| rows_fit(t as u64)),
            ExtractorPlan::Chunked(c) => c.block_frames.iter().all(|&t| rows_fit(t as u64)),
        };
        conv_rows_fit && rows_fit(self.rows() as u64) && self.buffers(dims).into_iter().all(|v| v <= limits.values())
    }
}

impl ChunkPlan {
    fn new(dims: &SupernetDims, samples: usize, limits: Limits) -> Result<ChunkPlan> {
        // A chunk of C final frames reads C*S + R samples (the last one up to S - 1 more), so
        // block l holds at most (C*S + R + S) / P_l + 1 frames, P_l the total stride through l.
        let hop: u64 = dims.conv_layers.iter().map(|l| l.stride as u64).product();
        let field = min_samples(dims) as u64;
        let mut best = u64::MAX;
        let mut stride_so_far = 1u64;
        for l in &dims.conv_layers {
            stride_so_far *= l.stride as u64;
            let frames = (limits.values() / l.channels as u64).min(limits.max_rows()).saturating_sub(1);
            best = best.min((frames * stride_so_far).saturating_sub(field + hop) / hop);
        }
        best = best.min((limits.values().saturating_sub(field + hop)) / hop);
        if best == 0 {
            return Err(Error::TooLongForDevice { index: 0, samples, limit_bytes: limits.bytes });
        }
        let chunk_frames = best.min(u32::MAX as u64) as u32;
        let (total, hop, field) = (frames_for(dims, samples) as u32, hop as u32, field as u32);
        let chunks: Vec<Chunk> = (0..total.div_ceil(chunk_frames))
            .map(|c| {
                let (f0, f1) = (c * chunk_frames, ((c + 1) * chunk_frames).min(total));
                let samples = if f1 == total { samples as u32 - f0 * hop } else { (f1 - 1) * hop + field - f0 * hop };
                Chunk { f0, f1, samples }
            })
            .collect();
        let longest_chunk = chunks.iter().map(|c| c.samples).max().unwrap_or(0);
        let block_frames = dims
            .conv_layers
            .iter()
            .scan(longest_chunk as usize, |t, l| {
                *t = l.out_len(*t);
                Some(*t as u32)
            })
            .collect();
        Ok(ChunkPlan { chunk_frames, chunks, longest_chunk, block_frames })
    }
}
