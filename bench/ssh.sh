#!/usr/bin/env bash
# tandem's shared terminal vs OpenSSH sshd + a shared tmux session, side by side in one run
# (release build, as root): keystroke echo p50/p99 with 0, 10 and 50 watchers, with a
# stopped watcher, and a 100 MiB output burst. Prints a Markdown table for
# docs/BENCHMARKS.md. Installs openssh-server and tmux with apt when missing; the sshd it
# runs is private (loopback port, own host key and config) and ends with the run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "run as root" >&2
    exit 1
fi
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v tmux >/dev/null || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    # No service is started: this machine's sshd (if any) is left alone.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
cargo build --release --locked -p tandem-worker --bin tandem-init
cargo build --release --locked -p tandem-ssh --example echo_latency
echo "$(date -u +%F) · $(nproc) cores · $(uname -r) · $(ssh -V 2>&1) · $(tmux -V)"
exec ./target/release/examples/echo_latency
