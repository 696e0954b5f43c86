"""What makes the learned matcher track: every variant of ``experiments/ablations/matcher_variants.yaml``.

    python -m ablations.matcher_variants                                  # synthetic default
    python -m ablations.matcher_variants --data ../shared/data/bonn_mppt  # Bonn train split

Each variant (an experiment and overrides, plus the spec's common budget) is trained on the
training videos of the training split (:func:`ablations.training.train_or_reuse`: a finished run of
the same configuration is reused; ``train_data: synthetic`` trains on the embedded synthetic scenes
instead, ``init_from: <earlier variant>`` starts from that variant's weights; ``motion`` and
``min_keypoint_confidence`` and ``detection_threshold`` are the tracker's settings for that variant,
``match_threshold`` the tracker's match threshold (default 0.5), ``predicted_only`` skips the ranking and
GT-keypoint cells; ``oks_motion``, ``oks_min_keypoint_confidence`` and ``oks_detection_threshold`` add OKS
rows with them, ``oks_thresholds`` OKS rows at those match thresholds, predicted keypoints only) and
measured on the split's *validation* videos only:

* the ranking metrics of the best checkpoint (:func:`keytrack.diagnose.diagnose`: rank-1 and
  "best wrong beats true" over the tracker's window) at frame strides 1 and 4 (the spec's
  ``strides``), and the pair
  accuracy ``val/acc`` logged by training;
* tracking those validation videos (GT keypoints, δ = 4, greedy, match threshold 0.5) at the
  same frame strides, %IDSW and MOTA by :mod:`keytrack.evaluation`, and their predicted boxes and
  keypoints (the perturbation protocol) at the same strides, %IDSW; OKS with the same tracker (its
  threshold tuned on the training videos) is the reference row.

Writes ``results/matcher_variants/[<data>-train/]table.{md,csv}``. Cells are cached runs
(:class:`ablations.runs.RunCache`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from ablations.cells import tune_threshold
from ablations.evaluate import COMPARISON_KEYPOINT_THRESHOLD as KEYPOINT_THRESHOLD
from ablations.evaluate import EvalSet, Evaluator, TrackerSpec
from ablations.options import RunOptions, add_options
from ablations.profile import Profile, display_path
from ablations.runs import RunCache, command_main, dataset_fingerprint, file_digest
from ablations.training import train_or_reuse
from keytrack.config import config_path
from keytrack.evaluation.head_boxes import complete_head_boxes
from keytrack.tables import Column, write_table

log = logging.getLogger("ablations.matcher_variants")

ABLATION = "matcher_variants"
SPEC = config_path("ablations", f"{ABLATION}.yaml")
STRIDES = (1, 4)
OKS_GRID = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5)
GT, PREDICTED = "gt_boxes_gt_keypoints", "predicted_boxes_predicted_keypoints"


def load_spec(path: str | Path = SPEC) -> dict:
    spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    for i, v in enumerate(spec.get("variants") or []):
        missing = {"name", "experiment"} - set(v)
        if missing:
            raise ValueError(f"{path}: variants[{i}] lacks {sorted(missing)}")
    if not spec.get("variants"):
        raise ValueError(f"{path}: no variants")
    return spec


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def _validation_ground_truth(profile: Profile, cfg) -> tuple:
    """GT of the validation videos of ``cfg``'s training split (the videos training held out)."""
    from keytrack.data import load_dataset
    from keytrack.pairs import split_videos

    train = load_dataset(cfg.data)
    train_idx, val_idx = split_videos(len(train.videos), float(cfg.data.val_fraction), int(cfg.seed))
    full = profile.load_train(int(cfg.data.synthetic.videos), int(cfg.data.synthetic.seed))
    val, _ = complete_head_boxes(full.subset([train.videos[i].name for i in val_idx]))
    fit, _ = complete_head_boxes(full.subset([train.videos[i].name for i in train_idx]))
    return fit, val


