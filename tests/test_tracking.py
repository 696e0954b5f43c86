"""The online tracker (§3.1), its scorers and assignments, the output post-processing (A.3) and
``keytrack track`` end to end."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from keytrack.poses import Dataset, Frame, Video
from keytrack.skeleton import NUM_JOINTS, OKS_SIGMAS
from keytrack.tokenize import TokenConfig, tokenize_pairs
from keytrack.tracking import (
    SCORERS,
    Candidates,
    IoUScorer,
    OKSScorer,
    PoseEntailmentScorer,
    Tracker,
    TrackingError,
    apply_keypoint_threshold,
    drop_track_ids,
    greedy_assignment,
    hungarian_assignment,
    iou_matrix,
    oks_matrix,
    subsample,
)

NEG = -np.inf
W, H = 960.0, 540.0

# A standing person ~200 px tall (offsets from the hip centre, JOINTS order).
TEMPLATE = np.array(
    [
        [0, -150],
        [0, -125],
        [0, -180],
        [-30, -115],
        [30, -115],
        [-40, -70],
        [40, -70],
        [-45, -25],
        [45, -25],
        [-15, 0],
        [15, 0],
        [-15, 50],
        [15, 50],
        [-15, 100],
        [15, 100],
    ],
    dtype=np.float64,
)


def pose(x: float, y: float = 300.0, c: float = 1.0) -> np.ndarray:
    kp = np.zeros((NUM_JOINTS, 3))
    kp[:, :2] = TEMPLATE + [x, y]
    kp[:, 2] = c
    return kp


def video(
    frames: list[list[np.ndarray]],
    ids: list[list[int]] | None = None,
    name: str = "v",
    indices: list[int] | None = None,
) -> Video:
    indices = list(range(len(frames))) if indices is None else indices
    out = []
    for k, (i, poses) in enumerate(zip(indices, frames)):
        kp = np.stack(poses) if poses else np.zeros((0, NUM_JOINTS, 3))
        tid = None if ids is None else np.asarray(ids[k])
        out.append(
            Frame.from_poses(i, kp, track_ids=tid, file_name=f"images/{name}/{i:06d}.jpg", image_id=1000 + i)
        )
    return Video(name, out, W, H)


# -- assignment ----------------------------------------------------------------------------------


def test_greedy_assignment_hand_built():
    scores = np.array([[0.90, 0.80, NEG], [0.85, 0.30, 0.20], [0.10, 0.40, 0.10]])
    rows, cols = greedy_assignment(scores, threshold=0.35)
    # (0,0)=0.90 taken; (1,0)=0.85 skipped: track 0 already used this frame; (0,1) skipped: pose 0
    # taken; (2,1)=0.40 taken; pose 1's best available score (0.30 / 0.20) is below 0.35 -> new track.
    assert rows.tolist() == [0, 2] and cols.tolist() == [0, 1]
    rows, cols = greedy_assignment(scores, threshold=0.0)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [0, 2, 1]
    rows, cols = greedy_assignment(np.zeros((0, 3)), 0.5)
    assert rows.size == 0 and cols.size == 0


def test_hungarian_differs_from_greedy():
    scores = np.array([[0.9, 0.8], [0.8, 0.1]])
    g = greedy_assignment(scores, 0.05)
    h = hungarian_assignment(scores, 0.05)
    assert (g[0].tolist(), g[1].tolist()) == ([0, 1], [0, 1])  # 0.9 + 0.1
    assert (h[0].tolist(), h[1].tolist()) == ([0, 1], [1, 0])  # 0.8 + 0.8
    # Threshold 0.2: greedy leaves pose 1 unmatched; the Hungarian solution uses only valid pairs.
    g = greedy_assignment(scores, 0.2)
    assert (g[0].tolist(), g[1].tolist()) == ([0], [0])
    h = hungarian_assignment(scores, 0.2)
    assert (h[0].tolist(), h[1].tolist()) == ([0, 1], [1, 0])
    # Pairs below the threshold or not compared are rejected after solving.
    h = hungarian_assignment(np.array([[0.3, NEG], [0.9, 0.6]]), 0.5)
    assert (h[0].tolist(), h[1].tolist()) == ([1], [0])


# -- scorers -------------------------------------------------------------------------------------


def test_oks_hand_computed():
    a = np.zeros((NUM_JOINTS, 3))
    b = np.zeros((NUM_JOINTS, 3))
    a[0] = [100, 100, 1]
    b[0] = [103, 104, 1]  # nose: d² = 25
    a[9] = [50, 60, 0.7]
    b[9] = [50, 50, 0.2]  # left wrist: d² = 100
    a[14] = [0, 0, 1]  # only in a: ignored
    b[13] = [7, 7, 1]  # only in b: ignored
    box = np.array([[0, 0, 100, 200]])  # area 20000
    expect = (
        math.exp(-25 / (2 * 20000 * (2 * OKS_SIGMAS[0]) ** 2))
        + math.exp(-100 / (2 * 20000 * (2 * OKS_SIGMAS[9]) ** 2))
    ) / 2
    got = oks_matrix(a[None], b[None], box)
    assert got.shape == (1, 1) and got[0, 0] == pytest.approx(expect, rel=1e-12)
    none = np.zeros((NUM_JOINTS, 3))
    none[12] = [0, 0, 1]  # a joint neither a nor b has
    both = oks_matrix(np.stack([a, b]), np.stack([b, none]), np.concatenate([box, box]))
    assert both[0, 1] == 0.0 and both[1, 1] == 0.0  # no jointly visible keypoint
    assert both[1, 0] == pytest.approx(1.0)  # b with itself
    # The scorer takes the candidate's box, or its keypoints' box when the box is absent.
    cand = Candidates(b[None], np.full((1, 4), np.nan), [7], [1])
    kb_area = (103 - 7) * (104 - 7)
    expect_kb = (
        math.exp(-25 / (2 * kb_area * (2 * OKS_SIGMAS[0]) ** 2))
        + math.exp(-100 / (2 * kb_area * (2 * OKS_SIGMAS[9]) ** 2))
    ) / 2
    assert OKSScorer()(a[None], box, cand, (W, H))[0, 0] == pytest.approx(expect_kb, rel=1e-12)
    # scale k widens every σ: the exponent is divided by k².
    wide = (
        math.exp(-25 / (2 * kb_area * (2 * 3 * OKS_SIGMAS[0]) ** 2))
        + math.exp(-100 / (2 * kb_area * (2 * 3 * OKS_SIGMAS[9]) ** 2))
    ) / 2
    assert OKSScorer(scale=3)(a[None], box, cand, (W, H))[0, 0] == pytest.approx(wide, rel=1e-12)
    with pytest.raises(ValueError, match="scale"):
        OKSScorer(scale=0)


def test_iou_hand_computed():
    a = np.array([[0, 0, 10, 10], [4, 0, 4, 4]], dtype=float)
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [np.nan] * 4, [1, 1, 2, 2]], dtype=float)
    got = iou_matrix(a, b)
    assert got.shape == (2, 4)
    np.testing.assert_allclose(got, [[50 / 150, 0, 0, 4 / 100], [3 * 4 / (16 + 100 - 12), 0, 0, 0]])
    cand = Candidates(np.stack([pose(100), pose(400)]), b[:2], [0, 1], [1, 1])
    mask = np.array([[True, False], [True, True]])
    s = IoUScorer()(np.stack([pose(0), pose(0)]), a, cand, (W, H), mask)
    np.testing.assert_allclose(s, [[50 / 150, 0], [12 / 104, 0]])


def test_registry():
    assert SCORERS == {"pose_entailment": PoseEntailmentScorer, "oks": OKSScorer, "iou": IoUScorer}


class CountingMatcher(nn.Module):
    """Wraps a matcher and records the batch size of every forward."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls: list[int] = []

    def forward(self, tokens):
        self.calls.append(int(tokens["mask"].shape[0]))
        return self.inner(tokens)


