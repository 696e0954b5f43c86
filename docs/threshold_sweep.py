"""Draws docs/img/threshold_sweep.png: ID switches against the tracker's match threshold on Bonn train's
validation videos, summed over the three training seeds and frame strides 1, 2, 4 (predicted boxes and
keypoints, confident detections first), from the tables of `keytrack ablate matcher_threshold`
(run from the project root after them: .venv/bin/python docs/threshold_sweep.py)."""

import csv
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TABLES = sorted(Path("results/matcher_variants").glob("bonn_mppt-train-threshold-seed*/table.csv"))
STRIDES = (1, 2, 4)
LEARNED_DEFAULT = 0.5  # the learned rows that name no threshold track at the decision point


def matcher_and_threshold(variant: str):
    """``(matcher, threshold)`` of a row of the table, or None for the rows that are not confident first."""
    if "confident" not in variant and not variant.startswith("improved"):
        return None
    motion = " + motion" if "motion" in variant else ""
    found = re.search(r"threshold (\d+(?:\.\d+)?)", variant)
    if variant.startswith("OKS"):
        return (f"OKS{motion}", float(found.group(1))) if found and "tuned" not in variant else None
    return f"improved{motion}", float(found.group(1)) if found else LEARNED_DEFAULT


totals = defaultdict(dict)
for path in TABLES:
    for row in csv.DictReader(open(path, encoding="utf-8")):
        key = matcher_and_threshold(row["Variant"])
        if key is not None:
            per_seed = sum(float(row[f"ID switches pred. stride {k}"]) for k in STRIDES)
            totals[key[0]].setdefault(key[1], {})[str(path)] = per_seed
fig, ax = plt.subplots(figsize=(7, 4.2))
for matcher, style in (
    ("improved", "o-"),
    ("improved + motion", "o--"),
    ("OKS", "s-"),
    ("OKS + motion", "s--"),
):
    points = sorted((t, sum(v.values())) for t, v in totals[matcher].items() if len(v) == len(TABLES))
    ax.plot([max(t, 0.003) for t, _ in points], [n for _, n in points], style, label=matcher)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("match threshold (0 drawn at 0.003)")
ax.set_ylabel("ID switches (3 seeds × strides 1, 2, 4)")
ax.set_title("Bonn train validation videos, predicted boxes and keypoints, confident first", fontsize=10)
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig("docs/img/threshold_sweep.png", dpi=120)
print("docs/img/threshold_sweep.png")
