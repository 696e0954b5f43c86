"""Per-joint Average Precision as PoseTrack's ``evaluateAP`` computes it (paper §4.1, "AP").

Predicted joints are first labelled true/false positive by the greedy PCKh pose assignment of
``eval_helpers.assignGTmulti`` (:func:`keytrack.evaluation.protocol.match_frame`); here they are
ranked by their score and turned into a precision/recall curve (``eval_helpers.computeRPC``) whose
area is taken the PASCAL VOC way (``eval_helpers.VOCap``), per joint (``evaluateAP.computeMetrics``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from keytrack.evaluation.protocol import NUM_POSEVAL_JOINTS, FrameMatch


def compute_rpc(
    scores: np.ndarray, labels: np.ndarray, total_positives: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall after each detection, best score first (``computeRPC``).

    The order is ``scores.argsort()[::-1]`` exactly as poseval writes it (numpy's default sort,
    reversed), so detections with tied scores are visited in the same order as in poseval.
    ``total_positives == 0`` gives NaN recall, as in poseval.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    order = scores.argsort()[::-1]
    true_pos = np.cumsum(np.asarray(labels).ravel()[order] == 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = true_pos / np.float64(total_positives)
    precision = true_pos / np.arange(1, len(order) + 1)
    return precision, recall, order


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope at the recall steps (``VOCap``).

    Pads recall with 0 and 1 and precision with 0 and 0, makes precision non-increasing from the
    right, and sums ``(r[i] - r[i-1]) * p[i]`` where recall changes.
    """
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def nan_mean(values: np.ndarray) -> float:
    """Mean over the non-NaN entries, NaN if none: how poseval forms every "total"."""
    values = np.asarray(values, dtype=np.float64)
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if len(kept) else float("nan")


@dataclass
class APAccumulator:
    """Scores and labels of every predicted joint plus GT joint counts, frame after frame.

    Equivalent to poseval's ``scoresAll``/``labelsAll``/``nGTall``: entries keep the frame order
    they were added in, which only matters for tied scores.
    """

    joints: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    num_gt: np.ndarray = field(default_factory=lambda: np.zeros(NUM_POSEVAL_JOINTS))

    def add(self, frame: FrameMatch) -> None:
        j, s, lab = frame.ap_entries()
        self.joints.append(j)
        self.scores.append(s)
        self.labels.append(lab)
        self.num_gt += frame.num_gt_joints

    def compute(self) -> dict[str, np.ndarray]:
        """Per joint ``ap``, ``ap_precision``, ``ap_recall`` (percent) and ``num_gt_joints``.

        As ``evaluateAP.computeMetrics``: a joint without any predicted joint keeps AP, precision
        and recall 0 (not NaN); precision and recall are those after the last (lowest-scored)
        detection.
        """
        ap = np.zeros(NUM_POSEVAL_JOINTS)
        pre = np.zeros(NUM_POSEVAL_JOINTS)
        rec = np.zeros(NUM_POSEVAL_JOINTS)
        joints = np.concatenate(self.joints) if self.joints else np.zeros(0, np.int64)
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
        labels = np.concatenate(self.labels) if self.labels else np.zeros(0, bool)
        for j in range(NUM_POSEVAL_JOINTS):
            sel = joints == j
            if not sel.any():
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                precision, recall, _ = compute_rpc(scores[sel], labels[sel], self.num_gt[j])
                ap[j] = voc_ap(recall, precision) * 100
            pre[j] = precision[-1] * 100
            rec[j] = recall[-1] * 100
        return {"ap": ap, "ap_precision": pre, "ap_recall": rec, "num_gt_joints": self.num_gt.copy()}
