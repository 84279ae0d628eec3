#!/usr/bin/env bash
# The one-shot GPU benchmark: run on a machine with an NVIDIA GPU, PyTorch with CUDA and no
# network, from the repository root, after bench/gpu/pack.sh made bench/gpu/bundle/ on the
# development machine. Everything lands in OUT (then copy it into bench/results/):
#   adapter.txt       nvidia-smi, the adapters wgpu sees, the one used
#   fidelity-*.log    every end-to-end fixture and every kernel form on this GPU, both kernel
#                     families, every precision (the kernels-tests binaries)
#   *-forms.md/jsonl  every kernel form timed on the shapes of a forward pass (which wins where)
#   *.md, *.jsonl     lighthubert-bench: small default/min, base default/max at 1, 4, 10, 30 s,
#                     beside the authors' PyTorch on CUDA in fp32 (the ratio), TF32 and fp16 autocast;
#                     then ours with f16 weights in f16 and f16-matrix arithmetic
#   profile-*.md/json lighthubert profile tables and Chrome traces (matrix-profile-*: on
#                     matrix units, --math f16-matrix)
#   gemm.md           the GEMM's achieved share of the card's fp32 peak
#   gemm-tuning.json  the GEMM tile line the engine measured at load, with its timings
#   run.log           this script's own log
# Budget: under 8 minutes on an H100/H200. GPU_BUDGET_S (default 480) bounds it: a step that
# would start with less time left than it needs is skipped and says so, so that the script
# ends, and its results can be packed, before the machine's limit. `--dry-run` runs the same
# steps on this machine's adapter (lavapipe) and CPU PyTorch, shortened, so that only the GPU
# is new on the GPU machine.
#
#   bench/gpu/run.sh OUT              # on the GPU machine
#   bench/gpu/run.sh --dry-run OUT    # here
set -uo pipefail
dry=0
[ "${1:-}" = "--dry-run" ] && { dry=1; shift; }
OUT="${1:?usage: bench/gpu/run.sh [--dry-run] OUT}"
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
exec > >(tee -a "$OUT/run.log") 2>&1
bundle=bench/gpu/bundle
bin="$bundle/bin"
PYTHON="${PYTHON:-python3}"
export LIGHTHUBERT_REPO="$PWD" S3PRL_SRC="$PWD/$bundle/s3prl" PYTHONUNBUFFERED=1
step() { echo; echo "== $* ($(date -u +%H:%M:%S), ${SECONDS} s in)"; }
budget="${GPU_BUDGET_S:-480}"
# time_for NAME SECONDS: whether NAME, which needs about SECONDS, still fits in the budget.
time_for() {
    (( SECONDS + $2 <= budget )) && return 0
    echo "skipped: $1 (needs about $2 s, $(( budget - SECONDS )) s of GPU_BUDGET_S=$budget left)"
    return 1
}
[ -x "$bin/lighthubert" ] || [ ! -f bench/gpu/bundle.tar.xz ] || tar -C bench/gpu -xJf bench/gpu/bundle.tar.xz
[ -x "$bin/lighthubert" ] || { echo "no $bin: run bench/gpu/pack.sh on the development machine first"; exit 1; }

if [ $dry = 0 ]; then
    step "Vulkan loader"
    if ! ldconfig -p | grep -q libvulkan.so.1; then
        for f in "$bundle"/debs/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
    seconds=1,4,10,30; runs=5; device=cuda; precisions=fp32,tf32,fp16-autocast
    cases=("small small:default,small:min" "base base:default,base:max")
else
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
    seconds=1,4; runs=2; device=cpu; precisions=fp32
    cases=("small small:default,small:min")
fi

step "adapter"
{
    command -v nvidia-smi >/dev/null && nvidia-smi
    "$bin/lighthubert" adapters
    dpkg-query -W -f='mesa-vulkan-drivers ${Version}\n' mesa-vulkan-drivers 2>/dev/null
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")'
} 2>&1 | tee "$OUT/adapter.txt"

step "fidelity: every end-to-end fixture and kernel form on this adapter"
for t in end_to_end kernels; do
    "$bin/$t" --test-threads 1 --nocapture 2>&1 | tee "$OUT/fidelity-$t.log" | grep -E "^adapter|test result|FAILED|panicked"
done

step "every kernel form on the shapes of a forward pass"
time_for "the forms table" 60 && "$bin/lighthubert-bench" forms --seconds "$seconds" --runs $runs --out-dir "$OUT" | tail -n 3

step "full-size checkpoints (random weights, the authors' class)"
ckpts="$(mktemp -d)"
for c in "${cases[@]}"; do
    space="${c%% *}"
    "$PYTHON" tools/fixtures/gen_full_checkpoint.py "$ckpts/$space.pt" --space "$space" || exit 1
done

step "lighthubert-bench beside PyTorch"
for c in "${cases[@]}"; do
    space="${c%% *}"; subnets="${c#* }"
    "$bin/lighthubert-bench" --checkpoint "$ckpts/$space.pt" --subnets "$subnets" --seconds "$seconds" \
        --runs $runs --random 0 --no-dense --out-dir "$OUT" \
        --with-pytorch --python "$PYTHON" --pytorch-device $device --pytorch-precision $precisions
done

step "profiles"
for c in "${cases[@]}"; do
    space="${c%% *}"
    for preset in default max; do
        for s in ${seconds//,/ }; do
            name="profile-$space-$preset-${s}s"
            time_for "$name" 15 || continue
            "$bin/lighthubert" profile --checkpoint "$ckpts/$space.pt" --subnet $preset --seconds "$s" \
                --trace "$OUT/$name.json" --force > "$OUT/$name.md" 2>&1 || echo "$name failed"
        done
    done
    # The longest input on matrix units, for the GEMM's time there (not in gemm.md: its peak
    # is fp32's).
    s="${seconds##*,}"; name="matrix-profile-$space-max-${s}s"
    if time_for "$name" 15; then
        "$bin/lighthubert" profile --checkpoint "$ckpts/$space.pt" --subnet max --seconds "$s" --weights f16 --math f16-matrix \
            --trace "$OUT/$name.json" --force > "$OUT/$name.md" 2>&1 || echo "$name refused or failed (see $name.md)"
    fi
done

step "the GEMM against the card's fp32 peak"
"$PYTHON" bench/gpu/gemm_peak.py "$OUT"/profile-*.json | tee "$OUT/gemm.md"

step "f16 arithmetic: staged tiles (f16) and matrix units (f16-matrix, refused where absent)"
for math in f16 f16-matrix; do
    for c in "${cases[@]}"; do
        space="${c%% *}"; subnets="${c#* }"
        time_for "--math $math on $space" 45 || continue
        "$bin/lighthubert-bench" --checkpoint "$ckpts/$space.pt" --subnets "$subnets" --seconds "$seconds" \
            --runs $runs --random 0 --no-dense --no-switch --out-dir "$OUT" --weights f16 --math $math \
            || echo "lighthubert-bench --math $math: refused or failed (above)"
    done
done

tuning="${XDG_CACHE_HOME:-$HOME/.cache}/lighthubert/gemm-tuning.json"
[ -f "$tuning" ] && cp "$tuning" "$OUT/gemm-tuning.json"

rm -rf "$ckpts"
step "done: $OUT"
ls -la "$OUT"
