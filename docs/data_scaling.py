"""Draws docs/img/data_scaling.png and prints its table: the improved matcher minus tuned OKS on Bonn test
(pooled %IDSW, 95 % interval over the test videos and the 3 training seeds) against the number of Bonn train
videos the networks were trained on, from three tables of `keytrack ablate tracker_comparison`: the README's
(`bonn_mppt-test-tuned`, 24 training videos, 6 held out for validation) and the same command with
`--improved-override data.val_fraction=0.5` (15), `0.75` (8) and `0.1` (27, 3 held out); see docs/matchers.md, "More real training
videos" (run from the project root after them: .venv/bin/python docs/data_scaling.py)."""
import csv
from pathlib import Path

import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt

TABLES = {8: "bonn_mppt-test-train8", 15: "bonn_mppt-test-train15", 24: "bonn_mppt-test-tuned",
          27: "bonn_mppt-test-train27"}
SETTINGS = ("GT boxes, GT keypoints", "predicted boxes, predicted keypoints")
METHOD = "Pose Entailment (improved)"


def rows(name: str) -> dict:
    """``{(setting, stride): (%IDSW, difference, low, high)}`` of the improved matcher in one table."""
    with open(Path("results/tracker_comparison") / name / "table.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    ci = next(c for c in table[0] if "95 % CI" in c and not c.endswith((" low", " high")))
    return {(r["Keypoints"], int(r["Stride"])): (float(r["%IDSW Total"]), float(r[ci]), float(r[f"{ci} low"]),
                                                 float(r[f"{ci} high"]))
            for r in table if r["Method"] == METHOD and r.get(ci)}


found = {n: rows(name) for n, name in TABLES.items()}
strides = sorted({k[1] for r in found.values() for k in r})
print("| Bonn test, improved − tuned OKS | stride | " + " | ".join(f"{n} videos" for n in TABLES) + " |")
print("|---|---:|" + "---|" * len(TABLES))
for setting in SETTINGS:
    for k in strides:
        cells = [found[n].get((setting, k)) for n in TABLES]
        print(f"| {setting} | {k} | " + " | ".join(
            "" if c is None else f"{c[1]:+.2f} [{c[2]:+.2f}, {c[3]:+.2f}] ({c[0]:.2f})" for c in cells) + " |")

fig, axes = plt.subplots(1, len(SETTINGS), figsize=(10, 3.8))
for ax, setting in zip(axes, SETTINGS):
    for i, k in enumerate(strides):
        points = [(n, found[n][setting, k]) for n in TABLES if (setting, k) in found[n]]
        xs = [n + (i - 1) * 0.4 for n, _ in points]
        ax.errorbar(xs, [c[1] for _, c in points], yerr=[[c[1] - c[2] for _, c in points],
                                                         [c[3] - c[1] for _, c in points]],
                    fmt="o-", capsize=3, label=f"stride {k}")
    ax.axhline(0.0, color="0.4", linewidth=0.8)
    ax.set_xticks(list(TABLES))
    ax.set_xlabel("Bonn train videos the networks were trained on")
    ax.set_ylabel("Δ%IDSW vs tuned OKS (95 % CI)")
    ax.set_title(setting, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.suptitle("Improved matcher minus tuned OKS on Bonn test, by the amount of real training data", fontsize=10)
fig.tight_layout()
fig.savefig("docs/img/data_scaling.png", dpi=120)
print("docs/img/data_scaling.png")
