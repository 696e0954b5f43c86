"""The top-down KeyTrack pipeline on a video, stage by stage, timed (§3.1, §3.3, Fig. 2, A.3, A.4).

For each kept frame, in order (online: nothing looks ahead):

1. **decoding**: the next frame from the :class:`~keytrack.video.frames.FrameSource`;
2. **detection**: person boxes (``Detector.detect``);
3. **estimation**: one pose per box, all boxes of the frame in one batch (A.4);
4. **TOKS** (§3.3, Algorithm 1): the previous frame's poses give dilated boxes, poses are
   estimated in them too, and OKS between the two poses of a person decides which to keep. 1–4
   are one call of a *stepper* (``step(image) -> Poses``: :class:`keytrack.toks.TOKS`, or
   ``DetectorOnly`` without the temporal boxes); detection and estimation are timed by wrapping
   the detector and the estimator (:class:`TimedDetector`, :class:`TimedEstimator`), and TOKS'
   own time is the step's time less theirs.

Then, after the last frame:

5. **tracking**: :class:`keytrack.tracking.Tracker` over the frames (§3.1; it is online: frame
   ``t`` is assigned from frames ``t-1 .. t-δ`` only, so running it after the estimation gives
   the same track ids as running it frame by frame), then A.3's output keypoint threshold;
6. the PoseTrack18 file ``<out>/<name>.json`` (:func:`keytrack.io.write_posetrack18`);
7. **rendering**: the frames are decoded again (no frame is kept in memory) and the tracked
   skeletons drawn and written to ``<out>/<name>.mp4`` or ``.gif``
   (:mod:`keytrack.video.render`);
8. ``<out>/<name>.timing.md``: seconds and frames/s of each stage.

Every output file is written to a temporary file and renamed.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from keytrack.estimators.base import Detections, Detector, PoseEstimator, Poses
from keytrack.poses import Dataset, Frame, Video
from keytrack.video.frames import FrameSource

#: Stages in the order they run (and of the timing table).
STAGES = ("decoding", "detection", "estimation", "TOKS", "tracking", "rendering")


class Stepper(Protocol):
    """Per-frame pose source: :class:`keytrack.toks.TOKS` or ``DetectorOnly``."""

    def reset(self) -> None: ...

    def step(self, image: Any) -> Poses: ...


class StageTimer:
    """Seconds and frames per pipeline stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {s: 0.0 for s in STAGES}
        self.frames: dict[str, int] = {s: 0 for s in STAGES}
        self.calls: dict[str, int] = {s: 0 for s in STAGES}

    def add(self, stage: str, seconds: float, frames: int = 0) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + float(seconds)
        self.frames[stage] = self.frames.get(stage, 0) + int(frames)
        self.calls[stage] = self.calls.get(stage, 0) + 1

    @contextmanager
    def time(self, stage: str, frames: int = 1):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0, frames)

    def rows(self) -> list[tuple[str, float, int, float, float]]:
        """``(stage, seconds, frames, frames/s, ms/frame)`` of each stage that ran."""
        out = []
        for s in list(STAGES) + [k for k in self.seconds if k not in STAGES]:
            sec, n = self.seconds.get(s, 0.0), self.frames.get(s, 0)
            if n == 0:
                continue
            out.append((s, sec, n, n / sec if sec > 0 else float("inf"), 1000 * sec / n))
        return out

    def table(self, wall_seconds: float | None = None, frames: int | None = None) -> str:
        """The timing table as Markdown (with an end-to-end row when ``wall_seconds`` is given)."""
        from keytrack.tables import Column, markdown_table

        rows = [dict(zip(("stage", "seconds", "frames", "fps", "ms"), r)) for r in self.rows()]
        if wall_seconds is not None and frames:
            rows.append(
                {
                    "stage": "**end to end**",
                    "seconds": wall_seconds,
                    "frames": frames,
                    "fps": f"{frames / wall_seconds:,.2f}",
                    "ms": 1000 * wall_seconds / frames,
                }
            )
        return markdown_table(
            rows,
            [
                Column("stage"),
                Column("seconds", digits=2),
                Column("frames"),
                Column(
                    "fps", "frames/s", fmt=lambda v: v if isinstance(v, str) else f"{v:,.1f}", align="right"
                ),
                Column("ms", "ms/frame", digits=1),
            ],
        )


