//! LightHuBERT on wgpu: run any subnet of the once-for-all supernet straight from the
//! full supernet weight buffers, with hand-written WGSL kernels.
//!
//! The folders follow the data: [`checkpoint`] reads the released `.pt` files,
//! [`supernet`] knows the search spaces and validates subnets.

pub mod checkpoint;
pub mod gpu;
pub mod supernet;
