"""LightHuBERT, the once-for-all HuBERT, on any GPU wgpu reaches (Vulkan, Metal, DX12, GL).

>>> import lighthubert
>>> model = lighthubert.Model("lighthubert_small.pt")
>>> feats = model.extract([lighthubert.load_audio("a.flac")], layers=[-1])   # [S, T, E] each
>>> out = model([wave_a, wave_b])        # s3prl's shape: {"hidden_states": [...], "lengths": ...}

The native module (:mod:`lighthubert._lighthubert`) is the same Rust engine and corpus pipeline
as the ``lighthubert`` command; this layer converts arguments and documents them.
"""

from __future__ import annotations

import json
import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lighthubert
from ._lighthubert import Subnet, __version__
from .errors import (
    AudioError,
    CheckpointError,
    DeviceError,
    Error,
    InputError,
    OutputError,
    SubnetError,
    UsageError,
)

__all__ = [
    "Model",
    "Subnet",
    "CorpusSummary",
    "Failure",
    "load_audio",
    "list_adapters",
    "Error",
    "CheckpointError",
    "AudioError",
    "SubnetError",
    "DeviceError",
    "InputError",
    "OutputError",
    "UsageError",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]
SubnetSpec = Union[str, "os.PathLike[str]", Mapping[str, Any], Subnet]
Layers = Union[None, str, int, Sequence[int]]


def load_audio(path: PathLike) -> np.ndarray:
    """Reads an audio file as the ``lighthubert`` command does: WAV, FLAC, Ogg Vorbis or MP3,
    channels averaged to mono, resampled to 16 kHz. Returns float32 samples.

    Raises :class:`AudioError` for a file that is unreadable, damaged or truncated."""
    return _lighthubert.load_audio(os.fspath(path))


def list_adapters(backend: Optional[str] = None) -> List[str]:
    """The GPU adapters wgpu finds, numbered as ``Model(adapter="#N")`` counts them."""
    return _lighthubert.list_adapters(backend)


@dataclass(frozen=True)
class Failure:
    """A file a corpus run could not use."""

    id: str
    path: Path
    reason: str


@dataclass(frozen=True)
class CorpusSummary:
    """What a corpus run did. Rerunning the same call resumes: it skips what is done and
    tries the failures again."""

    in_shard: int
    """Utterances in this shard."""
    before: int
    """Done by earlier runs, skipped."""
    extracted: int
    """Extracted by this run."""
    failures: List[Failure]
    audio_seconds: float
    wall_seconds: float
    interrupted: bool
    state_dir: Optional[Path]
    """The run's ``lighthubert-run/`` folder (configuration, index, failures)."""
    failures_file: Optional[Path]
    shard: Tuple[int, int] = (0, 1)

    @property
    def complete(self) -> bool:
        """Every utterance of the shard has its output."""
        return self.before + self.extracted == self.in_shard

    @classmethod
    def _from_native(cls, d: Dict[str, Any]) -> "CorpusSummary":
        def path(p: Optional[str]) -> Optional[Path]:
            return None if p is None else Path(p)

        return cls(
            in_shard=d["in_shard"],
            before=d["before"],
            extracted=d["extracted"],
            failures=[Failure(i, Path(p), r) for i, p, r in d["failures"]],
            audio_seconds=d["audio_seconds"],
            wall_seconds=d["wall_seconds"],
            interrupted=d["interrupted"],
            state_dir=path(d["state_dir"]),
            failures_file=path(d["failures_file"]),
            shard=tuple(d["shard"]),
        )


def _waveforms(waves: Any) -> Tuple[List[np.ndarray], bool]:
    """Contiguous float32 1-D arrays, and whether one waveform (not a list) was given."""
    if isinstance(waves, (list, tuple)):
        items, single = list(waves), False
    else:
        array = np.asarray(waves)
        if array.ndim == 1:
            items, single = [array], True
        elif array.ndim == 2:
            items, single = list(array), False
        else:
            raise UsageError(
                f"waves: an array of shape {array.shape}; expected one waveform (1-D), a batch "
                "[B, samples] (2-D) or a list of 1-D waveforms"
            )
    out = []
    for i, w in enumerate(items):
        a = np.asarray(w)
        if a.ndim != 1:
            raise UsageError(f"waveform {i}: shape {a.shape}; expected 1-D mono samples (average the channels first)")
        if a.dtype.kind != "f":
            hint = " (divide integer PCM by its full scale, e.g. 32768 for int16)" if a.dtype.kind in "iu" else ""
            raise UsageError(f"waveform {i}: dtype {a.dtype}; expected float32 or float64 samples{hint}")
        out.append(np.ascontiguousarray(a, dtype=np.float32))
    return out, single


