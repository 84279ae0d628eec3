#!/usr/bin/env python3
"""A researcher's simple per-file loop with the authors' PyTorch LightHuBERT, timed.

The PyTorch side of `lighthubert-bench corpus --with-pytorch` (bench/src/corpus/): load the
checkpoint once, then for every audio file of a folder, in name order: read it (soundfile,
else the stdlib `wave` module), normalise as s3prl does, run `extract_features(...,
ret_hs=True)` under `torch.no_grad()` with the given subnet, and save every hidden state as
OUT/<stem>.npy, one float32 array [states, frames, embed] (the layout `lighthubert extract`
writes). No batching, no warm-up, no pipelining: what a plain script does.

    python3 tools/bench_corpus_pytorch.py --checkpoint /tmp/full-small.pt --corpus DIR --out OUT \
        --subnet subnet.json [--threads 2] [--device cpu|cuda] [--no-normalize] [--result r.json]
    python3 tools/bench_corpus_pytorch.py --check     # imports torch and the authors' code, then exits

`--subnet` is the authors' subnet dict as JSON (what `lighthubert subnet default --checkpoint F`
prints); without it the checkpoint's own default (`supernet.subnet` after loading, as s3prl's
expert leaves it). `--result` receives one JSON object: the process's own clock at each stage
(import, load, loop), files, audio seconds, frames. The authors' package comes from the s3prl
0.4.18 sdist as in tools/fixtures/gen_fixtures.py (S3PRL_SRC=/path/to/s3prl-0.4.18, or a
download into tools/fixtures/.cache/).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # before the heavy imports: they are part of a script's start-up

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
import wave  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AUDIO = (".wav", ".flac")


def read_audio(path: Path):
    """float32 mono samples and the rate: soundfile where installed, else `wave` (PCM16 WAV)."""
    import numpy as np
    try:
        import soundfile
    except ImportError:
        soundfile = None
    if soundfile is not None:
        x, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return x.mean(axis=1, dtype=np.float32), rate
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            sys.exit(f"{path}: only 16-bit PCM without soundfile")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        return x.reshape(-1, w.getnchannels()).mean(axis=1, dtype=np.float32), w.getframerate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=REPO / "kernels-tests/fixtures/tiny-default.pt")
    ap.add_argument("--corpus", type=Path, help="folder of .wav/.flac files (16 kHz)")
    ap.add_argument("--out", type=Path, help="folder for the .npy files")
    ap.add_argument("--subnet", type=Path, help="the authors' subnet dict as JSON")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--no-normalize", action="store_true", help="skip s3prl's per-utterance normalisation")
    ap.add_argument("--result", type=Path, help="write the timings here as JSON")
    ap.add_argument("--check", action="store_true", help="import torch and the authors' code, print versions, exit")
    args = ap.parse_args()

    try:
        import numpy as np
        import torch
    except ImportError as e:
        sys.exit(f"bench_corpus_pytorch: {e}: install torch and numpy (tools/fixtures/requirements.txt)")
    sys.path.insert(0, str(REPO / "tools"))
    sys.path.insert(0, str(REPO / "tools" / "fixtures"))
    from bench_pytorch import cpu_name, load_model  # the same loader as the latency benchmark
    from gen_fixtures import Authors, locate_s3prl

    if args.check:
        root, _ = locate_s3prl()
        Authors(root)
        print(json.dumps({"torch": torch.__version__, "numpy": np.__version__, "s3prl": str(root)}))
        return
    if args.corpus is None or args.out is None:
        ap.error("--corpus and --out are required (or --check)")

    # The authors' code calls torch.nn.utils.weight_norm, which newer torch flags as deprecated.
    warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_corpus_pytorch: --device cuda but torch.cuda.is_available() is False")
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    t_imported = time.perf_counter()

    model, _ = load_model(args.checkpoint, args.device)
    subnet = json.loads(args.subnet.read_text()) if args.subnet else model.supernet.subnet
    model.set_sample_config(subnet)
    sync()
    t_loaded = time.perf_counter()

    files = sorted(p for p in args.corpus.iterdir() if p.suffix.lower() in AUDIO)
    if not files:
        sys.exit(f"{args.corpus}: no {'/'.join(AUDIO)} files")
    args.out.mkdir(parents=True, exist_ok=True)
    audio_s, frames = 0.0, 0
    for path in files:
        x, rate = read_audio(path)
        if rate != 16000:
            sys.exit(f"{path}: {rate} Hz; this loop expects 16 kHz (resampling is not timed here)")
        audio_s += len(x) / rate
        with torch.no_grad():
            wav = torch.from_numpy(x).to(args.device)
            if not args.no_normalize:
                wav = torch.nn.functional.layer_norm(wav, wav.shape)  # s3prl's normalisation
            hs, _ = model.extract_features(wav[None], padding_mask=None, ret_hs=True)
            states = torch.stack([h[0] for h in hs]).float().cpu().numpy()  # [states, frames, embed]
        frames += states.shape[1]
        np.save(args.out / f"{path.stem}.npy", states)
    sync()
    t_done = time.perf_counter()

    loop = t_done - t_loaded
    result = {
        "files": len(files), "audio_seconds": audio_s, "frames": frames, "states": int(states.shape[0]),
        "import_s": t_imported - T_START, "load_s": t_loaded - t_imported, "loop_s": loop,
        "script_s": t_done - T_START, "threads": torch.get_num_threads(), "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name(),
        "torch": torch.__version__, "normalize": not args.no_normalize,
        "subnet": subnet,
    }
    if args.result:
        args.result.write_text(json.dumps(result))
    print(f"done: {len(files)} file(s) extracted; {audio_s:.2f} s of audio in {loop:.2f} s "
          f"({audio_s / loop:.1f} s of audio per second, real-time factor {loop / audio_s:.3f})")


if __name__ == "__main__":
    main()
