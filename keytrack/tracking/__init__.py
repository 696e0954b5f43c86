"""Online multi-person pose tracking with Pose Entailment (KeyTrack §3.1, A.3, A.4).

* :mod:`~keytrack.tracking.scorers`: pose similarities behind one interface (Pose Entailment,
  OKS, IoU), each giving a ``[P, C]`` score matrix per frame.
* :mod:`~keytrack.tracking.assignment`: greedy (the paper's) and Hungarian assignment.
* :mod:`~keytrack.tracking.tracker`: the frame-by-frame :class:`Tracker`, and the output
  keypoint threshold and frame subsampling shared with evaluation.
* :mod:`~keytrack.tracking.cli`: the ``keytrack track`` command.
"""
from keytrack.tracking.assignment import ASSIGNMENTS, greedy_assignment, hungarian_assignment
from keytrack.tracking.scorers import (SCORERS, Candidates, IoUScorer, OKSScorer, PairScoreMemo, PoseEntailmentScorer,
                                       Scorer, iou_matrix, oks_matrix)
from keytrack.tracking.tracker import (MOTIONS, Tracker, TrackingError, apply_keypoint_threshold, drop_track_ids,
                                       subsample)

__all__ = [
    "ASSIGNMENTS", "SCORERS", "Candidates", "IoUScorer", "OKSScorer", "PairScoreMemo", "PoseEntailmentScorer", "Scorer",
    "MOTIONS", "Tracker", "TrackingError", "apply_keypoint_threshold", "drop_track_ids", "greedy_assignment",
    "hungarian_assignment", "iou_matrix", "oks_matrix", "subsample",
]
