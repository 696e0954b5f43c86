"""The matchers behind one interface: transformer, CNN on keypoints, CNN on crops, GCN (§4.2, §5.2, A.5).

Each trains a few steps through ``keytrack.lightning.train.train`` on generated scenes (loss must go down),
round-trips through ``load_matcher`` and tracks a two-video synthetic set through
``PoseEntailmentScorer.from_checkpoint``; the rasteriser, encoders, CNN depth and GCN score mapping
are checked on hand-made inputs.
"""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from keytrack.config import ConfigError, load_config
from keytrack.encoders import CropEncoder, GraphEncoder, RasterEncoder, TokenEncoder, pair_encoder
from keytrack.models.cnn import CNNConfig, CNNMatchingNetwork, num_conv_layers
from keytrack.models.factory import build_matcher, load_matcher, matcher_config
from keytrack.models.gcn import GCNConfig, SiameseGCN, contrastive_loss, spatial_adjacency
from keytrack.poses import Dataset
from keytrack.rasterize import HUE, SATURATION, rasterize_pairs, type_colours
from keytrack.skeleton import NUM_JOINTS
from keytrack.synth import generate_dataset

MATCHERS = ("transformer", "cnn_keypoints", "cnn_crops", "gcn")
SEED = 5  # synthetic scenes and data.synthetic.seed agree, so crops show the right scene
TINY_MODELS = {
    "transformer": ["model.hidden=16", "model.intermediate=16", "model.layers=1", "model.heads=2"],
    "cnn_keypoints": ["model.resolution=[16,12]", "model.channels=8", "model.hidden=32"],
    "cnn_crops": ["model.resolution=[16,12]", "model.channels=8", "model.hidden=32"],
    "gcn": ["model.channels=16", "model.embedding=16"],
}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scenes():
    return generate_dataset(4, seed=SEED)


def _cfg(out, name, *overrides):
    return load_config(
        [
            f"model.name={name}",
            f"output_dir={out}",
            "logging.wandb=false",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            f"data.synthetic.seed={SEED}",
            *TINY_MODELS[name],
            *overrides,
        ]
    )


def _pose(x0: float, y0: float, step: float = 4.0) -> np.ndarray:
    kp = np.zeros((NUM_JOINTS, 3))
    kp[:, 0] = x0 + step * np.arange(NUM_JOINTS) % 40
    kp[:, 1] = y0 + 3 * np.arange(NUM_JOINTS)
    kp[:, 2] = 1
    return kp


# -- rasteriser -------------------------------------------------------------------------------------


def test_rasterizer_colours_and_pixel_positions():
    # Frame 100 × 50 onto a 10 × 5 image: one pixel per 10 × 10 frame pixels.
    cur = torch.zeros(1, NUM_JOINTS, 3)
    prev = torch.zeros(1, NUM_JOINTS, 3)
    cur[0, 0] = torch.tensor([5.0, 5.0, 1.0])  # type 0 → pixel (row 0, col 0)
    cur[0, 7] = torch.tensor([99.0, 49.0, 1.0])  # type 7 → (4, 9), the last pixel
    cur[0, 3] = torch.tensor([35.0, 25.0, 0.0])  # invisible: not drawn
    cur[0, 4] = torch.tensor([250.0, -3.0, 0.9])  # outside the frame: clamped to (0, 9)
    prev[0, 14] = torch.tensor([42.0, 21.0, 1.0])  # type 14 → (2, 4) in the earlier pose's channels
    prev[0, 2] = torch.tensor([45.0, 29.0, 1.0])  # type 2, same pixel: the brighter type 14 wins
    image = rasterize_pairs(cur, prev, torch.tensor([[100.0, 50.0]]), resolution=(10, 5))
    assert image.shape == (1, 6, 5, 10)
    colours = type_colours()
    expected = torch.zeros(6, 5, 10)
    expected[0:3, 0, 0] = colours[0]
    expected[0:3, 4, 9] = colours[7]
    expected[0:3, 0, 9] = colours[4]
    expected[3:6, 2, 4] = colours[14]
    assert torch.equal(image[0], expected)
    # A.5: hue and saturation fixed, value stepped by 100/|K| % from type to type, 100 % for the last.
    hsv = np.array([colorsys.rgb_to_hsv(*c) for c in colours.tolist()])
    assert np.allclose(hsv[:, 0], HUE) and np.allclose(hsv[:, 1], SATURATION)
    assert np.allclose(hsv[:, 2], np.arange(1, NUM_JOINTS + 1) / NUM_JOINTS)
    assert np.allclose(np.diff(hsv[:, 2]), 1 / NUM_JOINTS) and hsv[-1, 2] == pytest.approx(1.0)


