"""PoseTrack18 JSON reader and writer (keytrack.io.posetrack18) on files written to tmp_path."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from keytrack.io import DataError, read_dataset, read_video, write_posetrack18, write_video_posetrack18
from keytrack.poses import Dataset, Frame, Video
from keytrack.skeleton import JOINTS, NUM_JOINTS

# PoseTrack18's file order, written out here rather than imported, so the tests check the mapping.
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


def image(i: int, **extra) -> dict:
    return {
        "id": 10000 + i,
        "frame_id": 10000 + i,
        "file_name": f"images/v/{i:06d}.jpg",
        "vid_id": "000001",
        "nframes": 3,
        "is_labeled": True,
        "width": 640,
        "height": 480,
        **extra,
    }


def ann(image_id: int, track_id, kp: np.ndarray, **extra) -> dict:
    a = {
        "image_id": image_id,
        "category_id": 1,
        "keypoints": np.asarray(kp, float).reshape(-1).tolist(),
        **extra,
    }
    if track_id is not None:
        a["track_id"] = track_id
    return a


def pose17(rng: np.random.Generator, present: float = 0.8) -> np.ndarray:
    kp = np.zeros((17, 3))
    vis = rng.random(17) < present
    vis[[3, 4]] = False  # PoseTrack never annotates the ears
    vis[5] = True
    kp[vis, :2] = rng.uniform(1, 600, (vis.sum(), 2)).round(3)
    kp[vis, 2] = 1
    return kp


def dump(tmp_path, doc, name="000001_test.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_keypoints_map_by_joint_name_and_ears_are_dropped(tmp_path):
    kp = np.array([[10.0 * k + 1, 10.0 * k + 2, 1] for k in range(17)])
    doc = {
        "images": [image(0)],
        "annotations": [ann(10000, 7, kp, bbox=[1, 2, 3, 4], bbox_head=[5, 6, 7, 8], score=0.5)],
    }
    video = read_video(dump(tmp_path, doc))
    frame = video.frames[0]
    assert frame.keypoints.shape == (1, NUM_JOINTS, 3)
    for j, name in enumerate(JOINTS):
        k = PT18.index(name)
        np.testing.assert_array_equal(frame.keypoints[0, j], [10 * k + 1, 10 * k + 2, 1])
    assert not (
        {10 * PT18.index("left_ear") + 1, 10 * PT18.index("right_ear") + 1} & set(frame.keypoints[0, :, 0])
    )
    assert frame.track_ids.tolist() == [7]
    np.testing.assert_array_equal(frame.boxes[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(frame.head_boxes[0], [5, 6, 7, 8])
    assert frame.scores.tolist() == [0.5]
    assert (frame.image_id, frame.file_name, frame.index) == (10000, "images/v/000000.jpg", 0)
    assert (video.name, video.width, video.height, video.frame_size_origin) == (
        "000001_test",
        640,
        480,
        "annotation",
    )


def test_frames_follow_frame_id_and_every_image_is_a_frame(tmp_path):
    rng = np.random.default_rng(0)
    images = [image(2), image(0), image(1, is_labeled=False)]
    poses = [pose17(rng) for _ in range(3)]
    anns = [ann(10002, 1, poses[0]), ann(10000, 5, poses[1]), ann(10000, 3, poses[2])]
    video = read_video(dump(tmp_path, {"images": images, "annotations": anns}))
    assert [f.image_id for f in video.frames] == [10000, 10001, 10002]
    assert [f.index for f in video.frames] == [0, 1, 2]
    assert [f.num_poses for f in video.frames] == [2, 0, 1]
    assert [f.is_labeled for f in video.frames] == [True, False, True]
    assert video.frames[0].track_ids.tolist() == [5, 3]  # file order within a frame
    np.testing.assert_array_equal(
        video.frames[0].keypoints[1, :, 0], poses[2][[PT18.index(j) for j in JOINTS], 0]
    )


def test_absent_fields_get_defaults(tmp_path):
    rng = np.random.default_rng(1)
    kp = pose17(rng)
    anns = [ann(10000, None, kp), ann(10000, 4, kp, bbox=[], bbox_head=[])]
    frame = read_video(dump(tmp_path, {"images": [image(0)], "annotations": anns})).frames[0]
    assert frame.track_ids.tolist() == [-1, 4]
    vis = kp[:, 2] > 0
    tight = [kp[vis, 0].min(), kp[vis, 1].min(), np.ptp(kp[vis, 0]), np.ptp(kp[vis, 1])]
    np.testing.assert_allclose(frame.boxes, [tight, tight])
    assert np.isnan(frame.head_boxes).all()
    assert frame.scores.tolist() == [1.0, 1.0]


def test_prediction_scores_are_the_keypoint_confidence(tmp_path):
    rng = np.random.default_rng(2)
    kp = pose17(rng, present=0.6)
    scores = rng.uniform(0.05, 1, 17).round(4).tolist()
    doc = {"images": [image(0)], "annotations": [ann(10000, None, kp, scores=scores, score=0.9)]}
    frame = read_video(dump(tmp_path, doc)).frames[0]
    for j, name in enumerate(JOINTS):
        k = PT18.index(name)
        want = scores[k] if kp[k, 2] > 0 else 0.0  # 0, 0, 0 placeholders stay absent
        assert frame.keypoints[0, j, 2] == pytest.approx(want)


def test_keypoint_order_comes_from_categories(tmp_path):
    names = PT18[::-1]
    kp = np.array([[10.0 * k + 1, 10.0 * k + 2, 1] for k in range(17)])
    doc = {
        "images": [image(0)],
        "annotations": [ann(10000, 0, kp)],
        "categories": [{"id": 1, "name": "person", "keypoints": names}],
    }
    frame = read_video(dump(tmp_path, doc)).frames[0]
    for j, name in enumerate(JOINTS):
        assert frame.keypoints[0, j, 0] == 10 * names.index(name) + 1


def test_skipped_annotations_are_counted_and_reported(tmp_path):
    rng = np.random.default_rng(3)
    anns = [
        ann(10000, 0, pose17(rng)),
        {"image_id": 10000, "track_id": 1, "bbox": [0, 0, 5, 5]},
        ann(10000, 2, np.zeros((17, 3))),
        ann(10001, 2, np.zeros((17, 3))),
    ]
    path = dump(tmp_path, {"images": [image(0), image(1)], "annotations": anns})
    data = read_dataset(path)
    assert data.num_poses == 1
    assert data.skipped == {"annotations without keypoints": 1, "poses with no visible keypoint": 2}
    assert "2 poses with no visible keypoint" in data.report()
    kept = read_dataset(path, keep_empty_poses=True)
    assert kept.num_poses == 3
    assert kept.skipped == {"annotations without keypoints": 1}
    assert np.isnan(kept.videos[0].frames[1].boxes).all()


def test_frame_size_from_image_header_then_default(tmp_path, caplog):
    rng = np.random.default_rng(4)
    root = tmp_path / "root"
    (root / "annotations" / "val").mkdir(parents=True)
    (root / "images" / "v").mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(root / "images" / "v" / "000000.jpg")
    sizeless = [{k: v for k, v in image(0).items() if k not in ("width", "height")}]
    doc = {"images": sizeless, "annotations": [ann(10000, 0, pose17(rng))]}
    dump(root / "annotations" / "val", doc, "a.json")
    with caplog.at_level(logging.INFO, logger="keytrack.io"):
        video = read_dataset(root, split="val").videos[0]
    assert (video.width, video.height, video.frame_size_origin) == (64, 48, "image header")
    assert any("image header" in r.getMessage() for r in caplog.records)

    caplog.clear()
    doc["images"][0]["file_name"] = "images/v/missing.jpg"
    with caplog.at_level(logging.INFO, logger="keytrack.io"):
        video = read_video(dump(tmp_path, doc), default_frame_size=(320, 200))
    assert (video.width, video.height, video.frame_size_origin) == (320, 200, "default")
    assert any("default 320 x 200" in r.getMessage() for r in caplog.records)


def test_read_dataset_accepts_file_folder_and_split_root(tmp_path):
    rng = np.random.default_rng(5)
    split = tmp_path / "annotations" / "train"
    split.mkdir(parents=True)
    for name in ("b", "a"):
        dump(split, {"images": [image(0)], "annotations": [ann(10000, 0, pose17(rng))]}, f"{name}.json")
    assert [v.name for v in read_dataset(tmp_path, split="train").videos] == ["a", "b"]
    assert [v.name for v in read_dataset(split).videos] == ["a", "b"]
    assert [v.name for v in read_dataset(split / "b.json").videos] == ["b"]
    with pytest.raises(DataError, match="split 'val'"):
        read_dataset(tmp_path, split="val")
    with pytest.raises(DataError, match=r"pass split= one of \['train'\]"):
        read_dataset(tmp_path)


def random_video(rng: np.random.Generator, name: str, frames: int = 4, with_ids: bool = True) -> Video:
    out = []
    for t in range(frames):
        p = int(rng.integers(0, 4)) if t != 1 else 0
        kp = np.zeros((p, NUM_JOINTS, 3))
        vis = rng.random((p, NUM_JOINTS)) < 0.7
        vis[:, 0] = True
        kp[vis] = np.column_stack([rng.uniform(0, 900, (vis.sum(), 2)), rng.uniform(0.01, 1, vis.sum())])
        heads = rng.uniform(0, 50, (p, 4))
        heads[rng.random(p) < 0.5] = np.nan
        tids = rng.permutation(10)[:p]
        if p:
            tids[0] = -1
        regions = [rng.uniform(0, 500, (int(rng.integers(3, 6)), 2)) for _ in range(int(rng.integers(0, 3)))]
        out.append(
            Frame.from_poses(
                t,
                kp,
                track_ids=tids,
                head_boxes=heads,
                scores=rng.uniform(0, 1, p),
                image_id=(20000 + 3 * t) if with_ids else None,
                file_name=f"images/{name}/{t:06d}.jpg",
                is_labeled=t != 2,
                ignore_regions=regions,
            )
        )
    return Video(name, out, width=960, height=540)


def assert_same(a: Video, b: Video, image_ids: bool = True) -> None:
    assert (a.name, a.width, a.height, len(a.frames)) == (b.name, b.width, b.height, len(b.frames))
    for fa, fb in zip(a.frames, b.frames):
        for key in ("keypoints", "track_ids", "boxes", "head_boxes", "scores"):
            np.testing.assert_array_equal(getattr(fa, key), getattr(fb, key), err_msg=key)
        assert (fa.index, fa.file_name, fa.is_labeled) == (fb.index, fb.file_name, fb.is_labeled)
        assert len(fa.ignore_regions) == len(fb.ignore_regions)
        for ra, rb in zip(fa.ignore_regions, fb.ignore_regions):
            np.testing.assert_array_equal(ra, rb)
        if image_ids:
            assert fa.image_id == fb.image_id


def test_round_trip_write_then_read_is_identity(tmp_path):
    rng = np.random.default_rng(6)
    data = Dataset([random_video(rng, "000007_a"), random_video(rng, "x", with_ids=False)])
    assert any(np.isnan(f.head_boxes).any() for v in data.videos for f in v.frames)
    assert any(f.ignore_regions for v in data.videos for f in v.frames)
    paths = write_posetrack18(data, tmp_path / "out")
    assert [p.name for p in paths] == ["000007_a.json", "x.json"]
    back = read_dataset(tmp_path / "out")
    assert_same(data.videos[0], back.videos[0])
    assert_same(data.videos[1], back.videos[1], image_ids=False)
    ids = [f.image_id for f in back.videos[1].frames]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    # and once more, so the generated ids are stable
    write_posetrack18(back, tmp_path / "again")
    assert_same(back.videos[1], read_dataset(tmp_path / "again").videos[1])


def test_written_file_is_posetrack18(tmp_path):
    rng = np.random.default_rng(7)
    video = random_video(rng, "000009_v")
    path = write_video_posetrack18(video, tmp_path)
    assert path == tmp_path / "000009_v.json"
    doc = json.loads(path.read_text())
    assert doc["categories"][0]["keypoints"] == PT18
    assert len(doc["categories"][0]["skeleton"]) == 19
    assert [im["frame_id"] for im in doc["images"]] == [im["id"] for im in doc["images"]]
    assert {"width", "height", "file_name", "is_labeled", "nframes"} <= set(doc["images"][0])
    assert any("ignore_regions_x" in im for im in doc["images"])
    for a, (frame, p) in zip(doc["annotations"], [(f, p) for f in video.frames for p in range(f.num_poses)]):
        kp = np.array(a["keypoints"]).reshape(17, 3)
        np.testing.assert_array_equal(kp[[3, 4]], 0)
        assert len(a["scores"]) == 17 and a["track_id"] == frame.track_ids[p]
        assert ("bbox_head" in a) == bool(np.isfinite(frame.head_boxes[p]).all())
        assert set(kp[:, 2]) <= {0.0, 1.0}
    assert os.stat(path).st_mode & 0o777 != 0o600  # not mkstemp's private mode


def test_writes_are_atomic(tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    video = random_video(rng, "v")
    path = tmp_path / "v.json"
    path.write_text("previous content")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_video_posetrack18(video, path)
    monkeypatch.undo()
    assert path.read_text() == "previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json"]  # no temporary left over

    video.frames[0].keypoints[...] = np.nan
    video.frames[0].keypoints[..., 2] = 1
    with pytest.raises(DataError, match="keypoints"):
        write_video_posetrack18(video, path)
    assert path.read_text() == "previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json"]
