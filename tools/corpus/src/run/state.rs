//! What a run keeps beside its outputs, in `OUT/lighthubert-run/`:
//! - `config.json`: the [`RunConfig`], once for all shards;
//! - `index-I-of-N.jsonl`: one line per finished utterance of shard I of N (its id, source,
//!   samples, frames, output file and, in the fairseq layout, first row), appended as each
//!   output is complete: what a rerun skips;
//! - `failures-I-of-N.tsv`: the files shard I could not use, and why (tried again on rerun).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use crate::error::CorpusError;
use crate::output::write_atomic;
use crate::shard::Shard;

/// The folder under the output folder that holds a run's configuration, index and failures.
pub const STATE_DIR: &str = "lighthubert-run";

/// One finished utterance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: String,
    /// The audio file it came from.
    pub source: String,
    /// Samples at 16 kHz.
    pub samples: u64,
    pub frames: u64,
    /// The output file, relative to the output folder.
    pub output: String,
    /// The fairseq layout: its first row in the shard's array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
    pub shard: Shard,
    /// A worker's own index (`index-<worker>.jsonl`) instead of the shard's.
    pub worker: Option<String>,
}

impl StateDir {
    pub fn new(out: &Path, shard: Shard) -> StateDir {
        StateDir { dir: out.join(STATE_DIR), shard, worker: None }
    }

    /// The same folder, for one of several workers sharing a shard.
    pub fn for_worker(mut self, worker: Option<&str>) -> StateDir {
        self.worker = worker.map(str::to_string);
        self
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn shard_file(&self, kind: &str, ext: &str) -> PathBuf {
        match &self.worker {
            Some(worker) => self.dir.join(format!("{kind}-{worker}.{ext}")),
            None => self.dir.join(format!("{kind}-{}-of-{}.{ext}", self.shard.index, self.shard.count)),
        }
    }

    pub fn index_path(&self) -> PathBuf {
        self.shard_file("index", "jsonl")
    }

    pub fn failures_path(&self) -> PathBuf {
        self.shard_file("failures", "tsv")
    }

    /// The index files of every shard (of any shard count) in the folder.
    pub fn all_index_files(&self) -> Result<Vec<PathBuf>, CorpusError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(CorpusError::io(&self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| CorpusError::io(&self.dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("index-") && name.ends_with(".jsonl") {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// The saved configuration, if the folder holds a run.
    pub fn read_config(&self) -> Result<Option<RunConfig>, CorpusError> {
        let path = self.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CorpusError::io(&path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| CorpusError::output(&path, format!("not a run configuration this version reads ({e}); use another --out, or --force to start over")))
    }

    /// Saves `config`; a configuration another shard saved meanwhile must be the same one.
    pub fn write_config(&self, config: &RunConfig, replace: bool) -> Result<(), CorpusError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| CorpusError::io(&self.dir, e))?;
        let path = self.config_path();
        let text = serde_json::to_string_pretty(config).map_err(|e| CorpusError::output(&path, e.to_string()))?;
        match write_atomic(&path, replace, |f| f.write_all(format!("{text}\n").as_bytes())) {
            Err(CorpusError::OutputExists(_)) => self.check_config(config),
            other => other,
        }
    }

    /// Refuses a folder whose saved configuration differs from `config`.
    pub fn check_config(&self, config: &RunConfig) -> Result<(), CorpusError> {
        if let Some(saved) = self.read_config()?
            && let Some((field, ours, theirs)) = config.difference(&saved)
        {
            return Err(CorpusError::ConfigMismatch { path: self.config_path(), field, ours, theirs });
        }
        Ok(())
    }

    /// Writes this shard's failures (or removes the file when there are none).
    pub fn write_failures(&self, failures: &[super::Failure]) -> Result<(), CorpusError> {
        let path = self.failures_path();
        if failures.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CorpusError::io(&path, e)),
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| CorpusError::io(&self.dir, e))?;
        write_atomic(&path, true, |f| {
            let mut w = std::io::BufWriter::new(f);
            writeln!(w, "path\treason")?;
            for fail in failures {
                writeln!(w, "{}\t{}", fail.path.display(), fail.reason.replace(['\t', '\n'], " "))?;
            }
            w.flush()
        })
    }
}

/// Reads an index file; a line cut short by a crash (the last) is ignored.
pub fn read_index(path: &Path) -> Result<Vec<IndexEntry>, CorpusError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CorpusError::io(path, e)),
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| CorpusError::io(path, e))?;
        if let Ok(entry) = serde_json::from_str::<IndexEntry>(&line) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Every utterance id recorded done in any index of the folder, with its entry.
pub fn read_all_indexes(state: &StateDir) -> Result<HashMap<String, IndexEntry>, CorpusError> {
    let mut done = HashMap::new();
    for path in state.all_index_files()? {
        for entry in read_index(&path)? {
            done.insert(entry.id.clone(), entry);
        }
    }
    Ok(done)
}

/// Appends entries to this shard's index, one flushed line each.
pub struct IndexWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl IndexWriter {
    pub fn open(path: &Path) -> Result<IndexWriter, CorpusError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CorpusError::io(dir, e))?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| CorpusError::io(path, e))?;
        Ok(IndexWriter { path: path.to_path_buf(), file })
    }

    pub fn append(&mut self, entry: &IndexEntry) -> Result<(), CorpusError> {
        let mut line = serde_json::to_string(entry).map_err(|e| CorpusError::output(&self.path, e.to_string()))?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(|e| CorpusError::io(&self.path, e))
    }

    /// Rewrites the index to exactly `entries` (a resumed fairseq shard drops what its arrays
    /// no longer hold).
    pub fn rewrite(path: &Path, entries: &[IndexEntry]) -> Result<(), CorpusError> {
        write_atomic(path, true, |f| {
            let mut w = std::io::BufWriter::new(f);
            for e in entries {
                writeln!(w, "{}", serde_json::to_string(e).map_err(std::io::Error::other)?)?;
            }
            w.flush()
        })
    }
}
