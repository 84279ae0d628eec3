"""Python and the command give the same bytes: features of single files, the decoder and
resampler, and whole corpus runs (each resuming the other)."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import BAD, SPEECH, TINY_DEFAULT, TINY_F16, pcm16_wav, run_command


@pytest.mark.parametrize(
    "checkpoint,weights,subnet,normalize",
    [
        (TINY_DEFAULT, "f32", "default", None),
        (TINY_DEFAULT, "f32", "random:7", True),
        (TINY_DEFAULT, "f16", "min", False),
        (TINY_F16, "f32", "max", None),
    ],
)
def test_extract_matches_the_command_bit_for_bit(lighthubert, tmp_path, checkpoint, weights, subnet, normalize):
    out = tmp_path / "speech.npy"
    flags = [] if normalize is None else ["--normalize" if normalize else "--no-normalize"]
    run_command("extract", "--checkpoint", checkpoint, "--weights", weights, "--subnet", subnet, *flags, "--out", out, SPEECH)
    model = lighthubert.Model(checkpoint, weights=weights)
    got = model.extract(lighthubert.load_audio(SPEECH), subnet=subnet, normalize=normalize)
    assert np.array_equal(got, np.load(out))


@pytest.mark.parametrize("name", sorted(p.name for p in (BAD / "audio").glob("pcm*.wav")) + ["float32-44100hz-8ch.wav"])
def test_load_audio_is_the_commands_decoder(tiny, lighthubert, tmp_path, name):
    """Rates from 8 to 96 kHz, 1 to 8 channels, 8- to 32-bit: the features of load_audio's
    samples equal the command's features of the file."""
    out = tmp_path / "f.npy"
    run_command("extract", "--checkpoint", TINY_DEFAULT, "--out", out, BAD / "audio" / name)
    wave16k = lighthubert.load_audio(BAD / "audio" / name)
    assert wave16k.dtype == np.float32 and wave16k.ndim == 1
    assert np.array_equal(tiny.extract(wave16k), np.load(out))


