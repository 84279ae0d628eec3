"""LightHuBERT on a Ray cluster, through Ray Data.

:class:`Extractor` is a callable class for ``Dataset.map_batches``: each actor loads the model
once. It turns rows with a ``path`` column (or ``audio`` and ``sample_rate``) into rows with
``features`` ([S, T, E] float32) and ``frames``; given ``out``, it writes them in the command's
layout instead and returns what it wrote.

:func:`extract_corpus` is a whole resumable run: it plans on the driver (no GPU needed), maps
the rest over actors, and records failures, so the folder is the one ``lighthubert extract``
writes, and either resumes the other::

    import ray, lighthubert.ray
    ray.init()
    lighthubert.ray.extract_corpus(files_from="train.tsv", out="feats/",
                                   checkpoint="lighthubert_small.pt", layers=[9],
                                   concurrency=8, num_gpus=1)
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from . import CorpusSummary, Failure, Layers, Model, PathLike, SubnetSpec, _lighthubert, _run_args, load_audio
from .errors import AudioError, UsageError

__all__ = ["Extractor", "extract_corpus", "plan"]


def _worker_name(prefix: str) -> str:
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return f"{prefix}-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _ray_adapter(adapter: Optional[str]) -> Optional[str]:
    """Ray hands an actor GPU ids through CUDA_VISIBLE_DEVICES, which Vulkan ignores: an actor
    given GPU k opens adapter #k unless told otherwise."""
    if adapter is not None or os.environ.get("LIGHTHUBERT_ADAPTER"):
        return adapter
    try:
        import ray

        # Outside a Ray process, any call of Ray's would start a local cluster.
        if not ray.is_initialized():
            return None
        ids = ray.get_gpu_ids()
    except Exception:  # a Ray without GPU bookkeeping here: no hint
        return None
    return f"#{int(ids[0])}" if ids else None


