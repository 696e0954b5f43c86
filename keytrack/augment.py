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

Three more cover the errors of real keypoints and the sizes of real people (they do change the
pair, as a pose estimator and a camera would):

* **scale / rotation** of both poses alike about the centre of the pair's visible keypoints
  (zoom ``U(lo, hi)``, angle ``U(-r, r)`` degrees), clamped to the frame;
* **jitter**: independent Gaussian noise on every visible keypoint, its std a fraction of its own
  pose's scale (``√`` of the keypoint-box area), clamped to the frame;
* **dropped keypoints**: each visible keypoint is removed (``x, y, c = 0``) with probability
  ``drop``; a pose always keeps at least one keypoint.

A keypoint invisible before stays invisible and untouched; no visible keypoint leaves the frame.
"""

from __future__ import annotations

import torch
from torch import Tensor

from keytrack.skeleton import FLIP


def is_active(options: dict) -> bool:
    """Whether augmentation ``options`` (the ``augment`` config section) change anything."""
    return bool(
        options.get("translate")
        or (options.get("flip") or 0) > 0
        or options.get("scale")
        or (options.get("rotate") or 0) > 0
        or (options.get("jitter") or 0) > 0
        or (options.get("drop") or 0) > 0
    )


def augment_pairs(
    current: Tensor,
    previous: Tensor,
    frame_size: Tensor,
    *,
    translate: bool = True,
    flip: float = 0.5,
    scale: tuple[float, float] | None = None,
    rotate: float = 0.0,
    jitter: float = 0.0,
    drop: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Randomly augmented copies of ``[M, 15, 3]`` pose pairs in frames ``[M, 2]`` (module docstring)."""
    cur, prev = current.clone(), previous.clone()
    m = len(cur)
    if m == 0:
        return cur, prev
    size = frame_size.to(cur.dtype)
    if scale or rotate > 0:
        _scale_rotate(cur, prev, size, scale, float(rotate), generator)
    if jitter > 0:
        for pose in (cur, prev):
            _jitter(pose, size, float(jitter), generator)
    if drop > 0:
        for pose in (cur, prev):
            _drop(pose, float(drop), generator)
    both = torch.cat([cur, prev], dim=1)  # [M, 30, 3]
    vis = both[..., 2] > 0
    if flip > 0:
        mirror = torch.rand(m, generator=generator) < flip
        perm = torch.as_tensor(FLIP)
        for pose in (cur, prev):
            flipped = pose[mirror][:, perm]
            flipped[..., 0] = torch.where(
                flipped[..., 2] > 0, size[mirror, None, 0] - flipped[..., 0], flipped[..., 0]
            )
            pose[mirror] = flipped
        both = torch.cat([cur, prev], dim=1)
    if translate:
        big = torch.finfo(cur.dtype).max
        lo = torch.stack([torch.where(vis, both[..., i], big).amin(1) for i in (0, 1)], -1)  # [M, 2]
        hi = torch.stack([torch.where(vis, both[..., i], -big).amax(1) for i in (0, 1)], -1)
        low, high = -lo, size - 1e-3 - hi  # allowed offsets
        ok = vis.any(1, keepdim=True) & (high >= low)
        offset = torch.where(ok, low + torch.rand(m, 2, generator=generator) * (high - low), 0.0)
        for pose in (cur, prev):
            present = pose[..., 2:3] > 0
            pose[..., :2] = torch.where(present, pose[..., :2] + offset[:, None, :], pose[..., :2])
    if flip > 0 or translate:  # a mirrored x = width - 0 lies on the border, outside [0, width)
        for pose in (cur, prev):
            _clamp_to_frame(pose, size)
    return cur, prev


def _clamp_to_frame(pose: Tensor, size: Tensor) -> None:
    present = pose[..., 2:3] > 0
    inside = torch.minimum(pose[..., :2].clamp_min(0.0), size[:, None, :] - 1e-3)
    pose[..., :2] = torch.where(present, inside, pose[..., :2])


