//! The PyTorch side: tools/bench_corpus_pytorch.py (the authors' model in a plain per-file
//! loop) as a child process; its own clock comes back as JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::Res;

pub struct PyTorch {
    pub python: String,
    pub script: PathBuf,
    pub threads: usize,
    pub device: String,
}

impl PyTorch {
    /// `--check`: torch, numpy and the authors' code import. Err says why not.
    pub fn check(&self) -> Result<Value, String> {
        let out = Command::new(&self.python)
            .arg(&self.script)
            .arg("--check")
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", self.python))?;
        if !out.status.success() {
            return Err(format!("{} --check exited with {} (is torch installed? S3PRL_SRC set?)", self.script.display(), out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or("")).map_err(|e| format!("{} --check: {e}", self.script.display()))
    }

    /// The arguments of one run (after the script).
    pub fn args(&self, corpus: &Path, out: &Path, checkpoint: &Path, subnet: &Path, result: &Path) -> Vec<String> {
        let d = |p: &Path| p.display().to_string();
        vec![
            "--checkpoint".into(), d(checkpoint), "--corpus".into(), d(corpus), "--out".into(), d(out),
            "--subnet".into(), d(subnet), "--threads".into(), self.threads.to_string(), "--device".into(), self.device.clone(),
            "--result".into(), d(result),
        ]
    }

    /// Runs the loop into a fresh `out`; returns (the script's JSON result, the process's wall seconds).
    pub fn run(&self, args: &[String], out: &Path, result: &Path) -> Res<(Value, f64)> {
        if out.exists() {
            std::fs::remove_dir_all(out)?;
        }
        let _ = std::fs::remove_file(result);
        let t = Instant::now();
        let status = Command::new(&self.python).arg(&self.script).args(args).stdin(Stdio::null()).stdout(Stdio::null()).status()?;
        let wall = t.elapsed().as_secs_f64();
        if !status.success() {
            return Err(format!("{} exited with {status}", self.script.display()).into());
        }
        Ok((serde_json::from_str(&std::fs::read_to_string(result)?)?, wall))
    }
}
