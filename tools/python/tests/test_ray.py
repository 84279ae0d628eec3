"""Ray Data on a real local cluster (two worker actors on lavapipe): the Extractor's rows, a
corpus run equal to the command's bit for bit, an actor killed mid-run, and a rerun that does
nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SPEECH, TINY_DEFAULT, pcm16_wav, run_command

import ray

import lighthubert.ray as lray

EXAMPLE = REPO / "tools" / "python" / "examples" / "ray_extract_manifest.py"


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def make_corpus(folder: Path, count: int, seconds: float) -> Path:
    import lighthubert

    speech = lighthubert.load_audio(SPEECH)
    reps = int(np.ceil(seconds * 16000 / len(speech))) + 1
    long = np.tile(speech, reps)
    for i in range(count):
        sub = folder / f"spk{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        n = int(seconds * 16000) - i * 160
        pcm16_wav(sub / f"utt{i:02d}.wav", long[i * 800 : i * 800 + n])
    return folder


def manifest_of(data: Path, path: Path) -> Path:
    import wave

    lines = [str(data)] + [f"{p.relative_to(data)}\t{wave.open(str(p)).getnframes()}" for p in sorted(data.rglob("*.wav"))]
    path.write_text("\n".join(lines) + "\n")
    return path


def same_outputs(ray_out: Path, cli_out: Path) -> int:
    """Feature files equal byte for byte, the same configuration, and the same index entries
    (whichever index files hold them). Returns the number of feature files."""
    feats = lambda d: sorted(p.relative_to(d) for p in d.rglob("*.npy") if "lighthubert-run" not in p.parts)
    assert feats(ray_out) == feats(cli_out)
    for rel in feats(ray_out):
        assert (ray_out / rel).read_bytes() == (cli_out / rel).read_bytes(), rel
    run = Path("lighthubert-run")
    assert json.loads((ray_out / run / "config.json").read_text()) == json.loads((cli_out / run / "config.json").read_text())

    def entries(d):
        out = {}
        for f in (d / run).glob("index-*.jsonl"):
            for line in f.read_text().splitlines():
                e = json.loads(line)
                out[e["id"]] = e
        return out

    assert entries(ray_out) == entries(cli_out)
    return len(feats(ray_out))


def test_extractor_rows(cluster, tiny, speech):
    sub = tiny.subnet("random:4")
    items = [{"path": str(SPEECH), "n": i} for i in range(3)]
    rows = (
        ray.data.from_items(items)
        .map_batches(lray.Extractor, fn_constructor_kwargs={"checkpoint": str(TINY_DEFAULT), "subnet": sub.to_dict(), "layers": [0, -1]},
                     compute=ray.data.ActorPoolStrategy(size=2), batch_size=2, batch_format="numpy")
        .take_all()
    )
    want = tiny.extract(speech, subnet=sub, layers=[0, -1])
    assert sorted(r["n"] for r in rows) == [0, 1, 2]
    for r in rows:
        assert np.array_equal(r["features"], want) and r["frames"] == want.shape[1]
    # Audio in memory at another rate is resampled as the command resamples.
    w22 = (np.sin(np.arange(22050) * 0.03) * 0.3).astype(np.float32)
    audio_rows = (
        ray.data.from_items([{"audio": w22, "sample_rate": 22050}, {"audio": speech, "sample_rate": 16000}])
        .map_batches(lray.Extractor, fn_constructor_kwargs={"checkpoint": str(TINY_DEFAULT)}, compute=ray.data.ActorPoolStrategy(size=1),
                     batch_size=2, batch_format="numpy")
        .take_all()
    )
    by_frames = {int(r["frames"]): r["features"] for r in audio_rows}
    for want in (tiny.extract(w22, sample_rate=22050), tiny.extract(speech)):
        assert np.array_equal(by_frames[want.shape[1]], want)


def test_the_example_writes_what_the_command_writes_and_resumes(cluster, tmp_path):
    data = make_corpus(tmp_path / "data", 12, 2.0)
    manifest = manifest_of(data, tmp_path / "train.tsv")
    cmd = [sys.executable, str(EXAMPLE), str(manifest), str(tmp_path / "ray"), "--checkpoint", str(TINY_DEFAULT),
           "--layers", "0,-1", "--workers", "2", "--batch-size", "3", "--address", cluster]
    started = time.monotonic()
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("12 extracted, 0 done before, 0 failed, of 12"), first.stdout
    print(f"ray run: 12 files, 2 workers, {time.monotonic() - started:.1f} s: {first.stdout.strip()}")
    run_command("extract", "--checkpoint", TINY_DEFAULT, "--layers", "0,-1", "--files-from", manifest, "--out", tmp_path / "cli")
    assert same_outputs(tmp_path / "ray", tmp_path / "cli") == 12
    # A rerun does nothing twice, and the command resumes Ray's run as its own.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("*.npy")}
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.startswith("0 extracted, 12 done before"), again.stdout
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("*.npy")} == stamps
    cli = run_command("extract", "--checkpoint", TINY_DEFAULT, "--layers", "0,-1", "--files-from", manifest, "--out", tmp_path / "ray")
    assert "nothing to do" in cli.stdout


def actor_pids() -> list:
    """Processes of Ray Data's map actors (Ray titles them ray::MapWorker(...))."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"MapWorker(MapBatches(Extractor))" in title:
                pids.append(int(entry.name))
    return pids


