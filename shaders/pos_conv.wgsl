// Convolutional positional embedding with its residual: y = x + GELU(conv(x) + b).
//
// The weight is the full supernet tensor v [E_full, E_full / groups, K], laid out tap-major
// as [E_full, K, E_full / groups] at load, with its weight norm as one scale per tap (below).
// A subnet of width E keeps the same number of groups, so its group size E / groups differs
// from the supernet's: output channel o of group g reads input channels g*gs .. g*gs + gs
// through v[o, 0..gs, k]. Padding K/2 on both sides and dropping the last output frame
// (K is even) means output frame t sees input frames t - K/2 .. t + K/2 - 1.
// Batched: utterance b is `frames` rows from b * frames, of which lengths[b] are real; frames
// past the length count as the zero padding a lone utterance would see. Padded rows copy x.
// Needs the gelu.wgsl prelude, a weight storage prelude (weights_f32.wgsl or weights_f16.wgsl,
// which declares binding 2) and pos_conv_common.wgsl (parameters, other bindings).

const TILE_T: u32 = 4u;

@group(0) @binding(1) var<storage, read> x: array<f32>;

// Invocation (o, tb, b) computes channel o for frames 4tb .. 4tb + 3 of utterance b.
@compute @workgroup_size(64, 1)
fn pos_conv_residual(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    let t0 = gid.y * TILE_T;
    if (o >= p.channels || t0 >= p.frames) {
        return;
    }
    let row0 = gid.z * p.frames;
    let valid = min(lengths[gid.z], p.frames);
    let in_base = (o / p.group_size) * p.group_size;
    let w_base = o * p.w_out_stride;
    var acc = vec4<f32>(bias[o]);
    for (var k = 0u; k < p.kernel; k++) {
        // Input frame of output t0 + j is t0 + j + k - pad; skip taps that fall in the padding.
        for (var j = 0u; j < TILE_T; j++) {
            let src = i32(t0 + j + k) - i32(p.pad);
            if (src < 0 || src >= i32(valid)) {
                continue;
            }
            let x_row = (row0 + u32(src)) * p.channels + in_base;
            var s = 0.0;
            for (var i = 0u; i < p.group_size; i++) {
                s = fma(weight(w_base + k * p.w_tap_stride + i), x[x_row + i], s);
            }
            acc[j] = fma(s, tap_scale[k], acc[j]);
        }
    }
    for (var j = 0u; j < TILE_T; j++) {
        let t = t0 + j;
        if (t < p.frames) {
            let idx = (row0 + t) * p.channels + o;
            y[idx] = select(x[idx], x[idx] + gelu(acc[j]), t < valid);
        }
    }
}
