//! Helpers shared by the program's test binaries.
#![allow(dead_code)] // each binary uses its own subset

use std::path::{Path, PathBuf};

use lighthubert_tools::bundled;

/// `dir/xdg`, created private (0700) as Mesa wants of XDG_RUNTIME_DIR, for the children.
pub fn runtime_dir_in(dir: &Path) -> PathBuf {
    let xdg = dir.join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    xdg
}

/// A PNG's width, height and RGB pixels.
pub fn png_rgb(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let mut reader = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let px = buf[..info.buffer_size()].chunks(ch).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, px)
}

/// Every file under `dir`, recursively.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_in(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// "Speech": the bundled clip from `start` seconds for `seconds`, as 16 kHz f32.
pub fn speech(start: f64, seconds: f64) -> Vec<f32> {
    let mut r = hound::WavReader::new(std::io::Cursor::new(bundled::CLIP)).unwrap();
    let all: Vec<f32> = r.samples::<i16>().map(|s| s.unwrap() as f32 / 32768.0).collect();
    let a = (start * 16_000.0) as usize;
    all[a..a + (seconds * 16_000.0) as usize].to_vec()
}

/// Writes `channels[c][i]` as a WAV of the given encoding.
pub fn write_wav(path: &Path, rate: u32, bits: u16, float: bool, channels: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let full = (1i64 << (bits - 1)) as f64;
    for i in 0..channels[0].len() {
        for c in channels {
            if float {
                w.write_sample(c[i]).unwrap();
            } else {
                w.write_sample(((c[i] as f64 * full).round() as i64).clamp(-(full as i64), full as i64 - 1) as i32)
                    .unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

