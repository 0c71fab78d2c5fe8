#!/usr/bin/env bash
# Stream-processing throughput, side by side in one run: spool-streams
# (`spool bench streams`) and Apache Kafka Streams 4.4.0
# (scripts/bench/StreamsBench.java) on the same spool broker, and Kafka
# Streams on Apache Kafka's own broker for reference; the three alternate
# so the machine's noise hits all alike (docs/benchmarks.md).
#
#   bash scripts/bench-streams.sh                         # every case and guarantee, 3 pairs
#   bash scripts/bench-streams.sh count exactly_once_v2   # chosen cases and guarantees
#   bash scripts/bench-streams.sh --pairs 5 --records 200000 passthrough
#   bash scripts/bench-streams.sh --build                 # cargo build --release first
#
# Cases (all five by default, in this order), Kafka's own streams
# benchmark's (its SimpleBenchmark):
#   consume          no streams runtime: a consumer reads the input
#                    (read_committed under exactly_once_v2)
#   consume-produce  no streams runtime: a consumer and a producer copy
#                    each record to the output partition of the same
#                    number; under exactly_once_v2 in transactions of
#                    100 ms carrying the consumer's offsets
#   passthrough      each value upper-cased and written out
#   store            a processor puts each record into a RocksDB store
#                    (with its changelog) and forwards it
#   count            groupByKey().count() in a RocksDB store with its
#                    changelog, the counts written out
# Guarantees (both by default): at_least_once and exactly_once_v2. Each
# run fills `<app-id>-in` (2 partitions, keys key-0..key-9999, 100-byte
# values, acks=all; not timed), then times the case: consume from its
# first poll until it has read N records; the others from the copier's or
# the application's start until a read_committed consumer of
# `<app-id>-out` sees the whole input processed (N records, or the latest
# counts adding up to N); and prints a RESULT line.
#
# For each case, guarantee and pair it runs, every time on a fresh broker
# with empty directories (started before, stopped after: spool with
# SIGTERM, Kafka with kafka-reference.sh stop):
#   spool-streams  `spool bench streams` on spool (its gRPC port)
#   ks-spool       Kafka Streams on spool (spool's Kafka listener)
#   ks-kafka       Kafka Streams on Apache Kafka
# in that order in odd pairs and in the reverse order in even pairs.
# Markdown goes to standard output (machine, exact commands, then the
# table with each run, the ratios spool-streams/Kafka Streams per pair and
# their medians); progress and failures to standard error.
#
# Options: --pairs N (BENCH_PAIRS, 3), --records N (BENCH_RECORDS,
# 1000000), --partitions P (BENCH_PARTITIONS, 2), --keys K (BENCH_KEYS,
# 10000), --build (run `cargo build --release` first). Environment:
# SPOOL_BIN (default ${CARGO_TARGET_DIR:-target}/release/spool), BENCH_DIR
# (where the brokers' and applications' temporary directories go, default
# $TMPDIR or /tmp), KAFKA_BROKER_HEAP (Kafka's broker heap, 1g),
# STREAMS_HEAP (the Kafka Streams JVM's heap, 1g), BENCH_TOOL_TIMEOUT
# (seconds one run may take, 1800), BENCH_KEEP=1 (keep the runs' output
# and the brokers' logs). Ports, on loopback: spool 31092 (Kafka) and
# 31392 (gRPC), Kafka 31192 (and 31292, its controller), as
# scripts/bench-vs-kafka.sh uses (which says why these).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

usage() {
    awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

pairs=${BENCH_PAIRS:-3}
records=${BENCH_RECORDS:-1000000}
partitions=${BENCH_PARTITIONS:-2}
keys=${BENCH_KEYS:-10000}
build=false
cases=()
guarantees=()
while (($#)); do
    case $1 in
    --pairs) pairs=${2:?--pairs needs a number}; shift 2 ;;
    --records) records=${2:?--records needs a number}; shift 2 ;;
    --partitions) partitions=${2:?--partitions needs a number}; shift 2 ;;
    --keys) keys=${2:?--keys needs a number}; shift 2 ;;
    --build) build=true; shift ;;
    -h | --help) usage ;;
    consume | consume-produce | passthrough | store | count) cases+=("$1"); shift ;;
    at_least_once | exactly_once_v2) guarantees+=("$1"); shift ;;
    *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
