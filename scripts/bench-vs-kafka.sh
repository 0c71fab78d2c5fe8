#!/usr/bin/env bash
# spool against Apache Kafka 4.4.0 on this machine, side by side, in one
# run: the same Kafka tool (scripts/kafka-reference.sh) against spool's
# Kafka listener and against Kafka's broker, alternating between the two
# so the machine's noise hits both alike (docs/benchmarks.md).
#
#   bash scripts/bench-vs-kafka.sh                     # all measurements, 3 pairs
#   bash scripts/bench-vs-kafka.sh produce consume     # chosen measurements
#   bash scripts/bench-vs-kafka.sh --pairs 5 --records 500000 cluster
#   bash scripts/bench-vs-kafka.sh --build             # cargo build --release first
#
# Measurements (all by default, in this order):
#   produce  kafka-producer-perf-test, 100-byte records, --throughput -1,
#            acks=1 and acks=all, one-partition topic; records/s and p99
#   consume  a topic filled by producer-perf-test (acks=1, not timed), then
#            kafka-consumer-perf-test reads it all in a new group: MB/s and
#            records/s, and records/s without the group join
#   e2e      kafka-e2e-latency (one record at a time: send, wait until the
#            consumer sees it; avg, p50, p99), and producer-perf-test at a
#            fixed rate (producer-side send-to-ack latency, p50, p99)
#   cluster  three brokers of each, replication factor 3, acks=all,
#            producer-perf-test on 1 and on 3 partitions
# Each pair runs spool then Kafka (odd pairs) or Kafka then spool (even);
# every run starts fresh brokers on empty directories and stops them after
# (spool: SIGTERM; Kafka: kafka-reference.sh stop). Markdown goes to
# standard output (machine, exact commands, then the table with each run
# and the ratio spool/Kafka per pair and its median); progress and tool
# failures to standard error.
#
# Options: --pairs N (BENCH_PAIRS, 3), --records N (BENCH_RECORDS,
# 2000000, for produce, consume and cluster), --build (run `cargo build
# --release` first). Environment: SPOOL_BIN (default
# ${CARGO_TARGET_DIR:-target}/release/spool), BENCH_DIR (where the
# brokers' temporary directories go, default $TMPDIR or /tmp),
# E2E_RECORDS (kafka-e2e-latency's count, 10000), LATENCY_RATE and
# LATENCY_SECONDS (the fixed-rate producer run, 10000 records/s for 10 s),
# KAFKA_BROKER_HEAP (Kafka's heap per broker, 1g), BENCH_TOOL_TIMEOUT
# (seconds one tool may run, 1800), BENCH_KEEP=1 (keep the tools' output
# and the brokers' logs). Ports: loopback 31092-31802 (see below).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

usage() {
    awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

pairs=${BENCH_PAIRS:-3}
records=${BENCH_RECORDS:-2000000}
build=false
selected=()
while (($#)); do
    case $1 in
    --pairs) pairs=${2:?--pairs needs a number}; shift 2 ;;
    --records) records=${2:?--records needs a number}; shift 2 ;;
    --build) build=true; shift ;;
    -h | --help) usage ;;
    produce | consume | e2e | cluster) selected+=("$1"); shift ;;
    *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
