#!/usr/bin/env bash
# The two knock engines side by side, in one run (root, network namespaces):
#   1. knock-to-open latency: from the second knock SYN to the first accepted connection to
#      the protected port, nftables engine (the library's ruleset, doors in the kernel) vs
#      knockd engine (knockd's start_command adds the knocker to an nft set), interleaved;
#   2. rotation cost per window: `nft -f -` of what the daemon loads at a boundary (the new
#      doors added, else the doors flushed and refilled) and of the full refill, shifting 3, 300 and
#      3,000 doors (1,000 users) by one window, and of the base ruleset (benches/engines.rs);
#   3. a guesser's SYNs before the ban: random wrong pairs at full speed (at most 200 SYNs)
#      against the nftables table with rate 60/minute, burst 40, ban 600 s.
# Appends a Markdown section to target/bench-report.md and prints it.
#
#   benches/engines.sh           full (20 trials per engine, 20 loads, 10 guessers)
#   benches/engines.sh --quick   5 / 5 / 3 (< 60 s after the build)
#
# Traffic goes only to the namespaces this script creates (10.213.0.0/16), removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
case "${1:-}" in
    --quick) quick=1 ;;
    "") ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: benches/engines.sh [--quick]" >&2; exit 2 ;;
esac
if [ "$quick" = 1 ]; then
    trials=5 loads=5 guessers=3
else
    trials=20 loads=20 guessers=10
fi

# shellcheck source=benches/lab.sh
. benches/lab.sh
have python3 || { echo "benches/engines.sh: python3 is needed for the statistics" >&2; exit 1; }

# record ID VALUE...: samples (already in the row's unit) under ID.
record() {
    python3 -c 'import json,sys; print(json.dumps({"id": sys.argv[1], "samples": [float(v) for v in sys.argv[2:]]}))' \
        "$@" >>"$samples"
}

find_target_dir
start_secs=$(date +%s)

# ---------------------------------------------------------------- what can run
why=""
[ "$(id -u)" = 0 ] || why="needs root"
for t in ip nft knockd socat; do have "$t" || why="${why:+$why; }needs $t"; done

if [ -n "$why" ]; then
    say "engines: skipped ($why)"
    for label in "knock-to-open: nftables vs knockd engine" "rotation cost per window (nft -f)" \
        "guesser's SYNs before ban"; do
        text_row "$label" "skipped: $why"
    done
