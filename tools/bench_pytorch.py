#!/usr/bin/env python3
"""Times the authors' PyTorch LightHuBERT on the benchmark cases of `lighthubert-bench`.

Same checkpoint, subnets, audio and statistics as the Rust harness: the deterministic test
signal of `bench/src/cases.rs`, s3prl's per-utterance normalisation, `extract_features(...,
ret_hs=True)` under `torch.no_grad()`, median and spread of N runs after warm-up. One JSON
object per measurement, in the harness's schema (`impl` = "pytorch"), appended to --out
(or printed).

    python3 tools/bench_pytorch.py --checkpoint kernels-tests/fixtures/tiny-default.pt
    python3 tools/bench_pytorch.py --checkpoint /tmp/full.pt --subnets small:default,base:max \
        --seconds 1,4 --runs 5 --threads 2 [--device cuda] [--out results.jsonl]
    python3 tools/bench_pytorch.py --cases cases.json --out results.jsonl   # what the harness runs

`--cases` is a JSON list of {"subnet": NAME, "config": <authors' subnet dict>, "seconds": S}.
Without it, --subnets names presets `SPACE:PRESET` (SPACE small|base|ckpt, PRESET default|min|max).
The authors' package comes from the s3prl 0.4.18 sdist as in tools/fixtures/gen_fixtures.py
(S3PRL_SRC=/path/to/s3prl-0.4.18, or a download into tools/fixtures/.cache/).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PRECISIONS = ("fp32", "tf32", "fp16-autocast")

SPACES = {
    "small": {"embed_dim": [256, 384, 512], "heads_num": [4, 6, 8], "ffn_ratio": [3.0, 3.5, 4.0], "layer_num": [10, 11, 12]},
    "base": {"embed_dim": [512, 640, 768], "heads_num": [8, 10, 12], "ffn_ratio": [3.5, 4.0], "layer_num": [12]},
}


def uniform(e: int, h: int, f: int, d: int) -> dict:
    return {"atten_dim": [64 * h] * d, "embed_dim": e, "ffn_embed": [f] * d, "heads_num": [h] * d,
            "layer_num": d, "slide_wsz": ["global"] * d}


def preset(space: dict, name: str) -> dict:
    """As `SearchSpace::preset` in engine/src/supernet/subnet.rs."""
    mid = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    if name == "default":
        e = mid(space["embed_dim"])
        return uniform(e, mid(space["heads_num"]), int(max(space["ffn_ratio"]) * e), max(space["layer_num"]))
    if name == "max":
        e = max(space["embed_dim"])
        return uniform(e, max(space["heads_num"]), int(max(space["ffn_ratio"]) * e), max(space["layer_num"]))
    if name == "min":
        e = min(space["embed_dim"])
        return uniform(e, min(space["heads_num"]), int(min(space["ffn_ratio"]) * e), min(space["layer_num"]))
    sys.exit(f"unknown preset {name}")


def test_signal(samples: int):
    """The harness's waveform (bench/src/cases.rs::test_signal), bit for bit in float32."""
    import numpy as np
    i = np.arange(samples, dtype=np.float64)
    w = 0.3 * np.sin(0.013 * i) + 0.1 * np.sin(0.0031 * i + 0.5)
    return w.astype(np.float32)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def load_model(path: Path, device: str):
    """The authors' loader path (s3prl upstream/lighthubert/expert.py) without its subnet
    choice, tolerating files without the training-only keys (label_embs_concat, final_proj), as
    gen_full_checkpoint.py writes them."""
    sys.path.insert(0, str(REPO / "tools" / "fixtures"))
    from gen_fixtures import Authors, load_like_authors, locate_s3prl
    root, _ = locate_s3prl()
    model = load_like_authors(Authors(root), path, training_keys=False)
    return model.to(device), model.checkpoint_cfg["model"].get("search_space")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=REPO / "kernels-tests/fixtures/tiny-default.pt")
    ap.add_argument("--cases", type=Path, help="JSON list of cases (written by the Rust harness)")
    ap.add_argument("--subnets", default="ckpt:default,ckpt:min,ckpt:max")
    ap.add_argument("--seconds", default="1,4")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--global-warmup", type=int, default=5, help="untimed runs before the first case")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS,
                    help="fp32 (TF32 off everywhere: the reference), tf32 (TF32 matmuls and convs), "
                         "fp16-autocast (torch.autocast float16); the last two on CUDA only")
    ap.add_argument("--out", type=Path, help="append JSON lines here (default: stdout)")
    ap.add_argument("--command", help="the command line to record (the harness passes its own)")
    args = ap.parse_args()

    try:
        import numpy as np  # noqa: F401
        import torch
    except ImportError as e:
        sys.exit(f"bench_pytorch: {e}: install torch and numpy to compare with PyTorch")

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_pytorch: --device cuda but torch.cuda.is_available() is False")
    cuda = args.device.startswith("cuda")
    if args.precision != "fp32" and not cuda:
        sys.exit(f"bench_pytorch: --precision {args.precision} is a CUDA reference point; use --device cuda")
    if cuda:
        # PyTorch leaves cuDNN convs in TF32 by default; fp32 means fp32 everywhere.
        tf32 = args.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if args.precision == "fp16-autocast" else contextlib.nullcontext
    model, ckpt_space = load_model(args.checkpoint, args.device)

    if args.cases:
        cases = json.loads(args.cases.read_text())
    else:
        cases = []
        for spec in args.subnets.split(","):
            space_name, pname = spec.split(":")
            space = ckpt_space if space_name == "ckpt" and ckpt_space else SPACES.get(space_name, SPACES["small"])
            for s in args.seconds.split(","):
                cases.append({"subnet": spec, "config": preset(space, pname), "seconds": float(s)})

    if args.device.startswith("cuda"):
        device, driver = torch.cuda.get_device_name(), f"torch {torch.__version__}, CUDA {torch.version.cuda}"
        backend = f"pytorch cuda {args.precision}"
        sync = torch.cuda.synchronize
    else:
        device, driver = cpu_name(), f"torch {torch.__version__}"
        backend = f"pytorch cpu, {torch.get_num_threads()} threads"
        sync = lambda: None  # noqa: E731
    command = args.command or " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    common = {"impl": "pytorch", "device": device, "driver": driver, "backend": backend,
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "git_commit": git_commit(), "command": command, "checkpoint": str(args.checkpoint),
              "precision": args.precision}

    out = open(args.out, "a") if args.out else sys.stdout
    # A process-wide warm-up first: torch's first forwards in a fresh process are an order of
    # magnitude slower for several calls (allocator, oneDNN primitive caches), which a
    # per-case warm-up of 1 does not cover for the first cases.
    if cases:
        c0 = cases[0]
        model.set_sample_config(c0["config"])
        x0 = torch.from_numpy(test_signal(int(round(c0["seconds"] * 16000)))).to(args.device)
        for _ in range(args.global_warmup):
            with torch.no_grad(), autocast():
                model.extract_features(torch.nn.functional.layer_norm(x0, x0.shape)[None], padding_mask=None, ret_hs=True)
    for case in cases:
        samples = int(round(case["seconds"] * 16000))
        x = torch.from_numpy(test_signal(samples)).to(args.device)
        model.set_sample_config(case["config"])

        def once():
            with torch.no_grad(), autocast():
                y = torch.nn.functional.layer_norm(x, x.shape)  # s3prl's normalisation
                hs, _ = model.extract_features(y[None], padding_mask=None, ret_hs=True)
            sync()
            return hs

        for _ in range(args.warmup):
            hs = once()
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            hs = once()
            times.append((time.perf_counter() - t) * 1e3)
        times.sort()
        q = lambda p: times[min(len(times) - 1, int(p * (len(times) - 1) + 0.5))]  # noqa: E731
        rec = dict(common, kind="latency", subnet=case["subnet"], subnet_config=case["config"],
                   seconds=case["seconds"], frames=int(hs[0].shape[1]), runs=args.runs, warmup=args.warmup,
                   median_ms=q(0.5), min_ms=times[0], max_ms=times[-1], p10_ms=q(0.1), p90_ms=q(0.9))
        out.write(json.dumps(rec) + "\n")
        out.flush()
        print(f"pytorch {case['subnet']} {case['seconds']}s: median {rec['median_ms']:.1f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