def test_rasterizer_matches_position_tokens_and_is_batched():
    from keytrack.tokenize import TokenConfig, tokenize_pairs

    rng = np.random.default_rng(0)
    m = 7
    kp = torch.tensor(rng.uniform(0, 1, (2, m, NUM_JOINTS, 3)) * [960, 540, 1], dtype=torch.float32)
    kp[..., 2] = (kp[..., 2] > 0.2).float()
    size = torch.tensor([[960.0, 540.0]]).expand(m, 2)
    image = rasterize_pairs(kp[0], kp[1], size, (24, 18))
    tokens = tokenize_pairs(kp[0], kp[1], size, torch.ones(m, dtype=torch.long), TokenConfig())
    # Every visible keypoint lights the pixel of its Position token, in its pose's channel group.
    lit = image.view(m, 2, 3, 18 * 24)[..., 0, :] > 0  # [M, 2, 432]
    pos = tokens["position"].view(m, 2, NUM_JOINTS)
    vis = tokens["mask"].view(m, 2, NUM_JOINTS)
    assert lit.gather(2, pos)[vis].all()
    assert int(lit.sum()) <= int(vis.sum())
    # Pair i alone gives the same image as in the batch.
    one = rasterize_pairs(kp[0, 3:4], kp[1, 3:4], size[3:4], (24, 18))
    assert torch.equal(one[0], image[3])


# -- encoders and networks --------------------------------------------------------------------------


def _pairs(m: int = 5):
    rng = np.random.default_rng(1)
    cur = torch.tensor(np.stack([_pose(100 + 50 * i, 80) for i in range(m)]), dtype=torch.float32)
    prev = cur + torch.tensor(rng.normal(0, 3, (m, NUM_JOINTS, 3)), dtype=torch.float32) * torch.tensor(
        [1, 1, 0]
    )
    prev[0, 3:, 2] = 0
    size = torch.tensor([[960.0, 540.0]]).expand(m, 2)
    delta = torch.tensor([1, 2, 3, 4, 1][:m])
    return cur, prev, size, delta


def test_encoder_shapes_for_every_matcher():
    cur, prev, size, delta = _pairs()
    crops = (
        torch.randint(0, 256, (5, 3, 12, 16), dtype=torch.uint8),
        torch.randint(0, 256, (5, 3, 12, 16), dtype=torch.uint8),
    )
    expected = {
        "transformer": {"position": (5, 30), "type": (5, 30), "segment": (5, 30), "mask": (5, 30)},
        "cnn_keypoints": {"image": (5, 6, 12, 16)},
        "cnn_crops": {"image": (5, 6, 12, 16)},
        "gcn": {"current": (5, 15, 3), "previous": (5, 15, 3)},
    }
    for name in MATCHERS:
        cfg = load_config([f"model.name={name}", *TINY_MODELS[name]])
        enc = pair_encoder(cfg)
        assert enc.delta == 4 and enc.needs_crops == (name == "cnn_crops")
        batch = enc(cur, prev, size, delta, crops if enc.needs_crops else None)
        assert {k: tuple(v.shape) for k, v in batch.items()} == expected[name], name
        logits = build_matcher(matcher_config(cfg)).eval()(batch)
        assert logits.shape == (5, 2) and torch.isfinite(logits).all(), name
        with pytest.raises(ValueError, match="delta"):
            enc(cur, prev, size, torch.tensor([1, 2, 3, 4, 5]), crops)
    assert isinstance(pair_encoder(load_config([])), TokenEncoder)
    crop_batch = CropEncoder((16, 12))(cur, prev, size, delta, crops)["image"]
    assert torch.equal(crop_batch[:, :3], crops[0].float() / 255 - 0.5)  # current pose first
    assert torch.equal(crop_batch[:, 3:], crops[1].float() / 255 - 0.5)
    with pytest.raises(ValueError, match="needs the crops"):
        CropEncoder((16, 12))(cur, prev, size, delta)
    with pytest.raises(ValueError, match="model.resolution"):
        CropEncoder((24, 18))(cur, prev, size, delta, crops)
    assert torch.equal(
        RasterEncoder((16, 12))(cur, prev, size, delta)["image"], rasterize_pairs(cur, prev, size, (16, 12))
    )


