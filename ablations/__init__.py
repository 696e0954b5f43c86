"""The paper's ablations and comparisons, one module each, run from the command line.

Each module reproduces one table or figure of KeyTrack (CVPR 2020) and writes
``results/<ablation>/table.md`` and ``table.csv`` with the paper's values beside ours; the shared
machinery (data profiles, the run cache, table writing, training reuse) is in
:mod:`ablations.common`. See ``docs/ablations.md``.

* :mod:`ablations.tracker_comparison`: Figure 4 (§4.2), Pose Entailment against OKS and IoU
  tracking on the same keypoints.
"""
