#!/usr/bin/env bash
# Checks dependencies with cargo-deny: licences, bans and sources always; security advisories
# against the local copy of the RustSec database when there is one. This script never goes
# to the network by itself; run `cargo deny fetch` where GitHub is reachable to get or update
# the database, or set KNOCK_TOTP_DENY_FETCH=1 to let this script fetch it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
cargo deny --log-level error check licenses bans sources
if [ "${KNOCK_TOTP_DENY_FETCH:-}" = 1 ]; then
    cargo deny --log-level error check advisories
elif compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/*/crates" >/dev/null; then
    cargo deny --log-level error check --disable-fetch advisories
else
    echo "cargo deny: no local advisory database, advisories not checked" \
        "(run \`cargo deny fetch\` where GitHub is reachable)"
fi
