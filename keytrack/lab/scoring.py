"""Tracking a cell and scoring it: the one path every ablation takes (§3.1, §4.1, A.3).

:func:`track_and_evaluate` tracks predictions online and :func:`score_tracked` scores the output
against the ground truth with poseval's protocol (keytrack.evaluation) and the PoseTrack21 kit's
keypoint HOTA (:func:`keypoint_hota`). Keypoints below the keypoint threshold are removed from the
output before MOTA, %IDSW and HOTA (A.3); AP is scored on the output before that threshold
(``ap_after_threshold=False``, Figure 4: AP is the pose estimator's, the tracker does not change it)
or after it (``True``, Table 4, which reports AP, MOTA and %IDSW at each threshold).

The defaults every ablation reads are here: :data:`POSE_ENTAILMENT_THRESHOLD` (a learned matcher's
decision point), :data:`PAPER_KEYPOINT_THRESHOLD` (A.3's 0.57, the default of the paper's §5.1
analyses) and :data:`COMPARISON_KEYPOINT_THRESHOLD` (0.5, the default of the tracker comparison,
the matcher variants and the sweeps, which compare trackers on the same output and say so in their
notes).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

from keytrack.tables import Column, MeanStd
from keytrack.poses import Dataset

if TYPE_CHECKING:
    from keytrack.lab.runs import RunCache

log = logging.getLogger("keytrack.lab.scoring")

#: Figure 4's keypoint settings, as the table labels them.
SETTING_LABELS: dict[str, str] = {
    "gt_boxes_gt_keypoints": "GT boxes, GT keypoints",
    "gt_boxes_predicted_keypoints": "GT boxes, predicted keypoints",
    "predicted_boxes_predicted_keypoints": "predicted boxes, predicted keypoints",
}
#: A learned matcher's match threshold: the decision point of its score.
POSE_ENTAILMENT_THRESHOLD = 0.5
#: The output keypoint threshold of A.3 (the paper's, optimal for MOTA in Table 4).
PAPER_KEYPOINT_THRESHOLD = 0.57
#: The output keypoint threshold of the tables that compare trackers on the same predictions.
COMPARISON_KEYPOINT_THRESHOLD = 0.5
#: The HOTA-family and identity totals the tracking tables show (keytrack.evaluation.hota).
HOTA_COLUMNS = ("HOTA", "DetA", "AssA", "IDF1")
#: The similarities that need no training (keytrack.tracking's scorers); every other method is a network.
NON_LEARNED = ("oks", "iou")
#: Most pose pairs per forward of a CNN matcher (its activations are far larger than the transformer's).
CNN_BATCH_SIZE = 512


def keypoint_hota(gt: Dataset, tracked: Dataset) -> dict:
    """``{HOTA, DetA, AssA, IDF1}`` totals (0-100) of ``tracked`` against ``gt``, the PoseTrack21
    kit's keypoint HOTA; ``{"error": message}`` when the kit's protocol cannot score this ground
    truth (a pose with keypoints but no head box), so the tracking cell itself still counts."""
    from keytrack.evaluation import EvaluationError
    from keytrack.evaluation.hota import hota

    try:
        total = hota(gt, tracked)["total"]
    except EvaluationError as err:
        log.warning("HOTA not computed: %s", err)
        return {"error": str(err)}
    return {k: float(total[k]) for k in HOTA_COLUMNS}


def score_tracked(gt: Dataset, tracked: Dataset, *, keypoint_threshold: float = 0.0, compute_ap: bool = False,
                  ap_after_threshold: bool = False, compute_hota: bool = True) -> dict:
    """%IDSW and MOTA columns (Head … Ankl, Total), MOT counts, HOTA family and (``compute_ap``) AP
    of ``tracked`` against ``gt``, keypoints below ``keypoint_threshold`` removed first (A.3), and
    ``per_video``: ``{video: [ID switches, GT joints]}`` (for a bootstrap over videos)."""
    from keytrack.evaluation import evaluate
    from keytrack.tracking import apply_keypoint_threshold

    shown = apply_keypoint_threshold(tracked, keypoint_threshold) if keypoint_threshold > 0 else tracked
    mot = evaluate(gt, shown, compute_ap=compute_ap and ap_after_threshold)
    out = {"idsw": mot.columns("idsw"), "mota": mot.columns("mota"),
           **{k: mot.total[k] for k in ("num_switches", "num_misses", "num_false_positives", "num_objects")},
           "per_video": {name: [c["num_switches"], c["num_objects"]] for name, c in mot.per_video.items()}}
    if compute_hota:
        out["hota"] = keypoint_hota(gt, shown)
    if compute_ap:
        out["ap"] = mot.columns("ap") if ap_after_threshold else evaluate(gt, tracked, compute_mot=False).columns("ap")
    return out


def track_and_evaluate(gt: Dataset, predicted: Dataset, scorer, *, match_threshold: float, delta: int = 4,
                       nearest: int | None = None, assignment: str = "greedy", motion: str | None = None,
                       keypoint_threshold: float = 0.0, min_keypoint_confidence: float = 0.0,
                       compute_ap: bool = True, ap_after_threshold: bool = False, compute_hota: bool = True,
                       detection_threshold: float | None = None) -> dict:
    """Track ``predicted`` online (§3.1) and score it against ``gt`` (:func:`score_tracked`); adds
    the speed of the tracking step (and of the network, for a learned scorer)."""
    from keytrack.tracking import Tracker

    tracker = Tracker(scorer, delta=delta, nearest=nearest, assignment=assignment, match_threshold=match_threshold,
                      motion=motion, min_keypoint_confidence=min_keypoint_confidence,
                      detection_threshold=detection_threshold)
    tracked = tracker.track_dataset(predicted)
    out = score_tracked(gt, tracked, keypoint_threshold=keypoint_threshold, compute_ap=compute_ap,
                        ap_after_threshold=ap_after_threshold, compute_hota=compute_hota)
    out.update(frames=tracker.frames_tracked, poses=predicted.num_poses, tracking_seconds=tracker.seconds,
               frames_per_s=tracker.frames_tracked / tracker.seconds if tracker.seconds > 0 else None)
    if hasattr(scorer, "network_seconds"):
        seconds = scorer.network_seconds
        out.update(pairs=scorer.pairs_scored, forwards=scorer.forwards, network_seconds=seconds,
                   pairs_per_s=scorer.pairs_scored / seconds if seconds > 0 else None)
    return out


def method_scorer(method: str, checkpoint: str | None, device: str, batch_size: int,
                  image_root: str | None = None, split: str | None = None):
    """The scorer of ``method``: OKS or IoU (:data:`NON_LEARNED`), else a matching network from
    ``checkpoint`` (crops of the crop CNN cut from the images under ``image_root`` / ``split``, or
    the synthetic renderer of its training data)."""
    from keytrack.tracking import IoUScorer, OKSScorer, PoseEntailmentScorer

    if method in NON_LEARNED:
        return {"oks": OKSScorer, "iou": IoUScorer}[method]()
    if checkpoint is None:
        raise RuntimeError("no matching network to track with (training failed or was not run)")
    if method.startswith("cnn_"):
        batch_size = min(int(batch_size), CNN_BATCH_SIZE)
    return PoseEntailmentScorer.from_checkpoint(checkpoint, device=device, batch_size=batch_size,
                                                image_root=image_root, split=split)


def tune_threshold(cache: "RunCache", method: str, train_gt: Dataset, grid: Sequence[float], *, delta: int,
                   seed: int, data_id: str, motion: str = "none", key: str | None = None,
                   label: str | None = None, setting: str = "gt_boxes_gt_keypoints", stride: int = 1,
                   keypoint_threshold: float = 0.0, min_keypoint_confidence: float = 0.0,
                   detection_threshold: float | None = None,
                   predictions: dict | None = None) -> tuple[float | None, list[dict]]:
    """The match threshold of the non-learned ``method`` (with the tracker's ``motion``) with the
    lowest %IDSW total on ``train_gt``, its keypoints drawn as ``setting`` with ``seed`` and every
    ``stride``-th frame kept, tracked and scored with the given tracker settings (default: GT
    keypoints, stride 1); ties go to the higher MOTA, then the lower threshold. Each point is a cached
    run named by ``key`` (default ``method``); the grid rows carry ``label``. ``predictions`` (a dict
    the caller keeps) shares one perturbation of ``train_gt`` per setting between calls. Returns the
    threshold (None when every point failed) and the grid rows."""
    from keytrack.perturb import perturb
    from keytrack.tracking import subsample

    key = key or method
    predictions = {} if predictions is None else predictions
    gt_stride1 = (setting, stride) == ("gt_boxes_gt_keypoints", 1)
    extra = {"keypoint_threshold": keypoint_threshold or None,
             "min_keypoint_confidence": min_keypoint_confidence or None, "detection_threshold": detection_threshold}
    rows = []
    for t in grid:
        def cell(t=t):
            if (setting, seed) not in predictions:
                predictions[setting, seed] = perturb(train_gt, setting, seed)
            gt, predicted = subsample(train_gt, stride), subsample(predictions[setting, seed], stride)
            return track_and_evaluate(gt, predicted, method_scorer(method, None, "cpu", 1), match_threshold=t,
                                      compute_hota=False, motion=motion, delta=delta, compute_ap=False,
                                      keypoint_threshold=keypoint_threshold,
                                      min_keypoint_confidence=min_keypoint_confidence,
                                      detection_threshold=detection_threshold)
        params = {"kind": "tuning", "method": key, "threshold": t, "data": data_id,
                  "setting": setting, "stride": stride, "seed": seed, "delta": delta,
                  **{k: v for k, v in extra.items() if v is not None}}
        name = f"tune-{key}" + ("" if gt_stride1 else f"-{setting}-stride{stride}") + f"-thr{t:g}"
        record = cache.run(name, cell, params)
        rows.append({"method": label or key, "setting": setting, "stride": stride, "threshold": t,
                     "idsw_total": record.result["idsw"]["Total"] if record.ok else None,
                     "mota": record.result["mota"]["Total"] if record.ok else None,
                     "switches": int(record.result["num_switches"]) if record.ok else None,
                     "status": record.failure})
    ok = [r for r in rows if r["idsw_total"] is not None]
    if not ok:
        return None, rows
    best = min(ok, key=lambda r: (r["idsw_total"], -(r["mota"] if r["mota"] is not None else -1e9),
                                  r["threshold"]))
    for r in rows:
        r["chosen"] = "yes" if r is best else ""
    return float(best["threshold"]), rows


def hota_columns(rows: Sequence[dict]) -> list[Column]:
    """The :data:`HOTA_COLUMNS` of a table where some row has a value that prints (not absent, not a
    mean over no run)."""
    def shown(value) -> bool:
        return value is not None and not (isinstance(value, MeanStd) and value.n == 0)

    return [Column(k, k) for k in HOTA_COLUMNS if any(shown(r.get(k)) for r in rows)]
