# shellcheck shell=bash
# Shared by benches/run.sh and benches/soak.sh (sourced, not run): messages, a scratch
# directory with clean-up, the release build, and a two-namespace lab.
# Traffic goes only to the namespaces made here (10.213.0.0/16), removed on exit.

say() { echo "== $*" >&2; }

# Scratch directory; background processes in `pids` and namespaces in `namespaces` are
# killed and removed on exit, also on error or interrupt.
work=$(mktemp -d)
pids=()
namespaces=()
cleanup() {
    local pid ns
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for ns in "${namespaces[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# build_release: builds the release binary; sets `target_dir` and `bin` (its path).
build_release() {
    say "cargo build --release"
    cargo build --release --locked --quiet
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    # shellcheck disable=SC2034 # used by the scripts that source this file
    bin="$target_dir/release/knock-totp"
}

# make_lab TAG: server and client namespaces joined by a veth pair (vS, vC), both ends up;
# sets s_ns, c_ns, s_ip and c_ip.
make_lab() {
    s_ns="$1-s" c_ns="$1-c"
    namespaces+=("$s_ns" "$c_ns")
    local x=$(($$ % 250 + 1)) pair
    s_ip="10.213.$x.1" c_ip="10.213.$x.2"
    ip netns add "$s_ns"
    ip netns add "$c_ns"
    ip -n "$s_ns" link add vS type veth peer name vC netns "$c_ns"
    ip -n "$s_ns" addr add "$s_ip/24" dev vS
    ip -n "$c_ns" addr add "$c_ip/24" dev vC
    for pair in "$s_ns:lo" "$c_ns:lo" "$s_ns:vS" "$c_ns:vC"; do
        ip -n "${pair%%:*}" link set "${pair#*:}" up
    done
}
