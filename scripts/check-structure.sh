#!/usr/bin/env bash
# The code's shape, checked (docs/architecture.md):
# - the crates' layering: each spool crate may depend (normal dependencies,
#   at any depth) only on the spool crates below it. Cargo already refuses
#   cycles; this refuses a lower layer reaching sideways or up, e.g. the
#   client crate pulling in storage, Raft or the broker, which every
#   program that only connects would then compile;
# - sizes: no Rust file over 700 lines, no function outside tests over 120
#   lines, so each stays readable in one sitting.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
    [spool-record]=""
    [spool-protocol]=""
    [spool-storage]="spool-record"
    [spool-client]="spool-protocol spool-record"
    [spool-raft]="spool-storage spool-record spool-protocol"
    [spool-broker]="spool-raft spool-storage spool-record spool-protocol spool-client"
    # Built on the client; they will also run embedded through the broker.
    [spool-streams]="spool-client spool-protocol spool-record spool-broker spool-raft spool-storage"
    [spool-connect]="spool-client spool-protocol spool-record spool-broker spool-raft spool-storage"
)

failed=0
for crate in "${!allowed[@]}"; do
    # A failing cargo tree must fail the check, not pass it silently.
    tree=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}')
    deps=$(awk '$1 ~ /^spool-/ && $1 != crate {print $1}' crate="$crate" <<<"$tree" | sort -u)
    for dep in $deps; do
        if [[ " ${allowed[$crate]} " != *" $dep "* ]]; then
            echo "layering: $crate depends on $dep (allowed: ${allowed[$crate]:-none})" >&2
            failed=1
        fi
    done
done

python3 - <<'PY' || failed=1
import os, re, sys

MAX_FILE, MAX_FN = 700, 120
fn_start = re.compile(r"^(\s*)(pub(\([a-z]+\))? )?(async )?(const )?(unsafe )?fn (\w+)")
problems = []
for root in ("src", "log", "streams", "connect", "tests", "examples"):
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            lines = open(path, encoding="utf-8").read().split("\n")
            if len(lines) > MAX_FILE:
                problems.append(f"{path}: {len(lines)} lines (at most {MAX_FILE})")
            if "/tests/" in f"/{path}":
                continue
            # Unit tests sit at the end of a file, after #[cfg(test)].
            end = next((i for i, l in enumerate(lines) if l.startswith("#[cfg(test)]")), len(lines))
            i = 0
            while i < end:
                m = fn_start.match(lines[i])
                if not m:
                    i += 1
                    continue
                indent = len(m.group(1))
                j = i
                while j < len(lines) and not lines[j].rstrip().endswith(("{", ";", "}")):
                    j += 1
                # A declaration, or a body on one line (`fn f() {}`).
                if j >= len(lines) or not lines[j].rstrip().endswith("{"):
                    i = j + 1
                    continue
                k = j + 1
                while k < len(lines) and not (
                    lines[k].startswith(" " * indent + "}")
                    and len(lines[k]) - len(lines[k].lstrip()) == indent
                ):
                    k += 1
                if k - i + 1 > MAX_FN:
                    problems.append(f"{path}:{i + 1}: fn {m.group(7)} is {k - i + 1} lines (at most {MAX_FN})")
                i = k + 1
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
exit $failed
