"""Tokenizing pose pairs (KeyTrack §3.2, A.5, Table 3); ``keytrack bench-tokenize`` times it
(:mod:`keytrack.bench_tokenize`).

A pose pair becomes a "sentence" of ``2|K| = 30`` tokens: first the 15 keypoints of the current
pose ``p^t`` (hypothesis), then the 15 of the earlier pose ``p^{t-Δ}`` (premise), as in Eq. 1-3.
Each keypoint carries one token of each kind:

* **Position** (Eq. 1): the keypoint's cell on a ``w × h`` grid laid over the downsampled frame
  (A.5: ``24 × 18`` → 432 tokens), ``column + w * row`` in ``0 .. w*h-1`` (the paper counts from
  1). Keypoints outside the frame are clamped to the border cells.
* **Type** (Eq. 2): the joint index ``0 .. 14`` in :data:`keytrack.skeleton.JOINTS` order.
* **Segment** (Eq. 3): how many frames the keypoint's pose lies before the current frame: ``0`` for
  the current pose and ``Δ`` (``1..δ``) for the earlier pose, a vocabulary of ``δ + 1`` values.
  Eq. 3 writes ``1`` for ``p^t`` and ``δ`` for ``p^{t-δ}``, which, read literally, would give both
  poses the same Segment token whenever ``Δ = 1``; §5.1 credits the Segment embedding with letting
  the network tell the two poses apart, so the current pose gets its own value ``0``.
* **Relative position** (Table 3's "Rel. Position"): the keypoint's offset from its own pose's
  centre (mean of the pose's visible keypoints), measured in cells of the Position grid (offset in
  pixels × ``w / width`` and × ``h / height``), placed on a ``w × h`` grid whose centre cell
  ``(w // 2, h // 2)`` holds the pose centre, clamped to the grid. One grid thus spans plus or minus
  half the frame around the pose, with cells the size of Position cells.

A keypoint is visible when its ``c > 0``; invisible keypoints get Position and Relative token 0
and ``mask`` False, so the attention mask of the matching network ignores them (§3.2).

**Position encodings** (``TokenConfig.position_encoding``; §5.2 suggests that "a better 2-D
positional encoding" should help, and the paper's lookup is the main reason a network trained on a
few videos does not transfer to others, docs/matchers.md):

* ``lookup`` (the paper, Eq. 1): the Position token above, one learnt embedding per grid cell.
* ``factorised``: the same cell as two tokens, ``column`` (``0..w-1``) and ``row`` (``0..h-1``),
  each with its own embedding table whose sum replaces the cell's: ``w + h`` embeddings instead of
  ``w · h``, so a cell is learnt from every pose in its row and in its column.
* ``fourier``: no lookup at all. Each keypoint's ``(x, y)`` is taken relative to the centre of the
  *earlier* pose ``p^{t-Δ}`` (the mean of its visible keypoints) and divided by that pose's scale
  (``√`` of its keypoint-box area, at least 1 px), ``u = (xy - c_prev) / s_prev``; the pair is
  thus free of translation and of the person's size. ``u`` enters as continuous features
  ``[tanh(u / 4), sin(f_k u), cos(f_k u)]`` with ``f_k = π 2^k / 8``, ``k = 0..bands-1``
  (``features [M, 30, 2 + 4·bands]``, projected to the hidden size by the network).

``displacement`` (with any encoding) appends, to both tokens of joint ``j``, the joint's own
motion between the two poses, ``d_j = (x_j^t - x_j^{t-Δ}) / s_prev`` (zero where the joint is
missing in either pose): ``tanh(d_j / 2)`` (x and y), ``tanh(|d_j|² / 4)`` and the flag "joint
present in both". The network no longer has to discover through attention alone that joint ``j``
of one pose is to be compared with joint ``j`` of the other.

``oks_prior`` (beyond the paper) adds ``oks [M]``, the pair's object keypoint similarity (COCO's
``mean_j exp(-d_j² / (2 s² (2σ_j)²))`` over the joints present in both poses, with the earlier
pose's keypoint-box area as ``s²``; 0 when no joint is shared). The matching network then adds
``a · logit(OKS)`` to its match logit (:class:`keytrack.models.transformer.TransformerMatchingNetwork`),
so it starts as OKS and learns a correction of it rather than a similarity from nothing.

``confidence`` (beyond the paper) appends each keypoint's own confidence ``c`` (clipped to
``[0, 1]``; ground truth's visibility flag is 1) as one more feature of its token, so that a network
trained on predicted-like keypoints (``augment.predicted``) can learn how far to trust a keypoint
that the pose estimator itself doubts (A.3: low-confidence keypoints are often wrong). With ground
truth alone it is the constant 1.

All functions are batched tensor code and run on whatever device their inputs are on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from keytrack.errors import InputError
from keytrack.pairs import PairIndex
from keytrack.poses import PoseTable
from keytrack.skeleton import NUM_JOINTS, OKS_SIGMAS

__all__ = [
    "TokenConfig",
    "TokenizeError",
    "tokenize_pairs",
    "tokenize_table",
    "pair_geometry",
    "POSITION_ENCODINGS",
    "pair_oks",
]

SEQUENCE_LENGTH = 2 * NUM_JOINTS
#: The values of ``TokenConfig.position_encoding``.
POSITION_ENCODINGS = ("lookup", "factorised", "fourier")
#: Features per keypoint of the displacement encoding: tanh(dx/2), tanh(dy/2), tanh(|d|²/4), both present.
DISPLACEMENT_FEATURES = 4


@dataclass(frozen=True)
class TokenConfig:
    """Which tokens a pair gets and their vocabularies (A.5; Table 3 ablates the flags)."""

    grid: tuple[int, int] = (24, 18)  # w × h position grid → w*h = 432 Position tokens
    delta: int = 4  # δ: Segment vocabulary is 0..δ
    position: bool = True
    type: bool = True
    segment: bool = True
    relative_position: bool = False
    position_encoding: str = "lookup"  # lookup (paper) | factorised | fourier
    fourier_bands: int = 6  # fourier: frequencies π 2^k / 8, k = 0..bands-1
    displacement: bool = False  # per-joint motion between the two poses as features
    oks_prior: bool = False  # the pair's OKS as a token ("oks" [M]) for the network's skip
    confidence: bool = False  # each keypoint's confidence c (1 for ground truth) as a feature

    def __post_init__(self) -> None:
        if self.position_encoding not in POSITION_ENCODINGS:
            raise TokenizeError(
                f"TokenConfig.position_encoding must be one of {', '.join(POSITION_ENCODINGS)}, "
                f"got {self.position_encoding!r}"
            )
        if int(self.fourier_bands) < 0:
            raise TokenizeError(f"TokenConfig.fourier_bands must be >= 0, got {self.fourier_bands}")
        w, h = self.grid
        if int(w) < 1 or int(h) < 1:
            raise TokenizeError(f"TokenConfig.grid must be two positive ints (w, h), got {self.grid}")
        if int(self.delta) < 1:
            raise TokenizeError(f"TokenConfig.delta must be >= 1, got {self.delta}")
        if not (
            self.position
            or self.type
            or self.segment
            or self.relative_position
            or self.displacement
            or self.oks_prior
        ):
            raise TokenizeError("TokenConfig enables no token kind: at least one must be on")

    @property
    def num_positions(self) -> int:
        """Size of the Position (and Relative position) vocabulary, ``w * h``."""
        return int(self.grid[0]) * int(self.grid[1])

    @property
    def num_segments(self) -> int:
        """Size of the Segment vocabulary, ``δ + 1`` (0 = current pose)."""
        return int(self.delta) + 1

    @property
    def position_lookup(self) -> bool:
        """The paper's 432-cell Position lookup is on."""
        return bool(self.position) and self.position_encoding == "lookup"

    @property
    def position_factorised(self) -> bool:
        return bool(self.position) and self.position_encoding == "factorised"

    @property
    def num_features(self) -> int:
        """Width of the continuous ``features`` per token (0: the pair has none)."""
        n = 2 + 4 * int(self.fourier_bands) if self.position and self.position_encoding == "fourier" else 0
        return n + (DISPLACEMENT_FEATURES if self.displacement else 0) + int(bool(self.confidence))


