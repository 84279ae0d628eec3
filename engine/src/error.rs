//! The engine's error type: every failure a caller can meet, by kind.

use thiserror::Error;

use crate::checkpoint::CheckpointError;
use crate::gpu::GpuError;
use crate::supernet::SubnetError;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("audio has {samples} samples; at least {min} (one frame) are needed")]
    AudioTooShort { samples: usize, min: usize },
    #[error("audio sample {index} is not a finite number")]
    NonFiniteAudio { index: usize },
    #[error("layer list `{0}`: expected `all`, or comma-separated items: `last`, indices such as 0,4,12, negative indices such as -1 (counted from the end), ranges such as 3-6")]
    BadLayerList(String),
    #[error("layer list `{spec}`: the range {start}-{end} runs backwards (write {end}-{start})")]
    BackwardLayerRange { spec: String, start: usize, end: usize },
    #[error("hidden state {index} does not exist: this subnet has {available} ({})", state_range(*available))]
    LayerOutOfRange { index: usize, available: usize },
    /// A hidden state counted from the end (`-from_end`) beyond the first.
    #[error("hidden state -{from_end} does not exist: this subnet has {available} ({})", state_range(*available))]
    LayerFromEndOutOfRange { from_end: usize, available: usize },
    #[error("audio {index} has {samples} samples, too long for this device: its activations exceed the {limit_bytes}-byte buffer limit (split the file)")]
    TooLongForDevice { index: usize, samples: usize, limit_bytes: u64 },
    #[error("{0}")]
    Unsupported(String),
    #[error("{weights} layer weights given for {states} hidden states")]
    WeightCount { weights: usize, states: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The indices a subnet with `available` hidden states accepts, both ways of counting. A
/// function rather than `available - 1` in the message: zero states must not underflow.
fn state_range(available: usize) -> String {
    match available {
        0 => "none".to_string(),
        n => format!("0 to {}, or -{n} to -1", n - 1),
    }
}
