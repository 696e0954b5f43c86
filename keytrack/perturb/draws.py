"""The protocol's building blocks, public for estimators that reuse its draws
(:mod:`keytrack.estimators.simulated`): head sizes, the fitted skeleton, the keypoint error and
confidence model, crops, missed runs, duplicates and clutter poses of one video."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

import numpy as np

from keytrack.perturb.config import _ADJACENT, TEMPLATE, TEMPLATE_HEAD_SIZE, PerturbConfig
from keytrack.poses import Video, keypoint_boxes
from keytrack.skeleton import FLIP, JOINTS, NUM_JOINTS

__all__ = [
    "box_diagonal",
    "template",
    "sigmoid",
    "logit",
    "Poses",
    "gather_poses",
    "fill_scale",
    "KeypointDraws",
    "draw_keypoints",
    "crop_of",
    "estimate_keypoints",
    "predict_keypoints",
    "person_crop",
    "missed",
    "duplicates",
    "frame_extent",
    "clutter",
    "person_scale",
    "fit_template",
]


# -- geometry -------------------------------------------------------------------------------------


def box_diagonal(boxes: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        diag = np.hypot(boxes[:, 2], boxes[:, 3])
    return np.where(np.isfinite(diag) & (diag > 0), diag, np.nan)


def person_scale(
    keypoints: np.ndarray, boxes: np.ndarray, head_boxes: np.ndarray, head_size_per_box_diagonal: float = 0.1
) -> np.ndarray:
    """``[P]`` head size ``s`` of each pose in pixels, the unit of PoseTrack's PCKh (NaN if unknown).

    ``0.6 ·`` the head box's diagonal where there is a head box (as PoseTrack's evaluation
    computes it), else ``head_size_per_box_diagonal ·`` the diagonal of the person box, else of
    the tight box around the present keypoints (NaN when fewer than two distinct keypoints).
    """
    s = 0.6 * box_diagonal(np.asarray(head_boxes, np.float64).reshape(-1, 4))
    for box in (np.asarray(boxes, np.float64).reshape(-1, 4), keypoint_boxes(keypoints)):
        s = np.where(np.isnan(s), head_size_per_box_diagonal * box_diagonal(box), s)
    return s


def fit_template(keypoints: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place :data:`TEMPLATE` on each pose, to put joints the annotation lacks somewhere plausible.

    Returns ``(a, b, mirrored)``, each ``[P]``: the template joint ``(tx, ty)`` lands at
    ``a · (±tx + i·ty) + b`` in the image (complex ``a`` = scale and rotation, ``b`` = offset,
    ``-tx`` where ``mirrored``, a person seen from behind). With two or more present keypoints it
    is the least-squares similarity transform from the template or its mirror image, whichever
    fits better. A fit whose scale disagrees with ``scale`` (head size in pixels) by more than a
    factor 3 (e.g. two nearby joints only), or a pose with a single keypoint, gets the upright
    template of that head size centred on the present keypoints instead.
    """
    kp = np.asarray(keypoints, np.float64)
    w = (kp[..., 2] > 0).astype(np.float64)  # [P, 15]
    n = w.sum(1)
    z = np.where(w > 0, kp[..., 0] + 1j * kp[..., 1], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_z = (w * z).sum(1) / n
        fits = []
        for sign in (1, -1):  # template, mirror image
            t = sign * TEMPLATE[:, 0] + 1j * TEMPLATE[:, 1]
            tc, zc = t - (w * t).sum(1, keepdims=True) / n[:, None], z - mean_z[:, None]
            a = (w * np.conj(tc) * zc).sum(1) / (w * np.abs(tc) ** 2).sum(1)
            fits.append((a, (w * np.abs(zc - a[:, None] * tc) ** 2).sum(1)))
        (a0, r0), (a1, r1) = fits
        mirrored = r1 < r0
        a = np.where(mirrored, a1, a0)
        expected = np.asarray(scale, np.float64) / TEMPLATE_HEAD_SIZE
        ratio = np.abs(a) / expected
        ok = (n >= 2) & np.isfinite(a) & (ratio > 1 / 3) & (ratio < 3)
        a = np.where(ok, a, expected + 0j)
        mirrored &= ok
        b = mean_z - a * (w * template(mirrored)).sum(1) / n
    return a, b, mirrored


def template(mirrored: np.ndarray) -> np.ndarray:
    """``[P, 15]`` complex template joints, mirrored (x → -x) where ``mirrored``."""
    return np.where(mirrored[:, None], -TEMPLATE[:, 0], TEMPLATE[:, 0]) + 1j * TEMPLATE[:, 1]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


# -- one video ------------------------------------------------------------------------------------


@dataclass
class Poses:
    """Predicted poses of one video as columns (one row per pose)."""

    frame: np.ndarray  # [N] position in video.frames
    keypoints: np.ndarray  # [N, 15, 3]
    boxes: np.ndarray  # [N, 4]
    scores: np.ndarray  # [N]
    track_ids: np.ndarray  # [N]

    @staticmethod
    def cat(parts: list["Poses"]) -> "Poses":
        return Poses(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Poses)))

    def take(self, keep: np.ndarray) -> "Poses":
        return Poses(*(getattr(self, f.name)[keep] for f in fields(Poses)))


