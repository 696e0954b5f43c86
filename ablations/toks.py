"""Table 2 (§4.3): per-joint AP when the pose estimator is given different boxes, TOKS among them.

    keytrack ablate toks [--data DIR] [--estimator yolo]

Rows: GT boxes, the detector's, detector + box propagation with NMS, and TOKS (§3.3, Algorithm 1) at
OKS 0.3 / 0.35 / 0.5, all run by :mod:`keytrack.toks` around the simulated detector and estimator of
:mod:`keytrack.estimators.simulated` (one seed, one world of their errors) or, with ``--estimator
yolo``, YOLO11n-pose on pixels (the optional extra in ``.venv-yolo``; its outputs cached per frame).
Writes ``table`` (AP per joint group beside Table 2) and ``counts`` (what each method did); see
``docs/toks.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ablations.options import RunOptions, add_options, opt, options_from
from ablations.profile import Profile
from ablations.runs import Result, RunCache, RunRecord, command_main, dataset_fingerprint, file_digest, finish
from keytrack.atomic import write_text
from keytrack.estimators.simulated import SimulatedConfig
from keytrack.estimators.yolo import yolo_available
from keytrack.evaluation import COLUMNS
from keytrack.io.errors import DataError
from keytrack.poses import Dataset, Frame, Video
from keytrack.tables import Column, mean_std, write_table

log = logging.getLogger("ablations.toks")

ABLATION = "toks"
#: Bumped when the simulated models change what they output, so cached runs are redone.
SIMULATOR_VERSION = 1
#: Table 2's joint groups as PoseTrack's table names them.
PARTS: tuple[str, ...] = (*COLUMNS, "Total")
#: Table 2's OKS thresholds.
PAPER_OKS: tuple[float, ...] = (0.3, 0.35, 0.5)
#: Where boxes and keypoints come from: the simulator (no pixels) or YOLO11n-pose on images.
ESTIMATORS: tuple[str, ...] = ("simulated", "yolo")
#: Evaluation videos without ``--data``, per estimator (YOLO takes about a second per frame).
DEFAULT_SYNTHETIC_VIDEOS = {"simulated": 20, "yolo": 5}
#: How to get the YOLO extra, said when it is missing.
YOLO_INSTALL = (
    "--estimator yolo needs the optional yolo extra (YOLO11n-pose, AGPL-3.0), which lives in its "
    "own environment: run `make install-yolo`, then `.venv-yolo/bin/python -m ablations.toks "
    "--estimator yolo` (or `make ablation-toks-yolo`)"
)
#: OKS (against the annotated pose) at which an output pose counts as finding a person (counts only).
FOUND_OKS = 0.5
#: IoU with the annotated box at which a detector box counts as detecting a person (counts only).
DETECTED_IOU = 0.5


@dataclass(frozen=True)
class Row:
    """One row of Table 2: a method of :data:`keytrack.toks.METHODS` and, for TOKS, its OKS threshold."""

    method: str
    oks_threshold: float | None = None

    @property
    def key(self) -> str:
        """``paper_results.yaml``'s name of the row (``toks_oks_0.35``)."""
        names = {"gt_boxes": "gt_boxes", "detector": "detector", "box_propagation": "detector_box_prop"}
        return names.get(self.method) or f"toks_oks_{self.oks_threshold:.2f}"

    @property
    def label(self) -> str:
        labels = {"gt_boxes": "GT", "detector": "Det.", "box_propagation": "Det. + Box Prop."}
        return labels.get(self.method) or f"Det. + TOKS@{self.oks_threshold:g}"


