"""``keytrack convert-checkpoint``: checkpoints and run configs of former layouts rewritten into the
current one (:mod:`keytrack.convert`), and refused by every loader until they are.

The former layouts are made here from current ones, as the code of their time wrote them:
separate ``query`` / ``key`` / ``value`` projections in each encoder layer (and AdamW moments for
each), the flat ``model`` section with every matcher's keys, no ``trained_joints`` record.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from keytrack.cli import main
from keytrack.config import ConfigError, load_config, with_defaults
from keytrack.errors import CheckpointError
from keytrack.models.factory import build_matcher, load_matcher, load_weights, matcher_config

TINY = ["model.hidden=16", "model.intermediate=16", "model.layers=2", "model.heads=2"]

#: ``model`` as base.yaml spelled it for every matcher before matchers had config groups.
FLAT_MODEL = {
    "name": "transformer",
    "init_from": None,
    "hidden": 128,
    "intermediate": 128,
    "layers": 4,
    "heads": 4,
    "dropout": 0.1,
    "init_std": 0.02,
    "resolution": [24, 18],
    "cnn_channels": 64,
    "cnn_hidden": 512,
    "gcn_channels": 64,
    "gcn_embedding": 128,
    "gcn_margin": 1.0,
    "gcn_coordinates": "box",
}

#: A model key of each matcher, in its group now -> in the flat section.
FLAT_NAMES = {
    "transformer": {"hidden": "hidden", "intermediate": "intermediate", "layers": "layers", "heads": "heads"},
    "cnn_keypoints": {"resolution": "resolution", "channels": "cnn_channels", "hidden": "cnn_hidden"},
    "cnn_crops": {"resolution": "resolution", "channels": "cnn_channels", "hidden": "cnn_hidden"},
    "gcn": {"channels": "gcn_channels", "embedding": "gcn_embedding"},
}


def _flat(cfg: dict) -> dict:
    """``cfg`` (a plain dict) with its ``model`` section flat, this matcher's values kept."""
    model = cfg["model"]
    values = {FLAT_NAMES[model["name"]].get(k, k): v for k, v in model.items()}
    return {**cfg, "model": {**FLAT_MODEL, **values}}


