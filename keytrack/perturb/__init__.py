"""Predicted poses without images: a seeded perturbation protocol (KeyTrack §4.2, §3.3, A.3).

KeyTrack's tracker only ever sees keypoints, so its accuracy depends on how good those keypoints
are. Figure 4 (§4.2) measures every tracker under three keypoint sources, and this module produces
the same three from ground truth, with no images and no pose estimator:

* ``gt_boxes_gt_keypoints``: the ground-truth keypoints themselves, confidence ``c = 1``
  (Figure 4's first block, AP = 100).
* ``gt_boxes_predicted_keypoints``: a top-down estimator run on every ground-truth person box:
  every annotated person is present, its keypoints are perturbed (Figure 4: AP 86.7, Table 2's
  "GT" row).
* ``predicted_boxes_predicted_keypoints``: the estimator run on detector boxes, which adds the two
  detector errors §3.3 names, *missed* boxes (a person missing for a run of frames) and *imperfect*
  boxes (a shifted / mis-scaled crop: joints outside it land on its border), plus false-positive
  poses (Figure 4: AP 81.6, Table 2's "Det. + TOKS" row).

Every length is measured in *head sizes* ``s``, the unit of PoseTrack's PCKh matching
(``s = 0.6 ·`` diagonal of the head box; a keypoint is correct within ``0.5 s``), so the
protocol behaves the same for near and far people. The predicted keypoint of a visible joint ``j``
of a person of head size ``s`` is

    ``x̂ = x_j + s · e``, ``e ~ N(0, σ_j² I)`` with probability ``1 - g_j``, else a gross error
    of log-normal length (median :attr:`PerturbConfig.gross_scale`) in a uniform direction,

with per-joint-group ``σ_j`` and ``g_j`` (:data:`JOINT_GROUPS`, Table 2's columns); a whole pose
is mirrored left/right with a small probability, as estimators confuse a person's sides. Visible
joints are dropped now and then (more often next to an occluded joint); joints that the ground
truth does not annotate are hallucinated with low confidence at the place a canonical skeleton
fitted to the visible joints puts them. The confidence of a keypoint falls with its error,

    ``c = sigmoid(a - b · ‖x̂ - x_j‖ / s + ε)``, ``ε ~ N(0, τ²)``,

so thresholding confidences removes the bad keypoints first, the trade-off between AP and MOTA
that A.3 / Table 4 reports. The pose (box) score is the mean keypoint confidence with noise, lower
still for false positives.

Predictions carry no track ids (``-1``; the tracker assigns them) and no head boxes (PoseTrack's
evaluation takes head sizes from the ground truth); ``keep_track_ids=True`` keeps the ground-truth
id on every pose that comes from an annotated person (false positives get ``-1``), for analysis.
Within a frame, poses are ordered by descending score, as a detector lists them.

Randomness: video ``i`` draws from ``SeedSequence([seed, i])`` alone, split into independent
streams per stage (pose order, keypoints, boxes, misses, false positives). A video's result
therefore does not depend on the other videos, and with the same seed the two predicted settings
share every keypoint draw: ``predicted_boxes_predicted_keypoints`` is
``gt_boxes_predicted_keypoints`` plus the detector's errors, so a difference between the two
measures the detector alone. The protocol and its calibration are described in
``docs/perturbation.md``.

The package: :mod:`~keytrack.perturb.config` (settings, :class:`PerturbConfig`),
:mod:`~keytrack.perturb.draws` (the building blocks, public for estimators that reuse the draws),
:mod:`~keytrack.perturb.protocol` (:func:`perturb`), :mod:`~keytrack.perturb.cli` (``keytrack perturb``).
"""

from __future__ import annotations

from keytrack.perturb.cli import add_arguments, evaluate_protocol, run
from keytrack.perturb.config import JOINT_GROUPS, SETTINGS, TEMPLATE, TEMPLATE_HEAD_SIZE, PerturbConfig
from keytrack.perturb.draws import fit_template, person_scale
from keytrack.perturb.protocol import perturb, with_oracle_track_ids

__all__ = [
    "SETTINGS",
    "JOINT_GROUPS",
    "TEMPLATE",
    "TEMPLATE_HEAD_SIZE",
    "PerturbConfig",
    "perturb",
    "person_scale",
    "fit_template",
    "with_oracle_track_ids",
    "evaluate_protocol",
    "add_arguments",
    "run",
]
