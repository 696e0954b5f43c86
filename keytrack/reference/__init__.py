"""The published numbers of KeyTrack (Snower et al., "15 Keypoints Is All You Need", CVPR 2020).

``paper_results.yaml`` (beside this module) transcribes the paper's tables and figures as data:
Figure 4 (tracker comparison), Tables 2–4 and 6, Figures 5 and 7, and the settings of A.4/A.5.
Ablation reports print these values beside the project's own::

    from keytrack.reference import paper_results
    fig4 = paper_results()["tracker_comparison"]["settings"]["gt_boxes_gt_keypoints"]
    fig4["pose_entailment"]["mota_total"]          # 99.3

Values are percentages unless the entry says otherwise, and refer to PoseTrack 2018 val unless the
entry says otherwise.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources

__all__ = ["paper_results", "RESOURCE"]

#: File name of the transcription, a package resource of :mod:`keytrack.reference`.
RESOURCE = "paper_results.yaml"


@lru_cache(maxsize=1)
def _load() -> dict:
    import yaml  # PyYAML, a dependency of omegaconf

    text = resources.files(__name__).joinpath(RESOURCE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(
            f"{__name__}/{RESOURCE}: expected a mapping at the top level, got {type(data).__name__}"
        )
    return data


def paper_results() -> dict:
    """The paper's results as a nested dict (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_load())
