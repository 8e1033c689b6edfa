# shellcheck shell=bash
# Shared by the benches/*.sh scripts (sourced, not run): messages, a scratch
# directory with clean-up, the report's rows, the release build, a two-namespace lab, knockd.
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
# The daemons started here keep their state file (NAME.window) in the scratch directory,
# never in the host's /var/lib/knock-totp, so no run sees another run's windows.
export STATE_DIRECTORY="$work/state"

have() { command -v "$1" >/dev/null; }

# The report's scratch files: samples (JSON lines of measurements) and rows (the table).
samples="$work/samples.jsonl"
rows="$work/rows.jsonl"
: >"$samples"
: >"$rows"
# row ID LABEL UNIT [EXTRA_JSON]: a table row from the samples recorded under ID.
row() { python3 benches/report.py row "$samples" "$@" >>"$rows"; }
# text_row LABEL TEXT [GOAL]: a row without samples.
text_row() {
    python3 -c 'import json,sys; print(json.dumps({"label": sys.argv[1], "text": sys.argv[2], "goal": sys.argv[3]}))' \
        "$1" "$2" "${3:-}" >>"$rows"
}

# find_target_dir: sets `target_dir` (cargo's, wherever CARGO_TARGET_DIR puts it).
find_target_dir() {
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
}

# build_release: builds the release binary; sets `target_dir` and `bin` (its path).
build_release() {
    say "cargo build --release"
    cargo build --release --locked --quiet
    find_target_dir
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

# start_knockd CONF: knockd in the server namespace, in the foreground (its -D output in
# $work/knockd.out); returns once it listens on vS (its signal handlers exist then); sets
# knockd_pid. knockd needs vS up with its address before it starts (make_lab does both).
start_knockd() {
    ip netns exec "$s_ns" knockd -c "$1" -v -D >"$work/knockd.out" 2>&1 &
    knockd_pid=$!
    pids+=("$knockd_pid")
    disown "$knockd_pid"
    for _ in $(seq 1 500); do
        grep -q "listening on vS" "$work/knockd.out" && break
        sleep 0.01
    done
    grep -q "listening on vS" "$work/knockd.out" || { cat "$work/knockd.out" >&2; exit 1; }
}

# start_knockd_door A B TABLE SECONDS: start_knockd with one door, A then B, whose start
# command adds the knocker to the set `allowed` of nft table inet TABLE for SECONDS.
start_knockd_door() {
    cat >"$work/knockd.conf" <<EOF
[options]
    LogFile = $work/knockd.log
    Interface = vS

[bench]
    sequence = $1:tcp,$2:tcp
    seq_timeout = 2
    tcpflags = syn
    start_command = nft add element inet $3 allowed { %IP% timeout $4s }
EOF
    start_knockd "$work/knockd.conf"
}
