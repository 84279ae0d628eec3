// The positional conv for GPUs, as a grouped implicit GEMM: y = x + GELU(conv(x) + b), with
// the same weight layout, padding and batching as pos_conv.wgsl (whose parameters and
// bindings it uses, composed before it).
//
// A workgroup of 64 invocations owns 64 frames x 8 output channels of one group; invocation f
// computes the 8 outputs of frame t0 + f. The inputs are walked 8 channels of the group at a
// time. For each such chunk the 64 + K - 1 input rows that the 64 frames' windows cover are
// staged once in workgroup memory, and every tap reads its rows there: each input value is
// loaded from memory once per workgroup instead of once per output and tap. The chunk's
// weights (8 outputs x 8 channels) pass through workgroup memory 16 taps at a time, read by
// all 64 frames.

const GEMM_FRAMES: u32 = 64u;
const GEMM_OUTS: u32 = 8u;
const GEMM_CHANNELS: u32 = 8u;
const GEMM_TAPS: u32 = 16u;
// K <= MAX_KERNEL (PosConvForm::gemm_fits).
const MAX_KERNEL: u32 = 128u;
const MAX_ROWS: u32 = 191u; // GEMM_FRAMES + MAX_KERNEL - 1

var<workgroup> xs: array<array<f32, GEMM_CHANNELS>, MAX_ROWS>;
// [tap within the chunk][output][channel]
var<workgroup> wt: array<array<array<f32, GEMM_CHANNELS>, GEMM_OUTS>, GEMM_TAPS>;

@compute @workgroup_size(64, 1, 1)
fn pos_conv_gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) f: u32) {
    let tiles_per_group = (p.group_size + GEMM_OUTS - 1u) / GEMM_OUTS;
    let g = wid.x / tiles_per_group;
    let o_in_group = (wid.x % tiles_per_group) * GEMM_OUTS;
    let in_base = g * p.group_size;
    let t0 = wid.y * GEMM_FRAMES;
    let row0 = wid.z * p.frames;
    let valid = min(lengths[wid.z], p.frames);
    let rows = GEMM_FRAMES + p.kernel - 1u;

    var acc: array<f32, GEMM_OUTS>;
    for (var o = 0u; o < GEMM_OUTS; o++) {
        acc[o] = bias[in_base + min(o_in_group + o, p.group_size - 1u)];
    }
    for (var c0 = 0u; c0 < p.group_size; c0 += GEMM_CHANNELS) {
        // Row r holds input frame t0 + r - pad; zeros outside the utterance and the group.
        workgroupBarrier();
        for (var e = f; e < rows * GEMM_CHANNELS; e += GEMM_FRAMES) {
            let r = e / GEMM_CHANNELS;
            let c = e % GEMM_CHANNELS;
            let src = i32(t0 + r) - i32(p.pad);
            let live = src >= 0 && src < i32(valid) && c0 + c < p.group_size;
            let at = (row0 + u32(max(src, 0))) * p.channels + in_base + min(c0 + c, p.group_size - 1u);
            xs[r][c] = select(0.0, x[min(at, arrayLength(&x) - 1u)], live);
        }
        for (var k0 = 0u; k0 < p.kernel; k0 += GEMM_TAPS) {
            // 16 taps x 8 outputs x 8 channels of weights, two per invocation.
            workgroupBarrier();
            for (var e = f; e < GEMM_TAPS * GEMM_OUTS * GEMM_CHANNELS; e += GEMM_FRAMES) {
                let kk = e / (GEMM_OUTS * GEMM_CHANNELS);
                let o = (e / GEMM_CHANNELS) % GEMM_OUTS;
                let c = e % GEMM_CHANNELS;
                let live = k0 + kk < p.kernel && o_in_group + o < p.group_size && c0 + c < p.group_size;
                let out_ch = in_base + min(o_in_group + o, p.group_size - 1u);
                let idx = out_ch * p.w_out_stride + min(k0 + kk, p.kernel - 1u) * p.w_tap_stride + min(c0 + c, p.group_size - 1u);
                wt[kk][o][c] = select(0.0, weight(idx), live);
            }
            workgroupBarrier();
            let taps = min(GEMM_TAPS, p.kernel - k0);
            for (var kk = 0u; kk < taps; kk++) {
                // Output frame t0 + f at tap k reads input frame t0 + f + k - pad: row f + k.
                let xr = xs[f + k0 + kk];
                // The weight norm's per-tap scale, applied to each tap's sum as pos_conv.wgsl does.
                let scale = tap_scale[k0 + kk];
                for (var o = 0u; o < GEMM_OUTS; o++) {
                    let wr = wt[kk][o];
                    var s = 0.0;
                    for (var c = 0u; c < GEMM_CHANNELS; c++) {
                        s = fma(wr[c], xr[c], s);
                    }
                    acc[o] = fma(s, scale, acc[o]);
                }
            }
        }
    }

    let t = t0 + f;
    if (t < p.frames) {
        for (var o = 0u; o < GEMM_OUTS; o++) {
            if (o_in_group + o < p.group_size) {
                let ch = in_base + o_in_group + o;
                let idx = (row0 + t) * p.channels + ch;
                y[idx] = select(x[idx], x[idx] + gelu(acc[o]), t < valid);
            }
        }
    }
}
