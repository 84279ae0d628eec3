// Prelude of every positional-conv form (pos_conv.wgsl, pos_conv_tiled.wgsl,
// pos_conv_subgroup.wgsl, pos_conv_gemm.wgsl): the parameters and the bindings they share. Each
// form declares x (binding 1) itself, as f32 or vec4.

struct PosConvParams {
    frames: u32,
    channels: u32,
    group_size: u32,
    kernel: u32,
    // Stride between output channels of the full weight: (E_full / groups) * K.
    w_out_stride: u32,
    pad: u32,
    // Stride between taps of one output channel: E_full / groups.
    w_tap_stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: PosConvParams;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> lengths: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
// Weight norm, kept apart from the stored v so that f16 storage of an f16 checkpoint is exact:
// the weight is v[o, i, k] * tap_scale[k], tap_scale = g / ||v[:, :, k]||.
@group(0) @binding(6) var<storage, read> tap_scale: array<f32>;
