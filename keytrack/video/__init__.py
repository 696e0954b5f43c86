"""From a video to tracked poses: ``keytrack track-video`` (KeyTrack §3.1, §3.3, Fig. 2, A.3, A.4).

The whole top-down pipeline of the paper on a real video or a folder of frames:

* :mod:`~keytrack.video.frames`: frames from a video file (FFmpeg through ``imageio``) or a
  folder of images, with stride and frame limit.
* :mod:`~keytrack.video.pipeline`: detector → pose estimator → TOKS (§3.3) per frame, the online
  tracker (§3.1), PoseTrack18 output and a per-stage timing table.
* :mod:`~keytrack.video.render`: skeletons coloured by track id, written as MP4 or GIF.
* :mod:`~keytrack.video.cli`: the ``track-video`` command.
"""

from keytrack.video.frames import FrameSource, VideoError, open_frames
from keytrack.video.pipeline import StageTimer, TimedDetector, TimedEstimator, VideoResult, run_pipeline

__all__ = [
    "FrameSource",
    "StageTimer",
    "TimedDetector",
    "TimedEstimator",
    "VideoError",
    "VideoResult",
    "open_frames",
    "run_pipeline",
]