def gather_poses(video: Video) -> tuple[np.ndarray, ...]:
    """Concatenate a video's poses; check that every present keypoint has finite coordinates."""
    counts = np.array([f.num_poses for f in video.frames], dtype=np.int64)
    frame = np.repeat(np.arange(len(video.frames)), counts)
    if counts.sum() == 0:
        return (
            frame,
            np.zeros((0, NUM_JOINTS, 3)),
            np.zeros(0, np.int64),
            np.zeros((0, 4)),
            np.zeros((0, 4)),
        )
    kp = np.concatenate([f.keypoints for f in video.frames])
    tid = np.concatenate([f.track_ids for f in video.frames])
    boxes = np.concatenate([f.boxes for f in video.frames])
    heads = np.concatenate([f.head_boxes for f in video.frames])
    bad = ((kp[..., 2] > 0) & ~np.isfinite(kp[..., :2]).all(-1)) | ~np.isfinite(kp[..., 2])
    if bad.any():
        row, joint = np.argwhere(bad)[0]
        pose = row - np.searchsorted(frame, frame[row])
        where = f"{video.source or video.name}: frame {video.frames[frame[row]].index}, pose {pose}"
        raise ValueError(
            f"{where}: "
            f"field 'keypoints', joint {JOINTS[joint]} has x, y, c = {kp[row, joint].tolist()} "
            "(a present keypoint needs finite x, y; c must be finite)"
        )
    return frame, kp, tid, boxes, heads


def fill_scale(s: np.ndarray, frame_height: float) -> np.ndarray:
    """Head sizes with unknown entries set to the video's median (or 3 % of the frame height)."""
    known = np.isfinite(s)
    if known.all():
        return s
    fallback = (
        np.median(s[known])
        if known.any()
        else (0.03 * frame_height if np.isfinite(frame_height) and frame_height > 0 else 10.0)
    )
    return np.where(known, s, fallback)


@dataclass
class KeypointDraws:
    """Every random number the estimator's keypoint errors of ``N`` poses need (one row per pose).

    Drawn once per pose, whatever box the estimator is later given: the same person in the same
    frame yields the same errors through any crop (:mod:`keytrack.estimators.simulated` relies on it).
    """

    inlier: np.ndarray  # [N, 15, 2] standard normal
    u_gross: np.ndarray  # [N, 15]
    gross_len: np.ndarray  # [N, 15] head sizes
    gross_dir: np.ndarray  # [N, 15] radians
    u_swap: np.ndarray  # [N]
    u_drop: np.ndarray  # [N, 15]
    u_hall: np.ndarray  # [N, 15]
    hall_noise: np.ndarray  # [N, 15, 2] standard normal
    conf_noise: np.ndarray  # [N, 15] standard normal

    def take(self, index: np.ndarray) -> "KeypointDraws":
        return KeypointDraws(*(getattr(self, f.name)[index] for f in fields(KeypointDraws)))


