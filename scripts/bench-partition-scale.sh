#!/usr/bin/env bash
# Partition scale on one machine (docs/benchmarks.md, "Partition scale"):
# three spool broker processes on loopback, one topic of PARTITIONS
# partitions with replication factor 3. It reports how long the topic
# took to be created and led everywhere, the CPU the three brokers used
# together while idle (percent of one core), whether any partition's
# leader or Raft log changed while idle (every election appends an
# entry), the controller's leader before and after, each broker's
# resident memory, and then writes 20,000 keyed records (acks=all) and
# checks every one landed and every partition took some.
#
#   bash scripts/bench-partition-scale.sh [PARTITIONS [IDLE_SECONDS]]
#       defaults: 1000 partitions, 600 idle seconds
#   SPOOL_BIN=PATH      measure this spool binary (default: a release build)
#   WITH_KAFKA=1        then the same layout on Apache Kafka 4.4's
#                       three-node KRaft cluster (scripts/kafka-reference.sh):
#                       creation, idle CPU, leader changes and memory
#
# Ports 31800-31802 (spool, gRPC), 31700-31702 (spool, Kafka protocol) and
# 39092-39094 (Kafka) must be free. Run nothing else meanwhile: the
# figures are only comparable within one run.
set -euo pipefail
cd "$(dirname "$0")/.."

partitions=${1:-1000}
idle=${2:-600}
records=20000
topic=scale

if [[ -z ${SPOOL_BIN:-} ]]; then
    source scripts/ensure-deps.sh
    cargo build --release --bin spool
    SPOOL_BIN=${CARGO_TARGET_DIR:-target}/release/spool
fi
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -d $work/kafka ]] && bash scripts/kafka-reference.sh stop "$work/kafka" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

ticks_per_second=$(getconf CLK_TCK)
# User plus system CPU ticks of the given processes, together.
cpu_ticks() {
    local total=0 pid fields
    for pid in "$@"; do
        read -r -a fields <"/proc/$pid/stat"
        total=$((total + fields[13] + fields[14]))
    done
    echo "$total"
}
rss_mib() { awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$1/status"; }
# Idle CPU of the given processes over $idle seconds, in percent of a core.
idle_cpu() {
    local before after
    before=$(cpu_ticks "$@")
    sleep "$idle"
    after=$(cpu_ticks "$@")
    awk -v t=$((after - before)) -v hz="$ticks_per_second" -v s="$idle" \
        'BEGIN { printf "%.1f", 100 * t / hz / s }'
}
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

spool() { "$SPOOL_BIN" "$@"; }
bootstrap=127.0.0.1:31800
status() { spool cluster status --bootstrap "$bootstrap" 2>/dev/null || true; }
# "partition leader last-index" of every led partition of the topic.
led_rows() { status | awk -v t="$topic" '$1 == t && $3 ~ /^[0-9]+$/ { print $2, $3, $4 }' | sort -n; }

echo "== spool: 3 brokers, $partitions partitions x replication factor 3 ($SPOOL_BIN)"
peers=1=127.0.0.1:31800,2=127.0.0.1:31801,3=127.0.0.1:31802
for n in 1 2 3; do
    "$SPOOL_BIN" broker --node-id "$n" --data-dir "$work/node$n" \
        --listen "127.0.0.1:$((31799 + n))" --kafka-listen "127.0.0.1:$((31699 + n))" \
        --metrics-listen off --peers "$peers" >"$work/node$n.log" 2>&1 &
    pids+=($!)
done
until [[ $(status | grep -c ' up$') == 3 ]]; do sleep 0.5; done
started=$(date +%s.%N)
spool topics create "$topic" --partitions "$partitions" --replication-factor 3 \
    --bootstrap "$bootstrap" >/dev/null
until [[ $(led_rows | wc -l) == "$partitions" ]]; do sleep 0.5; done
echo "created and led everywhere in $(seconds_since "$started") s"
before=$(led_rows)
controller_before=$(status | awk '/controller leader/ { sub(/\)/, "", $NF); print $NF }')
echo "idle for $idle s: CPU of the three brokers together $(idle_cpu "${pids[@]}") % of one core"
after=$(led_rows)
changed=$(diff <(echo "$before") <(echo "$after") | grep -c '^>' || true)
echo "partitions whose leader or last index changed while idle: $changed"
echo "controller leader before and after: $controller_before $(status | awk '/controller leader/ { sub(/\)/, "", $NF); print $NF }')"
echo "resident memory (MiB): $(for pid in "${pids[@]}"; do printf '%s ' "$(rss_mib "$pid")"; done)"
seq 1 "$records" | sed 's/.*/k&:v&/' |
    spool produce "$topic" --key-separator : --acks all --bootstrap "$bootstrap" >/dev/null 2>&1
status | awk -v t="$topic" -v want="$records" '
    $1 == t { sum += $5; if ($5 == 0) empty++ }
    END { printf "records acknowledged %d, in the logs %d, partitions left empty %d\n", want, sum, empty
          exit (sum == want ? 0 : 1) }'
stop_spool() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
}
stop_spool

[[ ${WITH_KAFKA:-0} == 1 ]] || exit 0
echo "== Apache Kafka 4.4: 3 KRaft nodes, $partitions partitions x replication factor 3"
kafka() { bash scripts/kafka-reference.sh "$@"; }
kafka start-cluster "$work/kafka" 39092
kafka_pids=($(cat "$work"/kafka/node*.pid))
led_kafka() {
    kafka tool kafka-topics --bootstrap-server 127.0.0.1:39092 --describe --topic "$topic" 2>/dev/null |
        awk '/Partition: / { for (i = 1; i <= NF; i++) if ($i == "Leader:") print $(i - 1), $(i + 1) }' |
        awk '$2 ~ /^[0-9]+$/' | sort -n
}
started=$(date +%s.%N)
kafka tool kafka-topics --bootstrap-server 127.0.0.1:39092 --create --topic "$topic" \
    --partitions "$partitions" --replication-factor 3 >/dev/null
until [[ $(led_kafka | wc -l) == "$partitions" ]]; do sleep 1; done
echo "created and led everywhere in $(seconds_since "$started") s (each look is a JVM tool run)"
before=$(led_kafka)
echo "idle for $idle s: CPU of the three nodes together $(idle_cpu "${kafka_pids[@]}") % of one core"
changed=$(diff <(echo "$before") <(led_kafka) | grep -c '^>' || true)
echo "partitions whose leader changed while idle: $changed"
echo "resident memory (MiB): $(for pid in "${kafka_pids[@]}"; do printf '%s ' "$(rss_mib "$pid")"; done)"
