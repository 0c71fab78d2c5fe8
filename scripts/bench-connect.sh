#!/usr/bin/env bash
# PostgreSQL sink throughput, side by side in one run (issue 20): spool's
# PostgresSink (`spool bench connect`, exactly-once), the PostgreSQL COPY
# ceiling (`psql \copy` of the same rows) and Kafka Connect 4.4.0
# (scripts/kafka-reference.sh) running Debezium's JDBC sink, all into one
# PostgreSQL started here, the sinks all reading the same spool topic
# (docs/benchmarks.md, "Connect").
#
#   bash scripts/bench-connect.sh                          # 1,000,000 records, one run
#   bash scripts/bench-connect.sh --records 200000 --runs 3
#   bash scripts/bench-connect.sh --skip-spool             # Kafka Connect and COPY only; the
#                                                          # topic filled by spool's datagen
#   bash scripts/bench-connect.sh --skip-kafka-connect     # spool and COPY only
#   bash scripts/bench-connect.sh fetch                    # Debezium's JDBC sink into the cache, only
#
# What one run does (odd runs in this order, even runs Kafka Connect's two
# first, COPY always last):
#   spool insert   `spool bench connect --mode insert --keep-topic` on the
#                  spool broker started here: fills TOPIC with N datagen
#                  `orders` records (JSON with schemas, keys too) unless it
#                  holds them already, then times the exactly-once sink
#                  from its start until all N rows are committed
#   spool upsert   the same with --mode upsert, into a table of its own
#   KC insert      Kafka Connect 4.4.0 standalone (ConnectStandalone, a
#                  fresh worker, started before the clock) with Debezium's
#                  JDBC sink reading TOPIC through spool's Kafka listener:
#                  timed from the connector's creation (REST POST) until
#                  `select count(*)` reaches N (polled every 0.2 s once
#                  the table's size says 90 % of N, every 2 s before)
#   KC upsert      the same, insert.mode=upsert, primary key the value's `id`
#   COPY           the spool insert table's rows (Kafka Connect's, with
#                  --skip-spool) copied out to CSV, then timed
#                  `psql -c "\copy t2 from FILE csv"` into an empty table
#                  made LIKE it (INCLUDING ALL), three times, and the same
#                  in COPY's binary format; the median of each
# Every sink writes into a fresh database of its own (so no run's tables or
# offsets can meet another's); a run's databases are dropped after it.
# Markdown goes to standard output (machine, settings, exact commands, a
# table of every run, medians and the issue's goals); progress to stderr.
#
# Options: --records N (BENCH_RECORDS, 1000000), --runs R (BENCH_RUNS, 1),
# --partitions P (BENCH_PARTITIONS, 1), --tasks K (sink tasks, both
# runtimes; default: spool's default and tasks.max=1), --topic T
# (bench-connect-orders), --skip-spool (alias --kafka-connect-only: no
# `spool bench connect`; the topic is filled by the datagen connector of
# `$SPOOL_FILL_BIN connect standalone`), --skip-kafka-connect,
# --kc-batch-size B (Debezium's batch.size and the worker consumer's
# max.poll.records, 10000), --no-rewrite-batched (no
# reWriteBatchedInserts=true on Kafka Connect's JDBC URL), --kc-warmup
# (before each timed Kafka Connect sink, the same sink once over the whole
# topic on the same worker, untimed: figures of a warmed-up JVM).
# Environment: SPOOL_BIN (default ${CARGO_TARGET_DIR:-target}/release/spool;
# build it with `cargo build --release`: this script builds nothing),
# SPOOL_FILL_BIN (the binary whose datagen fills the topic with
# --skip-spool, default SPOOL_BIN), BENCH_DIR (where the temporary
# directory goes, default $TMPDIR or /tmp; 1M records take about 3 GB
# there), PG_SHARED_BUFFERS (2GB), PG_EXTRA_OPTIONS (more of postgres's
# options, e.g. "-c track_commit_timestamp=on"), CONNECT_HEAP (Kafka Connect's heap, 1g),
# DEBEZIUM_JDBC_VERSION (3.6.0.Final; 3.6.1.Final is not served by the
# registry this project uses), BENCH_TOOL_TIMEOUT (seconds one sink run may
# take, 1800), BENCH_KEEP=1 (keep the directory: logs, configs, data).
# Ports, on loopback: spool 31740 (gRPC) and 31741 (Kafka), Kafka Connect's
# REST 31742, the datagen worker's REST 31743, PostgreSQL the first free of
# 31744-31749.
#
# PostgreSQL (initdb + pg_ctl in the temporary directory, as the
# `postgres` user when run as root, since PostgreSQL refuses root) is
# durable, as exactly-once needs: fsync, full_page_writes and
# synchronous_commit on (the defaults); tuned only so that the runs do not
# measure its housekeeping: shared_buffers 2GB, wal_buffers 64MB,
# max_wal_size 4GB and checkpoint_timeout 30min (no checkpoint in the
# middle of a run), wal_level replica (the default: COPY gets no
# skip-WAL shortcut that a sink would not get).
#
# Debezium's JDBC sink (io.debezium:debezium-connector-jdbc) and its
# dependencies are fetched with Maven into
# ~/.cache/spool/debezium-jdbc-<version>/plugins (Kafka Connect's
# plugin.path), outside the clone; nothing of it is committed. Left out of
# the plugin: Kafka's own jars and Jackson's core (Kafka Connect provides
# them; a second Jackson in the plugin breaks Hibernate's start with
# "Jdk8Module not a subtype"), and the drivers of other databases; its
# PostgreSQL driver is kept. hibernate-agroal 7.2.6.Final, which Debezium
# 3.6.0 names, is not served here: 7.2.0.Final stands in.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

