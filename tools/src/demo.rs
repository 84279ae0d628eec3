//! `lighthubert-demo`: what the engine does, on one device, in one picture. It loads a
//! checkpoint and a clip (or the bundled ones), runs several subnets from the same weight
//! buffers (counting the bytes a switch uploads: none), profiles one, and draws the waveform
//! and a hidden-state heatmap on the GPU (`shaders/picture.wgsl`) beside charts of latency
//! against size and of the profiler's per-kernel times.

use std::path::{Path, PathBuf};

use clap::Parser;
use crate::picture::{render, Picture};
use lighthubert::model::min_samples;
use lighthubert::{LightHubert, Subnet};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::audio;
use crate::bundled;
use crate::setup::{load_checkpoint, open_gpu, resolve_subnet};
use crate::error::CliError;
use crate::plot::{plot_err, register_font, Canvas, FONT};
use crate::resample::{To16k, TARGET_RATE};

/// Run several subnets of one checkpoint on this GPU and draw what happened into a PNG.
#[derive(Debug, Parser)]
#[command(name = "lighthubert-demo", version)]
pub struct DemoArgs {
    /// LightHuBERT checkpoint (.pt), or a subnet `lighthubert export` wrote (.safetensors);
    /// without it, the bundled demo checkpoint (random weights).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// Subnets to run, comma-separated: presets (min, default, max), random:SEED, or JSON files.
    /// The first is the one profiled and drawn.
    #[arg(long, value_name = "LIST", default_value = "default,min,max,random:1,random:2,random:3")]
    pub subnets: String,

    /// Hidden state to draw as a heatmap (0 = the encoder's input); default: the last.
    #[arg(long, value_name = "N")]
    pub layer: Option<usize>,

    /// Timed rounds: each runs every subnet once, and each subnet's median counts.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub runs: usize,

    /// The picture to write.
    #[arg(long, value_name = "FILE.png", default_value = "lighthubert-demo.png")]
    pub out: PathBuf,

    /// Overwrite an existing picture.
    #[arg(long)]
    pub force: bool,

    /// An audio file (WAV, FLAC, Ogg Vorbis, MP3); without it, the bundled speech clip.
    pub audio: Option<PathBuf>,
}

struct Run {
    name: String,
    subnet: Subnet,
    params: u64,
    ms: f64,
}

/// The z-scores the heatmap's colours span. Each channel is standardised over time first: a
/// few channels with large offsets would otherwise hide how every channel moves.
const HEAT_RANGE: (f32, f32) = (-2.5, 2.5);

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 980;

