"""Per-joint CLEAR-MOT metrics as PoseTrack's ``evaluateTracking`` computes them (paper §4.1, §4.2).

Every joint is tracked as its own object class: one ``motmetrics.MOTAccumulator`` per joint per
video receives, frame after frame, the GT and predicted track ids of the poses that have that
joint and their head-normalised distances (NaN beyond PCKh 0.5), see
:meth:`keytrack.evaluation.protocol.FrameMatch.mot_input`. motmetrics does the matching (carry
over last frame's pairs, then a minimum-cost assignment) and flags identity switches. The counts
are summed over videos and turned into MOTA, MOTP, precision and recall per joint
(``evaluateTracking.computeMetrics``), plus the paper's %IDSW (§4.1: IDSW / GT per joint).
"""

from __future__ import annotations

import warnings

import motmetrics as mm
import numpy as np

from keytrack.evaluation.ap import nan_mean
from keytrack.evaluation.protocol import NUM_POSEVAL_JOINTS, FrameMatch

#: motmetrics counts poseval reads from every accumulator (``metricsMidNames``).
MOT_COUNTS: tuple[str, ...] = (
    "num_misses",
    "num_switches",
    "num_false_positives",
    "num_objects",
    "num_detections",
)


class VideoAccumulators:
    """The 15 per-joint accumulators of one video (``evaluateTracking.computeMetrics``).

    poseval feeds them every scored frame of the video *except the last one*
    (``imgidxs = imgidxs[:-1]``, left from a "buggy annotations" workaround); :meth:`run` does the
    same.
    """

    def __init__(self) -> None:
        self.accumulators = [mm.MOTAccumulator(auto_id=True) for _ in range(NUM_POSEVAL_JOINTS)]
        self.num_frames = 0

    def update(self, frame: FrameMatch) -> None:
        for j, acc in enumerate(self.accumulators):
            acc.update(*frame.mot_input(j))
        self.num_frames += 1

    def run(self, frames: list[FrameMatch]) -> "VideoAccumulators":
        for frame in frames[:-1]:
            self.update(frame)
        return self

    def counts(self) -> dict[str, np.ndarray]:
        """``[15]`` counts per joint, plus ``sum_distance``: the sum of the events' ``D`` column.

        The counts are motmetrics' own definitions (``motmetrics.metrics``), read off each
        accumulator's event table: ``num_misses`` = MISS, ``num_switches`` = SWITCH,
        ``num_false_positives`` = FP, ``num_detections`` = MATCH + SWITCH and ``num_objects`` =
        MATCH + SWITCH + MISS events (the GT occurrences), as poseval obtains them with
        ``mh.compute``.

        ``sum_distance`` is exactly what poseval sums for MOTP (``acc.events['D'].sum()``). With
        motmetrics >= 1.2 (1.4.0 here) the events include ``RAW`` rows (every pair within the
        threshold, whoever it belongs to) and ``TRANSFER``/``ASCEND``/``MIGRATE`` rows besides
        ``MATCH``/``SWITCH``, so this sum is not the CLEAR-MOT one; that one (matches and switches
        only) is returned as ``sum_match_distance``.
        """
        out = {
            name: np.zeros(NUM_POSEVAL_JOINTS) for name in (*MOT_COUNTS, "sum_distance", "sum_match_distance")
        }
        if self.num_frames == 0:
            return out
        for j, acc in enumerate(self.accumulators):
            events = acc.events
            n = events["Type"].value_counts()
            match, switch, miss = n.get("MATCH", 0), n.get("SWITCH", 0), n.get("MISS", 0)
            out["num_misses"][j] = miss
            out["num_switches"][j] = switch
            out["num_false_positives"][j] = n.get("FP", 0)
            out["num_objects"][j] = match + switch + miss
            out["num_detections"][j] = match + switch
            s = events["D"].sum()
            out["sum_distance"][j] = 0.0 if np.isnan(s) else s
            out["sum_match_distance"][j] = events["D"][events["Type"].isin(["MATCH", "SWITCH"])].sum()
        return out


def mot_metrics(counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-joint MOTA, MOTP, precision, recall and %IDSW (percent) from summed counts.

    ``evaluateTracking.computeMetrics``, final part:

    * ``mota = 100 (1 - (misses + switches + false positives) / objects)``, NaN without GT;
    * ``motp = 100 (1 - sum_distance / detections)``, 0 without detections;
    * ``precision = 100 detections / (detections + false positives)``, NaN if both are 0;
    * ``recall = 100 detections / objects``;
    * ``idsw = 100 switches / objects`` (the paper's %IDSW, §4.1; poseval does not print it).

    ``objects`` is motmetrics' ``num_objects``, the MOTA denominator, placeholder objects of frames
    without predictions included.
    """
    objects = np.where(counts["num_objects"] > 0, counts["num_objects"], np.nan)
    fp, det = counts["num_false_positives"], counts["num_detections"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mota = 100 * (1.0 - (counts["num_misses"] + counts["num_switches"] + fp) / objects)
        motp = np.where(
            (det == 0) | np.isnan(counts["sum_distance"]), 0.0, 100 * (1.0 - counts["sum_distance"] / det)
        )
        total_det = np.where(fp + det > 0, fp + det, np.nan)
        precision = 100 * (1.0 * det / total_det)
        recall = 100 * (1.0 * det / objects)
        idsw = 100 * counts["num_switches"] / objects
    return {"mota": mota, "motp": motp, "precision": precision, "recall": recall, "idsw": idsw}


def mot_totals(per_joint: dict[str, np.ndarray]) -> dict[str, float]:
    """Totals of the rate metrics: the mean over joints where the metric is not NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {name: nan_mean(per_joint[name]) for name in ("mota", "motp", "precision", "recall", "idsw")}