class Extractor:
    """A callable class for ``ray.data.Dataset.map_batches(Extractor, batch_format="numpy",
    fn_constructor_kwargs={...})``.

    Keywords: those of :class:`lighthubert.Model` (``checkpoint``, ``weights``, ``math``,
    ``adapter``, ``backend``) and of :meth:`lighthubert.Model.extract` (``subnet``, ``layers``,
    ``normalize``, ``batch_size``), plus:

    :param out: write features to ``out/<id>.<format>`` as ``lighthubert extract`` does (rows
        need ``id`` and ``path``; plan them with :func:`plan`) and return ``id``, ``output``,
        ``frames``, ``samples`` and ``error`` columns. Files that cannot be used get their
        reason in ``error``; the rest go on.
    :param format: ``"npy"`` or ``"safetensors"`` (with ``out``).
    :param dtype: ``"f32"`` or ``"f16"`` (with ``out``).
    :param on_error: without ``out``: ``"raise"`` (a bad file fails the task) or ``"skip"``
        (its row is left out of the result).
    :param worker_prefix: with ``out``: starts the name of this actor's index
        (``lighthubert-run/index-<name>.jsonl``) and temporary files. :func:`extract_corpus`
        gives each run its own, so it can remove what killed actors left behind.

    Without ``out``, rows keep their columns (``audio`` is dropped) and gain ``features``
    (one [S, T, E] float32 array each) and ``frames``.
    """

    def __init__(
        self,
        checkpoint: Optional[PathLike] = None,
        *,
        weights: str = "f32",
        math: str = "f32",
        adapter: Optional[str] = None,
        backend: Optional[str] = None,
        subnet: SubnetSpec = "default",
        layers: Layers = None,
        normalize: Optional[bool] = None,
        batch_size: int = 8,
        out: Optional[PathLike] = None,
        format: Optional[str] = None,
        dtype: str = "f32",
        on_error: str = "raise",
        worker_prefix: str = "ray",
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise UsageError(f"on_error={on_error!r}: expected 'raise' or 'skip'")
        self.model = Model(checkpoint, weights=weights, math=math, adapter=_ray_adapter(adapter), backend=backend)
        self.subnet = self.model.subnet(subnet)
        self.layers = layers
        self.normalize = normalize
        self.batch_size = batch_size
        self.on_error = on_error
        self.out = None if out is None else os.fspath(out)
        if self.out is not None:
            self._args = _run_args(
                [],
                self.out,
                files_from=None,
                subnet=self.subnet,
                layers=layers,
                normalize=normalize,
                layout="files",
                format=format,
                dtype=dtype,
                split=None,
                shard=None,
                batch_size=batch_size,
                decode_threads=None,
                force=False,
                fail_fast=False,
            )
            self._worker = _worker_name(worker_prefix)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if self.out is not None:
            return self._write(batch)
        return self._extract(batch)

    def _write(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if "id" not in batch or "path" not in batch:
            raise UsageError(
                f"Extractor(out=...) needs `id` and `path` columns (lighthubert.ray.plan makes them); got {sorted(batch)}"
            )
        rows = [(str(i), str(p)) for i, p in zip(batch["id"], batch["path"])]
        done = {r["id"]: r for r in self.model._native._write_batch(self._args, rows, self._worker)}
        results = [done.get(i) for i, _ in rows]
        return {
            "id": np.array([i for i, _ in rows], dtype=object),
            "path": np.array([p for _, p in rows], dtype=object),
            "output": np.array([str(r["output"]) if r and r["output"] else "" for r in results], dtype=object),
            "frames": np.array([r["frames"] if r else 0 for r in results], dtype=np.int64),
            "samples": np.array([r["samples"] if r else 0 for r in results], dtype=np.int64),
            "error": np.array(
                [(r["error"] or "") if r else "not run (the batch was stopped)" for r in results], dtype=object
            ),
        }

    def _waves(self, batch: Dict[str, np.ndarray]) -> Tuple[List[Optional[np.ndarray]], List[int]]:
        n = len(next(iter(batch.values()))) if batch else 0
        if "audio" in batch:
            rates = batch.get("sample_rate")
            return [np.asarray(a) for a in batch["audio"]], [int(r) for r in rates] if rates is not None else [16000] * n
        if "path" not in batch:
            raise UsageError(f"Extractor needs a `path` column, or `audio` (and `sample_rate`); got {sorted(batch)}")
        waves: List[Optional[np.ndarray]] = []
        for p in batch["path"]:
            try:
                waves.append(load_audio(str(p)))
            except AudioError:
                if self.on_error == "raise":
                    raise
                waves.append(None)
        return waves, [16000] * n

    def _extract(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        waves, rates = self._waves(batch)
        features: List[Optional[np.ndarray]] = [None] * len(waves)
        # Waveforms of one rate go together; results do not depend on the grouping.
        for rate in sorted(set(rates)):
            idx = [i for i, (w, r) in enumerate(zip(waves, rates)) if r == rate and w is not None]
            # Skipping runs waveforms one by one, so a bad one takes only itself out.
            for group in [idx] if self.on_error == "raise" else [[i] for i in idx]:
                if not group:
                    continue
                try:
                    out = self.model.extract(
                        [waves[k] for k in group],
                        subnet=self.subnet,
                        layers=self.layers,
                        normalize=self.normalize,
                        sample_rate=rate,
                        batch_size=self.batch_size,
                    )
                except AudioError:
                    if self.on_error == "raise":
                        raise
                    continue
                for k, f in zip(group, out):
                    features[k] = f
        keep = [i for i, f in enumerate(features) if f is not None]
        result = {k: np.asarray(v)[keep] for k, v in batch.items() if k != "audio"}
        column = np.empty(len(keep), dtype=object)
        for j, i in enumerate(keep):
            column[j] = features[i]
        result["features"] = column
        result["frames"] = np.array([features[i].shape[1] for i in keep], dtype=np.int64)
        return result


def plan(
    inputs: Union[PathLike, Iterable[PathLike]] = (),
    out: Optional[PathLike] = None,
    *,
    files_from: Optional[PathLike] = None,
    checkpoint: Optional[PathLike] = None,
    weights: str = "f32",
    math: str = "f32",
    subnet: SubnetSpec = "default",
    layers: Layers = None,
    normalize: Optional[bool] = None,
    format: Optional[str] = None,
    dtype: str = "f32",
    shard: Union[None, str, Tuple[int, int]] = None,
    force: bool = False,
) -> Dict[str, Any]:
    """Plans a run on the driver, as ``lighthubert extract`` would (without a GPU): checks the
    inputs, the checkpoint, the subnet and the output folder, saves the run's configuration,
    and returns ``{"todo": [{"id", "path"}...], "in_shard", "before", "shard", "config",
    "state_dir"}``. ``todo`` leaves out what earlier runs (the command's or Ray's) finished."""
    if out is None:
        raise UsageError("out: pass out=DIR")
    args = _run_args(
        inputs,
        out,
        files_from=files_from,
        subnet=subnet,
        layers=layers,
        normalize=normalize,
        layout="files",
        format=format,
        dtype=dtype,
        split=None,
        shard=shard,
        batch_size=8,
        decode_threads=None,
        force=force,
        fail_fast=False,
    )
    if not args["inputs"] and files_from is None:
        raise UsageError("inputs: no audio files or folders given")
    ckpt = None if checkpoint is None else os.fspath(checkpoint)
    p = _lighthubert._plan_corpus(ckpt, weights, math, args)
    p["todo"] = [{"id": i, "path": path} for i, path, _ in p["todo"]]
    p["shard"] = tuple(p["shard"])
    return p


def extract_corpus(
    inputs: Union[PathLike, Iterable[PathLike]] = (),
    out: Optional[PathLike] = None,
    *,
    files_from: Optional[PathLike] = None,
    checkpoint: Optional[PathLike] = None,
    weights: str = "f32",
    math: str = "f32",
    adapter: Optional[str] = None,
    backend: Optional[str] = None,
    subnet: SubnetSpec = "default",
    layers: Layers = None,
    normalize: Optional[bool] = None,
    format: Optional[str] = None,
    dtype: str = "f32",
    shard: Union[None, str, Tuple[int, int]] = None,
    force: bool = False,
    batch_size: int = 8,
    concurrency: int = 1,
    num_gpus: float = 0,
    **map_batches_args: Any,
) -> CorpusSummary:
    """A resumable corpus run on the Ray cluster ``ray.init`` connected to: the files
    ``lighthubert extract --out OUT`` writes (one per utterance), its run record, and its
    resume. ``concurrency`` actors, each with ``num_gpus`` GPUs, extract batches of
    ``batch_size`` files; an actor that dies is restarted and its batch run again (outputs are
    written atomically, so none is ever half-written). Other keywords go to ``map_batches``."""
    import time

    import ray

    started = time.monotonic()
    p = plan(
        inputs,
        out,
        files_from=files_from,
        checkpoint=checkpoint,
        weights=weights,
        math=math,
        subnet=subnet,
        layers=layers,
        normalize=normalize,
        format=format,
        dtype=dtype,
        shard=shard,
        force=force,
    )
    assert out is not None  # plan() refused it
    extracted, failures, samples = 0, [], 0
    # This run's actors are named after it, so the temporary files of any that were killed
    # can be found (and only theirs: other runs may be writing into the folder).
    run_name = f"ray{uuid.uuid4().hex[:10]}"
    if p["todo"]:
        dataset = ray.data.from_items(p["todo"])
        results = dataset.map_batches(
            Extractor,
            fn_constructor_kwargs=dict(
                checkpoint=None if checkpoint is None else os.fspath(checkpoint),
                weights=weights,
                math=math,
                adapter=adapter,
                backend=backend,
                subnet=p["config"]["subnet"],
                layers=p["config"]["layers"],
                normalize=p["config"]["normalize"],
                batch_size=batch_size,
                out=os.fspath(out),
                format=format,
                dtype=dtype,
                worker_prefix=run_name,
            ),
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=concurrency),
            num_gpus=num_gpus,
            **map_batches_args,
        )
        for row in results.iter_rows():
            if row["error"]:
                failures.append(Failure(str(row["id"]), Path(str(row["path"])), str(row["error"])))
            else:
                extracted += 1
                samples += int(row["samples"])
        _lighthubert._remove_partials(os.fspath(out), [t["id"] for t in p["todo"]], run_name + "-")
    failures_file = _lighthubert._record_failures(
        os.fspath(out), p["shard"], [(f.id, os.fspath(f.path), f.reason) for f in failures]
    )
    return CorpusSummary(
        in_shard=p["in_shard"],
        before=p["before"],
        extracted=extracted,
        failures=failures,
        audio_seconds=samples / 16000.0,
        wall_seconds=time.monotonic() - started,
        interrupted=False,
        state_dir=None if p["state_dir"] is None else Path(p["state_dir"]),
        failures_file=None if failures_file is None else Path(failures_file),
        shard=p["shard"],
    )
