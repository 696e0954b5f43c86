"""Pair encoders: how a batch of pose pairs becomes the input of each matching network.

Every matcher of KeyTrack's comparisons classifies a pose pair ``(p^t, p^{t-Δ})`` (§3.1, §3.2),
but each reads it in its own form:

================  =====================================================  ==========================
``model.name``    input                                                  paper
================  =====================================================  ==========================
``transformer``   Position / Type / Segment (/ relative) tokens + mask   §3.2, A.5
``cnn_keypoints`` the pair drawn as a ``[6, h, w]`` image                §5.2, A.5, Figure 7
                  (:mod:`keytrack.rasterize`)
``cnn_crops``     the RGB crops of the two poses' boxes, ``[6, h, w]``   §5.2, Figure 7
``gcn``           per-joint ``(x, y, visible)`` of each pose, ``[15, 3]``  §4.2, LightTrack's GCN
================  =====================================================  ==========================

A :class:`PairEncoder` maps ``M`` pairs (``current``, ``previous`` ``[M, 15, 3]``,
``frame_size [M, 2]``, ``delta [M]`` and, for ``cnn_crops``, the crops of both poses) to a dict of
tensors with a leading ``M`` dimension, in **one** call per batch: the pairs dataset
(:class:`keytrack.data.TokenizedPairs`) and the tracker's scorer
(:class:`keytrack.tracking.scorers.PoseEntailmentScorer`) both go through it, so training and
tracking feed a matcher identically. :func:`pair_encoder` picks the encoder of an experiment config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from omegaconf import DictConfig
from torch import Tensor

from keytrack.skeleton import NUM_JOINTS
from keytrack.tokenize import TokenConfig, tokenize_pairs

__all__ = [
    "PairEncoder",
    "TokenEncoder",
    "RasterEncoder",
    "CropEncoder",
    "GraphEncoder",
    "token_config",
    "pair_encoder",
]


@runtime_checkable
class PairEncoder(Protocol):
    """``encoder(current, previous, frame_size, delta, crops=None) -> {name: [M, ...] tensor}``.

    ``delta`` is the largest ``Δ`` the matcher accepts (its δ); ``needs_crops`` is True when the
    encoder needs ``crops = (current_crops, previous_crops)``, each ``[M, 3, h, w]`` uint8 RGB.
    """

    delta: int
    needs_crops: bool

    def __call__(
        self,
        current: Tensor,
        previous: Tensor,
        frame_size: Tensor,
        delta: Tensor,
        crops: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, Tensor]: ...


def _check_delta(delta: Tensor, max_delta: int, who: str) -> None:
    bad = (delta < 1) | (delta > max_delta)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"{who}: delta of pair {i} is {int(delta[i])}, expected 1..{max_delta}")


def _check_pairs(current: Tensor, previous: Tensor, frame_size: Tensor, delta: Tensor, who: str) -> None:
    for name, t in (("current", current), ("previous", previous)):
        if t.ndim != 3 or tuple(t.shape[1:]) != (NUM_JOINTS, 3):
            raise ValueError(f"{who}: {name} must be [M, {NUM_JOINTS}, 3], got {tuple(t.shape)}")
    m = current.shape[0]
    if previous.shape[0] != m or tuple(frame_size.shape) != (m, 2) or tuple(delta.shape) != (m,):
        raise ValueError(
            f"{who}: previous {tuple(previous.shape)}, frame_size {tuple(frame_size.shape)} and "
            f"delta {tuple(delta.shape)} must match current's {m} pairs"
        )


@dataclass(frozen=True)
class TokenEncoder:
    """The transformer's tokens (§3.2): :func:`keytrack.tokenize.tokenize_pairs`."""

    config: TokenConfig = TokenConfig()
    needs_crops = False

    @property
    def delta(self) -> int:
        return int(self.config.delta)

    def __call__(self, current, previous, frame_size, delta, crops=None) -> dict[str, Tensor]:
        return tokenize_pairs(current, previous, frame_size, delta, self.config)


@dataclass(frozen=True)
class RasterEncoder:
    """The CNN on keypoints (§5.2, A.5): ``image [M, 6, h, w]`` from
    :func:`keytrack.rasterize.rasterize_pairs`."""

    resolution: tuple[int, int] = (24, 18)
    delta: int = 4
    needs_crops = False

    def __call__(self, current, previous, frame_size, delta, crops=None) -> dict[str, Tensor]:
        from keytrack.rasterize import rasterize_pairs

        frame_size = torch.as_tensor(frame_size, device=current.device)
        delta = torch.as_tensor(delta, device=current.device)
        _check_pairs(current, previous, frame_size, delta, "RasterEncoder")
        _check_delta(delta, self.delta, "RasterEncoder")
        return {"image": rasterize_pairs(current, previous, frame_size, self.resolution)}


