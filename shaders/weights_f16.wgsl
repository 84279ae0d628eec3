// Weight storage prelude: the kernel's weight (binding 2) holds IEEE f16 values, two per u32
// (element 2m in the low half of word m), read as f32: half the memory and bandwidth of
// weights_f32.wgsl, exact for checkpoints stored in f16. Arithmetic stays f32.

@group(0) @binding(2) var<storage, read> w: array<vec2<u32>>;

fn weight(i: u32) -> f32 {
    let pair = unpack2x16float(w[i >> 2u][(i >> 1u) & 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

fn weight4(j: u32) -> vec4<f32> {
    let h = w[j];
    return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}
