#!/usr/bin/env python3
"""How long knockd listens for neither sequence when the server rotates it: SIGHUP reload
(what `knock-totp server` does) against stopping knockd and starting it again.

    rotation_gap.py NETNS KNOCKD_PID KNOCKD_CONF KNOCKD_OUT RUNS

KNOCKD_PID is a knockd started as `knockd -c KNOCKD_CONF -v -D >KNOCKD_OUT` in NETNS with one
door whose `sequence = A:tcp,B:tcp` line is rewritten here. The gap ends when knockd has
installed the capture filter for the new sequence (its `adding pcap expression` lines on -D
output; the log never confirms a reload). Prints {"id", "samples"} lines in milliseconds:
gap-sighup and gap-restart. Leaves one knockd running; the caller's clean-up ends it.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

TIMEOUT = 5.0  # seconds per switch: a knockd that takes longer is broken, not slow


def set_sequence(conf, ports):
    with open(conf) as f:
        text = f.read()
    text = re.sub(r"sequence = \S+", f"sequence = {ports[0]}:tcp,{ports[1]}:tcp", text)
    tmp = conf + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, conf)  # atomically, as the server writes it


def filter_lines(path, ports):
    """How many capture-filter lines for `ports` knockd has printed so far."""
    with open(path, errors="replace") as f:
        text = f.read()
    needle = f"tcp dst port {ports[0]} or {ports[1]}"
    return sum(1 for line in text.splitlines()
               if line.startswith("adding pcap expression") and needle in line)


def wait_for(predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"rotation_gap.py: timed out waiting for {what}")
        time.sleep(0.0002)


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def main(netns, pid, conf, out, runs):
    pid, runs = int(pid), int(runs)
    with open(conf) as f:
        first = tuple(int(p) for p in re.search(r"sequence = (\d+):tcp,(\d+):tcp", f.read()).groups())
    # Lines per filter (one per local address knockd listens on), counted at start-up.
    per_filter = filter_lines(out, first)
    sequences = [(1111, 2222), first]

    sighup = []
    for i in range(runs):
        ports = sequences[i % 2]
        before = filter_lines(out, ports)
        set_sequence(conf, ports)
        start = time.perf_counter()
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: filter_lines(out, ports) >= before + per_filter, "the reloaded filter")
        sighup.append((time.perf_counter() - start) * 1000)
        time.sleep(0.05)  # let knockd settle before the next signal

    restart = []
    child = None
    for i in range(runs):
        ports = sequences[i % 2]
        set_sequence(conf, ports)
        new_out = f"{out}.restart{i}"
        start = time.perf_counter()
        os.kill(pid, signal.SIGTERM)
        if child is not None:
            child.wait(timeout=TIMEOUT)
        else:
            wait_for(lambda: gone(pid), "knockd to exit")
        with open(new_out, "w") as log:
            child = subprocess.Popen(["ip", "netns", "exec", netns, "knockd", "-c", conf, "-v", "-D"],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        pid = child.pid  # ip netns exec execs knockd in place

        def listening():
            with open(new_out, errors="replace") as f:
                text = f.read()
            if child.poll() is not None:
                sys.exit(f"rotation_gap.py: knockd exited on restart:\n{text}")
            return "listening on" in text and filter_lines(new_out, ports) >= per_filter

        wait_for(listening, "the restarted knockd")
        restart.append((time.perf_counter() - start) * 1000)

    print(json.dumps({"id": "gap-sighup", "samples": sighup}))
    print(json.dumps({"id": "gap-restart", "samples": restart}))


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
