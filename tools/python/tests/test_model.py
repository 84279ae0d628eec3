"""The in-memory API: info, subnets, extract, the s3prl-shaped call, and fidelity to the
authors' code (the end-to-end fixtures, float64 reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import FIXTURES, TINY_DEFAULT, read_safetensors, run_command


def test_info_matches_the_command(tiny):
    info = tiny.info
    assert info["checkpoint"]["path"] == str(TINY_DEFAULT)
    assert info["checkpoint"]["size"] == TINY_DEFAULT.stat().st_size
    assert info["config"]["extractor_mode"] == "default"
    assert info["config"]["frame_rate"] == 50.0
    assert info["config"]["min_samples"] == 400 == tiny._native.min_samples
    assert info["adapter"] == tiny.adapter and info["weights"] == "f32" and info["math"] == "f32"
    assert set(info["search_space"]) == {"name", "embed_dim", "heads_num", "ffn_ratio", "layer_num"}
    for name in ("default", "min", "max"):
        printed = json.loads(run_command("subnet", name, "--checkpoint", TINY_DEFAULT).stdout)
        assert info["presets"][name]["subnet"] == printed
        assert info["presets"][name]["parameters"] == tiny.subnet(name).parameters > 0
    assert info["presets"]["min"]["parameters"] < info["presets"]["default"]["parameters"] < info["presets"]["max"]["parameters"]
    assert info["default_preset"] == "default" and info["checkpoint"]["model"] == "hubert_pruner"


def test_subnet_forms_agree(tiny, tmp_path):
    s = tiny.subnet("random:7")
    assert s == tiny.subnet("random:7") != tiny.subnet("random:8")
    assert tiny.subnet(s.to_dict()) == s
    assert tiny.subnet(s) == s
    path = tmp_path / "s.json"
    path.write_text(s.to_json())
    assert tiny.subnet(path) == s and tiny.subnet(str(path)) == s
    assert s.num_states == s.layer_num + 1 == len(s.heads_num) + 1
    assert s.atten_dim == [64 * h for h in s.heads_num]
    assert "parameters" in repr(s)


def test_states_shapes_and_layer_forms(tiny, speech):
    sub = tiny.subnet("random:3")
    every = tiny.extract(speech, subnet=sub)
    assert isinstance(every, np.ndarray) and every.dtype == np.float32 and every.flags.c_contiguous
    frames = (len(speech) - 400) // 320 + 1
    assert every.shape == (sub.num_states, frames, sub.embed_dim)
    d = sub.num_states
    cases = {
        0: [0],
        -1: [d - 1],
        (0, -1): [0, d - 1],
        "last": [d - 1],
        "1-3,0": [1, 2, 3, 0],
        (2, 2): [2, 2],
    }
    for layers, want in cases.items():
        got = tiny.extract(speech, subnet=sub, layers=list(layers) if isinstance(layers, tuple) else layers)
        assert np.array_equal(got, every[want]), layers


def test_inputs_of_every_form_give_the_same_features(tiny, speech):
    a, b = speech[:20000], speech[5000:41000]
    want = tiny.extract([a, b])
    assert isinstance(want, list) and len(want) == 2
    for waves in ([a, b], (a, b), [a.astype(np.float64), b.astype(np.float64)], [list(a), list(b)]):
        got = tiny.extract(waves)
        assert all(np.array_equal(x, y) for x, y in zip(got, want))

    class TensorLike:  # what a CPU torch tensor offers NumPy
        def __init__(self, x):
            self.x = x

        def __array__(self, dtype=None, copy=None):
            return self.x

    got = tiny.extract([TensorLike(a), TensorLike(b)])
    assert all(np.array_equal(x, y) for x, y in zip(got, want))
    batch = np.stack([a, speech[:20000]])
    got = tiny.extract(batch)
    assert len(got) == 2 and np.array_equal(got[0], want[0])


def test_results_do_not_depend_on_batching(tiny, speech):
    waves = [speech[i * 3000 : i * 3000 + 8000 + i * 2500] for i in range(7)]
    one = tiny.extract(waves, batch_size=1)
    many = tiny.extract(waves, batch_size=8)
    three = tiny.extract(waves, batch_size=3)
    for x, y, z in zip(one, many, three):
        assert np.array_equal(x, y) and np.array_equal(x, z)


def test_s3prl_shaped_call(tiny, speech):
    a, b = speech[:16000], speech[:40000]
    out = tiny([a, b])
    states, lengths = out["hidden_states"], out["lengths"]
    sub = tiny.subnet("default")
    assert len(states) == sub.num_states
    assert lengths.dtype == np.int64 and list(lengths) == [(16000 - 400) // 320 + 1, (40000 - 400) // 320 + 1]
    # s3prl normalises each waveform whatever the checkpoint says.
    single = tiny.extract([a, b], normalize=True)
    for k, s in enumerate(states):
        assert s.shape == (2, lengths.max(), sub.embed_dim) and s.dtype == np.float32
        assert np.array_equal(s[0, : lengths[0]], single[0][k])
        assert np.array_equal(s[1], single[1][k])
        assert not s[0, lengths[0] :].any()
    unnormalised = tiny([a, b], normalize=False)["hidden_states"][-1]
    assert not np.array_equal(unnormalised, states[-1])
    # S3PRLUpstream's form: a zero-padded batch and its lengths.
    padded = np.zeros((2, 40000), np.float32)
    padded[0, :16000], padded[1] = a, b
    again = tiny(padded, wavs_len=[16000, 40000])
    assert all(np.array_equal(x, y) for x, y in zip(again["hidden_states"], states))
    assert np.array_equal(again["lengths"], lengths)


def test_other_rates_are_resampled_as_the_command_resamples(tiny, lighthubert, tmp_path):
    import wave

    # 16-bit PCM at 44.1 kHz; the decoder reads sample s as s / 32768.
    rng = np.random.default_rng(5)
    t = np.arange(44100)
    ints = (np.sin(t * 0.05) * 6000 + rng.integers(-3000, 3000, t.size)).astype("<i2")
    path = tmp_path / "a44k.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(ints.tobytes())
    out = tmp_path / "a.npy"
    run_command("extract", "--checkpoint", TINY_DEFAULT, "--out", out, path)
    want = np.load(out)
    raw = ints.astype(np.float32) / np.float32(32768)
    assert np.array_equal(tiny.extract(raw, sample_rate=44100), want)
    assert np.array_equal(tiny.extract(lighthubert.load_audio(path)), want)


@pytest.mark.parametrize("case", sorted(p.stem for p in (FIXTURES / "e2e").glob("*.safetensors")))
def test_fidelity_to_the_reference(case, tiny, tiny_f16):
    """The authors' code in float64 (s3prl's LightHuBERT upstream); the Rust tests' bounds."""
    tensors, meta = read_safetensors(FIXTURES / "e2e" / f"{case}.safetensors")
    model = {"tiny-default.pt": tiny, "tiny-layernorm-f16.pt": tiny_f16}[meta["checkpoint"]]
    hidden = sorted((k for k in tensors if k.startswith("hidden.")), key=lambda k: int(k.split(".")[1]))
    got = model.extract(tensors["waveform"], subnet=json.loads(meta["subnet"]), normalize=meta["normalize"] == "true")
    assert got.shape[0] == len(hidden)
    for k, key in enumerate(hidden):
        want = tensors[key].astype(np.float64)
        diff = got[k].astype(np.float64) - want
        rel = np.linalg.norm(diff) / np.linalg.norm(want)
        assert rel <= 1e-5 and np.abs(diff).max() <= 2e-4, f"{case} {key}: rel L2 {rel:.2e}, max abs {np.abs(diff).max():.2e}"
