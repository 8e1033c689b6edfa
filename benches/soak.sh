#!/usr/bin/env bash
# Soak test of `knock-totp server` with a real knockd (root only): period 5, N window
# boundaries, two `knock-totp knock --verify` attempts around each boundary (one 1 s before,
# one 0.5 s after), the server's RSS sampled at every boundary, knockd's pid watched. Writes
# Markdown rows (same columns as benches/run.sh) to stdout and target/soak-report.md.
#
#   benches/soak.sh                  100 boundaries (~8.5 min)
#   benches/soak.sh --boundaries 4   a quick check (~30 s)
#
# Traffic goes only to the two network namespaces this script creates (10.213.0.0/16);
# they are removed on exit, also on error or interrupt.
set -euo pipefail
cd "$(dirname "$0")/.."

boundaries=100
while [ $# -gt 0 ]; do
    case "$1" in
        --boundaries)
            if [ $# -lt 2 ] || ! [[ "$2" =~ ^[1-9][0-9]*$ ]]; then
                echo "benches/soak.sh: --boundaries needs a positive number" >&2
                exit 2
            fi
            boundaries=$2
            shift 2
            ;;
        -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: benches/soak.sh [--boundaries N]" >&2; exit 2 ;;
    esac
done

skip() { echo "benches/soak.sh: skipped: $*" >&2; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, iptables, ipset, knockd)"
for tool in ip iptables ipset knockd socat python3 timeout cargo; do
    command -v "$tool" >/dev/null || skip "needs $tool"
done

# The lab's timing. A door stays open OPEN_SECONDS (knockd's cmd_timeout), a half-finished
# attempt lingers SEQ_TIMEOUT; attempts are BEFORE_MS before and AFTER_MS after a boundary.
PERIOD=5 OPEN_SECONDS=1 SEQ_TIMEOUT=1 BEFORE_MS=1000 AFTER_MS=500 PROTECTED=2222 NAME=soak

# shellcheck source=benches/lab.sh
. benches/lab.sh


# ---------------------------------------------------------------- build
build_release

# ---------------------------------------------------------------- lab
make_lab "kts$$"
say "lab: $s_ns ($s_ip) and $c_ns ($c_ip)"
# Server firewall (one iptables flavour, -w for the shared lock): established passes, the
# protected port is refused with a reset unless a door put the client in the server's ipset
# (as setup's firewall-setup.sh does, the element timing out by itself), every other TCP port
# (the knock ports) is dropped.
s_ipt() { ip netns exec "$s_ns" iptables -w "$@"; }
ip netns exec "$s_ns" ipset create "knock-totp-$NAME-v4" hash:ip timeout 30
s_ipt -A INPUT -p tcp --dport "$PROTECTED" -m set --match-set "knock-totp-$NAME-v4" src -j ACCEPT
s_ipt -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
s_ipt -A INPUT -p tcp --dport "$PROTECTED" -j REJECT --reject-with tcp-reset
s_ipt -A INPUT -p tcp -j DROP
ip netns exec "$s_ns" socat -u "TCP4-LISTEN:$PROTECTED,reuseaddr,fork" /dev/null &
pids+=("$!")
disown "$!"

# knockd in the foreground with a placeholder door (ports outside the knock range) until the
# server's first rotation; started directly so that $! is knockd itself. It writes no pid file
# in the foreground: the script writes the one the server reads.
cat >"$work/knockd.conf" <<EOF
[options]
    LogFile = $work/knockd.log
    Interface = vS

[placeholder]
    sequence = 40001:tcp,40002:tcp
    seq_timeout = $SEQ_TIMEOUT
    tcpflags = syn
    start_command = iptables -w -I INPUT -s %IP% -p tcp --dport $PROTECTED -j ACCEPT
    cmd_timeout = $OPEN_SECONDS
    stop_command = iptables -w -D INPUT -s %IP% -p tcp --dport $PROTECTED -j ACCEPT
EOF
start_knockd "$work/knockd.conf"
echo "$knockd_pid" >"$work/knockd.pid"

# The server, with RFC 6238's SHA-1 test secret in a 0600 file.
secret=GEZDGNBVGY3DQOJQGEZDGNBVGY3DQOJQ
(umask 077 && echo "$secret" >"$work/secret")
cat >"$work/server.toml" <<EOF
name = "$NAME"
secret_file = "$work/secret"
port = $PROTECTED
interface = "vS"
knockd_conf = "$work/knockd.conf"
knockd_pid_file = "$work/knockd.pid"
firewall = "iptables"
open_seconds = $OPEN_SECONDS
seq_timeout = $SEQ_TIMEOUT
period = $PERIOD
EOF
ip netns exec "$s_ns" "$bin" server --config "$work/server.toml" >"$work/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
disown "$server_pid"

# The client profile: file store, same secret, same period.
export KNOCK_TOTP_CONFIG="$work/client/hosts.toml"
printf '%s' "$secret" | "$bin" add "$NAME" --address "$s_ip" --port "$PROTECTED" \
    --delay-ms 0 --period "$PERIOD" --store file --secret - >/dev/null

now_ms() { echo $(($(date +%s%N) / 1000000)); }
sleep_until_ms() {
    local d=$(($1 - $(now_ms)))
    [ "$d" -gt 0 ] && sleep "$((d / 1000)).$(printf '%03d' $((d % 1000)))"
    return 0
}
comm_of() { cat "/proc/$1/comm" 2>/dev/null || true; }
# The latest window the server logged a rotation to (0 before the first).
server_window() {
    sed -n 's/^knock-totp: window \([0-9]*\): doors for .*/\1/p' "$work/server.log" | tail -n 1 |
        grep . || echo 0
}
for _ in $(seq 1 500); do
    [ "$(server_window)" != 0 ] && break
    [ "$(comm_of "$server_pid")" = knock-totp ] || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.01
done
[ "$(server_window)" != 0 ] || { cat "$work/server.log" "$work/knockd.out" >&2; exit 1; }
say "server $server_pid at window $(server_window), knockd $knockd_pid"

# Whether the protected port accepts a connection from the client namespace now.
port_open() { ip netns exec "$c_ns" timeout 1 bash -c "</dev/tcp/$s_ip/$PROTECTED" 2>/dev/null; }
# knockd processes in the server namespace that are not knockd's own command children.
knockd_roots() {
    local pid ppid
    for pid in $(ip netns pids "$s_ns"); do
        [ "$(comm_of "$pid")" = knockd ] || continue
        ppid=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "$(comm_of "$ppid")" = knockd ] || echo "$pid"
    done
}
# Which doors knockd opened for the client since byte OFFSET of its output.
doors_since() {
    tail -c "+$(($1 + 1))" "$work/knockd.out" | grep "^$c_ip: knock-totp-[0-9]*: OPEN SESAME" |
        sed 's/.*knock-totp-\([0-9]*\): OPEN.*/\1/' | paste -sd, - || true
}

