"""The OKS gate in front of a matching network (keytrack.tracking.gate)."""

from __future__ import annotations

import numpy as np
import pytest

from keytrack.tracking import OKSScorer, Tracker
from keytrack.tracking.gate import GatedScorer, settled
from tests.test_tracking import pose, video


def test_a_pose_is_settled_only_when_its_track_is_clear_and_uncontested():
    # Candidates of tracks 7, 7, 8, 9; poses: 0 clear for 7 (its best is a maximum over two candidates),
    # 1 below `high` with its best (8), 2 clear for 9 but pose 3 also comes near 9 (contested).
    oks = np.array(
        [
            [0.2, 0.9, 0.05, 0.0],
            [0.0, 0.0, 0.4, 0.05],
            [0.0, 0.0, 0.0, 0.8],
            [0.0, 0.0, 0.0, 0.2],
        ]
    )
    ids = np.array([7, 7, 8, 9])
    rows, tracks, taken = settled(oks, ids, np.ones_like(oks, bool), high=0.5, low=0.1)
    assert rows.tolist() == [0] and tracks.tolist() == [7]
    assert taken.tolist() == [True, True, False, False]
    # A masked candidate does not count: without pose 3's view of track 9, pose 2 is settled too.
    mask = np.ones_like(oks, bool)
    mask[3, 3] = False
    rows, tracks, _ = settled(oks, ids, mask, high=0.5, low=0.1)
    assert rows.tolist() == [0, 2] and tracks.tolist() == [7, 9]


class RecordingScorer:
    """A stand-in network: OKS scores, with every mask it is asked recorded."""

    name, max_delta, motion, mixes_videos = "recording", 4, "none", True

    def __init__(self):
        self.asked: list[np.ndarray] = []

    def __call__(self, keypoints, boxes, candidates, frame_size=None, mask=None):
        return self.score_many([(keypoints, boxes, candidates, frame_size, mask)])[0]

    def score_many(self, requests):
        self.asked += [np.asarray(r[4], bool).copy() for r in requests]
        return [OKSScorer()(*r) for r in requests]


def test_the_network_sees_only_the_unsettled_poses_and_the_ids_stay_the_same():
    # Two people far apart walk right; in frame 2 a third pose appears between them, close to the
    # first: the first person is contested there, the second stays settled.
    frames = [[pose(100), pose(600)], [pose(104), pose(604)], [pose(108), pose(112), pose(608)]]
    plain = Tracker(RecordingScorer(), match_threshold=0.1).track_video(video(frames))
    network = RecordingScorer()
    gated = GatedScorer(network, high=0.5, low=0.1)
    tracked = Tracker(gated, match_threshold=0.1).track_video(video(frames))
    assert [f.track_ids.tolist() for f in tracked.frames] == [f.track_ids.tolist() for f in plain.frames]
    # Frame 1: both settled, the network asked nothing; frame 2: only poses 0 and 1 asked, never track
    # 1's candidates (settled to pose 2).
    assert not network.asked[0].any()
    asked = network.asked[1]
    assert asked[:2].any(axis=1).all() and not asked[2].any()
    assert gated.settled_poses == 3 and gated.asked_poses == 2
    assert gated.name == "recording" and gated.max_delta == 4  # the network's properties pass through
    with pytest.raises(ValueError, match="low <= high"):
        GatedScorer(network, high=0.1, low=0.5)