@dataclass
class Options(RunOptions):
    """Everything the table depends on (the command-line options; ``device``, ``batch_size`` and
    ``wait_for_training`` of :class:`RunOptions` are not used: nothing here trains)."""

    synthetic_test_videos: int | None = opt(
        type=int, help="videos of the synthetic test set without --data (default: 20; yolo: 5)"
    )
    estimator: str = opt(
        "simulated",
        choices=ESTIMATORS,
        help="simulated detector/estimator (default), or yolo: YOLO11n-pose on rendered synthetic "
        "frames / the data's images (optional extra, run with .venv-yolo)",
    )
    seeds: tuple[int, ...] | None = opt(
        None,
        "--seeds",
        "--seed",
        type=int,
        nargs="+",
        help="simulation seeds (default: 0 1 2; yolo: one deterministic run)",
    )
    oks_thresholds: tuple[float, ...] = opt(
        PAPER_OKS,
        "--oks",
        type=float,
        nargs="+",
        help="TOKS OKS thresholds (default: Table 2's 0.3 0.35 0.5)",
    )
    alpha: float = opt(1.25, type=float, help="box dilation α (A.1: 1.25)")
    box_score: float = opt(0.2, type=float, help="minimum detector box score (A.4: 0.2)")
    keypoint_score: float = opt(0.1, type=float, help="minimum keypoint confidence (A.4: 0.1)")
    nms_iou: float = opt(0.5, type=float, help="IoU of Box Prop.'s NMS (default 0.5)")
    max_frames: int | None = opt(type=int, help="first frames of each video only")
    imgsz: int = opt(1280, type=int, help="yolo: detector input, longest side (1280)")
    crop_size: int = opt(256, type=int, help="yolo: estimator input per box (256)")
    crop_dilation: float = opt(
        1.25, type=float, help="yolo: each box is enlarged this much before cropping (1.25)"
    )
    crop_conf: float = opt(0.25, type=float, help="yolo: lowest score of a person in a crop (0.25)")
    threads: int = opt(1, type=int, help="yolo: torch threads (default 1)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, got {self.estimator!r}")
        if self.seeds is None:
            self.seeds = (0, 1, 2) if self.estimator == "simulated" else (0,)
        elif self.estimator != "simulated" and len(tuple(self.seeds)) > 1:
            raise ValueError(
                f"--estimator {self.estimator} is deterministic (one run); --seeds applies to "
                "the simulated estimator only"
            )
        if self.synthetic_test_videos is None:
            self.synthetic_test_videos = DEFAULT_SYNTHETIC_VIDEOS[self.estimator]
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.imgsz < 32 or self.crop_size < 32:
            raise ValueError(f"imgsz and crop_size must be >= 32, got {self.imgsz}, {self.crop_size}")
        if self.crop_dilation < 1.0 or not 0.0 <= self.crop_conf <= 1.0:
            raise ValueError(
                f"crop_dilation must be >= 1 and crop_conf in [0, 1], got {self.crop_dilation}, "
                f"{self.crop_conf}"
            )
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds or min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")
        self.oks_thresholds = tuple(sorted({float(t) for t in self.oks_thresholds}))
        if not all(0.0 <= t <= 1.0 for t in self.oks_thresholds):
            raise ValueError(f"oks thresholds must lie in [0, 1], got {list(self.oks_thresholds)}")
        for name in ("box_score", "keypoint_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must lie in (0, 1], got {self.nms_iou}")

    def rows(self) -> list[Row]:
        return [
            Row("gt_boxes"),
            Row("detector"),
            Row("box_propagation"),
            *(Row("toks", t) for t in self.oks_thresholds),
        ]

    def method_kwargs(self, row: Row) -> dict:
        kw = {"box_score": self.box_score, "keypoint_score": self.keypoint_score}
        if row.method == "box_propagation":
            kw.update(alpha=self.alpha, nms_iou=self.nms_iou)
        if row.method == "toks":
            kw.update(alpha=self.alpha, oks_threshold=row.oks_threshold)
        return kw


def paper_table2() -> dict[str, list[float]]:
    """Table 2's rows by name (``gt_boxes``, ``detector``, ...), values in :data:`PARTS` order."""
    from keytrack.reference import paper_results

    return paper_results()["box_improvement"]["rows"]


def run_cell(eval_gt: Dataset, row: Row, seed: int, opts: Options) -> dict:
    """One method over every video with the simulated models of ``seed``; AP and the method's counts."""
    from keytrack.estimators.simulated import simulated_scenes
    from keytrack.evaluation import evaluate
    from keytrack.toks import make_method, toks_dataset

    method = make_method(row.method, **opts.method_kwargs(row))
    predicted = toks_dataset(eval_gt, method, seed=seed)
    ap = evaluate(eval_gt, predicted, compute_mot=False).columns("ap")
    people = missed = 0
    if row.method != "gt_boxes":
        for scene in simulated_scenes(eval_gt, seed):
            people += len(scene.missed)
            missed += int(scene.missed.sum())
    return {"ap": ap, "stats": method.stats.to_dict(), "gt_people": people, "missed_by_detector": missed}


