#!/usr/bin/env bash
# How long a streams instance holding a large store takes to process again
# after kill -9 (docs/benchmarks.md, "Restart after kill -9").
#
#   bash scripts/bench-streams-restart.sh                 # 10,000,000 keys
#   bash scripts/bench-streams-restart.sh --keys 1000000
#   bash scripts/bench-streams-restart.sh --build         # cargo build --release first
#
# 1. Starts a spool broker (release build) and the word count example
#    (examples/wordcount.rs, exactly-once, RocksDB store "counts") against
#    it, with its metrics endpoint on.
# 2. Feeds `lines` with K distinct words (100 a line), and waits until the
#    instance has processed them all: its store then holds K keys.
# 3. Kills the instance with SIGKILL, starts it again on the same state
#    directory (same instance id), writes one more line, and times from
#    the restart until that line's word was processed (the metrics
#    endpoint's records_processed_total reaches 2: the line and its word).
# Prints the store's size, the restart time and the instance's restore
# log lines. Ports on loopback: 31692 (gRPC), 31693 (Kafka), 31694 (the
# instance's metrics). Environment: BENCH_DIR (where the temporary
# directory goes, default $TMPDIR or /tmp), BENCH_KEEP=1 (keep it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

keys=10000000
build=false
while (($#)); do
    case $1 in
    --keys) keys=${2:?--keys needs a number}; shift 2 ;;
    --build) build=true; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" >&2; exit 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ $keys =~ ^[1-9][0-9]*$ ]] || { echo "--keys takes a positive number" >&2; exit 2; }

target=${CARGO_TARGET_DIR:-$root/target}
if $build; then
    cargo build --release --bin spool --example wordcount
fi
spool=$target/release/spool
wordcount=$target/release/examples/wordcount
for bin in "$spool" "$wordcount"; do
    [[ -x $bin ]] || { echo "no $bin: run with --build" >&2; exit 1; }
done

grpc=127.0.0.1:31692 kafka=127.0.0.1:31693 metrics=127.0.0.1:31694
base=${BENCH_DIR:-${TMPDIR:-/tmp}}
work=$(mktemp -d "$base/spool-bench-restart.XXXXXX")
broker_pid= instance_pid=
cleanup() {
    [[ -n $instance_pid ]] && kill -KILL "$instance_pid" 2>/dev/null || true
    [[ -n $broker_pid ]] && kill -TERM "$broker_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ -n ${BENCH_KEEP:-} ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

log() { echo "[bench-restart $(date +%T)] $*" >&2; }

"$spool" broker --node-id 1 --data-dir "$work/broker" --listen "$grpc" \
    --kafka-listen "$kafka" --metrics-listen off >"$work/broker.log" 2>&1 &
broker_pid=$!
until grep -qs " listening on " "$work/broker.log"; do
    kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.log" >&2; exit 1; }
    sleep 0.2
done
export SPOOL_BOOTSTRAP=$grpc
"$spool" topics create lines --partitions 2 >/dev/null
"$spool" topics create word-counts --partitions 2 >/dev/null

start_instance() { # LOG
    "$wordcount" --bootstrap "$grpc" --state-dir "$work/state" --instance-id wc-1 \
        --session-timeout-secs 10 --quiet --metrics-listen "$metrics" >>"$1" 2>&1 &
    instance_pid=$!
}

# records_processed_total from the instance's endpoint (0 until it answers).
processed() {
    local page
    page=$(exec 3<>"/dev/tcp/${metrics%:*}/${metrics#*:}" &&
        printf 'GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n' >&3 && cat <&3) 2>/dev/null || true
    awk '/^spool_streams_records_processed_total/ { print $2; found = 1 } END { if (!found) print 0 }' <<<"$page"
}

start_instance "$work/first.log"
log "feeding $keys distinct words"
seq 1 "$keys" | awk '{ printf "w%d ", $1 } NR % 100 == 0 { print "" } END { print "" }' |
    "$spool" produce lines >/dev/null
lines=$(((keys + 99) / 100))
want=$((keys + lines))
while (($(processed) < want)); do
    kill -0 "$instance_pid" 2>/dev/null || { tail -n 30 "$work/first.log" >&2; exit 1; }
    sleep 1
done
log "processed $(processed) records ($lines lines, $keys words); killing it"
kill -KILL "$instance_pid"
wait "$instance_pid" 2>/dev/null || true
store_bytes=$(du -sb "$work/state/wordcount" | cut -f1)

started=$(date +%s.%N)
start_instance "$work/second.log"
echo "marker" | "$spool" produce lines >/dev/null
while (($(processed) < 2)); do
    kill -0 "$instance_pid" 2>/dev/null || { tail -n 30 "$work/second.log" >&2; exit 1; }
    sleep 0.05
done
took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')

echo "keys in the store: $keys"
echo "state directory: $store_bytes bytes"
echo "restart to processing again: $took s"
echo "restore log lines of the restarted instance:"
grep -E "restoring a store|store restored" "$work/second.log" || echo "  none: nothing to restore"
