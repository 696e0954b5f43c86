"""Similarity scorers for the online tracker (KeyTrack §3.1, §3.2; the baselines of Table 2).

The tracker of §3.1 compares each pose of frame ``t`` with tracked poses of frames
``t-1 .. t-δ``. A *scorer* turns those comparisons into a ``[P, C]`` matrix in ``[0, 1]``
(higher = more likely the same person), ``P`` poses of the current frame against ``C`` candidate
poses. Every scorer has the same call signature, so learned and non-learned similarities plug
into the same :class:`~keytrack.tracking.tracker.Tracker`:

* :class:`PoseEntailmentScorer`: the match score of Pose Entailment (§3.2), the softmax
  probability of class 1 ("same person") of a matching network (the transformer or a baseline
  of §4.2 / §5.2); all candidate pairs of a frame are encoded at once and go through the network
  in one batched forward.
* :class:`OKSScorer`: object keypoint similarity between the two poses, the "spatial
  consistency" baseline that needs no learning.
* :class:`IoUScorer`: intersection over union of the two person boxes.

:data:`SCORERS` maps the names used on the command line to the classes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from keytrack.poses import keypoint_boxes
from keytrack.skeleton import NUM_JOINTS, OKS_SIGMAS
from keytrack.tracking.crops import FrameCrops, checkpoint_frames

if TYPE_CHECKING:  # torch is imported only when a network is used (evaluation imports this package)
    import torch
    from torch import nn

__all__ = [
    "Candidates",
    "Scorer",
    "PoseEntailmentScorer",
    "OKSScorer",
    "IoUScorer",
    "SCORERS",
    "PairScoreMemo",
    "oks_matrix",
    "oks_pairs",
    "iou_matrix",
]


@dataclass
class Candidates:
    """Tracked poses of the previous ``δ`` timesteps that a frame's poses are compared with.

    ``delta`` is the timestep distance ``Δ`` (``1..δ``) between the candidate's frame and the
    current one; it is the Segment token of Pose Entailment (§3.2, Eq. 3).
    """

    keypoints: np.ndarray  # [C, 15, 3]
    boxes: np.ndarray  # [C, 4] x, y, w, h
    track_ids: np.ndarray  # [C] int64
    delta: np.ndarray  # [C] int64, 1..δ
    frame: np.ndarray | None = None  # [C] frame index (bookkeeping only)

    def __post_init__(self) -> None:
        c = len(self.keypoints)
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(c, NUM_JOINTS, 3)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(c, 4)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(c)
        self.delta = np.asarray(self.delta, dtype=np.int64).reshape(c)
        self.frame = (
            np.zeros(c, np.int64) if self.frame is None else np.asarray(self.frame, dtype=np.int64).reshape(c)
        )

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

    def __call__(
        self,
        keypoints: np.ndarray,
        boxes: np.ndarray,
        candidates: Candidates,
        frame_size: tuple[float, float],
        mask: np.ndarray | None = None,
    ) -> np.ndarray: ...


def _filled_boxes(boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """``boxes`` with NaN rows replaced by the tight box of the pose's present keypoints."""
    boxes = np.asarray(boxes, dtype=np.float64)
    missing = ~np.isfinite(boxes).all(axis=-1)
    if missing.any():
        boxes = boxes.copy()
        boxes[missing] = keypoint_boxes(keypoints[missing])
    return boxes


