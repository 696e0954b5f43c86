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
from typing import Sequence

from keytrack.tables import Column, MeanStd
from keytrack.poses import Dataset

log = logging.getLogger("ablations.scoring")

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
    of ``tracked`` against ``gt``, keypoints below ``keypoint_threshold`` removed first (A.3)."""
    from keytrack.evaluation import evaluate
    from keytrack.tracking import apply_keypoint_threshold

    shown = apply_keypoint_threshold(tracked, keypoint_threshold) if keypoint_threshold > 0 else tracked
    mot = evaluate(gt, shown, compute_ap=compute_ap and ap_after_threshold)
    out = {"idsw": mot.columns("idsw"), "mota": mot.columns("mota"),
           **{k: mot.total[k] for k in ("num_switches", "num_misses", "num_false_positives", "num_objects")}}
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


def hota_columns(rows: Sequence[dict]) -> list[Column]:
    """The :data:`HOTA_COLUMNS` of a table where some row has a value that prints (not absent, not a
    mean over no run)."""
    def shown(value) -> bool:
        return value is not None and not (isinstance(value, MeanStd) and value.n == 0)

    return [Column(k, k) for k in HOTA_COLUMNS if any(shown(r.get(k)) for r in rows)]
