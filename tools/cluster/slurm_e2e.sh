#!/usr/bin/env bash
# End-to-end test of tools/cluster/extract_array.sbatch on a real Slurm cluster. As root on a
# Debian-like machine it starts a single-node cluster (slurmctld, slurmd, munged), generates a
# small corpus and checks that
#   1. a 3-task array writes exactly the files of one uninterrupted local run, byte for byte,
#      and its three index files partition the utterances;
#   2. `scancel` of one task mid-run stops it cleanly (SIGTERM reaches the program, which
#      exits 143 leaving no partial file), and resubmitting the same array does only the rest:
#      the finished tasks extract nothing, the cancelled one what it had not done, and the
#      outputs again equal the local run's byte for byte.
# On exit, failed or not, it cancels its jobs, stops the daemons it started and restores
# /etc/slurm/slurm.conf, so it can run again at once.
#
#   bash tools/cluster/slurm_e2e.sh
#
# LIGHTHUBERT_BIN: the program (default target/debug/lighthubert, built when missing).
# KEEP=1 keeps the work folder (it is kept anyway on failure).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
SBATCH_SCRIPT=$REPO/tools/cluster/extract_array.sbatch
export PATH=$PATH:/usr/sbin:/sbin
T0=$SECONDS

say() { printf '[slurm-e2e %3ds] %s\n' $((SECONDS - T0)) "$*"; }
FAILED=()
# check DESCRIPTION COMMAND...: runs the command, records a failure, goes on.
check() {
    if "${@:2}"; then say "ok: $1"; else say "FAIL: $1"; FAILED+=("$1"); fi
}
# die MESSAGE: a failure the rest cannot go on from.
die() {
    say "FAIL: $*"
    FAILED+=("$*")
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root: it installs and starts Slurm daemons"

# --- packages ------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in slurmctld slurmd slurm-client munge; do installed "$p" || missing+=("$p"); done
command -v python3 >/dev/null || missing+=(python3)
command -v pgrep >/dev/null || missing+=(procps)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
for d in slurmctld slurmd; do
    if pid=$(pgrep -x "$d"); then
        die "a $d is already running (pid $pid); this test starts its own single-node cluster"
    fi
done
# Nothing from an enclosing job or launcher may choose the shard for the local run.
for v in $(compgen -e); do
    case $v in SLURM_* | RANK | WORLD_SIZE | LOCAL_RANK) unset "$v" ;; esac
done

WORK=$(mktemp -d /tmp/lighthubert-slurm-e2e.XXXXXX)
STATE=$WORK/slurm
LOGS=$WORK/logs
mkdir -p "$STATE/ctld" "$STATE/d" "$LOGS"
CONF=/etc/slurm/slurm.conf
CONF_WRITTEN=""
MUNGED_PID=""
JOBS=()

