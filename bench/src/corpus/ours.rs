//! Our side: the `lighthubert extract` program as a child process, its summary parsed from
//! stdout (`checkpoint ..., loaded in X s`, `adapter ...`, and the closing
//! `done: N file(s) extracted, ... ; S s of audio in W s (...)`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::Res;

/// What one `lighthubert extract` run reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Done {
    pub extracted: usize,
    pub failed: usize,
    pub audio_seconds: f64,
    /// The corpus run's wall time (after the model is loaded).
    pub wall_seconds: f64,
    /// `loaded in X s`: the weights' upload (the file's read comes before it and is not in it).
    pub load_seconds: Option<f64>,
    pub adapter: Option<String>,
}

/// `target/release/lighthubert`, next to this benchmark's binary.
pub fn default_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().map(|d| d.join(format!("lighthubert{}", std::env::consts::EXE_SUFFIX))).unwrap_or_default()
}

/// The program's JSON for a preset on this checkpoint (`lighthubert subnet PRESET --checkpoint F`),
/// so the PyTorch side runs exactly the subnet `extract --subnet PRESET` resolves.
pub fn subnet_json(bin: &Path, preset: &str, checkpoint: &Path) -> Res<String> {
    let out = Command::new(bin).args(["subnet", preset, "--checkpoint"]).arg(checkpoint).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("`{} subnet {preset} --checkpoint {}` exited with {}", bin.display(), checkpoint.display(), out.status).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// The arguments of one run (after `extract`).
pub fn extract_args(corpus: &Path, out: &Path, checkpoint: &Path, subnet: &str, batch_size: usize, weights: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![corpus.display().to_string(), "--out".into(), out.display().to_string()];
    a.extend(["--checkpoint".into(), checkpoint.display().to_string(), "--subnet".into(), subnet.into()]);
    // s3prl's per-utterance normalisation, as the PyTorch loop and the latency benchmark do.
    a.extend(["--normalize".into(), "--batch-size".into(), batch_size.to_string(), "--weights".into(), weights.into()]);
    a
}

/// Runs `bin extract ARGS` into a fresh `out` and returns (its report, the process's wall seconds).
pub fn run(bin: &Path, args: &[String], out: &Path) -> Res<(Done, f64)> {
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    let t = Instant::now();
    let child = Command::new(bin).arg("extract").args(args).stdin(Stdio::null()).stderr(Stdio::inherit()).output()?;
    let wall = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&child.stdout);
    if !child.status.success() {
        return Err(format!("`{} extract` exited with {}; its output:\n{stdout}", bin.display(), child.status).into());
    }
    let done = parse(&stdout).ok_or_else(|| format!("no `done:` line in the output of `{} extract`:\n{stdout}", bin.display()))?;
    if done.failed > 0 {
        return Err(format!("`{} extract`: {} file(s) failed:\n{stdout}", bin.display(), done.failed).into());
    }
    Ok((done, wall))
}

/// Parses the program's stdout; None without a `done:` line.
pub fn parse(stdout: &str) -> Option<Done> {
    let mut d = Done::default();
    let mut seen = false;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("checkpoint ") {
            d.load_seconds = rest.rsplit_once("loaded in ").and_then(|(_, s)| s.trim().strip_suffix(" s")?.parse().ok());
        } else if let Some(rest) = line.strip_prefix("adapter ") {
            d.adapter = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("done: ") {
            // done: X file(s) extracted, Y done before, Z failed; S s of audio in W s (...)
            let (counts, speed) = rest.split_once(';')?;
            let num_before = |key: &str| -> Option<usize> {
                counts.split(',').find(|p| p.trim().ends_with(key))?.split_whitespace().next()?.parse().ok()
            };
            d.extracted = num_before("extracted")?;
            d.failed = num_before("failed")?;
            let words: Vec<&str> = speed.split_whitespace().collect();
            // ["S", "s", "of", "audio", "in", "W", "s", ...]
            let at = words.iter().position(|w| *w == "in")?;
            d.audio_seconds = words.get(at.checked_sub(4)?)?.parse().ok()?;
            d.wall_seconds = words.get(at + 1)?.parse().ok()?;
            seen = true;
        }
    }
    seen.then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_summary() {
        let out = "checkpoint /tmp/full-small.pt, loaded in 1.23 s\n\
                   subnet     ...\n\
                   adapter    llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu, driver llvmpipe Mesa 22.3.6)\n\
                   normalize  true; 40 file(s) to do (0 done before) in batches of 8\n\
                   done: 40 file(s) extracted, 0 done before, 0 failed; 320.00 s of audio in 151.20 s (2.1 s of audio per second, real-time factor 0.473)\n";
        let d = parse(out).unwrap();
        assert_eq!((d.extracted, d.failed), (40, 0));
        assert_eq!((d.audio_seconds, d.wall_seconds, d.load_seconds), (320.0, 151.2, Some(1.23)));
        assert!(d.adapter.unwrap().starts_with("llvmpipe"));
        assert_eq!(parse("done: 1 file(s) extracted, 0 done before, 0 failed; 0.00 s of audio in 0.01 s").unwrap().wall_seconds, 0.01);
        assert!(parse("nothing to do: all 3 file(s) were done before").is_none());
    }
}
