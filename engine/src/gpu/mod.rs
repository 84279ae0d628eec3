//! The GPU runtime: one device, a cache of compute pipelines, weight buffers that are
//! uploaded once, and command streams that record a whole forward pass before submitting.

mod context;
mod kernel;
mod pipelines;
mod pool;
mod profile;
mod stream;
mod weights;

pub use context::{host_vec, list_adapters, AdapterChoice, BackendError, Counters, GpuContext, KernelFamily};
pub use kernel::{Kernel, KernelCheckError, KernelProblem, ParamsBinding, ParamsLayout, UNIFORM_PARAMS};
/// The WGSL files, embedded at build time by the `lighthubert-shaders` crate.
pub use lighthubert_shaders as sources;
pub use pool::Arena;
pub use profile::{DispatchTiming, KernelSummary, Profile};
pub use stream::{CommandStream, Cost};
pub use weights::{stored_values, Arithmetic, Precision, WeightMatrix, WeightPrecision};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no GPU adapter found for backends {backends} (set WGPU_BACKEND, e.g. vulkan, metal, dx12, gl)")]
    NoAdapter { backends: String },
    #[error("no GPU adapter matches `{filter}`; available: {available}")]
    NoMatchingAdapter { filter: String, available: String },
    /// `LIGHTHUBERT_ADAPTER=N` past the end of the list; `available` numbers the adapters.
    #[error("there is no GPU adapter {index}: {count} found; available: {available}")]
    NoAdapterAtIndex { index: usize, count: usize, available: String },
    #[error("could not open the GPU device on {adapter}: {reason}")]
    RequestDevice { adapter: String, reason: String },
    #[error("reading results back from the GPU failed: {0}")]
    Readback(String),
    #[error("the GPU reported an error: {0}")]
    Device(String),
    #[error("the GPU ran out of memory ({detail}); pooled activation buffers were released, so the model can run the next request (a shorter input, a smaller batch or subnet needs less)")]
    OutOfMemory { detail: String },
    #[error("out of host memory: {what} needs {bytes} bytes")]
    HostOutOfMemory { what: String, bytes: u64 },
    #[error("the GPU device was lost ({reason}); rebuild the GpuContext and reload the model")]
    DeviceLost { reason: String },
    #[error("{name}: {reason}")]
    BadSetting { name: &'static str, reason: String },
    #[error("{what} needs a {bytes}-byte buffer, over this adapter's limit of {limit} bytes")]
    BufferTooLarge { what: String, bytes: u64, limit: u64 },
}
