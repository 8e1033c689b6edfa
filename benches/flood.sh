#!/usr/bin/env bash
# The nftables daemon under a spoofed SYN flood (issue 25) and the packet-path cost of the
# meters (issue 19). Root, two network namespaces; the server set up from `setup`'s files as
# the README tells an administrator (period 30, firewall-setup.sh, `knock-totp server
# --config`), with ipv4_prefixes = [32] and ipv6_prefixes = [64] (the default /24 and /16
# meters would ban the spoofed /16 at once). Measures:
#   * the daemon's CPU (utime + stime + its reaped `nft` children) and RSS while idle, during
#     spoofed floods into the knock range at 20,000 and 50,000 SYN/s from 65,536 sources
#     (tests/it/support/spoof.py), and after them;
#   * rotation time with the meter sets filled to capacity (the daemon's own log lines, and
#     `nft -f` of the doors transaction timed directly, against the same with empty sets);
#   * SYNs the server namespace takes as fast as the sender goes, with a counter-only table,
#     with the knock-totp table, and with the knock-totp table whose global budget never
#     trips (every SYN through the meters), and the softirq CPU per SYN of each.
# Appends a Markdown section to target/bench-report.md and prints it.
#
#   benches/flood.sh           40 s floods, 60 s after, 5 throughput rounds (~6 min)
#   benches/flood.sh --quick   8 s floods, 10 s after, 2 throughput rounds (~2 min)
#
# Traffic goes only to the namespaces this script creates (10.213.0.0/16, and fd13:213::/32
# as set elements only); they are removed on exit, also on error or interrupt.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
case "${1:-}" in
    --quick) quick=1 ;;
    "") ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: benches/flood.sh [--quick]" >&2; exit 2 ;;
esac
if [ "$quick" = 1 ]; then
    flood_secs=8 after_secs=10 full_secs=35 nft_runs=5 tp_rounds=2 tp_secs=3
else
    flood_secs=40 after_secs=60 full_secs=65 nft_runs=15 tp_rounds=5 tp_secs=5
fi
idle_secs=10 rates=(20000 50000) sources=65536 tracked=65536

# shellcheck source=benches/lab.sh
. benches/lab.sh
exec </dev/null
why=""
[ "$(id -u)" = 0 ] || why="needs root"
for t in ip nft python3 cargo timeout; do have "$t" || why="${why:+$why; }needs $t"; done
if [ -n "$why" ]; then
    echo "benches/flood.sh: skipped ($why)" >&2
    exit 0
fi
build_release
start_secs=$(date +%s)
secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
helper=benches/flood_sample.py
spoof=tests/it/support/spoof.py

