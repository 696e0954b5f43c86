"""Pose pair sampling (§3.1, §3.2) checked against a plain-Python enumeration."""

from __future__ import annotations

import numpy as np
import pytest

from keytrack.pairs import PairIndex, pose_centres, sample_pairs, split_videos
from keytrack.poses import Dataset, Frame, PoseTable, Video
from keytrack.skeleton import NUM_JOINTS


def _pose(cx: float, cy: float, visible: int = NUM_JOINTS) -> np.ndarray:
    """A pose whose visible keypoints are centred on (cx, cy)."""
    kp = np.zeros((NUM_JOINTS, 3))
    offsets = np.arange(NUM_JOINTS, dtype=np.float64) - NUM_JOINTS // 2  # sum 0: exact centres
    kp[:, 0] = cx + offsets
    kp[:, 1] = cy - offsets
    kp[:visible, 2] = 1.0
    if 0 < visible < NUM_JOINTS:  # re-centre the visible part exactly on (cx, cy)
        kp[:visible, 0] -= offsets[:visible].mean()
        kp[:visible, 1] += offsets[:visible].mean()
    return kp


def _random_table(rng: np.random.Generator, videos=3, frames=9, max_people=4) -> PoseTable:
    vids = []
    for v in range(videos):
        fr = []
        for f in sorted(rng.choice(frames + 3, size=frames, replace=False)):  # gaps in indices
            p = int(rng.integers(0, max_people + 1))
            kp = (
                np.stack(
                    [_pose(*rng.uniform(0, 100, 2), visible=int(rng.integers(0, 3)) * 7) for _ in range(p)]
                )
                if p
                else np.zeros((0, NUM_JOINTS, 3))
            )
            tid = rng.integers(-1, 5, size=p)
            fr.append(Frame.from_poses(int(f), kp, track_ids=tid))
        vids.append(Video(f"v{v}", fr, 100.0, 100.0))
    return Dataset(vids).table()


def _reference(table: PoseTable, delta: int, nearest: int | None) -> list[tuple[int, int, int, int]]:
    """(current, delta, previous, label) by direct enumeration, sorted as sample_pairs sorts."""
    ok = (table.track_ids >= 0) & (table.keypoints[..., 2] > 0).any(-1)
    centres = pose_centres(table.keypoints)
    out = []
    for i in range(len(table)):
        if not ok[i]:
            continue
        for d in range(1, delta + 1):
            cands = [
                j
                for j in range(len(table))
                if ok[j] and table.video[j] == table.video[i] and table.frame[j] == table.frame[i] - d
            ]
            if nearest is not None:
                cands.sort(key=lambda j: (float(((centres[i] - centres[j]) ** 2).sum()), j))
                cands = cands[:nearest]
            out += [(i, d, j, int(table.track_ids[i] == table.track_ids[j])) for j in cands]
    return sorted(out)


def _as_tuples(p: PairIndex) -> list[tuple[int, int, int, int]]:
    return list(zip(p.current.tolist(), p.delta.tolist(), p.previous.tolist(), p.label.tolist()))


def _two_people_video() -> Dataset:
    """Video 0: persons 7 and 9 in frames 0..3, frame 4 missing, person 7 alone in frame 5."""
    frames = [
        Frame.from_poses(f, np.stack([_pose(10 + f, 10), _pose(80, 80 - f)]), track_ids=[7, 9])
        for f in range(4)
    ]
    frames.append(Frame.from_poses(5, _pose(15, 10)[None], track_ids=[7]))
    other = Video(
        "other", [Frame.from_poses(f, _pose(10, 10)[None], track_ids=[7]) for f in range(3)], 100, 100
    )
    return Dataset([Video("two", frames, 100, 100), other])


def test_hand_enumerated_pairs():
    table = _two_people_video().table()
    pairs = sample_pairs(table, delta=2)
    # rows: video 0: frame f has rows 2f (id 7), 2f+1 (id 9) for f < 4; row 8 = frame 5, id 7.
    # video 1: rows 9, 10, 11 = frames 0, 1, 2 (id 7, never paired with video 0's id 7).
    expected = []
    for f in range(1, 4):
        for cur in (2 * f, 2 * f + 1):
            for d in (1, 2):
                if f - d >= 0:
                    expected += [
                        (cur, d, 2 * (f - d), int(cur % 2 == 0)),
                        (cur, d, 2 * (f - d) + 1, int(cur % 2 == 1)),
                    ]
    expected += [(8, 2, 6, 1), (8, 2, 7, 0)]  # frame 5 - 2 = frame 3; frame 4 is missing
    expected += [(10, 1, 9, 1), (11, 1, 10, 1), (11, 2, 9, 1)]
    assert _as_tuples(pairs) == sorted(expected)
    assert pairs.current.dtype == pairs.previous.dtype == pairs.delta.dtype == pairs.label.dtype == np.int64
    assert len(pairs) == len(expected)
    assert pairs.num_matching == sum(e[3] for e in expected)