cleanup() {
    local rc=$?
    set +e
    [ ${#JOBS[@]} -gt 0 ] && scancel "${JOBS[@]}" 2>/dev/null
    for d in slurmd slurmctld; do
        local pidfile=$STATE/$d.pid pid
        [ -s "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    done
    if [ -n "$MUNGED_PID" ]; then
        kill "$MUNGED_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$MUNGED_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    if [ -n "$CONF_WRITTEN" ]; then
        if [ -f "$WORK/slurm.conf.orig" ]; then cp -p "$WORK/slurm.conf.orig" "$CONF"; else rm -f "$CONF"; fi
    fi
    if [ "$rc" -eq 0 ] && [ ${#FAILED[@]} -eq 0 ]; then
        [ "${KEEP:-}" = 1 ] && say "work folder kept: $WORK" || rm -rf "$WORK"
        say "PASS: Slurm array extraction, cancel and resume ($((SECONDS - T0)) s)"
        exit 0
    fi
    say "work folder kept: $WORK (job logs in $LOGS, daemon logs in $STATE)"
    if [ ${#FAILED[@]} -eq 0 ]; then
        say "FAIL: stopped by an unexpected error (exit $rc), see above"
    else
        say "FAIL (${#FAILED[@]} check(s) failed):"
        for f in "${FAILED[@]}"; do say "  - $f"; done
    fi
    exit 1
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the program, a corpus and the reference run ---------------------------------------------
BIN=${LIGHTHUBERT_BIN:-target/debug/lighthubert}
if [ ! -x "$BIN" ]; then
    [ -z "${LIGHTHUBERT_BIN:-}" ] || die "LIGHTHUBERT_BIN=$LIGHTHUBERT_BIN is not an executable"
    say "building $BIN"
    cargo build -q -p lighthubert-tools
fi
BIN=$(realpath "$BIN")
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
    export XDG_RUNTIME_DIR=$WORK/runtime
    mkdir -m 700 "$XDG_RUNTIME_DIR"
fi

# 24 WAVs of 0.4 to 1.6 s (tone plus noise, 16 kHz, 16-bit) in nested folders.
CORPUS=$WORK/corpus
python3 - "$CORPUS" <<'EOF'
import math, os, random, struct, sys, wave
root, rng = sys.argv[1], random.Random(1234)
folders = ["spk1/ch1", "spk1/ch2", "spk2", "spk3/a/b"]
for i in range(24):
    folder = os.path.join(root, folders[i % len(folders)])
    os.makedirs(folder, exist_ok=True)
    n, f0 = int(16000 * (0.4 + 1.2 * i / 23)), 100 + 17 * i
    x = (0.3 * math.sin(2 * math.pi * f0 * t / 16000) + 0.05 * (rng.random() - 0.5) for t in range(n))
    with wave.open(os.path.join(folder, f"utt{i:02d}.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(b"".join(struct.pack("<h", round(v * 32767)) for v in x))
EOF
# --batch-size 1 so that a task takes long enough to be cancelled halfway.
EXTRA=(--batch-size 1)
REF=$WORK/out-ref
say "reference: one local run over $(find "$CORPUS" -name '*.wav' | wc -l) files"
"$BIN" extract "$CORPUS" --out "$REF" "${EXTRA[@]}" >"$LOGS/ref.log" 2>&1 || {
    cat "$LOGS/ref.log"
    die "the local reference run failed"
}

# --- a single-node Slurm cluster -----------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    # As its own user, as the package's service runs it (as root it needs --force and warns).
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown -R munge:munge /run/munge /var/lib/munge /var/log/munge
    runuser -u munge -- munged
    MUNGED_PID=$(cat /run/munge/munged.pid)
    munge -n </dev/null | unmunge >/dev/null || die "munged does not answer"
fi

HOST=$(hostname -s)
MEM=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo) # free -m's total
REAL_MEMORY=$((MEM * 9 / 10 < 8000 ? MEM * 9 / 10 : 8000))
mkdir -p /etc/slurm
[ -f "$CONF" ] && cp -p "$CONF" "$WORK/slurm.conf.orig"
CONF_WRITTEN=1
# Addresses are 127.0.0.1 so that the test does not depend on the host name resolving.
cat >"$CONF" <<EOF
# Written by tools/cluster/slurm_e2e.sh for one test run; restored when it ends.
ClusterName=lighthubert-e2e
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=2 RealMemory=$REAL_MEMORY State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -c
slurmd -c
for i in $(seq 90); do
    [ "$(sinfo -h -n "$HOST" -o %T 2>/dev/null)" = idle ] && break
    if [ "$i" -eq 90 ]; then
        sinfo 2>&1 || true
        tail -n 30 "$STATE/slurmctld.log" "$STATE/slurmd.log" 2>&1 || true
        die "node $HOST not idle after 90 s"
    fi
    sleep 1
done
say "cluster up: node $HOST idle"

# --- helpers -------------------------------------------------------------------------------
# submit OUT: the 3-task array into OUT, as a user would; sets JOB to its id.
submit() {
    JOB=$(sbatch --parsable --array=0-2 --chdir="$WORK" --output="$LOGS/%A_%a.out" \
        --export=ALL,LIGHTHUBERT="$BIN" "$SBATCH_SCRIPT" "$CORPUS" "$1" "${EXTRA[@]}")
    JOB=${JOB%%;*}
    JOBS+=("$JOB")
}
# wait_job ID: until no task of the array is pending or running (at most 180 s).
wait_job() {
    local end=$((SECONDS + 180))
    while [ -n "$(squeue -h -j "$1" 2>/dev/null)" ]; do
        [ $SECONDS -lt $end ] || die "job $1 still in the queue after 180 s"
        sleep 0.5
    done
}
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
features() { (cd "$1" && find . -path ./lighthubert-run -prune -o -type f -print | LC_ALL=C sort); }
# same_as_ref OUT: the same files as the reference run, byte for byte.
same_as_ref() {
    diff <(features "$REF") <(features "$1") >&2 || return 1
    local f
    while read -r f; do
        cmp "$REF/$f" "$1/$f" >&2 || return 1
    done < <(features "$REF")
}
ids() {
    python3 -c 'import json, sys
for f in sys.argv[1:]:
    for l in open(f):
        if l.strip(): print(json.loads(l)["id"])' "$@" | LC_ALL=C sort
}
# partition OUT: the ids of index-{0,1,2}-of-3 are the reference's, each once, none empty.
partition() {
    local run=$1/lighthubert-run i
    for i in 0 1 2; do [ -s "$run/index-$i-of-3.jsonl" ] || return 1; done
    diff <(ids "$REF/lighthubert-run/index-0-of-1.jsonl") \
        <(ids "$run/index-0-of-3.jsonl" "$run/index-1-of-3.jsonl" "$run/index-2-of-3.jsonl") >&2
}
no_partial() { [ -z "$(find "$1" -name '*.partial' -print -quit)" ]; }
in_log() { grep -q -e "$2" "$LOGS/$1.out"; }
show_log() { sed 's/^/    | /' "$LOGS/$1.out"; }

# --- 1. the whole array --------------------------------------------------------------------
OUT1=$WORK/out-array
submit "$OUT1"
JOB1=$JOB
say "array $JOB1: 3 tasks into $OUT1"
wait_job "$JOB1"
for t in 0 1 2; do
    check "task $t took shard $t/3 from the array variables" in_log "${JOB1}_$t" "shard $t/3 from the Slurm job array"
    check "task $t finished with no failure" in_log "${JOB1}_$t" "done: .* 0 failed"
done
check "array outputs equal the local run's byte for byte" same_as_ref "$OUT1"
check "the 3 index files partition the utterances" partition "$OUT1"
N0=$(lines "$OUT1/lighthubert-run/index-0-of-3.jsonl")
N1=$(lines "$OUT1/lighthubert-run/index-1-of-3.jsonl")
N2=$(lines "$OUT1/lighthubert-run/index-2-of-3.jsonl")
say "shard sizes: $N0 $N1 $N2"

# --- 2. scancel one task halfway, then resubmit --------------------------------------------
OUT2=$WORK/out-cancel
IDX1=$OUT2/lighthubert-run/index-1-of-3.jsonl
submit "$OUT2"
JOB2=$JOB
say "array $JOB2 into $OUT2: cancelling task 1 once it has done 2 files"
end=$((SECONDS + 120))
until [ "$(lines "$IDX1")" -ge 2 ]; do
    [ $SECONDS -lt $end ] || die "task 1 of $JOB2 did not get 2 files done in 120 s"
    sleep 0.05
done
AT_CANCEL=$(lines "$IDX1")
[ "$AT_CANCEL" -lt "$N1" ] || die "task 1 was done ($AT_CANCEL of $N1 files) before it could be cancelled"
scancel "${JOB2}_1"
wait_job "$JOB2"
K=$(lines "$IDX1")
say "task 1 had $AT_CANCEL of $N1 files done at scancel, $K when it stopped"
show_log "${JOB2}_1"
check "the cancelled task's program got SIGTERM and stopped cleanly" in_log "${JOB2}_1" "interrupted by SIGTERM: $K of $N1 file(s) done"
state=$(scontrol -o show job "${JOB2}_1" 2>/dev/null || true)
if [ -n "$state" ]; then
    say "slurm says: $(grep -o 'JobState=[^ ]*\|ExitCode=[^ ]*' <<<"$state" | tr '\n' ' ')"
    check "the cancelled task exited 143 (ExitCode=143:0, CANCELLED)" \
        grep -q 'JobState=CANCELLED .*ExitCode=143:0' <<<"$state"
fi
check "the cancelled task stopped before the end of its shard" test "$K" -lt "$N1"
check "no partial file left" no_partial "$OUT2"
C0=$(lines "$OUT2/lighthubert-run/index-0-of-3.jsonl")
C2=$(lines "$OUT2/lighthubert-run/index-2-of-3.jsonl")
check "tasks 0 and 2 finished their shards ($C0 of $N0, $C2 of $N2)" test "$C0" -eq "$N0" -a "$C2" -eq "$N2"

submit "$OUT2"
JOB3=$JOB
say "array $JOB3: the same array resubmitted"
wait_job "$JOB3"
for t in 0 2; do
    check "resubmitted task $t extracted nothing" in_log "${JOB3}_$t" "nothing to do\|done: 0 file(s) extracted"
done
REST=$((N1 - K))
check "resubmitted task 1 extracted only the other $REST of $N1" in_log "${JOB3}_1" \
    "done: $REST file(s) extracted, $K done before, 0 failed"
check "resubmitted task 1 said $REST file(s) to do ($K done before)" in_log "${JOB3}_1" \
    "$REST file(s) to do ($K done before)"
check "resumed outputs equal the local run's byte for byte" same_as_ref "$OUT2"
check "the 3 index files still partition the utterances" partition "$OUT2"
check "no partial file left after the resume" no_partial "$OUT2"
