#!/usr/bin/env bash
# Checks dependencies with cargo-deny: licences, bans and sources always; security advisories
# against the local copy of the RustSec database whenever there is one. This script never goes
# to the network by itself; run `cargo deny fetch` where GitHub is reachable to get or update
# the database, or set KNOCK_TOTP_DENY_FETCH=1 to let this script fetch it. Without a database
# it says loudly (one WARNING line on stdout) that advisories were NOT checked, and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
cargo deny --log-level error check licenses bans sources
# cargo-deny's default place (deny.toml sets no db-path): one directory per database.
advisory_dbs="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if [ "${KNOCK_TOTP_DENY_FETCH:-}" = 1 ]; then
    cargo deny --log-level error check advisories
elif compgen -G "$advisory_dbs/*/crates" >/dev/null; then
    cargo deny --offline --log-level error check advisories
else
    echo "WARNING: security advisories were NOT checked: no RustSec advisory database in" \
        "$advisory_dbs (run \`cargo deny fetch\` where GitHub is reachable, or set" \
        "KNOCK_TOTP_DENY_FETCH=1)"
fi
