"""Table 2 (§4.3): per-joint AP when the pose estimator is given different boxes, TOKS among them.

    python -m ablations.toks                                    # synthetic scenes
    python -m ablations.toks --data ../shared/data/bonn_mppt    # the data's test split

Table 2 measures what §3.3's Temporal OKS (Algorithm 1) adds to a top-down pipeline: per-joint AP
with ground-truth boxes ("GT", the upper bound), with the detector's boxes alone ("Det."), with
boxes propagated from the previous frame and merged by NMS on box scores ("Det. + Box Prop."), and
with TOKS at OKS thresholds 0.3 / 0.35 / 0.5. Images, the detector and HRNet are not part of this
project, so every row runs the same online method code (:mod:`keytrack.toks`) on the simulated
detector and estimator of :mod:`keytrack.estimators.simulated`, whose errors follow the
perturbation protocol (``docs/perturbation.md``) plus a detector's misses in runs, imperfect boxes
and false positives. The evaluation split's ground truth is the world the simulator looks at;
predictions are scored with :func:`keytrack.evaluation.evaluate` (poseval's AP).

Each (row, seed) is a cached run (:class:`ablations.common.RunCache`, ``results/toks/runs/``); a
seed draws another world of detector and estimator errors, the same for every row. Written under
``results/toks/`` (``.../<data>-<split>/`` with ``--data``):

* ``table.md`` / ``table.csv``: AP per joint group and total, mean ± std over seeds, each row
  followed by Table 2's row (``paper``), and the gain over "Det.";
* ``counts.md`` / ``counts.csv``: what each method did per seed-averaged run: output poses,
  people the detector missed, poses TOKS recovered, duplicates removed, detections replaced, boxes
  NMS suppressed, and milliseconds per frame per stage.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ablations.common import Column, Profile, RunCache, RunRecord, dataset_fingerprint, mean_std, write_table
from keytrack.estimators.simulated import SimulatedConfig
from keytrack.poses import Dataset

log = logging.getLogger("ablations.toks")

ABLATION = "toks"
#: Bumped when the simulated models change what they output, so cached runs are redone.
SIMULATOR_VERSION = 1
#: Table 2's joint groups as PoseTrack's table names them.
PARTS: tuple[str, ...] = ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")
#: Table 2's OKS thresholds.
PAPER_OKS: tuple[float, ...] = (0.3, 0.35, 0.5)


@dataclass(frozen=True)
class Row:
    """One row of Table 2: a method of :data:`keytrack.toks.METHODS` and, for TOKS, its OKS threshold."""

    method: str
    oks_threshold: float | None = None

    @property
    def key(self) -> str:
        """``paper_results.yaml``'s name of the row (``toks_oks_0.35``)."""
        names = {"gt_boxes": "gt_boxes", "detector": "detector", "box_propagation": "detector_box_prop"}
        return names.get(self.method) or f"toks_oks_{self.oks_threshold:.2f}"

    @property
    def label(self) -> str:
        labels = {"gt_boxes": "GT", "detector": "Det.", "box_propagation": "Det. + Box Prop."}
        return labels.get(self.method) or f"Det. + TOKS@{self.oks_threshold:g}"


@dataclass
class Options:
    """Everything the table depends on (the command-line options)."""

    data: str | None = None
    eval_split: str | None = None
    out: str | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    oks_thresholds: tuple[float, ...] = PAPER_OKS
    alpha: float = 1.25
    box_score: float = 0.2
    keypoint_score: float = 0.1
    nms_iou: float = 0.5
    synthetic_test_videos: int = 20
    retry_failed: bool = True

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds or min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")
        self.oks_thresholds = tuple(sorted({float(t) for t in self.oks_thresholds}))
        if not all(0.0 <= t <= 1.0 for t in self.oks_thresholds):
            raise ValueError(f"oks thresholds must lie in [0, 1], got {list(self.oks_thresholds)}")
        for name in ("box_score", "keypoint_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must lie in (0, 1], got {self.nms_iou}")
        if self.synthetic_test_videos < 1:
            raise ValueError(f"synthetic_test_videos must be >= 1, got {self.synthetic_test_videos}")

    def rows(self) -> list[Row]:
        return [Row("gt_boxes"), Row("detector"), Row("box_propagation"),
                *(Row("toks", t) for t in self.oks_thresholds)]

    def method_kwargs(self, row: Row) -> dict:
        kw = {"box_score": self.box_score, "keypoint_score": self.keypoint_score}
        if row.method == "box_propagation":
            kw.update(alpha=self.alpha, nms_iou=self.nms_iou)
        if row.method == "toks":
            kw.update(alpha=self.alpha, oks_threshold=row.oks_threshold)
        return kw


@dataclass
class Result:
    rows: list[dict]
    out: Path
    files: list[Path]
    failures: list[str]
    records: dict


def paper_table2() -> dict[str, list[float]]:
    """Table 2's rows by name (``gt_boxes``, ``detector``, ...), values in :data:`PARTS` order."""
    from keytrack.reference import paper_results

    return paper_results()["box_improvement"]["rows"]


