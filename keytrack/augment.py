"""Pair augmentation for training the matching network (beyond the paper).

Position tokens are a lookup table over the w × h grid (§3.2), so a cell's embedding is learnt
only from the poses that happen to fall in it. With a few dozen training videos, people occupy a
small part of the frame, and held-out videos put them in cells the network has barely seen. Two
label-preserving transformations, applied to *both* poses of a pair alike, spread the training
poses over the frame:

* **translation**: shift the pair by a random offset that keeps every visible keypoint of both
  poses inside the frame (uniform over the offsets that do);
* **horizontal flip**: mirror x and swap left/right joints (``keytrack.skeleton.FLIP``), so a
  left shoulder stays a left shoulder.

Neither changes the relative motion between the two poses, which is what Pose Entailment judges.
"""
from __future__ import annotations

import torch
from torch import Tensor

from keytrack.skeleton import FLIP


def augment_pairs(current: Tensor, previous: Tensor, frame_size: Tensor, *, translate: bool = True,
                  flip: float = 0.5, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Randomly translated / flipped copies of ``[M, 15, 3]`` pose pairs in frames ``[M, 2]``."""
    cur, prev = current.clone(), previous.clone()
    m = len(cur)
    if m == 0:
        return cur, prev
    both = torch.cat([cur, prev], dim=1)                          # [M, 30, 3]
    vis = both[..., 2] > 0
    size = frame_size.to(cur.dtype)
    if flip > 0:
        mirror = torch.rand(m, generator=generator) < flip
        perm = torch.as_tensor(FLIP)
        for pose in (cur, prev):
            flipped = pose[mirror][:, perm]
            flipped[..., 0] = torch.where(flipped[..., 2] > 0, size[mirror, None, 0] - flipped[..., 0],
                                          flipped[..., 0])
            pose[mirror] = flipped
        both = torch.cat([cur, prev], dim=1)
    if translate:
        big = torch.finfo(cur.dtype).max
        lo = torch.stack([torch.where(vis, both[..., i], big).amin(1) for i in (0, 1)], -1)      # [M, 2]
        hi = torch.stack([torch.where(vis, both[..., i], -big).amax(1) for i in (0, 1)], -1)
        low, high = -lo, size - 1e-3 - hi                          # allowed offsets
        ok = vis.any(1, keepdim=True) & (high >= low)
        offset = torch.where(ok, low + torch.rand(m, 2, generator=generator) * (high - low), 0.0)
        for pose in (cur, prev):
            present = pose[..., 2:3] > 0
            pose[..., :2] = torch.where(present, pose[..., :2] + offset[:, None, :], pose[..., :2])
    return cur, prev