def _layer_spec(layers: Layers) -> str:
    """The command's ``--layers`` text for ``layers``."""
    if layers is None:
        return "all"
    if isinstance(layers, str):
        return layers
    if isinstance(layers, bool):
        raise UsageError(f"layers={layers!r}: expected None, an index, a list of indices or a string such as '0,6,last'")
    if isinstance(layers, numbers.Integral):
        return str(int(layers))
    try:
        items = list(layers)
    except TypeError:
        raise UsageError(f"layers={layers!r}: expected None, an index, a list of indices or a string such as '0,6,last'") from None
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise UsageError(f"layers={layers!r}: {item!r} is not an index")
    if not items:
        raise UsageError("layers=[]: name at least one hidden state (None means all)")
    return ",".join(str(int(i)) for i in items)


def _subnet_text(subnet: SubnetSpec) -> str:
    """The command's ``--subnet`` text for ``subnet`` (a preset, a file, or JSON)."""
    if isinstance(subnet, Subnet):
        return subnet.to_json()
    if isinstance(subnet, Mapping):
        return json.dumps(dict(subnet))
    if isinstance(subnet, (str, os.PathLike)):
        return os.fspath(subnet)
    raise UsageError(
        f"subnet={subnet!r}: expected a preset name ('default', 'min', 'max', 'random:SEED'), "
        "a JSON file, a dict in the authors' format, or a Subnet"
    )


def _shard_text(shard: Union[None, str, Tuple[int, int]]) -> Optional[str]:
    if shard is None or isinstance(shard, str):
        return shard
    try:
        index, count = shard
    except (TypeError, ValueError):
        raise UsageError(f"shard={shard!r}: expected 'I/N' or a pair (I, N)") from None
    return f"{int(index)}/{int(count)}"


def _run_args(
    inputs: Union[PathLike, Iterable[PathLike]],
    out: PathLike,
    *,
    files_from: Optional[PathLike],
    subnet: SubnetSpec,
    layers: Layers,
    normalize: Optional[bool],
    layout: str,
    format: Optional[str],
    dtype: str,
    split: Optional[str],
    shard: Union[None, str, Tuple[int, int]],
    batch_size: int,
    decode_threads: Optional[int],
    force: bool,
    fail_fast: bool,
) -> Dict[str, Any]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return dict(
        inputs=[os.fspath(p) for p in inputs],
        out=os.fspath(out),
        files_from=None if files_from is None else os.fspath(files_from),
        subnet=_subnet_text(subnet),
        layers=_layer_spec(layers),
        normalize=normalize,
        layout=layout,
        format=format,
        dtype=dtype,
        split=split,
        shard=_shard_text(shard),
        batch_size=int(batch_size),
        decode_threads=None if decode_threads is None else int(decode_threads),
        force=bool(force),
        fail_fast=bool(fail_fast),
    )


