"""Similarity scorers for the online tracker (KeyTrack §3.1, §3.2; the baselines of Table 2).

The tracker of §3.1 compares each pose of frame ``t`` with tracked poses of frames
``t-1 .. t-δ``. A *scorer* turns those comparisons into a ``[P, C]`` matrix in ``[0, 1]``
(higher = more likely the same person), ``P`` poses of the current frame against ``C`` candidate
poses. Every scorer has the same call signature, so learned and non-learned similarities plug
into the same :class:`~keytrack.tracking.tracker.Tracker`:

* :class:`PoseEntailmentScorer`: the match score of Pose Entailment (§3.2), the softmax
  probability of class 1 ("same person") of a matching network; all candidate pairs of a frame
  are tokenized at once and go through the network in one batched forward.
* :class:`OKSScorer`: object keypoint similarity between the two poses, the "spatial
  consistency" baseline that needs no learning.
* :class:`IoUScorer`: intersection over union of the two person boxes.

:data:`SCORERS` maps the names used on the command line to the classes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from keytrack.poses import keypoint_boxes
from keytrack.skeleton import NUM_JOINTS, OKS_SIGMAS

if TYPE_CHECKING:   # torch is imported only when a network is used (evaluation imports this package)
    import torch
    from torch import nn

__all__ = ["Candidates", "Scorer", "PoseEntailmentScorer", "OKSScorer", "IoUScorer", "SCORERS",
           "oks_matrix", "iou_matrix"]


@dataclass
class Candidates:
    """Tracked poses of the previous ``δ`` timesteps that a frame's poses are compared with.

    ``delta`` is the timestep distance ``Δ`` (``1..δ``) between the candidate's frame and the
    current one; it is the Segment token of Pose Entailment (§3.2, Eq. 3).
    """

    keypoints: np.ndarray                                   # [C, 15, 3]
    boxes: np.ndarray                                       # [C, 4] x, y, w, h
    track_ids: np.ndarray                                   # [C] int64
    delta: np.ndarray                                       # [C] int64, 1..δ
    frame: np.ndarray | None = None                         # [C] frame index (bookkeeping only)

    def __post_init__(self) -> None:
        c = len(self.keypoints)
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(c, NUM_JOINTS, 3)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(c, 4)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(c)
        self.delta = np.asarray(self.delta, dtype=np.int64).reshape(c)
        self.frame = (np.zeros(c, np.int64) if self.frame is None
                      else np.asarray(self.frame, dtype=np.int64).reshape(c))

    def __len__(self) -> int:
        return len(self.keypoints)


@runtime_checkable
class Scorer(Protocol):
    """What the tracker needs of a similarity.

    ``__call__(keypoints [P, 15, 3], boxes [P, 4], candidates, frame_size (w, h), mask [P, C] bool
    or None) -> [P, C]`` float array in ``[0, 1]``. Only the pairs where ``mask`` is True are
    needed (the tracker's ``n`` nearest, §3.1); the others may be returned as 0. ``max_delta`` is
    the largest ``Δ`` the scorer accepts (None = any).
    """

    name: str
    max_delta: int | None

    def __call__(self, keypoints: np.ndarray, boxes: np.ndarray, candidates: Candidates,
                 frame_size: tuple[float, float], mask: np.ndarray | None = None) -> np.ndarray: ...


def _filled_boxes(boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """``boxes`` with NaN rows replaced by the tight box of the pose's present keypoints."""
    boxes = np.asarray(boxes, dtype=np.float64)
    missing = ~np.isfinite(boxes).all(axis=-1)
    if missing.any():
        boxes = boxes.copy()
        boxes[missing] = keypoint_boxes(keypoints[missing])
    return boxes


def oks_matrix(a: np.ndarray, b: np.ndarray, b_boxes: np.ndarray,
               sigmas: np.ndarray = OKS_SIGMAS) -> np.ndarray:
    """``[P, C]`` object keypoint similarity of poses ``a [P, 15, 3]`` with poses ``b [C, 15, 3]``.

    COCO's definition, ``OKS = mean_j exp(-d_j² / (2 s² k_j²))`` with ``k_j = 2 σ_j`` and the scale
    ``s² = `` area of ``b``'s box (``w · h``), averaged over the keypoints present (``c > 0``) in
    *both* poses; pairs without a jointly present keypoint score 0. ``b`` plays the role COCO
    gives the ground truth: the earlier, already tracked pose is the reference.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    both = (a[:, None, :, 2] > 0) & (b[None, :, :, 2] > 0)                    # [P, C, 15]
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)                # [P, C, 15]
    area = np.asarray(b_boxes, dtype=np.float64)[:, 2] * np.asarray(b_boxes, dtype=np.float64)[:, 3]
    area = np.where(np.isfinite(area) & (area > 0), area, np.finfo(np.float64).eps)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2                    # [15]
    e = d2 / (2.0 * area[None, :, None] * var[None, None, :])
    sim = np.where(both, np.exp(-np.where(both, e, 0.0)), 0.0).sum(-1)
    n = both.sum(-1)
    return np.divide(sim, n, out=np.zeros_like(sim), where=n > 0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[P, C]`` intersection over union of ``x, y, w, h`` boxes ``a [P, 4]`` and ``b [C, 4]``.

    Boxes that are NaN or have no area give 0.
    """
    a = np.asarray(a, dtype=np.float64)[:, None, :]
    b = np.asarray(b, dtype=np.float64)[None, :, :]
    iw = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    ok = np.isfinite(inter) & np.isfinite(union) & (union > 0)
    return np.divide(inter, union, out=np.zeros(inter.shape), where=ok)


def _apply_mask(scores: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return scores if mask is None else np.where(mask, scores, 0.0)


class OKSScorer:
    """Object keypoint similarity (the non-learned "spatial consistency" baseline).

    Uses :data:`keytrack.skeleton.OKS_SIGMAS`; the scale is the area of the candidate's box
    (the tight box of its keypoints when the box is absent). See :func:`oks_matrix`.
    """

    name = "oks"
    max_delta = None

    def __init__(self, sigmas: np.ndarray = OKS_SIGMAS):
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        if self.sigmas.shape != (NUM_JOINTS,):
            raise ValueError(f"OKSScorer: sigmas must be [{NUM_JOINTS}], got {self.sigmas.shape}")

    def __call__(self, keypoints, boxes, candidates: Candidates, frame_size=None, mask=None) -> np.ndarray:
        cand_boxes = _filled_boxes(candidates.boxes, candidates.keypoints)
        return _apply_mask(oks_matrix(keypoints, candidates.keypoints, cand_boxes, self.sigmas), mask)


class IoUScorer:
    """Box intersection over union; absent boxes fall back to the tight box of the keypoints."""

    name = "iou"
    max_delta = None

    def __call__(self, keypoints, boxes, candidates: Candidates, frame_size=None, mask=None) -> np.ndarray:
        a = _filled_boxes(boxes, np.asarray(keypoints, dtype=np.float64))
        b = _filled_boxes(candidates.boxes, candidates.keypoints)
        return _apply_mask(iou_matrix(a, b), mask)


class PoseEntailmentScorer:
    """Pose Entailment match scores (§3.2) from a matching network.

    For the ``M`` requested pairs of a frame (all ``P × C``, or those ``mask`` selects), the
    current poses ``p^t`` and candidates ``p^{t-Δ}`` are gathered with one fancy index each,
    tokenized in one call of :func:`keytrack.tokenize.tokenize_pairs` and classified in one
    forward pass; the score is ``softmax(logits)[:, 1]``, the probability that both poses are the
    same person. Frames with more than ``batch_size`` pairs are split into ``ceil(M /
    batch_size)`` forwards (the default is large enough that a PoseTrack frame takes one).

    ``pairs_scored`` and ``network_seconds`` count the work done, for pairs/s reports.

    Args:
        model: maps a token dict (``position``, ``type``, ``segment``, ``relative``, ``mask``,
            each ``[M, 30]``) to logits ``[M, 2]``.
        token_config: the :class:`~keytrack.tokenize.TokenConfig` the model was trained with; its
            ``delta`` bounds the ``Δ`` the scorer accepts.
        device: torch device to tokenize and run on.
        batch_size: most pairs per forward.
    """

    name = "pose_entailment"

    def __init__(self, model: nn.Module, token_config, device: str | torch.device = "cpu",
                 batch_size: int = 16384):
        import torch

        if int(batch_size) < 1:
            raise ValueError(f"PoseEntailmentScorer: batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.token_config = token_config
        self.batch_size = int(batch_size)
        self.pairs_scored = 0
        self.forwards = 0
        self.network_seconds = 0.0

    @property
    def max_delta(self) -> int:
        return int(self.token_config.delta)

    @classmethod
    def from_checkpoint(cls, checkpoint: str, device: str | torch.device = "cpu",
                        batch_size: int = 16384) -> "PoseEntailmentScorer":
        """The scorer of a training checkpoint (:func:`keytrack.models.factory.load_matcher`)."""
        from keytrack.data import token_config
        from keytrack.models.factory import load_matcher

        model, cfg = load_matcher(checkpoint, map_location="cpu")
        return cls(model, token_config(cfg), device=device, batch_size=batch_size)

    def __call__(self, keypoints, boxes, candidates: Candidates, frame_size, mask=None) -> np.ndarray:
        import torch

        from keytrack.tokenize import tokenize_pairs

        keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
        p, c = len(keypoints), len(candidates)
        scores = np.zeros((p, c))
        mask = np.ones((p, c), bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != (p, c):
            raise ValueError(f"PoseEntailmentScorer: mask must be [{p}, {c}], got {mask.shape}")
        rows, cols = np.nonzero(mask)
        m = len(rows)
        if m == 0:
            return scores
        bad = (candidates.delta[cols] < 1) | (candidates.delta[cols] > self.max_delta)
        if bad.any():
            raise ValueError(f"PoseEntailmentScorer: candidate Δ = {int(candidates.delta[cols][bad][0])} is "
                             f"outside 1..{self.max_delta}, the δ the model was trained with")

        t0 = time.perf_counter()
        dev = self.device
        cur = torch.as_tensor(keypoints, dtype=torch.float32, device=dev)
        prev = torch.as_tensor(candidates.keypoints, dtype=torch.float32, device=dev)
        r = torch.as_tensor(rows, device=dev)
        k = torch.as_tensor(cols, device=dev)
        size = torch.as_tensor(np.asarray(frame_size, dtype=np.float32), device=dev).expand(m, 2)
        delta = torch.as_tensor(candidates.delta, device=dev)[k]
        tokens = tokenize_pairs(cur[r], prev[k], size, delta, self.token_config)
        probs = []
        with torch.inference_mode():
            for start in range(0, m, self.batch_size):
                batch = {name: t[start:start + self.batch_size] for name, t in tokens.items()}
                logits = self.model(batch)
                if logits.shape != (len(batch["mask"]), 2):
                    raise ValueError(f"PoseEntailmentScorer: the model returned logits of shape "
                                     f"{tuple(logits.shape)}, expected [{len(batch['mask'])}, 2]")
                probs.append(torch.softmax(logits.float(), dim=-1)[:, 1])
                self.forwards += 1
        scores[rows, cols] = torch.cat(probs).cpu().numpy()
        self.network_seconds += time.perf_counter() - t0
        self.pairs_scored += m
        return scores


#: Scorer classes by command-line name.
SCORERS: dict[str, type] = {
    "pose_entailment": PoseEntailmentScorer,
    "oks": OKSScorer,
    "iou": IoUScorer,
}