@dataclass(frozen=True)
class CropEncoder:
    """The CNN on image crops (§5.2): ``image [M, 6, h, w]``, the current pose's RGB crop then the
    earlier pose's, scaled from ``0..255`` to ``[-0.5, 0.5]``."""

    resolution: tuple[int, int] = (24, 18)
    delta: int = 4
    needs_crops = True

    def __call__(self, current, previous, frame_size, delta, crops=None) -> dict[str, Tensor]:
        frame_size = torch.as_tensor(frame_size, device=current.device)
        delta = torch.as_tensor(delta, device=current.device)
        _check_pairs(current, previous, frame_size, delta, "CropEncoder")
        _check_delta(delta, self.delta, "CropEncoder")
        if crops is None:
            raise ValueError(
                "CropEncoder: the cnn_crops matcher needs the crops of both poses "
                "(crops=(current_crops, previous_crops))"
            )
        w, h = (int(r) for r in self.resolution)
        m = current.shape[0]
        for name, c in zip(("current", "previous"), crops):
            if tuple(c.shape) != (m, 3, h, w):
                raise ValueError(
                    f"CropEncoder: {name} crops must be [{m}, 3, {h}, {w}] (model.resolution "
                    f"= [{w}, {h}]), got {tuple(c.shape)}"
                )
        image = torch.cat([crops[0], crops[1]], dim=1).to(device=current.device, dtype=torch.float32)
        return {"image": image / 255.0 - 0.5}


@dataclass(frozen=True)
class GraphEncoder:
    """The GCN's joints (LightTrack, Ning et al. 2020): ``current`` and ``previous``, ``[M, 15, 3]``
    per-joint ``(x, y, visible)``.

    ``coordinates="box"`` (LightTrack's ``keypoints_to_graph``): offsets from the top-left corner
    of the pose's own keypoint box, so only the pose's shape and size count, divided by the frame
    height (LightTrack uses raw pixels; dividing keeps the scale independent of the video's
    resolution). ``"frame"``: ``x / width``, ``y / height``, the keypoints' place in the frame.
    Joints with ``c <= 0`` are ``(0, 0, 0)``; the visibility channel is ours (LightTrack's pairs
    had every joint), so a missing joint differs from one at the box corner.
    """

    coordinates: str = "box"
    delta: int = 4
    needs_crops = False

    def __post_init__(self) -> None:
        if self.coordinates not in ("box", "frame"):
            raise ValueError(f"GraphEncoder: coordinates must be 'box' or 'frame', got {self.coordinates!r}")

    def __call__(self, current, previous, frame_size, delta, crops=None) -> dict[str, Tensor]:
        frame_size = torch.as_tensor(frame_size, device=current.device, dtype=torch.float32)
        delta = torch.as_tensor(delta, device=current.device)
        _check_pairs(current, previous, frame_size, delta, "GraphEncoder")
        _check_delta(delta, self.delta, "GraphEncoder")
        kp = torch.stack([current, previous], dim=1).float()  # [M, 2, 15, 3]
        vis = (kp[..., 2] > 0) & torch.isfinite(kp[..., :2]).all(-1)  # [M, 2, 15]
        xy = torch.where(vis[..., None], kp[..., :2], 0.0)
        if self.coordinates == "box":
            inf = torch.tensor(float("inf"), device=kp.device)
            origin = torch.where(vis[..., None], xy, inf).amin(dim=2, keepdim=True)  # [M, 2, 1, 2]
            origin = torch.where(torch.isfinite(origin), origin, 0.0)
            xy = (xy - origin) / frame_size[:, None, None, 1:2]
        else:
            xy = xy / frame_size[:, None, None, :]
        feats = torch.cat([xy * vis[..., None], vis[..., None].float()], dim=-1)  # [M, 2, 15, 3]
        return {"current": feats[:, 0], "previous": feats[:, 1]}


def token_config(cfg: DictConfig) -> TokenConfig:
    """The :class:`TokenConfig` of a full experiment config (``tokens`` + ``pairs.delta``)."""
    t = cfg.tokens
    return TokenConfig(
        grid=tuple(t.grid),
        delta=int(cfg.pairs.delta),
        position=bool(t.position),
        type=bool(t.type),
        segment=bool(t.segment),
        relative_position=bool(t.relative_position),
        position_encoding=str(t.position_encoding),
        fourier_bands=int(t.fourier_bands),
        displacement=bool(t.displacement),
        oks_prior=bool(t.get("oks_prior", False)),
        confidence=bool(t.get("confidence", False)),
    )


def pair_encoder(cfg: DictConfig) -> PairEncoder:
    """The encoder of the matcher ``cfg.model.name`` names (:mod:`keytrack.models.registry`)."""
    from keytrack.models import registry

    return registry.get(str(cfg.model.name)).encoder(cfg)
