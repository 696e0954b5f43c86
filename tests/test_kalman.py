"""The tracker's constant-velocity Kalman motion (keytrack.tracking.kalman, ``motion="kalman"``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keytrack.poses import Dataset, Frame, Video
from keytrack.skeleton import NUM_JOINTS
from keytrack.tracking import MOTIONS, OKSScorer, Tracker, drop_track_ids, subsample
from keytrack.tracking.kalman import KalmanTracks

KEYTRACK = str(Path(sys.executable).parent / "keytrack")


def joint(x: float) -> np.ndarray:
    """A pose ``[1, 15, 3]`` with one visible joint at ``(x, 5)``: its observation is ``x``."""
    kp = np.zeros((1, NUM_JOINTS, 3))
    kp[0, 0] = [x, 5.0, 1.0]
    return kp


def observed(points: list[tuple[int, float]], track: int = 7) -> KalmanTracks:
    """A filter (default noises R = q = 1) that saw one track at ``(frame, x)`` ``points``."""
    f = KalmanTracks()
    for index, x in points:
        f.observe(index, [track], joint(x))
    return f


def reference_step(mean, cov, z, r=1.0, q=1.0):
    """One predict / update of the 1-D constant-velocity filter, written out by hand."""
    (p, v), ((a, b), (_, d)) = mean, cov
    p, a, b, d = p + v, a + 2 * b + d + q / 4, b + d + q / 2, d + q  # F P Fᵀ + q G Gᵀ
    s = a + r
    k0, k1 = a / s, b / s
    innovation = z - p
    return (p + k0 * innovation, v + k1 * innovation), ((a - k0 * a, b - k0 * b), (b - k0 * b, d - k1 * b))


def test_constant_velocity_track_hand_computed():
    f = observed([(0, 0.0), (1, 10.0), (2, 20.0)])
    # Two-point initialisation at frame 1: position 10, velocity 10, P = R [[1, 1], [1, 2]]. Frame 2:
    # P⁻ = F P Fᵀ + Q = [[5, 3], [3, 2]] + [[1/4, 1/2], [1/2, 1]] = [[5.25, 3.5], [3.5, 3]];
    # S = 6.25, K = [0.84, 0.56]; the observation 20 is predicted exactly (innovation 0).
    np.testing.assert_allclose(f.mean[0, :, 0], [20.0, 10.0])
    np.testing.assert_allclose(f.cov[0], [[0.84, 0.56], [0.56, 1.04]])
    assert f.predict([7], 3)[0, 0] == pytest.approx(30.0)
    assert f.predict([7], 4)[0, 0] == pytest.approx(40.0)  # one missed frame
    np.testing.assert_allclose(f.predict([7], 4)[:, 1], [5.0])  # y stays
    # The predictions change nothing; an observation off the line moves by the gain K.
    g = observed([(0, 0.0), (1, 10.0), (2, 21.0)])
    np.testing.assert_allclose(g.mean[0, :, 0], [20.0 + 0.84, 10.0 + 0.56])
    np.testing.assert_allclose(g.velocity([7]), [[10.56, 0.0]])
    np.testing.assert_allclose(g.velocity([8]), [[0.0, 0.0]])  # no filter: 0


def test_first_and_second_observations():
    f = observed([(0, 100.0)])
    np.testing.assert_allclose(f.predict([7], 3), [[100.0, 5.0]])  # velocity 0 until the second
    f.observe(3, [7], joint(130.0))  # seen again 3 timesteps later: velocity = displacement / gap
    np.testing.assert_allclose(f.velocity([7]), [[10.0, 0.0]])
    np.testing.assert_allclose(f.cov[0], [[1.0, 1 / 3], [1 / 3, 2 / 9]])
    with pytest.raises(ValueError, match="not after"):
        f.observe(3, [7], joint(131.0))


def test_missed_frame_recovered_by_observation_centric_re_update():
    # 0, 10, 20 at frames 0..2, missed at 3, seen at 50 at frame 4: 15 per timestep over the gap.
    f = observed([(0, 0.0), (1, 10.0), (2, 20.0), (4, 50.0)])
    start = ((20.0, 10.0), ((0.84, 0.56), (0.56, 1.04)))
    # ORU: the virtual observation 35 at frame 3, then 50 at frame 4.
    oru = reference_step(*reference_step(*start, 35.0), 50.0)
    np.testing.assert_allclose(f.mean[0, :, 0], oru[0])
    np.testing.assert_allclose(f.cov[0], oru[1])
    # First step by hand: P⁻ = [[3.25, 2.1], [2.1, 2.04]], S = 4.25, innovation 35 - 30 = 5.
    (p, v), _ = reference_step(*start, 35.0)
    assert (p, v) == pytest.approx((30 + 5 * 3.25 / 4.25, 10 + 5 * 2.1 / 4.25))
    # Not the coasted filter (predicted through frame 3, updated once at frame 4); in this linear
    # filter both take the velocity from the assumed 10 to near the observed 15 per timestep.
    mean, cov = start
    (p, v), ((a, b), (_, d)) = (mean[0] + mean[1], mean[1]), cov
    coasted_cov = ((a + 2 * b + d + 0.25, b + d + 0.5), (b + d + 0.5, d + 1.0))
    coasted = reference_step((p, v), coasted_cov, 50.0)
    assert abs(f.velocity([7])[0, 0] - coasted[0][1]) > 1e-3
    assert f.velocity([7])[0, 0] == pytest.approx(14.3178147, abs=1e-6)
    assert coasted[0][1] == pytest.approx(14.3202980, abs=1e-6)
    # A track that keeps its speed over the gap keeps it exactly.
    g = observed([(0, 0.0), (1, 10.0), (2, 20.0), (5, 50.0)])
    np.testing.assert_allclose(g.mean[0, :, 0], [50.0, 10.0])


def test_vectorised_over_tracks_with_forget():
    f = KalmanTracks()
    f.observe(0, [1, 2], np.concatenate([joint(0.0), joint(100.0)]))
    f.observe(1, [2, 1, 3], np.concatenate([joint(90.0), joint(10.0), joint(500.0)]))
    f.observe(2, [1, 2], np.concatenate([joint(20.0), joint(80.0)]))
    np.testing.assert_allclose(f.predict([2, 1, 3], 3)[:, 0], [70.0, 30.0, 500.0])
    f.forget(2)  # track 3 last seen at frame 1
    assert sorted(f.ids.tolist()) == [1, 2]
    with pytest.raises(KeyError, match="track 3"):
        f.predict([3], 3)


def test_observation_follows_the_joints_seen_in_both_poses():
    # The centre jumps when a joint appears; the observation moves by the common joints' shift.
    f = observed([(0, 0.0)])
    kp = joint(4.0)
    kp[0, 1] = [400.0, 5.0, 1.0]  # a joint that was not visible before
    z = f.observe(1, [7], kp)
    np.testing.assert_allclose(z, [[4.0, 5.0]])


# -- in the tracker -------------------------------------------------------------------------------

TEMPLATE = np.array(
    [[0, -150], [0, -125], [0, -180], [-30, -115], [30, -115], [-40, -70], [40, -70], [-45, -25]]
    + [[45, -25], [-15, 0], [15, 0], [-15, 50], [15, 50], [-15, 100], [15, 100]],
    dtype=np.float64,
)


def body(x: float, y: float = 300.0) -> np.ndarray:
    kp = np.zeros((NUM_JOINTS, 3))
    kp[:, :2] = TEMPLATE + [x, y]
    kp[:, 2] = 1.0
    return kp


def test_kalman_keeps_ids_of_people_crossing_at_frame_stride_4():
    # A walks right and B left at 15 px per frame; they cross at frame 10. At frame stride 4 they
    # move 60 px per timestep and at frame 12 each stands where the other stood at frame 8.
    # B is missed at frame 16 (its filter predicts it over the gap); the detector's order changes.
    rng = np.random.default_rng(0)
    frames, persons = [], {}
    for t in range(24):
        who = [p for p in (0, 1) if not (p == 1 and t == 16)]
        who = [who[i] for i in rng.permutation(len(who))]
        kp = np.stack([body(200 + 15 * t, 300) if p == 0 else body(500 - 15 * t, 306) for p in who])
        frames.append(Frame.from_poses(t, kp, track_ids=np.array(who)))
        if t % 4 == 0:
            persons[t // 4] = who  # the subsampled frame's index
    v = subsample(Dataset([Video("v", frames, 1280, 720)]), 4).videos[0]
    assert len(v.frames) == 6
    assert "kalman" in MOTIONS
    for motion, swaps in (("none", True), ("kalman", False)):
        tracked = Tracker(OKSScorer(), delta=4, match_threshold=0.05, motion=motion).track_video(v)
        ids: dict[int, set[int]] = {}
        for f in tracked.frames:
            for p, tid in zip(persons[f.index], f.track_ids.tolist()):
                ids.setdefault(p, set()).add(tid)
        assert (len(ids[0]) > 1 or len(ids[1]) > 1) == swaps, (motion, ids)
        if not swaps:
            assert ids[0] != ids[1]


def test_kalman_tracks_synthetic_data_without_touching_the_input():
    from keytrack.perturb import perturb
    from keytrack.synth import SynthConfig, generate_dataset

    gt = generate_dataset(2, seed=5, config=SynthConfig(frames_per_video=(10, 12)))
    pred = perturb(gt, "predicted_boxes_predicted_keypoints", seed=0)
    before = [f.keypoints.copy() for v in pred.videos for f in v.frames]
    for videos_at_once in (1, 2):
        out = Tracker(OKSScorer(), motion="kalman", nearest=2).track_dataset(pred, videos_at_once)
        assert all((f.track_ids >= 0).all() for v in out.videos for f in v.frames)
    assert all(
        np.array_equal(a, f.keypoints) for a, f in zip(before, [f for v in pred.videos for f in v.frames])
    )
    with pytest.raises(ValueError, match="unknown motion 'linear'.*kalman"):
        Tracker(OKSScorer(), motion="linear")


def test_keytrack_track_motion_kalman_console_script(tmp_path):
    from keytrack.io import read_dataset, write_posetrack18
    from keytrack.synth import SynthConfig, generate_dataset

    data = generate_dataset(2, seed=4, config=SynthConfig(frames_per_video=(6, 7)))
    write_posetrack18(data, tmp_path / "annotations" / "val")
    output = tmp_path / "out"
    args = ["--scorer", "oks", "--motion", "kalman", "--stride", "2", "--match-threshold", "0.2"]
    run = subprocess.run(
        [KEYTRACK, "track", *args, "--data", str(tmp_path), "--split", "val", "--out", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "motion kalman" in run.stdout
    written = read_dataset(output)
    inputs = subsample(drop_track_ids(read_dataset(tmp_path, split="val")), 2)
    expect = Tracker(OKSScorer(), motion="kalman", match_threshold=0.2).track_dataset(inputs)
    got = {v.name: [f.track_ids.tolist() for f in v.frames] for v in written.videos}
    assert got == {v.name: [f.track_ids.tolist() for f in v.frames] for v in expect.videos}
    assert sum(len(f.track_ids) for v in written.videos for f in v.frames) > 0


def test_keytrack_track_defaults_to_oks_with_kalman_at_its_tuned_threshold(tmp_path):
    """Without --scorer, --motion and --match-threshold: the default tracker (OKS + Kalman, Hungarian, σ
    scale 2) at its own tuned threshold, never a network's decision point; a network's default is 0.5;
    an explicit --scorer oks tracks as the paper does (greedy, COCO's σ) at OKS's tuned threshold."""
    import json

    from keytrack.cli import main
    from keytrack.io import read_dataset, write_posetrack18
    from keytrack.synth import SynthConfig, generate_dataset
    from keytrack.tracking.cli import (
        DEFAULT_MATCH_THRESHOLDS,
        DEFAULT_MOTION,
        DEFAULT_SCORER,
        DEFAULT_TRACKER,
        default_match_threshold,
    )

    assert (DEFAULT_SCORER, DEFAULT_MOTION) == ("oks", "kalman")
    assert default_match_threshold("oks", "kalman") == DEFAULT_MATCH_THRESHOLDS["oks", "kalman"] != 0.5
    assert default_match_threshold("pose_entailment", "velocity") == 0.5
    data = generate_dataset(2, seed=4, config=SynthConfig(frames_per_video=(6, 7)))
    write_posetrack18(data, tmp_path / "annotations" / "val")
    output = tmp_path / "out"
    assert main(["track", "--data", str(tmp_path), "--split", "val", "--out", str(output)]) == 0
    settings = json.loads((output / "keytrack.manifest").read_text())["settings"]
    threshold, scale = DEFAULT_TRACKER["match_threshold"], DEFAULT_TRACKER["oks_scale"]
    chosen = (settings["scorer"], settings["motion"], settings["match_threshold"])
    assert chosen == ("oks", "kalman", threshold)
    assert (settings["assignment"], settings["oks_scale"]) == ("hungarian", scale) and scale != 1
    inputs = drop_track_ids(read_dataset(tmp_path, split="val"))
    expect = Tracker(
        OKSScorer(scale=scale), motion="kalman", assignment="hungarian", match_threshold=threshold
    ).track_dataset(inputs)
    got = {v.name: [f.track_ids.tolist() for f in v.frames] for v in read_dataset(output).videos}
    assert got == {v.name: [f.track_ids.tolist() for f in v.frames] for v in expect.videos}
    # An explicit --scorer oks: the paper's greedy assignment and COCO's σ, at OKS + Kalman's tuned threshold.
    paper = tmp_path / "paper"
    argv = ["track", "--data", str(tmp_path), "--split", "val", "--out", str(paper), "--scorer", "oks"]
    assert main(argv) == 0
    settings = json.loads((paper / "keytrack.manifest").read_text())["settings"]
    assert (settings["assignment"], settings["oks_scale"]) == ("greedy", 1.0)
    assert settings["match_threshold"] == DEFAULT_MATCH_THRESHOLDS["oks", "kalman"]
