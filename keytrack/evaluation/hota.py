"""HOTA for keypoint tracks as the PoseTrack21 evaluation kit computes it, plus per-joint IDF1.

A re-implementation, on keytrack's in-memory :class:`~keytrack.poses.Dataset`, of the kit's
``HOTAeypoints`` metric (``anDoer/PoseTrack21``, ``eval/posetrack21``, a TrackEval derivative;
files and commit in ``docs/evaluation.md``). Every joint is its own detection class:

* :func:`prepare_sequence` -- ``datasets/posetrack.py``, ``PoseTrack.get_raw_seq_data`` and
  ``get_preprocessed_seq_data``: unlabeled frames dropped, ignore regions applied, ids relabelled;
* :func:`keypoint_similarity` -- ``PoseTrack._calculate_pckh`` and ``HOTAeypoints.distance2sim``:
  head-normalised distance turned into a similarity that reaches 0 at half a head size;
* :func:`sequence_counts` -- ``HOTAeypoints.eval_sequence``: per-joint Hungarian matching,
  counts for every alpha, association scores;
* :func:`combine` -- ``HOTAeypoints.combine_sequences`` and ``_compute_final_fields``;
* :func:`identity_metrics` -- IDF1 / IDP / IDR with motmetrics on poseval's per-joint matching.

Quirks of the kit are reproduced on purpose; ``docs/evaluation.md`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

import motmetrics as mm
import numpy as np
from scipy.optimize import linear_sum_assignment

from keytrack.evaluation.ap import nan_mean
from keytrack.evaluation.mot import VideoAccumulators
from keytrack.evaluation.protocol import (
    POSEVAL_JOINTS,
    EvaluationError,
    _check_polygons,
    _where,
    check_same_frames,
    head_sizes,
    pair_videos,
    points_in_polygons,
    prepare_video,
)
from keytrack.poses import Dataset, Video
from keytrack.skeleton import JOINTS, NUM_JOINTS

#: The kit's localisation thresholds alpha (``HOTAeypoints.array_labels``): 0.05, 0.10, ... 0.95.
ALPHAS: np.ndarray = np.arange(0.05, 0.99, 0.05)
#: ``distance2sim``: similarity ``max(1 - d / 0.5001, 0)`` of a head-normalised distance ``d``.
SIM_SLOPE: float = -1 / 0.5001
EPS: float = np.finfo("float").eps
#: HOTA family metrics returned by :func:`hota` (0-100), then the identity metrics.
HOTA_METRICS: tuple[str, ...] = ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")
ID_METRICS: tuple[str, ...] = ("IDF1", "IDP", "IDR")


# --------------------------------------------------------------------------------------------
# One sequence: preprocessing and similarity (datasets/posetrack.py)
# --------------------------------------------------------------------------------------------


@dataclass
class SequenceData:
    """One video after the kit's preprocessing: per scored frame, both sides' poses.

    ``gt_xy[t]`` ``[G, 15, 2]`` and ``pred_xy[t]`` ``[P, 15, 2]``, absent keypoints at ``(0, 0)``;
    ``gt_ids[t]`` / ``pred_ids[t]`` contiguous ids ``0 .. num_*_ids - 1``; ``head_size[t]`` ``[G]``.
    """

    gt_xy: list[np.ndarray]
    pred_xy: list[np.ndarray]
    gt_ids: list[np.ndarray]
    pred_ids: list[np.ndarray]
    head_size: list[np.ndarray]
    num_gt_ids: int
    num_pred_ids: int


def valid_joints(xy: np.ndarray) -> np.ndarray:
    """``[P, 15]``: the kit's keypoint validity, ``x > 0 and y > 0`` (``utils.count_valid_joints``)."""
    return (xy[..., 0] > 0) & (xy[..., 1] > 0)


