#!/bin/sh
# The test suites that depend on the cgroup version and the kernel, run inside the
# cgroup-v2 guest (ci/v2-guest.sh): first from the root cgroup, then from a delegated
# nested cgroup, as under a systemd unit with Delegate=yes. The test binaries are the
# ones `cargo test --workspace --no-run` built on the host (newest of each name).
#
#   ci/v2-guest.sh ci/v2-suites.sh [SUITE...]
set -u
cd "$(dirname "$0")/.."
# The cgroup-sensitive suites run in both places; the ones that exercise stop timing, SSH
# and the daemon (the same code whatever the cgroup placement) run once, from the root.
# NAME:FILTER runs only the tests of binary NAME matching FILTER (the worker's unit tests of
# clone3 into a cgroup).
BOTH="limits cgroup_v2 isolation lockdown check_view join_lockdown host_quotas host_handles \
rootfs_dir exec_in_sandbox stop_kills_whole_tree crash_cleanup warm_start tandem_worker:sys::"
ROOT_ONLY="stop sandbox_wall daemon"
if [ "$#" -gt 0 ]; then
    BOTH="$*"
    ROOT_ONLY=""
fi

binary() {
    ls -t target/debug/deps/"$1"-* 2>/dev/null | grep -v '\.d$' | while read -r f; do
        [ -x "$f" ] && { echo "$f"; break; }
    done
}

failed=0
run_all() {
    where=$1
    shift
    for suite in "$@"; do
        filter=
        case $suite in *:*) filter=${suite#*:} ;; esac
        bin=$(binary "${suite%%:*}")
        if [ -z "$bin" ]; then
            echo "v2-suites: no test binary for $suite (run cargo test --workspace --no-run)"
            failed=1
            continue
        fi
        start=$(date +%s)
        # shellcheck disable=SC2086
        if out=$("$bin" --test-threads=1 $filter 2>&1); then
            echo "v2 [$where] $suite: $(echo "$out" | grep '^test result' | tail -n 1) ($(( $(date +%s) - start ))s)"
        else
            echo "$out" | tail -n 60
            echo "v2 [$where] $suite: FAILED"
            failed=1
        fi
    done
}

echo "v2-suites: kernel $(uname -r), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
# shellcheck disable=SC2086
run_all root $BOTH $ROOT_ONLY
# A delegated subtree: this shell (and everything it starts) moves into /svc, whose
# controllers are enabled by its parent; tandem nests under it and must move itself into a
# leaf before enabling controllers for its children.
mkdir -p /sys/fs/cgroup/svc
echo $$ > /sys/fs/cgroup/svc/cgroup.procs
# shellcheck disable=SC2086
run_all delegated $BOTH
exit $failed
