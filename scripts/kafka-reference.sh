#!/usr/bin/env bash
# Apache Kafka 4.4.0 on this machine, as the reference spool is checked and
# measured against (docs/kafka-compatibility.md, docs/benchmarks.md).
#
#   bash scripts/kafka-reference.sh fetch                 # jars into the cache, once
#   bash scripts/kafka-reference.sh classpath             # print the classpath
#   bash scripts/kafka-reference.sh run CLASS ARGS...     # run a Kafka class (a tool)
#   bash scripts/kafka-reference.sh tool NAME ARGS...     # run a tool by its script name,
#                                                         # e.g. kafka-topics, kafka-producer-perf-test
#   bash scripts/kafka-reference.sh start DIR PORT        # one KRaft broker+controller
#   bash scripts/kafka-reference.sh start-cluster DIR PORT  # three, on PORT, PORT+1, PORT+2
#   bash scripts/kafka-reference.sh stop DIR              # stop what start* started there
#
# Kafka's jars are fetched with Maven (installed from Debian's packages when
# missing, with a Java runtime) into $SPOOL_KAFKA_CACHE (default
# ~/.cache/spool/kafka-4.4.0), outside the clone; nothing of Kafka is
# committed. Brokers listen on loopback only, keep their data in DIR, log
# to DIR/node<N>.log, and are stopped with SIGTERM (a clean shutdown).
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.4.0
# connect-file is not served at 4.4.0 by the registry this project uses;
# 4.3.1 runs on the 4.4.0 runtime given one stand-in class, which 4.4.0
# moved (tests/java/compat/AppInfoParser.java, docs/kafka-compatibility.md).
connect_file_version=4.3.1
cache=${SPOOL_KAFKA_CACHE:-$HOME/.cache/spool/kafka-$version}
libs=$cache/libs

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)

