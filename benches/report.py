#!/usr/bin/env python3
"""Turns benches/run.sh's measurements into the Markdown report.

    report.py hyperfine HYPERFINE_JSON        -> {"id", "samples"} lines (ms), id = command name
    report.py criterion CRITERION_DIR GROUP   -> {"id", "samples"} lines (ns per iteration)
    report.py row SAMPLES_JSONL ID LABEL UNIT [EXTRA_JSON]  -> one report row
    report.py render ROWS_JSONL HEADER_FILE   -> the Markdown report on stdout

A row is {"label", "unit", "samples"} (optional "scale", "ref", "goal_max", "goal_ratio",
"invert") or {"label", "text"} for a row without samples (sizes, skipped parts, TODOs).
"""

import json
import os
import statistics
import sys


def quantile(values, q):
    """Linear-interpolated quantile of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def from_hyperfine(path):
    """One line per hyperfine command (named with -n), samples in milliseconds."""
    with open(path) as f:
        results = json.load(f)["results"]
    for result in results:
        print(json.dumps({"id": result["command"],
                          "samples": [t * 1000.0 for t in result["times"]]}))


def make_row(samples_path, ident, label, unit, extra):
    """A report row from all the samples recorded under `ident` (rounds are pooled)."""
    samples = []
    with open(samples_path) as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                if entry["id"] == ident:
                    samples.extend(entry["samples"])
    if not samples:
        sys.exit(f"report.py: no samples recorded for {ident!r}")
    row = {"label": label, "unit": unit, "samples": samples}
    row.update(json.loads(extra) if extra else {})
    print(json.dumps(row))


def from_criterion(directory, group):
    """One row per benchmark in a criterion group: each sample's mean time per iteration, ns."""
    base = os.path.join(directory, group)
    for bench in sorted(os.listdir(base)):
        sample = os.path.join(base, bench, "new", "sample.json")
        if not os.path.exists(sample):
            continue
        with open(sample) as f:
            data = json.load(f)
        per_iter = [t / n for t, n in zip(data["times"], data["iters"]) if n]
        print(json.dumps({"id": bench, "samples": per_iter}))


def fmt(value):
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(rows_path, header_path):
    rows = []
    with open(rows_path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    medians = {}
    for row in rows:
        if row.get("samples"):
            scale = row.get("scale", 1.0)
            row["samples"] = [s * scale for s in row["samples"]]
            if row.get("invert"):
                # e.g. seconds for 100 MiB -> MiB/s; computed per sample so the spread is right.
                row["samples"] = [row["invert"] / s for s in row["samples"] if s > 0]
            medians[row["label"]] = statistics.median(row["samples"])
    with open(header_path) as f:
        out = [f.read().rstrip("\n"), ""]
    out.append("| Measurement | Median | Spread (p25–p75) | Runs | Ratio (same run) | Goal |")
    out.append("|---|---:|---:|---:|---|---|")
    for row in rows:
        label = row["label"]
        if "text" in row:
            out.append(f"| {label} | {row['text']} | | | | {row.get('goal', '')} |")
            continue
        samples = row["samples"]
        unit = row["unit"]
        median = medians[label]
        spread = f"{fmt(quantile(samples, 0.25))}–{fmt(quantile(samples, 0.75))}"
        ratio = ""
        goal = ""
        ref = row.get("ref")
        if ref and ref in medians and medians[ref] > 0:
            r = median / medians[ref]
            ratio = f"{r:.2f}× {ref}"
            if "goal_ratio" in row:
                met = "met" if r <= row["goal_ratio"] else "**missed**"
                # Three decimals: a ratio shown as 1.50 may still be just over a 1.5 goal.
                goal = f"≤ {row['goal_ratio']}×: {met} ({r:.3f}×)"
        if "goal_max" in row:
            met = "met" if median <= row["goal_max"] else "**missed**"
            goal = f"≤ {row['goal_max']} {unit}: {met}"
        out.append(f"| {label} | {fmt(median)} {unit} | {spread} | {len(samples)} | {ratio} | {goal} |")
    print("\n".join(out))


def main(argv):
    if len(argv) == 2 and argv[0] == "hyperfine":
        from_hyperfine(argv[1])
    elif len(argv) in (5, 6) and argv[0] == "row":
        make_row(argv[1], argv[2], argv[3], argv[4], argv[5] if len(argv) == 6 else "")
    elif len(argv) == 3 and argv[0] == "criterion":
        from_criterion(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "render":
        render(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