((${#cases[@]})) || cases=(consume consume-produce passthrough store count)
((${#guarantees[@]})) || guarantees=(at_least_once exactly_once_v2)
for n in "$pairs" "$records" "$partitions" "$keys"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] ||
        { echo "--pairs, --records, --partitions and --keys take positive numbers" >&2; exit 2; }
done

tool_timeout=${BENCH_TOOL_TIMEOUT:-1800}
streams_heap=${STREAMS_HEAP:-1g}

# The ports of scripts/bench-vs-kafka.sh's single brokers.
spool_kafka_port=31092 spool_grpc_port=31392   # one spool broker
kafka_port=31192                               # one Kafka broker (+ 31292)

# The three columns, in the order of odd pairs.
systems=(spool-streams ks-spool ks-kafka)

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
# Found out now rather than after the first broker has started.
if ! "$spool_bin" bench streams --help >/dev/null 2>&1; then
    echo "$spool_bin has no \`bench streams\` command: rebuild it" >&2
    exit 1
fi

ref=(bash "$root/scripts/kafka-reference.sh")
"${ref[@]}" fetch
kafka_classpath=$("${ref[@]}" classpath)
# The harness's log4j configuration (warnings and errors, to stderr), as
# tests/common/java.rs finds it.
log4j=${SPOOL_KAFKA_CACHE:-$HOME/.cache/spool/kafka-4.4.0}/log4j2.properties

base=${BENCH_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$base"
work=$(mktemp -d "$base/spool-bench-streams.XXXXXX")
results=$work/results.tsv
: >"$results"

log() { echo "[bench-streams $(date +%T)] $*" >&2; }

# Compiled once per run of this script, from the tree's source, so the
# figures always come from the program shown in the header.
classes=$work/classes
mkdir -p "$classes"
javac -d "$classes" -cp "$kafka_classpath" "$root/scripts/bench/StreamsBench.java" ||
    { echo "compiling scripts/bench/StreamsBench.java failed" >&2; exit 1; }

# What runs now, stopped by cleanup on any exit (failure, Ctrl-C, TERM).
spool_pid=
kafka_dir=
job_pid=

stop_spool() {
    local waited=0
    [[ -n $spool_pid ]] || return 0
    kill -TERM "$spool_pid" 2>/dev/null || true
    while kill -0 "$spool_pid" 2>/dev/null && ((waited < 60)); do
        sleep 0.5
        waited=$((waited + 1))
    done
    kill -KILL "$spool_pid" 2>/dev/null || true
    wait "$spool_pid" 2>/dev/null || true
    spool_pid=
}

stop_kafka() {
    [[ -n $kafka_dir ]] || return 0
    "${ref[@]}" stop "$kafka_dir" || true
    kafka_dir=
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
        echo "run outputs and broker logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Runs a command in the background, standard output in OUT and standard
# error in ERR (apart, so that no log line can land inside the RESULT
# line), and waits for it, so a signal to this script is handled at once
# (cleanup stops it).
run_job() { # OUT ERR COMMAND...
    local out=$1 err=$2 rc=0
    shift 2
    "$@" >"$out" 2>"$err" &
    job_pid=$!
    wait "$job_pid" || rc=$?
    job_pid=
    return "$rc"
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

# The command lines, built in one place for the runs and for the header's
# list of commands. Each sets the array `cmd`.
spool_broker_args() { # DIR
    cmd=("$spool_bin" broker --node-id 1 --data-dir "$1/node1"
        --listen "127.0.0.1:$spool_grpc_port" --kafka-listen "127.0.0.1:$spool_kafka_port"
        --metrics-listen off)
}
# Both programs take the same arguments; only the bootstrap differs.
bench_options() { # BOOTSTRAP CASE GUARANTEE APP_ID STATE_DIR
    bench_opts=(--bootstrap "$1" --case "$2" --records "$records" --guarantee "$3"
        --app-id "$4" --state-dir "$5" --partitions "$partitions" --keys "$keys")
}
spool_streams_args() { # CASE GUARANTEE APP_ID STATE_DIR
    bench_options "127.0.0.1:$spool_grpc_port" "$@"
    cmd=("$spool_bin" bench streams "${bench_opts[@]}")
}
kafka_streams_args() { # BOOTSTRAP CASE GUARANTEE APP_ID STATE_DIR CLASSPATH LOG4J
    bench_options "$1" "$2" "$3" "$4" "$5"
    cmd=(java "-Xmx$streams_heap" "-Dlog4j2.configurationFile=$7" -cp "$6" StreamsBench
        "${bench_opts[@]}")
}

# start_spool DIR: one spool broker, data and log in DIR; waits until it
# listens.
start_spool() {
    local dir=$1 waited=0
    mkdir -p "$dir"
    ports_free "$spool_grpc_port" "$spool_kafka_port" || return 1
    spool_broker_args "$dir"
    "${cmd[@]}" >"$dir/node1.log" 2>&1 &
    spool_pid=$!
    until grep -qs " listening on " "$dir/node1.log"; do
        sleep 0.2
        waited=$((waited + 1))
        if ((waited > 150)) || ! kill -0 "$spool_pid" 2>/dev/null; then
            echo "the spool broker did not start; its log:" >&2
            tail -n 30 "$dir/node1.log" >&2
            return 1
        fi
    done
}

# start_kafka DIR: one Kafka broker (and controller), data and log in DIR.
start_kafka() {
    local dir=$1
    ports_free "$kafka_port" $((kafka_port + 100)) || return 1
    kafka_dir=$dir
    mkdir -p "$dir"
    run_job "$dir/start.out" "$dir/start.err" "${ref[@]}" start "$dir" "$kafka_port" ||
        { cat "$dir/start.out" "$dir/start.err" >&2; return 1; }
}

record() { # CASE GUARANTEE SYSTEM PAIR VALUE (records/s, or "fail")
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
    log "$1 $2 $3 pair $4: $5"
}

# Shows why a run failed: the program's output and the broker's log tail.
explain() { # RUNDIR
    local f
    for f in "$1"/bench.out "$1"/bench.err "$1"/start.err "$1"/node*.log; do
        [[ -s $f ]] || continue
        echo "---- $f" >&2
        tail -n 20 "$f" >&2 || true
    done
}

# The RESULT line both programs print: `RESULT impl=I case=C guarantee=G
# records=N seconds=S records_per_s=R`. Prints R once every field is as
# expected, or fails.
parse_result() { # OUT IMPL CASE GUARANTEE
    awk -v impl="$2" -v case_="$3" -v guarantee="$4" -v records="$records" '
        $1 == "RESULT" {
            delete f
            for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            line = $0
        }
        END {
            if (line == "") { print "no RESULT line" > "/dev/stderr"; exit 1 }
            if (f["impl"] != impl || f["case"] != case_ || f["guarantee"] != guarantee ||
                f["records"] != records || f["records_per_s"] !~ /^[0-9]+$/) {
                print "unexpected RESULT line: " line > "/dev/stderr"; exit 1
            }
            print f["records_per_s"]
        }' "$1"
}

# One run of SYSTEM on a fresh broker in DIR.
run_one() { # CASE GUARANTEE SYSTEM PAIR DIR
    local case=$1 guarantee=$2 system=$3 pair=$4 dir=$5 impl=kafka-streams started=false
    local app_id rate
    # Each run has a broker of its own; the id still tells the runs apart
    # in the kept logs.
    app_id=bench-$case-$([[ $guarantee == at_least_once ]] && echo alos || echo eos)-$pair-$system
    mkdir -p "$dir/state"
    case $system in
    spool-streams)
        impl=spool-streams
        if start_spool "$dir"; then started=true; fi
        spool_streams_args "$case" "$guarantee" "$app_id" "$dir/state"
        ;;
    ks-spool)
        if start_spool "$dir"; then started=true; fi
        kafka_streams_args "127.0.0.1:$spool_kafka_port" "$case" "$guarantee" "$app_id" \
            "$dir/state" "$kafka_classpath:$classes" "$log4j"
        ;;
    ks-kafka)
        if start_kafka "$dir"; then started=true; fi
        kafka_streams_args "127.0.0.1:$kafka_port" "$case" "$guarantee" "$app_id" \
            "$dir/state" "$kafka_classpath:$classes" "$log4j"
        ;;
    esac
    if $started; then
        # Kafka's classpath left out: it is long and always the same.
        if [[ $impl == spool-streams ]]; then
            log "+ ${cmd[*]}"
        else
            log "+ java ... StreamsBench ${bench_opts[*]}"
        fi
        if run_job "$dir/bench.out" "$dir/bench.err" timeout -k 10 "$tool_timeout" "${cmd[@]}" &&
            rate=$(parse_result "$dir/bench.out" "$impl" "$case" "$guarantee"); then
            record "$case" "$guarantee" "$system" "$pair" "$rate"
            return 0
        fi
    fi
    explain "$dir"
    record "$case" "$guarantee" "$system" "$pair" fail
}

# Every pair of one case and guarantee, alternating the order.
measure() { # CASE GUARANTEE
    local pair system order dir
    for pair in $(seq "$pairs"); do
        if ((pair % 2)); then
            order=("${systems[@]}")
        else
            order=(ks-kafka ks-spool spool-streams)
        fi
        for system in "${order[@]}"; do
            dir=$work/$1-$2-$system-$pair
            log "$1 $2, pair $pair/$pairs: $system"
            run_one "$1" "$2" "$system" "$pair" "$dir"
            stop_spool
            stop_kafka
            # The data and the stores; logs and outputs stay until the end.
            rm -rf "$dir"/node*/ "$dir/state"
        done
    done
}

# The header: machine, versions, and the exact commands of each run ($D,
# $ID, $CP, $L stay literal there: placeholders).
# shellcheck disable=SC2016
header() {
    local mem fs rev cpu
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    fs=$(df -PT "$work" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')
    rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -z $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] || rev+=" (with local changes)"
    echo "## spool-streams vs Apache Kafka Streams 4.4.0 ($(date -u +%Y-%m-%d))"
    echo
    echo "- machine: $(nproc) cores ($cpu), $mem, Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); brokers' data and state stores on $fs"
    echo "- spool: \`$spool_bin\` ($("$spool_bin" --version 2>/dev/null || echo "version unknown")), tree at $rev"
    [[ $spool_bin != */debug/* ]] ||
        echo "- **a debug build: its figures are meaningless (use \`cargo build --release\`)**"
    echo "- Kafka Streams and Kafka: 4.4.0 (scripts/kafka-reference.sh), Kafka Streams heap $streams_heap, broker heap ${KAFKA_BROKER_HEAP:-1g}, $(java -version 2>&1 | head -n 1)"
    echo "- Kafka Streams settings: one stream thread, the record cache off (statestore.cache.max.bytes 0: spool-streams has none, so both write one output record per input), its defaults otherwise (commit.interval.ms 100 under exactly_once_v2 and 30000 under at_least_once, as spool-streams')"
    echo "- pairs: $pairs, each spool-streams, Kafka Streams on spool, Kafka Streams on Kafka (odd pairs) or the reverse (even), every run on a fresh broker and empty directories"
    echo "- cases: ${cases[*]}; guarantees: ${guarantees[*]}; $records records per run, 100-byte values, $keys keys, $partitions partitions"
    echo
    echo "Commands (\$D is a fresh directory, \$ID the run's application id, \$CP Kafka's"
    echo "classpath (\`bash scripts/kafka-reference.sh classpath\`) plus StreamsBench's classes,"
    echo "\$L the harness's log4j2.properties; C and G the case and guarantee):"
    echo
    echo '```sh'
    echo "javac -d \$CLASSES -cp \"\$(bash scripts/kafka-reference.sh classpath)\" scripts/bench/StreamsBench.java"
    echo "# spool broker (spool-streams and Kafka Streams on spool), stopped with kill -TERM"
    spool_broker_args '$D'
    echo "${cmd[*]} &"
    echo "# Kafka broker (Kafka Streams on Kafka)"
    echo "bash scripts/kafka-reference.sh start \$D $kafka_port"
    echo "bash scripts/kafka-reference.sh stop \$D"
    echo "# spool-streams on spool"
    spool_streams_args C G '$ID' '$D/state'
    echo "${cmd[*]}"
    echo "# Kafka Streams on spool"
    kafka_streams_args "127.0.0.1:$spool_kafka_port" C G '$ID' '$D/state' '$CP' '$L'
    echo "${cmd[*]}"
    echo "# Kafka Streams on Kafka"
    kafka_streams_args "127.0.0.1:$kafka_port" C G '$ID' '$D/state' '$CP' '$L'
    echo "${cmd[*]}"
    echo '```'
    echo
}

# Rates as bench-vs-kafka.sh prints them; medians of the few ratios.
awk_lib='
function show(v) {
    if (v == "") return "-"
    if (v == "fail") return "fail"
    return v >= 1e6 ? sprintf("%.2f M", v / 1e6) : sprintf("%.1f k", v / 1e3)
}
function numeric(v) { return v != "" && v != "fail" }
function ratio(a, b) { return numeric(a) && numeric(b) && b > 0 ? a / b : "" }
function median(list, n,    i, j, x) {
    for (i = 2; i <= n; i++) {
        x = list[i]
        for (j = i - 1; j >= 1 && list[j] > x; j--) list[j + 1] = list[j]
        list[j + 1] = x
    }
    if (n == 0) return "n/a"
    if (n % 2) return sprintf("%.2f", list[(n + 1) / 2])
    return sprintf("%.2f", (list[n / 2] + list[n / 2 + 1]) / 2)
}
function fmt(r) { return r == "" ? "n/a" : sprintf("%.2f", r) }
'

# The table: each run's records/s and the ratios per pair, then their
# medians per case and guarantee.
table() {
    local case guarantee
    echo "| case | guarantee | pair | spool-streams on spool (records/s) | Kafka Streams on spool (records/s) | Kafka Streams on Kafka (records/s) | spool-streams / Kafka Streams, same broker (spool) | spool-streams on spool / Kafka Streams on Kafka |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for case in "${cases[@]}"; do
        for guarantee in "${guarantees[@]}"; do
            awk -F'\t' -v c="$case" -v g="$guarantee" -v pairs="$pairs" "$awk_lib"'
                $1 == c && $2 == g { v[$3, $4] = $5 }
                END {
                    for (p = 1; p <= pairs; p++) {
                        ss = v["spool-streams", p]; kss = v["ks-spool", p]; ksk = v["ks-kafka", p]
                        printf "| %s | %s | %d | %s | %s | %s | %s | %s |\n", c, g, p,
                            show(ss), show(kss), show(ksk), fmt(ratio(ss, kss)), fmt(ratio(ss, ksk))
                    }
                }' "$results"
        done
    done
    echo
    echo "Medians over the pairs (a ratio above 1: spool-streams processed faster):"
    echo
    echo "| case | guarantee | spool-streams / Kafka Streams, same broker (spool) | spool-streams on spool / Kafka Streams on Kafka | Kafka Streams on spool / on Kafka |"
    echo "| --- | --- | --- | --- | --- |"
    for case in "${cases[@]}"; do
        for guarantee in "${guarantees[@]}"; do
            awk -F'\t' -v c="$case" -v g="$guarantee" -v pairs="$pairs" "$awk_lib"'
                $1 == c && $2 == g { v[$3, $4] = $5 }
                END {
                    for (p = 1; p <= pairs; p++) {
                        ss = v["spool-streams", p]; kss = v["ks-spool", p]; ksk = v["ks-kafka", p]
                        if ((r = ratio(ss, kss)) != "") same[++a] = r
                        if ((r = ratio(ss, ksk)) != "") cross[++b] = r
                        if ((r = ratio(kss, ksk)) != "") broker[++d] = r
                    }
                    printf "| %s | %s | %s | %s | %s |\n", c, g, median(same, a), median(cross, b), median(broker, d)
                }' "$results"
        done
    done
    echo
    echo "records/s is the input's record count over the time from the application's start"
    echo "(group join and task set-up included) until its committed output showed every input"
    echo "record processed; a ratio is n/a where a run failed. With its record cache on (its"
    echo "default), Kafka Streams would hold the counts until a commit, and under at_least_once"
    echo "(commit.interval.ms 30000) the count case would time its first commit, not its"
    echo "processing: hence the cache is off."
}

header
for case in "${cases[@]}"; do
    for guarantee in "${guarantees[@]}"; do
        measure "$case" "$guarantee"
    done
done
table
