#!/usr/bin/env bash
# Clean release build time (wall and CPU) and binary size of two commits, measured in turns in
# one session:
#   benches/build.sh [--runs N] REV_BEFORE REV_AFTER
# Each run exports the commit (git archive) into a temporary directory and builds it with
# `cargo build --release --locked --offline` into an empty target directory; the crates must
# already be in cargo's cache (build each commit once before). Prints one Markdown row per
# commit: median wall time with the fastest and slowest run, median CPU time (user + system, which
# other load on the machine disturbs far less than wall time), and the stripped binary's size.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
if [ "${1:-}" = "--runs" ]; then runs=$2; shift 2; fi
[ $# = 2 ] || { echo "usage: benches/build.sh [--runs N] REV_BEFORE REV_AFTER" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for rev in "$1" "$2"; do
    mkdir -p "$work/$rev/src"
    git archive "$rev" | tar -x -C "$work/$rev/src"
done
for ((i = 0; i < runs; i++)); do
    for rev in "$1" "$2"; do
        rm -rf "$work/$rev/target"
        (cd "$work/$rev/src" && CARGO_TARGET_DIR="$work/$rev/target" \
            /usr/bin/time -f '%e %U %S' -a -o "$work/$rev/times" \
            cargo build --release --locked --offline --quiet)
        stat -c %s "$work/$rev/target/release/knock-totp" >"$work/$rev/size"
    done
done
for rev in "$1" "$2"; do
    python3 - "$rev" "$(git rev-parse --short "$rev")" "$work/$rev/times" "$work/$rev/size" <<'PY'
import statistics, sys
rev, short, times, size = sys.argv[1:]
runs = [[float(x) for x in line.split()] for line in open(times) if line.strip()]
t = sorted(r[0] for r in runs)
cpu = statistics.median(r[1] + r[2] for r in runs)
kib = int(open(size).read()) / 1024
print(f"| {rev} ({short}) | clean release build {statistics.median(t):.0f} s wall "
      f"({t[0]:.0f}–{t[-1]:.0f}, {len(t)} runs), {cpu:.0f} s CPU | {kib:.0f} KiB |")
PY
done
