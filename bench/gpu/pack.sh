#!/usr/bin/env bash
# Builds, on the development machine, everything the one-shot GPU benchmark (run.sh) needs on a
# machine with an NVIDIA GPU and no network, into bench/gpu/bundle/ and, compressed, into
# bench/gpu/bundle.tar.xz (both ignored by git):
#   bin/       lighthubert, lighthubert-bench and the end_to_end and kernels test binaries,
#              release builds, stripped
#   debs/      the Vulkan loader (libvulkan1), which such a machine may lack beside its driver
#   s3prl/     the authors' LightHuBERT package from the pinned s3prl sdist, for the PyTorch side
# The repository's working tree travels with it (fixtures, tools/bench_pytorch.py, the
# checkpoint generator); full-size checkpoints are generated on the GPU machine, not copied.
#
#   bench/gpu/pack.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/gpu/bundle
rm -rf "$out"
mkdir -p "$out/bin" "$out/debs" "$out/s3prl/s3prl/upstream"

cargo build --release -q -p lighthubert-tools -p lighthubert-bench
cp target/release/lighthubert target/release/lighthubert-bench "$out/bin/"
# The test binaries' paths, from cargo's own report of what it built.
cargo test --release -q -p kernels-tests --test end_to_end --test kernels --no-run --message-format=json \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("end_to_end", "kernels"):
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$out/bin/$name"; done
strip "$out"/bin/*

(cd "$out/debs" && apt-get download -qq libvulkan1 2>/dev/null)

root="$(python3 tools/fixtures/s3prl_source.py)"
cp -r "$root/s3prl/upstream/lighthubert" "$out/s3prl/s3prl/upstream/"
find "$out/s3prl" -name '__pycache__' -prune -exec rm -rf {} +

# One compressed file travels (stripped binaries shrink about 3x).
tar -C bench/gpu -cJf bench/gpu/bundle.tar.xz bundle
du -sh "$out" bench/gpu/bundle.tar.xz
