"""What makes the learned matcher track: every variant of ``experiments/ablations/matcher_variants.yaml``.

Each variant is trained on the training split's training videos (a finished run is reused) and measured
on its validation videos only: ranking (rank-1, wrong > true) and tracking (%IDSW, MOTA; GT and
predicted keypoints) at each frame stride, beside OKS. Spec keys and columns: ``docs/matchers.md``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from keytrack.ablations.cells import tune_threshold
from keytrack.ablations.evaluate import COMPARISON_KEYPOINT_THRESHOLD as KEYPOINT_THRESHOLD
from keytrack.ablations.evaluate import EvalSet, Evaluator, TrackerSpec
from keytrack.ablations.options import RunOptions, add_options
from keytrack.ablations.profile import Profile, default_results_dir, display_path
from keytrack.ablations.runs import RunCache, command_main, dataset_fingerprint, file_digest
from keytrack.ablations.training import train_or_reuse
from keytrack.config import config_path
from keytrack.evaluation.head_boxes import complete_head_boxes
from keytrack.tables import Column, write_table

log = logging.getLogger("keytrack.ablations.matcher_variants")

ABLATION = "matcher_variants"
SPEC = config_path("ablations", f"{ABLATION}.yaml")
STRIDES = (1, 4)
OKS_GRID = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5)
GT, PREDICTED = "gt_boxes_gt_keypoints", "predicted_boxes_predicted_keypoints"


def load_spec(path: str | Path = SPEC) -> dict:
    spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    for i, v in enumerate(spec.get("variants") or []):
        if missing := {"name", "experiment"} - set(v):
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
        oks, fit_set = TrackerSpec("oks", motion="none"), EvalSet(fit, GT, compute_hota=False)
        tuned, _ = tune_threshold(self.evaluator, oks, fit_set, OKS_GRID, key="oks")  # as the comparison does
        self.oks_threshold = 0.05 if tuned is None else tuned

    def _tracker(self, checkpoint, threshold, motion=None, confidence=0.0, detection=None) -> TrackerSpec:
        kind = "oks" if checkpoint is None else "network"
        return TrackerSpec(
            kind,
            checkpoint,
            threshold,
            motion=motion,
            min_keypoint_confidence=confidence,
            detection_threshold=detection,
        )

    def _evalset(self, setting: str, stride: int) -> EvalSet:
        threshold = 0.0 if setting == GT else KEYPOINT_THRESHOLD
        return EvalSet(self.val, setting, 0, stride, keypoint_threshold=threshold)

    def _ranking(self, checkpoint, stride: int, motion=None) -> dict:
        from keytrack.diagnose import diagnose
        from keytrack.tracking import subsample

        scorer = self.evaluator.scorer(self._tracker(checkpoint, 0.5))
        threshold = 0.5 if checkpoint else self.oks_threshold
        found = diagnose(subsample(self.val, stride), scorer, match_threshold=threshold, motion=motion)
        return found["rows"][0]

    def measure(
        self, row: dict, key: str, params: dict, checkpoint, threshold: float, settings: dict
    ) -> None:
        """Fill ``row`` per stride: ranking and GT-keypoint tracking (unless ``settings["predicted_only"]``),
        then predicted boxes and keypoints with the tracker's ``settings`` (``motion``, ``confidence``,
        ``detection``); cells are named by ``key`` and those settings (shared by the rows of one network)."""
        motion, confidence, detection = (settings.get(k) for k in ("motion", "confidence", "detection"))
        confidence = confidence or 0.0
        for k in self.strides:
            cell = f"{key}-stride{k}" + (f"-motion-{motion}" if motion else "")
            if not settings.get("predicted_only"):
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
            name = f"{cell}-predicted" + (f"-conf{confidence:g}" if confidence else "")
            name += "" if detection is None else f"-det{detection:g}"
            tracker = self._tracker(checkpoint, threshold, motion, confidence, detection)
            rec = self.evaluator.run(tracker, self._evalset(PREDICTED, k), name)
            row[f"pidsw{k}"] = rec.result["idsw"]["Total"] if rec.ok else None
            row[f"pswitches{k}"] = rec.result["num_switches"] if rec.ok else None
            if not rec.ok:
                row["status"] = rec.failure

    def oks_rows(self) -> list[dict]:
        """OKS at its tuned threshold (plain, with motion, confident keypoints, confident detections
        first; the last two predicted only), then at the spec's other thresholds (predicted only)."""
        spec, t = self.spec, self.oks_threshold
        motions = (None, "velocity") if spec.get("oks_motion") else (None,)
        detections = spec.get("oks_detection_threshold") or []
        rows = [(f"OKS (no learning, threshold {t:g} tuned on the training videos)", {})]
        if spec.get("oks_motion"):
            rows.append((f"OKS + motion (threshold {t:g})", {"motion": "velocity"}))
        for tau, m in itertools.product(spec.get("oks_min_keypoint_confidence", []), motions):
            name = f"OKS{' + motion' if m else ''}, keypoints c ≥ {tau:g} (threshold {t:g})"
            rows.append((name, {"motion": m, "confidence": float(tau), "predicted_only": True}))
        for tau in detections:
            name = f"OKS, confident detections first τ = {tau:g} (threshold {t:g})"
            rows.append((name, {"detection": float(tau), "predicted_only": True}))
        for other, m, tau in itertools.product(spec.get("oks_thresholds", []), motions, detections or [None]):
            name = f"OKS{' + motion' if m else ''}, threshold {other:g}"
            name += "" if tau is None else f", confident detections first τ = {tau:g}"
            detection = None if tau is None else float(tau)
            settings = {"motion": m, "detection": detection, "predicted_only": True}
            rows.append((name, {"key": f"oks{other:g}", "threshold": float(other), **settings}))
        out = []
        for name, settings in rows:
            threshold = settings.pop("threshold", t)
            out.append({"variant": name})
            key = settings.pop("key", f"oks{t:g}")
            self.measure(out[-1], key, {"threshold": threshold}, None, threshold, settings)
        return out

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
        key = f"net{digest}" + ("" if threshold == 0.5 else f"-thr{threshold:g}")
        settings = {
            "motion": v.get("motion"),
            "confidence": float(v.get("min_keypoint_confidence", 0.0)),
            "detection": None if detection is None else float(detection),
            "predicted_only": bool(v.get("predicted_only", False)),
        }
        checkpoint = str(trained.checkpoint)
        self.measure(
            row, key, {"checkpoint": digest, "threshold": threshold}, checkpoint, threshold, settings
        )
        return row


