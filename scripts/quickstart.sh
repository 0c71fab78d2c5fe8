#!/usr/bin/env bash
# The main job: a word count topology (exactly-once, RocksDB state with a
# changelog) on a broker embedded in the process, and user sessions from
# a click stream (a custom processor with a punctuator); then the plain
# produce/consume demo and a tour of the storage engine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
cargo run --release --example wordcount
echo
cargo run --release --example sessions
echo
cargo run --release --example embedded_demo
echo
cargo run --release --example log_tour