make_lab "ktf$$"
sns() { ip netns exec "$s_ns" "$@"; }
# Spoofed sources are not on vS's subnet: without this the kernel drops them before nftables.
sns sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.vS.rp_filter=0
s_mac=$(ip -n "$s_ns" -j link show vS | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')

# ---------------------------------------------------------------- server: setup's files
say "server: setup's files (period 30), firewall-setup.sh, knock-totp server"
files="$work/setup"
printf '%s' "$secret" | "$bin" -q setup web --secret - --period 30 --out "$files" >/dev/null
sed -i "s|/etc/knock-totp/web.secret|$files/web.secret|" "$files/web.toml"
sed -i "s|/etc/knock-totp/web.nft|$files/web.nft|" "$files/firewall-setup.sh"
sns sh "$files/firewall-setup.sh"
# One meter per source (the default /24 and /16 meters ban a spoofed /16 within a second):
# the daemon sees the base was made with other settings and loads the config's.
python3 - "$files/web.toml" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
for key, value in (("ipv4_prefixes", "[32]"), ("ipv6_prefixes", "[64]")):
    text, n = re.subn(rf"^{key} = \[[^\]]*\]", f"{key} = {value}", text, flags=re.M)
    if n != 1:
        sys.exit(f"web.toml: no {key}")
open(path, "w").write(text)
EOF
table=knock_totp_web
log="$work/server.log"
# Not through `sns`: $! must be the daemon itself (ip netns exec execs it), not a subshell.
ip netns exec "$s_ns" "$bin" server --config "$files/web.toml" >"$log" 2>&1 &
daemon=$!
pids+=("$daemon")
for _ in $(seq 1 1000); do grep -q "doors in table" "$log" && break; sleep 0.01; done
grep -q "doors in table" "$log" || { cat "$log" >&2; exit 1; }
[ "$(readlink "/proc/$daemon/exe")" = "$(readlink -f "$bin")" ] ||
    { echo "benches/flood.sh: pid $daemon is not the daemon" >&2; exit 1; }
sns nft list set inet "$table" wrong_4_24 >/dev/null 2>&1 &&
    { echo "benches/flood.sh: the daemon kept the /24 meter" >&2; cat "$log" >&2; exit 1; }

# The doors transaction the daemon loads (every chain re-asserted, the doors of the current
# window), and the base table, from --dry-run: timed with `nft -f` directly.
dry() {
    # Its own state directory: with the daemon's, the windows the daemon served (up to the
    # next one) are held back and the transaction can have no door.
    mkdir -p "$work/dry-state"
    STATE_DIRECTORY="$work/dry-state" sns "$bin" server --config "$files/web.toml" --dry-run --once \
        >"$work/dry.txt" 2>/dev/null
    grep -q "add element inet .* pairs" "$work/dry.txt" ||
        { echo "server --dry-run: no door in the transaction" >&2; exit 1; }
    sed -n '/^# would make sure table/,/^# would load in one transaction/p' "$work/dry.txt" | sed '1d;$d' >"$work/base.nft"
    sed -n '/^# would load in one transaction/,$p' "$work/dry.txt" | sed '1d' >"$work/doors.nft"
    [ -s "$work/base.nft" ] && [ -s "$work/doors.nft" ] || { echo "server --dry-run: no transaction" >&2; exit 1; }
}
# time_doors ID RUNS: `nft -f` of the current doors transaction, RUNS times, samples in ms.
time_doors() {
    dry
    local i start end times=()
    for ((i = 0; i < $2; i++)); do
        start=$(date +%s%N)
        sns nft -f "$work/doors.nft"
        end=$(date +%s%N)
        times+=("$(((end - start) / 1000))")
        sleep 0.2
    done
    python3 -c 'import json,sys; print(json.dumps({"id": sys.argv[1], "samples": [int(t)/1000 for t in sys.argv[2:]]}))' \
        "$1" "${times[@]}" >>"$samples"
}
time_doors doors-empty "$nft_runs"

# watch PHASE SECONDS: the daemon's CPU and RSS over SECONDS, saved as $work/PHASE.json.
watch() { python3 "$helper" watch "$daemon" "$2" >"$work/$1.json"; }
counter() { sns nft -j list counter inet "$table" "$1" | python3 -c 'import json,sys; print([o["counter"]["packets"] for o in json.load(sys.stdin)["nftables"] if "counter" in o][0])'; }
# spoofers N RATE SECONDS OUT: N spoof.py floods at RATE/N each, from the 65,536 sources;
# their JSON lines go to OUT. Background; waited for by `wait`.
spoofers() {
    local n=$1 each=$(($2 / $1)) i
    : >"$4"
    for ((i = 0; i < n; i++)); do
        ip netns exec "$c_ns" python3 "$spoof" vC "$s_mac" "$s_ip" flood 10.213.0.0/16 0 "$sources" \
            "$((each * $3))" --rate "$each" --seconds "$(($3 + 2))" >>"$4" &
        spoof_pids+=("$!")
    done
}

# One unpaced spoofer for a second: can one process reach the rates, or do two share it?
ip netns exec "$c_ns" timeout 10 python3 "$spoof" vC "$s_mac" "$s_ip" flood 10.213.0.0/16 0 "$sources" 10000000 \
    --seconds 1 >"$work/calibrate.json"
one_proc=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(int(d["sent"]/d["seconds"]))' "$work/calibrate.json")
say "one spoof.py process reaches $one_proc SYN/s unpaced"

# ---------------------------------------------------------------- flood
say "daemon idle for ${idle_secs} s"
watch idle "$idle_secs"
for rate in "${rates[@]}"; do
    procs=1
    [ "$one_proc" -ge $((rate * 5 / 4)) ] || procs=2
    say "flood: $rate SYN/s for ${flood_secs} s ($procs spoof.py process(es), $sources sources)"
    knocks_before=$(counter knocks)
    spoof_pids=()
    spoofers "$procs" "$rate" "$flood_secs" "$work/spoof-$rate.jsonl"
    watch "flood$rate" "$flood_secs"
    wait "${spoof_pids[@]}"
    echo "{\"knocks\": $(($(counter knocks) - knocks_before))}" >"$work/knocks-$rate.json"
done
say "after the flood: ${after_secs} s"
watch after "$after_secs"
sns python3 "$helper" elements "$table" rate4 wrong_4_32 banned_4_32 rate6 wrong_6_64 >"$work/elements-flood.json"

# ---------------------------------------------------------------- full meter sets
say "filling rate4, wrong_4_32, rate6 and wrong_6_64 to $tracked elements (nft -f)"
for spec in 4:rate4 4:wrong_4_32 6:rate6 6:wrong_6_64; do
    python3 "$helper" fill "$table" "${spec%%:*}" "${spec#*:}" "$tracked" >"$work/fill.nft"
    sns nft -f "$work/fill.nft"
done
sns python3 "$helper" elements "$table" rate4 wrong_4_32 rate6 wrong_6_64 >"$work/elements-full.json"
rotations_before=$(grep -c "doors in table" "$log" || true)
say "daemon with full sets, no traffic: ${full_secs} s (rotations every 30 s)"
watch full "$full_secs"
time_doors doors-full "$nft_runs"

# ---------------------------------------------------------------- daemon report
# The daemon's rotation log lines: the first (start-up), those in the flood and after it, and
# those with full sets.
grep -o "window [0-9]*: [0-9]* doors in table inet [^,]*, [0-9]* ms" "$log" |
    sed 's/.* \([0-9]*\) ms$/\1/' >"$work/rotations.txt"
python3 - "$work" "$rotations_before" "$flood_secs" "$after_secs" "$full_secs" "$idle_secs" "$sources" \
    "${rates[@]}" >>"$rows" <<'EOF'
import json, statistics, sys
work, before, flood_secs, after_secs, full_secs, idle_secs, sources = sys.argv[1:8]
rates = sys.argv[8:]
before = int(before)
load = lambda name: json.load(open(f"{work}/{name}"))
def text(label, t, goal=""):
    print(json.dumps({"label": label, "text": t, "goal": goal}))
def met(ok):
    return "met" if ok else "**missed**"
idle = load("idle.json")
idle_rss = statistics.median(idle["rss_mib"])
for rate in rates:
    sp = [json.loads(l) for l in open(f"{work}/spoof-{rate}.jsonl") if l.strip()]
    sent = sum(s["sent"] for s in sp)
    secs = max(s["seconds"] for s in sp)
    knocks = load(f"knocks-{rate}.json")["knocks"]
    text(f"spoofed flood, target {int(rate):,} SYN/s ({sources} sources, {flood_secs} s)",
         f"{sent / secs:,.0f} SYN/s achieved ({len(sp)} spoof.py process(es), {sent:,} sent; "
         f"{knocks:,} counted by the table's knocks counter)",
         f"≥ 95 % of target: {met(sent / secs >= 0.95 * int(rate))}")
text(f"daemon CPU, idle ({idle_secs} s)", f"{idle['cpu_pct']:.2f} % of one CPU")
for rate in rates:
    f = load(f"flood{rate}.json")
    text(f"daemon CPU during a {int(rate) // 1000}k SYN/s spoofed flood (incl. its nft children)",
         f"{f['cpu_pct']:.2f} % of one CPU over {f['seconds']:.0f} s",
         f"< 2 %: {met(f['cpu_pct'] < 2)}")
after = load("after.json")
text(f"daemon CPU after the flood ({after_secs} s)", f"{after['cpu_pct']:.2f} % of one CPU",
     f"< 0.5 %: {met(after['cpu_pct'] < 0.5)}")
full = load("full.json")
text(f"daemon CPU with full meter sets, no traffic ({full_secs} s)", f"{full['cpu_pct']:.2f} % of one CPU",
     f"< 0.5 %: {met(full['cpu_pct'] < 0.5)}")
floods = [load(f"flood{r}.json") for r in rates]
peak = max([f["hwm_mib"] for f in floods] + [max(f["rss_mib"]) for f in floods] + [max(after["rss_mib"])])
after_rss = statistics.median(after["rss_mib"][-max(1, len(after["rss_mib"]) // 4):])
text("daemon RSS idle / peak in the floods / after", f"{idle_rss:.2f} / {peak:.2f} / {after_rss:.2f} MiB",
     f"peak < 16 MiB: {met(peak < 16)}; after ≤ idle + 0.5 MiB: {met(after_rss <= idle_rss + 0.5)}")
child = max(x["child_hwm_mib"] for x in floods + [after, full])
seen = sum(x["children_seen"] for x in floods + [after, full])
text("largest nft child of the daemon seen (peak RSS)", f"{child:.1f} MiB ({seen} children sampled)")
ms = [int(l) for l in open(f"{work}/rotations.txt") if l.strip()]
text("daemon rotations in the flood and after it (log, ms)",
     ", ".join(map(str, ms[1:before])) or "none in this run", "< 50 ms")
full_ms = ms[before:]
text("rotation with full meter sets, ipv4/ipv6_prefixes [32]/[64] (daemon log, ms)",
     ", ".join(map(str, full_ms)) or "no rotation logged",
     f"< 50 ms: {met(bool(full_ms) and max(full_ms) < 50)}" if full_ms else "< 50 ms")
fl = load("elements-flood.json")
fu = load("elements-full.json")
text("meter set elements after the flood (spoofed)", ", ".join(f"{k} {v:,}" for k, v in fl.items()))
text("meter set elements after the nft -f fill (at the end)", ", ".join(f"{k} {v:,}" for k, v in fu.items()))
EOF
row doors-empty "nft -f of the doors transaction, meter sets empty" ms
row doors-full "nft -f of the doors transaction, meter sets full" ms \
    '{"ref": "nft -f of the doors transaction, meter sets empty", "goal_max": 50}'

# ---------------------------------------------------------------- packet path
# The daemon stops (it would restore its table); then each round loads, in turn: a counter-
# only table; the knock-totp table (base + doors, fresh: a flood trips the global budget
# after 480 wrong knocks and then takes the attack path); the same with the global budget
# never tripping (every SYN updates rate4 and wrong_4_32). A last table drops the knock
# range in all three, so no variant answers with resets.
kill -TERM "$daemon"
timeout 10 tail --pid="$daemon" -f /dev/null || true
dry
sns nft delete table inet "$table" 2>/dev/null || true
sed 's|limit global_wrong { rate over [^}]*}|limit global_wrong { rate over 4000000/second burst 4000000 packets }|' \
    "$work/base.nft" >"$work/base-meters.nft"
grep -q "rate over 4000000/second" "$work/base-meters.nft" || { echo "base: no global_wrong limit" >&2; exit 1; }
cat >"$work/sink.nft" <<EOF
table inet flood_sink {
    chain input {
        type filter hook input priority filter + 10; policy accept;
        tcp dport 1000-9999 counter drop
    }
}
EOF
cat >"$work/counter.nft" <<EOF
table inet flood_count {
    counter seen { }
    chain input {
        type filter hook input priority filter - 10; policy accept;
        tcp dport 1000-9999 counter name seen
    }
}
EOF
# 1,000 users: the same table with 2,997 more doors (elements only; the rules are the same).
python3 benches/many_doors.py "$work/doors.nft" >"$work/doors-1000-users.nft"
# Knock ports that start no door in either table: a flood of them takes the same path (a wrong
# knock through the meters) with 1 user or 1,000, so only the doors' number differs. A random
# port starts a knock at 1 of 3,000 ports with one user and at about 1 in 3.5 with 1,000.
python3 - "$work/doors-1000-users.nft" "$work/base.nft" >"$work/no-start-ports" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
starts = {int(p) for line in re.findall(r"starts \{([^}]*)\}", text) for p in re.findall(r"(\d+) timeout", line)}
# The protected port's SYNs take the protected port's rules, not the knock chain.
starts |= {int(p) for p in re.findall(r"tcp dport (\d+) counter name denied drop", open(sys.argv[2]).read())}
print("\n".join(str(p) for p in range(1000, 10000) if p not in starts))
EOF
[ "$(wc -l <"$work/no-start-ports")" -gt 5000 ] || { echo "benches/flood.sh: too few ports start no door" >&2; exit 1; }
tp_procs=2
say "packet path: $tp_rounds rounds × 6 tables, ${tp_secs} s unpaced floods ($tp_procs spoof.py processes)"
: >"$work/tp.jsonl"
for ((round = 0; round < tp_rounds; round++)); do
    for variant in counter table meters users meters-wrong users-wrong; do
        sns nft delete table inet flood_count 2>/dev/null || true
        sns nft delete table inet "$table" 2>/dev/null || true
        sns nft delete table inet flood_sink 2>/dev/null || true
        sns nft -f "$work/sink.nft"
        case "$variant" in
            counter) sns nft -f "$work/counter.nft" ;;
            table) sns nft -f "$work/base.nft"; sns nft -f "$work/doors.nft" ;;
            meters) sns nft -f "$work/base-meters.nft"; sns nft -f "$work/doors.nft" ;;
            users | users-wrong) sns nft -f "$work/base-meters.nft"; sns nft -f "$work/doors-1000-users.nft" ;;
            meters-wrong) sns nft -f "$work/base-meters.nft"; sns nft -f "$work/doors.nft" ;;
        esac
        ports=()
        case "$variant" in *-wrong) ports=(--ports "$work/no-start-ports") ;; esac
        before=$(python3 "$helper" cpustat)
        spoof_pids=()
        for ((i = 0; i < tp_procs; i++)); do
            ip netns exec "$c_ns" python3 "$spoof" vC "$s_mac" "$s_ip" flood 10.213.0.0/16 0 32768 \
                100000000 --seconds "$tp_secs" "${ports[@]}" >"$work/tp-$variant-$round-$i.json" &
            spoof_pids+=("$!")
        done
        wait "${spoof_pids[@]}"
        for ((i = 0; i < tp_procs; i++)); do
            cat "$work/tp-$variant-$round-$i.json"
            echo
        done >"$work/tp-$variant-$round.jsonl"
        after_stat=$(python3 "$helper" cpustat)
        seen=$(sns nft -j list counters | python3 -c 'import json,sys; print(sum(o["counter"]["packets"] for o in json.load(sys.stdin)["nftables"] if "counter" in o and o["counter"]["name"] in ("seen", "knocks")))')
        attacked=0
        [ "$variant" = counter ] || attacked=$(counter attacked)
        python3 - "$work/tp-$variant-$round.jsonl" "$variant" "$before" "$after_stat" "$seen" "$attacked" >>"$work/tp.jsonl" <<'EOF'