# -- a real detector and estimator on images -------------------------------------------------------


@dataclass
class ImageModels:
    """A detector and a top-down estimator that take ``[H, W, 3]`` uint8 images, and ``token``: what
    their outputs depend on (names their cache; change it when the models or settings change)."""

    detector: Any
    estimator: Any
    token: str
    description: str


def load_yolo_models(opts: Options) -> ImageModels:
    """YOLO11n-pose as the detector (whole frame, ``opts.imgsz``) and as the estimator (the crop of
    every box, ``opts.crop_size``; no pose is reused from the detector's pass, so every row's poses
    come from crops as HRNet's do in A.4). Raises :class:`SystemExit` saying how to install the
    extra when it is missing."""
    if not yolo_available():
        raise SystemExit(f"toks: {YOLO_INSTALL}")
    from importlib.metadata import version

    import torch

    from keytrack.estimators.yolo import YoloDetector, YoloEstimator, YoloModel

    torch.set_num_threads(opts.threads)
    model = YoloModel()
    detector = YoloDetector(imgsz=opts.imgsz, model=model)
    estimator = YoloEstimator(
        imgsz=opts.crop_size, dilation=opts.crop_dilation, conf=opts.crop_conf, model=model
    )
    token = (
        f"{model.weights.name}:{file_digest(model.weights)}:ultralytics {version('ultralytics')}:"
        f"detector imgsz={detector.imgsz} conf={detector.conf} iou={detector.iou}:"
        f"estimator imgsz={estimator.imgsz} dilation={estimator.dilation} min_size={estimator.min_size} "
        f"conf={estimator.conf} iou={estimator.iou}"
    )
    description = (
        f"YOLO11n-pose ({model.weights.name}, ultralytics {version('ultralytics')}): detector "
        f"on the whole frame at {detector.imgsz} px (boxes ≥ {detector.conf:g}), estimator on the "
        f"crop of each box dilated {estimator.dilation:g}× at {estimator.imgsz} px, the person "
        "overlapping the box most; COCO-17 keypoints mapped to PoseTrack's 15 joints; CPU, "
        f"{opts.threads} torch thread(s)"
    )
    return ImageModels(detector, estimator, token, description)


def frame_source(profile: Profile):
    """Pixels of the evaluation videos: the rendered synthetic scenes, or the data's image files."""
    from keytrack.frames import ImageFiles, SyntheticFrames

    if profile.data_root is None:
        return SyntheticFrames(profile.synthetic_eval_seed)
    return ImageFiles(profile.data_root)


def check_images(eval_gt: Dataset, source) -> None:
    """Every frame's image file exists (for :class:`~keytrack.frames.ImageFiles`); raises the
    :class:`DataError` naming the first missing one, with how many are missing."""
    if not hasattr(source, "path"):
        return
    missing = [(v, f) for v in eval_gt.videos for f in v.frames if not source.path(v, f).is_file()]
    if missing:
        video, frame = missing[0]
        total = sum(len(v.frames) for v in eval_gt.videos)
        try:
            source.image(video, frame)
        except DataError as err:
            raise DataError(
                err.file,
                f"{err.reason}; {len(missing)} of {total} frames have no image file "
                "(--estimator yolo needs the frames' images)",
                frame=err.frame,
                field=err.field,
            ) from None


def limit_frames(dataset: Dataset, max_frames: int | None) -> Dataset:
    """The first ``max_frames`` frames of every video (all of them for None)."""
    if max_frames is None:
        return dataset
    videos = [
        Video(v.name, v.frames[:max_frames], v.width, v.height, v.source, v.frame_size_origin)
        for v in dataset.videos
    ]
    return Dataset(videos, dict(dataset.skipped))