def test_load_audio_reads_pcm16_exactly(lighthubert, tmp_path):
    with wave.open(str(SPEECH)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        ints = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.array_equal(lighthubert.load_audio(SPEECH), ints.astype(np.float32) / np.float32(32768))
    # Stereo is the mean of the channels, as the command reads it.
    stereo = pcm16_wav(tmp_path / "st.wav", np.stack([ints, ints]).T.reshape(-1) / 32768.0, channels=2)
    assert np.allclose(lighthubert.load_audio(stereo), ints / 32768.0, atol=1e-4)


def corpus(folder: Path) -> Path:
    """Eight utterances in two speaker folders, of several lengths and rates."""
    from conftest import SPEECH as src

    import lighthubert

    speech = lighthubert.load_audio(src)
    for i in range(8):
        sub = folder / f"spk{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        piece = speech[i * 2500 : i * 2500 + 9000 + i * 3000]
        pcm16_wav(sub / f"utt{i}.wav", piece, rate=16000)
    return folder


def same_tree(a: Path, b: Path) -> None:
    """The same feature files, byte for byte, and the same run record (index order aside)."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel.suffix == ".jsonl":
            lines = lambda p: sorted(json.dumps(json.loads(l), sort_keys=True) for l in p.read_text().splitlines())
            assert lines(a / rel) == lines(b / rel), rel
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.parametrize(
    "options,flags",
    [
        (dict(), []),
        (dict(layers=[0, -1], format="safetensors", dtype="f16"), ["--layers", "0,-1", "--format", "safetensors", "--dtype", "f16"]),
        (dict(subnet="random:7", normalize=True, batch_size=3), ["--subnet", "random:7", "--normalize", "--batch-size", "3"]),
    ],
)
def test_extract_corpus_writes_what_the_command_writes(tiny, tmp_path, options, flags):
    data = corpus(tmp_path / "data")
    summary = tiny.extract_corpus(data, tmp_path / "py", **options)
    assert (summary.in_shard, summary.before, summary.extracted, summary.failures) == (8, 0, 8, [])
    assert summary.complete and summary.state_dir == tmp_path / "py" / "lighthubert-run"
    run_command("extract", "--checkpoint", TINY_DEFAULT, *flags, "--out", tmp_path / "cli", data)
    same_tree(tmp_path / "py", tmp_path / "cli")
    # Each resumes the other: nothing is left to do.
    assert "nothing to do" in run_command("extract", "--checkpoint", TINY_DEFAULT, *flags, "--out", tmp_path / "py", data).stdout
    again = tiny.extract_corpus(data, tmp_path / "cli", **options)
    assert (again.before, again.extracted) == (8, 0)


def test_fairseq_layout_and_shards_match_the_command(tiny, tmp_path):
    data = corpus(tmp_path / "data")
    manifest = tmp_path / "train.tsv"
    lines = [str(data)] + [f"{p.relative_to(data)}\t{wave.open(str(p)).getnframes()}" for p in sorted(data.rglob("*.wav"))]
    manifest.write_text("\n".join(lines) + "\n")
    for shard in range(3):
        s = tiny.extract_corpus(files_from=manifest, out=tmp_path / "py", layers=-1, layout="fairseq", shard=(shard, 3))
        assert s.shard == (shard, 3) and s.complete
        run_command("extract", "--checkpoint", TINY_DEFAULT, "--files-from", manifest, "--layers", "-1", "--layout", "fairseq",
                    "--shard", f"{shard}/3", "--out", tmp_path / "cli")
    same_tree(tmp_path / "py", tmp_path / "cli")
    lengths = [int(n) for i in range(3) for n in (tmp_path / "py" / f"train_{i}_3.len").read_text().split()]
    assert len(lengths) == 8


def test_failures_are_recorded_and_retried(tiny, tmp_path):
    data = corpus(tmp_path / "data")
    shutil.copy(BAD / "audio" / "not-audio.wav", data / "spk0" / "broken.wav")
    events = []
    s = tiny.extract_corpus(data, tmp_path / "out", progress=events.append)
    assert (s.extracted, len(s.failures)) == (8, 1)
    (failure,) = s.failures
    assert failure.id == "spk0/broken" and failure.path == data / "spk0" / "broken.wav" and failure.reason
    assert s.failures_file is not None and "broken.wav" in s.failures_file.read_text()
    assert sorted(e["id"] for e in events) == sorted([f"spk{i % 2}/utt{i}" for i in range(8)] + ["spk0/broken"])
    assert [e for e in events if e["error"]][0]["id"] == "spk0/broken"
    done = [e for e in events if not e["error"]]
    assert all((tmp_path / "out" / e["output"]).is_file() and e["frames"] > 0 for e in done)
    (data / "spk0" / "broken.wav").unlink()
    s = tiny.extract_corpus(data, tmp_path / "out")
    assert (s.before, s.extracted, s.failures, s.failures_file) == (8, 0, [], None)


def test_a_raising_progress_callback_stops_the_run(tiny, tmp_path):
    data = corpus(tmp_path / "data")
    seen = []

    def stop_after_two(event):
        seen.append(event)
        if len(seen) == 2:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        tiny.extract_corpus(data, tmp_path / "out", progress=stop_after_two, batch_size=1)
    s = tiny.extract_corpus(data, tmp_path / "out")
    assert s.before >= 2 and s.before + s.extracted == 8


def test_ctrl_c_stops_after_the_batch_in_flight_and_the_rerun_resumes(tiny, tmp_path):
    import signal
    import subprocess
    import sys

    import lighthubert

    speech = lighthubert.load_audio(SPEECH)
    data = tmp_path / "data"
    data.mkdir()
    long = np.tile(speech, 3)
    for i in range(24):
        pcm16_wav(data / f"u{i:02d}.wav", long[i * 400 : i * 400 + 96000])
    out = tmp_path / "out"
    script = (
        "import sys, lighthubert\n"
        f"m = lighthubert.Model({str(TINY_DEFAULT)!r})\n"
        "try:\n"
        f"    m.extract_corpus({str(data)!r}, {str(out)!r}, subnet='max', batch_size=1, progress=lambda e: print('done', flush=True))\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(130)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "done"
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130 and rest.strip().endswith("interrupted"), rest
    written = sorted(out.glob("*.npy"))
    assert 1 <= len(written) < 24
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    s = tiny.extract_corpus(data, out, subnet="max")
    assert (s.before, s.before + s.extracted) == (len(written), 24)
    run_command("extract", "--checkpoint", TINY_DEFAULT, "--subnet", "max", "--out", tmp_path / "cli", data)
    same_tree(out, tmp_path / "cli")
