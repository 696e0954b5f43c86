"""The paper's ablations and comparisons, one module each, run from the command line.

Each module reproduces one table or figure of KeyTrack (CVPR 2020) and writes
``results/<ablation>/table.md`` and ``table.csv`` with the paper's values beside ours; the shared
machinery (data profiles, the run cache, training reuse) is in :mod:`ablations.common`, the table
writer in :mod:`keytrack.tables`, FLOP counting in :mod:`keytrack.models.cost`. See ``docs/ablations.md``.

* :mod:`keytrack.lab.sweep` / :mod:`keytrack.lab.sweep_table`: Figure 7 (left, §5.1), W&B sweeps over
  the transformer's size, run by ``wandb agent`` or offline with W&B's own search engine.
* :mod:`ablations.runner` (``keytrack ablate NAME``): the ablations as specs of
  ``experiments/ablations/``: tracking-time axes (Figure 4's matchers on the same keypoints at each
  frame stride, δ, greedy vs Hungarian, Table 4) and specs that
  train one network per row (Table 3's token schemes, Figure 7's resolution sweep, with the claims
  plug-ins of :mod:`ablations.claims`).
"""
