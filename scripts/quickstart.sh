#!/usr/bin/env bash
# The main job at this stage: a tour of the storage engine, then a short
# benchmark of it. Later stages make this an example topology program.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
cargo run --release --example log_tour
echo
echo "spool bench log --records 200000 --record-size 1024 --fsync-every 1048576:"
cargo run --release --quiet -- bench log --records 200000 --record-size 1024 --fsync-every 1048576
