#!/usr/bin/env python3
"""Checks `lighthubert export --format hf` against Hugging Face transformers on the CPU.

For each subnet it exports a HubertModel folder, loads it with
`transformers.HubertModel.from_pretrained` (which must report no missing or unexpected keys),
runs it on the same waveform with `output_hidden_states=True`, and compares HF's
`hidden_states[1..]` with `lighthubert extract`'s hidden states 1.. (relative L2 and max abs,
held to the end-to-end bounds: 1e-5 and 2e-4). Slot 0 differs by convention (ours: the
post_extract_proj output; HF: the input of layer 1, after the positional conv and the encoder
LayerNorm), so it is reported, not compared.

    python tools/check_hf_export.py --checkpoint CKPT.pt --subnet max --subnet min [--audio speech.wav]

Needs torch, transformers and numpy (not the test suite's dependencies: this check is opt-in)
and a built `lighthubert` (LIGHTHUBERT_BIN, else target/release/lighthubert). Exits 1 when any
figure is out of bounds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REL_L2, MAX_ABS = 1e-5, 2e-4


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (16000, 1, 2):
            sys.exit(f"{path}: this check reads 16 kHz mono 16-bit WAV")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--subnet", action="append", required=True, help="repeatable: a preset or JSON file")
    p.add_argument("--audio", default=str(REPO / "tools" / "assets" / "speech.wav"))
    args = p.parse_args()

    import torch
    import transformers

    torch.set_grad_enabled(False)
    binary = os.environ.get("LIGHTHUBERT_BIN", str(REPO / "target" / "release" / "lighthubert"))
    wave_np = read_wav(Path(args.audio))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}; {args.checkpoint}; {args.audio} ({len(wave_np) / 16000:.2f} s)")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.subnet:
            folder, feats = Path(tmp) / f"hf-{len(spec)}-{abs(hash(spec))}", Path(tmp) / f"ours-{abs(hash(spec))}.npy"
            subprocess.run([binary, "export", "--checkpoint", args.checkpoint, "--subnet", spec, "--format", "hf", "--out", str(folder)], check=True, capture_output=True)
            subprocess.run([binary, "extract", "--checkpoint", args.checkpoint, "--subnet", spec, "--no-normalize", "--out", str(feats), args.audio], check=True, capture_output=True)
            ours = np.load(feats)
            t0 = time.perf_counter()
            model, info = transformers.HubertModel.from_pretrained(str(folder), output_loading_info=True)
            load_s = time.perf_counter() - t0
            model.eval()
            keys = {k: v for k, v in info.items() if v}
            out = model(torch.from_numpy(wave_np)[None], output_hidden_states=True)
            hf = [h[0].numpy() for h in out.hidden_states]
            worst = (0.0, 0.0)
            assert len(hf) == len(ours), (len(hf), len(ours))
            for i in range(1, len(hf)):
                d = hf[i].astype(np.float64) - ours[i]
                rel = float(np.linalg.norm(d) / np.linalg.norm(ours[i]))
                worst = (max(worst[0], rel), max(worst[1], float(np.abs(d).max())))
            slot0 = float(np.linalg.norm(hf[0] - ours[0]) / np.linalg.norm(ours[0]))
            ok = not keys and worst[0] <= REL_L2 and worst[1] <= MAX_ABS
            failed |= not ok
            size = (folder / "model.safetensors").stat().st_size
            print(
                f"{spec}: {'ok' if ok else 'FAILED'}; {len(hf) - 1} layers, width {ours.shape[2]}, {ours.shape[1]} frames; "
                f"model.safetensors {size / 1e6:.1f} MB, loaded in {load_s:.2f} s; loading info {keys or 'clean'}; "
                f"hidden states 1..: worst rel L2 {worst[0]:.2e}, max abs {worst[1]:.2e}; slot 0 differs by convention (rel {slot0:.2f})"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
