"""Learning curves: the ranking metric of the validation videos against training steps.

    keytrack learning-curve runs/improved/bonn_mppt-train-seed* runs/default/bonn_mppt-train-seed* \\
        --out results/learning_curve/bonn_mppt-train

Reads each run's CSV logs (:func:`keytrack.runlogs.read_metrics`, every resumed attempt) and plots
``val/rank1``, ``val/wrong_beats_true`` (log scale) and, where logged, the balanced pair accuracy
``val/acc`` against the global step, one line per run, coloured by experiment, its runs told apart by
marker and line style; writes ``curve.png`` and ``curve.csv`` (run, experiment, step, epoch,
metrics) under ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keytrack.atomic import write_text

METRICS = ("val/rank1", "val/wrong_beats_true", "val/new_track", "val/acc")


def curve_rows(run: Path) -> list[dict]:
    from keytrack.runlogs import read_metrics

    experiment = run.parent.name
    rows = []
    for r in read_metrics(run):
        if r.get("val/rank1"):
            rows.append(
                {
                    "run": run.name,
                    "experiment": experiment,
                    "step": int(r["step"]),
                    "epoch": int(r["epoch"]),
                    **{m: float(r[m]) for m in METRICS if r.get(m)},
                }
            )
    return rows


def plot(rows: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_acc = any("val/acc" in r for r in rows)
    fig, axes = plt.subplots(1, 3 if with_acc else 2, figsize=(15 if with_acc else 10, 3.8))
    experiments = sorted({r["experiment"] for r in rows})
    colours = {e: f"C{i}" for i, e in enumerate(experiments)}
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]
    runs = sorted({(r["experiment"], r["run"]) for r in rows})
    for run in runs:
        pts = sorted((r for r in rows if (r["experiment"], r["run"]) == run), key=lambda r: r["step"])
        steps = [r["step"] for r in pts]
        marker, line = styles[[x for x in runs if x[0] == run[0]].index(run) % len(styles)]
        kw = dict(color=colours[run[0]], marker=marker, linestyle=line, label=f"{run[0]}/{run[1]}")
        axes[0].plot(steps, [r["val/rank1"] for r in pts], **kw)
        axes[1].plot(steps, [max(r.get("val/wrong_beats_true", 0.0), 1e-4) for r in pts], **kw)
        if with_acc:
            axes[2].plot(
                [r["step"] for r in pts if "val/acc" in r],
                [r["val/acc"] for r in pts if "val/acc" in r],
                **kw,
            )
    axes[0].set_ylabel("val/rank1 (true continuation first)")
    axes[1].set_ylabel("val/wrong_beats_true")
    axes[1].set_yscale("log")
    if with_acc:
        axes[2].set_ylabel("val/acc (balanced pairs)")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".curve.png.tmp"
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    tmp.replace(out / "curve.png")
    return out / "curve.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders (runs/<experiment>/<run>)")
    parser.add_argument("--out", default="runs/learning_curve", help="output folder (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """``keytrack learning-curve``: ``curve.png`` and ``curve.csv`` of the runs' validation metrics."""
    from keytrack.errors import InputError
    from keytrack.tables import csv_table

    rows = [row for run in args.runs for row in curve_rows(Path(run))]
    if not rows:
        raise InputError("no validation metrics in " + ", ".join(args.runs))
    out = Path(args.out)
    write_text(out / "curve.csv", csv_table(rows, ["run", "experiment", "step", "epoch", *METRICS]))
    print(f"wrote {plot(rows, out)} and {out / 'curve.csv'}")
    return 0
