// The positional conv of pos_conv.wgsl (same parameters, layout and padding rules) for devices
// whose subgroups are exactly the 8 invocations of a workgroup (lavapipe), on group sizes that
// are multiples of 8. A workgroup owns 8 channels of one group for 64 frames; invocation l owns
// frames l, l + 8, ..., l + 56 for all 8 channels: per frame two vec4 accumulators (channels 0-3
// and 4-7). Per tap and 4 input channels, invocation l loads its 8 frames' vec4 of input and
// channel l's vec4 of weights, and every channel's weights reach every lane by subgroup
// broadcast: 9 loads feed 256 multiply-adds, where pos_conv_tiled.wgsl spends 20 (storage loads
// cost a branch and a bounds check per lane and component there). Needs the gelu.wgsl, weight
// storage and pos_conv_common.wgsl preludes.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

// Input channels i4 * 4 .. + 3 of the group, at frame t + k - pad of the utterance (zero
// outside it: padding). `row0` is the utterance's first row, `valid` its length (> 0).
fn tap_input(t: u32, k: u32, valid: u32, row0: u32, in_base4: u32, i4: u32) -> vec4<f32> {
    let src = i32(t + k) - i32(p.pad);
    let row = u32(clamp(src, 0, i32(valid) - 1));
    let v = x[(row0 + row) * (p.channels / 4u) + in_base4 + i4];
    return select(vec4<f32>(0.0), v, src >= 0 && src < i32(valid));
}

// y = x + GELU(conv + b) for frame t's 8 channels from o0; padded frames copy x.
fn store_frame(lo: vec4<f32>, hi: vec4<f32>, t: u32, o0: u32, row0: u32, valid: u32) {
    if (t >= p.frames) {
        return;
    }
    for (var c = 0u; c < 8u; c++) {
        let o = o0 + c;
        let idx = (row0 + t) * p.channels + o;
        let xv = x[idx / 4u][idx % 4u];
        let acc = select(hi[c % 4u], lo[c % 4u], c < 4u);
        y[idx] = select(xv, xv + gelu(acc + bias[o]), t < valid);
    }
}

@compute @workgroup_size(8, 1)
fn pos_conv_subgroup(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(subgroup_invocation_id) lane: u32) {
    // No early return: every invocation must reach every broadcast.
    let o0 = wg.x * 8u;
    let t0 = wg.y * 64u + lane;
    let row0 = wg.z * p.frames;
    let valid = min(lengths[wg.z], p.frames);
    let in_base4 = (o0 / p.group_size) * p.group_size / 4u;
    // Channel o0 + lane's weight row (vec4 index at tap 0, input channel 0).
    let w_row = (o0 + lane) * (p.w_out_stride / 4u);
    let tap4 = p.w_tap_stride / 4u;
    var lo0 = vec4<f32>(); var hi0 = vec4<f32>();
    var lo1 = vec4<f32>(); var hi1 = vec4<f32>();
    var lo2 = vec4<f32>(); var hi2 = vec4<f32>();
    var lo3 = vec4<f32>(); var hi3 = vec4<f32>();
    var lo4 = vec4<f32>(); var hi4 = vec4<f32>();
    var lo5 = vec4<f32>(); var hi5 = vec4<f32>();
    var lo6 = vec4<f32>(); var hi6 = vec4<f32>();
    var lo7 = vec4<f32>(); var hi7 = vec4<f32>();
    if (valid > 0u) {
        for (var k = 0u; k < p.kernel; k++) {
            let scale = tap_scale[k];
            let wk = w_row + k * tap4;
            for (var i4 = 0u; i4 < p.group_size / 4u; i4++) {
                // Columns are channels: 4 input channels x 4 outputs each.
                let wl = weight4(wk + i4) * scale;
                let w_lo = mat4x4<f32>(subgroupBroadcast(wl, 0u), subgroupBroadcast(wl, 1u), subgroupBroadcast(wl, 2u), subgroupBroadcast(wl, 3u));
                let w_hi = mat4x4<f32>(subgroupBroadcast(wl, 4u), subgroupBroadcast(wl, 5u), subgroupBroadcast(wl, 6u), subgroupBroadcast(wl, 7u));
                let x0 = tap_input(t0 + 0u, k, valid, row0, in_base4, i4);
                let x1 = tap_input(t0 + 8u, k, valid, row0, in_base4, i4);
                let x2 = tap_input(t0 + 16u, k, valid, row0, in_base4, i4);
                let x3 = tap_input(t0 + 24u, k, valid, row0, in_base4, i4);
                let x4 = tap_input(t0 + 32u, k, valid, row0, in_base4, i4);
                let x5 = tap_input(t0 + 40u, k, valid, row0, in_base4, i4);
                let x6 = tap_input(t0 + 48u, k, valid, row0, in_base4, i4);
                let x7 = tap_input(t0 + 56u, k, valid, row0, in_base4, i4);
                lo0 += x0 * w_lo; hi0 += x0 * w_hi;
                lo1 += x1 * w_lo; hi1 += x1 * w_hi;
                lo2 += x2 * w_lo; hi2 += x2 * w_hi;
                lo3 += x3 * w_lo; hi3 += x3 * w_hi;
                lo4 += x4 * w_lo; hi4 += x4 * w_hi;
                lo5 += x5 * w_lo; hi5 += x5 * w_hi;
                lo6 += x6 * w_lo; hi6 += x6 * w_hi;
                lo7 += x7 * w_lo; hi7 += x7 * w_hi;
            }
        }
    }
    store_frame(lo0, hi0, t0 + 0u, o0, row0, valid);
    store_frame(lo1, hi1, t0 + 8u, o0, row0, valid);
    store_frame(lo2, hi2, t0 + 16u, o0, row0, valid);
    store_frame(lo3, hi3, t0 + 24u, o0, row0, valid);
    store_frame(lo4, hi4, t0 + 32u, o0, row0, valid);
    store_frame(lo5, hi5, t0 + 40u, o0, row0, valid);
    store_frame(lo6, hi6, t0 + 48u, o0, row0, valid);
    store_frame(lo7, hi7, t0 + 56u, o0, row0, valid);
}
