//! The run's three stages, each on its own thread so none waits on another: decoding (a pool
//! of workers, one window of utterances at a time), the GPU (length-sorted batches within a
//! window) and writing (files, index, progress). Channels of one or two windows between them
//! bound memory: a few windows of audio and features, whatever the corpus size.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::Mutex;

use lighthubert::gpu::GpuError;
use lighthubert::model::min_samples;
use lighthubert::{ExtractOptions, Features, LightHubert, Subnet};

use super::fairseq::FairseqShard;
use super::state::{IndexEntry, IndexWriter};
use super::{Failure, Finished, Layout, Plan, Progress};
use crate::audio::{self, AudioError, AudioInfo, resample::To16k};
use crate::error::CorpusError;
use crate::output;

pub(super) struct Outcome {
    pub extracted: usize,
    pub failures: Vec<Failure>,
    pub audio_seconds: f64,
    pub interrupted: bool,
}

/// One decoded utterance: its position in the plan and its 16 kHz audio, or why not.
struct Decoded {
    pos: usize,
    audio: Result<(AudioInfo, Vec<f32>), AudioError>,
}

enum Message {
    Done { pos: usize, info: AudioInfo, features: Features, samples: usize },
    Failed { pos: usize, reason: String },
}

/// Engine errors that concern one utterance (it is too long, memory ran out for it): the rest
/// of the batch runs without it. Anything else (a lost device) ends the run.
fn concerns_one_utterance(e: &lighthubert::Error) -> bool {
    use lighthubert::Error as E;
    matches!(
        e,
        E::TooLongForDevice { .. }
            | E::AudioTooShort { .. }
            | E::NonFiniteAudio { .. }
            | E::Gpu(GpuError::OutOfMemory { .. } | GpuError::HostOutOfMemory { .. } | GpuError::BufferTooLarge { .. })
    )
}

pub(super) fn run(
    plan: &Plan,
    model: &LightHubert,
    subnet: &Subnet,
    options: &ExtractOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    fairseq: Option<FairseqShard>,
) -> Result<Outcome, CorpusError> {
    // Set by the writer when the run must stop (fail-fast, a gap in the fairseq order).
    let stop = AtomicBool::new(false);
    let halted = || cancel.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed);
    let min = min_samples(&model.supernet().dims);

    std::thread::scope(|s| {
        let (window_tx, window_rx) = sync_channel::<Vec<Decoded>>(1);
        let (message_tx, message_rx) = sync_channel::<Message>(2 * plan.options.batch_size.max(1));
        s.spawn(|| load(plan, min, &halted, window_tx));
        let writer = s.spawn(|| write(plan, progress, &stop, message_rx, fairseq));
        let gpu = extract(plan, model, subnet, options, &halted, window_rx, message_tx);
        let written = writer.join().unwrap_or_else(|_| Err(CorpusError::Usage("the writer thread panicked".into())));
        gpu?;
        let (extracted, audio_seconds, failures) = written?;
        Ok(Outcome { extracted, failures, audio_seconds, interrupted: cancel.load(Ordering::Relaxed) })
    })
}

/// Decodes the plan's utterances a window at a time on a pool of workers, each with its own
/// resampler, and hands each window on whole.
fn load(plan: &Plan, min: usize, halted: &(dyn Fn() -> bool + Sync), windows: SyncSender<Vec<Decoded>>) {
    let threads = plan.options.decode_threads.max(1);
    let window = plan.options.window.max(plan.options.batch_size).max(1);
    for chunk in plan.todo.chunks(window) {
        if halted() {
            return;
        }
        let next = AtomicUsize::new(0);
        let decoded = Mutex::new(Vec::with_capacity(chunk.len()));
        std::thread::scope(|s| {
            for _ in 0..threads.min(chunk.len()) {
                s.spawn(|| {
                    let mut resampler = To16k::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= chunk.len() || halted() {
                            return;
                        }
                        let pos = chunk[k];
                        let u = &plan.utterances[pos];
                        let audio = audio::read_16k(&u.path, &mut resampler, min);
                        decoded.lock().unwrap_or_else(|p| p.into_inner()).push(Decoded { pos, audio });
                    }
                });
            }
        });
        let mut decoded = decoded.into_inner().unwrap_or_else(|p| p.into_inner());
        decoded.sort_by_key(|d| d.pos);
        if windows.send(decoded).is_err() {
            return;
        }
    }
}