def test_graph_encoder_box_and_frame_coordinates():
    cur, prev, size, delta = _pairs(2)
    box = GraphEncoder("box")(cur, prev, size, delta)
    frame = GraphEncoder("frame")(cur, prev, size, delta)
    c = cur[1]
    origin = c[:, :2].min(0).values
    assert torch.allclose(box["current"][1, :, :2], (c[:, :2] - origin) / 540.0)
    assert torch.allclose(frame["current"][1, :, :2], c[:, :2] / torch.tensor([960.0, 540.0]))
    # The earlier pose of pair 0 has only its first 3 joints: the others are (0, 0, 0).
    assert (box["previous"][0, 3:] == 0).all() and (box["previous"][0, :3, 2] == 1).all()
    # Box coordinates ignore where the pose is: shifting it changes nothing.
    moved = GraphEncoder("box")(cur + torch.tensor([300.0, 100.0, 0.0]), prev, size, delta)
    assert torch.allclose(moved["current"], box["current"], atol=1e-5)
    with pytest.raises(ValueError, match="coordinates"):
        GraphEncoder("pixels")


def test_cnn_depth_follows_a5():
    assert [num_conv_layers(r) for r in [(24, 18), (32, 32), (64, 48), (8, 6), (4, 3)]] == [3, 4, 5, 2, 1]
    net = CNNMatchingNetwork(CNNConfig(resolution=(24, 18)))
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256]  # doubled after each pool
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.features) == 3
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.features) == 3
    assert [m for m in net.classifier if isinstance(m, torch.nn.Linear)][0].in_features == 256 * 3 * 3
    assert net.eval()({"image": torch.zeros(2, 6, 18, 24)}).shape == (2, 2)
    with pytest.raises(ValueError, match="image must be"):
        net({"image": torch.zeros(2, 6, 24, 18)})


def test_gcn_graph_score_mapping_and_loss():
    a = spatial_adjacency()
    assert a.shape == (3, NUM_JOINTS, NUM_JOINTS)
    assert np.allclose(a.sum(0).sum(0), 1.0)  # A D^-1: every column sums to 1
    assert np.allclose(np.diag(a[0]), a.sum(0).diagonal())  # self links are the root partition
    torch.manual_seed(0)
    model = SiameseGCN(GCNConfig(channels=8, embedding=8, margin=2.0)).eval()
    cur, prev, size, delta = _pairs()
    batch = GraphEncoder()(cur, prev, size, delta)
    d = model.distance(batch)
    logits = model(batch)
    p = logits.softmax(-1)[:, 1]
    assert torch.allclose(p, torch.sigmoid(10.0 / 2.0 * (1.0 - d)), atol=1e-6)  # 0.5 at d = m/2
    labels = torch.tensor([1, 0, 1, 0, 0])
    assert model.loss(logits, labels).item() == pytest.approx(
        contrastive_loss(d, labels, 2.0).item(), rel=1e-5
    )
    same = {"current": batch["current"], "previous": batch["current"]}
    assert (model(same).softmax(-1)[:, 1] > 0.99).all()  # identical poses: distance ~0
    # Hand-computed contrastive loss: match at d = 0.5, non-match at d = 0.5 with margin 2.
    assert contrastive_loss(torch.tensor([0.5, 0.5]), torch.tensor([1, 0]), 2.0).item() == pytest.approx(
        (0.25 + 1.5**2) / 2 / 2
    )


# -- training, checkpoints, tracking ----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, scenes):
    """Each matcher trained 80 steps by ``keytrack.lightning.train.train``: name -> (cfg, result,
    losses)."""
    from keytrack.lightning.train import train
    from keytrack.runlogs import read_metrics

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for name in MATCHERS:
        experiment = "base" if name == "transformer" else name  # experiments/<name>.yaml
        cfg = _cfg(
            out,
            name,
            f"experiment={experiment}",
            "loader.samples_per_epoch=1280",
            "trainer.max_epochs=2",
            "optim.lr=3e-3",
            "trainer.log_every_n_steps=4",
            "loader.val_batch_size=256",
            "trainer.limit_val_batches=2",
            "validation.monitor=val/acc",
        )  # judged by pair accuracy
        result = train(cfg, scenes)
        losses = [float(r["train/loss"]) for r in read_metrics(result["run_dir"]) if r.get("train/loss")]
        runs[name] = (cfg, result, losses)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", MATCHERS)
def test_each_matcher_trains_with_the_loss_going_down(trained, name):
    cfg, result, losses = trained[name]
    assert result["global_step"] == 80 and len(losses) >= 10
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    if name != "transformer":  # the transformer needs more steps (tests/test_training.py trains 300)
        assert result["best_val_acc"] > 0.7, result["best_val_acc"]
    assert result["parameters"] == sum(p.numel() for p in build_matcher(matcher_config(cfg)).parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", MATCHERS)
def test_load_matcher_round_trip(trained, name, scenes):
    from keytrack.data import TokenizedPairs
    from keytrack.lightning import MatchingModule

    cfg, result, _ = trained[name]
    model, saved = load_matcher(result["last_checkpoint"])
    assert saved.model.name == name and not model.training
    module = MatchingModule.load_from_checkpoint(result["last_checkpoint"]).eval()
    batch = TokenizedPairs.build(scenes, np.arange(2), cfg).__getitems__(list(range(12)))
    with torch.no_grad():
        assert torch.allclose(model(batch), module(batch), atol=1e-6)
    trained_state = torch.load(result["last_checkpoint"], weights_only=False)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, trained_state[f"model.{k}"]), k


