//! Corpus runs of the `lighthubert` program end to end, on lavapipe with the bundled tiny
//! checkpoint: shards (by `--shard` and from a Slurm array's variables) partition the input and
//! add up to the whole run byte for byte; a run stopped by SIGINT or SIGTERM resumes to the same
//! bytes, extracting only the rest; the fairseq layout agrees with per-utterance runs; a messy
//! corpus (unreadable and truncated files, equal stems, lists and manifests) behaves as the
//! README says; outputs never replace inputs; another configuration is refused.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lighthubert_tools::npy;
use tempfile::TempDir;

mod common;
use common::{files_in, speech, write_wav};

fn lighthubert_in(dir: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lighthubert"));
    c.args(args.iter().map(|a| a.as_ref()))
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", common::runtime_dir_in(dir))
        // A test process may itself run under Slurm or torchrun; its shard is not ours.
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("RANK")
        .env_remove("WORLD_SIZE");
    c
}

fn run(dir: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    lighthubert_in(dir, args).output().expect("run lighthubert")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status, text(&o.stdout), text(&o.stderr));
}

/// `n` utterances of 0.4-1.6 s in three speaker folders, with equal stems across folders.
fn make_corpus(root: &Path, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("spk{}/utt{:02}", i % 3, i / 3);
        let path = root.join(format!("{id}.wav"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let seconds = 0.4 + 0.1 * ((i * 7) % 13) as f64;
        write_wav(&path, 16_000, 16, false, &[speech(0.05 * (i % 10) as f64, seconds)]);
        ids.push(id);
    }
    ids.sort();
    ids
}

/// Every feature file under `out` (not the run's own folder), by relative path, with its bytes.
fn features(out: &Path) -> BTreeMap<String, Vec<u8>> {
    files_in(out)
        .into_iter()
        .filter(|p| !p.starts_with(out.join("lighthubert-run")))
        .map(|p| (p.strip_prefix(out).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Two runs' feature files are the same files with the same bytes (named, not dumped, when not).
#[track_caller]
fn assert_same_files(got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>, what: &str) {
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: other files");
    for (name, bytes) in want {
        assert!(got[name] == *bytes, "{what}: {name} differs");
    }
}

fn index_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shards_partition_the_input_and_add_up_to_the_whole_run() {
    let dir = TempDir::new().unwrap();
    let ids = make_corpus(&dir.path().join("corpus"), 10);
    assert_ok(&run(dir.path(), &[&"extract", &"corpus", &"--out", &"whole", &"--layers", &"0,6,12"]));
    let whole = features(&dir.path().join("whole"));
    assert_eq!(whole.keys().cloned().collect::<Vec<_>>(), ids.iter().map(|i| format!("{i}.npy")).collect::<Vec<_>>());

    // Shards 0 and 1 by --shard; shard 2 from a Slurm array's variables (an array 4-6).
    for i in 0..2 {
        let shard = format!("{i}/3");
        let o = run(dir.path(), &[&"extract", &"corpus", &"--out", &"sharded", &"--layers", &"0,6,12", &"--shard", &shard]);
        assert_ok(&o);
        assert!(text(&o.stdout).contains(&format!("shard      {i}/3")), "{}", text(&o.stdout));
    }
    let o = lighthubert_in(dir.path(), &[&"extract", &"corpus", &"--out", &"sharded", &"--layers", &"0,6,12"])
        .env("SLURM_ARRAY_TASK_ID", "6")
        .env("SLURM_ARRAY_TASK_MIN", "4")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    assert_ok(&o);
    assert!(text(&o.stderr).contains("shard 2/3 from the Slurm job array"), "{}", text(&o.stderr));
    assert_same_files(&features(&dir.path().join("sharded")), &whole, "the three shards against the whole run");

    // Each shard's index holds fairseq's contiguous range of the input order: 3, 4, 3 of 10
    // (listed in the order they finished: longest first within a batch).
    let state = dir.path().join("sharded/lighthubert-run");
    let mut all = Vec::new();
    for (i, range) in [(0, 0..3), (1, 3..7), (2, 7..10)] {
        let mut got = index_ids(&state.join(format!("index-{i}-of-3.jsonl")));
        got.sort();
        assert_eq!(got, ids[range].to_vec(), "shard {i}");
        all.extend(got);
    }
    assert_eq!(all, ids);
}

fn wait_for_lines(path: &Path, lines: usize, child: &mut std::process::Child) {
    let start = Instant::now();
    while index_ids(path).len() < lines {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
        assert!(start.elapsed() < Duration::from_secs(120), "no progress in 2 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn partial_files(dir: &Path) -> Vec<PathBuf> {
    files_in(dir).into_iter().filter(|p| p.to_string_lossy().contains(".partial")).collect()
}

/// Stops a run with `signal` once its index has `after` lines; returns its output.
fn interrupt(dir: &Path, args: &[&dyn AsRef<std::ffi::OsStr>], index: &Path, after: usize, signal: i32) -> Output {
    let mut child = lighthubert_in(dir, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_lines(index, after, &mut child);
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    child.wait_with_output().unwrap()
}

#[test]
fn a_run_stopped_by_a_signal_resumes_to_the_same_bytes() {
    let dir = TempDir::new().unwrap();
    let n = 45;
    make_corpus(&dir.path().join("corpus"), n);
    assert_ok(&run(dir.path(), &[&"extract", &"corpus", &"--out", &"straight", &"--batch-size", &"4"]));
    let straight = features(&dir.path().join("straight"));
    assert_eq!(straight.len(), n);

    let args: [&dyn AsRef<std::ffi::OsStr>; 7] =
        [&"extract", &"corpus", &"--out", &"resumed", &"--batch-size", &"1", &"--force"];
    let index = dir.path().join("resumed/lighthubert-run/index-0-of-1.jsonl");
    let out = dir.path().join("resumed");

    // SIGINT after 3 utterances: the batch in flight finishes, nothing half-written is left.
    let o = interrupt(dir.path(), &args, &index, 3, libc::SIGINT);
    assert_eq!(o.status.code(), Some(130), "stderr: {}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("interrupted by SIGINT") && err.contains("resume with:"), "{err}");
    assert!(!err.lines().last().unwrap_or_default().contains("--force"), "the resume command must not start over: {err}");
    let first = features(&out);
    assert!(first.len() >= 3 && first.len() < n, "{} done", first.len());
    assert_eq!(index_ids(&index).len(), first.len(), "every finished output is in the index");
    assert!(partial_files(&out).is_empty(), "{:?}", partial_files(&out));

    // The same command without --force resumes; SIGTERM this time.
    let resume: Vec<&dyn AsRef<std::ffi::OsStr>> = args[..6].to_vec();
    let o = interrupt(dir.path(), &resume, &index, first.len() + 3, libc::SIGTERM);
    assert_eq!(o.status.code(), Some(143), "stderr: {}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("({} done before)", first.len())), "{}", text(&o.stdout));
    let second = features(&out);
    assert!(second.len() > first.len() && second.len() < n);
    assert!(partial_files(&out).is_empty());

    let o = run(dir.path(), &resume);
    assert_ok(&o);
    let done = text(&o.stdout);
    assert!(
        done.contains(&format!("done: {} file(s) extracted, {} done before, 0 failed", n - second.len(), second.len())),
        "{done}"
    );
    assert_same_files(&features(&out), &straight, "interrupted twice and resumed, against one run");
    let o = run(dir.path(), &resume);
    assert_ok(&o);
    assert!(text(&o.stdout).contains(&format!("nothing to do: all {n} file(s) were done before")), "{}", text(&o.stdout));
}

#[test]
fn the_fairseq_layout_agrees_with_per_utterance_runs() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("LibriSpeech");
    let ids = make_corpus(&root, 7);
    // Manifest order differs from sorted order: fairseq keeps it.
    let order: Vec<&String> = ids.iter().rev().collect();
    let mut tsv = format!("{}\n", root.display());
    for id in &order {
        let samples = hound::WavReader::open(root.join(format!("{id}.wav"))).unwrap().duration();
        tsv.push_str(&format!("{id}.wav\t{samples}\n"));
    }
    std::fs::write(dir.path().join("dev.tsv"), tsv).unwrap();

    assert_ok(&run(dir.path(), &[&"extract", &"--files-from", &"dev.tsv", &"--out", &"each", &"--layers", &"-1", &"--batch-size", &"3"]));
    for shard in ["0/2", "1/2"] {
        let o = run(dir.path(), &[
            &"extract", &"--files-from", &"dev.tsv", &"--out", &"km", &"--layers", &"-1", &"--layout", &"fairseq", &"--shard", &shard, &"--batch-size", &"3",
        ]);
        assert_ok(&o);
    }
    let (mut rows, mut lens) = (Vec::new(), Vec::new());
    for (rank, count) in [(0, 4), (1, 3)] {
        let (shape, values) = npy::read_f32(&std::fs::read(dir.path().join(format!("km/dev_{rank}_2.npy"))).unwrap()).unwrap();
        let len: Vec<usize> = std::fs::read_to_string(dir.path().join(format!("km/dev_{rank}_2.len")))
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(len.len(), count, "shard {rank}: fairseq's split of 7 in 2 is 4 + 3");
        assert_eq!(shape, vec![len.iter().sum::<usize>(), 96]);
        rows.extend(values);
        lens.extend(len);
    }
    let (mut want_rows, mut want_lens) = (Vec::new(), Vec::new());
    for id in &order {
        let (shape, values) = npy::read_f32(&std::fs::read(dir.path().join(format!("each/{id}.npy"))).unwrap()).unwrap();
        assert_eq!(shape[0], 1);
        want_lens.push(shape[1]);
        want_rows.extend(values);
    }
    assert_eq!(lens, want_lens, "the .len files list each utterance's frames in manifest order");
    assert!(rows.iter().zip(&want_rows).all(|(a, b)| a.to_bits() == b.to_bits()) && rows.len() == want_rows.len());
    assert!(partial_files(&dir.path().join("km")).is_empty());

    // float16 halves the disk and is the f32 features rounded.
    assert_ok(&run(dir.path(), &[&"extract", &"--files-from", &"dev.tsv", &"--out", &"km16", &"--layers", &"last", &"--layout", &"fairseq", &"--dtype", &"f16"]));
    let (dtype, _, half) = npy::read(&std::fs::read(dir.path().join("km16/dev_0_1.npy")).unwrap()).unwrap();
    assert_eq!(dtype, npy::Dtype::F16);
    assert!(half.iter().zip(&want_rows).all(|(h, f)| *h == half::f16::from_f32(*f).to_f32()));

    // Several layers cannot go in one fairseq dump.
    let o = run(dir.path(), &[&"extract", &"--files-from", &"dev.tsv", &"--out", &"km2", &"--layers", &"3-4", &"--layout", &"fairseq"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("one layer"), "{}", text(&o.stderr));
}

#[test]
fn a_messy_corpus_reports_each_bad_file_and_goes_on() {
    let dir = TempDir::new().unwrap();
    let corpus = dir.path().join("corpus");
    make_corpus(&corpus, 4);
    std::fs::write(corpus.join("spk0/notes.wav"), "this is not audio").unwrap();
    write_wav(&corpus.join("spk1/blip.wav"), 16_000, 16, false, &[vec![0.1; 300]]);
    let flac = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/speech-22k-stereo.flac")).unwrap();
    std::fs::write(corpus.join("spk2/cut.flac"), &flac[..flac.len() / 2]).unwrap();

    let o = run(dir.path(), &[&"extract", &"corpus", &"--out", &"feats"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    for (file, why) in [("notes.wav", "not a readable audio file"), ("blip.wav", "too short"), ("cut.flac", "truncated")] {
        assert!(err.lines().any(|l| l.starts_with("error: ") && l.contains(file) && l.contains(why)), "{file}: {err}");
    }
    assert!(err.contains("3 of 7 file(s) failed"), "{err}");
    let written = features(&dir.path().join("feats"));
    assert_eq!(written.len(), 4, "{:?}", written.keys());
    let failures = std::fs::read_to_string(dir.path().join("feats/lighthubert-run/failures-0-of-1.tsv")).unwrap();
    assert_eq!(failures.lines().count(), 4, "a header and three files: {failures}");

    // Fixed on disk, the failed file is tried again; the others are not redone.
    write_wav(&corpus.join("spk0/notes.wav"), 16_000, 16, false, &[speech(0.0, 0.6)]);
    let o = run(dir.path(), &[&"extract", &"corpus", &"--out", &"feats"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("done: 1 file(s) extracted, 4 done before, 2 failed"), "{}", text(&o.stdout));
    assert!(dir.path().join("feats/spk0/notes.npy").is_file());

    // --fail-fast stops at the first.
    let o = run(dir.path(), &[&"extract", &"corpus", &"--out", &"ff", &"--fail-fast", &"--batch-size", &"1"]);
    assert_eq!(o.status.code(), Some(1));

    // A plain list: ids relative to the deepest folder its files share; also from stdin.
    let list = "corpus/spk0/utt00.wav\ncorpus/spk1/utt00.wav\n";
    std::fs::write(dir.path().join("list.txt"), list).unwrap();
    assert_ok(&run(dir.path(), &[&"extract", &"--files-from", &"list.txt", &"--out", &"listed"]));
    let mut child = lighthubert_in(dir.path(), &[&"extract", &"--files-from", &"-", &"--out", &"piped"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(list.as_bytes()).unwrap();
    assert_ok(&child.wait_with_output().unwrap());
    let listed = features(&dir.path().join("listed"));
    assert_eq!(listed.keys().collect::<Vec<_>>(), ["spk0/utt00.npy", "spk1/utt00.npy"]);
    assert_same_files(&features(&dir.path().join("piped")), &listed, "a list from stdin against a list file");
    assert!(listed["spk0/utt00.npy"] == written["spk0/utt00.npy"], "listed and found in a folder: the same bytes");
}

#[test]
fn outputs_never_replace_inputs_and_other_settings_are_refused() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("same")).unwrap();
    // An input that happens to be named like an output (the decoder reads it by its header).
    write_wav(&dir.path().join("same/a.npy"), 16_000, 16, false, &[speech(0.0, 0.5)]);
    let before = std::fs::read(dir.path().join("same/a.npy")).unwrap();
    for out in ["same/a.npy", "same"] {
        let o = run(dir.path(), &[&"extract", &"same/a.npy", &"--out", &out, &"--force"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains("is an input of this run"), "{}", text(&o.stderr));
        assert_eq!(std::fs::read(dir.path().join("same/a.npy")).unwrap(), before);
    }

    make_corpus(&dir.path().join("corpus"), 3);
    // Someone's own fairseq dump in the folder: refused, and the folder is not claimed.
    std::fs::create_dir_all(dir.path().join("dump")).unwrap();
    std::fs::write(dir.path().join("dump/x_0_1.len"), "precious").unwrap();
    let o = run(dir.path(), &[&"extract", &"corpus", &"--out", &"dump", &"--layers", &"3", &"--layout", &"fairseq", &"--split", &"x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("x_0_1.len: already exists"), "{}", text(&o.stderr));
    assert!(!dir.path().join("dump/lighthubert-run").exists());
    assert_eq!(std::fs::read(dir.path().join("dump/x_0_1.len")).unwrap(), b"precious");

    assert_ok(&run(dir.path(), &[&"extract", &"corpus", &"--out", &"feats", &"--layers", &"0"]));
    let o = run(dir.path(), &[&"extract", &"corpus", &"--out", &"feats", &"--layers", &"1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("config.json") && err.contains("layers [0], not [1]") && err.contains("--force"), "{err}");
    let o = run(dir.path(), &[&"extract", &"corpus", &"--out", &"feats", &"--layers", &"1", &"--force"]);
    assert_ok(&o);
    assert!(text(&o.stdout).contains("done: 3 file(s) extracted, 0 done before"), "{}", text(&o.stdout));
}

#[test]
fn a_fairseq_shard_stopped_by_a_signal_resumes_to_the_same_bytes() {
    let dir = TempDir::new().unwrap();
    let n = 30;
    make_corpus(&dir.path().join("corpus"), n);
    let args = |out: &'static str| {
        ["extract", "corpus", "--out", out, "--layers", "5", "--layout", "fairseq", "--split", "train", "--batch-size", "1"]
    };
    let straight = args("straight");
    let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = straight.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
    assert_ok(&run(dir.path(), &refs));

    let resumed = args("resumed");
    let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = resumed.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
    let index = dir.path().join("resumed/lighthubert-run/index-0-of-1.jsonl");
    let o = interrupt(dir.path(), &refs, &index, 4, libc::SIGINT);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    // Until the shard is complete only its *.partial files exist: nothing under the final names.
    assert!(!dir.path().join("resumed/train_0_1.npy").exists());
    assert!(dir.path().join("resumed/train_0_1.npy.partial").exists());
    let o = run(dir.path(), &refs);
    assert_ok(&o);
    assert!(text(&o.stdout).contains("done before"), "{}", text(&o.stdout));
    for f in ["train_0_1.npy", "train_0_1.len"] {
        let (a, b) = (std::fs::read(dir.path().join("straight").join(f)).unwrap(), std::fs::read(dir.path().join("resumed").join(f)).unwrap());
        assert!(a == b, "{f}: the resumed shard differs from the uninterrupted one");
    }
    assert!(partial_files(&dir.path().join("resumed")).is_empty());
    let rows: Vec<u64> = std::fs::read_to_string(&index)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows.len(), n);
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "rows follow the manifest order: {rows:?}");
}
