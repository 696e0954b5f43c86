"""The paper's ablations: specs of ``experiments/ablations/`` and the one runner that makes their tables.

* :mod:`ablations.runner` (``keytrack ablate NAME``): tracking-time axes (Figure 4's matchers at each frame
  stride, δ, greedy vs Hungarian, Table 4) and specs that train one network per row (Table 3's token
  schemes, Figure 7's resolution sweep, checked by :mod:`ablations.claims`); notes by :mod:`ablations.notes`;
* plug-ins that stay code: :mod:`ablations.toks` (Table 2, TOKS with its estimators),
  :mod:`ablations.matcher_variants` (matcher choices on validation videos) and the sweep agent
  (:mod:`keytrack.lab.sweep`).

What every table is made with (run cache, data profiles, training reuse, cells, scoring, statistics,
plots) is :mod:`keytrack.lab`. See ``docs/ablations.md``.
"""