def _small_matcher(delta: int = 4) -> nn.Module:
    from keytrack.models.registry import transformer_config
    from keytrack.models.transformer import TransformerMatchingNetwork

    torch.manual_seed(0)
    return TransformerMatchingNetwork(
        transformer_config(TokenConfig(delta=delta), hidden=16, intermediate=16, layers=1, heads=2)
    )


def test_pose_entailment_scorer_one_batched_forward_per_frame():
    config = TokenConfig(delta=4)
    model = CountingMatcher(_small_matcher())
    scorer = PoseEntailmentScorer(model, config)
    cur = np.stack([pose(100), pose(300), pose(500)])
    cand = Candidates(
        np.stack([pose(105), pose(310), pose(480), pose(90)]),
        np.full((4, 4), np.nan),
        [0, 1, 2, 0],
        [1, 1, 1, 3],
    )
    mask = np.ones((3, 4), bool)
    mask[0, 2] = mask[2, 0] = False
    s = scorer(cur, np.full((3, 4), np.nan), cand, (W, H), mask)
    assert model.calls == [10] and scorer.pairs_scored == 10 and scorer.forwards == 1
    assert s.shape == (3, 4) and s[0, 2] == 0 and s[2, 0] == 0
    assert ((s[mask] > 0) & (s[mask] < 1)).all()
    # Each score is the class-1 probability of that pair alone.
    for i, j in [(0, 0), (1, 3), (2, 2)]:
        tok = tokenize_pairs(
            torch.tensor(cur[i : i + 1], dtype=torch.float32),
            torch.tensor(cand.keypoints[j : j + 1], dtype=torch.float32),
            torch.tensor([[W, H]]),
            torch.tensor([cand.delta[j]]),
            config,
        )
        with torch.no_grad():
            p = torch.softmax(model.inner(tok), -1)[0, 1].item()
        assert s[i, j] == pytest.approx(p, abs=1e-5)
    # Candidates beyond the network's δ are refused.
    far = Candidates(pose(100)[None], np.full((1, 4), np.nan), [0], [5])
    with pytest.raises(ValueError, match="outside 1..4"):
        scorer(cur, np.full((3, 4), np.nan), far, (W, H))
    with pytest.raises(ValueError, match="exceeds the scorer's"):
        Tracker(scorer, delta=5)


