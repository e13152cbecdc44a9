#!/usr/bin/env bash
# Keystroke echo latency over SSH (release build, as root). Prints Markdown table rows for
# docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p tandem-worker --bin tandem-init
cargo build --release --locked -p tandem-ssh --example echo_latency
echo "| measure | result |"
echo "|---|---|"
exec ./target/release/examples/echo_latency
