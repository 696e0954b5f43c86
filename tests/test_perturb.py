"""The perturbation protocol of keytrack.perturb: Figure 4's three keypoint sources from ground truth."""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import spearmanr

from keytrack.perturb import (
    JOINT_GROUPS,
    SETTINGS,
    TEMPLATE,
    PerturbConfig,
    add_arguments,
    fit_template,
    person_scale,
    perturb,
    run,
    with_oracle_track_ids,
)
from keytrack.poses import Dataset, Frame, Video, keypoint_boxes
from keytrack.skeleton import JOINTS, NUM_JOINTS
from keytrack.synth import generate_dataset

GT_BOXES, PREDICTED = SETTINGS[1], SETTINGS[2]
#: detector errors off: no misses, no false positives, perfect boxes
NO_DETECTOR_ERRORS = dict(
    miss_prob=0.0,
    duplicate_prob=0.0,
    clutter_rate=0.0,
    box_shift=0.0,
    box_scale=0.0,
    box_jitter_gain=0.0,
    box_margin=10.0,
)


@pytest.fixture(scope="module")
def scenes() -> Dataset:
    return generate_dataset(5, seed=11)


def template_scene(
    heights=(120.0,),
    frames: int = 30,
    videos: int = 1,
    hide: float = 0.0,
    seed: int = 0,
    size: tuple[float, float] = (1920.0, 1080.0),
) -> tuple[Dataset, list[np.ndarray]]:
    """People shaped like :data:`TEMPLATE` (one per height, side by side), walking right.

    Returns the dataset and, per video, the true ``[F, P, 15, 2]`` positions of every joint,
    including the ``hide`` fraction that is not annotated.
    """
    rng = np.random.default_rng(seed)
    heights = np.asarray(heights, float)
    out, truth = [], []
    for v in range(videos):
        x0 = 100 + np.cumsum(np.r_[0, heights[:-1]]) * 0.8 + np.arange(len(heights)) * 50
        xy_all, frame_list = [], []
        for t in range(frames):
            origin = np.c_[x0 + 2.0 * t, np.full(len(heights), 100.0)]
            xy = origin[:, None] + heights[:, None, None] * (TEMPLATE + rng.normal(0, 0.01, TEMPLATE.shape))
            vis = rng.random((len(heights), NUM_JOINTS)) >= hide
            vis[:, 3] = vis[:, 4] = True  # shoulders always annotated
            kp = np.concatenate([xy * vis[..., None], vis[..., None].astype(float)], -1)
            head = np.c_[origin[:, 0] - 0.05 * heights, origin[:, 1], 0.10 * heights, 0.13 * heights]
            frame_list.append(
                Frame.from_poses(t, kp, track_ids=np.arange(len(heights)) + 100 * v, head_boxes=head)
            )
            xy_all.append(xy)
        out.append(Video(f"video{v}", frame_list, *size, source=f"memory/video{v}.json"))
        truth.append(np.stack(xy_all))
    return Dataset(out), truth


def by_track(frame: Frame) -> dict[int, np.ndarray]:
    return {int(t): frame.keypoints[i] for i, t in enumerate(frame.track_ids) if t >= 0}


def paired_errors(gt: Dataset, pred: Dataset):
    """Head-normalised error, confidence and joint of every GT-visible joint a prediction outputs."""
    errors, confs, joints = [], [], []
    for gv, pv in zip(gt.videos, pred.videos):
        for gf, pf in zip(gv.frames, pv.frames):
            s = person_scale(gf.keypoints, gf.boxes, gf.head_boxes)
            pred_kp = by_track(pf)
            for i, t in enumerate(gf.track_ids):
                if int(t) not in pred_kp:
                    continue
                p = pred_kp[int(t)]
                both = (gf.keypoints[i, :, 2] > 0) & (p[:, 2] > 0)
                errors.append(np.linalg.norm(p[both, :2] - gf.keypoints[i, both, :2], axis=-1) / s[i])
                confs.append(p[both, 2])
                joints.append(np.flatnonzero(both))
    return np.concatenate(errors), np.concatenate(confs), np.concatenate(joints)