else
    say "cargo bench --no-run --bench engines"
    engines_bin=$(cargo bench --locked --quiet --bench engines --no-run --message-format=json 2>"$work/build.log" |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "engines" and m.get("executable"):
        print(m["executable"])') || { cat "$work/build.log" >&2; exit 1; }
    [ -x "$engines_bin" ] || { cat "$work/build.log" >&2; echo "engines bench binary not found" >&2; exit 1; }

    make_lab "kte$$"
    ns() { ip netns exec "$s_ns" "$@"; }
    nft_port=2222 kd_port=10022 # knockd's protected port lies outside the engine's knock range
    nft_a=3141 nft_b=5926 kd_a=2718 kd_b=8281
    table=kt_bench_lat

    # Listeners on both protected ports.
    for port in "$nft_port" "$kd_port"; do
        ns socat -u "TCP4-LISTEN:$port,reuseaddr,fork" /dev/null &
        pids+=("$!")
        disown "$!"
    done

    # nftables engine: the library's base ruleset and one door valid now. Limits raised so
    # that the latency trials (and knockd's knocks, which cross the same knock range) are
    # never rate limited; the guesser below uses the defaults.
    mkdir -p "$work/lat" "$work/guess"
    "$engines_bin" --bench render-lab "$work/lat" "$table" "$nft_port" "$nft_a" "$nft_b" 1000000 100000 600
    ns env TZ=UTC nft -f "$work/lat/base.nft"
    ns env TZ=UTC nft -f "$work/lat/doors.nft"

    # knockd engine: the protected port opens for addresses in an nft set (with a timeout),
    # which knockd's start_command fills; like the engine's table, unknown SYNs are dropped.
    ns nft -f - <<EOF
table inet kd_lab {
    set allowed { type ipv4_addr; flags timeout; }
    chain input {
        type filter hook input priority filter; policy accept;
        tcp dport $kd_port ct state established,related accept
        tcp dport $kd_port ip saddr @allowed accept
        tcp dport $kd_port drop
    }
}
EOF
    start_knockd_door "$kd_a" "$kd_b" kd_lab 30

    # The client: SYN A, SYN B (non-blocking connect, immediate close: no retransmission),
    # then a fresh non-blocking connect to the protected port every 0.25 ms (dropped SYNs are
    # not retried by the kernel for a second; attempts older than 50 ms are closed) until one
    # is established. Prints the ms from SYN B to that moment.
    cat >"$work/latency.py" <<'EOF'
import select, socket, sys, time
ip, a, b, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
INTERVAL, MAX_AGE, GIVE_UP = 0.00025, 0.05, 3.0

def syn(p):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((ip, p))
    t = time.monotonic()
    s.close()
    return t

syn(a)
tb = syn(b)
pending = {}
next_try = tb
while True:
    now = time.monotonic()
    if now - tb > GIVE_UP:
        print("timeout")
        sys.exit(1)
    if now >= next_try:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((ip, port))
        pending[s] = now
        next_try = now + INTERVAL
    for s, t0 in list(pending.items()):
        if now - t0 > MAX_AGE:
            s.close()
            del pending[s]
    _, writable, _ = select.select([], list(pending), [], max(0.0, next_try - time.monotonic()))
    for s in writable:
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            print(f"{(time.monotonic() - tb) * 1000:.3f}")
            sys.exit(0)
        s.close()
        del pending[s]
EOF
    # ---------------------------------------------------------------- 1. knock-to-open
    say "knock-to-open: nftables vs knockd engine, $trials trials each, interleaved"
    nft_ms=() kd_ms=()
    trial() { # ENGINE: one measurement from a closed port; prints ms or nothing
        local out
        ns nft flush set inet "$table" allowed4
        ns nft flush set inet kd_lab allowed
        if [ "$1" = nft ]; then
            out=$(ip netns exec "$c_ns" python3 "$work/latency.py" "$s_ip" "$nft_a" "$nft_b" "$nft_port") || true
        else
            out=$(ip netns exec "$c_ns" python3 "$work/latency.py" "$s_ip" "$kd_a" "$kd_b" "$kd_port") || true
        fi
        case "$out" in
            timeout | "") sleep 2.5 ;; # a half-finished knockd attempt expires (seq_timeout 2)
            *) echo "$out" ;;
        esac
    }
    for ((i = 0; i < trials; i++)); do
        # ABBA order, so that drift in machine load falls on both engines alike.
        if [ $((i % 2)) = 0 ]; then
            v=$(trial nft) && [ -n "$v" ] && nft_ms+=("$v")
            v=$(trial kd) && [ -n "$v" ] && kd_ms+=("$v")
        else
            v=$(trial kd) && [ -n "$v" ] && kd_ms+=("$v")
            v=$(trial nft) && [ -n "$v" ] && nft_ms+=("$v")
        fi
        sleep 0.05
    done
    missing=$((2 * trials - ${#nft_ms[@]} - ${#kd_ms[@]}))
    [ "${#nft_ms[@]}" -gt 0 ] && record lat-nft "${nft_ms[@]}"
    [ "${#kd_ms[@]}" -gt 0 ] && record lat-kd "${kd_ms[@]}"
    nft_label="knock-to-open, nftables engine (SYN B to first accepted connect)"
    kd_label="knock-to-open, knockd engine (start_command: nft add element)"
    if [ "${#nft_ms[@]}" -gt 0 ]; then row lat-nft "$nft_label" ms; else text_row "$nft_label" "failed: no trial opened"; fi
    if [ "${#kd_ms[@]}" -gt 0 ]; then
        row lat-kd "$kd_label" ms "{\"ref\": \"$nft_label\"}"
    else
        text_row "$kd_label" "failed: no trial opened"
    fi
    [ "$missing" -gt 0 ] && text_row "knock-to-open trials that never opened (3 s)" "$missing of $((2 * trials))"

    # ---------------------------------------------------------------- 2. rotation cost
    say "rotation: nft -f of base ruleset, 3, 300 and 3,000 doors shifted one window, $loads loads each"
    ns "$engines_bin" --bench rotation kt_bench_rot "$loads" >>"$samples" 2>"$work/rotation.log" ||
        { cat "$work/rotation.log" >&2; exit 1; }
    cat "$work/rotation.log" >&2
    lines3=$(sed -n 's/.* 3 doors: transaction of \([0-9]*\) lines.*/\1/p' "$work/rotation.log")
    lines300=$(sed -n 's/.* 300 doors: transaction of \([0-9]*\) lines.*/\1/p' "$work/rotation.log")
    lines3000=$(sed -n 's/.* 3000 doors: transaction of \([0-9]*\) lines.*/\1/p' "$work/rotation.log")
    row rot-base "rotation: base ruleset load (nft -f -, whole table)" ms
    refilled() { sed -n "s/.* $1 doors: .*refilled at \([0-9]* of [0-9]*\) boundaries; a start grown at \([0-9]*\).*/\1, a start grown at \2/p" "$work/rotation.log"; }
    full3="rotation: 3 doors, flush and refill (nft -f -, ${lines3} lines)"
    row rot-load-3 "rotation: 3 doors shifted one window (what the daemon loads; refilled at $(refilled 3))" ms \
        "{\"ref\": \"$full3\", \"goal_max\": 5}"
    row rot-full-3 "$full3" ms
    row rot-load-300 "rotation: 300 doors (100 users) shifted one window (refilled at $(refilled 300))" ms \
        "{\"ref\": \"rotation: 300 doors, flush and refill (nft -f -, ${lines300} lines)\"}"
    row rot-full-300 "rotation: 300 doors, flush and refill (nft -f -, ${lines300} lines)" ms
    row rot-load-3000 "rotation: 3,000 doors (1,000 users) shifted one window (refilled at $(refilled 3000))" ms \
        "{\"ref\": \"rotation: 3,000 doors, flush and refill (nft -f -, ${lines3000} lines)\", \"goal_max\": 50}"
    row rot-full-3000 "rotation: 3,000 doors, flush and refill (nft -f -, ${lines3000} lines)" ms
    row rot-render-3 "rotation: render the 3-door transaction (in process)" µs '{"scale": 1000}'
    row rot-render-300 "rotation: render the 300-door transaction (in process)" µs \
        '{"scale": 1000, "ref": "rotation: render the 3-door transaction (in process)"}'
    row rot-render-3000 "rotation: render the 3,000-door transaction (in process)" µs \
        '{"scale": 1000, "ref": "rotation: render the 3-door transaction (in process)"}'

    # ---------------------------------------------------------------- 3. guesser
    # Only the guesser's table from here on: knockd and the latency table go.
    ns nft delete table inet "$table"
    ns nft delete table inet kd_lab
    say "guesser: random wrong pairs at full speed (≤ 200 SYNs), rate 60/min burst 40 ban 600 s, $guessers runs"
    gtable=kt_bench_guess
    "$engines_bin" --bench render-lab "$work/guess" "$gtable" "$nft_port" "$nft_a" "$nft_b" 60 40 600
    cat >"$work/guesser.py" <<'EOF'
import random, socket, sys
ip, a, b, port, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(int(sys.argv[6]))
wrong = [p for p in range(1000, 10000) if p not in (a, b, port)]
sent = 0
while sent + 2 <= limit:
    for p in rng.sample(wrong, 2):  # one wrong pair: first port, then second
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((ip, p))
        s.close()
        sent += 1
print(sent)
EOF
    # knocks counts the SYNs that reached the rate meter (banned sources are dropped before
    # it); the SYN that goes over the limit is counted, then banned and dropped.
    read_table() {
        ns nft -j list table inet "$gtable" | python3 -c '
import json, sys
objs = json.load(sys.stdin)["nftables"]
counters = {o["counter"]["name"]: o["counter"]["packets"] for o in objs if "counter" in o}
banned = [o["set"] for o in objs if "set" in o and o["set"]["name"] == "banned_4_32"][0]
elems = banned.get("elem", [])
ip = sys.argv[1]
flat = json.dumps(elems)
print(counters["knocks"], counters["bans"], counters["opened"], counters["banned"], "yes" if ip in flat else "no")' "$c_ip"
    }
    before=() bans_seen=() dropped=() in_set=0
    for ((i = 0; i < guessers; i++)); do
        ns env TZ=UTC nft -f "$work/guess/base.nft" # wipes rate, banned and counters
        ns env TZ=UTC nft -f "$work/guess/doors.nft"
        sent=$(ip netns exec "$c_ns" python3 "$work/guesser.py" "$s_ip" "$nft_a" "$nft_b" "$nft_port" 200 "$i")
        sleep 0.05
        read -r knocks bans opened dropped_banned banned < <(read_table)
        [ "$opened" = 0 ] || { echo "guesser opened the door?" >&2; exit 1; }
        # `knocks` counts every SYN of the knock range, the banned ones too.
        before+=("$((knocks - dropped_banned - bans))")
        bans_seen+=("$bans")
        dropped+=("$dropped_banned")
        [ "$banned" = yes ] && in_set=$((in_set + 1))
    done
    record guess-before "${before[@]}"
    row guess-before "guesser: SYNs let through before the ban (≤ 200 sent, 60/min burst 40)" SYNs
    text_row "guesser: the ban" "$(python3 -c '
import json, statistics, sys
before, bans, dropped = (json.loads(a) for a in sys.argv[1:4])
n = len(before)
print(f"SYN #{statistics.median(before) + 1:g} (median) went over the limit and banned the source in "
      f"{sum(1 for b in bans if b >= 1)} of {n} runs; the rest of each 200 were dropped by banned_4_32 "
      f"(median {statistics.median(dropped):g}); client in banned_4_32 afterwards: {sys.argv[4]} of {n}")' \
        "[$(IFS=,; echo "${before[*]}")]" "[$(IFS=,; echo "${bans_seen[*]}")]" \
        "[$(IFS=,; echo "${dropped[*]}")]" "$in_set")"
fi

# ---------------------------------------------------------------- report
secs=$(($(date +%s) - start_secs))
mode="full"
[ "$quick" = 1 ] && mode="quick"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "## Engines: nftables vs knockd"
    echo
    echo "- Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)'), $mode mode, $(date -u +%Y-%m-%dT%H:%MZ); took ${secs} s (benches/engines.sh)"
    echo "- Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r), $(nft --version 2>/dev/null || echo 'no nft'), $(knockd --version 2>/dev/null | head -n 1 || echo 'no knockd')"
    echo "- Median and p25–p75 over the runs shown; ratios compare medians from this same run."
    echo "  Knock-to-open trials alternate the engines (ABBA), each from a closed port; the"
    echo "  client retries connect every 0.25 ms, so latencies are good to about 0.25 ms."
} >"$work/header.md"
mkdir -p "$target_dir"
report="$target_dir/bench-report.md"
[ -s "$report" ] && echo >>"$report"
python3 benches/report.py render "$rows" "$work/header.md" | tee -a "$report"
say "appended to $report"