((${#selected[@]})) || selected=(produce consume e2e cluster)
[[ $pairs =~ ^[1-9][0-9]*$ && $records =~ ^[1-9][0-9]*$ ]] ||
    { echo "--pairs and --records take positive numbers" >&2; exit 2; }

e2e_records=${E2E_RECORDS:-10000}
latency_rate=${LATENCY_RATE:-10000}
latency_seconds=${LATENCY_SECONDS:-10}
tool_timeout=${BENCH_TOOL_TIMEOUT:-1800}
record_size=100

# Loopback ports, away from the defaults (9092, 9292), from the ones the
# librdkafka suite uses (9092, 19x92) and below Linux's ephemeral range
# (32768-60999): a listening port in that range can be taken by some
# client's outgoing connection, or by a broker's own connection to a peer
# that does not listen yet (a loopback self-connect), and the broker then
# fails to bind it. Kafka's controllers listen 100 above its client
# ports (kafka-reference.sh).
spool_kafka_port=31092 spool_grpc_port=31392   # one spool broker
kafka_port=31192                               # one Kafka broker (+ 31292)
kafka_cluster_port=31500                       # 31500-31502 (+ 31600-31602)
spool_cluster_kafka_port=31700                 # 31700-31702
spool_cluster_grpc_port=31800                  # 31800-31802

spool_bin=${SPOOL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/spool}
if $build; then
    cargo build --release
fi
if [[ ! -x $spool_bin ]]; then
    echo "no spool binary at $spool_bin: build it with \`cargo build --release\`" \
        "(or pass --build), or point SPOOL_BIN at one" >&2
    exit 1
fi
spool_bin=$(cd "$(dirname "$spool_bin")" && pwd)/$(basename "$spool_bin")

ref=(bash "$root/scripts/kafka-reference.sh")
"${ref[@]}" fetch

base=${BENCH_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$base"
work=$(mktemp -d "$base/spool-bench.XXXXXX")
results=$work/results.tsv
: >"$results"

log() { echo "[bench $(date +%T)] $*" >&2; }

# What runs now, stopped by cleanup on any exit (failure, Ctrl-C, TERM).
spool_pids=()
kafka_dirs=()
job_pid=

stop_spool() {
    local pid waited
    for pid in "${spool_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${spool_pids[@]}"; do
        waited=0
        while kill -0 "$pid" 2>/dev/null && ((waited < 60)); do
            sleep 0.5
            waited=$((waited + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    spool_pids=()
}

stop_kafka() {
    local dir
    for dir in "${kafka_dirs[@]}"; do "${ref[@]}" stop "$dir" || true; done
    kafka_dirs=()
}

cleanup() {
    trap - EXIT INT TERM
    if [[ -n $job_pid ]]; then
        kill -TERM "$job_pid" 2>/dev/null || true
        wait "$job_pid" 2>/dev/null || true
    fi
    stop_spool
    stop_kafka
    if [[ -n ${BENCH_KEEP:-} ]]; then
        echo "tool outputs and broker logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background with its output in OUT and waits for
# it, so a signal to this script is handled at once (cleanup stops it).
run_job() {
    local out=$1 rc=0
    shift
    "$@" >"$out" 2>&1 &
    job_pid=$!
    wait "$job_pid" || rc=$?
    job_pid=
    return "$rc"
}

# Runs Kafka tool NAME with ARGS, output in OUT, within the time limit.
run_tool() {
    local out=$1
    shift
    log "+ kafka-reference.sh tool $*"
    run_job "$out" timeout -k 10 "$tool_timeout" "${ref[@]}" tool "$@"
}

# Fails when something listens on one of PORTS already: a benchmark
# against someone else's broker would measure the wrong thing.
ports_free() {
    local port
    for port in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "port $port on 127.0.0.1 is taken; stop what listens there" >&2
            return 1
        fi
    done
}

# start_spool DIR COUNT: COUNT spool brokers (one: a single node; three:
# a cluster), data and logs in DIR; waits until each listens.
start_spool() {
    local dir=$1 count=$2 node grpc kafka peers="" args waited
    mkdir -p "$dir"
    if ((count > 1)); then
        for node in $(seq "$count"); do
            peers+="${peers:+,}$node=127.0.0.1:$((spool_cluster_grpc_port + node - 1))"
        done
    fi
    for node in $(seq "$count"); do
        spool_broker_args "$dir" "$count" "$node" "$peers"
        args=("${cmd[@]}")
        if ((count > 1)); then
            grpc=$((spool_cluster_grpc_port + node - 1)) kafka=$((spool_cluster_kafka_port + node - 1))
        else
            grpc=$spool_grpc_port kafka=$spool_kafka_port
        fi
        ports_free "$grpc" "$kafka" || return 1
        "${args[@]}" >"$dir/node$node.log" 2>&1 &
        spool_pids+=($!)
    done
    for node in $(seq "$count"); do
        waited=0
        until grep -qs " listening on " "$dir/node$node.log"; do
            sleep 0.2
            waited=$((waited + 1))
            if ((waited > 150)) || ! kill -0 "${spool_pids[node - 1]}" 2>/dev/null; then
                echo "spool broker $node did not start; its log:" >&2
                tail -n 30 "$dir/node$node.log" >&2
                return 1
            fi
        done
    done
}

# start_kafka DIR COUNT: one Kafka broker, or a cluster of three.
start_kafka() {
    local dir=$1 count=$2 node port=$kafka_port verb=start ports=()
    ((count == 1)) || { port=$kafka_cluster_port verb=start-cluster; }
    for node in $(seq "$count"); do ports+=($((port + node - 1)) $((port + node + 99))); done
    ports_free "${ports[@]}" || return 1
    kafka_dirs+=("$dir")
    mkdir -p "$dir"
    run_job "$dir/start.log" "${ref[@]}" "$verb" "$dir" "$port" ||
        { cat "$dir/start.log" >&2; return 1; }
}

# The command lines, built in one place for the runs and for the
# header's list of commands. Each sets the array `cmd`.
spool_broker_args() {
    local dir=$1 count=$2 node=$3 peers=$4
    if ((count > 1)); then
        cmd=("$spool_bin" broker --node-id "$node" --data-dir "$dir/node$node"
            --listen "127.0.0.1:$((spool_cluster_grpc_port + node - 1))"
            --kafka-listen "127.0.0.1:$((spool_cluster_kafka_port + node - 1))"
            --metrics-listen off --peers "$peers")
    else
        cmd=("$spool_bin" broker --node-id 1 --data-dir "$dir/node1"
            --listen "127.0.0.1:$spool_grpc_port" --kafka-listen "127.0.0.1:$spool_kafka_port"
            --metrics-listen off)
    fi
}
topic_args() { # BOOTSTRAP TOPIC PARTITIONS REPLICATION
    cmd=(kafka-topics --bootstrap-server "$1" --create --topic "$2" --partitions "$3"
        --replication-factor "$4")
}
producer_args() { # BOOTSTRAP TOPIC RECORDS THROUGHPUT ACKS
    cmd=(kafka-producer-perf-test --bootstrap-server "$1" --topic "$2" --num-records "$3"
        --record-size "$record_size" --throughput "$4" --command-property "acks=$5")
}
consumer_args() { # BOOTSTRAP TOPIC RECORDS GROUP
    cmd=(kafka-consumer-perf-test --bootstrap-server "$1" --topic "$2" --num-records "$3"
        --group "$4" --timeout 60000)
}
e2e_args() { # BOOTSTRAP TOPIC
    cmd=(kafka-e2e-latency --bootstrap-server "$1" --topic "$2" --num-records "$e2e_records"
        --producer-acks 1 --record-size "$record_size")
}

# Creates a topic, retrying while a new cluster gathers its brokers.
create_topic() { # OUT BOOTSTRAP TOPIC PARTITIONS REPLICATION
    local out=$1 try
    shift
    topic_args "$@"
    for try in $(seq 30); do
        run_tool "$out" "${cmd[@]}" && return 0
        grep -q "already exists" "$out" && return 0
        ((try < 30)) && sleep 2
    done
    echo "creating topic $2 failed:" >&2
    tail -n 20 "$out" >&2
    return 1
}

# Rows of the table, in order, with what is better and how to print them.
row_keys=()
declare -A row_label row_better row_kind
define_row() { # KEY LABEL higher|lower rate|mbps|ms
    row_keys+=("$1")
    row_label[$1]=$2 row_better[$1]=$3 row_kind[$1]=$4
}

record() { # KEY SYSTEM PAIR VALUE (a number, or "fail")
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"
    log "$1 $2 pair $3: $4"
}

# Shows why a run failed: the tool's output and each broker's log tail.
explain() { # OUT RUNDIR
    local f
    for f in "$1" "$2"/start.log "$2"/node*.log; do
        [[ -s $f ]] || continue
        echo "---- $f" >&2
        tail -n 20 "$f" >&2 || true
    done
}

# Errors a producer's send callbacks printed (stack traces): the tool
# counts failed sends in its summary too.
send_errors() {
    grep -cE '^(org\.apache\.kafka\.[a-z.]*|java\.[a-z.]*)[A-Za-z]*(Exception|Error)' "$1" || true
}

# producer-perf-test's final summary: "N records sent, R records/sec (M
# MB/sec), A ms avg latency, X ms max latency, P50 ms 50th, P95 ms 95th,
# P99 ms 99th, P999 ms 99.9th." Prints "RATE P50 P99", or fails.
parse_producer() { # OUT EXPECTED_RECORDS
    local line errors
    line=$(grep ' records sent, .* 99\.9th\.' "$1" | tail -n 1) || return 1
    errors=$(send_errors "$1")
    if ((errors > 0)); then
        echo "producer-perf-test reported $errors failed sends" >&2
        return 1
    fi
    [[ ${line%% *} == "$2" ]] || { echo "sent ${line%% *} of $2 records" >&2; return 1; }
    sed -E 's/.* ([0-9.]+) records\/sec .* ([0-9]+) ms 50th, .* ([0-9]+) ms 99th,.*/\1 \2 \3/' <<<"$line"
}

# consumer-perf-test's header and data line (columns by name). Prints
# "MB_SEC NMSG_SEC FETCH_NMSG_SEC" (the first two over the whole run,
# joining the group included; the last without the join), or fails when
# fewer records than expected came.
parse_consumer() { # OUT EXPECTED_RECORDS
    awk -F', *' -v want="$2" '
        /nMsg\.sec/ { for (i = 1; i <= NF; i++) col[$i] = i; header = 1; next }
        header && NF > 5 {
            n = $col["data.consumed.in.nMsg"]
            if (n < want) { print "consumed " n " of " want " records" > "/dev/stderr"; exit 1 }
            print $col["MB.sec"], $col["nMsg.sec"], $col["fetch.nMsg.sec"]; found = 1; exit 0
        }
        END { if (!found) exit 1 }' "$1"
}

# kafka-e2e-latency: "Avg latency: A ms" and "Percentiles: 50th = P50,
# 99th = P99, 99.9th = P999" (whole ms). Prints "AVG P50 P99".
parse_e2e() { # OUT
    local avg pct
    avg=$(sed -nE 's/^Avg latency: ([0-9.]+) ms.*/\1/p' "$1")
    pct=$(sed -nE 's/^Percentiles: 50th = ([0-9]+), 99th = ([0-9]+),.*/\1 \2/p' "$1")
    [[ -n $avg && -n $pct ]] || return 1
    echo "$avg $pct"
}

# Runs fn RUN_SYSTEM... for each pair, alternating which system goes first.
# Each call gets SYSTEM (spool|kafka), PAIR and a fresh directory.
alternate() { # NAME FN
    local name=$1 fn=$2 pair system order dir
    for pair in $(seq "$pairs"); do
        if ((pair % 2)); then order=(spool kafka); else order=(kafka spool); fi
        for system in "${order[@]}"; do
            dir=$work/$name-$system-$pair
            log "$name, pair $pair/$pairs: $system"
            "$fn" "$system" "$pair" "$dir"
            stop_spool
            stop_kafka
            rm -rf "$dir"/node*/ # the data; logs stay until the end
        done
    done
}

# Starts SYSTEM with COUNT brokers in DIR and sets `bootstrap`.
start_system() { # SYSTEM COUNT DIR
    local node
    bootstrap=
    if [[ $1 == spool ]]; then
        start_spool "$3" "$2" || return 1
        if (($2 == 1)); then
            bootstrap=127.0.0.1:$spool_kafka_port
        else
            for node in $(seq "$2"); do
                bootstrap+="${bootstrap:+,}127.0.0.1:$((spool_cluster_kafka_port + node - 1))"
            done
        fi
    else
        start_kafka "$3" "$2" || return 1
        if (($2 == 1)); then
            bootstrap=127.0.0.1:$kafka_port
        else
            for node in $(seq "$2"); do
                bootstrap+="${bootstrap:+,}127.0.0.1:$((kafka_cluster_port + node - 1))"
            done
        fi
    fi
}

# One producer-perf-test run on fresh brokers: records/s and p99 into
# rows KEY-rate and KEY-p99.
produce_run() { # KEY BROKERS PARTITIONS REPLICATION ACKS SYSTEM PAIR DIR
    local key=$1 brokers=$2 partitions=$3 replication=$4 acks=$5 system=$6 pair=$7 dir=$8
    local out=$dir.out parsed rate p99
    if start_system "$system" "$brokers" "$dir" &&
        create_topic "$out" "$bootstrap" "$key-$pair" "$partitions" "$replication"; then
        producer_args "$bootstrap" "$key-$pair" "$records" -1 "$acks"
        if run_tool "$out" "${cmd[@]}" && parsed=$(parse_producer "$out" "$records"); then
            read -r rate _ p99 <<<"$parsed"
            record "$key-rate" "$system" "$pair" "$rate"
            record "$key-p99" "$system" "$pair" "$p99"
            return 0
        fi
    fi
    explain "$out" "$dir"
    record "$key-rate" "$system" "$pair" fail
    record "$key-p99" "$system" "$pair" fail
}

produce_acks1() { produce_run produce-acks1 1 1 1 1 "$@"; }
produce_acksall() { produce_run produce-acksall 1 1 1 all "$@"; }
cluster_p1() { produce_run cluster-p1 3 1 3 all "$@"; }
cluster_p3() { produce_run cluster-p3 3 3 3 all "$@"; }

consume_run() { # SYSTEM PAIR DIR
    local system=$1 pair=$2 dir=$3 out=$3.out parsed mbps rate fetch_rate
    if start_system "$system" 1 "$dir" && create_topic "$out" "$bootstrap" "consume-$pair" 1 1; then
        producer_args "$bootstrap" "consume-$pair" "$records" -1 1
        if run_tool "$out" "${cmd[@]}" && parse_producer "$out" "$records" >/dev/null; then
            consumer_args "$bootstrap" "consume-$pair" "$records" "bench-$pair"
            if run_tool "$out" "${cmd[@]}" && parsed=$(parse_consumer "$out" "$records"); then
                read -r mbps rate fetch_rate <<<"$parsed"
                record consume-mbps "$system" "$pair" "$mbps"
                record consume-rate "$system" "$pair" "$rate"
                record consume-fetch-rate "$system" "$pair" "$fetch_rate"
                return 0
            fi
        fi
    fi
    explain "$out" "$dir"
    record consume-mbps "$system" "$pair" fail
    record consume-rate "$system" "$pair" fail
    record consume-fetch-rate "$system" "$pair" fail
}

e2e_run() { # SYSTEM PAIR DIR
    local system=$1 pair=$2 dir=$3 out=$3.out parsed avg p50 p99
    if start_system "$system" 1 "$dir" && create_topic "$out" "$bootstrap" "e2e-$pair" 1 1; then
        e2e_args "$bootstrap" "e2e-$pair"
        if run_tool "$out" "${cmd[@]}" && parsed=$(parse_e2e "$out"); then
            read -r avg p50 p99 <<<"$parsed"
            record e2e-avg "$system" "$pair" "$avg"
            record e2e-p50 "$system" "$pair" "$p50"
            record e2e-p99 "$system" "$pair" "$p99"
            return 0
        fi
    fi
    explain "$out" "$dir"
    record e2e-avg "$system" "$pair" fail
    record e2e-p50 "$system" "$pair" fail
    record e2e-p99 "$system" "$pair" fail
}

rate_run() { # SYSTEM PAIR DIR
    local system=$1 pair=$2 dir=$3 out=$3.out parsed p50 p99 count=$((latency_rate * latency_seconds))
    if start_system "$system" 1 "$dir" && create_topic "$out" "$bootstrap" "rate-$pair" 1 1; then
        producer_args "$bootstrap" "rate-$pair" "$count" "$latency_rate" 1
        if run_tool "$out" "${cmd[@]}" && parsed=$(parse_producer "$out" "$count"); then
            read -r _ p50 p99 <<<"$parsed"
            record rate-p50 "$system" "$pair" "$p50"
            record rate-p99 "$system" "$pair" "$p99"
            return 0
        fi
    fi
    explain "$out" "$dir"
    record rate-p50 "$system" "$pair" fail
    record rate-p99 "$system" "$pair" fail
}

measure_produce() {
    alternate produce-acks1 produce_acks1
    alternate produce-acksall produce_acksall
}
measure_consume() { alternate consume consume_run; }
measure_e2e() {
    alternate e2e e2e_run
    alternate rate rate_run
}
measure_cluster() {
    alternate cluster-p1 cluster_p1
    alternate cluster-p3 cluster_p3
}

for m in "${selected[@]}"; do
    case $m in
    produce)
        define_row produce-acks1-rate "produce acks=1, records/s" higher rate
        define_row produce-acks1-p99 "produce acks=1, p99 ms (producer)" lower ms
        define_row produce-acksall-rate "produce acks=all, records/s" higher rate
        define_row produce-acksall-p99 "produce acks=all, p99 ms (producer)" lower ms
        ;;
    consume)
        define_row consume-mbps "consume, MB/s (MB.sec)" higher mbps
        define_row consume-rate "consume, records/s (nMsg.sec)" higher rate
        define_row consume-fetch-rate "consume, records/s without the group join (fetch.nMsg.sec)" higher rate
        ;;
    e2e)
        define_row e2e-avg "e2e round trip, avg ms (kafka-e2e-latency)" lower ms
        define_row e2e-p50 "e2e round trip, p50 ms (kafka-e2e-latency)" lower ms
        define_row e2e-p99 "e2e round trip, p99 ms (kafka-e2e-latency)" lower ms
        define_row rate-p50 "producer send-to-ack at $latency_rate/s, p50 ms" lower ms
        define_row rate-p99 "producer send-to-ack at $latency_rate/s, p99 ms" lower ms
        ;;
    cluster)
        define_row cluster-p1-rate "3 brokers, RF 3, acks=all, 1 partition, records/s" higher rate
        define_row cluster-p1-p99 "3 brokers, RF 3, acks=all, 1 partition, p99 ms" lower ms
        define_row cluster-p3-rate "3 brokers, RF 3, acks=all, 3 partitions, records/s" higher rate
        define_row cluster-p3-p99 "3 brokers, RF 3, acks=all, 3 partitions, p99 ms" lower ms
        ;;
    esac
done

# The header: machine, versions, and the exact commands of each run
# ($B, $T, $D stay literal there: placeholders).
# shellcheck disable=SC2016
header() {
    local mem fs rev cpu
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    fs=$(df -PT "$work" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')
    rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -z $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] || rev+=" (with local changes)"
    echo "## spool vs Apache Kafka 4.4.0 ($(date -u +%Y-%m-%d))"
    echo
    echo "- machine: $(nproc) cores ($cpu), $mem, Linux $(uname -r), brokers' data on $fs"
    echo "- spool: \`$spool_bin\` ($("$spool_bin" --version 2>/dev/null || echo "version unknown")), tree at $rev"
    [[ $spool_bin != */debug/* ]] ||
        echo "- **a debug build: its figures are meaningless (use \`cargo build --release\`)**"
    echo "- Kafka: 4.4.0 (scripts/kafka-reference.sh), broker heap ${KAFKA_BROKER_HEAP:-1g}, $(java -version 2>&1 | head -n 1)"
    echo "- pairs: $pairs, each spool then Kafka (odd pairs) or Kafka then spool (even), every run on fresh brokers and empty directories"
    echo "- measurements: ${selected[*]}; ${record_size}-byte records"
    echo
    echo "Commands (\$B is the bootstrap address, \$T a fresh topic, \$D a fresh directory):"
    echo
    echo '```sh'
    echo "# one spool broker; B=127.0.0.1:$spool_kafka_port"
    spool_broker_args '$D' 1 1 ""
    echo "${cmd[*]} &"
    echo "# three spool brokers; B=127.0.0.1:$spool_cluster_kafka_port,127.0.0.1:$((spool_cluster_kafka_port + 1)),127.0.0.1:$((spool_cluster_kafka_port + 2))"
    local node peers="1=127.0.0.1:$spool_cluster_grpc_port,2=127.0.0.1:$((spool_cluster_grpc_port + 1)),3=127.0.0.1:$((spool_cluster_grpc_port + 2))"
    for node in 1 2 3; do
        spool_broker_args '$D' 3 "$node" "$peers"
        echo "${cmd[*]} &"
    done
    echo "# stopped with kill -TERM"
    echo "# one Kafka broker; B=127.0.0.1:$kafka_port"
    echo "bash scripts/kafka-reference.sh start \$D $kafka_port"
    echo "# three Kafka brokers; B=127.0.0.1:$kafka_cluster_port,127.0.0.1:$((kafka_cluster_port + 1)),127.0.0.1:$((kafka_cluster_port + 2))"
    echo "bash scripts/kafka-reference.sh start-cluster \$D $kafka_cluster_port"
    echo "bash scripts/kafka-reference.sh stop \$D"
    echo "# K='bash scripts/kafka-reference.sh tool'; before each run:"
    topic_args '$B' '$T' '$P' '$R'
    echo "\$K ${cmd[*]}    # P=1 R=1, cluster: P=1|3 R=3"
    local m
    for m in "${selected[@]}"; do
        case $m in
        produce)
            producer_args '$B' '$T' "$records" -1 1
            echo "\$K ${cmd[*]}"
            producer_args '$B' '$T' "$records" -1 all
            echo "\$K ${cmd[*]}"
            ;;
        consume)
            producer_args '$B' '$T' "$records" -1 1
            echo "\$K ${cmd[*]}    # fills \$T, not timed"
            consumer_args '$B' '$T' "$records" 'bench-$PAIR'
            echo "\$K ${cmd[*]}"
            ;;
        e2e)
            e2e_args '$B' '$T'
            echo "\$K ${cmd[*]}"
            producer_args '$B' '$T' $((latency_rate * latency_seconds)) "$latency_rate" 1
            echo "\$K ${cmd[*]}"
            ;;
        cluster)
            producer_args '$B' '$T' "$records" -1 all
            echo "\$K ${cmd[*]}    # against the three brokers"
            ;;
        esac
    done
    echo '```'
    echo
}

# The table: each row's values per pair for both systems, the ratio
# spool/Kafka per pair and its median.
table() {
    echo "| measurement | better | spool, per pair | Kafka, per pair | spool/Kafka per pair | median |"
    echo "| --- | --- | --- | --- | --- | --- |"
    local key
    for key in "${row_keys[@]}"; do
        awk -F'\t' -v key="$key" -v pairs="$pairs" -v kind="${row_kind[$key]}" \
            -v label="${row_label[$key]}" -v better="${row_better[$key]}" '
            function show(v) {
                if (v == "" ) return "-"
                if (v == "fail") return "fail"
                if (kind == "rate") return v >= 1e6 ? sprintf("%.2f M", v / 1e6) : sprintf("%.1f k", v / 1e3)
                if (kind == "mbps") return sprintf("%.1f", v)
                return v == int(v) ? sprintf("%d", v) : sprintf("%.2f", v)
            }
            function numeric(v) { return v != "" && v != "fail" }
            $1 == key { value[$2, $3] = $4 }
            END {
                n = 0
                for (p = 1; p <= pairs; p++) {
                    s = s (p > 1 ? ", " : "") show(value["spool", p])
                    k = k (p > 1 ? ", " : "") show(value["kafka", p])
                    if (numeric(value["spool", p]) && numeric(value["kafka", p]) && value["kafka", p] > 0) {
                        r = value["spool", p] / value["kafka", p]
                        ratios[++n] = r
                        rs = rs (p > 1 ? ", " : "") sprintf("%.2f", r)
                    } else {
                        rs = rs (p > 1 ? ", " : "") "n/a"
                    }
                }
                # median: insertion sort of the few ratios
                for (i = 2; i <= n; i++) {
                    x = ratios[i]
                    for (j = i - 1; j >= 1 && ratios[j] > x; j--) ratios[j + 1] = ratios[j]
                    ratios[j + 1] = x
                }
                if (n == 0) median = "n/a"
                else if (n % 2) median = sprintf("%.2f", ratios[(n + 1) / 2])
                else median = sprintf("%.2f", (ratios[n / 2] + ratios[n / 2 + 1]) / 2)
                printf "| %s | %s | %s | %s | %s | %s |\n", label, better, s, k, rs, median
            }' "$results"
    done
    echo
    echo "Latencies from Kafka's tools are whole milliseconds except kafka-e2e-latency's average;"
    echo "a ratio is n/a where Kafka's figure is 0 or a run failed. Producer p99 is send to"
    echo "acknowledgement as producer-perf-test measures it (queueing in the producer included)."
    echo "Kafka runs with its defaults, which acknowledge without fsync (log.flush.* unset);"
    echo "spool's acks=all is on disk (fsync) on a majority of replicas (docs/replication.md)."
}

header
for m in "${selected[@]}"; do
    "measure_$m"
done
table