def frames_equal(a: Dataset, b: Dataset) -> bool:
    return all(
        np.array_equal(fa.keypoints, fb.keypoints)
        and np.array_equal(fa.scores, fb.scores)
        and np.array_equal(fa.track_ids, fb.track_ids)
        and np.array_equal(fa.boxes, fb.boxes, equal_nan=True)
        for va, vb in zip(a.videos, b.videos)
        for fa, fb in zip(va.frames, vb.frames)
    )


# -- the contract ---------------------------------------------------------------------------------


def test_settings_are_figure_4s_three():
    assert SETTINGS == (
        "gt_boxes_gt_keypoints",
        "gt_boxes_predicted_keypoints",
        "predicted_boxes_predicted_keypoints",
    )
    with pytest.raises(ValueError, match="gt_boxes_predicted_keypoints"):
        perturb(Dataset([]), "predicted_keypoints")


@pytest.mark.parametrize("setting", SETTINGS)
def test_deterministic_per_seed_and_input_untouched(scenes, setting):
    before = copy.deepcopy(scenes)
    a, b = perturb(scenes, setting, seed=4), perturb(scenes, setting, seed=4)
    assert frames_equal(a, b)
    c = perturb(scenes, setting, seed=5)
    if setting == SETTINGS[0]:  # the identity: another seed only lists the poses in another order
        assert all(
            np.array_equal(
                np.unique(fa.keypoints.reshape(fa.num_poses, 3 * NUM_JOINTS), axis=0),
                np.unique(fc.keypoints.reshape(fc.num_poses, 3 * NUM_JOINTS), axis=0),
            )
            for va, vc in zip(a.videos, c.videos)
            for fa, fc in zip(va.frames, vc.frames)
        )
    else:
        assert not frames_equal(a, c)
    for vb, va in zip(before.videos, scenes.videos):
        for fb, fa in zip(vb.frames, va.frames):
            for name in ("keypoints", "track_ids", "boxes", "head_boxes", "scores"):
                np.testing.assert_array_equal(getattr(fb, name), getattr(fa, name), err_msg=name)
    assert [len(v.frames) for v in a.videos] == [len(v.frames) for v in scenes.videos]
    indices = [[f.index for f in v.frames] for v in scenes.videos]
    assert [[f.index for f in v.frames] for v in a.videos] == indices


def test_videos_are_seeded_independently(scenes):
    first = perturb(Dataset(scenes.videos[:2]), PREDICTED, seed=2)
    other = Dataset([scenes.videos[3], scenes.videos[1]])  # video 0 replaced
    second = perturb(other, PREDICTED, seed=2)
    assert frames_equal(Dataset(first.videos[1:]), Dataset(second.videos[1:]))
    assert not frames_equal(Dataset(first.videos[:1]), Dataset(second.videos[:1]))
    # the same video at another index draws other noise
    twice = perturb(Dataset([scenes.videos[0], scenes.videos[0]]), PREDICTED, seed=2)
    assert not frames_equal(Dataset(twice.videos[:1]), Dataset(twice.videos[1:]))


def test_identity_setting_returns_ground_truth_keypoints(scenes):
    pred = perturb(scenes, SETTINGS[0], keep_track_ids=True)
    for gv, pv in zip(scenes.videos, pred.videos):
        for gf, pf in zip(gv.frames, pv.frames):
            present = (gf.keypoints[..., 2] > 0).any(1)
            assert sorted(pf.track_ids.tolist()) == sorted(gf.track_ids[present].tolist())
            truth = by_track(gf)
            for t, kp in by_track(pf).items():
                vis = truth[t][:, 2] > 0
                np.testing.assert_array_equal(kp[vis, :2], truth[t][vis, :2])
                np.testing.assert_array_equal(kp[:, 2], vis.astype(float))
            assert np.all(pf.scores == 1) and np.isnan(pf.head_boxes).all()