def _overrides(
    v: dict, base: list, extra: Sequence[str], tag: str, seed: int, checkpoints: dict, spec_path
) -> list:
    """Variant ``v``'s training overrides: the common ones (less the data's for ``train_data: synthetic``),
    its own, ``init_from`` an earlier variant's weights, its run name."""
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
    out_dir = Path(out) if out else default_results_dir(ABLATION) / ("" if profile.data_root is None else tag)
    base = [*profile.train_overrides(), f"seed={seed}", *spec.get("budget", [])]
    cfg0 = load_config(["experiment=default", *base, *extra])
    fit, val = _validation_ground_truth(profile, cfg0)
    cells = _Variants(spec, profile, RunCache(out_dir / "runs"), fit, val)
    reference = cells.oks_rows()
    rows, checkpoints = [], {}
    for v in spec["variants"]:
        if not only or v["name"] in only:
            overrides = _overrides(v, base, extra, tag, seed, checkpoints, spec_path)
            rows.append(cells.variant_row(v, overrides, checkpoints))
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
    variants = any("detection_threshold" in v for v in spec["variants"])
    return bool(spec.get("oks_detection_threshold")) or variants


#: Per-stride column groups in table order: (key prefix, header, digits) of each column of a group.
STRIDE_GROUPS = (
    (("rank1_", "rank-1 stride", 4), ("wrong_", "wrong > true stride", 4)),
    (("idsw", "%IDSW stride", 2), ("mota", "MOTA stride", None)),
    (("pidsw", "%IDSW pred. stride", 2),),
    (("pswitches", "ID switches pred. stride", 0),),  # only where detections are shown
)


def _columns(spec: dict, rows: list[dict], strides: Sequence[int]) -> list[Column]:
    groups = STRIDE_GROUPS if _detection_shown(spec) else STRIDE_GROUPS[:-1]
    cols = [Column("variant", "Variant")]
    cols += [
        Column(f"{key}{k}", f"{head} {k}", digits=d) for g in groups for k in strides for key, head, d in g
    ]
    cols += [Column("acc", "val pair acc.", digits=3), Column("steps", "Steps")]
    cols += [Column("minutes", "Train min", digits=1), Column("params", "Params")]
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
    variants = spec["variants"]
    if spec.get("oks_min_keypoint_confidence") or any(v.get("min_keypoint_confidence") for v in variants):
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
    if spec.get("oks_motion") or any(v.get("motion") for v in variants):
        notes.append(
            "Motion (beyond the paper): the tracker moves each candidate by its track's velocity times Δ "
            "before scoring (keytrack.tracking.Tracker, motion='velocity'); the ranking columns move "
            "each candidate by its ground-truth track's velocity. A variant's motion is its spec's "
            "`motion`, else what its network was trained for (pairs.motion)."
        )
    return notes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="PoseTrack18-layout folder (its train split); default synthetic")
    parser.add_argument("--spec", default=str(SPEC), help="the variants (YAML)")
    parser.add_argument("--out", help="output folder (default runs/ablations/matcher_variants[/<data>])")
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
    return command_main("python -m keytrack.ablations.matcher_variants", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m keytrack.ablations.matcher_variants", main))