def test_pose_entailment_scorer_under_bf16_autocast_stays_close_to_fp32():
    model = _small_matcher()
    cur = np.stack([pose(100), pose(300), pose(500)])
    cand = Candidates(
        np.stack([pose(105), pose(310), pose(480), pose(90)]),
        np.full((4, 4), np.nan),
        [0, 1, 2, 0],
        [1, 1, 1, 3],
    )
    fp32 = PoseEntailmentScorer(model, TokenConfig(delta=4))(cur, np.full((3, 4), np.nan), cand, (W, H))
    bf16 = PoseEntailmentScorer(model, TokenConfig(delta=4), precision="bf16")(
        cur, np.full((3, 4), np.nan), cand, (W, H)
    )
    assert bf16.dtype == fp32.dtype and np.abs(bf16 - fp32).max() < 2e-2  # bf16: 8 bits of mantissa
    with pytest.raises(ValueError, match="precision"):
        PoseEntailmentScorer(model, TokenConfig(delta=4), precision="fp8")


def test_tracker_calls_network_once_per_frame():
    model = CountingMatcher(_small_matcher())
    scorer = PoseEntailmentScorer(model, TokenConfig(delta=4))
    people = [100, 400, 700]
    frames = [[pose(x + 3 * t) for x in people] for t in range(6)]
    Tracker(scorer, delta=4).track_video(video(frames))
    # Frame 0 has no candidates; frame t compares 3 poses with 3 * min(t, 4) tracked poses.
    assert model.calls == [9 * min(t, 4) for t in range(1, 6)]
    model.calls.clear()
    Tracker(scorer, delta=4, nearest=1).track_video(video(frames))
    assert model.calls == [3 * min(t, 4) for t in range(1, 6)]


# -- tracker -------------------------------------------------------------------------------------


def _ids_by_person(tracked: Video, person_of) -> dict[int, set[int]]:
    """person -> set of track ids it received."""
    out: dict[int, set[int]] = {}
    for f in tracked.frames:
        for p, tid in zip(person_of(f), f.track_ids.tolist()):
            out.setdefault(p, set()).add(tid)
    return out


def test_oks_tracker_two_people_walking_apart_keep_ids():
    rng = np.random.default_rng(0)
    frames, persons = [], []
    for t in range(12):
        a, b = pose(400 - 12 * t), pose(430 + 12 * t)  # start overlapping, walk apart
        order = rng.permutation(2)  # the detector's order changes
        frames.append([[a, b][o] for o in order])
        persons.append(order.tolist())
    v = video(frames)
    for assignment in ("greedy", "hungarian"):
        tracked = Tracker(OKSScorer(), delta=4, assignment=assignment, match_threshold=0.3).track_video(v)
        ids = _ids_by_person(tracked, lambda f: persons[f.index])
        assert ids[0] != ids[1] and len(ids[0]) == 1 and len(ids[1]) == 1, (assignment, ids)
    assert (v.frames[0].track_ids == -1).all()  # the input is left untouched


@pytest.mark.parametrize("scorer", [OKSScorer(), IoUScorer()])
def test_tracker_recovers_person_missing_within_delta_only(scorer):
    def run(missing: list[int], delta: int) -> tuple[set[int], set[int]]:
        frames, persons = [], []
        for t in range(10):
            poses, who = [pose(700 + t)], [1]  # person 1 always present
            if t not in missing:
                poses.insert(0, pose(200 + 2 * t))
                who.insert(0, 0)
            frames.append(poses)
            persons.append(who)
        tracked = Tracker(scorer, delta=delta).track_video(video(frames))
        ids = _ids_by_person(tracked, lambda f: persons[f.index])
        return ids[0], ids[1]

    a, b = run(missing=[3, 4], delta=4)  # last seen at t=2, back at t=5: Δ = 3 <= δ
    assert len(a) == 1 and len(b) == 1 and a != b
    a, b = run(missing=[3, 4, 5, 6], delta=4)  # back at t=7: Δ = 5 > δ -> a new track
    assert len(a) == 2 and len(b) == 1 and not a & b
    a, _ = run(missing=[3, 4], delta=2)  # Δ = 3 > δ = 2
    assert len(a) == 2


class RecordingScorer:
    """Records which (current, candidate, Δ) pairs the tracker asks for, by each pose's nose x."""

    name, max_delta = "recording", None

    def __init__(self):
        self.pairs: set[tuple[float, float, int]] = set()

    def __call__(self, keypoints, boxes, candidates, frame_size, mask=None):
        for i, j in zip(*np.nonzero(mask)):
            self.pairs.add((keypoints[i, 0, 0], candidates.keypoints[j, 0, 0], int(candidates.delta[j])))
        return np.zeros(mask.shape)


def test_nearest_candidates_equal_the_training_pairs():
    from keytrack.pairs import sample_pairs

    rng = np.random.default_rng(1)
    frames = [[pose(x, y) for x, y in rng.uniform([50, 150], [900, 350], size=(5, 2))] for _ in range(7)]
    v = video(frames, ids=[list(range(5))] * 7)
    table = Dataset([v]).table()
    pairs = sample_pairs(table, delta=3, nearest=2)
    nose_x = table.keypoints[:, 0, 0]
    expect = set(zip(nose_x[pairs.current].tolist(), nose_x[pairs.previous].tolist(), pairs.delta.tolist()))
    scorer = RecordingScorer()
    Tracker(scorer, delta=3, nearest=2, match_threshold=0.5).track_video(v)
    assert scorer.pairs == expect and len(expect) == 5 * 2 * (1 + 2 + 3 * 4)