@pytest.mark.slow
@pytest.mark.parametrize("name", MATCHERS)
def test_tracking_with_each_matcher(trained, name):
    from keytrack.tracking import PoseEntailmentScorer, Tracker

    _, result, _ = trained[name]
    videos = generate_dataset(2, seed=SEED, first_index=1000)  # unseen scenes of the same seed
    scorer = PoseEntailmentScorer.from_checkpoint(result["last_checkpoint"])
    calls = []
    forward = scorer.model.forward
    scorer.model.forward = lambda batch: calls.append(len(next(iter(batch.values())))) or forward(batch)
    tracked = Tracker(scorer, delta=4, nearest=3).track_dataset(videos)
    frames = [f for v in tracked.videos for f in v.frames]
    assert len(frames) == videos.num_frames
    with_candidates = sum(len(v.frames) - 1 for v in tracked.videos if v.frames)
    assert len(calls) == scorer.forwards == with_candidates  # one forward per frame
    assert sum(calls) == scorer.pairs_scored > 0
    for f in frames:
        assert len(np.unique(f.track_ids)) == f.num_poses and (f.track_ids >= 0).all()
    # Some people keep their id from one frame to the next.
    kept = sum(
        len(np.intersect1d(a.track_ids, b.track_ids))
        for v in tracked.videos
        for a, b in zip(v.frames, v.frames[1:])
    )
    assert kept > 0


def test_crop_scorer_cuts_what_training_cuts():
    """The tracker's crops of a frame's poses equal ``pose_crops`` of the same poses."""
    from keytrack.frames import frame_source, pose_crops
    from keytrack.tracking import Candidates, PoseEntailmentScorer

    cfg = load_config(["model.name=cnn_crops", f"data.synthetic.seed={SEED}", *TINY_MODELS["cnn_crops"]])
    video = generate_dataset(1, seed=SEED, first_index=1000).videos[0]
    source = frame_source(cfg.data)
    crops = pose_crops(Dataset([video]), source, size=(16, 12))
    first = {f.index: sum(g.num_poses for g in video.frames[:i]) for i, f in enumerate(video.frames)}
    scorer = PoseEntailmentScorer(build_matcher(matcher_config(cfg)), pair_encoder(cfg), frames=source)
    scorer.begin_video(video)
    now, before = video.frames[3], video.frames[1]
    cand = Candidates(
        before.keypoints,
        before.boxes,
        before.track_ids,
        np.full(before.num_poses, 2),
        frame=np.full(before.num_poses, before.index),
    )
    q, c = scorer.crops.pairs(now.keypoints, now.boxes, cand)
    assert torch.equal(q, crops[first[now.index] : first[now.index] + now.num_poses])
    assert torch.equal(c, crops[first[before.index] : first[before.index] + before.num_poses])
    with pytest.raises(ValueError, match="needs images"):
        PoseEntailmentScorer(build_matcher(matcher_config(cfg)), pair_encoder(cfg))


def test_model_keys_belong_to_their_matcher():
    from keytrack.config import overrides_for
    from keytrack.models import registry

    assert sorted(registry.names()) == sorted(MATCHERS)
    for name in registry.names():  # a group file per registered matcher
        assert registry.get(name).group_file().is_file()
    with pytest.raises(ConfigError, match="unknown key 'model.layers'"):
        load_config(["experiment=gcn", "model.layers=2"])  # the GCN has no layers
    with pytest.raises(ConfigError, match="unknown matcher 'lstm'"):
        load_config(["model.name=lstm"])
    shared = ["model.layers=1", "model.channels=8", "optim.lr=0.1", "model.layerz=3"]
    assert overrides_for("gcn", shared) == ["model.channels=8", "optim.lr=0.1", "model.layerz=3"]
    assert overrides_for("default", shared) == ["model.layers=1", "optim.lr=0.1", "model.layerz=3"]
    assert overrides_for("default", ["model.name=gcn", *shared])[1:] == [
        "model.channels=8",
        "optim.lr=0.1",
        "model.layerz=3",
    ]


def test_new_experiment_files_pick_their_matchers():
    for name in ("cnn_keypoints", "cnn_crops", "gcn"):
        cfg = load_config([f"experiment={name}"])
        assert cfg.model.name == name and cfg.optim.lr == load_config([]).optim.lr  # A.5: same training
