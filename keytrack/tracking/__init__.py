"""Online multi-person pose tracking with Pose Entailment (KeyTrack §3.1, A.3, A.4).

* :mod:`~keytrack.tracking.tracker`: the frame-by-frame :class:`Tracker`, whose one step is §3.1
  (candidates, scores, assignment, new ids).
* :mod:`~keytrack.tracking.schedule`: which frames share a step (one video at a time, or the
  current frames of several videos in one network forward).
* :mod:`~keytrack.tracking.scorers`: pose similarities behind one interface (Pose Entailment,
  OKS, IoU), each giving a ``[P, C]`` score matrix per frame; :mod:`~keytrack.tracking.crops`
  cuts the image crops a matcher on crops compares; :mod:`~keytrack.tracking.track_scorer` scores
  poses against whole tracks (the track-level matcher, beyond the paper).
* :mod:`~keytrack.tracking.assignment`: greedy (the paper's) and Hungarian assignment.
* :mod:`~keytrack.tracking.kalman`: the per-track constant-velocity Kalman filters of
  ``motion="kalman"`` (beyond the paper).
* :mod:`~keytrack.tracking.transforms`: the output keypoint threshold, frame subsampling and
  dropping the input's track ids, shared with evaluation.
* :mod:`~keytrack.tracking.cli`: the ``keytrack track`` command.
"""

from keytrack.tracking.assignment import ASSIGNMENTS, greedy_assignment, hungarian_assignment
from keytrack.tracking.scorers import (
    SCORERS,
    Candidates,
    IoUScorer,
    OKSScorer,
    PairScoreMemo,
    PoseEntailmentScorer,
    Scorer,
    iou_matrix,
    oks_matrix,
)
from keytrack.tracking.track_scorer import TrackEntailmentScorer
from keytrack.tracking.tracker import MOTIONS, Tracker, TrackingError
from keytrack.tracking.transforms import apply_keypoint_threshold, drop_track_ids, subsample

__all__ = [
    "ASSIGNMENTS",
    "SCORERS",
    "Candidates",
    "IoUScorer",
    "OKSScorer",
    "PairScoreMemo",
    "PoseEntailmentScorer",
    "Scorer",
    "TrackEntailmentScorer",
    "MOTIONS",
    "Tracker",
    "TrackingError",
    "apply_keypoint_threshold",
    "drop_track_ids",
    "greedy_assignment",
    "hungarian_assignment",
    "iou_matrix",
    "oks_matrix",
    "subsample",
]
