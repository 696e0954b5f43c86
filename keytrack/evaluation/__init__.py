"""PoseTrack evaluation (paper §4.1–4.2): AP, MOTA, MOTP, precision, recall and %IDSW per joint.

A re-implementation of the official PoseTrack evaluation (``leonid-pishchulin/poseval``) on
keytrack's in-memory :class:`~keytrack.poses.Dataset`, giving the same numbers on the same data,
quirks included (see ``docs/evaluation.md``)::

    from keytrack.evaluation import evaluate
    result = evaluate(gt_dataset, pred_dataset)
    print(result.to_markdown())
    result.write_json("results/eval.json")
"""

from keytrack.evaluation.evaluator import METRICS, EvaluationResult, evaluate
from keytrack.evaluation.protocol import (
    PCKH_THRESHOLD,
    POSEVAL_JOINTS,
    POSEVAL_NAMES,
    TO_POSEVAL,
    EvaluationError,
)
from keytrack.evaluation.table import COLUMNS

__all__ = [
    "evaluate",
    "EvaluationResult",
    "EvaluationError",
    "METRICS",
    "COLUMNS",
    "POSEVAL_JOINTS",
    "POSEVAL_NAMES",
    "TO_POSEVAL",
    "PCKH_THRESHOLD",
]
