"""The one evaluate path: a tracker on an evaluation set, scored as poseval does (§3.1, §4.1, A.3).

:meth:`Evaluator.run` tracks an :class:`EvalSet` with a :class:`TrackerSpec` and caches the result under
its inputs; the evaluator shares predictions, scorers, pair-score memos and tracking outputs between runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Mapping

from keytrack.ablations.runs import RunCache, RunRecord, dataset_fingerprint, file_digest, json_safe
from keytrack.poses import Dataset
from keytrack.tracking.boxmot_trackers import BOXMOT_METHODS

log = logging.getLogger("keytrack.ablations.evaluate")

GT_SETTING = "gt_boxes_gt_keypoints"  # no perturbation noise: its seed only reorders a frame's poses
SETTING_LABELS: dict[str, str] = {  # Figure 4's keypoint settings, as the tables label them
    "gt_boxes_gt_keypoints": "GT boxes, GT keypoints",
    "gt_boxes_predicted_keypoints": "GT boxes, predicted keypoints",
    "predicted_boxes_predicted_keypoints": "predicted boxes, predicted keypoints",
}
POSE_ENTAILMENT_THRESHOLD = 0.5  # a learned matcher's match threshold: the decision point of its score
PAPER_KEYPOINT_THRESHOLD = 0.57  # A.3's output keypoint threshold, optimal for MOTA in Table 4
COMPARISON_KEYPOINT_THRESHOLD = 0.5  # that of the tables comparing trackers on the same predictions
NON_LEARNED = (
    "oks",
    "iou",
    *BOXMOT_METHODS,
)  # the trackers that need no training; every other one is a network
CNN_BATCH_SIZE = 512  # most pose pairs per forward of a CNN matcher (far larger activations)
HOTA_COLUMNS = ("HOTA", "DetA", "AssA", "IDF1")
#: videos whose frames share a network forward (a scorer that mixes videos; the same track ids as one at a
#: time, keytrack.tracking.schedule): fewer, larger forwards, what a CPU runs fastest
VIDEOS_AT_ONCE = 8  # the HOTA-family totals the tracking tables show


@dataclass(frozen=True)
class TrackerSpec:
    """A tracker (§3.1): ``scorer`` is ``oks``, ``iou`` or a learned matcher's name (its network read
    from ``checkpoint``); the other fields are :class:`keytrack.tracking.Tracker`'s keywords. A boxmot
    tracker's name (:data:`BOXMOT_METHODS`) tracks with it instead, ``match_threshold`` its association
    threshold (:mod:`keytrack.tracking.boxmot_trackers`)."""

    scorer: str = "oks"
    checkpoint: str | None = None
    match_threshold: float = 0.5
    delta: int = 4
    nearest: int | None = None
    assignment: str = "greedy"
    motion: str | None = None
    min_keypoint_confidence: float = 0.0
    detection_threshold: float | None = None
    new_track_threshold: float | None = None
    #: OKS's tolerance: every keypoint's σ times this (1: COCO's σ; beyond the paper)
    oks_scale: float = 1.0
    #: ``(high, low)`` of an OKS gate in front of a learned matcher (:mod:`keytrack.tracking.gate`)
    gate: tuple[float, float] | None = None

    @property
    def learned(self) -> bool:
        return self.scorer not in NON_LEARNED


@dataclass(frozen=True)
class EvalSet:
    """``gt``'s predictions drawn as ``setting`` with ``seed``, every ``stride``-th frame; output keypoints
    below ``keypoint_threshold`` removed before MOTA, %IDSW and HOTA (A.3), and before AP unless
    ``ap_after_threshold`` is off (Figure 4)."""

    gt: Dataset = field(compare=False, repr=False)
    setting: str = GT_SETTING
    seed: int = 0
    stride: int = 1
    keypoint_threshold: float = 0.0
    compute_ap: bool = False
    ap_after_threshold: bool = True
    compute_hota: bool = True


def _non_default(obj) -> dict:
    """The fields of a dataclass that differ from their defaults (a new field keeps old keys valid)."""
    return {
        f.name: getattr(obj, f.name)
        for f in dataclasses.fields(obj)
        if f.compare and getattr(obj, f.name) != f.default
    }


class Evaluator:
    """Tracks and scores, storing results in ``cache`` (None: nowhere); ``image_root`` and ``split`` are
    the images the crop CNN cuts from (None: the synthetic renderer); ``videos_at_once`` videos advance
    together where the scorer allows it (the same results, fewer network forwards)."""

    def __init__(
        self,
        cache: RunCache | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 16384,
        image_root: str | None = None,
        split: str | None = None,
        videos_at_once: int = VIDEOS_AT_ONCE,
    ):
        self.cache, self.device, self.batch_size = cache, device, int(batch_size)
        self.videos_at_once = int(videos_at_once)
        self.image_root, self.split = image_root, split
        self._ids: dict[int, tuple[Dataset, str]] = {}
        self._digests: dict[str, str] = {}
        self._scorers: dict[tuple, object] = {}
        self.forget()

    def forget(self) -> None:
        """Drop the predictions, memos and tracking outputs held (scorers and digests stay)."""
        self._predicted: dict[tuple, Dataset] = {}
        self._strided: dict[tuple, tuple[Dataset, Dataset]] = {}
        self._memos: dict[tuple, object] = {}
        self._tracked: dict[tuple, tuple[Dataset, dict]] = {}

    def data_id(self, gt: Dataset) -> str:
        """The fingerprint of a ground truth (computed once per object)."""
        held = self._ids.get(id(gt))
        if held is None or held[0] is not gt:
            held = self._ids[id(gt)] = (gt, dataset_fingerprint(gt))
        return held[1]

    def checkpoint_id(self, checkpoint: str | None) -> str | None:
        if checkpoint is not None and checkpoint not in self._digests:
            self._digests[checkpoint] = file_digest(checkpoint)
        return self._digests.get(checkpoint)

    def params(self, tracker: TrackerSpec, evalset: EvalSet) -> dict:
        """The inputs of an evaluation as stored with its result: fields off their defaults, the data's
        fingerprint and the checkpoint's digest."""
        t = _non_default(tracker)
        if tracker.checkpoint is not None:
            t["checkpoint"] = self.checkpoint_id(tracker.checkpoint)
        return json_safe({"data": self.data_id(evalset.gt), "tracker": t, "eval": _non_default(evalset)})

    def key(self, tracker: TrackerSpec, evalset: EvalSet) -> str:
        """16 hex digits of :meth:`params`: the cache name of an evaluation that has no other."""
        text = json.dumps(self.params(tracker, evalset), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def run(self, tracker: TrackerSpec, evalset: EvalSet, name: str | None = None) -> RunRecord:
        """The cached record of :meth:`evaluate` (``name``: its cache file, default :meth:`key`); without a
        cache it is computed and an error propagates."""
        if self.cache is None:
            return RunRecord(
                name or "evaluation", "ok", {}, result=json_safe(self.evaluate(tracker, evalset))
            )
        return self.cache.run(
            name or self.key(tracker, evalset),
            lambda: self.evaluate(tracker, evalset),
            self.params(tracker, evalset),
        )

    def fail(self, name: str, message: str, tracker: TrackerSpec, evalset: EvalSet) -> RunRecord:
        """A failed record of an evaluation that cannot run (no network, no threshold), stored as such."""

        def raise_() -> dict:
            raise RuntimeError(message)

        if self.cache is None:
            raise_()
        return self.cache.run(name, raise_, self.params(tracker, evalset))

    def evaluate(self, tracker: TrackerSpec, evalset: EvalSet) -> dict:
        """:func:`score_tracked`'s columns of ``tracker`` on ``evalset``, its speed and pair counts."""
        gt, out, info = self.track(tracker, evalset)
        return {**score_tracked(gt, out, evalset), **info}

    def inputs(self, evalset: EvalSet) -> tuple[Dataset, Dataset]:
        """The ground truth and the predictions of ``evalset``, every ``stride``-th frame."""
        from keytrack.perturb import perturb
        from keytrack.tracking import subsample

        drawn = (self.data_id(evalset.gt), evalset.setting, evalset.seed)
        if drawn not in self._predicted:
            self._predicted[drawn] = perturb(evalset.gt, evalset.setting, evalset.seed)
        strided = (*drawn, evalset.stride)
        if strided not in self._strided:
            self._strided[strided] = (
                subsample(evalset.gt, evalset.stride),
                subsample(self._predicted[drawn], evalset.stride),
            )
        return self._strided[strided]

    def scorer(self, tracker: TrackerSpec):
        """The scorer of ``tracker``: OKS or IoU, else its checkpoint's network (loaded once)."""
        from keytrack.tracking import IoUScorer, OKSScorer, PoseEntailmentScorer

        if not tracker.learned:
            return OKSScorer(scale=tracker.oks_scale) if tracker.scorer == "oks" else IoUScorer()
        if tracker.checkpoint is None:
            raise RuntimeError(f"no {tracker.scorer} network to track with (training failed or was not run)")
        key = (tracker.scorer, tracker.checkpoint)
        if key not in self._scorers:
            cnn = tracker.scorer.startswith("cnn_")
            batch = min(self.batch_size, CNN_BATCH_SIZE) if cnn else self.batch_size
            self._scorers[key] = PoseEntailmentScorer.from_checkpoint(
                tracker.checkpoint,
                device=self.device,
                batch_size=batch,
                image_root=self.image_root,
                split=self.split,
            )
        return self._scorers[key]

    def track(self, tracker: TrackerSpec, evalset: EvalSet) -> tuple[Dataset, Dataset, dict]:
        """Ground truth, tracked output and the tracking's counts (``tracking_reused`` when an
        evaluation of the same tracker and predictions tracked them already)."""
        from keytrack.tracking import PairScoreMemo, Tracker
        from keytrack.tracking.gate import GatedScorer

        gt, predicted = self.inputs(evalset)
        key = (self.data_id(evalset.gt), evalset.setting, evalset.seed, evalset.stride, tracker)
        if key in self._tracked:
            out, info = self._tracked[key]
            return gt, out, {**info, "tracking_reused": True}
        if tracker.scorer in BOXMOT_METHODS:
            return gt, *self._track_boxmot(tracker, predicted, key)
        scorer = self.scorer(tracker)
        if tracker.motion is None and tracker.min_keypoint_confidence == 0:  # the same pose pairs
            memo = (tracker.scorer, tracker.checkpoint, *key[:4])
            scorer = self._memos.setdefault(memo, PairScoreMemo(scorer))
        before = _counts(scorer)
        gated = None
        if tracker.gate is not None and tracker.learned:
            gated = GatedScorer(scorer, *tracker.gate, oks_scale=tracker.oks_scale)
        omit = ("scorer", "checkpoint", "gate", "oks_scale")
        settings = {k: v for k, v in dataclasses.asdict(tracker).items() if k not in omit}
        run = Tracker(gated or scorer, **settings)
        out = run.track_dataset(predicted, videos_at_once=self.videos_at_once)
        info = {**_speed(run, predicted), **_count_changes(scorer, before)}
        if gated is not None:
            info.update(settled_poses=gated.settled_poses, asked_poses=gated.asked_poses)
        self._tracked[key] = (out, info)
        return gt, out, {**info, "tracking_reused": False}

    def _track_boxmot(self, tracker: TrackerSpec, predicted: Dataset, key: tuple) -> tuple[Dataset, dict]:
        from keytrack.tracking.boxmot_trackers import BoxmotTracker

        run = BoxmotTracker(tracker.scorer, tracker.match_threshold, tracker.min_keypoint_confidence)
        out = run.track_dataset(predicted)
        info = _speed(run, predicted)
        self._tracked[key] = (out, info)
        return out, {**info, "tracking_reused": False}


def _speed(run, predicted: Dataset) -> dict:
    """The frames, poses and wall-clock time of a tracker's run."""
    fps = run.frames_tracked / run.seconds if run.seconds > 0 else None
    return {
        "frames": run.frames_tracked,
        "poses": predicted.num_poses,
        "tracking_seconds": run.seconds,
        "frames_per_s": fps,
    }


def _counts(scorer) -> dict:
    network = getattr(scorer, "scorer", scorer)  # a memo's scorer, or the scorer itself
    counts = {c: getattr(network, c, 0) for c in ("pairs_scored", "forwards", "network_seconds")}
    if network is not scorer:
        counts.update(memo_scored=scorer.pairs_scored, memo_reused=scorer.pairs_reused)
    return counts


def _count_changes(scorer, before: Mapping) -> dict:
    """What one tracking added to a scorer's counters: pairs answered by the memo, network work."""
    now, info = _counts(scorer), {}
    d = {k: now[k] - before[k] for k in now}
    if "memo_scored" in d:
        info.update(pairs_scored=d["memo_scored"], pairs_reused=d["memo_reused"])
    if hasattr(getattr(scorer, "scorer", scorer), "network_seconds"):
        seconds, pairs = d["network_seconds"], d["pairs_scored"]
        pairs_per_s = pairs / seconds if seconds > 0 else None
        info.update(pairs=pairs, forwards=d["forwards"], network_seconds=seconds, pairs_per_s=pairs_per_s)
    return info


def keypoint_hota(gt: Dataset, tracked: Dataset) -> dict:
    """``{HOTA, DetA, AssA, IDF1}`` totals (0-100) of the PoseTrack21 kit's keypoint HOTA, or
    ``{"error": message}`` when it cannot score this ground truth (the cell itself still counts)."""
    from keytrack.evaluation import EvaluationError
    from keytrack.evaluation.hota import hota

    try:
        total = hota(gt, tracked)["total"]
    except EvaluationError as err:
        log.warning("HOTA not computed: %s", err)
        return {"error": str(err)}
    return {k: float(total[k]) for k in HOTA_COLUMNS}


def score_tracked(gt: Dataset, tracked: Dataset, e: EvalSet) -> dict:
    """%IDSW and MOTA columns, MOT counts, HOTA and AP of ``tracked`` as ``e`` scores them (A.3), and
    ``per_video``: ``{video: [ID switches, GT joints]}`` (for a bootstrap over videos)."""
    from keytrack.evaluation import evaluate
    from keytrack.tracking import apply_keypoint_threshold

    shown = apply_keypoint_threshold(tracked, e.keypoint_threshold) if e.keypoint_threshold > 0 else tracked
    mot = evaluate(gt, shown, compute_ap=e.compute_ap and e.ap_after_threshold)
    out = {
        "idsw": mot.columns("idsw"),
        "mota": mot.columns("mota"),
        **{k: mot.total[k] for k in ("num_switches", "num_misses", "num_false_positives", "num_objects")},
        "per_video": {name: [c["num_switches"], c["num_objects"]] for name, c in mot.per_video.items()},
    }
    if e.compute_hota:
        out["hota"] = keypoint_hota(gt, shown)
    if e.compute_ap:
        ap_of = mot if e.ap_after_threshold else evaluate(gt, tracked, compute_mot=False)
        out["ap"] = ap_of.columns("ap")
    return out