usage() {
    awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

debezium_version=${DEBEZIUM_JDBC_VERSION:-3.6.0.Final}
# Debezium 3.6.0 depends on org.hibernate:hibernate-agroal:7.2.6.Final (a
# relocation to org.hibernate.orm), which the registry does not serve.
agroal_version=7.2.0.Final
debezium_cache=$HOME/.cache/spool/debezium-jdbc-$debezium_version
plugin_path=$debezium_cache/plugins

fetch_debezium() {
    [[ -f $debezium_cache/fetched ]] && return 0
    command -v mvn >/dev/null 2>&1 || bash "$root/scripts/kafka-reference.sh" fetch
    local work
    work=$(mktemp -d)
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>spool</groupId><artifactId>debezium-jdbc</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.debezium</groupId><artifactId>debezium-connector-jdbc</artifactId><version>$debezium_version</version>
      <exclusions>
        <exclusion><groupId>org.hibernate</groupId><artifactId>hibernate-agroal</artifactId></exclusion>
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>com.fasterxml.jackson.core</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>org.slf4j</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>com.mysql</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>org.mariadb.jdbc</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>com.microsoft.sqlserver</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>com.oracle.database.jdbc</groupId><artifactId>*</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency><groupId>org.hibernate.orm</groupId><artifactId>hibernate-agroal</artifactId><version>$agroal_version</version></dependency>
  </dependencies>
</project>
EOF
    local dest=$plugin_path/debezium-connector-jdbc
    echo "fetching Debezium's JDBC sink $debezium_version from Maven Central into $dest" >&2
    rm -rf "$plugin_path"
    mkdir -p "$dest"
    (cd "$work" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$dest") ||
        { echo "fetching Debezium's JDBC sink failed" >&2; rm -rf "$work"; exit 1; }
    rm -rf "$work"
    touch "$debezium_cache/fetched"
}

records=${BENCH_RECORDS:-1000000}
runs=${BENCH_RUNS:-1}
partitions=${BENCH_PARTITIONS:-1}
tasks=
topic=bench-connect-orders
skip_spool=false
skip_kc=false
kc_batch=10000
rewrite_batched=true
kc_warmup=false
while (($#)); do
    case $1 in
    fetch) fetch_debezium; exit 0 ;;
    --records) records=${2:?--records needs a number}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --partitions) partitions=${2:?--partitions needs a number}; shift 2 ;;
    --tasks) tasks=${2:?--tasks needs a number}; shift 2 ;;
    --topic) topic=${2:?--topic needs a name}; shift 2 ;;
    --skip-spool | --kafka-connect-only) skip_spool=true; shift ;;
    --skip-kafka-connect) skip_kc=true; shift ;;
    --kc-batch-size) kc_batch=${2:?--kc-batch-size needs a number}; shift 2 ;;
    --no-rewrite-batched) rewrite_batched=false; shift ;;
    --kc-warmup) kc_warmup=true; shift ;;
    -h | --help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
for n in "$records" "$runs" "$partitions" "$kc_batch" ${tasks:+"$tasks"}; do
    [[ $n =~ ^[1-9][0-9]*$ ]] ||
        { echo "--records, --runs, --partitions, --tasks and --kc-batch-size take positive numbers" >&2; exit 2; }
done
if $skip_spool && $skip_kc; then
    echo "--skip-spool and --skip-kafka-connect together leave nothing to compare" >&2
    exit 2
fi

tool_timeout=${BENCH_TOOL_TIMEOUT:-1800}
connect_heap=${CONNECT_HEAP:-1g}
shared_buffers=${PG_SHARED_BUFFERS:-2GB}
spool_grpc_port=31740 spool_kafka_port=31741 kc_rest_port=31742 fill_rest_port=31743

spool_bin=${SPOOL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/spool}
if [[ ! -x $spool_bin ]]; then
    echo "no spool binary at $spool_bin: build it with \`cargo build --release\`," \
        "or point SPOOL_BIN at one" >&2
    exit 1
fi
spool_bin=$(cd "$(dirname "$spool_bin")" && pwd)/$(basename "$spool_bin")
# Found out now rather than after PostgreSQL and the broker have started.
if ! $skip_spool && ! "$spool_bin" bench connect --help >/dev/null 2>&1; then
    echo "$spool_bin has no \`bench connect\` command: rebuild it (cargo build --release)," \
        "or measure only Kafka Connect and COPY with --skip-spool" >&2
    exit 1
