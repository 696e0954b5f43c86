"""Draws docs/img/data_scaling.png and prints its table: the improved matcher minus tuned OKS on Bonn test
(pooled %IDSW, 95 % interval over the test videos and the 3 training seeds) against the number of Bonn train
videos the networks were trained on, from three tables of `keytrack ablate tracker_comparison`: the README's
(`bonn_mppt-test-tuned`, 24 training videos, 6 held out for validation) and the same command with
`--improved-override data.val_fraction=0.5` (15), `0.75` (8) and `0.1` (27, 3 held out); see
docs/matchers.md, "More real training
videos" (run from the project root after them: .venv/bin/python docs/data_scaling.py)."""

import csv
from pathlib import Path

from keytrack.ablations.plots import Panel, Series, save_line_plot
from keytrack.tables import Interval

TABLES = {
    8: "bonn_mppt-test-train8",
    15: "bonn_mppt-test-train15",
    24: "bonn_mppt-test-tuned",
    27: "bonn_mppt-test-train27",
}
SETTINGS = ("GT boxes, GT keypoints", "predicted boxes, predicted keypoints")
METHOD = "Pose Entailment (improved)"


def rows(name: str) -> dict:
    """``{(setting, stride): (%IDSW, Interval(difference, low, high))}`` of the improved matcher in one
    table."""
    with open(Path("results/tracker_comparison") / name / "table.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    ci = next(c for c in table[0] if "95 % CI" in c and not c.endswith((" low", " high")))
    return {
        (r["Keypoints"], int(r["Stride"])): (
            float(r["%IDSW Total"]),
            Interval(float(r[ci]), float(r[f"{ci} low"]), float(r[f"{ci} high"])),
        )
        for r in table
        if r["Method"] == METHOD and r.get(ci)
    }


found = {n: rows(name) for n, name in TABLES.items()}
strides = sorted({k[1] for r in found.values() for k in r})
print("| Bonn test, improved − tuned OKS | stride | " + " | ".join(f"{n} videos" for n in TABLES) + " |")
print("|---|---:|" + "---|" * len(TABLES))
for setting in SETTINGS:
    for k in strides:
        cells = [found[n].get((setting, k)) for n in TABLES]
        print(
            f"| {setting} | {k} | "
            + " | ".join("" if c is None else f"{c[1].format(2)} ({c[0]:.2f})" for c in cells)
            + " |"
        )

panels = [
    Panel(
        "Δ%IDSW vs tuned OKS (95 % CI)",
        [
            Series(f"stride {k}", list(TABLES), [found[n].get((setting, k), (None, None))[1] for n in TABLES])
            for k in strides
        ],
        setting,
    )
    for setting in SETTINGS
]
save_line_plot(
    "docs/img/data_scaling.png",
    panels,
    xlabel="Bonn train videos the networks were trained on",
    title="Improved matcher minus tuned OKS on Bonn test, by the amount of real training data",
    xticks=list(TABLES),
    zero_line=True,
    dodge=0.4,
)
print("docs/img/data_scaling.png")
