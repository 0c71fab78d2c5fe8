#!/usr/bin/env bash
# Runs librdkafka's own integration tests against a spool broker's Kafka
# listener at 127.0.0.1:9092 (docs/kafka-compatibility.md).
#
#   bash scripts/librdkafka-suite.sh            # the allowlist; fails if one fails
#   bash scripts/librdkafka-suite.sh 0042 0103  # chosen tests, reported only
#   bash scripts/librdkafka-suite.sh 0103:do_test_empty_txn  # one test's subtests
#   bash scripts/librdkafka-suite.sh 0018@full  # without quick mode
#   bash scripts/librdkafka-suite.sh 0103@cluster  # against three brokers
#   bash scripts/librdkafka-suite.sh 0061@full@retry  # a second try if it fails
#
# The tests are the numbered ones of Debian's librdkafka source package
# (`apt-get source librdkafka`, 2.0.2 on bookworm), built once into
# ~/.cache/spool (about 3 minutes) and run by their own test runner, one
# process per test, in quick mode (-Q) without socket emulation (-E) and
# without the broker-less local tests (-L), against one broker, or three
# for the tests that ask for three replicas (marked `cluster`). Environment: SPOOL_BIN (the broker binary; default the debug
# build in CARGO_TARGET_DIR), LIBRDKAFKA_DIR (the built source tree),
# PER_TEST_TIMEOUT (seconds, 300).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
version=2.0.2
target=${CARGO_TARGET_DIR:-$root/target}
spool_bin=${SPOOL_BIN:-$target/debug/spool}
tree=${LIBRDKAFKA_DIR:-$HOME/.cache/spool/librdkafka-$version}
per_test_timeout=${PER_TEST_TIMEOUT:-300}

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)

fetch_and_build() {
    echo "building librdkafka $version and its tests into $tree" >&2
    # apt-get source needs deb-src entries; Debian images ship binary ones.
    if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        "${sudo_cmd[@]}" tee /etc/apt/sources.list.d/spool-deb-src.sources >/dev/null <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        dpkg-dev build-essential pkg-config python3 zlib1g-dev libssl-dev libsasl2-dev \
        libzstd-dev liblz4-dev rapidjson-dev >/dev/null
    local work
    work=$(mktemp -d)
    (cd "$work" && apt-get source -qq "librdkafka=$version-1" >/dev/null 2>&1)
    mkdir -p "$(dirname "$tree")"
    rm -rf "$tree"
    mv "$work/librdkafka-$version" "$tree"
    rm -rf "$work"
    # rdkafka_performance too: docs/benchmarks.md measures the Kafka
    # listener with it.
    local log=$tree.build.log
    (cd "$tree" && ./configure && make -j2 libs && make -j2 -C tests build &&
        make -C examples rdkafka_performance) >"$log" 2>&1 ||
        { tail -n 40 "$log" >&2; echo "building librdkafka failed; log: $log" >&2; exit 1; }
}

[[ -x $tree/tests/test-runner ]] || fetch_and_build
[[ -x $spool_bin ]] || { echo "no spool binary at $spool_bin (cargo build -p spool)" >&2; exit 1; }