fi
fill_bin=$spool_bin
if $skip_spool; then
    fill_bin=${SPOOL_FILL_BIN:-$spool_bin}
    if ! "$fill_bin" connect standalone --help >/dev/null 2>&1; then
        echo "$fill_bin has no \`connect standalone\` to fill the topic with:" \
            "point SPOOL_FILL_BIN at a binary that has" >&2
        exit 1
    fi
fi

# PostgreSQL's programs: PATH's, else the newest of Debian's
# /usr/lib/postgresql/<version>/bin (as connect/tests/pg/mod.rs finds them).
pg_bin=
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    pg_bin=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
else
    while read -r dir; do
        [[ -x $dir/initdb && -x $dir/pg_ctl ]] && pg_bin=$dir
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
fi
if [[ -z $pg_bin ]] || ! command -v psql >/dev/null 2>&1; then
    echo "PostgreSQL's initdb, pg_ctl and psql are needed: run scripts/ensure-test-deps.sh," \
        "which installs Debian's postgresql package" >&2
    exit 1
fi
pg_as=()
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 ||
        { echo "no postgres user to run PostgreSQL as (it refuses root): run scripts/ensure-test-deps.sh" >&2; exit 1; }
    pg_as=(runuser -u postgres --)
fi

ref=(bash "$root/scripts/kafka-reference.sh")
kafka_classpath='' log4j=''
if ! $skip_kc; then
    "${ref[@]}" fetch
    fetch_debezium
    kafka_classpath=$("${ref[@]}" classpath)
    log4j=${SPOOL_KAFKA_CACHE:-$HOME/.cache/spool/kafka-4.4.0}/log4j2.properties
fi

