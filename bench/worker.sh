#!/usr/bin/env bash
# Worker benchmarks (release build, as root). Prints Markdown table rows for
# docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p tandem-worker --example bench
echo "| measure | result |"
echo "|---|---|"
exec ./target/release/examples/bench