def oks_matrix(
    a: np.ndarray, b: np.ndarray, b_boxes: np.ndarray, sigmas: np.ndarray = OKS_SIGMAS
) -> np.ndarray:
    """``[P, C]`` object keypoint similarity of poses ``a [P, 15, 3]`` with poses ``b [C, 15, 3]``.

    COCO's definition, ``OKS = mean_j exp(-d_j² / (2 s² k_j²))`` with ``k_j = 2 σ_j`` and the scale
    ``s² = `` area of ``b``'s box (``w · h``), averaged over the keypoints present (``c > 0``) in
    *both* poses; pairs without a jointly present keypoint score 0. ``b`` plays the role COCO
    gives the ground truth: the earlier, already tracked pose is the reference.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    area = np.asarray(b_boxes, dtype=np.float64)[:, 2] * np.asarray(b_boxes, dtype=np.float64)[:, 3]
    return _oks(a[:, None], b[None, :], area[None, :], sigmas)


def oks_pairs(
    a: np.ndarray, b: np.ndarray, b_boxes: np.ndarray, sigmas: np.ndarray = OKS_SIGMAS
) -> np.ndarray:
    """``[M]`` OKS of pose ``a[i]`` with pose ``b[i]`` (``[M, 15, 3]`` each), as :func:`oks_matrix`."""
    b_boxes = np.asarray(b_boxes, dtype=np.float64)
    return _oks(
        np.asarray(a, dtype=np.float64),
        np.asarray(b, dtype=np.float64),
        b_boxes[:, 2] * b_boxes[:, 3],
        sigmas,
    )


def _oks(a: np.ndarray, b: np.ndarray, area: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """OKS of broadcastable poses ``a``, ``b`` (``[..., 15, 3]``) with ``b``'s box areas ``[...]``."""
    both = (a[..., 2] > 0) & (b[..., 2] > 0)  # [..., 15]
    d2 = ((a[..., :2] - b[..., :2]) ** 2).sum(-1)
    area = np.where(np.isfinite(area) & (area > 0), area, np.finfo(np.float64).eps)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # [15]
    e = d2 / (2.0 * area[..., None] * var)
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

    ``scale`` (beyond the paper) multiplies every σ: a tracker comparing poses several frames
    apart, where people move further than COCO's per-keypoint tolerance (an annotation's spread),
    tells its candidates apart with a wider one (docs/tracking.md).
    """

    name = "oks"
    max_delta = None

    def __init__(self, sigmas: np.ndarray = OKS_SIGMAS, scale: float = 1.0):
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"OKSScorer: scale must be a positive number, got {scale}")
        self.sigmas = np.asarray(sigmas, dtype=np.float64) * float(scale)
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
    """Pose Entailment match scores (§3.2) from a matching network, any of ``model.name``.

    For the ``M`` requested pairs of a frame (all ``P × C``, or those ``mask`` selects), the
    current poses ``p^t`` and candidates ``p^{t-Δ}`` are gathered with one fancy index each,
    encoded by the matcher's pair encoder (:mod:`keytrack.encoders`: tokens for the transformer,
    images for the CNNs, joints for the GCN) in one call and classified in one forward pass; the
    score is ``softmax(logits)[:, 1]``, the probability that both poses are the same person.
    Frames with more than ``batch_size`` pairs are split into ``ceil(M / batch_size)`` chunks,
    each encoded and classified in one call (the default is large enough that a PoseTrack frame
    takes one).

    The CNN on image crops also needs the frames: ``frames`` (a :class:`keytrack.frames.FrameSource`)
    gives the image of a frame, :class:`~keytrack.tracking.crops.FrameCrops` (``crops``) cuts each
    pose from the image of its own frame, and the tracker announces each video with
    :meth:`begin_video`.

    Joints the matcher was not trained on are hidden from it: a checkpoint keeps the record of the
    joints its training data showed (``model.trained_joints``,
    :meth:`keytrack.data.TokenizedPairs.joints_seen`), and the others get ``c = 0`` on both poses
    before encoding. Bonn never annotates the nose, a pose estimator predicts one, and a network
    that never saw a visible nose token ranks such poses at random (measured: rank-1 0.68 instead
    of 0.995 on predicted keypoints, docs/matchers.md).

    ``pairs_scored``, ``forwards`` and ``network_seconds`` count the work done, for pairs/s reports.

    Args:
        model: maps the encoder's dict to logits ``[M, 2]``.
        encoder: the matcher's :class:`~keytrack.encoders.PairEncoder`, or the
            :class:`~keytrack.tokenize.TokenConfig` a transformer was trained with; its ``delta``
            bounds the ``Δ`` the scorer accepts.
        device: torch device to encode and run on.
        batch_size: most pairs per forward.
        frames: image source for encoders that need crops.
        precision: ``"fp32"`` or ``"bf16"`` (the network's forward under ``torch.autocast`` with
            bfloat16; inputs, encoding and the softmax stay fp32).
        motion: the tracker motion the network was trained for (``pairs.motion`` of its config:
            ``"velocity"`` when its earlier poses were moved by their track's velocity); a
            :class:`~keytrack.tracking.Tracker` given no ``motion`` uses it.
    """

    name = "pose_entailment"
    #: The values of ``precision``.
    PRECISIONS = ("fp32", "bf16")

    def __init__(
        self,
        model: nn.Module,
        encoder,
        device: str | torch.device = "cpu",
        batch_size: int = 16384,
        frames=None,
        precision: str = "fp32",
        motion: str = "none",
    ):
        import torch

        from keytrack.encoders import TokenEncoder
        from keytrack.tokenize import TokenConfig

        if int(batch_size) < 1:
            raise ValueError(f"PoseEntailmentScorer: batch_size must be >= 1, got {batch_size}")
        if precision not in self.PRECISIONS:
            raise ValueError(
                f"PoseEntailmentScorer: precision must be one of {', '.join(self.PRECISIONS)}, "
                f"got {precision!r}"
            )
        self.precision = precision
        self.motion = str(motion)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.encoder = TokenEncoder(encoder) if isinstance(encoder, TokenConfig) else encoder
        if self.encoder.needs_crops and frames is None:
            raise ValueError(
                f"PoseEntailmentScorer: the {type(self.encoder).__name__} needs images: "
                "pass frames=<keytrack.frames.FrameSource>"
            )
        self.frames = frames
        #: The crops of a matcher on images (None for the others).
        self.crops = (
            FrameCrops(frames, self.encoder.resolution, self.encoder.delta)
            if self.encoder.needs_crops
            else None
        )
        joints = getattr(model, "trained_joints", None)
        self.trained_joints = None if joints is None else np.asarray(joints, dtype=bool).reshape(NUM_JOINTS)
        self.batch_size = int(batch_size)
        self.pairs_scored = 0
        self.forwards = 0
        self.network_seconds = 0.0

    @property
    def max_delta(self) -> int:
        return int(self.encoder.delta)

    @property
    def token_config(self):
        """The transformer's :class:`~keytrack.tokenize.TokenConfig` (None for other matchers)."""
        return getattr(self.encoder, "config", None)

    @property
    def mixes_videos(self) -> bool:
        """Whether :meth:`score_many` takes frames of several videos at once (a matcher on image
        crops reads the frames of the video :meth:`begin_video` announced, so it does not)."""
        return not self.encoder.needs_crops

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str,
        device: str | torch.device = "cpu",
        batch_size: int = 16384,
        frames=None,
        image_root: str | None = None,
        split: str | None = None,
        precision: str = "fp32",
    ) -> "PoseEntailmentScorer":
        """The scorer of a training checkpoint (:func:`keytrack.models.factory.load_matcher`).

        For a matcher on image crops, ``frames`` is the image source; by default that of the
        checkpoint's ``data`` config, with ``root`` (and ``split``) replaced by ``image_root``
        (``split``) when given (:func:`~keytrack.tracking.crops.checkpoint_frames`). A checkpoint of
        the track-level matcher gives a :class:`~keytrack.tracking.track_scorer.TrackEntailmentScorer`.
        ``checkpoint`` may name a shipped matcher (:func:`keytrack.weights.resolve_checkpoint`).
        """
        from keytrack.encoders import pair_encoder
        from keytrack.models.factory import load_matcher
        from keytrack.tracking.track_scorer import TrackEntailmentScorer, is_track_checkpoint
        from keytrack.weights import resolve_checkpoint

        checkpoint = str(resolve_checkpoint(checkpoint))
        if is_track_checkpoint(checkpoint):
            return TrackEntailmentScorer.from_checkpoint(
                checkpoint, device=device, batch_size=batch_size, precision=precision
            )

        model, cfg = load_matcher(checkpoint, map_location="cpu")
        encoder = pair_encoder(cfg)
        if encoder.needs_crops and frames is None:
            frames = checkpoint_frames(cfg.data, image_root, split)
        return cls(
            model,
            encoder,
            device=device,
            batch_size=batch_size,
            frames=frames,
            precision=precision,
            motion=str(cfg.pairs.get("motion", "none")),
        )

    def begin_video(self, video) -> None:
        """Called by the tracker before the first frame of ``video``: the frames crops come from."""
        if self.crops is not None:
            self.crops.begin_video(video)

    def hide_untrained(self, keypoints: np.ndarray) -> np.ndarray:
        """``[..., 15, 3]`` keypoints with ``c = 0`` on the joints the network was not trained on
        (a copy; the input itself when none of those joints is visible)."""
        if self.trained_joints is None or not (np.asarray(keypoints)[..., ~self.trained_joints, 2] > 0).any():
            return keypoints
        out = np.array(keypoints, dtype=np.float64)
        out[..., ~self.trained_joints, 2] = 0
        return out

    def __call__(self, keypoints, boxes, candidates: Candidates, frame_size, mask=None) -> np.ndarray:
        return self.score_many([(keypoints, boxes, candidates, frame_size, mask)])[0]

    def score_many(self, requests) -> list[np.ndarray]:
        """The ``[P, C]`` score matrices of several frames' ``(keypoints, boxes, candidates,
        frame_size, mask)``, as ``__call__`` gives each, with the pairs of all of them encoded and
        classified together (one forward per ``batch_size`` pairs)."""
        asked = [self._requested_pairs(*request, alone=len(requests) == 1) for request in requests]
        outs = [np.zeros(shape) for shape, _, _, _ in asked]
        if sum(len(rows) for _, rows, _, _ in asked):
            parts = [part for _, _, _, part in asked]
            scores = self.pair_scores(
                *(np.concatenate([part[i] for part in parts]) for i in range(4)),
                parts[0][4] if len(parts) == 1 else None,
            )
            ends = np.cumsum([len(rows) for _, rows, _, _ in asked])
            for out, (_, rows, cols, _), chunk in zip(outs, asked, np.split(scores, ends[:-1])):
                out[rows, cols] = chunk
        return outs

    def _requested_pairs(self, keypoints, boxes, candidates: Candidates, frame_size, mask, alone: bool):
        """The pairs one frame asks for: the ``(P, C)`` shape of its matrix, the ``rows`` and ``cols``
        of the pairs in it, and :meth:`pair_scores`' arguments for them (current and earlier
        keypoints, frame sizes, ``Δ``, crops). Crops are cut for a frame scored ``alone`` only."""
        keypoints = self.hide_untrained(np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3))
        cand_kp = self.hide_untrained(
            np.asarray(candidates.keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
        )
        p, c = len(keypoints), len(candidates)
        mask = np.ones((p, c), bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != (p, c):
            raise ValueError(f"PoseEntailmentScorer: mask must be [{p}, {c}], got {mask.shape}")
        rows, cols = np.nonzero(mask)
        bad = (candidates.delta[cols] < 1) | (candidates.delta[cols] > self.max_delta)
        if bad.any():
            raise ValueError(
                f"PoseEntailmentScorer: candidate Δ = {int(candidates.delta[cols][bad][0])} is "
                f"outside 1..{self.max_delta}, the δ the model was trained with"
            )
        crops = None
        if self.crops is not None and len(rows):
            if not alone:
                raise ValueError("PoseEntailmentScorer: a matcher on image crops scores one frame per call")
            q, k = self.crops.pairs(keypoints, np.asarray(boxes, dtype=np.float64).reshape(p, 4), candidates)
            crops = (q[_torch_index(rows)], k[_torch_index(cols)])
        size = np.broadcast_to(np.asarray(frame_size, dtype=np.float32), (len(rows), 2))
        return (p, c), rows, cols, (keypoints[rows], cand_kp[cols], size, candidates.delta[cols], crops)

    def pair_scores(self, current, previous, frame_size, delta, crops=None) -> np.ndarray:
        """``[M]`` match probabilities of ``M`` pairs: keypoints ``[M, 15, 3]`` of each side, frame
        sizes ``[M, 2]``, ``Δ [M]`` (and the pairs' crops for a matcher on images), in chunks of
        ``batch_size`` pairs, one forward each. Untrained joints are hidden (:meth:`hide_untrained`);
        a pair with a side left without a visible joint scores 0 (nothing to compare)."""
        import torch

        current = self.hide_untrained(np.asarray(current, dtype=np.float64).reshape(-1, NUM_JOINTS, 3))
        previous = self.hide_untrained(np.asarray(previous, dtype=np.float64).reshape(-1, NUM_JOINTS, 3))
        out = np.zeros(len(current))
        keep = np.flatnonzero((current[..., 2] > 0).any(-1) & (previous[..., 2] > 0).any(-1))
        m = len(keep)
        if m == 0:
            return out
        t0 = time.perf_counter()
        dev = self.device
        cur = torch.as_tensor(current[keep], dtype=torch.float32, device=dev)
        prev = torch.as_tensor(previous[keep], dtype=torch.float32, device=dev)
        size = torch.as_tensor(np.asarray(frame_size, dtype=np.float32)[keep], device=dev)
        delta = torch.as_tensor(np.asarray(delta)[keep], device=dev)
        if crops is not None:
            crops = tuple(c[_torch_index(keep)].to(dev) for c in crops)
        probs = []
        with torch.inference_mode():
            for start in range(0, m, self.batch_size):
                chunk = slice(start, start + self.batch_size)
                pair_crops = None if crops is None else (crops[0][chunk], crops[1][chunk])
                batch = self.encoder(cur[chunk], prev[chunk], size[chunk], delta[chunk], pair_crops)
                probs.append(self._same_person(batch, len(cur[chunk])))
        out[keep] = torch.cat(probs).cpu().numpy()
        self.network_seconds += time.perf_counter() - t0
        self.pairs_scored += m
        return out

    def _same_person(self, batch, n: int) -> torch.Tensor:
        """``[n]`` probabilities of class 1 ("same person", §3.2) of a batch of ``n`` encoded pairs:
        one forward of the network, under bfloat16 autocast with ``precision = "bf16"``."""
        import torch

        bf16 = self.precision == "bf16"
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = self.model(batch)
        if logits.shape != (n, 2):
            raise ValueError(
                f"PoseEntailmentScorer: the model returned logits of shape "
                f"{tuple(logits.shape)}, expected [{n}, 2]"
            )
        self.forwards += 1
        return torch.softmax(logits.float(), dim=-1)[:, 1]


def _torch_index(idx: np.ndarray):
    """A numpy index array as a torch index (for gathering crops)."""
    import torch

    return torch.as_tensor(np.asarray(idx), dtype=torch.long)


#: Scorer classes by command-line name.
SCORERS: dict[str, type] = {
    "pose_entailment": PoseEntailmentScorer,
    "oks": OKSScorer,
    "iou": IoUScorer,
}


class PairScoreMemo:
    """A scorer that remembers every pose-pair score it has computed, and asks ``scorer`` only for new pairs.

    A pair's score depends on the two poses (keypoints and boxes), their distance ``Δ`` in
    timesteps and the frame size, not on the track ids the tracker has given so far. Tracking the
    same predictions with another assignment, or with a smaller δ (whose candidate pairs are a
    subset of δ = 4's), therefore needs no new network forward: the memo answers from the scores of
    the first run. Poses are keyed by a 16-byte BLAKE2b digest of their keypoint and box values.

    ``pairs_scored`` counts pairs sent to ``scorer``, ``pairs_reused`` pairs answered from memory.
    Use one memo per set of predictions (it grows with every distinct pair).
    """

    def __init__(self, scorer):
        self.scorer = scorer
        self.scores: dict[tuple[bytes, bytes, int, tuple[float, float]], float] = {}
        self.pairs_scored = 0
        self.pairs_reused = 0

    @property
    def max_delta(self) -> int | None:
        return getattr(self.scorer, "max_delta", None)

    @property
    def name(self) -> str:
        return getattr(self.scorer, "name", type(self.scorer).__name__)

    @property
    def motion(self) -> str:
        return getattr(self.scorer, "motion", "none")

    def begin_video(self, video) -> None:
        """Passed on to scorers that need the video (the crop CNN reads its frames)."""
        if hasattr(self.scorer, "begin_video"):
            self.scorer.begin_video(video)

    @staticmethod
    def _pose_keys(keypoints: np.ndarray, boxes: np.ndarray) -> list[bytes]:
        rows = np.ascontiguousarray(
            np.concatenate(
                [
                    np.asarray(keypoints, np.float64).reshape(len(keypoints), -1),
                    np.asarray(boxes, np.float64).reshape(len(boxes), -1),
                ],
                axis=1,
            )
        )
        return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows]

    def __call__(self, keypoints, boxes, candidates, frame_size, mask=None) -> np.ndarray:
        if getattr(self.scorer, "scores_tracks", False):  # a track's score is no pair's: nothing to reuse
            before = getattr(self.scorer, "pairs_scored", 0)
            scores = self.scorer(keypoints, boxes, candidates, frame_size, mask)
            self.pairs_scored += getattr(self.scorer, "pairs_scored", 0) - before
            return scores
        p, c = len(keypoints), len(candidates)
        mask = np.ones((p, c), bool) if mask is None else np.asarray(mask, bool)
        scores = np.zeros((p, c))
        rows, cols = np.nonzero(mask)
        if len(rows) == 0:
            return scores
        size = tuple(float(v) for v in frame_size)
        q_keys = self._pose_keys(keypoints, boxes)
        c_keys = self._pose_keys(candidates.keypoints, candidates.boxes)
        deltas = np.asarray(candidates.delta, np.int64).tolist()
        keys = [(q_keys[i], c_keys[j], deltas[j], size) for i, j in zip(rows.tolist(), cols.tolist())]
        known = np.fromiter((k in self.scores for k in keys), bool, len(keys))
        if known.any():
            scores[rows[known], cols[known]] = [self.scores[k] for k, hit in zip(keys, known) if hit]
        if not known.all():
            need = np.zeros_like(mask)
            need[rows[~known], cols[~known]] = True
            fresh = np.asarray(self.scorer(keypoints, boxes, candidates, frame_size, need), np.float64)
            new_rows, new_cols = rows[~known], cols[~known]
            scores[new_rows, new_cols] = fresh[new_rows, new_cols]
            self.scores.update(
                zip((k for k, hit in zip(keys, known) if not hit), fresh[new_rows, new_cols].tolist())
            )
        self.pairs_reused += int(known.sum())
        self.pairs_scored += int((~known).sum())
        return scores
