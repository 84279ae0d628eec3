#!/usr/bin/env python3
"""The GEMM's achieved share of the card's fp32 peak, from `lighthubert profile` Chrome traces.

For each trace: the linear kernels' FLOPs over their summed GPU time (all GEMMs of the
forward), and the fastest single GEMM dispatch. The fp32 peak is the CUDA device's: SMs x fp32
lanes per SM (by compute capability) x 2 x the maximum SM clock nvidia-smi reports. Without a
CUDA device (a dry run on lavapipe) the peak is unknown and only GFLOP/s are printed.

    python3 bench/gpu/gemm_peak.py OUT/profile-*.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# fp32 FMA lanes per SM by compute capability major.minor (CUDA C Programming Guide, arithmetic
# instruction throughput): 64 on GP100/GV100/GA100, 128 on the rest since Maxwell.
FP32_LANES = {(6, 0): 64, (7, 0): 64, (7, 5): 64, (8, 0): 64}


def fp32_peak_gflops() -> tuple[float | None, str]:
    try:
        import torch
        if not torch.cuda.is_available():
            return None, "no CUDA device"
        p = torch.cuda.get_device_properties(0)
        lanes = FP32_LANES.get((p.major, p.minor), 128)
        clock = subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, check=True).stdout.split()[0]
        peak = p.multi_processor_count * lanes * 2 * float(clock) / 1e3
        return peak, f"{p.name}: {p.multi_processor_count} SMs x {lanes} fp32 lanes x 2 x {clock} MHz = {peak / 1e3:.1f} TFLOP/s"
    except Exception as e:  # noqa: BLE001 - any failure means the peak is unknown
        return None, f"peak unknown ({e})"


def main() -> None:
    peak, how = fp32_peak_gflops()
    print(f"fp32 peak: {how}\n")
    print("| trace | GEMM dispatches | GEMM ms | GEMM GFLOP/s | share of peak | fastest dispatch GFLOP/s | its share |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    share = lambda g: f"{100 * g / peak:.1f}%" if peak else "-"  # noqa: E731
    for path in map(Path, sys.argv[1:]):
        events = json.loads(path.read_text())["traceEvents"]
        gemms = [e for e in events if e["name"].startswith("linear") and e["dur"] > 0]
        if not gemms:
            print(f"| {path.stem} | 0 | - | - | - | - | - |")
            continue
        flops = sum(e["args"]["flops"] for e in gemms)
        us = sum(e["dur"] for e in gemms)
        rate = flops / us / 1e3
        best = max(e["args"]["flops"] / e["dur"] / 1e3 for e in gemms)
        print(f"| {path.stem} | {len(gemms)} | {us / 1e3:.2f} | {rate:.0f} | {share(rate)} | {best:.0f} | {share(best)} |")


if __name__ == "__main__":
    main()
