#!/usr/bin/env bash
# Installs the system packages spool's build needs when they are missing, on
# Debian-like systems. Sourced by the other scripts; safe to run repeatedly.
set -euo pipefail

# A C compiler: zstd (and later rocksdb) compile C sources through `cc`.
needed=()
command -v cc >/dev/null 2>&1 || needed+=(gcc libc6-dev)

if ((${#needed[@]})); then
    echo "installing system packages: ${needed[*]}" >&2
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${needed[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install the Rust toolchain (rustup.rs)" >&2; exit 1; }