if (($#)); then
    entries=("$@")
    enforce=false
else
    # Lines: NNNN[:SUBTEST] [full] [cluster] [retry]  # why it is there
    mapfile -t entries < <(awk '/^[0-9][0-9][0-9][0-9]/ {
        entry = $1
        for (i = 2; i <= NF && $i !~ /^#/; i++)
            if ($i == "full" || $i == "cluster" || $i == "retry") entry = entry "@" $i
        print entry }' tests/librdkafka/allowlist.txt)
    enforce=true
    ((${#entries[@]})) || { echo "no tests read from tests/librdkafka/allowlist.txt" >&2; exit 1; }
fi

work=$(mktemp -d)
brokers=()
stop_brokers() {
    ((${#brokers[@]})) && kill "${brokers[@]}" 2>/dev/null
    wait 2>/dev/null || true
    brokers=()
}
trap 'stop_brokers; rm -rf "$work"' EXIT

# Brokers configured as librdkafka's test clusters are: new topics get 4
# partitions, groups may use 5-6 s session timeouts and wait Kafka's
# default 3 s for the members of a new group. Broker 1's Kafka
# listener is the bootstrap address the tests use. Each phase starts from
# empty data directories.
cat >"$work/broker.toml" <<'CONF'
kafka_auto_create_partitions = 4
group_min_session_timeout_ms = 1000
group_initial_rebalance_delay_ms = 3000
metrics_listen = "off"
CONF
start_brokers() {
    local count=$1 phase=$2 node peers=() args
    for node in $(seq "$count"); do peers+=("$node=127.0.0.1:19${node}92"); done
    for node in $(seq "$count"); do
        args=(--config "$work/broker.toml" --node-id "$node" --data-dir "$work/$phase/data$node"
            --listen "127.0.0.1:19${node}92" --kafka-listen "127.0.0.1:$((node == 1 ? 9092 : 19092 + node))")
        ((count > 1)) && args+=(--peers "$(IFS=,; echo "${peers[*]}")")
        "$spool_bin" broker "${args[@]}" >"$work/$phase-broker$node.log" 2>&1 &
        brokers+=($!)
    done
    for node in $(seq "$count"); do
        for _ in $(seq 100); do
            grep -q "listening on" "$work/$phase-broker$node.log" && break
            sleep 0.1
        done
        grep -q "listening on" "$work/$phase-broker$node.log" ||
            { cat "$work/$phase-broker$node.log" >&2; exit 1; }
    done
    # Every broker's Kafka listener is in the metadata before tests start.
    for _ in $(seq 120); do
        kcat -b 127.0.0.1:9092 -L -m 5 2>/dev/null | grep -q " $count brokers\?:" && break
        sleep 0.5
    done
}

cat >"$work/test.conf" <<'CONF'
bootstrap.servers=127.0.0.1:9092
broker.address.family=v4
test.timeout.multiplier=2
CONF
export RDKAFKA_TEST_CONF=$work/test.conf
export LD_LIBRARY_PATH=$tree/src:$tree/src-cpp
# The Kafka version whose behaviour spool's listener matches (the tests
# branch on it); unset CI so the runner keeps its own concurrency.
export TEST_KAFKA_VERSION=2.8.0
unset CI

passed=0 failed=() skipped=0 retried=()
# Runs one entry: NNNN[:SUBTEST][@full][@cluster][@retry]. SUBTEST keeps
# only the subtests whose name has it; @full runs without quick mode, for
# tests that quick mode reduces to nothing (they would pass without
# touching the broker); @retry runs a failed test once more, for tests
# whose checks race inside the client (docs/kafka-compatibility.md says
# which and why). The first failure's log is printed, and the entry is
# counted among those tried twice; only the second try's outcome counts
# as passed or failed.
run_entry() {
    local entry=$1
    try_entry "$entry" && return
    [[ $entry == *@retry* && $last_result == FAIL ]] || return 0
    unset 'failed[-1]'
    retried+=("$entry")
    echo "$entry: trying once more (a known race in the test; see docs/kafka-compatibility.md)"
    try_entry "$entry" || true
}

# One run of an entry; fails when the test did.
try_entry() {
    local entry=$1 spec quick=-Q test subtests started rc states result
    [[ $entry == *@full* ]] && quick=
    spec=${entry%%@*}
    test=${spec%%:*}
    subtests=${spec#"$test"}
    subtests=${subtests#:}
    started=$SECONDS
    set +e
    (cd "$tree/tests" && TESTS=$test SUBTESTS=$subtests TEST_REPORT=$work/$test.json \
        timeout -k 10 "$per_test_timeout" ./test-runner $quick -E -L -p1) >"$work/$test.log" 2>&1
    rc=$?
    set -e
    states=$(python3 - "$work/$test.json" "$test" <<'PY'
import json, sys
try:
    report = json.load(open(sys.argv[1]))
except Exception:
    print("NO-REPORT")
    sys.exit()
states = [t["state"] for name, t in report["tests"].items() if name.startswith(sys.argv[2])]
print(",".join(states) or "NOT-RUN")
PY
)
    if [[ $rc -eq 0 && $states == *PASSED* && $states != *FAILED* ]]; then
        result=PASS passed=$((passed + 1))
    elif [[ $rc -eq 0 && $states != *PASSED* && $states != *FAILED* ]]; then
        result=SKIP skipped=$((skipped + 1))
    else
        result=FAIL failed+=("$entry")
        # The log may end without a newline; the verdict starts its own line.
        tail -n 15 "$work/$test.log" | sed -e "s/^/    $test| /" -e '$a\'
    fi
    printf '%s %-4s %4ss  exit %-3s %s\n' "$entry" "$result" $((SECONDS - started)) "$rc" "$states"
    last_result=$result
    [[ $result != FAIL ]]
}

# One broker for most tests: each test creates topics, and hundreds of
# three-replica partitions' Raft heartbeats would load a small machine
# more than the tests do. Three brokers for the tests marked cluster.
for phase in single cluster; do
    chosen=()
    for entry in "${entries[@]}"; do
        wanted=single
        [[ $entry == *@cluster* ]] && wanted=cluster
        [[ $wanted == "$phase" ]] && chosen+=("$entry")
    done
    ((${#chosen[@]})) || continue
    start_brokers "$([[ $phase == cluster ]] && echo 3 || echo 1)" "$phase"
    for entry in "${chosen[@]}"; do run_entry "$entry"; done
    if $enforce && ((${#failed[@]})); then
        for log in "$work/$phase"-broker*.log; do
            echo "$(basename "$log") tail:" >&2
            tail -n 20 "$log" >&2
        done
    fi
    stop_brokers
done
echo "librdkafka $version tests: $passed passed, ${#failed[@]} failed (${failed[*]:-none}), $skipped skipped, ${#retried[@]} tried twice (${retried[*]:-none})"
if $enforce && ((${#failed[@]})); then
    exit 1
fi
