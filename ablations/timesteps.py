"""Number of timesteps δ at tracking time (§5.1, "Number of Timesteps and Other Factors").

    python -m ablations.timesteps                                   # quick: synthetic scenes
    python -m ablations.timesteps --data ../shared/data/bonn_mppt   # the data's test split

The paper's tracker compares each pose with the tracked poses of the previous δ = 4 timesteps
(§3.1) and reports that "reducing the number of timesteps adversely affects the MOTA score. It
drops up to 0.3 points when using only a single timestep because we are less robust to detection
errors" (§5.1), measured with predicted boxes and predicted keypoints and its best model (A.4,
"Details of the Tracking Pipeline Analysis"). This module tracks the evaluation split with the
δ = 4 matching network at δ = 1, 2, 3, 4 and writes, under ``results/timesteps/``
(``.../<data>-<split>/`` with ``--data``):

* ``table.md`` / ``table.csv``: MOTA and %IDSW Total per keypoint setting and δ, mean ± std over
  perturbation seeds, the change of MOTA against δ = 4 (paired by seed), and the paper's values
  (Figure 4 at δ = 4, §5.1's "up to 0.3" at δ = 1);
* ``timesteps.png``: MOTA and %IDSW against δ.

The network is trained once (``--experiment``, ``default`` in the quick profile, the paper's
``paper`` in the full one), or the finished run of the same configuration is reused, e.g. the one
``make train`` or the tracker comparison left in ``runs/default/<data>-seed0``.

What the tracking-time ablations share (options, cells, plots) is in :mod:`ablations.tracking_ablation`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Sequence

from ablations.common import Column, write_table
from ablations.tracker_comparison import SETTING_LABELS, hota_columns
from ablations.tracking_ablation import (GT_SETTING, PAPER_SETTING, Cell, Panel, Result, Series, TrackingOptions,
                                         add_tracking_arguments, common_notes, describe_network, failure_status,
                                         finish, hota_stats, matching_network, open_results,
                                         paired_difference, run_cells,
                                         save_line_plot, seed_stat, total, tracking_kwargs)
from keytrack.perturb import SETTINGS
from keytrack.poses import Dataset

log = logging.getLogger("ablations.timesteps")

ABLATION = "timesteps"


@dataclass
class Options(TrackingOptions):
    """:class:`TrackingOptions` plus the δ values and keypoint settings to track with."""

    deltas: tuple[int, ...] = (1, 2, 3, 4)
    settings: tuple[str, ...] = (PAPER_SETTING, GT_SETTING)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.deltas = tuple(sorted({int(d) for d in self.deltas}))
        if not self.deltas or self.deltas[0] < 1:
            raise ValueError(f"deltas must be integers >= 1, got {list(self.deltas)}")
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad or not self.settings:
            raise ValueError(f"settings: unknown {bad}; expected some of {list(SETTINGS)}")


def _paper_figure4() -> dict:
    from keytrack.reference import paper_results

    return paper_results()["tracker_comparison"]["settings"]


#: §5.1: "[MOTA] drops up to 0.3 points when using only a single timestep" (predicted poses).
PAPER_SINGLE_TIMESTEP_MOTA_DROP = -0.3


def run_timesteps(opts: Options, *, eval_gt: Dataset | None = None) -> Result:
    """Track the evaluation split at every δ of ``opts.deltas`` and write the table and the plot.

    ``eval_gt`` replaces the profile's evaluation ground truth (tests, other data).
    """
    profile, out, cache = open_results(opts, ABLATION)
    network, network_error = matching_network(opts, profile)
    eval_description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt

    cells = [Cell(setting, seed, delta, "greedy", opts.output_keypoint_threshold(setting))
             for setting in opts.settings for seed in opts.seeds_for(setting) for delta in opts.deltas]
    records = run_cells(cells, cache=cache, eval_gt=eval_gt, network=network, network_error=network_error,
                        opts=opts)
    failures = [f"{c.key}: {r.failure}" for c, r in records.items() if not r.ok]
    if network_error:
        failures.insert(0, f"matching network: {network_error}")

    paper = _paper_figure4()
    reference_delta = 4 if 4 in opts.deltas else max(opts.deltas)     # the paper's δ
    rows = []
    for setting in opts.settings:
        seeds = opts.seeds_for(setting)
        by_delta = {d: [records[Cell(setting, s, d, "greedy", opts.output_keypoint_threshold(setting))]
                        for s in seeds] for d in opts.deltas}
        for delta in opts.deltas:
            recs = by_delta[delta]
            row = {"setting": SETTING_LABELS[setting], "delta": delta,
                   "idsw": seed_stat(recs, total("idsw")), "mota": seed_stat(recs, total("mota")),
                   **hota_stats(recs), "switches": seed_stat(recs, lambda r: r.get("num_switches")),
                   "d_mota": (paired_difference(recs, by_delta[reference_delta], total("mota"))
                              if delta != reference_delta else None),
                   "status": failure_status(recs, seeds)}
            if delta == 4:
                row["idsw_paper"] = paper[setting]["pose_entailment"]["idsw"][-1]
                row["mota_paper"] = paper[setting]["pose_entailment"]["mota_total"]
            if delta == 1 and setting == PAPER_SETTING and reference_delta == 4:
                row["d_mota_paper"] = PAPER_SINGLE_TIMESTEP_MOTA_DROP
            rows.append(row)

    columns = [Column("setting", "Keypoints"), Column("delta", "δ"),
               Column("idsw", "%IDSW Total", digits=2), Column("idsw_paper", "%IDSW Total (paper)"),
               Column("mota", "MOTA"), Column("mota_paper", "MOTA (paper)"),
               *hota_columns(rows),
               Column("d_mota", f"ΔMOTA vs δ = {reference_delta}", digits=2),
               Column("d_mota_paper", "ΔMOTA (paper, at most)"), Column("switches", "ID switches", digits=0)]
    if any(r["status"] for r in rows):
        columns.append(Column("status", "Status"))
    notes = [
        f"δ: how many timesteps back the tracker compares (§3.1), with the same δ = 4 matching network "
        f"(its Segment tokens cover Δ = 1..4). ΔMOTA: MOTA at δ minus MOTA at δ = {reference_delta}, "
        "paired by seed.",
        "Paper (§5.1, predicted boxes and keypoints, PoseTrack 2018 val): MOTA \"drops up to 0.3 points "
        "when using only a single timestep because we are less robust to detection errors\"; its δ = 4 "
        "values are Figure 4's Pose Entailment rows.",
        *common_notes(opts, profile, eval_gt, eval_description, cache, opts.settings),
        describe_network(network, network_error),
    ]
    files = list(write_table(rows, out, columns=columns, notes=notes,
                             title="Number of timesteps δ at tracking time (§5.1)"))
    # one row of plots per setting, as their scales differ; the paper's δ = 4 values are in the table
    panels = [Panel(ylabel, [Series("ours", [r["delta"] for r in mine], [r[key] for r in mine])], label)
              for label, mine in ((SETTING_LABELS[s], [r for r in rows if r["setting"] == SETTING_LABELS[s]])
                                  for s in opts.settings)
              for ylabel, key in (("MOTA", "mota"), ("%IDSW Total", "idsw"))]
    files.append(save_line_plot(out / "timesteps.png", panels, xlabel="δ (timesteps compared)", ncols=2,
                                title="Timesteps at tracking time (δ = 4 network)", xticks=opts.deltas))
    return Result(rows, out, files, failures, records)


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_tracking_arguments(parser, ABLATION)
    parser.add_argument("--deltas", type=int, nargs="+", default=[1, 2, 3, 4],
                        help="δ values to track with (default: 1 2 3 4)")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=[PAPER_SETTING, GT_SETTING],
                        help="keypoint settings (default: predicted boxes + predicted keypoints, and GT "
                             "keypoints)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        opts = Options(**tracking_kwargs(args), deltas=tuple(args.deltas), settings=tuple(args.settings))
    except ValueError as err:
        raise SystemExit(f"timesteps: {err}") from None
    return finish("timesteps", run_timesteps(opts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablations.timesteps",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m ablations.timesteps", main))