/// Runs each window's audio through the model, longest first in batches, so batches hold
/// similar lengths. Results do not depend on the batching (the engine is batch-invariant).
fn extract(
    plan: &Plan,
    model: &LightHubert,
    subnet: &Subnet,
    options: &ExtractOptions,
    halted: &dyn Fn() -> bool,
    windows: Receiver<Vec<Decoded>>,
    messages: SyncSender<Message>,
) -> Result<(), CorpusError> {
    let send = |m: Message| messages.send(m).is_ok();
    for window in windows {
        let mut ready = Vec::with_capacity(window.len());
        for d in window {
            match d.audio {
                Ok((info, wave)) => ready.push((d.pos, info, wave)),
                Err(e) => {
                    if !send(Message::Failed { pos: d.pos, reason: e.reason() }) {
                        return Ok(());
                    }
                }
            }
        }
        ready.sort_by_key(|(pos, _, wave)| (Reverse(wave.len()), *pos));
        for batch in ready.chunks(plan.options.batch_size.max(1)) {
            if halted() {
                return Ok(());
            }
            let waves: Vec<&[f32]> = batch.iter().map(|(_, _, w)| w.as_slice()).collect();
            let results = match model.extract(subnet, &waves, options) {
                Ok(features) => features.into_iter().map(Ok).collect(),
                Err(e) if concerns_one_utterance(&e) => {
                    // Find which: each alone.
                    let mut each = Vec::with_capacity(batch.len());
                    for w in &waves {
                        each.push(match model.extract(subnet, std::slice::from_ref(w), options) {
                            Ok(mut f) => Ok(f.remove(0)),
                            Err(e) if concerns_one_utterance(&e) => Err(e.to_string()),
                            Err(e) => return Err(engine_error(plan, batch, e)),
                        });
                    }
                    each
                }
                Err(e) => return Err(engine_error(plan, batch, e)),
            };
            for ((pos, info, wave), result) in batch.iter().zip(results) {
                let m = match result {
                    Ok(features) => Message::Done { pos: *pos, info: info.clone(), features, samples: wave.len() },
                    Err(reason) => Message::Failed { pos: *pos, reason },
                };
                if !send(m) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

fn engine_error(plan: &Plan, batch: &[(usize, AudioInfo, Vec<f32>)], source: lighthubert::Error) -> CorpusError {
    let label = batch.iter().map(|(p, _, _)| plan.utterances[*p].path.display().to_string()).collect::<Vec<_>>().join(", ");
    CorpusError::Engine { label, source }
}

/// Writes outputs as they arrive and records each in the index; returns (extracted, seconds
/// of audio, failures).
fn write(
    plan: &Plan,
    progress: &dyn Progress,
    stop: &AtomicBool,
    messages: Receiver<Message>,
    mut fairseq: Option<FairseqShard>,
) -> Result<(usize, f64, Vec<Failure>), CorpusError> {
    let mut index = match &plan.state {
        Some(state) => Some(IndexWriter::open(&state.index_path())?),
        None => None,
    };
    let mut extracted = 0usize;
    let mut audio_seconds = 0.0;
    let mut failures = Vec::new();
    // The fairseq layout appends in input order: results wait here for the ones before them.
    let mut waiting: BTreeMap<usize, (AudioInfo, Features, usize)> = BTreeMap::new();
    let mut next = plan.todo.first().copied().unwrap_or(0);
    let mut made_dirs = std::collections::HashSet::<PathBuf>::new();
    let writer = plan.writer();
    let result = (|| -> Result<(), CorpusError> {
        for m in messages {
            match m {
                Message::Failed { pos, reason } => {
                    let u = &plan.utterances[pos];
                    let f = Failure { id: u.id.clone(), path: u.path.clone(), reason };
                    progress.failed(&f);
                    failures.push(f);
                    // A fairseq shard cannot skip an utterance: its rows must follow the manifest.
                    if plan.options.fail_fast || fairseq.is_some() {
                        stop.store(true, Ordering::Relaxed);
                        return Ok(());
                    }
                }
                Message::Done { pos, info, features, samples } => {
                    let u = &plan.utterances[pos];
                    match (&plan.options.layout, fairseq.as_mut()) {
                        (Layout::Fairseq { split }, Some(shard)) => {
                            waiting.insert(pos, (info, features, samples));
                            let mut entries = Vec::new();
                            while let Some((info, features, samples)) = waiting.remove(&next) {
                                let u = &plan.utterances[next];
                                let row = shard.append(&features.states[0], features.frames)?;
                                entries.push((u, info, features, samples, row));
                                next += 1;
                            }
                            if entries.is_empty() {
                                continue;
                            }
                            shard.commit()?;
                            let output = format!("{split}_{}_{}.npy", plan.options.shard.index, plan.options.shard.count);
                            for (u, info, features, samples, row) in entries {
                                let entry = index_entry(u, &features, samples, output.clone(), Some(row));
                                if let Some(ix) = index.as_mut() {
                                    ix.append(&entry)?;
                                }
                                let path = plan.options.out.join(&output);
                                progress.finished(&Finished { utterance: u, info: &info, features: &features, samples, output: &path });
                                extracted += 1;
                                audio_seconds += samples as f64 / 16000.0;
                            }
                        }
                        (layout, _) => {
                            let (path, format) = match layout {
                                Layout::File { path, format } => (path.clone(), *format),
                                Layout::Files(format) => {
                                    (plan.options.out.join(format!("{}.{}", u.id, format.extension())), *format)
                                }
                                Layout::Fairseq { .. } => unreachable!("a fairseq run has its shard writer"),
                            };
                            if let Some(dir) = path.parent().filter(|d| !made_dirs.contains(*d)) {
                                std::fs::create_dir_all(dir).map_err(|e| CorpusError::io(dir, e))?;
                                made_dirs.insert(dir.to_path_buf());
                            }
                            output::write_features(
                                &path,
                                format,
                                plan.options.dtype,
                                plan.replace,
                                Some(&writer),
                                &features,
                                &u.path,
                                &plan.config,
                            )?;
                            let rel = path.strip_prefix(&plan.options.out).unwrap_or(&path);
                            let entry = index_entry(u, &features, samples, slash(rel), None);
                            if let Some(ix) = index.as_mut() {
                                ix.append(&entry)?;
                            }
                            progress.finished(&Finished { utterance: u, info: &info, features: &features, samples, output: &path });
                            extracted += 1;
                            audio_seconds += samples as f64 / 16000.0;
                        }
                    }
                }
            }
        }
        Ok(())
    })();
    if result.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    result?;
    if let Some(mut shard) = fairseq {
        if next == plan.utterances.len() && failures.is_empty() && !stop.load(Ordering::Relaxed) {
            shard.finish()?;
        } else {
            shard.commit()?;
        }
    }
    Ok((extracted, audio_seconds, failures))
}

fn index_entry(u: &crate::inputs::Utterance, f: &Features, samples: usize, output: String, row: Option<u64>) -> IndexEntry {
    IndexEntry {
        id: u.id.clone(),
        source: u.path.display().to_string(),
        samples: samples as u64,
        frames: f.frames as u64,
        output,
        row,
    }
}

fn slash(p: &Path) -> String {
    p.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}