import json, sys
sp = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
before, after = json.loads(sys.argv[3]), json.loads(sys.argv[4])
sent = sum(s["sent"] for s in sp)
secs = max(s["seconds"] for s in sp)
hz = 100  # USER_HZ of /proc/stat
soft_us = (after["softirq"] - before["softirq"]) / hz * 1e6
print(json.dumps({"variant": sys.argv[2], "sent": sent, "rate": sent / secs, "seen": int(sys.argv[5]),
                  "attacked": int(sys.argv[6]), "softirq_us_per_syn": soft_us / sent,
                  "busy_share": (after["busy"] - before["busy"]) / max(1, after["total"] - before["total"])}))
EOF
    done
done
python3 - "$work/tp.jsonl" >>"$samples" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for v in ("counter", "table", "meters", "users", "meters-wrong", "users-wrong"):
    mine = [r for r in rows if r["variant"] == v]
    print(json.dumps({"id": f"tp-rate-{v}", "samples": [r["rate"] for r in mine]}))
    print(json.dumps({"id": f"tp-seen-{v}", "samples": [r["seen"] / r["sent"] * 100 for r in mine]}))
    print(json.dumps({"id": f"tp-soft-{v}", "samples": [r["softirq_us_per_syn"] for r in mine]}))
    print(json.dumps({"id": f"tp-attacked-{v}", "samples": [r["attacked"] / r["sent"] * 100 for r in mine]}))