class TimedDetector:
    """A detector whose calls count as the ``detection`` stage of ``timer``."""

    def __init__(self, detector: Detector, timer: StageTimer):
        self.detector, self.timer = detector, timer
        self.boxes = 0

    def detect(self, image: Any) -> Detections:
        with self.timer.time("detection"):
            det = self.detector.detect(image)
        self.boxes += len(det)
        return det


class TimedEstimator:
    """A pose estimator whose calls count as the ``estimation`` stage (frames counted once per frame)."""

    def __init__(self, estimator: PoseEstimator, timer: StageTimer):
        self.estimator, self.timer = estimator, timer
        self.poses = 0
        self._frame_counted = False

    def new_frame(self) -> None:
        self._frame_counted = False

    def estimate(self, image: Any, boxes: np.ndarray) -> Poses:
        with self.timer.time("estimation", frames=0 if self._frame_counted else 1):
            poses = self.estimator.estimate(image, boxes)
        self._frame_counted = True
        self.poses += len(poses)
        return poses


@dataclasses.dataclass
class VideoResult:
    """What :func:`run_pipeline` wrote and measured."""

    name: str
    frames: int
    poses: int
    tracks: int
    json_path: Path
    video_path: Path | None
    timing_path: Path
    timer: StageTimer
    wall_seconds: float
    counters: dict[str, Any]
    tracked: Video


def stepper_counters(stepper: Any) -> dict[str, Any]:
    """The counters a stepper keeps (TOKS: boxes propagated, poses recovered, ...), as a dict."""
    for attr in ("counters", "stats"):
        value = getattr(stepper, attr, None)
        if callable(value):
            value = value()
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        if isinstance(value, dict):
            return dict(value)
        if hasattr(value, "__dict__"):
            return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return {}


