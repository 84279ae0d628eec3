#!/bin/sh
# Runs every fuzz target for SECONDS (default 600) each, seeded with the bad-input corpus and
# the reader fixtures; new inputs go to corpus/<target>/, crashes to artifacts/<target>/.
# Usage, from tools/fuzz: ./run_fuzz.sh [SECONDS [TARGET...]] (default: all three targets)
set -e
secs=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-checkpoint wav subnet}
fx=../../kernels-tests/fixtures
run() {
    target=$1; shift
    mkdir -p "corpus/$target"
    cargo +nightly fuzz run -O "$target" "corpus/$target" "$@" -- -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 -timeout=20
}
for t in $targets; do
    case $t in
        checkpoint) run checkpoint "$fx/bad/checkpoints" "$fx/reader" ;;
        wav) run wav "$fx/bad/audio" ;;
        subnet) run subnet "$fx/bad/subnets" seeds_subnet ;;
        *) echo "unknown target $t" >&2; exit 2 ;;
    esac
done
