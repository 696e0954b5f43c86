"""Pose pair tokens (§3.2, Eq. 1-3, Table 3) checked against tokens worked out by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from keytrack.bench_tokenize import random_table
from keytrack.cli import main
from keytrack.pairs import sample_pairs
from keytrack.poses import Dataset, Frame, PoseTable, Video
from keytrack.skeleton import NUM_JOINTS
from keytrack.tokenize import TokenConfig, TokenizeError, tokenize_pairs, tokenize_table

ALL = TokenConfig(relative_position=True)


def _pose(points: dict[int, tuple[float, float, float]]) -> torch.Tensor:
    """[15, 3] keypoints; joints not given are invisible (c = 0) at an arbitrary spot."""
    kp = torch.tensor([[123.0, 45.0, 0.0]] * NUM_JOINTS, dtype=torch.float64)
    for j, xyc in points.items():
        kp[j] = torch.tensor(xyc, dtype=torch.float64)
    return kp


def _hand_pairs():
    """Two pairs whose tokens are worked out by hand below.

    Pair A: 240 × 180 frame (10 px cells on the 24 × 18 grid), Δ = 3.
    Pair B: 480 × 360 frame (20 px cells), Δ = 1.
    """
    cur_a = _pose(
        {
            0: (5, 5, 1),
            1: (235, 175, 0.3),
            2: (100, 50, 1),
            3: (-20, 300, 1),
            4: (19.99, 10, 1),
            5: (80.01, 0, 0.9),
            6: (50, 50, -1.0),
        }
    )  # c <= 0: invisible
    prev_a = _pose({0: (240, 0, 1), 5: (60, 90, 1)})
    cur_b = _pose(
        {
            0: (100, 90, 1),
            1: (140, 90, 1),
            2: (120, 30, 1),
            3: (120, 150, 1),
            4: (-200, 90, 1),
            5: (440, 90, 1),
        }
    )
    prev_b = _pose({14: (240, 180, 1)})
    return (
        torch.stack([cur_a, cur_b]),
        torch.stack([prev_a, prev_b]),
        torch.tensor([[240.0, 180.0], [480.0, 360.0]]),
        torch.tensor([3, 1]),
    )


def _row(values: dict[int, int]) -> list[int]:
    """A 30-token row: zero except at the given sequence positions."""
    row = [0] * (2 * NUM_JOINTS)
    for i, v in values.items():
        row[i] = v
    return row


P = NUM_JOINTS  # offset of the earlier pose's tokens in the sequence


def test_tokens_by_hand():
    tokens = tokenize_pairs(*_hand_pairs(), ALL)
    assert set(tokens) == {"position", "type", "segment", "relative", "mask"}
    # Position = column + 24 * row on the frame's grid, clamped:
    # A current: (5,5)->(0,0)=0; (235,175)->(23,17)=431; (100,50)->(10,5)=130; (-20,300)->(0,17)=408;
    #            (19.99,10)->(1,1)=25; (80.01,0)->(8,0)=8.
    # A earlier: (240,0)->(23,0)=23; (60,90)->(6,9)=222.
    # B current (20 px cells): (100,90)->(5,4)=101; (140,90)->(7,4)=103; (120,30)->(6,1)=30;
    #            (120,150)->(6,7)=174; (-200,90)->(0,4)=96; (440,90)->(22,4)=118.
    # B earlier: (240,180)->(12,9)=228.
    assert tokens["position"].tolist() == [
        _row({0: 0, 1: 431, 2: 130, 3: 408, 4: 25, 5: 8, P + 0: 23, P + 5: 222}),
        _row({0: 101, 1: 103, 2: 30, 3: 174, 4: 96, 5: 118, P + 14: 228}),
    ]
    # Relative: offset from the pose centre in cells, centre at cell (12, 9).
    # A current centre (70, 90): offsets (-6.5,-8.5)->(5,0)=5; (16.5,8.5)->(23,17)=431; (3,-4)->(15,5)=135;
    #   (-9,21)->(3,17)=411; (-5.001,-8)->(6,1)=30; (1.001,-9)->(13,0)=13.
    # A earlier centre (150, 45): (9,-4.5)->(21,4)=117; (-9,4.5)->(3,13)=315.
    # B current centre (120, 90): (-1,0)->(11,9)=227; (1,0)->(13,9)=229; (0,-3)->(12,6)=156;
    #   (0,3)->(12,12)=300; (-16,0)->(0,9)=216; (16,0)->(23,9)=239.  B earlier: its own centre -> 228.
    assert tokens["relative"].tolist() == [
        _row({0: 5, 1: 431, 2: 135, 3: 411, 4: 30, 5: 13, P + 0: 117, P + 5: 315}),
        _row({0: 227, 1: 229, 2: 156, 3: 300, 4: 216, 5: 239, P + 14: 228}),
    ]
    assert tokens["type"].tolist() == [list(range(15)) * 2] * 2
    assert tokens["segment"].tolist() == [[0] * 15 + [3] * 15, [0] * 15 + [1] * 15]
    assert tokens["mask"].tolist() == [
        [True] * 6 + [False] * 9 + [True] + [False] * 4 + [True] + [False] * 9,
        [True] * 6 + [False] * 9 + [False] * 14 + [True],
    ]
    for k, v in tokens.items():
        assert v.shape == (2, 30) and v.dtype == (torch.bool if k == "mask" else torch.long)


def test_config_flags_choose_the_tokens():
    args = _hand_pairs()
    assert set(tokenize_pairs(*args, TokenConfig())) == {"position", "type", "segment", "mask"}
    assert set(tokenize_pairs(*args, TokenConfig(segment=False, position=False, relative_position=True))) == {
        "type",
        "relative",
        "mask",
    }
    cfg = TokenConfig(grid=(4, 3), delta=2)
    assert (cfg.num_positions, cfg.num_segments) == (12, 3)
    tokens = tokenize_pairs(
        args[0], args[1], args[2], torch.tensor([2, 1]), dataclasses.replace(cfg, relative_position=True)
    )
    assert tokens["position"].max() < 12 and tokens["relative"].max() < 12
    # A current (240 x 180 frame, 60 px cells): (100, 50) -> (1, 0) = 1.
    assert tokens["position"][0, 2] == 1
    with pytest.raises(ValueError, match="no token kind"):
        TokenConfig(position=False, type=False, segment=False)
    with pytest.raises(ValueError, match="grid"):
        TokenConfig(grid=(0, 3))


def test_batch_equals_one_by_one():
    table = random_table(videos=2, frames=8, people=3, seed=1)
    pairs = sample_pairs(table, delta=4)
    batch = tokenize_table(table, pairs, ALL)
    for i in np.random.default_rng(0).choice(len(pairs), 20, replace=False):
        one = tokenize_table(table, pairs.select([i]), ALL)
        for k in batch:
            assert torch.equal(one[k][0], batch[k][i]), k


def test_invisible_keypoints_do_not_matter():
    cur, prev, size, delta = _hand_pairs()
    cur2, prev2 = cur.clone(), prev.clone()
    cur2[:, 6:, :2] = torch.tensor([float("nan"), 1e9], dtype=torch.float64)  # invisible: ignored
    prev2[0, 1:5, :2] = -77.0
    a = tokenize_pairs(cur, prev, size, delta, ALL)
    b = tokenize_pairs(cur2, prev2, size, delta, ALL)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_pose_without_visible_keypoints_gets_zero_tokens():
    cur, prev, size, delta = _hand_pairs()
    prev[:, :, 2] = 0
    tokens = tokenize_pairs(cur, prev, size, delta, ALL)
    assert not tokens["mask"][:, P:].any()
    assert (tokens["position"][:, P:] == 0).all() and (tokens["relative"][:, P:] == 0).all()


def test_bad_input_names_the_pair():
    cur, prev, size, delta = _hand_pairs()
    with pytest.raises(TokenizeError, match=r"delta of pair 1 is 5, expected 1\.\.4"):
        tokenize_pairs(cur, prev, size, torch.tensor([1, 5]))
    with pytest.raises(TokenizeError, match="delta of pair 0 is 0"):
        tokenize_pairs(cur, prev, size, torch.tensor([0, 1]))
    bad = prev.clone()
    bad[1, 14, 0] = float("nan")
    with pytest.raises(TokenizeError, match="previous keypoint 14 of pair 1 is visible"):
        tokenize_pairs(cur, bad, size, delta)
    with pytest.raises(TokenizeError, match="frame_size of pair 0"):
        tokenize_pairs(cur, prev, torch.tensor([[0.0, 180.0], [480.0, 360.0]]), delta)
    with pytest.raises(TokenizeError, match=r"current must be \[M, 15, 3\]"):
        tokenize_pairs(cur[:, :14], prev, size, delta)
    with pytest.raises(TokenizeError, match="previous has 1"):
        tokenize_pairs(cur, prev[:1], size, delta)


def _table_with(keypoints: np.ndarray, frames: list[int], track_ids: list[int]) -> PoseTable:
    vids = [
        Video(
            "v",
            [Frame.from_poses(f, keypoints[i][None], track_ids=[track_ids[i]]) for i, f in enumerate(frames)],
            240.0,
            180.0,
        )
    ]
    return Dataset(vids).table()


def test_tokenize_table_gathers_rows_and_labels():
    cur, prev, _, _ = _hand_pairs()
    kp = torch.stack([prev[0], cur[0], prev[0]]).numpy()  # frames 0, 2, 2; ids 4, 4, 5
    table = _table_with(kp, [0, 2, 2], [4, 4, 5])
    pairs = sample_pairs(table, delta=3)
    assert list(zip(pairs.current, pairs.previous, pairs.delta, pairs.label)) == [(1, 0, 2, 1), (2, 0, 2, 0)]
    tokens = tokenize_table(table, pairs, ALL)
    assert tokens["labels"].tolist() == [1, 0]
    direct = tokenize_pairs(cur[:1], prev[:1], torch.tensor([[240.0, 180.0]]), torch.tensor([2]), ALL)
    for k in direct:
        assert torch.equal(tokens[k][0], direct[k][0]), k


def test_tokenize_table_error_names_video_and_frame():
    cur, prev, _, _ = _hand_pairs()
    kp = torch.stack([prev[0], cur[0]]).numpy()
    kp[0, 5, 1] = np.inf
    table = _table_with(kp, [3, 4], [1, 1])
    with pytest.raises(TokenizeError, match=r"previous = table row 0 \(video 0, frame 3\)"):
        tokenize_table(table, sample_pairs(table, delta=1))


def test_bench_command_prints_a_markdown_table(capsys):
    code = main(
        [
            "bench-tokenize",
            "--videos",
            "2",
            "--frames",
            "6",
            "--people",
            "2",
            "--repeats",
            "1",
            "--model",
            "--batch-sizes",
            "4",
            "--steps",
            "1",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert lines[0] == "| stage | pairs per call | pairs/s |"
    assert len(lines) == 2 + 4  # header, rule, pairs, tokens, model fwd+bwd, model fwd
    assert all(float(ln.split("|")[3].replace(",", "")) > 0 for ln in lines[2:])
