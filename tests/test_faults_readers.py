"""Keypoint coordinates far outside the frame, or not finite, are refused by every reader.

A present keypoint must lie within ``m = max(W, H, 1000)`` pixels beyond each edge of a ``W x H``
frame (``x`` in ``[-m, W + m]``, ``y`` in ``[-m, H + m]``) where the frame size is known, and within
``|x|, |y| <= 1e5`` where it is not; the
refusal names the file, the frame and the field and states the bound. PoseTrack18 is checked
through the real console script (``evaluate`` and ``track``), PoseTrack17 and Bonn ``.mat``
through their readers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from keytrack.io import DataError, read_video
from keytrack.io.bonn_mat import read_bonn_mat
from keytrack.io.errors import UNKNOWN_SIZE_BOUND, first_outside_frame

# -- PoseTrack18 ---------------------------------------------------------------------------------


def pt18_pose(i: int) -> list[float]:
    """17 ``x, y, v`` triples inside a 640 x 480 frame; the ears (3, 4) are ``0, 0, 0``."""
    kp = np.zeros((17, 3))
    for k in range(17):
        if k not in (3, 4):
            kp[k] = [100 + 20 * i + 5 * k, 80 + 10 * k, 1]
    return kp.reshape(-1).tolist()


def pt18_doc(frames: int = 2, people: int = 2, size: bool = True) -> dict:
    images = [
        {
            "id": 10000 + t,
            "frame_id": 10000 + t,
            "file_name": f"images/val/000001/{t:06d}.jpg",
            "is_labeled": True,
            **({"width": 640, "height": 480} if size else {}),
        }
        for t in range(frames)
    ]
    anns = [
        {"image_id": 10000 + t, "track_id": p, "category_id": 1, "keypoints": pt18_pose(p)}
        for t in range(frames)
        for p in range(people)
    ]
    return {"images": images, "annotations": anns, "categories": []}


def write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def run_cli(*args):
    env = {**os.environ, "KEYTRACK_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "keytrack.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def assert_refused(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, (needle, out.stderr)
    return last


@pytest.mark.parametrize(
    ("value", "shown"),
    [(-5000.0, "x = -5000 is outside [-1000, 1640]"), (1e30, "x = 1e+30 is outside [-1000, 1640]")],
)
def test_evaluate_refuses_ground_truth_keypoint_far_outside_the_frame(tmp_path, value, shown):
    doc = pt18_doc()
    doc["annotations"][3]["keypoints"][9 * 3] = value  # left_wrist of the second pose in frame 1
    gt = write(tmp_path / "gt" / "000001_val.json", doc)
    write(tmp_path / "pred" / "000001_val.json", pt18_doc())
    out = run_cli("evaluate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"))
    last = assert_refused(
        out,
        str(gt),
        "image 10001 (images/val/000001/000001.jpg, frame 1)",
        "field 'annotations[3].keypoints'",
        f"keypoint left_wrist: {shown}",
        "within 1000 px of the 640 x 480 frame (max(width, height, 1000) beyond each edge)",
    )
    assert "keytrack evaluate: error: " in last


def test_evaluate_refuses_prediction_keypoint_below_the_frame(tmp_path):
    write(tmp_path / "gt" / "000001_val.json", pt18_doc())
    doc = pt18_doc()
    doc["annotations"][0]["keypoints"][5 * 3 + 1] = 1481.0  # left_shoulder y just beyond H + 1000
    pred = write(tmp_path / "pred" / "000001_val.json", doc)
    out = run_cli("evaluate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"))
    assert_refused(
        out,
        str(pred),
        "image 10000",
        "field 'annotations[0].keypoints'",
        "keypoint left_shoulder: y = 1481 is outside [-1000, 1480]",
    )


def test_track_refuses_input_keypoint_far_outside_the_frame(tmp_path):
    doc = pt18_doc()
    doc["annotations"][2]["keypoints"][0] = -5000.0  # nose of the first pose in frame 1
    src = write(tmp_path / "in" / "annotations" / "val" / "000001_val.json", doc)
    out = run_cli(
        "track",
        "--scorer",
        "oks",
        "--data",
        str(tmp_path / "in"),
        "--split",
        "val",
        "--out",
        str(tmp_path / "out"),
    )
    assert_refused(
        out,
        str(src.name),
        "image 10001",
        "field 'annotations[2].keypoints'",
        "keypoint nose: x = -5000 is outside [-1000, 1640]",
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_posetrack18_bound_is_inclusive_and_absent_points_are_not_checked(tmp_path):
    doc = pt18_doc()
    kp = doc["annotations"][0]["keypoints"]
    kp[0:2] = [-1000.0, 1480.0]  # on the bound: accepted as given
    kp[3:6] = [1640.0, -1000.0, 1]
    kp[6:9] = [-5000.0, 1e30, 0]  # absent (v = 0): not checked, stored as 0, 0, 0
    kp[9:12] = [1e30, -1e30, 1]  # a present ear: dropped on reading, so not checked either
    video = read_video(write(tmp_path / "000001_val.json", doc))
    got = video.frames[0].keypoints[0]
    from keytrack.skeleton import JOINTS

    assert got[JOINTS.index("nose")].tolist() == [-1000.0, 1480.0, 1.0]
    assert got[JOINTS.index("head_bottom")].tolist() == [1640.0, -1000.0, 1.0]
    assert got[JOINTS.index("head_top")].tolist() == [0.0, 0.0, 0.0]


def test_posetrack18_without_frame_size_uses_the_absolute_bound(tmp_path):
    doc = pt18_doc(size=False)
    doc["annotations"][1]["keypoints"][0] = 50000.0  # far beyond the 1920 x 1080 default, < 1e5
    video = read_video(write(tmp_path / "a" / "000001_val.json", doc))
    assert video.frame_size_origin == "default"
    assert video.frames[0].keypoints[1, 0, 0] == 50000.0
    doc["annotations"][1]["keypoints"][1] = -2e5
    path = write(tmp_path / "b" / "000001_val.json", doc)
    with pytest.raises(DataError) as err:
        read_video(path)
    assert err.value.file == str(path)
    assert err.value.frame.startswith("image 10000")
    assert err.value.field == "annotations[1].keypoints"
    assert "keypoint nose: y = -200000 is outside [-100000, 100000]" in str(err.value)
    assert "the frame size is not known, so a present keypoint must have |x|, |y| <= 100000" in str(err.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_posetrack18_non_finite_coordinate_is_refused(tmp_path, value):
    doc = pt18_doc()
    doc["annotations"][1]["keypoints"][5 * 3] = value
    path = write(tmp_path / "000001_val.json", doc)  # json writes NaN / Infinity, json reads them
    with pytest.raises(DataError) as err:
        read_video(path)
    assert err.value.field == "annotations[1].keypoints"
    assert "NaN or infinite value" in str(err.value)


# -- PoseTrack17 ---------------------------------------------------------------------------------


def pt17_doc(points: list[list[tuple]]) -> dict:
    """One frame per entry of ``points``; each entry lists rects of ``(id, x, y, is_visible)``."""
    return {
        "annolist": [
            {
                "image": [{"name": f"images/bonn/000001/{t + 1:05d}.jpg"}],
                "is_labeled": [1],
                "annorect": [
                    {
                        "track_id": [j],
                        "annopoints": [
                            {
                                "point": [
                                    {"id": [i], "x": [x], "y": [y], "is_visible": [v]} for i, x, y, v in rect
                                ]
                            }
                        ],
                    }
                    for j, rect in enumerate(rects)
                ],
            }
            for t, rects in enumerate(points)
        ]
    }


def pt17_rect(x0: float = 100.0) -> list[tuple]:
    return [(i, x0 + 7 * i, 50.0 + 9 * i, 1) for i in range(15)]


def test_posetrack17_refuses_a_point_beyond_the_absolute_bound(tmp_path):
    rect = pt17_rect()
    rect[2] = (2, 1e30, 60.0, 1)  # right_hip
    path = write(tmp_path / "000001.json", pt17_doc([[pt17_rect()], [pt17_rect(), rect]]))
    with pytest.raises(DataError) as err:
        read_video(path)
    assert err.value.file == str(path)
    assert err.value.frame == "frame 1 (images/bonn/000001/00002.jpg)"
    assert err.value.field == "annolist[1].annorect[1].annopoints[0].point[2]"
    assert "keypoint right_hip: x = 1e+30 is outside [-100000, 100000]" in str(err.value)


def test_posetrack17_uses_the_frame_size_of_the_image_header(tmp_path):
    from PIL import Image

    image = tmp_path / "images" / "bonn" / "000001" / "00001.jpg"
    image.parent.mkdir(parents=True)
    Image.new("RGB", (1200, 800)).save(image)
    rect = pt17_rect()
    rect[13] = (13, 100.0, 2001.0, 1)  # nose below the frame by more than its width
    path = write(tmp_path / "000001.json", pt17_doc([[rect]]))
    with pytest.raises(DataError) as err:
        read_video(path)
    assert err.value.field == "annolist[0].annorect[0].annopoints[0].point[13]"
    assert "keypoint nose: y = 2001 is outside [-1200, 2000]" in str(err.value)
    assert "within 1200 px of the 1200 x 800 frame" in str(err.value)


def test_posetrack17_accepts_in_bound_points_and_unchecked_placeholders(tmp_path):
    rect = pt17_rect()
    rect[0] = (0, 0.0, 0.0, 0)  # the "not annotated" placeholder of converted files
    rect[1] = (1, -99999.0, 99999.0, 1)  # within the bound of an unknown frame size
    video = read_video(write(tmp_path / "000001.json", pt17_doc([[rect]])))
    assert video.frame_size_origin == "default"
    kp = video.frames[0].keypoints[0]
    from keytrack.io.posetrack17 import FROM_POSETRACK17_ID

    assert kp[FROM_POSETRACK17_ID[0]].tolist() == [0.0, 0.0, 0.0]
    assert kp[FROM_POSETRACK17_ID[1]].tolist() == [-99999.0, 99999.0, 1.0]


def test_posetrack17_non_finite_coordinate_is_refused(tmp_path):
    rect = pt17_rect()
    rect[4] = (4, 10.0, float("inf"), 1)
    path = write(tmp_path / "000001.json", pt17_doc([[rect]]))
    with pytest.raises(DataError) as err:
        read_video(path)
    assert err.value.field == "annolist[0].annorect[0].annopoints[0].point[4]"
    assert "NaN or infinite value" in str(err.value)


# -- Bonn annolist.mat -------------------------------------------------------------------------------

POINT = [("x", "O"), ("y", "O"), ("id", "O"), ("is_visible", "O"), ("is_truncated", "O")]


def write_mat(path, cells: dict, persons: int, frames: int, name: str = "000001_bonn"):
    """One video; ``cells[(p, t)]`` lists the points ``(id, x, y, is_visible)`` of person p, frame t."""
    annopoints = np.empty((persons, frames), dtype=object)
    for idx in np.ndindex(persons, frames):
        if idx not in cells:
            annopoints[idx] = np.zeros((1, 0))
            continue
        pts = np.zeros((1, len(cells[idx])), dtype=POINT)
        for k, (i, x, y, v) in enumerate(cells[idx]):
            pts[0, k] = (
                np.array([[x]]),
                np.array([[y]]),
                np.array([[i]], np.uint8),
                np.array([[v]], np.uint8),
                0,
            )
        s = np.zeros((1, 1), dtype=[("point", "O"), ("head_rect", "O")])
        s[0, 0]["point"] = pts
        s[0, 0]["head_rect"] = np.zeros((0, 0))
        annopoints[idx] = s
    annolist = np.zeros(
        (1, 1), dtype=[("num_frames", "O"), ("name", "O"), ("num_persons", "O"), ("annopoints", "O")]
    )
    annolist[0, 0]["num_frames"] = np.array([[frames]], np.uint8)
    annolist[0, 0]["name"] = np.array([name])
    annolist[0, 0]["num_persons"] = np.array([[persons]], np.uint8)
    annolist[0, 0]["annopoints"] = annopoints
    scipy.io.savemat(path, {"annolist": annolist})
    return path


def bonn_points(x0: float = 100.0) -> list[tuple]:
    return [(i, x0 + 5 * i, 40.0 + 8 * i, 1) for i in (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)]


def test_bonn_refuses_a_point_beyond_the_absolute_bound(tmp_path):
    pts = bonn_points()
    pts[3] = (3, -5e5, 60.0, 1)  # left_hip
    path = write_mat(tmp_path / "annolist.mat", {(0, 0): bonn_points(), (1, 2): pts}, persons=2, frames=3)
    with pytest.raises(DataError) as err:
        read_bonn_mat(path)
    assert err.value.file == str(path)
    assert err.value.frame == "video 000001_bonn (annolist[0]), frame 2, person 1"
    assert err.value.field == "annopoints{2,3}.point(4)"
    assert "keypoint left_hip: x = -500000 is outside [-100000, 100000]" in str(err.value)


def test_bonn_does_not_check_points_it_leaves_out(tmp_path):
    pts = bonn_points()
    pts[4] = (4, 1e30, 60.0, 0)  # occluded: absent with occluded_as_absent
    pts.append((6, -1e30, 1e30, 1))  # pelvis: no KeyTrack joint, skipped
    path = write_mat(tmp_path / "annolist.mat", {(0, 0): pts}, persons=1, frames=1)
    (video,) = read_bonn_mat(path, occluded_as_absent=True)
    assert np.abs(video.frames[0].keypoints).max() < 1000
    with pytest.raises(DataError, match=r"point\(5\)"):
        read_bonn_mat(path)  # occluded joints are present by default, so the point is checked


def test_bonn_non_finite_coordinate_is_refused(tmp_path):
    pts = bonn_points()
    pts[0] = (0, float("nan"), 10.0, 1)
    path = write_mat(tmp_path / "annolist.mat", {(0, 0): pts}, persons=1, frames=1)
    with pytest.raises(DataError) as err:
        read_bonn_mat(path)
    assert err.value.field == "annopoints{1,1}.point(1).x"
    assert "NaN or infinite value" in str(err.value)


# -- the bound itself ------------------------------------------------------------------------------


def test_first_outside_frame():
    x = np.array([0.0, -2000.0, 4000.0, 1e30, np.nan])
    y = np.array([0.0, 50.0, 3001.0, 50.0, 0.0])
    present = np.array([True, True, True, False, True])
    assert first_outside_frame(x, y, present, 2000.0, 1000.0, True) == (
        2,
        "y = 3001 is outside [-2000, 3000]: a present keypoint must lie within 2000 px of the "
        "2000 x 1000 frame (max(width, height, 1000) beyond each edge)",
    )
    assert first_outside_frame(x[:2], y[:2], present[:2], 2000.0, 1000.0, True) is None
    assert first_outside_frame(x, y, present, 2000.0, 1000.0, False)[0] == 4  # NaN never passes
    assert first_outside_frame(x[:4], y[:4], present[:4], 2000.0, 1000.0, False) is None
    # a tiny frame still allows MIN_MARGIN pixels beyond its edges
    assert (
        first_outside_frame(np.array([5.0, -1000.0]), np.array([7.0, 1003.0]), [True, True], 4, 3, True)
        is None
    )
    assert first_outside_frame(np.array([-1000.5]), np.array([0.0]), [True], 4, 3, True)[1].startswith(
        "x = -1000.5 is outside [-1000, 1004]"
    )
    assert UNKNOWN_SIZE_BOUND == 1e5