ensure_java() {
    local needed=()
    command -v java >/dev/null 2>&1 || needed+=(default-jre-headless)
    command -v javac >/dev/null 2>&1 || needed+=(default-jdk-headless)
    command -v mvn >/dev/null 2>&1 || needed+=(maven)
    if ((${#needed[@]})); then
        echo "installing system packages: ${needed[*]}" >&2
        "${sudo_cmd[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${needed[@]}"
    fi
}

fetch() {
    [[ -f $cache/fetched ]] && return 0
    ensure_java
    local work
    work=$(mktemp -d)
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>spool</groupId><artifactId>kafka-reference</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-streams</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-json</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-file</artifactId><version>$connect_file_version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.5</version></dependency>
  </dependencies>
</project>
EOF
    echo "fetching Apache Kafka $version from Maven Central into $libs" >&2
    rm -rf "$libs"
    mkdir -p "$libs"
    (cd "$work" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$libs") ||
        { echo "fetching Kafka's jars failed" >&2; exit 1; }
    # Quiet by default: warnings and errors only, to standard error.
    cat >"$cache/log4j2.properties" <<'EOF'
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
EOF
    rm -rf "$work"
    touch "$cache/fetched"
}

classpath() {
    fetch
    local jars=("$libs"/*.jar)
    local IFS=:
    echo "${jars[*]}"
}

# Runs a Kafka class in the foreground. KAFKA_HEAP sets the heap (default
# 512m: tools and tests, not the brokers).
run_class() {
    local class=$1
    shift
    fetch
    exec java "-Xmx${KAFKA_HEAP:-512m}" -Dlog4j2.configurationFile="$cache/log4j2.properties" \
        -cp "$(classpath)" "$class" "$@"
}

# The tool scripts of Kafka's distribution, by name.
tool_class() {
    case $1 in
    kafka-topics) echo org.apache.kafka.tools.TopicCommand ;;
    kafka-configs) echo org.apache.kafka.tools.ConfigCommand ;;
    kafka-consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    kafka-transactions) echo org.apache.kafka.tools.TransactionsCommand ;;
    kafka-delete-records) echo org.apache.kafka.tools.DeleteRecordsCommand ;;
    kafka-get-offsets) echo org.apache.kafka.tools.GetOffsetShell ;;
    kafka-console-producer) echo org.apache.kafka.tools.ConsoleProducer ;;
    kafka-console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    kafka-producer-perf-test) echo org.apache.kafka.tools.ProducerPerformance ;;
    kafka-consumer-perf-test) echo org.apache.kafka.tools.ConsumerPerformance ;;
    kafka-e2e-latency) echo org.apache.kafka.tools.EndToEndLatency ;;
    kafka-storage) echo kafka.tools.StorageTool ;;
    *) echo "unknown tool $1" >&2; return 1 ;;
    esac
}

# Writes node N's properties: broker and controller in one process, on
# PORT (clients) and PORT+100 (controllers), data under DIR/node<N>.
node_properties() {
    local dir=$1 node=$2 port=$3 voters=$4 replication=$5
    cat >"$dir/node$node.properties" <<EOF
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$((port + 100))
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/node$node
num.partitions=1
default.replication.factor=$replication
offsets.topic.replication.factor=$replication
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$((replication > 1 ? 2 : 1))
group.initial.rebalance.delay.ms=0
EOF
}

# Starts nodes 1..COUNT in DIR, clients on PORT.. (one each), and waits
# until every client port accepts connections.
start_nodes() {
    local dir=$1 port=$2 count=$3
    fetch
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local voters="" node
    for node in $(seq 1 "$count"); do
        voters+="${voters:+,}$node@127.0.0.1:$((port + node - 1 + 100))"
    done
    local replication=$((count >= 3 ? 3 : 1))
    local cluster_id
    cluster_id=$(KAFKA_HEAP=256m run_class_capture kafka.tools.StorageTool random-uuid)
    for node in $(seq 1 "$count"); do
        node_properties "$dir" "$node" $((port + node - 1)) "$voters" "$replication"
        KAFKA_HEAP=256m run_class_capture kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$dir/node$node.properties" >/dev/null
    done
    for node in $(seq 1 "$count"); do
        nohup java "-Xmx${KAFKA_BROKER_HEAP:-1g}" -Dlog4j2.configurationFile="$cache/log4j2.properties" \
            -cp "$(classpath)" kafka.Kafka "$dir/node$node.properties" \
            >"$dir/node$node.log" 2>&1 &
        echo $! >"$dir/node$node.pid"
    done
    for node in $(seq 1 "$count"); do
        local p=$((port + node - 1)) waited=0
        until (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
            sleep 0.5
            waited=$((waited + 1))
            if ((waited > 120)); then
                echo "Kafka node $node did not listen on $p; its log:" >&2
                tail -n 30 "$dir/node$node.log" >&2
                stop_nodes "$dir"
                exit 1
            fi
        done
    done
    echo "Apache Kafka $version: $count node(s) on 127.0.0.1:$port.. with data in $dir" >&2
}

run_class_capture() {
    (run_class "$@")
}

stop_nodes() {
    local dir=$1 pidfile
    for pidfile in "$dir"/node*.pid; do
        [[ -f $pidfile ]] || continue
        kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    done
    for pidfile in "$dir"/node*.pid; do
        [[ -f $pidfile ]] || continue
        local pid waited=0
        pid=$(cat "$pidfile")
        while kill -0 "$pid" 2>/dev/null && ((waited < 60)); do
            sleep 0.5
            waited=$((waited + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

command=${1:-}
shift || true
case $command in
fetch) fetch ;;
classpath) classpath ;;
run) run_class "$@" ;;
tool)
    name=$1
    shift
    run_class "$(tool_class "$name")" "$@"
    ;;
start) start_nodes "$1" "$2" 1 ;;
start-cluster) start_nodes "$1" "$2" 3 ;;
stop) stop_nodes "$1" ;;
*)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
