"""boxmot's motion trackers as baselines (keytrack/tracking/boxmot_trackers.py): the boxes they are fed,
the poses they report, their thresholds in the tracker comparison. The trackers themselves run only
with the optional `baselines` extra (make install-baselines); those tests skip without it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from keytrack.ablations.cells import TrackingOptions, fixed_thresholds, grid_of
from keytrack.errors import InputError
from keytrack.poses import Dataset, Frame, Video
from keytrack.tracking.boxmot_trackers import (
    BOXMOT_METHODS,
    BOXMOT_TRACKERS,
    BoxmotTracker,
    boxmot_method,
    pose_boxes,
)


def _pose(x: float, y: float, visible: int = 15) -> np.ndarray:
    """A 15-joint pose: joints spread over a 20 x 40 box whose top-left corner is (x, y)."""
    kp = np.zeros((15, 3))
    kp[:, 0] = x + np.linspace(0, 20, 15)
    kp[:, 1] = y + np.linspace(0, 40, 15)
    kp[:visible, 2] = 1.0
    return kp


def _scene(frames: int = 8) -> Video:
    """Two people walking towards each other along two rows, and a pose with no visible joint."""
    out = []
    for t in range(frames):
        kp = np.stack([_pose(10 + 6 * t, 50), _pose(200 - 6 * t, 150), _pose(100, 300, visible=0)])
        out.append(
            Frame.from_poses(
                t,
                kp,
                track_ids=np.array([0, 1, 2]),
                scores=np.array([0.9, np.nan, 0.9]),
                head_boxes=np.tile([0.0, 0.0, 10.0, 10.0], (3, 1)),
            )
        )
    return Video("walk", out, 320, 400)


def test_pose_boxes_are_the_visible_extent_plus_a_margin():
    kp = np.stack([_pose(10, 50), _pose(0, 0, visible=0)])
    kp[0, 0, 2] = 0.0  # the first joint (10, 50) hidden: the extent starts at the second
    boxes, has = pose_boxes(kp)
    assert has.tolist() == [True, False]
    x0, y0 = 10 + 20 / 14, 50 + 40 / 14
    w, h = 30 - x0, 90 - y0
    np.testing.assert_allclose(boxes[0], [x0 - 0.1 * w, y0 - 0.1 * h, 30 + 0.1 * w, 90 + 0.1 * h])
    assert np.isnan(boxes[1]).all()
    low = kp.copy()
    low[0, :, 2] = 0.05
    low[0, 3, 2] = 0.9
    boxes, has = pose_boxes(low, min_keypoint_confidence=0.1)  # one joint left: a 1-pixel box, padded
    np.testing.assert_allclose(boxes[0], [*(low[0, 3, :2] - 0.1), *(low[0, 3, :2] + 0.1)])


def test_method_names_defaults_and_grids():
    assert set(BOXMOT_TRACKERS) == {"bytetrack", "ocsort", "botsort", "hybridsort", "deepocsort"}
    assert boxmot_method("hybridsort") == (BOXMOT_TRACKERS["hybridsort"], False)
    assert boxmot_method("hybridsort_defaults") == (BOXMOT_TRACKERS["hybridsort"], True)
    assert boxmot_method("oks") is None
    opts = TrackingOptions(oks_threshold=0.2)
    fixed = fixed_thresholds(opts, ["oks", "iou", "hybridsort", "bytetrack_defaults"])
    assert fixed == {"oks": 0.2, "iou": None, "hybridsort": None, "bytetrack_defaults": 0.8}
    assert grid_of(opts, "hybridsort") == BOXMOT_TRACKERS["hybridsort"].grid
    assert grid_of(opts, "oks+kalman") == tuple(opts.grid)
    with pytest.raises(ValueError, match="unknown tracker 'sort'"):
        BoxmotTracker("sort")


def test_without_the_extra_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "boxmot", None)  # import boxmot raises ImportError
    with pytest.raises(InputError, match=r"make install-baselines"):
        BoxmotTracker("ocsort")


@pytest.mark.parametrize("name", BOXMOT_METHODS[: len(BOXMOT_TRACKERS)])
def test_each_tracker_keeps_two_walkers_apart(name):
    pytest.importorskip(
        "boxmot", reason="boxmot's trackers need the `baselines` extra (make install-baselines)"
    )
    video = _scene()
    tracker = BoxmotTracker(name)
    out = tracker.track_video(video)
    assert tracker.threshold == BOXMOT_TRACKERS[name].default
    assert [f.index for f in out.frames] == [f.index for f in video.frames]
    ids = {}
    for frame, tracked in zip(video.frames, out.frames):
        assert tracked.num_poses <= 2  # the pose without a visible joint is never fed, so never reported
        for kp, tid in zip(tracked.keypoints, tracked.track_ids):
            person = int(np.argmin([np.abs(kp - p).sum() for p in frame.keypoints[:2]]))
            np.testing.assert_array_equal(kp, frame.keypoints[person])  # reported poses are input poses
            ids.setdefault(person, set()).add(int(tid))
    assert set(ids) == {0, 1}  # both people reported in some frame
    assert all(len(v) == 1 for v in ids.values()) and ids[0] != ids[1]  # one id each, never swapped
    assert tracker.frames_tracked == 0  # counted by track_videos only
    tracker.track_dataset(Dataset([video]))
    assert tracker.frames_tracked == len(video.frames) and tracker.seconds > 0


def test_the_evaluator_tracks_and_tunes_a_boxmot_tracker():
    pytest.importorskip(
        "boxmot", reason="boxmot's trackers need the `baselines` extra (make install-baselines)"
    )
    from keytrack.ablations.cells import tune_threshold
    from keytrack.ablations.evaluate import EvalSet, Evaluator, TrackerSpec

    gt = Dataset([_scene(12)])
    evaluator = Evaluator()
    result = evaluator.evaluate(TrackerSpec("ocsort", match_threshold=0.3), EvalSet(gt))
    assert result["num_switches"] == 0 and result["frames"] == 12 and result["frames_per_s"] > 0
    assert 0 < result["num_objects"] <= 2 * 12 * 15 and result["mota"]["Total"] > 50
    best, rows = tune_threshold(evaluator, TrackerSpec("ocsort"), EvalSet(gt), (0.1, 0.3), key="ocsort")
    assert best in (0.1, 0.3) and [r["threshold"] for r in rows] == [0.1, 0.3]


def test_pooled_mota_is_not_swamped_by_a_joint_without_ground_truth():
    from keytrack.ablations.runs import pooled_mota

    cell = {"num_objects": 200, "num_misses": 20, "num_false_positives": 10, "num_switches": 2}
    assert pooled_mota(cell) == 84.0
    assert pooled_mota({"num_objects": 0}) is None and pooled_mota({}) is None