class TableScorer:
    """Scores every pair by a table keyed on the candidate's (frame, track id)."""

    name, max_delta = "table", None

    def __init__(self, table: dict[tuple[int, int], float]):
        self.table = table

    def __call__(self, keypoints, boxes, candidates, frame_size, mask=None):
        col = [
            self.table.get((f, t), 0.0)
            for f, t in zip(candidates.frame.tolist(), candidates.track_ids.tolist())
        ]
        return np.tile(col, (len(keypoints), 1))


def test_track_score_is_max_over_the_window():
    # Frame 0: tracks 0 and 1; frame 1: track 0 only; frame 2: one pose. Its scores: track 0 at
    # frame 1 -> 0.2, track 0 at frame 0 -> 0.9, track 1 at frame 0 -> 0.6. The max (0.9) picks
    # track 0; the mean (0.55) or the latest appearance (0.2) would pick track 1.
    scorer = TableScorer({(0, 0): 0.9, (0, 1): 0.6, (1, 0): 0.2})
    tracked = Tracker(scorer, delta=4).track_video(video([[pose(100), pose(500)], [pose(100)], [pose(300)]]))
    assert [f.track_ids.tolist() for f in tracked.frames] == [[0, 1], [0], [0]]
    tracked = Tracker(scorer, delta=1).track_video(video([[pose(100), pose(500)], [pose(100)], [pose(300)]]))
    assert tracked.frames[2].track_ids.tolist() == [2]  # δ = 1: only track 0 at 0.2 < 0.5 -> new


class QueryXScorer:
    """Scores every candidate by the nose x of the query pose (a table), whatever the candidate."""

    name, max_delta = "query-x", None

    def __init__(self, table: dict[float, float]):
        self.table = table

    def __call__(self, keypoints, boxes, candidates, frame_size, mask=None):
        rows = [self.table[x] for x in keypoints[:, 0, 0].round(6).tolist()]
        return np.tile(np.asarray(rows)[:, None], (1, len(candidates.track_ids)))


def _with_scores(v: Video, scores: list[list[float]]) -> Video:
    for f, s in zip(v.frames, scores):
        f.scores = np.asarray(s, np.float64)
    return v


def test_confident_detections_are_assigned_first():
    # Frame 0: one person (track 0). Frame 1: the person (detection score 0.9) and a duplicate of
    # it next to it (score 0.2) that the scorer likes more (0.95 against 0.8). One pass gives the
    # track to the duplicate; confident first (τ = 0.5) keeps it with the person, and the duplicate
    # starts a new track (nothing is dropped). Frame 2: the person alone, low score (0.3), takes
    # its track in the second pass, which the confident pass left free.
    frames = [[pose(100)], [pose(100), pose(110)], [pose(100)]]
    scorer = QueryXScorer({100 + TEMPLATE[0, 0]: 0.8, 110 + TEMPLATE[0, 0]: 0.95})
    scores = [[0.9], [0.9, 0.2], [0.3]]
    one_pass = Tracker(scorer).track_video(_with_scores(video(frames), scores))
    assert [f.track_ids.tolist() for f in one_pass.frames] == [[0], [1, 0], [0]]
    two_pass = Tracker(scorer, detection_threshold=0.5).track_video(_with_scores(video(frames), scores))
    assert [f.track_ids.tolist() for f in two_pass.frames] == [[0], [0, 1], [0]]
    # A pose without a score (NaN) counts as confident: the one-pass answer again.
    unscored = Tracker(scorer, detection_threshold=0.5).track_video(
        _with_scores(video(frames), [[np.nan], [np.nan, np.nan], [np.nan]])
    )
    assert [f.track_ids.tolist() for f in unscored.frames] == [[0], [1, 0], [0]]
    with pytest.raises(ValueError, match="detection_threshold"):
        Tracker(scorer, detection_threshold=float("nan"))


class PairTableScorer:
    """Scores a pair by a table keyed on (the query's nose x, the candidate's frame, its track id)."""

    name, max_delta = "pair-table", None

    def __init__(self, table: dict[tuple[float, int, int], float]):
        self.table = table

    def __call__(self, keypoints, boxes, candidates, frame_size, mask=None):
        return np.array(
            [
                [
                    self.table.get((x, f, t), 0.0)
                    for f, t in zip(candidates.frame.tolist(), candidates.track_ids.tolist())
                ]
                for x in (keypoints[:, 0, 0] - TEMPLATE[0, 0]).round(6).tolist()
            ]
        )