def test_a_killed_actor_still_leaves_complete_correct_output(cluster, tmp_path):
    data = make_corpus(tmp_path / "data", 24, 6.0)
    out = tmp_path / "ray"
    result = {}

    def run():
        result["summary"] = lray.extract_corpus(data, out, checkpoint=TINY_DEFAULT, subnet="max", concurrency=2, batch_size=2)

    t = threading.Thread(target=run)
    t.start()
    killed = None
    deadline = time.monotonic() + 300
    while t.is_alive() and time.monotonic() < deadline:
        written = list(out.rglob("*.npy"))
        if written and killed is None:
            pids = actor_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed = (pids[0], len(written))
        time.sleep(0.005)
    t.join()
    assert killed is not None, "no actor was running to be killed"
    assert killed[1] < 24, f"the run had finished ({killed[1]} outputs) when the actor was killed"
    summary = result["summary"]
    assert summary.complete and summary.extracted == 24 and not summary.failures
    assert not list(out.rglob("*.tmp*")) and not [p for p in out.rglob(".*") if p.is_file()]
    run_command("extract", "--checkpoint", TINY_DEFAULT, "--subnet", "max", "--out", tmp_path / "cli", data)
    assert same_outputs(out, tmp_path / "cli") == 24
    print(f"killed actor {killed[0]} after {killed[1]} of 24 outputs; the run finished complete and bit-identical")


def test_extractor_errors_without_a_cluster(tiny, speech, tmp_path):
    """The callable itself: unreadable files raise, are skipped, or become `error` rows."""
    import shutil

    import lighthubert

    from conftest import BAD

    bad = tmp_path / "broken.wav"
    shutil.copy(BAD / "audio" / "not-audio.wav", bad)
    batch = {"path": np.array([str(SPEECH), str(bad), str(SPEECH)], dtype=object), "n": np.arange(3)}
    raising = lray.Extractor(TINY_DEFAULT, layers=-1)
    with pytest.raises(lighthubert.AudioError, match="broken.wav"):
        raising(batch)
    skipped = lray.Extractor(TINY_DEFAULT, layers=-1, on_error="skip")(batch)
    assert list(skipped["n"]) == [0, 2] and len(skipped["features"]) == 2
    assert np.array_equal(skipped["features"][1], tiny.extract(speech, layers=-1))
    with pytest.raises(lighthubert.UsageError, match="on_error"):
        lray.Extractor(TINY_DEFAULT, on_error="ignore")

    out = tmp_path / "out"
    plan = lray.plan([SPEECH], out, checkpoint=TINY_DEFAULT)
    assert [t["id"] for t in plan["todo"]] == ["speech"] and plan["before"] == 0
    writer = lray.Extractor(TINY_DEFAULT, out=out)
    rows = writer({"id": np.array(["speech", "broken"], dtype=object), "path": np.array([str(SPEECH), str(bad)], dtype=object)})
    assert list(rows["output"]) == ["speech.npy", ""] and rows["frames"][0] == 141 and rows["error"][0] == ""
    assert rows["error"][1] and rows["frames"][1] == 0
    assert np.array_equal(np.load(out / "speech.npy"), tiny.extract(speech))
    with pytest.raises(lighthubert.UsageError, match="`id` and `path`"):
        writer({"path": np.array([str(SPEECH)], dtype=object)})
    assert lray.plan([SPEECH], out, checkpoint=TINY_DEFAULT)["todo"] == []