class _GroundTruthBoxes:
    """Table 2's "GT" detector on :class:`~keytrack.estimators.cached.FrameRef` frames: the annotated
    people's boxes (enlarged as the simulated detector's, score 1) from the frame's ``payload``."""

    def __init__(self) -> None:
        from keytrack.estimators.simulated import SimulatedDetector

        self.inner = SimulatedDetector(ground_truth_boxes=True)

    def detect(self, frame):
        return self.inner.detect(frame.payload)


def _found(gt_kp: np.ndarray, poses_kp: np.ndarray) -> np.ndarray:
    """``[G]`` bool: annotated people some output pose matches at OKS ≥ :data:`FOUND_OKS`."""
    from keytrack.poses import keypoint_boxes
    from keytrack.tracking.scorers import oks_matrix

    if not len(gt_kp) or not len(poses_kp):
        return np.zeros(len(gt_kp), bool)
    return (oks_matrix(poses_kp, gt_kp, keypoint_boxes(gt_kp)) >= FOUND_OKS).any(0)


def _detected(gt_boxes: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """``[G]`` bool: annotated boxes matched one-to-one to a detector box at IoU ≥ :data:`DETECTED_IOU`."""
    from scipy.optimize import linear_sum_assignment

    from keytrack.tracking.scorers import iou_matrix

    out = np.zeros(len(gt_boxes), bool)
    if len(gt_boxes) and len(det_boxes):
        iou = iou_matrix(gt_boxes, det_boxes)
        rows, cols = linear_sum_assignment(-iou)
        out[rows[iou[rows, cols] >= DETECTED_IOU]] = True
    return out


def _mirrored(gt_kp: np.ndarray, poses_kp: np.ndarray) -> tuple[int, int]:
    """Annotated people compared and those whose output pose is left/right mirrored.

    Each person is compared with the output pose whose keypoint box overlaps theirs most (IoU ≥
    :data:`DETECTED_IOU`); "mirrored" when the summed ``x_left - x_right`` of shoulders and hips
    (pairs present in both) has the opposite sign in the two poses.
    """
    from keytrack.poses import keypoint_boxes
    from keytrack.skeleton import JOINTS
    from keytrack.tracking.scorers import iou_matrix

    if not len(gt_kp) or not len(poses_kp):
        return 0, 0
    iou = iou_matrix(keypoint_boxes(gt_kp), keypoint_boxes(poses_kp))
    pred = poses_kp[iou.argmax(1)]  # [G, 15, 3]
    left = [JOINTS.index(f"left_{j}") for j in ("shoulder", "hip")]
    right = [JOINTS.index(f"right_{j}") for j in ("shoulder", "hip")]
    both = (
        (gt_kp[:, left, 2] > 0) & (gt_kp[:, right, 2] > 0) & (pred[:, left, 2] > 0) & (pred[:, right, 2] > 0)
    )
    g = np.sign(((gt_kp[:, left, 0] - gt_kp[:, right, 0]) * both).sum(1))
    q = np.sign(((pred[:, left, 0] - pred[:, right, 0]) * both).sum(1))
    compared = (iou.max(1) >= DETECTED_IOU) & (g != 0) & (q != 0)
    return int(compared.sum()), int((compared & (g != q)).sum())


def run_image_cell(eval_gt: Dataset, row: Row, opts: Options, models: ImageModels, source, cache) -> dict:
    """One method over every video with an image detector and estimator (outputs through ``cache``,
    a :class:`~keytrack.estimators.cached.ModelCache`); AP, the method's counts, the detector's misses
    and how many of the missed people the method's poses found."""
    from keytrack.estimators.cached import CachedDetector, CachedEstimator, FrameRef
    from keytrack.estimators.simulated import SimFrame, SimScene
    from keytrack.evaluation import evaluate
    from keytrack.toks import METHODS

    detector = CachedDetector(models.detector, cache)
    estimator = CachedEstimator(models.estimator, cache)
    cls, gt_boxes = METHODS[row.method]
    method = cls(_GroundTruthBoxes() if gt_boxes else detector, estimator, **opts.method_kwargs(row))
    people = missed = found = missed_found = compared = mirrored = 0
    videos = []
    try:
        for vi, video in enumerate(eval_gt.videos):
            scene = SimScene(video, vi, 0)  # only its annotated boxes are used (no random draws)
            method.reset()
            frames = []
            for pos, f in enumerate(video.frames):
                ref = FrameRef(
                    video.name,
                    str(f.index),
                    lambda v=video, fr=f: source.image(v, fr),
                    payload=SimFrame(scene, pos),
                )
                poses = method.step(ref)
                n = len(poses)
                frames.append(
                    Frame(
                        index=f.index,
                        keypoints=poses.keypoints,
                        track_ids=np.full(n, -1, np.int64),
                        boxes=poses.boxes,
                        head_boxes=np.full((n, 4), np.nan),
                        scores=poses.scores,
                        image_id=f.image_id,
                        file_name=f.file_name,
                        is_labeled=f.is_labeled,
                    )
                )
                lo, hi = scene.person_bounds[pos], scene.person_bounds[pos + 1]
                hit = _found(scene.keypoints[lo:hi], poses.keypoints)
                people += hi - lo
                found += int(hit.sum())
                c, m = _mirrored(scene.keypoints[lo:hi], poses.keypoints)
                compared, mirrored = compared + c, mirrored + m
                if not gt_boxes:
                    det = detector.lookup(ref)
                    det_boxes = det.boxes[det.scores >= opts.box_score]
                    miss = ~_detected(scene.person_box[lo:hi], det_boxes)
                    missed += int(miss.sum())
                    missed_found += int((miss & hit).sum())
            videos.append(
                Video(video.name, frames, video.width, video.height, video.source, video.frame_size_origin)
            )
            cache.flush()
    finally:
        cache.flush()
    predicted = Dataset(videos, dict(eval_gt.skipped))
    ap = evaluate(eval_gt, predicted, compute_mot=False).columns("ap")
    stats = method.stats.to_dict()
    stats["detect_seconds"] = detector.model_seconds if not gt_boxes else stats["detect_seconds"]
    stats["estimate_seconds"] = estimator.model_seconds
    return {
        "ap": ap,
        "stats": stats,
        "gt_people": people,
        "missed_by_detector": missed if not gt_boxes else None,
        "found": found,
        "missed_found": missed_found if not gt_boxes else None,
        "lr_compared": compared,
        "lr_mirrored": mirrored,
        "model_calls": {
            "detect": detector.calls,
            "estimate": estimator.calls,
            "boxes_estimated": estimator.boxes_computed,
        },
    }


def _ap(part: str):
    return lambda result: (result.get("ap") or {}).get(part)


def run_toks(
    opts: Options, *, eval_gt: Dataset | None = None, image_models: ImageModels | None = None, source=None
) -> Result:
    """Run (or reuse) every (row, seed) cell and write ``table`` and ``counts``.

    With ``opts.estimator == "yolo"``, ``image_models`` (default :func:`load_yolo_models`) and the
    frame ``source`` (default :func:`frame_source`) replace the simulated models.
    """
    images = opts.estimator != "simulated"
    if images and image_models is None:
        image_models = load_yolo_models(opts)  # fails first when the extra is missing
    profile = Profile.from_data(opts.data, opts.eval_split, synthetic_eval_videos=opts.synthetic_test_videos)
    if opts.out:
        out = Path(opts.out)
    elif images:
        out = Path("results") / ABLATION / f"{opts.estimator}-{profile.tag}"
    else:
        out = profile.results_dir(ABLATION)
    cache = RunCache(out / "runs", retry_failed=opts.retry_failed)
    description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = limit_frames(profile.load_eval() if eval_gt is None else eval_gt, opts.max_frames)
    if opts.max_frames is not None:
        description += f", first {opts.max_frames} frames of each video"
    if images:
        source = source if source is not None else frame_source(profile)
        records, model_cache = _image_cells(opts, eval_gt, cache, image_models, source, out)
    else:
        records, model_cache = _simulated_cells(opts, eval_gt, cache), None
    failures = [
        f"{row.key}" + ("" if images else f"-seed{seed}") + f": {r.failure}"
        for (row, seed), r in records.items()
        if not r.ok
    ]
    table, counts = _rows(opts, records, images)
    columns = [
        Column("method", "Detection method"),
        Column("source", ""),
        *(Column(p, p) for p in PARTS),
        Column("gain", "Total − Det."),
    ]
    if any("status" in r for r in table):
        columns.append(Column("status", "Status"))
    notes = _notes(opts, description, eval_gt, image_models if images else None, model_cache, cache)
    files = list(
        write_table(
            table,
            out,
            columns=columns,
            notes=notes,
            title="Per-joint AP by the boxes the estimator is given (Table 2, §4.3)",
        )
    )
    files += list(
        write_table(
            counts,
            out,
            name="counts",
            columns=_count_columns(images),
            notes=_count_notes(opts, images),
            title="What each method did (Table 2's runs)",
        )
    )
    return Result(table, out, files, failures, records, tables=["table", "counts"])


def _simulated_cells(opts: Options, eval_gt: Dataset, cache: RunCache) -> dict[tuple[Row, int], RunRecord]:
    """Every (row, seed) cell with the simulated detector and estimator."""
    data_id = dataset_fingerprint(eval_gt)
    simulator_config = dataclasses.asdict(SimulatedConfig())
    cells = [(row, seed) for row in opts.rows() for seed in opts.seeds]
    records = {}
    for i, (row, seed) in enumerate(cells, 1):
        params = {
            "data": data_id,
            "method": row.method,
            "seed": seed,
            "simulator": SIMULATOR_VERSION,
            "config": simulator_config,
            **opts.method_kwargs(row),
        }
        log.info("[%d/%d] %s seed %d", i, len(cells), row.label, seed)
        records[row, seed] = cache.run(
            f"{row.key}-seed{seed}", lambda r=row, s=seed: run_cell(eval_gt, r, s, opts), params
        )
    return records


def _image_cells(
    opts: Options, eval_gt: Dataset, cache: RunCache, image_models: ImageModels, source, out: Path
) -> tuple[dict, object]:
    """Every row with the image detector and estimator (one run each), their outputs cached per frame."""
    from keytrack.estimators.cached import ModelCache

    data_id = dataset_fingerprint(eval_gt)
    check_images(eval_gt, source)
    source_token = str(getattr(source, "cache_token", type(source).__qualname__))
    digest = hashlib.sha256(f"{image_models.token}\n{source_token}".encode()).hexdigest()[:16]
    model_cache = ModelCache(out / "runs" / "models" / digest)
    model_cache.directory.mkdir(parents=True, exist_ok=True)
    write_text(model_cache.directory / "models.txt", f"{image_models.token}\n{source_token}\n")
    cells = [(row, seed) for row in opts.rows() for seed in opts.seeds]
    records = {}
    for i, (row, seed) in enumerate(cells, 1):
        params = {
            "data": data_id,
            "method": row.method,
            "estimator": opts.estimator,
            "counts": 2,
            "models": image_models.token,
            "frames": source_token,
            **opts.method_kwargs(row),
        }
        log.info("[%d/%d] %s (%s)", i, len(cells), row.label, opts.estimator)
        records[row, seed] = cache.run(
            row.key, lambda r=row: run_image_cell(eval_gt, r, opts, image_models, source, model_cache), params
        )
    return records, model_cache


def _stat(ok: Sequence, name: str, per_frame: bool = False, scale: float = 1.0):
    """Mean ± std over the successful runs of a method's count (per frame when ``per_frame``)."""
    values = []
    for _, r in ok:
        st = r.result["stats"]
        values.append(scale * st[name] / (max(st["frames"], 1) if per_frame else 1))
    return mean_std(values)


def _rows(opts: Options, records: dict, images: bool) -> tuple[list[dict], list[dict]]:
    """The AP table's rows (each followed by Table 2's) and the counts table's rows."""
    paper = paper_table2()
    det_total = {
        seed: (records[Row("detector"), seed].result or {}).get("ap", {}).get("Total")
        for seed in opts.seeds
        if records[Row("detector"), seed].ok
    }
    table, counts = [], []
    for row in opts.rows():
        recs = [records[row, s] for s in opts.seeds]
        ok = [(s, r) for s, r in zip(opts.seeds, recs) if r.ok]
        line = {
            "method": row.label,
            "source": "ours",
            **{p: mean_std(_ap(p)(r.result) for _, r in ok) for p in PARTS},
            "gain": mean_std(
                r.result["ap"]["Total"] - det_total[s]
                for s, r in ok
                if s in det_total and r.result["ap"].get("Total") is not None
            )
            if row.method != "detector"
            else None,
        }
        bad = [
            ("" if images else f"seed {s}: ") + str(r.failure) for s, r in zip(opts.seeds, recs) if not r.ok
        ]
        if bad:
            line["status"] = "failed: " + "; ".join(bad)
        table.append(line)
        ref = paper.get(row.key)
        if ref is not None:
            table.append(
                {
                    "method": "",
                    "source": "paper",
                    **dict(zip(PARTS, ref)),
                    "gain": ref[-1] - paper["detector"][-1] if row.method != "detector" else None,
                }
            )
        counts.append(_count_row(row, ok, images))
    return table, counts


def _count_row(row: Row, ok: Sequence, images: bool) -> dict:
    """What one method did: poses, the detector's misses, TOKS' recoveries, NMS, milliseconds per stage."""
    missed = mean_std(
        100.0 * r.result["missed_by_detector"] / r.result["gt_people"]
        for _, r in ok
        if r.result["gt_people"] and r.result.get("missed_by_detector") is not None
    )
    extra = {}
    if images:
        detected = row.method != "gt_boxes"
        extra = {
            "found_pct": mean_std(
                100.0 * r.result["found"] / r.result["gt_people"] for _, r in ok if r.result["gt_people"]
            ),
            "missed_found": mean_std(
                r.result["missed_found"] for _, r in ok if r.result.get("missed_found") is not None
            )
            if detected
            else None,
            "missed_n": mean_std(
                r.result["missed_by_detector"]
                for _, r in ok
                if r.result.get("missed_by_detector") is not None
            )
            if detected
            else None,
            "people": mean_std(r.result["gt_people"] for _, r in ok),
            "mirrored_pct": mean_std(
                100.0 * r.result["lr_mirrored"] / r.result["lr_compared"]
                for _, r in ok
                if r.result.get("lr_compared")
            ),
        }
    toks, prop = row.method == "toks", row.method == "box_propagation"
    return {
        "method": row.label,
        "frames": _stat(ok, "frames"),
        "poses_per_frame": _stat(ok, "poses", True),
        "missed_pct": missed if row.method != "gt_boxes" else None,
        **extra,
        "recovered": _stat(ok, "recovered") if toks else None,
        "duplicates": _stat(ok, "duplicates") if toks else None,
        "replaced": _stat(ok, "replaced") if toks else None,
        "suppressed": _stat(ok, "suppressed") if prop else None,
        "kp_dropped": _stat(ok, "keypoint_dropped"),
        "detect_ms": _stat(ok, "detect_seconds", True, 1e3),
        "estimate_ms": _stat(ok, "estimate_seconds", True, 1e3),
        "match_ms": _stat(ok, "match_seconds", True, 1e3),
    }


def _notes(
    opts: Options,
    description: str,
    eval_gt: Dataset,
    image_models: ImageModels | None,
    model_cache,
    cache: RunCache,
) -> list[str]:
    seeds = ", ".join(map(str, opts.seeds))
    if image_models is not None:
        models_note = (
            f"Boxes and keypoints: {image_models.description}, on "
            + (
                "the rendered synthetic frames (keytrack.frames.SyntheticFrames)"
                if opts.data is None
                else "the data's image files"
            )
            + '. One deterministic run per row (no seeds, so no std). "GT" gives the estimator '
            "the annotated boxes enlarged 10 % per side (as the simulated GT row). The network's "
            f"outputs are cached in {model_cache.directory}/ (detections per frame, poses per "
            "frame and box) and shared by the rows."
        )
    else:
        models_note = (
            "Boxes and keypoints: keytrack.estimators.simulated (simulator version "
            f"{SIMULATOR_VERSION}), seeds {seeds}"
            + (" (mean ± sample std over seeds)" if len(opts.seeds) > 1 else "")
            + "; every row of a seed sees the same detector and estimator errors."
        )
    return [
        f"Evaluation: {description} ({eval_gt.report()}); the paper: PoseTrack 2018 val with HTC boxes and "
        "HRNet-W48 keypoints. AP as poseval computes it (§4.1), Total = mean over joints; a joint group the "
        "data never annotates (Bonn's nose) leaves its column empty.",
        models_note,
        f"A.4's thresholds in every row: detector boxes below {opts.box_score:g} are discarded, keypoints "
        f"below {opts.keypoint_score:g} removed and poses left empty dropped. α = {opts.alpha:g} for the "
        f"propagated boxes (A.1); Box Prop. merges boxes by NMS at IoU {opts.nms_iou:g} (a propagated box "
        "scores its pose's mean keypoint confidence).",
        "`paper` rows: Table 2 (keytrack/reference/paper_results.yaml, `box_improvement`). "
        "Counts per method: counts.md.",
        f"Runs are cached in {cache.directory}/ ({cache.reused} reused, {cache.computed} run now); delete a "
        "file there to run it again.",
    ]


def _count_columns(images: bool) -> list[Column]:
    return [
        Column("method", "Detection method"),
        Column("frames", "Frames", 0),
        Column("poses_per_frame", "Poses / frame", 2),
        Column("missed_pct", "Det. missed %"),
        Column("recovered", "Recovered", 0),
        Column("duplicates", "Duplicates removed", 0),
        Column("replaced", "Replaced", 0),
        Column("suppressed", "NMS suppressed", 0),
        Column("kp_dropped", "Empty poses dropped", 0),
        *(
            [
                Column("people", "Annotated people", 0),
                Column("missed_n", "Det. missed", 0),
                Column("missed_found", "Missed people found", 0),
                Column("found_pct", "People found %"),
                Column("mirrored_pct", "L/R mirrored %"),
            ]
            if images
            else []
        ),
        Column("detect_ms", "Detect ms/frame", 2),
        Column("estimate_ms", "Estimate ms/frame", 2),
        Column("match_ms", "Match ms/frame", 2),
    ]


def _count_notes(opts: Options, images: bool) -> list[str]:
    image_notes = [
        "Sums over all videos of the one run of each row. Det. missed: annotated people with no detector "
        f"box at score ≥ {opts.box_score:g} matched one-to-one at IoU ≥ {DETECTED_IOU:g} to their box "
        f"(enlarged 10 % per side). People found: annotated people some output pose matches at OKS ≥ "
        f"{FOUND_OKS:g} (their keypoint box as scale); Missed people found: those of them the detector "
        "missed. L/R mirrored: of the annotated "
        "people with an output pose whose keypoint box overlaps theirs at IoU ≥ 0.5, those whose pose has "
        "left and right swapped (shoulders and hips). Recovered: propagated poses "
        "TOKS added (no detection at OKS ≥ threshold), not all of them people. Duplicates removed, Replaced, "
        "NMS suppressed, Empty poses dropped: as in the simulated table.",
        "Detect / Estimate ms/frame: seconds of the network when each output was computed (stored with it in "
        "the cache, a batch's time shared by its boxes), per frame of the row, on this machine's CPU; Match: "
        "TOKS' propagation, OKS and merge (or Box Prop.'s NMS).",
    ]
    count_notes = (
        image_notes
        if images
        else [
            "Sums over all videos of a run, mean ± std over seeds. Det. missed %: annotated people the "
            "simulated detector outputs no box for (before the box-score threshold). Recovered: propagated "
            "poses TOKS added (no detection at OKS ≥ threshold). Duplicates removed: propagated poses "
            "dropped "
            "as the same person as a kept pose. Replaced: detections whose pose a better-scoring propagated "
            "pose replaced. NMS suppressed: boxes (detected or propagated) removed by Box Prop.'s NMS. Empty "
            "poses dropped: "
            "estimated poses without a keypoint at or above the keypoint score.",
            "Milliseconds per frame of the simulated models and of the matching step, on this machine's CPU "
            "(the simulator needs no network, so these are not HTC/HRNet timings).",
        ]
    )
    return image_notes if images else count_notes


# -- command line -----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, Options, ABLATION, skip=("device", "batch_size", "wait_for_training"))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        opts = options_from(Options, args)
    except ValueError as err:
        raise SystemExit(f"toks: {err}") from None
    try:
        result = run_toks(opts)
    except DataError as err:
        raise SystemExit(f"toks: {err}") from None
    return finish("toks", result)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("python -m ablations.toks", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m ablations.toks", main))
