#!/usr/bin/env bash
# The main job at this stage: produce to and consume from a broker embedded
# in the process (keyed records, a consumer group, committed offsets), then a
# tour of the storage engine. Later stages make this a topology program.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
cargo run --release --example embedded_demo
echo
cargo run --release --example log_tour
