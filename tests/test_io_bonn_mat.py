"""Bonn Multi-Person PoseTrack ``.mat`` reader on tiny files written with scipy.io.savemat."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import scipy.io

from keytrack.io import DataError, read_dataset, read_video
from keytrack.io.bonn_mat import read_bonn_mat
from keytrack.skeleton import JOINTS

# MPII joint ids as the Bonn files use them, written out here (upper neck = our head_bottom).
MPII = [
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "head_bottom",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
]
PT18 = [
    "nose",
    "head_bottom",
    "head_top",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]
POINT = [("x", "O"), ("y", "O"), ("id", "O"), ("is_visible", "O"), ("is_truncated", "O")]


def cell(points, head):
    """One ``annopoints{p, t}`` struct: points ``[(id, x, y, is_visible)]``, head ``x1 y1 x2 y2``."""
    pts = np.zeros((1, len(points)), dtype=POINT)
    for k, (i, x, y, v) in enumerate(points):
        pts[0, k] = (
            np.array([[x]]),
            np.array([[y]]),
            np.array([[i]], np.uint8),
            np.array([[v]], np.uint8),
            np.array([[0]], np.uint8),
        )
    s = np.zeros((1, 1), dtype=[("point", "O"), ("head_rect", "O")])
    s[0, 0]["point"] = pts
    s[0, 0]["head_rect"] = np.array([head], float) if head is not None else np.zeros((0, 0))
    return s


def write_mat(path, videos):
    """``videos``: ``[(name, {(p, t): (points, head)}, persons, frames)]``, the Bonn layout."""
    annolist = np.zeros(
        (len(videos), 1),
        dtype=[("num_frames", "O"), ("name", "O"), ("num_persons", "O"), ("annopoints", "O")],
    )
    for v, (name, poses, persons, frames) in enumerate(videos):
        cells = np.empty((persons, frames), dtype=object)
        for idx in np.ndindex(persons, frames):
            cells[idx] = cell(*poses[idx]) if idx in poses else np.zeros((1, 0))
        annolist[v, 0]["num_frames"] = np.array([[frames]], np.uint8)
        annolist[v, 0]["name"] = np.array([name])
        annolist[v, 0]["num_persons"] = np.array([[persons]], np.uint8)
        annolist[v, 0]["annopoints"] = cells
    scipy.io.savemat(path, {"annolist": annolist})
    return path


def random_poses(rng, persons, frames, ids=(0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)):
    poses = {}
    for p in range(persons):
        for t in range(frames):
            if rng.random() < 0.25:
                continue  # person p not in frame t
            chosen = rng.permutation(ids)[: int(rng.integers(1, len(ids) + 1))]
            points = [(int(i), *rng.uniform(1, 900, 2).round(3), int(rng.integers(0, 2))) for i in chosen]
            x1, y1 = rng.uniform(0, 500, 2).round(3)
            head = [x1, y1, x1 + 40.0, y1 + 52.5] if rng.random() < 0.7 else None
            poses[p, t] = (points, head)
    return poses


def test_poses_track_ids_and_head_boxes(tmp_path, caplog):
    rng = np.random.default_rng(0)
    poses = random_poses(rng, 3, 5)
    path = write_mat(tmp_path / "annolist.mat", [("000001", poses, 3, 5), ("000002", {}, 2, 2)])
    with caplog.at_level(logging.WARNING, logger="keytrack.io"):
        data = read_dataset(path, default_frame_size=(960, 540))
    assert any("default 960 x 540" in r.getMessage() for r in caplog.records)
    assert [v.name for v in data.videos] == ["000001", "000002"]
    video = data.videos[0]
    assert (video.width, video.height, video.frame_size_origin) == (960, 540, "default")
    assert [f.index for f in video.frames] == list(range(5))
    assert data.videos[1].num_poses == 0 and len(data.videos[1].frames) == 2
    for t, frame in enumerate(video.frames):
        want = sorted(p for (p, tt) in poses if tt == t)
        assert frame.track_ids.tolist() == want
        for row, p in enumerate(want):
            points, head = poses[p, t]
            expect = np.zeros((len(JOINTS), 3))
            for i, x, y, _ in points:
                expect[JOINTS.index(MPII[i])] = (x, y, 1)  # occluded joints stay present
            np.testing.assert_allclose(frame.keypoints[row], expect)
            if head is None:
                assert np.isnan(frame.head_boxes[row]).all()
            else:
                np.testing.assert_allclose(frame.head_boxes[row], [head[0], head[1], 40.0, 52.5])


def test_occluded_as_absent_uses_is_visible(tmp_path):
    poses = {(0, 0): ([(0, 10.0, 20.0, 1), (1, 30.0, 40.0, 0)], None)}
    path = write_mat(tmp_path / "a.mat", [("000001", poses, 1, 1)])
    kp = read_bonn_mat(path, occluded_as_absent=True)[0].frames[0].keypoints[0]
    assert kp[JOINTS.index("right_ankle"), 2] == 1 and kp[JOINTS.index("right_knee"), 2] == 0
    kp = read_bonn_mat(path)[0].frames[0].keypoints[0]
    assert kp[JOINTS.index("right_knee"), 2] == 1


def test_pelvis_and_thorax_are_counted_as_skipped(tmp_path):
    poses = {
        (0, 0): ([(6, 1.0, 2.0, 1), (7, 3.0, 4.0, 1), (9, 5.0, 6.0, 1)], None),
        (0, 1): ([(6, 1.0, 2.0, 1)], None),
    }
    path = write_mat(tmp_path / "a.mat", [("000001", poses, 1, 2)])
    data = read_dataset(path)
    assert data.skipped == {
        "keypoints without a KeyTrack joint (pelvis, thorax)": 3,
        "poses with no visible keypoint": 1,
    }
    assert [f.num_poses for f in data.videos[0].frames] == [1, 0]
    assert (data.videos[0].frames[0].keypoints[0, :, 2] > 0).sum() == 1


def test_same_poses_as_the_posetrack18_json_of_the_same_content(tmp_path):
    rng = np.random.default_rng(1)
    poses = random_poses(rng, 4, 6)
    path = write_mat(tmp_path / "a.mat", [("000003", poses, 4, 6)])
    images = [
        {"id": t, "frame_id": t, "file_name": f"{t}.jpg", "width": 960, "height": 540} for t in range(6)
    ]
    anns = []
    for (p, t), (points, head) in sorted(poses.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        kp = np.zeros((17, 3))
        for i, x, y, _ in points:
            kp[PT18.index(MPII[i])] = (x, y, 1)
        anns.append(
            {
                "image_id": t,
                "track_id": p,
                "keypoints": kp.reshape(-1).tolist(),
                "bbox_head": [] if head is None else [head[0], head[1], 40.0, 52.5],
            }
        )
    (tmp_path / "000003.json").write_text(json.dumps({"images": images, "annotations": anns}))
    from_mat = read_video(path, default_frame_size=(960, 540))
    from_json = read_video(tmp_path / "000003.json")
    for fm, fj in zip(from_mat.frames, from_json.frames, strict=True):
        for key in ("keypoints", "track_ids", "boxes", "head_boxes", "scores"):
            np.testing.assert_allclose(getattr(fm, key), getattr(fj, key), err_msg=key)


def test_squeezed_shapes_one_person_one_frame(tmp_path):
    rng = np.random.default_rng(2)
    path = write_mat(
        tmp_path / "a.mat",
        [
            ("000001", random_poses(rng, 1, 1) or {(0, 0): ([(9, 1.0, 1.0, 1)], None)}, 1, 1),
            ("000002", {(0, 2): ([(9, 5.0, 6.0, 1)], [1, 2, 3, 4])}, 1, 4),
        ],
    )
    videos = read_bonn_mat(path)
    assert [len(v.frames) for v in videos] == [1, 4]
    assert [f.num_poses for f in videos[1].frames] == [0, 0, 1, 0]
    np.testing.assert_array_equal(videos[1].frames[2].head_boxes, [[1, 2, 2, 2]])
    with pytest.raises(DataError, match="holds 2 videos"):
        read_video(path)


def test_bad_files_are_refused(tmp_path):
    (tmp_path / "junk.mat").write_bytes(b"not a MATLAB file at all" * 10)
    with pytest.raises(DataError, match="junk.mat"):
        read_dataset(tmp_path / "junk.mat")
    scipy.io.savemat(tmp_path / "other.mat", {"something": np.zeros(3)})
    with pytest.raises(DataError, match="field 'annolist'"):
        read_dataset(tmp_path / "other.mat")
    poses = {(0, 0): ([(16, 1.0, 2.0, 1)], None)}
    write_mat(tmp_path / "ids.mat", [("000001", poses, 1, 1)])
    with pytest.raises(DataError, match=r"video 000001.*frame 0, person 0.*point\(1\)\.id.*0\.\.15"):
        read_dataset(tmp_path / "ids.mat")
    poses = {(0, 0): ([(3, 1.0, 2.0, 1), (3, 5.0, 2.0, 1)], None)}
    write_mat(tmp_path / "dup.mat", [("000001", poses, 1, 1)])
    with pytest.raises(DataError, match="given twice"):
        read_dataset(tmp_path / "dup.mat")
    poses = {(0, 0): ([(3, np.nan, 2.0, 1)], None)}
    write_mat(tmp_path / "nan.mat", [("000001", poses, 1, 1)])
    with pytest.raises(DataError, match=r"point\(1\)\.x.*NaN"):
        read_dataset(tmp_path / "nan.mat")
