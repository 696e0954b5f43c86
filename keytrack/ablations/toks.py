"""Table 2 (§4.3): per-joint AP when the pose estimator is given different boxes, TOKS among them.

Rows: GT boxes, the detector's, detector + box propagation (NMS), TOKS (§3.3, Algorithm 1) at each OKS
threshold; simulated models, or YOLO11n-pose on pixels with ``--estimator yolo``. See ``docs/toks.md``.
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

from keytrack.ablations.options import RunOptions, add_options, opt, options_from
from keytrack.ablations.profile import Profile, default_results_dir
from keytrack.ablations.runs import Result, RunCache, command_main, dataset_fingerprint, file_digest, finish
from keytrack.atomic import write_text
from keytrack.errors import InputError
from keytrack.estimators.simulated import SimulatedConfig
from keytrack.estimators.yolo import yolo_available
from keytrack.evaluation import COLUMNS
from keytrack.io.errors import DataError
from keytrack.poses import Dataset, Frame
from keytrack.tables import Column, mean_std, write_table

log = logging.getLogger("keytrack.ablations.toks")

ABLATION = "toks"
#: Bumped when the simulated models change what they output, so cached runs are redone.
SIMULATOR_VERSION = 1
PARTS: tuple[str, ...] = (*COLUMNS, "Total")
PAPER_OKS: tuple[float, ...] = (0.3, 0.35, 0.5)
ESTIMATORS: tuple[str, ...] = ("simulated", "yolo")
DEFAULT_SYNTHETIC_VIDEOS = {"simulated": 20, "yolo": 5}
YOLO_INSTALL = (
    "--estimator yolo needs the optional yolo extra (YOLO11n-pose, AGPL-3.0), which lives in its "
    "own environment: run `make install-yolo`, then `.venv-yolo/bin/python -m keytrack.ablations.toks "
    "--estimator yolo` (or `make ablation-toks-yolo`)"
)
#: Counts only: OKS at which an output pose finds a person, IoU at which a detector box detects one.
FOUND_OKS = 0.5
DETECTED_IOU = 0.5
#: Options that must lie in a range: (names, test, the range as the error says it).
RANGES = (
    (("max_frames",), lambda v: v is None or v >= 1, "be >= 1"),
    (("imgsz", "crop_size"), lambda v: v >= 32, "be >= 32"),
    (("crop_dilation",), lambda v: v >= 1.0, "be >= 1"),
    (("crop_conf", "box_score", "keypoint_score"), lambda v: 0.0 <= v <= 1.0, "lie in [0, 1]"),
    (("oks_thresholds",), lambda ts: all(0.0 <= t <= 1.0 for t in ts), "lie in [0, 1]"),
    (("alpha",), lambda v: v > 0, "be > 0"),
    (("nms_iou",), lambda v: 0.0 < v <= 1.0, "lie in (0, 1]"),
)


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
    """Everything the table depends on (nothing here trains: ``device``, ``batch_size`` and
    ``wait_for_training`` are unused)."""

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
        self.seeds = tuple(int(s) for s in self.seeds)
        if self.estimator != "simulated" and len(self.seeds) > 1:
            raise ValueError(
                f"--estimator {self.estimator} is deterministic (one run); --seeds applies to "
                "the simulated estimator only"
            )
        if not self.seeds or min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")
        if self.synthetic_test_videos is None:
            self.synthetic_test_videos = DEFAULT_SYNTHETIC_VIDEOS[self.estimator]
        self.oks_thresholds = tuple(sorted({float(t) for t in self.oks_thresholds}))
        for names, ok, bound in RANGES:
            for name in names:
                if not ok(getattr(self, name)):
                    raise ValueError(f"{name} must {bound}, got {getattr(self, name)}")

    def rows(self) -> list[Row]:
        toks = (Row("toks", t) for t in self.oks_thresholds)
        return [Row("gt_boxes"), Row("detector"), Row("box_propagation"), *toks]

    def method_kwargs(self, row: Row) -> dict:
        kw = {"box_score": self.box_score, "keypoint_score": self.keypoint_score}
        if row.method == "box_propagation":
            kw.update(alpha=self.alpha, nms_iou=self.nms_iou)
        if row.method == "toks":
            kw.update(alpha=self.alpha, oks_threshold=row.oks_threshold)
        return kw


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


@dataclass
class ImageModels:
    """A detector and a top-down estimator of ``[H, W, 3]`` uint8 images; ``token`` names what their
    outputs depend on (and so their cache)."""

    detector: Any
    estimator: Any
    token: str
    description: str


def load_yolo_models(opts: Options) -> ImageModels:
    """YOLO11n-pose as the detector (whole frame) and as the estimator (each box's crop, as HRNet in
    A.4); an :class:`~keytrack.errors.InputError` saying how to install the extra when it is missing."""
    if not yolo_available():
        raise InputError(f"toks: {YOLO_INSTALL}")
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

    synthetic = profile.data_root is None
    return SyntheticFrames(profile.synthetic_eval_seed) if synthetic else ImageFiles(profile.data_root)


def check_images(eval_gt: Dataset, source) -> None:
    """Every frame's image file exists (:class:`~keytrack.frames.ImageFiles`), else the
    :class:`DataError` of the first missing one, with how many are missing."""
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
    videos = [dataclasses.replace(v, frames=v.frames[:max_frames]) for v in dataset.videos]
    return Dataset(videos, dict(dataset.skipped))


class _GroundTruthBoxes:
    """Table 2's "GT" detector on :class:`~keytrack.estimators.cached.FrameRef` frames: the annotated
    boxes (enlarged as the simulated detector's, score 1) of the frame's ``payload``."""

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
    """Annotated people compared with the output pose overlapping theirs most (IoU ≥ :data:`DETECTED_IOU`),
    and those of them whose pose is left/right mirrored (shoulders' and hips' ``x_left - x_right``)."""
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
    """One method over every video with image models (outputs through ``cache``, a ModelCache): AP, the
    method's counts, the detector's misses and how many of the missed people the method's poses found."""
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
                image = lambda v=video, fr=f: source.image(v, fr)  # noqa: E731 - loaded at most once
                ref = FrameRef(video.name, str(f.index), image, payload=SimFrame(scene, pos))
                poses = method.step(ref)
                frames.append(
                    Frame.from_poses(
                        f.index,
                        poses.keypoints,
                        boxes=poses.boxes,
                        scores=poses.scores,
                        image_id=f.image_id,
                        file_name=f.file_name,
                        is_labeled=f.is_labeled,
                    )
                )
                lo, hi = scene.person_bounds[pos], scene.person_bounds[pos + 1]
                hit = _found(scene.keypoints[lo:hi], poses.keypoints)
                people, found = people + hi - lo, found + int(hit.sum())
                c, m = _mirrored(scene.keypoints[lo:hi], poses.keypoints)
                compared, mirrored = compared + c, mirrored + m
                if not gt_boxes:
                    det = detector.lookup(ref)
                    miss = ~_detected(scene.person_box[lo:hi], det.boxes[det.scores >= opts.box_score])
                    missed, missed_found = missed + int(miss.sum()), missed_found + int((miss & hit).sum())
            videos.append(dataclasses.replace(video, frames=frames))
            cache.flush()
    finally:
        cache.flush()
    ap = evaluate(eval_gt, Dataset(videos, dict(eval_gt.skipped)), compute_mot=False).columns("ap")
    stats = method.stats.to_dict()
    stats["detect_seconds"] = detector.model_seconds if not gt_boxes else stats["detect_seconds"]
    stats["estimate_seconds"] = estimator.model_seconds
    calls = {
        "detect": detector.calls,
        "estimate": estimator.calls,
        "boxes_estimated": estimator.boxes_computed,
    }
    return {
        "ap": ap,
        "stats": stats,
        "gt_people": people,
        "missed_by_detector": missed if not gt_boxes else None,
        "found": found,
        "missed_found": missed_found if not gt_boxes else None,
        "lr_compared": compared,
        "lr_mirrored": mirrored,
        "model_calls": calls,
    }


def run_toks(
    opts: Options, *, eval_gt: Dataset | None = None, image_models: ImageModels | None = None, source=None
) -> Result:
    """Run (or reuse) every (row, seed) cell and write ``table`` and ``counts``; with ``--estimator yolo``,
    ``image_models`` (default :func:`load_yolo_models`) and ``source`` (default :func:`frame_source`)."""
    images = opts.estimator != "simulated"
    if images and image_models is None:
        image_models = load_yolo_models(opts)  # fails first when the extra is missing
    profile = Profile.from_data(opts.data, opts.eval_split, synthetic_eval_videos=opts.synthetic_test_videos)
    if opts.out:
        out = Path(opts.out)
    elif images:
        out = default_results_dir(ABLATION) / f"{opts.estimator}-{profile.tag}"
    else:
        out = profile.results_dir(ABLATION)
    cache = RunCache(out / "runs", retry_failed=opts.retry_failed)
    description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = limit_frames(profile.load_eval() if eval_gt is None else eval_gt, opts.max_frames)
    if opts.max_frames is not None:
        description += f", first {opts.max_frames} frames of each video"
    data_id, model_cache = dataset_fingerprint(eval_gt), None
    if images:
        source = source if source is not None else frame_source(profile)
        model_cache, frames = _model_cache(eval_gt, image_models, source, out)
        fixed = {"estimator": opts.estimator, "counts": 2, "models": image_models.token, "frames": frames}

        def compute(row: Row, seed: int) -> dict:
            return run_image_cell(eval_gt, row, opts, image_models, source, model_cache)
    else:
        fixed = {"simulator": SIMULATOR_VERSION, "config": dataclasses.asdict(SimulatedConfig())}

        def compute(row: Row, seed: int) -> dict:
            return run_cell(eval_gt, row, seed, opts)

    records, cells = {}, [(row, seed) for row in opts.rows() for seed in opts.seeds]
    for i, (row, seed) in enumerate(cells, 1):
        log.info(
            "[%d/%d] %s %s", i, len(cells), row.label, f"({opts.estimator})" if images else f"seed {seed}"
        )
        params = {"data": data_id, "method": row.method, **({} if images else {"seed": seed}), **fixed}
        records[row, seed] = cache.run(
            _cell_key(row, seed, images),
            lambda r=row, s=seed: compute(r, s),
            {**params, **opts.method_kwargs(row)},
        )
    failures = [f"{_cell_key(*cell, images)}: {r.failure}" for cell, r in records.items() if not r.ok]
    table, counts = _rows(opts, records, images)
    columns = [Column("method", "Detection method"), Column("source", ""), *(Column(p, p) for p in PARTS)]
    columns.append(Column("gain", "Total − Det."))
    if any("status" in r for r in table):
        columns.append(Column("status", "Status"))
    notes = _notes(opts, description, eval_gt, image_models if images else None, model_cache, cache)
    title = "Per-joint AP by the boxes the estimator is given (Table 2, §4.3)"
    files = list(write_table(table, out, columns=columns, notes=notes, title=title))
    files += write_table(
        counts,
        out,
        name="counts",
        columns=_count_columns(images),
        notes=_count_notes(opts, images),
        title="What each method did (Table 2's runs)",
    )
    return Result(table, out, files, failures, records, tables=["table", "counts"])


def _cell_key(row: Row, seed: int, images: bool) -> str:
    return row.key if images else f"{row.key}-seed{seed}"


def _model_cache(eval_gt: Dataset, models: ImageModels, source, out: Path) -> tuple[Any, str]:
    """The image models' output cache (named by the models and the frames) and the frames' token."""
    from keytrack.estimators.cached import ModelCache

    check_images(eval_gt, source)
    source_token = str(getattr(source, "cache_token", type(source).__qualname__))
    digest = hashlib.sha256(f"{models.token}\n{source_token}".encode()).hexdigest()[:16]
    model_cache = ModelCache(out / "runs" / "models" / digest)
    model_cache.directory.mkdir(parents=True, exist_ok=True)
    write_text(model_cache.directory / "models.txt", f"{models.token}\n{source_token}\n")
    return model_cache, source_token


def _stat(ok: Sequence, name: str, per_frame: bool = False, scale: float = 1.0):
    """Mean ± std over the successful runs of a method's count (per frame when ``per_frame``)."""
    stats = [r.result["stats"] for _, r in ok]
    return mean_std(scale * st[name] / (max(st["frames"], 1) if per_frame else 1) for st in stats)


def _rows(opts: Options, records: dict, images: bool) -> tuple[list[dict], list[dict]]:
    """The AP table's rows (each followed by Table 2's) and the counts table's rows."""
    from keytrack.reference import paper_results

    paper = paper_results()["box_improvement"]["rows"]
    detector = {s: records[Row("detector"), s] for s in opts.seeds}
    det_total = {s: (r.result or {}).get("ap", {}).get("Total") for s, r in detector.items() if r.ok}
    table, counts = [], []
    for row in opts.rows():
        recs = {s: records[row, s] for s in opts.seeds}
        ok = [(s, r) for s, r in recs.items() if r.ok]
        gain = None
        if row.method != "detector":
            gain = mean_std(
                r.result["ap"]["Total"] - det_total[s]
                for s, r in ok
                if s in det_total and r.result["ap"].get("Total") is not None
            )
        aps = {p: mean_std((r.result.get("ap") or {}).get(p) for _, r in ok) for p in PARTS}
        table.append({"method": row.label, "source": "ours", **aps, "gain": gain})
        bad = [("" if images else f"seed {s}: ") + str(r.failure) for s, r in recs.items() if not r.ok]
        if bad:
            table[-1]["status"] = "failed: " + "; ".join(bad)
        ref = paper.get(row.key)
        if ref is not None:
            gain = ref[-1] - paper["detector"][-1] if row.method != "detector" else None
            table.append({"method": "", "source": "paper", **dict(zip(PARTS, ref)), "gain": gain})
        counts.append(_count_row(row, ok, images))
    return table, counts


def _count_row(row: Row, ok: Sequence, images: bool) -> dict:
    """What one method did: poses, the detector's misses, TOKS' recoveries, NMS, milliseconds per stage."""
    results = [r.result for _, r in ok]
    detected = row.method != "gt_boxes"

    def percent(part: str, whole: str):
        return mean_std(
            100.0 * x[part] / x[whole] for x in results if x.get(whole) and x.get(part) is not None
        )

    extra = {}
    if images:
        extra = {
            "found_pct": percent("found", "gt_people"),
            "missed_found": mean_std(x["missed_found"] for x in results) if detected else None,
            "missed_n": mean_std(x["missed_by_detector"] for x in results) if detected else None,
            "people": mean_std(x["gt_people"] for x in results),
            "mirrored_pct": percent("lr_mirrored", "lr_compared"),
        }
    return {
        "method": row.label,
        "frames": _stat(ok, "frames"),
        "poses_per_frame": _stat(ok, "poses", True),
        "missed_pct": percent("missed_by_detector", "gt_people") if detected else None,
        **extra,
        **{
            k: _stat(ok, k) if row.method == "toks" else None for k in ("recovered", "duplicates", "replaced")
        },
        "suppressed": _stat(ok, "suppressed") if row.method == "box_propagation" else None,
        "kp_dropped": _stat(ok, "keypoint_dropped"),
        **{f"{k}_ms": _stat(ok, f"{k}_seconds", True, 1e3) for k in ("detect", "estimate", "match")},
    }


def _notes(
    opts: Options, description: str, eval_gt: Dataset, models, model_cache, cache: RunCache
) -> list[str]:
    """The table's notes; ``models``: the image models (None: the simulated ones)."""
    if models is not None:
        frames = "the rendered synthetic frames (keytrack.frames.SyntheticFrames)"
        models_note = (
            f"Boxes and keypoints: {models.description}, on "
            + (frames if opts.data is None else "the data's image files")
            + '. One deterministic run per row (no seeds, so no std). "GT" gives the estimator '
            "the annotated boxes enlarged 10 % per side (as the simulated GT row). The network's "
            f"outputs are cached in {model_cache.directory}/ (detections per frame, poses per "
            "frame and box) and shared by the rows."
        )
    else:
        models_note = (
            "Boxes and keypoints: keytrack.estimators.simulated (simulator version "
            f"{SIMULATOR_VERSION}), seeds {', '.join(map(str, opts.seeds))}"
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


IMAGE_COUNT_COLUMNS = (
    Column("people", "Annotated people", 0),
    Column("missed_n", "Det. missed", 0),
    Column("missed_found", "Missed people found", 0),
    Column("found_pct", "People found %"),
    Column("mirrored_pct", "L/R mirrored %"),
)


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
        *(IMAGE_COUNT_COLUMNS if images else ()),
        Column("detect_ms", "Detect ms/frame", 2),
        Column("estimate_ms", "Estimate ms/frame", 2),
        Column("match_ms", "Match ms/frame", 2),
    ]


def _count_notes(opts: Options, images: bool) -> list[str]:
    if images:
        return [
            "Sums over all videos of the one run of each row. Det. missed: annotated people with no "
            f"detector box at score ≥ {opts.box_score:g} matched one-to-one at IoU ≥ {DETECTED_IOU:g} to "
            "their box (enlarged 10 % per side). People found: annotated people some output pose matches "
            f"at OKS ≥ {FOUND_OKS:g} (their keypoint box as scale); Missed people found: those of them the "
            "detector missed. L/R mirrored: of the annotated people with an output pose whose keypoint box "
            "overlaps theirs at IoU ≥ 0.5, those whose pose has left and right swapped (shoulders and hips). "
            "Recovered: propagated poses TOKS added (no detection at OKS ≥ threshold), not all of them "
            "people. Duplicates removed, Replaced, NMS suppressed, Empty poses dropped: as in the simulated "
            "table.",
            "Detect / Estimate ms/frame: seconds of the network when each output was computed (stored with "
            "it in the cache, a batch's time shared by its boxes), per frame of the row, on this machine's "
            "CPU; Match: TOKS' propagation, OKS and merge (or Box Prop.'s NMS).",
        ]
    return [
        "Sums over all videos of a run, mean ± std over seeds. Det. missed %: annotated people the "
        "simulated detector outputs no box for (before the box-score threshold). Recovered: propagated "
        "poses TOKS added (no detection at OKS ≥ threshold). Duplicates removed: propagated poses dropped "
        "as the same person as a kept pose. Replaced: detections whose pose a better-scoring propagated "
        "pose replaced. NMS suppressed: boxes (detected or propagated) removed by Box Prop.'s NMS. Empty "
        "poses dropped: estimated poses without a keypoint at or above the keypoint score.",
        "Milliseconds per frame of the simulated models and of the matching step, on this machine's CPU "
        "(the simulator needs no network, so these are not HTC/HRNet timings).",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, Options, ABLATION, skip=("device", "batch_size", "wait_for_training"))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        opts = options_from(Options, args)
    except ValueError as err:
        raise InputError(f"toks: {err}") from None
    return finish("toks", run_toks(opts))  # bad data: a DataError, an InputError


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("python -m keytrack.ablations.toks", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m keytrack.ablations.toks", main))
