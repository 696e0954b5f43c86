"""Which frames go through one step of the tracker together.

The tracker of §3.1 tracks each video on its own, frame after frame
(:meth:`~keytrack.tracking.tracker.Tracker.track_frames`). A frame of a PoseTrack video holds some
100 pairs, a small batch for a network on a GPU. A scorer that can score the frames of several
videos in one call (``mixes_videos``: a matching network on keypoints,
:meth:`~keytrack.tracking.scorers.PoseEntailmentScorer.score_many`) therefore lets ``k`` videos
advance together: each step takes the next frame of every active video, and their pairs go
through one network forward. A frame that asks the scorer nothing (the first of a video, one
without a visible pose, one after a gap longer than ``δ``) is tracked at once on its own, so that
a shared step holds a frame with pairs to score from every active video. Each video still sees only its own
earlier frames, so the
track ids are those of one video at a time; what changes is the batch the network sees. Other
scorers (OKS, IoU, the CNN on image crops, which reads the images of the current video) track one
video at a time.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from keytrack.poses import Frame, Video

if TYPE_CHECKING:
    from keytrack.tracking.tracker import Tracker, Window

__all__ = ["track_together"]


@dataclasses.dataclass(eq=False)
class _Run:
    """One video under way: its position in the input, its window and the frames tracked so far."""

    position: int
    window: Window
    tracked: list[Frame] = dataclasses.field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.tracked) == len(self.window.video.frames)

    @property
    def current(self) -> Frame:
        """The next frame to track."""
        return self.window.video.frames[len(self.tracked)]

    def result(self) -> Video:
        return dataclasses.replace(self.window.video, frames=self.tracked)


def track_together(tracker: Tracker, videos: list[Video], videos_at_once: int = 1) -> list[Video]:
    """Tracked copies of ``videos``, up to ``videos_at_once`` of them advancing together where the
    tracker's scorer mixes videos (one at a time otherwise), in the order given."""
    k = max(1, int(videos_at_once)) if getattr(tracker.scorer, "mixes_videos", False) else 1
    out: list[Video | None] = [None] * len(videos)
    waiting = iter(enumerate(videos))
    active: list[_Run] = []
    _admit(tracker, waiting, active, out, k)
    while active:
        tracked = tracker.track_frames([run.window for run in active], [run.current for run in active])
        for run, frame in zip(active, tracked):
            run.tracked.append(frame)
        going = []
        for run in active:
            if _to_next_shared_step(tracker, run):
                going.append(run)
            else:
                out[run.position] = run.result()
        active = going
        _admit(tracker, waiting, active, out, k)
    return out


def _admit(tracker: Tracker, waiting, active: list[_Run], out: list, k: int) -> None:
    """Starts waiting videos until ``k`` are active; a video done before its first shared step
    goes straight to ``out``."""
    while len(active) < k:
        nxt = next(waiting, None)
        if nxt is None:
            return
        position, video = nxt
        run = _Run(position, tracker.start(video))
        if _to_next_shared_step(tracker, run):
            active.append(run)
        else:
            out[position] = run.result()


def _to_next_shared_step(tracker: Tracker, run: _Run) -> bool:
    """Tracks the run's frames that ask the scorer nothing, up to the next that does; whether there
    is one."""
    while not run.done and not tracker.compares(run.window, run.current):
        run.tracked.extend(tracker.track_frames([run.window], [run.current]))
    return not run.done