def test_confident_tracks_come_first():
    # Frame 1 holds the person (track 0, score 0.9) and its duplicate (new track 1, score 0.2). In
    # frame 2 the person scores higher with the duplicate's track (0.9) than with its own (0.8):
    # one pass hands it the duplicate's track; confident first keeps its own, because track 1 has
    # no appearance of score >= τ. A low-scored pose (0.3, frame 3) may still take a confident
    # track in the second pass, and a confident pose an unconfident one when nothing else fits.
    frames = [[pose(100)], [pose(100), pose(110)], [pose(105)], [pose(108)], [pose(400), pose(120)]]
    scores = [[0.9], [0.9, 0.2], [0.9], [0.3], [0.9, 0.9]]
    scorer = PairTableScorer(
        {
            (100, 0, 0): 0.9,
            (110, 0, 0): 0.7,
            (105, 1, 0): 0.8,
            (105, 1, 1): 0.9,
            (108, 2, 0): 0.9,
            (108, 2, 1): 0.8,
            (120, 1, 1): 0.9,
            (120, 3, 0): 0.3,
        }
    )

    def ids(tracker):
        return [f.track_ids.tolist() for f in tracker.track_video(_with_scores(video(frames), scores)).frames]

    assert ids(Tracker(scorer)) == [[0], [0, 1], [1], [1], [2, 1]]
    assert ids(Tracker(scorer, detection_threshold=0.5)) == [[0], [0, 1], [0], [0], [2, 1]]


class CandidateXScorer:
    """Records, per frame, the nose x of every candidate the tracker hands over, with its Δ."""

    name, max_delta = "candidate-x", None

    def __init__(self):
        self.seen: list[list[tuple[float, int]]] = []

    def __call__(self, keypoints, boxes, candidates, frame_size, mask=None):
        self.seen.append(
            sorted(zip(candidates.keypoints[:, 0, 0].round(6).tolist(), candidates.delta.tolist()))
        )
        return OKSScorer()(keypoints, boxes, candidates, frame_size, mask)


def test_motion_moves_each_candidate_by_its_tracks_velocity_times_delta():
    # One person walking right 30 px per timestep, missing at frame 3. Nose x = body x (TEMPLATE).
    v = video([[pose(100)], [pose(130)], [pose(160)], [], [pose(220)]], indices=[0, 1, 2, 3, 4])
    plain, moved = CandidateXScorer(), CandidateXScorer()
    Tracker(plain, delta=4, match_threshold=0.1).track_video(v)
    tracked = Tracker(moved, delta=4, match_threshold=0.1, motion="velocity").track_video(v)
    assert plain.seen[-1] == [(100.0, 4), (130.0, 3), (160.0, 2)]  # where they were
    # Frame 0 started the track (velocity 0); frame 1 moved 30 since frame 0, frame 2 30 since frame 1;
    # at frame 4 each candidate is moved by Δ times its own velocity.
    assert moved.seen[0] == [(100.0, 1)]
    assert moved.seen[1] == [(100.0, 2), (160.0, 1)]
    assert moved.seen[-1] == sorted([(100.0, 4), (130.0 + 30 * 3, 3), (160.0 + 30 * 2, 2)])  # both at 220
    assert [f.track_ids.tolist() for f in tracked.frames] == [[0], [0], [0], [], [0]]
    assert v.frames[1].keypoints[0, 0, 0] == 130.0  # the input is untouched


def test_motion_training_pairs_show_what_the_tracker_scores():
    from keytrack.config import load_config
    from keytrack.data import TokenizedPairs
    from keytrack.pairs import moved_previous, sample_pairs

    # Three people far apart, each at its own speed; person 1 missing at frames 2 and 3.
    frames, ids = [], []
    for t in range(8):
        who = [p for p in range(3) if not (p == 1 and t in (2, 3))]
        frames.append([pose(100 + 300 * p + (5 + 7 * p) * t, 200 + 20 * p - 3 * t * p) for p in who])
        ids.append(who)
    v = video(frames, ids=ids)
    table = Dataset([v]).table()
    pairs = sample_pairs(table, delta=4)
    moved = moved_previous(table, pairs, delta=4)
    expect = set(
        zip(
            table.keypoints[pairs.current, 0, 0].round(6).tolist(),
            moved[:, 0, 0].round(6).tolist(),
            pairs.delta.tolist(),
        )
    )

    class RecordingOKS(RecordingScorer):  # records the pairs, tracks by OKS (correctly here)
        def __call__(self, keypoints, boxes, candidates, frame_size, mask=None):
            super().__call__(
                keypoints, boxes, candidates, frame_size, np.ones((len(keypoints), len(candidates)), bool)
            )
            return OKSScorer()(keypoints, boxes, candidates, frame_size)

    scorer = RecordingOKS()
    tracked = Tracker(scorer, delta=4, match_threshold=0.05, motion="velocity").track_video(v)
    assert [f.track_ids.tolist() for f in tracked.frames] == ids
    assert {(round(a, 6), round(b, 6), d) for a, b, d in scorer.pairs} == expect
    # Person 1 (x = 400 + 12 t) at frame 1, paired with frame 4 (Δ 3): moved by 3 × 12 px, onto itself.
    assert (448.0, 412.0 + 36, 3) in expect
    # pairs.motion=velocity trains on exactly these earlier poses.
    cfg = load_config(["pairs.motion=velocity"])
    built = TokenizedPairs.build(Dataset([v]), np.array([0]), cfg)
    assert np.allclose(built.previous.numpy(), moved.astype(np.float32))
    with pytest.raises(ValueError, match="pairs.motion"):
        TokenizedPairs.build(Dataset([v]), np.array([0]), load_config(["pairs.motion=linear"]))