def _progress(iterable, total: int | None, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame", dynamic_ncols=True, leave=True)


def _step(stepper: Stepper, image: Any, timer: StageTimer, estimator: TimedEstimator | None) -> Poses:
    """One stepper call; the part of its time not spent in the detector or estimator is TOKS'."""
    if estimator is not None:
        estimator.new_frame()
    before = timer.seconds["detection"] + timer.seconds["estimation"]
    t0 = time.perf_counter()
    poses = stepper.step(image)
    spent = time.perf_counter() - t0
    models = timer.seconds["detection"] + timer.seconds["estimation"] - before
    timer.add("TOKS", max(0.0, spent - models), 1)
    return poses


def _estimate_frames(
    source: FrameSource, stepper: Stepper, timer: StageTimer, estimator: TimedEstimator | None, progress: bool
) -> list[Frame]:
    """Stages 1–4 on every frame of ``source``, in order: one :class:`Frame` of poses each."""
    stepper.reset()
    frames: list[Frame] = []
    it = iter(source.frames())
    bar = _progress(
        range(source.expected_frames or 10**12),
        source.expected_frames,
        f"{source.name}: detect+estimate",
        progress,
    )
    for _ in bar:
        with timer.time("decoding"):
            item = next(it, None)
        if item is None:
            break
        index, source_index, image = item
        poses = _step(stepper, image, timer, estimator)
        frames.append(
            Frame.from_poses(
                index,
                poses.keypoints,
                boxes=poses.boxes,
                scores=poses.scores,
                file_name=f"{source.name}/{source_index:06d}.jpg",
            )
        )
    if hasattr(bar, "close"):
        bar.close()
    timer.frames["decoding"] = len(frames)
    if not frames:
        from keytrack.video.frames import VideoError

        raise VideoError(source.path, "no frames could be read")
    return frames


def _render(
    source: FrameSource,
    tracked: Video,
    path: Path,
    fmt: str,
    num_frames: int,
    timer: StageTimer,
    draw_threshold: float,
    render_scale: float,
    progress: bool,
) -> Path:
    """Stage 7: decode the frames again, draw the tracked skeletons, write the video to ``path``."""
    from keytrack.video.render import VideoWriter, draw_poses

    by_index = {f.index: f for f in tracked.frames}
    with VideoWriter(path, source.kept_fps, fmt) as writer:
        bar = _progress(source.frames(), num_frames, f"{source.name}: render", progress)
        for index, _, image in bar:
            with timer.time("rendering"):
                f = by_index[index]
                writer.append(draw_poses(image, f.keypoints, f.track_ids, draw_threshold, render_scale))
        return writer.close()


def _timing_report(
    source: FrameSource,
    header: str,
    frames: int,
    poses: int,
    tracks: int,
    timing_table: str,
    counters: dict[str, Any],
) -> str:
    """The Markdown of ``<name>.timing.md``: what ran, the stage table and the stepper's counters."""
    text = [f"# Timing: {source.name}", ""]
    if header:
        text += [header, ""]
    text += [
        f"{frames} frames of {source.width} x {source.height}, {poses} poses, {tracks} tracks.",
        "",
        timing_table,
        "",
    ]
    if counters:
        from keytrack.tables import Column, markdown_table

        text += [
            markdown_table(
                [{"counter": k, "value": v} for k, v in counters.items()],
                [Column("counter"), Column("value", digits=2, align="right")],
            ),
            "",
        ]
    return "\n".join(text)


def _track_frames(
    source: FrameSource, frames: list[Frame], tracker, timer: StageTimer, keypoint_threshold: float
) -> Video:
    """The video of ``source``'s estimated ``frames`` tracked (timed as the ``tracking`` stage),
    its keypoints below ``keypoint_threshold`` then removed (A.3: after tracking, which sees them)."""
    from keytrack.tracking.transforms import apply_keypoint_threshold

    video = Video(
        source.name,
        frames,
        float(source.width),
        float(source.height),
        source=str(source.path),
        frame_size_origin="image header",
    )
    with timer.time("tracking", frames=len(frames)):
        tracked = tracker.track_video(video)
    return apply_keypoint_threshold(Dataset([tracked]), keypoint_threshold).videos[0]


def run_pipeline(
    source: FrameSource,
    stepper: Stepper,
    tracker,
    out_dir: str | Path,
    *,
    timer: StageTimer | None = None,
    estimator: TimedEstimator | None = None,
    fmt: str | None = "mp4",
    render_scale: float = 1.0,
    draw_threshold: float = 0.3,
    keypoint_threshold: float = 0.0,
    progress: bool = True,
    header: str = "",
) -> VideoResult:
    """Run the whole pipeline on ``source`` and write ``out_dir/<name>.{json,mp4|gif,timing.md}``.

    Args:
        source: the frames (:func:`keytrack.video.frames.open_frames`).
        stepper: ``reset()`` / ``step(image) -> Poses`` (TOKS or detector only), built on a
            :class:`TimedDetector` and a :class:`TimedEstimator` sharing ``timer``.
        tracker: a :class:`keytrack.tracking.Tracker`.
        timer: the stage timer the detector/estimator wrappers write to.
        estimator: the :class:`TimedEstimator` (to count each frame once in its stage).
        fmt: ``"mp4"``, ``"gif"`` or None (no rendered video).
        render_scale: size of the rendered video relative to the frames.
        draw_threshold: keypoints below this confidence are not drawn.
        keypoint_threshold: A.3's output threshold: keypoints below it are removed from the
            JSON and the drawing (tracking still sees them).
        progress: show tqdm progress bars.
        header: Markdown put above the timing table (e.g. the command line).
    """
    from keytrack.atomic import write_text
    from keytrack.io import write_posetrack18

    out_dir = Path(out_dir)
    timer = timer or StageTimer()
    t_start = time.perf_counter()
    frames = _estimate_frames(source, stepper, timer, estimator, progress)
    tracked = _track_frames(source, frames, tracker, timer, keypoint_threshold)
    json_path = write_posetrack18(Dataset([tracked]), out_dir)[0]

    video_path = None
    if fmt:
        video_path = _render(
            source,
            tracked,
            out_dir / f"{source.name}.{fmt}",
            fmt,
            len(frames),
            timer,
            draw_threshold,
            render_scale,
            progress,
        )
    wall = time.perf_counter() - t_start

    counters = stepper_counters(stepper)
    poses = sum(f.num_poses for f in tracked.frames)
    tracks = len({int(t) for f in tracked.frames for t in f.track_ids})
    text = _timing_report(
        source, header, len(frames), poses, tracks, timer.table(wall, len(frames)), counters
    )
    timing_path = write_text(out_dir / f"{source.name}.timing.md", text)
    return VideoResult(
        source.name,
        len(frames),
        poses,
        tracks,
        json_path,
        video_path,
        timing_path,
        timer,
        wall,
        counters,
        tracked,
    )


__all__ = [
    "STAGES",
    "StageTimer",
    "Stepper",
    "TimedDetector",
    "TimedEstimator",
    "VideoResult",
    "run_pipeline",
    "stepper_counters",
]
