"""The track-level matcher (beyond the paper): its tokens, the listwise loss over tracks, the list
builder, the scorer the tracker uses, and a tiny training through `keytrack train experiment=track`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from keytrack.losses import list_positions, track_list_choice, track_listwise_loss
from keytrack.models.track_transformer import TrackTransformer, TrackTransformerConfig, track_tokens
from keytrack.poses import Dataset, Frame, Video
from keytrack.skeleton import NUM_JOINTS
from keytrack.track_lists import TrackListDataset, build_track_lists, track_lists_for
from keytrack.tracking import Candidates, TrackEntailmentScorer
from keytrack.tracking.track_scorer import track_histories

torch.set_num_threads(1)

SMALL = TrackTransformerConfig(history=3, max_delta=4, hidden=16, intermediate=16, layers=1, heads=2)


def _pose(x: float, y: float, size: float = 40.0) -> np.ndarray:
    """A pose of 15 visible keypoints on a ring around (x, y)."""
    angle = np.linspace(0, 2 * np.pi, NUM_JOINTS, endpoint=False)
    kp = np.ones((NUM_JOINTS, 3))
    kp[:, 0], kp[:, 1] = x + size * np.cos(angle), y + size * np.sin(angle)
    return kp


# -- the encoder -----------------------------------------------------------------------------------


def test_tokens_shapes_segments_and_padding_mask():
    query = torch.as_tensor(np.stack([_pose(100, 100), _pose(300, 100)]), dtype=torch.float32)
    history = torch.zeros(2, 3, NUM_JOINTS, 3)
    history[0, 0] = torch.as_tensor(_pose(98, 100))
    history[0, 1] = torch.as_tensor(_pose(95, 100))
    history[1, 0] = torch.as_tensor(_pose(290, 100))
    history[1, 0, 4, 2] = 0  # an invisible keypoint
    delta = torch.tensor([[1, 3, 0], [2, 0, 0]])
    tokens = track_tokens(query, history, delta, SMALL)
    s = 1 + NUM_JOINTS * 4
    assert tokens["features"].shape == (2, s, SMALL.num_features)
    for key in ("type", "segment", "mask"):
        assert tokens[key].shape == (2, s)
    assert tokens["oks"].shape == (2,)
    seg = tokens["segment"][:, 1:].view(2, 4, NUM_JOINTS)
    assert (seg[:, 0] == 0).all()  # the query pose is Segment 0
    assert (seg[0, 1] == 1).all() and (seg[0, 2] == 3).all() and (seg[0, 3] == 0).all()
    assert (seg[1, 1] == 2).all()
    mask = tokens["mask"][:, 1:].view(2, 4, NUM_JOINTS)
    assert tokens["mask"][:, 0].all()  # the pooled token
    assert mask[0, :3].all() and not mask[0, 3].any()  # a padded slot is masked
    assert not mask[1, 2:].any() and not mask[1, 1, 4] and mask[1, 1].sum() == NUM_JOINTS - 1
    assert (tokens["features"][:, 1:].view(2, 4, NUM_JOINTS, -1)[0, 3] == 0).all()
    assert (tokens["type"][:, 0] == NUM_JOINTS).all() and (tokens["type"][0, 1:16] == torch.arange(15)).all()


def test_tokens_are_free_of_translation_and_scale():
    query = torch.as_tensor(_pose(100, 100)[None], dtype=torch.float32)
    history = torch.zeros(1, 3, NUM_JOINTS, 3)
    history[0, 0] = torch.as_tensor(_pose(90, 105))
    delta = torch.tensor([[1, 0, 0]])
    a = track_tokens(query, history, delta, SMALL)
    moved = lambda t: torch.cat([t[..., :2] * 2 + 50, t[..., 2:]], -1)  # noqa: E731
    b = track_tokens(moved(query), moved(history), delta, SMALL)
    assert torch.allclose(a["features"], b["features"], atol=1e-5)
    assert torch.allclose(a["oks"], b["oks"], atol=1e-6)


def test_tokens_refuse_bad_input_naming_the_field():
    q, h = torch.zeros(1, NUM_JOINTS, 3), torch.zeros(1, 3, NUM_JOINTS, 3)
    with pytest.raises(ValueError, match="delta"):
        track_tokens(q, h, torch.tensor([[0, 1, 0]]), SMALL)  # slot 0 empty
    with pytest.raises(ValueError, match="delta"):
        track_tokens(q, h, torch.tensor([[5, 0, 0]]), SMALL)  # beyond δ
    with pytest.raises(ValueError, match="history"):
        track_tokens(q, torch.zeros(1, 2, NUM_JOINTS, 3), torch.tensor([[1, 0, 0]]), SMALL)


def test_network_gives_one_logit_per_pair_and_starts_as_oks():
    model = TrackTransformer(SMALL).eval()
    query = torch.as_tensor(np.stack([_pose(100, 100), _pose(100, 100)]), dtype=torch.float32)
    history = torch.zeros(2, 3, NUM_JOINTS, 3)
    history[0, 0] = torch.as_tensor(_pose(101, 100))  # near
    history[1, 0] = torch.as_tensor(_pose(160, 100))  # far
    z = model({"query": query, "history": history, "delta": torch.tensor([[1, 0, 0], [1, 0, 0]])})
    assert z.shape == (2,) and z[0] > 0 > z[1]


# -- the loss --------------------------------------------------------------------------------------


def test_track_listwise_loss_by_hand_with_no_match_and_gradient():
    z = torch.tensor([1.0, 2.0, -1.0, 0.5], requires_grad=True)
    group = torch.tensor([0, 0, 1, 1])
    target = torch.tensor([1, -1])  # list 0: its second track; list 1: no match
    loss = track_listwise_loss(z, group, target)
    first = -math.log(math.exp(2) / (math.exp(1) + math.exp(2) + 1))
    second = -math.log(1 / (math.exp(-1) + math.exp(0.5) + 1))
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-6)
    loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and (z.grad != 0).all()
    # a learnt no-match logit gets a gradient too, and with b = 0 the loss is the same
    b = torch.zeros((), requires_grad=True)
    again = track_listwise_loss(z.detach(), group, target, no_match=b)
    again.backward()
    assert again.item() == pytest.approx(loss.item()) and b.grad is not None and b.grad != 0


def test_track_listwise_loss_with_unsorted_groups_and_bad_targets():
    z = torch.tensor([2.0, 1.0, 3.0])
    a = track_listwise_loss(z, torch.tensor([1, 0, 0]), torch.tensor([1, 0]))
    b = track_listwise_loss(torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0, 0, 1]), torch.tensor([1, 0]))
    assert a.item() == pytest.approx(b.item())
    assert list_positions(torch.tensor([1, 0, 0, 1]), 2).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="target"):
        track_listwise_loss(z, torch.tensor([0, 0, 1]), torch.tensor([2, 0]))
    with pytest.raises(ValueError, match="logits"):
        track_listwise_loss(z[:, None], torch.tensor([0, 0, 1]), torch.tensor([0, 0]))


def test_track_list_choice_is_the_argmax_with_no_match():
    z = torch.tensor([-1.0, 2.0, 0.5, -3.0, -0.5, 4.0, 4.0])
    group = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assert track_list_choice(z, group, 3).tolist() == [1, -1, 0]


# -- the lists -------------------------------------------------------------------------------------


def _video() -> Video:
    """3 frames: tracks 7 and 8 in frames 0-2, track 9 new in frame 2."""
    frames = [
        Frame.from_poses(0, [_pose(100, 100), _pose(400, 100)], track_ids=[7, 8]),
        Frame.from_poses(1, [_pose(105, 100), _pose(395, 100)], track_ids=[7, 8]),
        Frame.from_poses(2, [_pose(110, 100), _pose(390, 100), _pose(250, 300)], track_ids=[7, 8, 9]),
    ]
    return Video("v", frames, 640.0, 480.0)


def test_list_builder_on_a_hand_made_video():
    table = Dataset([_video()]).table()
    lists = build_track_lists(table, delta=4, history=3)
    # frame 1: 2 lists (poses of tracks 7, 8); frame 2: 3 lists (7, 8 and the new 9)
    assert len(lists) == 5
    assert table.track_ids[lists.query].tolist() == [7, 8, 7, 8, 9]
    assert lists.list_length.tolist() == [2, 2, 2, 2, 2]
    assert lists.entry_track.tolist() == [7, 8] * 5
    assert lists.target.tolist() == [0, 1, 0, 1, -1]
    assert lists.label.sum() == 4
    frame = table.frame[lists.history.clip(0)]
    # frame 2's entries: the last appearances, most recent first, padded
    assert lists.history_delta[4:].tolist() == [[1, 2, 0]] * 6
    assert (frame[4:, :2] == [1, 0]).all() and (lists.history[4:, 2] == -1).all()
    assert lists.history_delta[:4].tolist() == [[1, 0, 0]] * 4


def test_list_builder_keeps_k_appearances_and_strides():
    frames = [Frame.from_poses(t, [_pose(100 + t, 100)], track_ids=[1]) for t in range(9)]
    video = Video("w", frames, 640.0, 480.0)
    lists = build_track_lists(Dataset([video]).table(), delta=4, history=2)
    assert lists.history_delta[-1].tolist() == [1, 2]  # k = 2 of the 4 in the window
    strided = track_lists_for(Dataset([video]), None, delta=4, history=4, strides=(1, 2), all_offsets=False)
    # stride 1: frames 1..8 have a list; stride 2 (frames 0, 2, 4, 6, 8 renumbered 0..4): 4 more
    assert len(strided) == 8 + 4
    assert (strided.target == 0).all()
    with pytest.raises(ValueError, match="history"):
        build_track_lists(Dataset([video]).table(), delta=2, history=3)


def test_list_dataset_batches_augment_and_hide_the_true_track():
    lists = build_track_lists(Dataset([_video()]).table(), delta=4, history=3)
    plain = TrackListDataset(lists)
    batch = plain.batch(torch.arange(5), augment=False)
    assert batch["query"].shape == (10, NUM_JOINTS, 3) and batch["history"].shape == (10, 3, NUM_JOINTS, 3)
    assert batch["group"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert batch["target"].tolist() == [0, 1, 0, 1, -1]
    assert (batch["history"][batch["delta"] == 0] == 0).all()
    hidden = TrackListDataset(lists, hide_true=1.0).batch(torch.arange(5))
    assert (hidden["target"] == -1).all() and len(hidden["label"]) == 10 - 4  # 4 lists lose their track
    flipped = TrackListDataset(lists, {"flip": 1.0}).batch(torch.arange(5))
    assert not torch.allclose(flipped["query"], batch["query"])
    assert flipped["target"].tolist() == batch["target"].tolist()


def test_list_dataset_moves_history_by_track_velocity():
    frames = [Frame.from_poses(t, [_pose(100 + 5 * t, 100)], track_ids=[1]) for t in range(4)]
    lists = build_track_lists(Dataset([Video("m", frames, 640.0, 480.0)]).table(), 4, 3, motion="velocity")
    batch = TrackListDataset(lists).batch(torch.tensor([len(lists) - 1]), augment=False)
    # frame 3's list: frames 2 and 1 moved by their track's 5 px per frame to where it is at frame 3;
    # frame 0, the track's first pose, has no velocity yet and stays where it was (as in the tracker)
    assert batch["delta"].tolist() == [[1, 2, 3]]
    assert torch.allclose(batch["history"][0, :2], batch["query"][0].expand(2, -1, -1))
    assert torch.allclose(batch["history"][0, 2, :, 0], batch["query"][0, :, 0] - 15)


def test_track_settings_refuse_bad_keys():
    from keytrack.config import ConfigError, load_config
    from keytrack.track_lists import track_training_settings

    settings = track_training_settings(load_config(["experiment=track"]))
    assert (
        settings.model.history == 4 and settings.model.max_delta == 4 and settings.pairs.strides == (1, 2, 4)
    )
    with pytest.raises(ConfigError, match="model.history"):
        track_training_settings(load_config(["experiment=track", "model.history=5"]))
    with pytest.raises(ConfigError, match="pairs.nearest"):
        track_training_settings(load_config(["experiment=track", "pairs.nearest=3"]))


# -- the scorer ------------------------------------------------------------------------------------


def _candidates() -> Candidates:
    kp = np.stack([_pose(100, 100), _pose(98, 100), _pose(400, 100), _pose(96, 100), _pose(395, 100)])
    return Candidates(
        keypoints=kp,
        boxes=np.full((5, 4), np.nan),
        track_ids=np.array([3, 3, 5, 3, 5]),
        delta=np.array([1, 2, 1, 3, 2]),
    )


def test_track_histories_group_candidates_by_track():
    tracks, column_track, rows, delta = track_histories(_candidates(), history=2)
    assert tracks.tolist() == [3, 5] and column_track.tolist() == [0, 0, 1, 0, 1]
    assert rows.tolist() == [[0, 1], [2, 4]] and delta.tolist() == [[1, 2], [1, 2]]


def test_scorer_gives_a_track_one_score_in_every_column_and_respects_the_mask():
    scorer = TrackEntailmentScorer(TrackTransformer(SMALL))
    query = np.stack([_pose(102, 100), _pose(398, 100)])
    cand = _candidates()
    scores = scorer(query, np.full((2, 4), np.nan), cand, (640, 480))
    assert scores.shape == (2, 5) and ((scores >= 0) & (scores <= 1)).all()
    for row in scores:
        assert row[0] == row[1] == row[3] and row[2] == row[4]
    assert scores[0, 0] > scores[0, 2] and scores[1, 2] > scores[1, 0]
    mask = np.ones((2, 5), bool)
    mask[0, [2, 4]] = False  # track 5 masked out for pose 0
    mask[1, 1] = False  # one candidate of track 3 masked for pose 1: the others still carry its score
    masked = scorer(query, np.full((2, 4), np.nan), cand, (640, 480), mask)
    assert (masked[0, [2, 4]] == 0).all() and masked[0, 0] == pytest.approx(scores[0, 0])
    assert masked[1, 1] == 0 and masked[1, 0] == pytest.approx(scores[1, 0]) == masked[1, 3]
    assert scorer.pairs_scored == 4 + 3
    with pytest.raises(ValueError, match="mask"):
        scorer(query, None, cand, (640, 480), np.ones((2, 4), bool))


def test_several_videos_share_a_forward_and_get_the_same_ids():
    from keytrack.synth import SynthConfig, generate_dataset
    from keytrack.tracking import Tracker

    torch.manual_seed(0)
    scorer = TrackEntailmentScorer(TrackTransformer(SMALL))
    data = generate_dataset(3, seed=2, config=SynthConfig(frames_per_video=(8, 10)))
    one = Tracker(scorer, motion="kalman").track_dataset(data, videos_at_once=1)
    forwards = scorer.forwards
    three = Tracker(scorer, motion="kalman").track_dataset(data, videos_at_once=3)
    assert scorer.forwards - forwards < forwards  # frames of three videos per forward
    for a, b in zip(one.videos, three.videos):
        assert [f.track_ids.tolist() for f in a.frames] == [f.track_ids.tolist() for f in b.frames]


def test_pair_memo_passes_a_track_scorer_by():
    from keytrack.tracking import PairScoreMemo

    scorer = TrackEntailmentScorer(TrackTransformer(SMALL))
    memo = PairScoreMemo(scorer)
    query = np.stack([_pose(102, 100)])
    first = memo(query, np.full((1, 4), np.nan), _candidates(), (640, 480))
    again = memo(query, np.full((1, 4), np.nan), _candidates(), (640, 480))
    assert np.allclose(first, again) and memo.pairs_reused == 0 and scorer.pairs_scored == 4


# -- training and tracking end to end --------------------------------------------------------------


def test_keytrack_train_experiment_track_and_tracking_with_its_checkpoint(tmp_path):
    import glob
    from pathlib import Path

    from keytrack.cli import main
    from keytrack.synth import generate_dataset
    from keytrack.tracking import PoseEntailmentScorer, Tracker, drop_track_ids

    code = main(
        [
            "train",
            "experiment=track",
            f"output_dir={tmp_path}",
            "run_name=tiny",
            "logging.wandb=false",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "data.synthetic.videos=4",
            "model.hidden=16",
            "model.intermediate=16",
            "model.layers=1",
            "loader.samples_per_epoch=64",
            "loader.batch_size=16",
            "trainer.max_epochs=1",
        ]
    )
    assert code == 0
    best = glob.glob(str(tmp_path / "track" / "tiny" / "checkpoints" / "best*.ckpt"))
    assert [Path(p).name for p in best] == ["best.ckpt"]  # a stable name, whichever epoch is best
    scorer = PoseEntailmentScorer.from_checkpoint(best[0])  # a track checkpoint loads by itself
    assert isinstance(scorer, TrackEntailmentScorer) and scorer.max_delta == 4
    video = generate_dataset(1, seed=11).videos[0]
    tracked = Tracker(scorer).track_video(drop_track_ids(Dataset([video])).videos[0])
    assert len(tracked.frames) == len(video.frames)
    assert all((f.track_ids >= 0).all() for f in tracked.frames)
    assert scorer.pairs_scored > 0
