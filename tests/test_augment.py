"""Pair augmentation: label-preserving, inside the frame, applied to training pairs only."""

import numpy as np
import torch

from keytrack.augment import augment_pairs
from keytrack.skeleton import JOINTS


def _pair():
    g = torch.Generator().manual_seed(0)
    cur = torch.zeros(64, 15, 3)
    cur[..., 0] = 200 + 100 * torch.rand(64, 15, generator=g)
    cur[..., 1] = 100 + 80 * torch.rand(64, 15, generator=g)
    cur[..., 2] = (torch.rand(64, 15, generator=g) > 0.2).float()
    prev = cur.clone()
    prev[..., :2] += 5.0  # the earlier pose, moved a little
    size = torch.tensor([[640.0, 480.0]]).expand(64, 2)
    return cur, prev, size


def test_translation_keeps_pairs_in_frame_and_their_relative_motion():
    cur, prev, size = _pair()
    a, b = augment_pairs(
        cur, prev, size, translate=True, flip=0.0, generator=torch.Generator().manual_seed(1)
    )
    vis = cur[..., 2] > 0
    assert torch.equal(a[..., 2], cur[..., 2]) and torch.equal(b[..., 2], prev[..., 2])
    shift = (a[..., :2] - cur[..., :2])[vis]
    assert shift.abs().max() > 10, "poses should move"
    torch.testing.assert_close((b - a)[..., :2][vis], (prev - cur)[..., :2][vis], atol=1e-3, rtol=0)
    for pose in (a, b):
        xy = pose[..., :2][vis]
        assert (xy >= 0).all() and (xy[:, 0] < 640).all() and (xy[:, 1] < 480).all()
    # absent keypoints stay where they were (0, 0, 0)
    assert torch.equal(a[~vis], cur[~vis])


def test_flip_mirrors_x_and_swaps_left_and_right():
    cur, prev, size = _pair()
    a, b = augment_pairs(cur, prev, size, translate=False, flip=1.0)
    ls, rs = JOINTS.index("left_shoulder"), JOINTS.index("right_shoulder")
    i = int(np.flatnonzero((cur[:, rs, 2] > 0).numpy())[0])
    assert a[i, ls, 0] == 640 - cur[i, rs, 0] and a[i, ls, 1] == cur[i, rs, 1]
    assert torch.equal(b[i, ls, :2], torch.stack([640 - prev[i, rs, 0], prev[i, rs, 1]]))


def test_same_generator_seed_same_augmentation():
    cur, prev, size = _pair()
    x = augment_pairs(cur, prev, size, generator=torch.Generator().manual_seed(3))
    y = augment_pairs(cur, prev, size, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(x, y))


def test_datamodule_augments_training_pairs_only(tmp_path):
    from keytrack.config import load_config
    from keytrack.lightning.train import datamodule
    from keytrack.settings import training_settings
    from keytrack.synth import generate_dataset

    cfg = load_config([f"output_dir={tmp_path}", "augment.translate=true", "augment.flip=0.5"])
    dm = datamodule(training_settings(cfg), generate_dataset(4, seed=1))
    dm.setup("fit")
    idx = list(range(32))
    assert not torch.equal(dm.train_set.__getitems__(idx)["position"], dm.train_set.tokens["position"][:32])
    assert torch.equal(dm.val_set.__getitems__(idx)["position"], dm.val_set.tokens["position"][:32])