@pytest.mark.parametrize("setting", SETTINGS)
def test_track_ids_removed_unless_kept(scenes, setting):
    plain = perturb(scenes, setting, seed=1)
    assert all((f.track_ids == -1).all() for v in plain.videos for f in v.frames)
    kept = perturb(scenes, setting, seed=1, keep_track_ids=True)
    gt_ids = {int(t) for v in scenes.videos for f in v.frames for t in f.track_ids}
    ids = np.concatenate([f.track_ids for v in kept.videos for f in v.frames])
    assert set(ids[ids >= 0].tolist()) <= gt_ids and (ids >= 0).any()
    # the ids are the only difference: same keypoints, in the same order
    assert all(
        np.array_equal(fa.keypoints, fb.keypoints)
        for va, vb in zip(plain.videos, kept.videos)
        for fa, fb in zip(va.frames, vb.frames)
    )


def test_gt_boxes_keep_every_person_and_predicted_boxes_add_detector_errors(scenes):
    gt_boxes = perturb(scenes, GT_BOXES, seed=3, keep_track_ids=True)
    predicted = perturb(scenes, PREDICTED, seed=3, keep_track_ids=True)
    missed = false_pos = total = 0
    for gv, av, bv in zip(scenes.videos, gt_boxes.videos, predicted.videos):
        for gf, af, bf in zip(gv.frames, av.frames, bv.frames):
            truth = sorted(gf.track_ids[(gf.keypoints[..., 2] > 0).any(1)].tolist())
            assert sorted(af.track_ids.tolist()) == truth  # nobody missed, nothing added
            assert np.array_equal(
                af.boxes,
                gf.boxes[np.argsort(gf.track_ids)][np.searchsorted(np.sort(gf.track_ids), af.track_ids)],
                equal_nan=True,
            )
            found = bf.track_ids[bf.track_ids >= 0]
            assert len(set(found.tolist())) == len(found) and set(found.tolist()) <= set(truth)
            missed += len(truth) - len(found)
            false_pos += int((bf.track_ids < 0).sum())
            total += len(truth)
            np.testing.assert_allclose(bf.boxes, keypoint_boxes(bf.keypoints))
            assert np.isnan(bf.head_boxes).all() and np.isnan(af.head_boxes).all()
    assert 0.005 < missed / total < 0.2
    assert false_pos > 0


def test_gt_boxes_never_lose_a_person_to_dropped_joints():
    data, _ = template_scene(heights=(100.0,) * 3, frames=5)
    for f in data.videos[0].frames:
        f.keypoints[:, 5:, :] = 0  # head and shoulders only
    cfg = PerturbConfig(drop_prob=1.0, hallucinate_prob=0.0)
    pred = perturb(data, GT_BOXES, seed=0, config=cfg, keep_track_ids=True)
    for f in pred.videos[0].frames:
        assert sorted(f.track_ids.tolist()) == [0, 1, 2]
        assert ((f.keypoints[..., 2] > 0).sum(1) == 1).all()  # everything dropped but one joint