class _Variants:
    """The cells of one variants table: each matcher's ranking and tracking on the validation videos."""

    def __init__(self, spec: dict, profile: Profile, cache: RunCache, fit, val):
        self.spec, self.profile, self.cache, self.val = spec, profile, cache, val
        self.strides = tuple(int(k) for k in spec.get("strides", STRIDES))
        self.val_id = dataset_fingerprint(val)
        self.evaluator = Evaluator(cache)
        # OKS's threshold tuned on the training videos (as the tracker comparison tunes it)
        tuned, _ = tune_threshold(
            self.evaluator,
            TrackerSpec("oks", motion="none"),
            EvalSet(fit, GT, compute_hota=False),
            OKS_GRID,
            key="oks",
        )
        self.oks_threshold = 0.05 if tuned is None else tuned

    def _tracker(self, checkpoint, threshold, motion=None, confidence=0.0, detection=None) -> TrackerSpec:
        return TrackerSpec(
            "oks" if checkpoint is None else "network",
            checkpoint,
            threshold,
            motion=motion,
            min_keypoint_confidence=confidence,
            detection_threshold=detection,
        )

    def _evalset(self, setting: str, stride: int) -> EvalSet:
        return EvalSet(
            self.val, setting, 0, stride, keypoint_threshold=0.0 if setting == GT else KEYPOINT_THRESHOLD
        )

    def _ranking(self, checkpoint, stride: int, motion=None) -> dict:
        from keytrack.diagnose import diagnose
        from keytrack.tracking import subsample

        scorer = self.evaluator.scorer(self._tracker(checkpoint, 0.5))
        threshold = 0.5 if checkpoint else self.oks_threshold
        return diagnose(subsample(self.val, stride), scorer, match_threshold=threshold, motion=motion)[
            "rows"
        ][0]

    def measure(
        self,
        row: dict,
        key: str,
        params: dict,
        checkpoint: str | None,
        threshold: float,
        motion: str | None = None,
        confidence: float = 0.0,
        detection: float | None = None,
        predicted_only: bool = False,
    ) -> None:
        """Fill ``row``, per stride: the ranking and GT-keypoint tracking (unless ``predicted_only``),
        and predicted boxes and keypoints with the tracker's ``confidence`` / ``detection`` settings.
        Cells are named by the matcher (``key``) and the tracker's settings, so rows of one network
        share their ranking and GT cells."""
        for k in self.strides:
            cell = f"{key}-stride{k}" + (f"-motion-{motion}" if motion else "")
            if not predicted_only:
                p = {"data": self.val_id, **params, "stride": k, **({"motion": motion} if motion else {})}
                rec = self.cache.run(f"{cell}-ranking", lambda k=k: self._ranking(checkpoint, k, motion), p)
                row[f"rank1_{k}"] = rec.result["rank1"] if rec.ok else None
                row[f"wrong_{k}"] = rec.result["wrong_beats_true"] if rec.ok else None
                rec = self.evaluator.run(
                    self._tracker(checkpoint, threshold, motion), self._evalset(GT, k), cell
                )
                row[f"idsw{k}"] = rec.result["idsw"]["Total"] if rec.ok else None
                row[f"mota{k}"] = rec.result["mota"]["Total"] if rec.ok else None
                if not rec.ok:
                    row["status"] = rec.failure
            name = (
                f"{cell}-predicted"
                + (f"-conf{confidence:g}" if confidence else "")
                + ("" if detection is None else f"-det{detection:g}")
            )
            rec = self.evaluator.run(
                self._tracker(checkpoint, threshold, motion, confidence, detection),
                self._evalset(PREDICTED, k),
                name,
            )
            row[f"pidsw{k}"] = rec.result["idsw"]["Total"] if rec.ok else None
            row[f"pswitches{k}"] = rec.result["num_switches"] if rec.ok else None
            if not rec.ok:
                row["status"] = rec.failure

    def oks_rows(self) -> list[dict]:
        """OKS at its tuned threshold (as it is, with the tracker's motion, matching only confident
        keypoints, confident detections first; the last two with predicted keypoints only: ground
        truth has c = 1 and scores 1), then at the spec's other thresholds (predicted keypoints)."""
        spec, t = self.spec, self.oks_threshold
        motions = (None, "velocity") if spec.get("oks_motion") else (None,)
        rows = [({"variant": f"OKS (no learning, threshold {t:g} tuned on the training videos)"}, {})]
        if spec.get("oks_motion"):
            rows.append(({"variant": f"OKS + motion (threshold {t:g})"}, {"motion": "velocity"}))
        rows += [
            (
                {"variant": f"OKS{' + motion' if m else ''}, keypoints c ≥ {tau:g} (threshold {t:g})"},
                {"motion": m, "confidence": float(tau), "predicted_only": True},
            )
            for tau in spec.get("oks_min_keypoint_confidence", [])
            for m in motions
        ]
        rows += [
            (
                {"variant": f"OKS, confident detections first τ = {tau:g} (threshold {t:g})"},
                {"detection": float(tau), "predicted_only": True},
            )
            for tau in spec.get("oks_detection_threshold", [])
        ]
        for other in spec.get("oks_thresholds", []):
            for m in motions:
                for tau in spec.get("oks_detection_threshold") or [None]:
                    rows.append(
                        (
                            {
                                "variant": f"OKS{' + motion' if m else ''}, threshold {other:g}"
                                + ("" if tau is None else f", confident detections first τ = {tau:g}")
                            },
                            {
                                "key": f"oks{other:g}",
                                "threshold": float(other),
                                "motion": m,
                                "detection": None if tau is None else float(tau),
                                "predicted_only": True,
                            },
                        )
                    )
        for row, settings in rows:
            threshold = settings.pop("threshold", t)
            key = settings.pop("key", f"oks{t:g}")
            self.measure(row, key, {"threshold": threshold}, None, threshold, **settings)
        return [row for row, _ in rows]

    def variant_row(self, v: dict, overrides: list[str], checkpoints: dict[str, str]) -> dict:
        """Train (or reuse) the variant ``v`` and measure its network."""
        row = {"variant": v["name"], "experiment": v["experiment"]}
        try:
            trained = train_or_reuse(v["experiment"], overrides)
        except Exception as err:  # noqa: BLE001 - the table shows the failed variant, the others go on
            log.error("%s: %s: %s", v["name"], type(err).__name__, err)
            return {**row, "status": f"failed: {type(err).__name__}: {err}"}
        checkpoints[v["name"]] = str(trained.checkpoint)
        m = trained.metrics
        synthetic = v.get("train_data") == "synthetic"
        row.update(
            steps=m.get("global_step"),
            minutes=(m.get("seconds") or 0) / 60,
            params=m.get("parameters"),
            acc=(m.get("metrics_at_best") or {}).get("val/acc") if not synthetic else None,
        )
        digest = file_digest(trained.checkpoint)
        threshold = float(v.get("match_threshold", 0.5))  # the tracker's, for this network
        detection = v.get("detection_threshold")  # the tracker's, predicted boxes
        self.measure(
            row,
            f"net{digest}" + ("" if threshold == 0.5 else f"-thr{threshold:g}"),
            {"checkpoint": digest, "threshold": threshold},
            str(trained.checkpoint),
            threshold,
            v.get("motion"),
            float(v.get("min_keypoint_confidence", 0.0)),
            None if detection is None else float(detection),
            predicted_only=bool(v.get("predicted_only", False)),
        )
        return row


