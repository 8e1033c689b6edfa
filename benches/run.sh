#!/usr/bin/env bash
# The benchmark suite: builds release, measures the core (criterion), whole-process commands
# (hyperfine), knock-to-open latency and knockd's rotation gap in network namespaces (root),
# binary size, peak RSS and proxy throughput, and writes a Markdown table to stdout and
# target/bench-report.md. Medians and p25–p75 spreads over several runs; every ratio compares
# commands measured in the same run of this script.
#
#   benches/run.sh           full suite (a few minutes; the namespace lab needs root)
#   benches/run.sh --quick   few iterations, no root-only parts (CI; < 60 s after the build;
#                            as root, engines.sh, ssh.sh and flood.sh follow; flood.sh ~2 min)
#
# KNOCK_TOTP_BENCH_BASELINE=PATH adds the `code NAME` rows of another knock-totp binary (an
# older release build) measured in the same rounds, for before/after comparisons.
#
# Traffic goes only to 127.0.0.1 and to namespaces this script creates (10.213.0.0/16).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
case "${1:-}" in
    --quick) quick=1 ;;
    "") ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: benches/run.sh [--quick]" >&2; exit 2 ;;
esac
is_root=0
[ "$(id -u)" = 0 ] && is_root=1

if [ "$quick" = 1 ]; then
    runs=10 warmup=2 rss_runs=3 mib=16
    criterion_args=(--warm-up-time 0.2 --measurement-time 0.5 --sample-size 10)
else
    runs=40 warmup=5 rss_runs=5 mib=100
    criterion_args=(--warm-up-time 1 --measurement-time 3 --sample-size 30)
fi

# shellcheck source=benches/lab.sh
. benches/lab.sh

# ---------------------------------------------------------------- tools
# As root, install what is missing (the Debian packages); otherwise measure what we can.
wanted=(hyperfine:hyperfine knock:knockd knockd:knockd oathtool:oathtool socat:socat
    /usr/bin/time:time python3:python3 ip:iproute2 nft:nftables)
missing_pkgs=()
for pair in "${wanted[@]}"; do
    command -v "${pair%%:*}" >/dev/null || missing_pkgs+=("${pair#*:}")
done
if [ "${#missing_pkgs[@]}" -gt 0 ] && [ "$is_root" = 1 ]; then
    say "installing ${missing_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
fi
have python3 || { echo "benches/run.sh: python3 is needed for the statistics" >&2; exit 1; }