base=${BENCH_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$base"
work=$(mktemp -d "$base/spool-bench-connect.XXXXXX")
# PostgreSQL runs as another user: it must reach its directory inside.
chmod 711 "$work"
results=$work/results.tsv
: >"$results"

log() { echo "[bench-connect $(date +%T)] $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "fail" }'; }

# What runs now, stopped by cleanup on any exit (failure, Ctrl-C, TERM).
spool_pid='' kc_pid='' fill_pid='' job_pid='' pg_started=false

stop_pid() { # PID: TERM, up to 30 s, then KILL
    local pid=$1 waited=0
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((waited < 60)); do
        sleep 0.5
        waited=$((waited + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    trap - EXIT INT TERM
    if [[ -n $job_pid ]]; then
        kill -TERM "$job_pid" 2>/dev/null || true
        wait "$job_pid" 2>/dev/null || true
    fi
    stop_pid "$kc_pid"
    stop_pid "$fill_pid"
    stop_pid "$spool_pid"
    if $pg_started; then
        "${pg_as[@]}" env LC_ALL=C "$pg_bin/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [[ -n ${BENCH_KEEP:-} ]]; then
        echo "logs, configs and data kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Runs a command in the background, output to OUT and ERR, and waits for
# it, so a signal to this script is handled at once (cleanup stops it).
run_job() { # OUT ERR COMMAND...
    local out=$1 err=$2 rc=0
    shift 2
    "$@" >"$out" 2>"$err" &
    job_pid=$!
    wait "$job_pid" || rc=$?
    job_pid=
    return "$rc"
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports_free() {
    local port
    for port in "$@"; do
        if port_taken "$port"; then
            echo "port $port on 127.0.0.1 is taken; stop what listens there" >&2
            return 1
        fi
    done
}

# ---- PostgreSQL

pg_port=
for p in 31744 31745 31746 31747 31748 31749; do
    port_taken "$p" || { pg_port=$p; break; }
done
[[ -n $pg_port ]] || { echo "ports 31744-31749 are all taken" >&2; exit 1; }
pg_options="-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=on -c full_page_writes=on -c synchronous_commit=on -c shared_buffers=$shared_buffers -c wal_buffers=64MB -c max_wal_size=4GB -c checkpoint_timeout=30min${PG_EXTRA_OPTIONS:+ $PG_EXTRA_OPTIONS}"

pg() { # DB ARGS...: psql, quiet, unaligned, failing on the first error
    local db=$1
    shift
    PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d "$db" "$@"
}

start_pg() {
    mkdir -p "$work/pg"
    [[ ${#pg_as[@]} -eq 0 ]] || chown postgres: "$work/pg"
    log "initdb and pg_ctl start (port $pg_port)"
    (cd "$work/pg" && "${pg_as[@]}" env LC_ALL=C "$pg_bin/initdb" -D "$work/pg/data" -U postgres \
        --auth=trust -E UTF8 --locale=C >"$work/pg/initdb.log" 2>&1) ||
        { cat "$work/pg/initdb.log" >&2; return 1; }
    pg_started=true
    (cd "$work/pg" && "${pg_as[@]}" env LC_ALL=C "$pg_bin/pg_ctl" -D "$work/pg/data" \
        -l "$work/pg/server.log" -o "$pg_options" -w -t 60 start >/dev/null) ||
        { tail -n 30 "$work/pg/server.log" >&2; return 1; }
}

# ---- spool

spool_broker_args() { # DIR
    cmd=("$spool_bin" broker --node-id 1 --data-dir "$1"
        --listen "127.0.0.1:$spool_grpc_port" --kafka-listen "127.0.0.1:$spool_kafka_port"
        --metrics-listen off)
}

start_spool() {
    local dir=$work/spool waited=0
    mkdir -p "$dir"
    ports_free "$spool_grpc_port" "$spool_kafka_port"
    spool_broker_args "$dir/data"
    log "+ ${cmd[*]}"
    "${cmd[@]}" >"$dir/broker.log" 2>&1 &
    spool_pid=$!
    until grep -qs " listening on " "$dir/broker.log"; do
        sleep 0.2
        waited=$((waited + 1))
        if ((waited > 150)) || ! kill -0 "$spool_pid" 2>/dev/null; then
            echo "the spool broker did not start; its log:" >&2
            tail -n 30 "$dir/broker.log" >&2
            return 1
        fi
    done
}

# The topic's records: the sum of its partitions' high watermarks (which
# count transaction markers too, so at least the records).
topic_records() {
    { "$spool_bin" topics describe "$topic" --bootstrap "127.0.0.1:$spool_grpc_port" 2>/dev/null || true; } |
        awk '/^partition[[:space:]]+leader/ { p = 1; next }
             /^active producers/ { p = 0 }
             p && NF == 5 && $1 ~ /^[0-9]+$/ { s += $4 }
             END { print s + 0 }'
}

spool_bench_args() { # MODE URL TABLE
    cmd=("$spool_bin" bench connect --bootstrap "127.0.0.1:$spool_grpc_port" --connection-url "$2"
        --records "$records" --mode "$1" --topic "$topic" --table "$3" --partitions "$partitions"
        ${tasks:+--tasks "$tasks"} --keep-topic)
}

# Fills the topic with --skip-spool: spool's datagen connector, `orders`,
# keys and values JSON with schemas, as `spool bench connect` fills it.
fill_topic() {
    local dir=$work/fill waited=0 have
    have=$(topic_records)
    if ((have >= records)); then
        return 0
    fi
    mkdir -p "$dir"
    if ((have > 0)); then
        echo "$topic holds $have records, fewer than $records: give another --topic" >&2
        return 1
    fi
    "$spool_bin" topics create "$topic" --partitions "$partitions" \
        --bootstrap "127.0.0.1:$spool_grpc_port" >/dev/null
    ports_free "$fill_rest_port"
    cat >"$dir/worker.toml" <<EOF
"bootstrap.servers" = "127.0.0.1:$spool_grpc_port"
"offset.storage.file.filename" = "$dir/offsets.json"
"offset.flush.interval.ms" = 1000
"listeners" = "http://127.0.0.1:$fill_rest_port"
EOF
    cat >"$dir/datagen.json" <<EOF
{"name": "bench-connect-datagen", "config": {
  "connector.class": "DatagenConnector", "tasks.max": "1", "kafka.topic": "$topic",
  "quickstart": "orders", "iterations": "$records",
  "key.converter": "json", "key.converter.schemas.enable": "true",
  "value.converter": "json", "value.converter.schemas.enable": "true"}}
EOF
    log "filling $topic with $records datagen orders: $fill_bin connect standalone"
    "$fill_bin" connect standalone "$dir/worker.toml" "$dir/datagen.json" >"$dir/worker.log" 2>&1 &
    fill_pid=$!
    local t0
    t0=$(now)
    while (( $(topic_records) < records )); do
        sleep 1
        waited=$((waited + 1))
        if ((waited > tool_timeout)) || ! kill -0 "$fill_pid" 2>/dev/null; then
            echo "filling $topic failed; the worker's log:" >&2
            tail -n 30 "$dir/worker.log" >&2
            return 1
        fi
    done
    stop_pid "$fill_pid"
    fill_pid=
    log "filled $topic in $(elapsed "$t0" "$(now)") s"
}

# ---- results

record() { # RUN SYSTEM ROWS_PER_S SECONDS NOTE
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
    if [[ $3 == fail ]]; then
        log "run $1 $2: failed${5:+ ($5)}"
    else
        log "run $1 $2: $3 rows/s${4:+ (${4} s)}${5:+; $5}"
    fi
}

# A field of the JSON line `spool bench connect` prints (numbers and
# plain strings only).
json_field() { # FILE FIELD
    grep -o "\"$2\":[^,}]*" "$1" | head -n 1 | cut -d: -f2- | tr -d '" '
}

run_spool() { # RUN MODE
    local run=$1 mode=$2 db table dir rows seconds got rc
    db=r${run}_spool_$mode table=spool_$mode dir=$work/r$run-spool-$mode
    mkdir -p "$dir"
    pg postgres -c "create database $db" -c checkpoint
    spool_bench_args "$mode" "postgresql://postgres@127.0.0.1:$pg_port/$db" "$table"
    log "+ ${cmd[*]}"
    rc=0
    run_job "$dir/bench.out" "$dir/bench.err" timeout -k 10 "$tool_timeout" "${cmd[@]}" || rc=$?
    if ((rc == 0)) && grep -q '"bench" *: *"connect"' "$dir/bench.out"; then
        grep '"bench" *: *"connect"' "$dir/bench.out" | tail -n 1 >"$dir/result.json"
        cat "$dir/result.json" >&2
        rows=$(json_field "$dir/result.json" rows_per_sec)
        seconds=$(json_field "$dir/result.json" seconds)
        got=$(pg "$db" -c "select count(*) from \"$table\"" 2>/dev/null || echo "?")
        if [[ $(json_field "$dir/result.json" records) == "$records" && $rows =~ ^[0-9.]+$ ]]; then
            record "$run" "spool-$mode" "${rows%.*}" "$seconds" \
                "table rows $got, exactly_once $(json_field "$dir/result.json" exactly_once)"
            return 0
        fi
        echo "unexpected result line: $(cat "$dir/result.json")" >&2
    fi
    tail -n 20 "$dir/bench.out" "$dir/bench.err" >&2 || true
    record "$run" "spool-$mode" fail "" "exit status $rc$( ((rc == 124)) && echo ", timed out after $tool_timeout s")"
}

# ---- the COPY ceiling

copy_runs=3
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "fail"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The source table's rows out to a file, then into an empty table LIKE it,
# timed; psql's own start (a few ms) is inside the time, as for a user.
run_copy() { # RUN DB TABLE
    local run=$1 db=$2 table=$3 format i t0 t1 dir rates n
    dir=$work/r$run-copy
    mkdir -p "$dir"
    n=$(pg "$db" -c "select count(*) from \"$table\"")
    for format in csv binary; do
        pg "$db" -c "\\copy \"$table\" to '$dir/rows.$format' with (format $format)"
        rates=()
        for i in $(seq "$copy_runs"); do
            pg "$db" -c "drop table if exists copy_target" -c "create table copy_target (like \"$table\" including all)" -c checkpoint
            t0=$(now)
            pg "$db" -c "\\copy copy_target from '$dir/rows.$format' with (format $format)"
            t1=$(now)
            rates+=("$(rate "$n" "$(elapsed "$t0" "$t1")")")
            log "run $run COPY $format $i/$copy_runs: $n rows in $(elapsed "$t0" "$t1") s"
        done
        record "$run" "copy-$format" "$(printf '%s\n' "${rates[@]}" | median)" "" "$n rows from $table; runs: ${rates[*]}"
        pg "$db" -c "drop table copy_target"
        rm -f "$dir/rows.$format"
    done
}

# ---- Kafka Connect with Debezium's JDBC sink

kc_url() { # DB
    local url="jdbc:postgresql://127.0.0.1:$pg_port/$1"
    $rewrite_batched && url+="?reWriteBatchedInserts=true"
    echo "$url"
}

# The standalone worker's properties: the same JSON-with-schemas converters
# as spool's bench, reading spool's Kafka listener; polls as large as
# Debezium's batch so that a batch is not cut by max.poll.records (500).
kc_worker_properties() { # DIR
    cat <<EOF
bootstrap.servers=127.0.0.1:$spool_kafka_port
key.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=true
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
offset.storage.file.filename=$1/connect.offsets
offset.flush.interval.ms=1000
plugin.path=$plugin_path
plugin.discovery=service_load
listeners=http://127.0.0.1:$kc_rest_port
consumer.max.poll.records=$kc_batch
consumer.max.partition.fetch.bytes=16777216
consumer.fetch.max.bytes=67108864
EOF
}

# The connector: Debezium's JDBC sink, the table made by it
# (schema.evolution=basic); `address` (a struct) flattened to
# address_city, address_state, address_zipcode, since the sink maps no
# struct to a column (it fails creating the table).
kc_connector_json() { # NAME MODE DB TABLE
    local pk='"primary.key.mode": "none"'
    [[ $2 == upsert ]] && pk='"primary.key.mode": "record_value", "primary.key.fields": "id"'
    cat <<EOF
{"name": "$1", "config": {
  "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
  "tasks.max": "${tasks:-1}", "topics": "$topic",
  "connection.url": "$(kc_url "$3")", "connection.username": "postgres", "connection.password": "",
  "insert.mode": "$2", $pk,
  "schema.evolution": "basic", "collection.name.format": "$4", "batch.size": "$kc_batch",
  "transforms": "flatten",
  "transforms.flatten.type": "org.apache.kafka.connect.transforms.Flatten\$Value",
  "transforms.flatten.delimiter": "_"}}
EOF
}

kc_worker_args() { # DIR
    cmd=(java "-Xmx$connect_heap" "-Dlog4j2.configurationFile=$log4j" -cp "$kafka_classpath"
        org.apache.kafka.connect.cli.ConnectStandalone "$1/worker.properties")
}

start_kc() { # DIR
    local dir=$1 waited=0
    ports_free "$kc_rest_port"
    kc_worker_properties "$dir" >"$dir/worker.properties"
    kc_worker_args "$dir"
    "${cmd[@]}" >"$dir/worker.log" 2>&1 &
    kc_pid=$!
    until curl -sf "http://127.0.0.1:$kc_rest_port/connector-plugins" 2>/dev/null |
        grep -q JdbcSinkConnector; do
        sleep 0.5
        waited=$((waited + 1))
        if ((waited > 240)) || ! kill -0 "$kc_pid" 2>/dev/null; then
            echo "Kafka Connect did not start, or has no Debezium JDBC sink; its log:" >&2
            tail -n 30 "$dir/worker.log" >&2
            return 1
        fi
    done
}

# Creates connector NAME (MODE, into DB.TABLE) on the running worker and
# waits until TABLE holds N rows; deletes it after. Sets kc_seconds (from
# the POST until the count showed N), kc_rows (the count after) and
# kc_failed (why not, or empty).
kc_sink() { # NAME MODE DB TABLE DIR
    local name=$1 mode=$2 db=$3 table=$4 dir=$5 t0 t1 n=0 polls=0 size estimate
    local counted_rows=0 counted_size=0
    kc_seconds='' kc_rows='' kc_failed=''
    pg postgres -c "create database $db" -c checkpoint
    kc_connector_json "$name" "$mode" "$db" "$table" >"$dir/$name.json"
    log "Kafka Connect $mode: POST $dir/$name.json"
    t0=$(now)
    curl -sf -X POST -H 'Content-Type: application/json' --data @"$dir/$name.json" \
        "http://127.0.0.1:$kc_rest_port/connectors" >"$dir/post.out" ||
        kc_failed="the connector was refused: $(cat "$dir/post.out")"
    while [[ -z $kc_failed ]]; do
        # count(*) scans the table: five times a second over a large
        # table it would take a good part of a core from PostgreSQL. So
        # the table's size (a cheap stat of its file, current, unlike the
        # statistics views, which can lag 10 s) gives an estimate, scaled
        # by the rows per byte the last count saw; the count runs every
        # 2 s, and at every poll once the estimate reaches 90 % of N.
        size=$(pg "$db" -c "select coalesce(pg_relation_size(to_regclass('\"$table\"')), 0)" \
            2>/dev/null || echo 0)
        estimate=0
        ((counted_size > 0)) && estimate=$((size * counted_rows / counted_size))
        if ((polls % 10 == 0 || estimate * 10 >= records * 9)); then
            n=$(pg "$db" -c "select count(*) from \"$table\"" 2>/dev/null || echo 0)
            ((n >= records)) && break
            if ((n > 0 && size > 0)); then
                counted_rows=$n counted_size=$size
            fi
        fi
        polls=$((polls + 1))
        if ((polls % 10 == 0)); then
            curl -s "http://127.0.0.1:$kc_rest_port/connectors/$name/status" >"$dir/status.json" || true
            if grep -q '"FAILED"' "$dir/status.json"; then
                kc_failed="a task failed (see $dir/status.json)"
            elif (($(elapsed "$t0" "$(now)" | cut -d. -f1) > tool_timeout)); then
                kc_failed="timed out with $n rows"
            fi
        fi
        sleep 0.2
    done
    t1=$(now)
    if [[ -z $kc_failed ]]; then
        kc_seconds=$(elapsed "$t0" "$t1")
        echo "$name: POST at $t0, $records rows counted at $t1" >>"$dir/times"
        # Counted again: a duplicate shows if at-least-once made one.
        kc_rows=$(pg "$db" -c "select count(*) from \"$table\"")
    else
        echo "Kafka Connect $mode failed: $kc_failed" >&2
        grep -E 'ERROR|Caused by' "$dir/worker.log" | grep -v PluginScanner | tail -n 10 >&2 || true
    fi
    curl -s -X DELETE "http://127.0.0.1:$kc_rest_port/connectors/$name" >/dev/null || true
}

run_kc() { # RUN MODE
    local run=$1 mode=$2 dir
    dir=$work/r$run-kc-$mode
    mkdir -p "$dir"
    if (($(topic_records) < records)); then
        echo "$topic holds $(topic_records) records, fewer than $records" >&2
        record "$run" "kc-$mode" fail "" "topic not filled"
        return 0
    fi
    if ! start_kc "$dir"; then
        stop_pid "$kc_pid"
        kc_pid=''
        record "$run" "kc-$mode" fail "" "worker did not start"
        return 0
    fi
    if $kc_warmup; then
        # The same sink over the whole topic once, untimed, into a table of
        # its own: the JVM's compiler has then seen the code path.
        kc_sink "kc-warmup-$mode-r$run" "$mode" "r${run}_kc_warmup_$mode" "kc_$mode" "$dir"
        [[ -z $kc_failed ]] && log "run $run Kafka Connect $mode warm-up: $kc_seconds s"
    fi
    kc_sink "kc-$mode-r$run" "$mode" "r${run}_kc_$mode" "kc_$mode" "$dir"
    if [[ -z $kc_failed ]]; then
        record "$run" "kc-$mode" "$(rate "$records" "$kc_seconds")" "$kc_seconds" "table rows $kc_rows"
    else
        record "$run" "kc-$mode" fail "" "$kc_failed"
    fi
    stop_pid "$kc_pid"
    kc_pid=''
}

# ---- one run

run_spool_both() {
    $skip_spool && return 0
    run_spool "$1" insert
    run_spool "$1" upsert
}
run_copy_for() { # RUN: the ceiling on this run's insert table (spool's, else Kafka Connect's)
    local run=$1
    if ! $skip_spool && pg "r${run}_spool_insert" -c 'select 1 from spool_insert limit 1' >/dev/null 2>&1; then
        run_copy "$run" "r${run}_spool_insert" spool_insert
    elif ! $skip_kc && pg "r${run}_kc_insert" -c 'select 1 from kc_insert limit 1' >/dev/null 2>&1; then
        run_copy "$run" "r${run}_kc_insert" kc_insert
    else
        record "$run" copy-csv fail "" "no insert table to copy"
        record "$run" copy-binary fail "" "no insert table to copy"
    fi
}
run_kc_both() {
    $skip_kc && return 0
    run_kc "$1" insert
    run_kc "$1" upsert
}
drop_run_databases() { # RUN
    [[ -n ${BENCH_KEEP:-} ]] && return 0
    local db
    for db in $(pg postgres -c "select datname from pg_database where datname like 'r${1}\\_%'"); do
        pg postgres -c "drop database \"$db\""
    done
}

# ---- the report

# shellcheck disable=SC2016
header() {
    local mem cpu fs rev source
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    fs=$(df -PT "$work" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')
    rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -z $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] || rev+=" (with local changes)"
    echo "## PostgreSQL sink: spool, the COPY ceiling and Kafka Connect 4.4.0 with Debezium's JDBC sink ($(date -u +%Y-%m-%d))"
    echo
    echo "- machine: $(nproc) cores ($cpu), $mem, Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; PostgreSQL's and the broker's data on $fs"
    echo "- spool: \`$spool_bin\` ($("$spool_bin" --version 2>/dev/null || echo "version unknown")), tree at $rev$($skip_spool && echo "; \`spool bench connect\` not run (--skip-spool), the topic filled by \`$fill_bin connect standalone\` (datagen)")"
    [[ $spool_bin != */debug/* ]] || echo "- **a debug build: its figures are meaningless (use \`cargo build --release\`)**"
    echo "- PostgreSQL: $(pg postgres -c 'show server_version') (\`$pg_bin\`), fsync, full_page_writes and synchronous_commit on, shared_buffers $shared_buffers, wal_buffers 64MB, max_wal_size 4GB, checkpoint_timeout 30min, wal_level replica"
    $skip_kc || echo "- Kafka Connect 4.4.0 standalone (scripts/kafka-reference.sh), heap $connect_heap, $(java -version 2>&1 | head -n 1); Debezium JDBC sink $debezium_version (hibernate-agroal $agroal_version), batch.size $kc_batch, consumer max.poll.records $kc_batch, $($rewrite_batched && echo "reWriteBatchedInserts=true" || echo "no reWriteBatchedInserts") on the JDBC URL, tasks.max ${tasks:-1}, $($kc_warmup && echo "each timed sink after an untimed warm-up run on the same worker" || echo "each on a freshly started worker (a cold JVM)"), at least once (Debezium's JDBC sink commits offsets after its writes, not with them)"
    echo "- $records records (datagen \`orders\`, JSON with schemas), $partitions partition(s), topic \`$topic\` on one spool broker; $runs run(s), each sink into a fresh database"
    echo
    echo "Commands (\$W is the run's temporary directory, \$P PostgreSQL's port, \$DB a fresh database):"
    echo
    echo '```sh'
    echo "initdb -D \$W/pg/data -U postgres --auth=trust -E UTF8 --locale=C    # as postgres when root"
    echo "pg_ctl -D \$W/pg/data -l \$W/pg/server.log -w -o \"${pg_options//"$work"/\$W}\" start"
    spool_broker_args '$W/spool/data'
    echo "${cmd[*]} &"
    if ! $skip_spool; then
        spool_bench_args insert "postgresql://postgres@127.0.0.1:\$P/\$DB" spool_insert
        echo "${cmd[*]}"
        spool_bench_args upsert "postgresql://postgres@127.0.0.1:\$P/\$DB" spool_upsert
        echo "${cmd[*]}"
    fi
    source=spool_insert
    $skip_spool && source=kc_insert
    echo "# COPY ceiling (F = csv, then binary), each of $copy_runs times into a fresh copy_target"
    echo "psql -d \$DB -c \"\\copy $source to 'rows.F' with (format F)\""
    echo "psql -d \$DB -c \"create table copy_target (like $source including all)\" -c checkpoint"
    echo "time psql -d \$DB -c \"\\copy copy_target from 'rows.F' with (format F)\""
    if ! $skip_kc; then
        echo "# Kafka Connect (CP: bash scripts/kafka-reference.sh classpath)"
        kc_worker_args '$W'
        echo "${cmd[*]//"$kafka_classpath"/\$CP} &"
        echo "curl -X POST -H 'Content-Type: application/json' --data @connector.json 127.0.0.1:$kc_rest_port/connectors"
        echo "# then every 0.2 s until N (every 2 s until pg_relation_size says 0.9 N):"
        echo "psql -d \$DB -c 'select count(*) from kc_<mode>'"
    fi
    echo '```'
    if ! $skip_kc; then
        echo
        echo "worker.properties:"
        echo
        echo '```properties'
        kc_worker_properties '$W' | sed "s#$HOME#~#"
        echo '```'
        echo
        echo "connector.json (upsert: \`\"insert.mode\": \"upsert\", \"primary.key.mode\": \"record_value\", \"primary.key.fields\": \"id\"\`):"
        echo
        echo '```json'
        kc_connector_json kc-insert-r1 insert '$DB' kc_insert | sed "s#$pg_port#\$P#"
        echo '```'
    fi
    echo
}

awk_lib='
function show(v) {
    if (v == "") return "-"
    if (v == "fail") return "fail"
    return v >= 1e6 ? sprintf("%.2f M", v / 1e6) : sprintf("%.1f k", v / 1e3)
}
function numeric(v) { return v != "" && v != "fail" }
function ratio(a, b) { return numeric(a) && numeric(b) && b > 0 ? sprintf("%.2f", a / b) : "n/a" }
function median(list, n,    i, j, x) {
    for (i = 2; i <= n; i++) {
        x = list[i]
        for (j = i - 1; j >= 1 && list[j] > x; j--) list[j + 1] = list[j]
        list[j + 1] = x
    }
    if (n == 0) return ""
    if (n % 2) return list[(n + 1) / 2]
    return (list[n / 2] + list[n / 2 + 1]) / 2
}
'

table() {
    echo "| run | spool insert (rows/s) | spool upsert (rows/s) | COPY csv (rows/s) | COPY binary (rows/s) | Kafka Connect insert (rows/s) | Kafka Connect upsert (rows/s) | spool insert / COPY csv | spool insert / KC insert | spool upsert / KC upsert |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    awk -F'\t' -v runs="$runs" -v records="$records" "$awk_lib"'
        { v[$1, $2] = $3; if ($3 != "fail") { all[$2, ++count[$2]] = $3 } }
        END {
            split("spool-insert spool-upsert copy-csv copy-binary kc-insert kc-upsert", sys, " ")
            for (r = 1; r <= runs; r++) {
                si = v[r, "spool-insert"]; su = v[r, "spool-upsert"]; cc = v[r, "copy-csv"]
                cb = v[r, "copy-binary"]; ki = v[r, "kc-insert"]; ku = v[r, "kc-upsert"]
                printf "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r, show(si), show(su),
                    show(cc), show(cb), show(ki), show(ku), ratio(si, cc), ratio(si, ki), ratio(su, ku)
            }
            for (s = 1; s <= 6; s++) {
                n = 0; delete l
                for (i = 1; i <= count[sys[s]]; i++) l[++n] = all[sys[s], i]
                m[sys[s]] = median(l, n)
            }
            si = m["spool-insert"]; su = m["spool-upsert"]; cc = m["copy-csv"]
            ki = m["kc-insert"]; ku = m["kc-upsert"]
            if (runs > 1)
                printf "| median | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", show(si), show(su),
                    show(cc), show(m["copy-binary"]), show(ki), show(ku), ratio(si, cc), ratio(si, ki), ratio(su, ku)
            print ""
            print "Goals (issue 20), on the medians:"
            print ""
            goal = "not run"
            if (si != "") goal = (si >= 100000 ? "met" : "not met") sprintf(" (%s)", show(si))
            printf "- insert >= 100,000 rows/s exactly-once: %s\n", goal
            goal = "not run"
            if (si != "" && cc != "") goal = (si >= 0.8 * cc ? "met" : "not met") sprintf(" (%s of the COPY ceiling)", ratio(si, cc))
            printf "- insert >= 0.8 x the COPY ceiling (csv): %s\n", goal
            goal = "not run"
            if (su != "") goal = (su >= 30000 ? "met" : "not met") sprintf(" (%s)", show(su))
            printf "- upsert >= 30,000 rows/s: %s\n", goal
        }' "$results"
    echo
    echo "rows/s: spool's are what \`spool bench connect\` prints (the sink from its start until all"
    echo "N rows are committed); Kafka Connect's are N over the time from the connector's creation"
    echo "(REST POST, on a worker already started) until \`select count(*)\` showed N rows, polled"
    echo "every 0.2 s once the table's size said 90 % (every 2 s before); COPY's are the rows over"
    echo "one \`psql \\copy ... from\` into an empty table (median of $copy_runs). Notes per run"
    echo "(row counts, COPY runs):"
    echo
    awk -F'\t' '$5 != "" { printf "- run %s %s: %s\n", $1, $2, $5 }' "$results"
}

# ---- main

start_pg
start_spool
header
if $skip_spool; then
    fill_topic
fi
for run in $(seq "$runs"); do
    log "run $run/$runs"
    if ((run % 2)); then
        run_spool_both "$run"
        run_kc_both "$run"
    else
        run_kc_both "$run"
        run_spool_both "$run"
    fi
    run_copy_for "$run"
    drop_run_databases "$run"
done
table
