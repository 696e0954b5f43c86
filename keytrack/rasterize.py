"""Pose pairs drawn as images: the input of the CNN on keypoints (KeyTrack §5.2, A.5, Figure 7).

§5.2 compares the Transformer Matching Network with a CNN that "takes only keypoints as input,
where each unique keypoint is colored via a linear interpolation, a visual version of our Type
tokens". A.5: "The scheme to color the 'visual tokens' is accomplished by fixing the Hue and
Saturation, then adjusting the Value via a linear interpolation from 0-100% in increments of
100/|K|."

How this module reads it:

* **Pixels.** The frame is mapped onto a ``w × h`` image exactly as Position tokens map it onto
  their grid (:mod:`keytrack.tokenize`, Eq. 1): a keypoint at ``(x, y)`` pixels lands in column
  ``floor(x · w / width)``, row ``floor(y · h / height)``, clamped to the image. At the paper's
  ``24 × 18`` every pixel of the image is one Position token.
* **Colour of a keypoint type.** Type ``k`` (``0 .. |K|-1`` in :data:`keytrack.skeleton.JOINTS`
  order) gets HSV value ``V_k = (k + 1) / |K|``, i.e. ``100/|K| %, 2·100/|K| %, …, 100 %`` in
  steps of ``100/|K| %``; the step ``0 %`` of the interpolation is the empty background (black),
  so no keypoint type is invisible. Hue and saturation are fixed (:data:`HUE`, :data:`SATURATION`)
  so that all three RGB channels are non-zero: the RGB colour is ``V_k · rgb(HUE, SATURATION, 1)``.
* **Two poses.** A.5 does not say how the pair shares an image. The poses go into separate
  channel groups: channels ``0..2`` hold the current pose ``p^t``, channels ``3..5`` the earlier
  pose ``p^{t-Δ}`` (the order of the token sentence of §3.2), drawn with the same colours. This is
  the visual counterpart of the Segment token (which tells the two poses apart); Δ itself is not
  drawn.
* **Collisions.** When keypoints of one pose fall into the same pixel, the brightest (the higher
  type index) is kept (``scatter_reduce(amax)``), so the result does not depend on scatter order.
  Keypoints with ``c <= 0`` are not drawn.

Everything is one scatter into a zero tensor per batch; no Python loop over poses or keypoints.
"""

from __future__ import annotations

import colorsys

import torch
from torch import Tensor

from keytrack.skeleton import NUM_JOINTS

__all__ = ["HUE", "SATURATION", "type_values", "type_colours", "rasterize_pairs", "CHANNELS"]

#: Fixed hue (fraction of the colour circle; 210° = a sky blue) and saturation of every keypoint.
HUE: float = 210.0 / 360.0
SATURATION: float = 0.5
#: Channels of a rasterised pair: RGB of the current pose, then RGB of the earlier pose.
CHANNELS: int = 6


def type_values(num_types: int = NUM_JOINTS) -> Tensor:
    """HSV value of each keypoint type: ``(k + 1) / |K|`` for ``k = 0 .. |K|-1`` (A.5)."""
    return torch.arange(1, num_types + 1, dtype=torch.float32) / num_types


def _base_rgb() -> Tensor:
    return torch.tensor(colorsys.hsv_to_rgb(HUE, SATURATION, 1.0), dtype=torch.float32)


def type_colours(num_types: int = NUM_JOINTS) -> Tensor:
    """``[|K|, 3]`` RGB colour in ``[0, 1]`` of each keypoint type: ``hsv(HUE, SATURATION, V_k)``."""
    return type_values(num_types)[:, None] * _base_rgb()[None, :]


def rasterize_pairs(
    current: Tensor, previous: Tensor, frame_size: Tensor, resolution: tuple[int, int] = (24, 18)
) -> Tensor:
    """``[M, 6, h, w]`` float images of ``M`` pose pairs (see the module docstring).

    Args:
        current: ``[M, 15, 3]`` keypoints ``x, y, c`` of the poses at frame ``t`` (pixels).
        previous: ``[M, 15, 3]`` keypoints of the poses at frame ``t - Δ``.
        frame_size: ``[M, 2]`` ``(width, height)`` of the frame in pixels.
        resolution: ``(w, h)`` of the image.
    """
    w, h = (int(r) for r in resolution)
    if w < 1 or h < 1:
        raise ValueError(f"rasterize_pairs: resolution must be two positive ints (w, h), got {resolution}")
    for name, t in (("current", current), ("previous", previous)):
        if t.ndim != 3 or tuple(t.shape[1:]) != (NUM_JOINTS, 3):
            raise ValueError(f"rasterize_pairs: {name} must be [M, {NUM_JOINTS}, 3], got {tuple(t.shape)}")
    m = current.shape[0]
    if previous.shape[0] != m or tuple(frame_size.shape) != (m, 2):
        raise ValueError(
            f"rasterize_pairs: previous {tuple(previous.shape)} and frame_size "
            f"{tuple(frame_size.shape)} must match current's {m} pairs"
        )
    device = current.device
    kp = torch.stack([current, previous], dim=1).float()  # [M, 2, 15, 3]
    size = frame_size.to(device=device, dtype=torch.float32)
    if m and not (torch.isfinite(size).all() and (size > 0).all()):
        i = int((~(torch.isfinite(size) & (size > 0)).all(-1)).nonzero()[0, 0])
        raise ValueError(
            f"rasterize_pairs: frame_size of pair {i} is {size[i].tolist()}, "
            "expected positive finite (width, height)"
        )
    visible = (kp[..., 2] > 0) & torch.isfinite(kp[..., :2]).all(-1)  # [M, 2, 15]
    scale = torch.tensor([w, h], dtype=torch.float32, device=device) / size  # [M, 2]
    xy = torch.where(visible[..., None], kp[..., :2], 0.0) * scale[:, None, None, :]
    col = torch.floor(xy[..., 0]).clamp_(0, w - 1).long()
    row = torch.floor(xy[..., 1]).clamp_(0, h - 1).long()
    plane = torch.arange(2 * m, device=device).view(m, 2, 1)  # one plane per pose
    flat = (plane * h + row) * w + col  # [M, 2, 15]
    value = type_values().to(device).expand(m, 2, NUM_JOINTS) * visible  # 0 = not drawn
    canvas = torch.zeros(2 * m * h * w, dtype=torch.float32, device=device)
    canvas.scatter_reduce_(0, flat.reshape(-1), value.reshape(-1), reduce="amax")
    rgb = _base_rgb().to(device)
    image = canvas.view(m, 2, 1, h, w) * rgb.view(1, 1, 3, 1, 1)  # [M, 2, 3, h, w]
    return image.reshape(m, CHANNELS, h, w)