def test_motion_keeps_two_people_crossing_at_a_low_frame_rate_apart():
    # A walks right and B left, 60 px per frame, crossing between frames 2 and 3: at frame 3 each
    # stands where the other stood at frame 2. Plain OKS swaps them there; with motion each
    # earlier pose is moved to where its own track is heading.
    frames, persons = [], []
    for t in range(6):
        frames.append([pose(200 + 60 * t, 300), pose(500 - 60 * t, 306)])
        persons.append([0, 1])
    v = video(frames)
    for motion, swaps in (("none", True), ("velocity", False)):
        tracked = Tracker(OKSScorer(), delta=4, match_threshold=0.05, motion=motion).track_video(v)
        ids = _ids_by_person(tracked, lambda f: persons[f.index])
        assert (len(ids[0]) > 1) == swaps, (motion, ids)
    with pytest.raises(ValueError, match="unknown motion 'linear'"):
        Tracker(OKSScorer(), motion="linear")


def test_tracker_new_ids_for_poses_without_keypoints_and_order_check():
    empty = np.zeros((NUM_JOINTS, 3))
    low = pose(600, c=0.05)
    frames = [[pose(100), empty, low], [pose(102), empty, low]]
    tracked = Tracker(OKSScorer(), delta=4).track_video(video(frames))
    assert tracked.frames[0].track_ids.tolist() == [0, 1, 2]
    assert tracked.frames[1].track_ids.tolist() == [0, 3, 2]  # empty pose: never a candidate
    # Keypoints below the tracker's minimum are invisible to it: the low-confidence pose is unmatchable.
    tracked = Tracker(OKSScorer(), delta=4, min_keypoint_confidence=0.1).track_video(video(frames))
    assert tracked.frames[1].track_ids.tolist() == [0, 3, 4]
    np.testing.assert_array_equal(tracked.frames[1].keypoints, video(frames).frames[1].keypoints)
    with pytest.raises(TrackingError, match=r"video 'v', frame 3.*increase"):
        Tracker(OKSScorer()).track_video(video([[pose(1)], [pose(2)]], indices=[4, 3]))
    bad = pose(10)
    bad[5, 0] = np.nan
    with pytest.raises(TrackingError, match=r"frame 1 .*keypoints\[0, 5\]"):
        Tracker(OKSScorer()).track_video(video([[pose(1)], [bad]]))


def test_track_dataset_ids_restart_per_video():
    v1 = video([[pose(100), pose(500)], [pose(101), pose(501)]], name="a")
    v2 = video([[pose(300)], [pose(302)]], name="b")
    out = Tracker(IoUScorer()).track_dataset(Dataset([v1, v2], {"x": 1}))
    assert [f.track_ids.tolist() for f in out.videos[0].frames] == [[0, 1], [0, 1]]
    assert [f.track_ids.tolist() for f in out.videos[1].frames] == [[0], [0]]
    assert out.skipped == {"x": 1}


def test_videos_at_once_share_forwards_and_give_the_ids_of_one_video_at_a_time():
    """``videos_at_once = k``: k videos advance together and their frames' pairs go through one
    forward; each video stays online and on its own, so every track id is that of tracking the
    videos one by one (with and without motion, with a window that crosses missed frames)."""
    from keytrack.models.registry import transformer_config
    from keytrack.models.transformer import TransformerMatchingNetwork
    from keytrack.synth import generate_dataset

    config = TokenConfig(delta=4, position_encoding="fourier", displacement=True, oks_prior=True)
    torch.manual_seed(0)
    model = CountingMatcher(
        TransformerMatchingNetwork(transformer_config(config, hidden=16, intermediate=16, layers=1, heads=2))
    )
    data = drop_track_ids(generate_dataset(5, seed=3))
    data.videos[1].frames = data.videos[1].frames[:4]  # videos of different lengths
    for motion in ("none", "velocity"):
        runs = {}
        for k in (1, 3):
            model.calls.clear()
            scorer = PoseEntailmentScorer(model, config)
            tracker = Tracker(scorer, delta=4, motion=motion)
            runs[k] = (
                tracker.track_dataset(data, videos_at_once=k),
                list(model.calls),
                scorer.pairs_scored,
                tracker.frames_tracked,
            )
        (one, calls_1, pairs_1, frames_1), (three, calls_3, pairs_3, frames_3) = runs[1], runs[3]
        assert [v.name for v in three.videos] == [v.name for v in data.videos]
        for a, b in zip(one.videos, three.videos):
            assert [f.track_ids.tolist() for f in a.frames] == [f.track_ids.tolist() for f in b.frames]
        assert len({tid for f in one.videos[0].frames for tid in f.track_ids.tolist()}) > 1
        assert pairs_1 == pairs_3 == sum(calls_1) == sum(calls_3) and frames_1 == frames_3 == data.num_frames
        assert len(calls_3) < 0.6 * len(calls_1) and max(calls_3) > max(calls_1)  # fewer, larger forwards
    # Scorers that cannot mix videos (OKS here) track one video at a time, with the same ids.
    a = Tracker(OKSScorer(), match_threshold=0.05).track_dataset(data)
    b = Tracker(OKSScorer(), match_threshold=0.05).track_dataset(data, videos_at_once=3)
    assert [f.track_ids.tolist() for v in a.videos for f in v.frames] == [
        f.track_ids.tolist() for v in b.videos for f in v.frames
    ]


