"""PoseTrack's evaluation protocol (paper §4.1) on keytrack's in-memory poses, as poseval runs it.

This module re-implements, on :class:`keytrack.poses.Dataset` objects, what the official PoseTrack
evaluation (``leonid-pishchulin/poseval``) does between reading the files and computing metrics:

* the joint layout: poseval scores 15 joints in its own (PoseTrack17 / LSP-like) order, and its
  PoseTrack18 reader (``convert.py``, ``Person.from_new``) maps the 17-point layout onto them by
  name: ``head_bottom`` becomes poseval's ``neck`` (id 12), ``nose`` id 13, ``head_top`` id 14, the
  two ears are dropped (:data:`POSEVAL_JOINTS`, :data:`TO_POSEVAL`);
* the checks and clean-up of ``eval_helpers.load_data_dir``, ``cleanupData`` and
  ``removeIgnoredPoints`` (:func:`prepare_video`);
* the per-frame assignment of ``eval_helpers.assignGTmulti``: head-normalised distances, the PCKh
  0.5 match, the greedy pose assignment used by AP, and the per-joint inputs of the MOT
  accumulators, including the placeholder update of frames without predictions
  (:func:`match_frame`).

:func:`evaluate` ties it together with :mod:`keytrack.evaluation.ap` (``evaluateAP``) and
:mod:`keytrack.evaluation.mot` (``evaluateTracking``). Every departure of poseval from the
textbook metric is kept on purpose and listed in ``docs/evaluation.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keytrack.errors import InputError
from keytrack.poses import Dataset, Frame, Video
from keytrack.skeleton import JOINTS

#: poseval's 15 joints in its own id order (``eval_helpers.Joint``), under keytrack's names.
POSEVAL_JOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "head_bottom",
    "nose",
    "head_top",
)
#: The names poseval itself prints for them (``Joint().name``: it calls ``head_bottom`` "neck").
POSEVAL_NAMES: tuple[str, ...] = tuple("neck" if j == "head_bottom" else j for j in POSEVAL_JOINTS)
#: Index into :data:`keytrack.skeleton.JOINTS` for each poseval joint id.
TO_POSEVAL: np.ndarray = np.array([JOINTS.index(j) for j in POSEVAL_JOINTS])
NUM_POSEVAL_JOINTS: int = len(POSEVAL_JOINTS)

#: PCKh threshold: a predicted joint matches a GT joint within half a head size (``distThresh``).
PCKH_THRESHOLD: float = 0.5
#: Head size = this factor x head-box diagonal (``eval_helpers.getHeadSize``).
HEAD_SIZE_FACTOR: float = 0.6
#: Placeholder track id of the dummy MOT update poseval makes for frames without predictions.
DUMMY_TRACK_ID: int = 0


class EvaluationError(InputError):
    """Ground truth and prediction that PoseTrack's evaluation cannot score as they stand."""


def _where(video: Video, frame: Frame | None = None) -> str:
    """``video 'name' (source)`` plus the frame (position, image id, file) for error messages."""
    text = f"video {video.name!r}" + (f" ({video.source})" if video.source else "")
    if frame is not None:
        bits = [f"frame {frame.index}"]
        if frame.image_id is not None:
            bits.append(f"image id {frame.image_id}")
        if frame.file_name:
            bits.append(frame.file_name)
        text += ", " + ", ".join(bits)
    return text


# --------------------------------------------------------------------------------------------
# Per-frame arrays in poseval's joint order
# --------------------------------------------------------------------------------------------


@dataclass
class FramePoses:
    """One side (GT or prediction) of one frame, joints in :data:`POSEVAL_JOINTS` order.

    ``xy`` ``[P, 15, 2]``, ``present`` ``[P, 15]`` (keypoint annotated / predicted), ``score``
    ``[P, 15]`` (per-joint confidence, used by AP), ``track_ids`` ``[P]``, ``head_size`` ``[P]``
    (GT only; NaN where the pose has no head box), ``index`` ``[P]`` the pose's row in its
    :class:`Frame` (for messages, after poses were dropped).
    """

    xy: np.ndarray
    present: np.ndarray
    score: np.ndarray
    track_ids: np.ndarray
    head_size: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.xy)

    def select(self, keep: np.ndarray) -> "FramePoses":
        return FramePoses(
            self.xy[keep],
            self.present[keep],
            self.score[keep],
            self.track_ids[keep],
            self.head_size[keep],
            self.index[keep],
        )

    @staticmethod
    def from_frame(frame: Frame, video: Video, role: str) -> "FramePoses":
        """Reorder a :class:`Frame`'s keypoints into poseval's joint order and check them.

        A keypoint is present where its ``c > 0``; present keypoints must have finite ``x, y``.
        """
        kp = frame.keypoints[:, TO_POSEVAL]
        present = kp[..., 2] > 0
        bad = present & ~np.isfinite(kp[..., :2]).all(-1)
        if bad.any():
            p, j = np.argwhere(bad)[0]
            raise EvaluationError(
                f"{_where(video, frame)}: {role} pose {p} field 'keypoints': joint "
                f"{POSEVAL_JOINTS[j]!r} is present (c > 0) but its x, y is not finite"
            )
        return FramePoses(
            xy=kp[..., :2],
            present=present,
            score=kp[..., 2],
            track_ids=frame.track_ids.copy(),
            head_size=head_sizes(frame.head_boxes),
            index=np.arange(len(kp)),
        )