# ---------------------------------------------------------------- soak
# attempts.tsv: boundary window, side (before/after), start offset from the boundary (ms),
# verify exit code, duration (ms), window whose ports were knocked (or "?"), number of knocks
# sent, doors knockd opened for it, whether the port was closed before the attempt.
attempts="$work/attempts.tsv"
rss="$work/rss.tsv" # unix ms, VmRSS kB
: >"$attempts"
: >"$rss"
knockd_changes=0
last_end_ms=0
last_ok=1
pending_offset="" pending_line="" pending_closed=1

# attempt SIDE BOUNDARY_MS COUNTER: one knock --verify, started at the boundary -BEFORE_MS or
# +AFTER_MS, from a closed port and with no half-finished attempt left in knockd.
attempt() {
    local side=$1 b_ms=$2 counter=$3 target closed=1 start end rc=0 out offset knocked n w c
    if [ "$side" = before ]; then target=$((b_ms - BEFORE_MS)); else target=$((b_ms + AFTER_MS)); fi
    # A failed attempt may have left a half-finished sequence: let it expire first.
    [ "$last_ok" = 1 ] || [ "$target" -ge $((last_end_ms + SEQ_TIMEOUT * 1000 + 100)) ] ||
        target=$((last_end_ms + SEQ_TIMEOUT * 1000 + 100))
    sleep_until_ms $((target - 150))
    # The previous door must have closed (its grant timed out) before this attempt.
    while port_open; do
        if [ "$(now_ms)" -gt $((target + (OPEN_SECONDS + 2) * 1000)) ]; then closed=0; break; fi
        sleep 0.05
    done
    flush_pending
    sleep_until_ms "$target"
    offset=$(stat -c %s "$work/knockd.out")
    start=$(now_ms)
    out=$(timeout 15 ip netns exec "$c_ns" "$bin" -vv knock "$NAME" --verify --margin 0 \
        --delay-ms 0 --timeout 3 2>&1) || rc=$?
    end=$(now_ms)
    # Which window's ports: "knocking IP on ports A B (...)", matched against the windows
    # on both sides of the boundary.
    knocked=$(grep -o ' on ports [0-9]* [0-9]*' <<<"$out" | sed 's/ on ports //') || true
    n=$(grep -c . <<<"$knocked" || true)
    w="?"
    for c in $((counter - 1)) "$counter" $((counter + 1)); do
        [ "$(head -n 1 <<<"$knocked")" = "${ports_of[$c]:-}" ] && w=$c
    done
    [ "$rc" = 0 ] || { echo "attempt $side window $counter failed (exit $rc): $out" >&2; }
    last_end_ms=$end
    if [ "$rc" = 0 ]; then last_ok=1; else last_ok=0; fi
    # knockd's OPEN line may trail the open port by a moment: read it before the next attempt.
    pending_offset=$offset
    pending_line="$counter	$side	$((start - b_ms))	$rc	$((end - start))	$w	$n"
    pending_closed=$closed
}
flush_pending() {
    [ -n "$pending_line" ] || return 0
    printf '%s\t%s\t%s\n' "$pending_line" "$(doors_since "$pending_offset")" "$pending_closed" \
        >>"$attempts"
    pending_line=""
}