def test_videos_at_once_failure_names_the_video_and_frame():
    """A scoring failure among several videos' frames is located: the error names the video and frame."""

    class Failing(OKSScorer):
        mixes_videos = True

        def score_many(self, requests):
            return [self(*r) for r in requests]

        def __call__(self, keypoints, boxes, candidates, frame_size, mask=None):
            if frame_size[0] == 640:
                raise ValueError("bad pair")
            return super().__call__(keypoints, boxes, candidates, frame_size, mask)

    good = video([[pose(100)], [pose(101)], [pose(102)]], name="good")
    bad = video([[pose(300)], [pose(302)], [pose(304)]], name="odd")
    bad.width = 640.0
    with pytest.raises(TrackingError, match=r"video 'odd', frame 1 .*scoring failed: bad pair"):
        Tracker(Failing()).track_dataset(Dataset([good, bad]), videos_at_once=2)


# -- post-processing -----------------------------------------------------------------------------


def test_subsample_keeps_every_kth_frame_by_index():
    v = video([[pose(i)] for i in range(10)], ids=[[i] for i in range(10)])
    out = subsample(Dataset([v]), 3).videos[0]
    assert [f.index for f in out.frames] == [0, 1, 2, 3]
    assert [f.image_id for f in out.frames] == [1000, 1003, 1006, 1009]
    assert [f.track_ids.tolist() for f in out.frames] == [[0], [3], [6], [9]]
    gappy = video([[pose(i)] for i in (0, 1, 2, 4, 6, 9)], indices=[0, 1, 2, 4, 6, 9])
    assert [f.image_id for f in subsample(Dataset([gappy]), 3).videos[0].frames] == [1000, 1006, 1009]
    assert [f.index for f in subsample(Dataset([v]), 1).videos[0].frames] == list(range(10))
    with pytest.raises(ValueError):
        subsample(Dataset([v]), 0)


def test_keypoint_threshold_on_output_only():
    kp = pose(100)
    kp[:, 2] = np.linspace(0.05, 0.95, NUM_JOINTS)
    ds = Dataset([video([[kp]])])
    out = apply_keypoint_threshold(ds, 0.5).videos[0].frames[0].keypoints[0]
    low = kp[:, 2] < 0.5
    assert (out[low] == 0).all()
    np.testing.assert_array_equal(out[~low], kp[~low])
    np.testing.assert_array_equal(ds.videos[0].frames[0].keypoints[0], kp)  # input untouched
    np.testing.assert_array_equal(apply_keypoint_threshold(ds, 0).videos[0].frames[0].keypoints[0], kp)
    assert (drop_track_ids(Dataset([video([[kp]], ids=[[5]])])).videos[0].frames[0].track_ids == -1).all()


# -- keytrack track ------------------------------------------------------------------------------


def _track_cli(argv: list[str]) -> int:
    from keytrack.tracking import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


def _write_input(tmp_path) -> tuple[str, list[list[int]]]:
    """Two people walking towards each other (never close), input track ids 100/200, wrists at c=0.2."""
    from keytrack.io.posetrack18 import write_posetrack18

    frames, persons, ids = [], [], []
    for t in range(8):
        a, b = pose(200 + 5 * t, c=0.9), pose(650 - 5 * t, c=0.9)
        a[[7, 8], 2] = b[[7, 8], 2] = 0.2
        order = [1, 0] if t % 3 == 0 else [0, 1]
        frames.append([[a, b][o] for o in order])
        persons.append(order)
        ids.append([[100, 200][o] for o in order])
    root = tmp_path / "in"
    write_posetrack18(Dataset([video(frames, ids, name="000001")]), root)
    return str(root), persons


