//! `lighthubert-demo` headless: it writes a PNG that is not blank, with each panel drawn, says
//! that switching subnets uploaded no weights, and fails cleanly on bad input.

use std::path::Path;
use std::process::{Command, Output};

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