def _overrides(
    v: dict,
    base: list[str],
    extra: Sequence[str],
    tag: str,
    seed: int,
    checkpoints: dict[str, str],
    spec_path,
) -> list[str]:
    """The training overrides of variant ``v``: the common ones (less the data's for a variant that
    trains on the synthetic scenes), its own, ``init_from`` an earlier variant's weights, its run name."""
    synthetic = v.get("train_data") == "synthetic"
    own = [*(o for o in base if not (synthetic and o.startswith("data."))), *v.get("overrides", []), *extra]
    if v.get("init_from"):
        if v["init_from"] not in checkpoints:
            raise ValueError(
                f"{spec_path}: variant {v['name']!r} starts from {v['init_from']!r}, "
                "which must come earlier in the list"
            )
        own.append(f"model.init_from={checkpoints[v['init_from']]}")
    return [*own, f"run_name={'synthetic' if synthetic else tag}-{_slug(v['name'])}-seed{seed}"]


def run_variants(
    spec_path: str | Path,
    data: str | None,
    out: str | None,
    seed: int,
    extra: Sequence[str],
    threads: int | None,
    only: Sequence[str] = (),
) -> Path:
    """Train and measure every variant of the spec (``only``: those named), write the table."""
    import torch

    from keytrack.config import data_tag, load_config

    if threads:
        torch.set_num_threads(int(threads))
    spec = load_spec(spec_path)
    profile = Profile.from_data(data)
    tag = data_tag(load_config(["experiment=default", *profile.train_overrides()]).data)  # <data>-train
    out_dir = Path(out) if out else Path("results") / ABLATION / ("" if profile.data_root is None else tag)
    base = [*profile.train_overrides(), f"seed={seed}", *spec.get("budget", [])]
    cfg0 = load_config(["experiment=default", *base, *extra])
    fit, val = _validation_ground_truth(profile, cfg0)
    cells = _Variants(spec, profile, RunCache(out_dir / "runs"), fit, val)
    reference = cells.oks_rows()
    rows, checkpoints = [], {}
    for v in spec["variants"]:
        if not only or v["name"] in only:
            rows.append(
                cells.variant_row(
                    v, _overrides(v, base, extra, tag, seed, checkpoints, spec_path), checkpoints
                )
            )
    rows += reference
    write_table(
        rows,
        out_dir,
        columns=_columns(spec, rows, cells.strides),
        notes=_notes(spec, spec_path, profile, val, cfg0, seed),
        title="Matcher variants on the validation videos",
        digits=2,
    )
    print((out_dir / "table.md").read_text())
    return out_dir


