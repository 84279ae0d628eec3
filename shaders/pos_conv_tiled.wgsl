// The positional conv of pos_conv.wgsl (same parameters, layout and padding rules), with
// each invocation computing 16 frames x 4 channels of one group as four 4 x 4 matrices, and
// reading x and the tap-major weight as vec4 along the group's input channels: per tap and
// 4 input channels, 20 vec4 loads feed 256 multiply-adds, where pos_conv.wgsl spends two
// scalar loads on each. For CPU adapters (lavapipe), where loads cost a loop over the SIMD
// lanes. Needs group_size % 4 == 0, the gelu.wgsl, weight storage and pos_conv_common.wgsl
// preludes.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

// Where input frame `src` of the utterance starts (vec4 index of the group's first channel),
// and whether it lies inside the utterance (outside, it is zero padding).
struct Tap {
    start: vec4<u32>,
    live: vec4<bool>,
}

fn taps(row0: u32, t: u32, k: u32, valid: u32, in_base4: u32) -> Tap {
    let src = vec4<i32>(vec4<u32>(t, t + 1u, t + 2u, t + 3u) + k) - i32(p.pad);
    let live = src >= vec4<i32>(0) & src < vec4<i32>(i32(valid));
    let row = vec4<u32>(clamp(src, vec4<i32>(0), vec4<i32>(i32(valid) - 1)));
    return Tap((row0 + row) * (p.channels / 4u) + in_base4, live);
}

fn frame_block(a: Tap, i4: u32) -> mat4x4<f32> {
    let z = vec4<f32>(0.0);
    return transpose(mat4x4<f32>(
        select(z, x[a.start.x + i4], a.live.x),
        select(z, x[a.start.y + i4], a.live.y),
        select(z, x[a.start.z + i4], a.live.z),
        select(z, x[a.start.w + i4], a.live.w),
    ));
}

@compute @workgroup_size(8, 1)
fn pos_conv_tiled(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o0 = gid.x * 4u;
    let t0 = gid.y * 16u;
    if (o0 >= p.channels || t0 >= p.frames) {
        return;
    }
    let row0 = gid.z * p.frames;
    let valid = min(lengths[gid.z], p.frames);
    let in_base4 = (o0 / p.group_size) * p.group_size / 4u;
    // Weight rows of the 4 channels (vec4 index at tap 0, input channel 0).
    let w0 = vec4<u32>(o0, o0 + 1u, o0 + 2u, o0 + 3u) * (p.w_out_stride / 4u);
    let tap4 = p.w_tap_stride / 4u;
    var c0 = mat4x4<f32>();
    var c1 = mat4x4<f32>();
    var c2 = mat4x4<f32>();
    var c3 = mat4x4<f32>();
    if (valid > 0u) {
        for (var k = 0u; k < p.kernel; k++) {
            let a0 = taps(row0, t0, k, valid, in_base4);
            let a1 = taps(row0, t0 + 4u, k, valid, in_base4);
            let a2 = taps(row0, t0 + 8u, k, valid, in_base4);
            let a3 = taps(row0, t0 + 12u, k, valid, in_base4);
            let wk = w0 + k * tap4;
            let scale = tap_scale[k];
            for (var i4 = 0u; i4 < p.group_size / 4u; i4++) {
                // Columns are channels: the weight block is 4 input channels x 4 outputs.
                let w = mat4x4<f32>(weight4(wk.x + i4), weight4(wk.y + i4), weight4(wk.z + i4), weight4(wk.w + i4)) * scale;
                c0 += frame_block(a0, i4) * w;
                c1 += frame_block(a1, i4) * w;
                c2 += frame_block(a2, i4) * w;
                c3 += frame_block(a3, i4) * w;
            }
        }
    }
    store(c0, t0, o0, row0, valid);
    store(c1, t0 + 4u, o0, row0, valid);
    store(c2, t0 + 8u, o0, row0, valid);
    store(c3, t0 + 12u, o0, row0, valid);
}

// y = x + GELU(conv + b) on the utterance's frames; padded frames copy x.
fn store(c: mat4x4<f32>, t0: u32, o0: u32, row0: u32, valid: u32) {
    for (var j = 0u; j < 4u; j++) {
        let o = o0 + j;
        if (o >= p.channels) {
            return;
        }
        for (var i = 0u; i < 4u; i++) {
            let t = t0 + i;
            if (t < p.frames) {
                let idx = (row0 + t) * p.channels + o;
                let xv = x[idx / 4u][idx % 4u];
                y[idx] = select(xv, xv + gelu(c[j][i] + bias[o]), t < valid);
            }
        }
    }
}