def _tokens(model, m: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = model.config
    mask = torch.rand(m, 30, generator=g) > 0.3
    mask[0] = False  # a pair with no visible keypoint
    return {
        "position": torch.randint(0, c.num_positions, (m, 30), generator=g),
        "type": torch.arange(15).repeat(2).expand(m, 30).clone(),
        "segment": torch.cat(
            [
                torch.zeros(m, 15, dtype=torch.long),
                torch.randint(1, c.num_segments, (m, 1), generator=g).expand(m, 15),
            ],
            1,
        ),
        "mask": mask,
    }


def _trained_checkpoint(overrides=()) -> tuple[dict, torch.nn.Module]:
    """A current-layout checkpoint as ``keytrack train`` writes it: weights, ``trained_joints``, the
    module's hyperparameters and the run's config, AdamW's state after one step (groups from
    ``MatchingModule.configure_optimizers``)."""
    from keytrack.lightning.train import matching_module
    from keytrack.settings import training_settings

    cfg = load_config([*TINY, *overrides])
    torch.manual_seed(0)
    module = matching_module(training_settings(cfg))
    module.trained_joints[0] = False  # the nose unseen, as in Bonn
    module._trainer = SimpleNamespace(estimated_stepping_batches=10)
    optimizer = module.configure_optimizers()["optimizer"]
    module._trainer = None
    tokens = _tokens(module.model)
    F.cross_entropy(module(tokens), torch.arange(len(tokens["mask"])) % 2).backward()
    optimizer.step()
    checkpoint = {
        "epoch": 0,
        "global_step": 1,
        "state_dict": copy.deepcopy(module.state_dict()),
        "optimizer_states": [copy.deepcopy(optimizer.state_dict())],
        "hyper_parameters": {
            **copy.deepcopy(dict(module.hparams)),
            "cfg": OmegaConf.to_container(cfg, resolve=True),
        },
    }
    return checkpoint, module.model.eval()


def _old_layout(current: dict) -> dict:
    """``current`` as it was written before Q, K, V were stacked, before matchers had config groups
    and before the joints record: each ``qkv`` split into ``query``, ``key``, ``value`` (that order,
    each Linear's weight then bias), their AdamW moments split alike, the flat model section."""
    old = copy.deepcopy(current)
    state = current["state_dict"]
    split = {}  # current parameter -> its old parts
    layout = {}
    for name, tensor in state.items():
        if name == "trained_joints" or name.endswith(".qkv.bias"):
            continue
        if name.endswith(".qkv.weight"):
            prefix = name.removesuffix("qkv.weight")
            bias = state[f"{prefix}qkv.bias"]
            for part, w, b in zip(("query", "key", "value"), tensor.chunk(3), bias.chunk(3)):
                layout[f"{prefix}{part}.weight"], layout[f"{prefix}{part}.bias"] = w.clone(), b.clone()
            split[name] = [f"{prefix}{p}.weight" for p in ("query", "key", "value")]
            split[f"{prefix}qkv.bias"] = [f"{prefix}{p}.bias" for p in ("query", "key", "value")]
        else:
            layout[name] = tensor.clone()
    old["state_dict"] = layout

    def grouped(params: dict) -> list[str]:  # configure_optimizers: matrices, then vectors
        names = [n for n in params if n.startswith("model.")]
        return [n for n in names if params[n].ndim >= 2] + [n for n in names if params[n].ndim < 2]

    new_order, old_order = grouped(state), grouped(layout)
    optimizer = old["optimizer_states"][0]
    current_ids = {
        n: i for n, i in zip(new_order, [i for g in optimizer["param_groups"] for i in g["params"]])
    }
    moments = {}
    for name in new_order:
        m = current["optimizer_states"][0]["state"][current_ids[name]]
        parts = split.get(name, [name])
        for j, part in enumerate(parts):
            moments[part] = {
                k: (v.chunk(3)[j].clone() if k.startswith("exp_avg") and len(parts) == 3 else v)
                for k, v in m.items()
            }
    optimizer["state"] = {i: moments[n] for i, n in enumerate(old_order)}
    sizes = [
        sum(len(split.get(n, [n])) for n in new_order if (state[n].ndim >= 2) == matrices)
        for matrices in (True, False)
    ]
    optimizer["param_groups"][0]["params"] = list(range(sizes[0]))
    optimizer["param_groups"][1]["params"] = list(range(sizes[0], sizes[0] + sizes[1]))
    old["hyper_parameters"] = {"cfg": _flat(current["hyper_parameters"]["cfg"])}
    return old


def test_an_old_checkpoint_converts_to_the_current_one(tmp_path, capsys):
    current, model = _trained_checkpoint()
    old = _old_layout(current)
    assert "model.encoder.0.query.weight" in old["state_dict"] and "trained_joints" not in old["state_dict"]
    assert len(old["optimizer_states"][0]["state"]) == len(current["optimizer_states"][0]["state"]) + 4 * 2
    old_path, new_path = tmp_path / "old.ckpt", tmp_path / "new.ckpt"
    torch.save(old, old_path)

    assert main(["convert-checkpoint", str(old_path), str(new_path)]) == 0
    assert "Q, K, V weights stacked into qkv" in capsys.readouterr().out
    new = torch.load(new_path, weights_only=False)
    # The weights (same keys, same order), the optimizer's moments and the config of the original.
    assert list(new["state_dict"]) == list(current["state_dict"])
    for key, tensor in current["state_dict"].items():
        if key != "trained_joints":
            assert torch.equal(new["state_dict"][key], tensor), key
    assert new["state_dict"]["trained_joints"].all()  # tracked with every joint then
    a, b = new["optimizer_states"][0], current["optimizer_states"][0]
    assert [g["params"] for g in a["param_groups"]] == [g["params"] for g in b["param_groups"]]
    for i, moments in b["state"].items():
        for k, v in moments.items():
            assert torch.equal(a["state"][i][k], v), (i, k)
    assert new["hyper_parameters"]["cfg"] == current["hyper_parameters"]["cfg"]
    # The converted checkpoint loads, and its network computes what the original did.
    loaded, cfg = load_matcher(str(new_path))
    tokens = _tokens(model, m=300, seed=1)
    with torch.no_grad():
        assert torch.equal(loaded(tokens), model(tokens))
    assert cfg.model.layers == 2 and loaded.trained_joints.all()


def test_an_old_checkpoint_is_refused_until_converted(tmp_path):
    from keytrack.lightning.train import matching_module
    from keytrack.settings import training_settings

    current, _ = _trained_checkpoint()
    old_path = tmp_path / "old.ckpt"
    torch.save(_old_layout(current), old_path)
    message = f"{old_path}: a checkpoint of a former layout .*keytrack convert-checkpoint {old_path}"
    with pytest.raises(CheckpointError, match=message):
        load_matcher(str(old_path))
    with pytest.raises(CheckpointError, match=message):
        load_weights(build_matcher(matcher_config(load_config(TINY))), str(old_path))
    # Lightning's resume (and load_from_checkpoint) goes through the module's hook.
    module = matching_module(training_settings(load_config(TINY)))
    with pytest.raises(
        CheckpointError, match="separate query / key / value.*no trained_joints.*convert-checkpoint"
    ):
        module.on_load_checkpoint(torch.load(old_path, weights_only=False))
    # Each former layout alone is refused too.
    qkv_only = _old_layout(current)
    qkv_only["hyper_parameters"] = current["hyper_parameters"]
    qkv_only["state_dict"]["trained_joints"] = current["state_dict"]["trained_joints"]
    torch.save(qkv_only, tmp_path / "qkv.ckpt")
    with pytest.raises(CheckpointError, match=r"\(separate query / key / value weights\)"):
        load_matcher(str(tmp_path / "qkv.ckpt"))
    module.on_load_checkpoint(copy.deepcopy(current))  # the current layout passes
    without_joints = copy.deepcopy(current)
    del without_joints["state_dict"]["trained_joints"]
    with pytest.raises(CheckpointError, match="no trained_joints record"):
        module.on_load_checkpoint(without_joints)


def test_a_current_checkpoint_is_left_unchanged(tmp_path, capsys):
    current, _ = _trained_checkpoint()
    path, target = tmp_path / "current.ckpt", tmp_path / "target.ckpt"
    torch.save(current, path)
    before = path.read_bytes()
    assert main(["convert-checkpoint", str(path), str(target)]) == 0
    assert "already in the current layout" in capsys.readouterr().out
    assert not target.exists() and path.read_bytes() == before
    assert main(["convert-checkpoint", str(path), str(path)]) == 0  # in place: untouched
    assert path.read_bytes() == before
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    assert main(["convert-checkpoint", str(tmp_path / "junk.ckpt"), str(target)]) == 2
    assert "not a readable torch checkpoint" in capsys.readouterr().err and not target.exists()


def test_a_checkpoint_of_another_matcher_with_the_flat_model_section(tmp_path):
    """The GCN's keys were ``gcn_*`` in the flat section; converted, they are its group's."""
    torch.manual_seed(0)
    small = load_config(["model.name=gcn", "model.channels=16", "model.embedding=16"])
    model = build_matcher(matcher_config(small)).eval()
    old = tmp_path / "old.ckpt"
    torch.save(
        {
            "hyper_parameters": {"cfg": _flat(OmegaConf.to_container(small, resolve=True))},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        old,
    )
    with pytest.raises(CheckpointError, match=r"\(the flat model section\)"):
        load_matcher(str(old))
    assert main(["convert-checkpoint", str(old), str(old)]) == 0  # in place
    loaded, saved = load_matcher(str(old))
    assert saved.model.name == "gcn" and saved.model.channels == 16 and "layers" not in saved.model
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


@pytest.mark.parametrize("name", ["transformer", "cnn_keypoints", "cnn_crops", "gcn"])
def test_a_run_config_with_the_flat_model_section(tmp_path, name):
    """A run's ``config.yaml`` of the flat model section is refused (naming the file and the
    command) until converted; converted, it is the same run as the current config."""
    from keytrack.runlogs import check_resumable

    cfg = load_config([f"output_dir={tmp_path}", f"model.name={name}"])
    saved = tmp_path / "run" / "config.yaml"
    saved.parent.mkdir()
    saved.write_text(OmegaConf.to_yaml(_flat(OmegaConf.to_container(cfg, resolve=True))))
    with pytest.raises(
        ConfigError, match=f"{saved}: saved with the former flat model section.*convert-checkpoint"
    ):
        with_defaults(OmegaConf.load(saved), source=saved)
    with pytest.raises(ConfigError, match="keytrack convert-checkpoint"):
        check_resumable(cfg, saved)
    assert main(["convert-checkpoint", str(saved), str(saved)]) == 0
    assert OmegaConf.to_container(with_defaults(OmegaConf.load(saved))) == OmegaConf.to_container(cfg)
    check_resumable(cfg, saved)  # the same run: no error
    key, value = {
        "transformer": ("layers", 2),
        "cnn_keypoints": ("channels", 8),
        "cnn_crops": ("hidden", 64),
        "gcn": ("embedding", 64),
    }[name]
    changed = load_config([f"output_dir={tmp_path}", f"model.name={name}", f"model.{key}={value}"])
    with pytest.raises(ConfigError, match=f"model.{key}"):
        check_resumable(changed, saved)