def run_cell(eval_gt: Dataset, row: Row, seed: int, opts: Options) -> dict:
    """One method over every video with the simulated models of ``seed``; AP and the method's counts."""
    from keytrack.estimators.simulated import simulated_scenes
    from keytrack.evaluation import evaluate
    from keytrack.toks import make_method, toks_dataset

    method = make_method(row.method, **opts.method_kwargs(row))
    predicted = toks_dataset(eval_gt, method, seed=seed)
    ap = evaluate(eval_gt, predicted, compute_mot=False).columns("ap")
    people = missed = 0
    if row.method != "gt_boxes":
        for scene in simulated_scenes(eval_gt, seed):
            people += len(scene.missed)
            missed += int(scene.missed.sum())
    return {"ap": ap, "stats": method.stats.to_dict(), "gt_people": people, "missed_by_detector": missed}


def _ap(part: str):
    return lambda result: (result.get("ap") or {}).get(part)


def run_toks(opts: Options, *, eval_gt: Dataset | None = None) -> Result:
    """Run (or reuse) every (row, seed) cell and write ``table`` and ``counts``."""
    profile = Profile.from_data(opts.data, opts.eval_split, synthetic_eval_videos=opts.synthetic_test_videos)
    out = Path(opts.out) if opts.out else profile.results_dir(ABLATION)
    cache = RunCache(out / "runs", retry_failed=opts.retry_failed)
    description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt
    data_id = dataset_fingerprint(eval_gt)
    simulator_config = dataclasses.asdict(SimulatedConfig())

    records: dict[tuple[Row, int], RunRecord] = {}
    cells = [(row, seed) for row in opts.rows() for seed in opts.seeds]
    for i, (row, seed) in enumerate(cells, 1):
        params = {"data": data_id, "method": row.method, "seed": seed, "simulator": SIMULATOR_VERSION,
                  "config": simulator_config, **opts.method_kwargs(row)}
        log.info("[%d/%d] %s seed %d", i, len(cells), row.label, seed)
        records[row, seed] = cache.run(f"{row.key}-seed{seed}",
                                       lambda r=row, s=seed: run_cell(eval_gt, r, s, opts), params)
    failures = [f"{row.key}-seed{seed}: {r.failure}" for (row, seed), r in records.items() if not r.ok]

    paper = paper_table2()
    det_total = {seed: (records[Row("detector"), seed].result or {}).get("ap", {}).get("Total")
                 for seed in opts.seeds if records[Row("detector"), seed].ok}
    table, counts = [], []
    for row in opts.rows():
        recs = [records[row, s] for s in opts.seeds]
        ok = [(s, r) for s, r in zip(opts.seeds, recs) if r.ok]
        line = {"method": row.label, "source": "ours",
                **{p: mean_std(_ap(p)(r.result) for _, r in ok) for p in PARTS},
                "gain": mean_std(r.result["ap"]["Total"] - det_total[s] for s, r in ok
                                 if s in det_total and r.result["ap"].get("Total") is not None)
                if row.method != "detector" else None}
        bad = [f"seed {s}: {r.failure}" for s, r in zip(opts.seeds, recs) if not r.ok]
        if bad:
            line["status"] = "failed: " + "; ".join(bad)
        table.append(line)
        ref = paper.get(row.key)
        if ref is not None:
            table.append({"method": "", "source": "paper", **dict(zip(PARTS, ref)),
                          "gain": ref[-1] - paper["detector"][-1] if row.method != "detector" else None})

        def stat(name: str, per_frame: bool = False, scale: float = 1.0):
            values = []
            for _, r in ok:
                st = r.result["stats"]
                frames = max(st["frames"], 1)
                values.append(scale * st[name] / (frames if per_frame else 1))
            return mean_std(values)

        missed = mean_std(100.0 * r.result["missed_by_detector"] / r.result["gt_people"] for _, r in ok
                          if r.result["gt_people"])
        counts.append({"method": row.label, "frames": stat("frames"), "poses_per_frame": stat("poses", True),
                       "missed_pct": missed if row.method != "gt_boxes" else None,
                       "recovered": stat("recovered") if row.method == "toks" else None,
                       "duplicates": stat("duplicates") if row.method == "toks" else None,
                       "replaced": stat("replaced") if row.method == "toks" else None,
                       "suppressed": stat("suppressed") if row.method == "box_propagation" else None,
                       "kp_dropped": stat("keypoint_dropped"),
                       "detect_ms": stat("detect_seconds", True, 1e3),
                       "estimate_ms": stat("estimate_seconds", True, 1e3),
                       "match_ms": stat("match_seconds", True, 1e3)})

    columns = [Column("method", "Detection method"), Column("source", ""), *(Column(p, p) for p in PARTS),
               Column("gain", "Total − Det.")]
    if any("status" in r for r in table):
        columns.append(Column("status", "Status"))
    seeds = ", ".join(map(str, opts.seeds))
    notes = [
        f"Evaluation: {description} ({eval_gt.report()}); the paper: PoseTrack 2018 val with HTC boxes and "
        "HRNet-W48 keypoints. AP as poseval computes it (§4.1), Total = mean over joints; a joint group the "
        "data never annotates (Bonn's nose) leaves its column empty.",
        f"Boxes and keypoints: keytrack.estimators.simulated (simulator version {SIMULATOR_VERSION}), seeds "
        f"{seeds}" + (" (mean ± sample std over seeds)" if len(opts.seeds) > 1 else "") + "; every row of a "
        "seed sees the same detector and estimator errors.",
        f"A.4's thresholds in every row: detector boxes below {opts.box_score:g} are discarded, keypoints "
        f"below {opts.keypoint_score:g} removed and poses left empty dropped. α = {opts.alpha:g} for the "
        f"propagated boxes (A.1); Box Prop. merges boxes by NMS at IoU {opts.nms_iou:g} (a propagated box "
        "scores its pose's mean keypoint confidence).",
        "`paper` rows: Table 2 (keytrack/reference/paper_results.yaml, `box_improvement`). "
        "Counts per method: counts.md.",
        f"Runs are cached in {cache.directory}/ ({cache.reused} reused, {cache.computed} run now); delete a "
        "file there to run it again.",
    ]
    files = list(write_table(table, out, columns=columns, notes=notes,
                             title="Per-joint AP by the boxes the estimator is given (Table 2, §4.3)"))
    count_columns = [Column("method", "Detection method"), Column("frames", "Frames", 0),
                     Column("poses_per_frame", "Poses / frame", 2), Column("missed_pct", "Det. missed %"),
                     Column("recovered", "Recovered", 0), Column("duplicates", "Duplicates removed", 0),
                     Column("replaced", "Replaced", 0), Column("suppressed", "NMS suppressed", 0),
                     Column("kp_dropped", "Empty poses dropped", 0),
                     Column("detect_ms", "Detect ms/frame", 2),
                     Column("estimate_ms", "Estimate ms/frame", 2), Column("match_ms", "Match ms/frame", 2)]
    count_notes = [
        "Sums over all videos of a run, mean ± std over seeds. Det. missed %: annotated people the "
        "simulated detector outputs no box for (before the box-score threshold). Recovered: propagated "
        "poses TOKS added (no detection at OKS ≥ threshold). Duplicates removed: propagated poses dropped "
        "as the same person as a kept pose. Replaced: detections whose pose a better-scoring propagated "
        "pose replaced. NMS suppressed: boxes (detected or propagated) removed by Box Prop.'s NMS. Empty poses dropped: "
        "estimated poses without a keypoint at or above the keypoint score.",
        "Milliseconds per frame of the simulated models and of the matching step, on this machine's CPU "
        "(the simulator needs no network, so these are not HTC/HRNet timings).",
    ]
    files += list(write_table(counts, out, name="counts", columns=count_columns, notes=count_notes,
                              title="What each method did (Table 2's runs)"))
    return Result(table, out, files, failures, records)


