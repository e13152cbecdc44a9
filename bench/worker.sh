#!/usr/bin/env bash
# Worker benchmarks, as root, on a fresh Debian machine, in a few minutes. Prints Markdown
# table rows for the worker section of docs/BENCHMARKS.md.
#
#   1. the worker library (crates/worker/examples/bench.rs): isolated start (warm slot and
#      cold) interleaved with bwrap, crun and plain fork+exec; concurrency, throughput,
#      followers; BENCH_IDLE (1000) idle isolated jobs: start, memory, stop, leftovers.
#   2. the CLI against a daemon on a temporary state dir: `tandem job start -- /bin/true`
#      then `tandem job logs -f` (two CLI runs), `tandem job start -f` (one), interleaved
#      with bwrap and `tandem health` (the CLI and mTLS round trip alone).
#
#   1b. on the cgroup2 mount: cold starts cloned into their cgroup (clone3) vs joined by a
#      migration, interleaved with bwrap.
#
# BENCH_ROUNDS (100) and CLI_ROUNDS (50) set the rounds; BENCH_ONLY=start|misc|idle|v2|cli
# runs one part.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/worker.sh: run as root (jobs need namespaces and cgroups)" >&2; exit 2; }

missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v crun >/dev/null || missing+=(crun)
command -v bc >/dev/null || missing+=(bc)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release --locked -q -p tandem-worker --example bench
cargo build --release --locked -q -p tandemd -p tandem

work=$(mktemp -d /var/tmp/tandem-bench-XXXXXX)
daemon=
cleanup() {
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "date: $(date -u +%F), $(nproc) CPUs, $(uname -r), $(bwrap --version), $(crun --version | head -1)," \
     "cgroup: $(stat -fc %T /sys/fs/cgroup), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# crun on a hybrid v1 host refuses to run while the cgroup2 mount has controllers ("cgroups
# in hybrid mode not supported"), and cannot pivot_root into `/` itself. So part 1 runs in
# a private mount namespace where the unified mount is gone (crun then uses v1 like tandem
# does; tandem never uses the unified mount on v1) and `/` is bind-mounted read-only as the
# bundle's rootfs. bwrap and tandem run in that namespace too, in the same process.
bundle="$work/crun"
mkdir -p "$bundle/rootfs"
(cd "$bundle" && crun spec)
python3 - "$bundle/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["root"] = {"path": "rootfs", "readonly": True}
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
json.dump(c, open(path, "w"), indent=1)
EOF

if [ "${BENCH_ONLY:-}" != cli ] && [ "${BENCH_ONLY:-}" != v2 ]; then
    unshare -m --propagation private env CRUN_BUNDLE="$bundle" bash -c '
        set -e
        if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
        mount --bind -o ro / "$CRUN_BUNDLE/rootfs"
        exec ./target/release/examples/bench'
fi
# Part 1b: cold starts on cgroup v2 (clone3 into the cgroup vs a migration), outside that
# namespace, on the cgroup2 mount (the unified hierarchy on a hybrid host).
if { [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY:-}" = v2 ]; } && grep -q " - cgroup2 " /proc/self/mountinfo; then
    BENCH_ONLY=v2 ./target/release/examples/bench | tail -n +3
fi
[ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY:-}" = cli ] || exit 0

# Part 2: the CLI. A daemon on a temporary state dir, certs and ports.
mkdir -p "$work/state" "$work/certs" "$work/tasks"
grpc=127.0.0.1:$((20000 + RANDOM % 20000))
./target/release/tandemd --grpc-listen "$grpc" --ssh-listen 127.0.0.1:0 --web-listen 127.0.0.1:0 \
    --state-dir "$work/state" --certs-dir "$work/certs" --tasks-dir "$work/tasks" \
    >"$work/daemon.log" 2>&1 &
daemon=$!
export TANDEM_SERVER=$grpc TANDEM_CERTS_DIR=$work/certs
tandem=./target/release/tandem
for _ in $(seq 100); do
    $tandem health >/dev/null 2>&1 && break
    sleep 0.1
done
$tandem health >/dev/null || { echo "tandemd did not come up:"; cat "$work/daemon.log"; exit 1; }

rounds=${CLI_ROUNDS:-50}
: >"$work/cli" ; : >"$work/cli1" ; : >"$work/bwrap" ; : >"$work/health"
now() { echo "${EPOCHREALTIME/./}"; }   # microseconds, no fork
for _ in $(seq "$rounds"); do
    t=$(now)
    id=$($tandem job start -- /bin/true)
    $tandem job logs -f "$id" >/dev/null
    echo $(( $(now) - t )) >>"$work/cli"
    t=$(now)
    $tandem job start -f -- /bin/true >/dev/null 2>&1
    echo $(( $(now) - t )) >>"$work/cli1"
    t=$(now)
    bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc /bin/true
    echo $(( $(now) - t )) >>"$work/bwrap"
    t=$(now)
    $tandem health >/dev/null
    echo $(( $(now) - t )) >>"$work/health"
done
stats() { sort -n "$1" | awk '{a[NR]=$1} END {
    p50=a[int((NR-1)*0.5+0.5)+1]; p99=a[int((NR-1)*0.99+0.5)+1];
    printf "p50 %.2f ms · p99 %.2f ms", p50/1000, p99/1000 }'; }
p50() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR-1)*0.5+0.5)+1]}'; }
ratio=$(echo "scale=2; $(p50 "$work/cli") / $(p50 "$work/bwrap")" | bc)
ratio1=$(echo "scale=2; $(p50 "$work/cli1") / $(p50 "$work/bwrap")" | bc)
echo "| measure | result |"
echo "|---|---|"
echo "| CLI: \`tandem job start -- /bin/true\` + \`tandem job logs -f\`, ×$rounds | $(stats "$work/cli") · **${ratio}× bwrap** |"
echo "| CLI: \`tandem job start -f -- /bin/true\` (start and follow on one connection) | $(stats "$work/cli1") · **${ratio1}× bwrap** |"
echo "| \`bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc /bin/true\` from the shell | $(stats "$work/bwrap") |"
echo "| CLI: \`tandem health\` (CLI start + mTLS round trip, no job) | $(stats "$work/health") |"
kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=
left=$(grep -c "$work/state" /proc/self/mountinfo || true)
echo "| daemon stopped: mounts of its state dir left | $left |"
