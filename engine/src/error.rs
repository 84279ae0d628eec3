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
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    #[error("audio has {samples} samples; at least {min} (one frame) are needed")]
    AudioTooShort { samples: usize, min: usize },
    #[error("audio sample {index} is not a finite number")]
    NonFiniteAudio { index: usize },
    #[error("layer list `{0}`: expected `all` or comma-separated indices such as 0,4,12")]
    BadLayerList(String),
    #[error("hidden state {index} does not exist: this subnet has {available} (0 to {})", available - 1)]
    LayerOutOfRange { index: usize, available: usize },
    #[error("audio {index} has {samples} samples, too long for this device: its activations exceed the {limit_bytes}-byte buffer limit (split the file)")]
    TooLongForDevice { index: usize, samples: usize, limit_bytes: u64 },
    #[error("{0}")]
    Unsupported(String),
    #[error("{weights} layer weights given for {states} hidden states")]
    WeightCount { weights: usize, states: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