class Model:
    """A LightHuBERT checkpoint on the GPU: any subnet of it runs without re-uploading weights.

    :param checkpoint: a released ``.pt`` file (``lighthubert_small.pt``, ``lighthubert_base.pt``,
        ``lighthubert_stage1.pt``), or one subnet written by ``lighthubert export``
        (``.safetensors``; every preset names that subnet). ``None`` loads the bundled demo
        checkpoint, whose weights are RANDOM: it shows the engine running, its features mean
        nothing.
    :param weights: ``"f32"`` or ``"f16"``: how weight matrices are stored on the GPU.
    :param math: ``"f32"``, ``"f16"`` or ``"f16-matrix"``: the GEMMs' arithmetic (f16 needs
        SHADER_F16; f16-matrix needs matrix units, e.g. NVIDIA tensor cores through Vulkan).
    :param adapter: ``"#N"`` (the N-th of :func:`list_adapters`) or part of an adapter's name;
        default ``LIGHTHUBERT_ADAPTER``, else the first.
    :param backend: ``"vulkan"``, ``"metal"``, ``"dx12"`` or ``"gl"``; default ``WGPU_BACKEND``.

    Methods release the GIL while the GPU works: several threads may share one model.
    """

    def __init__(
        self,
        checkpoint: Optional[PathLike] = None,
        *,
        weights: str = "f32",
        math: str = "f32",
        adapter: Optional[str] = None,
        backend: Optional[str] = None,
    ) -> None:
        if checkpoint is None:
            warnings.warn(
                "lighthubert.Model(): no checkpoint, so the bundled demo checkpoint with RANDOM "
                "weights; its features mean nothing (pass lighthubert_small.pt or another released file)",
                UserWarning,
                stacklevel=2,
            )
        path = None if checkpoint is None else os.fspath(checkpoint)
        self._native = _lighthubert.Model(path, weights=weights, math=math, adapter=adapter, backend=backend)

    @property
    def info(self) -> Dict[str, Any]:
        """The checkpoint, its config, search space, presets with parameter counts, the adapter
        and the precision, as a dict. For a file written by ``lighthubert export``,
        ``info["exported_subnet"]`` is the one subnet it holds (every preset names it) and
        ``info["checkpoint"]["origin"]`` the checkpoint it was cut from; both are None for a
        checkpoint."""
        return self._native.info

    @property
    def adapter(self) -> str:
        return self._native.adapter

    @property
    def checkpoint(self) -> Optional[Path]:
        p = self._native.checkpoint
        return None if p is None else Path(p)

    @property
    def default_normalize(self) -> bool:
        """What ``normalize=None`` means: the checkpoint's ``cfg.task.normalize``, else False."""
        return self._native.default_normalize

    @property
    def sample_rate(self) -> int:
        return 16000

    def subnet(self, spec: SubnetSpec = "default") -> Subnet:
        """A subnet of this checkpoint: ``"default"``, ``"min"``, ``"max"``, ``"random:SEED"``, a
        JSON file or a dict in the authors' format, or a :class:`Subnet`. Raises
        :class:`SubnetError` when it is not in the checkpoint's search space."""
        return self._native.subnet(_subnet_text(spec))

    def extract(
        self,
        waves: Any,
        subnet: SubnetSpec = "default",
        layers: Layers = None,
        normalize: Optional[bool] = None,
        sample_rate: int = 16000,
        batch_size: int = 8,
    ) -> Union[np.ndarray, List[np.ndarray]]:
        """Hidden states of each waveform.

        :param waves: a list of 1-D float arrays (anything with ``__array__``, such as CPU torch
            tensors), a [B, samples] array, or one 1-D waveform.
        :param subnet: see :meth:`subnet`.
        :param layers: ``None`` for all hidden states; an index or list of indices (0 is the
            ``post_extract_proj`` output, i the i-th kept layer's; negative counts from the end);
            or the command's text (``"0,6,last"``, ``"3-6"``).
        :param normalize: s3prl's per-waveform normalisation; ``None`` follows the checkpoint.
        :param sample_rate: the waveforms' rate; others than 16000 are resampled as the command
            resamples files.
        :param batch_size: waveforms per GPU batch (sorted by length first); results do not
            depend on it.
        :returns: one float32 array [S, T, E] per waveform (S states, T frames at 50 per
            second, E channels); a single array for a single 1-D waveform.
        """
        arrays, single = _waveforms(waves)
        sub = subnet if isinstance(subnet, Subnet) else self.subnet(subnet)
        feats = self._native._extract(arrays, sub, _layer_spec(layers), normalize, int(sample_rate), int(batch_size))
        return feats[0] if single else feats

    def __call__(
        self,
        wavs: Any,
        wavs_len: Optional[Sequence[int]] = None,
        subnet: SubnetSpec = "default",
        layers: Layers = None,
        normalize: Optional[bool] = True,
        sample_rate: int = 16000,
        batch_size: int = 8,
    ) -> Dict[str, Any]:
        """s3prl's upstream call: ``{"hidden_states": [B, T_max, E] float32 array per state,
        zero-padded past each utterance's frames, "lengths": [B] int64 frames}``.

        ``wavs`` is a list of waveforms, or, with ``wavs_len`` (as ``S3PRLUpstream`` takes them),
        a zero-padded [B, samples] batch whose row i holds ``wavs_len[i]`` samples.

        As s3prl's LightHuBERT upstream, it normalises each waveform by default and runs the
        checkpoint's default subnet (``max`` for stage-1 checkpoints). Unlike it, each
        utterance's features do not depend on what else is in the batch."""
        arrays, _ = _waveforms(wavs)
        if wavs_len is not None:
            lens = [int(n) for n in np.asarray(wavs_len).reshape(-1)]
            if len(lens) != len(arrays) or any(n < 0 or n > len(a) for n, a in zip(lens, arrays)):
                raise UsageError(
                    f"wavs_len: {len(lens)} lengths for {len(arrays)} waveforms of {[len(a) for a in arrays]} samples"
                )
            arrays = [a[:n] for a, n in zip(arrays, lens)]
        sub = subnet if isinstance(subnet, Subnet) else self.subnet(subnet)
        states, lengths = self._native._padded(arrays, sub, _layer_spec(layers), normalize, int(sample_rate), int(batch_size))
        return {"hidden_states": states, "lengths": lengths}

    def extract_corpus(
        self,
        inputs: Union[PathLike, Iterable[PathLike]] = (),
        out: Optional[PathLike] = None,
        *,
        files_from: Optional[PathLike] = None,
        subnet: SubnetSpec = "default",
        layers: Layers = None,
        normalize: Optional[bool] = None,
        layout: str = "files",
        format: Optional[str] = None,
        dtype: str = "f32",
        split: Optional[str] = None,
        shard: Union[None, str, Tuple[int, int]] = None,
        batch_size: int = 8,
        decode_threads: Optional[int] = None,
        force: bool = False,
        fail_fast: bool = False,
        progress: Optional[Callable[[Dict[str, Any]], None]] = None,
    ) -> CorpusSummary:
        """``lighthubert extract`` from Python: the same inputs, layouts, shards, run record and
        resume, and the same files (a run started here resumes with the command, and back).

        :param inputs: audio files and folders (searched recursively).
        :param out: the output folder, or a ``.npy``/``.safetensors`` file for one input.
        :param files_from: a file list or fairseq manifest.
        :param layout: ``"files"`` (``out/<id>.npy``) or ``"fairseq"`` (one layer;
            ``<split>_<I>_<N>.npy`` and ``.len``).
        :param format: ``"npy"`` or ``"safetensors"``; default from ``out``, else npy.
        :param dtype: ``"f32"`` or ``"f16"`` on disk.
        :param shard: ``"I/N"`` or ``(I, N)``; default: a Slurm array's or torchrun's, else all.
        :param force: start over instead of resuming.
        :param fail_fast: stop at the first unusable file instead of recording it.
        :param progress: called with a dict (id, path, output, frames, samples, error) per file;
            an exception it raises stops the run.

        Files that fail are listed in ``failures`` (and the run's failures file) and tried again
        by the next run. Ctrl-C stops after the batch in flight, with every output complete,
        and raises KeyboardInterrupt.
        """
        if out is None:
            raise UsageError("out: where should the features go? pass out=DIR (or a .npy/.safetensors file for one input)")
        args = _run_args(
            inputs,
            out,
            files_from=files_from,
            subnet=subnet,
            layers=layers,
            normalize=normalize,
            layout=layout,
            format=format,
            dtype=dtype,
            split=split,
            shard=shard,
            batch_size=batch_size,
            decode_threads=decode_threads,
            force=force,
            fail_fast=fail_fast,
        )
        if not args["inputs"] and files_from is None:
            raise UsageError("inputs: no audio files or folders given")
        return CorpusSummary._from_native(self._native._extract_corpus(args, progress))

    def __repr__(self) -> str:
        return repr(self._native)
