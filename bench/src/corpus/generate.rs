//! The benchmark corpus: N deterministic 16 kHz mono PCM-16 WAV files of mixed lengths, made
//! of slices of the bundled speech clip (tools/assets/speech.wav) end to end.
//!
//! Lengths are evenly spaced over [min, max] seconds (rounded to 10 ms) and shuffled, so the
//! total is N x (min + max) / 2 whatever the seed and the name order mixes short and long files.
//! Each file is a sequence of slices (0.3 s to the whole 2.8 s clip, random start, gain 0.4-1.0,
//! 10 ms fades) with 0-300 ms pauses between them, over a faint noise floor, so no two files
//! are alike and none has an exact-zero stretch. Everything follows from `--seed`.

use std::fs;
use std::path::{Path, PathBuf};

/// One generated file.
#[derive(Debug, Clone)]
pub struct Utterance {
    pub path: PathBuf,
    pub samples: usize,
}

impl Utterance {
    pub fn seconds(&self) -> f64 {
        self.samples as f64 / RATE as f64
    }
}

pub const RATE: u32 = 16_000;

/// SplitMix64: small, deterministic, good enough to pick slices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5EED_1157_C0DE_CAFE)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

/// The lengths in samples, in file order.
pub fn lengths(files: usize, min_s: f64, max_s: f64, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..files)
        .map(|i| {
            let s = if files == 1 { (min_s + max_s) / 2.0 } else { min_s + (max_s - min_s) * i as f64 / (files - 1) as f64 };
            ((s * 100.0).round() as usize) * (RATE as usize / 100)
        })
        .collect();
    let mut rng = Rng::new(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
    v
}

/// Writes the corpus into `dir` (emptied first) as `utt-000.wav`, ... and returns its files.
pub fn write_corpus(dir: &Path, speech: &[f32], files: usize, min_s: f64, max_s: f64, seed: u64) -> std::io::Result<Vec<Utterance>> {
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(dir)?;
    let mut out = Vec::with_capacity(files);
    for (i, n) in lengths(files, min_s, max_s, seed).into_iter().enumerate() {
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(i as u64 + 1));
        let wave = utterance(speech, n, &mut rng);
        let path = dir.join(format!("utt-{i:03}.wav"));
        fs::write(&path, wav_pcm16(&wave, RATE))?;
        out.push(Utterance { path, samples: n });
    }
    Ok(out)
}

/// `n` samples of speech slices and pauses over a noise floor.
fn utterance(speech: &[f32], n: usize, rng: &mut Rng) -> Vec<f32> {
    let mut w: Vec<f32> = (0..n).map(|_| rng.range(-1.0, 1.0) as f32 * 2e-3).collect();
    let fade = (RATE / 100) as usize;
    let mut at = 0;
    while at < n {
        let len = (rng.range(0.3, 1.0) * speech.len() as f64) as usize;
        let start = rng.below(speech.len() - len + 1);
        let gain = rng.range(0.4, 1.0) as f32;
        let len = len.min(n - at);
        for k in 0..len {
            let ramp = (k.min(len - 1 - k) as f32 / fade as f32).min(1.0);
            w[at + k] += gain * ramp * speech[start + k];
        }
        at += len + (rng.range(0.0, 0.3) * RATE as f64) as usize;
    }
    w
}

/// A canonical 44-byte-header PCM-16 mono WAV.
pub fn wav_pcm16(x: &[f32], rate: u32) -> Vec<u8> {
    let data = (x.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for &s in x {
        b.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
    }
    b
}

/// Reads a PCM-16 WAV (mono, or channels averaged) as f32 in [-1, 1) and its rate.
pub fn read_wav_pcm16(bytes: &[u8]) -> Result<(Vec<f32>, u32), String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let (mut at, mut fmt) = (12, None);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = bytes.get(at + 8..at + 8 + len).ok_or("truncated chunk")?;
        match id {
            b"fmt " if len >= 16 => {
                let u16_at = |o: usize| u16::from_le_bytes([body[o], body[o + 1]]);
                let rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
                fmt = Some((u16_at(0), u16_at(2) as usize, rate, u16_at(14)));
            }
            b"data" => {
                let (format, channels, rate, bits) = fmt.ok_or("data before fmt")?;
                if format != 1 || bits != 16 || channels == 0 {
                    return Err(format!("format {format}, {bits} bits: only 16-bit PCM is read here"));
                }
                let x = body
                    .chunks_exact(2 * channels)
                    .map(|f| f.chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0).sum::<f32>() / channels as f32)
                    .collect();
                return Ok((x, rate));
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    Err("no data chunk".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_spread_shuffled_and_deterministic() {
        let a = lengths(40, 1.0, 15.0, 1);
        assert_eq!(a, lengths(40, 1.0, 15.0, 1));
        assert_ne!(a, lengths(40, 1.0, 15.0, 2));
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!((s[0], s[39]), (16_000, 240_000));
        assert_ne!(a, s, "shuffled");
        let total: usize = a.iter().sum();
        assert!((total as f64 / 16_000.0 - 320.0).abs() < 0.5, "{total}");
    }

    #[test]
    fn wav_round_trip() {
        let x: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.01).sin() * 0.5).collect();
        let (y, rate) = read_wav_pcm16(&wav_pcm16(&x, 16_000)).unwrap();
        assert_eq!((rate, y.len()), (16_000, 1000));
        assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-4));
    }

    #[test]
    fn utterances_have_the_asked_length_and_no_silence() {
        let speech: Vec<f32> = (0..44_800).map(|i| ((i as f32) * 0.05).sin() * 0.3).collect();
        let w = utterance(&speech, 50_000, &mut Rng::new(3));
        assert_eq!(w.len(), 50_000);
        assert!(w.iter().all(|v| v.abs() <= 1.0));
        assert!(w.iter().filter(|v| **v == 0.0).count() < 100);
    }
}
