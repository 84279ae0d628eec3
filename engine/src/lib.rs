//! LightHuBERT on wgpu: run any subnet of the once-for-all supernet straight from the
//! full supernet weight buffers, with hand-written WGSL kernels.
//!
//! The folders follow the data: [`checkpoint`] reads the released `.pt` files,
//! [`supernet`] knows the search spaces and validates subnets, [`gpu`] owns the device,
//! pipelines and command streams, [`kernels`] wraps each WGSL kernel, and [`model`] is the
//! forward pass; [`search`] finds the subnet that fits a latency budget on this device.

pub mod cache;
pub mod checkpoint;
pub mod error;
pub mod export;
pub mod extract;
pub mod gpu;
pub mod kernels;
pub mod model;
pub mod parse;
pub mod search;
pub mod supernet;

pub use error::{Error, Result};
pub use extract::{ExtractOptions, Features, LayerSelection};
pub use model::{HiddenStates, LightHubert};
pub use supernet::{Preset, SearchSpace, Subnet, Supernet};