def test_misses_come_in_runs_and_hit_small_occluded_people_more():
    data, _ = template_scene(heights=(40.0,) * 4 + (400.0,) * 4, frames=60, videos=3, hide=0.0)
    cfg = PerturbConfig(
        miss_prob=0.03,
        miss_run_length=4.0,
        miss_size_ref=0.03,
        miss_size_power=1.0,
        duplicate_prob=0.0,
        clutter_rate=0.0,
    )
    pred = perturb(data, PREDICTED, seed=0, config=cfg, keep_track_ids=True)
    present = np.array(
        [
            [np.isin(np.arange(8) + 100 * vi, f.track_ids) for f in v.frames]
            for vi, v in enumerate(pred.videos)
        ]
    )  # [V, F, 8]
    small, large = 1 - present[..., :4].mean(), 1 - present[..., 4:].mean()
    assert small > 3 * large and small > 0.05
    runs = [
        len(r)
        for track in present.transpose(0, 2, 1).reshape(-1, 60)
        for r in np.split(np.arange(60), np.flatnonzero(np.diff(track.astype(int))) + 1)
        if not track[r[0]]
    ]
    assert np.mean(runs) > 2.0  # geometric, mean 4
    # occlusion: the same sizes with half the joints unannotated are missed more
    occluded, _ = template_scene(heights=(40.0,) * 4 + (400.0,) * 4, frames=60, videos=3, hide=0.5)
    pred_occ = perturb(occluded, PREDICTED, seed=0, config=cfg, keep_track_ids=True)
    n = sum(f.num_poses for v in pred.videos for f in v.frames)
    n_occ = sum(f.num_poses for v in pred_occ.videos for f in v.frames)
    assert n_occ < n


@pytest.mark.parametrize("setting", [GT_BOXES, PREDICTED])
def test_confidence_falls_with_error(scenes, setting):
    err, conf, _ = paired_errors(scenes, perturb(scenes, setting, seed=0, keep_track_ids=True))
    assert len(err) > 1000
    rho = spearmanr(conf, err).statistic
    assert rho < -0.3, rho
    # A.3 / Table 4: a confidence threshold keeps the good keypoints, drops the bad ones
    correct = err <= 0.5
    assert correct[conf >= 0.5].mean() > correct.mean() + 0.03
    assert (~correct)[conf < 0.5].sum() > (~correct)[conf >= 0.5].sum()


def test_jitter_scales_with_person_size():
    cfg = PerturbConfig(**NO_DETECTOR_ERRORS, gross_prob={g: 0.0 for g in JOINT_GROUPS}, swap_prob=0.0)
    pixel_err = []
    for height in (60.0, 240.0):
        data, _ = template_scene(heights=(height,) * 3, frames=40, videos=2)
        err, _, _ = paired_errors(data, perturb(data, GT_BOXES, seed=7, config=cfg, keep_track_ids=True))
        head = 0.6 * np.hypot(0.10, 0.13) * height
        pixel_err.append(err * head)
    ratio = np.median(pixel_err[1]) / np.median(pixel_err[0])
    assert 3.3 < ratio < 4.7, ratio  # heights differ 4x
    # in head sizes the spread is the configured one: median of a 2-D Gaussian's radius = 1.18 σ
    sigma = cfg.per_joint("joint_sigma")
    assert 0.8 < np.median(pixel_err[0] / head * (240 / 60)) / (1.18 * sigma.mean()) < 1.25


def test_extremities_are_worse_than_the_torso(scenes):
    err, _, joint = paired_errors(scenes, perturb(scenes, GT_BOXES, seed=0, keep_track_ids=True))
    name = np.array(JOINTS)[joint]
    wrists_ankles = np.isin(name, ["left_wrist", "right_wrist", "left_ankle", "right_ankle"])
    shoulders = np.isin(name, ["left_shoulder", "right_shoulder"])
    assert np.median(err[wrists_ankles]) > 1.15 * np.median(err[shoulders])
    assert (err[wrists_ankles] > 0.5).mean() > (err[shoulders] > 0.5).mean()


def test_heavy_tails():
    data, _ = template_scene(heights=(150.0,) * 4, frames=50, videos=2)
    err, _, _ = paired_errors(data, perturb(data, GT_BOXES, seed=1, keep_track_ids=True))
    # a Gaussian with the median radius observed would almost never reach 5x it
    assert (err > 5 * np.median(err)).mean() > 0.02


