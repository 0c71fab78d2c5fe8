#!/usr/bin/env bash
# Produce throughput of three broker processes on this machine
# (replication factor 3, acks=all) or of one node, on fresh data
# directories, with spool's own producer over gRPC.
#
#   bash scripts/bench-replicated.sh cluster|single [PARTITIONS] [-- BENCH ARGS...]
#
# SPOOL_BIN picks the binary (default: the release build in the shared
# target directory), so two builds can be run in turn; RECORDS (default
# 2,000,000) the records per run. Extra arguments go to `spool bench
# produce` (e.g. --no-idempotence). Prints the benchmark's summary line.
set -euo pipefail

MODE=${1:?cluster or single}
PARTITIONS=${2:-1}
shift $(( $# >= 2 ? 2 : $# ))
[[ ${1:-} == -- ]] && shift
SPOOL_BIN=${SPOOL_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/spool/target}/release/spool}
RECORDS=${RECORDS:-2000000}
DIR=$(mktemp -d /tmp/spool-bench-replicated.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

case $MODE in
    cluster)
        PEERS=1=127.0.0.1:31900,2=127.0.0.1:31901,3=127.0.0.1:31902
        for n in 1 2 3; do
            "$SPOOL_BIN" broker --node-id "$n" --peers "$PEERS" --data-dir "$DIR/node$n" \
                --listen "127.0.0.1:3190$((n - 1))" --metrics-listen off --kafka-listen off \
                > "$DIR/node$n.log" 2>&1 &
            PIDS+=($!)
        done
        export SPOOL_BOOTSTRAP=127.0.0.1:31900,127.0.0.1:31901,127.0.0.1:31902
        RF=3
        ;;
    single)
        "$SPOOL_BIN" broker --data-dir "$DIR/single" --listen 127.0.0.1:31910 \
            --metrics-listen off --kafka-listen off > "$DIR/single.log" 2>&1 &
        PIDS+=($!)
        export SPOOL_BOOTSTRAP=127.0.0.1:31910
        RF=1
        ;;
    *) echo "unknown mode $MODE: cluster or single" >&2; exit 2 ;;
esac

# The cluster elects its controller and the topic's leaders first.
for _ in $(seq 1 60); do
    if "$SPOOL_BIN" topics create bench --partitions "$PARTITIONS" \
        --replication-factor "$RF" > /dev/null 2>&1; then
        break
    fi
    sleep 0.5
done
sleep 2
"$SPOOL_BIN" bench produce --topic bench --records "$RECORDS" --record-size 100 \
    --send-batch 1000 --acks all "$@"
