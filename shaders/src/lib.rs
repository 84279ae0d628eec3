//! The WGSL kernels of the LightHuBERT engine, embedded at build time. The `.wgsl` files sit
//! next to this crate's manifest (the repository's `shaders/` folder), so the crate packages
//! and builds on its own and the engine depends on it rather than on a path outside itself.
//!
//! Each file is a constant named after it (`linear_tiled.wgsl` is [`LINEAR_TILED`]). WGSL has
//! no includes: the engine's kernel modules compose a module from preludes (`gelu.wgsl`, one
//! of `weights_f32.wgsl` and `weights_f16.wgsl`, ...) and a kernel file.

/// One WGSL file: its name in this folder and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    pub name: &'static str,
    pub text: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/sources.rs"));