class TokenizeError(InputError):
    """Bad tokenizer input; ``pair`` is the index of the first offending pair (or None)."""

    def __init__(self, message: str, pair: int | None = None):
        super().__init__(message)
        self.pair = pair


def _grid_cell(x: Tensor, y: Tensor, w: int, h: int) -> Tensor:
    """``column + w * row`` of grid coordinates ``x, y`` (in cells), clamped to the grid."""
    col = torch.floor(x).clamp_(0, w - 1).long()
    row = torch.floor(y).clamp_(0, h - 1).long()
    return col + w * row


def _check_inputs(
    current: Tensor, previous: Tensor, frame_size: Tensor, delta: Tensor, config: TokenConfig
) -> None:
    shape = (NUM_JOINTS, 3)
    for name, t in (("current", current), ("previous", previous)):
        if t.ndim != 3 or tuple(t.shape[1:]) != shape:
            raise TokenizeError(f"tokenize_pairs: {name} must be [M, {NUM_JOINTS}, 3], got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TokenizeError(f"tokenize_pairs: {name} must be floating point, got {t.dtype}")
    m = current.shape[0]
    if previous.shape[0] != m:
        raise TokenizeError(f"tokenize_pairs: current has {m} poses but previous has {previous.shape[0]}")
    if tuple(frame_size.shape) != (m, 2):
        raise TokenizeError(f"tokenize_pairs: frame_size must be [{m}, 2], got {tuple(frame_size.shape)}")
    if tuple(delta.shape) != (m,):
        raise TokenizeError(f"tokenize_pairs: delta must be [{m}], got {tuple(delta.shape)}")
    if m == 0:
        return
    bad = ~(torch.isfinite(frame_size).all(-1) & (frame_size > 0).all(-1))
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise TokenizeError(
            f"tokenize_pairs: frame_size of pair {i} is {frame_size[i].tolist()}, "
            "expected positive finite (width, height)",
            i,
        )
    bad = (delta < 1) | (delta > config.delta)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise TokenizeError(
            f"tokenize_pairs: delta of pair {i} is {int(delta[i])}, expected 1..{config.delta}", i
        )
    for name, t in (("current", current), ("previous", previous)):
        bad = ((t[..., 2] > 0) & ~torch.isfinite(t[..., :2]).all(-1)).any(-1)
        if bad.any():
            i = int(bad.nonzero()[0, 0])
            j = int(((t[i, :, 2] > 0) & ~torch.isfinite(t[i, :, :2]).all(-1)).nonzero()[0, 0])
            raise TokenizeError(
                f"tokenize_pairs: {name} keypoint {j} of pair {i} is visible but has "
                f"non-finite coordinates {t[i, j, :2].tolist()}",
                i,
            )


def tokenize_pairs(
    current: Tensor, previous: Tensor, frame_size: Tensor, delta: Tensor, config: TokenConfig = TokenConfig()
) -> dict[str, Tensor]:
    """Tokens of ``M`` pose pairs (§3.2, Eq. 1-3), as ``[M, 30]`` tensors.

    Args:
        current: ``[M, 15, 3]`` keypoints ``x, y, c`` of the poses at frame ``t`` (pixels).
        previous: ``[M, 15, 3]`` keypoints of the poses at frame ``t - Δ``.
        frame_size: ``[M, 2]`` ``(width, height)`` of the frame in pixels.
        delta: ``[M]`` frame distance ``Δ`` in ``1..config.delta``.
        config: grid, δ and which tokens to produce.

    Returns:
        ``position``, ``type``, ``segment`` and ``relative`` (int64, only those ``config``
        enables) and ``mask`` (bool, True = visible keypoint), each ``[M, 30]``: the current
        pose's 15 keypoints first, then the earlier pose's; ``features [M, 30, F]`` and ``oks [M]``
        where ``config`` asks for them.
    """
    device = current.device
    frame_size = torch.as_tensor(frame_size, device=device)
    delta = torch.as_tensor(delta, device=device)
    _check_inputs(current, previous, frame_size, delta, config)
    if not frame_size.is_floating_point():
        frame_size = frame_size.to(current.dtype)
    m = current.shape[0]
    w, h = (int(g) for g in config.grid)

    kp = torch.cat([current, previous], dim=1)  # [M, 30, 3]
    mask = kp[..., 2] > 0  # [M, 30]
    # Pixel → grid cells; one cell is (width / w) × (height / h) pixels of the frame.
    cells = torch.tensor([w, h], dtype=kp.dtype, device=device)
    scale = (cells / frame_size.to(kp.dtype))[:, None, :]  # [M, 1, 2]
    xy = torch.where(mask[..., None], kp[..., :2], torch.zeros((), dtype=kp.dtype, device=device)) * scale

    tokens: dict[str, Tensor] = {}
    if config.position_lookup:
        tokens["position"] = _grid_cell(xy[..., 0], xy[..., 1], w, h).masked_fill_(~mask, 0)
    if config.position_factorised:
        tokens["column"] = torch.floor(xy[..., 0]).clamp_(0, w - 1).long().masked_fill_(~mask, 0)
        tokens["row"] = torch.floor(xy[..., 1]).clamp_(0, h - 1).long().masked_fill_(~mask, 0)
    # one pair geometry for the continuous features and the OKS prior
    geometry = pair_geometry(kp, mask) if config.num_features or config.oks_prior else None
    if config.num_features:
        tokens["features"] = _continuous_features(kp, mask, config, *geometry)
    if config.type:
        tokens["type"] = torch.arange(NUM_JOINTS, device=device).repeat(2).expand(m, -1).contiguous()
    if config.segment:
        tokens["segment"] = torch.cat(
            [
                torch.zeros(m, NUM_JOINTS, dtype=torch.long, device=device),
                delta.long()[:, None].expand(m, NUM_JOINTS),
            ],
            dim=1,
        )
    if config.relative_position:
        per_pose = xy.view(m, 2, NUM_JOINTS, 2)
        vis = mask.view(m, 2, NUM_JOINTS, 1)
        centre = per_pose.sum(2, keepdim=True) / vis.sum(2, keepdim=True).clamp_min(1)
        rel = (per_pose - centre).view(m, SEQUENCE_LENGTH, 2)
        relative = _grid_cell(rel[..., 0] + w // 2, rel[..., 1] + h // 2, w, h)  # centre cell (w//2, h//2)
        tokens["relative"] = relative.masked_fill_(~mask, 0)
    if config.oks_prior:
        tokens["oks"] = pair_oks(kp, mask, geometry[1])
    tokens["mask"] = mask
    return tokens


def pair_geometry(kp: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(u, scale)`` of ``[M, 30, 3]`` pair keypoints: ``u [M, 30, 2]`` each keypoint relative to
    the earlier pose's centre (mean of its visible keypoints) divided by ``scale [M]``, the earlier
    pose's ``√`` keypoint-box area (at least 1 px); invisible keypoints get ``u = 0``."""
    prev_xy = kp[:, NUM_JOINTS:, :2]
    prev_vis = mask[:, NUM_JOINTS:, None]
    n = prev_vis.sum(1).clamp_min(1)
    centre = torch.where(prev_vis, prev_xy, 0.0).sum(1) / n  # [M, 2]
    big = torch.finfo(kp.dtype).max
    lo = torch.where(prev_vis, prev_xy, big).amin(1)
    hi = torch.where(prev_vis, prev_xy, -big).amax(1)
    extent = torch.where(prev_vis.any(1), hi - lo, torch.zeros_like(hi))
    scale = (extent[:, 0] * extent[:, 1]).clamp_min(0).sqrt().clamp_min(1.0)  # [M]
    u = (kp[..., :2] - centre[:, None, :]) / scale[:, None, None]
    return torch.where(mask[..., None], u, 0.0), scale


def pair_oks(kp: Tensor, mask: Tensor, scale: Tensor | None = None) -> Tensor:
    """``[M]`` OKS of the current pose with the earlier one of ``[M, 30, 3]`` pair keypoints, the
    earlier pose's keypoint-box area (:func:`pair_geometry`'s ``scale²``, computed unless given) as
    COCO's ``s²``, averaged over the joints present in both (0 where none is);
    :func:`keytrack.tracking.scorers.oks_matrix` with keypoint boxes."""
    if scale is None:
        _, scale = pair_geometry(kp, mask)
    both = mask[:, :NUM_JOINTS] & mask[:, NUM_JOINTS:]  # [M, 15]
    d2 = ((kp[:, :NUM_JOINTS, :2] - kp[:, NUM_JOINTS:, :2]) ** 2).sum(-1)
    var = (2.0 * torch.as_tensor(OKS_SIGMAS, dtype=kp.dtype, device=kp.device)) ** 2
    e = torch.where(both, d2, 0.0) / (2.0 * (scale**2)[:, None] * var)
    sim = torch.where(both, torch.exp(-e), 0.0).sum(-1)
    return sim / both.sum(-1).clamp_min(1)


def _continuous_features(kp: Tensor, mask: Tensor, config: TokenConfig, u: Tensor, scale: Tensor) -> Tensor:
    """``[M, 30, config.num_features]``: Fourier features of ``u``, per-joint displacement (``u,
    scale``: :func:`pair_geometry`) and each keypoint's confidence, those ``config`` asks for."""
    parts = []
    if config.position and config.position_encoding == "fourier":
        bands = int(config.fourier_bands)
        freq = torch.pi * 2.0 ** torch.arange(bands, dtype=kp.dtype, device=kp.device) / 8.0  # [F]
        angle = u[..., None] * freq  # [M, 30, 2, F]
        parts += [torch.tanh(u / 4.0), angle.sin().flatten(2), angle.cos().flatten(2)]
    if config.displacement:
        cur, prev = kp[:, :NUM_JOINTS], kp[:, NUM_JOINTS:]
        both = mask[:, :NUM_JOINTS] & mask[:, NUM_JOINTS:]  # [M, 15]
        d = torch.where(both[..., None], (cur[..., :2] - prev[..., :2]) / scale[:, None, None], 0.0)
        joint = torch.cat(
            [
                torch.tanh(d / 2.0),
                torch.tanh((d**2).sum(-1, keepdim=True) / 4.0),
                both[..., None].to(kp.dtype),
            ],
            dim=-1,
        )  # [M, 15, 4]
        parts.append(joint.repeat(1, 2, 1))  # both tokens of j
    if config.confidence:
        parts.append(kp[..., 2:3].clamp(0.0, 1.0))  # the keypoint's own c
    out = torch.cat(parts, dim=-1)
    return torch.where(mask[..., None], out, 0.0)


def tokenize_table(
    table: PoseTable,
    pairs: PairIndex,
    config: TokenConfig = TokenConfig(),
    device: str | torch.device = "cpu",
) -> dict[str, Tensor]:
    """Gather the pairs' rows from ``table`` and tokenize them; adds ``labels`` (``[M]`` int64).

    Both poses of a pair come from the same video, so the current pose's ``frame_size`` is used.
    Errors name the video, frame and table row of the offending pose.
    """
    cur = torch.as_tensor(np.asarray(table.keypoints)[pairs.current], dtype=torch.float32, device=device)
    prev = torch.as_tensor(np.asarray(table.keypoints)[pairs.previous], dtype=torch.float32, device=device)
    size = torch.as_tensor(np.asarray(table.frame_size)[pairs.current], dtype=torch.float32, device=device)
    delta = torch.as_tensor(pairs.delta, dtype=torch.long, device=device)
    try:
        tokens = tokenize_pairs(cur, prev, size, delta, config)
    except TokenizeError as err:
        if err.pair is None:
            raise
        i = err.pair
        c, p = int(pairs.current[i]), int(pairs.previous[i])
        raise TokenizeError(
            f"{err} [pair {i}: current = table row {c} (video {int(table.video[c])}, frame "
            f"{int(table.frame[c])}), previous = table row {p} (video {int(table.video[p])}, "
            f"frame {int(table.frame[p])})]",
            i,
        ) from err
    tokens["labels"] = torch.as_tensor(pairs.label, dtype=torch.long, device=device)
    return tokens