# measure [-s] NAME=COMMAND...: times each command $runs times and records the samples (ms)
# under NAME. Commands are argv strings run without a shell unless -s is given (then by
# bash -c, whose start-up is then part of the time).
measure() {
    local shell=0
    if [ "$1" = "-s" ]; then shell=1; shift; fi
    if have hyperfine; then
        local rounds=$((runs >= 20 ? 4 : 2))
        local args=(--runs "$((runs / rounds))" --warmup "$warmup" --style none --export-json "$work/h.json")
        [ "$shell" = 1 ] && args+=(--shell bash) || args+=(-N)
        local spec round
        for spec in "$@"; do args+=(-n "${spec%%=*}" "${spec#*=}"); done
        # In rounds (A B, A B, ...) so that load from other work on the machine falls on every
        # command alike; the rounds' samples are pooled. hyperfine's advice (outliers, short
        # commands) goes to a log: the spread column shows the same.
        for ((round = 0; round < rounds; round++)); do
            hyperfine "${args[@]}" >/dev/null 2>"$work/hyperfine.log" ||
                { cat "$work/hyperfine.log" >&2; return 1; }
            python3 benches/report.py hyperfine "$work/h.json" >>"$samples"
        done
    else
        # A plain loop: fork/exec from bash, timed with the monotonic clock in nanoseconds.
        local spec name cmd i start end times
        for spec in "$@"; do
            name=${spec%%=*} cmd=${spec#*=} times=()
            for ((i = 0; i < warmup + runs; i++)); do
                start=$(date +%s%N)
                if [ "$shell" = 1 ]; then bash -c "$cmd" >/dev/null; else $cmd >/dev/null; fi
                end=$(date +%s%N)
                [ "$i" -ge "$warmup" ] && times+=("$(((end - start) / 1000))")
            done
            python3 -c 'import json,sys; print(json.dumps({"id": sys.argv[1], "samples": [int(t)/1000 for t in sys.argv[2:]]}))' \
                "$name" "${times[@]}" >>"$samples"
        done
    fi
}

# ---------------------------------------------------------------- build
build_start=$(date +%s)
build_release

# ---------------------------------------------------------------- 1. core (criterion)
say "cargo bench --no-run (criterion, release profile)"
cargo bench --locked --quiet --bench core --no-run 2>"$work/criterion-build.log" ||
    { cat "$work/criterion-build.log" >&2; exit 1; }
say "builds took $(($(date +%s) - build_start)) s; measuring"
measure_start=$(date +%s)
say "criterion: benches/core.rs"
cargo bench --locked --quiet --bench core -- --noplot "${criterion_args[@]}" >"$work/criterion.log" 2>&1 ||
    { cat "$work/criterion.log" >&2; exit 1; }
python3 benches/report.py criterion "$target_dir/criterion" core >>"$samples"
row port_pair "core: port_pair" ns
row code_at "core: Totp::code_at" ns '{"ref": "core: port_pair"}'
row "code_at+port_pair" "core: code_at + port_pair" ns '{"ref": "core: Totp::code_at"}'
row "from_base32+new+code_at+port_pair" "core: parse secret + Totp::new + code_at + port_pair" ns \
    '{"ref": "core: code_at + port_pair"}'

# ---------------------------------------------------------------- profiles
# RFC 6238's SHA-1 test secret; a throwaway config that this script removes.
secret=GEZDGNBVGY3DQOJQGEZDGNBVGY3DQOJQ
export KNOCK_TOTP_CONFIG="$work/config/hosts.toml"
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
closed_port=$(free_port)
add() { printf '%s' "$secret" | "$bin" add "$@" --secret - >/dev/null; }
# Port 9 (discard) is not listened on: knock without --verify never connects to it anyway.
add lo --address 127.0.0.1 --port "$closed_port" --delay-ms 0 --store file

# ---------------------------------------------------------------- 2. whole-process code
keyring_ok=0
if have dbus-run-session && have gnome-keyring-daemon && have dbus-send; then keyring_ok=1; fi
if [ "$keyring_ok" = 1 ]; then
    say "code: file store vs keyring store (one hyperfine run inside a private keyring session)"
    export -f measure have
    baseline=${KNOCK_TOTP_BENCH_BASELINE:-}
    export runs warmup work samples bin secret baseline
    scripts/with-keyring.sh bash -c '
        set -euo pipefail
        printf "%s" "$secret" | "$bin" add kr --address 127.0.0.1 --port 9 --delay-ms 0 --secret - >/dev/null
        specs=("code-file=$bin code lo" "code-keyring=$bin code kr")
        if [ -n "$baseline" ]; then
            specs+=("code-keyring-baseline=$baseline code kr")
        fi
        measure "${specs[@]}"
    '
    row code-file "code NAME, file store (whole process)" ms '{"goal_max": 5}'
    row code-keyring "code NAME, keyring store (whole process)" ms \
        '{"ref": "code NAME, file store (whole process)"}'
    if [ -n "$baseline" ]; then
        row code-keyring-baseline "code NAME, keyring store, baseline binary" ms \
            '{"ref": "code NAME, keyring store (whole process)"}'
    fi
else
    say "code: file store (dbus/gnome-keyring missing: keyring store skipped)"
    measure "code-file=$bin code lo"
    row code-file "code NAME, file store (whole process)" ms '{"goal_max": 5}'
    text_row "code NAME, keyring store (whole process)" "skipped: needs dbus and gnome-keyring"
fi

# ---------------------------------------------------------------- 3. knock on loopback
if have knock && have oathtool; then
    say "knock: knock-totp vs knock vs oathtool | knock (127.0.0.1, closed ports)"
    read -r port_a port_b < <("$bin" ports lo)
    # The shell way: oathtool's code, its first and last four digits widened as SPEC says.
    pipeline="c=\$(oathtool --totp -b $secret); w() { p=\$((10#\$1)); [ \$p -eq 0 ] && p=1000; while [ \$p -lt 1000 ]; do p=\$((p * 10)); done; echo \$p; }; knock 127.0.0.1 \$(w \${c:0:4}) \$(w \${c:2:4})"
    measure "knock-c=knock 127.0.0.1 $port_a $port_b" "knock-totp=$bin knock lo --margin 0"
    measure -s "oathtool-knock=$pipeline"
    row knock-c "knock (C client) 127.0.0.1 A B" ms
    row knock-totp "knock-totp knock NAME (delay_ms 0)" ms \
        '{"ref": "knock (C client) 127.0.0.1 A B", "goal_ratio": 1.5}'
    row oathtool-knock "oathtool --totp + knock (bash pipeline)" ms \
        '{"ref": "knock (C client) 127.0.0.1 A B"}'
else
    text_row "knock-totp knock vs knock / oathtool + knock" "skipped: needs knock (knockd package) and oathtool"
fi

# ---------------------------------------------------------------- 4. knock-to-open (namespaces)
lab_tools=1
for t in ip nft knockd; do have "$t" || lab_tools=0; done
if [ "$quick" = 1 ] || [ "$is_root" = 0 ] || [ "$lab_tools" = 0 ]; then
    why="needs root, ip, nft and knockd"
    [ "$quick" = 1 ] && why="not in --quick"
    text_row "knock --verify to open, real knockd (namespaces)" "skipped: $why"
    text_row "rotation gap: knockd SIGHUP reload vs stop + start" "skipped: $why"
else
    say "knock-to-open: real knockd in network namespaces, --verify vs sleep 1"
    make_lab "ktb$$"
    protected=2222
    # Server firewall: established passes, the protected port only for addresses in the set
    # (else a reset), everything else dropped (the knock ports).
    ip netns exec "$s_ns" nft -f - <<EOF
table inet lab {
    set allowed { type ipv4_addr; flags timeout; }
    chain input {
        type filter hook input priority 0; policy accept;
        ct state established,related accept
        tcp dport $protected ip saddr @allowed accept
        tcp dport $protected reject with tcp reset
        meta l4proto tcp drop
    }
}
EOF
    ip netns exec "$s_ns" socat -u "TCP4-LISTEN:$protected,reuseaddr,fork" /dev/null &
    pids+=("$!")
    disown "$!"
    # A long period keeps the sequence fixed for the whole measurement, so the knockd config
    # is static (rotation is the server's job, measured separately).
    add lab --address "$s_ip" --port "$protected" --delay-ms 0 --period 86400 --store file
    read -r lab_a lab_b < <("$bin" ports lab)
    start_knockd_door "$lab_a" "$lab_b" lab 20
    # Every run starts closed: the previous run's address leaves the set.
    reset="ip netns exec $s_ns nft flush set inet lab allowed"
    connect="timeout 3 bash -c '</dev/tcp/$s_ip/$protected'"
    lab_runs=$((runs < 15 ? runs : 15))
    if have hyperfine; then
        hyperfine --runs "$lab_runs" --warmup 1 --style none --prepare "$reset" \
            --export-json "$work/lab.json" \
            -n lab-verify "ip netns exec $c_ns $bin knock lab --verify --timeout 3 --margin 0" \
            -n lab-sleep "ip netns exec $c_ns bash -c \"$bin knock lab --margin 0 && sleep 1 && $connect\"" \
            >/dev/null 2>"$work/hyperfine.log" || { cat "$work/hyperfine.log" "$work/knockd.out" >&2; exit 1; }
        python3 benches/report.py hyperfine "$work/lab.json" >>"$samples"
        row lab-sleep "knock, sleep 1 s, connect (real knockd)" ms
        row lab-verify "knock --verify to open (real knockd)" ms \
            '{"ref": "knock, sleep 1 s, connect (real knockd)"}'
    else
        text_row "knock --verify to open, real knockd (namespaces)" "skipped: needs hyperfine"
    fi
    say "rotation gap: SIGHUP reload (as knock-totp server does) vs stop + start of knockd"
    python3 benches/rotation_gap.py "$s_ns" "$knockd_pid" "$work/knockd.conf" "$work/knockd.out" \
        "$lab_runs" >>"$samples"
    row gap-sighup "rotation gap: knockd SIGHUP reload (server's way)" ms
    row gap-restart "rotation gap: knockd stop + start" ms \
        '{"ref": "rotation gap: knockd SIGHUP reload (server'"'"'s way)"}'
fi

# ---------------------------------------------------------------- 5. size, memory, proxy
size=$(stat -c %s "$bin")
text_row "binary size (release, stripped)" "$((size / 1024)) KiB"

# rss NAME COMMAND...: peak RSS in MiB of $rss_runs runs (stdin from $rss_input).
rss_input=/dev/null
rss() {
    local name=$1 i kib=()
    shift
    for ((i = 0; i < rss_runs; i++)); do
        /usr/bin/time -f %M -o "$work/rss" "$@" <"$rss_input" >/dev/null
        kib+=("$(tail -n 1 "$work/rss")")
    done
    python3 -c 'import json,sys; print(json.dumps({"id": sys.argv[1], "samples": [int(k)/1024 for k in sys.argv[2:]]}))' \
        "$name" "${kib[@]}" >>"$samples"
}
if [ -x /usr/bin/time ]; then
    say "peak RSS: code, knock"
    rss rss-code "$bin" code lo
    row rss-code "peak RSS: code NAME" MiB
    rss rss-knock "$bin" knock lo --margin 0
    row rss-knock "peak RSS: knock NAME" MiB
else
    text_row "peak RSS" "skipped: needs /usr/bin/time (time package)"
fi

if have socat; then
    say "proxy: $mib MiB through 127.0.0.1 vs socat"
    sink_port=$(free_port)
    # The sink reads until EOF and closes, which ends both relays.
    socat -u "TCP4-LISTEN:$sink_port,reuseaddr,fork,bind=127.0.0.1" /dev/null &
    pids+=("$!")
    disown "$!"
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$sink_port") 2>/dev/null && break
        sleep 0.01
    done
    add sink --address 127.0.0.1 --port "$sink_port" --delay-ms 0 --store file
    head -c "$((mib * 1024 * 1024))" /dev/zero >"$work/payload"
    proxy_runs=$((runs < 10 ? runs : 10))
    saved_runs=$runs
    runs=$proxy_runs
    measure -s "proxy=$bin proxy sink --margin 0 <$work/payload" \
        "socat=socat - TCP4:127.0.0.1:$sink_port <$work/payload"
    runs=$saved_runs
    row socat "relay $mib MiB: socat - TCP4 (ssh ProxyCommand style)" "MiB/s" \
        "{\"scale\": 0.001, \"invert\": $mib}"
    row proxy "relay $mib MiB: knock-totp proxy NAME (incl. knock)" "MiB/s" \
        "{\"scale\": 0.001, \"invert\": $mib, \"ref\": \"relay $mib MiB: socat - TCP4 (ssh ProxyCommand style)\"}"
    if [ -x /usr/bin/time ]; then
        rss_input="$work/payload"
        rss rss-proxy "$bin" proxy sink --margin 0
        row rss-proxy "peak RSS: proxy NAME relaying $mib MiB" MiB
    fi
else
    text_row "proxy throughput" "skipped: needs socat"
fi

# ---------------------------------------------------------------- report
measure_secs=$(($(date +%s) - measure_start))
mode="full"
[ "$quick" = 1 ] && mode="quick"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "## Benchmark report"
    echo
    echo "- Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)'), $mode mode, $(date -u +%Y-%m-%dT%H:%MZ); measuring took ${measure_secs} s (after the builds)"
    echo "- Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
    echo "- Median and p25–p75 over the runs shown; ratios compare medians from this same run."
    echo "  Core rows: criterion samples (mean ns per call within each sample)."
} >"$work/header.md"
mkdir -p "$target_dir"
python3 benches/report.py render "$rows" "$work/header.md" | tee "$target_dir/bench-report.md"
say "written to $target_dir/bench-report.md"
benches/engines.sh "$@" || say "warning: benches/engines.sh failed; the report above is complete without it"
benches/ssh.sh "$@" || say "warning: benches/ssh.sh failed; the report above is complete without it"
benches/flood.sh "$@" || say "warning: benches/flood.sh failed; the report above is complete without it"
