"""Person detectors and top-down pose estimators behind one interface (KeyTrack §3.3, §4.3, A.4).

:mod:`keytrack.estimators.base` defines what the rest of the pipeline (TOKS, ``track-video``)
needs of them; implementations live in sibling modules.
"""

from keytrack.estimators.base import Detections, Detector, PoseEstimator, Poses

__all__ = ["Detections", "Detector", "PoseEstimator", "Poses"]
