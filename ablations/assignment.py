"""Greedy against Hungarian assignment of poses to tracks (§5.1, "Number of Timesteps and Other Factors").

    python -m ablations.assignment                                   # quick: synthetic scenes
    python -m ablations.assignment --data ../shared/data/bonn_mppt   # the data's test split

KeyTrack assigns the poses of a frame to tracks greedily, highest match score first (§3.1). §5.1:
"in replacement of our greedy algorithm, we experimented with the Hungarian algorithm used in
[21]. This algorithm is effective with ground truth information, but is not accurate when using
detected poses." This module tracks the evaluation split with the same δ = 4 matching network and
both assignments (:mod:`keytrack.tracking.assignment`), in each keypoint setting of Figure 4 (GT
keypoints; GT boxes + predicted keypoints; predicted boxes + predicted keypoints, the setting of the
paper's analysis, A.4), and writes ``results/assignment/table.md`` / ``table.csv``
(``.../<data>-<split>/`` with ``--data``): MOTA and %IDSW Total, mean ± std over perturbation
seeds, the Hungarian minus greedy difference paired by seed, the paper's greedy values (Figure 4)
and its verdict on Hungarian.

Both assignments see the same match scores: the second one is answered from the pair-score memo of
the first (:class:`ablations.timesteps.PairScoreMemo`), so only the assignment step re-runs.
Options, network and cells are shared with :mod:`ablations.timesteps`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Sequence

from ablations.common import Column, write_table
from ablations.tracking_ablation import (Cell, Result, TrackingOptions, add_tracking_arguments, common_notes,
                                        describe_network, failure_status, finish, hota_stats,
                                        matching_network, open_results,
                                        paired_difference, run_cells, seed_stat, total, tracking_kwargs)
from ablations.tracker_comparison import SETTING_LABELS, hota_columns
from keytrack.perturb import SETTINGS
from keytrack.poses import Dataset
from keytrack.tracking import ASSIGNMENTS

log = logging.getLogger("ablations.assignment")

ABLATION = "assignment"

#: Table labels of the assignments.
ASSIGNMENT_LABELS: dict[str, str] = {"greedy": "greedy (KeyTrack)", "hungarian": "Hungarian"}
#: §5.1's verdict on Hungarian assignment, per keypoint setting.
PAPER_VERDICT: dict[str, str] = {
    "gt_boxes_gt_keypoints": "effective with ground truth",
    "gt_boxes_predicted_keypoints": "not accurate with detected poses",
    "predicted_boxes_predicted_keypoints": "not accurate with detected poses",
}


@dataclass
class Options(TrackingOptions):
    """:class:`~ablations.timesteps.TrackingOptions` plus the assignments, settings and δ."""

    assignments: tuple[str, ...] = ("greedy", "hungarian")
    settings: tuple[str, ...] = SETTINGS
    delta: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [a for a in self.assignments if a not in ASSIGNMENTS]
        if bad or not self.assignments:
            raise ValueError(f"assignments: unknown {bad}; expected some of {list(ASSIGNMENTS)}")
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad or not self.settings:
            raise ValueError(f"settings: unknown {bad}; expected some of {list(SETTINGS)}")
        if self.delta < 1:
            raise ValueError(f"delta must be >= 1, got {self.delta}")


def _paper_figure4() -> dict:
    from keytrack.reference import paper_results

    return paper_results()["tracker_comparison"]["settings"]


def run_assignment(opts: Options, *, eval_gt: Dataset | None = None) -> Result:
    """Track the evaluation split with every assignment of ``opts`` and write the table."""
    profile, out, cache = open_results(opts, ABLATION)
    network, network_error = matching_network(opts, profile)
    eval_description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt

    def cell(setting: str, seed: int, assignment: str) -> Cell:
        return Cell(setting, seed, opts.delta, assignment, opts.output_keypoint_threshold(setting))

    cells = [cell(setting, seed, a) for setting in opts.settings for seed in opts.seeds_for(setting)
             for a in opts.assignments]
    records = run_cells(cells, cache=cache, eval_gt=eval_gt, network=network, network_error=network_error,
                        opts=opts, logger=log)
    failures = [f"{c.key}: {r.failure}" for c, r in records.items() if not r.ok]
    if network_error:
        failures.insert(0, f"matching network: {network_error}")

    paper = _paper_figure4()
    reference = "greedy" if "greedy" in opts.assignments else opts.assignments[0]
    rows = []
    for setting in opts.settings:
        seeds = opts.seeds_for(setting)
        by_assignment = {a: [records[cell(setting, s, a)] for s in seeds] for a in opts.assignments}
        ref = by_assignment[reference]
        for a in opts.assignments:
            recs = by_assignment[a]
            row = {"setting": SETTING_LABELS[setting], "assignment": ASSIGNMENT_LABELS.get(a, a),
                   "idsw": seed_stat(recs, total("idsw")), "mota": seed_stat(recs, total("mota")),
                   "d_idsw": paired_difference(recs, ref, total("idsw")) if a != reference else None,
                   "d_mota": paired_difference(recs, ref, total("mota")) if a != reference else None,
                   **hota_stats(recs), "switches": seed_stat(recs, lambda r: r.get("num_switches")),
                   "status": failure_status(recs, seeds)}
            if a == "greedy" and opts.delta == 4:
                row["idsw_paper"] = paper[setting]["pose_entailment"]["idsw"][-1]
                row["mota_paper"] = paper[setting]["pose_entailment"]["mota_total"]
            if a == "hungarian":
                row["paper"] = PAPER_VERDICT[setting]
            rows.append(row)

    ref_label = ASSIGNMENT_LABELS.get(reference, reference)
    columns = [Column("setting", "Keypoints"), Column("assignment", "Assignment"),
               Column("idsw", "%IDSW Total", digits=2), Column("idsw_paper", "%IDSW Total (paper)"),
               Column("mota", "MOTA"), Column("mota_paper", "MOTA (paper)"),
               *hota_columns(rows),
               Column("d_idsw", f"Δ%IDSW vs {reference}", digits=2),
               Column("d_mota", f"ΔMOTA vs {reference}", digits=2),
               Column("switches", "ID switches", digits=0), Column("paper", "Paper (§5.1)")]
    if any(r["status"] for r in rows):
        columns.append(Column("status", "Status"))
    notes = [
        f"Same matching network, same match scores, δ = {opts.delta}: greedy takes pose-track pairs by "
        "decreasing score (§3.1); Hungarian maximises the total score of a one-to-one assignment "
        "(scipy.optimize.linear_sum_assignment) and then drops pairs below the match threshold. "
        f"Δ: the row minus {ref_label}, paired by seed.",
        "Paper (§5.1, PoseTrack 2018 val): Hungarian \"is effective with ground truth information, but is "
        "not accurate when using detected poses\" (no numbers given); greedy values are Figure 4's Pose "
        "Entailment rows.",
        *common_notes(opts, profile, eval_gt, eval_description, cache, opts.settings),
        describe_network(network, network_error),
    ]
    files = list(write_table(rows, out, columns=columns, notes=notes,
                             title="Greedy and Hungarian assignment (§5.1)"))
    return Result(rows, out, files, failures, records)


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_tracking_arguments(parser, ABLATION)
    parser.add_argument("--assignments", nargs="+", choices=list(ASSIGNMENTS),
                        default=["greedy", "hungarian"],
                        help="assignments to compare (default: greedy hungarian)")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                        help="keypoint settings (default: all three of Figure 4)")
    parser.add_argument("--delta", type=int, default=4, help="δ: timesteps looked back (paper: 4)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        opts = Options(**tracking_kwargs(args), assignments=tuple(args.assignments),
                       settings=tuple(args.settings), delta=args.delta)
    except ValueError as err:
        raise SystemExit(f"assignment: {err}") from None
    return finish("assignment", run_assignment(opts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablations.assignment",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m ablations.assignment", main))
