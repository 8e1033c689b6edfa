#!/usr/bin/env python3
"""Helpers of benches/flood.sh (run, not imported).

    flood_sample.py watch PID SECONDS
        Samples process PID every 0.2 s for SECONDS: CPU (utime + stime + cutime + cstime, so
        the `nft` children it has reaped count too), VmRSS, VmHWM, and the largest VmHWM seen
        in a live child. Prints one JSON line: {"seconds", "cpu_pct" (of one CPU), "rss_mib"
        (the samples), "hwm_mib", "child_hwm_mib", "children_seen"}.
    flood_sample.py cpustat
        One JSON line of /proc/stat's all-CPU jiffies: {"softirq", "busy", "total"}.
    flood_sample.py elements TABLE SET...
        Elements per set from `nft -j list set inet TABLE SET`, as one JSON object.
    flood_sample.py fill TABLE FAMILY SET COUNT
        Prints an `nft -f` script adding COUNT elements to SET: 10.213.0.0 + i (FAMILY 4) or
        the /64 fd13:213:0:i:: (FAMILY 6), in chunks.
"""
import ipaddress
import json
import os
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14-17 (1-based) of stat; after the comm they start at index 11.
    return sum(int(x) for x in fields[11:15])


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def watch(pid, seconds):
    start = time.monotonic()
    t0 = ticks(pid)
    rss, child_hwm, seen = [], 0, set()
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        rss.append(status_kib(pid, "VmRSS") / 1024)
        for c in children(pid):
            seen.add(c)
            child_hwm = max(child_hwm, status_kib(c, "VmHWM"))
        time.sleep(min(0.2, max(0.0, seconds - (time.monotonic() - start))))
    elapsed = time.monotonic() - start
    used = ticks(pid) - t0
    print(json.dumps({
        "seconds": round(elapsed, 3),
        "cpu_pct": 100.0 * used / HZ / elapsed,
        "rss_mib": [round(r, 3) for r in rss],
        "hwm_mib": status_kib(pid, "VmHWM") / 1024,
        "child_hwm_mib": child_hwm / 1024,
        "children_seen": len(seen),
    }))


def cpustat():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    print(json.dumps({"softirq": v[6], "busy": sum(v) - v[3] - v[4], "total": sum(v)}))


def elements(table, sets):
    counts = {}
    for name in sets:
        out = subprocess.run(["nft", "-j", "list", "set", "inet", table, name],
                             capture_output=True, text=True, check=True).stdout
        n = 0
        for item in json.loads(out)["nftables"]:
            if "set" in item:
                n = len(item["set"].get("elem", []))
        counts[name] = n
    print(json.dumps(counts))


def fill(table, family, name, count):
    chunk = 4096
    for lo in range(0, count, chunk):
        if family == "4":
            base = int(ipaddress.ip_address("10.213.0.0"))
            elems = (str(ipaddress.ip_address(base + i)) for i in range(lo, min(count, lo + chunk)))
        else:
            base = int(ipaddress.ip_address("fd13:213::"))
            elems = (str(ipaddress.ip_address(base + (i << 64))) for i in range(lo, min(count, lo + chunk)))
        print(f"add element inet {table} {name} {{ {', '.join(elems)} }}")


def main(argv):
    if len(argv) == 3 and argv[0] == "watch":
        watch(int(argv[1]), float(argv[2]))
    elif len(argv) == 1 and argv[0] == "cpustat":
        cpustat()
    elif len(argv) >= 3 and argv[0] == "elements":
        elements(argv[1], argv[2:])
    elif len(argv) == 5 and argv[0] == "fill":
        fill(argv[1], argv[2], argv[3], int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