def _file_xy(keypoints: np.ndarray) -> np.ndarray:
    """``[P, 15, 2]`` coordinates as a PoseTrack file holds them: absent (``c <= 0``) at ``0, 0``."""
    return np.where(keypoints[..., 2:3] > 0, keypoints[..., :2], 0.0)


def _apply_ignore_regions(xy: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """Keep mask ``[P]`` after zeroing, in place, the points inside the polygons.

    ``PoseTrack.get_raw_seq_data`` step 2 with ``remove_ignored_points``: every one of the 15
    points (absent ones at ``0, 0`` included) is tested with shapely's ``contains``; points inside
    become ``0, 0``; a pose is dropped when none of its points has ``x > 0 or y > 0`` left.
    """
    inside = points_in_polygons(xy.reshape(-1, 2), polygons).reshape(xy.shape[:2])
    xy[inside] = 0.0
    return ~((xy[..., 0] <= 0) & (xy[..., 1] <= 0)).all(1)


def _relabel(ids: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Ids renumbered ``0 .. n-1`` in increasing order (``get_preprocessed_seq_data``)."""
    uniq, inv = np.unique(np.concatenate(ids) if ids else np.zeros(0, np.int64), return_inverse=True)
    bounds = np.cumsum([0] + [len(i) for i in ids])
    return [inv[a:b].astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:])], len(uniq)


def _check_ids(video: Video, side: str) -> None:
    """Track ids known (``>= 0``) and unique per frame on both sides (``_check_unique_ids``)."""
    for frame in video.frames:
        ids = frame.track_ids
        if (ids < 0).any():
            raise EvaluationError(
                f"{_where(video, frame)}: field 'track_ids': {side} pose "
                f"{int(np.flatnonzero(ids < 0)[0])} has no track id (-1)"
            )
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise EvaluationError(
                f"{_where(video, frame)}: field 'track_ids': {side} track ids "
                f"{uniq[counts > 1].tolist()} repeat in one frame"
            )


def prepare_sequence(gt: Video, pred: Video) -> SequenceData:
    """The kit's ``get_raw_seq_data`` + ``get_preprocessed_seq_data`` for one video pair.

    Frames whose GT is not ``is_labeled`` are dropped on both sides; in frames whose GT has ignore
    regions, points inside them are removed from GT and predictions and poses left without points
    are dropped (elsewhere poses without keypoints stay, as in the kit). Head size is 0.6 x the
    head-box diagonal (``_get_head_size``).
    """
    check_same_frames(gt, pred)
    _check_ids(gt, "ground-truth")
    _check_ids(pred, "predicted")
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("gx", "px", "gi", "pi", "hs")}
    for g_frame, p_frame in zip(gt.frames, pred.frames):
        if not g_frame.is_labeled:
            continue
        gx, px = _file_xy(g_frame.keypoints), _file_xy(p_frame.keypoints)
        g_keep, p_keep = np.ones(len(gx), bool), np.ones(len(px), bool)
        if len(g_frame.ignore_regions) > 0:
            polygons = _check_polygons(g_frame, gt)
            g_keep, p_keep = _apply_ignore_regions(gx, polygons), _apply_ignore_regions(px, polygons)
        hs = head_sizes(g_frame.head_boxes)[g_keep]
        gx, px = gx[g_keep], px[p_keep]
        if len(px) and (valid_joints(gx).any(1) & ~np.isfinite(hs)).any():
            raise EvaluationError(
                f"{_where(gt, g_frame)}: field 'head_boxes': a ground-truth pose has keypoints but "
                "no head box; the kit normalises distances by the head size"
            )
        out["gx"].append(gx)
        out["px"].append(px)
        out["gi"].append(g_frame.track_ids[g_keep])
        out["pi"].append(p_frame.track_ids[p_keep])
        out["hs"].append(hs)
    gt_ids, n_gt = _relabel(out["gi"])
    pred_ids, n_pred = _relabel(out["pi"])
    return SequenceData(out["gx"], out["px"], gt_ids, pred_ids, out["hs"], n_gt, n_pred)


def keypoint_similarity(gt_xy: np.ndarray, pred_xy: np.ndarray, head_size: np.ndarray) -> np.ndarray:
    """``[G, P, 15]`` similarity ``max(1 - d / 0.5001, 0)``, ``d`` = distance / head size.

    ``PoseTrack._calculate_pckh`` (distance where both keypoints are valid, ``inf`` otherwise)
    followed by ``HOTAeypoints.distance2sim``.
    """
    both = valid_joints(gt_xy)[:, None] & valid_joints(pred_xy)[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.linalg.norm(gt_xy[:, None] - pred_xy[None], axis=-1) / head_size[:, None, None]
        return np.maximum(SIM_SLOPE * np.where(both, d, np.inf) + 1, 0)


# --------------------------------------------------------------------------------------------
# One sequence: matching and counts (metrics/hota_pose.py, HOTAeypoints.eval_sequence)
# --------------------------------------------------------------------------------------------


def sequence_counts(seq: SequenceData) -> dict[str, np.ndarray]:
    """``[19, 15]`` per alpha and joint: ``TP``, ``FN``, ``FP``, ``AssA``, ``AssRe``, ``AssPr``,
    ``LocA`` of one sequence, as ``HOTAeypoints.eval_sequence`` computes them.

    Per frame and joint, one Hungarian assignment maximising the similarity alone (the kit's
    ``score_mat = similarity``: no TrackEval alignment-score weighting); a pair counts at alpha if
    its similarity is ``>= alpha - eps``. A frame without GT poses adds the *sequence's* total of
    predicted joints to FP; a frame with GT but no predicted pose adds the sequence's total of GT
    joints to FN. Sequences without any predicted (else GT) pose take the kit's early return.
    """
    A, J = len(ALPHAS), NUM_JOINTS
    gt_count = np.zeros((seq.num_gt_ids, J))
    pred_count = np.zeros((seq.num_pred_ids, J))
    for ids, xy in zip(seq.gt_ids, seq.gt_xy):
        np.add.at(gt_count, ids, valid_joints(xy))
    for ids, xy in zip(seq.pred_ids, seq.pred_xy):
        np.add.at(pred_count, ids, valid_joints(xy))
    num_gt_joints, num_pred_joints = gt_count.sum(0), pred_count.sum(0)
    zeros = np.zeros((A, J))
    res = {
        "TP": zeros.copy(),
        "FN": zeros.copy(),
        "FP": zeros.copy(),
        "AssA": zeros.copy(),
        "AssRe": zeros.copy(),
        "AssPr": zeros.copy(),
        "LocA": np.ones((A, J)),
    }
    num_pred_dets = sum(len(i) for i in seq.pred_ids)
    if num_pred_dets == 0:
        res["FN"] += num_gt_joints
        return res
    if sum(len(i) for i in seq.gt_ids) == 0:
        res["FP"] += num_pred_joints
        return res

    pairs: dict[str, list[np.ndarray]] = {"g": [], "p": [], "j": [], "sim": []}
    base_fn, base_fp = np.zeros(J), np.zeros(J)
    for gx, px, gi, pi, hs in zip(seq.gt_xy, seq.pred_xy, seq.gt_ids, seq.pred_ids, seq.head_size):
        if len(gi) == 0:
            base_fp += num_pred_joints
            continue
        if len(pi) == 0:
            base_fn += num_gt_joints
            continue
        base_fn += valid_joints(gx).sum(0)
        base_fp += valid_joints(px).sum(0)
        sim = keypoint_similarity(gx, px, hs)
        for j in range(J):
            rows, cols = linear_sum_assignment(-sim[:, :, j])
            pairs["g"].append(gi[rows])
            pairs["p"].append(pi[cols])
            pairs["j"].append(np.full(len(rows), j))
            pairs["sim"].append(sim[rows, cols, j])
    g, p, j = (np.concatenate([np.zeros(0, np.int64), *pairs[k]]) for k in ("g", "p", "j"))
    s = np.concatenate([np.zeros(0), *pairs["sim"]])
    hit = s[None] >= ALPHAS[:, None] - EPS  # [A, M]
    key, inv = np.unique((g * seq.num_pred_ids + p) * J + j, return_inverse=True)
    kg, kp, kj = key // J // seq.num_pred_ids, key // J % seq.num_pred_ids, key % J
    for a in range(A):
        tp = np.bincount(j[hit[a]], minlength=J).astype(float)
        res["TP"][a] = tp
        res["FN"][a] = base_fn - tp
        res["FP"][a] = base_fp - tp
        loc = np.bincount(j[hit[a]], weights=s[hit[a]], minlength=J)
        res["LocA"][a] = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
        m = np.bincount(inv[hit[a]], minlength=len(key)).astype(float)  # matches per id pair
        gc, pc = gt_count[kg, kj], pred_count[kp, kj]
        for name, denom in (("AssA", gc + pc - m), ("AssRe", gc), ("AssPr", pc)):
            res[name][a] = np.bincount(kj, weights=m * m / np.maximum(1, denom), minlength=J) / np.maximum(
                1, tp
            )
    return res


# --------------------------------------------------------------------------------------------
# All sequences (HOTAeypoints.combine_sequences, _compute_final_fields)
# --------------------------------------------------------------------------------------------


def _with_total(res: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Append the kit's 16th "total" column: sum over joints for counts, mean for scores."""
    return {
        k: np.concatenate([v, (v.sum if k in ("TP", "FN", "FP") else v.mean)(1, keepdims=True)], 1)
        for k, v in res.items()
    }


def combine(per_sequence: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``[19, 16]`` final fields over all sequences, column 15 being the kit's "Total".

    Counts are summed; AssA, AssRe, AssPr and LocA are averaged over sequences weighted by TP,
    column by column, so the total column averages each sequence's *mean over joints* (joints
    without any match count as AssA 0 and LocA 1 there). DetRe, DetPr, DetA and HOTA follow from
    the combined fields.
    """
    seqs = [_with_total(r) for r in per_sequence]
    if not seqs:
        seqs = [
            _with_total(
                {
                    k: np.zeros((len(ALPHAS), NUM_JOINTS))
                    for k in ("TP", "FN", "FP", "AssA", "AssRe", "AssPr", "LocA")
                }
            )
        ]
    res = {k: sum(r[k] for r in seqs) for k in ("TP", "FN", "FP")}
    tp = res["TP"]
    for k in ("AssA", "AssRe", "AssPr"):
        res[k] = sum(r[k] * r["TP"] for r in seqs) / np.maximum(1.0, tp)
    res["LocA"] = np.maximum(1e-10, sum(r["LocA"] * r["TP"] for r in seqs)) / np.maximum(1e-10, tp)
    res["DetRe"] = tp / np.maximum(1, tp + res["FN"])
    res["DetPr"] = tp / np.maximum(1, tp + res["FP"])
    res["DetA"] = tp / np.maximum(1, tp + res["FN"] + res["FP"])
    res["HOTA"] = np.sqrt(res["DetA"] * res["AssA"])
    return res


# --------------------------------------------------------------------------------------------
# IDF1 on poseval's matching
# --------------------------------------------------------------------------------------------


def identity_metrics(gt: Dataset, pred: Dataset) -> dict[str, np.ndarray]:
    """``[15]`` IDF1, IDP, IDR (%) per joint, joints in :data:`keytrack.skeleton.JOINTS` order.

    Computed by motmetrics (``idtp``, ``idfn``, ``idfp``, ``num_objects``, ``num_predictions``)
    on the very accumulators poseval's MOTA uses (:class:`keytrack.evaluation.mot.VideoAccumulators`
    fed by :func:`keytrack.evaluation.protocol.prepare_video`): the same per-joint PCKh 0.5 pairs,
    frames without GT people skipped, the last scored frame of each video left out and the
    placeholder objects of frames where one side is empty included. The ID counts are summed over
    videos, then ``IDF1 = 2 IDTP / (objects + predictions)``, ``IDP = IDTP / (IDTP + IDFP)``,
    ``IDR = IDTP / (IDTP + IDFN)``; NaN where the denominator is 0.
    """
    names = ["idtp", "idfn", "idfp", "num_objects", "num_predictions"]
    sums = np.zeros((len(names), len(POSEVAL_JOINTS)))
    mh = mm.metrics.create()
    for gt_video, pred_video in pair_videos(gt, pred):
        video = VideoAccumulators().run(prepare_video(gt_video, pred_video, tracking=True))
        if video.num_frames == 0:
            continue
        for j, acc in enumerate(video.accumulators):
            values = mh.compute(acc, metrics=names, return_dataframe=False)
            sums[:, j] += [values[n] for n in names]
    idtp, idfn, idfp, objects, predictions = sums
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "IDF1": 2 * idtp / (objects + predictions),
            "IDP": idtp / (idtp + idfp),
            "IDR": idtp / (idtp + idfn),
        }
    order = np.array([POSEVAL_JOINTS.index(name) for name in JOINTS])  # poseval -> keytrack
    return {k: 100 * np.where(np.isfinite(v), v, np.nan)[order] for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def hota(gt: Dataset, pred: Dataset, *, compute_idf1: bool = True, progress=None) -> dict:
    """The PoseTrack21 kit's keypoint HOTA of ``pred`` against ``gt``, plus IDF1 / IDP / IDR.

    Videos are paired by name (every GT video needs a prediction with the same frames); every
    pose on both sides needs a track id. Returns (all on the 0-100 scale)::

        {"joints": JOINTS, "alphas": [19],
         "per_joint": {metric: [15]}, "total": {metric: float},
         "per_alpha": {metric: [19, 16]},         # HOTA family only; column 15 = total
         "counts": {"TP"|"FN"|"FP": [19, 16]}, "num_videos": int, "num_frames": int}

    with metrics :data:`HOTA_METRICS` and, if ``compute_idf1``, :data:`ID_METRICS`. A HOTA family
    value is the mean over the 19 alphas of the kit's per-alpha value (``_summary_result``); its
    total is the kit's "Total" column (see :func:`combine`), not the mean of the per-joint values.
    The identity totals are the mean over joints where the value is not NaN (as poseval's MOTA).
    ``progress(videos done, videos, frames done)`` is called after each video's HOTA counts.
    """
    pairs = pair_videos(gt, pred)
    seqs, counts, frames = [], [], 0
    for done, (g, p) in enumerate(pairs, 1):
        seqs.append(prepare_sequence(g, p))
        counts.append(sequence_counts(seqs[-1]))
        frames += len(seqs[-1].gt_ids)
        if progress is not None:
            progress(done, len(pairs), frames)
    res = combine(counts)
    per_alpha = {k: 100 * res[k] for k in HOTA_METRICS}
    out = {
        "joints": JOINTS,
        "alphas": ALPHAS.copy(),
        "per_joint": {k: v[:, :NUM_JOINTS].mean(0) for k, v in per_alpha.items()},
        "total": {k: float(v[:, NUM_JOINTS].mean()) for k, v in per_alpha.items()},
        "per_alpha": per_alpha,
        "counts": {k: res[k] for k in ("TP", "FN", "FP")},
        "num_videos": len(pairs),
        "num_frames": sum(len(s.gt_ids) for s in seqs),
    }
    if compute_idf1:
        ident = identity_metrics(gt, pred)
        for k, v in ident.items():
            out["per_joint"][k] = v
            out["total"][k] = nan_mean(v)
    return out
