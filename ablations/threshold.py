"""Output keypoint-confidence threshold: AP against MOTA (A.3, Table 4).

    python -m ablations.threshold                                   # quick: synthetic scenes
    python -m ablations.threshold --data ../shared/data/bonn_mppt   # the data's test split

A.3: "The post-processing performed when evaluating AP and MOTA is different. Specifically, we use
a different keypoint confidence threshold, where keypoints above the threshold are kept and
keypoints below the threshold are ignored. [...] The threshold optimal for MOTA is much higher
than AP. Interestingly, ID Switches are not much worse." Table 4 reports AP, %IDSW and MOTA at
thresholds 0.05, 0.35, 0.5, 0.57 and 0.6 with predicted boxes and predicted keypoints.

This module tracks the predicted poses of the evaluation split once per perturbation seed with
the δ = 4 matching network (:func:`keytrack.tracking.apply_keypoint_threshold` acts on the output
only, so tracking does not depend on the threshold), removes the keypoints below each threshold and
scores what is left (AP, %IDSW and MOTA all on the thresholded output, as Table 4). It writes, under
``results/threshold/`` (``.../<data>-<split>/`` with ``--data``):

* ``table.md`` / ``table.csv``: AP, %IDSW Total and MOTA per threshold, mean ± std over seeds, with
  Table 4's row of the same threshold beside ours;
* ``threshold.png``: AP, MOTA and %IDSW against the threshold, ours and the paper's.

Options, network and cells are shared with :mod:`ablations.timesteps`.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass
from typing import Sequence

from ablations.common import Column, write_table
from ablations.tracking_ablation import (PAPER_SETTING, Cell, Panel, Result, Series, TrackingOptions,
                                        add_tracking_arguments, common_notes, describe_network, failure_status,
                                        finish, hota_stats, matching_network, open_results, run_cells,
                                        save_line_plot, seed_stat,
                                        total, tracking_kwargs)
from ablations.tracker_comparison import SETTING_LABELS, hota_columns
from keytrack.perturb import SETTINGS
from keytrack.poses import Dataset

log = logging.getLogger("ablations.threshold")

ABLATION = "threshold"

#: Table 4's thresholds.
PAPER_THRESHOLDS: tuple[float, ...] = (0.05, 0.35, 0.5, 0.57, 0.6)


@dataclass
class Options(TrackingOptions):
    """:class:`~ablations.timesteps.TrackingOptions` plus the thresholds, the setting and δ."""

    thresholds: tuple[float, ...] = PAPER_THRESHOLDS
    setting: str = PAPER_SETTING
    delta: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        self.thresholds = tuple(sorted({float(t) for t in self.thresholds}))
        if not self.thresholds or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must lie in [0, 1], got {list(self.thresholds)}")
        if self.setting not in SETTINGS:
            raise ValueError(f"setting: unknown {self.setting!r}; expected one of {list(SETTINGS)}")
        if self.delta < 1:
            raise ValueError(f"delta must be >= 1, got {self.delta}")


def paper_table4() -> list[dict]:
    """Table 4's rows: ``threshold``, ``ap``, ``idsw``, ``mota``."""
    from keytrack.reference import paper_results

    return paper_results()["keypoint_threshold"]["rows"]


