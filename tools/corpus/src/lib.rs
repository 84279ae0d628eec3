//! LightHuBERT feature extraction over whole corpora, as a library the `lighthubert` command
//! and the Python package both call.
//!
//! - [`audio`] decodes WAV, FLAC, Ogg Vorbis and MP3 to mono and resamples it to 16 kHz;
//!   truncated or damaged files are errors ([`audio::AudioError`]), never shorter audio.
//! - [`inputs`] turns files, folders, file lists and fairseq manifests into utterances with
//!   ids (their outputs' relative paths).
//! - [`shard`] picks one of N contiguous shards, as fairseq splits a manifest, from
//!   `--shard I/N`, a Slurm job array or torchrun.
//! - [`run`] plans a shard (resuming what earlier runs finished, refusing a folder that holds
//!   another configuration) and runs it as a pipeline: decoding on worker threads, the GPU on
//!   length-sorted batches, writing off the GPU's path.
//! - [`output`] and [`npy`] write features atomically, as `.npy` or `.safetensors`, in f32 or
//!   f16; [`run::fairseq`] writes fairseq's per-shard feature dump.

pub mod audio;
pub mod error;
pub mod inputs;
pub mod npy;
pub mod output;
pub mod run;
pub mod shard;

pub use audio::AudioError;
pub use error::CorpusError;
pub use inputs::{Inputs, Utterance};
pub use npy::Dtype;
pub use output::Format;
pub use run::{Failure, Finished, Layout, Plan, Progress, RunConfig, RunOptions, Summary};
pub use shard::{Shard, ShardError};