# -- command line -----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None,
                        help="PoseTrack18-layout folder whose evaluation split is the simulated world "
                             "(default: 20 synthetic test videos)")
    parser.add_argument("--eval-split", default=None, help="split of --data (default: test, else val)")
    parser.add_argument("--out", default=None, help="results folder (default: results/toks[/<data>-<split>])")
    parser.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0, 1, 2], dest="seeds",
                        help="simulation seeds (default: 0 1 2)")
    parser.add_argument("--oks", type=float, nargs="+", default=list(PAPER_OKS),
                        help="TOKS OKS thresholds (default: Table 2's 0.3 0.35 0.5)")
    parser.add_argument("--alpha", type=float, default=1.25, help="box dilation α (A.1: 1.25)")
    parser.add_argument("--box-score", type=float, default=0.2, help="minimum detector box score (A.4: 0.2)")
    parser.add_argument("--keypoint-score", type=float, default=0.1,
                        help="minimum keypoint confidence (A.4: 0.1)")
    parser.add_argument("--nms-iou", type=float, default=0.5, help="IoU of Box Prop.'s NMS (default 0.5)")
    parser.add_argument("--synthetic-test-videos", type=int, default=20,
                        help="synthetic test videos without --data (default 20)")
    parser.add_argument("--threads", type=int, default=None, help="accepted for symmetry; numpy only")
    parser.add_argument("--no-retry-failed", action="store_true", help="keep recorded failures as they are")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        opts = Options(data=args.data, eval_split=args.eval_split, out=args.out, seeds=tuple(args.seeds),
                       oks_thresholds=tuple(args.oks), alpha=args.alpha, box_score=args.box_score,
                       keypoint_score=args.keypoint_score, nms_iou=args.nms_iou,
                       synthetic_test_videos=args.synthetic_test_videos,
                       retry_failed=not args.no_retry_failed)
    except ValueError as err:
        raise SystemExit(f"toks: {err}") from None
    result = run_toks(opts)
    print((result.out / "table.md").read_text(encoding="utf-8"))
    print((result.out / "counts.md").read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(f) for f in result.files))
    if result.failures:
        print(f"toks: {len(result.failures)} failure(s):\n  " + "\n  ".join(result.failures), file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablations.toks", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
