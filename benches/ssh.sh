#!/usr/bin/env bash
# `knock-totp ssh` to a shell against plain ssh to an open port, through a real OpenSSH sshd
# behind the nftables engine (setup's files, the rotation daemon), for several knock delays.
# Root, two network namespaces. Every run is a whole login (`true` as the remote command):
#   plain ssh -p 10022     a port of the same sshd that no firewall closes;
#   knock-totp ssh NAME    port 22, from a closed door (open_seconds 1, runs 1.3 s apart),
#                          with delay_ms 0, 10, 20, 50 and 100 (one profile each).
# Goal (issue 14): knock-totp ssh within 2 round trips + 20 ms of plain ssh.
# Also checks sshd's log: one connection per login, no kex_exchange_identification line.
# Appends a Markdown section to target/bench-report.md and prints it.
#
#   benches/ssh.sh           20 runs per variant, interleaved
#   benches/ssh.sh --quick   5 runs per variant
#
# Traffic goes only to the namespaces this script creates (10.213.0.0/16), removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=20
case "${1:-}" in
    --quick) runs=5 ;;
    "") ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: benches/ssh.sh [--quick]" >&2; exit 2 ;;
esac
delays=(0 10 20 50 100)

# shellcheck source=benches/lab.sh
. benches/lab.sh
why=""
[ "$(id -u)" = 0 ] || why="needs root"
for t in ip nft sshd ssh ssh-keygen python3; do have "$t" || why="${why:+$why; }needs $t"; done
if [ -n "$why" ]; then
    echo "benches/ssh.sh: skipped ($why)" >&2
    exit 0
fi
build_release
start_secs=$(date +%s)
secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ

make_lab "kts$$"
sns() { ip netns exec "$s_ns" "$@"; }

# ---------------------------------------------------------------- server: engine and sshd
say "server: setup's files, firewall-setup.sh, knock-totp server (nftables engine)"
files="$work/setup"
printf '%s' "$secret" | "$bin" -q setup web --secret - --port 22 --open-seconds 1 --out "$files" >/dev/null
sed -i "s|/etc/knock-totp/web.secret|$files/web.secret|" "$files/web.toml"
sed -i "s|/etc/knock-totp/web.nft|$files/web.nft|" "$files/firewall-setup.sh"
# Every run knocks (about 40 knock-range SYNs a minute, more in the knock --verify rounds):
# keep the base ruleset's rate limit (60/minute, burst 40, then a ban) out of the measurement.
sed -i 's|limit rate over 60/minute burst 40 packets|limit rate over 6000/minute burst 1000 packets|' "$files/web.nft"
grep -q "limit rate over 6000/minute" "$files/web.nft" || { echo "web.nft: no rate limit to raise" >&2; exit 1; }
sns sh "$files/firewall-setup.sh"
sns "$bin" server --config "$files/web.toml" >"$work/server.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 500); do grep -q "doors in table" "$work/server.log" && break; sleep 0.01; done
grep -q "doors in table" "$work/server.log" || { cat "$work/server.log" >&2; exit 1; }

say "server: sshd -D -e on ports 22 (knock-protected) and 10022 (open)"
ssh-keygen -q -t ed25519 -N "" -f "$work/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$work/id"
cp "$work/id.pub" "$work/authorized_keys"
cat >"$work/sshd_config" <<EOF
Port 22
Port 10022
ListenAddress 0.0.0.0
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel VERBOSE
EOF
mkdir -p /run/sshd
sns "$(command -v sshd)" -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
pids+=("$!")
for _ in $(seq 1 500); do [ -n "$(sns ss -Htln 'sport = :10022')" ] && break; sleep 0.01; done

# ---------------------------------------------------------------- client
export KNOCK_TOTP_CONFIG="$work/client/hosts.toml"
cat >"$work/ssh_config" <<EOF
Host *
    User root
    IdentityFile $work/id
    IdentitiesOnly yes
    UserKnownHostsFile $work/known_hosts
    StrictHostKeyChecking accept-new
    BatchMode yes
EOF
variants="{\"plain\": [\"ssh\", \"-F\", \"$work/ssh_config\", \"-o\", \"HostKeyAlias=web\", \"-p\", \"10022\", \"$s_ip\", \"true\"]"
for d in "${delays[@]}"; do
    printf '%s' "$secret" | "$bin" -q add "web$d" --address "$s_ip" --store file --delay-ms "$d" --secret -
    variants+=", \"delay$d\": [\"$bin\", \"ssh\", \"web$d\", \"--margin\", \"0\", \"--\", \"-F\", \"$work/ssh_config\", \"-o\", \"HostKeyAlias=web\", \"true\"]"
done
variants+="}"

