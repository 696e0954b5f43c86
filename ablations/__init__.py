"""The experiments: every table of keytrack, made from specs of ``experiments/ablations/`` by one runner.

* :mod:`ablations.evaluate`: the one evaluate path (a tracker on an evaluation set, scored, cached);
* :mod:`ablations.runner` (``keytrack ablate NAME``): tracking-time specs expanded into the cells of
  :mod:`ablations.cells` and training specs (one network per row), with :mod:`ablations.notes` and
  :mod:`ablations.claims`;
* :mod:`ablations.runs`, :mod:`ablations.profile`, :mod:`ablations.training`, :mod:`ablations.options`,
  :mod:`ablations.plots`: the run cache and statistics, the data, trained networks reused, options, plots;
* plug-ins that stay code: :mod:`ablations.toks` (Table 2), :mod:`ablations.matcher_variants`
  (choices on validation videos) and :mod:`ablations.sweep` (W&B sweeps without a server, into Figure 7's
  training spec).

This is the application layer: it may import the library (``keytrack``) and the Lightning layer,
never the other way round. See ``docs/ablations.md``.
"""