def test_unannotated_joints_hallucinated_plausibly_with_low_confidence():
    data, truth = template_scene(heights=(200.0,) * 3, frames=40, videos=2, hide=0.3)
    pred = perturb(data, GT_BOXES, seed=0, keep_track_ids=True)
    cfg = PerturbConfig()
    hall_err, hall_conf, vis_conf, hidden = [], [], [], 0
    for v, (gv, pv) in enumerate(zip(data.videos, pred.videos)):
        for t, (gf, pf) in enumerate(zip(gv.frames, pv.frames)):
            kp = by_track(pf)
            for i, tid in enumerate(gf.track_ids):
                inv = gf.keypoints[i, :, 2] == 0
                hidden += inv.sum()
                out = kp[int(tid)]
                h = inv & (out[:, 2] > 0)
                hall_err.append(np.linalg.norm(out[h, :2] - truth[v][t, i, h], axis=-1))
                hall_conf.append(out[h, 2])
                vis_conf.append(out[~inv & (out[:, 2] > 0), 2])
    hall_err, hall_conf, vis_conf = map(np.concatenate, (hall_err, hall_conf, vis_conf))
    assert abs(len(hall_err) / hidden - cfg.hallucinate_prob) < 0.05
    head = 0.6 * np.hypot(0.10, 0.13) * 200
    assert np.median(hall_err) < 1.5 * head  # near where the joint really is
    assert np.median(hall_conf) < np.median(vis_conf) - 0.2


def test_false_positives_score_lower_and_poses_are_listed_by_score(scenes):
    pred = perturb(scenes, PREDICTED, seed=0, keep_track_ids=True)
    ids = np.concatenate([f.track_ids for v in pred.videos for f in v.frames])
    scores = np.concatenate([f.scores for v in pred.videos for f in v.frames])
    assert scores[ids < 0].mean() < scores[ids >= 0].mean() - 0.15
    assert ((scores > 0) & (scores < 1)).all()
    assert all((np.diff(f.scores) <= 0).all() for v in pred.videos for f in v.frames)
    kp = np.concatenate([f.keypoints for v in pred.videos for f in v.frames])
    assert ((kp[..., 2] > 0).any(1)).all()  # no empty pose is output
    assert np.isfinite(kp[kp[..., 2] > 0]).all()


def test_predicted_boxes_share_the_keypoint_draws_of_gt_boxes(scenes):
    cfg = PerturbConfig(**NO_DETECTOR_ERRORS)
    a = perturb(scenes, GT_BOXES, seed=9, config=cfg, keep_track_ids=True)
    b = perturb(scenes, PREDICTED, seed=9, config=cfg, keep_track_ids=True)
    for va, vb in zip(a.videos, b.videos):
        for fa, fb in zip(va.frames, vb.frames):
            np.testing.assert_array_equal(fa.keypoints, fb.keypoints)
            np.testing.assert_array_equal(fa.track_ids, fb.track_ids)


def test_person_scale_prefers_head_box_then_person_box_then_keypoints():
    kp = np.zeros((3, NUM_JOINTS, 3))
    kp[:, 0] = [0, 0, 1]
    kp[:, 14] = [30, 40, 1]  # keypoint box 30 x 40, diagonal 50
    boxes = np.array([[0, 0, 60, 80], [0, 0, 60, 80], [np.nan] * 4])
    heads = np.array([[0, 0, 3, 4], [np.nan] * 4, [np.nan] * 4])
    np.testing.assert_allclose(person_scale(kp, boxes, heads), [0.6 * 5, 0.1 * 100, 0.1 * 50])
    single = kp[2:].copy()
    single[:, 14] = 0  # one keypoint: no size at all
    assert np.isnan(person_scale(single, boxes[2:], heads[2:])).all()


