"""The improved matcher's parts: listwise loss, ranking metrics, position encodings, augmentation,
candidate lists, and ``keytrack diagnose`` end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from keytrack.augment import augment_pairs
from keytrack.losses import listwise_loss
from keytrack.ranking import TrackingRanking, ranking_stats
from keytrack.skeleton import NUM_JOINTS
from keytrack.synth import SynthConfig, generate_dataset
from keytrack.tokenize import TokenConfig, pair_geometry, tokenize_pairs

TINY = SynthConfig(people_per_video=(2, 4), frames_per_video=(10, 14))


def _logits(z):
    """Two-way logits whose match logit ``l1 - l0`` is ``z``."""
    z = torch.as_tensor(z, dtype=torch.float32)
    return torch.stack([torch.zeros_like(z), z], dim=1)


# -- listwise loss ------------------------------------------------------------------------------------


def test_listwise_loss_value_on_a_hand_made_frame():
    # List 0: three candidates, the second is the person. List 1: two candidates, none is (new person).
    z = torch.tensor([1.0, 2.0, -1.0, 0.5, -0.5])
    labels = torch.tensor([0, 1, 0, 0, 0])
    group = torch.tensor([0, 0, 0, 1, 1])
    got = listwise_loss(_logits(z), labels, group)
    l0 = -(2.0 - math.log(math.exp(1) + math.exp(2) + math.exp(-1) + 1.0))  # + no-match logit 0
    l1 = -(0.0 - math.log(math.exp(0.5) + math.exp(-0.5) + 1.0))  # target: no match
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_listwise_loss_gradient_raises_the_true_candidate_and_lowers_the_others():
    z = torch.tensor([1.0, 2.0, -1.0, 0.5, -0.5], requires_grad=True)
    labels = torch.tensor([0, 1, 0, 0, 0])
    group = torch.tensor([0, 0, 0, 1, 1])
    listwise_loss(_logits(z), labels, group).backward()
    g = z.grad
    assert g[1] < 0  # gradient descent raises the true candidate's logit
    assert g[0] > 0 and g[2] > 0  # and lowers the wrong ones of its list
    assert g[3] > 0 and g[4] > 0  # a new person: every candidate goes down
    # The gradient of a list sums to softmax mass minus target: p_no_match - 0 for list 0.
    p_none = 1.0 / (math.exp(1) + math.exp(2) + math.exp(-1) + 1.0)
    assert g[:3].sum().item() * 2 == pytest.approx(-p_none, rel=1e-5)


def test_listwise_loss_is_stable_for_large_logits():
    z = torch.tensor([500.0, -500.0, 300.0])
    loss = listwise_loss(_logits(z), torch.tensor([1, 0, 0]), torch.tensor([0, 0, 0]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-6)


# -- ranking metrics -----------------------------------------------------------------------------------


def test_ranking_stats_on_hand_made_scores():
    # query 0: true 0.9 beats wrong 0.2 -> rank 1, accepted.   query 1: wrong 0.8 beats true 0.6.
    # query 2: true 0.4 first but below 0.5 -> rank 1, not accepted.   query 3: new person, best 0.3 -> new
    # ok.
    # query 4: new person, a candidate at 0.7 -> wrongly continued.
    scores = torch.tensor([0.9, 0.2, 0.6, 0.8, 0.4, 0.3, 0.7, 0.1])
    labels = torch.tensor([1, 0, 1, 0, 1, 0, 0, 0])
    query = torch.tensor([0, 0, 1, 1, 2, 3, 4, 4])
    s = ranking_stats(scores, labels, query, match_threshold=0.5)
    assert (s["continuing"], s["new"], s["queries"]) == (3, 2, 5)
    assert s["rank1"] == pytest.approx(2 / 3) and s["wrong_beats_true"] == pytest.approx(1 / 3)
    assert s["accepted"] == pytest.approx(1 / 3) and s["new_track"] == pytest.approx(1 / 2)


def test_tracking_ranking_accumulates_queries_split_across_batches():
    scores = torch.tensor([0.9, 0.2, 0.6, 0.8, 0.4, 0.3, 0.7, 0.1])
    labels = torch.tensor([1, 0, 1, 0, 1, 0, 0, 0])
    query = torch.tensor([0, 0, 1, 1, 2, 3, 4, 4])
    metric = TrackingRanking(0.5)
    for sl in (slice(0, 3), slice(3, 7), slice(7, 8)):  # query 1 and 4 cut across batches
        metric.update(scores[sl], labels[sl], query[sl])
    got = metric.compute()
    want = ranking_stats(scores, labels, query, 0.5)
    assert {k: float(v) for k, v in got.items()} == pytest.approx({k: want[k] for k in got})


# -- position encodings ------------------------------------------------------------------------------


def _pairs(m=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(m, 1, 2, generator=g) * torch.tensor([600.0, 300.0]) + 100
    prev = torch.cat(
        [base + torch.randn(m, NUM_JOINTS, 2, generator=g) * 30, torch.ones(m, NUM_JOINTS, 1)], -1
    )
    cur = prev.clone()
    cur[..., :2] += torch.randn(m, 1, 2, generator=g) * 10 + torch.randn(m, NUM_JOINTS, 2, generator=g)
    cur[:, 3, :] = 0.0  # one joint missing in the current pose
    return cur, prev, torch.tensor([[960.0, 540.0]]).repeat(m, 1), torch.randint(1, 5, (m,), generator=g)


@pytest.mark.parametrize(
    "encoding,keys", [("lookup", {"position"}), ("factorised", {"column", "row"}), ("fourier", {"features"})]
)
def test_position_encoding_shapes(encoding, keys):
    cur, prev, size, delta = _pairs()
    cfg = TokenConfig(position_encoding=encoding, fourier_bands=3)
    tok = tokenize_pairs(cur, prev, size, delta, cfg)
    assert keys <= set(tok) and not ({"position", "column", "row", "features"} - keys) & set(tok)
    for k in keys:
        assert tok[k].shape[:2] == (6, 2 * NUM_JOINTS)
    if encoding == "fourier":
        assert (
            tok["features"].shape[2] == cfg.num_features == 2 + 4 * 3
            and tok["features"].dtype == torch.float32
        )
        assert (tok["features"][:, 3] == 0).all()  # the missing joint carries nothing
    if encoding == "factorised":
        assert int(tok["column"].max()) < 24 and int(tok["row"].max()) < 18


def test_fourier_and_displacement_are_translation_and_scale_free_lookup_is_not():
    cur, prev, size, delta = _pairs()
    shift = torch.tensor([137.0, -41.0])
    moved = [p.clone() for p in (cur, prev)]
    for p in moved:
        p[..., :2] = torch.where(p[..., 2:3] > 0, p[..., :2] + shift, p[..., :2])
    cfg = TokenConfig(position_encoding="fourier", displacement=True)
    a = tokenize_pairs(cur, prev, size, delta, cfg)["features"]
    b = tokenize_pairs(*moved, size, delta, cfg)["features"]
    assert torch.allclose(a, b, atol=1e-4)
    # Scaling the pair about the earlier pose's centre leaves u (and the features) unchanged too.
    u, scale = pair_geometry(torch.cat([cur, prev], 1), torch.cat([cur, prev], 1)[..., 2] > 0)
    u2, scale2 = pair_geometry(
        torch.cat([cur, prev], 1) * torch.tensor([2.0, 2.0, 1.0]), torch.cat([cur, prev], 1)[..., 2] > 0
    )
    assert torch.allclose(u, u2, atol=1e-5) and torch.allclose(scale2, 2 * scale)
    lookup = TokenConfig()
    assert not torch.equal(
        tokenize_pairs(cur, prev, size, delta, lookup)["position"],
        tokenize_pairs(*moved, size, delta, lookup)["position"],
    )


def test_displacement_features_are_zero_where_a_joint_is_missing_and_grow_with_motion():
    cur, prev, size, delta = _pairs()
    cfg = TokenConfig(position=False, displacement=True)
    f = tokenize_pairs(cur, prev, size, delta, cfg)["features"]
    assert f.shape == (6, 2 * NUM_JOINTS, 4)
    assert (f[:, 3] == 0).all() and (f[:, NUM_JOINTS + 3] == 0).all()  # joint 3 missing in one pose
    assert torch.equal(f[:, :NUM_JOINTS][:, [0, 1, 2]], f[:, NUM_JOINTS:][:, [0, 1, 2]])  # both tokens of j
    far = cur.clone()
    far[..., :2] += 300.0
    g = tokenize_pairs(far, prev, size, delta, cfg)["features"]
    assert (g[:, 0, 2] > f[:, 0, 2]).all()  # tanh(|d|²/4) grows


def test_confidence_feature_is_each_keypoints_own_c_and_zero_where_missing():
    cur, prev, size, delta = _pairs()
    cur[..., 2] = torch.linspace(0.05, 0.95, NUM_JOINTS)  # predicted-like confidences
    cur[:, 3, 2] = 0.0  # a missing keypoint
    prev[..., 2] = 2.0  # a flag above 1 is full confidence
    cfg = TokenConfig(position_encoding="fourier", displacement=True, confidence=True)
    f = tokenize_pairs(cur, prev, size, delta, cfg)["features"]
    assert (
        f.shape[-1]
        == cfg.num_features
        == TokenConfig(position_encoding="fourier", displacement=True).num_features + 1
    )
    assert torch.allclose(f[:, :NUM_JOINTS, -1], cur[..., 2])  # the current pose's c (0 where missing)
    assert (f[:, NUM_JOINTS:, -1] == 1.0).all()  # clipped to 1
    # the other features do not depend on it
    plain = tokenize_pairs(
        cur, prev, size, delta, TokenConfig(position_encoding="fourier", displacement=True)
    )
    assert torch.equal(f[..., :-1], plain["features"])


def test_transformer_reads_every_encoding():
    from keytrack.models.registry import transformer_config
    from keytrack.models.transformer import TransformerMatchingNetwork

    cur, prev, size, delta = _pairs()
    for cfg in (
        TokenConfig(position_encoding="factorised"),
        TokenConfig(position_encoding="fourier", displacement=True),
        TokenConfig(position_encoding="fourier", displacement=True, confidence=True),
    ):
        model = TransformerMatchingNetwork(
            transformer_config(cfg, hidden=16, intermediate=16, layers=1, heads=2)
        )
        out = model(tokenize_pairs(cur, prev, size, delta, cfg))
        assert out.shape == (6, 2) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="position_encoding"):
        TokenConfig(position_encoding="polar")


def test_pair_oks_is_cocos_oks_with_the_earlier_poses_keypoint_box():
    from keytrack.poses import keypoint_boxes
    from keytrack.tracking.scorers import oks_pairs

    cur, prev, size, delta = _pairs()
    oks = tokenize_pairs(cur, prev, size, delta, TokenConfig(oks_prior=True))["oks"]
    ref = oks_pairs(cur.numpy(), prev.numpy(), keypoint_boxes(prev.numpy().astype(np.float64)))
    assert oks.shape == (6,) and np.allclose(oks.numpy(), ref, atol=1e-5)
    assert 0 < oks.min() and oks.max() < 1
    far = cur.clone()
    far[..., :2] += 300.0
    assert (tokenize_pairs(far, prev, size, delta, TokenConfig(oks_prior=True))["oks"] < oks).all()


def test_oks_prior_network_ranks_as_oks_before_training_and_learns_a_correction():
    from keytrack.models.registry import transformer_config
    from keytrack.models.transformer import TransformerMatchingNetwork

    cur, prev, size, delta = _pairs()
    cur = cur + torch.linspace(0, 40, 6)[:, None, None] * torch.tensor([1.0, 0.0, 0.0])  # growing motion
    cfg = TokenConfig(position_encoding="fourier", displacement=True, oks_prior=True)
    model = TransformerMatchingNetwork(
        transformer_config(cfg, hidden=16, intermediate=16, layers=1, heads=2, oks_prior_weight=2.0)
    ).eval()
    tokens = tokenize_pairs(cur, prev, size, delta, cfg)
    z = (lambda lg: lg[:, 1] - lg[:, 0])(model(tokens)).detach()
    oks = tokens["oks"].clamp(1e-4, 1 - 1e-4)
    assert torch.allclose(z, 2.0 * torch.logit(oks), atol=1e-5)  # exactly OKS's ranking at the start
    # one step of the listwise loss moves the network part (it is not frozen at OKS)
    model.train()
    loss = listwise_loss(model(tokens), torch.tensor([1, 0, 0, 0, 0, 0]), torch.zeros(6, dtype=torch.long))
    loss.backward()
    assert model.classifier[1].weight.grad.abs().sum() > 0 and model.oks_prior.grad.abs().sum() > 0
    with pytest.raises(KeyError, match="OKS"):
        model({k: v for k, v in tokens.items() if k != "oks"})
    # under bf16 autocast the prior stays fp32: OKS 0.995 and 0.999 still rank apart
    model.eval()
    near = dict(tokens, oks=torch.tensor([0.995, 0.999, 0.9995, 0.5, 0.2, 0.1]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(near)
    z = logits[:, 1] - logits[:, 0]
    assert logits.dtype == torch.float32 and z[0] < z[1] < z[2]


# -- augmentation ------------------------------------------------------------------------------------


def test_augmentation_keeps_visibility_and_frame_bounds():
    cur, prev, size, _ = _pairs(m=64, seed=3)
    prev[:, 0, :] = 0.0  # invisible joints stay untouched
    g = torch.Generator().manual_seed(0)
    for flip in (0.0, 1.0):
        a, b = augment_pairs(
            cur,
            prev,
            size,
            translate=True,
            flip=flip,
            scale=(0.7, 1.4),
            rotate=20.0,
            jitter=0.2,
            drop=0.5,
            generator=g,
        )
        for before, after in ((cur, a), (prev, b)):
            was = before[..., 2] > 0
            if flip:  # a mirrored pose swaps left and right joints
                from keytrack.skeleton import FLIP

                was = was[:, torch.as_tensor(FLIP)]
            now = after[..., 2] > 0
            assert not (now & ~was).any()  # nothing invisible becomes visible
            assert now.any(1).all()  # every pose keeps a keypoint
            xy = after[..., :2][now]
            w, h = size[0]
            assert (
                (xy[:, 0] >= 0).all()
                and (xy[:, 0] < w).all()
                and (xy[:, 1] >= 0).all()
                and (xy[:, 1] < h).all()
            )
        # Some keypoints were dropped, and the pair actually moved.
        assert ((a[..., 2] > 0).sum() < (cur[..., 2] > 0).sum()) and not torch.allclose(a, cur)


def test_augmentation_with_nothing_on_is_the_identity():
    cur, prev, size, _ = _pairs()
    a, b = augment_pairs(cur, prev, size, translate=False, flip=0.0)
    assert torch.equal(a, cur) and torch.equal(b, prev)


# -- candidate lists ---------------------------------------------------------------------------------


def test_candidate_lists_hold_one_pose_and_one_delta_with_at_most_one_match():
    from omegaconf import OmegaConf

    from keytrack.config import load_config
    from keytrack.data import CandidateLists, ListBatches, TokenizedPairs

    dataset = generate_dataset(2, seed=5, config=TINY)
    cfg = load_config(["experiment=improved"])
    pairs = TokenizedPairs.build(dataset, np.arange(2), cfg)
    lists = CandidateLists(pairs)
    assert int(lists.length.sum()) == len(pairs) and len(lists) > 0
    batch = lists.__getitems__(list(range(len(lists))))
    g = batch["group"]
    for key in ("query", "delta"):  # constant within a list
        first = torch.zeros(len(lists), dtype=torch.long).scatter_reduce(
            0, g, batch[key], "amin", include_self=False
        )
        assert torch.equal(first[g], batch[key])
    matches = torch.zeros(len(lists), dtype=torch.long).scatter_add(0, g, batch["label"])
    assert int(matches.max()) <= 1 and int(matches.sum()) > 0
    assert "features" in batch and OmegaConf.select(cfg, "loss.name") == "listwise"
    batches = list(ListBatches(torch.utils.data.SequentialSampler(lists), 50))
    assert sorted(i for b in batches for i in b) == list(range(len(lists)))
    assert all(int(lists.length[b].sum()) <= 50 or len(b) == 1 for b in batches)


def test_hide_true_turns_lists_into_no_match_targets():
    """loss.hide_true: a hidden list keeps its wrong candidates only (target "no match"); the draw
    follows the epoch seed."""
    from keytrack.config import load_config
    from keytrack.data import CandidateLists, TokenizedPairs
    from keytrack.losses import listwise_loss

    dataset = generate_dataset(2, seed=5, config=TINY)
    cfg = load_config(["experiment=improved"])
    pairs = TokenizedPairs.build(dataset, np.arange(2), cfg, seed=3)
    every = list(range(len(CandidateLists(pairs))))
    full = CandidateLists(pairs).__getitems__(every)
    with_true = torch.zeros(len(every), dtype=torch.long).scatter_add(0, full["group"], full["label"]) > 0
    assert with_true.any()

    pairs.set_epoch(0)
    hidden = CandidateLists(pairs, hide_true=1.0).__getitems__(every)
    assert int(hidden["label"].sum()) == 0  # every true candidate is gone
    assert len(hidden["label"]) == len(full["label"]) - int(with_true.sum())
    # Lists emptied by it (a pose with one candidate) are dropped; the rest are renumbered 0..G-1.
    assert torch.equal(torch.unique(hidden["group"]), torch.arange(int(hidden["group"].max()) + 1))
    logits = torch.zeros(len(hidden["label"]), 2, requires_grad=True)
    listwise_loss(logits, hidden["label"], hidden["group"]).backward()
    assert (logits.grad[:, 1] > 0).all()  # every candidate pushed below "no match"

    def kept_true(epoch):
        pairs.set_epoch(epoch)
        return CandidateLists(pairs, hide_true=0.5).__getitems__(every)["label"].sum().item()

    assert kept_true(1) == kept_true(1)  # same epoch, same lists hidden
    kept = [kept_true(e) for e in range(6)]
    assert len(set(kept)) > 1  # another epoch, other lists
    assert all(0.3 < k / int(with_true.sum()) < 0.7 for k in kept)  # about half of them
    with pytest.raises(ValueError, match="hide_true"):
        CandidateLists(pairs, hide_true=1.5)


# -- keytrack diagnose --------------------------------------------------------------------------------


def test_diagnose_end_to_end_on_generated_data(tmp_path, capsys):
    from omegaconf import OmegaConf

    from keytrack.cli import main
    from keytrack.config import load_config
    from keytrack.io import write_posetrack18
    from keytrack.models.factory import build_matcher, matcher_config

    gt = generate_dataset(2, seed=21, config=TINY)
    write_posetrack18(gt, tmp_path / "gt")
    cfg = load_config(
        ["experiment=improved", "model.hidden=16", "model.intermediate=16", "model.layers=1", "model.heads=2"]
    )
    torch.manual_seed(0)
    model = build_matcher(matcher_config(cfg))
    ckpt = tmp_path / "run" / "checkpoints" / "tiny.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(
        {
            "hyper_parameters": {"cfg": OmegaConf.to_container(cfg)},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        ckpt,
    )
    out = tmp_path / "diag"
    assert (
        main(
            [
                "diagnose",
                "--checkpoint",
                str(ckpt),
                "--data",
                str(tmp_path / "gt"),
                "--out",
                str(out),
                "--stride",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| window Δ = 1..4 |" in printed and "| Δ = 4 |" in printed
    for name in ("ranking.md", "ranking.csv", "worst_frames.md", "worst_frames.csv", "scores.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "ranking.csv").read_text().splitlines()
    assert rows[0].startswith("candidates,rank1") and len(rows) == 1 + 5
    # OKS on ground-truth keypoints of slow synthetic people ranks (nearly) every pose first.
    assert (
        main(["diagnose", "--scorer", "oks", "--data", str(tmp_path / "gt"), "--out", str(tmp_path / "o")])
        == 0
    )
    window = (tmp_path / "o" / "ranking.csv").read_text().splitlines()[1].split(",")
    assert float(window[1]) > 0.9
    # On the protocol's predictions of the same videos (identities kept): OKS ranks worse than on GT,
    # and the counts include the false positives as people of their own (new tracks).
    assert (
        main(
            [
                "diagnose",
                "--scorer",
                "oks",
                "--data",
                str(tmp_path / "gt"),
                "--out",
                str(tmp_path / "p"),
                "--keypoints",
                "predicted_boxes_predicted_keypoints",
            ]
        )
        == 0
    )
    head = (tmp_path / "p" / "ranking.csv").read_text().splitlines()[0].split(",")
    pred = dict(zip(head, (tmp_path / "p" / "ranking.csv").read_text().splitlines()[1].split(",")))
    gt_row = dict(zip(head, window))
    assert float(pred["rank1"]) < float(gt_row["rank1"]) and int(pred["new"]) > int(gt_row["new"])
    capsys.readouterr()
    assert (
        main(["diagnose", "--scorer", "oks", "--data", str(tmp_path / "gt"), "--keypoints", "nonsense"]) == 2
    )
    assert "--keypoints: unknown setting 'nonsense'" in capsys.readouterr().err


def test_learning_curve_reads_every_attempt_and_plots(tmp_path, capsys):
    from keytrack.cli import main

    run = tmp_path / "runs" / "improved" / "r0"
    for version, text in (
        (0, "epoch,step,train/loss,val/rank1,val/wrong_beats_true\n0,9,0.5,,\n0,9,,0.9,0.1\n"),
        (1, "epoch,step,val/rank1,val/wrong_beats_true\n1,19,0.95,0.05\n"),
    ):
        (run / "csv" / f"version_{version}").mkdir(parents=True)
        (run / "csv" / f"version_{version}" / "metrics.csv").write_text(text)
    assert main(["learning-curve", str(run), "--out", str(tmp_path / "out")]) == 0
    lines = (tmp_path / "out" / "curve.csv").read_text().splitlines()
    assert (
        len(lines) == 3
        and lines[1].startswith("r0,improved,9,0,0.9")
        and lines[2].startswith("r0,improved,19,1,0.95")
    )
    assert (tmp_path / "out" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    # a folder without validation metrics: a clear error, nothing written
    capsys.readouterr()
    assert main(["learning-curve", str(tmp_path / "empty"), "--out", str(tmp_path / "none")]) == 2
    assert "no validation metrics in" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_frame_strides_add_every_offset_as_its_own_video_with_timestep_deltas():
    from keytrack.data import with_frame_strides
    from keytrack.pairs import sample_pairs

    ds = generate_dataset(2, seed=5, config=TINY)
    out = with_frame_strides(ds, [1, 2, 4])
    names = [v.name for v in out.videos]
    assert names[:2] == [v.name for v in ds.videos]
    assert f"{ds.videos[0].name}@2+1" in names and f"{ds.videos[1].name}@4+3" in names
    # Every stride's offsets together hold each original frame once.
    for k in (2, 4):
        frames = sum(len(v.frames) for v in out.videos if f"@{k}+" in v.name)
        assert frames == ds.num_frames
    v = next(v for v in out.videos if v.name == f"{ds.videos[0].name}@4+1")
    assert [f.index for f in v.frames] == list(range(len(v.frames)))  # consecutive timesteps
    assert np.array_equal(v.frames[1].keypoints, ds.videos[0].frames[5].keypoints)
    # A Δ = 1 pair of a 4-strided video is 4 frames apart in the original.
    assert len(sample_pairs(out.table(), delta=4)) > len(sample_pairs(ds.table(), delta=4))
    assert with_frame_strides(ds, [1]) is ds
    with pytest.raises(ValueError, match="strides"):
        with_frame_strides(ds, [0])


def test_init_from_copies_weights_and_refuses_another_architecture(tmp_path):
    from omegaconf import OmegaConf

    from keytrack.config import ConfigError, load_config
    from keytrack.models.factory import build_matcher, load_weights, matcher_config

    small = ["model.hidden=16", "model.intermediate=16", "model.layers=1", "model.heads=2"]
    cfg = load_config(["experiment=improved", *small])
    torch.manual_seed(1)
    source = build_matcher(matcher_config(cfg))
    ckpt = tmp_path / "a.ckpt"
    torch.save(
        {
            "hyper_parameters": {"cfg": OmegaConf.to_container(cfg)},
            "state_dict": {f"model.{k}": v for k, v in source.state_dict().items()},
        },
        ckpt,
    )
    torch.manual_seed(2)
    target = load_weights(build_matcher(matcher_config(cfg)), str(ckpt))
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    with pytest.raises(ConfigError, match="does not fit"):
        load_weights(build_matcher(matcher_config(load_config(["experiment=default", *small]))), str(ckpt))
    with pytest.raises(ConfigError, match="no checkpoint"):
        load_weights(build_matcher(matcher_config(cfg)), str(tmp_path / "missing.ckpt"))


def test_predicted_copies_keep_identities_and_give_false_positives_their_own():
    from keytrack.augment import with_predicted_copies

    ds = generate_dataset(2, seed=6, config=TINY)
    out = with_predicted_copies(ds, ["predicted_boxes_predicted_keypoints"], seed=0)
    assert [v.name for v in out.videos] == [v.name for v in ds.videos] + [
        f"{v.name}~predicted_boxes_predicted_keypoints" for v in ds.videos
    ]
    for orig, copy in zip(ds.videos, out.videos[2:]):
        gt_ids = {int(t) for f in orig.frames for t in f.track_ids}
        ids = np.concatenate([f.track_ids for f in copy.frames])
        assert (ids >= 0).all(), "every predicted pose has an identity"
        kp_true = np.concatenate([f.keypoints for f in orig.frames])
        kp_pred = np.concatenate([f.keypoints for f in copy.frames if f.num_poses])
        assert not np.allclose(kp_pred[: len(kp_true)], kp_true[: len(kp_pred)]), "keypoints are perturbed"
        # People keep their ground-truth id; every false positive has an id no annotated person has,
        # seen in one frame only (it never matches anything).
        extra = [t for t in ids if t not in gt_ids]
        assert len(set(ids) & gt_ids) >= len(gt_ids) - 1
        assert len(extra) == len(set(extra))
    assert with_predicted_copies(ds, []) is ds
    with pytest.raises(ValueError, match="augment.predicted"):
        with_predicted_copies(ds, ["made_up"])


def test_training_on_predicted_copies_adds_their_pairs_to_training_only(tmp_path):
    from keytrack.config import load_config
    from keytrack.lightning.train import datamodule
    from keytrack.settings import training_settings

    ds = generate_dataset(5, seed=6, config=TINY)
    base = ["experiment=improved", "data.val_fraction=0.4"]
    plain = datamodule(training_settings(load_config(base)), ds)
    plain.setup("fit")
    predicted = load_config([*base, "augment.predicted=[predicted_boxes_predicted_keypoints]"])
    more = datamodule(training_settings(predicted), ds)
    more.setup("fit")
    assert len(more.train_set) > 1.5 * len(plain.train_set)
    assert len(more.val_set) == len(plain.val_set)  # validation stays ground truth