def _scale_rotate(cur: Tensor, prev: Tensor, size: Tensor, scale, rotate: float, generator) -> None:
    m = len(cur)
    both = torch.cat([cur, prev], dim=1)
    vis = both[..., 2:3] > 0
    centre = torch.where(vis, both[..., :2], 0.0).sum(1) / vis.sum(1).clamp_min(1)  # [M, 2]
    lo, hi = (float(v) for v in scale) if scale else (1.0, 1.0)
    zoom = lo + torch.rand(m, generator=generator) * (hi - lo)
    angle = (torch.rand(m, generator=generator) * 2 - 1) * rotate * torch.pi / 180.0
    cos, sin = angle.cos() * zoom, angle.sin() * zoom
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2).to(
        cur.dtype
    )  # [M, 2, 2]
    for pose in (cur, prev):
        present = pose[..., 2:3] > 0
        moved = torch.einsum("mij,mkj->mki", rot, pose[..., :2] - centre[:, None]) + centre[:, None]
        pose[..., :2] = torch.where(present, moved, pose[..., :2])
        _clamp_to_frame(pose, size)


def _jitter(pose: Tensor, size: Tensor, fraction: float, generator) -> None:
    present = pose[..., 2] > 0
    big = torch.finfo(pose.dtype).max
    lo = torch.where(present[..., None], pose[..., :2], big).amin(1)
    hi = torch.where(present[..., None], pose[..., :2], -big).amax(1)
    extent = torch.where(present.any(1, keepdim=True), hi - lo, 0.0)
    s = (extent[:, 0] * extent[:, 1]).clamp_min(0).sqrt().clamp_min(1.0)  # [M]
    noise = (
        torch.randn(pose[..., :2].shape, generator=generator, dtype=pose.dtype)
        * (fraction * s)[:, None, None]
    )
    pose[..., :2] = torch.where(present[..., None], pose[..., :2] + noise, pose[..., :2])
    _clamp_to_frame(pose, size)


def _drop(pose: Tensor, p: float, generator) -> None:
    present = pose[..., 2] > 0
    dropped = present & (torch.rand(present.shape, generator=generator) < p)
    # A pose keeps at least one keypoint: its first present one, when every one was drawn.
    emptied = present.any(1) & ~(present & ~dropped).any(1)
    first = torch.argmax(present.to(torch.int8), dim=1)
    dropped[emptied, first[emptied]] = False
    pose[dropped] = 0.0


def with_predicted_copies(dataset, settings, seed: int = 0):
    """``dataset`` plus, for each perturbation setting, a copy of every video whose poses are
    :func:`keytrack.perturb.perturb`'s predictions of it (``augment.predicted``; beyond the paper).

    The tracker meets predicted keypoints (jittered, mirrored, missing, hallucinated at low
    confidence, false-positive poses, missed people) in Figure 4's predicted settings; training on
    the same protocol puts them in distribution. Each copy keeps the ground-truth identities
    (``keep_track_ids``); a false positive gets an identity of its own, so it is a non-matching
    candidate of every pose (:func:`keytrack.perturb.with_oracle_track_ids`). A copy is named
    ``<video>~<setting>`` and drawn with perturbation seed ``seed`` (a video's draws do not depend
    on the other videos). ``settings`` empty: ``dataset`` itself.
    """
    from keytrack.perturb import SETTINGS, perturb, with_oracle_track_ids
    from keytrack.poses import Dataset, Video

    settings = tuple(settings or ())
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise ValueError(f"augment.predicted: unknown setting(s) {bad}; expected some of {list(SETTINGS)}")
    if not settings:
        return dataset
    videos = list(dataset.videos)
    for setting in settings:
        copy = with_oracle_track_ids(perturb(dataset, setting, int(seed), keep_track_ids=True))
        videos += [
            Video(
                name=f"{v.name}~{setting}",
                frames=v.frames,
                width=v.width,
                height=v.height,
                source=v.source,
                frame_size_origin=v.frame_size_origin,
            )
            for v in copy.videos
        ]
    return Dataset(videos, dict(dataset.skipped))