def test_fit_template_recovers_a_similarity_and_its_mirror():
    rng = np.random.default_rng(0)
    a = 150 * np.exp(1j * rng.uniform(-0.5, 0.5, 6))
    b = rng.uniform(100, 500, 6) + 1j * rng.uniform(100, 500, 6)
    mirror = np.array([False, True] * 3)
    t = np.where(mirror[:, None], -TEMPLATE[:, 0], TEMPLATE[:, 0]) + 1j * TEMPLATE[:, 1]
    z = a[:, None] * t + b[:, None]
    kp = np.stack([z.real, z.imag, np.ones_like(z.real)], -1)
    kp[:, :6, 2] = 0  # upper body unannotated
    kp[:, :6, :2] = 0
    fa, fb, fm = fit_template(kp, np.abs(a) * 0.6 * np.hypot(0.10, 0.13))
    np.testing.assert_allclose(fa, a, rtol=1e-9)
    np.testing.assert_allclose(fb, b, rtol=1e-9)
    np.testing.assert_array_equal(fm, mirror)
    # one keypoint: the upright template of the given head size, anchored there
    one = np.zeros((1, NUM_JOINTS, 3))
    one[0, 1] = [300, 200, 1]
    fa, fb, _ = fit_template(one, np.array([9.0]))
    np.testing.assert_allclose(fa * TEMPLATE[1, 1] * 1j + fb, 300 + 200j)


# -- bad input and the command line --------------------------------------------------------------


def test_unknown_frame_size_and_missing_boxes_fall_back():
    data, _ = template_scene(heights=(100.0, 200.0), frames=10, size=(float("nan"), float("nan")))
    for f in data.videos[0].frames:
        f.head_boxes[:] = np.nan
        f.boxes[:] = np.nan
    pred = perturb(data, PREDICTED, seed=0, config=PerturbConfig(clutter_rate=3.0))
    kp = np.concatenate([f.keypoints for f in pred.videos[0].frames])
    assert len(kp) > 20 and np.isfinite(kp).all()
    assert all(np.isfinite(f.boxes).all() and np.isfinite(f.scores).all() for f in pred.videos[0].frames)


def test_bad_input_names_file_frame_and_field():
    data, _ = template_scene(frames=3)
    data.videos[0].frames[2].keypoints[0, 7, 0] = np.nan
    where = r"memory/video0\.json: frame 2, pose 0: field 'keypoints', joint left_wrist"
    with pytest.raises(ValueError, match=where):
        perturb(data, GT_BOXES)
    with pytest.raises(ValueError, match="seed"):
        perturb(data, GT_BOXES, seed=-1)


def test_config_is_validated():
    with pytest.raises(ValueError, match="joint_sigma"):
        PerturbConfig(joint_sigma={"head": 0.1})
    with pytest.raises(ValueError, match="miss_prob"):
        PerturbConfig(miss_prob=1.5)
    with pytest.raises(ValueError, match="box_shift"):
        PerturbConfig(box_shift=-0.1)
    assert replace(PerturbConfig(), clutter_rate=0.0).clutter_rate == 0.0


@pytest.mark.slow
def test_command_line_writes_and_evaluates(tmp_path, capsys):
    from keytrack.io import read_dataset

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--videos",
            "2",
            "--synth-seed",
            "1",
            "--setting",
            SETTINGS[0],
            "--out",
            str(tmp_path),
            "--evaluate",
            "--thresholds",
            "0",
            "0.5",
        ]
    )
    assert run(args) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith(f"| {SETTINGS[0]}")]
    assert len(rows) == 2 and all(line.rstrip(" |").endswith("100.0") for line in rows)
    back = read_dataset(tmp_path / SETTINGS[0])
    gt = generate_dataset(2, 1)
    annotated = sum(int((f.keypoints[..., 2] > 0).any(1).sum()) for v in gt.videos for f in v.frames)
    assert back.num_poses == annotated


def test_oracle_ids_give_false_positives_fresh_ids(scenes):
    pred = with_oracle_track_ids(perturb(scenes, PREDICTED, seed=0, keep_track_ids=True))
    for v in pred.videos:
        for f in v.frames:
            assert (f.track_ids >= 0).all() and len(set(f.track_ids.tolist())) == f.num_poses
