"""The tracker's step (§3.1) on its own, and which frames :mod:`keytrack.tracking.schedule` hands
one step together."""

from __future__ import annotations

import numpy as np

from keytrack.poses import Dataset, Frame, Video
from keytrack.skeleton import NUM_JOINTS
from keytrack.synth import generate_dataset
from keytrack.tracking import OKSScorer, Tracker, drop_track_ids


def _video(name: str, indices: list[int], xs: list[float]) -> Video:
    frames = []
    for i in indices:
        kp = np.zeros((len(xs), NUM_JOINTS, 3))
        kp[..., 0] = np.asarray(xs)[:, None] + 2 * i + np.arange(NUM_JOINTS) * 3
        kp[..., 1] = 200 + np.arange(NUM_JOINTS) * 10
        kp[..., 2] = 1
        frames.append(Frame.from_poses(i, kp))
    return Video(name, frames, 960.0, 540.0)


class _MixingOKS(OKSScorer):
    """OKS that takes several videos' frames per call, recording how many each call got."""

    mixes_videos = True

    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def score_many(self, requests):
        self.calls.append(len(requests))
        return [OKSScorer.__call__(self, *r) for r in requests]

    def __call__(self, *args):
        self.calls.append(1)
        return super().__call__(*args)


def test_stepping_frame_by_frame_is_tracking_the_video():
    data = drop_track_ids(generate_dataset(2, seed=3))
    for video in data.videos:
        tracker = Tracker(OKSScorer(), match_threshold=0.05, nearest=2, motion="velocity")
        window = tracker.start(video)
        stepped = [tracker.track_frames([window], [frame])[0] for frame in video.frames]
        whole = tracker.track_video(video)
        assert [f.track_ids.tolist() for f in stepped] == [f.track_ids.tolist() for f in whole.frames]


def test_frames_that_ask_nothing_do_not_take_a_shared_step():
    """First frames, and a frame after a gap longer than δ, are tracked on their own; every scorer
    call takes one frame of each active video."""
    a = _video("a", [0, 1, 2], [100, 500])
    gap = _video("gap", [0, 1, 7, 8], [300])
    scorer = _MixingOKS()
    out = Tracker(scorer, delta=4, match_threshold=0.05).track_dataset(Dataset([a, gap]), videos_at_once=2)
    assert scorer.calls == [2, 2]
    assert [f.track_ids.tolist() for f in out.videos[0].frames] == [[0, 1]] * 3
    assert [f.track_ids.tolist() for f in out.videos[1].frames] == [[0], [0], [1], [1]]
    one = Tracker(OKSScorer(), delta=4, match_threshold=0.05).track_dataset(Dataset([a, gap]))
    assert [f.track_ids.tolist() for v in one.videos for f in v.frames] == [
        f.track_ids.tolist() for v in out.videos for f in v.frames
    ]