# The round trip: median time for a connect to a closed port (10023, which neither sshd nor
# the firewall takes) to be refused: SYN out, RST back. (Connects to sshd would show up in
# its log as connections closed before the banner.)
rtt=$(ip netns exec "$c_ns" python3 -c '
import socket, statistics, sys, time
times = []
for _ in range(20):
    s = socket.socket()
    t = time.perf_counter()
    try:
        s.connect((sys.argv[1], 10023))
    except ConnectionRefusedError:
        times.append((time.perf_counter() - t) * 1000)
    s.close()
    time.sleep(0.01)
print(f"{statistics.median(times):.3f}")' "$s_ip")

# Runs every variant once to warm up, then `runs` rounds, the order rotating each round; a
# knock run waits `gap` s first so that the door of the previous one has closed.
cat >"$work/driver.py" <<'EOF'
import json, subprocess, sys, time
runs, variants, gap = int(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
names = list(variants)
samples = {n: [] for n in names}
failed = {n: 0 for n in names}
def once(name):
    time.sleep(gap)
    t = time.perf_counter()
    r = subprocess.run(variants[name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ms = (time.perf_counter() - t) * 1000
    if r.returncode != 0:
        sys.stderr.write(f"{name}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
        return None
    return ms
for name in names:
    once(name)
for i in range(runs):
    for name in names[i % len(names):] + names[:i % len(names)]:
        ms = once(name)
        if ms is None:
            failed[name] += 1
        else:
            samples[name].append(ms)
for name in names:
    print(json.dumps({"id": name, "samples": samples[name], "failed": failed[name]}))
EOF
say "logins: plain ssh and knock-totp ssh with delay_ms ${delays[*]}, $runs rounds"
ip netns exec "$c_ns" python3 "$work/driver.py" "$runs" "$variants" 1.3 >"$work/driver.jsonl"
cat "$work/driver.jsonl" >>"$samples"
cp "$work/sshd.log" "$work/sshd-logins.log"

# knock --verify alone: the client's own share (start, secret, knock, door open), without
# ssh. Its connection is closed unused, so these runs come after sshd's log was read.
entries=()
for d in "${delays[@]}"; do
    entries+=("\"verify$d\": [\"$bin\", \"knock\", \"web$d\", \"--verify\", \"--margin\", \"0\"]")
done
verify="{$(IFS=,; echo "${entries[*]}")}"
say "knock --verify with delay_ms ${delays[*]}, $runs rounds"
ip netns exec "$c_ns" python3 "$work/driver.py" "$runs" "$verify" 1.3 >>"$samples"

# ---------------------------------------------------------------- report
plain_label="plain ssh to an open port (login, true)"
row plain "$plain_label" ms
for d in "${delays[@]}"; do
    row "delay$d" "knock-totp ssh, delay_ms $d (knock, open, login, true)" ms "{\"ref\": \"$plain_label\"}"
done
for d in "${delays[@]}"; do
    row "verify$d" "knock-totp knock --verify, delay_ms $d (start to port open, no ssh)" ms
done
python3 - "$work/driver.jsonl" "$rtt" "${delays[@]}" >>"$rows" <<'EOF'
import json, statistics, sys
data = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    data[r["id"]] = r
rtt = float(sys.argv[2])
budget = 2 * rtt + 20
plain = statistics.median(data["plain"]["samples"])
for d in sys.argv[3:]:
    r = data[f"delay{d}"]
    extra = statistics.median(r["samples"]) - plain if r["samples"] else float("nan")
    met = "met" if extra <= budget else "**missed**"
    print(json.dumps({
        "label": f"knock-totp ssh − plain, delay_ms {d}",
        "text": f"{extra:+.1f} ms (failed runs: {r['failed']})",
        "goal": f"≤ 2 RTT + 20 ms = {budget:.1f} ms: {met}",
    }))
EOF
logins=$(grep -c "Accepted publickey" "$work/sshd-logins.log" || true)
connections=$(grep -c "Connection from " "$work/sshd-logins.log" || true)
kex=$(grep -c "kex_exchange_identification" "$work/sshd-logins.log" || true)
text_row "sshd: connections per login" "$connections connections for $logins logins; kex_exchange_identification lines: $kex" \
    "one per login, none: $([ "$connections" = "$logins" ] && [ "$kex" = 0 ] && echo met || echo '**missed**')"

secs=$(($(date +%s) - start_secs))
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "## ssh: knock-totp ssh vs plain ssh (nftables engine)"
    echo
    echo "- Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)'), $runs rounds, $(date -u +%Y-%m-%dT%H:%MZ); took ${secs} s (benches/ssh.sh)"
    echo "- Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r), $(ssh -V 2>&1), round trip ${rtt} ms (median connect refused by a closed port)"
    echo "- Each run is a whole process: login with an ed25519 key and run \`true\`; knock runs start"
    echo "  from a closed door (open_seconds 1, runs 1.3 s apart) with --margin 0; median and"
    echo "  p25–p75 over the runs, ratios and differences from this same run."
} >"$work/header.md"
mkdir -p "$target_dir"
report="$target_dir/bench-report.md"
[ -s "$report" ] && echo >>"$report"
python3 benches/report.py render "$rows" "$work/header.md" | tee -a "$report"
say "appended to $report"
