"""Shared fixtures: the repository's test checkpoints and audio, the `lighthubert` command the
parity tests compare with, and a private runtime folder for Mesa."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "kernels-tests" / "fixtures"
TINY_DEFAULT = FIXTURES / "tiny-default.pt"
ASSETS = REPO / "tools" / "assets"  # the demo checkpoint and clip the program bundles
TINY_F16 = ASSETS / "tiny-layernorm-f16.pt"
SPEECH = ASSETS / "speech.wav"
BAD = FIXTURES / "bad"

# Mesa prints warnings without a runtime folder (and the command would make its own).
if not os.environ.get("XDG_RUNTIME_DIR") or not os.path.isdir(os.environ["XDG_RUNTIME_DIR"]):
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="lighthubert-pytest-runtime-")


def command() -> Path:
    """The `lighthubert` binary: LIGHTHUBERT_BIN, else the workspace's release build."""
    path = Path(os.environ.get("LIGHTHUBERT_BIN", REPO / "target" / "release" / "lighthubert"))
    if not path.is_file():
        raise RuntimeError(f"{path}: build it first (cargo build --release -p lighthubert-tools), or set LIGHTHUBERT_BIN")
    return path


def run_command(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(command()), *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"lighthubert {' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def read_safetensors(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """The tensors and metadata of a safetensors file (F32 and F16 only), with NumPy alone."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    dtypes = {"F32": np.float32, "F16": np.float16}
    body = data[8 + n :]
    tensors = {
        k: np.frombuffer(body[v["data_offsets"][0] : v["data_offsets"][1]], dtype=dtypes[v["dtype"]]).reshape(v["shape"])
        for k, v in header.items()
    }
    return tensors, meta


@pytest.fixture(scope="session")
def lighthubert():
    import lighthubert

    return lighthubert


@pytest.fixture(scope="session")
def tiny(lighthubert):
    """tiny-default.pt: GroupNorm extractor, f32 storage, small search space, random weights."""
    return lighthubert.Model(TINY_DEFAULT)


@pytest.fixture(scope="session")
def tiny_f16(lighthubert):
    """tiny-layernorm-f16.pt: LayerNorm extractor, f16 storage (also the bundled demo)."""
    return lighthubert.Model(TINY_F16)


@pytest.fixture(scope="session")
def speech(lighthubert) -> np.ndarray:
    return lighthubert.load_audio(SPEECH)


def pcm16_wav(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 1) -> Path:
    """Writes int16 PCM (`samples` in [-1, 1], interleaved when several channels)."""
    import wave

    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path
