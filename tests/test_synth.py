"""Synthetic scenes (keytrack.synth): determinism, annotation invariants, the hard cases, cache, CLI."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from keytrack.poses import Dataset, Frame, Video, keypoint_boxes
from keytrack.skeleton import JOINTS, NUM_JOINTS
from keytrack.stats import compute_stats
from keytrack.synth import SynthConfig, default_dataset, generate_dataset, generate_video, load_npz, save_npz
from keytrack.synth import cache as synth_cache
from keytrack.synth.scene import SceneSampler, body_occlusion

SMALL = SynthConfig(frames_per_video=(12, 16), people_per_video=(3, 6))
LS, RS = JOINTS.index("left_shoulder"), JOINTS.index("right_shoulder")


def _arrays(dataset: Dataset) -> dict[str, np.ndarray]:
    t = dataset.table()
    heads = np.concatenate([f.head_boxes for v in dataset.videos for f in v.frames])
    return {
        "kp": t.keypoints,
        "tid": t.track_ids,
        "box": t.boxes,
        "vid": t.video,
        "frm": t.frame,
        "head": heads,
    }


def _assert_same(a: Dataset, b: Dataset) -> None:
    assert [v.name for v in a.videos] == [v.name for v in b.videos]
    assert [(v.width, v.height, len(v.frames)) for v in a.videos] == [
        (v.width, v.height, len(v.frames)) for v in b.videos
    ]
    for key, x in _arrays(a).items():
        np.testing.assert_array_equal(x, _arrays(b)[key], err_msg=key)


def _tracks(dataset: Dataset):
    """(video, track) -> sorted frame indices."""
    out: dict[tuple[int, int], list[int]] = {}
    for vi, v in enumerate(dataset.videos):
        for f in v.frames:
            for t in f.track_ids:
                out.setdefault((vi, int(t)), []).append(f.index)
    return out


# ---- determinism ------------------------------------------------------------------------------


def test_same_seed_same_data_and_different_seed_different_data():
    a, b = generate_dataset(3, 7, SMALL), generate_dataset(3, 7, SMALL)
    _assert_same(a, b)
    c = generate_dataset(3, 8, SMALL)
    assert not all(
        np.array_equal(x, y)
        for x, y in zip(
            [f.keypoints for v in a.videos for f in v.frames],
            [f.keypoints for v in c.videos for f in v.frames],
        )
    )


def test_a_video_does_not_depend_on_how_many_are_generated():
    three = generate_dataset(3, 5, SMALL)
    _assert_same(generate_dataset(1, 5, SMALL), Dataset(three.videos[:1]))
    _assert_same(generate_dataset(1, 5, SMALL, first_index=2), Dataset(three.videos[2:]))
    assert generate_video(2, 5, SMALL).name == "synth_000002"


# ---- annotation invariants ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_set() -> Dataset:
    return generate_dataset(6, 0, SMALL)


def test_shapes_dtypes_and_bookkeeping(small_set):
    assert [v.name for v in small_set.videos] == [f"synth_{i:06d}" for i in range(6)]
    for v in small_set.videos:
        assert (v.width, v.height) in SMALL.frame_sizes
        assert SMALL.frames_per_video[0] <= len(v.frames) <= SMALL.frames_per_video[1]
        assert [f.index for f in v.frames] == list(range(len(v.frames)))
        for f in v.frames:
            p = f.num_poses
            assert f.keypoints.shape == (p, NUM_JOINTS, 3) and f.keypoints.dtype == np.float64
            assert f.track_ids.shape == (p,) and f.track_ids.dtype == np.int64
            assert f.boxes.shape == f.head_boxes.shape == (p, 4)
            assert np.array_equal(f.scores, np.ones(p)) and f.is_labeled
            assert np.isfinite(f.head_boxes).all() and (f.head_boxes[:, 2:] > 0).all()
    assert small_set.num_poses > 50


def test_track_ids_unique_per_frame_and_poses_follow_the_visibility_rules(small_set):
    for v in small_set.videos:
        for f in v.frames:
            assert len(np.unique(f.track_ids)) == f.num_poses
            assert (f.track_ids >= 0).all()
            vis = f.visible
            assert (vis.sum(1) >= SMALL.min_visible_joints).all()
            assert set(np.unique(f.keypoints[..., 2])) <= {0.0, 1.0}
            assert (f.keypoints[~vis] == 0).all()  # absent keypoints are 0, 0, 0
            x, y = f.keypoints[..., 0][vis], f.keypoints[..., 1][vis]
            assert ((x >= 0) & (x < v.width) & (y >= 0) & (y < v.height)).all()


def test_boxes_are_the_tight_boxes_of_the_visible_keypoints(small_set):
    for v in small_set.videos:
        for f in v.frames:
            np.testing.assert_allclose(f.boxes, keypoint_boxes(f.keypoints))
            vis = f.visible
            x = np.where(vis, f.keypoints[..., 0], np.nan)
            assert (f.boxes[:, 0] <= np.nanmin(x, 1)).all()
            assert (f.boxes[:, 0] + f.boxes[:, 2] >= np.nanmax(x, 1) - 1e-9).all()


def test_head_box_is_centred_between_head_top_and_head_bottom():
    v = generate_video(0, 0, replace(SMALL, joint_occlusion_rate=0.0, body_occlusion=False))
    f = next(f for f in v.frames if f.visible[:, [1, 2]].all(1).any())
    p = int(np.flatnonzero(f.visible[:, [1, 2]].all(1))[0])
    top = f.keypoints[p, JOINTS.index("head_top"), :2]
    bottom = f.keypoints[p, JOINTS.index("head_bottom"), :2]
    box = f.head_boxes[p]
    np.testing.assert_allclose(box[:2] + box[2:] / 2, (top + bottom) / 2)
    np.testing.assert_allclose(box[3], np.linalg.norm(top - bottom))


# ---- dynamics and hard cases ----------------------------------------------------------------


def test_walkers_enter_and_leave_the_frame_at_its_sides():
    cfg = replace(
        SynthConfig(),
        frames_per_video=(50, 50),
        people_per_video=(4, 4),
        frame_strides={2: 1.0},
        motion_mix={"walk": 1.0},
        entry_rate=0.5,
        exit_rate=0.5,
        camera_motion_prob=0.0,
        body_occlusion=False,
        joint_occlusion_rate=0.0,
        group_prob=0.0,
        lookalike_prob=0.0,
        crossing_prob=0.0,
    )
    data = generate_dataset(6, 1, cfg)
    entering = leaving = 0
    for (vi, tid), frames in _tracks(data).items():
        video = data.videos[vi]
        for at, which in ((frames[0], "enter"), (frames[-1], "leave")):
            if 0 < at < len(video.frames) - 1:
                f = video.frames[at]
                box = f.boxes[list(f.track_ids).index(tid)]
                # a walker appears / disappears at the left or right border, not in mid-frame
                assert box[0] < 0.2 * video.width or box[0] + box[2] > 0.8 * video.width, (which, box)
                entering += which == "enter"
                leaving += which == "leave"
    assert entering >= 2 and leaving >= 2


def test_random_occlusion_hides_about_the_configured_fraction():
    cfg = replace(
        SMALL,
        motion_mix={"stand": 1.0},
        scale_range=(0.15, 0.25),
        camera_motion_prob=0.0,
        body_occlusion=False,
        joint_occlusion_rate=0.25,
        min_visible_joints=1,
    )
    vis = generate_dataset(6, 2, cfg).table().keypoints[..., 2] > 0
    none = generate_dataset(6, 2, replace(cfg, joint_occlusion_rate=0.0)).table().keypoints[..., 2] > 0
    assert none.mean() > 0.98
    assert 0.65 < vis.mean() < 0.85


def test_people_in_front_hide_the_joints_behind_them():
    # two upright stick people, the second one shifted by a few pixels: overlapping bodies
    person = np.zeros((NUM_JOINTS, 2))
    ys = {
        "head_top": 0,
        "nose": 10,
        "head_bottom": 20,
        "left_shoulder": 30,
        "right_shoulder": 30,
        "left_elbow": 55,
        "right_elbow": 55,
        "left_wrist": 80,
        "right_wrist": 80,
        "left_hip": 90,
        "right_hip": 90,
        "left_knee": 140,
        "right_knee": 140,
        "left_ankle": 190,
        "right_ankle": 190,
    }
    for name, y in ys.items():
        side = 15 if name.startswith("left") else -15 if name.startswith("right") else 0
        person[JOINTS.index(name)] = (100 + side, y)
    points = np.stack([person, person + [5.0, 0.0], person + [400.0, 0.0]])[None]  # [1, 3, 15, 2]
    height = np.full((1, 3), 200.0)
    hidden = body_occlusion(points, np.array([[2.0, 3.0, 1.0]]), height)
    assert not hidden[0, 0].any()  # nearest of the overlapping two: nothing hidden
    assert hidden[0, 1].sum() >= 10  # the one behind it: most joints hidden
    assert not hidden[0, 2].any()  # far to the side: nearer but not overlapping
    swapped = body_occlusion(points, np.array([[3.0, 2.0, 1.0]]), height)
    assert swapped[0, 0].sum() >= 10 and not swapped[0, 1].any()


def test_scenes_with_crowds_have_joints_hidden_by_others():
    cfg = replace(
        SMALL,
        people_per_video=(8, 8),
        joint_occlusion_rate=0.0,
        occluded_label_rate=0.0,
        camera_motion_prob=0.0,
    )
    with_occ = generate_dataset(4, 3, cfg).table()
    without = generate_dataset(4, 3, replace(cfg, body_occlusion=False)).table()
    assert (with_occ.keypoints[..., 2] > 0).sum() < 0.95 * (without.keypoints[..., 2] > 0).sum()


def test_lower_frame_rate_gives_larger_displacement():
    # dancers stay in place (no one leaves early at a low frame rate); noise does not grow with stride
    cfg = replace(SMALL, frames_per_video=(20, 20), jitter=0.0, motion_mix={"dance": 1.0})
    fast = compute_stats(generate_dataset(5, 4, replace(cfg, frame_strides={1: 1.0})))
    slow = compute_stats(generate_dataset(5, 4, replace(cfg, frame_strides={4: 1.0})))
    assert slow["disp_median"] > 2.5 * fast["disp_median"]
    assert slow["disp_p90"] > 2.5 * fast["disp_p90"]


def test_turning_swaps_left_and_right_while_standing_people_mostly_face_the_camera():
    cfg = replace(
        SMALL,
        frames_per_video=(40, 40),
        jitter=0.0,
        group_prob=0.0,
        lookalike_prob=0.0,
        crossing_prob=0.0,
        joint_occlusion_rate=0.0,
        body_occlusion=False,
    )

    def signs(motion):
        t = generate_dataset(4, 6, replace(cfg, motion_mix={motion: 1.0})).table()
        both = (t.keypoints[:, [LS, RS], 2] > 0).all(1)
        s = np.sign(t.keypoints[both, LS, 0] - t.keypoints[both, RS, 0])
        return t.video[both] * 1000 + t.track_ids[both], s

    key, s = signs("turn")
    swapped = [np.unique(s[key == k]).size == 2 for k in np.unique(key)]
    assert np.mean(swapped) > 0.5
    _, s = signs("stand")
    assert np.mean(s > 0) > 0.6  # facing the camera: the left shoulder is on the image right


def test_camera_motion_moves_standing_people_in_the_image():
    cfg = replace(SMALL, motion_mix={"stand": 1.0}, frames_per_video=(30, 30), camera_pan=0.1)
    still = compute_stats(generate_dataset(4, 9, replace(cfg, camera_motion_prob=0.0)))
    moving = compute_stats(generate_dataset(4, 9, replace(cfg, camera_motion_prob=1.0)))
    assert moving["disp_median"] > 1.2 * still["disp_median"]


def test_lookalikes_share_body_and_motion_and_stand_close():
    cfg = replace(SMALL, people_per_video=(2, 2), lookalike_prob=1.0, group_prob=0.0, crossing_prob=0.0)
    for i in range(3):
        sampler = SceneSampler(cfg, np.random.default_rng([0, i]), i)
        lay, bodies = sampler.layout()
        assert bodies.height[0] == bodies.height[1]
        assert all(v[0] == v[1] for v in bodies.lengths.values())
        assert lay.motion[0] == lay.motion[1] and lay.freq[0] == lay.freq[1]
        gap = np.hypot(lay.x0[0] - lay.x0[1], lay.z0[0] - lay.z0[1])
        assert gap < cfg.lookalike_spacing[1] + 0.5


def test_config_rejects_bad_knobs_by_name():
    with pytest.raises(ValueError, match="people_per_video"):
        SynthConfig(people_per_video=(5, 2))
    with pytest.raises(ValueError, match="motion_mix.*swim"):
        SynthConfig(motion_mix={"swim": 1.0})
    with pytest.raises(ValueError, match="frame_strides"):
        SynthConfig(frame_strides={0: 1.0})
    with pytest.raises(ValueError, match="entry_rate"):
        SynthConfig(entry_rate=1.5)


# ---- cache ---------------------------------------------------------------------------------------


def test_default_dataset_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYTRACK_CACHE", str(tmp_path))
    first = default_dataset(num_videos=2, seed=1, config=SMALL)
    files = list(tmp_path.glob("synth/*/dataset.npz"))
    assert len(files) == 1
    _assert_same(first, generate_dataset(2, 1, SMALL))

    def fail(*args, **kwargs):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(synth_cache, "generate_dataset", fail)
    _assert_same(default_dataset(num_videos=2, seed=1, config=SMALL), first)
    with pytest.raises(AssertionError, match="generated again"):
        default_dataset(num_videos=2, seed=2, config=SMALL)  # another seed: another entry
    other = tmp_path / "elsewhere"
    monkeypatch.setattr(synth_cache, "generate_dataset", generate_dataset)
    default_dataset(num_videos=1, seed=1, cache_dir=other, config=SMALL)
    assert list(other.glob("synth/*/dataset.npz")) and not list(tmp_path.glob("synth/*/.*.tmp"))


def test_npz_round_trip_keeps_every_field(tmp_path):
    frames = [
        Frame.from_poses(
            0,
            np.arange(2 * NUM_JOINTS * 3, dtype=float).reshape(2, NUM_JOINTS, 3),
            track_ids=[3, -1],
            image_id=None,
            file_name="a/0.jpg",
            ignore_regions=[np.array([[0.0, 0.0], [5.0, 0.0], [5.0, 5.0]])],
        ),
        Frame(index=4, image_id=17, file_name="a/4.jpg", is_labeled=False),
    ]
    data = Dataset(
        [
            Video("v", frames, 640, 480, source="x.json", frame_size_origin="annotation"),
            Video("w", [], 320, 240),
        ],
        {"bad poses": 2},
    )
    back = load_npz(save_npz(data, tmp_path / "d.npz"))
    assert back.skipped == {"bad poses": 2}
    assert [
        (v.name, v.width, v.height, v.source, v.frame_size_origin, len(v.frames)) for v in back.videos
    ] == [("v", 640, 480, "x.json", "annotation", 2), ("w", 320, 240, "", "", 0)]
    for a, b in zip(frames, back.videos[0].frames):
        assert (a.index, a.image_id, a.file_name, a.is_labeled) == (
            b.index,
            b.image_id,
            b.file_name,
            b.is_labeled,
        )
        for key in ("keypoints", "track_ids", "boxes", "head_boxes", "scores"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert len(a.ignore_regions) == len(b.ignore_regions)
        for r, s in zip(a.ignore_regions, b.ignore_regions):
            np.testing.assert_array_equal(r, s)


# ---- command line ----------------------------------------------------------------------------


def test_synth_cli_writes_posetrack18_that_reads_back_equal(tmp_path, capsys):
    from keytrack import io
    from keytrack.cli import main

    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path),
                "--videos",
                "2",
                "--val-videos",
                "1",
                "--seed",
                "4",
                "--frames",
                "6-9",
                "--people",
                "2-5",
                "--set",
                "jitter=0.01",
            ]
        )
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "train: 2 videos" in line and "val: 1 videos" in line
    assert sorted(p.name for p in (tmp_path / "annotations" / "train").iterdir()) == [
        "synth_000000.json",
        "synth_000001.json",
    ]
    cfg = replace(SynthConfig(), frames_per_video=(6, 9), people_per_video=(2, 5), jitter=0.01)
    _assert_same(io.read_dataset(tmp_path, split="train"), generate_dataset(2, 4, cfg))
    _assert_same(io.read_dataset(tmp_path, split="val"), generate_dataset(1, 4, cfg, first_index=2))
