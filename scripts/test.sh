#!/usr/bin/env bash
# Everything CI checks: formatting, lints, the crates' layering and sizes,
# every test of the workspace, and the allowlist of librdkafka's
# integration tests against the Kafka listener.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
source scripts/ensure-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
bash scripts/check-structure.sh
cargo test --workspace
# librdkafka's own integration tests against the Kafka listener: the
# allowlist in tests/librdkafka/allowlist.txt (docs/kafka-compatibility.md).
bash scripts/librdkafka-suite.sh