pub fn run(args: DemoArgs) -> Result<(), CliError> {
    if args.out.exists() && !args.force {
        return Err(CliError::OutputExists(args.out.clone()));
    }
    let src = load_checkpoint(args.checkpoint.as_deref())?;
    let ctx = open_gpu()?;
    let model = LightHubert::load(ctx.clone(), &src.ckpt).map_err(|e| CliError::model(&src.label, e))?;
    let min = min_samples(&model.supernet().dims);
    let (audio_label, wave) = match &args.audio {
        Some(path) => (path.display().to_string(), audio::read_16k(path, &mut To16k::new(), min)?.1),
        None => {
            let label = PathBuf::from(format!("<bundled>/{}", bundled::CLIP_NAME));
            let clip = audio::read_wav_bytes(bundled::CLIP, &label)?;
            let wave = To16k::new().resample(&clip.samples, clip.info.rate).map_err(|e| CliError::audio(&label, e.to_string()))?;
            audio::check_length(&label, wave.len(), min)?;
            (format!("{} (bundled)", bundled::CLIP_NAME), wave)
        }
    };
    let run_err = |e| CliError::Extract { label: audio_label.clone(), source: e };
    let normalize = model.default_normalize();
    if src.bundled {
        println!("NOTE: bundled demo checkpoint (random weights): timings are real, features are not.");
    }
    println!("adapter    {}", ctx.describe());
    println!("checkpoint {}", src.label);
    println!("audio      {audio_label} ({:.2} s)", wave.len() as f64 / TARGET_RATE as f64);

    // Several subnets from the same weight buffers: a switch must upload nothing.
    let uploaded_at_load = ctx.counters().weight_bytes_uploaded();
    let mut runs = Vec::new();
    for name in args.subnets.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let subnet = resolve_subnet(model.supernet(), name)?;
        // An exported file's presets all name its one subnet: run it once.
        if runs.iter().any(|r: &Run| r.subnet == subnet) {
            continue;
        }
        let params = model.supernet().parameter_count(&subnet);
        runs.push(Run { name: name.to_string(), subnet, params, ms: 0.0 });
    }
    // Round-robin timing, one forward of each subnet per round, so that a slow spell of the
    // machine lands on every subnet alike instead of on whichever ran during it.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    // Two warm-up rounds: the first forward of a new shape fills the buffer pool.
    for round in 0..args.runs.max(1) + 2 {
        for (r, t) in runs.iter().zip(&mut times) {
            let start = std::time::Instant::now();
            model.forward(&r.subnet, &wave, false).map_err(run_err)?;
            if round >= 2 {
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    for (r, t) in runs.iter_mut().zip(&mut times) {
        t.sort_by(|a, b| a.total_cmp(b));
        r.ms = t[t.len() / 2];
        println!("subnet     {:<10} embed {:>4}, {:>2} layers, {:>6.2} M params: {:>8.2} ms", r.name, r.subnet.embed_dim, r.subnet.layer_num, r.params as f64 / 1e6, r.ms);
    }
    if runs.is_empty() {
        return Err(CliError::Usage("--subnets: name at least one subnet".into()));
    }
    let switched = ctx.counters().weight_bytes_uploaded() - uploaded_at_load;
    println!("weights    {:.1} MB uploaded once at load; {} subnet switches uploaded {switched} bytes", uploaded_at_load as f64 / 1e6, runs.len().saturating_sub(1));

    let shown = &runs[0];
    let states = model.forward(&shown.subnet, &wave, normalize).map_err(run_err)?;
    let layer = args.layer.unwrap_or(states.states.len() - 1);
    let Some(state) = states.states.get(layer) else {
        return Err(CliError::Usage(format!("--layer {layer}: the subnet `{}` has hidden states 0 to {}", shown.name, states.states.len() - 1)));
    };
    let profile = model.profile(&shown.subnet, &wave, normalize).map_err(run_err)?;

    draw(&args.out, args.force, &Scene {
        device: ctx.describe(),
        checkpoint: src.label.clone(),
        audio: audio_label.clone(),
        wave: &wave,
        state,
        frames: states.frames,
        embed: states.embed,
        layer,
        runs: &runs,
        kernels: profile.by_kernel().into_iter().map(|k| (k.kernel.to_string(), k.total_ms)).collect(),
        ctx: &ctx,
    })?;
    println!("picture    {}", args.out.display());
    Ok(())
}

struct Scene<'a> {
    device: String,
    checkpoint: String,
    audio: String,
    wave: &'a [f32],
    state: &'a [f32],
    frames: usize,
    embed: usize,
    layer: usize,
    runs: &'a [Run],
    kernels: Vec<(String, f64)>,
    ctx: &'a lighthubert::gpu::GpuContext,
}

/// A pixel rectangle of the canvas that a GPU picture fills.
struct Slot {
    x: i32,
    y: i32,
    width: u32,
    height: u32,
}

fn draw(path: &Path, force: bool, scene: &Scene) -> Result<(), CliError> {
    register_font();
    let err = |e: String| plot_err(path, e);
    let mut canvas = Canvas::new(WIDTH, HEIGHT);
    let seconds = scene.wave.len() as f64 / TARGET_RATE as f64;
    let (wave_slot, heat_slot) = {
        let root = canvas.area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (title, body) = root.split_vertically(46);
        let device = scene.device.split(" (").next().unwrap_or(&scene.device);
        title
            .draw(&Text::new(format!("LightHuBERT on {device}: {}", scene.checkpoint), (16, 12), (FONT, 20).into_font()))
            .map_err(|e| err(e.to_string()))?;
        let (top, bottom) = body.split_vertically(560);
        let (wave_area, heat_area) = top.split_vertically(190);
        let (scatter_area, kernel_area) = bottom.split_horizontally(WIDTH / 2);

        // The waveform: axes here, pixels from the GPU.
        let peak = scene.wave.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let mut chart = ChartBuilder::on(&wave_area)
            .caption(format!("waveform: {}, {seconds:.2} s at 16 kHz (drawn on the GPU)", scene.audio), (FONT, 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..seconds, -(peak as f64)..peak as f64)
            .map_err(|e| err(e.to_string()))?;
        chart.configure_mesh().disable_mesh().label_style((FONT, 12)).x_labels(10).y_labels(3).draw().map_err(|e| err(e.to_string()))?;
        let wave_slot = slot(chart.plotting_area().get_pixel_range());

        // The heatmap of one hidden state, each channel as a z-score over time (see
        // HEAT_RANGE).
        let mut chart = ChartBuilder::on(&heat_area)
            .caption(
                format!("hidden state {} of subnet `{}`: {} frames x {} channels, z-score per channel (drawn on the GPU)", scene.layer, scene.runs[0].name, scene.frames, scene.embed),
                (FONT, 15),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..seconds, scene.embed as f64..0.0)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .label_style((FONT, 12))
            .x_desc("time, s")
            .y_desc("channel")
            .axis_desc_style((FONT, 13))
            .x_labels(10)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let heat_slot = slot(chart.plotting_area().get_pixel_range());

        scatter(&scatter_area, scene.runs).map_err(err)?;
        kernels(&kernel_area, &scene.kernels, &scene.runs[0].name).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
        (wave_slot, heat_slot)
    };

    let peak = scene.wave.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let wave_px = render(scene.ctx, Picture::Waveform { samples: scene.wave, peak }, (wave_slot.width, wave_slot.height))?;
    blit(&mut canvas, &wave_slot, &wave_px);
    let z = standardize_channels(scene.state, scene.frames, scene.embed);
    let heat = Picture::Heatmap { values: &z, rows: scene.frames as u32, cols: scene.embed as u32, range: HEAT_RANGE };
    let heat_px = render(scene.ctx, heat, (heat_slot.width, heat_slot.height))?;
    blit(&mut canvas, &heat_slot, &heat_px);
    canvas.save(path, force)
}

/// Each channel of a [frames, embed] state minus its mean over time, over its deviation.
fn standardize_channels(state: &[f32], frames: usize, embed: usize) -> Vec<f32> {
    let mut out = state.to_vec();
    for c in 0..embed {
        let column = (0..frames).map(|t| state[t * embed + c] as f64);
        let mean = column.clone().sum::<f64>() / frames.max(1) as f64;
        let var = column.map(|v| (v - mean).powi(2)).sum::<f64>() / frames.max(1) as f64;
        let inv = 1.0 / (var.sqrt() + 1e-6);
        for t in 0..frames {
            out[t * embed + c] = ((state[t * embed + c] as f64 - mean) * inv) as f32;
        }
    }
    out
}

fn slot((xs, ys): (std::ops::Range<i32>, std::ops::Range<i32>)) -> Slot {
    Slot { x: xs.start, y: ys.start, width: (xs.end - xs.start).max(1) as u32, height: (ys.end - ys.start).max(1) as u32 }
}

/// Copies RGBA pixels (red in the low byte) into the RGB canvas at `slot`.
fn blit(canvas: &mut Canvas, slot: &Slot, pixels: &[u32]) {
    for row in 0..slot.height {
        for col in 0..slot.width {
            let (x, y) = (slot.x + col as i32, slot.y + row as i32);
            if x < 0 || y < 0 || x as u32 >= canvas.width || y as u32 >= canvas.height {
                continue;
            }
            let p = pixels[(row * slot.width + col) as usize];
            let at = ((y as u32 * canvas.width + x as u32) * 3) as usize;
            canvas.rgb[at..at + 3].copy_from_slice(&[(p & 255) as u8, ((p >> 8) & 255) as u8, ((p >> 16) & 255) as u8]);
        }
    }
}

fn scatter(area: &DrawingArea<BitMapBackend, plotters::coord::Shift>, runs: &[Run]) -> Result<(), String> {
    let x_max = runs.iter().map(|r| r.ms).fold(0.0, f64::max) * 1.15;
    let y_max = runs.iter().map(|r| r.params as f64 / 1e6).fold(0.0, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption("latency against size, one weight upload", (FONT, 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max.max(1e-3), 0.0..y_max.max(1e-3))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .label_style((FONT, 12))
        .x_desc("forward pass, ms (median)")
        .y_desc("parameters, millions")
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(runs.iter().map(|r| {
            EmptyElement::at((r.ms, r.params as f64 / 1e6))
                + Circle::new((0, 0), 5, BLUE.filled())
                + Text::new(r.name.clone(), (7, -14), (FONT, 12).into_font())
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn kernels(area: &DrawingArea<BitMapBackend, plotters::coord::Shift>, times: &[(String, f64)], subnet: &str) -> Result<(), String> {
    let mut rows: Vec<(String, f64)> = times.to_vec();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    if rows.len() > 9 {
        let rest: f64 = rows[8..].iter().map(|r| r.1).sum();
        rows.truncate(8);
        rows.push(("(others)".into(), rest));
    }
    let total: f64 = times.iter().map(|t| t.1).sum();
    let n = rows.len() as i32;
    let x_max = rows.iter().map(|r| r.1).fold(0.0, f64::max) * 1.25;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("per-kernel GPU time, subnet `{subnet}` ({total:.1} ms profiled)"), (FONT, 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(190)
        .build_cartesian_2d(0.0..x_max.max(1e-3), (0..n - 1).into_segmented())
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .label_style((FONT, 12))
        .x_desc("ms")
        .axis_desc_style((FONT, 13))
        .y_labels(rows.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, ms))| {
            let i = i as i32;
            let mut bar = Rectangle::new([(0.0, SegmentValue::Exact(i)), (*ms, SegmentValue::Exact(i + 1))], BLUE.mix(0.65).filled());
            bar.set_margin(5, 5, 0, 0);
            bar
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, ms))| {
            Text::new(format!("{ms:.1} ms ({:.0}%)", 100.0 * ms / total.max(1e-9)), (*ms + x_max * 0.01, SegmentValue::CenterOf(i as i32)), (FONT, 11).into_font())
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}