def head_sizes(head_boxes: np.ndarray) -> np.ndarray:
    """``[P]`` PCKh reference distance: 0.6 x diagonal of the head box (``getHeadSize``).

    poseval receives PoseTrack18's ``bbox_head = [x, y, w, h]`` as corners ``x2 = x + w``,
    ``y2 = y + h`` (``convert.Person.from_new``) and takes ``0.6 * norm([x2, y2] - [x1, y1])``;
    the corners are rebuilt here the same way so the float result is the same.
    """
    x, y, w, h = np.asarray(head_boxes, dtype=np.float64).reshape(-1, 4).T
    return HEAD_SIZE_FACTOR * np.linalg.norm(np.stack([(x + w) - x, (y + h) - y], -1), axis=-1)


def points_in_polygons(points: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """``[N]`` bool: the point lies strictly inside at least one polygon (even-odd rule).

    Mirrors ``shapely.geometry.Polygon.contains(Point)`` as used by
    ``eval_helpers.removeIgnoredPoints``: points on a polygon's boundary are *not* inside. An empty
    polygon contains nothing (shapely's empty polygon).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(pts), dtype=bool)
    px, py = pts[:, :1], pts[:, 1:]  # [N, 1]
    for poly in polygons:
        poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(poly) == 0:
            continue
        a, b = poly, np.roll(poly, -1, axis=0)  # edges a -> b, [V, 2]
        ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]  # broadcast to [N, V]
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        on_edge = (
            (cross == 0)
            & (px >= np.minimum(ax, bx))
            & (px <= np.maximum(ax, bx))
            & (py >= np.minimum(ay, by))
            & (py <= np.maximum(ay, by))
        ).any(1)
        straddles = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = ax + (py - ay) * (bx - ax) / (by - ay)
        odd = (straddles & (px < x_cross)).sum(1) % 2 == 1
        inside |= odd & ~on_edge
    return inside


def _check_polygons(frame: Frame, video: Video) -> list[np.ndarray]:
    """Ignore regions as ``[V, 2]`` arrays; 1 or 2 vertices is not a polygon (shapely refuses it)."""
    polys = []
    for r, poly in enumerate(frame.ignore_regions):
        poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if 0 < len(poly) < 3 or not np.isfinite(poly).all():
            raise EvaluationError(
                f"{_where(video, frame)}: field 'ignore_regions[{r}]': {len(poly)} vertices, "
                "a polygon needs at least 3 finite ones"
            )
        polys.append(poly)
    return polys


def remove_ignored(poses: FramePoses, polygons: list[np.ndarray]) -> FramePoses:
    """Drop keypoints inside ignore regions, then poses left without keypoints.

    ``eval_helpers.removeIgnoredPointsRects``: applied to GT *and* predictions of every frame whose
    GT has a non-empty ``ignore_regions`` list. A pose that had no keypoint to begin with is
    dropped as well (its point list is empty after the filter).
    """
    inside = points_in_polygons(poses.xy.reshape(-1, 2), polygons).reshape(poses.present.shape)
    out = FramePoses(
        poses.xy, poses.present & ~inside, poses.score, poses.track_ids, poses.head_size, poses.index
    )
    return out.select(out.present.any(1))


# --------------------------------------------------------------------------------------------
# assignGTmulti, one frame
# --------------------------------------------------------------------------------------------


@dataclass
class FrameMatch:
    """What ``eval_helpers.assignGTmulti`` derives from one frame.

    ``dist`` ``[P, G, 15]`` head-normalised distance (``inf`` where a side lacks the joint),
    ``match`` ``[P, G, 15]`` (``dist <= 0.5``), ``pred_to_gt`` ``[P]`` the GT pose each prediction
    is assigned to for AP (-1: none), ``labels`` ``[P, 15]`` true-positive flag of each predicted
    joint for AP. ``dummy`` marks frames where GT or prediction is empty: poseval then feeds every
    joint's accumulator one GT object and one hypothesis (both id 0) that cannot match.
    """

    gt: FramePoses
    pred: FramePoses
    dist: np.ndarray
    match: np.ndarray
    pred_to_gt: np.ndarray
    labels: np.ndarray
    dummy: bool

    @property
    def num_gt_joints(self) -> np.ndarray:
        """``[15]`` annotated GT joints in the frame (``nGTall``)."""
        return self.gt.present.sum(0)

    def ap_entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(joint, score, label)`` of every predicted joint, in poseval's append order.

        Row-major over (prediction, joint), so selecting one joint keeps prediction order.
        """
        p, j = np.nonzero(self.pred.present)
        return j, self.pred.score[p, j], self.labels[p, j]

    def mot_input(self, joint: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(gt ids, predicted ids, [G_j, P_j] distances)`` for one joint's accumulator.

        Only poses having the joint take part; pairs farther than the PCKh threshold get NaN
        (motmetrics' "do not pair"). The distance is the head-normalised one, so poseval's MOTP is
        in head-size units.
        """
        if self.dummy:
            return (np.array([DUMMY_TRACK_ID]), np.array([DUMMY_TRACK_ID]), np.full((1, 1), np.nan))
        gi = np.flatnonzero(self.gt.present[:, joint])
        pi = np.flatnonzero(self.pred.present[:, joint])
        d = self.dist[pi[None, :], gi[:, None], joint]  # [G_j, P_j]
        return self.gt.track_ids[gi], self.pred.track_ids[pi], np.where(d <= PCKH_THRESHOLD, d, np.nan)


def match_frame(gt: FramePoses, pred: FramePoses) -> FrameMatch:
    """Distances, PCKh matches and the greedy pose assignment of one frame (``assignGTmulti``).

    With GT and predictions present: ``dist[p, g, j] = |gt - pred| / head_size(g)`` where both
    have joint ``j``; ``pck[p, g]`` = matched joints / annotated joints of ``g``; every
    prediction keeps only its best GT (first maximum), then every GT keeps the best of the
    predictions that chose it (first maximum, none if 0). Assigned predictions' joints are true
    positives where they match their GT; all other predicted joints are false positives.
    """
    P, G, J = len(pred), len(gt), NUM_POSEVAL_JOINTS
    dist = np.full((P, G, J), np.inf)
    pred_to_gt = np.full(P, -1)
    labels = np.zeros((P, J), dtype=bool)
    dummy = P == 0 or G == 0
    if not dummy:
        both = pred.present[:, None] & gt.present[None]  # [P, G, J]
        with np.errstate(divide="ignore", invalid="ignore"):
            norm = np.linalg.norm(gt.xy[None] - pred.xy[:, None], axis=-1) / gt.head_size[None, :, None]
        dist = np.where(both, norm, np.inf)
        match = dist <= PCKH_THRESHOLD
        n_gt = gt.present.sum(1)  # [G]
        pck = match.sum(2).astype(np.float64)
        pck = np.where(n_gt > 0, pck / np.maximum(n_gt, 1), pck)
        best = pck.argmax(1)  # [P]
        kept = np.zeros_like(pck)
        kept[np.arange(P), best] = pck[np.arange(P), best]
        winner = kept.argmax(0)  # [G]
        winner[kept.max(0) == 0] = -1
        assigned = np.flatnonzero(winner >= 0)
        pred_to_gt[winner[assigned]] = assigned
        hit = pred_to_gt >= 0
        labels[hit] = match[np.flatnonzero(hit), pred_to_gt[hit]]
    else:
        match = np.zeros((P, G, J), dtype=bool)
    return FrameMatch(
        gt=gt, pred=pred, dist=dist, match=match, pred_to_gt=pred_to_gt, labels=labels, dummy=dummy
    )


# --------------------------------------------------------------------------------------------
# load_data_dir + cleanupData + removeIgnoredPoints, one video
# --------------------------------------------------------------------------------------------


def pair_videos(gt: Dataset, pred: Dataset) -> list[tuple[Video, Video]]:
    """GT videos with their predictions, matched by name, in GT order.

    Every GT video needs a prediction (``load_data_dir`` raises when the file is missing);
    predicted videos without GT are not scored. Names must be unique on each side.
    """
    for side, data in (("ground truth", gt), ("prediction", pred)):
        names = [v.name for v in data.videos]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise EvaluationError(f"{side}: video names must be unique, repeated: {dup}")
    by_name = {v.name: v for v in pred.videos}
    missing = [v.name for v in gt.videos if v.name not in by_name]
    if missing:
        raise EvaluationError(
            f"no prediction for {len(missing)} ground-truth video(s): {missing[:10]}"
            + (" ..." if len(missing) > 10 else "")
        )
    return [(v, by_name[v.name]) for v in gt.videos]


def check_same_frames(gt: Video, pred: Video) -> None:
    """The prediction must list the GT's frames, in the same order.

    poseval pairs frames by position and only checks the counts (``load_data_dir``: "# prediction
    frames <> # GT frames"); here each pair must also agree on ``index`` and, where both sides know
    it, ``image_id``, so a shifted prediction is refused instead of scored against the wrong frame.
    """
    if len(gt.frames) != len(pred.frames):
        raise EvaluationError(
            f"{_where(pred)}: prediction has {len(pred.frames)} frames, ground truth "
            f"{_where(gt)} has {len(gt.frames)}; PoseTrack scores the prediction frame by frame"
        )
    for g, p in zip(gt.frames, pred.frames):
        if g.index != p.index or (
            g.image_id is not None and p.image_id is not None and g.image_id != p.image_id
        ):
            raise EvaluationError(
                f"{_where(pred, p)}: does not match ground-truth {_where(gt, g)}; the prediction "
                "must cover the same frames in the same order"
            )


def check_track_ids(gt: Video, pred: Video, *, tracking: bool) -> None:
    """Predicted track ids are unique within each frame (``load_data_dir``), ids ``>= 0`` for MOT.

    ``-1`` (untracked) is exempt from the uniqueness check, as a pose without ``track_id`` is in
    poseval; MOT needs every pose tracked, on both sides.
    """
    for side, video in (("prediction", pred), ("ground truth", gt)):
        for frame in video.frames:
            ids = frame.track_ids
            if side == "prediction":
                tracked = ids[ids >= 0]
                uniq, counts = np.unique(tracked, return_counts=True)
                if (counts > 1).any():
                    raise EvaluationError(
                        f"{_where(video, frame)}: field 'track_ids': non-unique predicted track ids "
                        f"{uniq[counts > 1].tolist()} in one frame"
                    )
            if tracking and (ids < 0).any():
                raise EvaluationError(
                    f"{_where(video, frame)}: field 'track_ids': {side} pose "
                    f"{int(np.flatnonzero(ids < 0)[0])} has no track id (-1); MOT metrics need "
                    "every pose tracked (or evaluate with compute_mot=False)"
                )


def scored_frames(gt: Video) -> list[int]:
    """Positions of the frames poseval scores: those whose GT has at least one person.

    ``cleanupData`` drops GT frames with an empty ``annorect`` list (and the prediction frames at
    the same positions); ``is_labeled`` is never read. A person without any keypoint still keeps
    its frame in (PoseTrack18 files become ``annopoints: [{"point": []}]``, which passes
    ``rectHasPoints``).
    """
    return [k for k, f in enumerate(gt.frames) if f.num_poses > 0]


def prepare_video(gt: Video, pred: Video, *, tracking: bool = True) -> list[FrameMatch]:
    """Check one video pair and match every scored frame (``load_data_dir`` .. ``assignGTmulti``).

    Order as in poseval: frame and track-id checks on all frames, then the frames without GT
    people are dropped, then points in ignore regions (of the GT frame) are removed from both
    sides, then each frame is matched. GT poses with keypoints in a frame that has predictions
    need a head box.
    """
    check_same_frames(gt, pred)
    check_track_ids(gt, pred, tracking=tracking)
    matches = []
    for k in scored_frames(gt):
        g_frame, p_frame = gt.frames[k], pred.frames[k]
        g = FramePoses.from_frame(g_frame, gt, "ground-truth")
        p = FramePoses.from_frame(p_frame, pred, "predicted")
        if len(g_frame.ignore_regions) > 0:
            polygons = _check_polygons(g_frame, gt)
            g, p = remove_ignored(g, polygons), remove_ignored(p, polygons)
        if len(p) and len(g):
            bad = g.present.any(1) & ~np.isfinite(g.head_size)
            if bad.any():
                raise EvaluationError(
                    f"{_where(gt, g_frame)}: field 'head_boxes': ground-truth pose "
                    f"{int(g.index[bad][0])} has keypoints but no head box; PoseTrack's "
                    "PCKh matching normalises distances by the head size (keytrack evaluate "
                    "--complete-head-boxes draws the missing ones as PoseTrack does)"
                )
        matches.append(match_frame(g, p))
    return matches
