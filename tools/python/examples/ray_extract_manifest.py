#!/usr/bin/env python3
"""Extract a fairseq manifest (or a file list, or folders) on a Ray cluster into the files
`lighthubert extract --out OUT` writes: OUT/<id>.npy per utterance, and OUT/lighthubert-run/
with the run's configuration, index and failures. Rerunning it (or the command) resumes.

    ray start --head                      # or connect to an existing cluster
    python ray_extract_manifest.py train.tsv feats/ --checkpoint lighthubert_small.pt \\
        --layers 9 --workers 8 --gpus-per-worker 1 --address auto

The driver plans without a GPU: it reads the manifest and the checkpoint's config, checks the
output folder and leaves out what is done. Each of the --workers Ray actors loads the model
once and writes batches; an actor that dies is restarted and its batch run again (every output
is written atomically, so none is half-written).
"""

from __future__ import annotations

import argparse
import sys
import time

import ray

import lighthubert
import lighthubert.ray


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="a manifest or file list (.tsv, .txt), or audio files and folders")
    p.add_argument("out", help="output folder")
    p.add_argument("--checkpoint", help="LightHuBERT checkpoint (.pt); default: the bundled demo (random weights)")
    p.add_argument("--subnet", default="default", help="default, min, max, random:SEED or a JSON file")
    p.add_argument("--layers", default="all", help="as the command's --layers: all, last, 0,6,-1, 3-6")
    p.add_argument("--format", choices=["npy", "safetensors"], default=None)
    p.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    p.add_argument("--weights", choices=["f32", "f16"], default="f32")
    p.add_argument("--workers", type=int, default=2, help="Ray actors, each with its own model")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs Ray reserves per actor")
    p.add_argument("--batch-size", type=int, default=8, help="files per batch")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    p.add_argument("--force", action="store_true", help="start over instead of resuming")
    args = p.parse_args(argv)

    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    lists = [x for x in args.inputs if x.endswith((".tsv", ".txt", ".lst"))]
    others = [x for x in args.inputs if x not in lists]
    if len(lists) > 1:
        p.error("give one manifest or list")
    started = time.monotonic()
    try:
        summary = lighthubert.ray.extract_corpus(
            others,
            args.out,
            files_from=lists[0] if lists else None,
            checkpoint=args.checkpoint,
            weights=args.weights,
            subnet=args.subnet,
            layers=args.layers,
            format=args.format,
            dtype=args.dtype,
            force=args.force,
            batch_size=args.batch_size,
            concurrency=args.workers,
            num_gpus=args.gpus_per_worker,
        )
    except lighthubert.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{summary.extracted} extracted, {summary.before} done before, {len(summary.failures)} failed, "
        f"of {summary.in_shard}; {summary.audio_seconds:.1f} s of audio in {time.monotonic() - started:.1f} s "
        f"on {args.workers} workers"
    )
    for f in summary.failures:
        print(f"failed: {f.path}: {f.reason}", file=sys.stderr)
    if summary.failures_file:
        print(f"failures listed in {summary.failures_file}; rerunning tries them again", file=sys.stderr)
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