def _detection_shown(spec: dict) -> bool:
    return bool(spec.get("oks_detection_threshold")) or any(
        "detection_threshold" in v for v in spec["variants"]
    )


def _columns(spec: dict, rows: list[dict], strides: Sequence[int]) -> list[Column]:
    cols = [
        Column("variant", "Variant"),
        *(
            c
            for k in strides
            for c in (
                Column(f"rank1_{k}", f"rank-1 stride {k}", digits=4),
                Column(f"wrong_{k}", f"wrong > true stride {k}", digits=4),
            )
        ),
        *(
            c
            for k in strides
            for c in (
                Column(f"idsw{k}", f"%IDSW stride {k}", digits=2),
                Column(f"mota{k}", f"MOTA stride {k}"),
            )
        ),
        *(Column(f"pidsw{k}", f"%IDSW pred. stride {k}", digits=2) for k in strides),
        *(
            (Column(f"pswitches{k}", f"ID switches pred. stride {k}", digits=0) for k in strides)
            if _detection_shown(spec)
            else ()
        ),
        Column("acc", "val pair acc.", digits=3),
        Column("steps", "Steps"),
        Column("minutes", "Train min", digits=1),
        Column("params", "Params"),
    ]
    if any(r.get("status") for r in rows):
        cols.append(Column("status", "Status"))
    return cols


def _notes(spec: dict, spec_path, profile: Profile, val, cfg0, seed: int) -> list[str]:
    notes = [
        f"Training: {profile.describe('train')}, its training videos; every number is measured on its "
        f"{len(val.videos)} validation videos (data.val_fraction = {cfg0.data.val_fraction}, seed {seed}), "
        "never on the test split.",
        f"Common budget: {' '.join(spec.get('budget', [])) or 'none'}; each variant's own overrides in "
        f"{display_path(spec_path)}. Listwise variants count candidate lists per epoch (≈ 4-12 pairs each), "
        "BCE variants pairs. Rank-1: the true continuation scores above every wrong candidate of "
        "the window (keytrack diagnose; OKS at its tuned threshold).",
        "Tracking: GT keypoints, δ = 4, greedy assignment, match threshold 0.5 for the learned matchers "
        "(a variant's match_threshold where its spec gives one); "
        '%IDSW and MOTA totals (keytrack.evaluation, poseval\'s protocol). "pred.": the same videos '
        "under the perturbation protocol's predicted boxes and keypoints (keytrack.perturb, seed 0), "
        f"keypoints below {KEYPOINT_THRESHOLD:g} removed before %IDSW (A.3).",
    ]
    if spec.get("oks_min_keypoint_confidence") or any(
        v.get("min_keypoint_confidence") for v in spec["variants"]
    ):
        notes.append(
            "Keypoints c ≥ τ: the tracker matches only the predicted keypoints whose confidence is at "
            'least τ (keytrack.tracking.Tracker, min_keypoint_confidence; Figure 10: "keypoint '
            'predictions that are not used due to low confidence"); the output keeps every keypoint, '
            "and ground truth (c = 1) is unaffected."
        )
    if _detection_shown(spec):
        notes.append(
            "Confident detections first τ (beyond the paper): the tracker assigns the predicted poses "
            "whose detection score is at least τ to the tracks with such an appearance in the window "
            "first, then every pose left over every track left (keytrack.tracking.Tracker, "
            "detection_threshold); ground truth (scores 1) is unaffected."
        )
    if spec.get("oks_motion") or any(v.get("motion") for v in spec["variants"]):
        notes.append(
            "Motion (beyond the paper): the tracker moves each candidate by its track's velocity times Δ "
            "before scoring (keytrack.tracking.Tracker, motion='velocity'); the ranking columns move "
            "each candidate by its ground-truth track's velocity. A variant's motion is its spec's "
            "`motion`, else what its network was trained for (pairs.motion)."
        )
    return notes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default=None, help="PoseTrack18-layout folder (its train split); default synthetic"
    )
    parser.add_argument("--spec", default=str(SPEC), help="the variants (YAML)")
    parser.add_argument(
        "--out", default=None, help="output folder (default results/matcher_variants[/<data>])"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="training seed (also picks the validation videos)"
    )
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run only these variants")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="added to every variant's training")
    add_options(parser, RunOptions, only=("threads",))


def run(args: argparse.Namespace) -> int:
    """``keytrack ablate matcher_variants`` (or ``keytrack ablate <a variants spec>``)."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    run_variants(args.spec, args.data, args.out, args.seed, args.overrides, args.threads, args.only)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("python -m ablations.matcher_variants", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m ablations.matcher_variants", main))
