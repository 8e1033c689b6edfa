#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) with cargo-fuzz.
#   scripts/fuzz.sh [SECONDS]
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    # Run on a copy so new inputs found in CI do not dirty the committed corpus.
    work=$(mktemp -d)
    cp -r "corpus/$target/." "$work/"
    echo "== fuzz $target for ${seconds}s"
    cargo fuzz run "$target" "$work" -- -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 | tail -5
    rm -rf "$work"
done