def draw_keypoints(n: int, cfg: PerturbConfig, rng_kp: np.random.Generator) -> KeypointDraws:
    """The keypoint draws of ``n`` poses, in the stream order the protocol has always used."""
    # Every draw is made for every pose and joint, so the keypoint stream is the same in both
    # predicted settings (and for any knob values).
    inlier = rng_kp.standard_normal((n, NUM_JOINTS, 2))
    u_gross = rng_kp.random((n, NUM_JOINTS))
    gross_len = cfg.gross_scale * np.exp(cfg.gross_spread * rng_kp.standard_normal((n, NUM_JOINTS)))
    gross_dir = rng_kp.uniform(0, 2 * np.pi, (n, NUM_JOINTS))
    u_swap = rng_kp.random(n)
    u_drop = rng_kp.random((n, NUM_JOINTS))
    u_hall = rng_kp.random((n, NUM_JOINTS))
    hall_noise = rng_kp.standard_normal((n, NUM_JOINTS, 2))
    conf_noise = rng_kp.standard_normal((n, NUM_JOINTS))
    return KeypointDraws(
        inlier, u_gross, gross_len, gross_dir, u_swap, u_drop, u_hall, hall_noise, conf_noise
    )


def crop_of(
    person_box: np.ndarray, shift: np.ndarray, log_scale: np.ndarray, cfg: PerturbConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§3.3's imperfect box: ``(lo [N, 2], hi [N, 2], inlier std gain [N])`` of the estimator's crop.

    The crop is ``person_box`` enlarged by :attr:`PerturbConfig.box_margin` per side, its centre
    moved by ``shift`` (fraction of the box's width / height) and its size scaled by
    ``exp(log_scale)``; a worse crop multiplies the inlier std by
    ``1 + box_jitter_gain · (‖shift‖ + |log scale|)``.
    """
    gain = 1 + cfg.box_jitter_gain * (np.hypot(*shift.T) + np.abs(log_scale))
    margin = 1 + 2 * cfg.box_margin
    centre = person_box[:, :2] + person_box[:, 2:] / 2 + shift * person_box[:, 2:]
    half = person_box[:, 2:] * margin * np.exp(log_scale)[:, None] / 2
    return centre - half, centre + half, gain


def estimate_keypoints(
    kp: np.ndarray,
    s: np.ndarray,
    draws: KeypointDraws,
    cfg: PerturbConfig,
    crop: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    confidence_offset: np.ndarray | None = None,
) -> np.ndarray:
    """``[N, 15, 3]`` predicted keypoints of annotated poses ``kp`` from their ``draws``.

    ``crop = (lo, hi, gain)`` (:func:`crop_of`) confines the predictions to the crop and scales
    the inlier std by ``gain``; without it the estimator sees the whole person (ground-truth
    boxes). ``confidence_offset [N]`` is added to every confidence logit of a pose.
    """
    n = len(kp)
    vis = kp[..., 2] > 0
    xy = np.where(vis[..., None], kp[..., :2], 0.0)
    sigma = np.broadcast_to(cfg.per_joint("joint_sigma"), (n, NUM_JOINTS)).copy()
    if crop is not None:
        lo, hi, gain = crop
        sigma *= gain[:, None]
    error = sigma[..., None] * draws.inlier
    gross = draws.u_gross < cfg.per_joint("gross_prob")
    gross_vec = draws.gross_len[..., None] * np.stack([np.cos(draws.gross_dir), np.sin(draws.gross_dir)], -1)
    error = np.where(gross[..., None], gross_vec, error)
    swap = (draws.u_swap < cfg.swap_prob)[:, None] & vis & vis[:, FLIP]
    source = np.where(swap, FLIP, np.arange(NUM_JOINTS))
    pred = np.take_along_axis(xy, source[..., None], axis=1) + s[:, None, None] * error
    if crop is not None:  # a heatmap estimator cannot point outside its crop
        pred = np.clip(pred, lo[:, None, :], hi[:, None, :])
    err = np.linalg.norm(pred - xy, axis=-1) / s[:, None]
    logit = cfg.confidence_bias - cfg.confidence_error_gain * err + cfg.confidence_noise * draws.conf_noise
    hall_logit = cfg.hallucinate_confidence + cfg.confidence_noise * draws.conf_noise
    if confidence_offset is not None:
        logit = logit + confidence_offset[:, None]
        hall_logit = hall_logit + confidence_offset[:, None]
    conf = sigmoid(logit)

    boundary = (~vis).astype(np.float64) @ _ADJACENT.astype(np.float64) > 0
    dropped = vis & (draws.u_drop < cfg.drop_prob * (1 + cfg.drop_boundary_gain * boundary))
    a, b, mirrored = fit_template(kp, s)
    plausible = a[:, None] * template(mirrored) + b[:, None]
    plausible = (
        np.stack([plausible.real, plausible.imag], -1)
        + cfg.hallucinate_sigma * s[:, None, None] * draws.hall_noise
    )
    hallucinated = ~vis & (draws.u_hall < cfg.hallucinate_prob)
    if crop is not None:
        plausible = np.clip(plausible, lo[:, None, :], hi[:, None, :])
    hall_conf = sigmoid(hall_logit)

    # an estimator given a box always outputs a pose: never drop a pose's last joint
    emptied = ~((vis & ~dropped) | hallucinated).any(1)
    best = np.argmax(np.where(vis, conf, -1.0), axis=1)
    dropped[emptied, best[emptied]] = False

    out = np.zeros_like(kp)
    out[..., :2] = np.where(hallucinated[..., None], plausible, pred)
    out[..., 2] = np.where(hallucinated, hall_conf, conf)
    emitted = (vis & ~dropped) | hallucinated
    out[~emitted] = 0.0
    out[..., 2] = np.where(emitted, np.clip(out[..., 2], 1e-3, 1.0), 0.0)
    return out


def predict_keypoints(
    kp: np.ndarray,
    s: np.ndarray,
    person_box: np.ndarray,
    predicted_boxes: bool,
    cfg: PerturbConfig,
    rng_kp: np.random.Generator,
    rng_box: np.random.Generator,
) -> np.ndarray:
    """``[N, 15, 3]`` predicted keypoints of the annotated poses (§4.2's "predicted keypoints")."""
    n = len(kp)
    draws = draw_keypoints(n, cfg, rng_kp)
    crop = None
    if predicted_boxes:  # §3.3's imperfect boxes: a shifted, mis-scaled crop
        shift = cfg.box_shift * rng_box.standard_normal((n, 2))
        log_scale = cfg.box_scale * rng_box.standard_normal(n)
        crop = crop_of(person_box, shift, log_scale, cfg)
    return estimate_keypoints(kp, s, draws, cfg, crop)


def person_crop(gt_box: np.ndarray, s: np.ndarray, min_size: float = 4.0) -> np.ndarray:
    """``[N, 4]`` the box an estimator crops a person with: its box, at least ``min_size`` head sizes
    wide and high (grown about its centre)."""
    crop = gt_box.copy()
    grow = np.maximum(min_size * s[:, None] - crop[:, 2:], 0)
    crop[:, :2] -= grow / 2
    crop[:, 2:] += grow
    return crop


def missed(
    key: np.ndarray, frame: np.ndarray, p_start: np.ndarray, rng: np.random.Generator, mean_run: float
) -> np.ndarray:
    """``[N]`` bool: poses a detector misses, in runs over each track's consecutive appearances.

    A run starts at a pose with probability ``p_start`` and covers it and the next ``L - 1``
    appearances of its track, ``L ~ Geometric(1 / mean_run)``; overlapping runs merge.
    """
    n = len(key)
    u = rng.random(n)
    length = rng.geometric(1.0 / mean_run, n)
    if n == 0:
        return np.zeros(0, bool)
    order = np.lexsort((frame, key))
    k = key[order]
    first = np.r_[True, k[1:] != k[:-1]]
    group = np.cumsum(first) - 1
    last = np.r_[np.flatnonzero(first)[1:] - 1, n - 1][group]
    pos = np.arange(n)
    end = np.where(u[order] < p_start[order], np.minimum(pos + length[order] - 1, last), -1)
    missed = np.empty(n, bool)
    missed[order] = np.maximum.accumulate(end) >= pos
    return missed


def duplicates(base: Poses, s: np.ndarray, cfg: PerturbConfig, rng: np.random.Generator) -> Poses:
    """False positives next to detected people: shifted, rescaled, noisier, less confident copies."""
    n = len(base.keypoints)
    u = rng.random(n)
    shift = rng.standard_normal((n, 2))
    log_scale = cfg.duplicate_scale * rng.standard_normal(n)
    jitter = rng.standard_normal((n, NUM_JOINTS, 2))
    conf_noise = rng.standard_normal((n, NUM_JOINTS))
    keep = u < cfg.duplicate_prob
    kp, s = base.keypoints[keep], s[keep]
    shift, log_scale, jitter, conf_noise = shift[keep], log_scale[keep], jitter[keep], conf_noise[keep]
    emitted = kp[..., 2] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(np.where(emitted[..., None], kp[..., :2], np.nan), axis=1)
    height = s / TEMPLATE_HEAD_SIZE
    xy = (
        centre[:, None]
        + np.exp(log_scale)[:, None, None] * (kp[..., :2] - centre[:, None])
        + (cfg.duplicate_shift * height[:, None] * shift)[:, None]
        + cfg.duplicate_sigma * s[:, None, None] * jitter
    )
    c = sigmoid(logit(kp[..., 2]) - cfg.duplicate_confidence_drop + cfg.confidence_noise * conf_noise)
    out = np.concatenate([xy, np.clip(c, 1e-3, 1.0)[..., None]], -1)
    out[~emitted] = 0.0
    m = len(out)
    return Poses(base.frame[keep], out, np.zeros((m, 4)), np.zeros(m), np.full(m, -1, np.int64))


def frame_extent(video: Video, kp: np.ndarray) -> np.ndarray | None:
    """``[x0, y0, x1, y1]`` where clutter may appear: the frame, else the annotated keypoints' extent."""
    if all(np.isfinite(v) and v > 0 for v in (video.width, video.height)):
        return np.array([0.0, 0.0, video.width, video.height])
    vis = kp[..., 2] > 0
    if not vis.any():
        return None
    xy = kp[vis][:, :2]
    return np.r_[xy.min(0), xy.max(0)]


def clutter(
    video: Video,
    labeled: np.ndarray,
    sizes: np.ndarray,
    extent: np.ndarray | None,
    cfg: PerturbConfig,
    rng: np.random.Generator,
) -> Poses:
    """False positives in the background: random template poses anywhere in labelled frames.

    Each is :data:`TEMPLATE`, randomly mirrored and tilted, the head size of a random person of
    the video (``sizes``), centred uniformly in ``extent``. None without people or extent.
    """
    counts = rng.poisson(cfg.clutter_rate, len(video.frames)) * labeled
    if extent is None or len(sizes) == 0:
        counts[:] = 0
    m = int(counts.sum())
    s = rng.choice(sizes, m) if m else np.zeros(0)
    centre = extent[:2] + rng.random((m, 2)) * (extent[2:] - extent[:2]) if m else np.zeros((0, 2))
    a = (s / TEMPLATE_HEAD_SIZE) * np.exp(0.25j * rng.standard_normal(m))
    t = template(rng.random(m) < 0.5)
    z = a[:, None] * (t - t.mean(1, keepdims=True)) + (centre[:, 0] + 1j * centre[:, 1])[:, None]
    jitter = rng.standard_normal((m, NUM_JOINTS, 2))
    xy = np.stack([z.real, z.imag], -1) + cfg.clutter_sigma * s[:, None, None] * jitter
    emitted = rng.random((m, NUM_JOINTS)) < cfg.clutter_keep_prob
    c = sigmoid(cfg.clutter_confidence + cfg.confidence_noise * rng.standard_normal((m, NUM_JOINTS)))
    out = np.concatenate([xy, c[..., None]], -1)
    out[~emitted] = 0.0
    frame = np.repeat(np.arange(len(video.frames)), counts)
    return Poses(frame, out, np.zeros((m, 4)), np.zeros(m), np.full(m, -1, np.int64))
