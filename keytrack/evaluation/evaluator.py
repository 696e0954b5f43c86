"""``evaluate(gt, pred)``: PoseTrack AP, MOTA, MOTP, precision, recall and %IDSW per joint.

The whole of poseval's ``evaluate.py -e -t`` on in-memory datasets (paper §4.1–4.2, A.3): the
protocol of :mod:`keytrack.evaluation.protocol`, AP of :mod:`keytrack.evaluation.ap`, MOT metrics
of :mod:`keytrack.evaluation.mot`, the table of :mod:`keytrack.evaluation.table`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import motmetrics as mm
import numpy as np

from keytrack.evaluation.ap import APAccumulator, nan_mean
from keytrack.evaluation.mot import MOT_COUNTS, VideoAccumulators, mot_metrics, mot_totals
from keytrack.evaluation.protocol import POSEVAL_JOINTS, POSEVAL_NAMES, pair_videos, prepare_video
from keytrack.evaluation.table import group_columns, json_number, markdown_table
from keytrack.poses import Dataset

#: Per-joint arrays an :class:`EvaluationResult` may hold, with what they mean.
METRICS: dict[str, str] = {
    "ap": "Average Precision, % (evaluateAP)",
    "ap_precision": "precision after the last detection, % (evaluateAP)",
    "ap_recall": "recall after the last detection, % (evaluateAP)",
    "num_gt_joints": "annotated GT joints in the scored frames (AP's positives)",
    "mota": "MOTA, % (evaluateTracking)",
    "motp": "MOTP, % (evaluateTracking: 100 (1 - sum D / detections))",
    "precision": "MOT precision, % (evaluateTracking)",
    "recall": "MOT recall, % (evaluateTracking)",
    "idsw": "%IDSW = 100 ID switches / GT objects (paper §4.1)",
    "num_switches": "ID switches",
    "num_misses": "misses (false negatives)",
    "num_false_positives": "false positives",
    "num_objects": "GT objects seen by the accumulators (MOTA denominator)",
    "num_detections": "matches + switches",
    "sum_distance": "sum of motmetrics' event distances (poseval's MOTP numerator)",
    "sum_match_distance": "sum of head-normalised distances of matches and switches",
}
#: Metrics whose total is a sum over joints; every other total is poseval's NaN-skipping mean.
SUMMED: frozenset[str] = frozenset(
    {
        "num_gt_joints",
        "num_switches",
        "num_misses",
        "num_false_positives",
        "num_objects",
        "num_detections",
        "sum_distance",
        "sum_match_distance",
    }
)


@dataclass
class EvaluationResult:
    """Per-joint metrics in poseval's joint order (:data:`POSEVAL_JOINTS`) and their totals.

    ``per_joint[name]`` is a ``[15]`` array for each name of :data:`METRICS` that was computed;
    ``total[name]`` is poseval's total for rates (mean over the joints where the value is not
    NaN) and the sum over joints for counts. ``num_frames`` counts the frames scored for AP,
    ``num_mot_frames`` those fed to the MOT accumulators (one fewer per video).
    """

    per_joint: dict[str, np.ndarray]
    total: dict[str, float]
    num_videos: int
    num_frames: int
    num_mot_frames: int
    joints: tuple[str, ...] = field(default=POSEVAL_JOINTS)
    #: ``{video name: {count: total over the joints}}`` of the MOT counts (``num_switches``,
    #: ``num_objects``, ...), for comparisons that resample videos (a paired bootstrap)
    per_video: dict[str, dict[str, float]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.per_joint[name]

    def joint(self, name: str, joint: str) -> float:
        """One number, e.g. ``result.joint("mota", "left_wrist")`` (poseval's "neck" accepted)."""
        joint = "head_bottom" if joint == "neck" else joint
        return float(self.per_joint[name][self.joints.index(joint)])

    def columns(self, name: str) -> dict[str, float]:
        """The printed row of a metric: Head, Shou, Elb, Wri, Hip, Knee, Ankl and Total."""
        return group_columns(self.per_joint[name], self.total[name])

    def to_markdown(self) -> str:
        """The familiar PoseTrack tables: AP, MOTA and %IDSW per body part, then MOT totals."""
        rows = {
            label: self.columns(name)
            for name, label in (("ap", "AP"), ("mota", "MOTA"), ("idsw", "%IDSW"))
            if name in self.per_joint
        }
        text = markdown_table(rows)
        if "mota" in self.per_joint:
            from keytrack.tables import Column
            from keytrack.tables import markdown_table as table

            t = self.total
            columns = [
                *(
                    Column(k, h, fmt=".1f", align="right")
                    for k, h in (("mota", "MOTA"), ("motp", "MOTP"), ("precision", "Prec"), ("recall", "Rec"))
                ),
                *(
                    Column(k, h, fmt=lambda v: str(int(v)), align="right")
                    for k, h in (
                        ("num_switches", "IDSW"),
                        ("num_misses", "Misses"),
                        ("num_false_positives", "FP"),
                        ("num_objects", "GT"),
                    )
                ),
            ]
            text += "\n\n" + table([t], columns)
        return text

    def to_dict(self) -> dict:
        """JSON-ready: every per-joint number in poseval's joint order, totals and table rows.

        NaN (a joint without GT, say) is written as ``null``.
        """
        return {
            "protocol": f"PoseTrack poseval (PCKh 0.5, per-joint MOT with motmetrics {mm.__version__})",
            "joints": list(self.joints),
            "poseval_joint_names": list(POSEVAL_NAMES),
            "num_videos": self.num_videos,
            "num_frames": self.num_frames,
            "num_mot_frames": self.num_mot_frames,
            "per_joint": {k: [json_number(v) for v in a] for k, a in self.per_joint.items()},
            "total": {k: json_number(v) for k, v in self.total.items()},
            "columns": {
                k: {c: json_number(v) for c, v in self.columns(k).items()}
                for k in ("ap", "mota", "idsw", "motp", "precision", "recall")
                if k in self.per_joint
            },
            "per_video": self.per_video,
        }

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` atomically (temporary file, then rename)."""
        from keytrack.io.jsonfile import write_json_atomic

        return write_json_atomic(self.to_dict(), path)


def evaluate(
    gt: Dataset,
    pred: Dataset,
    *,
    compute_ap: bool = True,
    compute_mot: bool = True,
    progress: Callable[[int, int, int], None] | None = None,
) -> EvaluationResult:
    """Score ``pred`` against ``gt`` as PoseTrack's official poseval does (paper §4.1–4.2).

    Videos are matched by name; every GT video needs a prediction covering the same frames, and
    predicted track ids must be unique within a frame (both raise :class:`EvaluationError`).
    Frames without GT people are not scored; keypoints inside the GT frame's ignore regions are
    removed on both sides. ``compute_mot`` needs every pose tracked (``track_ids >= 0``);
    ``compute_ap`` uses each predicted keypoint's ``c`` as its score. ``progress(videos done, videos,
    frames done)`` is called after each video.
    """
    ap_acc = APAccumulator()
    sums: dict[str, np.ndarray] = {}
    pairs = pair_videos(gt, pred)
    num_frames = num_mot_frames = 0
    per_video: dict[str, dict[str, float]] = {}
    for done, (gt_video, pred_video) in enumerate(pairs, 1):
        frames = prepare_video(gt_video, pred_video, tracking=compute_mot)
        num_frames += len(frames)
        if compute_ap:
            for frame in frames:
                ap_acc.add(frame)
        if compute_mot:
            video = VideoAccumulators().run(frames)
            num_mot_frames += video.num_frames
            counts = video.counts()
            for name, values in counts.items():
                sums[name] = sums.get(name, 0) + values
            per_video[gt_video.name] = {k: float(counts[k].sum()) for k in MOT_COUNTS}
        if progress is not None:
            progress(done, len(pairs), num_frames)

    per_joint: dict[str, np.ndarray] = {}
    total: dict[str, float] = {}
    if compute_ap:
        ap = ap_acc.compute()
        per_joint.update(ap)
        total.update({k: nan_mean(ap[k]) for k in ("ap", "ap_precision", "ap_recall")})
        total["num_gt_joints"] = float(ap["num_gt_joints"].sum())
    if compute_mot:
        if not sums:  # no video: empty counts, every rate NaN
            sums = VideoAccumulators().counts()
        rates = mot_metrics(sums)
        per_joint.update(rates)
        per_joint.update(sums)
        total.update(mot_totals(rates))
        total.update({k: float(np.sum(v)) for k, v in sums.items()})
    return EvaluationResult(
        per_joint=per_joint,
        total=total,
        num_videos=len(pairs),
        num_frames=num_frames,
        num_mot_frames=num_mot_frames,
        per_video=per_video,
    )