def test_unknown_tracks_and_empty_poses_are_skipped():
    kp = np.stack([_pose(10, 10), _pose(50, 50), _pose(90, 90, visible=0)])
    frames = [Frame.from_poses(f, kp, track_ids=[1, -1, 3]) for f in range(2)]
    pairs = sample_pairs(Dataset([Video("v", frames, 100, 100)]).table(), delta=1)
    assert _as_tuples(pairs) == [(3, 1, 0, 1)]


def test_nearest_keeps_what_the_tracker_sees():
    # Frame 0: person 1 far away at x=90, persons 2, 3 near x=10. Frame 1: person 1 at x=10.
    f0 = Frame.from_poses(0, np.stack([_pose(90, 50), _pose(12, 50), _pose(8, 50)]), track_ids=[1, 2, 3])
    f1 = Frame.from_poses(1, _pose(10, 50)[None], track_ids=[1])
    table = Dataset([Video("v", [f0, f1], 100, 100)]).table()
    # Equidistant candidates (rows 1 and 2): the lower row wins the tie; the matching pose (row 0)
    # is the farthest and is not kept with n = 1 or 2.
    assert _as_tuples(sample_pairs(table, delta=1, nearest=1)) == [(3, 1, 1, 0)]
    assert _as_tuples(sample_pairs(table, delta=1, nearest=2)) == [(3, 1, 1, 0), (3, 1, 2, 0)]
    assert _as_tuples(sample_pairs(table, delta=1, nearest=5)) == [(3, 1, 0, 1), (3, 1, 1, 0), (3, 1, 2, 0)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("delta,nearest", [(1, None), (4, None), (3, 1), (4, 2)])
def test_matches_enumeration_on_random_tables(seed, delta, nearest):
    table = _random_table(np.random.default_rng(seed))
    pairs = sample_pairs(table, delta=delta, nearest=nearest)
    assert _as_tuples(pairs) == _reference(table, delta, nearest)


def test_order_of_table_rows_does_not_matter():
    table = _random_table(np.random.default_rng(11))
    perm = np.random.default_rng(0).permutation(len(table))
    shuffled = PoseTable(
        table.keypoints[perm],
        table.track_ids[perm],
        table.boxes[perm],
        table.video[perm],
        table.frame[perm],
        table.frame_size[perm],
    )
    a = sample_pairs(table, delta=3, nearest=2)
    b = sample_pairs(shuffled, delta=3, nearest=2)  # shuffled row r is original row perm[r]
    assert sorted(zip(perm[b.current], b.delta, perm[b.previous], b.label)) == sorted(_as_tuples(a))


def test_empty_and_bad_inputs():
    assert len(sample_pairs(Dataset([]).table())) == 0
    table = _two_people_video().table()
    with pytest.raises(ValueError, match="delta"):
        sample_pairs(table, delta=0)
    with pytest.raises(ValueError, match="nearest"):
        sample_pairs(table, nearest=0)
    broken = PoseTable(
        table.keypoints, table.track_ids[:-1], table.boxes, table.video, table.frame, table.frame_size
    )
    with pytest.raises(ValueError, match="track_ids"):
        sample_pairs(broken)


def test_pose_centres_use_visible_keypoints_only():
    kp = np.stack([_pose(30, 40), _pose(60, 20, visible=5), _pose(0, 0, visible=0)])
    c = pose_centres(kp)
    np.testing.assert_allclose(c[:2], [[30, 40], [60, 20]])
    assert np.isnan(c[2]).all()


def test_split_videos():
    train, val = split_videos(20, 0.25, seed=3)
    assert len(val) == 5 and len(train) == 15
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(20))
    again = split_videos(20, 0.25, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    others = {tuple(split_videos(20, 0.25, seed=s)[1]) for s in range(5)}
    assert len(others) > 1
    for n in (2, 3):
        tr, va = split_videos(n, 0.01, seed=0)
        assert len(tr) >= 1 and len(va) >= 1
        tr, va = split_videos(n, 0.99, seed=0)
        assert len(tr) >= 1 and len(va) >= 1
    assert [len(x) for x in split_videos(1, 0.5, seed=0)] == [1, 0]
    assert [len(x) for x in split_videos(6, 0.0, seed=0)] == [6, 0]
    with pytest.raises(ValueError, match="val_fraction"):
        split_videos(5, 1.0, seed=0)


def test_pose_motion_is_the_mean_shift_of_joints_seen_in_both_poses():
    from keytrack.pairs import pose_motion

    past = np.zeros((2, NUM_JOINTS, 3))
    past[:, :, :2] = np.arange(NUM_JOINTS)[:, None] * 10.0
    past[:, :5, 2] = 1.0  # joints 0-4 visible
    now = past.copy()
    now[:, :, 0] += 12.0  # everything moved 12 px right over 3 frames
    now[0, 10, 2] = 1.0  # joint 10 appears far below: not motion
    now[1, :5, 2] = 0.0  # no joint seen in both: the centres' change
    now[1, 5:7, 2] = 1.0
    v = pose_motion(now, past, np.array([3, 2]))
    assert np.allclose(v[0], [4.0, 0.0])
    centre_now, centre_past = now[1, 5:7, :2].mean(0), past[1, :5, :2].mean(0)
    assert np.allclose(v[1], (centre_now - centre_past) / 2)