EOF
busy=$(python3 -c 'import json,statistics,sys; print(round(100 * statistics.median(json.loads(l)["busy_share"] for l in open(sys.argv[1]))))' "$work/tp.jsonl")
base_rate="SYNs/s the sender reached, counter-only table"
base_soft="softirq CPU per SYN, counter-only table"
row tp-rate-counter "$base_rate" SYN/s
row tp-rate-table "SYNs/s the sender reached, knock-totp table (attack path)" SYN/s \
    "{\"ref\": \"$base_rate\"}"
row tp-rate-meters "SYNs/s the sender reached, knock-totp table, budget never trips (meters path)" SYN/s \
    "{\"ref\": \"$base_rate\"}"
row tp-seen-table "share of sent SYNs counted by the knock-totp table (knocks)" %
row tp-attacked-table "share of sent SYNs dropped as attacked, knock-totp table" %
row tp-attacked-meters "share of sent SYNs dropped as attacked, budget never trips" %
row tp-soft-counter "$base_soft" µs
row tp-soft-table "softirq CPU per SYN, knock-totp table (attack path)" µs "{\"ref\": \"$base_soft\"}"
row tp-soft-meters "softirq CPU per SYN, knock-totp table, meters path" µs "{\"ref\": \"$base_soft\"}"
row tp-rate-users "SYNs/s the sender reached, meters path, 1,000 users' 3,000 doors" SYN/s \
    '{"ref": "SYNs/s the sender reached, knock-totp table, budget never trips (meters path)"}'
