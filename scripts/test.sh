#!/usr/bin/env bash
# Runs every test: unit and integration tests, the keyring tests against a real Secret
# Service, and (as root) the end-to-end tests against knockd in network namespaces.
# As root it first installs any missing Debian packages the tests need. The binary under test
# is built with the test-clock feature (its wall clock can be moved by the tests; a release
# build has no such knob).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && ! scripts/test-deps.sh --check; then
    scripts/test-deps.sh
fi
# A target directory of its own: a `cargo build` (without the feature) in the same checkout
# while the tests run cannot replace the binary under test.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/test-clock}"
scripts/with-keyring.sh cargo test --all-targets --features test-clock "$@"
