//! `lighthubert-demo` headless: it writes a PNG that is not blank, with each panel drawn, says
//! that switching subnets uploaded no weights, and fails cleanly on bad input.

use std::path::Path;
use std::process::{Command, Output};

use lighthubert::gpu::{AdapterChoice, GpuContext};
use lighthubert_tools::picture::{heatmap_cpu, render, Picture};
use tempfile::TempDir;

mod common;
use common::{png_rgb, runtime_dir_in};

fn demo(dir: &Path, args: &[&str]) -> Output {
    let xdg = runtime_dir_in(dir);
    Command::new(env!("CARGO_BIN_EXE_lighthubert-demo")).args(args).current_dir(dir).env("XDG_RUNTIME_DIR", &xdg).output().expect("run lighthubert-demo")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_demo_draws_every_panel() {
    let dir = TempDir::new().unwrap();
    let out = demo(dir.path(), &["--runs", "2", "--out", "demo.png"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("subnet switches uploaded 0 bytes"), "{stdout}");
    assert_eq!(stdout.matches("\nsubnet ").count(), 6, "{stdout}");

    let (w, h, px) = png_rgb(&dir.path().join("demo.png"));
    assert_eq!((w, h), (1280, 980));
    let at = |x: u32, y: u32| px[(y * w + x) as usize];
    let white = [255u8; 3];
    let non_white = px.iter().filter(|p| **p != white).count();
    assert!(non_white * 10 > px.len(), "mostly blank: {non_white} of {} pixels drawn", px.len());
    // The heatmap band (below the waveform) is full of viridis colours.
    let heat: std::collections::HashSet<[u8; 3]> = (300..500).flat_map(|y| (200..1100).map(move |x| (x, y))).map(|(x, y)| at(x, y)).collect();
    assert!(heat.len() > 100, "the heatmap has {} colours", heat.len());
    // The waveform band holds its ink colour (the GPU's), the bottom half holds the charts.
    let ink = [33u8, 69, 135];
    let wave_ink = (60..240).flat_map(|y| (100..1200).map(move |x| (x, y))).filter(|&(x, y)| at(x, y) == ink).count();
    assert!(wave_ink > 1000, "the waveform drew {wave_ink} pixels");
    let charts = (650..960).flat_map(|y| (0..1280).map(move |x| (x, y))).filter(|&(x, y)| at(x, y) != white).count();
    assert!(charts > 20_000, "the charts drew {charts} pixels");

    // An existing picture is kept without --force; bad input is one line naming the file.
    let before = std::fs::read(dir.path().join("demo.png")).unwrap();
    let again = demo(dir.path(), &["--out", "demo.png"]);
    assert!(!again.status.success() && text(&again.stderr).contains("--force"), "{}", text(&again.stderr));
    assert_eq!(std::fs::read(dir.path().join("demo.png")).unwrap(), before);
    let missing = demo(dir.path(), &["--out", "x.png", "no-such.wav"]);
    let err = text(&missing.stderr);
    assert!(!missing.status.success() && err.starts_with("error: ") && err.contains("no-such.wav") && err.lines().count() == 1, "{err}");
    assert!(!dir.path().join("x.png").exists());
    let bad = demo(dir.path(), &["--out", "y.png", "--subnets", "default,huge"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("huge"), "{}", text(&bad.stderr));
}

/// The heatmap against its CPU reference (each channel within one step of 255: the colour map
/// is a polynomial, evaluated in f32 on both sides), on a size that is not a multiple of the
/// workgroup and a matrix smaller than the picture in one direction and larger in the other.
/// The waveform: every column is inked where the samples reach and white far from them.
#[test]
fn pictures_match_their_cpu_reference() {
    let ctx = GpuContext::new(&AdapterChoice::from_env()).expect("a GPU adapter (lavapipe in CI)");
    let (rows, cols) = (37u32, 300u32);
    let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let size = (101u32, 67u32);
    let got = render(&ctx, Picture::Heatmap { values: &values, rows, cols, range: (-0.8, 0.9) }, size).unwrap();
    let want = heatmap_cpu(&values, rows, cols, (-0.8, 0.9), size);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        for shift in [0, 8, 16, 24] {
            let (a, b) = ((g >> shift) & 255, (w >> shift) & 255);
            assert!(a.abs_diff(b) <= 1, "pixel {i}: {g:08x} vs {w:08x}");
        }
    }
    let distinct: std::collections::HashSet<u32> = got.iter().copied().collect();
    assert!(distinct.len() > 100, "{} colours", distinct.len());

    // A sine that fills the top half at its peaks: the first column covers the rising edge.
    let (width, height) = (50u32, 41u32);
    let samples: Vec<f32> = (0..5000).map(|i| 0.5 * (i as f32 * std::f32::consts::TAU / 1000.0).sin()).collect();
    let px = render(&ctx, Picture::Waveform { samples: &samples, peak: 1.0 }, (width, height)).unwrap();
    let white = 0xffff_ffffu32;
    let ink = px[0..].iter().copied().find(|&c| c != white && (c & 0xff) < 100).expect("some ink");
    let (mut top, mut bottom) = (height, 0);
    for x in 0..width {
        let column: Vec<u32> = (0..height).map(|y| px[(y * width + x) as usize]).collect();
        assert!(column.contains(&ink), "column {x} is empty");
        assert_eq!(column[0], white, "column {x}: amplitude 0.5 must not reach the top edge");
        assert_eq!(column[(height - 1) as usize], white, "column {x}: nor the bottom edge");
        top = top.min(column.iter().position(|&c| c == ink).unwrap() as u32);
        bottom = bottom.max(column.iter().rposition(|&c| c == ink).unwrap() as u32);
    }
    // Amplitude 0.5 of a peak of 1 spans a quarter of the height each side of the middle row.
    assert_eq!((top, bottom), (10, 30));
}