row tp-soft-users "softirq CPU per SYN, meters path, 1,000 users' 3,000 doors" µs \
    '{"ref": "softirq CPU per SYN, knock-totp table, meters path"}'
row tp-soft-meters-wrong "softirq CPU per SYN, wrong knocks only (ports no door starts), 1 user" µs
row tp-soft-users-wrong "softirq CPU per SYN, wrong knocks only (ports no door starts), 1,000 users" µs \
    '{"ref": "softirq CPU per SYN, wrong knocks only (ports no door starts), 1 user", "goal_ratio": 1.1}'
row tp-rate-meters-wrong "SYNs/s the sender reached, wrong knocks only, 1 user" SYN/s
row tp-rate-users-wrong "SYNs/s the sender reached, wrong knocks only, 1,000 users" SYN/s \
    '{"ref": "SYNs/s the sender reached, wrong knocks only, 1 user"}'

# ---------------------------------------------------------------- report
secs=$(($(date +%s) - start_secs))
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mode=full
[ "$quick" = 1 ] && mode=quick
{
    echo "## Spoofed flood: the nftables daemon and the packet path (benches/flood.sh)"
    echo
    echo "- Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)'), $mode mode, $(date -u +%Y-%m-%dT%H:%MZ); took ${secs} s (benches/flood.sh)"
    echo "- Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r), $(nft --version)"
    echo "- setup's files, period 30, ipv4_prefixes [32], ipv6_prefixes [64]; CPU % of one CPU from"
    echo "  /proc/PID/stat (utime+stime+cutime+cstime: the daemon and its reaped nft children)."
    echo "- Packet path: $tp_rounds rounds of ${tp_secs} s unpaced floods from 2 spoof.py processes (32,768"
    echo "  sources) per table, the tables in turns; the CPUs were ${busy} % busy, so the sender (Python) is"
    echo "  the bottleneck of the SYN/s rows and softirq CPU per SYN (/proc/stat, all CPUs, tick-sampled)"
    echo "  is the figure for nftables' own cost."
} >"$work/header.md"
mkdir -p "$target_dir"
report="$target_dir/bench-report.md"
[ -s "$report" ] && echo >>"$report"
python3 benches/report.py render "$rows" "$work/header.md" | tee -a "$report"
cp "$log" "$target_dir/flood-server.log"
say "appended to $report (the daemon's log: $target_dir/flood-server.log)"
