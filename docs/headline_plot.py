"""Draws docs/img/headline.png, the README's plot: %IDSW against frame stride on Bonn test for the README's
headline trackers, GT and predicted keypoints, from the committed tables of `keytrack ablate
tracker_comparison` (docs/tracking.md, "keytrack's tracker against boxmot's"; run from the project root
after them: .venv/bin/python docs/headline_plot.py)."""

import csv
from pathlib import Path

from keytrack.ablations.plots import Panel, Series, save_line_plot
from keytrack.tables import MeanStd

SETTINGS = ("GT boxes, GT keypoints", "predicted boxes, predicted keypoints")
STRIDES = (1, 2, 4)
#: (legend, table folder, the Method column in it, the settings it holds the row for)
ROWS = (
    (
        "keytrack: OKS + Kalman, σ and threshold tuned, confident births",
        "bonn_mppt-test-oks-scale",
        "OKS (Hungarian) + Kalman",
        SETTINGS,
    ),
    ("keytrack's default tracker", "bonn_mppt-test-default", "OKS (Hungarian) + Kalman", SETTINGS),
    (
        "improved learned matcher + motion",
        "bonn_mppt-test-practitioner",
        "Pose Entailment (improved) + motion",
        SETTINGS[:1],
    ),
    (
        "improved learned matcher + motion",
        "bonn_mppt-test-newtrack",
        "Pose Entailment (improved) + motion",
        SETTINGS[1:],
    ),
    ("OKS + Kalman as the paper tracks", "bonn_mppt-test-practitioner", "OKS (greedy) + Kalman", SETTINGS),
    ("boxmot BoT-SORT (tuned)", "bonn_mppt-test-practitioner", "boxmot BoT-SORT (tuned)", SETTINGS),
    ("boxmot HybridSORT (tuned)", "bonn_mppt-test-practitioner", "boxmot HybridSORT (tuned)", SETTINGS),
)


def table(name: str) -> list[dict]:
    with open(Path("results/tracker_comparison") / name / "table.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def idsw(rows: list[dict], method: str, setting: str, stride: int) -> MeanStd | None:
    for r in rows:
        if (r["Method"], r["Keypoints"], int(r["Stride"])) == (method, setting, stride) and r["%IDSW Total"]:
            std = float(r.get("%IDSW Total std") or 0.0)
            return MeanStd(float(r["%IDSW Total"]), std, 3 if std else 1)  # learned rows: 3 training seeds
    return None


panels = []
for setting in SETTINGS:
    series: dict[str, list] = {}
    for label, folder, method, settings in ROWS:
        if setting in settings:
            rows = table(folder)
            series[label] = [idsw(rows, method, setting, k) for k in STRIDES]
    panels.append(
        Panel("%IDSW (Bonn test)", [Series(n, list(STRIDES), y) for n, y in series.items()], setting)
    )
    for n, y in series.items():
        print(f"{setting} | {n} | " + " | ".join("" if v is None else f"{v.mean:.2f}" for v in y))
save_line_plot(
    "docs/img/headline.png",
    panels,
    xlabel="frame stride (every k-th frame kept)",
    title="Bonn test: keytrack's trackers against boxmot's",
    xticks=list(STRIDES),
    dodge=0.05,
)
print("docs/img/headline.png")
