// Pictures of what the engine computed, drawn on the device that computed them: a hidden-state
// heatmap and a waveform, as RGBA8 pixels packed one per u32 (red in the low byte), row-major
// from the top-left corner.

struct PictureParams {
    // Heatmap: the matrix is [rows, cols] (frames x channels). Waveform: rows = samples.
    rows: u32,
    cols: u32,
    width: u32,
    height: u32,
    // Values at or below lo map to the first colour, at or above hi to the last. For the
    // waveform, hi is the amplitude at the top edge.
    lo: f32,
    hi: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: PictureParams;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> pixels: array<u32>;

fn pack_rgb(c: vec3<f32>) -> u32 {
    let q = vec3<u32>(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)) * 255.0 + 0.5);
    return q.x | (q.y << 8u) | (q.z << 16u) | (255u << 24u);
}

// Viridis, as a degree-6 polynomial fit (perceptually even, readable in grey).
fn viridis(t: f32) -> vec3<f32> {
    let c0 = vec3<f32>(0.2777273272234177, 0.005407344544966578, 0.3340998053353061);
    let c1 = vec3<f32>(0.1050930431085774, 1.404613529898575, 1.384590162594685);
    let c2 = vec3<f32>(-0.3308618287255563, 0.214847559468213, 0.09509516302823659);
    let c3 = vec3<f32>(-4.634230498983486, -5.799100973351585, -19.33244095627987);
    let c4 = vec3<f32>(6.228269936347081, 14.17993336680509, 56.69055260068105);
    let c5 = vec3<f32>(4.776384997670288, -13.74514537774601, -65.35303263337234);
    let c6 = vec3<f32>(-5.435455855934631, 4.645852612178535, 26.3124352495832);
    return c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * c6)))));
}

// Time runs left to right, channel 0 at the top; each pixel shows the value it falls on.
@compute @workgroup_size(8, 8)
fn heatmap(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    let r = min(id.x * p.rows / p.width, p.rows - 1u);
    let c = min(id.y * p.cols / p.height, p.cols - 1u);
    let t = clamp((values[r * p.cols + c] - p.lo) / max(p.hi - p.lo, 1e-20), 0.0, 1.0);
    pixels[id.y * p.width + id.x] = pack_rgb(viridis(t));
}

// One invocation per column: the range the column's samples cover, filled, on white, with the
// zero line in grey.
@compute @workgroup_size(64)
fn waveform(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x;
    if (x >= p.width) {
        return;
    }
    let first = x * p.rows / p.width;
    let last = max((x + 1u) * p.rows / p.width, first + 1u);
    var lo = 1e30;
    var hi = -1e30;
    for (var i = first; i < min(last, p.rows); i = i + 1u) {
        lo = min(lo, values[i]);
        hi = max(hi, values[i]);
    }
    let scale = 0.5 * f32(p.height - 1u) / max(p.hi, 1e-20);
    let mid = 0.5 * f32(p.height - 1u);
    let top = mid - hi * scale;
    let bottom = mid - lo * scale;
    let ink = pack_rgb(vec3<f32>(0.13, 0.27, 0.53));
    let zero = pack_rgb(vec3<f32>(0.75, 0.75, 0.75));
    let paper = pack_rgb(vec3<f32>(1.0, 1.0, 1.0));
    for (var y = 0u; y < p.height; y = y + 1u) {
        let fy = f32(y);
        var colour = paper;
        if (u32(mid + 0.5) == y) {
            colour = zero;
        }
        if (fy >= floor(top) && fy <= ceil(bottom)) {
            colour = ink;
        }
        pixels[y * p.width + x] = colour;
    }
}
