"""Every failure is a lighthubert exception of its kind, with the command's one-line message;
none is a panic."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import BAD, SPEECH, TINY_DEFAULT

import lighthubert
from lighthubert import errors


def test_the_hierarchy():
    for cls in (errors.CheckpointError, errors.AudioError, errors.SubnetError, errors.DeviceError,
                errors.InputError, errors.OutputError, errors.UsageError):
        assert issubclass(cls, lighthubert.Error)
    assert issubclass(lighthubert.UsageError, ValueError) and issubclass(lighthubert.SubnetError, ValueError)


@pytest.mark.parametrize("name", sorted(p.name for p in (BAD / "checkpoints").glob("*.*")))
def test_bad_checkpoints(name):
    with pytest.raises(lighthubert.CheckpointError) as e:
        lighthubert.Model(BAD / "checkpoints" / name)
    assert name in str(e.value) and "\n" not in str(e.value)


def test_missing_checkpoint():
    with pytest.raises(lighthubert.Error, match="no-such.pt"):
        lighthubert.Model("no-such.pt")


@pytest.mark.parametrize("name,words", [
    ("not-audio.wav", ""), ("too-short.wav", "too short"), ("truncated-header.wav", ""),
    ("zero-samples.wav", ""), ("nan-sample.wav", "not a finite number"),
])
def test_bad_audio_files(tiny, name, words):
    with pytest.raises(lighthubert.AudioError) as e:
        tiny.extract(lighthubert.load_audio(BAD / "audio" / name))
    assert (name in str(e.value) or "waveform 0" in str(e.value)) and words in str(e.value)


def test_bad_waveforms(tiny):
    with pytest.raises(lighthubert.AudioError, match="waveform 1: too short: 399 samples"):
        tiny.extract([np.zeros(16000, np.float32), np.zeros(399, np.float32)])
    with pytest.raises(lighthubert.AudioError, match="waveform 0: sample 7 is not a finite number"):
        w = np.zeros(16000, np.float32)
        w[7] = np.nan
        tiny.extract(w)
    with pytest.raises(lighthubert.UsageError, match="int16"):
        tiny.extract(np.zeros(16000, np.int16))
    with pytest.raises(lighthubert.UsageError, match="1-D"):
        tiny.extract([np.zeros((2, 16000), np.float32)])
    with pytest.raises(lighthubert.UsageError, match="wavs_len: 1 lengths for 2 waveforms"):
        tiny(np.zeros((2, 16000), np.float32), wavs_len=[16000])
    with pytest.raises(lighthubert.UsageError, match="sample_rate=0"):
        tiny.extract(np.zeros(16000, np.float32), sample_rate=0)


@pytest.mark.parametrize("name", sorted(p.name for p in (BAD / "subnets").glob("*.json")))
def test_bad_subnet_files(tiny, name):
    with pytest.raises(lighthubert.SubnetError) as e:
        tiny.subnet(BAD / "subnets" / name)
    assert name in str(e.value)


def test_bad_subnets(tiny):
    s = tiny.subnet("max").to_dict()
    s["embed_dim"] = 100
    with pytest.raises(lighthubert.SubnetError, match="embed_dim"):
        tiny.subnet(s)
    with pytest.raises(lighthubert.SubnetError, match="embed_dim"):
        tiny.extract(np.zeros(16000, np.float32), subnet=s)
    with pytest.raises(lighthubert.SubnetError):
        tiny.subnet("biggest")
    with pytest.raises(lighthubert.UsageError):
        tiny.subnet(12)


def test_bad_layers(tiny, speech):
    for layers, words in [([99], "hidden state 99 does not exist"), ("6-3", "runs backwards"), ("x", "layer list"),
                          (True, "layers=True"), ([], "at least one")]:
        with pytest.raises(lighthubert.UsageError, match=words):
            tiny.extract(speech, layers=layers)


def test_bad_settings():
    with pytest.raises(lighthubert.UsageError, match="weights=.f8.: expected one of f32, f16"):
        lighthubert.Model(TINY_DEFAULT, weights="f8")
    with pytest.raises(lighthubert.DeviceError, match="no GPU adapter matches"):
        lighthubert.Model(TINY_DEFAULT, adapter="no-such-gpu")
    with pytest.raises(lighthubert.DeviceError, match="WGPU_BACKEND|backend"):
        lighthubert.Model(TINY_DEFAULT, backend="cuda")


def test_corpus_errors(tiny, tmp_path):
    with pytest.raises(lighthubert.UsageError, match="no audio files found"):
        tiny.extract_corpus(tmp_path, tmp_path / "out")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{SPEECH}\n{SPEECH}\n")
    with pytest.raises(lighthubert.InputError, match="id"):
        tiny.extract_corpus(files_from=listing, out=tmp_path / "out")
    with pytest.raises(lighthubert.UsageError, match="--shard 3/2"):
        tiny.extract_corpus(SPEECH, tmp_path / "out", shard="3/2")
    with pytest.raises(lighthubert.UsageError, match="dtype"):
        tiny.extract_corpus(SPEECH, tmp_path / "out", dtype="f8")
    tiny.extract_corpus(SPEECH, tmp_path / "out")
    with pytest.raises(lighthubert.OutputError, match="layers"):
        tiny.extract_corpus(SPEECH, tmp_path / "out", layers=[0])
    existing = tmp_path / "f.npy"
    existing.write_bytes(b"mine")
    with pytest.raises(lighthubert.OutputError, match="already exists"):
        tiny.extract_corpus(SPEECH, existing)
    assert existing.read_bytes() == b"mine"
    before = SPEECH.read_bytes()
    with pytest.raises(lighthubert.OutputError, match="speech.wav: exists and is not a folder"):
        tiny.extract_corpus(SPEECH, SPEECH, force=True)
    assert SPEECH.read_bytes() == before