def run_threshold(opts: Options, *, eval_gt: Dataset | None = None) -> Result:
    """Track once per seed, score the output at every threshold of ``opts``, write table and plot."""
    profile, out, cache = open_results(opts, ABLATION)
    network, network_error = matching_network(opts, profile)
    eval_description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt

    def cell(seed: int, threshold: float) -> Cell:
        return Cell(opts.setting, seed, opts.delta, "greedy", threshold, compute_ap=True)

    cells = [cell(seed, t) for seed in opts.seeds for t in opts.thresholds]
    records = run_cells(cells, cache=cache, eval_gt=eval_gt, network=network, network_error=network_error,
                        opts=opts, logger=log)
    failures = [f"{c.key}: {r.failure}" for c, r in records.items() if not r.ok]
    if network_error:
        failures.insert(0, f"matching network: {network_error}")

    paper = paper_table4()
    compare_paper = opts.setting == PAPER_SETTING
    rows = []
    for t in opts.thresholds:
        recs = [records[cell(s, t)] for s in opts.seeds]
        row = {"threshold": t, "ap": seed_stat(recs, total("ap")), "idsw": seed_stat(recs, total("idsw")),
               **hota_stats(recs), "mota": seed_stat(recs, total("mota")), "status": failure_status(recs, opts.seeds)}
        ref = next((p for p in paper if math.isclose(p["threshold"], t, abs_tol=1e-9)), None)
        if ref is not None and compare_paper:
            row.update(ap_paper=ref["ap"], idsw_paper=ref["idsw"], mota_paper=ref["mota"])
        rows.append(row)
    best = max((r for r in rows if r["mota"].n), key=lambda r: r["mota"].mean, default=None)
    for r in rows:
        r["best"] = "best MOTA" if r is best else ""

    columns = [Column("threshold", "Threshold", digits=2),
               Column("ap", "AP"), Column("ap_paper", "AP (paper)"),
               Column("idsw", "%IDSW Total", digits=2), Column("idsw_paper", "%IDSW (paper)"),
               Column("mota", "MOTA"), Column("mota_paper", "MOTA (paper)"), *hota_columns(rows),
               Column("best", "")]
    if any(r["status"] for r in rows):
        columns.append(Column("status", "Status"))
    notes = [
        f"{SETTING_LABELS[opts.setting]}, δ = {opts.delta}, greedy assignment. Keypoints with confidence "
        "below the threshold are removed from the tracked output (A.3); AP, %IDSW and MOTA are all scored on "
        "what is left, as in Table 4. The tracking itself is the same for every threshold.",
        "Paper: Table 4, PoseTrack 2018 val, HRNet keypoints on detector + TOKS boxes"
        + ("." if compare_paper else "; not shown, since this run's setting is not Table 4's."),
        *common_notes(opts, profile, eval_gt, eval_description, cache, [opts.setting],
                      keypoint_threshold=False),
        describe_network(network, network_error),
    ]
    files = list(write_table(rows, out, columns=columns, notes=notes,
                             title="Keypoint confidence threshold before evaluation (A.3, Table 4)"))
    x = [r["threshold"] for r in rows]
    panels = []
    for ylabel, key in (("AP", "ap"), ("MOTA", "mota"), ("%IDSW Total", "idsw")):
        series = [Series("ours", x, [r[key] for r in rows])]
        if compare_paper:
            series.append(Series("paper (Table 4)", [p["threshold"] for p in paper], [p[key] for p in paper],
                                 "s--"))
        panels.append(Panel(ylabel, series))
    files.append(save_line_plot(out / "threshold.png", panels, xlabel="keypoint confidence threshold",
                                title=f"Output keypoint threshold ({SETTING_LABELS[opts.setting]})"))
    return Result(rows, out, files, failures, records)


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_tracking_arguments(parser, ABLATION)
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(PAPER_THRESHOLDS),
                        help="keypoint confidence thresholds (default: Table 4's 0.05 0.35 0.5 0.57 0.6)")
    parser.add_argument("--setting", choices=SETTINGS, default=PAPER_SETTING,
                        help="keypoint setting (default: predicted boxes + predicted keypoints, Table 4's)")
    parser.add_argument("--delta", type=int, default=4, help="δ: timesteps looked back (paper: 4)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        opts = Options(**tracking_kwargs(args), thresholds=tuple(args.thresholds), setting=args.setting,
                       delta=args.delta)
    except ValueError as err:
        raise SystemExit(f"threshold: {err}") from None
    return finish("threshold", run_threshold(opts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablations.threshold",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m ablations.threshold", main))