declare -A ports_of
# The first boundary at least 3 s away, so that the first "before" attempt has its full slot.
first_b=$((($(date +%s) + 3) / PERIOD * PERIOD + PERIOD))
soak_start_ms=$(now_ms)
deadline_ms=$(((first_b + boundaries * PERIOD + 120) * 1000))
say "soak: $boundaries boundaries from $(date -u -d "@$first_b" +%H:%M:%S) UTC (~$(((boundaries * PERIOD + 8) / 60)) min)"
for ((i = 0; i < boundaries; i++)); do
    b=$((first_b + i * PERIOD))
    counter=$((b / PERIOD))
    for c in $((counter - 1)) "$counter" $((counter + 1)); do
        [ -n "${ports_of[$c]:-}" ] || ports_of[$c]=$("$bin" ports "$NAME" --at $((c * PERIOD)))
    done
    attempt before $((b * 1000)) "$counter"
    # At the boundary: the server's RSS once it logged this window's rotation; knockd's pid.
    sleep_until_ms $((b * 1000 + 100))
    for _ in $(seq 1 100); do
        [ "$(server_window)" -ge "$counter" ] && break
        sleep 0.02
    done
    [ "$(comm_of "$server_pid")" = knock-totp ] ||
        { echo "the server exited:" >&2; cat "$work/server.log" >&2; exit 1; }
    echo "$(now_ms)	$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")" >>"$rss"
    roots=$(knockd_roots | paste -sd, -)
    if [ "$(comm_of "$knockd_pid")" != knockd ] || [ "$roots" != "$knockd_pid" ]; then
        knockd_changes=$((knockd_changes + 1))
        echo "knockd changed at window $counter: started as $knockd_pid, now $roots" >&2
    fi
    attempt after $((b * 1000)) "$counter"
    [ "$(now_ms)" -lt "$deadline_ms" ] || { echo "benches/soak.sh: over time, stopping" >&2; exit 1; }
    [ $((i % 10)) != 9 ] || say "$((i + 1)) of $boundaries boundaries"
done
sleep 1
flush_pending
soak_ms=$(($(now_ms) - soak_start_ms))
[ "$(cat "$work/knockd.pid")" = "$knockd_pid" ] || knockd_changes=$((knockd_changes + 1))

# Rotation lines: one per window, consecutive; anything else the server said.
sed -n 's/^knock-totp: window \([0-9]*\): doors for .*/\1/p' "$work/server.log" >"$work/rotations"
grep -v '^knock-totp: window [0-9]*: doors for ' "$work/server.log" >"$work/server-other" || true
if [ -s "$work/server-other" ]; then
    say "the server also said:"
    cat "$work/server-other" >&2
fi

# ---------------------------------------------------------------- report
python3 - "$attempts" "$rss" "$work/rotations" "$work/server-other" "$samples" "$rows" \
    "$boundaries" "$soak_ms" "$knockd_pid" "$knockd_changes" <<'EOF'
import json, sys

(attempts_path, rss_path, rot_path, other_path, samples_path, rows_path,
 n, soak_ms, knockd_pid, knockd_changes) = sys.argv[1:]
n, soak_ms, knockd_changes = int(n), int(soak_ms), int(knockd_changes)
attempts = [l.rstrip("\n").split("\t") for l in open(attempts_path) if l.strip()]
rss = [tuple(map(int, l.split())) for l in open(rss_path) if l.strip()]
rotations = [int(l) for l in open(rot_path) if l.strip()]
other = [l for l in open(other_path) if l.strip()]
rows = []

def text(label, value, goal=""):
    rows.append({"label": label, "text": value, "goal": goal})