def _read_output(path) -> dict[int, list[dict]]:
    doc = json.loads(path.read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in doc["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    return {"images": doc["images"], "anns": by_image}


def test_cli_end_to_end_oks_and_pose_entailment(tmp_path, capsys):
    src, persons = _write_input(tmp_path)
    out = tmp_path / "oks"
    assert (
        _track_cli(
            [
                "--data",
                src,
                "--out",
                str(out),
                "--scorer",
                "oks",
                "--keypoint-threshold",
                "0.5",
                "--match-threshold",
                "0.3",
                "--detection-threshold",
                "0.5",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "frames/s" in printed and "confident detections first at 0.5" in printed
    doc = _read_output(out / "000001.json")
    assert len(doc["images"]) == 8
    tid_of = {}
    for img in doc["images"]:
        anns = doc["anns"][img["id"]]
        t = img["id"] - 1000
        for ann, who in zip(anns, persons[t]):
            tid_of.setdefault(who, set()).add(ann["track_id"])
            kp = np.asarray(ann["keypoints"]).reshape(17, 3)
            assert (kp[[9, 10]] == 0).all() and (kp[[5, 6]] > 0).all()  # wrists (c=0.2) removed
    assert len(tid_of[0]) == 1 and len(tid_of[1]) == 1
    assert tid_of[0] | tid_of[1] == {0, 1}  # new ids: the input's 100/200 were dropped

    # Pose Entailment from a checkpoint in the format load_matcher reads, every 2nd frame.
    from omegaconf import OmegaConf

    from keytrack.config import load_config
    from keytrack.models.factory import build_matcher, matcher_config

    cfg = load_config(["model.hidden=16", "model.intermediate=16", "model.layers=1", "model.heads=2"])
    torch.manual_seed(0)
    model = build_matcher(matcher_config(cfg))
    ckpt = tmp_path / "m.ckpt"
    torch.save(
        {
            "hyper_parameters": {"cfg": OmegaConf.to_container(cfg)},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        ckpt,
    )
    out = tmp_path / "pe"
    assert (
        _track_cli(
            [
                "--data",
                src,
                "--out",
                str(out),
                "--checkpoint",
                str(ckpt),
                "--stride",
                "2",
                "--nearest",
                "1",
                "--match-threshold",
                "0",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "pairs/s" in printed and "frames/s" in printed
    doc = _read_output(out / "000001.json")
    assert [img["id"] for img in doc["images"]] == [1000, 1002, 1004, 1006]
    # Threshold 0 and nearest 1: every pose continues the track nearest to it.
    for img in doc["images"]:
        anns = doc["anns"][img["id"]]
        got = {who: ann["track_id"] for ann, who in zip(anns, persons[img["id"] - 1000])}
        assert got[0] != got[1] and set(got.values()) == {0, 1}
    # Several videos per forward: the same output file.
    assert (
        _track_cli(
            [
                "--data",
                src,
                "--out",
                str(tmp_path / "pe2"),
                "--checkpoint",
                str(ckpt),
                "--stride",
                "2",
                "--nearest",
                "1",
                "--match-threshold",
                "0",
                "--videos-at-once",
                "4",
            ]
        )
        == 0
    )
    assert _read_output(tmp_path / "pe2" / "000001.json") == doc
    # Behind the OKS gate: the same ids, the settled poses never reach the network.
    gate = ["--gate", "0.5", "0.1", "--new-track-threshold", "0.5"]
    argv = ["--data", src, "--out", str(tmp_path / "pe3"), "--checkpoint", str(ckpt)]
    argv += ["--stride", "2"]
    assert _track_cli([*argv, "--nearest", "1", "--match-threshold", "0", *gate]) == 0
    printed = capsys.readouterr().out
    assert "poses settled by OKS without the network" in printed and "new tracks from >= 0.5" in printed
    assert _read_output(tmp_path / "pe3" / "000001.json") == doc
    with pytest.raises(SystemExit):
        _track_cli(["--data", src, "--out", str(tmp_path / "x"), "--scorer", "oks", "--videos-at-once", "0"])
    assert "--videos-at-once: must be an integer >= 1" in capsys.readouterr().err

    from keytrack.errors import InputError

    with pytest.raises(InputError, match="--checkpoint"):  # without --scorer: OKS + Kalman (test_kalman.py)
        _track_cli(["--data", src, "--out", str(tmp_path / "x"), "--scorer", "pose_entailment"])


def test_only_confident_poses_start_tracks():
    # Frame 0: a person (0.9) and a false positive far away (0.2). Frame 1: the person again at a low
    # score (0.3), a new confident person (0.8) and a new unconfident one (0.1).
    frames = [[pose(100), pose(600)], [pose(104), pose(300), pose(800)], [pose(108), pose(302)]]
    scores = [[0.9, 0.2], [0.3, 0.8, 0.1], [np.nan, 0.9]]
    kept = Tracker(OKSScorer(), match_threshold=0.1).track_video(_with_scores(video(frames), scores))
    assert [f.track_ids.tolist() for f in kept.frames] == [[0, 1], [0, 2, 3], [0, 2]]
    tracked = Tracker(OKSScorer(), match_threshold=0.1, new_track_threshold=0.5).track_video(
        _with_scores(video(frames), scores)
    )
    # The false positives are left out (they start no track), the low-scored pose of a tracked person
    # keeps its track, a pose without a score (NaN) counts as confident; ids stay dense.
    assert [f.track_ids.tolist() for f in tracked.frames] == [[0], [0, 1], [0, 1]]
    assert [f.keypoints[:, 0, 0].tolist() for f in tracked.frames] == [
        [100 + TEMPLATE[0, 0]],
        [104 + TEMPLATE[0, 0], 300 + TEMPLATE[0, 0]],
        [108 + TEMPLATE[0, 0], 302 + TEMPLATE[0, 0]],
    ]
    assert [f.scores.tolist()[:1] for f in tracked.frames][:2] == [[0.9], [0.3]]
    with pytest.raises(ValueError, match="new_track_threshold"):
        Tracker(OKSScorer(), new_track_threshold=float("inf"))
