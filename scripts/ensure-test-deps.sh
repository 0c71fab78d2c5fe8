#!/usr/bin/env bash
# Installs what the tests need beyond the build, when it is missing: the
# Kafka clients that the Kafka-protocol tests run against a broker
# (Debian's kcat; confluent-kafka and kafka-python from PyPI, pinned so a
# new release cannot change a run; Apache Kafka's Java clients from Maven
# Central), and PostgreSQL's server programs (Debian's postgresql).
# Sourced by scripts/test.sh; safe to run repeatedly.
set -euo pipefail

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
apt_install() {
    echo "installing system packages: $*" >&2
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "$@"
}

test_packages=()
command -v kcat >/dev/null 2>&1 || test_packages+=(kcat)
command -v python3 >/dev/null 2>&1 || test_packages+=(python3 python3-pip)
if ((${#test_packages[@]})); then
    apt_install "${test_packages[@]}"
fi

# PostgreSQL's server programs (initdb, pg_ctl) for the PostgreSQL
# connector tests, which start a throwaway server of their own on a free
# port; Debian's package also makes the `postgres` user they run it as
# when run as root. Debian keeps them in /usr/lib/postgresql/<version>/bin,
# off PATH. No service is started: while the package installs, a
# policy-rc.d (if none is there) refuses its scripts any start.
if ! command -v initdb >/dev/null 2>&1 &&
    ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    policy=/usr/sbin/policy-rc.d
    own_policy=false
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
        "${sudo_cmd[@]}" chmod 755 "$policy"
        own_policy=true
    fi
    installed=0
    apt_install postgresql || installed=$?
    if $own_policy; then
        "${sudo_cmd[@]}" rm -f "$policy"
    fi
    ((installed == 0))
fi

python_clients=("confluent-kafka==2.16.1" "kafka-python==3.0.12")
if ! python3 -c 'import confluent_kafka, kafka' >/dev/null 2>&1; then
    echo "installing Python packages: ${python_clients[*]}" >&2
    # Debian's own Python refuses pip without the second flag (PEP 668).
    python3 -m pip install --quiet "${python_clients[@]}" 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages "${python_clients[@]}"
fi

# Apache Kafka's jars (and a JDK and Maven, when missing), for the Java
# client tests: fetched once into ~/.cache/spool by the reference harness.
bash "$(dirname "${BASH_SOURCE[0]}")/kafka-reference.sh" fetch
