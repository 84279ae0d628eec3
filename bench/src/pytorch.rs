//! `--with-pytorch`: runs tools/bench_pytorch.py on the same cases, so the ratios come from one run.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::report::Report;
use crate::{latency_table, Args, Latency, Res};

/// How to run the authors' PyTorch side by side (both the latency and the corpus benchmark).
#[derive(clap::Args, Debug, Clone)]
pub struct PytorchArgs {
    /// Also time the authors' PyTorch code on the same cases.
    #[arg(long)]
    pub with_pytorch: bool,
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// torch.set_num_threads for the PyTorch side.
    #[arg(long, default_value_t = 2)]
    pub pytorch_threads: usize,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub pytorch_device: String,
}

pub fn compare(args: &Args, repo: &Path, checkpoint: &Path, rows: &[Latency], rep: &mut Report) -> Res<()> {
    let cases: Vec<Value> = rows
        .iter()
        .filter(|l| l.skipped.is_none())
        .map(|l| json!({"subnet": l.subnet.name, "config": l.record["subnet_config"], "seconds": l.seconds}))
        .collect();
    let dir = std::env::temp_dir().join(format!("lighthubert-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cases_path, out_path) = (dir.join("cases.json"), dir.join("pytorch.jsonl"));
    std::fs::write(&cases_path, serde_json::to_string(&cases)?)?;
    eprintln!("running the PyTorch reference on {} cases...", cases.len());
    let status = Command::new(&args.pytorch.python)
        .current_dir(repo)
        .arg(repo.join("tools/bench_pytorch.py"))
        .arg("--checkpoint").arg(checkpoint)
        .arg("--cases").arg(&cases_path)
        .arg("--out").arg(&out_path)
        .args(["--runs", &args.runs.to_string(), "--warmup", &args.warmup.to_string()])
        .args(["--threads", &args.pytorch.pytorch_threads.to_string(), "--device", &args.pytorch.pytorch_device])
        .args(["--command", rep.common["command"].as_str().unwrap_or("")])
        .status();
    let ok = matches!(&status, Ok(s) if s.success());
    if !ok {
        let why = match status {
            Ok(s) => format!("tools/bench_pytorch.py exited with {s} (is torch installed? S3PRL_SRC set?)"),
            Err(e) => format!("cannot run `{}`: {e}", args.pytorch.python),
        };
        eprintln!("PyTorch comparison skipped: {why}");
        rep.record("pytorch_skipped", json!({"reason": why.clone()}))?;
        latency_table(rep, rows, None);
        rep.line("");
        rep.line(format!("PyTorch comparison skipped: {why}"));
        return Ok(());
    }
    let records: Vec<Value> = std::fs::read_to_string(&out_path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    for r in &records {
        rep.raw(r)?;
    }
    let matched: Vec<Option<Value>> = rows
        .iter()
        .map(|l| {
            records
                .iter()
                .find(|r| r["subnet"] == l.subnet.name.as_str() && r["seconds"].as_f64() == Some(l.seconds))
                .cloned()
        })
        .collect();
    latency_table(rep, rows, Some(&matched));
    if let Some(r) = records.first() {
        rep.line("");
        rep.line(format!("PyTorch: {} on {}, {}.", r["driver"].as_str().unwrap_or("?"), r["device"].as_str().unwrap_or("?"), r["backend"].as_str().unwrap_or("?")));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
