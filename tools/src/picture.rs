//! Pictures of the engine's inputs and outputs, drawn on the device (`picture.wgsl`, beside
//! this file): a hidden-state heatmap and a waveform, as RGBA8 pixels (one u32 each, red in the
//! low byte). The demo composes them with its charts. These kernels are the demo's own: the
//! engine's kernel list does not hold them, and the engine builds no pipeline for them.

use bytemuck::{Pod, Zeroable};
use lighthubert::gpu::sources::Source;
use lighthubert::gpu::{Arena, CommandStream, GpuContext, GpuError, Kernel};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PictureParams {
    rows: u32,
    cols: u32,
    width: u32,
    height: u32,
    lo: f32,
    hi: f32,
    _pad: [u32; 2],
}

const PICTURE: Source = Source { name: "picture.wgsl", text: include_str!("picture.wgsl") };
const PARAMS: lighthubert::gpu::ParamsLayout = lighthubert::params_layout!(PictureParams { rows, cols, width, height, lo, hi });

pub static HEATMAP: Kernel = Kernel::new(PICTURE, &[], "heatmap", PARAMS);
pub static WAVEFORM: Kernel = Kernel::new(PICTURE, &[], "waveform", PARAMS);

/// A `width` x `height` picture of a [rows, cols] matrix (frames x channels): time left to
/// right, channel 0 at the top, `lo..hi` mapped through viridis.
pub fn heatmap(s: &mut CommandStream, values: &wgpu::Buffer, rows: u32, cols: u32, range: (f32, f32), size: (u32, u32), pixels: &wgpu::Buffer) {
    let (width, height) = size;
    let params = PictureParams { rows, cols, width, height, lo: range.0, hi: range.1, _pad: [0; 2] };
    s.dispatch(&HEATMAP, &params, &[values, pixels], [width.div_ceil(8), height.div_ceil(8), 1]);
}

/// A `width` x `height` picture of `len` samples: each column filled over the range its
/// samples cover, `peak` at the top edge.
pub fn waveform(s: &mut CommandStream, samples: &wgpu::Buffer, len: u32, peak: f32, size: (u32, u32), pixels: &wgpu::Buffer) {
    let (width, height) = size;
    let params = PictureParams { rows: len, cols: 1, width, height, lo: -peak, hi: peak, _pad: [0; 2] };
    s.dispatch(&WAVEFORM, &params, &[samples, pixels], [width.div_ceil(64), 1, 1]);
}

/// Which picture [`render`] draws.
pub enum Picture<'a> {
    Heatmap { values: &'a [f32], rows: u32, cols: u32, range: (f32, f32) },
    Waveform { samples: &'a [f32], peak: f32 },
}

/// Draws `picture` at `size` on the device and reads the pixels back.
pub fn render(ctx: &GpuContext, picture: Picture, size: (u32, u32)) -> Result<Vec<u32>, GpuError> {
    let (width, height) = size;
    let n = (width * height) as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    ctx.scoped(|| {
        let arena = Arena::new(ctx);
        let mut s = CommandStream::new(ctx);
        let pixels = arena.activation("picture", n)?;
        match picture {
            Picture::Heatmap { values, rows, cols, range } => {
                let input = arena.activation_from(&mut s, "heatmap values", values)?;
                heatmap(&mut s, &input, rows, cols, range, size, &pixels);
            }
            Picture::Waveform { samples, peak } => {
                let input = arena.activation_from(&mut s, "waveform samples", samples)?;
                waveform(&mut s, &input, samples.len() as u32, peak, size, &pixels);
            }
        }
        s.submit()?;
        let back = ctx.read_back(&[(&pixels, 0, n)])?;
        Ok(bytemuck::cast_slice::<f32, u32>(&back[0]).to_vec())
    })
}

/// The heatmap on the CPU, for tests.
pub fn heatmap_cpu(values: &[f32], rows: u32, cols: u32, range: (f32, f32), size: (u32, u32)) -> Vec<u32> {
    let (width, height) = size;
    let mut out = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        for x in 0..width {
            let r = (x * rows / width).min(rows - 1);
            let c = (y * cols / height).min(cols - 1);
            let t = ((values[(r * cols + c) as usize] - range.0) / (range.1 - range.0).max(1e-20)).clamp(0.0, 1.0);
            out.push(pack_rgb(viridis(t)));
        }
    }
    out
}

/// The viridis fit the shader uses.
pub fn viridis(t: f32) -> [f32; 3] {
    const C: [[f32; 3]; 7] = [
        [0.277_727_33, 0.005_407_344_5, 0.334_099_8],
        [0.105_093_04, 1.404_613_5, 1.384_590_2],
        [-0.330_861_83, 0.214_847_56, 0.095_095_165],
        [-4.634_230_6, -5.799_101, -19.332_441],
        [6.228_27, 14.179_933, 56.690_55],
        [4.776_385, -13.745_146, -65.353_035],
        [-5.435_456, 4.645_852_6, 26.312_435],
    ];
    let mut rgb = [0f32; 3];
    for (k, v) in rgb.iter_mut().enumerate() {
        let mut acc = C[6][k];
        for i in (0..6).rev() {
            acc = C[i][k] + t * acc;
        }
        *v = acc;
    }
    rgb
}

pub fn pack_rgb(c: [f32; 3]) -> u32 {
    let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u32;
    q(c[0]) | (q(c[1]) << 8) | (q(c[2]) << 16) | (255 << 24)
}

#[cfg(test)]
mod tests {
    /// Without a GPU: the module parses and validates, and each kernel reads the parameter
    /// block its Rust side writes.
    #[test]
    fn picture_kernels_check() {
        for kernel in [&super::HEATMAP, &super::WAVEFORM] {
            kernel.check().unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
