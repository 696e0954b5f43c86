"""PoseTrack17 (``annolist``) reader on files written to tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keytrack.io import DataError, read_dataset, read_video
from keytrack.skeleton import JOINTS, NUM_JOINTS

# PoseTrack17 joint ids (poseval's Joint: 12 is "neck", our head_bottom), written out here.
PT17 = [
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "head_bottom",
    "nose",
    "head_top",
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


def random_people(rng, frames=3, people=3):
    """``[(track_id, {pt17_id: (x, y)}, head x1 y1 x2 y2)]`` per frame."""
    out = []
    for _ in range(frames):
        rows = []
        for tid in rng.permutation(9)[:people]:
            ids = rng.permutation(15)[: int(rng.integers(1, 16))]
            pts = {int(i): tuple(rng.uniform(1, 700, 2).round(3)) for i in ids}
            x1, y1 = rng.uniform(0, 400, 2).round(2)
            rows.append((int(tid), pts, [x1, y1, x1 + 30.5, y1 + 41.25]))
        out.append(rows)
    return out


def pt17_doc(frames, wrap=True):
    w = (lambda v: [v]) if wrap else (lambda v: v)
    annolist = []
    for t, rows in enumerate(frames):
        rects = [
            {
                "track_id": w(tid),
                "x1": w(h[0]),
                "y1": w(h[1]),
                "x2": w(h[2]),
                "y2": w(h[3]),
                "annopoints": [
                    {
                        "point": [
                            {"id": w(i), "x": w(x), "y": w(y), "is_visible": w(i % 2)}
                            for i, (x, y) in pts.items()
                        ]
                    }
                ],
            }
            for tid, pts, h in rows
        ]
        annolist.append(
            {
                "image": [{"name": f"images/bonn/000001/{t + 1:05d}.jpg"}],
                "imgnum": [t + 1],
                "is_labeled": [1],
                "annorect": rects,
            }
        )
    return {"annolist": annolist}


def pt18_doc(frames):
    images, anns = [], []
    for t, rows in enumerate(frames):
        images.append({"id": t, "frame_id": t, "file_name": f"images/bonn/000001/{t + 1:05d}.jpg"})
        for tid, pts, h in rows:
            kp = np.zeros((17, 3))
            for i, (x, y) in pts.items():
                kp[PT18.index(PT17[i])] = (x, y, 1)
            anns.append(
                {
                    "image_id": t,
                    "track_id": tid,
                    "keypoints": kp.reshape(-1).tolist(),
                    "bbox_head": [h[0], h[1], h[2] - h[0], h[3] - h[1]],
                }
            )
    return {"images": images, "annotations": anns}


@pytest.mark.parametrize("wrap", [True, False])
def test_same_poses_as_the_posetrack18_file_of_the_same_content(tmp_path, wrap):
    frames = random_people(np.random.default_rng(0))
    (tmp_path / "a17.json").write_text(json.dumps(pt17_doc(frames, wrap)))
    (tmp_path / "a18.json").write_text(json.dumps(pt18_doc(frames)))
    v17 = read_video(tmp_path / "a17.json")
    v18 = read_video(tmp_path / "a18.json")
    assert v17.num_poses == v18.num_poses == sum(len(r) for r in frames)
    for f17, f18 in zip(v17.frames, v18.frames, strict=True):
        for key in ("keypoints", "track_ids", "boxes", "head_boxes", "scores"):
            np.testing.assert_allclose(getattr(f17, key), getattr(f18, key), err_msg=key)
        assert f17.file_name == f18.file_name


def test_joint_ids_map_by_name(tmp_path):
    pts = {i: (10.0 * i + 1, 10.0 * i + 2) for i in range(15)}
    (tmp_path / "v.json").write_text(json.dumps(pt17_doc([[(4, pts, [0, 0, 10, 10])]])))
    kp = read_video(tmp_path / "v.json").frames[0].keypoints[0]
    for j, name in enumerate(JOINTS):
        i = PT17.index(name)
        np.testing.assert_array_equal(kp[j], [10 * i + 1, 10 * i + 2, 1])


def test_scores_placeholders_regions_and_skips(tmp_path):
    doc = {
        "annolist": [
            {
                "image": [{"name": "a/00001.jpg"}],
                "is_labeled": [0],
                "annorect": [],
                "ignore_regions": [
                    {"point": [{"x": [1], "y": [2]}, {"x": [5], "y": [2]}, {"x": [5], "y": [9]}]}
                ],
            },
            {
                "image": {"name": "a/00002.jpg"},
                "annorect": [
                    {
                        "track_id": [0],
                        "score": [0.7],
                        "annopoints": [
                            {
                                "point": [
                                    {"id": [13], "x": [3.5], "y": [4.5], "score": [0.25]},
                                    {"id": [0], "x": [0], "y": [0], "is_visible": [0]},
                                ]
                            }
                        ],
                    },
                    {"track_id": [1], "x1": [0], "y1": [0], "x2": [1], "y2": [1]},  # head box only
                    {
                        "track_id": [2],
                        "annopoints": [{"point": [{"id": [1], "x": [0], "y": [0], "is_visible": [0]}]}],
                    },
                ],
            },
        ]
    }
    (tmp_path / "v.json").write_text(json.dumps(doc))
    data = read_dataset(tmp_path / "v.json")
    f0, f1 = data.videos[0].frames
    assert (f0.is_labeled, f1.is_labeled, f0.num_poses) == (False, True, 0)
    np.testing.assert_array_equal(f0.ignore_regions[0], [[1, 2], [5, 2], [5, 9]])
    assert f1.track_ids.tolist() == [0] and f1.scores.tolist() == [0.7]
    kp = f1.keypoints[0]
    np.testing.assert_array_equal(kp[JOINTS.index("nose")], [3.5, 4.5, 0.25])
    assert (kp[..., 2] > 0).sum() == 1  # the 0, 0 placeholder is absent
    assert np.isnan(f1.head_boxes).all()
    assert data.skipped == {"annotations without keypoints": 1, "poses with no visible keypoint": 1}
    assert data.videos[0].frame_size_origin == "default"


def test_bad_joint_ids_are_refused(tmp_path):
    frames = [[(0, {0: (1.0, 2.0)}, [0, 0, 1, 1])]]
    doc = pt17_doc(frames)
    doc["annolist"][0]["annorect"][0]["annopoints"][0]["point"][0]["id"] = [15]
    (tmp_path / "v.json").write_text(json.dumps(doc))
    field = r"annorect\[0\]\.annopoints\[0\]\.point\[0\]\.id"
    with pytest.raises(DataError, match=r"v\.json.*00001\.jpg.*" + field):
        read_video(tmp_path / "v.json")
    pts = doc["annolist"][0]["annorect"][0]["annopoints"][0]["point"]
    pts[0]["id"] = [3]
    pts.append(dict(pts[0]))
    (tmp_path / "v.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="listed twice"):
        read_video(tmp_path / "v.json")


def test_repeated_track_id_and_missing_name_are_refused(tmp_path):
    pts = {0: (1.0, 2.0)}
    doc = pt17_doc([[(3, pts, [0, 0, 1, 1]), (3, pts, [0, 0, 1, 1])]])
    (tmp_path / "v.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"frame 0.*annorect\[1\]\.track_id.*twice"):
        read_video(tmp_path / "v.json")
    doc = pt17_doc([[(3, pts, [0, 0, 1, 1])]])
    del doc["annolist"][0]["image"]
    (tmp_path / "v.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"annolist\[0\]\.image\[0\]\.name"):
        read_video(tmp_path / "v.json")


def test_keep_empty_poses(tmp_path):
    doc = pt17_doc([[(0, {}, [0, 0, 1, 1])]])
    (tmp_path / "v.json").write_text(json.dumps(doc))
    assert read_dataset(tmp_path / "v.json").num_poses == 0
    kept = read_dataset(tmp_path / "v.json", keep_empty_poses=True)
    assert kept.num_poses == 1 and kept.videos[0].frames[0].keypoints.shape == (1, NUM_JOINTS, 3)