def met(ok):
    return "met" if ok else "**missed**"

failed = [a for a in attempts if a[3] != "0"]
not_closed = [a for a in attempts if a[8] != "1"]
total = 2 * n
text(f"knocks around boundaries (period 5, {n} boundaries)",
     f"failed {len(failed)} of {len(attempts)}",
     f"0 failed: {met(not failed and len(attempts) == total)}")

# Which window each side knocked and which door knockd opened for it.
def side_summary(side, expect):
    rows_ = [a for a in attempts if a[1] == side]
    own = sum(1 for a in rows_ if a[5] == str(int(a[0]) + expect))
    door = sum(1 for a in rows_ if a[7] == str(int(a[0]) + expect))
    reknocks = sum(1 for a in rows_ if a[6] not in ("1",))
    return len(rows_), own, door, reknocks
b_n, b_own, b_door, b_re = side_summary("before", -1)
a_n, a_own, a_door, a_re = side_summary("after", 0)
text("attempt attribution (knocked window / door opened)",
     f"1 s before: old window {b_own}/{b_n}, its door {b_door}/{b_n}; "
     f"0.5 s after: new window {a_own}/{a_n}, its door {a_door}/{a_n}; "
     f"attempts with ≠ 1 knock: {b_re + a_re}; port not closed before: {len(not_closed)}")

with open(samples_path, "w") as out:
    for side in ("before", "after"):
        ok = [int(a[4]) for a in attempts if a[1] == side and a[3] == "0"]
        out.write(json.dumps({"id": f"verify-{side}", "samples": ok}) + "\n")
        start = [abs(int(a[2])) for a in attempts if a[1] == side]
        out.write(json.dumps({"id": f"start-{side}", "samples": start}) + "\n")

# RSS: first, last, max, least-squares slope.
if len(rss) >= 2:
    t0 = rss[0][0]
    xs = [(t - t0) / 60000 for t, _ in rss]          # minutes
    ys = [k / 1024 for _, k in rss]                   # MiB
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    minutes = xs[-1]
    growth_kib = slope * minutes * 1024
    text(f"server RSS over {minutes:.1f} min ({len(rss)} samples, one per boundary)",
         f"{ys[0]:.2f} → {ys[-1]:.2f} MiB (max {max(ys):.2f}; slope {slope * 1024:+.2f} KiB/min)",
         f"no growth (fitted < 128 KiB over the run): {met(growth_kib < 128)}")
else:
    text("server RSS", "too few samples")

consecutive = rotations == list(range(rotations[0], rotations[0] + len(rotations))) if rotations else False
text("server rotations (SIGHUP to knockd)",
     f"{len(rotations)} lines, windows {rotations[0] if rotations else '-'}..{rotations[-1] if rotations else '-'}"
     f"{', consecutive' if consecutive else ', NOT consecutive'}; other log lines: {len(other)}",
     f"one per window: {met(consecutive and not other)}")
text(f"knockd pid across {n} rotations",
     f"{'unchanged' if knockd_changes == 0 else f'changed {knockd_changes}×'} (pid {knockd_pid})",
     f"same pid: {met(knockd_changes == 0)}")
text("soak duration", f"{soak_ms / 60000:.1f} min ({n} boundaries × 5 s)")
with open(rows_path, "w") as out:
    for r in rows:
        out.write(json.dumps(r) + "\n")
EOF
row verify-before "knock --verify 1 s before a boundary (successes)" ms
row verify-after "knock --verify 0.5 s after a boundary (successes)" ms
row start-before "attempt started this long before the boundary (scheduling check)" ms
row start-after "attempt started this long after the boundary (scheduling check)" ms

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "## Soak report"
    echo
    echo "- Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)'), $(date -u +%Y-%m-%dT%H:%MZ); $boundaries boundaries at period $PERIOD s took $((soak_ms / 1000)) s"
    echo "- Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r); knockd $(dpkg-query -W -f '${Version}' knockd 2>/dev/null || echo '?'), ipset doors, open_seconds $OPEN_SECONDS, seq_timeout $SEQ_TIMEOUT"
    echo "- Per boundary: \`knock-totp knock NAME --verify --margin 0 --delay-ms 0 --timeout 3\` ${BEFORE_MS} ms before and ${AFTER_MS} ms after, each from a closed port; server VmRSS and knockd's pid checked at the boundary."
} >"$work/header.md"
mkdir -p "$target_dir"
python3 benches/report.py render "$rows" "$work/header.md" | tee "$target_dir/soak-report.md"
say "written to $target_dir/soak-report.md"
